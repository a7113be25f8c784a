//! What a rank measures about each step for its supervisor, the coordinator and the logs:
//! seconds per phase ([`crate::runtime::timing`]), time in collectives, model FLOPs per
//! second and utilisation (FLOPs counted from the model config, `kernels::flops`), GPU
//! memory of libtorch's caching allocator, and the data pipeline's figures since the run
//! started.

use std::time::Duration;

use dataloader::stream::CounterSnapshot;
use kernels::config::ModelConfig;
use proto::domain::{DataFigures, StepTiming};

use crate::config::Config;
use crate::events::StepFigures;
use crate::runtime::timing::{Phase, PhaseClock};

/// The figures of the run so far and what turns a step's measures into [`StepFigures`].
pub(super) struct StepMeter {
    /// Marks the phases of the current step.
    pub(super) clock: PhaseClock,
    device: tch::Device,
    model: ModelConfig,
    patch: i64,
    frozen_text: bool,
    world: usize,
    peak_tflops: Option<f64>,
    /// The data figures of the epochs that ended (their streams are gone).
    past: DataFigures,
}

/// What a step computed.
#[derive(Debug, Clone, Copy)]
pub(super) struct StepDone {
    /// Its loss.
    pub(super) loss: f64,
    /// The logit scale it used.
    pub(super) logit_scale: f64,
    /// The gradient norm before clipping.
    pub(super) grad_norm: f64,
    /// Its learning rate.
    pub(super) lr: f64,
}

/// One step's measures, taken by the trainer.
pub(super) struct StepMeasures<'a> {
    /// From asking for the batch to the end of the step (checkpoint included).
    pub(super) total: Duration,
    /// Waiting for the batch.
    pub(super) waited: Duration,
    /// Inside collective calls.
    pub(super) collective: Duration,
    /// Writing a checkpoint.
    pub(super) checkpoint: Duration,
    /// Pairs in the global batch.
    pub(super) global: u64,
    /// Tokens per text row of the batch.
    pub(super) seq_len: i64,
    /// What the step computed.
    pub(super) done: StepDone,
    /// The current epoch's stream counters.
    pub(super) stream: &'a CounterSnapshot,
}

impl StepMeter {
    /// A meter for `cfg`'s run on `device` in a group of `world` ranks.
    pub(super) fn new(cfg: &Config, device: tch::Device, world: usize) -> Self {
        let spec = &cfg.spec;
        Self {
            clock: PhaseClock::for_device(device),
            device,
            model: spec.model.clone(),
            patch: i64::from(spec.data.patch_px),
            frozen_text: spec.model_init.freeze_text,
            world: world.max(1),
            peak_tflops: spec
                .logging
                .peak_tflops
                .or_else(|| crate::runtime::timing::device_peak_tflops(device)),
            past: DataFigures::default(),
        }
    }

    /// An epoch's stream ended with `counters`: they join the run's figures.
    pub(super) fn end_epoch(&mut self, counters: &CounterSnapshot) {
        self.past = self.data(counters);
    }

    /// The run's data figures with the current stream's `counters`.
    fn data(&self, counters: &CounterSnapshot) -> DataFigures {
        let mut skipped = self.past.skipped.clone();
        for (reason, n) in &counters.skipped {
            *skipped.entry(reason.as_str().to_string()).or_default() += n;
        }
        DataFigures {
            skipped,
            bytes_read: self.past.bytes_read + counters.bytes_read,
            storage_retries: infra::store::retry::retries_so_far(),
            prefetch_fill: counters.prefetch_fill,
        }
    }

    /// The step's figures (the clock's phases read now: on a GPU, the previous step's).
    pub(super) fn figures(&self, m: StepMeasures<'_>) -> StepFigures {
        let phases = self.clock.finish();
        let step_s = m.total.as_secs_f64();
        let timing = StepTiming {
            step_s,
            data_wait_s: m.waited.as_secs_f64(),
            forward_s: phases.get(Phase::Forward),
            backward_s: phases.get(Phase::Backward),
            grad_reduce_s: phases.get(Phase::GradReduce),
            optimizer_s: phases.get(Phase::Optimizer),
            checkpoint_s: m.checkpoint.as_secs_f64(),
            collective_s: m.collective.as_secs_f64(),
        };
        let flops = kernels::flops::train_step_flops(
            &self.model,
            m.global,
            self.patch,
            m.seq_len,
            self.frozen_text,
        ) / self.world as f64;
        let model_tflops = if step_s > 0.0 {
            flops / step_s / 1e12
        } else {
            0.0
        };
        let (memory_allocated_bytes, memory_peak_bytes) = self.memory();
        StepFigures {
            lr: m.done.lr,
            logit_scale: m.done.logit_scale,
            grad_norm: if m.done.grad_norm.is_finite() {
                m.done.grad_norm
            } else {
                0.0
            },
            timing,
            data: self.data(m.stream),
            memory_allocated_bytes,
            memory_peak_bytes,
            model_tflops,
            mfu: self.peak_tflops.map_or(0.0, |peak| model_tflops / peak),
        }
    }

    /// GPU memory allocated now and its peak since the previous step (zero on CPU).
    fn memory(&self) -> (u64, u64) {
        match self.device {
            #[cfg(feature = "cuda")]
            tch::Device::Cuda(index) => kernels::cuda::memory(index, true).unwrap_or((0, 0)),
            _ => (0, 0),
        }
    }
}
