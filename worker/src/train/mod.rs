//! Single-process training (`worker train`): the data pipeline's batches, the contrastive
//! step, AdamW with the warm-up + cosine schedule, checkpoints that resume exactly.
//!
//! A run is a loop over optimiser steps. Each step takes the next global batch of the
//! stream ([`dataloader::stream::BatchStream`], restarted at each epoch), runs the
//! forward/backward pass of [`step`] (micro-batched with the feature cache when
//! `train.micro_batch_size` is set), clips the gradient norm, and applies [`optimizer`].
//! Every `checkpoint.every_steps` steps, at the last step and at `stop_at_step`, the model
//! weights, optimiser state and [`TrainState`] (step, data position, config digest) go to
//! the [`CheckpointStore`].
//!
//! Resuming is exact: the data stream restarts at the saved position (its order and crops
//! are functions of seed, epoch and position), weights and batch-norm statistics and the
//! optimiser moments are restored, and the random draws of each step (dropout) are seeded
//! from (seed, step), so no generator state needs saving. N steps straight and N/2 + N/2
//! resumed give the same weights.

pub mod data;
pub mod guard;
pub mod model;
pub mod optimizer;
pub mod progress;
pub mod step;
pub mod sync_norm;
pub mod text_cache;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use dataloader::order::{Position, RankPlan};
use dataloader::store::StoreOptions;
use dataloader::stream::StreamError;
use kernels::config::Objective;
use kernels::KernelsError;

use crate::checkpoint::{
    Checkpoint, CheckpointError, CheckpointRef, CheckpointStore, DataPosition, TrainState,
    FORMAT_VERSION,
};
use crate::collective::{broadcast_variables, Collective, GradBuckets};
use crate::config::{BatchNormStats, Config, FieldError, Precision};
use data::DataSource;
use optimizer::{AdamW, AdamWConfig, OptimizerError};
use progress::{Progress, StepReport};
use step::{forward_backward, needs_two_crops, split_variables, StepInputs, StepSettings};
use text_cache::TextCache;

