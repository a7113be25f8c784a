//! What every process of the project shares, below `dataloader`, `kernels`, `proto`,
//! `worker` and `coordinator`: [`FieldError`] (a config field and what is wrong with it),
//! [`store`] (object-store URLs and the one retry policy, feature `store`), [`logging`]
//! (the `--log-format` flag and the `tracing` set-up, feature `logging`) and [`cli`] (the
//! TLS client flags, feature `cli`). Crates that need only the error type (`kernels`)
//! take it without the features.

mod field;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "logging")]
pub mod logging;
#[cfg(feature = "store")]
pub mod store;

pub use field::{join_fields, FieldError};
