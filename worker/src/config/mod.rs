//! The training configuration: a TOML file read into [`TrainConfig`] (unknown fields are
//! rejected), checked by [`TrainConfig::validate`] into a [`Config`] whose errors name the
//! offending field path and the reason.
//!
//! Sections: `[data]` (dataset, how it is read and tokenised), `[model]` (the model
//! code's [`ModelConfig`]: towers, pooling, temperature, objective, checked by its own
//! validation), `[model_init]` (pretrained weights, frozen text tower), `[optim]` (AdamW and the learning-rate schedule), `[train]`
//! (batch, length, precision, device), `[checkpoint]`, `[logging]` and `[eval]` (the eval
//! suites run on checkpoints, [`eval`], their splice datasets [`datasets`]). [`digest`] gives
//! the stable digest of the fields that change what training computes; [`schedule`] the
//! learning rate at each step. `configs/paper.toml` and `configs/cpu-small.toml` are the
//! shipped examples.

pub mod datasets;
pub mod digest;
pub mod eval;
pub mod schedule;
mod validate;

use std::path::{Path, PathBuf};

use dataloader::exif::TextFormat;
use dataloader::stream::FetchMode;
use infra::{join_fields, FieldError};
use serde::{Deserialize, Serialize};

pub use kernels::config::ModelConfig;

pub use digest::ConfigDigest;
pub use schedule::LrSchedule;
pub use validate::Device;

/// The whole training configuration, as written in the TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The dataset and how it is read.
    pub data: DataConfig,
    /// The two towers and the contrastive objective, as the model code reads them.
    pub model: ModelConfig,
    /// Pretrained weights and frozen parts. Default: random initialisation, all trained.
    #[serde(default)]
    pub model_init: ModelInitConfig,
    /// The optimiser and its learning-rate schedule.
    pub optim: OptimConfig,
    /// Batch size, length of training, precision and device.
    pub train: TrainLoopConfig,
    /// Where and how often checkpoints are written.
    pub checkpoint: CheckpointConfig,
    /// How often progress is logged.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// The eval suites run on checkpoints, and when.
    #[serde(default)]
    pub eval: eval::EvalConfig,
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
    /// How samples are fetched: `auto` (per sample, whole or the head plus the byte
    /// ranges the crops need, whichever costs less), `whole`, or `ranged`. The pixels are
    /// the same either way. Default `auto`.
    #[serde(default)]
    pub fetch: FetchMode,
    /// What one storage request costs, in KiB of transfer, for `fetch = "auto"` and for
    /// joining nearby ranges. Default 64.
    #[serde(default = "default_request_cost_kib")]
    pub request_cost_kib: u64,
    /// How EXIF tags are written as text. Default: the paper's format.
    #[serde(default)]
    pub text_format: TextFormat,
    /// Probability that a tag is left out of a training sample's text, each tag
    /// independently and anew each epoch (a text augmentation; evaluation texts are always
    /// whole). Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tag_dropout: f64,
    /// A tag list file (`dataloader tags` output); absent: the dataset manifest's list.
    #[serde(default)]
    pub tags_path: Option<PathBuf>,
    /// Longest text in tokens (special tokens included); longer texts are cut. At most
    /// `model.text.max_position_embeddings`.
    pub max_text_tokens: u32,
    /// WordPiece vocabulary (`vocab.txt`); absent: the one bundled with the model code.
    #[serde(default)]
    pub vocab_path: Option<PathBuf>,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

fn default_request_cost_kib() -> u64 {
    dataloader::stream::fetch::DEFAULT_REQUEST_COST >> 10
}

