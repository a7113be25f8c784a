//! `coordinator`: the gRPC service that shards the dataset to workers, runs rendezvous,
//! detects failures, keeps the checkpoint registry and schedules evaluation jobs.
//!
//! Never depends on libtorch. Its subcommands (`serve`, `launch`, `status`, `stop`) come
//! with the orchestration work; today it only answers `--help`.

use clap::Parser;

/// Distributed training coordinator (not yet implemented beyond its command line).
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!(
        "the coordinator service is not implemented yet; use `dataloader` for the data pipeline"
    )
}
