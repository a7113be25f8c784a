//! Model FLOPs of one training step, counted once from the model config (no tensors), for
//! model FLOPs utilisation (MFU); and the peak throughput of the GPUs we know.
//!
//! The count follows what `torch.utils.flop_counter.FlopCounterMode` counts, so the two can
//! be compared (`tests/it/flops.rs` runs it on the PyTorch twin of the model): matrix
//! products and convolutions only, 2 FLOPs per multiply-add; a backward pass costs twice
//! its forward (input and weight gradients) except where the input needs no gradient (the
//! first convolution: only the weight gradient). Normalisation, activations, pooling,
//! embeddings lookups, the loss's softmax and the optimiser are not counted. Model FLOPs
//! count the model once: the feature cache's extra forward pass (micro-batches) is not
//! model work and is not counted, as MFU is usually defined (PaLM, appendix B).

use crate::config::{Block, ImageTowerConfig, ModelConfig, Objective, TextTowerConfig};

/// Forward FLOPs of one convolution over an `n x n` input; returns them and the output side.
fn conv(n: i64, c_in: i64, c_out: i64, k: i64, stride: i64, pad: i64) -> (f64, i64) {
    let out = (n + 2 * pad - k) / stride + 1;
    let flops = 2.0 * (out * out) as f64 * (c_out * c_in * k * k) as f64;
    (flops, out)
}

/// Forward FLOPs of the image tower on one `patch x patch` crop, split into the first
/// convolution (whose input needs no gradient) and the rest.
fn image_forward(cfg: &ImageTowerConfig, embed_dim: i64, patch: i64) -> (f64, f64) {
    let (stem, n) = conv(patch, 3, cfg.width, 7, 2, 3);
    let mut n = (n + 2 - 3) / 2 + 1; // max pool 3x3, stride 2, padding 1
    let mut rest = 0.0;
    let mut c_in = cfg.width;
    for (s, &blocks) in cfg.layers.iter().enumerate() {
        let width = cfg.width << s;
        let c_out = width * cfg.block.expansion();
        for i in 0..blocks {
            let stride = if s > 0 && i == 0 { 2 } else { 1 };
            let (f, out) = match cfg.block {
                Block::Basic => {
                    let (a, m) = conv(n, c_in, width, 3, stride, 1);
                    let (b, m) = conv(m, width, width, 3, 1, 1);
                    (a + b, m)
                }
                Block::Bottleneck => {
                    let (a, m) = conv(n, c_in, width, 1, 1, 0);
                    let (b, m) = conv(m, width, width, 3, stride, 1);
                    let (c, m) = conv(m, width, c_out, 1, 1, 0);
                    (a + b + c, m)
                }
            };
            rest += f;
            if stride != 1 || c_in != c_out {
                rest += conv(n, c_in, c_out, 1, stride, 0).0;
            }
            n = out;
            c_in = c_out;
        }
    }
    rest += 2.0 * (c_in * embed_dim) as f64; // proj
    (stem, rest)
}

/// Forward FLOPs of the text encoder (no pooling head) on one row of `seq_len` tokens.
fn text_encoder_forward(cfg: &TextTowerConfig, seq_len: i64) -> f64 {
    let (l, h, i) = (
        seq_len as f64,
        cfg.hidden_size as f64,
        cfg.intermediate_size as f64,
    );
    // Q, K, V and the attention output (4 H x H), the feed-forward (H x I, I x H); the
    // attention products Q K^T and P V (L x L x H each).
    let per_layer = 2.0 * l * (4.0 * h * h + 2.0 * h * i) + 2.0 * 2.0 * l * l * h;
    cfg.num_layers as f64 * per_layer
}

/// Forward FLOPs of the text tower's pooling head on one row.
fn text_head_forward(cfg: &TextTowerConfig, embed_dim: i64) -> f64 {
    if cfg.pooling.projects() {
        2.0 * (cfg.hidden_size * embed_dim) as f64
    } else {
        0.0
    }
}

