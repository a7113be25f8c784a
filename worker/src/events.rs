//! What a `worker train` process tells the process that supervises it (`worker join`'s
//! [`crate::node`]): the events it writes as JSON lines (`--events-stdout`) and the exit
//! status of a run a signal stopped. Both sides read them from here; neither imports the
//! other.

use proto::domain::{DataFigures, StepTiming};

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
        /// What the rank measured (absent from older writers: all zero).
        #[serde(default)]
        figures: StepFigures,
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

/// What a rank measured over one step, besides its loss.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct StepFigures {
    /// Learning rate of the step.
    pub lr: f64,
    /// Logit scale (1 / temperature) of the step.
    pub logit_scale: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Seconds per phase (on a GPU, of the previous step: see `runtime::timing`).
    pub timing: StepTiming,
    /// The data pipeline since the run started.
    pub data: DataFigures,
    /// libtorch's caching allocator on the rank's GPU: allocated after the step.
    pub memory_allocated_bytes: u64,
    /// Peak allocated during the step.
    pub memory_peak_bytes: u64,
    /// Model TFLOP/s of this rank's share of the step.
    pub model_tflops: f64,
    /// Model FLOPs utilisation (0: the device's peak is unknown).
    pub mfu: f64,
}

/// The exit status of a `worker train` process that a signal stopped after its
/// checkpoint (EX_TEMPFAIL): not done, not failed; `--resume` (or the next round)
/// continues from that checkpoint.
pub const EXIT_INTERRUPTED: i32 = 75;
