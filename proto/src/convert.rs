//! The one place that maps wire messages to domain types and back. Requests and
//! responses convert in both directions, so the coordinator and the workers share it.
//! A required field that is absent or an enum value outside the protocol is a
//! [`ConvertError`].

use crate::domain::*;
use crate::wire;

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

fn required<T>(
    value: Option<T>,
    message: &'static str,
    field: &'static str,
) -> Result<T, ConvertError> {
    value.ok_or(ConvertError::MissingField { message, field })
}

impl From<wire::DataPosition> for DataPosition {
    fn from(w: wire::DataPosition) -> Self {
        Self {
            epoch: w.epoch,
            samples_consumed: w.samples_consumed,
        }
    }
}

impl From<DataPosition> for wire::DataPosition {
    fn from(d: DataPosition) -> Self {
        Self {
            epoch: d.epoch,
            samples_consumed: d.samples_consumed,
        }
    }
}

impl From<wire::RegisterNodeRequest> for NodeSpec {
    fn from(w: wire::RegisterNodeRequest) -> Self {
        Self {
            name: w.node_name,
            host: w.host,
            device_count: w.device_count,
            device_kind: w.device_kind,
            procs: w.procs,
            config_digest: w.config_digest,
        }
    }
}

impl From<NodeSpec> for wire::RegisterNodeRequest {
    fn from(d: NodeSpec) -> Self {
        Self {
            node_name: d.name,
            host: d.host,
            device_count: d.device_count,
            device_kind: d.device_kind,
            procs: d.procs,
            config_digest: d.config_digest,
        }
    }
}

impl From<Registration> for wire::RegisterNodeResponse {
    fn from(d: Registration) -> Self {
        Self {
            node_id: d.node_id.0,
            job_id: d.job_id.0,
            heartbeat_interval_ms: d.heartbeat_interval_ms,
            heartbeat_timeout_ms: d.heartbeat_timeout_ms,
        }
    }
}

impl From<wire::RegisterNodeResponse> for Registration {
    fn from(w: wire::RegisterNodeResponse) -> Self {
        Self {
            node_id: NodeId(w.node_id),
            job_id: JobId(w.job_id),
            heartbeat_interval_ms: w.heartbeat_interval_ms,
            heartbeat_timeout_ms: w.heartbeat_timeout_ms,
        }
    }
}

impl From<wire::RankProgress> for RankProgress {
    fn from(w: wire::RankProgress) -> Self {
        Self {
            global_rank: w.global_rank,
            step: w.step,
            epoch: w.epoch,
            samples_consumed: w.samples_consumed,
            loss: w.loss,
            samples_per_sec: w.samples_per_sec,
        }
    }
}

impl From<RankProgress> for wire::RankProgress {
    fn from(d: RankProgress) -> Self {
        Self {
            global_rank: d.global_rank,
            step: d.step,
            epoch: d.epoch,
            samples_consumed: d.samples_consumed,
            loss: d.loss,
            samples_per_sec: d.samples_per_sec,
        }
    }
}

impl From<wire::HeartbeatRequest> for HeartbeatReport {
    fn from(w: wire::HeartbeatRequest) -> Self {
        Self {
            node: NodeId(w.node_id),
            progress: w.progress.into_iter().map(Into::into).collect(),
            finished: w.finished,
            leaving: w.leaving,
        }
    }
}

impl From<HeartbeatReport> for wire::HeartbeatRequest {
    fn from(d: HeartbeatReport) -> Self {
        Self {
            node_id: d.node.0,
            progress: d.progress.into_iter().map(Into::into).collect(),
            finished: d.finished,
            leaving: d.leaving,
        }
    }
}

impl From<Directive> for wire::HeartbeatResponse {
    fn from(d: Directive) -> Self {
        let (directive, round) = match d {
            Directive::Continue => (wire::Directive::Continue, 0),
            Directive::Rejoin { round } => (wire::Directive::Rejoin, round),
            Directive::Standby => (wire::Directive::Standby, 0),
            Directive::Drain => (wire::Directive::Drain, 0),
            Directive::Stop => (wire::Directive::Stop, 0),
        };
        Self {
            directive: directive as i32,
            round,
        }
    }
}

impl TryFrom<wire::HeartbeatResponse> for Directive {
    type Error = ConvertError;
    fn try_from(w: wire::HeartbeatResponse) -> Result<Self, ConvertError> {
        let unknown = ConvertError::UnknownEnum {
            message: "HeartbeatResponse",
            field: "directive",
            value: w.directive,
        };
        Ok(
            match wire::Directive::try_from(w.directive).map_err(|_| unknown.clone())? {
                wire::Directive::Continue => Directive::Continue,
                wire::Directive::Rejoin => Directive::Rejoin { round: w.round },
                wire::Directive::Standby => Directive::Standby,
                wire::Directive::Drain => Directive::Drain,
                wire::Directive::Stop => Directive::Stop,
                wire::Directive::Unspecified => return Err(unknown),
            },
        )
    }
}

