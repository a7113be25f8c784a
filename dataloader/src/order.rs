//! The global sample order of an epoch, each rank's share of it, and the random crop of
//! each sample: pure functions of the dataset's shard sizes, the seed and the epoch.
//!
//! # Order
//! The order of an epoch depends only on `(shard sample counts, seed, epoch, window)`,
//! never on the number of ranks, so a run can stop and resume on a different world size
//! without skipping or repeating a sample. It is built in two steps:
//! 1. the shards are shuffled (one permutation per `(seed, epoch)`);
//! 2. the shuffled shard list is cut into windows of `window_shards` consecutive shards,
//!    and the samples of each window are permuted uniformly (one permutation per
//!    `(seed, epoch, window)`). The epoch is the concatenation of the windows.
//!
//! A window of a few shards keeps reads local (the whole cluster reads from a handful of
//! shard objects at a time, and a reader only ever holds one window's permutation in
//! memory) while mixing samples of different shards within a batch. Setting
//! `window_shards` to the number of shards (or more) gives a full uniform permutation of
//! the epoch. Every permutation comes from ChaCha8 with our own Fisher-Yates and unbiased
//! bounded sampling, so the order is stable across platforms and crate upgrades.
//!
//! # Rank plan
//! A global batch of `B` samples is split over `N` ranks (`B % N == 0`): rank `r` takes
//! positions `[start + b*B + r*B/N, start + b*B + (r+1)*B/N)` of global batch `b`, where
//! `start` is the number of samples consumed globally before this run. Resuming means
//! passing the consumed count as `start`; nothing before it is fetched or decoded.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::Arc;

/// Why an order or a rank plan cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// The window must hold at least one shard.
    #[error("window_shards must be at least 1")]
    ZeroWindow,
    /// The global batch must hold at least one sample.
    #[error("the global batch size must be at least 1")]
    ZeroBatch,
    /// The world must have at least one rank.
    #[error("the world size must be at least 1")]
    ZeroWorld,
    /// The global batch cannot be split evenly over the ranks.
    #[error("global batch size {batch} is not a multiple of the world size {world}; pick a batch size divisible by {world}")]
    UnevenBatch { batch: usize, world: usize },
    /// The rank is not in `0..world`.
    #[error("rank {rank} is out of range for a world of {world} ranks (ranks are 0..{world})")]
    RankOutOfRange { rank: usize, world: usize },
    /// The start position lies past the end of the epoch.
    #[error("start position {start} is past the end of the epoch ({len} samples)")]
    StartBeyondEpoch { start: u64, len: u64 },
}

/// One sample of the dataset: its shard (index in the manifest) and its index in that shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SampleRef {
    /// Index of the shard in the manifest's shard list.
    pub shard: usize,
    /// Index of the sample in the shard's index.
    pub sample: usize,
}

/// Where training stands in the data: the epoch and how many samples of its order have
/// been consumed globally (by all ranks together). Saved with checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Position {
    /// The epoch.
    pub epoch: u64,
    /// Samples of the epoch's order consumed globally.
    pub consumed: u64,
}

/// A run of consecutive positions of the epoch drawn from the same few shards.
#[derive(Debug, Clone)]
struct Window {
    /// First position of the window in the epoch.
    start: u64,
    /// The window's shards, in shuffled order.
    shards: Range<usize>,
}

/// The sample order of one epoch (see the module documentation).
#[derive(Debug, Clone)]
pub struct EpochOrder {
    counts: Vec<usize>,
    seed: u64,
    epoch: u64,
    /// Shard indices in shuffled order.
    shard_order: Vec<usize>,
    windows: Vec<Window>,
    len: u64,
}

impl EpochOrder {
    /// The order of `epoch` over shards holding `counts[i]` samples each, permuting
    /// samples within windows of `window_shards` shards.
    pub fn new(
        counts: &[usize],
        seed: u64,
        epoch: u64,
        window_shards: usize,
    ) -> Result<Self, OrderError> {
        if window_shards == 0 {
            return Err(OrderError::ZeroWindow);
        }
        let mut shard_order: Vec<usize> = (0..counts.len()).collect();
        shuffle(&mut shard_order, &mut rng(DOMAIN_SHARDS, &[seed, epoch]));
        let mut windows = Vec::new();
        let mut start = 0u64;
        for (w, chunk) in shard_order.chunks(window_shards).enumerate() {
            let first = w * window_shards;
            windows.push(Window {
                start,
                shards: first..first + chunk.len(),
            });
            start += chunk.iter().map(|&s| counts[s] as u64).sum::<u64>();
        }
        Ok(Self {
            counts: counts.to_vec(),
            seed,
            epoch,
            shard_order,
            windows,
            len: start,
        })
    }

    /// Number of samples in the epoch.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the epoch holds no sample.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of windows.
    pub fn windows(&self) -> usize {
        self.windows.len()
    }

    /// The positions covered by window `w`.
    pub fn window_range(&self, w: usize) -> Range<u64> {
        let end = self.windows.get(w + 1).map_or(self.len, |n| n.start);
        self.windows[w].start..end
    }

