//! Models compared on the same splice benchmarks with 95% bootstrap intervals over
//! images: `worker eval compare`.
//!
//! A *run* is one model's `worker eval splice --json` results on one or more benchmarks
//! (e.g. three `splice-bench make` seeds), each file listing every image's scores
//! ([`ImageResult`]). A metric of a run is the mean over its benchmarks of the metric on
//! each (as the tables of means report it). An interval resamples images with replacement
//! within each benchmark and label (so every resample keeps the benchmark's spliced share,
//! which detection AP depends on), recomputes the metric, and takes the 2.5th and 97.5th
//! percentiles. Differences between runs are *paired*: both runs are scored on the same
//! resampled images, which is why every run must list the same images in the same order.

use std::collections::BTreeMap;

use serde::Serialize;

use super::metrics::{detection_ap, HigherMeans};
use super::splice::ImageResult;
use crate::splice_bench::random::Rng;

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// p-mAP of the normalised-cut map (spliced images).
    NcutPMap,
    /// cIoU (better of the map and its inverse) of the normalised-cut map.
    NcutCiou,
    /// p-mAP of the mean-shift map.
    MeanShiftPMap,
    /// Detection AP of the mean dissimilarity `1 - A`.
    DetectionDissimilarity,
    /// Detection AP of the consistency score.
    DetectionConsistency,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 5] = [
        Metric::NcutPMap,
        Metric::NcutCiou,
        Metric::MeanShiftPMap,
        Metric::DetectionDissimilarity,
        Metric::DetectionConsistency,
    ];

    /// Its name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Metric::NcutPMap => "ncut p-mAP",
            Metric::NcutCiou => "ncut cIoU",
            Metric::MeanShiftPMap => "mean shift p-mAP",
            Metric::DetectionDissimilarity => "det. AP 1 - A",
            Metric::DetectionConsistency => "det. AP consistency",
        }
    }

    /// The metric on the images `draw` of `images` (indices may repeat); `None` when it is
    /// undefined there (no scored spliced image, or one class only).
    fn on(self, images: &[ImageResult], draw: &[usize]) -> Option<f64> {
        let mean = |value: fn(&ImageResult) -> Option<f64>| {
            let values: Vec<f64> = draw.iter().filter_map(|&i| value(&images[i])).collect();
            (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
        };
        let detection = |score: fn(&ImageResult) -> f64, higher| {
            let scores: Vec<f64> = draw.iter().map(|&i| score(&images[i])).collect();
            let labels: Vec<bool> = draw.iter().map(|&i| images[i].spliced).collect();
            detection_ap(&scores, &labels, higher).ok().map(|r| r.ap)
        };
        match self {
            Metric::NcutPMap => mean(|r| r.ncut_p_ap),
            Metric::NcutCiou => mean(|r| r.ncut_ciou),
            Metric::MeanShiftPMap => mean(|r| r.mean_shift_p_ap),
            Metric::DetectionDissimilarity => {
                detection(|r| r.mean_dissimilarity, HigherMeans::Spliced)
            }
            Metric::DetectionConsistency => detection(|r| r.consistency, HigherMeans::Authentic),
        }
    }
}

/// A point estimate and its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// The metric on the images as they are.
    pub estimate: f64,
    /// 2.5th percentile of the resamples.
    pub low: f64,
    /// 97.5th percentile of the resamples.
    pub high: f64,
}

/// One model's results: its name and its per-benchmark image lists.
#[derive(Debug, Clone)]
pub struct Run {
    /// The name in tables.
    pub name: String,
    /// One image list per benchmark, in the same benchmark order for every run.
    pub benchmarks: Vec<Vec<ImageResult>>,
}

/// The comparison: every run's metrics, and every run's difference from the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Resamples drawn.
    pub resamples: usize,
    /// The baseline run, if one was named.
    pub baseline: Option<String>,
    /// Per run, per metric.
    pub runs: BTreeMap<String, BTreeMap<Metric, Interval>>,
    /// Per run other than the baseline, per metric: run minus baseline.
    pub differences: BTreeMap<String, BTreeMap<Metric, Interval>>,
}

/// Why runs cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompareError {
    /// No run, or a run without benchmarks.
    #[error("nothing to compare: {0}")]
    Empty(String),
    /// The runs were not scored on the same images.
    #[error("{run} differs from {first} on benchmark {benchmark}: {reason}; evaluate every model on the same benchmark folders, in the same order")]
    Mismatch {
        /// The first run.
        first: String,
        /// The run that differs.
        run: String,
        /// The benchmark's position (0-based).
        benchmark: usize,
        /// What differs.
        reason: String,
    },
    /// The baseline is not one of the runs.
    #[error("the baseline {0} is not one of the runs")]
    UnknownBaseline(String),
}

/// The mean of `metric` over the benchmarks, each on its images `draws[k]`.
fn mean_over(metric: Metric, run: &Run, draws: &[Vec<usize>]) -> Option<f64> {
    let values: Option<Vec<f64>> = run
        .benchmarks
        .iter()
        .zip(draws)
        .map(|(images, draw)| metric.on(images, draw))
        .collect();
    let values = values?;
    Some(values.iter().sum::<f64>() / values.len() as f64)
}