impl From<wire::JoinRendezvousRequest> for JoinRequest {
    fn from(w: wire::JoinRendezvousRequest) -> Self {
        Self {
            node: NodeId(w.node_id),
            addresses: w.addresses,
            bootstrap_offer: w.bootstrap_offer,
            round: w.round,
        }
    }
}

impl From<JoinRequest> for wire::JoinRendezvousRequest {
    fn from(d: JoinRequest) -> Self {
        Self {
            node_id: d.node.0,
            addresses: d.addresses,
            bootstrap_offer: d.bootstrap_offer,
            round: d.round,
        }
    }
}

impl From<Peer> for wire::Peer {
    fn from(d: Peer) -> Self {
        Self {
            rank: d.rank,
            address: d.address,
            node_name: d.node_name,
        }
    }
}

impl From<wire::Peer> for Peer {
    fn from(w: wire::Peer) -> Self {
        Self {
            rank: w.rank,
            address: w.address,
            node_name: w.node_name,
        }
    }
}

impl From<CheckpointInfo> for wire::CheckpointInfo {
    fn from(d: CheckpointInfo) -> Self {
        Self {
            step: d.step,
            url: d.url,
            position: Some(d.position.into()),
            config_digest: d.config_digest,
            round: d.round,
            registered_unix_ms: d.registered_unix_ms,
        }
    }
}

impl TryFrom<wire::CheckpointInfo> for CheckpointInfo {
    type Error = ConvertError;
    fn try_from(w: wire::CheckpointInfo) -> Result<Self, ConvertError> {
        Ok(Self {
            step: w.step,
            url: w.url,
            position: required(w.position, "CheckpointInfo", "position")?.into(),
            config_digest: w.config_digest,
            round: w.round,
            registered_unix_ms: w.registered_unix_ms,
        })
    }
}

impl From<Assignment> for wire::JoinRendezvousResponse {
    fn from(d: Assignment) -> Self {
        Self {
            round: d.round,
            world_size: d.world_size,
            global_ranks: d.global_ranks,
            peers: d.peers.into_iter().map(Into::into).collect(),
            bootstrap: d.bootstrap,
            start: Some(d.start.into()),
            resume_from: d.resume_from.map(Into::into),
        }
    }
}

impl TryFrom<wire::JoinRendezvousResponse> for Assignment {
    type Error = ConvertError;
    fn try_from(w: wire::JoinRendezvousResponse) -> Result<Self, ConvertError> {
        Ok(Self {
            round: w.round,
            world_size: w.world_size,
            global_ranks: w.global_ranks,
            peers: w.peers.into_iter().map(Into::into).collect(),
            bootstrap: w.bootstrap,
            start: required(w.start, "JoinRendezvousResponse", "start")?.into(),
            resume_from: w.resume_from.map(TryInto::try_into).transpose()?,
        })
    }
}

impl TryFrom<wire::ReportCheckpointRequest> for CheckpointReport {
    type Error = ConvertError;
    fn try_from(w: wire::ReportCheckpointRequest) -> Result<Self, ConvertError> {
        Ok(Self {
            node: NodeId(w.node_id),
            round: w.round,
            step: w.step,
            url: w.url,
            position: required(w.position, "ReportCheckpointRequest", "position")?.into(),
            config_digest: w.config_digest,
        })
    }
}

impl From<CheckpointReport> for wire::ReportCheckpointRequest {
    fn from(d: CheckpointReport) -> Self {
        Self {
            node_id: d.node.0,
            round: d.round,
            step: d.step,
            url: d.url,
            position: Some(d.position.into()),
            config_digest: d.config_digest,
        }
    }
}

impl From<JobPhase> for wire::JobState {
    fn from(d: JobPhase) -> Self {
        match d {
            JobPhase::WaitingForNodes => wire::JobState::WaitingForNodes,
            JobPhase::Running => wire::JobState::Running,
            JobPhase::Restarting => wire::JobState::Restarting,
            JobPhase::Finished => wire::JobState::Finished,
            JobPhase::Stopped => wire::JobState::Stopped,
        }
    }
}

fn phase_from_wire(value: i32, message: &'static str) -> Result<JobPhase, ConvertError> {
    let unknown = ConvertError::UnknownEnum {
        message,
        field: "state",
        value,
    };
    Ok(
        match wire::JobState::try_from(value).map_err(|_| unknown.clone())? {
            wire::JobState::WaitingForNodes => JobPhase::WaitingForNodes,
            wire::JobState::Running => JobPhase::Running,
            wire::JobState::Restarting => JobPhase::Restarting,
            wire::JobState::Finished => JobPhase::Finished,
            wire::JobState::Stopped => JobPhase::Stopped,
            wire::JobState::Unspecified => return Err(unknown),
        },
    )
}

