//! The cross-camera splice benchmark (`worker splice-bench make`): images made from real
//! photos by pasting a region of a photo from one camera model into a photo from another,
//! with exact masks, and authentic controls, for measuring zero-shot splice detection and
//! localisation (regions whose camera disagrees with the rest of the photo). Made from the
//! held-out side of `dataloader split`, its cameras were never seen in training.
//!
//! How the parts fit together:
//! - [`scan`] lists the photos (a folder or a file list, as `dataloader pack` takes),
//!   reads each one's camera model from EXIF Make + Model and its size, and skips and
//!   counts what cannot be used.
//! - [`plan`] decides every image as a pure function of the photos and the options:
//!   `count` cross-camera splices (label `spliced`), and as many authentic controls,
//!   same-camera pastes and untouched photos; [`region`] draws the shapes and their pixel
//!   masks; [`random`] is the seeded randomness both use.
//! - [`composite`] decodes, pastes pixel for pixel (no resampling, no blending) and
//!   encodes each image twice, lossless PNG and JPEG at one quality; [`render`] does that
//!   for every image on the rayon pool; [`write`] lays out the folder (`images/`,
//!   `masks/`, `labels.csv`, `bench.json`).
//!
//! The benchmark is a function of the photos (their paths, sorted) and the options: the
//! same input and seed give the same files.

pub mod composite;
pub mod plan;
pub mod random;
pub mod region;
pub mod render;
pub mod scan;
pub mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use dataloader::pack::{Input, PackError};
use serde::Serialize;

use plan::{Kind, PlanError, PlanOptions, Region};
use render::RenderError;
use write::{LabelRow, WriteError};

/// Version of the folder layout and `bench.json`.
pub const FORMAT_VERSION: u32 = 1;

/// What to make.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchOptions {
    /// Cross-camera (spliced) images; as many authentic ones are made. Default 50.
    pub count: usize,
    /// Seed of every random choice. Default 0.
    pub seed: u64,
    /// Quality of the JPEG variants, 1 to 100. Default 90.
    pub jpeg_quality: u8,
    /// Smallest pasted region, as a share of the target photo's area. Default 0.05.
    pub min_area: f64,
    /// Largest pasted region, as a share of the target photo's area. Default 0.25.
    pub max_area: f64,
    /// Replace the benchmark in a folder that already holds one. Default false.
    #[serde(skip)]
    pub overwrite: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            count: 50,
            seed: 0,
            jpeg_quality: 90,
            min_area: 0.05,
            max_area: 0.25,
            overwrite: false,
        }
    }
}

impl BenchOptions {
    /// Checks the options; the error names the field.
    pub fn validate(&self) -> Result<(), SpliceBenchError> {
        let bad = |field: &'static str, reason: String| {
            Err(SpliceBenchError::BadOption { field, reason })
        };
        if self.count == 0 {
            return bad("count", "must be at least 1".into());
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return bad(
                "jpeg_quality",
                format!("{} is not in 1..=100", self.jpeg_quality),
            );
        }
        let (lo, hi) = (self.min_area, self.max_area);
        if !(lo > 0.0 && lo <= hi && hi < 1.0) {
            return bad(
                "min_area/max_area",
                format!(
                    "{lo}/{hi}: need 0 < min_area <= max_area < 1 (for instance 0.05 and 0.25)"
                ),
            );
        }
        Ok(())
    }
}

/// Why a benchmark cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum SpliceBenchError {
    /// An option is out of range.
    #[error("{field}: {reason}")]
    BadOption {
        /// The option.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The input cannot be listed.
    #[error(transparent)]
    Input(#[from] PackError),
    /// Fewer than two camera models among the usable photos.
    #[error("{models} camera model(s) among the {photos} usable photo(s) of {input} (skipped photos by reason: {skipped:?}): cross-camera splices need usable photos (JPEG, EXIF naming Make and Model) of at least 2 camera models; give a folder or file list with photos of more cameras")]
    TooFewCameras {
        /// The input.
        input: String,
        /// Usable photos.
        photos: usize,
        /// Distinct camera models among them.
        models: usize,
        /// Photos skipped, by reason.
        skipped: BTreeMap<String, u64>,
    },
    /// Making or writing an image failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Writing the folder failed.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// How many images of each kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Cross-camera pastes (label `spliced`).
    pub cross_camera: usize,
    /// Same-camera pastes (label `authentic`).
    pub same_camera: usize,
    /// Untouched photos (label `authentic`).
    pub untouched: usize,
    /// Image files (two variants of each image).
    pub image_files: usize,
    /// Mask files (one per paste).
    pub mask_files: usize,
}

/// The photos behind a benchmark.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PhotoCounts {
    /// Photo files listed.
    pub listed: usize,
    /// Usable ones (camera model known, decodable, large enough).
    pub usable: usize,
    /// Distinct camera models among the usable ones.
    pub camera_models: usize,
}

