//! Training checkpoints in object storage (a local directory, S3, GCS, Azure).
//!
//! A checkpoint is a directory `step-000001234/` under the checkpoint URL holding the
//! model weights ([`WEIGHTS_FILE`], safetensors bytes from the model code), the optimiser
//! state ([`OPTIMIZER_FILE`], opaque bytes; absent from a model-only checkpoint, which
//! cannot be resumed: `worker export`), the training state ([`STATE_FILE`], JSON:
//! [`TrainState`]), the training config ([`CONFIG_FILE`], TOML: what the model is, so a
//! checkpoint loads without the config file; absent from checkpoints written before it was
//! kept) and, written last, the commit marker [`MARKER_FILE`] ([`Marker`]: size
//! and SHA-256 of every other file). A directory without a readable marker, or whose files
//! differ in size from it, is incomplete (a writer died) and is never listed; a file whose
//! hash differs from the marker is never loaded. [`CheckpointStore`] saves, lists, loads
//! and prunes them.

mod store;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use store::CheckpointStore;

/// Version of the checkpoint layout written by this code.
pub const FORMAT_VERSION: u32 = 1;
/// The model weights (safetensors).
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The optimiser state.
pub const OPTIMIZER_FILE: &str = "optimizer.bin";
/// The training state (JSON).
pub const STATE_FILE: &str = "train_state.json";
/// The training config (TOML).
pub const CONFIG_FILE: &str = "config.toml";
/// The commit marker, written after every other file.
pub const MARKER_FILE: &str = "COMPLETE.json";

/// Where the data stream stands: enough to resume it at the next sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPosition {
    /// The epoch of the sample order.
    pub epoch: u64,
    /// Samples of that epoch already consumed.
    pub consumed: u64,
}

/// `train_state.json`: the training loop's state besides weights and optimiser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainState {
    /// Layout version ([`FORMAT_VERSION`] when written by this code).
    pub format_version: u32,
    /// Optimiser steps taken.
    pub step: u64,
    /// Epoch the loop is in.
    pub epoch: u64,
    /// Position of the data stream.
    pub data: DataPosition,
    /// Random-number generator state (opaque bytes, hex in the file).
    #[serde(with = "hex_bytes")]
    pub rng_state: Vec<u8>,
    /// Digest of the configuration that wrote the checkpoint.
    pub config_digest: String,
    /// When it was saved, in milliseconds since the Unix epoch.
    pub saved_at_unix_ms: u64,
}

/// A checkpoint's contents.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Model weights (safetensors bytes).
    pub weights: Bytes,
    /// Optimiser state (opaque bytes); `None` in a model-only checkpoint, and when only
    /// the model was read ([`CheckpointStore::load_model`]).
    pub optimizer: Option<Bytes>,
    /// Training state; its `step` names the directory.
    pub state: TrainState,
    /// The training config as TOML; `None` in checkpoints written before it was kept.
    pub config: Option<Bytes>,
}

/// One file of a checkpoint as the marker records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// File name inside the checkpoint directory.
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the contents, lowercase hex.
    pub sha256: String,
}

/// `COMPLETE.json`: the commit marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Marker {
    /// Layout version.
    pub format_version: u32,
    /// The checkpoint's step.
    pub step: u64,
    /// Digest of the configuration that wrote it (also in `train_state.json`).
    pub config_digest: String,
    /// Every other file of the checkpoint.
    pub files: Vec<FileEntry>,
}

/// A complete checkpoint found in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRef {
    /// Its step.
    pub step: u64,
    /// Directory name (`step-000001234`).
    pub name: String,
    /// Its URL, for messages.
    pub url: String,
    /// The commit marker.
    pub marker: Marker,
}

/// The directory name of the checkpoint at `step` ([`proto::domain::Step::dir_name`]).
pub fn dir_name(step: u64) -> String {
    proto::domain::Step::new(step).dir_name()
}

/// The step a directory name stands for, if it is one
/// ([`proto::domain::Step::from_dir_name`]).
pub fn parse_dir_name(name: &str) -> Option<u64> {
    proto::domain::Step::from_dir_name(name).map(proto::domain::Step::get)
}

/// Why a checkpoint operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The checkpoint URL could not be opened.
    #[error(transparent)]
    Open(#[from] infra::store::StoreError),
    /// Reading, writing, listing or deleting failed (after retries).
    #[error(transparent)]
    Storage(#[from] infra::store::RetryError),
    /// A file's contents differ from what the marker records, or the state file does not
    /// parse: the checkpoint must not be used.
    #[error("checkpoint {url} is corrupt: {reason}; it will not be loaded (delete it, or resume from an older one)")]
    Corrupt {
        /// The checkpoint or file URL.
        url: String,
        /// What differs.
        reason: String,
    },
    /// The checkpoint was written under another configuration.
    #[error("checkpoint {url} was written with config digest {found}, but this run's config has digest {expected}: resume with the config that wrote it, or point checkpoint.url at a new location to start a fresh run")]
    DigestMismatch {
        /// The checkpoint's URL.
        url: String,
        /// The digest recorded in the checkpoint.
        found: String,
        /// The digest of the current configuration.
        expected: String,
    },
    /// No complete checkpoint where one was asked for.
    #[error("no complete checkpoint at {url}: train first, or give a checkpoint directory (its newest is used) or one checkpoint's step-N directory")]
    NotFound {
        /// What was asked for.
        url: String,
    },
    /// A local file system operation (removing a directory) failed.
    #[error("cannot {what} {path}: {source}")]
    Local {
        /// What was attempted.
        what: &'static str,
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_round_trip_and_strangers_are_ignored() {
        assert_eq!(dir_name(1234), "step-000001234");
        assert_eq!(parse_dir_name(&dir_name(1234)), Some(1234));
        assert_eq!(
            parse_dir_name(&dir_name(12_345_678_901)),
            Some(12_345_678_901)
        );
        for bad in [
            "step-12",
            "step-00000001x",
            "tmp",
            "step-",
            "step-+00000001",
        ] {
            assert_eq!(parse_dir_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn train_state_keeps_rng_bytes_through_json() {
        let s = TrainState {
            format_version: FORMAT_VERSION,
            step: 7,
            epoch: 1,
            data: DataPosition {
                epoch: 1,
                consumed: 640,
            },
            rng_state: vec![0, 1, 254, 255],
            config_digest: "ab".into(),
            saved_at_unix_ms: 5,
        };
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains("\"0001feff\""), "{text}");
        assert_eq!(serde_json::from_str::<TrainState>(&text).unwrap(), s);
    }
}
