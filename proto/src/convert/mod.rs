//! The one place that maps wire messages to domain types and back. Requests and
//! responses convert in both directions, so the coordinator and the workers share it.
//! A required field that is absent or an enum value outside the protocol is a
//! [`ConvertError`]. Submodules: `node` (registration, heartbeats, directives), `round`
//! (rendezvous, data positions, checkpoints), `job` (status, stop), `eval` (evaluation jobs, leases, reports).

mod eval;
mod job;
mod node;
mod round;

/// A wire message that does not make a valid domain value.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    /// A required message field is absent.
    #[error("{message}.{field} is required but missing")]
    MissingField {
        /// Message name.
        message: &'static str,
        /// Field name.
        field: &'static str,
    },
    /// An enum field holds a value this version does not know.
    #[error("{message}.{field} holds {value}, which this coordinator version does not know")]
    UnknownEnum {
        /// Message name.
        message: &'static str,
        /// Field name.
        field: &'static str,
        /// The value received.
        value: i32,
    },
}

pub(crate) fn required<T>(
    value: Option<T>,
    message: &'static str,
    field: &'static str,
) -> Result<T, ConvertError> {
    value.ok_or(ConvertError::MissingField { message, field })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::*;
    use crate::wire;

    fn checkpoint() -> CheckpointInfo {
        CheckpointInfo {
            step: Step::new(40),
            url: "file:///runs/a/step-40".into(),
            position: DataPosition {
                epoch: 1,
                samples_consumed: 512,
            },
            config_digest: "abc".into(),
            round: RoundId::new(2),
            registered_unix_ms: 7,
        }
    }

    #[test]
    fn assignment_survives_the_wire_both_ways() {
        let assignment = Assignment {
            round: RoundId::new(3),
            world_size: 2,
            global_ranks: vec![Rank::new(1)],
            peers: vec![
                Peer {
                    rank: Rank::new(0),
                    address: "a:1".into(),
                    node_name: "a".into(),
                },
                Peer {
                    rank: Rank::new(1),
                    address: "b:1".into(),
                    node_name: "b".into(),
                },
            ],
            bootstrap: vec![1, 2, 3],
            start: DataPosition {
                epoch: 1,
                samples_consumed: 512,
            },
            resume_from: Some(checkpoint()),
        };
        let wire = wire::JoinRendezvousResponse::from(assignment.clone());
        assert_eq!(Assignment::try_from(wire).unwrap(), assignment);
    }

    #[test]
    fn missing_position_is_a_typed_error() {
        let request = wire::ReportCheckpointRequest {
            node_id: 1,
            ..Default::default()
        };
        assert_eq!(
            CheckpointReport::try_from(request).unwrap_err(),
            ConvertError::MissingField {
                message: "ReportCheckpointRequest",
                field: "position"
            }
        );
    }

    #[test]
    fn directives_round_trip_and_unknown_values_are_rejected() {
        for d in [
            Directive::Continue,
            Directive::Rejoin {
                round: RoundId::new(4),
            },
            Directive::Standby,
            Directive::Drain,
            Directive::Stop,
        ] {
            assert_eq!(
                Directive::try_from(wire::HeartbeatResponse::from(d)).unwrap(),
                d
            );
        }
        let bad = wire::HeartbeatResponse {
            directive: 99,
            round: 0,
        };
        assert!(matches!(
            Directive::try_from(bad),
            Err(ConvertError::UnknownEnum { value: 99, .. })
        ));
        let unspecified = wire::HeartbeatResponse {
            directive: 0,
            round: 0,
        };
        assert!(Directive::try_from(unspecified).is_err());
    }

    #[test]
    fn status_round_trips_with_phase_and_checkpoints() {
        let status = JobStatus {
            job_id: JobId::new(1),
            phase: JobPhase::Restarting,
            round: RoundId::new(5),
            world_size: 4,
            members: vec![MemberStatus {
                node_id: NodeId::new(2),
                spec: NodeSpec {
                    name: "n".into(),
                    host: "h".into(),
                    device_count: 0,
                    device_kind: "cpu".into(),
                    procs: 2,
                    config_digest: "abc".into(),
                },
                alive: true,
                heartbeat_age_ms: 10,
                global_ranks: vec![Rank::new(0), Rank::new(1)],
                progress: vec![RankProgress {
                    global_rank: Rank::new(0),
                    step: Step::new(3),
                    lr: 1e-4,
                    timing: StepTiming {
                        step_s: 0.5,
                        collective_s: 0.25,
                        ..Default::default()
                    },
                    data: DataFigures {
                        skipped: [("bad_tar".to_string(), 2)].into(),
                        bytes_read: 7,
                        storage_retries: 1,
                        prefetch_fill: 0.5,
                    },
                    memory_peak_bytes: 9,
                    mfu: 0.4,
                    ..Default::default()
                }],
                finished: false,
            }],
            samples_per_sec: 12.5,
            checkpoints: vec![checkpoint()],
            config_digest: "abc".into(),
            joined_nodes: 1,
            evals: vec![],
            stragglers: vec![Rank::new(1)],
            median_own_step_s: 0.25,
        };
        let back = JobStatus::try_from(wire::GetStatusResponse::from(status.clone())).unwrap();
        assert_eq!(back, status);
    }
}