/// Why training stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A config value that only the data can check (e.g. an epoch without steps).
    #[error("invalid config: {0}")]
    Config(FieldError),
    /// The device is missing or unsupported by this build.
    #[error("{0}")]
    Device(String),
    /// The dataset could not be opened.
    #[error("cannot open the dataset: {0}")]
    Dataset(#[from] dataloader::shard::ShardError),
    /// The tokenizer or tag list could not be loaded.
    #[error("{0}")]
    Text(String),
    /// The data stream failed.
    #[error("data stream: {0}")]
    Stream(#[from] dataloader::stream::StreamError),
    /// The model could not be built, loaded or run.
    #[error(transparent)]
    Model(#[from] KernelsError),
    /// Saving or loading a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A collective operation with the other ranks failed (a peer died or hung).
    #[error("data-parallel group: {0}")]
    Collective(#[from] crate::collective::CollectiveError),
    /// The optimiser state did not fit.
    #[error(transparent)]
    Optimizer(#[from] OptimizerError),
    /// The loss is no longer a number.
    #[error("the loss became {loss} at step {step}: lower optim.lr, set optim.grad_clip_norm, or check the data")]
    Diverged {
        /// The step.
        step: u64,
        /// The loss.
        loss: f64,
    },
    /// A fresh run would write over another run's checkpoints.
    #[error("{url} already holds checkpoints (newest: step {step}): pass --resume to continue that run, or point checkpoint.url at a new location")]
    ExistingRun {
        /// The checkpoint URL.
        url: String,
        /// The newest step found.
        step: u64,
    },
    /// A local temporary file failed.
    #[error("temporary file: {0}")]
    Io(#[from] std::io::Error),
    /// The device (or the host) ran out of memory ([`guard`]).
    #[error("{device} ran out of memory {what}: {message}. Lower train.batch_size, or set train.micro_batch_size: micro-batches bound the memory of a pass while the loss still covers the whole batch")]
    OutOfMemory {
        /// `cuda:0`, `cpu`.
        device: String,
        /// What was asked (the step and its batch).
        what: String,
        /// libtorch's message.
        message: String,
    },
    /// Another libtorch failure ([`guard`]).
    #[error("libtorch failed on {device} {what}: {message}")]
    Torch {
        /// `cuda:0`, `cpu`.
        device: String,
        /// What was asked.
        what: String,
        /// libtorch's message.
        message: String,
    },
}

/// How to run, besides the config.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from the newest checkpoint at `checkpoint.url` (fresh start if none).
    pub resume: bool,
    /// Save a checkpoint and stop after this many steps (the schedule still runs to the
    /// config's length, so a later `resume` continues it).
    pub stop_at_step: Option<u64>,
    /// Object-store settings for the dataset and checkpoints.
    pub store: StoreOptions,
    /// Where to send progress and checkpoint events (a supervising process forwards them
    /// to the coordinator); `None`: logs only.
    pub events: Option<std::sync::mpsc::Sender<TrainEvent>>,
}

/// What a run reports as it goes, for a supervisor (`worker train --events-stdout` writes
/// them as JSON lines).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainEvent {
    /// An optimiser step was taken.
    Step {
        /// Steps taken.
        step: u64,
        /// Data position after it.
        epoch: u64,
        /// See `epoch`.
        consumed: u64,
        /// Its loss.
        loss: f64,
        /// Pairs in the global batch.
        samples: u64,
    },
    /// A checkpoint was committed (rank 0 only).
    Checkpoint {
        /// Its step.
        step: u64,
        /// Its URL.
        url: String,
        /// Data position it resumes from.
        epoch: u64,
        /// See `epoch`.
        consumed: u64,
        /// Config digest it was written under.
        config_digest: String,
        /// Written because training reached its last step (not a periodic or a leaving
        /// checkpoint).
        #[serde(default)]
        final_step: bool,
    },
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainSummary {
    /// The step the run started at (0, or the resumed checkpoint's).
    pub start_step: u64,
    /// The step it ended at.
    pub end_step: u64,
    /// Every step's loss, `(step, loss)`.
    pub losses: Vec<(u64, f64)>,
    /// The last checkpoint written.
    #[serde(skip)]
    pub checkpoint: Option<CheckpointRef>,
    /// Pairs trained on.
    pub samples: u64,
    /// Samples the pipeline skipped for bad input.
    pub skipped: u64,
    /// Wall time in seconds.
    pub elapsed_s: f64,
    /// Seconds spent waiting for batches.
    pub data_wait_s: f64,
    /// Whether a signal (SIGTERM, SIGINT) stopped the run early, after a checkpoint.
    pub interrupted: bool,
}

/// The exit status of a `worker train` process that a signal stopped after its
/// checkpoint (EX_TEMPFAIL): not done, not failed; `--resume` (or the next round)
/// continues from that checkpoint.
pub const EXIT_INTERRUPTED: i32 = 75;

/// Gradient all-reduce bucket size.
const BUCKET_BYTES: usize = 16 << 20;

/// Trains as `cfg` says, as rank `coll.rank()` of `coll.world()` ([`Solo`] for one
/// process); see the module documentation. `train.batch_size` is the global batch; each
/// rank reads its share of every global batch, and rank 0 writes the checkpoints.
pub fn train(
    cfg: &Config,
    opts: &TrainOptions,
    coll: &mut dyn Collective,
) -> Result<TrainSummary, TrainError> {
    let spec = &cfg.spec;
    let device = model::torch_device(cfg.device)?;
    let batch = spec.train.batch_size as usize;
    let plan = RankPlan::new(batch, coll.world(), coll.rank()).map_err(StreamError::from)?;
    let data = DataSource::open(spec, &spec.data.url, plan, &opts.store)?;
    let epoch_len = data.epoch_len();
    let steps_per_epoch = epoch_len / batch as u64;
    let schedule = cfg
        .lr_schedule(steps_per_epoch)
        .map_err(TrainError::Config)?;
    let end_step = opts
        .stop_at_step
        .map_or(schedule.total_steps, |s| s.min(schedule.total_steps));

    let (vs, model) = guard::guarded(
        device,
        || "building the model".into(),
        || model::build(cfg, device, spec.data.seed),
    )?;
    let (trained, buffers) = split_variables(&vs);
    let params: Vec<tch::Tensor> = trained.iter().map(|(_, t)| t.shallow_clone()).collect();
    let mut opt = AdamW::new(trained, AdamWConfig::from_optim(&spec.optim));
    let mut grads = GradBuckets::new(&params, BUCKET_BYTES, spec.train.grad_reduce);
    if spec.train.overlap_grad_reduce && coll.reduces_beside_compute() {
        // Also in a one-rank NCCL group (`--collective nccl`), which exists to exercise it.
        grads = grads.overlapped(true)?;
    }
    let (decayed, exempt) = opt.groups();
    tracing::info!(
        decayed = decayed.len(),
        exempt = exempt.len(),
        steps = schedule.total_steps,
        steps_per_epoch,
        digest = cfg.digest.as_str(),
        "model built"
    );

    let store = CheckpointStore::open(&spec.checkpoint.url, &opts.store)?
        .keep_last(spec.checkpoint.keep_last);
    let mut step = 0;
    let mut position = Position {
        epoch: 0,
        consumed: 0,
    };
    if opts.resume {
        match data
            .runtime
            .block_on(store.load_for_resume(cfg.digest.as_str()))?
        {
            Some(ck) => {
                model::weights_from_bytes(&vs, &ck.weights)?;
                opt.load_bytes(&ck.optimizer)?;
                step = ck.state.step;
                position = Position {
                    epoch: ck.state.data.epoch,
                    consumed: ck.state.data.consumed,
                };
                tracing::info!(
                    step,
                    epoch = position.epoch,
                    consumed = position.consumed,
                    "resumed"
                );
            }
            None => tracing::info!(
                url = store.url(),
                "no checkpoint to resume from; starting fresh"
            ),
        }
    } else if let Some(newest) = data.runtime.block_on(store.latest())? {
        return Err(TrainError::ExistingRun {
            url: store.url().to_string(),
            step: newest.step,
        });
    }

    // Every rank starts from rank 0's weights (and, resumed, the same checkpoint).
    broadcast_variables(coll, &vs)?;
    let leader = coll.rank() == 0;
    let t0 = Instant::now();
    let start_step = step;
    let mut summary = TrainSummary {
        start_step,
        end_step: step,
        losses: Vec::new(),
        checkpoint: None,
        samples: 0,
        skipped: 0,
        elapsed_s: 0.0,
        data_wait_s: 0.0,
        interrupted: false,
    };
    if leader && step > 0 && step >= end_step {
        // Resumed at the end: report the final checkpoint again, so that a new job on a
        // finished run (a fresh coordinator) registers it and runs its evaluations.
        if let Some(last) = data.runtime.block_on(store.latest())? {
            tracing::info!(step, url = %last.url, "nothing left to train: the final checkpoint is reported again");
            emit(
                &opts.events,
                TrainEvent::Checkpoint {
                    step: last.step,
                    url: last.url,
                    epoch: position.epoch,
                    consumed: position.consumed,
                    config_digest: cfg.digest.as_str().to_string(),
                    final_step: true,
                },
            );
        }
    }
    let mut progress = Progress::new(step, end_step, spec.logging.every_steps, leader);
    let micro = spec.train.micro_batch_size.map(i64::from);
    // A frozen encoder's pooled states depend on the text alone: computed once per text.
    let frozen_text = spec.model_init.freeze_text && spec.model.objective == Objective::ImageText;
    let mut text_cache = frozen_text.then(TextCache::new);
    let mut empty_epochs = 0;
    let stop = stop_on_signals(&data.runtime);
    'epochs: while step < end_step {
        let crops = if needs_two_crops(&spec.model) { 2 } else { 1 };
        let mut stream = data.stream(position, crops, |_| ())?;
        let mut stepped = false;
        while step < end_step {
            let waited_from = Instant::now();
            let Some(item) = stream.next_blocking() else {
                break;
            };
            let waited = waited_from.elapsed();
            summary.data_wait_s += waited.as_secs_f64();
            let batch = item?;
            // One exchange per step: the global batch size, and whether any rank was told
            // to stop (SIGTERM/SIGINT), so all ranks stop at the same step.
            let stopping = i64::from(stop.load(Ordering::Relaxed));
            let mut flags = tch::Tensor::from_slice(&[batch.len() as i64, stopping]);
            coll.all_reduce_sum(&mut flags)?;
            if flags.int64_value(&[1]) > 0 {
                // This batch is not trained: the checkpoint resumes right before it.
                if leader && summary.checkpoint.as_ref().map(|c| c.step) != Some(step) {
                    let state = train_state(cfg, step, position);
                    summary.checkpoint = Some(save(
                        &data.runtime,
                        &store,
                        &vs,
                        &opt,
                        state,
                        false,
                        &opts.events,
                    )?);
                }
                tracing::warn!(
                    step,
                    "stopping on a signal after the last complete step; --resume continues"
                );
                summary.interrupted = true;
                break 'epochs;
            }
            position = batch.resume;
            let global = flags.int64_value(&[0]);
            if global < 2 {
                tracing::warn!(
                    batch = batch.index,
                    samples = global,
                    "global batch too small for a contrastive step after skipped samples; skipping it"
                );
                continue;
            }
            let asked = || {
                let micro = micro.map_or("the whole local batch".into(), |m| {
                    format!("micro-batches of {m}")
                });
                format!(
                    "at step {} (this rank's {} of {global} pairs, {micro}, {}, {} px patches, texts of {} tokens)",
                    step + 1,
                    batch.len(),
                    format!("{:?}", spec.train.precision).to_lowercase(),
                    batch.patch,
                    batch.seq_len,
                )
            };
            let (out, grad_norm, lr) = guard::guarded(device, asked, || {
                let mut inputs = StepInputs::from_batch(&batch, spec.model.objective, device)?;
                if let Some(cache) = text_cache.as_mut() {
                    inputs.set_pooled_texts(cache.pooled(&model, &batch, device)?);
                }
                opt.zero_grad();
                let settings = StepSettings {
                    buffers: &buffers,
                    micro,
                    train: true,
                    sync_batch_norm: spec.train.batch_norm == BatchNormStats::Synced,
                    seed: spec.data.seed,
                    step,
                    embed_dim: spec.model.embed_dim,
                    bf16: spec.train.precision == Precision::Bf16,
                };
                let out =
                    forward_backward(&model, &inputs, &settings, &mut *coll, Some(&mut grads))?;
                grads.reduce(&mut *coll)?;
                if !out.loss.is_finite() {
                    return Err(TrainError::Diverged {
                        step,
                        loss: out.loss,
                    });
                }
                let grad_norm = opt.clip_grad_norm(spec.optim.grad_clip_norm);
                let lr = schedule.lr_at(step);
                opt.step(lr);
                Ok((out, grad_norm, lr))
            })?;
            step += 1;
            stepped = true;
            summary.samples += global as u64;
            summary.losses.push((step, out.loss));
            emit(
                &opts.events,
                TrainEvent::Step {
                    step,
                    epoch: position.epoch,
                    consumed: position.consumed,
                    loss: out.loss,
                    samples: global as u64,
                },
            );
            progress.step(StepReport {
                step,
                loss: out.loss,
                lr,
                logit_scale: out.logit_scale,
                samples: global as u64,
                waited,
                grad_norm,
            });
            if leader && (step % spec.checkpoint.every_steps == 0 || step == end_step) {
                let state = train_state(cfg, step, position);
                let last = step == end_step;
                summary.checkpoint = Some(save(
                    &data.runtime,
                    &store,
                    &vs,
                    &opt,
                    state,
                    last,
                    &opts.events,
                )?);
            }
        }
        summary.skipped += stream.counters().skipped_total();
        if step < end_step {
            // The epoch ended: the next one starts at its beginning.
            position = Position {
                epoch: position.epoch + 1,
                consumed: 0,
            };
            empty_epochs = if stepped { 0 } else { empty_epochs + 1 };
            if empty_epochs >= 2 {
                return Err(TrainError::Config(FieldError::new(
                    "train.batch_size",
                    format!("two epochs in a row gave no full batch of {batch} usable samples (dataset of {epoch_len} samples, {} skipped)", summary.skipped),
                )));
            }
        }
    }
    progress.finish();
    if let Some(cache) = &text_cache {
        let (computed, hits) = cache.counts();
        tracing::info!(
            texts = cache.len(),
            computed,
            hits,
            "frozen text tower: pooled states cached per text"
        );
    }
    summary.end_step = step;
    summary.elapsed_s = t0.elapsed().as_secs_f64();
    Ok(summary)
}

fn train_state(cfg: &Config, step: u64, position: Position) -> TrainState {
    TrainState {
        format_version: FORMAT_VERSION,
        step,
        epoch: position.epoch,
        data: DataPosition {
            epoch: position.epoch,
            consumed: position.consumed,
        },
        // Random draws are seeded from (data.seed, step): the seed is the whole state.
        rng_state: cfg.spec.data.seed.to_le_bytes().to_vec(),
        config_digest: cfg.digest.as_str().to_string(),
        saved_at_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    }
}

fn save(
    runtime: &tokio::runtime::Runtime,
    store: &CheckpointStore,
    vs: &tch::nn::VarStore,
    opt: &AdamW,
    state: TrainState,
    final_step: bool,
    events: &Option<std::sync::mpsc::Sender<TrainEvent>>,
) -> Result<CheckpointRef, TrainError> {
    let ck = Checkpoint {
        weights: model::weights_to_bytes(vs)?.into(),
        optimizer: opt.to_bytes()?.into(),
        state,
    };
    let saved = runtime.block_on(store.save(&ck))?;
    tracing::info!(step = saved.step, url = %saved.url, "checkpoint saved");
    emit(
        events,
        TrainEvent::Checkpoint {
            step: saved.step,
            url: saved.url.clone(),
            epoch: ck.state.data.epoch,
            consumed: ck.state.data.consumed,
            config_digest: ck.state.config_digest.clone(),
            final_step,
        },
    );
    Ok(saved)
}

fn emit(events: &Option<std::sync::mpsc::Sender<TrainEvent>>, event: TrainEvent) {
    if let Some(tx) = events {
        // A supervisor that stopped listening does not stop training.
        let _ = tx.send(event);
    }
}

/// A flag raised by SIGTERM (what Kubernetes and Slurm send before stopping a job) or
/// SIGINT; the loop checkpoints and leaves at the next step.
fn stop_on_signals(runtime: &tokio::runtime::Runtime) -> Arc<AtomicBool> {
    use tokio::signal::unix::{signal, SignalKind};
    let flag = Arc::new(AtomicBool::new(false));
    for kind in [SignalKind::terminate(), SignalKind::interrupt()] {
        let flag = Arc::clone(&flag);
        let _guard = runtime.enter();
        match signal(kind) {
            Ok(mut s) => {
                runtime.spawn(async move {
                    if s.recv().await.is_some() {
                        tracing::warn!(signal = ?kind, "signal received: checkpointing and stopping after this step");
                        flag.store(true, Ordering::Relaxed);
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch for signals; a signal will end the process without a checkpoint")
            }
        }
    }
    flag
}
