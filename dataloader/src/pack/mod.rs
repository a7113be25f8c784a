//! Packing photos into a dataset: list the input, prepare each photo on the blocking
//! thread pool (a bounded number at a time, in input order, so memory stays bounded and
//! shard contents are reproducible), stream them into shards, count what was skipped and
//! why, and write the manifest last.

pub mod input;
pub mod photo;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::exif::frequency::{FrequencyCounter, DEFAULT_THRESHOLD};
use crate::exif::TagList;
use crate::shard::writer::DatasetInfo;
use crate::shard::{DatasetWriter, Manifest, ShardError, WriterOptions};
use crate::TagMap;
use infra::store::StoreOptions;
pub use input::{list_photos, make_key, Input, PhotoItem};
pub use photo::{SkipReason, PATCH_SIZE};

/// Where tags come from.
#[derive(Debug, Clone, Default)]
pub enum TagSource {
    /// The EXIF of each JPEG file.
    #[default]
    Exif,
    /// A YFCC100M EXIF metadata file, matched by photo id (file name without extension).
    Yfcc(PathBuf),
    /// Tag maps given by the caller, by photo id (file name without extension).
    Given(HashMap<String, TagMap>),
}

/// Settings of a pack run.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// Dataset URL to write (local path, `file://`, `s3://`, `gs://`, `az://`).
    pub out: String,
    /// Store settings.
    pub store: StoreOptions,
    /// Shard settings (compression, target size).
    pub writer: WriterOptions,
    /// Photos with fewer tags are skipped. Default: 10.
    pub min_tags: usize,
    /// Where tags come from. Default: each file's EXIF.
    pub tags: TagSource,
    /// Photos prepared at once (each holds its file in memory). Default: the number of cores.
    pub parallelism: usize,
    /// The tag list recorded in the manifest (the tags the training text uses). Default:
    /// the list the project ships, [`TagList::bundled`].
    pub tag_list: TagListChoice,
}

/// Which tag list a packed dataset's text uses.
#[derive(Debug, Clone, Default)]
pub enum TagListChoice {
    /// The list the project ships (`configs/exif-tags.toml`).
    #[default]
    Bundled,
    /// A given list (e.g. one `dataloader tags` computed over a larger corpus).
    Given(TagList),
    /// Computed from the packed photos: the tags with a value in more than half of them,
    /// as `dataloader tags` does.
    FromCorpus,
}

impl PackOptions {
    /// Options with the defaults for writing to `out`.
    pub fn new(out: impl Into<String>) -> Self {
        Self {
            out: out.into(),
            store: StoreOptions::default(),
            writer: WriterOptions::default(),
            min_tags: 10,
            tags: TagSource::Exif,
            parallelism: std::thread::available_parallelism().map_or(2, |n| n.get()),
            tag_list: TagListChoice::Bundled,
        }
    }
}

/// Progress of a pack run, reported after each photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackProgress {
    /// Photos handled so far.
    pub done: u64,
    /// Photos in the input.
    pub total: u64,
    /// Photos packed so far.
    pub packed: u64,
    /// Bytes written to shards so far (closed shards plus the open one).
    pub bytes: u64,
}

