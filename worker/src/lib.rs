//! The worker's library: what one training node needs besides the data pipeline
//! (`dataloader`) and the model (`kernels`).
//!
//! [`config`] reads and validates the training configuration (a TOML file), computes its
//! digest and the learning-rate schedule; [`checkpoint`] saves and loads training
//! checkpoints in object storage, each committed by a marker written last, so a crash
//! while writing never leaves a checkpoint that looks complete; [`train`] is the
//! training loop (one process, or one rank of a data-parallel group through [`collective`]); [`eval`] measures a trained model; [`bench`] times the
//! training step; [`node`] is `worker join`, one node of a coordinated job; [`probe`]
//! measures frozen image features with linear probes; [`splice_bench`] makes the
//! cross-camera splice benchmark from real photos.

pub mod bench;
pub mod checkpoint;
pub mod collective;
pub mod config;
pub mod detect;
pub mod eval;
pub mod node;
pub mod probe;
pub mod splice_bench;
pub mod train;

/// Tests that seed libtorch's global generator and then draw from it hold this lock, so
/// tests running on other threads cannot reseed or draw in between.
#[cfg(test)]
pub(crate) fn torch_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
