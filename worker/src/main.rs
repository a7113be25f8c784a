//! `worker`: one node's training and evaluation processes. Joins the data pipeline
//! (`dataloader`) and the model (`kernels`). `train` runs single-process training from a
//! config; `eval retrieval` / `eval splice` measure a checkpoint; `detect` finds spliced
//! regions in photos; `probe` measures frozen image features with linear probes; `bench
//! step` times the training step against PyTorch; `splice-bench make` builds the splice
//! benchmark; `env` says which libtorch, CUDA devices and NCCL it runs on.

mod cli;

use clap::{Parser, Subcommand};
use infra::logging::LogArgs;

/// Training and evaluation worker.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train one process (CPU or one GPU) as a config says; checkpoints to its URL.
    Train(cli::train::Args),
    /// Run this node's part of a job the coordinator runs (register, rendezvous, train).
    Join(cli::join::Args),
    /// Measure a checkpoint.
    #[command(subcommand)]
    Eval(cli::eval::EvalCommand),
    /// Find spliced regions in photos (zero shot): maps, masks and scores per photo.
    Detect(cli::detect::Args),
    /// Write a checkpoint's model alone (optionally in half precision) as a model-only
    /// checkpoint, as the shipped default model is made.
    Export(cli::export::Args),
    /// Linear probes on the frozen image tower (radial distortion, EXIF values).
    #[command(subcommand)]
    Probe(cli::probe::ProbeCommand),
    /// Time parts of training.
    #[command(subcommand)]
    Bench(cli::bench::BenchCommand),
    /// The cross-camera splice benchmark made from real photos.
    #[command(subcommand)]
    SpliceBench(cli::splice_bench::SpliceBenchCommand),
    /// What this worker runs on: libtorch (folder, version), CUDA devices, NCCL.
    Env,
}

/// The exit status of a failure that running again unchanged cannot fix (a bad config,
/// refused by the coordinator), like clap's usage errors: a cluster's restart policy can
/// fail the job on it instead of retrying.
const EXIT_MISCONFIGURED: u8 = 2;

fn main() -> std::process::ExitCode {
    // Before anything else: the libtorch the loader found must be the release this binary
    // was built against (`torchenv` chooses one; LD_LIBRARY_PATH can point elsewhere).
    if let Err(e) = torchenv::check_loaded() {
        eprintln!("worker: {e}");
        return std::process::ExitCode::from(EXIT_MISCONFIGURED);
    }
    let cli = Cli::parse();
    cli.log.init();
    match run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            use worker::node::NodeError;
            let node = || e.chain().find_map(|c| c.downcast_ref::<NodeError>());
            if let Some(NodeError::Left) = node() {
                tracing::warn!("{e}");
                return std::process::ExitCode::from(worker::events::EXIT_INTERRUPTED as u8);
            }
            eprintln!("Error: {e:?}");
            let permanent = e.chain().any(|c| c.is::<worker::config::ConfigError>())
                || node().is_some_and(NodeError::is_permanent);
            std::process::ExitCode::from(if permanent { EXIT_MISCONFIGURED } else { 1 })
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Train(a) => cli::train::run(a),
        Command::Join(a) => cli::join::run_join(a),
        Command::Eval(c) => cli::eval::run(c),
        Command::Detect(a) => cli::detect::run(a),
        Command::Export(a) => cli::export::run(a),
        Command::Probe(c) => cli::probe::run(c),
        Command::Bench(c) => cli::bench::run(c),
        Command::SpliceBench(c) => cli::splice_bench::run(c),
        Command::Env => cli::env::run(),
    }
}
