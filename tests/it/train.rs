//! Single-process training on packed real camera photos: exact resume (N steps straight
//! equal N/2 + N/2 resumed, with dropout and the micro-batch feature cache on), a short
//! run that learns (loss falls, zero-shot retrieval beats chance), and clear errors for
//! configs this build cannot run.

use std::path::Path;

use kernels::config::Pooling;

use dataloader::shard::{Compression, WriterOptions};
use worker::checkpoint::{CheckpointError, CheckpointStore};
use worker::collective::Solo;
use worker::config::{Config, TrainConfig};
use worker::eval::retrieval::{evaluate, RetrievalOptions};
use worker::runtime::data::DataSource;
use worker::runtime::{model, RuntimeError};
use worker::train::{train, TrainError, TrainOptions};

use crate::support;

/// Every `stride`-th camera photo (sorted by name, so many makes and models) packed into
/// `dir/data` in zstd shards of 4 MiB; `None` when the photos are absent (outside CI).
fn packed_photos(dir: &Path, stride: usize) -> Option<String> {
    let writer = WriterOptions {
        compression: Compression::Zstd,
        shard_size_bytes: 4 << 20,
        ..WriterOptions::default()
    };
    testkit::packed_photos(dir, stride, Some(writer))
}

/// The tiny config ([`testkit::tiny_config`]) made wider, with text dropout, micro-batches
/// of 4 (the feature cache) and a schedule that learns within 6 steps, checkpoints every 3
/// under `ckpt`; then adjusted by `adjust`.
fn config(data: &str, ckpt: &Path, adjust: impl FnOnce(&mut TrainConfig)) -> Config {
    let text = testkit::tiny_config(data, ckpt, 6);
    let mut spec = TrainConfig::from_toml_str(&text, "test config").unwrap();
    spec.data.seed = 5;
    spec.data.max_text_tokens = 96;
    let model = &mut spec.model;
    model.embed_dim = 32;
    model.image.width = 8;
    model.text.hidden_size = 32;
    model.text.intermediate_size = 64;
    model.text.pooling = Pooling::EndToken;
    model.text.dropout = 0.1;
    let optim = &mut spec.optim;
    optim.lr = 2e-3;
    optim.min_lr = 1e-4;
    optim.weight_decay = 1e-2;
    optim.warmup_steps = Some(2);
    optim.grad_clip_norm = Some(5.0);
    spec.train.micro_batch_size = Some(4);
    spec.checkpoint.every_steps = 3;
    spec.checkpoint.keep_last = 2;
    spec.logging.every_steps = 1;
    adjust(&mut spec);
    spec.validate().unwrap()
}

/// The newest checkpoint's weights as (name, values) pairs.
fn final_weights(url: &str) -> Vec<(String, Vec<f32>)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = CheckpointStore::open(url, &Default::default()).unwrap();
    let newest = rt.block_on(store.latest()).unwrap().unwrap();
    let ck = rt.block_on(store.load(&newest)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    std::fs::write(&path, &ck.weights).unwrap();
    let mut named: Vec<(String, Vec<f32>)> = tch::Tensor::read_safetensors(&path)
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

#[test]
fn resuming_from_the_middle_gives_the_same_weights_as_training_straight_through() {
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = packed_photos(dir.path(), 12) else {
        return;
    };
    let _rng = support::torch_rng();
    let straight_url = dir.path().join("straight");
    let split_url = dir.path().join("split");
    let straight = train(
        &config(&data, &straight_url, |_| ()),
        &TrainOptions::default(),
        &mut Solo,
    )
    .unwrap();
    assert_eq!((straight.start_step, straight.end_step), (0, 6));
    // A fresh start over a finished run's checkpoints is refused.
    let again = train(
        &config(&data, &straight_url, |_| ()),
        &TrainOptions::default(),
        &mut Solo,
    );
    assert!(
        matches!(again, Err(TrainError::ExistingRun { step: 6, .. })),
        "{again:?}"
    );

    let cfg = config(&data, &split_url, |_| ());
    let first = TrainOptions {
        stop_at_step: Some(3),
        ..TrainOptions::default()
    };
    let half = train(&cfg, &first, &mut Solo).unwrap();
    assert_eq!(half.end_step, 3);
    assert_eq!(half.losses, straight.losses[..3], "same first half");
    let resume = TrainOptions {
        resume: true,
        ..TrainOptions::default()
    };
    let rest = train(&cfg, &resume, &mut Solo).unwrap();
    assert_eq!((rest.start_step, rest.end_step), (3, 6));
    for (a, b) in rest.losses.iter().zip(&straight.losses[3..]) {
        assert_eq!(a.0, b.0);
        assert!(
            (a.1 - b.1).abs() <= 1e-6,
            "step {}: {} vs {}",
            a.0,
            a.1,
            b.1
        );
    }
    let (w1, w2) = (
        final_weights(&straight_url.display().to_string()),
        final_weights(&split_url.display().to_string()),
    );
    assert_eq!(w1.len(), w2.len());
    assert!(
        w1.iter().any(|(k, _)| k.contains("running_mean")),
        "batch-norm statistics are saved"
    );
    let mut worst = 0f32;
    for ((k1, a), (k2, b)) in w1.iter().zip(&w2) {
        assert_eq!(k1, k2);
        for (x, y) in a.iter().zip(b) {
            worst = worst.max((x - y).abs());
        }
    }
    assert!(worst <= 1e-6, "largest weight difference {worst}");

    // The step a round chose, not the newest: from step 3 (step 6 is newer), step 4 comes
    // out as it did straight through; a step without a checkpoint is an error.
    let chosen = TrainOptions {
        resume_step: Some(3),
        stop_at_step: Some(4),
        ..TrainOptions::default()
    };
    let again = train(&cfg, &chosen, &mut Solo).unwrap();
    assert_eq!((again.start_step, again.end_step), (3, 4));
    assert!((again.losses[0].1 - straight.losses[3].1).abs() <= 1e-6);
    let missing = TrainOptions {
        resume_step: Some(5),
        ..TrainOptions::default()
    };
    let err = train(&cfg, &missing, &mut Solo).unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::Runtime(RuntimeError::Checkpoint(CheckpointError::NotFound { .. }))
        ),
        "{err}"
    );

    // A checkpoint written under another config is refused, naming both digests.
    let other = config(&data, &split_url, |c| c.optim.lr = 1e-3);
    let err = train(&other, &resume, &mut Solo).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, TrainError::Runtime(RuntimeError::Checkpoint(_))),
        "{msg}"
    );
    assert!(
        msg.contains(cfg.digest.as_str()) && msg.contains(other.digest.as_str()),
        "{msg}"
    );
}