/// The FLOPs of one training step (forward and backward) of `model` over a global batch
/// of `batch` pairs, crops of `patch` pixels and token rows padded to `seq_len`; a frozen
/// text encoder (`frozen_text`) counts its forward only.
pub fn train_step_flops(
    model: &ModelConfig,
    batch: u64,
    patch: i64,
    seq_len: i64,
    frozen_text: bool,
) -> f64 {
    let b = batch as f64;
    let (stem, rest) = image_forward(&model.image, model.embed_dim, patch);
    // Forward once; backward: weight gradient only for the stem, both for the rest.
    let image = 2.0 * stem + 3.0 * rest;
    let text = || {
        let encoder = text_encoder_forward(&model.text, seq_len);
        let head = text_head_forward(&model.text, model.embed_dim);
        if frozen_text {
            encoder + 3.0 * head
        } else {
            3.0 * (encoder + head)
        }
    };
    let (per_pair, loss_rows) = match model.objective {
        Objective::CropClr => (2.0 * image, b),
        Objective::ImageText => (image + text(), b),
        // Three pairs of logits: crop-text twice, crop-crop once.
        Objective::ImageTextCrop => (2.0 * image + text(), 3.0 * b),
    };
    // The logits: a [B, E] x [E, B] product, and its two gradients.
    let logits = 3.0 * 2.0 * loss_rows * b * model.embed_dim as f64;
    b * per_pair + logits
}

/// Peak dense bf16 tensor-core TFLOP/s of a GPU by its name, for the ones we know (the
/// vendors' data sheets, without sparsity); `None` for others and for CPUs.
pub fn peak_bf16_tflops(gpu: &str) -> Option<f64> {
    let g = gpu.to_ascii_uppercase();
    if g.contains("H100") && g.contains("PCIE") {
        Some(756.0)
    } else if g.contains("H100") || g.contains("H200") || g.contains("GH200") {
        Some(989.0)
    } else if g.contains("A100") {
        Some(312.0)
    } else if g.contains("L40S") {
        Some(362.0)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Pooling;

    /// torchvision's ResNet-50 at 224 px: 4.09 GMACs (its documented 4.09 GFLOPS counts
    /// multiply-adds), i.e. 8.18e9 FLOPs with a 1000-way head.
    #[test]
    fn resnet50_at_224_px_costs_what_torchvision_documents() {
        let (stem, rest) = image_forward(&ImageTowerConfig::resnet50(), 1000, 224);
        let gmacs = (stem + rest) / 2e9;
        assert!((gmacs - 4.09).abs() < 0.02, "{gmacs} GMACs");
    }

    /// A text row costs linearly in its length plus the attention's quadratic term.
    #[test]
    fn text_cost_grows_with_the_square_of_the_length_in_attention_only() {
        let cfg = TextTowerConfig::distilbert_base(Pooling::EndToken);
        let f = |l| text_encoder_forward(&cfg, l);
        let quadratic = f(64) - 2.0 * f(32);
        let expect = 6.0 * 4.0 * (64.0f64.powi(2) - 2.0 * 32.0f64.powi(2)) * 768.0;
        assert!((quadratic - expect).abs() < 1.0, "{quadratic} vs {expect}");
    }

    #[test]
    fn a_frozen_text_encoder_counts_its_forward_once() {
        let m = ModelConfig::tiny(Objective::ImageText);
        let full = train_step_flops(&m, 8, 64, 16, false);
        let frozen = train_step_flops(&m, 8, 64, 16, true);
        let encoder = 8.0 * text_encoder_forward(&m.text, 16);
        assert!((full - frozen - 2.0 * encoder).abs() < 1.0);
    }

    #[test]
    fn known_gpus_have_a_peak_and_cpus_none() {
        assert_eq!(peak_bf16_tflops("NVIDIA H100 80GB HBM3"), Some(989.0));
        assert_eq!(peak_bf16_tflops("NVIDIA H100 PCIe"), Some(756.0));
        assert_eq!(peak_bf16_tflops("cpu"), None);
    }
}
