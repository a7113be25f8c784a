//! Streaming one rank's batches out of a packed dataset, for training.
//!
//! [`BatchStream::start`] takes a [`Dataset`], the epoch's order settings and a
//! [`RankPlan`], and spawns a reader on the given tokio runtime:
//! - positions come from [`crate::order`]: this rank's share of each global batch, from
//!   the start position on (nothing before it is fetched or decoded);
//! - each sample is fetched with one byte-range GET, or (where it pays, see [`fetch`])
//!   its head and then only the byte ranges of its photo that the crops need; at most
//!   `prefetch` samples in flight, in order;
//! - unpacking the sample (tar members, zstd frame), decoding the crop, rendering and
//!   tokenising the text, and assembling batches run on a dedicated thread pool of
//!   `decode_threads` threads, never on the async runtime;
//! - at most `ready_batches` finished batches wait for the consumer, so memory is bounded.
//!
//! Crops: `crops_per_sample` uniformly random `patch x patch` windows per photo and epoch,
//! at full resolution. Crop 0 comes from `(seed, epoch, global position)`
//! ([`crate::order::crop_origin`]); crop `k` from the same with the seed
//! [`crate::order::crop_seed`]`(seed, k)` ([`crate::order::nth_crop_origin`]), so one crop
//! per sample is exactly crop 0 of several. Two crops of one photo are the CropCLR
//! baseline's positive pair. Every crop is decoded with the same [`CropDecode`] mode; a
//! photo exactly patch-sized gives identical crops.
//!
//! Text: the sample's tags rendered by [`TextFormat`]; with `tag_dropout` (training only)
//! each tag is left out with that probability, drawn from `(seed, epoch, position)`
//! ([`crate::order::dropped_tags`]).
//!
//! Bad input (corrupt tar fragment or zstd frame, garbled EXIF JSON, a JPEG that does not
//! decode, a photo smaller than the patch) is skipped and counted by reason, with the first
//! key of each reason logged; the batch is then smaller than the rank's share. Every rank
//! still yields exactly [`Schedule::batches`] batches (some possibly empty), so ranks stay
//! in step. A storage error that outlives the retries ends the stream with
//! [`StreamError::Storage`] naming the shard.

pub mod batch;
pub mod counters;
pub mod fetch;
mod pipeline;
pub(crate) mod sample;

pub use batch::Batch;

/// How the stream decodes a sample's crop. Every mode gives the same pixels; they differ
/// only in the work done, which is what `dataloader bench --decode` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CropDecode {
    /// Jump to the crop through the sample's scan index (sequential when it has none).
    #[default]
    Indexed,
    /// Ignore the scan index: entropy-decode from the start of the scan down to the crop.
    Sequential,
    /// Decode every pixel of the photo, then cut the crop out.
    Whole,
}
pub use counters::{CounterSnapshot, Counters, SkipReason};
pub use fetch::FetchMode;

use crate::exif::{TagList, TextFormat};
use crate::order::{EpochOrder, OrderError, Position, RankPlan, Schedule, TailPolicy};
use crate::shard::{Dataset, ShardError};
use crate::tokenize::TextTokenizer;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// Side of the training patches.
pub const PATCH: u32 = 124;

/// Settings of a stream. Build with [`StreamOptions::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Seed of the order and of the crops. Default: 0.
    pub seed: u64,
    /// The epoch. Default: 0.
    pub epoch: u64,
    /// Samples of the epoch consumed globally before this run (the saved
    /// [`Position::consumed`]). Default: 0.
    pub start: u64,
    /// Global batch size, world size and rank.
    pub plan: RankPlan,
    /// Shards per shuffling window (see [`crate::order`]). Default: 4.
    pub window_shards: usize,
    /// Samples fetched or decoded concurrently. Default: 64.
    pub prefetch: usize,
    /// Finished batches waiting for the consumer. Default: 2.
    pub ready_batches: usize,
    /// Threads decoding, tokenising and assembling. Default: the available cores.
    pub decode_threads: usize,
    /// Side of the square crop. Default: [`PATCH`].
    pub patch: u32,
    /// Crops taken from each sample (see the module documentation). Default: 1.
    pub crops_per_sample: u32,
    /// The last incomplete global batch of the epoch. Default: dropped.
    pub tail: TailPolicy,
    /// How the tag map becomes text. Default: [`TextFormat::default`] (the paper's).
    pub text: TextFormat,
    /// Probability that a tag is left out of a sample's text, each tag independently and
    /// anew each epoch ([`crate::order::dropped_tags`]); a text that would lose every tag
    /// is kept whole. A training augmentation. Default: 0.
    pub tag_dropout: f64,
    /// How crops are decoded. Default: [`CropDecode::Indexed`].
    pub decode: CropDecode,
    /// Whole samples or byte ranges of their photos. Default: [`FetchMode::Auto`].
    pub fetch: FetchMode,
    /// What one storage request costs, in bytes, for [`FetchMode::Auto`]'s choice and for
    /// joining nearby ranges. Default: [`fetch::DEFAULT_REQUEST_COST`].
    pub request_cost: u64,
    /// Which tags the text holds. Default: the dataset manifest's list, or
    /// [`TagList::bundled`] when the manifest has none.
    pub tags: Option<TagList>,
}

impl StreamOptions {
    /// Sets the epoch and start position to resume from a saved [`Position`].
    pub fn resume_from(&mut self, position: Position) -> &mut Self {
        self.epoch = position.epoch;
        self.start = position.consumed;
        self
    }

