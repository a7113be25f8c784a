//! Parity of the model (`kernels`) with the reference implementations: torchvision ResNet,
//! Hugging Face BERT / DistilBERT (random weights, and the pretrained all-MiniLM-L6-v2 on
//! real EXIF texts), and the CLIP loss with its gradients.
//!
//! `tests/python/parity_make.py` builds the references once per test run and writes weights
//! (state-dict names) and inputs/outputs as safetensors; the Rust side loads the weights by
//! name and must reproduce the outputs (fp32, eval mode unless stated) to `ATOL`. Without
//! Python torch the tests skip with a message, except under `CI=true` where they fail.

use crate::support::{self, cameras_dir, repo_root};
use ::kernels::{
    load_safetensors, patches_to_tensor, preprocess, symmetric_infonce, Block, ImageTower,
    ImageTowerConfig, JointModel, KernelsError, LogitScale, ModelConfig, Objective, Pooling,
    Temperature, TextKind, TextTower, TextTowerConfig,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// Largest absolute difference allowed between Rust and Python outputs.
const ATOL: f64 = 1e-4;

/// Runs the reference script once for the whole test binary; `None` when Python torch is
/// missing outside CI.
fn references() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let python = testkit::python_with("torch, torchvision, transformers, safetensors")?;
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kernels-parity");
        let _ = std::fs::remove_dir_all(&out);
        let mut cmd = Command::new(&python);
        cmd.arg(repo_root().join("tests/python/parity_make.py"))
            .arg(&out)
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            .env("TRANSFORMERS_VERBOSITY", "error");
        // The MiniLM case needs the real EXIF dumps; its test reports when they are missing.
        let dumps = std::env::var_os("CAMERAS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("../shared/data/cameras"))
            .join("exif_dumps");
        if dumps.is_dir() {
            cmd.arg("--exif-dumps").arg(dumps);
        } else {
            cmd.args([
                "--cases",
                "resnet50,resnet_basic,bert,distilbert,distilbert_base,loss,joint",
            ]);
        }
        let status = cmd.status().expect("run parity_make.py");
        assert!(status.success(), "parity_make.py failed: {status}");
        Some(out)
    })
    .as_deref()
}

fn read_io(dir: &Path, case: &str) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(dir.join(format!("{case}_io.safetensors")))
        .unwrap()
        .into_iter()
        .collect()
}

/// Asserts equal shapes and `max |a - b| <= ATOL`; returns the maximum difference.
fn assert_close(what: &str, got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.size(), want.size(), "{what}: shape");
    let diff = (got.to_kind(Kind::Double) - want.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[]);
    let scale = want.abs().max().double_value(&[]);
    eprintln!("{what}: max abs error {diff:.3e} (max |value| {scale:.3e})");
    assert!(diff <= ATOL, "{what}: max abs error {diff} > {ATOL}");
    diff
}

fn resnet_parity(case: &str, cfg: ImageTowerConfig, embed_dim: i64) {
    let Some(dir) = references() else { return };
    let vs = VarStore::new(Device::Cpu);
    let tower = ImageTower::new(&vs.root(), &cfg, embed_dim);
    let loaded = load_safetensors(&vs, &dir.join(format!("{case}.safetensors")), "", &[]).unwrap();
    assert_eq!(loaded, vs.variables().len());
    let io = read_io(dir, case);
    // The data pipeline's buffer layout: n x side x side x 3 bytes.
    let pixels = &io["pixels"];
    let (n, side) = (pixels.size()[0] as usize, pixels.size()[1] as usize);
    let bytes = Vec::<u8>::try_from(&pixels.flatten(0, -1)).unwrap();
    let x = preprocess(&patches_to_tensor(&bytes, n, side).unwrap(), Device::Cpu).unwrap();

    let eval = tch::no_grad(|| tower.forward_t(&x, false));
    assert_close(&format!("{case} eval"), &eval, &io["eval_out"]);
    let train = tch::no_grad(|| tower.forward_t(&x, true));
    assert_close(&format!("{case} train"), &train, &io["train_out"]);
    let vars = vs.variables();
    for stat in ["bn1.running_mean", "bn1.running_var"] {
        assert_close(
            &format!("{case} {stat} after a train step"),
            &vars[stat],
            &io[stat],
        );
    }
}

