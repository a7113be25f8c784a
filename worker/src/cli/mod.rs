//! Subcommands of the `worker` binary: clap arguments and a `run` function each; library
//! errors become `anyhow` errors here.

pub mod bench;
pub mod detect;
pub mod eval;
pub mod join;
pub mod probe;
pub mod splice_bench;
pub mod train;

use anyhow::Context;
use dataloader::store::StoreOptions;
use std::path::Path;
use worker::config::Config;

/// Object-storage settings shared by the commands.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// S3 endpoint of an S3-compatible server (MinIO, SeaweedFS, ...). Default:
    /// AWS_ENDPOINT_URL, else AWS.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
}

impl StoreArgs {
    /// The store options these arguments describe.
    pub fn options(&self) -> StoreOptions {
        StoreOptions {
            s3_endpoint: self.s3_endpoint.clone(),
            ..StoreOptions::default()
        }
    }
}

/// The model of `cfg` with the weights of `reference` (a checkpoint directory or a `step-N`
/// directory), or of the config's `checkpoint.url` when none is given.
pub fn load_checkpoint(
    cfg: &Config,
    reference: Option<&str>,
    device: tch::Device,
    store: &StoreArgs,
) -> anyhow::Result<worker::train::model::LoadedModel> {
    let reference = reference.unwrap_or(&cfg.spec.checkpoint.url);
    worker::train::model::from_checkpoint(cfg, reference, device, &store.options())
        .with_context(|| format!("loading the checkpoint {reference}"))
}

/// Loads and validates a training config; the error lists every bad field.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| "fix the config and run again".to_string())
}
