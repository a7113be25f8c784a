//! DistilBERT encoder (the text tower's `distil_bert` kind; the paper's text tower).
//!
//! Follows "DistilBERT, a distilled version of BERT" (Sanh et al., 2019,
//! <https://arxiv.org/abs/1910.01108>) as Hugging Face `transformers` implements it
//! (`models/distilbert/modeling_distilbert.py`, `DistilBertModel`): learned positions, no
//! token types, post-norm layers, exact (erf) GELU. Parameter names equal
//! `DistilBertModel`'s state-dict keys (`embeddings.word_embeddings`,
//! `transformer.layer.N.attention.q_lin`, `transformer.layer.N.sa_layer_norm`,
//! `transformer.layer.N.ffn.lin1`, `transformer.layer.N.output_layer_norm`, ...).

use crate::attention::{additive_mask, layer_norm, LayerNames, PostNormLayer};
use crate::config::TextTowerConfig;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// `TransformerBlock` parameter names below `.../layer/N`.
const LAYER_NAMES: LayerNames = [
    "attention.q_lin",
    "attention.k_lin",
    "attention.v_lin",
    "attention.out_lin",
    "sa_layer_norm",
    "ffn.lin1",
    "ffn.lin2",
    "output_layer_norm",
];

/// The DistilBERT encoder: embeddings and the block stack.
#[derive(Debug)]
pub struct DistilBert {
    word: nn::Embedding,
    position: nn::Embedding,
    emb_norm: nn::LayerNorm,
    layers: Vec<PostNormLayer>,
    heads: i64,
    dropout: f64,
}

impl DistilBert {
    /// Builds the encoder with `DistilBertModel` names below `p`.
    pub fn new(p: &nn::Path, cfg: &TextTowerConfig) -> Self {
        let e = p / "embeddings";
        let h = cfg.hidden_size;
        let layers = p / "transformer" / "layer";
        Self {
            word: nn::embedding(
                &e / "word_embeddings",
                cfg.vocab_size,
                h,
                Default::default(),
            ),
            position: nn::embedding(
                &e / "position_embeddings",
                cfg.max_position_embeddings,
                h,
                Default::default(),
            ),
            emb_norm: layer_norm(&e / "LayerNorm", h, cfg.layer_norm_eps),
            layers: (0..cfg.num_layers)
                .map(|i| PostNormLayer::new(&(&layers / i), &LAYER_NAMES, cfg, false))
                .collect(),
            heads: cfg.num_heads,
            dropout: cfg.dropout,
        }
    }

    /// Last hidden states `[N, L, H]` of `input_ids` `[N, L]` (int64) with
    /// `attention_mask` `[N, L]` (1 = token, 0 = padding), with dropout when `train`.
    pub fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        let l = input_ids.size()[1];
        let positions = Tensor::arange(l, (Kind::Int64, input_ids.device())).unsqueeze(0);
        let xs = self.word.forward(input_ids) + self.position.forward(&positions);
        let mut xs = self.emb_norm.forward(&xs).dropout(self.dropout, train);
        let mask = additive_mask(attention_mask);
        for layer in &self.layers {
            xs = layer.forward_t(&xs, &mask, self.heads, train);
        }
        xs
    }
}
