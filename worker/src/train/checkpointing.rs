//! The trainer's checkpoint and stop phases, and what it tells its supervisor: a
//! checkpoint (rank 0) is saved, then announced as a [`TrainEvent::Checkpoint`].

use crate::checkpoint::{Checkpoint, DataPosition, TrainState, FORMAT_VERSION};
use crate::events::TrainEvent;
use crate::runtime::model;

use super::trainer::Trainer;
use super::TrainError;

impl Trainer<'_> {
    /// Phase checkpoint (rank 0): saves weights, optimiser state and the position the run
    /// resumes from; `final_step`: training reached its last step.
    pub(super) fn checkpoint(&mut self, final_step: bool) -> Result<(), TrainError> {
        let ck = Checkpoint {
            weights: model::weights_to_bytes(&self.vs)?.into(),
            optimizer: Some(self.opt.to_bytes()?.into()),
            state: self.train_state(),
            config: Some(self.cfg.spec.to_toml().into()),
        };
        let saved = self.data.runtime.block_on(self.store.save(&ck))?;
        tracing::info!(step = saved.step, url = %saved.url, "checkpoint saved");
        self.emit(TrainEvent::Checkpoint {
            step: saved.step,
            url: saved.url.clone(),
            epoch: ck.state.data.epoch,
            consumed: ck.state.data.consumed,
            config_digest: ck.state.config_digest.clone(),
            final_step,
        });
        self.committed = Some(saved.step);
        self.summary.checkpoint = Some(saved);
        Ok(())
    }

    /// Phase stop: a rank was signalled. The batch in hand is not trained: rank 0
    /// checkpoints right before it, unless this step's checkpoint is already in storage
    /// (saved by this run, or the one it resumed from), and every rank leaves at this step.
    pub(super) fn stop(&mut self) -> Result<(), TrainError> {
        if self.leader && self.committed != Some(self.step) {
            self.checkpoint(false)?;
        }
        tracing::warn!(
            step = self.step,
            "stopping on a signal after the last complete step; --resume continues"
        );
        self.summary.interrupted = true;
        Ok(())
    }

    /// Resumed at the end: reports the final checkpoint again, so that a new job on a
    /// finished run (a fresh coordinator) registers it and runs its evaluations.
    pub(super) fn report_final_again(&mut self) -> Result<(), TrainError> {
        if let Some(last) = self.data.runtime.block_on(self.store.latest())? {
            tracing::info!(step = self.step, url = %last.url, "nothing left to train: the final checkpoint is reported again");
            self.emit(TrainEvent::Checkpoint {
                step: last.step,
                url: last.url,
                epoch: self.position.epoch,
                consumed: self.position.consumed,
                config_digest: self.cfg.digest.as_str().to_string(),
                final_step: true,
            });
        }
        Ok(())
    }

    /// Sends `event` to the supervisor, if any; one that stopped listening does not stop
    /// training.
    pub(super) fn emit(&self, event: TrainEvent) {
        if let Some(tx) = &self.opts.events {
            let _ = tx.send(event);
        }
    }

    fn train_state(&self) -> TrainState {
        TrainState {
            format_version: FORMAT_VERSION,
            step: self.step,
            epoch: self.position.epoch,
            data: DataPosition {
                epoch: self.position.epoch,
                consumed: self.position.consumed,
            },
            // Random draws are seeded from (data.seed, step): the seed is the whole state.
            rng_state: self.cfg.spec.data.seed.to_le_bytes().to_vec(),
            config_digest: self.cfg.digest.as_str().to_string(),
            saved_at_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }
}