/// `[model_init]`: how the model's weights start, and which stay fixed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInitConfig {
    /// Pretrained text-tower weights (safetensors, Hugging Face names of `model.text.kind`);
    /// absent: random initialisation.
    #[serde(default)]
    pub text_weights_path: Option<PathBuf>,
    /// Keep the pretrained text tower fixed (only its pooling norm and projection train);
    /// needs `text_weights_path`. Default false.
    #[serde(default)]
    pub freeze_text: bool,
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
    /// Batch-norm statistics in data-parallel training: `per_rank` (default, as PyTorch
    /// DDP) or `synced` (over every rank's samples; costs two small all-reduces per norm
    /// per pass).
    #[serde(default, skip_serializing_if = "BatchNormStats::is_per_rank")]
    pub batch_norm: BatchNormStats,
    /// The precision gradient buckets are summed over ranks in: `fp32` (default) or
    /// `bf16` (half the traffic). Left out of the digest when default.
    #[serde(
        default,
        skip_serializing_if = "crate::collective::GradReduce::is_fp32"
    )]
    pub grad_reduce: crate::collective::GradReduce,
    /// Sum each gradient bucket over the ranks as soon as back-propagation has produced it,
    /// while the rest of the backward pass runs (default `true`; `false` issues every
    /// bucket after back-propagation). Only where the backend sums beside the computation
    /// (NCCL); the CPU backend sums after backward either way. Not in the digest: the sums
    /// are the same.
    #[serde(default = "yes")]
    pub overlap_grad_reduce: bool,
}

/// Where batch norms take their batch statistics from in data-parallel training.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchNormStats {
    /// Each rank's own samples.
    #[default]
    PerRank,
    /// Every rank's samples together (synchronised batch norm).
    Synced,
}

impl BatchNormStats {
    /// The default, left out of the serialised config (so older configs keep their
    /// digest).
    pub fn is_per_rank(&self) -> bool {
        *self == BatchNormStats::PerRank
    }
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
    /// The device's peak TFLOP/s that model FLOPs utilisation divides by; default: the
    /// dense bf16 peak of the GPUs known by name (H100, H200, A100, L40S), none on CPU.
    pub peak_tflops: Option<f64>,
    /// Where rank 0 writes TensorBoard event files (a folder or an object-store URL),
    /// every `every_steps` steps; evaluation agents write theirs there too. Default:
    /// `tensorboard/` under `checkpoint.url`; `""`: none written.
    pub tensorboard: Option<String>,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            every_steps: 10,
            peak_tflops: None,
            tensorboard: None,
        }
    }
}

impl TrainConfig {
    /// The TensorBoard folder (`logging.tensorboard`, by default under the checkpoints);
    /// `None` when turned off.
    pub fn tensorboard_url(&self) -> Option<String> {
        match &self.logging.tensorboard {
            Some(url) if url.trim().is_empty() => None,
            Some(url) => Some(url.clone()),
            None => Some(format!(
                "{}/tensorboard",
                self.checkpoint.url.trim_end_matches('/')
            )),
        }
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
    #[error("invalid config {origin}: {}", join_fields(.errors))]
    Invalid {
        /// The file, or `<string>`.
        origin: String,
        /// Every offending field with its reason.
        errors: Vec<FieldError>,
    },
}

impl TrainConfig {
    /// Parses TOML text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<TrainConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            source: Box::new(e),
        })
    }

    /// The configuration as TOML text (reads back to an equal value).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a training config always serialises to TOML")
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

#[cfg(test)]
mod tests {
    use super::*;
    use kernels::config::Temperature;

    fn shipped(name: &str) -> TrainConfig {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../configs")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        TrainConfig::from_toml_str(&text, name).unwrap()
    }

    #[test]
    fn configs_round_trip_through_toml() {
        for name in ["paper.toml", "cpu-small.toml"] {
            let spec = shipped(name);
            let text = toml::to_string(&spec).unwrap();
            let back = TrainConfig::from_toml_str(&text, "round-trip")
                .unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
            assert_eq!(back, spec, "{name}");
        }
        // The tagged temperature and a frozen pretrained text tower as well.
        let mut spec = shipped("paper.toml");
        spec.model.temperature = Temperature::clip();
        spec.model_init = ModelInitConfig {
            text_weights_path: Some("distilbert.safetensors".into()),
            freeze_text: true,
        };
        let text = toml::to_string(&spec).unwrap();
        assert!(text.contains("mode = \"learnable\""), "{text}");
        assert_eq!(TrainConfig::from_toml_str(&text, "x").unwrap(), spec);
    }

    #[test]
    fn model_errors_keep_the_full_field_path() {
        let mut spec = shipped("paper.toml");
        spec.model.text.num_heads = 7;
        let errs = spec.validate().unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0].to_string(),
            "model.text.num_heads: must divide hidden_size 768, got 7"
        );
    }
}
