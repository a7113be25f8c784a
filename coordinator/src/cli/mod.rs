//! The `coordinator` subcommands, one file each: an `Args` struct and `run`.

pub mod launch;
pub mod serve;
pub mod status;
pub mod stop;

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

/// Where the coordinator is and how to prove we may talk to it.
#[derive(Args, Debug)]
pub struct Connection {
    /// Coordinator URL.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub coordinator: String,
    /// File holding the shared token (otherwise COORDINATOR_TOKEN).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

impl Connection {
    /// Connects with the token from `--token-file` or the environment.
    pub async fn connect(&self) -> anyhow::Result<coordinator::client::Client> {
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
        Ok(coordinator::client::connect(&self.coordinator, token.trim()).await?)
    }
}

/// A runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
