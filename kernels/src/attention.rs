//! Pieces the two transformer text towers share: Hugging Face's additive attention mask,
//! scaled dot-product multi-head attention, and the post-norm layer both BERT and
//! DistilBERT stack (they differ only in parameter names).

use crate::config::TextTowerConfig;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// A linear layer with a bias, named `p`.
pub(crate) fn linear(p: nn::Path, i: i64, o: i64) -> nn::Linear {
    nn::linear(p, i, o, Default::default())
}

/// A layer norm over the last dimension `h`, named `p`.
pub(crate) fn layer_norm(p: nn::Path, h: i64, eps: f64) -> nn::LayerNorm {
    let cfg = nn::LayerNormConfig {
        eps,
        ..Default::default()
    };
    nn::layer_norm(p, vec![h], cfg)
}

/// Where a post-norm layer's parameters live below the layer's path, in the order
/// query, key, value, attention output, attention layer norm, feed-forward in,
/// feed-forward out, output layer norm.
pub(crate) type LayerNames = [&'static str; 8];

/// One post-norm transformer layer: `x = norm(x + attn(x))`, `x = norm(x + ffn(x))`, with
/// exact (erf) GELU in the feed-forward.
#[derive(Debug)]
pub(crate) struct PostNormLayer {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    attn_out: nn::Linear,
    attn_norm: nn::LayerNorm,
    ffn_in: nn::Linear,
    ffn_out: nn::Linear,
    out_norm: nn::LayerNorm,
    dropout: f64,
    dropout_after_attn_out: bool,
}

impl PostNormLayer {
    /// Builds the layer below `p` with the parameter `names` of the reference model;
    /// `dropout_after_attn_out`: whether the attention output projection is followed by
    /// dropout (BERT) or not (DistilBERT).
    pub fn new(
        p: &nn::Path,
        names: &LayerNames,
        cfg: &TextTowerConfig,
        dropout_after_attn_out: bool,
    ) -> Self {
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let at = |name: &str| name.split('.').fold(p.clone(), |q, part| q / part);
        Self {
            query: linear(at(names[0]), h, h),
            key: linear(at(names[1]), h, h),
            value: linear(at(names[2]), h, h),
            attn_out: linear(at(names[3]), h, h),
            attn_norm: layer_norm(at(names[4]), h, eps),
            ffn_in: linear(at(names[5]), h, cfg.intermediate_size),
            ffn_out: linear(at(names[6]), cfg.intermediate_size, h),
            out_norm: layer_norm(at(names[7]), h, eps),
            dropout: cfg.dropout,
            dropout_after_attn_out,
        }
    }

    /// The layer applied to `xs` `[N, L, H]` with an additive `mask`; dropout only when
    /// `train`.
    pub fn forward_t(&self, xs: &Tensor, mask: &Tensor, heads: i64, train: bool) -> Tensor {
        let ctx = multi_head(
            &self.query.forward(xs),
            &self.key.forward(xs),
            &self.value.forward(xs),
            mask,
            heads,
            self.dropout * f64::from(u8::from(train)),
        );
        let mut out = self.attn_out.forward(&ctx);
        if self.dropout_after_attn_out {
            out = out.dropout(self.dropout, train);
        }
        let attn = self.attn_norm.forward(&(out + xs));
        let ff = self
            .ffn_out
            .forward(&self.ffn_in.forward(&attn).gelu("none"))
            .dropout(self.dropout, train);
        self.out_norm.forward(&(ff + attn))
    }
}

/// `[N, L]` mask (1 = token, 0 = padding) -> additive `[N, 1, 1, L]` float mask, `0` for
/// tokens and the lowest finite `f32` for padding, as Hugging Face's
/// `get_extended_attention_mask` builds it.
pub(crate) fn additive_mask(attention_mask: &Tensor) -> Tensor {
    let m = attention_mask
        .to_kind(Kind::Float)
        .unsqueeze(1)
        .unsqueeze(1);
    (m.ones_like() - m) * f64::from(f32::MIN)
}

/// Multi-head attention of projected `q`, `k`, `v` (`[N, L, H]`) with `heads` heads:
/// `dropout(softmax(q k^T / sqrt(d) + mask)) v`, heads merged back to `[N, L, H]`.
pub(crate) fn multi_head(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    heads: i64,
    dropout: f64,
) -> Tensor {
    let (n, l, h) = q.size3().expect("[N, L, H] projections");
    let d = h / heads;
    let split = |t: &Tensor| t.view([n, l, heads, d]).transpose(1, 2);
    let (q, k, v) = (split(q), split(k), split(v));
    // libtorch's fused kernel (what Hugging Face's default "sdpa" attention calls).
    Tensor::scaled_dot_product_attention(&q, &k, &v, Some(mask), dropout, false, None, false)
        .transpose(1, 2)
        .contiguous()
        .view([n, l, h])
}