/// One image's provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageRecord {
    /// File name without extension.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// `spliced` or `authentic`.
    pub label: &'static str,
    /// The photo it is made from.
    pub target: String,
    /// That photo's camera model.
    pub target_camera: String,
    /// The photo the pasted region comes from.
    pub source: Option<String>,
    /// That photo's camera model.
    pub source_camera: Option<String>,
    /// The region (shape, box, where it was cut and pasted).
    pub region: Option<Region>,
    /// Share of the image's pixels that were pasted.
    pub mask_share: Option<f64>,
}

/// What was made: the content of `bench.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// The input.
    pub input: String,
    /// The options.
    pub arguments: BenchOptions,
    /// How the variants are encoded.
    pub encoding: BTreeMap<&'static str, String>,
    /// The photos.
    pub photos: PhotoCounts,
    /// Photos skipped, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Images by kind, and files.
    pub counts: Counts,
    /// Every image, by name.
    pub images: Vec<ImageRecord>,
}

/// Makes the benchmark of `input` in the folder `out` (see the module documentation and
/// [`write`] for the layout). `out` must be missing or empty unless `opts.overwrite`.
pub fn make(
    input: &Input,
    out: &Path,
    opts: &BenchOptions,
) -> Result<BenchReport, SpliceBenchError> {
    opts.validate()?;
    write::check_free(out, opts.overwrite)?;
    let mut found = scan::scan(input)?;
    let plan_opts = PlanOptions {
        count: opts.count,
        seed: opts.seed,
        min_area: opts.min_area,
        max_area: opts.max_area,
    };
    let items = loop {
        let items = plan::plan(&found.infos(), &plan_opts).map_err(|e| match e {
            PlanError::TooFewCameras { photos, models } => SpliceBenchError::TooFewCameras {
                input: input.describe(),
                photos,
                models,
                skipped: found.skipped.clone(),
            },
        })?;
        let used: BTreeSet<usize> = items
            .iter()
            .flat_map(|i| std::iter::once(i.target).chain(i.paste.as_ref().map(|p| p.source)))
            .collect();
        if !scan::drop_undecodable(&mut found, &used) {
            break items;
        }
    };
    tracing::info!(
        photos = found.photos.len(),
        camera_models = found.camera_models(),
        images = items.len(),
        "making the splice benchmark"
    );
    write::prepare(out, opts.overwrite)?;
    let rendered = render::render_all(&items, &found.photos, out, opts.jpeg_quality)?;

    let photos = &found.photos;
    let camera = |i: usize| photos[i].info.camera.clone();
    let mut rows = Vec::with_capacity(2 * items.len());
    let mut records = Vec::with_capacity(items.len());
    let mut counts = Counts::default();
    for (item, done) in items.iter().zip(&rendered) {
        let mask = item
            .paste
            .as_ref()
            .map(|_| format!("{}/{}.png", write::MASKS_DIR, item.name));
        let source_camera = item.paste.as_ref().map(|p| camera(p.source));
        for (ext, quality) in [("png", None), ("jpg", Some(opts.jpeg_quality))] {
            rows.push(LabelRow {
                image: format!("{}/{}.{ext}", write::IMAGES_DIR, item.name),
                mask: mask.clone(),
                kind: item.kind,
                target_camera: camera(item.target),
                source_camera: source_camera.clone(),
                quality,
            });
        }
        *match item.kind {
            Kind::CrossCamera => &mut counts.cross_camera,
            Kind::SameCamera => &mut counts.same_camera,
            Kind::Untouched => &mut counts.untouched,
        } += 1;
        counts.image_files += 2;
        counts.mask_files += usize::from(mask.is_some());
        records.push(ImageRecord {
            name: item.name.clone(),
            kind: item.kind,
            label: item.kind.label(),
            target: photos[item.target].path.display().to_string(),
            target_camera: camera(item.target),
            source: item
                .paste
                .as_ref()
                .map(|p| photos[p.source].path.display().to_string()),
            source_camera,
            region: item.paste.as_ref().map(|p| p.region.clone()),
            mask_share: done.mask_share,
        });
    }
    let report = BenchReport {
        format: FORMAT_VERSION,
        input: input.describe(),
        arguments: opts.clone(),
        encoding: BTreeMap::from([
            ("png", "8-bit RGB, lossless".to_string()),
            (
                "jpeg",
                format!(
                    "baseline, quality {}, 4:2:0 chroma subsampling, IJG tables (jpeg-encoder), no metadata",
                    opts.jpeg_quality
                ),
            ),
        ]),
        photos: PhotoCounts {
            listed: found.listed,
            usable: found.photos.len(),
            camera_models: found.camera_models(),
        },
        skipped: found.skipped.clone(),
        counts,
        images: records,
    };
    write::file(
        &out.join(write::LABELS_FILE),
        write::labels_csv(&rows).as_bytes(),
    )?;
    let json = serde_json::to_string_pretty(&report).map_err(|e| WriteError::Io {
        path: out.join(write::BENCH_FILE),
        reason: e.to_string(),
    })?;
    write::file(&out.join(write::BENCH_FILE), json.as_bytes())?;
    Ok(report)
}
