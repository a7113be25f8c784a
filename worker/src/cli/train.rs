//! `worker train --config FILE [--resume] [--stop-at-step N]`: single-process training.

use std::path::PathBuf;

use anyhow::Context;
use worker::train::{train, TrainOptions};

use super::{load_config, StoreArgs};

/// Arguments of `worker train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Training config (TOML), e.g. configs/cpu-small.toml.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Continue from the newest checkpoint at checkpoint.url (a fresh start if none).
    #[arg(long)]
    pub resume: bool,
    /// Checkpoint and stop after this many steps (the schedule keeps the config's length,
    /// so `--resume` continues the same run).
    #[arg(long, value_name = "N")]
    pub stop_at_step: Option<u64>,
    /// Override data.url (the packed dataset).
    #[arg(long, value_name = "URL")]
    pub data: Option<String>,
    /// Override checkpoint.url.
    #[arg(long, value_name = "URL")]
    pub checkpoints: Option<String>,
    /// Write the run's summary (losses per step, timings) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Runs `worker train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = load_config(&args.config)?;
    if let Some(url) = args.data {
        cfg.spec.data.url = url;
    }
    if let Some(url) = args.checkpoints {
        cfg.spec.checkpoint.url = url;
    }
    let opts = TrainOptions {
        resume: args.resume,
        stop_at_step: args.stop_at_step,
        store: args.store.options(),
    };
    let s =
        train(&cfg, &opts).with_context(|| format!("training with {}", args.config.display()))?;
    let tail = &s.losses[s.losses.len().saturating_sub(10)..];
    let final_loss = tail.iter().map(|(_, l)| l).sum::<f64>() / tail.len().max(1) as f64;
    tracing::info!(
        steps = s.end_step,
        from = s.start_step,
        final_loss = format_args!("{final_loss:.4}"),
        samples = s.samples,
        skipped = s.skipped,
        seconds = format_args!("{:.1}", s.elapsed_s),
        data_wait = format_args!("{:.2}", s.data_wait_s / s.elapsed_s.max(1e-9)),
        checkpoint = s.checkpoint.as_ref().map(|c| c.url.as_str()).unwrap_or("-"),
        "training done"
    );
    if let Some(path) = args.summary {
        std::fs::write(&path, serde_json::to_string_pretty(&s)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
