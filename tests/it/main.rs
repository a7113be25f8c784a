//! Integration tests: one binary, a module per area, shared helpers in `support`.

mod jpeg;
mod support;
