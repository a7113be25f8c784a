//! `worker train --config FILE [--resume] [--stop-at-step N]`: single-process training.

use std::path::PathBuf;

use anyhow::Context;
use worker::collective::tcp::{GroupSecret, TcpCollective};
use worker::collective::{Collective, Solo, GROUP_SECRET_ENV};
use worker::train::{train, TrainOptions};

use super::{load_config, StoreArgs};

/// Arguments of `worker train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Training config (TOML), e.g. configs/cpu-small.toml.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Continue from the newest checkpoint at checkpoint.url (a fresh start if none).
    #[arg(long)]
    pub resume: bool,
    /// Continue from exactly the checkpoint of step N at checkpoint.url (what `worker join`
    /// passes: the checkpoint the coordinator chose for the round); its absence is an error.
    #[arg(long, value_name = "N")]
    pub resume_step: Option<u64>,
    /// Checkpoint and stop after this many steps (the schedule keeps the config's length,
    /// so `--resume` continues the same run).
    #[arg(long, value_name = "N")]
    pub stop_at_step: Option<u64>,
    /// Override data.url (the packed dataset).
    #[arg(long, value_name = "URL")]
    pub data: Option<String>,
    /// Override checkpoint.url.
    #[arg(long, value_name = "URL")]
    pub checkpoints: Option<String>,
    /// This process's rank in a data-parallel group of `--world` processes (static group:
    /// rank 0 listens on `--master`, the others connect to it).
    #[arg(long, default_value_t = 0, requires = "master")]
    pub rank: usize,
    /// Processes in the group; each reads its share of every global batch.
    #[arg(long, default_value_t = 1)]
    pub world: usize,
    /// Address of rank 0's collective endpoint (HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    pub master: Option<String>,
    /// Seconds to wait for the group to form, and for any peer in a collective call.
    #[arg(long, default_value_t = 120)]
    pub group_timeout_s: u64,
    /// The collective backend: tcp (CPU, through rank 0), nccl (GPU build: GPU memory on
    /// libtorch's stream; also forms a one-rank group, to exercise NCCL and overlapped
    /// buckets on one GPU), or auto (nccl when training on CUDA in a GPU build, with more
    /// than one rank).
    #[arg(long, value_enum, default_value = "auto", env = "WORKER_COLLECTIVE")]
    pub collective: Backend,
    /// Print progress and checkpoint events as JSON lines on stdout (for a supervisor).
    #[arg(long)]
    pub events_stdout: bool,
    /// Write the run's summary (losses per step, timings) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Record which samples each step consumes: one JSON-lines file per process start in
    /// this folder (fault tests check from it that nothing was skipped or repeated).
    /// Through `worker join`, set the environment variable for its processes.
    #[arg(long, value_name = "DIR", env = "WORKER_SAMPLE_RECORD")]
    pub sample_record: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// The collective backend of `--collective`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// NCCL when training on CUDA in a GPU build, else TCP.
    Auto,
    /// TCP through rank 0 (CPU tensors; GPU tensors are copied through the host).
    Tcp,
    /// NCCL (GPU build only).
    Nccl,
}

