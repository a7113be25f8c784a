//! `dataloader split`: divide photos by camera model into a training file list and a
//! held-out file list (whole models on each side), both usable as `dataloader pack` input.

use std::path::PathBuf;

use anyhow::Context;

use dataloader::pack::{list_photos, Input};
use dataloader::split::{assign, check_fraction, read_camera_models, write_list};

/// Arguments of `dataloader split`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A photo folder (searched recursively for *.jpg / *.jpeg) or a text file with one
    /// photo path per line (relative paths are taken from the list's folder).
    pub input: PathBuf,
    /// Share of the photos (at least) whose camera models are held out of training.
    #[arg(long, default_value_t = 0.2, value_name = "F")]
    pub holdout_fraction: f64,
    /// Seed of the shuffle of the camera models.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to write the training file list (one path per line, relative to the list's
    /// folder for photos under it, else absolute).
    #[arg(long, value_name = "FILE")]
    pub train_list: PathBuf,
    /// Where to write the held-out file list (same format).
    #[arg(long, value_name = "FILE")]
    pub holdout_list: PathBuf,
}

/// Runs `dataloader split`.
pub fn run(args: Args) -> anyhow::Result<()> {
    check_fraction(args.holdout_fraction).context("--holdout-fraction")?;
    let input = Input::from_path(&args.input)?;
    let paths: Vec<PathBuf> = list_photos(&input)?
        .into_iter()
        .map(|item| item.path)
        .collect();
    anyhow::ensure!(
        !paths.is_empty(),
        "no photos (*.jpg, *.jpeg) in {}",
        input.describe()
    );
    let scan = read_camera_models(&paths);
    let split = assign(&scan.photos, args.holdout_fraction, args.seed)
        .with_context(|| format!("splitting the photos of {}", input.describe()))?;
    write_list(&args.train_list, &split.train.photos)?;
    write_list(&args.holdout_list, &split.holdout.photos)?;

    let skipped_total: u64 = scan.skipped.values().sum();
    let skipped: Vec<String> = scan
        .skipped
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    let share = split.holdout.photos.len() as f64 / scan.photos.len().max(1) as f64;
    tracing::info!(
        train_models = split.train.models.len(),
        train_photos = split.train.photos.len(),
        holdout_models = split.holdout.models.len(),
        holdout_photos = split.holdout.photos.len(),
        holdout_share = share,
        skipped = skipped_total,
        seed = args.seed,
        "split by camera model"
    );
    println!(
        "training: {} models, {} photos -> {}",
        split.train.models.len(),
        split.train.photos.len(),
        args.train_list.display()
    );
    println!(
        "held out: {} models, {} photos ({:.1}% of the photos) -> {}",
        split.holdout.models.len(),
        split.holdout.photos.len(),
        share * 100.0,
        args.holdout_list.display()
    );
    println!("held-out models: {}", split.holdout.models.join("; "));
    println!(
        "skipped: {skipped_total} ({})",
        if skipped.is_empty() {
            "none".to_string()
        } else {
            skipped.join(", ")
        }
    );
    Ok(())
}
