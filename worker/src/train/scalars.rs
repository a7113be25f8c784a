//! Rank 0's TensorBoard scalars, every reporting interval (`logging.every_steps`):
//! `train/*` (loss, learning rate, logit scale, gradient norm, samples per second, model
//! TFLOP/s, MFU), `time/*` (seconds per phase), `memory/*` (GPU) and `data/*` (prefetch
//! fill, skipped samples, bytes read), the names OpenCLIP and torchtitan users know. A
//! storage failure is logged and the run goes on (the next flush writes the file whole).

use infra::store::StoreOptions;

use super::progress::{Interval, StepReport};
use super::TrainError;
use crate::tensorboard::{EventWriter, TensorBoardError};

/// The run's event writer, when rank 0 writes one.
pub(super) struct TrainScalars {
    writer: Option<EventWriter>,
    /// The last flush failed (logged once per run of failures).
    failing: bool,
}

impl TrainScalars {
    /// None written.
    pub(super) fn off() -> Self {
        Self {
            writer: None,
            failing: false,
        }
    }

    /// Opens `url` for a run starting at `step` (events after it are taken out first).
    pub(super) fn open(
        runtime: &tokio::runtime::Runtime,
        url: &str,
        store: &StoreOptions,
        step: u64,
    ) -> Result<Self, TrainError> {
        match runtime.block_on(EventWriter::open(url, store, "train", Some(step))) {
            Ok(writer) => {
                tracing::info!(url = writer.url(), "TensorBoard event files");
                Ok(Self {
                    writer: Some(writer),
                    failing: false,
                })
            }
            Err(e @ TensorBoardError::Url(_)) => Err(TrainError::TensorBoard(Box::new(e))),
            Err(e) => {
                tracing::warn!(error = %e, "TensorBoard events cannot be written; training goes on without them");
                Ok(Self::off())
            }
        }
    }

    /// Writes the interval that ended at `r.step`, and flushes.
    pub(super) fn record(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        r: &StepReport<'_>,
        i: &Interval,
    ) {
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        let f = r.figures;
        let t = &i.timing;
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        let mut values = vec![
            ("train/loss", i.loss),
            ("train/lr", r.lr),
            ("train/logit_scale", r.logit_scale),
            ("train/grad_norm", r.grad_norm),
            ("train/samples_per_sec", i.samples_per_s),
            ("train/model_tflops", f.model_tflops),
            ("time/step_s", t.step_s),
            ("time/data_wait_s", t.data_wait_s),
            ("time/forward_s", t.forward_s),
            ("time/backward_s", t.backward_s),
            ("time/grad_reduce_s", t.grad_reduce_s),
            ("time/optimizer_s", t.optimizer_s),
            ("time/checkpoint_s", t.checkpoint_s),
            ("time/collective_s", t.collective_s),
            ("data/wait_fraction", i.data_wait),
            ("data/prefetch_fill", f.data.prefetch_fill),
            ("data/skipped", f.data.skipped.values().sum::<u64>() as f64),
            ("data/bytes_read", f.data.bytes_read as f64),
        ];
        if f.mfu > 0.0 {
            values.push(("train/mfu", f.mfu));
        }
        if f.memory_peak_bytes > 0 {
            values.push(("memory/allocated_gib", gib(f.memory_allocated_bytes)));
            values.push(("memory/peak_gib", gib(f.memory_peak_bytes)));
        }
        writer.scalars(r.step, &values);
        self.flush(runtime);
    }

    /// Stores what was written so far.
    pub(super) fn flush(&mut self, runtime: &tokio::runtime::Runtime) {
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        match runtime.block_on(writer.flush()) {
            Ok(()) if self.failing => {
                tracing::info!("TensorBoard events written again");
                self.failing = false;
            }
            Ok(()) => {}
            Err(e) => {
                if !self.failing {
                    tracing::warn!(error = %e, "TensorBoard events not written; trying again at the next interval");
                }
                self.failing = true;
            }
        }
    }
}
