//! Errors of the model crate: bad configuration, weights that do not fit, bad inputs.

use std::path::PathBuf;

use infra::FieldError;

/// Everything that can go wrong building, loading or running the model.
#[derive(Debug, thiserror::Error)]
pub enum KernelsError {
    /// The configuration is invalid (the dotted path of the field, e.g. `text.num_heads`,
    /// and why).
    #[error("invalid model config: {0}")]
    Config(#[from] FieldError),
    /// A weights file could not be read.
    #[error("cannot read weights {path}: {source}")]
    ReadWeights {
        /// The file.
        path: PathBuf,
        /// What libtorch reported.
        source: tch::TchError,
    },
    /// A weights file lacks parameters the model needs.
    #[error(
        "weights {path} lack {count} parameter(s) the model needs, e.g. {examples:?}; \
         check the checkpoint matches the model config (tower kind, depth, widths)"
    )]
    MissingWeights {
        /// The file.
        path: PathBuf,
        /// How many are missing.
        count: usize,
        /// The first few missing names.
        examples: Vec<String>,
    },
    /// A parameter in the weights file has another shape than the model's.
    #[error("weights {path}: `{name}` has shape {found:?}, the model expects {expected:?}")]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// Parameter name.
        name: String,
        /// Shape in the file.
        found: Vec<i64>,
        /// Shape in the model.
        expected: Vec<i64>,
    },
    /// An input tensor or buffer has the wrong shape or length.
    #[error("bad input `{what}`: {reason}")]
    Input {
        /// Which input.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}
