//! `worker join --coordinator URL --config FILE`: run this node's part of a coordinated job.

use std::path::PathBuf;

use anyhow::Context;
use worker::node::procs::ProcSpec;
use worker::node::{run, this_binary, NodeOptions};

use super::load_config;

/// Arguments of `worker join`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Coordinator URL, e.g. http://coordinator:50051 (https:// for a coordinator
    /// serving TLS).
    #[arg(long, value_name = "URL")]
    pub coordinator: String,
    /// Training config (TOML); every node of the job must use the same one.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Training processes on this node (one per GPU on a GPU node; any number on CPU).
    #[arg(long, default_value_t = 1)]
    pub procs: u32,
    /// Stable name of this node (ranks are ordered by it). Default: the host name.
    #[arg(long)]
    pub node_name: Option<String>,
    /// Address other nodes reach this one at, for the collective.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// File holding the shared token; default: the environment variable COORDINATOR_TOKEN.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Seconds a training process waits for a peer before giving up on the round.
    #[arg(long, default_value_t = 60)]
    pub group_timeout_s: u64,
    /// CA that signed the coordinator's certificate, PEM (https:// URLs; default: the
    /// system's CA roots).
    #[arg(long, value_name = "FILE", env = proto::tls::TLS_CA_ENV)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate, PEM, for a coordinator that requires one (with --tls-key).
    #[arg(long, value_name = "FILE", env = proto::tls::TLS_CERT_ENV)]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key, PEM.
    #[arg(long, value_name = "FILE", env = proto::tls::TLS_KEY_ENV)]
    pub tls_key: Option<PathBuf>,
}

/// Runs `worker join`.
pub fn run_join(args: Args) -> anyhow::Result<()> {
    let tls = proto::tls::ClientTls::load(
        args.tls_ca.as_deref(),
        args.tls_cert.as_deref(),
        args.tls_key.as_deref(),
    )?;
    let cfg = load_config(&args.config)?;
    let token = match &args.token_file {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("reading the token file {}", p.display()))?,
        None => std::env::var("COORDINATOR_TOKEN").context(
            "no token: set COORDINATOR_TOKEN or pass --token-file (the coordinator prints where its token is)",
        )?,
    };
    let name = match args.node_name {
        Some(n) => n,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "node".into()),
    };
    anyhow::ensure!(args.procs >= 1, "--procs must be at least 1");
    let opts = NodeOptions {
        coordinator: args.coordinator,
        token: token.trim().to_string(),
        tls,
        name,
        host: args.host,
        procs: args.procs,
        config_digest: cfg.digest.as_str().to_string(),
        spec: ProcSpec {
            worker_bin: this_binary()?,
            config: args.config,
            group_timeout_s: args.group_timeout_s,
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(opts))?;
    tracing::info!("this node's part of the job is done");
    Ok(())
}
