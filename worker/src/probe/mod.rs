//! Linear probes on frozen image-tower features (the paper's Table 2): pooled trunk
//! features of the image tower, computed without gradients, classified by multinomial
//! logistic regression ([`linear`]) trained on the photos of one side of a seeded split
//! and measured on the others (crops of one photo never straddle the split).
//!
//! [`radial`]: classes are bins of a synthetic radial distortion's `k1`. [`exif`]: classes
//! are the common values of one EXIF tag, a probe per tag. [`splice`]: authentic versus
//! spliced images of a splice dataset.

pub mod exif;
pub mod linear;
pub mod radial;
pub mod splice;

use kernels::resnet::{patches_to_tensor, preprocess, ImageTower, NormMode};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tch::Tensor;

pub use linear::LogisticOptions;

/// What can stop a probe.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Inputs of the wrong shape or range (a bug in the caller, or too little data).
    #[error("probe input: {0}")]
    Input(String),
    /// The photo list could not be read.
    #[error(transparent)]
    Photos(#[from] dataloader::pack::PackError),
    /// The model failed.
    #[error(transparent)]
    Kernels(#[from] kernels::KernelsError),
    /// Not enough usable photos.
    #[error("{what}: {found} usable photos, need at least {need}; give more photos")]
    TooFew {
        /// Which probe.
        what: String,
        /// Usable photos.
        found: usize,
        /// Needed.
        need: usize,
    },
}

/// Settings shared by the probes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeOptions {
    /// Seed of the split, the crops and the distortions.
    pub seed: u64,
    /// Fraction of the photos held out for testing.
    pub test_fraction: f64,
    /// Crops per forward pass of the tower.
    pub batch: usize,
    /// The classifier's training.
    pub classifier: LogisticOptions,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            test_fraction: 0.3,
            batch: 16,
            classifier: LogisticOptions::default(),
        }
    }
}

/// One probe's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeResult {
    /// Class names, in label order.
    pub classes: Vec<String>,
    /// Training samples per class.
    pub train_counts: Vec<usize>,
    /// Test samples per class.
    pub test_counts: Vec<usize>,
    /// Photos on the training side / the test side.
    pub train_photos: usize,
    /// See `train_photos`.
    pub test_photos: usize,
    /// Test accuracy of the classifier.
    pub accuracy: f64,
    /// Test accuracy of always answering the training side's most frequent class.
    pub majority_baseline: f64,
}

/// Photos that could not be used, by reason.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Skips {
    /// Count per reason.
    pub by_reason: BTreeMap<String, usize>,
    /// The first few skipped files with their reason.
    pub examples: Vec<(PathBuf, String)>,
}

impl Skips {
    /// Records a skipped photo.
    pub fn add(&mut self, path: &std::path::Path, reason: &str, detail: String) {
        *self.by_reason.entry(reason.to_string()).or_default() += 1;
        tracing::warn!(path = %path.display(), reason, %detail, "skipping photo");
        if self.examples.len() < 10 {
            self.examples.push((path.to_path_buf(), detail));
        }
    }

    /// Total skipped.
    pub fn total(&self) -> usize {
        self.by_reason.values().sum()
    }
}

/// A small counter-based generator (SplitMix64): reproducible draws from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
}

/// Which of `photos` photos are held out for testing: a seeded shuffle, the first
/// `round(fraction * photos)` (at least one, and at least one left for training when there
/// are two or more).
pub fn split_photos(photos: usize, fraction: f64, seed: u64) -> Vec<bool> {
    let mut order: Vec<usize> = (0..photos).collect();
    let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(7));
    for i in (1..photos).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let n_test = ((fraction * photos as f64).round() as usize)
        .max(1)
        .min(photos.saturating_sub(1));
    let mut test = vec![false; photos];
    for &i in &order[..n_test] {
        test[i] = true;
    }
    test
}

/// Pooled trunk features `[N, D]` (float, CPU) of `n` square RGB crops of side `side`
/// (HWC bytes, back to back), in batches of `batch`, batch norms on running statistics,
/// without gradients.
pub fn tower_features(
    tower: &ImageTower,
    device: tch::Device,
    pixels: &[u8],
    n: usize,
    side: usize,
    batch: usize,
) -> Result<Tensor, ProbeError> {
    let per = side * side * 3;
    let batch = batch.max(1);
    let mut out = Vec::new();
    tch::no_grad(|| -> Result<(), ProbeError> {
        for start in (0..n).step_by(batch) {
            let m = batch.min(n - start);
            let chunk = pixels
                .get(start * per..(start + m) * per)
                .ok_or_else(|| ProbeError::Input(format!("{n} crops need {} bytes", n * per)))?;
            let xs = preprocess(&patches_to_tensor(chunk, m, side)?, device)?;
            out.push(
                tower
                    .features(&xs, NormMode::Running)?
                    .to_device(tch::Device::Cpu),
            );
        }
        Ok(())
    })?;
    if out.is_empty() {
        return Err(ProbeError::Input("no crops to embed".into()));
    }
    Ok(Tensor::cat(&out, 0))
}

