//! The coordinator's state and the pure decisions over it.
//!
//! Every decision is a function of `(state, input, now_ms, policy)`: no network, no
//! clock, no storage. The gRPC layer locks the state, clones it, calls one decision,
//! persists the result and only then makes it current, so a failed write or a rejected
//! request leaves the state untouched. Decisions return [`Action`]s that say what
//! changed and why, for the log.
//!
//! - [`membership`]: registration, heartbeats, failure detection ([`dead_members`]).
//! - [`rendezvous`]: joining rounds, closing them, deterministic rank assignment.
//! - [`checkpoints`]: the checkpoint registry and the resume position.
//! - [`job`]: the job's phase, directives, losing a node, stop and status.
//! - [`mod@tick`]: the periodic decision (lease expiry, failure detection, closing rounds).
//! - [`eval`]: evaluation jobs on registered checkpoints, leased to evaluation agents.
//! - [`supervision`]: restarting the local worker processes of `coordinator launch`.

pub mod checkpoints;
pub mod eval;
pub mod job;
pub mod membership;
pub mod rendezvous;
pub mod stragglers;
pub mod supervision;
pub mod tick;

use proto::domain::{
    CheckpointInfo, DataPosition, EvalId, JobId, JobPhase, NodeId, NodeSpec, Peer, Rank,
    RankProgress, RoundId, Step,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

pub use checkpoints::CheckpointRegistry;
pub use eval::EvalQueue;
pub use job::{directive_for, status, stop};
pub use membership::{dead_members, heartbeat, heartbeat_is_soft, register, resume_after_restart};
pub use rendezvous::{join, join_outcome, waiting_joins_key, WaitingJoinsKey};
pub use tick::tick;

/// The scheduling policy: the numbers the decisions depend on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// A round may close once this many nodes have joined (and the settle time passed).
    pub min_nodes: u32,
    /// A round closes at once when this many nodes have joined.
    pub max_nodes: u32,
    /// How often nodes heartbeat.
    pub heartbeat_interval_ms: u64,
    /// Silence after which a node is declared dead.
    pub heartbeat_timeout_ms: u64,
    /// A round with enough nodes closes after no new join arrived for this long.
    pub rendezvous_settle_ms: u64,
    /// An evaluation lease runs out after this long without a renewal.
    pub eval_lease_ms: u64,
    /// Leases an evaluation job may run out before it fails.
    pub eval_max_attempts: u32,
    /// The job's checkpoint directory (the training config's `checkpoint.url`): every
    /// reported checkpoint must be a `step-N` directory right under it. `None`: the
    /// directory of the first checkpoint registered becomes it.
    pub checkpoint_root: Option<String>,
    /// The training config's global batch (`train.batch_size`), when known: a round
    /// closes only at a world size that splits it evenly.
    pub global_batch: Option<u32>,
    /// Which ranks `status` flags as stragglers.
    pub stragglers: stragglers::StragglerPolicy,
}

impl Policy {
    /// Default evaluation lease.
    pub const EVAL_LEASE_MS: u64 = 60_000;
    /// Default number of leases an evaluation job may run out.
    pub const EVAL_MAX_ATTEMPTS: u32 = 3;
}

/// One registered node.
///
/// `last_heartbeat_ms`, `progress` and `progress_round` are its soft state: a heartbeat
/// that changes nothing else updates them in place and they reach the database with the
/// next change of the node or the periodic flush (`server::shared`); a restarted
/// coordinator gives every node a grace period ([`resume_after_restart`]) and the next
/// heartbeats bring the progress back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Its id.
    pub id: NodeId,
    /// What it registered with.
    pub spec: NodeSpec,
    /// Not declared dead and not gone.
    pub alive: bool,
    /// Left on its own (a `leaving` heartbeat); only a new registration brings it back.
    pub left: bool,
    /// When its last heartbeat (or registration) arrived.
    pub last_heartbeat_ms: u64,
    /// Latest progress of its processes.
    pub progress: Vec<RankProgress>,
    /// The round `progress` belongs to (0: not said by the node).
    #[serde(default)]
    pub progress_round: RoundId,
    /// Reported that every local process completed the job.
    pub finished: bool,
}

