//! Stragglers: ranks whose own time per step (the step less the time spent in collectives,
//! where every rank waits for the slowest) is well over the median of the *other* ranks.
//! In synchronous data-parallel training every rank's step takes as long as the slowest
//! rank's, so the step time alone cannot name the slow one; its own time can. Each rank is
//! compared with the others only, so a slow rank does not raise its own yardstick: with
//! two ranks, a median over both would be their mean, and the slow one would have to be
//! three times the other before it was over 1.5 times that.

use proto::domain::Rank;

/// What counts as a straggler.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StragglerPolicy {
    /// Flag a rank whose own time is over this factor times the other ranks' median
    /// (above 1).
    pub factor: f64,
    /// ... and over that median by at least this many seconds (noise on short steps).
    pub min_excess_s: f64,
}

impl StragglerPolicy {
    /// The default: 1.5 times the others' median and 50 ms over it.
    pub const DEFAULT: StragglerPolicy = StragglerPolicy {
        factor: 1.5,
        min_excess_s: 0.05,
    };
}

/// The median of sorted `s`, leaving out the element at `skip` when given.
fn median_of_sorted(s: &[f64], skip: Option<usize>) -> f64 {
    let at = |j: usize| match skip {
        Some(k) if j >= k => s[j + 1],
        _ => s[j],
    };
    let n = s.len() - usize::from(skip.is_some());
    if n % 2 == 1 {
        at(n / 2)
    } else {
        (at(n / 2 - 1) + at(n / 2)) / 2.0
    }
}

/// The ranks of `own` (rank, own seconds per step) that straggle, by rank, and the median
/// over all of them (what the status shows as the round's typical step). Fewer than two
/// finite reports: none, median 0. A rank without a finite time is never flagged.
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
    let mut slow: Vec<Rank> = own
        .iter()
        .filter(|&&(_, t)| {
            if !t.is_finite() {
                return false;
            }
            // Equal times leave the same others behind, so the first of them will do.
            let others = median_of_sorted(&times, Some(times.partition_point(|&x| x < t)));
            t > policy.factor * others && t - others >= policy.min_excess_s
        })
        .map(|&(r, _)| r)
        .collect();
    slow.sort();
    (slow, median_of_sorted(&times, None))
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
    fn with_two_ranks_the_slow_one_is_measured_against_the_other_alone() {
        let policy = StragglerPolicy::DEFAULT;
        // Over 1.5 times the other: flagged (a median over both, 0.4, would need 0.6).
        assert_eq!(
            stragglers(&ranks(&[0.3, 0.5]), policy),
            (vec![Rank::new(1)], 0.4)
        );
        assert!(stragglers(&ranks(&[0.3, 0.44]), policy).0.is_empty());
        // The fast one is never flagged against the slow one.
        assert_eq!(
            stragglers(&ranks(&[1.0, 0.3]), policy).0,
            vec![Rank::new(0)]
        );
    }

    #[test]
    fn equal_slow_ranks_are_all_flagged_and_unreadable_times_never_are() {
        let policy = StragglerPolicy::DEFAULT;
        let (slow, median) = stragglers(&ranks(&[0.3, 0.6, 0.3, 0.6]), policy);
        assert_eq!(slow, vec![Rank::new(1), Rank::new(3)]);
        assert!((median - 0.45).abs() < 1e-9);
        assert_eq!(
            stragglers(&ranks(&[0.3, f64::NAN, 0.31, f64::INFINITY, 0.9]), policy).0,
            vec![Rank::new(4)]
        );
        assert!(stragglers(&ranks(&[0.3, f64::NAN]), policy).0.is_empty());
    }

    #[test]
    fn the_median_leaving_one_out_is_the_median_of_the_rest() {
        let s = [1.0, 2.0, 3.0, 4.0, 10.0];
        for k in 0..s.len() {
            let mut rest: Vec<f64> = s.to_vec();
            rest.remove(k);
            assert_eq!(
                median_of_sorted(&s, Some(k)),
                median_of_sorted(&rest, None),
                "{k}"
            );
        }
        assert_eq!(median_of_sorted(&s, None), 3.0);
        assert_eq!(median_of_sorted(&s, Some(2)), 3.0);
        assert_eq!(median_of_sorted(&s, Some(4)), 2.5);
    }
}
