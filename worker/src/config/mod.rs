//! The training configuration: a TOML file read into [`TrainConfig`] (unknown fields are
//! rejected), checked by [`TrainConfig::validate`] into a [`Config`] whose errors name the
//! offending field path and the reason.
//!
//! Sections: `[data]` (dataset and how it is read), `[model]` (towers, pooling,
//! temperature, objective), `[optim]` (AdamW and the learning-rate schedule), `[train]`
//! (batch, length, precision, device), `[checkpoint]` and `[logging]`. [`digest`] gives
//! the stable digest of the fields that change what training computes; [`schedule`] the
//! learning rate at each step. `configs/paper.toml` and `configs/cpu-small.toml` are the
//! shipped examples.

pub mod digest;
pub mod schedule;
mod validate;

use std::path::{Path, PathBuf};

use dataloader::exif::TextFormat;
use serde::{Deserialize, Serialize};

pub use digest::ConfigDigest;
pub use schedule::LrSchedule;
pub use validate::{Device, FieldError};

/// The whole training configuration, as written in the TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The dataset and how it is read.
    pub data: DataConfig,
    /// The two towers and the contrastive objective.
    pub model: ModelConfig,
    /// The optimiser and its learning-rate schedule.
    pub optim: OptimConfig,
    /// Batch size, length of training, precision and device.
    pub train: TrainLoopConfig,
    /// Where and how often checkpoints are written.
    pub checkpoint: CheckpointConfig,
    /// How often progress is logged.
    #[serde(default)]
    pub logging: LoggingConfig,
}

/// `[data]`: the dataset and how it is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// URL of the packed dataset (a local path, `file://`, `s3://`, `gs://`, `az://`).
    pub url: String,
    /// Seed of the sample order and crop positions.
    pub seed: u64,
    /// Side of the square patches in pixels (the paper: 124).
    pub patch_px: u32,
    /// Batches decoded ahead of the training step.
    pub prefetch_batches: u32,
    /// JPEG decode threads; absent: one per core.
    #[serde(default)]
    pub decode_threads: Option<u32>,
    /// How EXIF tags are written as text. Default: the paper's format.
    #[serde(default)]
    pub text_format: TextFormat,
    /// A tag list file (`dataloader tags` output); absent: the dataset manifest's list.
    #[serde(default)]
    pub tags_path: Option<PathBuf>,
}

/// `[model]`: the towers and the objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Dimension of the shared embedding both towers project into.
    pub embed_dim: u32,
    /// What is contrasted with what.
    pub objective: Objective,
    /// How a text's tokens become one vector.
    pub pooling: Pooling,
    /// The image tower.
    pub image: ImageTowerConfig,
    /// The text tower.
    pub text: TextTowerConfig,
    /// The logit scale (inverse temperature) of the contrastive loss.
    pub temperature: TemperatureConfig,
}

/// The contrastive objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Patches against their photo's EXIF text (the paper).
    ExifText,
    /// Two patches of the same photo against each other (the paper's CropCLR baseline).
    Cropclr,
}

/// How the text tower's token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The end token's state, layer norm, then a linear projection (the paper).
    EndToken,
    /// The mean over non-padding tokens (the reference code).
    MaskedMean,
}

/// `[model.image]`: a ResNet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageTowerConfig {
    /// ResNet depth: 18, 34 or 50.
    pub depth: u32,
    /// Multiplier of every stage's channel count (1.0: the standard ResNet).
    #[serde(default = "one")]
    pub width_multiplier: f64,
}

fn one() -> f64 {
    1.0
}

/// Which text tower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextTowerKind {
    /// DistilBERT, trained (the paper).
    Distilbert,
    /// BERT, trained.
    Bert,
    /// A pretrained BERT-style encoder loaded from `weights_path` and kept frozen; only
    /// the projection trains.
    FrozenPretrainedBert,
}

/// `[model.text]`: a BERT-style encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextTowerConfig {
    /// Which encoder.
    pub kind: TextTowerKind,
    /// Pretrained weights (safetensors); required for `frozen_pretrained_bert`, an
    /// initialisation otherwise.
    #[serde(default)]
    pub weights_path: Option<PathBuf>,
    /// WordPiece vocabulary (`vocab.txt`); absent: the one bundled with the model code.
    #[serde(default)]
    pub vocab_path: Option<PathBuf>,
    /// Transformer layers.
    pub layers: u32,
    /// Hidden size.
    pub hidden_size: u32,
    /// Attention heads (must divide `hidden_size`).
    pub heads: u32,
    /// Feed-forward inner size.
    pub intermediate_size: u32,
    /// Longest text in tokens (special tokens included); longer texts are cut.
    pub max_tokens: u32,
}

