//! Evaluation jobs: created when a checkpoint report names the eval suites due for it,
//! leased to evaluation agents, taken back when a lease runs out (its agent died or
//! hangs), finished by the agent's report. Every function is a decision over the state,
//! the time and the policy, like the rest of [`super`].
//!
//! A lease is identified by the job and its attempt number: a renewal or report quoting
//! an older attempt is refused, so an agent whose lease went to another agent cannot
//! overwrite that agent's result. A job whose leases ran out `eval_max_attempts` times
//! fails; an agent's error report fails the job at once (evaluation errors are about the
//! suite or the checkpoint, and a second agent would meet them again).

use super::{Action, DecisionError, Policy, State};
use proto::domain::{
    CheckpointInfo, EvalId, EvalJob, EvalLease, EvalPhase, EvalReport, LeaseAnswer, LeaseRequest,
};
use serde::{Deserialize, Serialize};

/// Every evaluation job of the coordinator, in creation order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalQueue {
    /// The id the next job gets.
    pub next_id: u64,
    /// The jobs, oldest first.
    pub jobs: Vec<EvalJob>,
}

impl EvalQueue {
    fn job_mut(&mut self, id: EvalId) -> Result<&mut EvalJob, DecisionError> {
        self.jobs
            .iter_mut()
            .find(|j| j.id == id)
            .ok_or_else(|| DecisionError::Invalid(format!("no evaluation job {}", id.get())))
    }
}

/// Creates one pending job per suite in `suites` for `checkpoint`, skipping suites that
/// already have a job on that checkpoint (a checkpoint reported twice).
pub fn schedule(
    state: &mut State,
    checkpoint: &CheckpointInfo,
    suites: &[String],
    now_ms: u64,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for suite in suites {
        let exists = state.evals.jobs.iter().any(|j| {
            j.suite == *suite
                && j.checkpoint_step == checkpoint.step
                && j.config_digest == checkpoint.config_digest
        });
        if exists || suite.trim().is_empty() {
            continue;
        }
        state.evals.next_id = state.evals.next_id.max(1);
        let id = EvalId::new(state.evals.next_id);
        state.evals.next_id += 1;
        state.evals.jobs.push(EvalJob {
            id,
            suite: suite.clone(),
            checkpoint_step: checkpoint.step,
            checkpoint_url: checkpoint.url.clone(),
            config_digest: checkpoint.config_digest.clone(),
            created_ms: now_ms,
            attempts: 0,
            phase: EvalPhase::Pending,
        });
        actions.push(Action::EvalScheduled {
            id,
            suite: suite.clone(),
            step: checkpoint.step,
        });
    }
    actions
}

/// Hands the oldest pending job of the agent's config digest to the agent. Nothing
/// pending: wait, or [`LeaseAnswer::Over`] once training is over and no job of that digest
/// is pending or running (a running one may still come back if its agent dies).
pub fn lease(
    state: &mut State,
    request: &LeaseRequest,
    now_ms: u64,
    policy: &Policy,
) -> Result<(LeaseAnswer, Vec<Action>), DecisionError> {
    if request.agent.trim().is_empty() {
        return Err(DecisionError::Invalid("agent_name is empty".into()));
    }
    let mut actions = expire_leases(state, now_ms, policy);
    let digest = &request.config_digest;
    let pending = state
        .evals
        .jobs
        .iter_mut()
        .find(|j| j.config_digest == *digest && j.phase == EvalPhase::Pending);
    let Some(job) = pending else {
        let busy = state
            .evals
            .jobs
            .iter()
            .any(|j| j.config_digest == *digest && !j.phase.is_over());
        let answer = if state.phase.is_over() && !busy {
            LeaseAnswer::Over
        } else {
            LeaseAnswer::Wait(policy.heartbeat_interval_ms)
        };
        return Ok((answer, actions));
    };
    job.attempts += 1;
    job.phase = EvalPhase::Running {
        agent: request.agent.clone(),
        expires_ms: now_ms + policy.eval_lease_ms,
    };
    actions.push(Action::EvalLeased {
        id: job.id,
        agent: request.agent.clone(),
        attempt: job.attempts,
    });
    Ok((
        LeaseAnswer::Leased(EvalLease {
            id: job.id,
            attempt: job.attempts,
            suite: job.suite.clone(),
            checkpoint_step: job.checkpoint_step,
            checkpoint_url: job.checkpoint_url.clone(),
            lease_ms: policy.eval_lease_ms,
        }),
        actions,
    ))
}

/// The running job `id` under lease `attempt`, or why the lease is gone.
fn held(state: &mut State, id: EvalId, attempt: u32) -> Result<&mut EvalJob, DecisionError> {
    let job = state.evals.job_mut(id)?;
    match &job.phase {
        EvalPhase::Running { .. } if job.attempts == attempt => Ok(job),
        phase => Err(DecisionError::LeaseLost {
            id,
            attempt,
            now: format!("{} (lease {})", phase.name(), job.attempts),
        }),
    }
}