#[test]
fn resnet50_matches_torchvision_in_eval_and_train_mode() {
    let _rng = support::torch_rng();
    resnet_parity("resnet50", ImageTowerConfig::resnet50(), 32);
}

#[test]
fn basic_block_resnet_matches_torchvision() {
    let _rng = support::torch_rng();
    let cfg = ImageTowerConfig {
        block: Block::Basic,
        layers: [1, 1, 1, 1],
        width: 64,
    };
    resnet_parity("resnet_basic", cfg, 16);
}

fn small_text(kind: TextKind, pooling: Pooling) -> TextTowerConfig {
    TextTowerConfig {
        kind,
        vocab_size: 1000,
        hidden_size: 64,
        num_layers: 2,
        num_heads: 4,
        intermediate_size: 128,
        max_position_embeddings: 64,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        pooling,
        dropout: 0.0,
    }
}

fn text_parity(case: &str, kind: TextKind) {
    text_parity_with(case, |pooling| small_text(kind, pooling), 16);
}

fn text_parity_with(case: &str, cfg: impl Fn(Pooling) -> TextTowerConfig, embed_dim: i64) {
    let Some(dir) = references() else { return };
    let io = read_io(dir, case);
    let (ids, mask) = (&io["input_ids"], &io["attention_mask"]);
    for (pooling, key) in [
        (Pooling::EndToken, "end_token"),
        (Pooling::Cls, "cls"),
        (Pooling::MaskedMean, "mean"),
    ] {
        let vs = VarStore::new(Device::Cpu);
        let tower = TextTower::new(&vs.root(), &cfg(pooling), embed_dim);
        load_safetensors(&vs, &dir.join(format!("{case}.safetensors")), "", &[]).unwrap();
        let (hidden, emb) = tch::no_grad(|| {
            (
                tower.hidden_states(ids, mask, false).unwrap(),
                tower.forward(ids, mask, false).unwrap(),
            )
        });
        // Padding positions included: the reference computes them with the same mask.
        assert_close(&format!("{case} hidden states"), &hidden, &io["hidden"]);
        assert_close(&format!("{case} {key} pooling"), &emb, &io[key]);
    }
}

#[test]
fn bert_matches_transformers_hidden_states_and_all_poolings() {
    let _rng = support::torch_rng();
    text_parity("bert", TextKind::Bert);
}

#[test]
fn distilbert_matches_transformers_hidden_states_and_all_poolings() {
    let _rng = support::torch_rng();
    text_parity("distilbert", TextKind::DistilBert);
}

#[test]
fn full_size_distilbert_matches_transformers() {
    let _rng = support::torch_rng();
    text_parity_with("distilbert_base", TextTowerConfig::distilbert_base, 768);
}

#[test]
fn pretrained_minilm_loads_and_embeds_exif_texts_as_transformers_does() {
    let _rng = support::torch_rng();
    let Some(dir) = references() else { return };
    if cameras_dir().is_none() {
        return;
    }
    let weights = PathBuf::from(std::fs::read_to_string(dir.join("minilm_weights.txt")).unwrap());
    let vs = VarStore::new(Device::Cpu);
    let tower = TextTower::new(
        &vs.root(),
        &TextTowerConfig::minilm_l6(Pooling::MaskedMean),
        384,
    );
    let loaded = load_safetensors(&vs, &weights, "", &["bert."]).unwrap();
    assert_eq!(loaded, vs.variables().len());
    let io = read_io(dir, "minilm");
    let (hidden, emb) = tch::no_grad(|| {
        let (ids, mask) = (&io["input_ids"], &io["attention_mask"]);
        (
            tower.hidden_states(ids, mask, false).unwrap(),
            tower.forward(ids, mask, false).unwrap(),
        )
    });
    let mask = io["attention_mask"].unsqueeze(-1).to_kind(Kind::Float);
    assert_close(
        "minilm hidden states (tokens)",
        &(hidden * &mask),
        &(&io["hidden"] * &mask),
    );
    assert_close("minilm masked-mean embedding", &emb, &io["mean"]);
}

