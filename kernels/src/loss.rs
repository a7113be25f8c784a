//! The contrastive objective: temperature (fixed or CLIP-style learnable) and the symmetric
//! InfoNCE loss.
//!
//! Follows CLIP ("Learning Transferable Visual Models From Natural Language Supervision",
//! Radford et al., 2021, <https://arxiv.org/abs/2103.00020>, its pseudo-code and the
//! OpenCLIP `ClipLoss`): logits `s * a b^T` of L2-normalised embeddings, the i-th row's
//! positive is the i-th column, `L = (CE(a->b) + CE(b->a)) / 2`. The learnable scale is
//! stored as its log (`logit_scale`, CLIP's parameter name), initialised at `ln(1/0.07)`,
//! and used as `min(exp(logit_scale), 100)`.

use crate::config::Temperature;
use tch::nn;
use tch::{Kind, Tensor};

/// The logit scale `1 / tau` of the loss.
#[derive(Debug)]
pub struct LogitScale {
    log_scale: Option<Tensor>,
    fixed: f64,
    max: f64,
}

impl LogitScale {
    /// A fixed scale, or a learnable one registered as `logit_scale` under `p`.
    pub fn new(p: &nn::Path, temperature: Temperature) -> Self {
        match temperature {
            Temperature::Fixed { logit_scale } => Self {
                log_scale: None,
                fixed: logit_scale,
                max: logit_scale,
            },
            Temperature::Learnable { init, max } => Self {
                log_scale: Some(p.var("logit_scale", &[], nn::Init::Const(init.ln()))),
                fixed: init,
                max,
            },
        }
    }

    /// The scale as a scalar tensor (differentiable when learnable; clamped at the max).
    pub fn value(&self) -> Tensor {
        match &self.log_scale {
            Some(log) => log.exp().clamp_max(self.max),
            None => Tensor::from(self.fixed as f32),
        }
    }

    /// Whether the scale is a trained parameter.
    pub fn is_learnable(&self) -> bool {
        self.log_scale.is_some()
    }
}

/// Row-wise L2 normalisation (`x / max(|x|, 1e-12)`, as `torch.nn.functional.normalize`).
pub fn l2_normalize(xs: &Tensor) -> Tensor {
    xs / xs.norm_scalaropt_dim(2.0, [-1], true).clamp_min(1e-12)
}

/// Symmetric InfoNCE of paired embeddings `a`, `b` (`[N, D]`, already normalised): logits
/// `scale * a b^T`, `(CE(logits, arange) + CE(logits^T, arange)) / 2`.
pub fn symmetric_infonce(a: &Tensor, b: &Tensor, scale: &Tensor) -> Tensor {
    let logits = a.matmul(&b.tr()) * scale.to_device(a.device());
    let labels = Tensor::arange(a.size()[0], (Kind::Int64, a.device()));
    (logits.cross_entropy_for_logits(&labels) + logits.tr().cross_entropy_for_logits(&labels)) / 2.0
}

/// The loss over the embedding *sides* of a batch (`[N, D]` each, row i of every side from
/// photo i): two sides (patch and text, or two crops) give [`symmetric_infonce`]; three
/// (two crops `a`, `b` and the text `t`: both objectives at once) give the mean of the
/// three pairs' losses, `(L(a, t) + L(b, t) + L(a, b)) / 3`.
pub fn sides_loss(sides: &[Tensor], scale: &Tensor) -> Tensor {
    match sides {
        [a, b] => symmetric_infonce(a, b, scale),
        [a, b, t] => {
            (symmetric_infonce(a, t, scale)
                + symmetric_infonce(b, t, scale)
                + symmetric_infonce(a, b, scale))
                / 3.0
        }
        _ => panic!(
            "a contrastive loss has two or three sides, got {}",
            sides.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn three_sides_average_the_three_pairs() {
        tch::manual_seed(3);
        let side = || l2_normalize(&Tensor::randn([5, 4], (Kind::Float, Device::Cpu)));
        let (a, b, t) = (side(), side(), side());
        let scale = Tensor::from(10f32);
        let pair = |x: &Tensor, y: &Tensor| symmetric_infonce(x, y, &scale).double_value(&[]);
        let both = sides_loss(&[a.copy(), b.copy(), t.copy()], &scale).double_value(&[]);
        let expected = (pair(&a, &t) + pair(&b, &t) + pair(&a, &b)) / 3.0;
        assert!((both - expected).abs() < 1e-6, "{both} vs {expected}");
        let two = sides_loss(&[a.copy(), t.copy()], &scale).double_value(&[]);
        assert_eq!(two, pair(&a, &t));
    }

    #[test]
    fn loss_is_zero_for_separated_pairs_and_ln_n_for_identical_embeddings() {
        let eye = Tensor::eye(4, (Kind::Float, Device::Cpu));
        let scale = Tensor::from(100f32);
        assert!(symmetric_infonce(&eye, &eye, &scale).double_value(&[]) < 1e-6);
        let same = l2_normalize(&Tensor::ones([4, 3], (Kind::Float, Device::Cpu)));
        let loss = symmetric_infonce(&same, &same, &scale).double_value(&[]);
        assert!((loss - 4f64.ln()).abs() < 1e-5, "{loss}");
    }

    #[test]
    fn learnable_scale_starts_at_init_and_is_clamped_at_max() {
        let vs = nn::VarStore::new(Device::Cpu);
        let s = LogitScale::new(&vs.root(), Temperature::clip());
        assert!(s.is_learnable());
        assert!((s.value().double_value(&[]) - 1.0 / 0.07).abs() < 1e-4);
        let vs = nn::VarStore::new(Device::Cpu);
        let s = LogitScale::new(
            &vs.root(),
            Temperature::Learnable {
                init: 250.0,
                max: 100.0,
            },
        );
        assert!((s.value().double_value(&[]) - 100.0).abs() < 1e-4);
        let fixed = LogitScale::new(&vs.root(), Temperature::default());
        assert!(!fixed.is_learnable());
        assert_eq!(fixed.value().double_value(&[]), 100.0);
    }

    #[test]
    fn l2_normalize_gives_unit_rows() {
        let x = Tensor::from_slice(&[3f32, 4.0, 0.0, 0.0]).view([2, 2]);
        let rows = Vec::<Vec<f32>>::try_from(&l2_normalize(&x)).unwrap();
        assert_eq!(rows, [[0.6, 0.8], [0.0, 0.0]]);
    }
}
