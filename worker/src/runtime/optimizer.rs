//! AdamW with two parameter groups, written over tch tensors so that its state can be
//! saved and restored exactly (tch's optimiser does not expose its moments).
//!
//! The update is PyTorch's `torch.optim.AdamW` (decoupled weight decay, "Decoupled Weight
//! Decay Regularization", Loshchilov & Hutter, <https://arxiv.org/abs/1711.05101>):
//! `p *= 1 - lr wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//! p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.
//! Weight decay applies to matrices and convolution kernels only: parameters with fewer
//! than two dimensions (norm weights, biases, the temperature) are exempt, the rule
//! OpenCLIP uses. State is saved as safetensors: `exp_avg.<name>`, `exp_avg_sq.<name>` and
//! a one-element `step` tensor.

use std::collections::BTreeMap;
use std::path::Path;

use tch::{Kind, Tensor};

/// Why the optimiser state could not be saved or restored.
#[derive(Debug, thiserror::Error)]
pub enum OptimizerError {
    /// libtorch failed reading or writing the state.
    #[error("optimizer state: {0}")]
    Torch(#[from] tch::TchError),
    /// A temporary file for the state failed.
    #[error("optimizer state: {0}")]
    Io(#[from] std::io::Error),
    /// The saved state does not fit the model's parameters.
    #[error("optimizer state does not fit this model: {0}")]
    Mismatch(String),
}

/// AdamW hyper-parameters (the learning rate is given per step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// `(beta1, beta2)`.
    pub betas: (f64, f64),
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay of the decayed group.
    pub weight_decay: f64,
    /// Whether parameters with fewer than two dimensions are exempt from weight decay.
    pub exempt_vectors: bool,
}

impl AdamWConfig {
    /// The settings of a config's `[optim]` section.
    pub fn from_optim(o: &crate::config::OptimConfig) -> Self {
        Self {
            betas: (o.betas[0], o.betas[1]),
            eps: o.eps,
            weight_decay: o.weight_decay,
            exempt_vectors: o.no_decay_norm_bias_temperature,
        }
    }
}

struct Slot {
    param: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    decay: bool,
}

/// The optimiser: one slot per trained parameter, by name.
pub struct AdamW {
    cfg: AdamWConfig,
    slots: BTreeMap<String, Slot>,
    step: i64,
}

impl std::fmt::Debug for AdamW {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdamW")
            .field("cfg", &self.cfg)
            .field("params", &self.slots.len())
            .field("step", &self.step)
            .finish()
    }
}

impl AdamW {
    /// An optimiser over `params` (name, tensor that requires grad), moments at zero.
    pub fn new(params: impl IntoIterator<Item = (String, Tensor)>, cfg: AdamWConfig) -> Self {
        let slots = params
            .into_iter()
            .map(|(name, param)| {
                let decay = !cfg.exempt_vectors || param.dim() >= 2;
                let slot = Slot {
                    exp_avg: param.zeros_like().detach(),
                    exp_avg_sq: param.zeros_like().detach(),
                    param,
                    decay,
                };
                (name, slot)
            })
            .collect();
        Self {
            cfg,
            slots,
            step: 0,
        }
    }

    /// Steps taken.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// Names of the parameters with and without weight decay, in that order.
    pub fn groups(&self) -> (Vec<&str>, Vec<&str>) {
        let names = |decay: bool| {
            self.slots
                .iter()
                .filter(|(_, s)| s.decay == decay)
                .map(|(k, _)| k.as_str())
                .collect()
        };
        (names(true), names(false))
    }