/// Trains and tests a probe: `features` `[N, D]`, `labels[i]` in `0..classes.len()`,
/// `photo[i]` the photo sample `i` comes from (index into `test_photo`, which says which
/// photos are held out).
pub fn run_probe(
    features: &Tensor,
    labels: &[usize],
    photo: &[usize],
    test_photo: &[bool],
    classes: Vec<String>,
    opts: &LogisticOptions,
) -> Result<ProbeResult, ProbeError> {
    let k = classes.len();
    if labels.len() != photo.len() || features.size().first() != Some(&(labels.len() as i64)) {
        return Err(ProbeError::Input(format!(
            "{} labels, {} photo indices, features {:?}",
            labels.len(),
            photo.len(),
            features.size()
        )));
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    let (mut train_counts, mut test_counts) = (vec![0; k], vec![0; k]);
    let mut train_ph = std::collections::BTreeSet::new();
    let mut test_ph = std::collections::BTreeSet::new();
    for (i, (&l, &p)) in labels.iter().zip(photo).enumerate() {
        if l >= k || p >= test_photo.len() {
            return Err(ProbeError::Input(format!(
                "sample {i}: label {l} or photo {p} out of range"
            )));
        }
        if test_photo[p] {
            test.push(i as i64);
            test_counts[l] += 1;
            test_ph.insert(p);
        } else {
            train.push(i as i64);
            train_counts[l] += 1;
            train_ph.insert(p);
        }
    }
    if train.is_empty() || test.is_empty() {
        return Err(ProbeError::Input(format!(
            "{} training and {} test samples: both sides need some",
            train.len(),
            test.len()
        )));
    }
    let ys: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    let ys = Tensor::from_slice(&ys);
    let pick = |idx: &[i64]| {
        let idx = Tensor::from_slice(idx);
        (features.index_select(0, &idx), ys.index_select(0, &idx))
    };
    let (xtr, ytr) = pick(&train);
    let (xte, yte) = pick(&test);
    let model = linear::fit(&xtr, &ytr, k, opts)?;
    let accuracy = linear::accuracy(&model.predict(&xte), &yte);
    let majority_baseline = majority_baseline(&train_counts, &test_counts);
    Ok(ProbeResult {
        classes,
        train_counts,
        test_counts,
        train_photos: train_ph.len(),
        test_photos: test_ph.len(),
        accuracy,
        majority_baseline,
    })
}

/// Test accuracy of answering the most frequent training class (the lowest label among
/// ties) for every test sample.
pub fn majority_baseline(train_counts: &[usize], test_counts: &[usize]) -> f64 {
    let total: usize = test_counts.iter().sum();
    let Some(best) =
        (0..train_counts.len()).max_by_key(|&c| (train_counts[c], std::cmp::Reverse(c)))
    else {
        return 0.0;
    };
    if total == 0 {
        return 0.0;
    }
    test_counts[best] as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_holds_out_the_fraction_and_depends_on_the_seed() {
        let a = split_photos(100, 0.3, 1);
        assert_eq!(a.iter().filter(|&&t| t).count(), 30);
        assert_eq!(a, split_photos(100, 0.3, 1));
        assert_ne!(a, split_photos(100, 0.3, 2));
        let tiny = split_photos(2, 0.9, 0);
        assert_eq!(tiny.iter().filter(|&&t| t).count(), 1);
    }

    #[test]
    fn majority_baseline_uses_the_training_majority_on_the_test_side() {
        // Training majority is class 1 (5); on the test side class 1 has 2 of 8.
        assert_eq!(majority_baseline(&[3, 5, 1], &[4, 2, 2]), 0.25);
        // Ties go to the lower label.
        assert_eq!(majority_baseline(&[4, 4], &[1, 3]), 0.25);
    }

    #[test]
    fn run_probe_never_mixes_photos_across_the_split() {
        // Two samples per photo; features encode the label so the probe is exact.
        let photos = 10;
        let labels: Vec<usize> = (0..photos * 2).map(|i| (i / 2) % 2).collect();
        let photo: Vec<usize> = (0..photos * 2).map(|i| i / 2).collect();
        let xs: Vec<f32> = labels.iter().map(|&l| l as f32 * 4.0 - 2.0).collect();
        let x = Tensor::from_slice(&xs).view([(photos * 2) as i64, 1]);
        let test = split_photos(photos, 0.4, 5);
        let r = run_probe(
            &x,
            &labels,
            &photo,
            &test,
            vec!["a".into(), "b".into()],
            &LogisticOptions::default(),
        )
        .unwrap();
        assert_eq!(r.test_photos, 4);
        assert_eq!(r.train_photos, 6);
        assert_eq!(r.test_counts.iter().sum::<usize>(), 8);
        assert_eq!(r.accuracy, 1.0);
    }
}
