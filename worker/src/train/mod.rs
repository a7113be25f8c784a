//! Training (`worker train`): the data pipeline's batches, the contrastive step, AdamW
//! with the warm-up + cosine schedule, checkpoints that resume exactly.
//!
//! A run is a loop over optimiser steps, written as a `Trainer` (`trainer.rs`) with one
//! function per phase: start (build the model, resume), epoch (a stream over the data from
//! a position), step (forward/backward of [`crate::runtime::step`] over the global batch,
//! micro-batched with the feature cache when `train.micro_batch_size` is set, gradient
//! all-reduce, clipping, [`crate::runtime::optimizer`]), checkpoint (every
//! `checkpoint.every_steps` steps, at the last step and at `stop_at_step`: model weights,
//! optimiser state and [`TrainState`](crate::checkpoint::TrainState) go to the
//! [`CheckpointStore`](crate::checkpoint::CheckpointStore)), and stop (a signal: checkpoint
//! and leave at the same step on every rank).
//!
//! Resuming is exact: the data stream restarts at the saved position (its order and crops
//! are functions of seed, epoch and position), weights and batch-norm statistics and the
//! optimiser moments are restored, and the random draws of each step (dropout) are seeded
//! from (seed, step), so no generator state needs saving. N steps straight and N/2 + N/2
//! resumed give the same weights.

mod checkpointing;
mod measure;
pub mod progress;
pub mod sample_record;
mod scalars;
mod signals;
mod trainer;

use infra::store::StoreOptions;

use crate::checkpoint::CheckpointRef;
use crate::collective::Collective;
use crate::config::Config;
use crate::events::TrainEvent;
use crate::runtime::RuntimeError;
use trainer::Trainer;

/// Why training stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The model, its data, a checkpoint or the data-parallel group failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The loss is no longer a number.
    #[error("the loss became {loss} at step {step}: lower optim.lr, set optim.grad_clip_norm, or check the data")]
    Diverged {
        /// The step.
        step: u64,
        /// The loss.
        loss: f64,
    },
    /// The ranks of the group did not start from the same point: every rank must load
    /// the same checkpoint (or none).
    #[error("the ranks did not resume from the same checkpoint: (step, epoch, consumed) {positions:?} by rank; rejoin so that every rank loads the round's checkpoint")]
    RanksDisagree {
        /// Each rank's starting point.
        positions: Vec<(u64, u64, u64)>,
    },
    /// A fresh run would write over another run's checkpoints.
    #[error("{url} already holds checkpoints (newest: step {step}): pass --resume to continue that run, or point checkpoint.url at a new location")]
    ExistingRun {
        /// The checkpoint URL.
        url: String,
        /// The newest step found.
        step: u64,
    },
    /// `logging.tensorboard` cannot be used.
    #[error(transparent)]
    TensorBoard(Box<crate::tensorboard::TensorBoardError>),
    /// The sample record asked for cannot be written.
    #[error(transparent)]
    SampleRecord(#[from] sample_record::RecordError),
    /// Storage stayed unreachable past the outage limit (`--storage-outage-limit-s`).
    #[error("storage unreachable past the outage limit ({source}); the last good checkpoint is {}: once the storage is back, restart the job (or `worker train --resume`) to continue from it", last_good.as_deref().unwrap_or("none (a fresh start)"))]
    StorageOutage {
        /// The newest checkpoint known complete.
        last_good: Option<String>,
        /// The error as it came (naming the object, and so the storage).
        #[source]
        source: Box<TrainError>,
    },
}

/// The runtime's sources of failure reach [`TrainError`] with `?`, through
/// [`RuntimeError`].
macro_rules! through_runtime {
    ($($source:ty),* $(,)?) => {$(
        impl From<$source> for TrainError {
            fn from(e: $source) -> Self {
                TrainError::Runtime(e.into())
            }
        }
    )*};
}
through_runtime!(
    crate::checkpoint::CheckpointError,
    crate::collective::CollectiveError,
    crate::runtime::optimizer::OptimizerError,
    dataloader::stream::StreamError,
    kernels::KernelsError,
);

/// How to run, besides the config.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from the newest checkpoint at `checkpoint.url` (fresh start if none).
    pub resume: bool,
    /// Continue from exactly this step's checkpoint (the one the round chose); its
    /// absence is an error. Implies `resume`.
    pub resume_step: Option<u64>,
    /// Save a checkpoint and stop after this many steps (the schedule still runs to the
    /// config's length, so a later `resume` continues it).
    pub stop_at_step: Option<u64>,
    /// Object-store settings for the dataset and checkpoints.
    pub store: StoreOptions,
    /// Where to send progress and checkpoint events (a supervising process forwards them
    /// to the coordinator); `None`: logs only.
    pub events: Option<std::sync::mpsc::Sender<TrainEvent>>,
    /// Folder of the sample record ([`sample_record`]): which samples each step consumed.
    pub sample_record: Option<std::path::PathBuf>,
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

/// Trains as `cfg` says, as rank `coll.rank()` of `coll.world()` ([`Solo`] for one
/// process); see the module documentation. `train.batch_size` is the global batch; each
/// rank reads its share of every global batch, and rank 0 writes the checkpoints.
///
/// [`Solo`]: crate::collective::Solo
pub fn train(
    cfg: &Config,
    opts: &TrainOptions,
    coll: &mut dyn Collective,
) -> Result<TrainSummary, TrainError> {
    Trainer::start(cfg, opts, coll)?.run()
}
