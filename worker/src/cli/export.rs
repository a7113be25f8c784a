//! `worker export`: a checkpoint's model alone (weights, optionally in half precision,
//! training state and config; no optimiser state), written as a model-only checkpoint that
//! `worker detect`, `eval` and `probe` load like any other: how the shipped default model
//! (`models/default`) is made.

use std::path::PathBuf;

use anyhow::Context;
use worker::checkpoint::{Checkpoint, CheckpointStore};
use worker::runtime::model;

use super::{load_checkpoint, load_optional_config, StoreArgs};

/// Arguments of `worker export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The checkpoint: a checkpoint directory (its newest) or a `step-N` directory.
    #[arg(long, value_name = "REF")]
    pub checkpoint: String,
    /// The training config, for checkpoints that do not carry their own (older ones).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the model-only checkpoint goes (a checkpoint directory URL or path).
    #[arg(long, value_name = "URL")]
    pub out: String,
    /// Store the weights in half precision (float16): half the size.
    #[arg(long)]
    pub half: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Runs `worker export`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = load_optional_config(args.config.as_deref())?;
    let loaded = load_checkpoint(
        cfg.as_ref(),
        Some(&args.checkpoint),
        Some(tch::Device::Cpu),
        &args.store,
    )?;
    let kind = args.half.then_some(tch::Kind::Half);
    let ck = Checkpoint {
        weights: model::weights_to_bytes_as(&loaded.vs, kind)?.into(),
        optimizer: None,
        state: loaded.state.clone(),
        config: Some(loaded.config.spec.to_toml().into()),
    };
    let out = CheckpointStore::open(&args.out, &args.store.options())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let saved = rt
        .block_on(out.save(&ck))
        .with_context(|| format!("writing the model to {}", args.out))?;
    println!(
        "{} (step {}) -> {} ({:.1} MB of weights{})",
        loaded.checkpoint.url,
        saved.step,
        saved.url,
        ck.weights.len() as f64 / 1e6,
        if args.half { ", half precision" } else { "" }
    );
    Ok(())
}