/// Equality is reflexive: the only floats in a node are progress figures, which
/// [`heartbeat`] refuses unless finite. This lets `Arc<Node>` compare by pointer first,
/// so comparing two states that share their nodes costs no per-node work.
impl Eq for Node {}

/// A node's request in an open round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    /// One collective address per local process.
    pub addresses: Vec<String>,
    /// Collective bootstrap offered by the node.
    pub bootstrap_offer: Vec<u8>,
    /// When it joined.
    pub joined_ms: u64,
}

/// A rendezvous round that is gathering nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRound {
    /// Round number.
    pub round: RoundId,
    /// When the round opened.
    pub opened_ms: u64,
    /// When the latest join arrived (the opening time before any).
    pub last_join_ms: u64,
    /// Joined nodes (shared between copies of the state: a join copies no other).
    /// The database keeps them in rows of their own, not in the job row.
    #[serde(default)]
    pub joins: BTreeMap<NodeId, Arc<Join>>,
}

/// A node's place in a closed round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundMember {
    /// The node.
    pub node: NodeId,
    /// Its name (the rank order key).
    pub name: String,
    /// Its global ranks, in local-rank order.
    pub ranks: Vec<Rank>,
}

/// A closed round: who trains with which ranks, from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedRound {
    /// Round number.
    pub round: RoundId,
    /// When it closed.
    pub closed_ms: u64,
    /// Members sorted by node name.
    pub members: Vec<RoundMember>,
    /// Every rank, sorted by rank.
    pub peers: Vec<Peer>,
    /// Collective bootstrap (the offer of the node holding rank 0).
    pub bootstrap: Vec<u8>,
    /// Where the data order starts.
    pub start: DataPosition,
    /// Checkpoint to load first.
    pub resume_from: Option<CheckpointInfo>,
}

impl OpenRound {
    /// Processes of the nodes that joined (one address each).
    pub fn world_size(&self) -> u32 {
        self.joins.values().map(|j| j.addresses.len() as u32).sum()
    }
}

impl ClosedRound {
    /// The member entry of `node`, if it is part of the round.
    pub fn member(&self, node: NodeId) -> Option<&RoundMember> {
        self.members.iter().find(|m| m.node == node)
    }

    /// Processes in the round.
    pub fn world_size(&self) -> u32 {
        self.peers.len() as u32
    }
}

/// The whole coordinator state of one job; persisted after every change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The job.
    pub job_id: JobId,
    /// Its phase; `open` is set exactly while waiting for nodes or restarting.
    pub phase: JobPhase,
    /// Whether a stop asked members to drain.
    pub drain: bool,
    /// The latest round number (open or closed).
    pub round: RoundId,
    /// The configuration digest of the job, fixed by the first registration.
    pub config_digest: Option<String>,
    /// Next node id to hand out.
    pub next_node_id: u64,
    /// Every registered node (shared between copies of the state: a decision copies
    /// only the nodes it changes, through [`State::node_mut`]).
    pub nodes: BTreeMap<NodeId, Arc<Node>>,
    /// The round that is gathering nodes.
    pub open: Option<OpenRound>,
    /// The latest closed round (never changed once closed, so shared between copies).
    pub current: Option<Arc<ClosedRound>>,
    /// Registered checkpoints.
    pub checkpoints: CheckpointRegistry,
    /// Evaluation jobs on the registered checkpoints.
    pub evals: EvalQueue,
}

impl State {
    /// A new job waiting for the nodes of its first round.
    pub fn new(job_id: JobId, now_ms: u64) -> Self {
        Self {
            job_id,
            phase: JobPhase::WaitingForNodes,
            drain: false,
            round: RoundId::new(1),
            config_digest: None,
            next_node_id: 1,
            nodes: BTreeMap::new(),
            open: Some(OpenRound {
                round: RoundId::new(1),
                opened_ms: now_ms,
                last_join_ms: now_ms,
                joins: BTreeMap::new(),
            }),
            current: None,
            checkpoints: CheckpointRegistry::default(),
            evals: EvalQueue::default(),
        }
    }