impl From<MemberStatus> for wire::Member {
    fn from(d: MemberStatus) -> Self {
        Self {
            node_id: d.node_id.0,
            node_name: d.spec.name,
            host: d.spec.host,
            device_count: d.spec.device_count,
            device_kind: d.spec.device_kind,
            procs: d.spec.procs,
            alive: d.alive,
            heartbeat_age_ms: d.heartbeat_age_ms,
            global_ranks: d.global_ranks,
            progress: d.progress.into_iter().map(Into::into).collect(),
            finished: d.finished,
        }
    }
}

impl From<wire::Member> for MemberStatus {
    fn from(w: wire::Member) -> Self {
        Self {
            node_id: NodeId(w.node_id),
            spec: NodeSpec {
                name: w.node_name,
                host: w.host,
                device_count: w.device_count,
                device_kind: w.device_kind,
                procs: w.procs,
                config_digest: String::new(),
            },
            alive: w.alive,
            heartbeat_age_ms: w.heartbeat_age_ms,
            global_ranks: w.global_ranks,
            progress: w.progress.into_iter().map(Into::into).collect(),
            finished: w.finished,
        }
    }
}

impl From<JobStatus> for wire::GetStatusResponse {
    fn from(d: JobStatus) -> Self {
        Self {
            job_id: d.job_id.0,
            state: wire::JobState::from(d.phase) as i32,
            round: d.round,
            world_size: d.world_size,
            members: d.members.into_iter().map(Into::into).collect(),
            samples_per_sec: d.samples_per_sec,
            checkpoints: d.checkpoints.into_iter().map(Into::into).collect(),
            config_digest: d.config_digest,
            joined_nodes: d.joined_nodes,
        }
    }
}

impl TryFrom<wire::GetStatusResponse> for JobStatus {
    type Error = ConvertError;
    fn try_from(w: wire::GetStatusResponse) -> Result<Self, ConvertError> {
        let config_digest = w.config_digest;
        Ok(Self {
            job_id: JobId(w.job_id),
            phase: phase_from_wire(w.state, "GetStatusResponse")?,
            round: w.round,
            world_size: w.world_size,
            members: w
                .members
                .into_iter()
                .map(|m| {
                    let mut m = MemberStatus::from(m);
                    m.spec.config_digest.clone_from(&config_digest);
                    m
                })
                .collect(),
            samples_per_sec: w.samples_per_sec,
            checkpoints: w
                .checkpoints
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            config_digest,
            joined_nodes: w.joined_nodes,
        })
    }
}

impl From<wire::StopJobRequest> for StopRequest {
    fn from(w: wire::StopJobRequest) -> Self {
        Self {
            drain: w.drain,
            reason: w.reason,
        }
    }
}

impl From<StopRequest> for wire::StopJobRequest {
    fn from(d: StopRequest) -> Self {
        Self {
            drain: d.drain,
            reason: d.reason,
        }
    }
}

impl TryFrom<wire::StopJobResponse> for JobPhase {
    type Error = ConvertError;
    fn try_from(w: wire::StopJobResponse) -> Result<Self, ConvertError> {
        phase_from_wire(w.state, "StopJobResponse")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> CheckpointInfo {
        CheckpointInfo {
            step: 40,
            url: "file:///runs/a/step-40".into(),
            position: DataPosition {
                epoch: 1,
                samples_consumed: 512,
            },
            config_digest: "abc".into(),
            round: 2,
            registered_unix_ms: 7,
        }
    }

    #[test]
    fn assignment_survives_the_wire_both_ways() {
        let assignment = Assignment {
            round: 3,
            world_size: 2,
            global_ranks: vec![1],
            peers: vec![
                Peer {
                    rank: 0,
                    address: "a:1".into(),
                    node_name: "a".into(),
                },
                Peer {
                    rank: 1,
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
            Directive::Rejoin { round: 4 },
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
            job_id: JobId(1),
            phase: JobPhase::Restarting,
            round: 5,
            world_size: 4,
            members: vec![MemberStatus {
                node_id: NodeId(2),
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
                global_ranks: vec![0, 1],
                progress: vec![RankProgress {
                    global_rank: 0,
                    step: 3,
                    ..Default::default()
                }],
                finished: false,
            }],
            samples_per_sec: 12.5,
            checkpoints: vec![checkpoint()],
            config_digest: "abc".into(),
            joined_nodes: 1,
        };
        let back = JobStatus::try_from(wire::GetStatusResponse::from(status.clone())).unwrap();
        assert_eq!(back, status);
    }
}
