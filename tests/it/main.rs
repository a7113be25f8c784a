//! Integration tests: one binary, a module per area, shared helpers in `support`.

mod checkpoint;
mod config;
mod exif;
mod jpeg;
mod kernels;
mod s3;
mod shards;
mod splice_bench;
mod stream;
mod support;
mod synth;
mod train;
