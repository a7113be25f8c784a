//! Evaluation jobs, leases and reports.

use super::{required, ConvertError};
use crate::domain::*;
use crate::wire;

impl From<EvalMetric> for wire::EvalMetric {
    fn from(d: EvalMetric) -> Self {
        Self {
            name: d.name,
            value: d.value,
        }
    }
}

impl From<wire::EvalMetric> for EvalMetric {
    fn from(w: wire::EvalMetric) -> Self {
        Self {
            name: w.name,
            value: w.value,
        }
    }
}

impl From<EvalJob> for wire::EvalJob {
    fn from(d: EvalJob) -> Self {
        let mut w = Self {
            eval_id: d.id.get(),
            suite: d.suite,
            checkpoint_step: d.checkpoint_step.get(),
            checkpoint_url: d.checkpoint_url,
            config_digest: d.config_digest,
            attempts: d.attempts,
            created_unix_ms: d.created_ms,
            ..Default::default()
        };
        let state = match d.phase {
            EvalPhase::Pending => wire::EvalState::Pending,
            EvalPhase::Running { agent, expires_ms } => {
                (w.agent, w.lease_expires_unix_ms) = (agent, expires_ms);
                wire::EvalState::Running
            }
            EvalPhase::Done {
                agent,
                metrics,
                result_url,
                finished_ms,
            } => {
                w.agent = agent;
                w.metrics = metrics.into_iter().map(Into::into).collect();
                w.result_url = result_url;
                w.finished_unix_ms = finished_ms;
                wire::EvalState::Done
            }
            EvalPhase::Failed {
                agent,
                error,
                finished_ms,
            } => {
                (w.agent, w.error, w.finished_unix_ms) = (agent, error, finished_ms);
                wire::EvalState::Failed
            }
        };
        w.state = state as i32;
        w
    }
}

impl TryFrom<wire::EvalJob> for EvalJob {
    type Error = ConvertError;
    fn try_from(w: wire::EvalJob) -> Result<Self, ConvertError> {
        let unknown = ConvertError::UnknownEnum {
            message: "EvalJob",
            field: "state",
            value: w.state,
        };
        let phase = match wire::EvalState::try_from(w.state).map_err(|_| unknown.clone())? {
            wire::EvalState::Pending => EvalPhase::Pending,
            wire::EvalState::Running => EvalPhase::Running {
                agent: w.agent,
                expires_ms: w.lease_expires_unix_ms,
            },
            wire::EvalState::Done => EvalPhase::Done {
                agent: w.agent,
                metrics: w.metrics.into_iter().map(Into::into).collect(),
                result_url: w.result_url,
                finished_ms: w.finished_unix_ms,
            },
            wire::EvalState::Failed => EvalPhase::Failed {
                agent: w.agent,
                error: w.error,
                finished_ms: w.finished_unix_ms,
            },
            wire::EvalState::Unspecified => return Err(unknown),
        };
        Ok(Self {
            id: EvalId::new(w.eval_id),
            suite: w.suite,
            checkpoint_step: Step::new(w.checkpoint_step),
            checkpoint_url: w.checkpoint_url,
            config_digest: w.config_digest,
            created_ms: w.created_unix_ms,
            attempts: w.attempts,
            phase,
        })
    }
}

impl From<wire::LeaseEvalRequest> for LeaseRequest {
    fn from(w: wire::LeaseEvalRequest) -> Self {
        Self {
            agent: w.agent_name,
            config_digest: w.config_digest,
        }
    }
}

impl From<LeaseRequest> for wire::LeaseEvalRequest {
    fn from(d: LeaseRequest) -> Self {
        Self {
            agent_name: d.agent,
            config_digest: d.config_digest,
        }
    }
}

impl From<LeaseAnswer> for wire::LeaseEvalResponse {
    fn from(d: LeaseAnswer) -> Self {
        match d {
            LeaseAnswer::Leased(l) => Self {
                lease: Some(wire::EvalLease {
                    eval_id: l.id.get(),
                    attempt: l.attempt,
                    suite: l.suite,
                    checkpoint_step: l.checkpoint_step.get(),
                    checkpoint_url: l.checkpoint_url,
                    lease_ms: l.lease_ms,
                }),
                ..Default::default()
            },
            LeaseAnswer::Wait(ms) => Self {
                retry_after_ms: ms,
                ..Default::default()
            },
            LeaseAnswer::Over => Self {
                over: true,
                ..Default::default()
            },
        }
    }
}

