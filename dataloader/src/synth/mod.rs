//! Photos from simulated cameras, for tests and for runs without a real photo folder:
//! procedural scenes processed by a few camera pipelines (JPEG quantisation tables, chroma
//! subsampling, noise, sharpening, gamma), each file carrying EXIF naming its camera.

use std::path::{Path, PathBuf};

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Number of photos.
    pub count: usize,
    /// Width and height of each photo in pixels.
    pub width: u32,
    pub height: u32,
    /// Seed: the same options give byte-identical files.
    pub seed: u64,
}

/// Writes `opts.count` JPEG photos into `out_dir` and returns their paths.
pub fn generate(_out_dir: &Path, _opts: &SynthOptions) -> Result<Vec<PathBuf>, SynthError> {
    Err(SynthError::InvalidOption("not implemented yet".into()))
}
