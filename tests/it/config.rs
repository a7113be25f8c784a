//! The training configuration: the shipped configs validate, each class of invalid value
//! is refused with the field path and the reason, unknown fields are rejected, the digest
//! follows the fields that change training and ignores the ones that do not, and the
//! learning-rate schedule resolves epochs to steps.

use kernels::config::{Block, ImageTowerConfig, Objective, Pooling, Temperature, TextKind};
use worker::config::{BatchNormStats, Config, ConfigError, Device, Precision, TrainConfig};

use infra::FieldError;

use crate::support;

fn shipped(name: &str) -> Config {
    let path = support::repo_root().join("configs").join(name);
    Config::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn paper_spec() -> TrainConfig {
    shipped("paper.toml").spec
}

/// The errors `edit` applied to the paper config produces.
fn errors_after(edit: impl FnOnce(&mut TrainConfig)) -> Vec<FieldError> {
    let mut c = paper_spec();
    edit(&mut c);
    c.validate().expect_err("the edited config must be refused")
}

/// Asserts that `edit` is refused with an error at `field` whose reason contains `needle`.
fn refused(field: &str, needle: &str, edit: impl FnOnce(&mut TrainConfig)) {
    let errs = errors_after(edit);
    assert!(
        errs.iter()
            .any(|e| e.field == field && e.reason.contains(needle)),
        "expected {field}: ...{needle}..., got {errs:?}"
    );
}

#[test]
fn shipped_configs_validate_with_the_paper_settings() {
    let paper = shipped("paper.toml");
    assert_eq!(paper.device, Device::Cuda(0));
    let s = &paper.spec;
    assert_eq!(s.model.image, ImageTowerConfig::resnet50());
    assert_eq!((s.data.patch_px, s.train.batch_size), (124, 1024));
    assert_eq!(s.model.text.kind, TextKind::DistilBert);
    assert_eq!((s.model.text.hidden_size, s.model.embed_dim), (768, 768));
    assert_eq!(s.model.text.pooling, Pooling::EndToken);
    assert_eq!(
        s.model.temperature,
        Temperature::Fixed { logit_scale: 100.0 }
    );
    assert_eq!(s.model.objective, Objective::ImageText);
    assert_eq!(s.model_init.text_weights_path, None);
    assert!(!s.model_init.freeze_text);
    assert_eq!((s.optim.lr, s.optim.weight_decay), (1e-4, 1e-3));
    assert_eq!(
        (s.optim.warmup_epochs, s.train.epochs),
        (Some(5.0), Some(50))
    );
    assert_eq!(s.train.precision, Precision::Bf16);

    let small = shipped("cpu-small.toml");
    assert_eq!(small.device, Device::Cpu);
    assert_eq!(small.spec.train.precision, Precision::Fp32);
    assert!((64..=128).contains(&small.spec.train.batch_size));
    assert_eq!(
        (small.spec.model.image.block, small.spec.model.image.layers),
        (Block::Basic, [2, 2, 2, 2])
    );
    assert_ne!(small.digest, paper.digest);
}

#[test]
fn batch_size_must_be_a_multiple_of_the_micro_batch() {
    let errs = errors_after(|c| {
        c.train.batch_size = 1000;
        c.train.micro_batch_size = Some(3);
    });
    assert_eq!(
        errs[0].to_string(),
        "train.batch_size: must be a multiple of train.micro_batch_size (got 1000 and 3)"
    );
    refused("train.micro_batch_size", "at least 1", |c| {
        c.train.micro_batch_size = Some(0)
    });
}

#[test]
fn bf16_runs_on_cpu_and_cuda_and_the_device_must_parse() {
    let mut c = paper_spec();
    c.train.device = "cuda:3".into();
    assert_eq!(c.clone().validate().unwrap().device, Device::Cuda(3));
    c.train.device = "cpu".into();
    assert_eq!(c.validate().unwrap().device, Device::Cpu);
    refused("train.device", "must be cpu, cuda or cuda:N", |c| {
        c.train.device = "tpu".into()
    });
}

#[test]
fn malformed_device_is_named() {
    refused("train.device", "cpu, cuda or cuda:N", |c| {
        c.train.device = "gpu0".into()
    });
}

#[test]
fn exclusive_pairs_need_exactly_one() {
    refused("train.epochs", "not both", |c| c.train.max_steps = Some(10));
    refused(
        "train.epochs",
        "give train.epochs or train.max_steps",
        |c| c.train.epochs = None,
    );
    refused("optim.warmup_steps", "not both", |c| {
        c.optim.warmup_steps = Some(10)
    });
    refused("optim.warmup_epochs", "less than train.epochs", |c| {
        c.optim.warmup_epochs = Some(50.0)
    });
}

#[test]
fn model_shapes_are_checked() {
    // The model code's validation, reported under `model.`.
    refused("model.image.layers[2]", "at least 1", |c| {
        c.model.image.layers[2] = 0
    });
    refused("model.image.width", "at least 1", |c| {
        c.model.image.width = 0
    });
    refused("model.text.num_heads", "must divide hidden_size 768", |c| {
        c.model.text.num_heads = 7
    });
    refused("model.embed_dim", "masked_mean", |c| {
        c.model.text.pooling = Pooling::MaskedMean;
        c.model.embed_dim = 512;
    });
    refused("model.temperature.max", "at least init", |c| {
        c.model.temperature = Temperature::Learnable {
            init: 200.0,
            max: 100.0,
        }
    });
    // What the worker adds: the tokenised length fits the position table, and a frozen
    // text tower is a pretrained one.
    refused(
        "data.max_text_tokens",
        "2..=model.text.max_position_embeddings = 512",
        |c| c.data.max_text_tokens = 1024,
    );
    refused("data.tag_dropout", "[0, 1)", |c| c.data.tag_dropout = 1.0);
    refused("data.tag_dropout", "[0, 1)", |c| {
        c.data.tag_dropout = f64::NAN
    });
    refused("model_init.text_weights_path", "freeze_text", |c| {
        c.model_init.freeze_text = true
    });
    let mut c = paper_spec();
    c.model_init.freeze_text = true;
    c.model_init.text_weights_path = Some("distilbert.safetensors".into());
    assert!(c.clone().validate().is_ok());
    c.model.objective = Objective::CropClr;
    let errs = c.validate().unwrap_err();
    assert_eq!(errs[0].field, "model_init.freeze_text", "{errs:?}");
}

#[test]
fn optimiser_values_are_checked() {
    refused("optim.lr", "positive", |c| c.optim.lr = 0.0);
    refused("optim.min_lr", "[0, optim.lr", |c| c.optim.min_lr = 1.0);
    refused("optim.betas[1]", "[0, 1)", |c| c.optim.betas[1] = 1.0);
    refused("optim.weight_decay", "zero or positive", |c| {
        c.optim.weight_decay = -1.0
    });
    refused("optim.grad_clip_norm", "positive", |c| {
        c.optim.grad_clip_norm = Some(f64::NAN)
    });
}

#[test]
fn every_problem_is_reported_at_once() {
    let errs = errors_after(|c| {
        c.checkpoint.keep_last = 0;
        c.logging.every_steps = 0;
        c.data.patch_px = 8;
    });
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "data.patch_px",
            "checkpoint.keep_last",
            "logging.every_steps"
        ]
    );
}

