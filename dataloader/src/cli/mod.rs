//! Subcommands of the `dataloader` binary, one module each. Each module holds its clap
//! `Args` and a `run` function; library errors become `anyhow` errors here.

pub mod bench;
pub mod exif;
pub mod generate;
pub mod inspect;
pub mod pack;
pub mod split;
pub mod stream;
pub mod tags;
pub mod yfcc_corpus;

use anyhow::Context;
use dataloader::shard::Dataset;
use infra::store::{RetryPolicy, StoreOptions};
use tokio::runtime::Runtime;

/// Object-storage settings shared by the commands that read or write datasets.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// S3 endpoint of an S3-compatible server (MinIO, SeaweedFS, ...). Default:
    /// AWS_ENDPOINT_URL, else AWS.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Attempts per storage operation before giving up on transient errors.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub attempts: u32,
}

impl StoreArgs {
    /// The store options these arguments describe.
    pub fn options(&self) -> StoreOptions {
        StoreOptions {
            s3_endpoint: self.s3_endpoint.clone(),
            retry: RetryPolicy {
                max_attempts: self.attempts.max(1),
                ..RetryPolicy::default()
            },
            ..StoreOptions::default()
        }
    }

    /// Opens the packed dataset at `url`; the error names the URL.
    pub fn open_dataset(&self, rt: &Runtime, url: &str) -> anyhow::Result<Dataset> {
        rt.block_on(Dataset::open(url, &self.options()))
            .with_context(|| format!("opening the dataset at {url}"))
    }
}

/// A multi-threaded tokio runtime for the commands that talk to object storage.
pub fn runtime() -> anyhow::Result<Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
