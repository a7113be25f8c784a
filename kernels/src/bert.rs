//! BERT encoder (the text tower's `bert` kind; all-MiniLM-L6-v2 is one).
//!
//! Follows "BERT: Pre-training of Deep Bidirectional Transformers for Language
//! Understanding" (Devlin et al., 2019, <https://arxiv.org/abs/1810.04805>) as Hugging Face
//! `transformers` implements it (`models/bert/modeling_bert.py`, `BertModel` without the
//! pooler): post-norm layers, exact (erf) GELU, additive attention mask. Parameter names
//! equal `BertModel`'s state-dict keys (`embeddings.word_embeddings`,
//! `encoder.layer.N.attention.self.query`, `encoder.layer.N.output.LayerNorm`, ...).

use crate::attention::{additive_mask, layer_norm, LayerNames, PostNormLayer};
use crate::config::TextTowerConfig;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// `BertLayer` parameter names below `.../layer/N`.
const LAYER_NAMES: LayerNames = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "attention.output.LayerNorm",
    "intermediate.dense",
    "output.dense",
    "output.LayerNorm",
];

/// The BERT encoder: embeddings and the layer stack.
#[derive(Debug)]
pub struct Bert {
    word: nn::Embedding,
    position: nn::Embedding,
    token_type: nn::Embedding,
    emb_norm: nn::LayerNorm,
    layers: Vec<PostNormLayer>,
    heads: i64,
    dropout: f64,
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
                .map(|i| PostNormLayer::new(&(&enc / i), &LAYER_NAMES, cfg, true))
                .collect(),
            heads: cfg.num_heads,
            dropout: cfg.dropout,
        }
    }

    /// Last hidden states `[N, L, H]` of `input_ids` `[N, L]` (int64) with
    /// `attention_mask` `[N, L]` (1 = token, 0 = padding), with dropout when `train`; token types are all 0.
    pub fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        let l = input_ids.size()[1];
        let positions = Tensor::arange(l, (Kind::Int64, input_ids.device())).unsqueeze(0);
        let xs = self.word.forward(input_ids)
            + self.position.forward(&positions)
            + self.token_type.forward(&input_ids.zeros_like());
        let mut xs = self.emb_norm.forward(&xs).dropout(self.dropout, train);
        let mask = additive_mask(attention_mask);
        for layer in &self.layers {
            xs = layer.forward_t(&xs, &mask, self.heads, train);
        }
        xs
    }
}