#[test]
fn a_short_run_learns_camera_metadata_from_patches() {
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = packed_photos(dir.path(), 3) else {
        return;
    };
    let _rng = support::torch_rng();
    let ckpt = dir.path().join("ckpt");
    let cfg = config(&data, &ckpt, |c| {
        (c.train.batch_size, c.train.micro_batch_size) = (16, None);
        (c.train.max_steps, c.checkpoint.every_steps) = (Some(300), 300);
        (c.model.text.dropout, c.optim.warmup_steps) = (0.0, Some(5));
    });
    let s = train(&cfg, &TrainOptions::default(), &mut Solo).unwrap();
    let mean = |xs: &[(u64, f64)]| xs.iter().map(|x| x.1).sum::<f64>() / xs.len() as f64;
    let (first, last) = (mean(&s.losses[..10]), mean(&s.losses[290..]));
    let ln_b = 16f64.ln();
    assert!(
        (first - ln_b).abs() < 0.5,
        "starts near ln(16) = {ln_b:.3}: {first:.3}"
    );
    assert!(
        last < first - 0.25 && last < ln_b - 0.1,
        "loss falls below ln(16): {first:.3} -> {last:.3}"
    );

    // Retrieval with crops training never drew (another seed) beats chance clearly.
    let device = model::torch_device(cfg.device).unwrap();
    let data = DataSource::open(
        &cfg.spec,
        &cfg.spec.data.url,
        dataloader::order::RankPlan::new(16, 1, 0).unwrap(),
        &Default::default(),
    )
    .unwrap();
    let rt = &data.runtime;
    let store = CheckpointStore::open(&ckpt.display().to_string(), &Default::default()).unwrap();
    let ck = rt
        .block_on(store.load(&rt.block_on(store.latest()).unwrap().unwrap()))
        .unwrap();
    let (vs, m) = model::build(&cfg, device, 0).unwrap();
    model::weights_from_bytes(&vs, &ck.weights).unwrap();
    let opts = RetrievalOptions {
        batch: 16,
        rounds: 2,
        seed: 99,
    };
    let r = evaluate(&m, device, &data, &opts).unwrap();
    let t = r.patch_to_text.unwrap();
    eprintln!("retrieval after the short run: {r:?}");
    assert!(t.queries >= 100, "{r:?}");
    assert!(
        t.top1 > 2.0 * t.chance && t.top1 > t.chance + 0.08,
        "patch -> text {t:?}"
    );
}

#[test]
fn configs_this_build_cannot_run_fail_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let missing = dir.path().join("no-such-dataset").display().to_string();
    let err = train(
        &config(&missing, &ckpt, |_| ()),
        &TrainOptions::default(),
        &mut Solo,
    )
    .unwrap_err();
    assert!(
        matches!(err, TrainError::Runtime(RuntimeError::Dataset(_))),
        "{err}"
    );
    assert!(err.to_string().contains("no-such-dataset"), "{err}");

    let err = train(
        &config(&missing, &ckpt, |c| c.train.device = "cuda:0".into()),
        &TrainOptions::default(),
        &mut Solo,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cuda:0") && err.contains("cpu"), "{err}");
}