/// Extends lease `attempt` of job `id` by the policy's lease time; returns the new expiry.
/// A lease that ran out but was not handed to anyone else yet is still the agent's.
pub fn renew(
    state: &mut State,
    id: EvalId,
    attempt: u32,
    now_ms: u64,
    policy: &Policy,
) -> Result<(u64, Vec<Action>), DecisionError> {
    let job = held(state, id, attempt)?;
    let expires = now_ms + policy.eval_lease_ms;
    if let EvalPhase::Running { expires_ms, .. } = &mut job.phase {
        *expires_ms = expires;
    }
    Ok((expires, Vec::new()))
}

/// Records an agent's result (the job is done) or error (the job failed).
pub fn report(
    state: &mut State,
    report: EvalReport,
    now_ms: u64,
) -> Result<((), Vec<Action>), DecisionError> {
    let job = held(state, report.id, report.attempt)?;
    let EvalPhase::Running { agent, .. } = &job.phase else {
        unreachable!("held() returns running jobs");
    };
    let agent = agent.clone();
    let action = match report.outcome {
        Ok((metrics, result_url)) => {
            let action = Action::EvalDone {
                id: job.id,
                suite: job.suite.clone(),
                step: job.checkpoint_step,
                result_url: result_url.clone(),
            };
            job.phase = EvalPhase::Done {
                agent,
                metrics,
                result_url,
                finished_ms: now_ms,
            };
            action
        }
        Err(error) => {
            let action = Action::EvalFailed {
                id: job.id,
                error: error.clone(),
            };
            job.phase = EvalPhase::Failed {
                agent,
                error,
                finished_ms: now_ms,
            };
            action
        }
    };
    Ok(((), vec![action]))
}

