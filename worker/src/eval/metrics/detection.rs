//! Detection: average precision over images, spliced = positive.

use serde::Serialize;

use super::ranking::sweep;
use super::MetricError;

/// Which way a detection score points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HigherMeans {
    /// Higher = more likely spliced (e.g. the reference code's `mean(1 - A)`).
    Spliced,
    /// Higher = more likely authentic (e.g. the paper's consistency `sum exp(A / tau)`);
    /// the scores are negated before ranking.
    Authentic,
}

/// Average precision of `scores` against `positive`, exactly as scikit-learn's
/// `average_precision_score(positive, scores)` (definition in the [module header](super)).
/// Needs at least one positive; no negatives gives 1.
pub fn average_precision(scores: &[f64], positive: &[bool]) -> Result<f64, MetricError> {
    sweep(scores, positive)?.average_precision()
}

/// Detection AP over images: `spliced[i]` is image `i`'s label, `scores[i]` its score.
/// Both classes must be present ([`MetricError::OneClass`] otherwise).
pub fn detection_ap(
    scores: &[f64],
    spliced: &[bool],
    higher_means: HigherMeans,
) -> Result<DetectionReport, MetricError> {
    let positives = spliced.iter().filter(|&&s| s).count();
    let authentic = spliced.len() - positives;
    if scores.len() == spliced.len() && !scores.is_empty() && (positives == 0 || authentic == 0) {
        return Err(MetricError::OneClass {
            spliced: positives,
            authentic,
        });
    }
    let ranked = match higher_means {
        HigherMeans::Spliced => sweep(scores, spliced)?,
        HigherMeans::Authentic => sweep(scores, spliced)?.inverted(),
    };
    Ok(DetectionReport {
        spliced: positives as u64,
        authentic: authentic as u64,
        ap: ranked.average_precision()?,
    })
}

/// Detection result of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DetectionReport {
    /// Spliced images scored.
    pub spliced: u64,
    /// Authentic images scored.
    pub authentic: u64,
    /// Average precision, spliced = positive.
    pub ap: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_scikit_learn_documentation_example() {
        // sklearn.metrics.average_precision_score docs: y_true [0, 0, 1, 1],
        // y_scores [0.1, 0.4, 0.35, 0.8] -> 0.83 (= 1/2 * 1 + 1/2 * 2/3).
        let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn consistency_scores_are_negated_and_one_class_is_refused() {
        // High consistency = authentic: the two spliced images score lowest.
        let scores = [9.0, 1.0, 8.0, 2.0];
        let spliced = [false, true, false, true];
        let r = detection_ap(&scores, &spliced, HigherMeans::Authentic).unwrap();
        assert_eq!((r.ap, r.spliced, r.authentic), (1.0, 2, 2));
        let wrong_way = detection_ap(&scores, &spliced, HigherMeans::Spliced).unwrap();
        assert!(wrong_way.ap < 0.5);
        assert_eq!(
            detection_ap(&[1.0, 2.0], &[true, true], HigherMeans::Spliced),
            Err(MetricError::OneClass {
                spliced: 2,
                authentic: 0
            })
        );
        assert_eq!(
            detection_ap(&[1.0], &[true, false], HigherMeans::Spliced),
            Err(MetricError::LengthMismatch {
                scores: 1,
                labels: 2
            })
        );
        assert_eq!(
            average_precision(&[1.0], &[false]),
            Err(MetricError::NoPositive)
        );
    }
}
