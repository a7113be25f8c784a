//! What a stream has done so far: samples yielded, samples skipped by reason, bytes read,
//! time the consumer waited for data. Updated from the reader and the decode threads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Why a sample was left out of its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// The JPEG does not decode.
    CorruptJpeg,
    /// The sample's bytes in the shard are not a valid tar (or zstd) fragment, or a
    /// member is missing.
    BadTar,
    /// `KEY.exif.json` is not a valid tag map.
    BadExif,
    /// The photo is smaller than the patch.
    TooSmall,
}

impl SkipReason {
    /// Every reason, in counter order.
    pub const ALL: [SkipReason; 4] = [
        Self::CorruptJpeg,
        Self::BadTar,
        Self::BadExif,
        Self::TooSmall,
    ];

    /// Short name used in logs and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CorruptJpeg => "corrupt_jpeg",
            Self::BadTar => "bad_tar",
            Self::BadExif => "bad_exif",
            Self::TooSmall => "too_small",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Live counters, shared between a stream's tasks and threads.
#[derive(Debug, Default)]
pub struct Counters {
    samples: AtomicU64,
    batches: AtomicU64,
    bytes_read: AtomicU64,
    fetched: AtomicU64,
    requests: AtomicU64,
    ranged: AtomicU64,
    wait_ns: AtomicU64,
    dropped_tail: AtomicU64,
    /// Batches ready in the queue when the consumer last asked, and the queue's size.
    ready_at_take: AtomicU64,
    queue_capacity: AtomicU64,
    skipped: [AtomicU64; SkipReason::ALL.len()],
    logged: [AtomicBool; SkipReason::ALL.len()],
}

impl Counters {
    pub(crate) fn add_samples(&self, n: u64) {
        self.samples.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_batch(&self) {
        self.batches.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one sample's fetch: bytes, storage requests, and whether by range.
    pub(crate) fn add_fetch(&self, bytes: u64, requests: u64, ranged: bool) {
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        self.fetched.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(requests, Ordering::Relaxed);
        self.ranged.fetch_add(u64::from(ranged), Ordering::Relaxed);
    }

    pub(crate) fn add_wait(&self, d: Duration) {
        self.wait_ns.fetch_add(
            d.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    pub(crate) fn set_queue_seen(&self, ready: usize, capacity: usize) {
        self.ready_at_take.store(ready as u64, Ordering::Relaxed);
        self.queue_capacity
            .store(capacity as u64, Ordering::Relaxed);
    }

    pub(crate) fn set_dropped_tail(&self, n: u64) {
        self.dropped_tail.store(n, Ordering::Relaxed);
    }

    /// Counts a skipped sample; logs the first one of each reason with its key.
    pub(crate) fn skip(&self, reason: SkipReason, key: &str, detail: &str) {
        self.skipped[reason.slot()].fetch_add(1, Ordering::Relaxed);
        if !self.logged[reason.slot()].swap(true, Ordering::Relaxed) {
            tracing::warn!(
                reason = reason.as_str(),
                key,
                detail,
                "skipping sample (further samples skipped for this reason are only counted)"
            );
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            samples: self.samples.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            fetched: self.fetched.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            ranged: self.ranged.load(Ordering::Relaxed),
            wait: Duration::from_nanos(self.wait_ns.load(Ordering::Relaxed)),
            dropped_tail: self.dropped_tail.load(Ordering::Relaxed),
            prefetch_fill: {
                let capacity = self.queue_capacity.load(Ordering::Relaxed);
                let ready = self.ready_at_take.load(Ordering::Relaxed);
                if capacity == 0 {
                    0.0
                } else {
                    ready as f64 / capacity as f64
                }
            },
            skipped: SkipReason::ALL
                .iter()
                .map(|&r| (r, self.skipped[r.slot()].load(Ordering::Relaxed)))
                .filter(|&(_, n)| n > 0)
                .collect(),
        }
    }
}

/// A copy of a stream's counters at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CounterSnapshot {
    /// Samples delivered in batches.
    pub samples: u64,
    /// Batches delivered.
    pub batches: u64,
    /// Bytes fetched from storage for samples (their ranges in the shard objects).
    pub bytes_read: u64,
    /// Samples fetched (some may still wait in the pipeline).
    pub fetched: u64,
    /// Storage requests made for samples (GETs, excluding retries and shard indexes).
    pub requests: u64,
    /// Samples fetched by range (head plus parts of the photo) rather than whole.
    pub ranged: u64,
    /// Time the consumer spent waiting for the next batch.
    pub wait: Duration,
    /// Samples at the end of the epoch left out because they do not fill a global batch.
    pub dropped_tail: u64,
    /// How full the queue of ready batches was when the consumer last asked for one: 0,
    /// it had to wait (the loader is starving the trainer); 1, it was full.
    pub prefetch_fill: f64,
    /// Samples skipped, by reason (reasons with none are absent).
    pub skipped: BTreeMap<SkipReason, u64>,
}

impl CounterSnapshot {
    /// Skipped samples over all reasons.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}
