//! Localisation metrics of one image (pixel AP and cIoU, as given and inverted) and their
//! means over a dataset's spliced images. Definitions: the [module header](super).

use serde::Serialize;

use super::ranking::{sweep, Sweep};
use super::MetricError;

/// The localisation scores of one spliced image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LocalisationScores {
    /// AP of the map against the mask.
    pub ap: f64,
    /// AP of the inverted (negated) map.
    pub ap_inverted: f64,
    /// Best cIoU over the thresholds of the map as given.
    pub ciou: f64,
    /// Best cIoU over the thresholds of the inverted map.
    pub ciou_inverted: f64,
}

impl LocalisationScores {
    /// The better of the map and its inverse: this image's term of p-mAP.
    pub fn permuted_ap(&self) -> f64 {
        self.ap.max(self.ap_inverted)
    }

    /// The better cIoU of the map and its inverse.
    pub fn ciou_either(&self) -> f64 {
        self.ciou.max(self.ciou_inverted)
    }
}

/// Scores one image: `map` (higher = more likely spliced) against `mask` (`true` =
/// spliced), both `width * height` values in row-major order.
///
/// Errors: size mismatch, empty map, NaN, and the masks whose cIoU is undefined
/// ([`MetricError::NoSplicedPixels`], [`MetricError::AllSpliced`]; [`LocalisationSummary`]
/// skips and counts those).
pub fn localisation_scores(
    map: &[f32],
    mask: &[bool],
    width: usize,
    height: usize,
) -> Result<LocalisationScores, MetricError> {
    let expected = width.saturating_mul(height);
    if map.len() != expected || mask.len() != expected {
        return Err(MetricError::SizeMismatch {
            width,
            height,
            expected,
            map: map.len(),
            mask: mask.len(),
        });
    }
    let ranked = sweep(map, mask)?;
    if ranked.positives == 0 {
        return Err(MetricError::NoSplicedPixels);
    }
    if ranked.positives == ranked.n {
        return Err(MetricError::AllSpliced);
    }
    let inverted = ranked.inverted();
    Ok(LocalisationScores {
        ap: ranked.average_precision()?,
        ap_inverted: inverted.average_precision()?,
        ciou: best_ciou(&ranked),
        ciou_inverted: best_ciou(&inverted),
    })
}

/// Best class-balanced IoU over the empty prediction and every group boundary of `s`
/// (the prediction "the top `k` pixels are spliced"). Needs both classes present.
fn best_ciou(s: &Sweep) -> f64 {
    let (n, p) = (s.n as f64, s.positives as f64);
    let ciou = |k: u64, tp: u64| {
        let (k, tp) = (k as f64, tp as f64);
        // Spliced class: TP / (TP + FP + FN) = tp / (k + p - tp).
        let spliced = tp / (k + p - tp);
        // Authentic class: TN / (TN + FN + FP) = (n - p - (k - tp)) / (n - tp).
        let authentic = (n - p - (k - tp)) / (n - tp);
        (spliced + authentic) / 2.0
    };
    s.groups
        .iter()
        .map(|&(k, tp)| ciou(k, tp))
        .fold(ciou(0, 0), f64::max)
}

/// Running means of the localisation scores over a dataset's spliced images.
#[derive(Debug, Clone, Default)]
pub struct LocalisationSummary {
    scored: u64,
    skipped_no_spliced_pixels: u64,
    skipped_all_spliced: u64,
    sum_ap: f64,
    sum_permuted_ap: f64,
    sum_ciou: f64,
    sum_ciou_either: f64,
}

/// The means, as written to a results file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LocalisationReport {
    /// Images scored.
    pub scored: u64,
    /// Images skipped because their mask has no spliced pixel.
    pub skipped_no_spliced_pixels: u64,
    /// Images skipped because every pixel of their mask is spliced.
    pub skipped_all_spliced: u64,
    /// Mean AP of the map as given (no inversion).
    pub map: Option<f64>,
    /// p-mAP: mean of the better AP of the map and its inverse.
    pub p_map: Option<f64>,
    /// Mean best cIoU of the map as given.
    pub ciou: Option<f64>,
    /// Mean of the better cIoU of the map and its inverse.
    pub ciou_either: Option<f64>,
}

