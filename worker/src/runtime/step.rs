//! One optimiser step's forward and backward pass: a batch from the data pipeline becomes
//! tensors, its sides are embedded (patches and texts, two crops, or both), and the
//! contrastive loss over the whole batch ([`sides_loss`]) is back-propagated, optionally in
//! micro-batches.
//!
//! Micro-batches follow OpenCLIP's gradient accumulation with a feature cache
//! (`open_clip/training/train.py`, `accum_freq`): a first pass without gradients embeds
//! every micro-batch; then each micro-batch is embedded again with gradients, put in place
//! of its cached rows, and the loss over the full batch is back-propagated. The gradients
//! of the passes add up to the full-batch gradient, so every sample still sees the whole
//! batch's negatives. Two details make the sum exact: the logit scale keeps its gradient in
//! the first pass only (OpenCLIP counts it once per micro-batch), and each micro-batch's
//! dropout masks come from a seed fixed by (step, micro-batch), so both passes draw the
//! same masks. Batch-norm running statistics are restored after the first pass, so they
//! move once per micro-batch as without the cache.

use kernels::autocast::Autocast;
use kernels::joint::JointModel;
use kernels::loss::sides_loss;
use kernels::resnet::NormMode;
use tch::{nn, Kind, Tensor};

use super::inputs::{embed_sides, StepInputs};
use super::sync_norm::StepNorms;
use super::timing::{Phase, PhaseClock};
use super::RuntimeError;
use crate::collective::{Collective, GradBuckets};

/// Seed of the random draws (dropout) of micro-batch `micro` of step `step`.
pub fn draw_seed(base: u64, step: u64, micro: u64) -> i64 {
    // SplitMix64 finaliser over the three numbers: distinct steps get unrelated seeds.
    let mut z = base
        .wrapping_add(step.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(micro.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as i64 & i64::MAX
}

/// What a step's forward/backward computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLoss {
    /// Loss over the whole batch.
    pub loss: f64,
    /// The logit scale used.
    pub logit_scale: f64,
}

/// How a step runs, besides its inputs.
#[derive(Debug)]
pub struct StepSettings<'a> {
    /// The model's batch-norm statistics, restored after the cache pass.
    pub buffers: &'a [Tensor],
    /// Pairs per forward/backward pass (`None`: the whole local batch at once).
    pub micro: Option<i64>,
    /// Training mode (batch statistics, dropout).
    pub train: bool,
    /// Batch-norm statistics over every rank's samples (in training mode).
    pub sync_batch_norm: bool,
    /// Base seed of the random draws.
    pub seed: u64,
    /// The optimiser step (0-based), for the draws.
    pub step: u64,
    /// Width of the embeddings (for ranks whose local batch is empty).
    pub embed_dim: i64,
    /// Run the towers under bf16 autocast (weights, gradients, logits and loss stay
    /// float32).
    pub bf16: bool,
    /// Marks the forward and backward phases when given.
    pub clock: Option<&'a PhaseClock>,
}

