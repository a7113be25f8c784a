//! The one ranking pass every metric shares: sort the scores in descending order and
//! record the cumulative counts at the end of each group of tied scores.

use std::cmp::Ordering;

use super::MetricError;

/// A score type the ranking accepts (`f32` maps, `f64` image scores).
pub(crate) trait Score: Copy {
    fn is_nan(self) -> bool;
    /// Descending order; NaN never reaches here.
    fn cmp_desc(&self, other: &Self) -> Ordering;
    /// Equal values (`-0.0 == 0.0`, as NumPy compares them).
    fn same(self, other: Self) -> bool;
}

impl Score for f32 {
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    fn cmp_desc(&self, other: &Self) -> Ordering {
        other.total_cmp(self)
    }
    fn same(self, other: Self) -> bool {
        self == other
    }
}

impl Score for f64 {
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn cmp_desc(&self, other: &Self) -> Ordering {
        other.total_cmp(self)
    }
    fn same(self, other: Self) -> bool {
        self == other
    }
}

/// Cumulative counts in descending score order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sweep {
    /// Items.
    pub n: u64,
    /// Positive items.
    pub positives: u64,
    /// After each group of tied scores, from the highest value down: `(k, tp)` = items and
    /// positive items scoring `>=` the group's value. The last entry is `(n, positives)`.
    pub groups: Vec<(u64, u64)>,
}

/// Ranks `scores` (one label per score); refuses empty input, unequal lengths and NaN.
pub(crate) fn sweep<T: Score>(scores: &[T], positive: &[bool]) -> Result<Sweep, MetricError> {
    if scores.len() != positive.len() {
        return Err(MetricError::LengthMismatch {
            scores: scores.len(),
            labels: positive.len(),
        });
    }
    if scores.is_empty() {
        return Err(MetricError::Empty);
    }
    if let Some(index) = scores.iter().position(|s| s.is_nan()) {
        return Err(MetricError::NanScore { index });
    }
    let mut pairs: Vec<(T, bool)> = scores
        .iter()
        .copied()
        .zip(positive.iter().copied())
        .collect();
    // `total_cmp` puts -0.0 next to 0.0, so tied values stay contiguous.
    pairs.sort_unstable_by(|a, b| a.0.cmp_desc(&b.0));
    let mut groups = Vec::new();
    let (mut k, mut tp) = (0u64, 0u64);
    for (i, &(score, pos)) in pairs.iter().enumerate() {
        k += 1;
        tp += u64::from(pos);
        let group_ends = pairs.get(i + 1).is_none_or(|next| !score.same(next.0));
        if group_ends {
            groups.push((k, tp));
        }
    }
    Ok(Sweep {
        n: k,
        positives: tp,
        groups,
    })
}

impl Sweep {
    /// The same counts for the negated scores (ascending order of the original): after the
    /// groups `G..=j` of the original, `k' = n - k[j-1]`, `tp' = positives - tp[j-1]`.
    pub fn inverted(&self) -> Sweep {
        let mut groups = Vec::with_capacity(self.groups.len());
        for j in (0..self.groups.len()).rev() {
            let (k_before, tp_before) = if j == 0 { (0, 0) } else { self.groups[j - 1] };
            groups.push((self.n - k_before, self.positives - tp_before));
        }
        Sweep {
            n: self.n,
            positives: self.positives,
            groups,
        }
    }

    /// Average precision (scikit-learn's step-wise definition); needs a positive.
    pub fn average_precision(&self) -> Result<f64, MetricError> {
        if self.positives == 0 {
            return Err(MetricError::NoPositive);
        }
        let p = self.positives as f64;
        let mut ap = 0.0;
        let mut tp_prev = 0u64;
        for &(k, tp) in &self.groups {
            if tp > tp_prev {
                ap += (tp - tp_prev) as f64 / p * (tp as f64 / k as f64);
            }
            tp_prev = tp;
        }
        Ok(ap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_form_one_group_and_negative_zero_ties_with_zero() {
        let s = sweep(
            &[0.5f32, -0.0, 0.5, 0.0, 1.0],
            &[true, false, false, true, false],
        )
        .unwrap();
        assert_eq!(s.groups, vec![(1, 0), (3, 1), (5, 2)]);
        assert_eq!(s.inverted().groups, vec![(2, 1), (4, 2), (5, 2)]);
    }

    #[test]
    fn invalid_inputs_are_refused() {
        assert_eq!(sweep::<f64>(&[], &[]), Err(MetricError::Empty));
        assert_eq!(
            sweep(&[1.0f64], &[true, false]),
            Err(MetricError::LengthMismatch {
                scores: 1,
                labels: 2
            })
        );
        assert_eq!(
            sweep(&[1.0f64, f64::NAN], &[true, false]),
            Err(MetricError::NanScore { index: 1 })
        );
    }
}
