//! Rendezvous requests and assignments, data positions, peers and checkpoints.

use super::{required, ConvertError};
use crate::domain::*;
use crate::wire;

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

impl From<wire::JoinRendezvousRequest> for JoinRequest {
    fn from(w: wire::JoinRendezvousRequest) -> Self {
        Self {
            node: NodeId::new(w.node_id),
            addresses: w.addresses,
            bootstrap_offer: w.bootstrap_offer,
            round: RoundId::new(w.round),
        }
    }
}

impl From<JoinRequest> for wire::JoinRendezvousRequest {
    fn from(d: JoinRequest) -> Self {
        Self {
            node_id: d.node.get(),
            addresses: d.addresses,
            bootstrap_offer: d.bootstrap_offer,
            round: d.round.get(),
        }
    }
}

impl From<Peer> for wire::Peer {
    fn from(d: Peer) -> Self {
        Self {
            rank: d.rank.get(),
            address: d.address,
            node_name: d.node_name,
        }
    }
}

impl From<wire::Peer> for Peer {
    fn from(w: wire::Peer) -> Self {
        Self {
            rank: Rank::new(w.rank),
            address: w.address,
            node_name: w.node_name,
        }
    }
}

impl From<CheckpointInfo> for wire::CheckpointInfo {
    fn from(d: CheckpointInfo) -> Self {
        Self {
            step: d.step.get(),
            url: d.url,
            position: Some(d.position.into()),
            config_digest: d.config_digest,
            round: d.round.get(),
            registered_unix_ms: d.registered_unix_ms,
        }
    }
}

impl TryFrom<wire::CheckpointInfo> for CheckpointInfo {
    type Error = ConvertError;
    fn try_from(w: wire::CheckpointInfo) -> Result<Self, ConvertError> {
        Ok(Self {
            step: Step::new(w.step),
            url: w.url,
            position: required(w.position, "CheckpointInfo", "position")?.into(),
            config_digest: w.config_digest,
            round: RoundId::new(w.round),
            registered_unix_ms: w.registered_unix_ms,
        })
    }
}

impl From<Assignment> for wire::JoinRendezvousResponse {
    fn from(d: Assignment) -> Self {
        Self {
            round: d.round.get(),
            world_size: d.world_size,
            global_ranks: d.global_ranks.iter().map(|r| r.get()).collect(),
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
            round: RoundId::new(w.round),
            world_size: w.world_size,
            global_ranks: w.global_ranks.into_iter().map(Rank::new).collect(),
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
            node: NodeId::new(w.node_id),
            round: RoundId::new(w.round),
            step: Step::new(w.step),
            url: w.url,
            position: required(w.position, "ReportCheckpointRequest", "position")?.into(),
            config_digest: w.config_digest,
            eval_suites: w.eval_suites,
        })
    }
}

impl From<CheckpointReport> for wire::ReportCheckpointRequest {
    fn from(d: CheckpointReport) -> Self {
        Self {
            node_id: d.node.get(),
            round: d.round.get(),
            step: d.step.get(),
            url: d.url,
            position: Some(d.position.into()),
            config_digest: d.config_digest,
            eval_suites: d.eval_suites,
        }
    }
}