/// Runs forward and backward of this rank's `inputs` over the global batch of every rank
/// of `coll`, leaving in the parameters' `.grad` this rank's part of the full-batch
/// gradient: summed over ranks ([`GradBuckets::reduce`]) it is the
/// gradient of the loss over the whole global batch.
///
/// The other ranks' embeddings come from an all-gather (without gradient), this rank's
/// keep theirs, and the loss is the full global-batch loss on every rank. Locally the
/// batch runs in micro-batches of at most `micro` pairs with the feature cache (see the
/// module documentation). The logit scale keeps its gradient on rank 0's first pass only,
/// so the sum counts it once. Dropout masks are drawn from [`draw_seed`]. With
/// synchronised batch norm every pass is a collective call, so ranks pad their micro-batch
/// passes with empty ones up to the largest count.
///
/// With `grads`, the last backward pass goes through [`GradBuckets::backward`], which
/// starts summing gradient buckets over the ranks while it runs (unless batch norms are
/// synchronised: their backward sums would interleave with the buckets'); the caller
/// finishes with [`GradBuckets::reduce`].
pub fn forward_backward(
    model: &JointModel,
    inputs: &StepInputs,
    s: &StepSettings<'_>,
    coll: &mut dyn Collective,
    mut grads: Option<&mut GradBuckets>,
) -> Result<StepLoss, RuntimeError> {
    let n = inputs.len();
    let (rank, world) = (coll.rank(), coll.world());
    let lap = |phase| {
        if let Some(clock) = s.clock {
            clock.lap(phase);
        }
    };
    let scale = model.logit_scale.value();
    let logit_scale = scale.double_value(&[]);
    let micro = s.micro.unwrap_or(n).clamp(1, n.max(1));
    let mut chunks: Vec<(i64, i64)> = (0..n)
        .step_by(micro as usize)
        .map(|c| (c, micro.min(n - c)))
        .collect();
    let norms = StepNorms::new(s.sync_batch_norm, s.train, world);
    if norms.is_synced() {
        let counts = coll.all_gather(&Tensor::from_slice(&[chunks.len() as i64]))?;
        let most = counts
            .iter()
            .map(|c| c.int64_value(&[0]))
            .max()
            .unwrap_or(0);
        chunks.resize(most.max(1) as usize, (n, 0));
    }
    let seed_of = |j: usize| draw_seed(s.seed, s.step, ((rank as u64) << 32) | j as u64);
    // The towers under bf16 autocast when asked; their embeddings back in float32, so
    // the logits and the loss are float32.
    let autocast = || -> Result<Option<Autocast>, RuntimeError> {
        Ok(s.bf16
            .then(|| Autocast::bf16(inputs.device()))
            .transpose()?)
    };
    let float = |sides: Vec<Tensor>| -> Vec<Tensor> {
        sides.iter().map(|t| t.to_kind(Kind::Float)).collect()
    };
    let embed =
        |part: &StepInputs, coll: &mut dyn Collective| -> Result<Vec<Tensor>, RuntimeError> {
            let _autocast = autocast()?;
            Ok(float(norms.embed(model, part, coll)?))
        };
    // One rank and one pass: plain backward, unless buckets are to be summed during it
    // (a one-rank NCCL group, formed to exercise that path, takes the path of many ranks).
    let overlapped = grads.as_deref().is_some_and(GradBuckets::overlaps);
    if world == 1 && chunks.len() <= 1 && !overlapped {
        tch::manual_seed(seed_of(0));
        let sides = {
            let _autocast = autocast()?;
            float(embed_sides(model, inputs, NormMode::local(s.train))?)
        };
        let loss = sides_loss(&sides, &scale);
        lap(Phase::Forward);
        loss.backward();
        lap(Phase::Backward);
        return Ok(StepLoss {
            loss: loss.double_value(&[]),
            logit_scale,
        });
    }
    // Pass 1: this rank's embeddings without gradient (the feature cache; cache[k][j] is
    // side k of micro-batch j), unless the local batch is one pass anyway, then everyone
    // else's.
    let sides = inputs.sides();
    let one_pass = chunks.len() == 1;
    let mut first_pass = None;
    let mut cache: Vec<Vec<Tensor>> = (0..sides)
        .map(|_| Vec::with_capacity(chunks.len()))
        .collect();
    if one_pass {
        tch::manual_seed(seed_of(0));
        let embedded = embed(inputs, coll)?;
        for (k, e) in embedded.iter().enumerate() {
            cache[k].push(e.detach());
        }
        first_pass = Some(embedded);
    } else if !chunks.is_empty() {
        let saved: Vec<Tensor> = s.buffers.iter().map(Tensor::copy).collect();
        tch::no_grad(|| -> Result<(), RuntimeError> {
            for (j, &(start, len)) in chunks.iter().enumerate() {
                tch::manual_seed(seed_of(j));
                for (k, e) in embed(&inputs.slice(start, len), coll)?
                    .into_iter()
                    .enumerate()
                {
                    cache[k].push(e);
                }
            }
            for (dst, src) in s.buffers.iter().zip(&saved) {
                dst.shallow_clone().copy_(src);
            }
            Ok(())
        })?;
    }
    let local = |cache: &[Tensor]| -> Tensor {
        if cache.is_empty() {
            Tensor::zeros([0, s.embed_dim], (Kind::Float, inputs.device()))
        } else {
            Tensor::cat(cache, 0)
        }
    };
    let all: Vec<Vec<Tensor>> = cache
        .iter()
        .map(|c| coll.all_gather(&local(c)))
        .collect::<Result<_, _>>()?;
    lap(Phase::Forward);
    // Pass 2: each local micro-batch with gradients against everything else.
    let mut loss_value = f64::NAN;
    let passes = chunks.len().max(1);
    for j in 0..passes {
        let mine = match first_pass.take() {
            Some(embedded) => embedded,
            None if chunks.is_empty() => (0..sides).map(|_| local(&[])).collect(),
            None => {
                let (start, len) = chunks[j];
                tch::manual_seed(seed_of(j));
                embed(&inputs.slice(start, len), coll)?
            }
        };
        let rows = |all: &[Tensor], cache: &[Tensor], mine: Tensor| -> Tensor {
            let mut rows: Vec<Tensor> = Vec::with_capacity(world + cache.len());
            rows.extend(all[..rank].iter().map(Tensor::shallow_clone));
            rows.extend(cache.iter().map(Tensor::shallow_clone));
            if !cache.is_empty() {
                rows[rank + j] = mine;
            }
            rows.extend(all[rank + 1..].iter().map(Tensor::shallow_clone));
            Tensor::cat(&rows, 0)
        };
        let keep_scale = rank == 0 && j == 0;
        let sc = if keep_scale {
            scale.shallow_clone()
        } else {
            scale.detach()
        };
        let full: Vec<Tensor> = mine
            .into_iter()
            .enumerate()
            .map(|(k, m)| rows(&all[k], &cache[k], m))
            .collect();
        let loss = sides_loss(&full, &sc);
        lap(Phase::Forward);
        if loss.requires_grad() {
            match grads.as_deref_mut() {
                Some(g) if j + 1 == passes && !norms.is_synced() => g.backward(&loss, coll)?,
                _ => norms.backward(&loss, coll)?,
            }
        }
        lap(Phase::Backward);
        loss_value = loss.double_value(&[]);
    }
    Ok(StepLoss {
        loss: loss_value,
        logit_scale,
    })
}