/// Runs `worker train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = load_config(&args.config)?;
    if let Some(url) = args.data.clone() {
        cfg.spec.data.url = url;
    }
    if let Some(url) = args.checkpoints.clone() {
        cfg.spec.checkpoint.url = url;
    }
    // The dataset URL is part of what the digest covers.
    cfg.digest = worker::config::ConfigDigest::of(&cfg.spec);
    let opts = TrainOptions {
        resume: args.resume,
        resume_step: args.resume_step,
        stop_at_step: args.stop_at_step,
        store: args.store.options(),
        events: args.events_stdout.then(print_events),
        sample_record: args.sample_record.clone(),
    };
    let mut group = group(&args, cfg.device)?;
    let s = train(&cfg, &opts, group.as_mut())
        .with_context(|| format!("training with {}", args.config.display()))?;
    let tail = &s.losses[s.losses.len().saturating_sub(10)..];
    let final_loss = tail.iter().map(|(_, l)| l).sum::<f64>() / tail.len().max(1) as f64;
    tracing::info!(
        steps = s.end_step,
        from = s.start_step,
        final_loss = format_args!("{final_loss:.4}"),
        samples = s.samples,
        skipped = s.skipped,
        seconds = format_args!("{:.1}", s.elapsed_s),
        data_wait = format_args!("{:.2}", s.data_wait_s / s.elapsed_s.max(1e-9)),
        checkpoint = s.checkpoint.as_ref().map(|c| c.url.as_str()).unwrap_or("-"),
        interrupted = s.interrupted,
        "training done"
    );
    if let Some(path) = args.summary {
        std::fs::write(&path, serde_json::to_string_pretty(&s)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if s.interrupted {
        // Not done, not failed: a node tells this apart from both.
        std::process::exit(worker::events::EXIT_INTERRUPTED);
    }
    Ok(())
}

/// The data-parallel group the arguments describe: TCP, and NCCL over it when asked.
fn group(args: &Args, device: worker::config::Device) -> anyhow::Result<Box<dyn Collective>> {
    let nccl = match args.collective {
        Backend::Tcp => false,
        Backend::Nccl => true,
        Backend::Auto => cfg!(feature = "cuda") && device.is_cuda() && args.world > 1,
    };
    let tcp = tcp_group(args)?;
    if !nccl {
        return Ok(tcp);
    }
    nccl_group(args, device, tcp)
}

#[cfg(not(feature = "cuda"))]
fn nccl_group(
    _args: &Args,
    _device: worker::config::Device,
    _tcp: Box<dyn Collective>,
) -> anyhow::Result<Box<dyn Collective>> {
    anyhow::bail!(
        "--collective nccl needs the GPU build of worker (cargo build --release -p worker --features cuda)"
    )
}

/// NCCL over the CUDA device of `device`: the unique id is made by rank 0 and broadcast
/// over the TCP group.
#[cfg(feature = "cuda")]
fn nccl_group(
    args: &Args,
    device: worker::config::Device,
    mut tcp: Box<dyn Collective>,
) -> anyhow::Result<Box<dyn Collective>> {
    use worker::collective::nccl::{unique_id, Nccl, UNIQUE_ID_BYTES};
    let worker::config::Device::Cuda(index) = device else {
        anyhow::bail!("--collective nccl needs train.device = \"cuda\" (the config says cpu)");
    };
    let mine = if args.rank == 0 {
        unique_id()?
    } else {
        vec![0; UNIQUE_ID_BYTES]
    };
    let mut id = tch::Tensor::from_slice(&mine);
    tcp.broadcast(&mut id, 0)?;
    let id = Vec::<u8>::try_from(&id).context("reading the broadcast NCCL id")?;
    let timeout = std::time::Duration::from_secs(args.group_timeout_s);
    let nccl = Nccl::init(&id, args.rank, args.world, index as usize, timeout)?;
    Ok(Box::new(nccl))
}

/// The group's secret from `worker join` (the rendezvous), else none (ranks started by
/// hand).
fn group_secret() -> anyhow::Result<GroupSecret> {
    match std::env::var(GROUP_SECRET_ENV) {
        Ok(text) if !text.trim().is_empty() => {
            let bytes = hex::decode(text.trim())
                .with_context(|| format!("{GROUP_SECRET_ENV} is not hex"))?;
            GroupSecret::from_bytes(&bytes)
                .map_err(|why| anyhow::anyhow!("{GROUP_SECRET_ENV}: {why}"))
        }
        _ => Ok(GroupSecret::NONE),
    }
}

/// The TCP group (or the group of one).
fn tcp_group(args: &Args) -> anyhow::Result<Box<dyn Collective>> {
    anyhow::ensure!(args.world >= 1, "--world must be at least 1");
    anyhow::ensure!(
        args.rank < args.world,
        "--rank {} is not below --world {}",
        args.rank,
        args.world
    );
    if args.world == 1 {
        return Ok(Box::new(Solo));
    }
    let master = args
        .master
        .as_deref()
        .context("--world above 1 needs --master HOST:PORT (rank 0's address)")?;
    let addr = std::net::ToSocketAddrs::to_socket_addrs(master)
        .with_context(|| format!("resolving --master {master}"))?
        .next()
        .with_context(|| format!("--master {master} resolves to no address"))?;
    let timeout = std::time::Duration::from_secs(args.group_timeout_s);
    let secret = group_secret()?;
    tracing::info!(rank = args.rank, world = args.world, %addr, secret = secret != GroupSecret::NONE, "forming the data-parallel group");
    let coll = if args.rank == 0 {
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("rank 0 cannot listen on {addr}"))?;
        TcpCollective::root(listener, args.world, &secret, timeout)?
    } else {
        TcpCollective::join(addr, args.rank, args.world, &secret, timeout)?
    };
    Ok(Box::new(coll))
}

/// A sender whose events a thread prints as JSON lines on stdout.
fn print_events() -> std::sync::mpsc::Sender<worker::events::TrainEvent> {
    let (tx, rx) = std::sync::mpsc::channel::<worker::events::TrainEvent>();
    std::thread::spawn(move || {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for event in rx {
            if let Ok(line) = serde_json::to_string(&event) {
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        }
    });
    tx
}
