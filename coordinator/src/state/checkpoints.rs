//! The checkpoint registry: every reported checkpoint, per configuration digest; the
//! newest by step is where the next round resumes (weights and data position).

use super::{Action, DecisionError, State};
use proto::domain::{CheckpointInfo, CheckpointReport};
use serde::{Deserialize, Serialize};

/// Registered checkpoints of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRegistry {
    entries: Vec<CheckpointInfo>,
}

impl CheckpointRegistry {
    /// Adds `info`, replacing an entry of the same digest and step; returns whether it
    /// is now the newest of its digest.
    pub fn insert(&mut self, info: CheckpointInfo) -> bool {
        self.entries
            .retain(|c| !(c.config_digest == info.config_digest && c.step == info.step));
        let digest = info.config_digest.clone();
        let step = info.step;
        self.entries.push(info);
        self.newest(&digest).is_some_and(|c| c.step == step)
    }

    /// The newest checkpoint (highest step, then latest registration) of `digest`.
    pub fn newest(&self, digest: &str) -> Option<&CheckpointInfo> {
        self.entries
            .iter()
            .filter(|c| c.config_digest == digest)
            .max_by_key(|c| (c.step, c.registered_unix_ms))
    }

    /// Every checkpoint, newest step first.
    pub fn newest_first(&self) -> Vec<CheckpointInfo> {
        let mut all = self.entries.clone();
        all.sort_by_key(|c| std::cmp::Reverse((c.step, c.registered_unix_ms)));
        all
    }

    /// Every checkpoint in registration order.
    pub fn entries(&self) -> &[CheckpointInfo] {
        &self.entries
    }

    /// A registry holding `entries` (as loaded from storage).
    pub fn from_entries(entries: Vec<CheckpointInfo>) -> Self {
        Self { entries }
    }
}

/// Registers a checkpoint reported by a node (also after the job ended: a drained
/// member reports its last one) and creates the evaluation jobs the report asks for.
pub fn report(
    state: &mut State,
    report: CheckpointReport,
    now_ms: u64,
) -> Result<(bool, Vec<Action>), DecisionError> {
    state.node(report.node)?;
    if report.url.trim().is_empty() {
        return Err(DecisionError::Invalid("checkpoint url is empty".into()));
    }
    if report.round > state.round {
        return Err(DecisionError::Invalid(format!(
            "checkpoint of round {} reported but the latest round is {}",
            report.round, state.round
        )));
    }
    let info = CheckpointInfo {
        step: report.step,
        url: report.url,
        position: report.position,
        config_digest: report.config_digest,
        round: report.round,
        registered_unix_ms: now_ms,
    };
    let (url, step) = (info.url.clone(), info.step);
    let mut actions = super::eval::schedule(state, &info, &report.eval_suites, now_ms);
    let newest = state.checkpoints.insert(info);
    actions.insert(0, Action::CheckpointRegistered { step, url, newest });
    Ok((newest, actions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::domain::{DataPosition, RoundId, Step};

    fn info(step: u64, digest: &str, at: u64) -> CheckpointInfo {
        CheckpointInfo {
            step: Step::new(step),
            url: format!("mem://{digest}/{step}"),
            position: DataPosition {
                epoch: 0,
                samples_consumed: step * 10,
            },
            config_digest: digest.into(),
            round: RoundId::new(1),
            registered_unix_ms: at,
        }
    }

    #[test]
    fn newest_is_by_step_and_per_digest() {
        let mut registry = CheckpointRegistry::default();
        assert!(registry.insert(info(20, "x", 1)));
        assert!(
            !registry.insert(info(10, "x", 2)),
            "an older step registered later is not newest"
        );
        assert!(
            registry.insert(info(5, "y", 3)),
            "another digest has its own newest"
        );
        assert_eq!(registry.newest("x").unwrap().step, Step::new(20));
        assert_eq!(registry.newest("y").unwrap().step, Step::new(5));
        assert!(registry.newest("z").is_none());
        let steps: Vec<u64> = registry
            .newest_first()
            .iter()
            .map(|c| c.step.get())
            .collect();
        assert_eq!(steps, vec![20, 10, 5]);
    }

    #[test]
    fn the_same_step_reported_twice_replaces_the_entry() {
        let mut registry = CheckpointRegistry::default();
        registry.insert(info(20, "x", 1));
        let mut again = info(20, "x", 2);
        again.url = "mem://moved".into();
        assert!(registry.insert(again));
        assert_eq!(registry.entries().len(), 1);
        assert_eq!(registry.newest("x").unwrap().url, "mem://moved");
    }
}
