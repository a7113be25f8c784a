//! The reader task behind a [`super::BatchStream`]: positions to fetches (bounded, in
//! order), fetched bytes to the decode pool, prepared samples to batches.

use super::batch::{assemble, Batch};
use super::counters::{Counters, SkipReason};
use super::fetch::{self, FetchMode, FetchPlan};
use super::sample::{Input, Photo, Prepared, Preparer};
use super::{resume_after, StreamError, StreamOptions};
use crate::exif::TagList;
use crate::jpeg::{CropRect, SparseJpeg};
use crate::order::{EpochOrder, OrderCursor, SampleRef, Schedule};
use crate::shard::{sample, Compression, Dataset, IndexEntry, SampleError, SampleHead, ShardError};
use crate::tokenize::TextTokenizer;
use bytes::Bytes;
use futures::StreamExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Everything the reader task owns.
pub(super) struct Reader {
    ctx: Arc<Ctx>,
    order: Arc<EpochOrder>,
    schedule: Schedule,
    opts: StreamOptions,
}

/// What every in-flight sample needs.
struct Ctx {
    dataset: Arc<Dataset>,
    compression: Compression,
    preparer: Preparer,
    pool: Arc<rayon::ThreadPool>,
    counters: Arc<Counters>,
    fetch: FetchMode,
    request_cost: u64,
}

impl Reader {
    pub(super) fn new(
        dataset: Arc<Dataset>,
        tokenizer: Arc<TextTokenizer>,
        order: Arc<EpochOrder>,
        schedule: Schedule,
        opts: StreamOptions,
        pool: Arc<rayon::ThreadPool>,
        counters: Arc<Counters>,
    ) -> Self {
        let preparer = Preparer {
            seed: opts.seed,
            epoch: opts.epoch,
            patch: opts.patch,
            crops: opts.crops_per_sample,
            tag_list: Arc::new(opts.tags.clone().unwrap_or_else(|| {
                let listed = &dataset.manifest().tags;
                if listed.is_empty() {
                    TagList::bundled()
                } else {
                    TagList::new(listed.iter().cloned())
                }
            })),
            format: opts.text.clone(),
            tag_dropout: opts.tag_dropout,
            tokenizer,
            decode: opts.decode,
        };
        let compression = dataset.manifest().compression;
        Self {
            ctx: Arc::new(Ctx {
                dataset,
                compression,
                preparer,
                pool,
                counters,
                fetch: opts.fetch,
                request_cost: opts.request_cost,
            }),
            order,
            schedule,
            opts,
        }
    }