    /// Sets every gradient to zero.
    pub fn zero_grad(&mut self) {
        for s in self.slots.values_mut() {
            let mut g = s.param.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// Global L2 norm of the gradients; scales them down to `max_norm` when above it
    /// (as `torch.nn.utils.clip_grad_norm_`). Returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: Option<f64>) -> f64 {
        let grads: Vec<Tensor> = self
            .slots
            .values()
            .map(|s| s.param.grad())
            .filter(|g| g.defined())
            .collect();
        if grads.is_empty() {
            return 0.0;
        }
        let norms: Vec<Tensor> = grads
            .iter()
            .map(|g| g.norm().to_kind(Kind::Double))
            .collect();
        let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
        if let Some(max) = max_norm {
            let coef = max / (total + 1e-6);
            if coef < 1.0 {
                for mut g in grads {
                    let _ = g.g_mul_scalar_(coef);
                }
            }
        }
        total
    }

    /// One AdamW update at learning rate `lr` of every parameter that has a gradient.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let (b1, b2) = self.cfg.betas;
        let t = self.step as i32;
        let bc1 = 1.0 - b1.powi(t);
        let bc2_sqrt = (1.0 - b2.powi(t)).sqrt();
        let step_size = lr / bc1;
        tch::no_grad(|| {
            for s in self.slots.values_mut() {
                let g = s.param.grad();
                if !g.defined() {
                    continue;
                }
                if s.decay && self.cfg.weight_decay != 0.0 {
                    let _ = s.param.g_mul_scalar_(1.0 - lr * self.cfg.weight_decay);
                }
                let _ = s.exp_avg.lerp_(&g, 1.0 - b1);
                let _ = s.exp_avg_sq.g_mul_scalar_(b2);
                let _ = s.exp_avg_sq.addcmul_(&g, &(&g * (1.0 - b2)));
                let denom = s.exp_avg_sq.sqrt() / bc2_sqrt + self.cfg.eps;
                let _ = s.param.addcdiv_(&(&s.exp_avg * -step_size), &denom);
            }
        });
    }

