//! The checkpoint registry: every reported checkpoint, per configuration digest; the
//! newest by step is where the next round resumes (weights and data position).

use super::{Action, DecisionError, Policy, State};
use proto::domain::{CheckpointInfo, CheckpointReport, Step};
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

    /// The directory the registered checkpoints lie in (that of the first registered).
    pub fn directory(&self) -> Option<&str> {
        self.entries
            .first()
            .and_then(|c| c.url.rsplit_once('/'))
            .map(|(dir, _)| dir)
    }

    /// Every checkpoint, newest (highest step) first.
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
    policy: &Policy,
) -> Result<(bool, Vec<Action>), DecisionError> {
    state.node(report.node)?;
    let dir = checkpoint_dir(&report.url, report.step)?;
    // The job's checkpoint directory: configured, else the one its checkpoints are in.
    let root = policy
        .checkpoint_root
        .as_deref()
        .or_else(|| state.checkpoints.directory());
    if let Some(root) = root {
        if dir != root {
            return Err(DecisionError::Invalid(format!(
                "checkpoint url {} is not under the job's checkpoint directory {root}",
                report.url
            )));
        }
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

/// The directory a reported checkpoint lies in: the URL must be the `step-N` directory
/// (nine digits or more, as workers name them) of the reported step, without a query,
/// fragment, whitespace, control characters or `.`/`..` segments.
fn checkpoint_dir(url: &str, step: Step) -> Result<&str, DecisionError> {
    let refuse = |why: String| {
        Err(DecisionError::Invalid(format!(
            "checkpoint url {url:?} {why}"
        )))
    };
    let name = step.dir_name();
    let Some(dir) = url
        .strip_suffix(name.as_str())
        .and_then(|p| p.strip_suffix('/'))
    else {
        return refuse(format!("is not the {name} directory of step {step}"));
    };
    if dir.is_empty() || dir.ends_with("://") || dir.ends_with(':') {
        return refuse("names no directory".into());
    }
    if url
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '?' || c == '#')
    {
        return refuse("holds whitespace, control characters, a query or a fragment".into());
    }
    if dir
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return refuse("holds . or .. segments".into());
    }
    Ok(dir)
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

    #[test]
    fn checkpoint_urls_must_be_step_directories_of_the_jobs_checkpoint_directory() {
        use crate::state::testing::{policy, running};
        let (mut state, ids) = running(&["a", "b"]);
        let report = |step: u64, url: &str| CheckpointReport {
            node: ids[0],
            round: RoundId::new(1),
            step: Step::new(step),
            url: url.into(),
            position: DataPosition::default(),
            config_digest: "cfg".into(),
            eval_suites: vec![],
        };
        let refused = |state: &mut State, step, url: &str, policy: &Policy| {
            let before = state.clone();
            let err = super::report(state, report(step, url), 10, policy).unwrap_err();
            assert!(matches!(err, DecisionError::Invalid(_)), "{url}: {err}");
            assert_eq!(*state, before, "{url} changed the state");
        };
        for url in [
            "file:///etc",
            "",
            "s3://b/run/step-000000041",
            "s3://b/run/step-40",
            "s3://b/run/../etc/step-000000040",
            "s3://b/run/step-000000040?x=1",
            "s3://b/run /step-000000040",
            "/step-000000040",
            "file:///step-000000040",
        ] {
            refused(&mut state, 40, url, &policy());
        }
        // With the directory configured, only its checkpoints are taken.
        let configured = Policy {
            checkpoint_root: Some("s3://b/run".into()),
            ..policy()
        };
        refused(&mut state, 40, "s3://b/other/step-000000040", &configured);
        super::report(
            &mut state,
            report(40, "s3://b/run/step-000000040"),
            10,
            &configured,
        )
        .unwrap();
        // Without it, the directory of the first registered checkpoint is the job's.
        let mut tofu = running(&["a", "b"]).0;
        super::report(
            &mut tofu,
            report(20, "file:///ckpt/step-000000020"),
            10,
            &policy(),
        )
        .unwrap();
        refused(&mut tofu, 40, "file:///etc/step-000000040", &policy());
        super::report(
            &mut tofu,
            report(40, "file:///ckpt/step-000000040"),
            10,
            &policy(),
        )
        .unwrap();
        assert_eq!(tofu.checkpoints.newest("cfg").unwrap().step, Step::new(40));
    }
}
