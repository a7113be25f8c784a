//! Batch norm in the training step: per-rank statistics (what PyTorch DDP does) or, with
//! `train.batch_norm = "synced"`, statistics over every rank's samples
//! ([`kernels::sync_bn`]). A synchronised step attaches the job's collective to the step's
//! [`SyncGroup`] for each forward and backward pass (the step uses the collective for the
//! embedding all-gather in between), and keeps the collective's own error when a sum over
//! the ranks fails, so a dead peer still reaches recovery as a collective failure.

use kernels::joint::JointModel;
use kernels::resnet::NormMode;
use kernels::sync_bn::{StatsReducer, SyncGroup};
use tch::Tensor;

use super::inputs::{embed_sides, StepInputs};
use super::RuntimeError;
use crate::collective::{Collective, CollectiveError};

/// The batch norms of one step.
#[derive(Debug)]
pub struct StepNorms {
    group: Option<SyncGroup>,
    train: bool,
}

impl StepNorms {
    /// Synchronised when asked for, training, and there is more than one rank.
    pub fn new(synced: bool, train: bool, world: usize) -> Self {
        Self {
            group: (synced && train && world > 1).then(SyncGroup::new),
            train,
        }
    }

    /// Whether every forward and backward pass of the step is a collective call.
    pub fn is_synced(&self) -> bool {
        self.group.is_some()
    }

    /// The embeddings of every side of `inputs` with the batch norms in this step's mode.
    pub fn embed(
        &self,
        model: &JointModel,
        inputs: &StepInputs,
        coll: &mut dyn Collective,
    ) -> Result<Vec<Tensor>, RuntimeError> {
        let Some(group) = &self.group else {
            return Ok(embed_sides(model, inputs, NormMode::local(self.train))?);
        };
        let mut stats = CollectiveStats { coll, failed: None };
        let out = {
            let attached = group.attach(&mut stats);
            embed_sides(model, inputs, NormMode::Synced(&attached))
        };
        out.map_err(|e| stats.blame(e.into()))
    }

    /// Back-propagates `loss` (a collective call when synchronised).
    pub fn backward(&self, loss: &Tensor, coll: &mut dyn Collective) -> Result<(), RuntimeError> {
        let Some(group) = &self.group else {
            loss.backward();
            return Ok(());
        };
        let mut stats = CollectiveStats { coll, failed: None };
        let out = {
            let _attached = group.attach(&mut stats);
            loss.f_backward()
        };
        out.map_err(|e| stats.blame(RuntimeError::Model(kernels::KernelsError::Torch(e))))
    }
}

/// The collective as the batch norms' reducer, keeping its typed error.
struct CollectiveStats<'c> {
    coll: &'c mut dyn Collective,
    failed: Option<CollectiveError>,
}

impl CollectiveStats<'_> {
    /// The collective's error if a sum failed, else `other`.
    fn blame(&mut self, other: RuntimeError) -> RuntimeError {
        self.failed.take().map(RuntimeError::from).unwrap_or(other)
    }
}

impl StatsReducer for CollectiveStats<'_> {
    fn all_reduce_sum(&mut self, t: &mut Tensor) -> Result<(), String> {
        self.coll.all_reduce_sum(t).map_err(|e| {
            let message = e.to_string();
            self.failed = Some(e);
            message
        })
    }
}