    /// The node with this id, or [`DecisionError::UnknownNode`].
    pub fn node(&self, id: NodeId) -> Result<&Node, DecisionError> {
        self.nodes
            .get(&id)
            .map(AsRef::as_ref)
            .ok_or(DecisionError::UnknownNode(id))
    }

    /// The node with this id, to change: copied first if another state shares it.
    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(&id).map(Arc::make_mut)
    }

    /// Whether `node` trains in the running round.
    pub fn in_running_round(&self, node: NodeId) -> bool {
        self.phase == JobPhase::Running
            && self
                .current
                .as_ref()
                .is_some_and(|c| c.member(node).is_some())
    }
}

/// A request the state refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    /// No node has this id.
    #[error("{0} is not registered with this job: register first")]
    UnknownNode(NodeId),
    /// The node was declared dead or left.
    #[error("{0} was declared dead or left the job: register again")]
    NodeGone(NodeId),
    /// The job is over.
    #[error("the job is {0}: nothing more can join or register")]
    JobOver(JobPhase),
    /// A node runs another training configuration than the job.
    #[error("node {node} runs configuration {got:?} but the job runs {expected:?}: start it with the job's config")]
    ConfigMismatch {
        /// Node name.
        node: String,
        /// The job's digest.
        expected: String,
        /// The node's digest.
        got: String,
    },
    /// The running round already has the maximum number of nodes.
    #[error(
        "the running round already has the maximum of {max_nodes} nodes: the node stays on standby"
    )]
    RoundFull {
        /// The policy's maximum.
        max_nodes: u32,
    },
    /// The round gathered every node it may have, and their processes cannot split the
    /// global batch evenly: it cannot close.
    #[error("round {round} has all {nodes} node(s) it may have, {world} training processes in all, and train.batch_size {batch} cannot be split over {world}: world sizes that can are {sizes}; start nodes with other --procs (or another node count), or change train.batch_size in a new job")]
    WorldCannotSplitBatch {
        /// The round.
        round: RoundId,
        /// Nodes in it.
        nodes: usize,
        /// Processes in it.
        world: u32,
        /// The global batch.
        batch: u32,
        /// World sizes that would work (divisors of the batch), as text.
        sizes: String,
    },
    /// The node is not part of the round that closed or is gathering.
    #[error("{node} is not part of round {round}: join that round")]
    NotInRound {
        /// The node.
        node: NodeId,
        /// The latest round.
        round: RoundId,
    },
    /// A renewal or report quotes a lease that is no longer the agent's.
    #[error("the lease {attempt} of {id} is gone (the job is now {now}): its lease ran out and went to another agent, or it was reported already; drop this evaluation")]
    LeaseLost {
        /// The job.
        id: EvalId,
        /// The lease quoted.
        attempt: u32,
        /// The job's phase and current lease.
        now: String,
    },
    /// A malformed request.
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// Something a decision changed, with the reason, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A node registered (again, when `known`).
    NodeRegistered {
        /// The node.
        node: NodeId,
        /// Its name.
        name: String,
        /// It was registered before.
        known: bool,
    },
    /// A node missed its heartbeats.
    NodeDeclaredDead {
        /// The node.
        node: NodeId,
        /// How long it was silent.
        silent_ms: u64,
    },
    /// A node declared dead heartbeats again.
    NodeRevived {
        /// The node.
        node: NodeId,
    },
    /// A node left on its own.
    NodeLeft {
        /// The node.
        node: NodeId,
    },
    /// A new round opened.
    RoundOpened {
        /// Its number.
        round: RoundId,
        /// Why.
        reason: String,
    },
    /// A round has enough nodes but waits: their processes cannot split the global batch.
    RoundWaitsForWorldSize {
        /// Its number.
        round: RoundId,
        /// Processes that joined.
        world: u32,
        /// The global batch.
        batch: u32,
        /// World sizes that would work, as text.
        sizes: String,
    },
    /// A round closed.
    RoundClosed {
        /// Its number.
        round: RoundId,
        /// Processes in it.
        world_size: u32,
        /// Nodes in it.
        nodes: usize,
        /// Where its data order starts.
        start: DataPosition,
    },
    /// A checkpoint was registered.
    CheckpointRegistered {
        /// Its step.
        step: Step,
        /// Where it is.
        url: String,
        /// It is now the newest of its configuration.
        newest: bool,
    },
    /// An evaluation job was created.
    EvalScheduled {
        /// The job.
        id: EvalId,
        /// Its suite.
        suite: String,
        /// The checkpoint's step.
        step: Step,
    },
    /// An evaluation job was leased to an agent.
    EvalLeased {
        /// The job.
        id: EvalId,
        /// The agent.
        agent: String,
        /// The lease number.
        attempt: u32,
    },
    /// A lease ran out without a renewal.
    EvalLeaseExpired {
        /// The job.
        id: EvalId,
        /// The agent that held it.
        agent: String,
        /// The lease number.
        attempt: u32,
    },
    /// An evaluation finished.
    EvalDone {
        /// The job.
        id: EvalId,
        /// Its suite.
        suite: String,
        /// The checkpoint's step.
        step: Step,
        /// Where the result is.
        result_url: String,
    },
    /// An evaluation failed.
    EvalFailed {
        /// The job.
        id: EvalId,
        /// Why.
        error: String,
    },
    /// Every rank completed the job.
    JobFinished,
    /// An operator stopped the job.
    JobStopped {
        /// Members drain first.
        drain: bool,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::NodeRegistered { node, name, known } => {
                let again = if *known { " again" } else { "" };
                write!(f, "{node} ({name}) registered{again}")
            }
            Action::NodeDeclaredDead { node, silent_ms } => {
                write!(f, "{node} declared dead: no heartbeat for {silent_ms} ms")
            }
            Action::NodeRevived { node } => write!(f, "{node} heartbeats again"),
            Action::NodeLeft { node } => write!(f, "{node} left the job"),
            Action::RoundOpened { round, reason } => write!(f, "round {round} opened: {reason}"),
            Action::RoundWaitsForWorldSize { round, world, batch, sizes } => write!(
                f,
                "round {round} waits for more nodes: its {world} processes cannot split train.batch_size {batch} (world sizes that can: {sizes})"
            ),
            Action::RoundClosed { round, world_size, nodes, start } => write!(
                f,
                "round {round} closed with {nodes} nodes, world size {world_size}, starting at epoch {} sample {}",
                start.epoch, start.samples_consumed
            ),
            Action::CheckpointRegistered { step, url, newest } => {
                let tag = if *newest { " (newest)" } else { "" };
                write!(f, "checkpoint of step {step} registered at {url}{tag}")
            }
            Action::EvalScheduled { id, suite, step } => {
                write!(f, "{id}: suite {suite} on the checkpoint of step {step}")
            }
            Action::EvalLeased { id, agent, attempt } => {
                write!(f, "{id} leased to {agent} (lease {attempt})")
            }
            Action::EvalLeaseExpired { id, agent, attempt } => {
                write!(f, "{id}: lease {attempt} of {agent} ran out")
            }
            Action::EvalDone {
                id,
                suite,
                step,
                result_url,
            } => write!(f, "{id} done: suite {suite} on step {step}, result at {result_url}"),
            Action::EvalFailed { id, error } => write!(f, "{id} failed: {error}"),
            Action::JobFinished => write!(f, "job finished: every rank completed"),
            Action::JobStopped { drain, reason } => {
                let how = if *drain { "drain" } else { "stop" };
                write!(f, "job stopped ({how}): {reason}")
            }
        }
    }
}

#[cfg(test)]
mod properties;
#[cfg(test)]
pub mod testing;
