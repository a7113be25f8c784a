//! `worker probe radial|exif|splice`: linear probes on the frozen image tower of a
//! checkpoint (or of a randomly initialised model, the baseline).

use std::path::PathBuf;

use anyhow::Context;
use dataloader::pack::{list_photos, Input};
use worker::probe::{self, exif::ExifParams, radial::RadialParams, LogisticOptions, ProbeOptions};
use worker::runtime::model;

use super::{load_checkpoint, load_optional_config, StoreArgs};

/// Probe commands.
#[derive(Debug, clap::Subcommand)]
pub enum ProbeCommand {
    /// Classify the radial distortion (k1 bins) of distorted crops of real photos.
    Radial(RadialArgs),
    /// Classify the common values of each EXIF tag from random patches of the photos.
    Exif(ExifArgs),
    /// Classify the images of a splice dataset as authentic or spliced (one crop each).
    Splice(SpliceArgs),
}

/// Arguments of `worker probe splice`.
#[derive(Debug, clap::Args)]
pub struct SpliceArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The splice dataset's folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Its layout: generic (labels.csv, as `worker splice-bench make` writes), columbia,
    /// dso1, korus, in_the_wild, casia1, casia2.
    #[arg(long, default_value = "generic")]
    pub kind: String,
    /// Side of the crop (the paper: 224).
    #[arg(long, default_value_t = 224)]
    pub side: u32,
    /// The whole image resized to the crop, or its centre at full resolution.
    #[arg(long, value_enum, default_value = "resize")]
    pub mode: probe::splice::CropMode,
}

/// Arguments every probe takes.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// A training config: its checkpoint.url is the default checkpoint, it describes the
    /// model of checkpoints that do not carry their own config (older ones) and the
    /// randomly initialised model of --random-init.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A checkpoint directory (its newest) or a `step-N` directory; default the config's
    /// checkpoint.url, without --config the default model (models/default, $WORKER_MODEL).
    #[arg(long, value_name = "REF", conflicts_with = "random_init")]
    pub checkpoint: Option<String>,
    /// Probe a randomly initialised model (the baseline) instead of a checkpoint: the
    /// model of --config, else of the default model.
    #[arg(long)]
    pub random_init: bool,
    /// Photo folder or file list (as `dataloader pack` takes); radial and exif only.
    #[arg(long, value_name = "DIR_OR_LIST")]
    pub photos: Option<PathBuf>,
    /// Only the first N photos (images).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Seed of the split, crops, distortions and of the random initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fraction of photos held out for testing.
    #[arg(long, default_value_t = 0.3)]
    pub test_fraction: f64,
    /// Crops per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Adam steps of the classifier (full batch).
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// L2 weight decay of the classifier.
    #[arg(long, default_value_t = 1e-3)]
    pub weight_decay: f64,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Arguments of `worker probe radial`.
#[derive(Debug, clap::Args)]
pub struct RadialArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Side of the distorted crops (the paper: 512).
    #[arg(long, default_value_t = 256)]
    pub crop: u32,
    /// Distorted crops per photo.
    #[arg(long, default_value_t = 4)]
    pub per_photo: usize,
    /// Bins of k1 (classes).
    #[arg(long, default_value_t = 20)]
    pub bins: usize,
}

/// Arguments of `worker probe exif`.
#[derive(Debug, clap::Args)]
pub struct ExifArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Random patches per photo.
    #[arg(long, default_value_t = 4)]
    pub patches: usize,
    /// Patch side; default data.patch_px of the config.
    #[arg(long)]
    pub patch: Option<u32>,
    /// At most this many values per tag become classes.
    #[arg(long, default_value_t = 8)]
    pub top: usize,
    /// A value needs this many photos to be a class.
    #[arg(long, default_value_t = 3)]
    pub min_photos: usize,
    /// Tag list (TOML with `tags = [...]`); default the bundled configs/exif-tags.toml.
    #[arg(long, value_name = "FILE")]
    pub tags: Option<PathBuf>,
}

struct Setup {
    cfg: worker::config::Config,
    device: tch::Device,
    _vs: tch::nn::VarStore,
    model: kernels::joint::JointModel,
    source: String,
    photos: Vec<PathBuf>,
    opts: ProbeOptions,
}

