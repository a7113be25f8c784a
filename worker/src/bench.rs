//! Training-step timing on synthetic inputs (`worker bench step`): the trainer's step
//! (zero gradients, forward and backward of both towers, gradient clipping, AdamW) on a
//! fixed batch of random patches and token ids, so the model's cost is measured apart from
//! data loading. `tests/python/bench_train_step.py` builds the same model in PyTorch from
//! the same config and times the same step; the command runs both in one go.

use std::time::Instant;

use kernels::config::Objective;
use kernels::resnet::preprocess;
use serde::Serialize;
use tch::{Kind, Tensor};

use crate::collective::timed::Timed;
use crate::collective::Solo;
use crate::config::Config;
use crate::runtime::inputs::{StepInputs, TextInput};
use crate::runtime::model;
use crate::runtime::optimizer::{AdamW, AdamWConfig};
use crate::runtime::step::{forward_backward, split_variables, StepSettings};
use crate::runtime::timing::{Phase, PhaseClock};
use crate::runtime::RuntimeError;

/// Timings of one implementation.
#[derive(Debug, Clone, Serialize)]
pub struct StepTimes {
    /// Milliseconds of each timed step.
    pub step_ms: Vec<f64>,
    /// Their median.
    pub median_ms: f64,
    /// Trained parameters.
    pub params: i64,
    /// Loss of the first and the last timed step.
    pub loss_first: f64,
    /// See `loss_first`.
    pub loss_last: f64,
}

/// The median of `xs` (0 for none).
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Times `steps` training steps (after `warmup` untimed ones) of `cfg`'s model on a batch
/// of `batch` random patches and token rows of `seq_len` (lengths between 3/4 of it and
/// all of it), on the config's device and precision (bf16 autocast when it says so).
pub fn time_steps(
    cfg: &Config,
    batch: i64,
    seq_len: i64,
    steps: usize,
    warmup: usize,
    phase_timing: bool,
) -> Result<StepTimes, RuntimeError> {
    let spec = &cfg.spec;
    let device = model::torch_device(cfg.device)?;
    let (vs, model) = model::build(cfg, device, 0)?;
    let (trained, buffers) = split_variables(&vs);
    let params = trained.iter().map(|(_, t)| t.numel() as i64).sum();
    let mut opt = AdamW::new(trained, AdamWConfig::from_optim(&spec.optim));
    let side = i64::from(spec.data.patch_px);
    let crops = i64::from(spec.model.objective.crops_per_sample());
    let pixels = Tensor::randint(
        256,
        [batch * crops, side, side, 3],
        (Kind::Uint8, tch::Device::Cpu),
    );
    let vocab = spec.model.text.vocab_size;
    let ids = Tensor::randint_low(
        1000.min(vocab - 1),
        vocab,
        [batch, seq_len],
        (Kind::Int64, tch::Device::Cpu),
    );
    let lengths = Tensor::randint_low(
        seq_len * 3 / 4,
        seq_len + 1,
        [batch, 1],
        (Kind::Int64, tch::Device::Cpu),
    );
    let mask = Tensor::arange(seq_len, (Kind::Int64, tch::Device::Cpu))
        .unsqueeze(0)
        .lt_tensor(&lengths)
        .to_kind(Kind::Int64);
    let ids = &ids * &mask;
    let mut times = Vec::with_capacity(steps);
    let mut losses = Vec::with_capacity(steps);
    let clock = PhaseClock::for_device(device);
    let mut solo = Solo;
    let mut timed = Timed::new(&mut solo);
    for i in 0..warmup + steps {
        let t0 = Instant::now();
        if phase_timing {
            timed.take_spent();
            clock.start();
        }
        // The u8 -> normalised float conversion is part of every real step.
        let images = preprocess(&pixels, device)?;
        let inputs = match spec.model.objective {
            Objective::ImageText => StepInputs::ImageText {
                images,
                text: TextInput::Tokens {
                    ids: ids.to_device(device),
                    mask: mask.to_device(device),
                },
            },
            Objective::CropClr => StepInputs::CropPairs {
                a: images.narrow(0, 0, batch),
                b: images.narrow(0, batch, batch),
            },
            Objective::ImageTextCrop => StepInputs::CropsAndText {
                a: images.narrow(0, 0, batch),
                b: images.narrow(0, batch, batch),
                text: TextInput::Tokens {
                    ids: ids.to_device(device),
                    mask: mask.to_device(device),
                },
            },
        };
        opt.zero_grad();
        let settings = StepSettings {
            buffers: &buffers,
            micro: None,
            train: true,
            sync_batch_norm: false,
            seed: 0,
            step: i as u64,
            embed_dim: spec.model.embed_dim,
            bf16: spec.train.precision == crate::config::Precision::Bf16,
            clock: phase_timing.then_some(&clock),
        };
        let out = if phase_timing {
            forward_backward(&model, &inputs, &settings, &mut timed, None)?
        } else {
            forward_backward(&model, &inputs, &settings, &mut Solo, None)?
        };
        opt.clip_grad_norm(spec.optim.grad_clip_norm);
        opt.step(spec.optim.lr);
        if phase_timing {
            // What the trainer adds per step: the last laps, reading the phases, the time
            // in collectives and the step's model FLOPs.
            clock.lap(Phase::Optimizer);
            let phases = clock.finish();
            let flops = kernels::flops::train_step_flops(
                &spec.model,
                batch as u64,
                side,
                seq_len,
                spec.model_init.freeze_text,
            );
            std::hint::black_box((phases, timed.take_spent(), flops));
        }
        if let tch::Device::Cuda(i) = device {
            // GPU work is asynchronous: the step ends when the device is done.
            tch::Cuda::synchronize(i as i64);
        }
        if i >= warmup {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
            losses.push(out.loss);
        }
    }
    Ok(StepTimes {
        median_ms: median(&times),
        step_ms: times,
        params,
        loss_first: losses.first().copied().unwrap_or(f64::NAN),
        loss_last: losses.last().copied().unwrap_or(f64::NAN),
    })
}

/// The per-step work of the trainer's phase timing alone (what `time_steps` adds with
/// `phase_timing`: the clock's start, four laps and read-out, the time in collectives, the
/// step's model FLOPs), timed over `iterations` steps without a model: seconds per step.
/// Step-time medians on a shared machine swing by more than this; this is the cost itself.
pub fn phase_timing_cost(cfg: &Config, seq_len: i64, iterations: u32) -> f64 {
    let spec = &cfg.spec;
    let clock = PhaseClock::for_device(tch::Device::Cpu);
    let mut solo = Solo;
    let mut timed = Timed::new(&mut solo);
    let t0 = Instant::now();
    for i in 0..iterations {
        timed.take_spent();
        clock.start();
        for phase in [
            Phase::Forward,
            Phase::Backward,
            Phase::GradReduce,
            Phase::Optimizer,
        ] {
            clock.lap(phase);
        }
        let phases = clock.finish();
        let flops = kernels::flops::train_step_flops(
            &spec.model,
            u64::from(spec.train.batch_size) + u64::from(i % 2),
            i64::from(spec.data.patch_px),
            seq_len,
            spec.model_init.freeze_text,
        );
        std::hint::black_box((phases, timed.take_spent(), flops));
    }
    t0.elapsed().as_secs_f64() / f64::from(iterations.max(1))
}
