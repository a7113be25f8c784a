//! Subcommands of the `dataloader` binary, one module each. Each module holds its clap
//! `Args` and a `run` function; library errors become `anyhow` errors here.

pub mod bench;
pub mod exif;
pub mod generate;
pub mod inspect;
pub mod pack;
pub mod stream;
pub mod tags;

/// A multi-threaded tokio runtime for the commands that talk to object storage.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
