//! The ids of the protocol as their own types: a node, a job, a rendezvous round, a global
//! rank, an optimiser step, an evaluation job. Each wraps its number privately, so one
//! cannot be passed where another is expected, and a number becomes an id only through
//! `new` (at the wire and storage edges). Serialised as the bare number.
//!
//! ```
//! use proto::domain::{RoundId, Step};
//! fn rejoin(round: RoundId) -> u64 {
//!     round.next().get()
//! }
//! assert_eq!(rejoin(RoundId::new(3)), 4);
//! # let _ = Step::new(3);
//! ```
//!
//! A step where a round is expected does not compile:
//!
//! ```compile_fail
//! use proto::domain::{RoundId, Step};
//! fn rejoin(round: RoundId) -> u64 {
//!     round.next().get()
//! }
//! rejoin(Step::new(3));
//! ```
//!
//! Nor does a bare number:
//!
//! ```compile_fail
//! use proto::domain::RoundId;
//! fn rejoin(round: RoundId) -> u64 {
//!     round.next().get()
//! }
//! rejoin(3);
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($int:ty), $label:literal) => {
        id_type!($(#[$doc])* $name($int));

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($label, " {}"), self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
    };
    ($(#[$doc:meta])* $name:ident($int:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name($int);

        impl $name {
            /// The id with this number.
            pub const fn new(n: $int) -> Self {
                Self(n)
            }

            /// Its number (for the wire, storage and arithmetic).
            pub const fn get(self) -> $int {
                self.0
            }
        }
    };
}

/// Rounds, ranks and steps print as their bare number (also in `{:?}`), as they read in
/// messages ("step 40", "ranks [0, 1]"); nodes, jobs and evaluations print with their
/// kind.
macro_rules! number_display {
    ($($name:ident),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
    )*};
}

id_type!(
    /// Identifies a node within a job; stable across re-registrations of the same name.
    NodeId(u64),
    "node"
);
id_type!(
    /// Identifies a training job.
    JobId(u64),
    "job"
);
id_type!(
    /// A rendezvous round of a job (0 is the first; each new membership opens the next).
    RoundId(u64)
);
id_type!(
    /// A process's rank in the data-parallel group of a round (0 is the leader).
    Rank(u32)
);
id_type!(
    /// Optimiser steps taken (a checkpoint's step, a rank's progress).
    Step(u64)
);
id_type!(
    /// Identifies an evaluation job.
    EvalId(u64),
    "eval"
);

number_display!(RoundId, Rank, Step);

impl Rank {
    /// Rank 0: the process that writes checkpoints and hosts the TCP collective.
    pub const LEADER: Rank = Rank(0);
}

impl Step {
    /// The name of this step's checkpoint directory: `step-` and at least nine digits
    /// (`step-000000040`), so that names sort by step. Workers write it, the coordinator
    /// and evaluation agents check reported URLs against it.
    pub fn dir_name(self) -> String {
        format!("step-{:09}", self.0)
    }

    /// The step a checkpoint directory's name stands for, if it is one (`step-` and nine
    /// digits or more, nothing else).
    pub fn from_dir_name(name: &str) -> Option<Step> {
        let digits = name.strip_prefix("step-")?;
        if digits.len() < 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(Step)
    }
}

impl RoundId {
    /// The round after this one.
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }
}
