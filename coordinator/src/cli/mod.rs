//! The `coordinator` subcommands, one file each: an `Args` struct and `run`.

pub mod certs;
pub mod checkpoints;
pub mod launch;
pub mod load_test;
pub mod serve;
pub mod status;
pub mod stop;

use anyhow::Context;
use clap::Args;
use infra::cli::ClientTlsArgs;
use proto::tls::ClientTls;
use std::path::PathBuf;

/// Where the coordinator is and how to prove we may talk to it.
#[derive(Args, Debug)]
pub struct Connection {
    /// Coordinator URL (https:// for a coordinator serving TLS).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub coordinator: String,
    /// File holding the operator token, or the one shared token (otherwise
    /// COORDINATOR_TOKEN).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    #[command(flatten)]
    /// TLS settings.
    pub tls: ClientTlsArgs,
}

impl Connection {
    /// Connects with the token from `--token-file` or the environment, over TLS for an
    /// `https://` URL; the TLS files are checked before anything else.
    pub async fn connect(&self) -> anyhow::Result<coordinator::client::Client> {
        let tls = ClientTls::from_args(&self.tls)?;
        let token = match &self.token_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?,
            None => std::env::var(coordinator::config::TOKEN_ENV).with_context(|| {
                format!(
                    "no token: pass --token-file or set {}",
                    coordinator::config::TOKEN_ENV
                )
            })?,
        };
        Ok(
            coordinator::client::connect_with(&self.coordinator, token.trim(), tls.as_ref())
                .await?,
        )
    }
}

/// A runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
