//! `worker eval agent`: leases evaluation jobs from the coordinator, runs each suite on a
//! thread of its own (never on the async runtime), renews the lease every third of its
//! length while the suite runs, and reports the result or the error.
//!
//! An agent that dies stops renewing: its lease runs out and the coordinator hands the job
//! to another agent. An agent whose lease was lost (ABORTED on renewal) drops its result
//! when the suite ends; the agent now holding the lease reports.

use std::sync::Arc;
use std::time::Duration;

use infra::store::StoreOptions;
use proto::client::{Client, Endpoint};
use proto::domain::{EvalLease, EvalMetric, EvalReport, LeaseAnswer, LeaseRequest};
use proto::wire;
use tokio::sync::oneshot;

use super::suite::{run_suite, SuiteError, SuiteOutcome};
use crate::config::Config;
use crate::tensorboard::EventWriter;

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The coordinator and how to reach it.
    pub coordinator: Endpoint,
    /// The agent's name in the coordinator's status.
    pub name: String,
    /// Exit once training is over and nothing is left to evaluate (else keep polling).
    pub until_over: bool,
    /// Object-store settings for checkpoints, datasets and results.
    pub store: StoreOptions,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The coordinator cannot be reached or refused a call.
    #[error("coordinator: {0}")]
    Coordinator(String),
}

/// What the agent did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentSummary {
    /// Evaluations reported as done.
    pub done: u32,
    /// Evaluations reported as failed.
    pub failed: u32,
    /// Evaluations whose lease was lost before they ended.
    pub lost: u32,
}

/// How long to wait between lease requests when the coordinator gives no hint, and the
/// longest wait it may ask for.
const POLL: Duration = Duration::from_secs(2);
const MAX_WAIT: Duration = Duration::from_secs(10);
/// Consecutive UNAVAILABLE answers (coordinator restarting) tolerated before giving up.
const MAX_UNAVAILABLE: u32 = 30;

fn rpc(what: &str, s: &tonic::Status) -> AgentError {
    AgentError::Coordinator(format!("{what}: {} ({:?})", s.message(), s.code()))
}

/// Runs the agent until training is over (with `until_over`) or forever.
pub async fn run(opts: AgentOptions, cfg: Arc<Config>) -> Result<AgentSummary, AgentError> {
    let mut client = opts
        .coordinator
        .connect()
        .await
        .map_err(|e| AgentError::Coordinator(e.to_string()))?;
    let request = wire::LeaseEvalRequest::from(LeaseRequest {
        agent: opts.name.clone(),
        config_digest: cfg.digest.as_str().to_string(),
    });
    let mut summary = AgentSummary::default();
    let mut unavailable = 0;
    let mut scalars = EvalScalars::new(cfg.spec.tensorboard_url(), &opts.store);
    tracing::info!(agent = %opts.name, coordinator = %opts.coordinator.url, "evaluation agent ready");
    loop {
        let answer = match client.lease_eval(request.clone()).await {
            Ok(reply) => {
                unavailable = 0;
                LeaseAnswer::from(reply.into_inner())
            }
            Err(s) if s.code() == tonic::Code::Unavailable && unavailable < MAX_UNAVAILABLE => {
                unavailable += 1;
                tracing::warn!(error = %s.message(), "coordinator unavailable; retrying");
                tokio::time::sleep(POLL).await;
                continue;
            }
            Err(s) => return Err(rpc("lease an evaluation", &s)),
        };
        match answer {
            LeaseAnswer::Leased(lease) => {
                match run_leased(&mut client, &lease, &opts, cfg.clone()).await? {
                    Ran::Done(metrics) => {
                        summary.done += 1;
                        scalars.write(&lease, &metrics).await;
                    }
                    Ran::Failed => summary.failed += 1,
                    Ran::Lost => summary.lost += 1,
                }
            }
            LeaseAnswer::Wait(ms) => {
                let wait = Duration::from_millis(ms).clamp(Duration::from_millis(100), MAX_WAIT);
                tokio::time::sleep(wait).await;
            }
            LeaseAnswer::Over if opts.until_over => {
                tracing::info!(
                    done = summary.done,
                    failed = summary.failed,
                    lost = summary.lost,
                    "training is over and nothing is left to evaluate"
                );
                return Ok(summary);
            }
            LeaseAnswer::Over => tokio::time::sleep(MAX_WAIT).await,
        }
    }
}

/// The agent's TensorBoard scalars: `eval/<suite>/<metric>` at the checkpoint's step, in
/// files of its own in the training's TensorBoard folder, written once the coordinator has
/// taken the result (so an evaluation counts once). A failure is logged, never fatal.
struct EvalScalars {
    url: Option<String>,
    store: StoreOptions,
    writer: Option<EventWriter>,
}

impl EvalScalars {
    fn new(url: Option<String>, store: &StoreOptions) -> Self {
        Self {
            url,
            store: store.clone(),
            writer: None,
        }
    }

