//! Collective communication between the ranks of a data-parallel job: all-reduce (sum),
//! all-gather, broadcast and barrier over tensors.
//!
//! [`Collective`] is the interface the training step uses; [`Solo`] is the one-rank case
//! and [`tcp::TcpCollective`] the CPU backend, over TCP between processes (addresses come
//! from the rendezvous). A GPU backend (NCCL) implements the same trait on device tensors
//! and libtorch's stream; the trait passes tensors, never host buffers, so it can.
//!
//! Every call is collective: all ranks make the same calls in the same order. A peer that
//! dies or stops answering makes the call fail with [`CollectiveError`] after the
//! backend's timeout instead of hanging, so the caller can hand the failure to recovery.

pub mod buckets;
#[cfg(feature = "cuda")]
pub mod nccl;
pub mod tcp;
pub mod timed;

/// The environment variable through which `worker join` hands its training processes the
/// round's bootstrap from the rendezvous: the group's [`tcp::GroupSecret`] (hex), which
/// every rank presents to rank 0. (Not an argument: arguments are visible to every user
/// of the machine.) NCCL's unique id is made by rank 0's training process, once per round,
/// and passed over the TCP group: one made in `worker join`'s long-lived process would
/// leave NCCL threads behind at every round.
pub const GROUP_SECRET_ENV: &str = "EXIFLANG_GROUP_SECRET";

pub use buckets::GradBuckets;
use tch::{Kind, Tensor};

/// Why a collective call failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectiveError {
    /// A peer closed its connection or could not be reached.
    #[error("rank {rank} is gone: {reason}")]
    PeerGone {
        /// The peer's rank.
        rank: usize,
        /// What happened.
        reason: String,
    },
    /// A peer did not answer within the timeout.
    #[error("rank {rank} did not answer within {seconds} s")]
    Timeout {
        /// The peer's rank.
        rank: usize,
        /// The timeout.
        seconds: u64,
    },
    /// Ranks disagree on the call (different operation, sequence or tensor shape): a bug,
    /// or ranks running different code or configs.
    #[error("collective mismatch: {0}")]
    Mismatch(String),
    /// Setting up the group failed (bind, connect, handshake).
    #[error("cannot form the group: {0}")]
    Setup(String),
    /// The tensor cannot be sent (kind or device unsupported by this backend).
    #[error("unsupported tensor: {0}")]
    Unsupported(String),
    /// The backend failed (NCCL or CUDA error, or a call that never completed); the group
    /// is unusable and was torn down.
    #[error("the collective failed: {0}")]
    Failed(String),
}

/// The collective operations of one rank.
pub trait Collective: Send {
    /// This rank, in `0..world`.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn world(&self) -> usize;
    /// Replaces `t` by the sum of every rank's `t` (identical on every rank: summed in
    /// rank order).
    fn all_reduce_sum(&mut self, t: &mut Tensor) -> Result<(), CollectiveError>;
    /// Every rank's `t`, in rank order (shapes may differ in the first dimension).
    fn all_gather(&mut self, t: &Tensor) -> Result<Vec<Tensor>, CollectiveError>;
    /// Replaces `t` by rank `root`'s `t` (same shape on every rank).
    fn broadcast(&mut self, t: &mut Tensor, root: usize) -> Result<(), CollectiveError>;
    /// Returns once every rank has called it.
    fn barrier(&mut self) -> Result<(), CollectiveError>;
    /// [`Collective::all_reduce_sum`] that may return before the sum is there: `t` holds
    /// it once [`Collective::complete`] returned. A GPU backend enqueues the reduction and
    /// goes on, so the host prepares the next bucket while the device sums this one; the
    /// default runs it at once.
    fn all_reduce_sum_deferred(&mut self, t: &mut Tensor) -> Result<(), CollectiveError> {
        self.all_reduce_sum(t)
    }
    /// Waits for every deferred operation (with the backend's timeout).
    fn complete(&mut self) -> Result<(), CollectiveError> {
        Ok(())
    }
    /// Whether deferred all-reduces run beside the caller's computation (a GPU backend's
    /// communication stream), so issuing gradient buckets during backward can pay off;
    /// a backend that sums at once would only block back-propagation.
    fn reduces_beside_compute(&self) -> bool {
        false
    }
}

/// The group of one: every operation is the identity.
#[derive(Debug, Default, Clone, Copy)]
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn world(&self) -> usize {
        1
    }
    fn all_reduce_sum(&mut self, _t: &mut Tensor) -> Result<(), CollectiveError> {
        Ok(())
    }
    fn all_gather(&mut self, t: &Tensor) -> Result<Vec<Tensor>, CollectiveError> {
        Ok(vec![t.shallow_clone()])
    }
    fn broadcast(&mut self, _t: &mut Tensor, _root: usize) -> Result<(), CollectiveError> {
        Ok(())
    }
    fn barrier(&mut self) -> Result<(), CollectiveError> {
        Ok(())
    }
}

/// The precision gradient buckets are summed in (`train.grad_reduce`); gradients are
/// float32 before and after either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradReduce {
    /// float32 (exact sums up to float rounding).
    #[default]
    Fp32,
    /// bfloat16: half the bytes on the wire, about 3 significant digits per sum.
    Bf16,
}

impl GradReduce {
    /// Whether this is the default (float32).
    pub fn is_fp32(&self) -> bool {
        *self == GradReduce::Fp32
    }

    fn kind(self) -> Kind {
        match self {
            GradReduce::Fp32 => Kind::Float,
            GradReduce::Bf16 => Kind::BFloat16,
        }
    }
}

/// Makes every rank's variables (parameters and batch-norm statistics) equal rank 0's,
/// in name order; the start of data-parallel training.
pub fn broadcast_variables(
    coll: &mut dyn Collective,
    vs: &tch::nn::VarStore,
) -> Result<(), CollectiveError> {
    if coll.world() == 1 {
        return Ok(());
    }
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, t) in named {
        let mut value = t.detach().copy();
        coll.broadcast(&mut value, 0)?;
        tch::no_grad(|| t.shallow_clone().copy_(&value));
    }
    Ok(())
}

/// Kinds the CPU backend sends.
pub(crate) fn check_kind(t: &Tensor) -> Result<Kind, CollectiveError> {
    match t.kind() {
        k @ (Kind::Float | Kind::Double | Kind::Int64 | Kind::BFloat16) => Ok(k),
        k => Err(CollectiveError::Unsupported(format!("{k:?} tensors"))),
    }
}