/// One resample of every benchmark: indices drawn with replacement within each label.
fn resample(benchmarks: &[Vec<ImageResult>], rng: &mut Rng) -> Vec<Vec<usize>> {
    benchmarks
        .iter()
        .map(|images| {
            let mut draw = Vec::with_capacity(images.len());
            for label in [true, false] {
                let stratum: Vec<usize> = (0..images.len())
                    .filter(|&i| images[i].spliced == label)
                    .collect();
                draw.extend((0..stratum.len()).map(|_| stratum[rng.index(stratum.len())]));
            }
            draw
        })
        .collect()
}

/// The 2.5th and 97.5th percentiles (nearest rank) of `values`, around `estimate`.
fn interval(estimate: f64, mut values: Vec<f64>) -> Interval {
    if values.is_empty() {
        return Interval {
            estimate,
            low: f64::NAN,
            high: f64::NAN,
        };
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((q * (values.len() - 1) as f64).round()) as usize];
    Interval {
        estimate,
        low: at(0.025),
        high: at(0.975),
    }
}

fn check_same_images(runs: &[Run]) -> Result<(), CompareError> {
    let first = runs
        .first()
        .ok_or_else(|| CompareError::Empty("no run given".into()))?;
    for run in runs {
        let mismatch = |benchmark, reason: String| CompareError::Mismatch {
            first: first.name.clone(),
            run: run.name.clone(),
            benchmark,
            reason,
        };
        if run.benchmarks.is_empty() {
            return Err(CompareError::Empty(format!(
                "{} has no benchmark",
                run.name
            )));
        }
        if run.benchmarks.len() != first.benchmarks.len() {
            return Err(mismatch(
                0,
                format!(
                    "{} benchmarks against {}",
                    run.benchmarks.len(),
                    first.benchmarks.len()
                ),
            ));
        }
        for (k, (a, b)) in first.benchmarks.iter().zip(&run.benchmarks).enumerate() {
            if a.len() != b.len() {
                return Err(mismatch(
                    k,
                    format!("{} images against {}", b.len(), a.len()),
                ));
            }
            if let Some((x, y)) = a
                .iter()
                .zip(b)
                .find(|(x, y)| x.image != y.image || x.spliced != y.spliced)
            {
                return Err(mismatch(k, format!("{} where {} was", y.image, x.image)));
            }
        }
    }
    Ok(())
}

