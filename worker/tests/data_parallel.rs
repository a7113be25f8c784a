//! Data-parallel training over the CPU collective: two ranks with half the batch each give
//! the same losses and weights as one rank with the whole batch (feature cache on or off),
//! because every rank computes the loss over the all-gathered global batch and the
//! gradients are summed. Batch norm runs on running statistics here (the normalisation
//! then does not depend on the batch; per-rank batch statistics legitimately differ).

use std::net::TcpListener;
use std::time::Duration;

use kernels::config::{ModelConfig, Objective};
use kernels::joint::JointModel;
use kernels::resnet::preprocess;
use tch::{nn, Device, Kind, Tensor};
use worker::collective::tcp::TcpCollective;
use worker::collective::{all_reduce_gradients, broadcast_variables, Collective, Solo};
use worker::train::optimizer::{AdamW, AdamWConfig};
use worker::train::step::{forward_backward, split_variables, StepInputs, StepSettings, TextInput};

const GLOBAL: i64 = 8;
const STEPS: u64 = 3;

/// The global batch, fixed by a seed independent of libtorch's generator.
fn global_batch() -> (Tensor, Tensor, Tensor, Tensor) {
    let n = GLOBAL as usize;
    let pix: Vec<u8> = (0..n * 2 * 32 * 32 * 3)
        .map(|i| ((i * 2654435761) >> 7) as u8)
        .collect();
    let pixels = Tensor::from_slice(&pix).view([2 * GLOBAL, 32, 32, 3]);
    let images = preprocess(&pixels, Device::Cpu).unwrap();
    let ids: Vec<i64> = (0..n * 5).map(|i| 1 + ((i * 7919) % 59) as i64).collect();
    let ids = Tensor::from_slice(&ids).view([GLOBAL, 5]);
    let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 0]).repeat([GLOBAL, 1]);
    (
        images.narrow(0, 0, GLOBAL),
        images.narrow(0, GLOBAL, GLOBAL),
        ids,
        mask,
    )
}

/// Trains `STEPS` steps as rank `coll.rank()` of `coll.world()` on its share of the global
/// batch; returns the losses and the final variables by name.
fn run(
    objective: Objective,
    micro: Option<i64>,
    coll: &mut dyn Collective,
    init_seed: i64,
) -> RunResult {
    tch::manual_seed(init_seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig::tiny(objective);
    let model = JointModel::new(&vs.root(), &cfg).unwrap();
    broadcast_variables(coll, &vs).unwrap();
    let (trained, buffers) = split_variables(&vs);
    let params: Vec<Tensor> = trained.iter().map(|(_, t)| t.shallow_clone()).collect();
    let mut opt = AdamW::new(
        trained,
        AdamWConfig {
            betas: (0.9, 0.999),
            // Attention key biases have a gradient of exactly zero in theory and float
            // noise in practice; with eps = 1e-8 Adam scales that noise up to full
            // lr-sized steps that differ between any two summation orders. A larger eps
            // keeps the comparison about the gradients.
            eps: 1e-3,
            weight_decay: 0.1,
            exempt_vectors: true,
        },
    );
    let local = GLOBAL / coll.world() as i64;
    let start = local * coll.rank() as i64;
    let (a, b, ids, mask) = global_batch();
    let cut = |t: &Tensor| t.narrow(0, start, local);
    let inputs = match objective {
        Objective::ImageText => StepInputs::ImageText {
            images: cut(&a),
            text: TextInput::Tokens {
                ids: cut(&ids),
                mask: cut(&mask),
            },
        },
        Objective::CropClr => StepInputs::CropPairs {
            a: cut(&a),
            b: cut(&b),
        },
    };
    let mut losses = Vec::new();
    for step in 0..STEPS {
        opt.zero_grad();
        let settings = StepSettings {
            buffers: &buffers,
            micro,
            train: false,
            seed: 0,
            step,
            embed_dim: cfg.embed_dim,
        };
        losses.push(
            forward_backward(&model, &inputs, &settings, coll)
                .unwrap()
                .loss,
        );
        all_reduce_gradients(coll, &params, 1 << 10).unwrap();
        opt.clip_grad_norm(Some(1.0));
        opt.step(1e-2);
    }
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    (losses, named)
}

/// One rank's losses and final variables by name.
type RunResult = (Vec<f64>, Vec<(String, Tensor)>);

fn two_ranks(objective: Objective, micro: Option<i64>) -> Vec<RunResult> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let timeout = Duration::from_secs(30);
    let root = std::thread::spawn(move || {
        let mut c = TcpCollective::root(listener, 2, timeout).unwrap();
        run(objective, micro, &mut c, 1)
    });
    let other = std::thread::spawn(move || {
        let mut c = TcpCollective::join(addr, 1, 2, timeout).unwrap();
        // Another initialisation: the broadcast from rank 0 must replace it.
        run(objective, micro, &mut c, 77)
    });
    vec![root.join().unwrap(), other.join().unwrap()]
}

#[test]
fn two_ranks_with_half_batches_train_like_one_rank_with_the_whole_batch() {
    for (objective, micro) in [
        (Objective::ImageText, None),
        (Objective::ImageText, Some(2)),
        (Objective::CropClr, Some(3)),
    ] {
        let (ref_losses, ref_vars) = run(objective, None, &mut Solo, 1);
        for (rank, (losses, vars)) in two_ranks(objective, micro).into_iter().enumerate() {
            let what = format!("{objective:?}, micro {micro:?}, rank {rank}");
            for (a, b) in losses.iter().zip(&ref_losses) {
                assert!(
                    (a - b).abs() <= 1e-5,
                    "{what}: losses {losses:?} vs {ref_losses:?}"
                );
            }
            assert_eq!(vars.len(), ref_vars.len());
            for ((name, x), (_, y)) in vars.iter().zip(&ref_vars) {
                let diff = f64::try_from((x - y).abs().max()).unwrap();
                assert!(diff <= 1e-5, "{what}: {name} differs by {diff}");
            }
        }
        // The weights moved: the comparison is not between two untouched models.
        let (_, init) = {
            tch::manual_seed(1);
            let vs = nn::VarStore::new(Device::Cpu);
            let _m = JointModel::new(&vs.root(), &ModelConfig::tiny(objective)).unwrap();
            let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
            named.sort_by(|a, b| a.0.cmp(&b.0));
            ((), named)
        };
        let moved = init
            .iter()
            .zip(&ref_vars)
            .any(|((_, x), (_, y))| f64::try_from((x - y).abs().max()).unwrap() > 1e-3);
        assert!(moved, "{objective:?}: training changed the weights");
        let _ = Kind::Float;
    }
}
