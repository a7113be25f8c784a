//! Packing photos into a dataset, in parallel parts and resumably.
//!
//! The input is walked in a fixed order ([`source`]) and cut into blocks of
//! `block_size` photos (with the metadata lines skipped among them). Part `I` of `N`
//! packs the blocks `b` with `b % N == I`: for each, photos are read (bounded concurrent
//! GETs), prepared on all cores (checked, tagged, indexed, hashed; duplicates within the
//! block dropped), streamed into the block's own shards, and then a block record is
//! written ([`records`]). A block with an intact record under the same settings and the
//! same candidates is kept by a rerun; anything else is packed again, so a part killed at
//! any moment loses at most its blocks in progress and never leaves a record naming an
//! incomplete object. When every part has finished, [`merge`] writes `manifest.json`
//! from the records: the shards in block order, duplicates across blocks left out of the
//! indexes, skips summed, the tag list. A single-process pack is one part and merges at
//! its end, so N parts give exactly the manifest one process gives.

pub mod input;
pub mod merge;
pub mod photo;
pub mod records;
pub mod source;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Semaphore;

use crate::exif::frequency::FrequencyCounter;
use crate::exif::TagList;
use crate::shard::{DatasetWriter, Manifest, ShardError, WriterOptions};
use crate::TagMap;
use infra::store::StoreOptions;
pub use input::{list_photos, make_key, Input, PhotoItem};
pub use photo::{SkipReason, PATCH_SIZE};
use records::{BlockRecord, Documents, PackedSample, PartRecord, Settings};
pub use source::{Candidate, Location, PackInput, Unit, YfccInput};

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
    /// Photos read from storage at once. Default: 16.
    pub fetch_concurrency: usize,
    /// Photos per block (the unit of parallel parts, reruns and shard naming). Default:
    /// 1000.
    pub block_size: u64,
    /// This part and the number of parts (`(0, 1)`: the whole input, then the manifest).
    pub part: (u32, u32),
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
            fetch_concurrency: 16,
            block_size: 1000,
            part: (0, 1),
            tag_list: TagListChoice::Bundled,
        }
    }
}

/// Progress of a pack run, reported after each photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackProgress {
    /// Photos of this part handled so far (packed, skipped, or kept from an earlier run).
    pub done: u64,
    /// Photos of this part walked so far (the whole input, once the walk has ended).
    pub total: u64,
    /// Photos packed so far.
    pub packed: u64,
    /// Bytes written to shards so far (closed shards plus the open one).
    pub bytes: u64,
}

/// What a pack run did.
#[derive(Debug, Clone)]
pub struct PackSummary {
    /// The manifest written (a single part), or `None` (one of several parts: run
    /// [`merge::merge`] when all have finished).
    pub manifest: Option<Manifest>,
    /// Blocks this part packed now.
    pub blocks_packed: u64,
    /// Blocks this part kept from an earlier run.
    pub blocks_kept: u64,
    /// Photos this part packed now.
    pub photos_packed: u64,
    /// Blocks over all parts.
    pub blocks_total: u64,
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
    /// Reading photos from storage failed for good (after retries).
    #[error("reading photos: {0}")]
    Storage(String),
    /// The options are inconsistent.
    #[error("invalid pack option: {0}")]
    Option(String),
    /// The records under the dataset URL do not fit together (see [`merge`]).
    #[error("{0}")]
    Records(String),
    /// A worker thread failed unexpectedly.
    #[error("photo preparation failed for {key}: {reason}")]
    Worker {
        /// The sample key.
        key: String,
        /// The failure.
        reason: String,
    },
}

