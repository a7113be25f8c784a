//! `worker eval retrieval`: zero-shot retrieval of a checkpoint on a packed dataset.

use std::path::PathBuf;

use anyhow::Context;
use dataloader::order::RankPlan;
use worker::eval::retrieval::{evaluate, RetrievalOptions};
use worker::train::data::DataSource;
use worker::train::model;

use super::{load_checkpoint, load_config, StoreArgs};

/// Evaluation commands.
#[derive(Debug, clap::Subcommand)]
pub enum EvalCommand {
    /// Patch -> EXIF text and patch -> other-crop retrieval on held-out photos.
    Retrieval(RetrievalArgs),
    /// Zero-shot splice detection and localisation on a splice dataset.
    Splice(SpliceArgs),
}

/// Arguments of `worker eval splice`.
#[derive(Debug, clap::Args)]
pub struct SpliceArgs {
    /// The training config the checkpoint was trained with.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// A checkpoint directory (its newest) or a `step-N` directory; default checkpoint.url.
    #[arg(long, value_name = "REF")]
    pub checkpoint: Option<String>,
    /// The dataset folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Its layout: generic (labels.csv, as `worker splice-bench make` writes), columbia,
    /// dso1, korus, in_the_wild, casia1, casia2.
    #[arg(long, default_value = "generic")]
    pub kind: String,
    /// About this many patches along the longest side.
    #[arg(long, default_value_t = 25)]
    pub per_side: u32,
    /// Only the first N images (sorted by path).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Arguments of `worker eval retrieval`.
#[derive(Debug, clap::Args)]
pub struct RetrievalArgs {
    /// The training config the checkpoint was trained with (model shape, text settings).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Checkpoint directory URL (its newest complete checkpoint); default checkpoint.url.
    #[arg(long, value_name = "URL")]
    pub checkpoints: Option<String>,
    /// The packed dataset to measure on (e.g. photos of held-out camera models).
    #[arg(long, value_name = "URL")]
    pub data: String,
    /// Photos per batch: each query picks among this many candidates.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Passes over the data, each with other crops.
    #[arg(long, default_value_t = 4)]
    pub rounds: u64,
    /// Seed of the order and crops.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Runs an evaluation command.
pub fn run(cmd: EvalCommand) -> anyhow::Result<()> {
    match cmd {
        EvalCommand::Retrieval(a) => retrieval(a),
        EvalCommand::Splice(a) => splice(a),
    }
}

fn splice(args: SpliceArgs) -> anyhow::Result<()> {
    use worker::eval::datasets::{read_dataset, DatasetConfig, DatasetKind};
    let cfg = load_config(&args.config)?;
    let device = model::torch_device(cfg.device)?;
    let kind: DatasetKind = serde_json::from_value(serde_json::Value::String(args.kind.clone()))
        .map_err(|_| anyhow::anyhow!("unknown --kind {:?}: use generic, columbia, dso1, korus, in_the_wild, casia1 or casia2", args.kind))?;
    let listing = read_dataset(&DatasetConfig::new(kind, &args.data))?;
    let loaded = load_checkpoint(&cfg, args.checkpoint.as_deref(), device, &args.store)?;
    let params = worker::detect::DetectParams {
        patch: cfg.spec.data.patch_px,
        per_side: args.per_side,
        analysis: worker::detect::AnalysisParams {
            tau: 1.0 / loaded.model.logit_scale.value().double_value(&[]),
            ..Default::default()
        },
        ..Default::default()
    };
    let report =
        worker::eval::splice::evaluate(&loaded.model, device, &listing, &params, args.limit);
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.3}"));
    println!(
        "checkpoint {} (step {}), {}: {} spliced, {} authentic, {} failed",
        loaded.checkpoint.url,
        loaded.checkpoint.step,
        report.dataset,
        report.spliced,
        report.authentic,
        report.failed.len()
    );
    for (name, l) in [("mean shift", &report.mean_shift), ("ncut", &report.ncut)] {
        println!(
            "{name:<11} p-mAP {}  cIoU {}  (as given: mAP {}, cIoU {})",
            pct(l.p_map),
            pct(l.ciou_either),
            pct(l.map),
            pct(l.ciou)
        );
    }
    for (name, d) in [
        ("consistency", &report.detection_consistency),
        ("1 - A", &report.detection_mean_dissimilarity),
    ] {
        println!("detection AP ({name}): {}", pct(d.map(|d| d.ap)));
    }
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    anyhow::ensure!(
        report.spliced + report.authentic > 0,
        "no image of {} could be evaluated",
        args.data.display()
    );
    Ok(())
}

fn retrieval(args: RetrievalArgs) -> anyhow::Result<()> {
    let cfg = load_config(&args.config)?;
    let store_opts = args.store.options();
    let device = model::torch_device(cfg.device)?;
    let plan = RankPlan::new(args.batch.max(2), 1, 0)?;
    let data = DataSource::open(&cfg.spec, &args.data, plan, &store_opts)?;
    let loaded = load_checkpoint(&cfg, args.checkpoints.as_deref(), device, &args.store)?;
    let (model, newest) = (loaded.model, loaded.checkpoint);
    let opts = RetrievalOptions {
        batch: args.batch,
        rounds: args.rounds,
        seed: args.seed,
    };
    let report = evaluate(&model, device, &data, &opts)?;
    let show = |name: &str, a: &worker::eval::retrieval::Accuracy| {
        println!(
            "{name:<15} top-1 {:.3}  chance {:.3}  ({} queries, batch {})",
            a.top1, a.chance, a.queries, args.batch
        )
    };
    println!("checkpoint {} (step {})", newest.url, newest.step);
    if let Some(t) = &report.patch_to_text {
        show("patch -> text", t);
    }
    show("patch -> patch", &report.patch_to_patch);
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
