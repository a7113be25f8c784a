//! Registration, progress, heartbeats and directives.

use super::ConvertError;
use crate::domain::*;
use crate::wire;

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
            node_id: d.node_id.get(),
            job_id: d.job_id.get(),
            heartbeat_interval_ms: d.heartbeat_interval_ms,
            heartbeat_timeout_ms: d.heartbeat_timeout_ms,
        }
    }
}

impl From<wire::RegisterNodeResponse> for Registration {
    fn from(w: wire::RegisterNodeResponse) -> Self {
        Self {
            node_id: NodeId::new(w.node_id),
            job_id: JobId::new(w.job_id),
            heartbeat_interval_ms: w.heartbeat_interval_ms,
            heartbeat_timeout_ms: w.heartbeat_timeout_ms,
        }
    }
}

impl From<wire::RankProgress> for RankProgress {
    fn from(w: wire::RankProgress) -> Self {
        Self {
            global_rank: Rank::new(w.global_rank),
            step: Step::new(w.step),
            epoch: w.epoch,
            samples_consumed: w.samples_consumed,
            loss: w.loss,
            samples_per_sec: w.samples_per_sec,
            lr: w.lr,
            logit_scale: w.logit_scale,
            grad_norm: w.grad_norm,
            timing: w.timing.map(Into::into).unwrap_or_default(),
            data: w.data.map(Into::into).unwrap_or_default(),
            memory_allocated_bytes: w.memory_allocated_bytes,
            memory_peak_bytes: w.memory_peak_bytes,
            model_tflops: w.model_tflops,
            mfu: w.mfu,
        }
    }
}

impl From<RankProgress> for wire::RankProgress {
    fn from(d: RankProgress) -> Self {
        Self {
            global_rank: d.global_rank.get(),
            step: d.step.get(),
            epoch: d.epoch,
            samples_consumed: d.samples_consumed,
            loss: d.loss,
            samples_per_sec: d.samples_per_sec,
            lr: d.lr,
            logit_scale: d.logit_scale,
            grad_norm: d.grad_norm,
            timing: Some(d.timing.into()),
            data: Some(d.data.into()),
            memory_allocated_bytes: d.memory_allocated_bytes,
            memory_peak_bytes: d.memory_peak_bytes,
            model_tflops: d.model_tflops,
            mfu: d.mfu,
        }
    }
}

impl From<wire::StepTiming> for StepTiming {
    fn from(w: wire::StepTiming) -> Self {
        Self {
            step_s: w.step_s,
            data_wait_s: w.data_wait_s,
            forward_s: w.forward_s,
            backward_s: w.backward_s,
            grad_reduce_s: w.grad_reduce_s,
            optimizer_s: w.optimizer_s,
            checkpoint_s: w.checkpoint_s,
            collective_s: w.collective_s,
        }
    }
}

impl From<StepTiming> for wire::StepTiming {
    fn from(d: StepTiming) -> Self {
        Self {
            step_s: d.step_s,
            data_wait_s: d.data_wait_s,
            forward_s: d.forward_s,
            backward_s: d.backward_s,
            grad_reduce_s: d.grad_reduce_s,
            optimizer_s: d.optimizer_s,
            checkpoint_s: d.checkpoint_s,
            collective_s: d.collective_s,
        }
    }
}

impl From<wire::DataFigures> for DataFigures {
    fn from(w: wire::DataFigures) -> Self {
        Self {
            skipped: w.skipped.into_iter().collect(),
            bytes_read: w.bytes_read,
            storage_retries: w.storage_retries,
            prefetch_fill: w.prefetch_fill,
        }
    }
}

impl From<DataFigures> for wire::DataFigures {
    fn from(d: DataFigures) -> Self {
        Self {
            skipped: d.skipped.into_iter().collect(),
            bytes_read: d.bytes_read,
            storage_retries: d.storage_retries,
            prefetch_fill: d.prefetch_fill,
        }
    }
}

impl From<wire::HeartbeatRequest> for HeartbeatReport {
    fn from(w: wire::HeartbeatRequest) -> Self {
        Self {
            node: NodeId::new(w.node_id),
            progress: w.progress.into_iter().map(Into::into).collect(),
            finished: w.finished,
            leaving: w.leaving,
            round: RoundId::new(w.round),
        }
    }
}

impl From<HeartbeatReport> for wire::HeartbeatRequest {
    fn from(d: HeartbeatReport) -> Self {
        Self {
            node_id: d.node.get(),
            progress: d.progress.into_iter().map(Into::into).collect(),
            finished: d.finished,
            leaving: d.leaving,
            round: d.round.get(),
        }
    }
}

impl From<Directive> for wire::HeartbeatResponse {
    fn from(d: Directive) -> Self {
        let (directive, round) = match d {
            Directive::Continue => (wire::Directive::Continue, 0),
            Directive::Rejoin { round } => (wire::Directive::Rejoin, round.get()),
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
                wire::Directive::Rejoin => Directive::Rejoin {
                    round: RoundId::new(w.round),
                },
                wire::Directive::Standby => Directive::Standby,
                wire::Directive::Drain => Directive::Drain,
                wire::Directive::Stop => Directive::Stop,
                wire::Directive::Unspecified => return Err(unknown),
            },
        )
    }
}