    /// The samples of window `w` in epoch order.
    pub fn window_samples(&self, w: usize) -> Vec<SampleRef> {
        let window = &self.windows[w];
        let mut samples: Vec<SampleRef> = self.shard_order[window.shards.clone()]
            .iter()
            .flat_map(|&shard| {
                (0..self.counts[shard]).map(move |sample| SampleRef { shard, sample })
            })
            .collect();
        shuffle(
            &mut samples,
            &mut rng(DOMAIN_WINDOW, &[self.seed, self.epoch, w as u64]),
        );
        samples
    }

    /// The window holding position `pos` (which must be below `len`).
    fn window_of(&self, pos: u64) -> usize {
        self.windows.partition_point(|w| w.start <= pos) - 1
    }

    /// The positions from `start` to the end of the epoch with their samples, in order.
    /// Only the windows from `start` on are materialised.
    pub fn iter_from(self: &Arc<Self>, start: u64) -> impl Iterator<Item = (u64, SampleRef)> + '_ {
        let mut cursor = OrderCursor::new(Arc::clone(self));
        (start..self.len).map(move |pos| (pos, cursor.at(pos).expect("position below len")))
    }
}

/// Random access into an [`EpochOrder`] that keeps the current window's permutation, so a
/// reader moving forward through the epoch builds each window once.
#[derive(Debug, Clone)]
pub struct OrderCursor {
    order: Arc<EpochOrder>,
    cached: Option<(usize, Vec<SampleRef>)>,
}

impl OrderCursor {
    /// A cursor over `order` with nothing materialised yet.
    pub fn new(order: Arc<EpochOrder>) -> Self {
        Self {
            order,
            cached: None,
        }
    }

    /// The order this cursor reads.
    pub fn order(&self) -> &Arc<EpochOrder> {
        &self.order
    }

    /// The sample at position `pos` of the epoch, or `None` past its end.
    pub fn at(&mut self, pos: u64) -> Option<SampleRef> {
        if pos >= self.order.len {
            return None;
        }
        let w = self.order.window_of(pos);
        if self.cached.as_ref().is_none_or(|(cw, _)| *cw != w) {
            self.cached = Some((w, self.order.window_samples(w)));
        }
        let (_, samples) = self.cached.as_ref().expect("window just cached");
        Some(samples[(pos - self.order.windows[w].start) as usize])
    }
}

/// What to do with the last global batch of an epoch when fewer than `B` samples remain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TailPolicy {
    /// Drop the remainder (counted in [`Schedule::dropped`]); every batch is full.
    #[default]
    Drop,
    /// Keep it as a smaller last global batch, split over the ranks by the same rule
    /// (clipped to the epoch, so trailing ranks may get fewer or no samples).
    Keep,
}

/// How many global batches a run from a start position yields, and how many trailing
/// samples it drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Global batches from the start position to the end of the epoch.
    pub batches: u64,
    /// Samples at the end of the epoch left out by [`TailPolicy::Drop`].
    pub dropped: u64,
}

/// How one rank takes its part of each global batch (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankPlan {
    global_batch: usize,
    world: usize,
    rank: usize,
}

impl RankPlan {
    /// Rank `rank` of `world` ranks sharing global batches of `global_batch` samples.
    pub fn new(global_batch: usize, world: usize, rank: usize) -> Result<Self, OrderError> {
        if global_batch == 0 {
            return Err(OrderError::ZeroBatch);
        }
        if world == 0 {
            return Err(OrderError::ZeroWorld);
        }
        if !global_batch.is_multiple_of(world) {
            return Err(OrderError::UnevenBatch {
                batch: global_batch,
                world,
            });
        }
        if rank >= world {
            return Err(OrderError::RankOutOfRange { rank, world });
        }
        Ok(Self {
            global_batch,
            world,
            rank,
        })
    }

    /// Samples per global batch (`B`).
    pub fn global_batch(&self) -> usize {
        self.global_batch
    }

    /// Number of ranks (`N`).
    pub fn world(&self) -> usize {
        self.world
    }

    /// This rank (`r`).
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Samples per rank and batch (`B / N`).
    pub fn local_batch(&self) -> usize {
        self.global_batch / self.world
    }

    /// The global batches of a run that starts after `start` consumed samples of an epoch
    /// of `len` samples.
    pub fn schedule(&self, len: u64, start: u64, tail: TailPolicy) -> Result<Schedule, OrderError> {
        if start > len {
            return Err(OrderError::StartBeyondEpoch { start, len });
        }
        let b = self.global_batch as u64;
        let (full, rest) = ((len - start) / b, (len - start) % b);
        Ok(match tail {
            TailPolicy::Drop => Schedule {
                batches: full,
                dropped: rest,
            },
            TailPolicy::Keep => Schedule {
                batches: full + u64::from(rest > 0),
                dropped: 0,
            },
        })
    }