/// Every run's metrics and differences from `baseline`, with `resamples` paired bootstrap
/// resamples drawn from `seed`.
pub fn compare(
    runs: &[Run],
    baseline: Option<&str>,
    resamples: usize,
    seed: u64,
) -> Result<Comparison, CompareError> {
    check_same_images(runs)?;
    let base = match baseline {
        Some(name) => Some(
            runs.iter()
                .position(|r| r.name == name)
                .ok_or_else(|| CompareError::UnknownBaseline(name.to_string()))?,
        ),
        None => None,
    };
    let identity: Vec<Vec<usize>> = runs[0]
        .benchmarks
        .iter()
        .map(|images| (0..images.len()).collect())
        .collect();
    let mut rng = Rng::new(0xb007_57a9, &[seed]);
    let draws: Vec<Vec<Vec<usize>>> = (0..resamples)
        .map(|_| resample(&runs[0].benchmarks, &mut rng))
        .collect();
    let mut out = Comparison {
        resamples,
        baseline: baseline.map(str::to_string),
        runs: BTreeMap::new(),
        differences: BTreeMap::new(),
    };
    for metric in Metric::ALL {
        let estimates: Vec<Option<f64>> = runs
            .iter()
            .map(|r| mean_over(metric, r, &identity))
            .collect();
        let samples: Vec<Vec<Option<f64>>> = draws
            .iter()
            .map(|d| runs.iter().map(|r| mean_over(metric, r, d)).collect())
            .collect();
        for (i, run) in runs.iter().enumerate() {
            let Some(estimate) = estimates[i] else {
                continue;
            };
            let values = samples.iter().filter_map(|s| s[i]).collect();
            out.runs
                .entry(run.name.clone())
                .or_default()
                .insert(metric, interval(estimate, values));
            let Some(b) = base.filter(|&b| b != i) else {
                continue;
            };
            let Some(base_estimate) = estimates[b] else {
                continue;
            };
            let values = samples.iter().filter_map(|s| Some(s[i]? - s[b]?)).collect();
            out.differences
                .entry(run.name.clone())
                .or_default()
                .insert(metric, interval(estimate - base_estimate, values));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A benchmark of `n` spliced and `n` authentic images whose scores come from `f(i)`.
    fn bench(n: usize, f: impl Fn(usize) -> (f64, f64)) -> Vec<ImageResult> {
        (0..2 * n)
            .map(|i| {
                let spliced = i < n;
                let (p_ap, dissimilarity) = f(i);
                ImageResult {
                    image: format!("img-{i}.png"),
                    spliced,
                    consistency: -dissimilarity,
                    mean_dissimilarity: dissimilarity,
                    mean_shift_p_ap: spliced.then_some(p_ap),
                    ncut_p_ap: spliced.then_some(p_ap),
                    ncut_ciou: spliced.then_some(p_ap),
                }
            })
            .collect()
    }

    fn run(name: &str, benchmarks: Vec<Vec<ImageResult>>) -> Run {
        Run {
            name: name.into(),
            benchmarks,
        }
    }

    /// Scores that vary from image to image, deterministic.
    fn wobbly(i: usize) -> (f64, f64) {
        let x = ((i * 7919) % 101) as f64 / 101.0;
        (0.3 + 0.5 * x, x)
    }

    #[test]
    fn estimates_are_the_means_over_benchmarks_and_lie_in_their_intervals() {
        let a = bench(20, wobbly);
        let b = bench(20, |i| wobbly(i + 3));
        let c = compare(&[run("m", vec![a.clone(), b.clone()])], None, 500, 1).unwrap();
        let p = c.runs["m"][&Metric::NcutPMap];
        let mean = |v: &[ImageResult]| v.iter().filter_map(|r| r.ncut_p_ap).sum::<f64>() / 20.0;
        assert!((p.estimate - (mean(&a) + mean(&b)) / 2.0).abs() < 1e-12);
        for (metric, i) in &c.runs["m"] {
            assert!(
                i.low <= i.estimate && i.estimate <= i.high,
                "{metric:?} {i:?}"
            );
            assert!(
                i.low < i.high,
                "{metric:?}: the scores vary, so must the resamples"
            );
        }
    }

    #[test]
    fn a_model_against_itself_differs_by_exactly_zero() {
        let benches = vec![bench(15, wobbly)];
        let runs = [run("a", benches.clone()), run("b", benches)];
        let c = compare(&runs, Some("a"), 300, 2).unwrap();
        assert!(
            !c.differences.contains_key("a"),
            "no difference of the baseline itself"
        );
        for i in c.differences["b"].values() {
            assert_eq!((i.estimate, i.low, i.high), (0.0, 0.0, 0.0));
        }
    }

    #[test]
    fn a_model_better_on_every_image_has_a_difference_interval_above_zero() {
        let base = vec![bench(30, wobbly)];
        // 0.05 better localisation everywhere; detection separates perfectly.
        let better = vec![bench(30, |i| {
            let (p, _) = wobbly(i);
            (p + 0.05, if i < 30 { 2.0 } else { 0.0 })
        })];
        let c = compare(
            &[run("base", base), run("new", better)],
            Some("base"),
            400,
            3,
        )
        .unwrap();
        let d = &c.differences["new"];
        let p = d[&Metric::NcutPMap];
        assert!((p.estimate - 0.05).abs() < 1e-9 && p.low > 0.049, "{p:?}");
        let det = d[&Metric::DetectionDissimilarity];
        assert!(det.low > 0.0, "{det:?}");
        assert_eq!(c.runs["new"][&Metric::DetectionDissimilarity].estimate, 1.0);
    }

    #[test]
    fn fewer_images_give_wider_intervals() {
        let width = |n| {
            let c = compare(&[run("m", vec![bench(n, wobbly)])], None, 1000, 4).unwrap();
            let i = c.runs["m"][&Metric::NcutPMap];
            i.high - i.low
        };
        assert!(
            width(10) > 1.5 * width(80),
            "{} vs {}",
            width(10),
            width(80)
        );
    }

    #[test]
    fn resamples_keep_each_benchmarks_spliced_share() {
        let images = bench(7, wobbly);
        let mut rng = Rng::new(1, &[2]);
        for _ in 0..50 {
            let draw = &resample(std::slice::from_ref(&images), &mut rng)[0];
            assert_eq!(draw.iter().filter(|&&i| images[i].spliced).count(), 7);
            assert_eq!(draw.len(), 14);
        }
    }

    #[test]
    fn runs_on_other_images_or_unknown_baselines_are_refused() {
        let a = run("a", vec![bench(5, wobbly)]);
        let mut other = bench(5, wobbly);
        other[3].image = "elsewhere.png".into();
        let err = compare(&[a.clone(), run("b", vec![other])], None, 10, 0).unwrap_err();
        assert!(err.to_string().contains("elsewhere.png"), "{err}");
        let err = compare(&[a.clone(), run("c", vec![bench(6, wobbly)])], None, 10, 0);
        assert!(matches!(err, Err(CompareError::Mismatch { .. })));
        let err = compare(&[a.clone(), run("d", vec![])], None, 10, 0);
        assert!(matches!(err, Err(CompareError::Empty(_))), "{err:?}");
        assert_eq!(
            compare(&[a], Some("zzz"), 10, 0).unwrap_err(),
            CompareError::UnknownBaseline("zzz".into())
        );
        assert!(matches!(
            compare(&[], None, 10, 0),
            Err(CompareError::Empty(_))
        ));
    }
}
