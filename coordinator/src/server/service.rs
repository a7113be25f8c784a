//! The `Coordinator` RPCs: convert the request, run one decision through
//! [`Shared::apply`] (which stores the change before the answer goes out), convert the
//! answer. `JoinRendezvous` then waits for the round to
//! close, woken by every change of the state.

use super::Shared;
use crate::state::{self, checkpoints, eval};
use crate::status::ServiceError;
use proto::domain::{
    CheckpointReport, EvalId, EvalReport, JobPhase, JoinRequest, LeaseRequest, NodeSpec,
    Registration, StopRequest,
};
use proto::wire::{self, coordinator_server::Coordinator};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub(crate) struct CoordinatorService {
    shared: Arc<Shared>,
}

impl CoordinatorService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    async fn wait_for_round(
        &self,
        request: &JoinRequest,
    ) -> Result<wire::JoinRendezvousResponse, ServiceError> {
        let mut changed = self.shared.watch_waiting_joins();
        let mut stopping = self.shared.stopping.clone();
        loop {
            changed.borrow_and_update();
            if let Some(assignment) = self
                .shared
                .read(|s, _| state::join_outcome(s, request.node, &self.shared.policy))?
            {
                return Ok(assignment.into());
            }
            tokio::select! {
                _ = changed.changed() => {}
                _ = stopping.wait_for(|stop| *stop) => return Err(ServiceError::ShuttingDown),
            }
        }
    }
}

#[tonic::async_trait]
impl Coordinator for CoordinatorService {
    async fn register_node(
        &self,
        request: Request<wire::RegisterNodeRequest>,
    ) -> Result<Response<wire::RegisterNodeResponse>, Status> {
        let spec = NodeSpec::from(request.into_inner());
        let registration = self
            .shared
            .apply(|s, now, policy| {
                let (node_id, actions) = state::register(s, spec, now, policy)?;
                let registration = Registration {
                    node_id,
                    job_id: s.job_id,
                    heartbeat_interval_ms: policy.heartbeat_interval_ms,
                    heartbeat_timeout_ms: policy.heartbeat_timeout_ms,
                };
                Ok((registration, actions))
            })
            .await?;
        Ok(Response::new(registration.into()))
    }

    async fn heartbeat(
        &self,
        request: Request<wire::HeartbeatRequest>,
    ) -> Result<Response<wire::HeartbeatResponse>, Status> {
        let report: proto::domain::HeartbeatReport = request.into_inner().into();
        let has_rank0 = report.progress.iter().any(|p| p.global_rank.get() == 0);
        let directive = self.shared.heartbeat(report).await?;
        if has_rank0 {
            self.shared.note_history().await;
        }
        Ok(Response::new(directive.into()))
    }

    async fn join_rendezvous(
        &self,
        request: Request<wire::JoinRendezvousRequest>,
    ) -> Result<Response<wire::JoinRendezvousResponse>, Status> {
        let request = JoinRequest::from(request.into_inner());
        self.shared
            .apply(|s, now, policy| Ok(((), state::join(s, &request, now, policy)?)))
            .await?;
        Ok(Response::new(self.wait_for_round(&request).await?))
    }

    async fn report_checkpoint(
        &self,
        request: Request<wire::ReportCheckpointRequest>,
    ) -> Result<Response<wire::ReportCheckpointResponse>, Status> {
        let report =
            CheckpointReport::try_from(request.into_inner()).map_err(ServiceError::from)?;
        let newest = self
            .shared
            .apply(|s, now, policy| checkpoints::report(s, report, now, policy))
            .await?;
        Ok(Response::new(wire::ReportCheckpointResponse { newest }))
    }

    async fn ping(
        &self,
        _request: Request<wire::PingRequest>,
    ) -> Result<Response<wire::PingResponse>, Status> {
        Ok(Response::new(wire::PingResponse {}))
    }

    async fn get_status(
        &self,
        _request: Request<wire::GetStatusRequest>,
    ) -> Result<Response<wire::GetStatusResponse>, Status> {
        Ok(Response::new(
            self.shared
                .read(|s, now| state::status(s, now, self.shared.policy.stragglers))
                .into(),
        ))
    }

    async fn stop_job(
        &self,
        request: Request<wire::StopJobRequest>,
    ) -> Result<Response<wire::StopJobResponse>, Status> {
        let stop = StopRequest::from(request.into_inner());
        let phase: JobPhase = self
            .shared
            .apply(|s, _, _| {
                let actions = state::stop(s, stop);
                Ok((s.phase, actions))
            })
            .await?;
        Ok(Response::new(wire::StopJobResponse {
            state: wire::JobState::from(phase) as i32,
        }))
    }

    async fn lease_eval(
        &self,
        request: Request<wire::LeaseEvalRequest>,
    ) -> Result<Response<wire::LeaseEvalResponse>, Status> {
        let request = LeaseRequest::from(request.into_inner());
        let answer = self
            .shared
            .apply(|s, now, policy| eval::lease(s, &request, now, policy))
            .await?;
        Ok(Response::new(answer.into()))
    }

    async fn renew_eval_lease(
        &self,
        request: Request<wire::RenewEvalLeaseRequest>,
    ) -> Result<Response<wire::RenewEvalLeaseResponse>, Status> {
        let r = request.into_inner();
        let expires = self
            .shared
            .apply(|s, now, policy| eval::renew(s, EvalId::new(r.eval_id), r.attempt, now, policy))
            .await?;
        Ok(Response::new(wire::RenewEvalLeaseResponse {
            lease_expires_unix_ms: expires,
        }))
    }

    async fn report_eval_result(
        &self,
        request: Request<wire::ReportEvalResultRequest>,
    ) -> Result<Response<wire::ReportEvalResultResponse>, Status> {
        let mut report = EvalReport::try_from(request.into_inner()).map_err(ServiceError::from)?;
        let (id, done) = (report.id, report.outcome.is_ok());
        let images = std::mem::take(&mut report.images);
        self.shared
            .apply(|s, now, _| eval::report(s, report, now))
            .await?;
        if done && !images.is_empty() {
            self.shared.keep_eval_images(id, images).await;
        }
        Ok(Response::new(wire::ReportEvalResultResponse {}))
    }
}