    /// Runs until the last batch is sent, an error is sent, or the receiver is gone.
    pub(super) async fn run(self, tx: mpsc::Sender<Result<Batch, StreamError>>) {
        let Reader {
            ctx,
            order,
            schedule,
            opts,
        } = self;
        let (plan, start, len) = (opts.plan, opts.start, order.len());
        let mut cursor = OrderCursor::new(order);
        let positions = (0..schedule.batches)
            .flat_map(move |b| plan.rank_positions(start, b, len).map(move |p| (b, p)))
            .map(move |(b, p)| {
                (
                    b,
                    p,
                    cursor
                        .at(p)
                        .expect("scheduled positions lie inside the epoch"),
                )
            });
        let mut samples = futures::stream::iter(positions)
            .map(|(b, p, s)| {
                let ctx = Arc::clone(&ctx);
                async move { (b, fetch_and_prepare(ctx, p, s).await) }
            })
            .buffered(opts.prefetch);

        let mut current: Vec<Prepared> = Vec::new();
        let mut next_batch = 0u64; // the batch `current` belongs to
        loop {
            let item = samples.next().await;
            let item_batch = item.as_ref().map_or(schedule.batches, |(b, _)| *b);
            // Every batch before the item's is complete (empty ones included): send them.
            while next_batch < item_batch {
                let done = std::mem::take(&mut current);
                let Some(batch) = assemble_on_pool(&ctx, &opts, len, next_batch, done).await else {
                    let _ = tx.send(Err(StreamError::PoolGone)).await;
                    return;
                };
                if tx.send(Ok(batch)).await.is_err() {
                    return; // the consumer is gone
                }
                next_batch += 1;
            }
            match item {
                None => return,
                Some((_, Ok(Some(prepared)))) => current.push(prepared),
                Some((_, Ok(None))) => {} // skipped and counted
                Some((_, Err(e))) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    }
}

/// What was fetched of one sample.
enum Fetched {
    /// The sample's bytes as stored (to unpack on the pool).
    Whole { key: String, bytes: Bytes },
    /// Its head and the photo's pieces the crops need.
    Ranged {
        key: String,
        head: SampleHead,
        photo: SparseJpeg,
    },
}

/// Fetches one sample (whole or by range, see [`super::fetch`]) and prepares it on the
/// pool; `Ok(None)` if it was skipped.
async fn fetch_and_prepare(
    ctx: Arc<Ctx>,
    position: u64,
    at: SampleRef,
) -> Result<Option<Prepared>, StreamError> {
    let shard_name = || ctx.dataset.manifest().shards[at.shard].name.clone();
    let index = ctx
        .dataset
        .shard_index(at.shard)
        .await
        .map_err(|source| StreamError::storage(shard_name(), source))?;
    let entry = index.samples.get(at.sample).ok_or_else(|| {
        StreamError::storage(
            shard_name(),
            ShardError::OutOfRange {
                what: format!("sample in shard {}", at.shard),
                n: at.sample,
                len: index.samples.len(),
            },
        )
    })?;
    let size = Some((entry.width, entry.height)).filter(|&(w, h)| w > 0 && h > 0);
    let plan = match size.map(|(w, h)| ctx.preparer.rects(position, w, h)) {
        Some(Ok(rects)) => {
            let (mode, cost) = (ctx.fetch, ctx.request_cost);
            (fetch::plan(entry, &rects, mode, cost) == FetchPlan::Ranged).then_some(rects)
        }
        _ => None, // the whole path finds the size or the skip reason itself
    };
    let fetched = match plan {
        Some(rects) => fetch_ranged(&ctx, at, entry, &rects).await,
        None => fetch_whole(&ctx, at).await,
    };
    let fetched = match fetched {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(None),
        Err(source) => return Err(StreamError::storage(shard_name(), source)),
    };

    // Unpacking the members (and decompressing) is CPU work too: it runs on the pool.
    let (tx, rx) = oneshot::channel();
    let job_ctx = Arc::clone(&ctx);
    ctx.pool.spawn(move || {
        let key = match &fetched {
            Fetched::Whole { key, .. } | Fetched::Ranged { key, .. } => key.clone(),
        };
        // A panic on hostile bytes (unpacking or decoding) skips the sample, never more.
        let work = || match fetched {
            Fetched::Whole { key, bytes } => {
                match sample::decode(&key, bytes, job_ctx.compression) {
                    Err(e) => Err((skip_reason(&e), e.to_string())),
                    Ok(raw) => job_ctx.preparer.prepare(Input {
                        key: &raw.key,
                        position,
                        photo: Photo::Whole(&raw.jpeg),
                        jpeg_index: raw.jpeg_index.as_deref(),
                        tags: &raw.tags,
                        size,
                    }),
                }
            }
            Fetched::Ranged { key, head, photo } => job_ctx.preparer.prepare(Input {
                key: &key,
                position,
                photo: Photo::Sparse(&photo),
                jpeg_index: Some(&head.jpeg_index),
                tags: &head.tags,
                size,
            }),
        };
        let result = std::panic::catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|_| {
            Err((
                SkipReason::CorruptJpeg,
                "decoding panicked on this sample".into(),
            ))
        });
        if let Err((reason, detail)) = &result {
            job_ctx.counters.skip(*reason, &key, detail);
        }
        let _ = tx.send(result.ok());
    });
    rx.await.map_err(|_| StreamError::PoolGone)
}

/// One GET of the whole sample; `Ok(None)` if the sample is bad (skipped and counted).
async fn fetch_whole(ctx: &Ctx, at: SampleRef) -> Result<Option<Fetched>, ShardError> {
    match ctx.dataset.fetch_sample_bytes(at.shard, at.sample).await {
        Ok((key, bytes)) => {
            ctx.counters.add_fetch(bytes.len() as u64, 1, false);
            Ok(Some(Fetched::Whole { key, bytes }))
        }
        Err(e) => skipped(ctx, e),
    }
}

/// The head, then the photo's byte ranges under `rects` (the whole sample when its kit or
/// index is damaged); `Ok(None)` if the sample is bad (skipped and counted). Finding the ranges parses the kit's few hundred header
/// bytes and reads a few index entries: microseconds, so it runs here.
async fn fetch_ranged(
    ctx: &Ctx,
    at: SampleRef,
    entry: &IndexEntry,
    rects: &[CropRect],
) -> Result<Option<Fetched>, ShardError> {
    let head = match ctx.dataset.fetch_head(at.shard, at.sample).await {
        Ok(head) => head,
        Err(e) => return skipped(ctx, e),
    };
    let head_bytes = entry.head().map_or(0, |r| r.end - r.start);
    let planned = SparseJpeg::from_kit(&head.jpeg_kit).and_then(|photo| {
        let ranges = photo.ranges_for(&head.jpeg_index, rects, ctx.request_cost)?;
        Ok((photo, ranges))
    });
    let (mut photo, ranges) = match planned {
        Ok(p) => p,
        Err(e) => {
            // A damaged kit or index: the whole photo still decodes (without the index),
            // so fetch it whole, as the whole mode would.
            tracing::debug!(key = %entry.key, error = %e, "no ranged read; fetching the sample whole");
            ctx.counters.add_fetch(head_bytes, 1, false);
            return fetch_whole(ctx, at).await;
        }
    };
    let pieces = match ctx
        .dataset
        .fetch_photo_ranges(at.shard, at.sample, &ranges)
        .await
    {
        Ok(p) => p,
        Err(e) => return skipped(ctx, e),
    };
    let bytes: u64 = pieces.iter().map(|p| p.len() as u64).sum();
    ctx.counters
        .add_fetch(head_bytes + bytes, 1 + pieces.len() as u64, true);
    for (r, piece) in ranges.iter().zip(&pieces) {
        if let Err(e) = photo.fill(r.start, piece) {
            ctx.counters
                .skip(SkipReason::CorruptJpeg, &entry.key, &e.to_string());
            return Ok(None);
        }
    }
    Ok(Some(Fetched::Ranged {
        key: entry.key.clone(),
        head,
        photo,
    }))
}

/// A per-sample read error is skipped and counted (`Ok(None)`); others end the stream.
fn skipped(ctx: &Ctx, e: ShardError) -> Result<Option<Fetched>, ShardError> {
    match e {
        ShardError::Sample { key, source, .. } => {
            ctx.counters
                .skip(skip_reason(&source), &key, &source.to_string());
            Ok(None)
        }
        e => Err(e),
    }
}

/// Assembles batch `index` on the decode pool.
async fn assemble_on_pool(
    ctx: &Arc<Ctx>,
    opts: &StreamOptions,
    len: u64,
    index: u64,
    samples: Vec<Prepared>,
) -> Option<Batch> {
    let resume = resume_after(opts.epoch, opts.start, index, opts.plan.global_batch(), len);
    let (tx, rx) = oneshot::channel();
    let job_ctx = Arc::clone(ctx);
    let (patch, crops) = (opts.patch, opts.crops_per_sample);
    ctx.pool.spawn(move || {
        let _ = tx.send(assemble(
            index,
            patch,
            crops,
            resume,
            samples,
            &job_ctx.preparer.tokenizer,
        ));
    });
    rx.await.ok()
}

/// The counter a per-sample read error goes to.
fn skip_reason(e: &SampleError) -> SkipReason {
    match e {
        SampleError::BadTags { .. } => SkipReason::BadExif,
        SampleError::NotJpeg(_) => SkipReason::CorruptJpeg,
        _ => SkipReason::BadTar,
    }
}
