//! Why a dataset could not be read, each naming the dataset and the offending path.

use std::path::PathBuf;

use infra::{join_fields, FieldError};

/// Why a dataset listing or a mask could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The dataset config is not valid.
    #[error("invalid dataset config: {}", join_fields(.0))]
    Invalid(Vec<FieldError>),
    /// A folder the layout needs is not there.
    #[error("{dataset}: folder {path} not found; `path` must be {hint}")]
    MissingFolder {
        /// Dataset name.
        dataset: String,
        /// The folder looked for.
        path: PathBuf,
        /// What the layout expects `path` to be.
        hint: &'static str,
    },
    /// A folder could not be listed.
    #[error("{dataset}: cannot list {path}: {source}")]
    ReadDir {
        /// Dataset name.
        dataset: String,
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A spliced image has no ground-truth mask.
    #[error(
        "{dataset}: spliced image {image} has no mask (expected {expected}); restore the \
         mask, or set on_missing_mask = \"skip\" to leave such images out (they are counted)"
    )]
    MissingMask {
        /// Dataset name.
        dataset: String,
        /// The image.
        image: PathBuf,
        /// Where its mask should be.
        expected: PathBuf,
    },
    /// The layout's folders exist but hold no image.
    #[error("{dataset}: no images found under {path}; `path` must be {hint}")]
    NoImages {
        /// Dataset name.
        dataset: String,
        /// The dataset root.
        path: PathBuf,
        /// What the layout expects `path` to be.
        hint: &'static str,
    },
    /// The labels file of a generic dataset could not be read.
    #[error("cannot read labels file {path}: {source}")]
    ReadLabels {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line of the labels file of a generic dataset is wrong.
    #[error("{path}:{line}: {reason}")]
    Labels {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// A mask file could not be opened.
    #[error("cannot open mask {path}: {source}")]
    MaskRead {
        /// The mask.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A mask file is not a decodable image.
    #[error("cannot decode mask {path}: {source}")]
    MaskDecode {
        /// The mask.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },
    /// A mask's size differs from its image's, in a layout whose masks must match.
    #[error(
        "mask {path} is {mask_width}x{mask_height} but its image is {width}x{height}; this \
         layout's masks must have their image's size"
    )]
    MaskSize {
        /// The mask.
        path: PathBuf,
        /// Mask width.
        mask_width: u32,
        /// Mask height.
        mask_height: u32,
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
    },
}
