//! The worker's library: what one training node needs besides the data pipeline
//! (`dataloader`) and the model (`kernels`), in floors from the bottom up.
//!
//! - Below everything: [`config`] reads and validates the training configuration (a TOML
//!   file), computes its digest and the learning-rate schedule; [`checkpoint`] saves and
//!   loads training checkpoints in object storage, each committed by a marker written
//!   last; [`collective`] is the data-parallel group (TCP, or NCCL in the GPU build);
//!   [`events`] is what a training process tells its supervisor.
//! - [`runtime`]: the model runtime (model building and loading, step inputs,
//!   forward/backward over the global batch, AdamW, the libtorch guard) that every
//!   model-running command stands on.
//! - On it: [`train`], the training loop (`worker train`, and nothing else imports it);
//!   [`eval`] measures a trained model; [`detect`] finds splices in a photo; [`probe`]
//!   measures frozen features with linear probes; [`mod@bench`] times the training step.
//! - Beside them: [`node`] is `worker join`, one node of a coordinated job, supervising
//!   `worker train` processes through [`events`]; [`splice_bench`] makes the cross-camera
//!   splice benchmark from real photos.

pub mod bench;
pub mod checkpoint;
pub mod collective;
pub mod config;
pub mod detect;
pub mod eval;
pub mod events;
pub mod node;
pub mod probe;
pub mod runtime;
pub mod splice_bench;
pub mod tensorboard;
pub mod train;

/// Tests that seed libtorch's global generator and then draw from it hold this lock, so
/// tests running on other threads cannot reseed or draw in between.
#[cfg(test)]
pub(crate) fn torch_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