/// The model's parameters that train (name, tensor, sorted by name) and its batch-norm
/// running statistics, from the store the model was built in. Frozen parameters are in
/// neither list.
pub fn split_variables(vs: &nn::VarStore) -> (Vec<(String, Tensor)>, Vec<Tensor>) {
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let buffers = named
        .iter()
        .filter(|(name, _)| name.contains("running_"))
        .map(|(_, t)| t.shallow_clone())
        .collect();
    let trained = named
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    (trained, buffers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::Solo;
    use crate::runtime::inputs::TextInput;
    use kernels::config::{ModelConfig, Objective};
    use kernels::resnet::preprocess;
    use tch::Device;
    use tch::Kind;

    /// Eval-mode settings (batch norm on running statistics: independent of the split).
    fn eval_settings(buffers: &[Tensor], micro: Option<i64>, bf16: bool) -> StepSettings<'_> {
        StepSettings {
            buffers,
            micro,
            train: false,
            sync_batch_norm: false,
            seed: 0,
            step: 0,
            embed_dim: 8,
            bf16,
            clock: None,
        }
    }

    fn zero_grads(vs: &nn::VarStore) {
        for (_, t) in vs.variables() {
            let mut g = t.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    fn grads(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
        let mut g: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(k, t)| (k, t.grad().copy()))
            .collect();
        g.sort_by(|a, b| a.0.cmp(&b.0));
        g
    }

    /// The same gradients whether the batch of 6 goes at once or in micro-batches of 4 + 2
    /// (eval-mode batch norm, which does not depend on the batch, so the two must agree).
    #[test]
    fn the_feature_cache_gives_the_full_batch_gradient() {
        let _rng = crate::torch_rng_lock();
        for objective in [
            Objective::ImageText,
            Objective::CropClr,
            Objective::ImageTextCrop,
        ] {
            tch::manual_seed(3);
            let pix = |seed| {
                tch::manual_seed(seed);
                preprocess(
                    &Tensor::randint(256, [6, 32, 32, 3], (Kind::Uint8, Device::Cpu)),
                    Device::Cpu,
                )
                .unwrap()
            };
            let text = || {
                tch::manual_seed(8);
                let ids = Tensor::randint_low(1, 60, [6, 5], (Kind::Int64, Device::Cpu));
                let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 0]).repeat([6, 1]);
                TextInput::Tokens { ids, mask }
            };
            let inputs = match objective {
                Objective::ImageText => StepInputs::ImageText {
                    images: pix(4),
                    text: text(),
                },
                Objective::CropClr => StepInputs::CropPairs {
                    a: pix(5),
                    b: pix(6),
                },
                Objective::ImageTextCrop => StepInputs::CropsAndText {
                    a: pix(5),
                    b: pix(6),
                    text: text(),
                },
            };
            let vs = nn::VarStore::new(Device::Cpu);
            let model = JointModel::new(&vs.root(), &ModelConfig::tiny(objective)).unwrap();
            let (_, buffers) = split_variables(&vs);
            let settings = |micro| eval_settings(&buffers, micro, false);
            let full = forward_backward(&model, &inputs, &settings(None), &mut Solo, None).unwrap();
            let g_full = grads(&vs);
            zero_grads(&vs);
            let micro =
                forward_backward(&model, &inputs, &settings(Some(4)), &mut Solo, None).unwrap();
            assert!(
                (full.loss - micro.loss).abs() < 1e-5,
                "{objective:?}: {full:?} vs {micro:?}"
            );
            for ((name, a), (_, b)) in g_full.iter().zip(grads(&vs)) {
                let diff = f64::try_from((a - &b).abs().max()).unwrap();
                let scale = f64::try_from(a.abs().max()).unwrap();
                assert!(
                    diff <= 1e-5 * scale.max(1.0),
                    "{objective:?} {name}: {diff} (max {scale})"
                );
            }
            let logit = vs.variables()["logit_scale"].grad();
            assert!(
                logit.abs().sum(Kind::Float).double_value(&[]) > 0.0,
                "temperature trains"
            );
        }
    }

    /// bf16 autocast: the loss stays float32 and close to the float32 step, the weights'
    /// gradients are float32 (master weights), and the towers really ran in bf16 (the
    /// loss differs), with and without micro-batches.
    #[test]
    fn a_bf16_step_keeps_float32_loss_and_gradients_close_to_float32() {
        let _rng = crate::torch_rng_lock();
        tch::manual_seed(7);
        let images = preprocess(
            &Tensor::randint(256, [6, 32, 32, 3], (Kind::Uint8, Device::Cpu)),
            Device::Cpu,
        )
        .unwrap();
        let ids = Tensor::randint_low(1, 60, [6, 5], (Kind::Int64, Device::Cpu));
        let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 0]).repeat([6, 1]);
        let inputs = StepInputs::ImageText {
            images,
            text: TextInput::Tokens { ids, mask },
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let model = JointModel::new(&vs.root(), &ModelConfig::tiny(Objective::ImageText)).unwrap();
        let (_, buffers) = split_variables(&vs);
        let run = |bf16, micro| {
            zero_grads(&vs);
            let settings = eval_settings(&buffers, micro, bf16);
            let out = forward_backward(&model, &inputs, &settings, &mut Solo, None).unwrap();
            (out.loss, grads(&vs))
        };
        let (fp32, g32) = run(false, None);
        for micro in [None, Some(4)] {
            let (bf16, g16) = run(true, micro);
            assert!(bf16 != fp32, "autocast changed nothing ({micro:?})");
            assert!((bf16 - fp32).abs() < 2e-2 * fp32.abs(), "{bf16} vs {fp32}");
            for (name, b) in &g16 {
                assert_eq!(b.kind(), Kind::Float, "{name}");
            }
            // The whole gradient points the same way (bf16 keeps ~3 digits per op).
            let flat = |g: &[(String, Tensor)]| {
                Tensor::cat(
                    &g.iter().map(|(_, t)| t.flatten(0, -1)).collect::<Vec<_>>(),
                    0,
                )
            };
            let (a, b) = (flat(&g32), flat(&g16));
            let cosine = f64::try_from((&a * &b).sum(Kind::Float) / (a.norm() * b.norm())).unwrap();
            assert!(cosine > 0.99, "gradient cosine {cosine} ({micro:?})");
        }
    }

    #[test]
    fn draw_seeds_differ_by_step_and_micro_batch_and_are_non_negative() {
        let seeds = [
            draw_seed(0, 0, 0),
            draw_seed(0, 1, 0),
            draw_seed(0, 0, 1),
            draw_seed(1, 0, 0),
        ];
        for (i, a) in seeds.iter().enumerate() {
            assert!(*a >= 0);
            for b in &seeds[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(draw_seed(7, 8, 9), draw_seed(7, 8, 9));
    }
}
