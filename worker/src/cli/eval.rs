//! `worker eval retrieval`: zero-shot retrieval of a checkpoint on a packed dataset.

use std::path::PathBuf;

use anyhow::Context;
use dataloader::order::RankPlan;
use worker::eval::retrieval::{evaluate, RetrievalOptions};
use worker::train::data::DataSource;
use worker::train::model;

use super::{load_config, StoreArgs};

/// Evaluation commands.
#[derive(Debug, clap::Subcommand)]
pub enum EvalCommand {
    /// Patch -> EXIF text and patch -> other-crop retrieval on held-out photos.
    Retrieval(RetrievalArgs),
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
    }
}

fn retrieval(args: RetrievalArgs) -> anyhow::Result<()> {
    let cfg = load_config(&args.config)?;
    let store_opts = args.store.options();
    let url = args
        .checkpoints
        .unwrap_or_else(|| cfg.spec.checkpoint.url.clone());
    let device = model::torch_device(cfg.device)?;
    let plan = RankPlan::new(args.batch.max(2), 1, 0)?;
    let data = DataSource::open(&cfg.spec, &args.data, plan, &store_opts)?;
    let loaded = model::from_checkpoint(&cfg, &url, device, &store_opts)
        .with_context(|| format!("loading {url} into the model of {}", args.config.display()))?;
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
