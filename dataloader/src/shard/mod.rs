//! Webdataset-style tar shards in object storage: the format (see `manifest`), a writer
//! that rolls shards over at a target size and writes the manifest last, and a reader that
//! fetches single samples with byte-range GETs.
//!
//! A dataset under a URL prefix holds `manifest.json`, `shard-NNNNNN.tar[.zst]` and
//! `shard-NNNNNN.index.json`. Each sample `KEY` is the tar members `KEY.exif.json` (its
//! [`crate::TagMap`]), optionally `KEY.jpgidx` (the JPEG scan index) and `KEY.jpgkit` (the
//! JPEG decode kit), and `KEY.jpg` (original bytes); with zstd each sample's members are
//! one independent frame, so the file is a valid `.tar.zst` and every sample can still be
//! fetched alone. In an uncompressed shard the index also says where each photo's bytes
//! are, so a reader can fetch the head and then only the byte ranges its crops need.

pub mod manifest;
pub mod reader;
pub mod sample;
pub mod writer;

pub use manifest::{
    Compression, IndexEntry, JpegSpan, Manifest, ShardEntry, ShardIndex, FORMAT_VERSION,
};
pub use reader::{Dataset, ShardCheck};
pub use sample::{EncodedSample, RawSample, SampleError, SampleHead, SampleInput};
pub use writer::{DatasetInfo, DatasetWriter, WriterOptions};

use infra::store::{RetryError, StoreError};

/// Errors of reading or writing a dataset.
///
/// [`ShardError::is_sample_error`] separates problems of one sample (skip and count it)
/// from problems of storage or of the dataset as a whole (report them).
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The URL does not name a usable store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A storage operation failed for good (after retries for transient errors).
    #[error("storage error: {0}")]
    Storage(#[from] RetryError),
    /// There is no manifest under the URL.
    #[error("no manifest.json at {url}: was it packed with `dataloader pack`?")]
    NoManifest {
        /// The dataset URL.
        url: String,
    },
    /// The manifest is not valid JSON of the expected shape.
    #[error("bad manifest at {url}: {reason}")]
    BadManifest {
        /// The manifest's URL.
        url: String,
        /// The parse error.
        reason: String,
    },
    /// The manifest has a format version this code does not read.
    #[error("{url} has format_version {found}; this dataloader reads version {FORMAT_VERSION}: repack the dataset or use a matching dataloader")]
    UnsupportedVersion {
        /// The manifest's URL.
        url: String,
        /// Its version.
        found: u32,
    },
    /// A shard index is missing fields or disagrees with the manifest.
    #[error("bad shard index {url}: {reason}")]
    BadIndex {
        /// The index's URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A shard or sample number past the end.
    #[error("no {what} {n}: the dataset has {len}")]
    OutOfRange {
        /// `shard` or `sample in shard N`.
        what: String,
        /// The number asked for.
        n: usize,
        /// How many there are.
        len: usize,
    },
    /// A sample's photo cannot be read by the byte ranges asked for.
    #[error("sample '{key}' in {shard}: {reason}")]
    NotRangeable {
        /// Shard object name.
        shard: String,
        /// Sample key.
        key: String,
        /// Why.
        reason: String,
    },
    /// One sample's bytes are corrupt.
    #[error("sample '{key}' in {shard}: {source}")]
    Sample {
        /// Shard object name.
        shard: String,
        /// Sample key.
        key: String,
        /// What is wrong.
        #[source]
        source: SampleError,
    },
    /// A sample could not be encoded while writing.
    #[error(transparent)]
    Encode(#[from] sample::EncodeError),
    /// The writer was used wrongly or a JSON document could not be produced.
    #[error("cannot write dataset at {url}: {reason}")]
    Write {
        /// The dataset URL.
        url: String,
        /// What failed.
        reason: String,
    },
}

impl ShardError {
    /// Whether the error concerns one sample only (the reader may skip it and go on).
    pub fn is_sample_error(&self) -> bool {
        matches!(self, ShardError::Sample { .. })
    }
}
