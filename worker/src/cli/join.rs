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
    /// Training processes on this node: a number, or `auto` (one per visible GPU when the
    /// config trains on CUDA, else 1). On CUDA each process gets one GPU.
    #[arg(long, default_value = "1")]
    pub procs: String,
    /// Stable name of this node (ranks are ordered by it). Default: `node-NNNNN` from the
    /// launcher's node index (PET_NODE_RANK, SLURM_NODEID or JOB_COMPLETION_INDEX), else
    /// the host name.
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
    let cfg = load_config(&args.config)?;
    let coordinator = args.coordinator.endpoint()?;
    let name = match args.node_name {
        Some(name) => name,
        None => match worker::node::identity::node_name_from_env(|v| std::env::var(v).ok())
            .map_err(anyhow::Error::msg)?
        {
            Some((name, launcher)) => {
                tracing::info!(%name, launcher, "node name from the launcher's node index");
                name
            }
            None => host_name("node"),
        },
    };
    let gpus = if cfg.device.is_cuda() {
        visible_gpus()
    } else {
        Vec::new()
    };
    let procs = match args.procs.as_str() {
        "auto" if cfg.device.is_cuda() => gpus.len() as u32,
        "auto" => 1,
        n => n
            .parse::<u32>()
            .map_err(|_| anyhow::anyhow!("--procs {n:?}: give a number or auto"))?,
    };
    anyhow::ensure!(
        procs >= 1,
        "--procs is 0{}",
        if cfg.device.is_cuda() {
            " (no GPU is visible: check nvidia-smi and CUDA_VISIBLE_DEVICES, and that this is the GPU build)"
        } else {
            ""
        }
    );
    anyhow::ensure!(
        !cfg.device.is_cuda() || procs as usize <= gpus.len(),
        "--procs {procs} on CUDA needs {procs} GPUs, {} visible ({gpus:?}): one process per GPU",
        gpus.len()
    );
    let opts = NodeOptions {
        coordinator,
        name,
        host: args.host,
        procs,
        config_digest: cfg.digest.as_str().to_string(),
        spec: ProcSpec {
            worker_bin: this_binary()?,
            config: args.config,
            group_timeout_s: args.group_timeout_s,
            gpus,
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

/// The GPUs this process may use, as `CUDA_VISIBLE_DEVICES` names them (its list when set,
/// else `0..count` of what libtorch sees; none in a CPU build).
fn visible_gpus() -> Vec<String> {
    let count = tch::Cuda::device_count().max(0) as usize;
    match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .take(count)
            .collect(),
        _ => (0..count).map(|i| i.to_string()).collect(),
    }
}
