//! Real versus spliced (the paper's Table 2, on CASIA): one crop per image of a splice
//! dataset (any layout of `eval::datasets`), either the whole image resized to
//! `side` x `side` (the default, as for CASIA's small images) or its centre `side` crop,
//! embedded by the frozen tower; two classes. Images are grouped by file stem for the
//! split, so the PNG and JPEG copies of one splice-benchmark image never straddle it.

use std::collections::BTreeMap;

use image::imageops::FilterType;
use kernels::resnet::ImageTower;

use super::{
    run_probe, split_photos, tower_features, ProbeError, ProbeOptions, ProbeResult, Skips,
};
use crate::eval::datasets::{Label, Listing};

/// How an image becomes one crop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum CropMode {
    /// The whole image resized to the crop (aspect ratio not kept).
    Resize,
    /// The centre of the image at full resolution (smaller images are skipped).
    Center,
}

/// Settings of the real-vs-spliced probe.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpliceProbeParams {
    /// Side of the crop (the paper: 224).
    pub side: u32,
    /// How it is taken.
    pub mode: CropMode,
}

impl Default for SpliceProbeParams {
    fn default() -> Self {
        Self {
            side: 224,
            mode: CropMode::Resize,
        }
    }
}

/// The probe's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpliceProbeReport {
    /// Settings.
    pub params: SpliceProbeParams,
    /// The dataset's name.
    pub dataset: String,
    /// Images embedded.
    pub images_used: usize,
    /// Groups of images (file stems) the split is over.
    pub groups: usize,
    /// Feature dimension of the tower.
    pub feature_dim: i64,
    /// Images skipped, by reason.
    pub skipped: Skips,
    /// The probe (classes `authentic`, `spliced`).
    pub probe: ProbeResult,
}

/// The crop of `img` per `params`, or why there is none.
fn crop(img: &image::RgbImage, params: &SpliceProbeParams) -> Result<Vec<u8>, String> {
    let side = params.side;
    match params.mode {
        CropMode::Resize => {
            Ok(image::imageops::resize(img, side, side, FilterType::Triangle).into_raw())
        }
        CropMode::Center => {
            if img.width() < side || img.height() < side {
                return Err(format!(
                    "{}x{}, needs {side}x{side}",
                    img.width(),
                    img.height()
                ));
            }
            let (x, y) = ((img.width() - side) / 2, (img.height() - side) / 2);
            Ok(image::imageops::crop_imm(img, x, y, side, side)
                .to_image()
                .into_raw())
        }
    }
}

/// Runs the probe over every image of `listing`.
pub fn splice_probe(
    tower: &ImageTower,
    device: tch::Device,
    listing: &Listing,
    params: &SpliceProbeParams,
    opts: &ProbeOptions,
) -> Result<SpliceProbeReport, ProbeError> {
    if params.side < 32 {
        return Err(ProbeError::Input(format!(
            "crop side {} is below 32",
            params.side
        )));
    }
    let side = params.side as usize;
    let batch = opts.batch.max(1);
    let mut skipped = Skips::default();
    let (mut pixels, mut labels, mut group_of) = (Vec::new(), Vec::new(), Vec::new());
    let mut feats = Vec::new();
    let mut groups: BTreeMap<String, usize> = BTreeMap::new();
    for (i, entry) in listing.entries.iter().enumerate() {
        let img = match image::open(&entry.image) {
            Ok(img) => img.into_rgb8(),
            Err(e) => {
                skipped.add(&entry.image, "unreadable", e.to_string());
                continue;
            }
        };
        match crop(&img, params) {
            Ok(bytes) => pixels.extend(bytes),
            Err(detail) => {
                skipped.add(&entry.image, "too_small", detail);
                continue;
            }
        }
        let stem = entry
            .image
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let next = groups.len();
        group_of.push(*groups.entry(stem).or_insert(next));
        labels.push(usize::from(entry.label == Label::Spliced));
        // Embedded a batch at a time: only one batch of crops is held in memory.
        if pixels.len() >= batch * side * side * 3 {
            feats.push(tower_features(tower, device, &pixels, batch, side, batch)?);
            pixels.clear();
        }
        if (i + 1) % 200 == 0 {
            tracing::info!(
                images = i + 1,
                of = listing.entries.len(),
                "real-vs-spliced probe: embedding"
            );
        }
    }
    if !pixels.is_empty() {
        let n = pixels.len() / (side * side * 3);
        feats.push(tower_features(tower, device, &pixels, n, side, batch)?);
    }
    let used = labels.len();
    if groups.len() < 2 {
        return Err(ProbeError::TooFew {
            what: format!("real-vs-spliced probe on {}", listing.name),
            found: groups.len(),
            need: 2,
        });
    }
    let features = tch::Tensor::cat(&feats, 0);
    let test = split_photos(groups.len(), opts.test_fraction, opts.seed);
    let classes = vec!["authentic".to_string(), "spliced".to_string()];
    let probe = run_probe(
        &features,
        &labels,
        &group_of,
        &test,
        classes,
        &opts.classifier,
    )?;
    Ok(SpliceProbeReport {
        params: params.clone(),
        dataset: listing.name.clone(),
        images_used: used,
        groups: groups.len(),
        feature_dim: features.size()[1],
        skipped,
        probe,
    })
}
