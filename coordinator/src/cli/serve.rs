//! `coordinator serve --config FILE`: runs the coordinator until Ctrl-C or SIGTERM,
//! then shuts down cleanly.

use anyhow::Context;
use clap::Args;
use coordinator::config::{ServeConfig, TOKEN_ENV};
use std::path::PathBuf;
use tonic::transport::server::TcpIncoming;

/// Arguments of `serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The coordinator config (TOML).
    #[arg(long)]
    pub config: PathBuf,
}

/// Serves until a signal arrives.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = ServeConfig::load(&args.config, std::env::var(TOKEN_ENV).ok())?;
    super::runtime()?.block_on(async move {
        let incoming = TcpIncoming::bind(config.listen)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = incoming.local_addr()?;
        tracing::info!(%addr, db = %config.db_path.display(), "coordinator listening");
        coordinator::server::serve(config, incoming, signal()).await?;
        anyhow::Ok(())
    })
}

/// Completes on Ctrl-C or SIGTERM (what Kubernetes and Slurm send).
pub async fn signal() {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let mut term = match term {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C still stops");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