/// What a pack run did.
#[derive(Debug, Clone)]
pub struct PackSummary {
    /// The manifest written.
    pub manifest: Manifest,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// Why a pack run failed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The input folder, list or metadata file cannot be used.
    #[error("{}: {reason}", path.display())]
    Input {
        /// The offending path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No photo could be packed; no manifest was written.
    #[error("no photo packed from {source_desc} (skipped: {skipped:?}); nothing written")]
    NothingPacked {
        /// The input.
        source_desc: String,
        /// Skipped photos by reason.
        skipped: BTreeMap<String, u64>,
    },
    /// Writing the shards failed.
    #[error(transparent)]
    Shard(#[from] ShardError),
    /// A worker thread failed unexpectedly.
    #[error("photo preparation failed for {key}: {reason}")]
    Worker {
        /// The sample key.
        key: String,
        /// The failure.
        reason: String,
    },
}

/// Packs `input` into a dataset at `opts.out`, calling `progress` after each photo.
pub async fn pack(
    input: &Input,
    opts: &PackOptions,
    progress: &(dyn Fn(&PackProgress) + Sync),
) -> Result<PackSummary, PackError> {
    let started = Instant::now();
    let items = {
        let input = input.clone();
        tokio::task::spawn_blocking(move || list_photos(&input))
            .await
            .map_err(|e| worker_error("listing", e))??
    };
    let mut source = input.describe();
    let lookup = match &opts.tags {
        TagSource::Exif => photo::TagLookup::Exif,
        TagSource::Given(map) => photo::TagLookup::ById(map.clone()),
        TagSource::Yfcc(path) => {
            source.push_str(&format!(", YFCC metadata {}", path.display()));
            let wanted: HashSet<String> = items.iter().map(|i| input::photo_id(&i.path)).collect();
            let path = path.clone();
            let map = tokio::task::spawn_blocking(move || input::read_yfcc(&path, &wanted))
                .await
                .map_err(|e| worker_error("YFCC metadata", e))??;
            tracing::info!(
                photos = items.len(),
                with_metadata = map.len(),
                "YFCC metadata read"
            );
            photo::TagLookup::ById(map)
        }
    };
    let lookup = Arc::new(lookup);
    let total = items.len() as u64;
    tracing::info!(photos = total, out = %opts.out, "packing");

    let mut writer = DatasetWriter::create(&opts.out, &opts.store, opts.writer.clone()).await?;
    let (min_tags, compression) = (opts.min_tags, opts.writer.compression);
    let mut prepared = futures::stream::iter(items)
        .map(|item| {
            let lookup = lookup.clone();
            let key = item.key.clone();
            let task = tokio::task::spawn_blocking(move || {
                photo::prepare(&item.path, &item.key, &lookup, min_tags, compression)
            });
            async move { (key, task.await) }
        })
        .buffered(opts.parallelism.max(1));

    let mut state = RunState::new(opts.min_tags);
    let mut done = 0u64;
    while let Some((key, result)) = prepared.next().await {
        done += 1;
        let outcome = match result {
            Ok(r) => r,
            Err(e) => {
                writer.abort().await;
                return Err(worker_error(&key, e));
            }
        };
        match outcome {
            Ok(p) => {
                state.record(&p);
                if let Err(e) = writer.append_encoded(p.encoded).await {
                    writer.abort().await;
                    return Err(e.into());
                }
            }
            Err(s) => state.skip(&key, s),
        }
        progress(&PackProgress {
            done,
            total,
            packed: state.packed,
            bytes: state.bytes,
        });
    }
    if state.packed == 0 {
        writer.abort().await;
        return Err(PackError::NothingPacked {
            source_desc: source,
            skipped: state.skipped,
        });
    }
    let tags = match &opts.tag_list {
        TagListChoice::Bundled => TagList::bundled().names().to_vec(),
        TagListChoice::Given(list) => list.names().to_vec(),
        TagListChoice::FromCorpus => state.frequencies.report(DEFAULT_THRESHOLD).tags,
    };
    let info = DatasetInfo {
        tags,
        skipped: state.skipped,
        source,
    };
    let manifest = writer.finish(info).await?;
    Ok(PackSummary {
        manifest,
        elapsed: started.elapsed(),
    })
}

fn worker_error(key: &str, e: tokio::task::JoinError) -> PackError {
    PackError::Worker {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

/// Counters of a run.
struct RunState {
    packed: u64,
    bytes: u64,
    skipped: BTreeMap<String, u64>,
    frequencies: FrequencyCounter,
}

impl RunState {
    fn new(min_tags: usize) -> Self {
        Self {
            packed: 0,
            bytes: 0,
            skipped: BTreeMap::new(),
            frequencies: FrequencyCounter::new(min_tags),
        }
    }

    fn record(&mut self, p: &photo::Prepared) {
        self.packed += 1;
        self.bytes += p.encoded.bytes.len() as u64;
        self.frequencies.add(&p.tags);
    }

    fn skip(&mut self, key: &str, s: photo::Skip) {
        let count = self
            .skipped
            .entry(s.reason.as_str().to_string())
            .or_default();
        if *count == 0 {
            tracing::warn!(
                reason = %s.reason,
                key,
                detail = %s.detail,
                "skipping photo (further photos skipped for this reason are only counted)"
            );
        }
        *count += 1;
    }
}