#[test]
fn clip_loss_and_gradients_match_python_fixed_and_learnable_temperature() {
    let _rng = support::torch_rng();
    let Some(dir) = references() else { return };
    let io = read_io(dir, "loss");
    let fixed = LogitScale::new(&VarStore::new(Device::Cpu).root(), Temperature::default());
    let loss = symmetric_infonce(&io["a"], &io["b"], &fixed.value());
    assert_close("fixed-scale loss", &loss, &io["fixed_loss"]);
    for tag in ["learn", "clamped"] {
        let vs = VarStore::new(Device::Cpu);
        let init = io[&format!("{tag}_init")].double_value(&[]);
        let scale = LogitScale::new(&vs.root(), Temperature::Learnable { init, max: 100.0 });
        let a = io["a"].copy().set_requires_grad(true);
        let b = io["b"].copy().set_requires_grad(true);
        let loss = symmetric_infonce(&a, &b, &scale.value());
        loss.backward();
        assert_close(&format!("{tag} loss"), &loss, &io[&format!("{tag}_loss")]);
        assert_close(
            &format!("{tag} d/da"),
            &a.grad(),
            &io[&format!("{tag}_grad_a")],
        );
        assert_close(
            &format!("{tag} d/db"),
            &b.grad(),
            &io[&format!("{tag}_grad_b")],
        );
        let log_scale = &vs.variables()["logit_scale"];
        assert_close(
            &format!("{tag} d/dlogit_scale"),
            &log_scale.grad(),
            &io[&format!("{tag}_grad_scale")],
        );
    }
}

#[test]
fn weights_of_another_tower_kind_are_refused_naming_the_missing_parameters() {
    let _rng = support::torch_rng();
    let Some(dir) = references() else { return };
    let vs = VarStore::new(Device::Cpu);
    let _tower = TextTower::new(
        &vs.root(),
        &small_text(TextKind::DistilBert, Pooling::MaskedMean),
        64,
    );
    let err = load_safetensors(&vs, &dir.join("bert.safetensors"), "", &[]).unwrap_err();
    match err {
        KernelsError::MissingWeights { examples, .. } => {
            assert!(
                examples
                    .iter()
                    .any(|n| n.starts_with("transformer.layer.0.")),
                "{examples:?}"
            );
        }
        other => panic!("expected MissingWeights, got {other}"),
    }
}

#[test]
fn joint_model_losses_match_python_for_crop_clr_and_image_text() {
    let _rng = support::torch_rng();
    let Some(dir) = references() else { return };
    let io = read_io(dir, "joint");
    let cfg = |objective, temperature| ModelConfig {
        image: ImageTowerConfig {
            block: Block::Basic,
            layers: [1, 1, 1, 1],
            width: 64,
        },
        text: small_text(TextKind::Bert, Pooling::EndToken),
        embed_dim: 16,
        temperature,
        objective,
    };
    let build = |cfg: &ModelConfig| {
        let vs = VarStore::new(Device::Cpu);
        let model = JointModel::new(&vs.root(), cfg).unwrap();
        load_safetensors(&vs, &dir.join("resnet_basic.safetensors"), "image", &[]).unwrap();
        if model.text.is_some() {
            load_safetensors(&vs, &dir.join("bert.safetensors"), "text", &[]).unwrap();
        }
        (vs, model)
    };
    let prep = |k: &str| preprocess(&io[k], Device::Cpu).unwrap();

    let (_vs, model) = build(&cfg(Objective::CropClr, Temperature::default()));
    let loss = tch::no_grad(|| {
        model
            .crop_clr_loss(&prep("view_a"), &prep("view_b"), true)
            .unwrap()
    });
    assert_close("CropCLR loss", &loss, &io["crop_clr_loss"]);

    let (vs, model) = build(&cfg(Objective::ImageText, Temperature::clip()));
    let (ids, mask) = (&io["input_ids"], &io["attention_mask"]);
    let loss = model
        .image_text_loss(&prep("view_a"), ids, mask, true)
        .unwrap();
    loss.backward();
    assert_close("image-text loss", &loss, &io["image_text_loss"]);
    assert_close(
        "image-text d/dlogit_scale",
        &vs.variables()["logit_scale"].grad(),
        &io["image_text_grad_scale"],
    );
}
