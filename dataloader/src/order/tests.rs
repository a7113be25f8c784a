use super::*;
use std::collections::HashSet;

const COUNTS: [usize; 7] = [13, 0, 21, 8, 17, 5, 11];

fn order(seed: u64, epoch: u64, window: usize) -> Arc<EpochOrder> {
    Arc::new(EpochOrder::new(&COUNTS, seed, epoch, window).unwrap())
}

fn all_samples(counts: &[usize]) -> HashSet<SampleRef> {
    counts
        .iter()
        .enumerate()
        .flat_map(|(shard, &n)| (0..n).map(move |sample| SampleRef { shard, sample }))
        .collect()
}

fn samples(o: &Arc<EpochOrder>) -> Vec<SampleRef> {
    o.iter_from(0).map(|(_, s)| s).collect()
}

/// Everything rank `plan` reads in a run from `start` of `batches` global batches (or to
/// the end), batch by batch.
fn rank_batches(
    o: &Arc<EpochOrder>,
    plan: RankPlan,
    start: u64,
    batches: Option<u64>,
) -> Vec<Vec<SampleRef>> {
    let n = plan
        .schedule(o.len(), start, TailPolicy::Drop)
        .unwrap()
        .batches;
    let mut cursor = OrderCursor::new(Arc::clone(o));
    (0..batches.unwrap_or(n).min(n))
        .map(|b| {
            plan.rank_positions(start, b, o.len())
                .map(|p| cursor.at(p).unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn every_sample_appears_exactly_once_per_epoch() {
    for window in [1, 2, 3, 100] {
        let o = order(7, 3, window);
        let seen = samples(&o);
        assert_eq!(o.len(), COUNTS.iter().sum::<usize>() as u64);
        assert_eq!(seen.len() as u64, o.len());
        assert_eq!(
            seen.iter().copied().collect::<HashSet<_>>(),
            all_samples(&COUNTS),
            "window {window}"
        );
    }
}

#[test]
fn order_is_a_function_of_seed_and_epoch() {
    assert_eq!(samples(&order(1, 0, 2)), samples(&order(1, 0, 2)));
    assert_ne!(samples(&order(1, 0, 2)), samples(&order(1, 1, 2)));
    assert_ne!(samples(&order(1, 0, 2)), samples(&order(2, 0, 2)));
}

#[test]
fn windows_read_only_their_own_shards() {
    let o = order(11, 0, 2);
    let mut seen_shards = HashSet::new();
    for w in 0..o.windows() {
        let range = o.window_range(w);
        let shards: HashSet<usize> = o
            .iter_from(range.start)
            .take((range.end - range.start) as usize)
            .map(|(_, s)| s.shard)
            .collect();
        assert!(shards.len() <= 2, "window {w} touches {shards:?}");
        assert!(
            shards.is_disjoint(&seen_shards),
            "shard read by two windows"
        );
        seen_shards.extend(shards);
    }
}

#[test]
fn samples_of_a_window_are_mixed_across_its_shards() {
    // With a single window (full permutation), the first 20 positions should not all
    // come from one shard: a mere concatenation of shards would fail this.
    let o = order(5, 0, 100);
    let first: HashSet<usize> = o.iter_from(0).take(20).map(|(_, s)| s.shard).collect();
    assert!(first.len() > 1);
}

#[test]
fn iterating_from_a_position_gives_the_tail_of_the_epoch() {
    let o = order(3, 2, 3);
    let all: Vec<_> = o.iter_from(0).collect();
    for k in [0, 1, 12, 40, all.len() as u64 - 1, all.len() as u64] {
        let tail: Vec<_> = o.iter_from(k).collect();
        assert_eq!(tail, all[k as usize..]);
    }
}

#[test]
fn empty_dataset_and_bad_window() {
    let o = Arc::new(EpochOrder::new(&[0, 0], 1, 1, 2).unwrap());
    assert!(o.is_empty());
    assert_eq!(o.iter_from(0).count(), 0);
    assert_eq!(
        EpochOrder::new(&COUNTS, 0, 0, 0).unwrap_err(),
        OrderError::ZeroWindow
    );
}

#[test]
fn rank_plan_rejects_bad_arguments() {
    assert_eq!(
        RankPlan::new(10, 4, 0).unwrap_err(),
        OrderError::UnevenBatch {
            batch: 10,
            world: 4
        }
    );
    assert_eq!(
        RankPlan::new(8, 4, 4).unwrap_err(),
        OrderError::RankOutOfRange { rank: 4, world: 4 }
    );
    assert_eq!(RankPlan::new(0, 1, 0).unwrap_err(), OrderError::ZeroBatch);
    assert_eq!(RankPlan::new(8, 0, 0).unwrap_err(), OrderError::ZeroWorld);
    let p = RankPlan::new(8, 4, 1).unwrap();
    assert_eq!(
        p.schedule(10, 11, TailPolicy::Drop).unwrap_err(),
        OrderError::StartBeyondEpoch { start: 11, len: 10 }
    );
}

#[test]
fn tail_is_dropped_and_counted_or_kept() {
    let p = RankPlan::new(8, 2, 1).unwrap();
    assert_eq!(
        p.schedule(75, 0, TailPolicy::Drop).unwrap(),
        Schedule {
            batches: 9,
            dropped: 3
        }
    );
    assert_eq!(
        p.schedule(75, 0, TailPolicy::Keep).unwrap(),
        Schedule {
            batches: 10,
            dropped: 0
        }
    );
    assert_eq!(
        p.schedule(75, 72, TailPolicy::Keep).unwrap(),
        Schedule {
            batches: 1,
            dropped: 0
        }
    );
    assert_eq!(
        p.schedule(72, 72, TailPolicy::Keep).unwrap(),
        Schedule {
            batches: 0,
            dropped: 0
        }
    );
    // The kept tail of 3 samples is [72, 75): rank 0 takes 72..75, rank 1 nothing.
    assert_eq!(p.rank_positions(72, 0, 75), 75..75);
    assert_eq!(
        RankPlan::new(8, 2, 0).unwrap().rank_positions(72, 0, 75),
        72..75
    );
}

#[test]
fn ranks_partition_each_global_batch_in_rank_order() {
    let o = order(9, 1, 2);
    let global = RankPlan::new(12, 1, 0).unwrap();
    for world in [2, 3, 4, 6] {
        let per_rank: Vec<_> = (0..world)
            .map(|r| rank_batches(&o, RankPlan::new(12, world, r).unwrap(), 5, None))
            .collect();
        for (b, expected) in rank_batches(&o, global, 5, None).iter().enumerate() {
            let joined: Vec<SampleRef> = per_rank
                .iter()
                .flat_map(|batches| batches[b].clone())
                .collect();
            assert_eq!(&joined, expected, "world {world}, batch {b}");
        }
    }
}

#[test]
fn resuming_on_another_world_size_neither_skips_nor_repeats() {
    let o = order(21, 4, 3);
    let b = 8;
    let len = o.len();
    let k = 3; // global batches consumed with two ranks before the restart
    for new_world in [1, 4] {
        let mut seen: Vec<SampleRef> = Vec::new();
        let mut global: Vec<Vec<SampleRef>> = vec![Vec::new(); (len / b as u64) as usize];
        for r in 0..2 {
            for (i, batch) in rank_batches(&o, RankPlan::new(b, 2, r).unwrap(), 0, Some(k))
                .into_iter()
                .enumerate()
            {
                global[i].extend(batch.iter().copied());
                seen.extend(batch);
            }
        }
        let start = k * b as u64; // the saved position: samples consumed globally
        for r in 0..new_world {
            let plan = RankPlan::new(b, new_world, r).unwrap();
            for (i, batch) in rank_batches(&o, plan, start, None).into_iter().enumerate() {
                global[k as usize + i].extend(batch.iter().copied());
                seen.extend(batch);
            }
        }
        let dropped = RankPlan::new(b, 1, 0)
            .unwrap()
            .schedule(len, 0, TailPolicy::Drop)
            .unwrap()
            .dropped;
        let unique: HashSet<SampleRef> = seen.iter().copied().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "a sample was read twice (world {new_world})"
        );
        assert_eq!(seen.len() as u64 + dropped, len);
        // The dropped tail is exactly the last `dropped` positions of the epoch.
        let tail: HashSet<SampleRef> = o.iter_from(len - dropped).map(|(_, s)| s).collect();
        assert_eq!(
            unique.union(&tail).copied().collect::<HashSet<_>>(),
            all_samples(&COUNTS)
        );
        // Global batch contents (ranks' slices joined in rank order) do not depend on
        // the world size, before or after the restart.
        let single = rank_batches(&o, RankPlan::new(b, 1, 0).unwrap(), 0, None);
        assert_eq!(global, single, "world {new_world}");
    }
}

#[test]
fn crops_are_uniform_in_bounds_and_deterministic() {
    assert_eq!(crop_origin(1, 2, 3, 123, 500, 124), None);
    assert_eq!(crop_origin(1, 2, 3, 124, 124, 124), Some((0, 0)));
    let mut xs = HashSet::new();
    for pos in 0..2000 {
        let (x, y) = crop_origin(1, 2, pos, 130, 4000, 124).unwrap();
        assert!(x <= 6 && y <= 4000 - 124);
        assert_eq!(crop_origin(1, 2, pos, 130, 4000, 124), Some((x, y)));
        xs.insert(x);
    }
    assert_eq!(xs.len(), 7, "every horizontal offset 0..=6 should occur");
    let a: Vec<_> = (0..50)
        .map(|p| crop_origin(1, 0, p, 4000, 3000, 124))
        .collect();
    let b: Vec<_> = (0..50)
        .map(|p| crop_origin(1, 1, p, 4000, 3000, 124))
        .collect();
    assert_ne!(a, b, "crops should change with the epoch");
}

#[test]
fn extra_crops_have_their_own_deterministic_origins() {
    // Crop 0 is the one-crop origin; the others differ from it and from each other.
    for pos in 0..20 {
        assert_eq!(
            nth_crop_origin(9, 1, pos, 0, 4000, 3000, 124),
            crop_origin(9, 1, pos, 4000, 3000, 124)
        );
    }
    assert_eq!(crop_seed(9, 0), 9);
    let seeds: HashSet<u64> = (0..8).map(|k| crop_seed(9, k)).collect();
    assert_eq!(seeds.len(), 8, "every crop gets its own seed");
    assert_ne!(crop_seed(9, 1), crop_seed(10, 1));
    let differ = (0..50)
        .filter(|&p| {
            nth_crop_origin(9, 1, p, 1, 4000, 3000, 124)
                != nth_crop_origin(9, 1, p, 0, 4000, 3000, 124)
        })
        .count();
    assert!(differ >= 49, "only {differ} of 50 second crops moved");
    assert_eq!(
        nth_crop_origin(9, 1, 3, 1, 4000, 3000, 124),
        crop_origin(crop_seed(9, 1), 1, 3, 4000, 3000, 124)
    );
    assert_eq!(nth_crop_origin(9, 1, 3, 2, 124, 124, 124), Some((0, 0)));
    assert_eq!(nth_crop_origin(9, 1, 3, 2, 100, 124, 124), None);
}

#[test]
fn bounded_sampling_is_unbiased_enough() {
    let mut r = rng(1, &[2]);
    let mut hist = [0u32; 3];
    for _ in 0..30_000 {
        hist[below(&mut r, 3) as usize] += 1;
    }
    assert!(
        hist.iter().all(|&h| (9_000..11_000).contains(&h)),
        "{hist:?}"
    );
}
