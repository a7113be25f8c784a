//! `worker join --coordinator URL --config FILE`: run this node's part of a coordinated job.

use std::path::PathBuf;

use worker::node::procs::ProcSpec;
use worker::node::{run, this_binary, NodeOptions};

use super::{host_name, load_config, CoordinatorArgs};

/// Arguments of `worker join`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    /// The coordinator and how to talk to it.
    pub coordinator: CoordinatorArgs,
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
    /// Seconds a training process waits for a peer before giving up on the round.
    #[arg(long, default_value_t = 60)]
    pub group_timeout_s: u64,
}

/// Runs `worker join`.
pub fn run_join(args: Args) -> anyhow::Result<()> {
    let tls = args.coordinator.tls()?;
    let cfg = load_config(&args.config)?;
    let token = args.coordinator.token()?;
    let name = args.node_name.unwrap_or_else(|| host_name("node"));
    anyhow::ensure!(args.procs >= 1, "--procs must be at least 1");
    let opts = NodeOptions {
        coordinator: args.coordinator.coordinator,
        token,
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
        eval: cfg.spec.eval.clone(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(opts))?;
    tracing::info!("this node's part of the job is done");
    Ok(())
}
