//! Subcommands of the `worker` binary: clap arguments and a `run` function each; library
//! errors become `anyhow` errors here.

pub mod bench;
pub mod compare;
pub mod detect;
pub mod env;
pub mod eval;
pub mod export;
pub mod join;
pub mod probe;
pub mod splice_bench;
pub mod train;

use anyhow::Context;
use infra::store::StoreOptions;
use std::path::{Path, PathBuf};
use worker::config::Config;

/// Object-storage settings shared by the commands.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// S3 endpoint of an S3-compatible server (MinIO, SeaweedFS, ...). Default:
    /// AWS_ENDPOINT_URL, else AWS.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// How long a storage outage (the endpoint unreachable, timing out or answering
    /// server errors) is waited out, retrying with backoff, before the command fails
    /// naming the storage (training: and its last good checkpoint). 0: give up after
    /// the usual 4 attempts.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 300,
        env = "WORKER_STORAGE_OUTAGE_LIMIT_S"
    )]
    pub storage_outage_limit_s: u64,
}

impl StoreArgs {
    /// The store options these arguments describe.
    pub fn options(&self) -> StoreOptions {
        let mut options = StoreOptions {
            s3_endpoint: self.s3_endpoint.clone(),
            ..StoreOptions::default()
        };
        options.retry.outage_limit = (self.storage_outage_limit_s > 0)
            .then(|| std::time::Duration::from_secs(self.storage_outage_limit_s));
        options
    }
}

/// The model of the checkpoint `reference` (a checkpoint directory or a `step-N`
/// directory); without one, the newest checkpoint of `cfg`'s `checkpoint.url`, and
/// without a config either, the default model ([`worker::runtime::model::default_model`]).
/// The model is built from the config the checkpoint carries, else from `cfg`.
pub fn load_checkpoint(
    cfg: Option<&Config>,
    reference: Option<&str>,
    device: Option<tch::Device>,
    store: &StoreArgs,
) -> anyhow::Result<worker::runtime::model::LoadedModel> {
    use worker::runtime::model::{default_model, from_checkpoint};
    let reference = match (reference, cfg) {
        (Some(r), _) => r.to_string(),
        (None, Some(cfg)) => cfg.spec.checkpoint.url.clone(),
        (None, None) => default_model(),
    };
    let loaded = from_checkpoint(cfg, &reference, device, &store.options())
        .with_context(|| format!("loading the checkpoint {reference}"))?;
    tracing::info!(checkpoint = %loaded.checkpoint.url, step = loaded.checkpoint.step, "model loaded");
    Ok(loaded)
}

/// `--config` when given, read and checked.
pub fn load_optional_config(path: Option<&Path>) -> anyhow::Result<Option<Config>> {
    path.map(load_config).transpose()
}

/// The coordinator to talk to and the credentials: `worker join` and `worker eval agent`.
#[derive(Debug, clap::Args)]
pub struct CoordinatorArgs {
    /// Coordinator URL, e.g. http://coordinator:50051 (https:// for a coordinator
    /// serving TLS).
    #[arg(long, value_name = "URL")]
    pub coordinator: String,
    /// File holding the shared token; default: the environment variable COORDINATOR_TOKEN.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// TLS settings.
    #[command(flatten)]
    pub tls: infra::cli::ClientTlsArgs,
    /// Keep trying to reach the coordinator this long at start (on a cluster the
    /// coordinator may start after the workers, or be restarting).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub wait_for_coordinator_s: u64,
}

impl CoordinatorArgs {
    /// The shared token from --token-file or COORDINATOR_TOKEN, trimmed.
    pub fn token(&self) -> anyhow::Result<String> {
        let token = match &self.token_file {
            Some(p) => std::fs::read_to_string(p)
                .with_context(|| format!("reading the token file {}", p.display()))?,
            None => std::env::var("COORDINATOR_TOKEN").context(
                "no token: set COORDINATOR_TOKEN or pass --token-file (the coordinator prints where its token is)",
            )?,
        };
        Ok(token.trim().to_string())
    }

    /// The coordinator's URL with the token and TLS files (checked) to reach it.
    pub fn endpoint(&self) -> anyhow::Result<proto::client::Endpoint> {
        Ok(proto::client::Endpoint {
            url: self.coordinator.clone(),
            tls: self.tls()?,
            token: self.token()?,
            patience: std::time::Duration::from_secs(self.wait_for_coordinator_s),
        })
    }

    /// The TLS files given, checked; `None` when none is.
    pub fn tls(&self) -> anyhow::Result<Option<proto::tls::ClientTls>> {
        Ok(proto::tls::ClientTls::from_args(&self.tls)?)
    }
}

/// This machine's host name, or `fallback`.
pub fn host_name(fallback: &str) -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| fallback.to_string())
}

/// Loads and validates a training config; the error lists every bad field.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| "fix the config and run again".to_string())
}