#[test]
fn unknown_and_missing_fields_are_rejected_with_their_names() {
    let path = support::repo_root().join("configs/paper.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let typo = text.replace("batch_size = 1024", "batch_sise = 1024");
    let err = Config::from_toml_str(&typo, "typo.toml").unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    assert!(err.to_string().contains("batch_sise"), "{err}");
    assert!(err.to_string().contains("typo.toml"), "{err}");

    let extra = text.replace("[logging]", "[logging]\ncolour = true");
    let err = Config::from_toml_str(&extra, "x").unwrap_err();
    assert!(err.to_string().contains("colour"), "{err}");

    // The text format section is checked as strictly.
    let nested = text.replace("with_names = true", "with_name = true");
    let err = Config::from_toml_str(&nested, "x").unwrap_err();
    assert!(err.to_string().contains("with_name"), "{err}");
    // So is the model section, which the model code's types read.
    let model = text.replace("num_heads = 12", "heads = 12");
    let err = Config::from_toml_str(&model, "x").unwrap_err();
    assert!(err.to_string().contains("`heads`"), "{err}");

    let invalid = text.replace("keep_last = 3", "keep_last = 0");
    let err = Config::from_toml_str(&invalid, "bad.toml").unwrap_err();
    assert!(
        err.to_string().contains("bad.toml") && err.to_string().contains("checkpoint.keep_last"),
        "{err}"
    );
}

#[test]
fn digest_follows_training_semantics_only() {
    let base = paper_spec().validate().unwrap().digest;
    let digest = |edit: &dyn Fn(&mut TrainConfig)| {
        let mut c = paper_spec();
        edit(&mut c);
        c.validate().unwrap().digest
    };
    // Same config, same digest; a hex SHA-256.
    assert_eq!(digest(&|_| {}), base);
    assert_eq!(base.as_str().len(), 64);
    // Where it runs, how it logs and checkpoints, and how the batch is split: no change.
    assert_eq!(digest(&|c| c.checkpoint.url = "/elsewhere".into()), base);
    assert_eq!(digest(&|c| c.checkpoint.keep_last = 9), base);
    assert_eq!(digest(&|c| c.logging.every_steps = 1), base);
    assert_eq!(digest(&|c| c.data.prefetch_batches = 16), base);
    assert_eq!(digest(&|c| c.data.decode_threads = Some(3)), base);
    assert_eq!(digest(&|c| c.train.micro_batch_size = Some(256)), base);
    assert_eq!(digest(&|c| c.train.overlap_grad_reduce = false), base);
    assert_eq!(digest(&|c| c.train.device = "cuda:1".into()), base);
    // The default batch norm and no tag dropout are left out, so configs from before these
    // options keep their digests.
    assert_eq!(digest(&|c| c.data.tag_dropout = 0.0), base);
    assert_eq!(
        digest(&|c| c.train.batch_norm = BatchNormStats::PerRank),
        base
    );
    // What it computes: changes.
    assert_ne!(digest(&|c| c.optim.lr = 2e-4), base);
    assert_ne!(digest(&|c| c.data.seed = 1), base);
    assert_ne!(digest(&|c| c.data.tag_dropout = 0.3), base);
    assert_ne!(digest(&|c| c.model.image.layers = [3, 4, 23, 3]), base);
    assert_ne!(digest(&|c| c.model.text.pooling = Pooling::Cls), base);
    assert_ne!(
        digest(&|c| c.model.temperature = Temperature::Fixed { logit_scale: 50.0 }),
        base
    );
    assert_ne!(digest(&|c| c.data.max_text_tokens = 128), base);
    assert_ne!(
        digest(&|c| c.model_init.text_weights_path = Some("w.safetensors".into())),
        base
    );
    assert_ne!(
        digest(&|c| c.data.text_format.separator = ", ".into()),
        base
    );
    assert_ne!(digest(&|c| c.data.url = "s3://other/data".into()), base);
    assert_ne!(
        digest(&|c| c.train.batch_norm = BatchNormStats::Synced),
        base
    );
}

#[test]
fn batch_norm_statistics_are_per_rank_unless_synced_is_asked_for() {
    let path = support::repo_root().join("configs/cpu-small.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let parsed = Config::from_toml_str(&text, "cpu-small.toml").unwrap();
    assert_eq!(parsed.spec.train.batch_norm, BatchNormStats::PerRank);
    let synced = text.replace(
        "device = \"cpu\"",
        "device = \"cpu\"\nbatch_norm = \"synced\"",
    );
    let parsed = Config::from_toml_str(&synced, "synced.toml").unwrap();
    assert_eq!(parsed.spec.train.batch_norm, BatchNormStats::Synced);
    let bad = text.replace(
        "device = \"cpu\"",
        "device = \"cpu\"\nbatch_norm = \"global\"",
    );
    let err = Config::from_toml_str(&bad, "bad.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("batch_norm") && err.contains("synced"),
        "{err}"
    );
}

#[test]
fn schedule_resolves_epochs_to_steps() {
    let paper = shipped("paper.toml");
    // 1.5M photos at batch 1024: 1464 steps per epoch.
    let s = paper.lr_schedule(1464).unwrap();
    assert_eq!((s.warmup_steps, s.total_steps), (5 * 1464, 50 * 1464));
    assert_eq!(s.lr_at(5 * 1464 - 1), 1e-4);
    assert_eq!(s.lr_at(50 * 1464), 0.0);
    // An epoch without a single step cannot be scheduled.
    let err = paper.lr_schedule(0).unwrap_err();
    assert_eq!(err.field, "train.epochs");

    // A config whose lengths are in steps needs no epoch size.
    let small = shipped("cpu-small.toml");
    let s = small.lr_schedule(0).unwrap();
    let (optim, train) = (&small.spec.optim, &small.spec.train);
    assert_eq!(
        (Some(s.warmup_steps), Some(s.total_steps)),
        (optim.warmup_steps, train.max_steps)
    );
}
