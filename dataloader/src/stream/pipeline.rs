//! The reader task behind a [`super::BatchStream`]: positions to fetches (bounded, in
//! order), fetched bytes to the decode pool, prepared samples to batches.

use super::batch::{assemble, Batch};
use super::counters::{Counters, SkipReason};
use super::sample::{Input, Prepared, Preparer};
use super::{resume_after, StreamError, StreamOptions};
use crate::exif::TagList;
use crate::order::{EpochOrder, OrderCursor, SampleRef, Schedule};
use crate::shard::{sample, Compression, Dataset, SampleError, ShardError};
use crate::tokenize::TextTokenizer;
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

/// Fetches one sample and prepares it on the pool; `Ok(None)` if it was skipped.
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
    let (key, bytes) = match ctx.dataset.fetch_sample_bytes(at.shard, at.sample).await {
        Ok(fetched) => fetched,
        Err(ShardError::Sample { key, source, .. }) => {
            ctx.counters
                .skip(skip_reason(&source), &key, &source.to_string());
            return Ok(None);
        }
        Err(source) => return Err(StreamError::storage(shard_name(), source)),
    };
    ctx.counters.add_bytes(bytes.len() as u64);

    // Unpacking the members (and decompressing) is CPU work too: it runs on the pool.
    let (tx, rx) = oneshot::channel();
    let job_ctx = Arc::clone(&ctx);
    ctx.pool.spawn(move || {
        // A panic on hostile bytes (unpacking or decoding) skips the sample, never more.
        let work = || match sample::decode(&key, bytes, job_ctx.compression) {
            Err(e) => Err((skip_reason(&e), e.to_string())),
            Ok(raw) => job_ctx.preparer.prepare(Input {
                key: &raw.key,
                position,
                jpeg: &raw.jpeg,
                jpeg_index: raw.jpeg_index.as_deref(),
                tags: &raw.tags,
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
