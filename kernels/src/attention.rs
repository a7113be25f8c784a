//! Pieces the two transformer text towers share: Hugging Face's additive attention mask and
//! scaled dot-product multi-head attention.

use tch::{Kind, Tensor};

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
/// `softmax(q k^T / sqrt(d) + mask) v`, heads merged back to `[N, L, H]`.
pub(crate) fn multi_head(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, heads: i64) -> Tensor {
    let (n, l, h) = q.size3().expect("[N, L, H] projections");
    let d = h / heads;
    let split = |t: &Tensor| t.view([n, l, heads, d]).transpose(1, 2);
    let (q, k, v) = (split(q), split(k), split(v));
    let scores = q.matmul(&k.transpose(-1, -2)) / (d as f64).sqrt() + mask;
    scores
        .softmax(-1, Kind::Float)
        .matmul(&v)
        .transpose(1, 2)
        .contiguous()
        .view([n, l, h])
}
