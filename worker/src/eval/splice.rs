//! Zero-shot splice evaluation of a checkpoint on a splice dataset ([`super::datasets`]):
//! every image goes through [`crate::detect`], the mean-shift and normalised-cut maps are
//! scored against the masks of the spliced images (p-mAP, cIoU: [`super::metrics`]), and the
//! detection scores of all images give detection AP (spliced = positive). Chance level:
//! the same analysis on random embeddings of the same patch grid (a model that knows
//! nothing), scored the same way; detection AP at chance is the spliced share.

use std::time::Instant;

use kernels::joint::JointModel;
use serde::Serialize;

use super::datasets::{Label, Listing};
use super::metrics::{
    detection_ap, DetectionReport, HigherMeans, LocalisationReport, LocalisationSummary,
};
use crate::detect::output::{heatmap_jpeg, map_pixels};
use crate::detect::{self, analysis::analyse, DetectParams};

/// Spliced images whose heat maps go with the report (to the dashboard).
const EXAMPLES: usize = 4;
/// Their longest side, in pixels.
const EXAMPLE_SIDE: u32 = 320;

/// `n` random unit vectors (the embedding size does not matter to chance), seeded by
/// `seed` and independent of libtorch's global generator.
fn random_embeddings(n: usize, seed: u64) -> tch::Tensor {
    const DIM: usize = 64;
    let mut rng = crate::splice_bench::random::Rng::new(0xc4a7_ce00, &[seed]);
    let values: Vec<f32> = (0..n * DIM)
        .map(|_| {
            // Box-Muller: a standard normal from two uniforms.
            let (u, v) = (rng.unit().max(f64::EPSILON), rng.unit());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect();
    let e = tch::Tensor::from_slice(&values).view([n as i64, DIM as i64]);
    &e / e.norm_scalaropt_dim(2, [1], true)
}

/// The results on one dataset.
#[derive(Debug, Clone, Serialize)]
pub struct SpliceReport {
    /// The dataset's name.
    pub dataset: String,
    /// Heat maps (normalised cut) over the first few spliced images: (file name, JPEG).
    #[serde(skip)]
    pub examples: Vec<(String, Vec<u8>)>,
    /// Images analysed, by label.
    pub authentic: u64,
    /// Images analysed, by label.
    pub spliced: u64,
    /// Images that could not be analysed (unreadable, too small, a bad mask), with why.
    pub failed: Vec<(String, String)>,
    /// Files the dataset reader left out, by reason.
    pub skipped_by_reader: std::collections::BTreeMap<String, usize>,
    /// Localisation with the mean-shift map.
    pub mean_shift: LocalisationReport,
    /// Localisation with the normalised-cut map.
    pub ncut: LocalisationReport,
    /// Chance: the mean-shift map of random embeddings.
    pub chance_mean_shift: LocalisationReport,
    /// Chance: the normalised-cut map of random embeddings.
    pub chance_ncut: LocalisationReport,
    /// Detection AP of the consistency score (`None` without both classes).
    pub detection_consistency: Option<DetectionReport>,
    /// Detection AP of the reference code's mean dissimilarity.
    pub detection_mean_dissimilarity: Option<DetectionReport>,
    /// Seconds per image, embeddings included.
    pub seconds_per_image: f64,
    /// Every analysed image's scores, in dataset order: what intervals over images are
    /// drawn from (`worker eval compare`).
    pub images: Vec<ImageResult>,
}

/// One analysed image's scores.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ImageResult {
    /// The image's path as the dataset lists it.
    pub image: String,
    /// Its label.
    pub spliced: bool,
    /// The consistency score (higher = authentic).
    pub consistency: f64,
    /// The mean dissimilarity `mean(1 - A)` (higher = spliced).
    pub mean_dissimilarity: f64,
    /// Localisation of a spliced image (absent for authentic ones and masks that cannot
    /// be scored): the mean-shift map's better pixel AP of the map and its inverse.
    pub mean_shift_p_ap: Option<f64>,
    /// The same for the normalised-cut map.
    pub ncut_p_ap: Option<f64>,
    /// The normalised-cut map's better cIoU of the map and its inverse.
    pub ncut_ciou: Option<f64>,
}

/// Evaluates `model` on every image of `listing` (the first `limit` if given).
pub fn evaluate(
    model: &JointModel,
    device: tch::Device,
    listing: &Listing,
    params: &DetectParams,
    limit: Option<usize>,
) -> SpliceReport {
    let t0 = Instant::now();
    let [mut ms, mut nc, mut chance_ms, mut chance_nc] =
        std::array::from_fn(|_| LocalisationSummary::default());
    let (mut consistency, mut dissimilarity, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    let mut failed = Vec::new();
    let mut examples = Vec::new();
    let mut images = Vec::new();
    let entries = &listing.entries[..limit.unwrap_or(usize::MAX).min(listing.entries.len())];
    for (i, entry) in entries.iter().enumerate() {
        let result = (|| -> Result<(), String> {
            let photo =
                detect::load_photo(&entry.image, params.max_pixels).map_err(|e| e.to_string())?;
            let (w, h) = (photo.width(), photo.height());
            let (grid, a) =
                detect::detect(model, &photo, params, device).map_err(|e| e.to_string())?;
            let mut record = ImageResult {
                image: entry.image.display().to_string(),
                spliced: entry.label == Label::Spliced,
                consistency: a.consistency,
                mean_dissimilarity: a.mean_dissimilarity,
                mean_shift_p_ap: None,
                ncut_p_ap: None,
                ncut_ciou: None,
            };
            if record.spliced {
                let mask = entry.mask_at(w, h).map_err(|e| e.to_string())?;
                let random = random_embeddings(grid.len(), i as u64);
                let r = analyse(&random, &grid, &params.analysis).map_err(|e| e.to_string())?;
                if examples.len() < EXAMPLES {
                    let map = map_pixels(&a, &a.ncut_map);
                    match heatmap_jpeg(&photo, &map, EXAMPLE_SIDE) {
                        Ok(jpeg) => {
                            let name = entry.image.file_name().map_or_else(
                                || format!("image-{i}"),
                                |n| n.to_string_lossy().into_owned(),
                            );
                            examples.push((name, jpeg));
                        }
                        Err(e) => tracing::warn!(error = %e, "heat map not encoded"),
                    }
                }
                let score = |summary: &mut LocalisationSummary,
                             analysis: &detect::Analysis,
                             map: &tch::Tensor| {
                    summary
                        .add(&map_pixels(analysis, map), &mask, w as usize, h as usize)
                        .map_err(|e| e.to_string())
                };
                let ms_scores = score(&mut ms, &a, &a.mean_shift_map)?;
                let nc_scores = score(&mut nc, &a, &a.ncut_map)?;
                score(&mut chance_ms, &r, &r.mean_shift_map)?;
                score(&mut chance_nc, &r, &r.ncut_map)?;
                record.mean_shift_p_ap = ms_scores.map(|s| s.permuted_ap());
                record.ncut_p_ap = nc_scores.as_ref().map(|s| s.permuted_ap());
                record.ncut_ciou = nc_scores.map(|s| s.ciou_either());
            }
            consistency.push(a.consistency);
            dissimilarity.push(a.mean_dissimilarity);
            labels.push(record.spliced);
            images.push(record);
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(image = %entry.image.display(), error = %e, "not evaluated");
            failed.push((entry.image.display().to_string(), e));
        }
        if (i + 1) % 10 == 0 || i + 1 == entries.len() {
            tracing::info!(done = i + 1, of = entries.len(), dataset = %listing.name, "splice evaluation");
        }
    }
    let spliced = labels.iter().filter(|&&s| s).count() as u64;
    SpliceReport {
        dataset: listing.name.clone(),
        examples,
        authentic: labels.len() as u64 - spliced,
        spliced,
        failed,
        skipped_by_reader: listing
            .skipped_by_reason()
            .into_iter()
            .map(|(k, v)| (format!("{k:?}"), v))
            .collect(),
        mean_shift: ms.report(),
        ncut: nc.report(),
        chance_mean_shift: chance_ms.report(),
        chance_ncut: chance_nc.report(),
        detection_consistency: detection_ap(&consistency, &labels, HigherMeans::Authentic).ok(),
        detection_mean_dissimilarity: detection_ap(&dissimilarity, &labels, HigherMeans::Spliced)
            .ok(),
        seconds_per_image: t0.elapsed().as_secs_f64() / entries.len().max(1) as f64,
        images,
    }
}
