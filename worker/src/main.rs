//! `worker`: one node's training processes. Joins the data pipeline (`dataloader`) and
//! the model (`kernels`); registers with the coordinator, trains data-parallel, runs
//! evaluation jobs. Its subcommands come with the training and orchestration work.

use clap::Parser;

/// Training and evaluation worker (not yet implemented beyond its command line).
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!("training is not implemented yet; use `dataloader` for the data pipeline")
}
