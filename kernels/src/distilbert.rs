//! DistilBERT encoder (the text tower's `distil_bert` kind; the paper's text tower).
//!
//! Follows "DistilBERT, a distilled version of BERT" (Sanh et al., 2019,
//! <https://arxiv.org/abs/1910.01108>) as Hugging Face `transformers` implements it
//! (`models/distilbert/modeling_distilbert.py`, `DistilBertModel`): learned positions, no
//! token types, post-norm layers, exact (erf) GELU. Parameter names equal
//! `DistilBertModel`'s state-dict keys (`embeddings.word_embeddings`,
//! `transformer.layer.N.attention.q_lin`, `transformer.layer.N.sa_layer_norm`,
//! `transformer.layer.N.ffn.lin1`, `transformer.layer.N.output_layer_norm`, ...).

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

/// One transformer block.
#[derive(Debug)]
struct Block {
    q_lin: nn::Linear,
    k_lin: nn::Linear,
    v_lin: nn::Linear,
    out_lin: nn::Linear,
    sa_layer_norm: nn::LayerNorm,
    lin1: nn::Linear,
    lin2: nn::Linear,
    output_layer_norm: nn::LayerNorm,
}

impl Block {
    fn new(p: nn::Path, cfg: &TextTowerConfig) -> Self {
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let a = &p / "attention";
        let f = &p / "ffn";
        Self {
            q_lin: linear(&a / "q_lin", h, h),
            k_lin: linear(&a / "k_lin", h, h),
            v_lin: linear(&a / "v_lin", h, h),
            out_lin: linear(&a / "out_lin", h, h),
            sa_layer_norm: layer_norm(&p / "sa_layer_norm", h, eps),
            lin1: linear(&f / "lin1", h, cfg.intermediate_size),
            lin2: linear(&f / "lin2", cfg.intermediate_size, h),
            output_layer_norm: layer_norm(&p / "output_layer_norm", h, eps),
        }
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor, heads: i64) -> Tensor {
        let ctx = multi_head(
            &self.q_lin.forward(xs),
            &self.k_lin.forward(xs),
            &self.v_lin.forward(xs),
            mask,
            heads,
        );
        let sa = self
            .sa_layer_norm
            .forward(&(self.out_lin.forward(&ctx) + xs));
        let ff = self.lin2.forward(&self.lin1.forward(&sa).gelu("none"));
        self.output_layer_norm.forward(&(ff + sa))
    }
}

/// The DistilBERT encoder: embeddings and the block stack.
#[derive(Debug)]
pub struct DistilBert {
    word: nn::Embedding,
    position: nn::Embedding,
    emb_norm: nn::LayerNorm,
    layers: Vec<Block>,
    heads: i64,
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
                .map(|i| Block::new(&layers / i, cfg))
                .collect(),
            heads: cfg.num_heads,
        }
    }

    /// Last hidden states `[N, L, H]` of `input_ids` `[N, L]` (int64) with
    /// `attention_mask` `[N, L]` (1 = token, 0 = padding).
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Tensor {
        let l = input_ids.size()[1];
        let positions = Tensor::arange(l, (Kind::Int64, input_ids.device())).unsqueeze(0);
        let xs = self.word.forward(input_ids) + self.position.forward(&positions);
        let mut xs = self.emb_norm.forward(&xs);
        let mask = additive_mask(attention_mask);
        for layer in &self.layers {
            xs = layer.forward(&xs, &mask, self.heads);
        }
        xs
    }
}
