//! Zero-shot splice detection and localisation with the image tower alone: patches on a
//! grid over the full-resolution photo ([`grid`]), their embeddings, and the analysis of
//! their affinities ([`analysis`]); [`output`] writes the maps, the mask and the record;
//! [`report`] the HTML page of a run.
//!
//! A photo from one camera gives patch embeddings that agree everywhere; a region pasted
//! from another camera's photo disagrees with the rest. Nothing is learned about splices:
//! the model only ever saw authentic photos and their EXIF.

pub mod analysis;
pub mod bench;
pub mod grid;
pub mod output;
pub mod report;

use std::path::{Path, PathBuf};

use image::RgbImage;
use kernels::joint::JointModel;
use kernels::resnet::{patches_to_tensor, preprocess};
use tch::Tensor;

pub use analysis::{analyse, Analysis, AnalysisParams};
pub use grid::PatchGrid;

/// Why a photo could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The photo is smaller than one patch.
    #[error(
        "the photo is {width}x{height}, smaller than one {patch}x{patch} patch: nothing to compare"
    )]
    TooSmall {
        /// Height.
        height: u32,
        /// Width.
        width: u32,
        /// Patch side.
        patch: u32,
    },
    /// The file cannot be read or decoded.
    #[error("cannot read the image {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The photo has more pixels than allowed.
    #[error("{path} has {pixels} pixels, more than the limit of {limit}: raise --max-megapixels if the machine has the memory (about 10 bytes per pixel)")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its pixel count.
        pixels: u64,
        /// The limit.
        limit: u64,
    },
    /// A parameter is out of range.
    #[error("invalid detection parameter: {0}")]
    Params(String),
    /// The model failed.
    #[error(transparent)]
    Model(#[from] kernels::KernelsError),
    /// Writing an output failed.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// How patches are taken and embedded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectParams {
    /// Patch side in pixels (the model's training patch size; the paper's 124).
    pub patch: u32,
    /// About this many patches along the longest side (paper 25).
    pub per_side: u32,
    /// Patches per forward pass.
    pub batch: usize,
    /// Largest photo accepted, in pixels.
    pub max_pixels: u64,
    /// Most patches analysed per photo (the analysis is cubic in patches): a larger photo
    /// gets a wider stride ([`PatchGrid::budgeted`]).
    pub max_patches: usize,
    /// The analysis after the embeddings.
    pub analysis: AnalysisParams,
}

impl Default for DetectParams {
    fn default() -> Self {
        Self {
            patch: 124,
            per_side: 25,
            batch: 64,
            max_pixels: 200_000_000,
            max_patches: 4096,
            analysis: AnalysisParams::default(),
        }
    }
}

impl DetectParams {
    /// The defaults for `model` (trained on `patch` px patches) at about `per_side`
    /// patches along the longest side: the model's own temperature `1 / logit_scale`.
    pub fn for_model(model: &JointModel, patch: u32, per_side: u32) -> DetectParams {
        DetectParams {
            patch,
            per_side,
            analysis: AnalysisParams {
                tau: 1.0 / model.logit_scale.value().double_value(&[]),
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

/// Decodes a photo as RGB, refusing ones over `max_pixels` before decoding them.
pub fn load_photo(path: &Path, max_pixels: u64) -> Result<RgbImage, DetectError> {
    let unreadable = |reason: String| DetectError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let reader = image::ImageReader::open(path)
        .map_err(|e| unreadable(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| unreadable(e.to_string()))?;
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| unreadable(e.to_string()))?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(DetectError::TooLarge {
            path: path.to_path_buf(),
            pixels,
            limit: max_pixels,
        });
    }
    let mut reader = image::ImageReader::open(path)
        .map_err(|e| unreadable(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| unreadable(e.to_string()))?;
    reader.no_limits();
    Ok(reader
        .decode()
        .map_err(|e| unreadable(e.to_string()))?
        .into_rgb8())
}

/// L2-normalised embeddings `[N, D]` of every patch of `grid` in `photo`, in batches, with
/// the image tower in evaluation mode.
pub fn embed_patches(
    model: &JointModel,
    photo: &RgbImage,
    grid: &PatchGrid,
    batch: usize,
    device: tch::Device,
) -> Result<Tensor, DetectError> {
    let side = grid.patch as usize;
    let width = photo.width() as usize;
    let raw = photo.as_raw();
    let mut out = Vec::new();
    let indices: Vec<usize> = (0..grid.len()).collect();
    for chunk in indices.chunks(batch.max(1)) {
        let mut pixels = Vec::with_capacity(chunk.len() * side * side * 3);
        for &i in chunk {
            let (y, x) = grid.origin(i);
            for row in y as usize..y as usize + side {
                let start = (row * width + x as usize) * 3;
                pixels.extend_from_slice(&raw[start..start + side * 3]);
            }
        }
        let t = patches_to_tensor(&pixels, chunk.len(), side)?;
        let images = preprocess(&t, device)?;
        out.push(tch::no_grad(|| model.embed_images(&images, false)).to_device(tch::Device::Cpu));
    }
    Ok(Tensor::cat(&out, 0))
}

/// Grid, embeddings and analysis of one photo.
pub fn detect(
    model: &JointModel,
    photo: &RgbImage,
    params: &DetectParams,
    device: tch::Device,
) -> Result<(PatchGrid, Analysis), DetectError> {
    let grid = PatchGrid::budgeted(
        photo.height(),
        photo.width(),
        params.patch,
        params.per_side,
        params.max_patches,
    )?;
    if grid.budgeted {
        tracing::info!(
            patches = grid.len(),
            stride = grid.stride,
            max_patches = params.max_patches,
            "large photo: patches spread past a patch side to stay within the patch budget"
        );
    }
    let embeddings = embed_patches(model, photo, &grid, params.batch, device)?;
    let analysis = analyse(&embeddings, &grid, &params.analysis)?;
    Ok((grid, analysis))
}
