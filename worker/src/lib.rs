//! The worker's library: what one training node needs besides the data pipeline
//! (`dataloader`) and the model (`kernels`).
//!
//! [`config`] reads and validates the training configuration (a TOML file), computes its
//! digest and the learning-rate schedule; [`checkpoint`] saves and loads training
//! checkpoints in object storage, each committed by a marker written last, so a crash
//! while writing never leaves a checkpoint that looks complete.

pub mod checkpoint;
pub mod config;