    /// The positions of global batch `batch` of a run starting at `start`, clipped to `len`.
    pub fn global_positions(&self, start: u64, batch: u64, len: u64) -> Range<u64> {
        let first = start + batch * self.global_batch as u64;
        first.min(len)..(first + self.global_batch as u64).min(len)
    }

    /// This rank's positions of global batch `batch` of a run starting at `start`,
    /// clipped to `len`.
    pub fn rank_positions(&self, start: u64, batch: u64, len: u64) -> Range<u64> {
        let local = self.local_batch() as u64;
        let first = start + batch * self.global_batch as u64 + self.rank as u64 * local;
        first.min(len)..(first + local).min(len)
    }
}

/// The top-left corner of the `patch x patch` crop of the sample at global position
/// `position` of `epoch`: uniform over all windows inside a `width x height` photo,
/// deterministic in `(seed, epoch, position)`. `None` if the photo is smaller than the patch.
pub fn crop_origin(
    seed: u64,
    epoch: u64,
    position: u64,
    width: u32,
    height: u32,
    patch: u32,
) -> Option<(u32, u32)> {
    if width < patch || height < patch {
        return None;
    }
    let mut r = rng(DOMAIN_CROP, &[seed, epoch, position]);
    let x = below(&mut r, u64::from(width - patch) + 1) as u32;
    let y = below(&mut r, u64::from(height - patch) + 1) as u32;
    Some((x, y))
}

/// The seed crop `crop` of a sample is drawn with: `seed` itself for crop 0 (so one crop
/// per sample is exactly [`crop_origin`] with the stream's seed), and for crop `k > 0`
/// `splitmix(splitmix(DOMAIN_EXTRA_CROP ^ k) ^ seed)`, where `splitmix` is the SplitMix64
/// finaliser (add `0x9e3779b97f4a7c15`, then xor-shift-multiply by `0xbf58476d1ce4e5b9` and
/// `0x94d049bb133111eb`, xor-shift 31) and `DOMAIN_EXTRA_CROP = 0x4352_4f50_4b00_0004`.
/// Deterministic in `(seed, crop)`; different crops of one sample get unrelated origins.
pub fn crop_seed(seed: u64, crop: u32) -> u64 {
    if crop == 0 {
        seed
    } else {
        splitmix(splitmix(DOMAIN_EXTRA_CROP ^ u64::from(crop)) ^ seed)
    }
}

/// The top-left corner of crop number `crop` (0-based) of the sample at global position
/// `position` of `epoch`: [`crop_origin`] with the seed [`crop_seed`]`(seed, crop)`. Crop 0
/// is [`crop_origin`] itself. `None` if the photo is smaller than the patch.
pub fn nth_crop_origin(
    seed: u64,
    epoch: u64,
    position: u64,
    crop: u32,
    width: u32,
    height: u32,
    patch: u32,
) -> Option<(u32, u32)> {
    crop_origin(crop_seed(seed, crop), epoch, position, width, height, patch)
}

/// Whether the text of the sample at global position `position` of `epoch` leaves out the
/// tags of its record: entry `i` of the result is true for the record's tag `i`, each
/// independently with probability `p` (the training stream's tag dropout). Deterministic in
/// `(seed, epoch, position)`; `p = 0` drops nothing.
pub fn dropped_tags(seed: u64, epoch: u64, position: u64, tags: usize, p: f64) -> Vec<bool> {
    if p <= 0.0 {
        return vec![false; tags];
    }
    let mut r = rng(DOMAIN_TAG_DROP, &[seed, epoch, position]);
    (0..tags)
        .map(|_| ((r.next_u64() >> 11) as f64) / ((1u64 << 53) as f64) < p)
        .collect()
}

const DOMAIN_SHARDS: u64 = 0x5348_4152_4453_0001;
const DOMAIN_WINDOW: u64 = 0x5749_4e44_4f57_0002;
const DOMAIN_CROP: u64 = 0x4352_4f50_0000_0003;
const DOMAIN_EXTRA_CROP: u64 = 0x4352_4f50_4b00_0004;
const DOMAIN_TAG_DROP: u64 = 0x5441_4744_524f_0005;

/// SplitMix64 finaliser: spreads the bits of `x`.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A ChaCha8 generator keyed by a domain tag and a tuple of integers.
pub(crate) fn rng(domain: u64, parts: &[u64]) -> ChaCha8Rng {
    let mut seed = [0u8; 32];
    let mut h = splitmix(domain);
    for &p in parts {
        h = splitmix(h ^ p);
    }
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        h = splitmix(h ^ i as u64);
        chunk.copy_from_slice(&h.to_le_bytes());
    }
    ChaCha8Rng::from_seed(seed)
}

/// A uniform integer in `0..n` (`n > 0`), without modulo bias (Lemire's method).
fn below(r: &mut ChaCha8Rng, n: u64) -> u64 {
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = u128::from(r.next_u64()) * u128::from(n);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// Fisher-Yates shuffle.
pub(crate) fn shuffle<T>(items: &mut [T], r: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = below(r, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests;