/// Packs `input` (this part of it) into a dataset at `opts.out`, calling `progress` after
/// each photo; a single part also writes the manifest.
pub async fn pack(
    input: impl Into<PackInput>,
    opts: &PackOptions,
    progress: &(dyn Fn(&PackProgress) + Sync),
) -> Result<PackSummary, PackError> {
    let input: PackInput = input.into();
    let started = Instant::now();
    let (part, parts) = opts.part;
    if parts == 0 || part >= parts {
        return Err(PackError::Option(format!(
            "part {part} of {parts}: give I/N with 0 <= I < N"
        )));
    }
    if opts.block_size == 0 {
        return Err(PackError::Option("block size must be at least 1".into()));
    }
    let docs = Documents::open(&opts.out, &opts.store)?;
    // Records of an earlier pack into this URL by another number of parts are stale: a
    // merge must not mistake them for this pack's.
    for name in docs.names_starting("pack-part-").await? {
        if !name.ends_with(&format!("-of-{parts}.json")) {
            docs.delete(&name).await?;
        }
    }
    let settings = settings(opts);
    let lookup = Arc::new(tag_lookup(&input, opts).await?);
    let reader = Arc::new(source::PhotoReader::new(&input, &opts.store)?);

    // The walk runs on its own thread and hands over this part's blocks, two at most
    // waiting, so memory holds a few blocks' metadata, never the whole input.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Block, PackError>>(2);
    let walked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let walker = {
        let (input, opts_store, min_tags) = (input.clone(), opts.store.clone(), opts.min_tags);
        let (block_size, runtime, walked) = (
            opts.block_size,
            tokio::runtime::Handle::current(),
            walked.clone(),
        );
        std::thread::spawn(move || {
            cut_blocks(
                &input,
                min_tags,
                &opts_store,
                &runtime,
                block_size,
                (part, parts),
                &walked,
                &tx,
            )
        })
    };

    let ctx = BlockCtx {
        opts,
        settings: &settings,
        lookup,
        reader,
        cpu: Arc::new(Semaphore::new(opts.parallelism.max(1))),
        docs: &docs,
        manifest_removed: std::sync::atomic::AtomicBool::new(false),
        logged: std::sync::Mutex::new(HashSet::new()),
        walked,
        progress,
    };
    let mut summary = PackSummary {
        manifest: None,
        blocks_packed: 0,
        blocks_kept: 0,
        photos_packed: 0,
        blocks_total: 0,
        elapsed: Duration::ZERO,
    };
    let mut done = 0u64;
    while let Some(block) = rx.recv().await {
        let block = block?;
        let digest = records::candidates_digest(
            block
                .photos
                .iter()
                .map(|c| (c.key.as_str(), c.location.to_string())),
        );
        let name = records::block_record_name(block.number);
        let kept = match docs.get::<BlockRecord>(&name).await? {
            Some(r) if r.settings == settings && r.candidates_digest == digest => {
                docs.block_is_intact(&r).await?
            }
            _ => false,
        };
        if kept {
            done += block.photos.len() as u64;
            summary.blocks_kept += 1;
            tracing::info!(
                block = block.number,
                "block already packed and intact; kept"
            );
            continue;
        }
        let record = pack_block(&ctx, block, digest, &mut done).await?;
        summary.photos_packed += record.samples.len() as u64;
        summary.blocks_packed += 1;
        docs.put(&name, &record).await?;
    }
    let blocks_total = walker.join().map_err(|_| PackError::Worker {
        key: "input walk".into(),
        reason: "the walking thread panicked".into(),
    })??;
    summary.blocks_total = blocks_total;
    let tag_list = match &opts.tag_list {
        TagListChoice::Bundled => Some(TagList::bundled().names().to_vec()),
        TagListChoice::Given(list) => Some(list.names().to_vec()),
        TagListChoice::FromCorpus => None,
    };
    let mut source = input.describe();
    if let TagSource::Yfcc(path) = &opts.tags {
        source.push_str(&format!(", YFCC metadata {}", path.display()));
    }
    let record = PartRecord {
        part,
        parts,
        blocks: blocks_total,
        settings,
        tag_list,
        source,
    };
    docs.put(&records::part_record_name(part, parts), &record)
        .await?;
    if parts == 1 {
        summary.manifest = Some(merge::merge(&opts.out, &opts.store).await?);
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// A block of the walk: its number, its photos and the lines skipped among them.
struct Block {
    number: u64,
    photos: Vec<Candidate>,
    skipped: BTreeMap<String, u64>,
}

/// Walks the input and sends this part's blocks; returns the number of blocks over all
/// parts. A block is `block_size` photos plus the lines skipped before its last one;
/// lines skipped after the last photo go to the last block.
#[allow(clippy::too_many_arguments)]
fn cut_blocks(
    input: &PackInput,
    min_tags: usize,
    store: &StoreOptions,
    runtime: &tokio::runtime::Handle,
    block_size: u64,
    (part, parts): (u32, u32),
    walked: &std::sync::atomic::AtomicU64,
    tx: &tokio::sync::mpsc::Sender<Result<Block, PackError>>,
) -> Result<u64, PackError> {
    let units = match source::walk(input, min_tags, store, runtime) {
        Ok(u) => u,
        Err(e) => {
            let _ = tx.blocking_send(Err(PackError::Input {
                path: PathBuf::from(input.describe()),
                reason: e.to_string(),
            }));
            return Err(e);
        }
    };
    let mut current = Block {
        number: 0,
        photos: Vec::new(),
        skipped: BTreeMap::new(),
    };
    let owned = |b: u64| b % u64::from(parts) == u64::from(part);
    let send = |block: Block| -> bool {
        if owned(block.number) {
            tx.blocking_send(Ok(block)).is_ok()
        } else {
            true
        }
    };
    for unit in units {
        match unit {
            Err(e) => {
                let msg = e.to_string();
                let _ = tx.blocking_send(Err(e));
                return Err(PackError::Records(msg));
            }
            Ok(Unit::Skipped(reason)) => {
                *current.skipped.entry(reason.to_string()).or_default() += 1
            }
            Ok(Unit::Photo(c)) => {
                if current.photos.len() as u64 == block_size {
                    let next = Block {
                        number: current.number + 1,
                        photos: Vec::new(),
                        skipped: BTreeMap::new(),
                    };
                    if !send(std::mem::replace(&mut current, next)) {
                        return Ok(0); // the packer stopped
                    }
                }
                if owned(current.number) {
                    walked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                current.photos.push(*c);
            }
        }
    }
    let total = current.number + 1;
    send(current);
    Ok(total)
}

/// What packing a block needs.
struct BlockCtx<'a> {
    opts: &'a PackOptions,
    settings: &'a Settings,
    lookup: Arc<photo::TagLookup>,
    reader: Arc<source::PhotoReader>,
    cpu: Arc<Semaphore>,
    docs: &'a Documents,
    /// Whether a manifest already at the URL has been deleted (before the first shard is
    /// written, so that no reader sees it beside objects in flux, and a run that packs
    /// nothing leaves it alone).
    manifest_removed: std::sync::atomic::AtomicBool,
    /// Skip reasons logged so far (the first photo of each reason is).
    logged: std::sync::Mutex<HashSet<SkipReason>>,
    walked: Arc<std::sync::atomic::AtomicU64>,
    progress: &'a (dyn Fn(&PackProgress) + Sync),
}

/// Packs one block into its shards and returns its record (not yet written).
async fn pack_block(
    ctx: &BlockCtx<'_>,
    block: Block,
    candidates_digest: String,
    done: &mut u64,
) -> Result<BlockRecord, PackError> {
    let opts = ctx.opts;
    let mut writer =
        DatasetWriter::for_block(&opts.out, &opts.store, opts.writer.clone(), block.number).await?;
    let (min_tags, compression) = (opts.min_tags, opts.writer.compression);
    let mut prepared = futures::stream::iter(block.photos)
        .map(|c| {
            let (reader, lookup, cpu) = (ctx.reader.clone(), ctx.lookup.clone(), ctx.cpu.clone());
            async move {
                let bytes = match reader.read(&c.location).await? {
                    Ok(b) => b,
                    Err(s) => return Ok((c.key, Err(s))),
                };
                let _permit = cpu
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let key = c.key.clone();
                let task = tokio::task::spawn_blocking(move || {
                    photo::prepare(
                        bytes,
                        &c.key,
                        &c.id,
                        c.tags.as_ref(),
                        &lookup,
                        min_tags,
                        compression,
                    )
                });
                let result = task.await.map_err(|e| PackError::Worker {
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
                Ok::<_, PackError>((key, result))
            }
        })
        .buffered(opts.fetch_concurrency.max(1) + opts.parallelism.max(1));

    let mut state = RunState::new(opts.min_tags);
    for (reason, n) in block.skipped {
        *state.skipped.entry(reason).or_default() += n;
    }
    let mut samples = Vec::new();
    let mut seen = HashSet::new();
    while let Some(item) = prepared.next().await {
        let (key, outcome) = match item {
            Ok(x) => x,
            Err(e) => {
                writer.abort().await;
                return Err(e);
            }
        };
        *done += 1;
        match outcome {
            Ok(p) if !seen.insert(p.sha256.clone()) => state.skip(
                &key,
                photo::Skip {
                    reason: SkipReason::Duplicate,
                    detail: "the same bytes as a photo before it in this block".into(),
                },
                &ctx.logged,
            ),
            Ok(p) => {
                if !ctx
                    .manifest_removed
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    if let Err(e) = ctx.docs.delete(crate::shard::manifest::MANIFEST_NAME).await {
                        writer.abort().await;
                        return Err(e.into());
                    }
                }
                state.record(&p);
                let sha256 = p.sha256.clone();
                if let Err(e) = writer.append_encoded(p.encoded).await {
                    writer.abort().await;
                    return Err(e.into());
                }
                samples.push(PackedSample {
                    key,
                    sha256,
                    shard: writer.shards().len(),
                });
            }
            Err(s) => state.skip(&key, s, &ctx.logged),
        }
        (ctx.progress)(&PackProgress {
            done: *done,
            total: ctx.walked.load(std::sync::atomic::Ordering::Relaxed),
            packed: state.packed,
            bytes: state.bytes,
        });
    }
    let (shards, indexes) = writer.finish_block().await?;
    tracing::info!(
        block = block.number,
        photos = samples.len(),
        shards = shards.len(),
        "block packed"
    );
    Ok(BlockRecord {
        block: block.number,
        settings: ctx.settings.clone(),
        candidates_digest,
        shards,
        indexes,
        samples,
        skipped: state.skipped,
        frequencies: state.frequencies,
    })
}

/// The settings a pack run records with its blocks.
fn settings(opts: &PackOptions) -> Settings {
    Settings {
        compression: opts.writer.compression.as_str().to_string(),
        shard_size_bytes: opts.writer.shard_size_bytes,
        block_size: opts.block_size,
        min_tags: opts.min_tags,
        tag_source: match &opts.tags {
            TagSource::Exif => "exif".into(),
            TagSource::Yfcc(p) => format!("yfcc {}", p.display()),
            TagSource::Given(_) => "given".into(),
        },
    }
}

/// How photos without tags of their own get them.
async fn tag_lookup(input: &PackInput, opts: &PackOptions) -> Result<photo::TagLookup, PackError> {
    Ok(match &opts.tags {
        TagSource::Exif => photo::TagLookup::Exif,
        TagSource::Given(map) => photo::TagLookup::ById(map.clone()),
        TagSource::Yfcc(path) => {
            let PackInput::Local(local) = input else {
                return Err(PackError::Option(
                    "an EXIF metadata file by photo id goes with a local folder or list".into(),
                ));
            };
            let local = local.clone();
            let path = path.clone();
            let map = tokio::task::spawn_blocking(move || {
                let wanted: HashSet<String> = list_photos(&local)?
                    .iter()
                    .map(|i| input::photo_id(&i.path))
                    .collect();
                input::read_yfcc(&path, &wanted)
            })
            .await
            .map_err(|e| worker_error("YFCC metadata", e))??;
            tracing::info!(with_metadata = map.len(), "YFCC metadata read");
            photo::TagLookup::ById(map)
        }
    })
}

fn worker_error(key: &str, e: tokio::task::JoinError) -> PackError {
    PackError::Worker {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

/// Counters of a block.
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

    /// Counts a skipped photo; the first of each reason in the run (`logged`) is logged.
    fn skip(&mut self, key: &str, s: photo::Skip, logged: &std::sync::Mutex<HashSet<SkipReason>>) {
        *self
            .skipped
            .entry(s.reason.as_str().to_string())
            .or_default() += 1;
        if logged
            .lock()
            .map(|mut l| l.insert(s.reason))
            .unwrap_or(false)
        {
            tracing::warn!(
                reason = %s.reason,
                key,
                detail = %s.detail,
                "skipping photo (further photos skipped for this reason are only counted)"
            );
        }
    }
}
