//! Plain types of the coordinator protocol, free of wire details: what the coordinator
//! decides with and what a worker acts on. [`crate::convert`] maps them to and from the
//! generated messages.

use serde::{Deserialize, Serialize};
use std::fmt;

mod ids;
pub use ids::{EvalId, JobId, NodeId, Rank, RoundId, Step};

/// What a node says about itself when it registers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Stable node name; global ranks are ordered by it.
    pub name: String,
    /// Host name or address, for status output.
    pub host: String,
    /// Accelerator devices (0 on CPU).
    pub device_count: u32,
    /// Device kind, e.g. `cpu`, `cuda`.
    pub device_kind: String,
    /// Training processes the node runs.
    pub procs: u32,
    /// Digest of the training configuration the node runs.
    pub config_digest: String,
}

/// The coordinator's answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The node's id (the same one again for a known name).
    pub node_id: NodeId,
    /// The job the node belongs to.
    pub job_id: JobId,
    /// How often to heartbeat.
    pub heartbeat_interval_ms: u64,
    /// After how long without a heartbeat the node is declared dead.
    pub heartbeat_timeout_ms: u64,
}

/// A position in the world-size-independent sample order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DataPosition {
    /// Epoch index.
    pub epoch: u64,
    /// Samples of that epoch the whole job has consumed.
    pub samples_consumed: u64,
}

/// Progress of one training process.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RankProgress {
    /// Global rank of the process.
    pub global_rank: Rank,
    /// Optimizer steps done.
    pub step: Step,
    /// Current epoch.
    pub epoch: u64,
    /// Samples of the epoch consumed by the job.
    pub samples_consumed: u64,
    /// Latest training loss.
    pub loss: f64,
    /// Throughput of this process.
    pub samples_per_sec: f64,
    /// Learning rate of the latest step.
    pub lr: f64,
    /// Logit scale (1 / temperature) of the latest step.
    pub logit_scale: f64,
    /// Gradient norm before clipping, recent mean.
    pub grad_norm: f64,
    /// Seconds per phase, recent mean.
    pub timing: StepTiming,
    /// The data pipeline's figures.
    pub data: DataFigures,
    /// libtorch's caching allocator on the rank's GPU: allocated now (0 on CPU).
    pub memory_allocated_bytes: u64,
    /// Its peak since the previous report.
    pub memory_peak_bytes: u64,
    /// Model TFLOP/s achieved.
    pub model_tflops: f64,
    /// Model FLOPs utilisation (0: the device's peak is unknown).
    pub mfu: f64,
}

/// A heartbeat as the coordinator sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeartbeatReport {
    /// Sender.
    pub node: NodeId,
    /// Progress of each local process.
    pub progress: Vec<RankProgress>,
    /// Every local process completed the job.
    pub finished: bool,
    /// The node leaves on its own.
    pub leaving: bool,
    /// The round `progress` belongs to (0: not said).
    pub round: RoundId,
}

/// What a node must do next (the answer to a heartbeat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// Keep going (training, or waiting in the rendezvous).
    Continue,
    /// Abort the step and join this rendezvous round.
    Rejoin {
        /// Round to join.
        round: RoundId,
    },
    /// Registered but not part of the running round: keep heartbeating.
    Standby,
    /// Finish the step, checkpoint, exit.
    Drain,
    /// Exit now.
    Stop,
}

/// A request to join the rendezvous.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinRequest {
    /// The joining node.
    pub node: NodeId,
    /// One collective address per local process, in local-rank order.
    pub addresses: Vec<String>,
    /// Collective bootstrap offered by this node (used when it gets rank 0).
    pub bootstrap_offer: Vec<u8>,
    /// Round named by a rejoin directive, 0 for the first join.
    pub round: RoundId,
}

/// One rank of a round and where its process listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Global rank.
    pub rank: Rank,
    /// Collective address of the process.
    pub address: String,
    /// Node the process runs on.
    pub node_name: String,
}

