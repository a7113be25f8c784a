//! The [`Trainer`]: one rank's run, phase by phase. [`Trainer::start`] builds the model and
//! resumes, [`Trainer::run`] goes epoch by epoch ([`Trainer::epoch`]), each batch one
//! [`Trainer::step`], with checkpoints and the signal stop in `checkpointing.rs`.

use super::sample_record::{AttemptHeader, SampleRecorder, StepSamples};
use crate::checkpoint::dir_name;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use dataloader::order::{Position, RankPlan};
use dataloader::stream::{Batch, StreamError};
use infra::FieldError;
use kernels::joint::JointModel;
use tch::Tensor;

use super::measure::{StepDone, StepMeasures, StepMeter};
use super::progress::{Progress, StepReport};
use super::scalars::TrainScalars;
use super::signals::stop_on_signals;
use super::{TrainError, TrainOptions, TrainSummary};
use crate::checkpoint::CheckpointStore;
use crate::collective::timed::Timed;
use crate::collective::{broadcast_variables, Collective, GradBuckets};
use crate::config::{BatchNormStats, Config, LrSchedule, Precision};
use crate::runtime::data::DataSource;
use crate::runtime::inputs::StepInputs;
use crate::runtime::optimizer::{AdamW, AdamWConfig};
use crate::runtime::step::{forward_backward, split_variables, StepSettings};
use crate::runtime::text_cache::TextCache;
use crate::runtime::timing::Phase;
use crate::runtime::{guard, model, RuntimeError};

/// Gradient all-reduce bucket size.
const BUCKET_BYTES: usize = 16 << 20;

/// One rank's run in progress.
pub(super) struct Trainer<'a> {
    pub(super) cfg: &'a Config,
    pub(super) opts: &'a TrainOptions,
    coll: Timed<'a>,
    device: tch::Device,
    pub(super) data: DataSource,
    schedule: LrSchedule,
    /// The step this run stops at (the schedule's end, or `stop_at_step`).
    end_step: u64,
    pub(super) vs: tch::nn::VarStore,
    model: JointModel,
    /// Batch-norm running statistics (restored after a feature-cache pass).
    buffers: Vec<Tensor>,
    pub(super) opt: AdamW,
    grads: GradBuckets,
    pub(super) store: CheckpointStore,
    /// The newest step whose checkpoint is complete in storage: resumed from, or saved.
    pub(super) committed: Option<u64>,
    /// Optimiser steps taken.
    pub(super) step: u64,
    /// Where the data stream resumes.
    pub(super) position: Position,
    pub(super) leader: bool,
    pub(super) summary: TrainSummary,
    progress: Progress,
    /// A frozen text tower's pooled states, once per text.
    text_cache: Option<TextCache>,
    started: Instant,
    meter: StepMeter,
    /// Rank 0's TensorBoard scalars.
    scalars: TrainScalars,
    /// Which samples each step consumed, when asked for.
    sample_record: Option<SampleRecorder>,
}

/// How an epoch ended.
enum EpochEnd {
    /// The data ran out (or the run reached its end step); `stepped`: at least one step
    /// was taken.
    Exhausted { stepped: bool },
    /// A signal stopped the run (after its checkpoint).
    Stopped,
}