impl From<wire::LeaseEvalResponse> for LeaseAnswer {
    fn from(w: wire::LeaseEvalResponse) -> Self {
        match w.lease {
            Some(l) => LeaseAnswer::Leased(EvalLease {
                id: EvalId::new(l.eval_id),
                attempt: l.attempt,
                suite: l.suite,
                checkpoint_step: Step::new(l.checkpoint_step),
                checkpoint_url: l.checkpoint_url,
                lease_ms: l.lease_ms,
            }),
            None if w.over => LeaseAnswer::Over,
            None => LeaseAnswer::Wait(w.retry_after_ms),
        }
    }
}

impl From<EvalReport> for wire::ReportEvalResultRequest {
    fn from(d: EvalReport) -> Self {
        let mut w = Self {
            eval_id: d.id.get(),
            attempt: d.attempt,
            images: d
                .images
                .into_iter()
                .map(|i| wire::EvalImage {
                    name: i.name,
                    jpeg: i.jpeg,
                })
                .collect(),
            ..Default::default()
        };
        match d.outcome {
            Ok((metrics, url)) => {
                w.metrics = metrics.into_iter().map(Into::into).collect();
                w.result_url = url;
            }
            Err(e) => w.error = e,
        }
        w
    }
}

impl TryFrom<wire::ReportEvalResultRequest> for EvalReport {
    type Error = ConvertError;
    fn try_from(w: wire::ReportEvalResultRequest) -> Result<Self, ConvertError> {
        let outcome = if w.error.is_empty() {
            let url = Some(w.result_url).filter(|u| !u.is_empty());
            let url = required(url, "ReportEvalResultRequest", "result_url")?;
            Ok((w.metrics.into_iter().map(Into::into).collect(), url))
        } else {
            Err(w.error)
        };
        Ok(Self {
            id: EvalId::new(w.eval_id),
            attempt: w.attempt,
            outcome,
            images: w
                .images
                .into_iter()
                .map(|i| EvalImage {
                    name: i.name,
                    jpeg: i.jpeg,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(phase: EvalPhase) -> EvalJob {
        EvalJob {
            id: EvalId::new(4),
            suite: "splice".into(),
            checkpoint_step: Step::new(600),
            checkpoint_url: "s3://b/runs/step-000000600".into(),
            config_digest: "abc".into(),
            created_ms: 5,
            attempts: 2,
            phase,
        }
    }

    #[test]
    fn every_eval_phase_survives_the_wire() {
        for phase in [
            EvalPhase::Pending,
            EvalPhase::Running {
                agent: "a".into(),
                expires_ms: 9,
            },
            EvalPhase::Done {
                agent: "a".into(),
                metrics: vec![EvalMetric {
                    name: "ncut.p_map".into(),
                    value: 0.5,
                }],
                result_url: "s3://b/x.json".into(),
                finished_ms: 11,
            },
            EvalPhase::Failed {
                agent: "b".into(),
                error: "no dataset".into(),
                finished_ms: 12,
            },
        ] {
            let d = job(phase);
            let back = EvalJob::try_from(wire::EvalJob::from(d.clone())).unwrap();
            assert_eq!(back, d);
        }
    }

    #[test]
    fn lease_answers_and_reports_survive_the_wire() {
        for a in [
            LeaseAnswer::Over,
            LeaseAnswer::Wait(250),
            LeaseAnswer::Leased(EvalLease {
                id: EvalId::new(1),
                attempt: 3,
                suite: "s".into(),
                checkpoint_step: Step::new(2),
                checkpoint_url: "u".into(),
                lease_ms: 1000,
            }),
        ] {
            assert_eq!(
                LeaseAnswer::from(wire::LeaseEvalResponse::from(a.clone())),
                a
            );
        }
        for outcome in [Ok((vec![], "u".to_string())), Err("boom".to_string())] {
            let r = EvalReport {
                id: EvalId::new(1),
                attempt: 1,
                outcome,
                images: vec![EvalImage {
                    name: "a.png".into(),
                    jpeg: vec![0xff, 0xd8],
                }],
            };
            let back = EvalReport::try_from(wire::ReportEvalResultRequest::from(r.clone()));
            assert_eq!(back.unwrap(), r);
        }
        let no_url = wire::ReportEvalResultRequest {
            eval_id: 1,
            attempt: 1,
            ..Default::default()
        };
        assert!(matches!(
            EvalReport::try_from(no_url),
            Err(ConvertError::MissingField {
                field: "result_url",
                ..
            })
        ));
        let bad = wire::EvalJob {
            state: 99,
            ..Default::default()
        };
        assert!(EvalJob::try_from(bad).is_err());
    }
}
