//! Model configuration: serde structs (read from and written to a config file; every serde
//! attribute works both ways, so a config round-trips) and their validation.
//!
//! `ModelConfig::validate` checks every field before any tensor is allocated; an error names
//! the field (`text.num_heads`, `image.layers`, ...) and says what would be accepted.

use infra::FieldError;
use serde::{Deserialize, Serialize};

/// The whole model: image tower, text tower, joint space, temperature and objective.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The image tower.
    pub image: ImageTowerConfig,
    /// The EXIF-text tower (unused by the `crop_clr` objective).
    pub text: TextTowerConfig,
    /// Dimension of the joint embedding space.
    pub embed_dim: i64,
    /// Temperature of the contrastive loss; default fixed logit scale 100.
    #[serde(default)]
    pub temperature: Temperature,
    /// What is contrasted; default image-text.
    #[serde(default)]
    pub objective: Objective,
}

/// Which ResNet block the image tower stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Block {
    /// Two 3x3 convolutions (ResNet-18/34); expansion 1.
    Basic,
    /// 1x1, 3x3, 1x1 convolutions (ResNet-50/101/152); expansion 4.
    Bottleneck,
}

impl Block {
    /// Channel expansion of the block's output over its width.
    pub fn expansion(self) -> i64 {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        }
    }
}

/// The ResNet image tower.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImageTowerConfig {
    /// Block kind.
    pub block: Block,
    /// Blocks in each of the four stages, e.g. `[3, 4, 6, 3]` for ResNet-50.
    pub layers: [i64; 4],
    /// Channels of the stem and the first stage (64 in torchvision; later stages double it).
    #[serde(default = "default_width")]
    pub width: i64,
}

fn default_width() -> i64 {
    64
}

impl ImageTowerConfig {
    /// ResNet-50 as in torchvision.
    pub fn resnet50() -> Self {
        Self {
            block: Block::Bottleneck,
            layers: [3, 4, 6, 3],
            width: 64,
        }
    }

    /// ResNet-18 as in torchvision.
    pub fn resnet18() -> Self {
        Self {
            block: Block::Basic,
            layers: [2, 2, 2, 2],
            width: 64,
        }
    }

    /// Channels of the pooled feature (2048 for ResNet-50).
    pub fn feature_dim(&self) -> i64 {
        self.width * 8 * self.block.expansion()
    }

    /// Checks the fields; errors are prefixed with `image.`.
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(i) = self.layers.iter().position(|&n| n < 1) {
            return Err(FieldError::new(
                format!("image.layers[{i}]"),
                "must be at least 1 block per stage",
            ));
        }
        if self.width < 1 {
            return Err(FieldError::new("image.width", "must be at least 1"));
        }
        Ok(())
    }
}

/// Which transformer the text tower is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TextKind {
    /// BERT (Hugging Face `BertModel` names); also all-MiniLM-L6-v2.
    Bert,
    /// DistilBERT (Hugging Face `DistilBertModel` names).
    DistilBert,
}

/// How the text tower turns token states into one embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The paper: the last real token (`[SEP]`), then a layer norm and a linear projection.
    EndToken,
    /// The first token (`[CLS]`), then a layer norm and a linear projection.
    Cls,
    /// The reference code: attention-masked mean of the last hidden states, no projection
    /// (the embedding dimension is the hidden size).
    MaskedMean,
}

impl Pooling {
    /// Whether the pooled state goes through `pool_norm` and `proj`.
    pub fn projects(self) -> bool {
        !matches!(self, Pooling::MaskedMean)
    }
}

/// The transformer text tower.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TextTowerConfig {
    /// BERT or DistilBERT.
    pub kind: TextKind,
    /// Vocabulary size (30522 for bert-base-uncased).
    #[serde(default = "default_vocab")]
    pub vocab_size: i64,
    /// Hidden size (768 for DistilBERT, 384 for all-MiniLM-L6-v2).
    pub hidden_size: i64,
    /// Transformer layers.
    pub num_layers: i64,
    /// Attention heads; must divide `hidden_size`.
    pub num_heads: i64,
    /// Width of the feed-forward layer.
    pub intermediate_size: i64,
    /// Longest sequence (position embeddings).
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: i64,
    /// Token type vocabulary (BERT only).
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: i64,
    /// Epsilon of the layer norms (1e-12 in BERT and DistilBERT).
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    /// Pooling.
    pub pooling: Pooling,
    /// Dropout probability in training, at Hugging Face's places (embeddings, attention
    /// probabilities, attention output in BERT, feed-forward output). Default 0 (none);
    /// DistilBERT and BERT were pre-trained with 0.1.
    #[serde(default)]
    pub dropout: f64,
}

fn default_vocab() -> i64 {
    30522
}
fn default_max_positions() -> i64 {
    512
}
fn default_type_vocab() -> i64 {
    2
}
fn default_ln_eps() -> f64 {
    1e-12
}