impl<'a> Trainer<'a> {
    /// Phase start: opens the data, builds the model and optimiser, resumes from the newest
    /// checkpoint when asked (or refuses to write over another run), and gives every rank
    /// rank 0's weights.
    pub(super) fn start(
        cfg: &'a Config,
        opts: &'a TrainOptions,
        coll: &'a mut dyn Collective,
    ) -> Result<Self, TrainError> {
        let spec = &cfg.spec;
        let device = model::torch_device(cfg.device)?;
        let batch = spec.train.batch_size as usize;
        let plan = RankPlan::new(batch, coll.world(), coll.rank()).map_err(StreamError::from)?;
        let data = DataSource::open(spec, &spec.data.url, plan, &opts.store)?;
        let steps_per_epoch = data.epoch_len() / batch as u64;
        let schedule = cfg
            .lr_schedule(steps_per_epoch)
            .map_err(RuntimeError::Config)?;
        let end_step = opts
            .stop_at_step
            .map_or(schedule.total_steps, |s| s.min(schedule.total_steps));

        let (vs, model) = guard::guarded(
            device,
            || "building the model".into(),
            || model::build(cfg, device, spec.data.seed),
        )?;
        let (trained, buffers) = split_variables(&vs);
        let params: Vec<Tensor> = trained.iter().map(|(_, t)| t.shallow_clone()).collect();
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
        let (step, position) = if opts.resume || opts.resume_step.is_some() {
            resume(cfg, opts.resume_step, &data, &store, &vs, &mut opt)?
        } else if let Some(newest) = data.runtime.block_on(store.latest())? {
            return Err(TrainError::ExistingRun {
                url: store.url().to_string(),
                step: newest.step,
            });
        } else {
            (0, Position::default())
        };
        // Every rank starts from the same point (checked), and rank 0's weights.
        same_start_on_every_rank(&mut *coll, step, position)?;
        broadcast_variables(&mut *coll, &vs)?;
        let leader = coll.rank() == 0;
        // Rank 0's start time names the group in sample records.
        let mut group_started = Tensor::from_slice(&[std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)]);
        coll.broadcast(&mut group_started, 0)?;
        let sample_record = match &opts.sample_record {
            Some(dir) => Some(SampleRecorder::create(
                dir,
                &AttemptHeader {
                    group_started_unix_ms: group_started.int64_value(&[0]) as u64,
                    rank: coll.rank(),
                    world: coll.world(),
                    start_step: step,
                },
            )?),
            None => None,
        };
        let meter = StepMeter::new(cfg, device, coll.world());
        let scalars = match spec.tensorboard_url() {
            Some(url) if leader => TrainScalars::open(&data.runtime, &url, &opts.store, step)?,
            _ => TrainScalars::off(),
        };
        // A frozen encoder's pooled states depend on the text alone: computed once per text.
        let frozen_text = spec.model_init.freeze_text && spec.model.objective.uses_text();
        let mut trainer = Trainer {
            cfg,
            opts,
            coll: Timed::new(coll),
            device,
            data,
            schedule,
            end_step,
            vs,
            model,
            buffers,
            opt,
            grads,
            store,
            committed: (step > 0).then_some(step),
            step,
            position,
            leader,
            summary: TrainSummary {
                start_step: step,
                end_step: step,
                losses: Vec::new(),
                checkpoint: None,
                samples: 0,
                skipped: 0,
                elapsed_s: 0.0,
                data_wait_s: 0.0,
                interrupted: false,
            },
            progress: Progress::new(step, end_step, spec.logging.every_steps, leader),
            text_cache: frozen_text.then(TextCache::new),
            started: Instant::now(),
            meter,
            scalars,
            sample_record,
        };
        if leader && step > 0 && step >= end_step {
            trainer.report_final_again()?;
        }
        Ok(trainer)
    }

    /// Runs epochs until the end step or a signal, then sums up.
    pub(super) fn run(mut self) -> Result<TrainSummary, TrainError> {
        match self.epochs() {
            Ok(()) => Ok(self.finish()),
            Err(e) => Err(self.storage_outage(e)),
        }
    }

    /// An error that comes from storage unreachable past the outage limit (a transient
    /// storage error that retries did not outlast), told as such: which storage (the
    /// error names the object), and the last good checkpoint to resume from.
    fn storage_outage(&self, e: TrainError) -> TrainError {
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            if c.downcast_ref::<object_store::Error>()
                .is_some_and(infra::store::is_retryable)
            {
                let last_good = self.committed.map(|step| {
                    format!(
                        "{}/{}",
                        self.store.url().trim_end_matches('/'),
                        dir_name(step)
                    )
                });
                return TrainError::StorageOutage {
                    last_good,
                    source: Box::new(e),
                };
            }
            cause = c.source();
        }
        e
    }

    /// Runs epochs until the end step or a signal.
    fn epochs(&mut self) -> Result<(), TrainError> {
        // Raised by SIGTERM / SIGINT from here on, as the first step starts (before, a
        // signal ends the process: there is nothing new to checkpoint).
        let stop = stop_on_signals(&self.data.runtime);
        let mut empty_epochs = 0;
        while self.step < self.end_step {
            let EpochEnd::Exhausted { stepped } = self.epoch(&stop)? else {
                break;
            };
            if self.step >= self.end_step {
                break;
            }
            // The epoch ended: the next one starts at its beginning.
            self.position = Position {
                epoch: self.position.epoch + 1,
                consumed: 0,
            };
            empty_epochs = if stepped { 0 } else { empty_epochs + 1 };
            if empty_epochs >= 2 {
                let batch = self.cfg.spec.train.batch_size;
                return Err(RuntimeError::Config(FieldError::new(
                    "train.batch_size",
                    format!(
                        "two epochs in a row gave no full batch of {batch} usable samples (dataset of {} samples, {} skipped)",
                        self.data.epoch_len(),
                        self.summary.skipped
                    ),
                ))
                .into());
            }
        }
        Ok(())
    }

    /// Phase epoch: one stream over the data from the current position, a step per global
    /// batch, until the data or the run ends or a signal stops it.
    fn epoch(&mut self, stop: &AtomicBool) -> Result<EpochEnd, TrainError> {
        let crops = self.cfg.spec.model.objective.crops_per_sample();
        let tag_dropout = self.cfg.spec.data.tag_dropout;
        let mut stream = self
            .data
            .stream(self.position, crops, |o| o.tag_dropout = tag_dropout)?;
        let mut stepped = false;
        while self.step < self.end_step {
            let started = Instant::now();
            let Some(item) = stream.next_blocking() else {
                break;
            };
            let waited = started.elapsed();
            self.summary.data_wait_s += waited.as_secs_f64();
            let batch = item?;
            self.coll.take_spent();
            self.meter.clock.start();
            // One exchange per step: the global batch size, and whether any rank was told
            // to stop (SIGTERM/SIGINT), so all ranks stop at the same step.
            let stopping = i64::from(stop.load(Ordering::Relaxed));
            let mut flags = Tensor::from_slice(&[batch.len() as i64, stopping]);
            self.coll.all_reduce_sum(&mut flags)?;
            if flags.int64_value(&[1]) > 0 {
                self.stop()?;
                return Ok(EpochEnd::Stopped);
            }
            self.position = batch.resume;
            let global = flags.int64_value(&[0]);
            if global < 2 {
                tracing::warn!(
                    batch = batch.index,
                    samples = global,
                    "global batch too small for a contrastive step after skipped samples; skipping it"
                );
                continue;
            }
            // Written ahead of the step's collectives: a step that completed on every
            // rank (and so any checkpoint) is in every rank's record.
            if let Some(record) = &mut self.sample_record {
                record.step(&StepSamples {
                    step: self.step + 1,
                    epoch: batch.resume.epoch,
                    positions: batch.positions.clone(),
                    keys: batch.keys.clone(),
                })?;
            }
            let done = self.step(&batch, global as u64)?;
            stepped = true;
            let checkpoint_from = Instant::now();
            if self.leader
                && (self
                    .step
                    .is_multiple_of(self.cfg.spec.checkpoint.every_steps)
                    || self.step == self.end_step)
            {
                self.checkpoint(self.step == self.end_step)?;
            }
            let counters = stream.counters();
            let measures = StepMeasures {
                total: started.elapsed(),
                waited,
                collective: self.coll.take_spent(),
                checkpoint: checkpoint_from.elapsed(),
                global: global as u64,
                seq_len: batch.seq_len as i64,
                done,
                stream: &counters,
            };
            self.report(measures);
        }
        let counters = stream.counters();
        self.summary.skipped += counters.skipped_total();
        self.meter.end_epoch(&counters);
        Ok(EpochEnd::Exhausted { stepped })
    }

    /// Tells the supervisor and the logs what the step just taken did and measured.
    fn report(&mut self, measures: StepMeasures<'_>) {
        let (done, samples) = (measures.done, measures.global);
        let figures = self.meter.figures(measures);
        let report = StepReport {
            step: self.step,
            loss: done.loss,
            lr: done.lr,
            logit_scale: done.logit_scale,
            samples,
            grad_norm: done.grad_norm,
            figures: &figures,
        };
        if let Some(interval) = self.progress.step(report) {
            self.scalars.record(&self.data.runtime, &report, &interval);
        }
        self.emit(crate::events::TrainEvent::Step {
            step: self.step,
            epoch: self.position.epoch,
            consumed: self.position.consumed,
            loss: done.loss,
            samples,
            figures,
        });
    }

    /// Phase step: forward/backward of this rank's share of a global batch of `global`
    /// pairs, the gradient sum over the ranks, clipping and the optimiser step.
    fn step(&mut self, batch: &Batch, global: u64) -> Result<StepDone, TrainError> {
        let spec = &self.cfg.spec;
        let step = self.step;
        let micro = spec.train.micro_batch_size.map(i64::from);
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
        let device = self.device;
        let (out, grad_norm, lr) = guard::guarded(device, asked, || {
            let mut inputs = StepInputs::from_batch(batch, spec.model.objective, device)?;
            if let Some(cache) = self.text_cache.as_mut() {
                inputs.set_pooled_texts(cache.pooled(&self.model, batch, device)?);
            }
            self.opt.zero_grad();
            let settings = StepSettings {
                buffers: &self.buffers,
                micro,
                train: true,
                sync_batch_norm: spec.train.batch_norm == BatchNormStats::Synced,
                seed: spec.data.seed,
                step,
                embed_dim: spec.model.embed_dim,
                bf16: spec.train.precision == Precision::Bf16,
                clock: Some(&self.meter.clock),
            };
            let out = forward_backward(
                &self.model,
                &inputs,
                &settings,
                &mut self.coll,
                Some(&mut self.grads),
            )?;
            self.grads.reduce(&mut self.coll)?;
            self.meter.clock.lap(Phase::GradReduce);
            if !out.loss.is_finite() {
                return Err(TrainError::Diverged {
                    step,
                    loss: out.loss,
                });
            }
            let grad_norm = self.opt.clip_grad_norm(spec.optim.grad_clip_norm);
            let lr = self.schedule.lr_at(step);
            self.opt.step(lr);
            self.meter.clock.lap(Phase::Optimizer);
            Ok((out, grad_norm, lr))
        })?;
        self.step += 1;
        self.summary.samples += global;
        self.summary.losses.push((self.step, out.loss));
        Ok(StepDone {
            loss: out.loss,
            logit_scale: out.logit_scale,
            grad_norm,
            lr,
        })
    }

    /// The run's summary, once training has ended.
    fn finish(mut self) -> TrainSummary {
        self.progress.finish();
        self.scalars.flush(&self.data.runtime);
        if let Some(cache) = &self.text_cache {
            let (computed, hits) = cache.counts();
            tracing::info!(
                texts = cache.len(),
                computed,
                hits,
                "frozen text tower: pooled states cached per text"
            );
        }
        self.summary.end_step = self.step;
        self.summary.elapsed_s = self.started.elapsed().as_secs_f64();
        self.summary
    }
}

