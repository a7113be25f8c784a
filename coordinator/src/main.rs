//! `coordinator` command line: `launch` runs a whole job, `serve` runs the coordinator,
//! `status`, `checkpoints` and `stop` talk to a running one (`checkpoints --db` also reads
//! the database of one that ended), `certs` makes TLS files to serve with.

mod cli;

use clap::{Parser, Subcommand};

/// Distributed training coordinator: rendezvous, failure detection, checkpoint registry.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    log: infra::logging::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the coordinator in this process, start or await the workers, follow the job.
    Launch(Box<cli::launch::LaunchArgs>),
    /// Run the coordinator service.
    Serve(cli::serve::ServeArgs),
    /// Print the job, members, round, progress, throughput and checkpoints.
    Status(cli::status::StatusArgs),
    /// Print the checkpoint registry with each checkpoint's evaluations and results.
    Checkpoints(cli::checkpoints::CheckpointsArgs),
    /// End the job (members drain with --drain, stop otherwise).
    Stop(cli::stop::StopArgs),
    /// Make a CA and a certificate for serving TLS (a cluster without cert-manager, a
    /// one-person setup).
    Certs(cli::certs::CertsArgs),
    /// Load-test the control plane: a real `coordinator serve` and N simulated nodes over
    /// loopback; prints join, heartbeat, CPU, memory, database and failover figures.
    LoadTest(cli::load_test::LoadTestArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.log.init();
    match cli.command {
        Command::Launch(args) => cli::launch::run(*args),
        Command::Serve(args) => cli::serve::run(args),
        Command::Status(args) => cli::status::run(args),
        Command::Stop(args) => cli::stop::run(args),
        Command::Checkpoints(args) => cli::checkpoints::run(args),
        Command::Certs(args) => cli::certs::run(args),
        Command::LoadTest(args) => cli::load_test::run(args),
    }
}