impl TextTowerConfig {
    /// DistilBERT-base (uncased) with the given pooling.
    pub fn distilbert_base(pooling: Pooling) -> Self {
        Self {
            kind: TextKind::DistilBert,
            vocab_size: 30522,
            hidden_size: 768,
            num_layers: 6,
            num_heads: 12,
            intermediate_size: 3072,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pooling,
            dropout: 0.0,
        }
    }

    /// all-MiniLM-L6-v2 (a 6-layer BERT, hidden 384) with the given pooling.
    pub fn minilm_l6(pooling: Pooling) -> Self {
        Self {
            kind: TextKind::Bert,
            vocab_size: 30522,
            hidden_size: 384,
            num_layers: 6,
            num_heads: 12,
            intermediate_size: 1536,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pooling,
            dropout: 0.0,
        }
    }

    /// Checks the fields; errors are prefixed with `text.`.
    pub fn validate(&self) -> Result<(), FieldError> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        for (name, v) in positive {
            if v < 1 {
                return Err(FieldError::new(
                    format!("text.{name}"),
                    format!("must be at least 1, got {v}"),
                ));
            }
        }
        if self.hidden_size % self.num_heads != 0 {
            return Err(FieldError::new(
                "text.num_heads",
                format!(
                    "must divide hidden_size {}, got {}",
                    self.hidden_size, self.num_heads
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(FieldError::new(
                "text.dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            ));
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps < 1.0) {
            return Err(FieldError::new(
                "text.layer_norm_eps",
                format!("must be in (0, 1), got {}", self.layer_norm_eps),
            ));
        }
        Ok(())
    }
}

/// The contrastive temperature, as a logit scale `1 / tau`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Temperature {
    /// A constant scale (the reference code: 100, i.e. tau = 0.01).
    Fixed {
        /// The logit scale.
        logit_scale: f64,
    },
    /// CLIP: a learned `log` scale, initialised at `ln(init)`, used as
    /// `min(exp(log_scale), max)`.
    Learnable {
        /// Initial scale (CLIP: 1 / 0.07).
        #[serde(default = "default_learnable_init")]
        init: f64,
        /// Upper bound of the scale (CLIP: 100).
        #[serde(default = "default_learnable_max")]
        max: f64,
    },
}

fn default_learnable_init() -> f64 {
    1.0 / 0.07
}
fn default_learnable_max() -> f64 {
    100.0
}

impl Default for Temperature {
    fn default() -> Self {
        Temperature::Fixed { logit_scale: 100.0 }
    }
}

impl Temperature {
    /// CLIP's learnable temperature: init 1/0.07, clamped at 100.
    pub fn clip() -> Self {
        Temperature::Learnable {
            init: default_learnable_init(),
            max: default_learnable_max(),
        }
    }

    /// Checks the fields; errors are prefixed with `temperature.`.
    pub fn validate(&self) -> Result<(), FieldError> {
        match *self {
            Temperature::Fixed { logit_scale }
                if !(logit_scale > 0.0 && logit_scale.is_finite()) =>
            {
                Err(FieldError::new(
                    "temperature.logit_scale",
                    format!("must be a positive number, got {logit_scale}"),
                ))
            }
            Temperature::Learnable { init, .. } if !(init > 0.0 && init.is_finite()) => Err(
                FieldError::new("temperature.init", format!("must be positive, got {init}")),
            ),
            Temperature::Learnable { init, max } if !(max >= init && max.is_finite()) => {
                Err(FieldError::new(
                    "temperature.max",
                    format!("must be finite and at least init {init}, got {max}"),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// What the loss contrasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Image patch vs. its photo's EXIF text (the paper).
    #[default]
    ImageText,
    /// CropCLR: two crops of one photo are the positive pair (image tower only).
    CropClr,
    /// Both at once: two crops of each photo, each paired with the photo's EXIF text and
    /// with the other crop ([`crate::loss::sides_loss`] of three sides).
    ImageTextCrop,
}

impl Objective {
    /// Whether the model has a text tower.
    pub fn uses_text(self) -> bool {
        self != Objective::CropClr
    }

    /// Crops of each photo a training batch needs.
    pub fn crops_per_sample(self) -> u32 {
        match self {
            Objective::ImageText => 1,
            Objective::CropClr | Objective::ImageTextCrop => 2,
        }
    }
}

impl ModelConfig {
    /// A model of a few thousand parameters, for tests and examples: basic-block ResNet
    /// `[1, 1, 1, 1]` of width 4 (any patch of 32 px or more), a one-layer DistilBERT of
    /// hidden size 16 over a 60-token vocabulary with end-token pooling, 8-dimensional
    /// embeddings, CLIP's learnable temperature.
    pub fn tiny(objective: Objective) -> Self {
        let mut text = TextTowerConfig::distilbert_base(Pooling::EndToken);
        (text.vocab_size, text.hidden_size, text.num_layers) = (60, 16, 1);
        (text.num_heads, text.intermediate_size) = (2, 32);
        ModelConfig {
            image: ImageTowerConfig {
                block: Block::Basic,
                layers: [1, 1, 1, 1],
                width: 4,
            },
            text,
            embed_dim: 8,
            temperature: Temperature::clip(),
            objective,
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), FieldError> {
        self.image.validate()?;
        self.text.validate()?;
        self.temperature.validate()?;
        if self.embed_dim < 1 {
            return Err(FieldError::new(
                "embed_dim",
                format!("must be at least 1, got {}", self.embed_dim),
            ));
        }
        if self.objective.uses_text()
            && !self.text.pooling.projects()
            && self.embed_dim != self.text.hidden_size
        {
            return Err(FieldError::new(
                "embed_dim",
                format!(
                    "must equal text.hidden_size {} with masked_mean pooling (no projection), got {}",
                    self.text.hidden_size, self.embed_dim
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> ModelConfig {
        serde_json::from_str(json).unwrap()
    }

    const BASE: &str = r#"{
        "image": {"block": "bottleneck", "layers": [3, 4, 6, 3]},
        "text": {"kind": "distil_bert", "hidden_size": 768, "num_layers": 6, "num_heads": 12,
                 "intermediate_size": 3072, "pooling": "end_token"},
        "embed_dim": 768
    }"#;

    #[test]
    fn defaults_are_resnet50_width_fixed_scale_100_and_image_text() {
        let cfg = parse(BASE);
        cfg.validate().unwrap();
        assert_eq!(cfg.image, ImageTowerConfig::resnet50());
        assert_eq!(cfg.image.feature_dim(), 2048);
        assert_eq!(
            cfg.text,
            TextTowerConfig::distilbert_base(Pooling::EndToken)
        );
        assert_eq!(cfg.temperature, Temperature::Fixed { logit_scale: 100.0 });
        assert_eq!(cfg.objective, Objective::ImageText);
    }

    #[test]
    fn learnable_temperature_defaults_to_clip() {
        let mut v: serde_json::Value = serde_json::from_str(BASE).unwrap();
        v["temperature"] = serde_json::json!({"mode": "learnable"});
        let cfg: ModelConfig = serde_json::from_value(v).unwrap();
        assert_eq!(cfg.temperature, Temperature::clip());
        let Temperature::Learnable { init, max } = cfg.temperature else {
            unreachable!()
        };
        assert!((init - 1.0 / 0.07).abs() < 1e-12 && max == 100.0);
    }

    fn field_of(edit: impl FnOnce(&mut ModelConfig)) -> String {
        let mut cfg = parse(BASE);
        edit(&mut cfg);
        cfg.validate().unwrap_err().field
    }

    #[test]
    fn validation_errors_name_the_offending_field() {
        assert_eq!(field_of(|c| c.text.num_heads = 7), "text.num_heads");
        assert_eq!(field_of(|c| c.image.layers[2] = 0), "image.layers[2]");
        assert_eq!(field_of(|c| c.image.width = 0), "image.width");
        assert_eq!(field_of(|c| c.embed_dim = 0), "embed_dim");
        assert_eq!(field_of(|c| c.text.hidden_size = -1), "text.hidden_size");
        assert_eq!(
            field_of(|c| c.temperature = Temperature::Fixed { logit_scale: 0.0 }),
            "temperature.logit_scale"
        );
        assert_eq!(
            field_of(|c| c.temperature = Temperature::Learnable {
                init: 50.0,
                max: 10.0
            }),
            "temperature.max"
        );
        // Masked-mean pooling has no projection: the joint space is the hidden size.
        assert_eq!(
            field_of(|c| {
                c.text.pooling = Pooling::MaskedMean;
                c.embed_dim = 512;
            }),
            "embed_dim"
        );
    }

    #[test]
    fn serialisation_round_trips_every_variant() {
        let mut cfg = parse(BASE);
        cfg.objective = Objective::CropClr;
        cfg.text.pooling = Pooling::Cls;
        for temperature in [Temperature::default(), Temperature::clip()] {
            cfg.temperature = temperature;
            let json = serde_json::to_string(&cfg).unwrap();
            assert_eq!(
                serde_json::from_str::<ModelConfig>(&json).unwrap(),
                cfg,
                "{json}"
            );
        }
        // The written names are the ones a config file uses.
        let v = serde_json::to_value(&cfg).unwrap();
        assert_eq!(v["objective"], "crop_clr");
        assert_eq!(v["text"]["kind"], "distil_bert");
        assert_eq!(v["temperature"]["mode"], "learnable");
    }

    #[test]
    fn unknown_fields_are_rejected_by_name() {
        let err = serde_json::from_str::<ModelConfig>(&BASE.replace("embed_dim", "embed_dims"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("embed_dims"), "{err}");
    }
}
