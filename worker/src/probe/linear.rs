//! The linear probe's classifier: multinomial logistic regression on standardised features,
//! trained full-batch with Adam from zero weights (the problem is convex, so the result
//! does not depend on an initialisation draw) and an L2 penalty on the weights.

use tch::{nn, nn::OptimizerConfig, Kind, Tensor};

use super::ProbeError;

/// Training settings of the classifier.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LogisticOptions {
    /// Full-batch Adam steps.
    pub steps: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// L2 penalty `weight_decay / 2 * ||W||^2` added to the mean cross-entropy (not on the
    /// bias).
    pub weight_decay: f64,
}

impl Default for LogisticOptions {
    fn default() -> Self {
        Self {
            steps: 300,
            lr: 0.05,
            weight_decay: 1e-3,
        }
    }
}

/// A trained classifier: the training set's feature means and deviations, then `x W^T + b`.
#[derive(Debug)]
pub struct LogisticModel {
    mean: Tensor,
    std: Tensor,
    weight: Tensor,
    bias: Tensor,
}

impl LogisticModel {
    /// Predicted class of each row of `features` `[N, D]` (as int64 `[N]`).
    pub fn predict(&self, features: &Tensor) -> Tensor {
        tch::no_grad(|| self.logits(features).argmax(1, false))
    }

    fn logits(&self, features: &Tensor) -> Tensor {
        let x = (features.to_kind(Kind::Float) - &self.mean) / &self.std;
        x.matmul(&self.weight.tr()) + &self.bias
    }
}

/// Fits multinomial logistic regression of `labels` (int64 `[N]`, values in
/// `0..classes`) on `features` (`[N, D]`), standardising each feature with the training
/// rows' mean and deviation (constant features become 0).
pub fn fit(
    features: &Tensor,
    labels: &Tensor,
    classes: usize,
    opts: &LogisticOptions,
) -> Result<LogisticModel, ProbeError> {
    let size = features.size();
    let bad = |reason: String| Err(ProbeError::Input(reason));
    if size.len() != 2 || size[0] == 0 {
        return bad(format!("features must be [N > 0, D], got {size:?}"));
    }
    if labels.size() != [size[0]] {
        return bad(format!(
            "labels must be [{}], got {:?}",
            size[0],
            labels.size()
        ));
    }
    if classes < 2 {
        return bad(format!("a probe needs at least 2 classes, got {classes}"));
    }
    let labels = labels.to_kind(Kind::Int64);
    let (lo, hi) = (labels.min().int64_value(&[]), labels.max().int64_value(&[]));
    if lo < 0 || hi >= classes as i64 {
        return bad(format!("labels must lie in 0..{classes}, got {lo}..={hi}"));
    }
    let x = features.to_kind(Kind::Float).detach();
    let mean = x.mean_dim(0, true, Kind::Float);
    let sd = x.std_dim(0, false, true);
    let std = sd.where_self(&sd.gt(1e-6), &Tensor::ones_like(&sd));
    let xs = (&x - &mean) / &std;
    let vs = nn::VarStore::new(x.device());
    let root = vs.root();
    let weight = root.zeros("weight", &[classes as i64, size[1]]);
    let bias = root.zeros("bias", &[classes as i64]);
    let mut opt = nn::Adam::default()
        .build(&vs, opts.lr)
        .map_err(|e| ProbeError::Input(format!("building the optimizer: {e}")))?;
    for _ in 0..opts.steps {
        let logits = xs.matmul(&weight.tr()) + &bias;
        let loss = logits.cross_entropy_for_logits(&labels)
            + weight.square().sum(Kind::Float) * (opts.weight_decay / 2.0);
        opt.backward_step(&loss);
    }
    Ok(LogisticModel {
        mean,
        std,
        weight: weight.detach(),
        bias: bias.detach(),
    })
}

/// Fraction of `predicted` equal to `labels` (0 for empty inputs).
pub fn accuracy(predicted: &Tensor, labels: &Tensor) -> f64 {
    let n = labels.numel();
    if n == 0 {
        return 0.0;
    }
    let hits = predicted
        .eq_tensor(&labels.to_kind(Kind::Int64))
        .sum(Kind::Int64)
        .int64_value(&[]);
    hits as f64 / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Rng;

    /// `n` points per class around well separated centres in 16 dimensions.
    fn blobs(classes: usize, n: usize, spread: f64, rng: &mut Rng) -> (Tensor, Tensor) {
        let d = 16;
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for c in 0..classes {
            for _ in 0..n {
                for j in 0..d {
                    let centre = if j == c { 10.0 } else { 0.0 };
                    xs.push((centre + spread * (rng.unit() - 0.5)) as f32);
                }
                ys.push(c as i64);
            }
        }
        (
            Tensor::from_slice(&xs).view([(classes * n) as i64, d as i64]),
            Tensor::from_slice(&ys),
        )
    }

    #[test]
    fn separable_classes_are_learned_exactly() {
        let mut rng = Rng::new(3);
        let (x, y) = blobs(5, 30, 2.0, &mut rng);
        let (xt, yt) = blobs(5, 20, 2.0, &mut rng);
        let model = fit(&x, &y, 5, &LogisticOptions::default()).unwrap();
        assert_eq!(accuracy(&model.predict(&xt), &yt), 1.0);
    }

    #[test]
    fn random_labels_give_chance_accuracy_on_new_data() {
        let mut rng = Rng::new(9);
        let classes = 4;
        let mk = |rng: &mut Rng, n: usize| {
            let xs: Vec<f32> = (0..n * 8).map(|_| rng.unit() as f32).collect();
            let ys: Vec<i64> = (0..n).map(|_| rng.below(classes) as i64).collect();
            (
                Tensor::from_slice(&xs).view([n as i64, 8]),
                Tensor::from_slice(&ys),
            )
        };
        let (x, y) = mk(&mut rng, 400);
        let (xt, yt) = mk(&mut rng, 2000);
        let model = fit(&x, &y, classes, &LogisticOptions::default()).unwrap();
        let acc = accuracy(&model.predict(&xt), &yt);
        assert!((0.18..0.32).contains(&acc), "accuracy {acc}, chance 0.25");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let x = Tensor::zeros([4, 3], (Kind::Float, tch::Device::Cpu));
        let y = Tensor::from_slice(&[0i64, 1, 2, 1]);
        assert!(fit(&x, &y, 2, &LogisticOptions::default()).is_err());
        assert!(fit(&x, &y, 1, &LogisticOptions::default()).is_err());
        assert!(fit(&x, &y.narrow(0, 0, 3), 3, &LogisticOptions::default()).is_err());
    }
}
