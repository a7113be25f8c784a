//! Job status, members and stop requests.

use super::ConvertError;
use crate::domain::*;
use crate::wire;

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
            node_id: d.node_id.get(),
            node_name: d.spec.name,
            host: d.spec.host,
            device_count: d.spec.device_count,
            device_kind: d.spec.device_kind,
            procs: d.spec.procs,
            alive: d.alive,
            heartbeat_age_ms: d.heartbeat_age_ms,
            global_ranks: d.global_ranks.iter().map(|r| r.get()).collect(),
            progress: d.progress.into_iter().map(Into::into).collect(),
            finished: d.finished,
        }
    }
}

impl From<wire::Member> for MemberStatus {
    fn from(w: wire::Member) -> Self {
        Self {
            node_id: NodeId::new(w.node_id),
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
            global_ranks: w.global_ranks.into_iter().map(Rank::new).collect(),
            progress: w.progress.into_iter().map(Into::into).collect(),
            finished: w.finished,
        }
    }
}

impl From<JobStatus> for wire::GetStatusResponse {
    fn from(d: JobStatus) -> Self {
        Self {
            job_id: d.job_id.get(),
            state: wire::JobState::from(d.phase) as i32,
            round: d.round.get(),
            world_size: d.world_size,
            members: d.members.into_iter().map(Into::into).collect(),
            samples_per_sec: d.samples_per_sec,
            checkpoints: d.checkpoints.into_iter().map(Into::into).collect(),
            config_digest: d.config_digest,
            joined_nodes: d.joined_nodes,
            evals: d.evals.into_iter().map(Into::into).collect(),
            straggler_ranks: d.stragglers.iter().map(|r| r.get()).collect(),
            median_own_step_s: d.median_own_step_s,
        }
    }
}

impl TryFrom<wire::GetStatusResponse> for JobStatus {
    type Error = ConvertError;
    fn try_from(w: wire::GetStatusResponse) -> Result<Self, ConvertError> {
        let config_digest = w.config_digest;
        Ok(Self {
            job_id: JobId::new(w.job_id),
            phase: phase_from_wire(w.state, "GetStatusResponse")?,
            round: RoundId::new(w.round),
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
            evals: w
                .evals
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            stragglers: w.straggler_ranks.into_iter().map(Rank::new).collect(),
            median_own_step_s: w.median_own_step_s,
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