    async fn write(&mut self, lease: &EvalLease, metrics: &[EvalMetric]) {
        let Some(url) = &self.url else {
            return;
        };
        if self.writer.is_none() {
            match EventWriter::open(url, &self.store, "eval", None).await {
                Ok(w) => self.writer = Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "TensorBoard events of evaluations cannot be written");
                    self.url = None;
                    return;
                }
            }
        }
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        let tags: Vec<(String, f64)> = metrics
            .iter()
            .map(|m| (format!("eval/{}/{}", lease.suite, m.name), m.value))
            .collect();
        let values: Vec<(&str, f64)> = tags.iter().map(|(t, v)| (t.as_str(), *v)).collect();
        writer.scalars(lease.checkpoint_step.get(), &values);
        if let Err(e) = writer.flush().await {
            tracing::warn!(error = %e, "TensorBoard events of an evaluation not written (the next one tries again)");
        }
    }
}

/// How one leased evaluation ended.
enum Ran {
    /// Done, with its numbers (taken by the coordinator).
    Done(Vec<EvalMetric>),
    Failed,
    Lost,
}

/// Runs `lease` on a thread of its own, renewing the lease meanwhile, then reports.
async fn run_leased(
    client: &mut Client,
    lease: &EvalLease,
    opts: &AgentOptions,
    cfg: Arc<Config>,
) -> Result<Ran, AgentError> {
    tracing::info!(
        eval = lease.id.get(),
        suite = %lease.suite,
        step = lease.checkpoint_step.get(),
        checkpoint = %lease.checkpoint_url,
        attempt = lease.attempt,
        "evaluation leased"
    );
    let (tx, mut rx) = oneshot::channel::<Result<SuiteOutcome, SuiteError>>();
    let (suite, url, store) = (
        lease.suite.clone(),
        lease.checkpoint_url.clone(),
        opts.store.clone(),
    );
    std::thread::Builder::new()
        .name(format!("eval-{}", lease.id.get()))
        .spawn(move || {
            let _ = tx.send(run_suite(&cfg, &suite, &url, &store));
        })
        .map_err(|e| AgentError::Coordinator(format!("cannot start the evaluation thread: {e}")))?;
    let renew_every = Duration::from_millis((lease.lease_ms / 3).max(100));
    let mut lost = false;
    let result = loop {
        tokio::select! {
            result = &mut rx => break result,
            _ = tokio::time::sleep(renew_every), if !lost => {
                let renewal = wire::RenewEvalLeaseRequest { eval_id: lease.id.get(), attempt: lease.attempt };
                match client.renew_eval_lease(renewal).await {
                    Ok(_) => {}
                    Err(s) if s.code() == tonic::Code::Aborted => {
                        tracing::warn!(eval = lease.id.get(), reason = %s.message(), "lease lost; this evaluation's result will be dropped");
                        lost = true;
                    }
                    // A missed renewal is not fatal: the lease is three renewals long.
                    Err(s) => tracing::warn!(eval = lease.id.get(), error = %s.message(), "cannot renew the lease"),
                }
            }
        }
    };
    let mut images = Vec::new();
    let outcome = match result {
        Ok(Ok(o)) => {
            images = o.images;
            Ok((o.metrics, o.result_url))
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the evaluation thread panicked".to_string()),
    };
    if lost {
        return Ok(Ran::Lost);
    }
    let ran = match &outcome {
        Ok((metrics, url)) => {
            tracing::info!(eval = lease.id.get(), suite = %lease.suite, result = %url, metrics = metrics.len(), "evaluation done");
            Ran::Done(metrics.clone())
        }
        Err(e) => {
            tracing::error!(eval = lease.id.get(), suite = %lease.suite, error = %e, "evaluation failed");
            Ran::Failed
        }
    };
    let report = wire::ReportEvalResultRequest::from(EvalReport {
        id: lease.id,
        attempt: lease.attempt,
        outcome,
        images,
    });
    // A coordinator restarting is waited for, as for leases: the result is kept if the
    // lease is still this agent's when it is back, else dropped (another agent will
    // have it).
    let mut unavailable = 0;
    loop {
        match client.report_eval_result(report.clone()).await {
            Ok(_) => return Ok(ran),
            Err(s) if s.code() == tonic::Code::Aborted => {
                tracing::warn!(eval = lease.id.get(), reason = %s.message(), "result not taken: the lease was lost");
                return Ok(Ran::Lost);
            }
            Err(s) if s.code() == tonic::Code::Unavailable && unavailable < MAX_UNAVAILABLE => {
                unavailable += 1;
                tracing::warn!(eval = lease.id.get(), error = %s.message(), "coordinator unavailable; reporting again");
                tokio::time::sleep(POLL).await;
            }
            Err(s) => return Err(rpc("report an evaluation", &s)),
        }
    }
}
