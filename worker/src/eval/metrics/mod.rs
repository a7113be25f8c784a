//! Metrics of zero-shot splice detection and localisation (Huh et al. 2018, as the paper
//! reports them): pure functions over plain slices, no libtorch.
//!
//! **Conventions.** A score map is `width * height` values in row-major order, *higher =
//! more likely spliced*; a mask is as many booleans, `true` = spliced. The *inverted* map is
//! the negated map `-s`: exactly the reverse order with the same ties (`1 - s` in floating
//! point can merge neighbouring values and so change ties). NaN is refused
//! ([`MetricError::NanScore`]); infinities are ordinary values.
//!
//! **Average precision** ([`average_precision`]) is scikit-learn's `average_precision_score`:
//! sort the scores in descending order and walk the distinct values `v` (tied items enter
//! together); with `TP(v)`, `FP(v)` the positives and negatives scoring `>= v`, precision
//! `P(v) = TP / (TP + FP)` and recall `R(v) = TP / #positives`,
//! `AP = sum_v (R(v) - R(v_prev)) * P(v)`, `R` before the first value being 0. Step-wise,
//! no interpolation; at least one positive is required.
//!
//! **Per image** ([`localisation_scores`], one sort and one sweep, `O(N log N)`):
//! - pixel AP: AP of the map against the mask, and of the inverted map;
//! - cIoU: for a predicted-spliced pixel set `S` and the spliced pixels `M`,
//!   `cIoU(S) = (IoU(S, M) + IoU(not S, not M)) / 2` (class-balanced IoU). The sets searched
//!   for the map as given are the empty set and `{s >= v}` for every distinct value `v` of
//!   the map (every threshold that changes the prediction, plus "nothing spliced"); for the
//!   inverted map, the empty set and `{s <= v}` for every distinct `v`, which are exactly the
//!   complements of the first family. `ciou` is the best over the first family,
//!   `ciou_inverted` over the second. Both classes' IoUs are taken at the *same* threshold.
//!
//! **Over a dataset** ([`LocalisationSummary`], spliced images only): p-mAP is the mean of
//! `max(AP, AP inverted)` (the method asks for the better of the map and its inverse);
//! `ciou` the mean of the as-given cIoU; `ciou_either` the mean of
//! `max(ciou, ciou_inverted)` (the method names the inverse for p-mAP only; the reference
//! code takes it for cIoU too: both are reported so either convention can be compared).
//! A mask with no spliced pixel or only spliced pixels has an undefined IoU for one class:
//! such images are skipped and counted (`skipped_no_spliced_pixels`,
//! `skipped_all_spliced`), for every metric alike.
//!
//! **Detection** ([`detection_ap`]): AP over images, spliced = positive; at least one
//! spliced and one authentic image are required ([`MetricError::OneClass`]).
//!
//! Defects of the reference evaluation this avoids: the authentic-class IoU computed with
//! `~` on a `uint8` mask (every pixel counts as authentic, inflating cIoU); the two classes'
//! IoUs maximised at different thresholds; a fixed grid of 1000 thresholds on `[0, 1]`
//! (scores outside it, or closer than the grid step, are never separated); authentic images
//! labelled spliced; detection AP never computed.

mod detection;
mod pixel;
mod ranking;

pub use detection::{average_precision, detection_ap, DetectionReport, HigherMeans};
pub use pixel::{localisation_scores, LocalisationReport, LocalisationScores, LocalisationSummary};

/// Why a metric could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    /// Nothing to score.
    #[error("no scores: the map or score list is empty")]
    Empty,
    /// The map or the mask does not have `width * height` values.
    #[error(
        "size mismatch: {width}x{height} needs {expected} values, but the map has {map} and \
         the mask {mask}; pass the map and mask of the same image at the same resolution"
    )]
    SizeMismatch {
        /// Width given.
        width: usize,
        /// Height given.
        height: usize,
        /// `width * height` (`usize::MAX` if it overflows).
        expected: usize,
        /// Values in the map.
        map: usize,
        /// Values in the mask.
        mask: usize,
    },
    /// Scores and labels differ in number.
    #[error("{scores} scores but {labels} labels: give one label per score")]
    LengthMismatch {
        /// Number of scores.
        scores: usize,
        /// Number of labels.
        labels: usize,
    },
    /// A score is NaN, which has no place in a ranking.
    #[error("score {index} is NaN: the model produced an invalid score there")]
    NanScore {
        /// Index of the first NaN.
        index: usize,
    },
    /// AP needs at least one positive item.
    #[error("no positive item: average precision is undefined without a positive")]
    NoPositive,
    /// The mask has no spliced pixel (an authentic image, or an empty ground truth).
    #[error("the mask has no spliced pixel: localisation is measured on spliced images only")]
    NoSplicedPixels,
    /// Every pixel of the mask is spliced: the authentic class is empty.
    #[error("every pixel of the mask is spliced: the authentic-class IoU is undefined")]
    AllSpliced,
    /// Detection AP needs both classes.
    #[error(
        "detection AP needs at least one spliced and one authentic image, got {spliced} \
         spliced and {authentic} authentic (a dataset of spliced images only has no detection \
         score)"
    )]
    OneClass {
        /// Spliced images given.
        spliced: usize,
        /// Authentic images given.
        authentic: usize,
    },
}