/// Takes back every lease that ran out before `now_ms`: the job is pending again, or
/// failed once it has had `eval_max_attempts` leases.
pub fn expire_leases(state: &mut State, now_ms: u64, policy: &Policy) -> Vec<Action> {
    let mut actions = Vec::new();
    for job in &mut state.evals.jobs {
        let EvalPhase::Running { agent, expires_ms } = &job.phase else {
            continue;
        };
        if now_ms <= *expires_ms {
            continue;
        }
        let agent = agent.clone();
        actions.push(Action::EvalLeaseExpired {
            id: job.id,
            agent: agent.clone(),
            attempt: job.attempts,
        });
        job.phase = if job.attempts >= policy.eval_max_attempts {
            let error = format!(
                "{} leases ran out ({} ms each without a renewal; the last held by {agent}): the agents running it died or hang",
                job.attempts, policy.eval_lease_ms
            );
            actions.push(Action::EvalFailed {
                id: job.id,
                error: error.clone(),
            });
            EvalPhase::Failed {
                agent,
                error,
                finished_ms: now_ms,
            }
        } else {
            EvalPhase::Pending
        };
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;
    use super::*;
    use proto::domain::{DataPosition, EvalMetric, JobPhase};

    fn checkpoint(step: u64) -> CheckpointInfo {
        CheckpointInfo {
            step: Step::new(step),
            url: format!("mem://run/step-{step}"),
            position: DataPosition::default(),
            config_digest: "cfg".into(),
            round: RoundId::new(1),
            registered_unix_ms: 0,
        }
    }

    fn ask(state: &mut State, agent: &str, now: u64) -> LeaseAnswer {
        let request = LeaseRequest {
            agent: agent.into(),
            config_digest: "cfg".into(),
        };
        lease(state, &request, now, &policy()).unwrap().0
    }

    fn leased(answer: LeaseAnswer) -> EvalLease {
        match answer {
            LeaseAnswer::Leased(l) => l,
            other => panic!("expected a lease, got {other:?}"),
        }
    }

    fn done(id: EvalId, attempt: u32) -> EvalReport {
        EvalReport {
            id,
            attempt,
            outcome: Ok((
                vec![EvalMetric {
                    name: "ncut.p_map".into(),
                    value: 0.7,
                }],
                "mem://run/eval.json".into(),
            )),
            images: vec![],
        }
    }

    #[test]
    fn a_checkpoint_gets_one_job_per_due_suite_once() {
        let (mut state, _) = running(&["a", "b"]);
        let suites = vec!["splice".to_string(), "retrieval".to_string()];
        assert_eq!(schedule(&mut state, &checkpoint(10), &suites, 5).len(), 2);
        assert!(
            schedule(&mut state, &checkpoint(10), &suites, 6).is_empty(),
            "the same checkpoint reported again adds nothing"
        );
        schedule(&mut state, &checkpoint(20), &suites[..1], 7);
        let jobs: Vec<(u64, &str, u64)> = state
            .evals
            .jobs
            .iter()
            .map(|j| (j.id.get(), j.suite.as_str(), j.checkpoint_step.get()))
            .collect();
        assert_eq!(
            jobs,
            [(1, "splice", 10), (2, "retrieval", 10), (3, "splice", 20)]
        );
    }

    #[test]
    fn agents_get_the_oldest_pending_job_of_their_digest() {
        let (mut state, _) = running(&["a", "b"]);
        schedule(&mut state, &checkpoint(10), &["s".into()], 0);
        let mut other = checkpoint(5);
        other.config_digest = "other".into();
        schedule(&mut state, &other, &["s".into()], 0);
        schedule(&mut state, &checkpoint(20), &["s".into()], 0);
        let first = leased(ask(&mut state, "x", 100));
        assert_eq!((first.checkpoint_step.get(), first.attempt), (10, 1));
        let second = leased(ask(&mut state, "y", 100));
        assert_eq!(
            second.checkpoint_step,
            Step::new(20),
            "the other digest's job is skipped"
        );
        assert_eq!(
            ask(&mut state, "z", 100),
            LeaseAnswer::Wait(policy().heartbeat_interval_ms),
            "training still runs: more checkpoints may come"
        );
    }

    #[test]
    fn a_lease_that_runs_out_goes_to_another_agent_and_the_first_cannot_report() {
        let (mut state, _) = running(&["a", "b"]);
        schedule(&mut state, &checkpoint(10), &["s".into()], 0);
        let lease_ms = policy().eval_lease_ms;
        let first = leased(ask(&mut state, "dies", 0));
        // Renewed in time: still the first agent's.
        renew(&mut state, first.id, 1, lease_ms - 1, &policy()).unwrap();
        assert!(matches!(
            ask(&mut state, "other", lease_ms + 1),
            LeaseAnswer::Wait(_)
        ));
        // No renewal for a whole lease: the next request takes it over.
        let later = 2 * lease_ms + 10;
        let second = leased(ask(&mut state, "other", later));
        assert_eq!((second.id, second.attempt), (first.id, 2));
        let stale = report(&mut state, done(first.id, 1), later + 1);
        assert!(matches!(
            stale,
            Err(DecisionError::LeaseLost { attempt: 1, .. })
        ));
        assert!(renew(&mut state, first.id, 1, later + 1, &policy()).is_err());
        report(&mut state, done(first.id, 2), later + 2).unwrap();
        match &state.evals.jobs[0].phase {
            EvalPhase::Done { agent, metrics, .. } => {
                assert_eq!(agent, "other");
                assert_eq!(metrics[0].value, 0.7);
            }
            other => panic!("expected done, got {other:?}"),
        }
        assert!(
            report(&mut state, done(first.id, 2), later + 3).is_err(),
            "a job reports once"
        );
    }

    #[test]
    fn leases_that_keep_running_out_fail_the_job() {
        let (mut state, _) = running(&["a", "b"]);
        schedule(&mut state, &checkpoint(10), &["s".into()], 0);
        let p = policy();
        let mut now = 0;
        for attempt in 1..=p.eval_max_attempts {
            assert_eq!(leased(ask(&mut state, "flaky", now)).attempt, attempt);
            now += p.eval_lease_ms + 1;
        }
        let actions = expire_leases(&mut state, now, &p);
        assert!(actions
            .iter()
            .any(|a| matches!(a, Action::EvalFailed { .. })));
        match &state.evals.jobs[0].phase {
            EvalPhase::Failed { error, .. } => assert!(error.contains("leases ran out")),
            other => panic!("expected failed, got {other:?}"),
        }
    }

    #[test]
    fn an_error_report_fails_the_job_and_over_comes_when_nothing_is_left() {
        let (mut state, _) = running(&["a", "b"]);
        schedule(&mut state, &checkpoint(10), &["s".into()], 0);
        let l = leased(ask(&mut state, "x", 0));
        state.phase = JobPhase::Finished;
        assert!(
            matches!(ask(&mut state, "y", 1), LeaseAnswer::Wait(_)),
            "a running job may still come back"
        );
        let failed = EvalReport {
            id: l.id,
            attempt: 1,
            outcome: Err("no such dataset".into()),
            images: vec![],
        };
        report(&mut state, failed, 2).unwrap();
        assert!(matches!(
            &state.evals.jobs[0].phase,
            EvalPhase::Failed { error, .. } if error == "no such dataset"
        ));
        assert_eq!(ask(&mut state, "y", 3), LeaseAnswer::Over);
    }

    #[test]
    fn the_tick_takes_back_expired_leases_also_after_training_ended() {
        let (mut state, _) = running(&["a", "b"]);
        schedule(&mut state, &checkpoint(10), &["s".into()], 0);
        leased(ask(&mut state, "x", 0));
        state.phase = JobPhase::Finished;
        let actions = tick(&mut state, policy().eval_lease_ms + 1, &policy());
        assert!(actions
            .iter()
            .any(|a| matches!(a, Action::EvalLeaseExpired { .. })));
        assert_eq!(state.evals.jobs[0].phase, EvalPhase::Pending);
    }
}
