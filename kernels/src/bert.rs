//! BERT encoder (the text tower's `bert` kind; all-MiniLM-L6-v2 is one).
//!
//! Follows "BERT: Pre-training of Deep Bidirectional Transformers for Language
//! Understanding" (Devlin et al., 2019, <https://arxiv.org/abs/1810.04805>) as Hugging Face
//! `transformers` implements it (`models/bert/modeling_bert.py`, `BertModel` without the
//! pooler): post-norm layers, exact (erf) GELU, additive attention mask. Parameter names
//! equal `BertModel`'s state-dict keys (`embeddings.word_embeddings`,
//! `encoder.layer.N.attention.self.query`, `encoder.layer.N.output.LayerNorm`, ...).

use crate::attention::{additive_mask, multi_head};
use crate::config::TextTowerConfig;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

fn linear(p: nn::Path, i: i64, o: i64) -> nn::Linear {
    nn::linear(p, i, o, Default::default())
}

fn layer_norm(p: nn::Path, h: i64, eps: f64) -> nn::LayerNorm {
    let cfg = nn::LayerNormConfig {
        eps,
        ..Default::default()
    };
    nn::layer_norm(p, vec![h], cfg)
}

/// One post-norm transformer layer.
#[derive(Debug)]
struct BertLayer {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    attn_out: nn::Linear,
    attn_norm: nn::LayerNorm,
    intermediate: nn::Linear,
    output: nn::Linear,
    out_norm: nn::LayerNorm,
}

impl BertLayer {
    fn new(p: nn::Path, cfg: &TextTowerConfig) -> Self {
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let attn = &p / "attention";
        let slf = &attn / "self";
        let out = &attn / "output";
        Self {
            query: linear(&slf / "query", h, h),
            key: linear(&slf / "key", h, h),
            value: linear(&slf / "value", h, h),
            attn_out: linear(&out / "dense", h, h),
            attn_norm: layer_norm(&out / "LayerNorm", h, eps),
            intermediate: linear(&p / "intermediate" / "dense", h, cfg.intermediate_size),
            output: linear(&p / "output" / "dense", cfg.intermediate_size, h),
            out_norm: layer_norm(&p / "output" / "LayerNorm", h, eps),
        }
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor, heads: i64) -> Tensor {
        let ctx = multi_head(
            &self.query.forward(xs),
            &self.key.forward(xs),
            &self.value.forward(xs),
            mask,
            heads,
        );
        let attn = self.attn_norm.forward(&(self.attn_out.forward(&ctx) + xs));
        let ff = self
            .output
            .forward(&self.intermediate.forward(&attn).gelu("none"));
        self.out_norm.forward(&(ff + attn))
    }
}

/// The BERT encoder: embeddings and the layer stack.
#[derive(Debug)]
pub struct Bert {
    word: nn::Embedding,
    position: nn::Embedding,
    token_type: nn::Embedding,
    emb_norm: nn::LayerNorm,
    layers: Vec<BertLayer>,
    heads: i64,
}

impl Bert {
    /// Builds the encoder with `BertModel` names below `p`.
    pub fn new(p: &nn::Path, cfg: &TextTowerConfig) -> Self {
        let e = p / "embeddings";
        let h = cfg.hidden_size;
        let emb = |name: &str, n: i64| nn::embedding(&e / name, n, h, Default::default());
        let enc = p / "encoder" / "layer";
        Self {
            word: emb("word_embeddings", cfg.vocab_size),
            position: emb("position_embeddings", cfg.max_position_embeddings),
            token_type: emb("token_type_embeddings", cfg.type_vocab_size),
            emb_norm: layer_norm(&e / "LayerNorm", h, cfg.layer_norm_eps),
            layers: (0..cfg.num_layers)
                .map(|i| BertLayer::new(&enc / i, cfg))
                .collect(),
            heads: cfg.num_heads,
        }
    }

    /// Last hidden states `[N, L, H]` of `input_ids` `[N, L]` (int64) with
    /// `attention_mask` `[N, L]` (1 = token, 0 = padding); token types are all 0.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Tensor {
        let l = input_ids.size()[1];
        let positions = Tensor::arange(l, (Kind::Int64, input_ids.device())).unsqueeze(0);
        let xs = self.word.forward(input_ids)
            + self.position.forward(&positions)
            + self.token_type.forward(&input_ids.zeros_like());
        let mut xs = self.emb_norm.forward(&xs);
        let mask = additive_mask(attention_mask);
        for layer in &self.layers {
            xs = layer.forward(&xs, &mask, self.heads);
        }
        xs
    }
}
