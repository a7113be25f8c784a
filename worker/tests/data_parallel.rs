//! Data-parallel training over the CPU collective: two ranks with half the batch each give
//! the same losses and weights as one rank with the whole batch (feature cache on or off),
//! because every rank computes the loss over the all-gathered global batch and the
//! gradients are summed. Batch norm runs either on running statistics (the normalisation
//! then does not depend on the batch) or synchronised over the ranks; per-rank batch
//! statistics legitimately differ, and the test checks that they do.

use std::net::TcpListener;
use std::time::Duration;

use kernels::config::{ModelConfig, Objective};
use kernels::joint::JointModel;
use kernels::resnet::preprocess;
use tch::{nn, Device, Kind, Tensor};
use worker::collective::tcp::{GroupSecret, TcpCollective};
use worker::collective::{broadcast_variables, Collective, GradBuckets, GradReduce, Solo};
use worker::runtime::inputs::{StepInputs, TextInput};
use worker::runtime::optimizer::{AdamW, AdamWConfig};
use worker::runtime::step::{forward_backward, split_variables, StepSettings};

const GLOBAL: i64 = 8;
static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// The tests of this file run one at a time: a step reseeds libtorch's global generator
/// (dropout draws), which must not happen while another test initialises a model.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
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

/// How a run trains.
#[derive(Debug, Clone, Copy)]
struct Setup {
    objective: Objective,
    micro: Option<i64>,
    /// Batch norms on batch statistics (else running statistics).
    train: bool,
    /// Batch statistics over every rank.
    sync: bool,
    /// This rank's rows of the global batch (`None`: an equal share).
    rows: Option<[(i64, i64); 2]>,
    /// Gradient buckets summed while backward runs (else after it).
    overlap: bool,
}

impl Setup {
    fn new(objective: Objective, micro: Option<i64>) -> Self {
        Self {
            objective,
            micro,
            train: false,
            sync: false,
            rows: None,
            overlap: false,
        }
    }
}

/// Trains `STEPS` steps as rank `coll.rank()` of `coll.world()` on its share of the global
/// batch; returns the losses and the final variables by name.
fn run(setup: Setup, coll: &mut dyn Collective, init_seed: i64) -> RunResult {
    let Setup {
        objective, micro, ..
    } = setup;
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig::tiny(objective);
    let model = {
        // libtorch's generator is global: ranks (threads) and tests build models one at a
        // time so each initialisation is its seed's.
        let _init = INIT.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(init_seed);
        JointModel::new(&vs.root(), &cfg).unwrap()
    };
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
    let (start, local) = match setup.rows {
        Some(rows) => rows[coll.rank()],
        None => {
            let local = GLOBAL / coll.world() as i64;
            (local * coll.rank() as i64, local)
        }
    };
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
        Objective::ImageTextCrop => StepInputs::CropsAndText {
            a: cut(&a),
            b: cut(&b),
            text: TextInput::Tokens {
                ids: cut(&ids),
                mask: cut(&mask),
            },
        },
    };
    let mut grads = GradBuckets::new(&params, 1 << 10, GradReduce::Fp32);
    if setup.overlap {
        grads = grads.overlapped(true).unwrap();
    }
    let mut losses = Vec::new();
    for step in 0..STEPS {
        opt.zero_grad();
        let settings = StepSettings {
            buffers: &buffers,
            micro,
            train: setup.train,
            sync_batch_norm: setup.sync,
            seed: 0,
            step,
            embed_dim: cfg.embed_dim,
            bf16: false,
            clock: None,
        };
        losses.push(
            forward_backward(&model, &inputs, &settings, coll, Some(&mut grads))
                .unwrap()
                .loss,
        );
        grads.reduce(coll).unwrap();
        opt.clip_grad_norm(Some(1.0));
        opt.step(1e-2);
    }
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    (losses, named)
}

/// One rank's losses and final variables by name.
type RunResult = (Vec<f64>, Vec<(String, Tensor)>);

fn two_ranks(setup: Setup) -> Vec<RunResult> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let timeout = Duration::from_secs(30);
    let root = std::thread::spawn(move || {
        let mut c = TcpCollective::root(listener, 2, &GroupSecret::NONE, timeout).unwrap();
        run(setup, &mut c, 1)
    });
    let other = std::thread::spawn(move || {
        let mut c = TcpCollective::join(addr, 1, 2, &GroupSecret::NONE, timeout).unwrap();
        // Another initialisation: the broadcast from rank 0 must replace it.
        run(setup, &mut c, 77)
    });
    vec![root.join().unwrap(), other.join().unwrap()]
}