/// A registered checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// Optimizer step the checkpoint holds.
    pub step: Step,
    /// Where it is stored (object-store URL or path).
    pub url: String,
    /// Data position right after that step.
    pub position: DataPosition,
    /// Digest of the training configuration.
    pub config_digest: String,
    /// Round it was written in.
    pub round: RoundId,
    /// When the coordinator registered it.
    pub registered_unix_ms: u64,
}

/// A checkpoint report from a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointReport {
    /// Reporting node.
    pub node: NodeId,
    /// Round the checkpoint was written in.
    pub round: RoundId,
    /// Step it holds.
    pub step: Step,
    /// Where it is stored.
    pub url: String,
    /// Data position after the step.
    pub position: DataPosition,
    /// Training configuration digest.
    pub config_digest: String,
    /// The eval suites due for this checkpoint (the training config's schedule).
    pub eval_suites: Vec<String>,
}

/// What a node gets when its rendezvous round closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The round.
    pub round: RoundId,
    /// Processes in the round.
    pub world_size: u32,
    /// This node's global ranks, in local-rank order.
    pub global_ranks: Vec<Rank>,
    /// The leader (rank 0) and this node's own ranks, sorted by rank.
    pub peers: Vec<Peer>,
    /// Collective bootstrap (the offer of the node holding rank 0).
    pub bootstrap: Vec<u8>,
    /// Where the data order starts.
    pub start: DataPosition,
    /// Checkpoint to load first; `None` for a fresh start.
    pub resume_from: Option<CheckpointInfo>,
}

/// Phase of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobPhase {
    /// The first round is gathering nodes.
    WaitingForNodes,
    /// A round is closed and training.
    Running,
    /// A later round is gathering nodes after a failure or a change of members.
    Restarting,
    /// Every rank of the running round completed the job.
    Finished,
    /// Stopped by an operator.
    Stopped,
}

impl JobPhase {
    /// Whether the job is over (finished or stopped).
    pub fn is_over(self) -> bool {
        matches!(self, JobPhase::Finished | JobPhase::Stopped)
    }
}

impl fmt::Display for JobPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            JobPhase::WaitingForNodes => "waiting for nodes",
            JobPhase::Running => "running",
            JobPhase::Restarting => "restarting",
            JobPhase::Finished => "finished",
            JobPhase::Stopped => "stopped",
        };
        f.write_str(name)
    }
}

/// A request to end the job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StopRequest {
    /// Members checkpoint their step before they exit.
    pub drain: bool,
    /// Why, for the log.
    pub reason: String,
}

/// One node in a status report.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberStatus {
    /// Node id.
    pub node_id: NodeId,
    /// Registration data.
    pub spec: NodeSpec,
    /// Not declared dead and not gone.
    pub alive: bool,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: u64,
    /// Global ranks in the current round.
    pub global_ranks: Vec<Rank>,
    /// Latest progress of its processes.
    pub progress: Vec<RankProgress>,
    /// Reported the job complete.
    pub finished: bool,
}

/// The job as `coordinator status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStatus {
    /// Job id.
    pub job_id: JobId,
    /// Phase.
    pub phase: JobPhase,
    /// Latest round number.
    pub round: RoundId,
    /// Processes in the current round.
    pub world_size: u32,
    /// Every registered node.
    pub members: Vec<MemberStatus>,
    /// Sum of the throughput of the current round's ranks.
    pub samples_per_sec: f64,
    /// Registered checkpoints, newest first.
    pub checkpoints: Vec<CheckpointInfo>,
    /// The job's configuration digest (empty until the first node registers).
    pub config_digest: String,
    /// Nodes joined to the open round.
    pub joined_nodes: u32,
    /// Every evaluation job, oldest first.
    pub evals: Vec<EvalJob>,
    /// Ranks flagged as stragglers (own time per step over the factor times the median of
    /// the other ranks').
    pub stragglers: Vec<Rank>,
    /// The median own time per step over the round's ranks (0: not enough reports).
    pub median_own_step_s: f64,
}

mod eval;
mod figures;
pub use eval::*;
pub use figures::{DataFigures, StepTiming};
