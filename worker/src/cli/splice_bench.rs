//! `worker splice-bench make`: the cross-camera splice benchmark from a photo folder or
//! file list (for instance the held-out side of `dataloader split`).

use std::path::PathBuf;

use anyhow::Context;
use dataloader::pack::Input;
use worker::splice_bench::{make, BenchOptions};

/// Splice-benchmark commands.
#[derive(Debug, clap::Subcommand)]
pub enum SpliceBenchCommand {
    /// Make a benchmark folder: images/, masks/, labels.csv, bench.json.
    Make(MakeArgs),
}

/// Arguments of `worker splice-bench make`.
#[derive(Debug, clap::Args)]
pub struct MakeArgs {
    /// A photo folder (searched recursively for *.jpg / *.jpeg) or a text file with one
    /// photo path per line, e.g. the held-out list of `dataloader split`.
    #[arg(long, value_name = "PATH")]
    pub photos: PathBuf,
    /// The benchmark folder to write (missing or empty, unless --overwrite).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Cross-camera spliced images; as many authentic ones are made (half same-camera
    /// pastes, half untouched photos). Each image is written as PNG and as JPEG.
    #[arg(long, default_value_t = 50)]
    pub count: usize,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Quality of the JPEG variants (1-100).
    #[arg(long, default_value_t = 90, value_name = "Q")]
    pub jpeg_quality: u8,
    /// Smallest pasted region, as a share of the target photo's area.
    #[arg(long, default_value_t = 0.05, value_name = "F")]
    pub min_area: f64,
    /// Largest pasted region, as a share of the target photo's area.
    #[arg(long, default_value_t = 0.25, value_name = "F")]
    pub max_area: f64,
    /// Replace the benchmark already in --out (removes only its images/, masks/,
    /// labels.csv and bench.json).
    #[arg(long)]
    pub overwrite: bool,
}

/// Runs a splice-benchmark command.
pub fn run(cmd: SpliceBenchCommand) -> anyhow::Result<()> {
    match cmd {
        SpliceBenchCommand::Make(a) => run_make(a),
    }
}

fn run_make(args: MakeArgs) -> anyhow::Result<()> {
    let input = Input::from_path(&args.photos).context("--photos")?;
    let opts = BenchOptions {
        count: args.count,
        seed: args.seed,
        jpeg_quality: args.jpeg_quality,
        min_area: args.min_area,
        max_area: args.max_area,
        overwrite: args.overwrite,
    };
    let report = make(&input, &args.out, &opts)
        .with_context(|| format!("making the splice benchmark in {}", args.out.display()))?;
    let skipped: u64 = report.skipped.values().sum();
    let c = &report.counts;
    println!(
        "{} photos of {} camera models used ({} listed, {skipped} skipped: {:?})",
        report.photos.usable, report.photos.camera_models, report.photos.listed, report.skipped
    );
    println!(
        "{} cross-camera spliced, {} same-camera pastes, {} untouched; {} image files, {} masks -> {}",
        c.cross_camera,
        c.same_camera,
        c.untouched,
        c.image_files,
        c.mask_files,
        args.out.display()
    );
    Ok(())
}