#[test]
fn two_ranks_with_half_batches_train_like_one_rank_with_the_whole_batch() {
    let _serial = one_at_a_time();
    // Gradient buckets summed after backward, or while it runs (each bucket issued by the
    // gradient-ready hooks), also with one rank holding most of the batch (the other rank
    // issues its buckets after a shorter backward pass).
    let uneven = Some([(0, 6), (6, 2)]);
    for (objective, micro, overlap, rows) in [
        (Objective::ImageText, None, false, None),
        (Objective::ImageText, None, true, None),
        (Objective::ImageText, Some(2), true, uneven),
        (Objective::CropClr, Some(3), false, None),
        (Objective::CropClr, Some(3), true, None),
        (Objective::ImageTextCrop, Some(3), true, None),
        (Objective::ImageTextCrop, None, false, uneven),
    ] {
        let reference = run(Setup::new(objective, None), &mut Solo, 1);
        let setup = Setup {
            overlap,
            rows,
            ..Setup::new(objective, micro)
        };
        for (rank, got) in two_ranks(setup).into_iter().enumerate() {
            let what = format!(
                "{objective:?}, micro {micro:?}, overlap {overlap}, rows {rows:?}, rank {rank}"
            );
            assert_same(&got, &reference, &what);
        }
        // The weights moved: the comparison is not between two untouched models.
        let (_, init) = {
            let _init = INIT.lock().unwrap_or_else(|e| e.into_inner());
            tch::manual_seed(1);
            let vs = nn::VarStore::new(Device::Cpu);
            let _m = JointModel::new(&vs.root(), &ModelConfig::tiny(objective)).unwrap();
            let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
            named.sort_by(|a, b| a.0.cmp(&b.0));
            ((), named)
        };
        let moved = init
            .iter()
            .zip(&reference.1)
            .any(|((_, x), (_, y))| f64::try_from((x - y).abs().max()).unwrap() > 1e-3);
        assert!(moved, "{objective:?}: training changed the weights");
        let _ = Kind::Float;
    }
}

/// A one-rank group whose buckets are summed during backward (as a one-rank NCCL group
/// does, to exercise that path on one GPU) takes the path of many ranks: the all-gather,
/// the hooks, the buckets. It must train exactly as the plain one-rank step.
#[test]
fn one_rank_with_buckets_summed_during_backward_trains_like_plain_backward() {
    let _serial = one_at_a_time();
    for (objective, micro) in [(Objective::ImageText, None), (Objective::CropClr, Some(3))] {
        let reference = run(Setup::new(objective, micro), &mut Solo, 1);
        let setup = Setup {
            overlap: true,
            ..Setup::new(objective, micro)
        };
        let what = format!("{objective:?}, micro {micro:?}, one rank, overlapped");
        assert_same(&run(setup, &mut Solo, 1), &reference, &what);
    }
}

/// Asserts equal losses (within 1e-5 of their size: float32 sums taken in another order,
/// such as batch-norm statistics summed over ranks) and variables (within 1e-5).
fn assert_same((losses, vars): &RunResult, (ref_losses, ref_vars): &RunResult, what: &str) {
    for (a, b) in losses.iter().zip(ref_losses) {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{what}: losses {losses:?} vs {ref_losses:?}"
        );
    }
    assert_eq!(vars.len(), ref_vars.len());
    for ((name, x), (_, y)) in vars.iter().zip(ref_vars) {
        let diff = f64::try_from((x - y).abs().max()).unwrap();
        assert!(diff <= 1e-5, "{what}: {name} differs by {diff}");
    }
}

/// Largest difference between two runs' variables.
fn max_difference(a: &RunResult, b: &RunResult) -> f64 {
    a.1.iter()
        .zip(&b.1)
        .map(|((_, x), (_, y))| f64::try_from((x - y).abs().max()).unwrap())
        .fold(0.0, f64::max)
}

#[test]
fn synchronised_batch_norm_makes_two_ranks_train_like_one_with_batch_statistics() {
    let _serial = one_at_a_time();
    for objective in [Objective::ImageText, Objective::CropClr] {
        let batch_stats = Setup {
            train: true,
            ..Setup::new(objective, None)
        };
        let reference = run(batch_stats, &mut Solo, 1);
        let synced = Setup {
            sync: true,
            ..batch_stats
        };
        for (rank, got) in two_ranks(synced).into_iter().enumerate() {
            // Running statistics are variables too: they must match as well.
            assert_same(
                &got,
                &reference,
                &format!("{objective:?} synced, rank {rank}"),
            );
        }
        // Per-rank statistics normalise each half on its own: the weights come out
        // different, so the comparison above can fail.
        let per_rank = two_ranks(batch_stats);
        assert!(
            max_difference(&per_rank[0], &reference) > 1e-4,
            "{objective:?}: per-rank batch norm should differ from the whole batch's"
        );
    }
}

#[test]
fn synchronised_batch_norm_pads_ranks_with_fewer_micro_batches() {
    let _serial = one_at_a_time();
    // Rank 0 runs three micro-batches, rank 1 one (after skipped samples, say): every
    // pass is a collective call, so rank 1 adds empty passes instead of stalling rank 0.
    let setup = Setup {
        train: true,
        sync: true,
        rows: Some([(0, 6), (6, 2)]),
        ..Setup::new(Objective::ImageText, Some(2))
    };
    let ranks = two_ranks(setup);
    assert!(ranks[0].0.iter().all(|l| l.is_finite()), "{:?}", ranks[0].0);
    assert_same(&ranks[0], &ranks[1], "rank 0 vs rank 1");
}
