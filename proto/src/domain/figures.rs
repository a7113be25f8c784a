//! What a training rank measures besides its progress: seconds per phase of a step and its
//! data pipeline's figures. The same types travel in `worker train`'s events and in
//! heartbeats.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Seconds per step in each phase. The phases add up to `step_s` (up to host overhead);
/// `collective_s` is the part of them spent inside collective calls, waiting for the
/// other ranks included.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StepTiming {
    /// The whole step, from asking for its batch to the end of the optimiser step.
    pub step_s: f64,
    /// Waiting for the batch from the data pipeline.
    pub data_wait_s: f64,
    /// Forward passes (the embeddings' all-gather included).
    pub forward_s: f64,
    /// Backward passes.
    pub backward_s: f64,
    /// The gradient all-reduce not hidden behind backward.
    pub grad_reduce_s: f64,
    /// Clipping and the optimiser step.
    pub optimizer_s: f64,
    /// Writing a checkpoint (on the steps that write one).
    pub checkpoint_s: f64,
    /// Inside collective calls.
    pub collective_s: f64,
}

impl StepTiming {
    /// The rank's own time: the step less the time spent in collectives (where a rank
    /// waits for the slowest). A straggler has more of it than the others.
    pub fn own_s(&self) -> f64 {
        (self.step_s - self.collective_s).max(0.0)
    }

    /// Each figure with its name, in a fixed order (for checks, logs and metrics).
    pub fn named(&self) -> [(&'static str, f64); 8] {
        [
            ("step", self.step_s),
            ("data_wait", self.data_wait_s),
            ("forward", self.forward_s),
            ("backward", self.backward_s),
            ("grad_reduce", self.grad_reduce_s),
            ("optimizer", self.optimizer_s),
            ("checkpoint", self.checkpoint_s),
            ("collective", self.collective_s),
        ]
    }

    /// The mean of `steps` (zero when empty).
    pub fn mean<'a>(steps: impl IntoIterator<Item = &'a StepTiming>) -> StepTiming {
        let mut sum = StepTiming::default();
        let mut n = 0.0;
        for t in steps {
            n += 1.0;
            sum.step_s += t.step_s;
            sum.data_wait_s += t.data_wait_s;
            sum.forward_s += t.forward_s;
            sum.backward_s += t.backward_s;
            sum.grad_reduce_s += t.grad_reduce_s;
            sum.optimizer_s += t.optimizer_s;
            sum.checkpoint_s += t.checkpoint_s;
            sum.collective_s += t.collective_s;
        }
        if n == 0.0 {
            return sum;
        }
        StepTiming {
            step_s: sum.step_s / n,
            data_wait_s: sum.data_wait_s / n,
            forward_s: sum.forward_s / n,
            backward_s: sum.backward_s / n,
            grad_reduce_s: sum.grad_reduce_s / n,
            optimizer_s: sum.optimizer_s / n,
            checkpoint_s: sum.checkpoint_s / n,
            collective_s: sum.collective_s / n,
        }
    }
}

/// A rank's data pipeline since its run started.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DataFigures {
    /// Samples skipped, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Bytes fetched from storage.
    pub bytes_read: u64,
    /// Storage requests retried after a transient error.
    pub storage_retries: u64,
    /// How full the prefetch queue was when a batch was taken (0 starving, 1 full).
    pub prefetch_fill: f64,
}
