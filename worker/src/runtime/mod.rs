//! The model runtime every model-running command stands on: training, evaluation,
//! detection, probes and benchmarks.
//!
//! [`model`] builds a config's model on its device (and loads checkpoint weights into it),
//! [`data`] opens the dataset and tokenizer a config names, [`inputs`] turns a pipeline
//! batch into tensors and embeds both sides, [`step`] runs forward and backward over the
//! global batch (micro-batches, feature cache, all-gathered embeddings) with
//! [`sync_norm`]'s batch norms, [`optimizer`] is AdamW, [`text_cache`] keeps a frozen text
//! tower's pooled states, and [`guard`] turns libtorch failures into errors. None of it
//! knows about the training loop: [`crate::train`] stands on it like the others.

pub mod data;
pub mod guard;
pub mod inputs;
pub mod model;
pub mod optimizer;
pub mod step;
pub mod sync_norm;
pub mod text_cache;
pub mod timing;

use infra::FieldError;
use kernels::KernelsError;

use crate::checkpoint::CheckpointError;
use crate::collective::CollectiveError;
use optimizer::OptimizerError;

/// What can go wrong building, loading or running a model and feeding it data.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A config value that only the data can check (e.g. an epoch without steps).
    #[error("invalid config: {0}")]
    Config(FieldError),
    /// A checkpoint without its config, and none given.
    #[error("{0}")]
    MissingConfig(String),
    /// The device is missing or unsupported by this build.
    #[error("{0}")]
    Device(String),
    /// The dataset could not be opened.
    #[error("cannot open the dataset: {0}")]
    Dataset(#[from] dataloader::shard::ShardError),
    /// The tokenizer or tag list could not be loaded.
    #[error("{0}")]
    Text(String),
    /// The data stream failed.
    #[error("data stream: {0}")]
    Stream(#[from] dataloader::stream::StreamError),
    /// The model could not be built, loaded or run.
    #[error(transparent)]
    Model(#[from] KernelsError),
    /// Saving or loading a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A collective operation with the other ranks failed (a peer died or hung).
    #[error("data-parallel group: {0}")]
    Collective(#[from] CollectiveError),
    /// The optimiser state did not fit.
    #[error(transparent)]
    Optimizer(#[from] OptimizerError),
    /// A local temporary file failed.
    #[error("temporary file: {0}")]
    Io(#[from] std::io::Error),
    /// The device (or the host) ran out of memory ([`guard`]).
    #[error("{device} ran out of memory {what}: {message}. Lower train.batch_size, or set train.micro_batch_size: micro-batches bound the memory of a pass while the loss still covers the whole batch")]
    OutOfMemory {
        /// `cuda:0`, `cpu`.
        device: String,
        /// What was asked (the step and its batch).
        what: String,
        /// libtorch's message.
        message: String,
    },
    /// Another libtorch failure ([`guard`]).
    #[error("libtorch failed on {device} {what}: {message}")]
    Torch {
        /// `cuda:0`, `cpu`.
        device: String,
        /// What was asked.
        what: String,
        /// libtorch's message.
        message: String,
    },
}
