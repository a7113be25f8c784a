//! Stragglers: ranks whose own time per step (the step less the time spent in collectives,
//! where every rank waits for the slowest) is well over the job's median. In synchronous
//! data-parallel training every rank's step takes as long as the slowest rank's, so the
//! step time alone cannot name the slow one; its own time can.

use proto::domain::Rank;

/// What counts as a straggler.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StragglerPolicy {
    /// Flag a rank whose own time is over this factor times the median (above 1).
    pub factor: f64,
    /// ... and over the median by at least this many seconds (noise on short steps).
    pub min_excess_s: f64,
}

impl StragglerPolicy {
    /// The default: 1.5 times the median and 50 ms over it.
    pub const DEFAULT: StragglerPolicy = StragglerPolicy {
        factor: 1.5,
        min_excess_s: 0.05,
    };
}

/// The ranks of `own` (rank, own seconds per step) that straggle, by rank, and the median
/// they were compared with. Fewer than two reports: none, median 0.
pub fn stragglers(own: &[(Rank, f64)], policy: StragglerPolicy) -> (Vec<Rank>, f64) {
    let mut times: Vec<f64> = own
        .iter()
        .map(|&(_, t)| t)
        .filter(|t| t.is_finite())
        .collect();
    if times.len() < 2 {
        return (Vec::new(), 0.0);
    }
    times.sort_by(f64::total_cmp);
    let mid = times.len() / 2;
    let median = if times.len().is_multiple_of(2) {
        (times[mid - 1] + times[mid]) / 2.0
    } else {
        times[mid]
    };
    let mut slow: Vec<Rank> = own
        .iter()
        .filter(|&&(_, t)| t > policy.factor * median && t - median >= policy.min_excess_s)
        .map(|&(r, _)| r)
        .collect();
    slow.sort();
    (slow, median)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranks(times: &[f64]) -> Vec<(Rank, f64)> {
        times
            .iter()
            .enumerate()
            .map(|(i, &t)| (Rank::new(i as u32), t))
            .collect()
    }

    #[test]
    fn the_slow_rank_is_named_and_the_others_are_not() {
        let (slow, median) =
            stragglers(&ranks(&[0.30, 0.31, 1.20, 0.29]), StragglerPolicy::DEFAULT);
        assert_eq!(slow, vec![Rank::new(2)]);
        assert!((median - 0.305).abs() < 1e-9);
    }

    #[test]
    fn even_ranks_within_noise_are_never_flagged() {
        let policy = StragglerPolicy::DEFAULT;
        assert!(stragglers(&ranks(&[0.30, 0.32, 0.31, 0.33]), policy)
            .0
            .is_empty());
        // Twice the median but only 20 ms over it: tiny steps are noise, not stragglers.
        assert!(stragglers(&ranks(&[0.02, 0.02, 0.04]), policy).0.is_empty());
    }

    #[test]
    fn one_report_or_none_flags_nothing() {
        assert_eq!(
            stragglers(&ranks(&[5.0]), StragglerPolicy::DEFAULT),
            (vec![], 0.0)
        );
        assert_eq!(stragglers(&[], StragglerPolicy::DEFAULT), (vec![], 0.0));
    }

    #[test]
    fn with_two_ranks_the_slow_one_must_be_three_times_the_other_at_factor_1_5() {
        let policy = StragglerPolicy::DEFAULT;
        assert_eq!(
            stragglers(&ranks(&[0.3, 1.0]), policy).0,
            vec![Rank::new(1)]
        );
        assert!(stragglers(&ranks(&[0.3, 0.8]), policy).0.is_empty());
    }
}
