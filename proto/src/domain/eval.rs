//! Evaluation jobs: one eval suite on one registered checkpoint, leased to evaluation
//! agents, with the result (or failure) recorded in the checkpoint registry.

use serde::{Deserialize, Serialize};

use super::{EvalId, Step};

/// One number of a result, e.g. `ncut.p_map`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalMetric {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: f64,
}

/// Where an evaluation job stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EvalPhase {
    /// Waiting for an agent.
    Pending,
    /// Leased to `agent` until `expires_ms`.
    Running {
        /// The agent holding the lease.
        agent: String,
        /// When the lease runs out.
        expires_ms: u64,
    },
    /// Finished with a result.
    Done {
        /// The agent that ran it.
        agent: String,
        /// The result's numbers.
        metrics: Vec<EvalMetric>,
        /// Where the whole result is.
        result_url: String,
        /// When it was reported.
        finished_ms: u64,
    },
    /// Failed (reported by an agent, or leases kept expiring).
    Failed {
        /// The agent that held it last (empty if none).
        agent: String,
        /// Why.
        error: String,
        /// When it failed.
        finished_ms: u64,
    },
}

impl EvalPhase {
    /// Done or failed.
    pub fn is_over(&self) -> bool {
        matches!(self, EvalPhase::Done { .. } | EvalPhase::Failed { .. })
    }

    /// A short name: pending, running, done, failed.
    pub fn name(&self) -> &'static str {
        match self {
            EvalPhase::Pending => "pending",
            EvalPhase::Running { .. } => "running",
            EvalPhase::Done { .. } => "done",
            EvalPhase::Failed { .. } => "failed",
        }
    }
}

/// One eval suite on one checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalJob {
    /// Its id.
    pub id: EvalId,
    /// The suite's name in the training config.
    pub suite: String,
    /// The checkpoint's step.
    pub checkpoint_step: Step,
    /// The checkpoint's URL (its `step-N` directory).
    pub checkpoint_url: String,
    /// The checkpoint's config digest.
    pub config_digest: String,
    /// When the job was created.
    pub created_ms: u64,
    /// Leases handed out so far; the current lease is number `attempts`.
    pub attempts: u32,
    /// Where it stands.
    pub phase: EvalPhase,
}

/// An agent asking for work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The agent's name.
    pub agent: String,
    /// The training config digest it builds models from.
    pub config_digest: String,
}

/// A job leased to an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalLease {
    /// The job.
    pub id: EvalId,
    /// The lease number; renewals and the report quote it.
    pub attempt: u32,
    /// The suite to run.
    pub suite: String,
    /// The checkpoint's step.
    pub checkpoint_step: Step,
    /// The checkpoint's URL.
    pub checkpoint_url: String,
    /// How long the lease runs without a renewal.
    pub lease_ms: u64,
}

/// The answer to a lease request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAnswer {
    /// Run this.
    Leased(EvalLease),
    /// Nothing pending now: ask again after this many milliseconds.
    Wait(u64),
    /// Training is over and nothing of this digest is pending or running.
    Over,
}

/// An agent's report on a leased job.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// The job.
    pub id: EvalId,
    /// The lease it ran under.
    pub attempt: u32,
    /// The metrics and result URL, or why it failed.
    pub outcome: Result<(Vec<EvalMetric>, String), String>,
    /// Pictures of the result for the dashboard.
    pub images: Vec<EvalImage>,
}

/// A picture of an evaluation's result (a splice heat map), JPEG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalImage {
    /// What it shows (the image's file name).
    pub name: String,
    /// The JPEG bytes.
    pub jpeg: Vec<u8>,
}

impl EvalImage {
    /// Pictures a report may carry.
    pub const MAX_COUNT: usize = 4;
    /// Bytes one picture may have.
    pub const MAX_BYTES: usize = 256 << 10;
}