fn setup(a: &CommonArgs) -> anyhow::Result<Setup> {
    let given = load_optional_config(a.config.as_deref())?;
    let (cfg, vs, m, source) = match given {
        Some(cfg) if a.random_init => {
            let device = model::torch_device(cfg.device)?;
            let (vs, m) = model::build(&cfg, device, a.seed)?;
            (cfg, vs, m, format!("random init (seed {})", a.seed))
        }
        given => {
            let l = load_checkpoint(given.as_ref(), a.checkpoint.as_deref(), None, &a.store)?;
            if a.random_init {
                let (vs, m) = model::build(&l.config, l.vs.device(), a.seed)?;
                let source = format!(
                    "random init (seed {}) of the model of {}",
                    a.seed, l.checkpoint.url
                );
                (l.config, vs, m, source)
            } else {
                let source = format!(
                    "checkpoint {} (step {})",
                    l.checkpoint.url, l.checkpoint.step
                );
                (l.config, l.vs, l.model, source)
            }
        }
    };
    let device = vs.device();
    let photos = match &a.photos {
        Some(path) => {
            let input = Input::from_path(path)?;
            let mut photos: Vec<PathBuf> =
                list_photos(&input)?.into_iter().map(|p| p.path).collect();
            if let Some(n) = a.limit {
                photos.truncate(n);
            }
            anyhow::ensure!(!photos.is_empty(), "no photos in {}", input.describe());
            photos
        }
        None => Vec::new(),
    };
    let opts = ProbeOptions {
        seed: a.seed,
        test_fraction: a.test_fraction,
        batch: a.batch,
        classifier: LogisticOptions {
            steps: a.steps,
            weight_decay: a.weight_decay,
            ..LogisticOptions::default()
        },
    };
    anyhow::ensure!(
        opts.test_fraction > 0.0 && opts.test_fraction < 1.0,
        "--test-fraction must lie in (0, 1), got {}",
        opts.test_fraction
    );
    Ok(Setup {
        cfg,
        device,
        _vs: vs,
        model: m,
        source,
        photos,
        opts,
    })
}

fn write_json<T: serde::Serialize>(path: &Option<PathBuf>, report: &T) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_string_pretty(report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn show(name: &str, r: &probe::ProbeResult) {
    println!(
        "{name:<28} accuracy {:.3}  majority {:.3}  chance {:.3}  ({} classes, {}/{} train/test samples)",
        r.accuracy,
        r.majority_baseline,
        1.0 / r.classes.len() as f64,
        r.classes.len(),
        r.train_counts.iter().sum::<usize>(),
        r.test_counts.iter().sum::<usize>()
    );
}

/// Runs a probe command.
pub fn run(cmd: ProbeCommand) -> anyhow::Result<()> {
    match cmd {
        ProbeCommand::Radial(a) => {
            anyhow::ensure!(a.common.photos.is_some(), "--photos is required");
            let s = setup(&a.common)?;
            let params = RadialParams {
                crop: a.crop,
                per_photo: a.per_photo,
                bins: a.bins,
                ..RadialParams::default()
            };
            let report =
                probe::radial::radial_probe(&s.model.image, s.device, &s.photos, &params, &s.opts)?;
            println!(
                "{}: {} photos ({} skipped), {} crops of {} px, {} features",
                s.source,
                report.photos_used,
                report.skipped.total(),
                report.crops,
                params.crop,
                report.feature_dim
            );
            show("radial distortion (k1 bins)", &report.probe);
            write_json(&a.common.json, &report)
        }
        ProbeCommand::Exif(a) => {
            anyhow::ensure!(a.common.photos.is_some(), "--photos is required");
            let s = setup(&a.common)?;
            let tags = match &a.tags {
                Some(p) => dataloader::exif::TagList::load(p)?,
                None => dataloader::exif::TagList::bundled(),
            };
            let params = ExifParams {
                patch: a.patch.unwrap_or(s.cfg.spec.data.patch_px),
                patches_per_photo: a.patches,
                top: a.top,
                min_photos: a.min_photos,
                tags: tags.names().to_vec(),
            };
            let report =
                probe::exif::exif_probe(&s.model.image, s.device, &s.photos, &params, &s.opts)?;
            println!(
                "{}: {} photos ({} skipped), {} patches of {} px each",
                s.source,
                report.photos_used,
                report.skipped.total(),
                params.patches_per_photo,
                params.patch
            );
            for t in &report.tags {
                show(&t.tag, &t.probe);
            }
            println!(
                "mean over {} tags: accuracy {:.3}, majority baseline {:.3} ({} tags without 2 common values)",
                report.tags.len(),
                report.mean_accuracy,
                report.mean_majority_baseline,
                report.tags_skipped.len()
            );
            write_json(&a.common.json, &report)
        }
        ProbeCommand::Splice(a) => {
            use worker::eval::datasets::{read_dataset, DatasetConfig, DatasetKind};
            let s = setup(&a.common)?;
            let kind: DatasetKind = a.kind.parse().map_err(anyhow::Error::msg)?;
            let mut listing = read_dataset(&DatasetConfig::new(kind, &a.data))?;
            if let Some(n) = a.common.limit {
                listing.entries.truncate(n);
            }
            let params = probe::splice::SpliceProbeParams {
                side: a.side,
                mode: a.mode,
            };
            let report =
                probe::splice::splice_probe(&s.model.image, s.device, &listing, &params, &s.opts)?;
            println!(
                "{}: {} images of {} in {} groups ({} skipped), one {:?} crop of {} px each",
                s.source,
                report.images_used,
                report.dataset,
                report.groups,
                report.skipped.total(),
                params.mode,
                params.side
            );
            show("authentic vs spliced", &report.probe);
            write_json(&a.common.json, &report)
        }
    }
}