/// `[model.temperature]`: the logit scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemperatureConfig {
    /// Whether the logit scale is a trained parameter (else fixed at `logit_scale`).
    pub learnable: bool,
    /// The fixed logit scale, or the initial one when learnable.
    pub logit_scale: f64,
    /// Upper clamp of a learnable logit scale.
    #[serde(default = "hundred")]
    pub max_logit_scale: f64,
}

fn hundred() -> f64 {
    100.0
}

/// `[optim]`: AdamW and the learning-rate schedule (linear warm-up, then cosine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// Peak learning rate, reached at the end of warm-up.
    pub lr: f64,
    /// Learning rate at the end of the cosine decay. Default 0.
    #[serde(default)]
    pub min_lr: f64,
    /// AdamW betas.
    pub betas: [f64; 2],
    /// AdamW epsilon.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Exempt norm weights, biases and the temperature from weight decay. Default true.
    #[serde(default = "yes")]
    pub no_decay_norm_bias_temperature: bool,
    /// Warm-up length in optimiser steps (exclusive with `warmup_epochs`).
    #[serde(default)]
    pub warmup_steps: Option<u64>,
    /// Warm-up length in epochs (exclusive with `warmup_steps`).
    #[serde(default)]
    pub warmup_epochs: Option<f64>,
    /// Largest global gradient norm (clipped above); absent: no clipping.
    #[serde(default)]
    pub grad_clip_norm: Option<f64>,
}

fn yes() -> bool {
    true
}

/// Arithmetic precision of the training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 32-bit floats throughout.
    Fp32,
    /// bfloat16 autocast with fp32 master weights (CUDA only).
    Bf16,
}

/// `[train]`: batch, length, precision and device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainLoopConfig {
    /// Pairs per optimiser step (the contrastive batch).
    pub batch_size: u32,
    /// Pairs per forward/backward pass when the batch is split with the feature cache
    /// method; must divide `batch_size`. Absent: the whole batch at once.
    #[serde(default)]
    pub micro_batch_size: Option<u32>,
    /// Training length in epochs (exclusive with `max_steps`).
    #[serde(default)]
    pub epochs: Option<u32>,
    /// Training length in optimiser steps (exclusive with `epochs`).
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// `fp32` or `bf16`.
    pub precision: Precision,
    /// `cpu`, `cuda` (device 0) or `cuda:N`.
    pub device: String,
}

/// `[checkpoint]`: where and how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// URL of the checkpoint directory (a local path, `file://`, `s3://`, ...).
    pub url: String,
    /// Optimiser steps between checkpoints.
    pub every_steps: u64,
    /// Complete checkpoints kept; older ones are deleted after a new one is committed.
    pub keep_last: u32,
}

/// `[logging]`: how often progress is logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// Optimiser steps between progress lines. Default 10.
    pub every_steps: u64,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self { every_steps: 10 }
    }
}

/// A configuration that passed validation, with what validation derived from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The configuration as written.
    pub spec: TrainConfig,
    /// The parsed `train.device`.
    pub device: Device,
    /// Digest of the fields that change training semantics.
    pub digest: ConfigDigest,
}

impl Config {
    /// The learning-rate schedule, given how many optimiser steps one epoch has (needed
    /// when the warm-up or the length is given in epochs).
    pub fn lr_schedule(&self, steps_per_epoch: u64) -> Result<LrSchedule, FieldError> {
        LrSchedule::from_config(&self.spec, steps_per_epoch)
    }
}

/// Why a configuration could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML for this schema (syntax, wrong type, unknown or missing
    /// field; the message names the key and line).
    #[error("cannot parse config {origin}: {source}")]
    Parse {
        /// The file, or `<string>`.
        origin: String,
        /// The TOML error.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// One or more fields have values that are not allowed.
    #[error("invalid config {origin}: {}", join(.errors))]
    Invalid {
        /// The file, or `<string>`.
        origin: String,
        /// Every offending field with its reason.
        errors: Vec<FieldError>,
    },
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl TrainConfig {
    /// Parses TOML text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<TrainConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            source: Box::new(e),
        })
    }

    /// Checks every field, returning the validated [`Config`] or every problem found.
    pub fn validate(self) -> Result<Config, Vec<FieldError>> {
        let errors = validate::check(&self);
        if !errors.is_empty() {
            return Err(errors);
        }
        let device = Device::parse(&self.train.device)
            .map_err(|reason| vec![FieldError::new("train.device", reason)])?;
        let digest = ConfigDigest::of(&self);
        Ok(Config {
            spec: self,
            device,
            digest,
        })
    }
}

impl Config {
    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        TrainConfig::from_toml_str(text, origin)?
            .validate()
            .map_err(|errors| ConfigError::Invalid {
                origin: origin.to_string(),
                errors,
            })
    }

    /// Reads, parses and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }
}