    /// The state (moments and step count) as safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, OptimizerError> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("optimizer.safetensors");
        self.save(&path)?;
        Ok(std::fs::read(&path)?)
    }

    /// Restores a state from [`to_bytes`](Self::to_bytes).
    pub fn load_bytes(&mut self, bytes: &[u8]) -> Result<(), OptimizerError> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("optimizer.safetensors");
        std::fs::write(&path, bytes)?;
        self.load(&path)
    }

    /// Writes the state (moments and step count) as safetensors to `path`.
    pub fn save(&self, path: &Path) -> Result<(), OptimizerError> {
        let mut named: Vec<(String, Tensor)> = Vec::with_capacity(2 * self.slots.len() + 1);
        for (name, s) in &self.slots {
            named.push((
                format!("exp_avg.{name}"),
                s.exp_avg.to_device(tch::Device::Cpu),
            ));
            named.push((
                format!("exp_avg_sq.{name}"),
                s.exp_avg_sq.to_device(tch::Device::Cpu),
            ));
        }
        named.push(("step".into(), Tensor::from_slice(&[self.step])));
        Tensor::write_safetensors(&named, path)?;
        Ok(())
    }

    /// Restores a state written by [`save`](Self::save) for the same parameters.
    pub fn load(&mut self, path: &Path) -> Result<(), OptimizerError> {
        let file: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)?.into_iter().collect();
        let step = file
            .get("step")
            .ok_or_else(|| OptimizerError::Mismatch("no `step` entry".into()))?
            .int64_value(&[0]);
        let expected = 2 * self.slots.len() + 1;
        if file.len() != expected {
            return Err(OptimizerError::Mismatch(format!(
                "{} entries, this model's optimizer has {expected}",
                file.len()
            )));
        }
        tch::no_grad(|| -> Result<(), OptimizerError> {
            for (name, s) in self.slots.iter_mut() {
                for (prefix, dst) in [
                    ("exp_avg", &mut s.exp_avg),
                    ("exp_avg_sq", &mut s.exp_avg_sq),
                ] {
                    let key = format!("{prefix}.{name}");
                    let src = file
                        .get(&key)
                        .ok_or_else(|| OptimizerError::Mismatch(format!("missing {key}")))?;
                    if src.size() != dst.size() {
                        return Err(OptimizerError::Mismatch(format!(
                            "{key} has shape {:?}, the parameter {:?}",
                            src.size(),
                            dst.size()
                        )));
                    }
                    dst.f_copy_(src)?;
                }
            }
            Ok(())
        })?;
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn cfg(weight_decay: f64) -> AdamWConfig {
        AdamWConfig {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay,
            exempt_vectors: true,
        }
    }

    /// The update written out in f64 scalars, for one element.
    fn reference(p0: f64, grads: &[f64], lr: f64, wd: f64) -> f64 {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
        for (i, g) in grads.iter().enumerate() {
            let t = (i + 1) as i32;
            p *= 1.0 - lr * wd;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let mhat = m / (1.0 - b1.powi(t));
            let denom = (v / (1.0 - b2.powi(t))).sqrt() + eps;
            p -= lr * mhat / denom;
        }
        p
    }

    #[test]
    fn matches_the_adamw_formula_and_exempts_vectors_from_decay() {
        let w = Tensor::from_slice(&[0.5f64, -1.0, 2.0, 0.25])
            .view([2, 2])
            .set_requires_grad(true);
        let b = Tensor::from_slice(&[0.5f64, -1.0]).set_requires_grad(true);
        let mut opt = AdamW::new(
            [
                ("w".into(), w.shallow_clone()),
                ("b".into(), b.shallow_clone()),
            ],
            cfg(0.1),
        );
        assert_eq!(opt.groups(), (vec!["w"], vec!["b"]));
        let coefs = [1.0f64, -3.0, 0.5];
        for c in coefs {
            opt.zero_grad();
            ((&w * c).sum(Kind::Double) + (&b * c).sum(Kind::Double)).backward();
            opt.step(0.01);
        }
        let got_w = Vec::<f64>::try_from(w.view([-1])).unwrap();
        let got_b = Vec::<f64>::try_from(&b).unwrap();
        for (i, p0) in [0.5, -1.0, 2.0, 0.25].iter().enumerate() {
            assert!((got_w[i] - reference(*p0, &coefs, 0.01, 0.1)).abs() < 1e-12);
        }
        for (i, p0) in [0.5, -1.0].iter().enumerate() {
            assert!((got_b[i] - reference(*p0, &coefs, 0.01, 0.0)).abs() < 1e-12);
        }
    }

    #[test]
    fn clipping_scales_the_global_norm_down_only_when_above() {
        let a = Tensor::zeros([2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let mut opt = AdamW::new([("a".into(), a.shallow_clone())], cfg(0.0));
        (&a * Tensor::from_slice(&[3f32, 4.0]))
            .sum(Kind::Float)
            .backward();
        assert!((opt.clip_grad_norm(Some(10.0)) - 5.0).abs() < 1e-6);
        assert_eq!(Vec::<f32>::try_from(a.grad()).unwrap(), [3.0, 4.0]);
        assert!((opt.clip_grad_norm(Some(1.0)) - 5.0).abs() < 1e-6);
        let g = Vec::<f32>::try_from(a.grad()).unwrap();
        assert!(
            (g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5,
            "{g:?}"
        );
    }

    #[test]
    fn saved_state_restores_the_same_trajectory_and_refuses_another_model() {
        let make = || Tensor::from_slice(&[1f32, 2.0, 3.0]).set_requires_grad(true);
        let run = |opt: &mut AdamW, p: &Tensor, steps: usize| {
            for _ in 0..steps {
                opt.zero_grad();
                (p * p).sum(Kind::Float).backward();
                opt.step(0.1);
            }
        };
        let p = make();
        let mut straight = AdamW::new([("p".into(), p.shallow_clone())], cfg(0.0));
        run(&mut straight, &p, 4);

        let q = make();
        let mut first = AdamW::new([("p".into(), q.shallow_clone())], cfg(0.0));
        run(&mut first, &q, 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opt.safetensors");
        first.save(&path).unwrap();
        let mut second = AdamW::new([("p".into(), q.shallow_clone())], cfg(0.0));
        second.load(&path).unwrap();
        assert_eq!(second.steps(), 2);
        run(&mut second, &q, 2);
        assert_eq!(
            Vec::<f32>::try_from(&q).unwrap(),
            Vec::<f32>::try_from(&p).unwrap()
        );

        let other = Tensor::zeros([4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let mut wrong = AdamW::new([("p".into(), other)], cfg(0.0));
        let err = wrong.load(&path).unwrap_err().to_string();
        assert!(err.contains("exp_avg.p") && err.contains("[4]"), "{err}");
    }
}