/// Loads the checkpoint of `step` (the round's choice), else the newest complete one of
/// `cfg`'s run, into `vs` and `opt` (weights, optimiser state): the step and data position
/// it resumes at; none (and no `step` asked): a fresh start.
fn resume(
    cfg: &Config,
    step: Option<u64>,
    data: &DataSource,
    store: &CheckpointStore,
    vs: &tch::nn::VarStore,
    opt: &mut AdamW,
) -> Result<(u64, Position), TrainError> {
    let digest = cfg.digest.as_str();
    let found = match step {
        Some(step) => Some(
            data.runtime
                .block_on(store.load_step_for_resume(step, digest))?,
        ),
        None => data.runtime.block_on(store.load_for_resume(digest))?,
    };
    let Some(ck) = found else {
        tracing::info!(
            url = store.url(),
            "no checkpoint to resume from; starting fresh"
        );
        return Ok((0, Position::default()));
    };
    model::weights_from_bytes(vs, &ck.weights)?;
    let Some(optimizer) = &ck.optimizer else {
        return Err(crate::checkpoint::CheckpointError::Corrupt {
            url: format!("{}/{}", store.url(), crate::checkpoint::dir_name(ck.state.step)),
            reason: "it is a model-only checkpoint (exported, no optimiser state) and cannot be resumed: point checkpoint.url at a training run's checkpoints".into(),
        }
        .into());
    };
    opt.load_bytes(optimizer)?;
    let position = Position {
        epoch: ck.state.data.epoch,
        consumed: ck.state.data.consumed,
    };
    tracing::info!(
        step = ck.state.step,
        epoch = position.epoch,
        consumed = position.consumed,
        "resumed"
    );
    Ok((ck.state.step, position))
}

/// Compares every rank's starting point (step and data position): ranks that resumed from
/// different checkpoints would drift apart without an error.
fn same_start_on_every_rank(
    coll: &mut dyn Collective,
    step: u64,
    position: Position,
) -> Result<(), TrainError> {
    let mine = Tensor::from_slice(&[step as i64, position.epoch as i64, position.consumed as i64]);
    let all = coll.all_gather(&mine.view([1, 3]))?;
    let mut positions = Vec::with_capacity(all.len());
    for t in &all {
        let v = Vec::<i64>::try_from(t.reshape([-1])).map_err(kernels::KernelsError::from)?;
        let at = |i: usize| v.get(i).map_or(u64::MAX, |&x| x as u64);
        positions.push((at(0), at(1), at(2)));
    }
    if positions.windows(2).any(|w| w[0] != w[1]) {
        return Err(TrainError::RanksDisagree { positions });
    }
    Ok(())
}