impl LocalisationSummary {
    /// Scores one spliced image and adds it. `Ok(None)`: the mask has no spliced pixel or
    /// only spliced pixels; the image is counted as skipped. Other errors (size mismatch,
    /// empty map, NaN) leave the summary unchanged.
    pub fn add(
        &mut self,
        map: &[f32],
        mask: &[bool],
        width: usize,
        height: usize,
    ) -> Result<Option<LocalisationScores>, MetricError> {
        match localisation_scores(map, mask, width, height) {
            Ok(s) => {
                self.add_scores(&s);
                Ok(Some(s))
            }
            Err(MetricError::NoSplicedPixels) => {
                self.skipped_no_spliced_pixels += 1;
                Ok(None)
            }
            Err(MetricError::AllSpliced) => {
                self.skipped_all_spliced += 1;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Adds scores computed elsewhere (e.g. on another thread).
    pub fn add_scores(&mut self, s: &LocalisationScores) {
        self.scored += 1;
        self.sum_ap += s.ap;
        self.sum_permuted_ap += s.permuted_ap();
        self.sum_ciou += s.ciou;
        self.sum_ciou_either += s.ciou_either();
    }

    /// The means so far (`None` while nothing was scored).
    pub fn report(&self) -> LocalisationReport {
        let mean = |sum: f64| (self.scored > 0).then(|| sum / self.scored as f64);
        LocalisationReport {
            scored: self.scored,
            skipped_no_spliced_pixels: self.skipped_no_spliced_pixels,
            skipped_all_spliced: self.skipped_all_spliced,
            map: mean(self.sum_ap),
            p_map: mean(self.sum_permuted_ap),
            ciou: mean(self.sum_ciou),
            ciou_either: mean(self.sum_ciou_either),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn a_perfect_map_scores_one_and_its_inverse_is_only_better_when_inverted() {
        // 2x2: the left column is spliced and scores highest.
        let map = [0.9, 0.1, 0.8, 0.2];
        let mask = [true, false, true, false];
        let s = localisation_scores(&map, &mask, 2, 2).unwrap();
        assert!(close(s.ap, 1.0) && close(s.ciou, 1.0));
        // Inverted: ranks the authentic pixels first; AP = (1/2)(1/3) + (1/2)(2/4).
        assert!(close(s.ap_inverted, 0.5 / 3.0 + 0.25));
        assert!(close(s.permuted_ap(), 1.0) && close(s.ciou_either(), 1.0));
        // The map flipped: the inverted family now holds the perfect prediction.
        let flipped: Vec<f32> = map.iter().map(|v| 1.0 - v).collect();
        let f = localisation_scores(&flipped, &mask, 2, 2).unwrap();
        assert!(close(f.ap_inverted, 1.0) && close(f.ciou_inverted, 1.0));
        assert!(f.ciou < 1.0);
    }

    #[test]
    fn ciou_takes_both_classes_at_one_threshold() {
        // 1x4, spliced = first pixel. Scores rank it second.
        // Thresholds: {} -> (0 + 3/4)/2 = 0.375; top1 {x1} -> (0 + 2/4)/2 = 0.25;
        // top2 {x0,x1} -> (1/2 + 2/3)/2 = 7/12; top3 -> (1/3 + 1/3)/2 = 1/3; all -> 1/8.
        let map = [0.7, 0.9, 0.3, 0.1];
        let mask = [true, false, false, false];
        let s = localisation_scores(&map, &mask, 4, 1).unwrap();
        assert!(close(s.ciou, 7.0 / 12.0), "{}", s.ciou);
        // AP: the positive enters at rank 2: precision 1/2.
        assert!(close(s.ap, 0.5));
    }

    #[test]
    fn a_constant_map_predicts_all_or_nothing() {
        let mask = [true, false, false, false];
        let s = localisation_scores(&[0.5; 4], &mask, 2, 2).unwrap();
        // AP = precision of the single group = 1/4; cIoU: max(empty 3/8, all 1/8).
        assert!(close(s.ap, 0.25) && close(s.ap_inverted, 0.25));
        assert!(close(s.ciou, 0.375) && close(s.ciou_inverted, 0.375));
    }

    #[test]
    fn degenerate_masks_are_skipped_and_counted_and_bad_input_is_refused() {
        let mut sum = LocalisationSummary::default();
        assert_eq!(sum.add(&[0.1, 0.2], &[false, false], 2, 1), Ok(None));
        assert_eq!(sum.add(&[0.1, 0.2], &[true, true], 1, 2), Ok(None));
        assert!(matches!(
            sum.add(&[0.1, 0.2, 0.3], &[true, false], 2, 1),
            Err(MetricError::SizeMismatch {
                expected: 2,
                map: 3,
                mask: 2,
                ..
            })
        ));
        assert_eq!(
            sum.add(&[0.1, f32::NAN], &[true, false], 2, 1),
            Err(MetricError::NanScore { index: 1 })
        );
        assert_eq!(sum.add(&[], &[], 0, 0), Err(MetricError::Empty));
        assert!(sum
            .add(&[0.9, 0.1], &[true, false], 2, 1)
            .unwrap()
            .is_some());
        let r = sum.report();
        assert_eq!(
            (r.scored, r.skipped_no_spliced_pixels, r.skipped_all_spliced),
            (1, 1, 1)
        );
        assert_eq!((r.p_map, r.ciou), (Some(1.0), Some(1.0)));
        assert_eq!(LocalisationSummary::default().report().p_map, None);
    }
}
