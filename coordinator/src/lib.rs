//! `coordinator`: the gRPC service that runs rendezvous rounds for data-parallel
//! training, detects failed nodes, keeps the checkpoint registry and decides where a
//! restarted round resumes. Never depends on libtorch.
//!
//! - [`state`]: the job state and every scheduling decision as a pure function of
//!   `(state, input, now, policy)`.
//! - [`store`]: the whole state in an embedded SQLite database, reloaded on restart.
//! - [`config`]: the `serve` configuration file, validated; [`tls`] its TLS files.
//! - [`limits`]: per-client call limits (token buckets), pure.
//! - [`roles`]: nodes, evaluation agents and operators, their tokens, and the role
//!   each method needs.
//! - [`server`]: the tonic service over `state` and `store`, the gate before every call
//!   (call limits, token, role) and the failure-detection timer; [`status`] maps every
//!   library error to a gRPC status.
//! - [`launch`]: the tokens, worker binary and local worker supervision of `launch`.

/// The client with the token attached (it lives in `proto`, which workers share).
pub use proto::client;
pub mod config;
pub mod history;
pub mod launch;
pub mod limits;
pub mod metrics;
pub mod roles;
pub mod server;
pub mod state;
pub mod status;
pub mod store;
pub mod tls;
