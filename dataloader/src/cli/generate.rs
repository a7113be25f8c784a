//! `dataloader generate`: writes photos from simulated cameras into a folder, with a
//! progress bar and a summary per camera.

use anyhow::Context;
use dataloader::synth::{self, SceneStyle, SynthOptions};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `dataloader generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output folder (created if missing); photos are named `<make>_<model>_<index>.jpg`
    /// and `cameras.csv` lists each file's make and model.
    #[arg(long, required_unless_present = "list_cameras")]
    out: Option<PathBuf>,
    /// Number of photos.
    #[arg(long, default_value_t = 12)]
    count: usize,
    /// Width of each photo in pixels (at least 124).
    #[arg(long, default_value_t = 1024)]
    width: u32,
    /// Height of each photo in pixels (at least 124).
    #[arg(long, default_value_t = 768)]
    height: u32,
    /// Seed: the same arguments give byte-identical files.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Cameras to use, comma-separated (e.g. `simcam-sc-100,simtron-st-phone-9`);
    /// default all. `--list-cameras` prints them.
    #[arg(long, value_delimiter = ',')]
    cameras: Vec<String>,
    /// Smooth scenes without shapes or texture (for studying sensor noise).
    #[arg(long)]
    flat: bool,
    /// Print the simulated cameras and their pipelines, then exit.
    #[arg(long)]
    list_cameras: bool,
}

fn list_cameras() {
    println!("camera\tcfa\tdemosaic\tsubsampling\tquality\trestart\tprnu\tsharpen");
    for c in synth::cameras() {
        println!(
            "{}\t{:?}\t{:?}\t{:?}\t{:?}\t{:?}\t{}\t{}",
            c.slug(),
            c.cfa,
            c.demosaic,
            c.subsampling,
            c.qualities,
            c.restart_interval,
            c.prnu,
            c.sharpen
        );
    }
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.list_cameras {
        list_cameras();
        return Ok(());
    }
    let out = args.out.context("--out is required")?;
    let opts = SynthOptions {
        count: args.count,
        width: args.width,
        height: args.height,
        seed: args.seed,
        cameras: args.cameras,
        scene: if args.flat {
            SceneStyle::Flat
        } else {
            SceneStyle::Natural
        },
    };
    opts.validate()
        .context("bad arguments to `dataloader generate`")?;
    let bar = ProgressBar::new(opts.count as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} photos, {elapsed} elapsed, eta {eta}")
            .context("progress bar template")?,
    );
    let start = Instant::now();
    let paths = synth::generate_with_progress(&out, &opts, &|_| bar.inc(1))
        .with_context(|| format!("generating photos into {}", out.display()))?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();

    let mut per_camera: BTreeMap<String, usize> = BTreeMap::new();
    let mut bytes = 0u64;
    for p in &paths {
        bytes += std::fs::metadata(p)
            .with_context(|| format!("reading {}", p.display()))?
            .len();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let camera = name
            .rsplit_once('_')
            .map_or(name.clone(), |(c, _)| c.to_string());
        *per_camera.entry(camera).or_default() += 1;
    }
    let mpix = paths.len() as f64 * f64::from(opts.width) * f64::from(opts.height) / 1e6;
    println!(
        "wrote {} photos of {}x{} ({:.1} MB) to {} in {secs:.1} s ({:.1} MPix/s)",
        paths.len(),
        opts.width,
        opts.height,
        bytes as f64 / 1e6,
        out.display(),
        mpix / secs.max(1e-9),
    );
    for (camera, n) in &per_camera {
        println!("  {camera}: {n}");
    }
    println!("  truth: {}", out.join(synth::CAMERAS_CSV).display());
    tracing::info!(photos = paths.len(), seconds = secs, "generate done");
    Ok(())
}