    /// Default settings for `plan`.
    pub fn new(plan: RankPlan) -> Self {
        Self {
            seed: 0,
            epoch: 0,
            start: 0,
            plan,
            window_shards: 4,
            prefetch: 64,
            ready_batches: 2,
            decode_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            patch: PATCH,
            crops_per_sample: 1,
            tail: TailPolicy::Drop,
            text: TextFormat::default(),
            tag_dropout: 0.0,
            decode: CropDecode::Indexed,
            fetch: FetchMode::Auto,
            request_cost: fetch::DEFAULT_REQUEST_COST,
            tags: None,
        }
    }
}

/// Why a stream could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The order or rank plan is invalid (batch size, world, start position, window).
    #[error(transparent)]
    Order(#[from] OrderError),
    /// An option is out of range.
    #[error("invalid stream option {name}: {reason}")]
    Option {
        /// The option.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The decode thread pool could not be created.
    #[error("cannot start decode threads: {0}")]
    ThreadPool(String),
    /// A shard (its index or its data) could not be read, after retries.
    #[error("cannot read shard {shard}: {source}")]
    Storage {
        /// Object name of the shard.
        shard: String,
        /// The reader's error.
        #[source]
        source: Box<ShardError>,
    },
    /// A decode thread job ended without an answer (it panicked; see the log).
    #[error("a decode thread failed without an answer; see the log")]
    PoolGone,
}

/// One rank's batches of one epoch; see the module documentation.
///
/// Dropping it stops the reader.
#[derive(Debug)]
pub struct BatchStream {
    rx: mpsc::Receiver<Result<Batch, StreamError>>,
    counters: Arc<Counters>,
    schedule: Schedule,
    epoch_len: u64,
    task: tokio::task::JoinHandle<()>,
}

impl BatchStream {
    /// Starts reading `dataset` on `runtime`. Fails at once on invalid options.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        dataset: Arc<Dataset>,
        tokenizer: Arc<TextTokenizer>,
        opts: StreamOptions,
    ) -> Result<Self, StreamError> {
        for (name, value) in [
            ("prefetch", opts.prefetch),
            ("ready_batches", opts.ready_batches),
            ("decode_threads", opts.decode_threads),
        ] {
            if value == 0 {
                return Err(StreamError::Option {
                    name,
                    reason: "must be at least 1".into(),
                });
            }
        }
        for (name, value) in [
            ("patch", opts.patch),
            ("crops_per_sample", opts.crops_per_sample),
        ] {
            if value == 0 {
                return Err(StreamError::Option {
                    name,
                    reason: "must be at least 1".into(),
                });
            }
        }
        if !(0.0..1.0).contains(&opts.tag_dropout) {
            return Err(StreamError::Option {
                name: "tag_dropout",
                reason: format!("must be in [0, 1) (got {})", opts.tag_dropout),
            });
        }
        let counts: Vec<usize> = dataset
            .manifest()
            .shards
            .iter()
            .map(|s| s.samples as usize)
            .collect();
        let order = Arc::new(EpochOrder::new(
            &counts,
            opts.seed,
            opts.epoch,
            opts.window_shards,
        )?);
        let schedule = opts.plan.schedule(order.len(), opts.start, opts.tail)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.decode_threads)
            .thread_name(|i| format!("decode-{i}"))
            // A job that panics anyway drops its answer: the stream ends with PoolGone
            // instead of the process aborting.
            .panic_handler(|_| tracing::error!("a decode thread job panicked"))
            .build()
            .map_err(|e| StreamError::ThreadPool(e.to_string()))?;
        let counters = Arc::new(Counters::default());
        counters.set_dropped_tail(schedule.dropped);
        let (tx, rx) = mpsc::channel(opts.ready_batches);
        let epoch_len = order.len();
        let reader = pipeline::Reader::new(
            dataset,
            tokenizer,
            order,
            schedule,
            opts,
            Arc::new(pool),
            Arc::clone(&counters),
        );
        let task = runtime.spawn(reader.run(tx));
        Ok(Self {
            rx,
            counters,
            schedule,
            epoch_len,
            task,
        })
    }

    /// The next batch; `None` after the last one (or after an error was returned).
    pub async fn next(&mut self) -> Option<Result<Batch, StreamError>> {
        self.see_queue();
        let t0 = Instant::now();
        let item = self.rx.recv().await;
        self.account(t0, &item);
        item
    }

    /// [`next`](Self::next) for synchronous callers (a training loop outside the runtime).
    /// Must not be called from inside an async task.
    pub fn next_blocking(&mut self) -> Option<Result<Batch, StreamError>> {
        self.see_queue();
        let t0 = Instant::now();
        let item = self.rx.blocking_recv();
        self.account(t0, &item);
        item
    }

    /// Notes how many batches are ready as the consumer asks for the next.
    fn see_queue(&self) {
        self.counters
            .set_queue_seen(self.rx.len(), self.rx.max_capacity());
    }

    fn account(&self, t0: Instant, item: &Option<Result<Batch, StreamError>>) {
        self.counters.add_wait(t0.elapsed());
        if let Some(Ok(b)) = item {
            self.counters.add_batch();
            self.counters.add_samples(b.len() as u64);
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    /// How many batches this run yields and how many tail samples it drops.
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// Samples in the epoch.
    pub fn epoch_len(&self) -> u64 {
        self.epoch_len
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StreamError {
    /// A storage error of shard `shard`.
    fn storage(shard: String, source: ShardError) -> Self {
        StreamError::Storage {
            shard,
            source: Box::new(source),
        }
    }
}

/// The position after global batch `index` of a run from `start`.
fn resume_after(
    epoch: u64,
    start: u64,
    index: u64,
    global_batch: usize,
    epoch_len: u64,
) -> Position {
    Position {
        epoch,
        consumed: (start + (index + 1) * global_batch as u64).min(epoch_len),
    }
}
