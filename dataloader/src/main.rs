//! `dataloader`: command line of the data pipeline.

mod cli;

use clap::{Parser, Subcommand};
use infra::logging::LogArgs;

/// EXIF-as-text data pipeline: photos to webdataset shards in object storage to batches.
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
    /// Print each photo's EXIF tag map and the text training would see.
    Exif(cli::exif::Args),
    /// Compute per-tag frequencies over a corpus and write the tag list.
    Tags(cli::tags::Args),
    /// Generate photos from simulated cameras.
    Generate(cli::generate::Args),
    /// Pack photos into webdataset-style tar shards in object storage.
    Pack(cli::pack::Args),
    /// Write a YFCC100M-style corpus (metadata files and photos in the mirror's layout)
    /// for testing the packer.
    GenerateYfcc(cli::yfcc_corpus::Args),
    /// Write the manifest of a dataset packed in parts (`pack --part I/N`).
    MergeManifests(cli::pack::MergeArgs),
    /// Print a packed dataset's manifest summary and a few samples.
    Inspect(cli::inspect::Args),
    /// Split photos by camera model into training and held-out file lists.
    Split(cli::split::Args),
    /// Stream batches of one rank's part of an epoch and print what was seen.
    Stream(cli::stream::Args),
    /// Measure patches per second per core over the whole read path.
    Bench(cli::bench::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.log.init();
    match cli.command {
        Command::Exif(a) => cli::exif::run(a),
        Command::Tags(a) => cli::tags::run(a),
        Command::Generate(a) => cli::generate::run(a),
        Command::Pack(a) => cli::pack::run(a),
        Command::MergeManifests(a) => cli::pack::merge(a),
        Command::GenerateYfcc(a) => cli::yfcc_corpus::run(a),
        Command::Inspect(a) => cli::inspect::run(a),
        Command::Split(a) => cli::split::run(a),
        Command::Stream(a) => cli::stream::run(a),
        Command::Bench(a) => cli::bench::run(a),
    }
}
