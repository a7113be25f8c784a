//! The model FLOPs that MFU divides by (`kernels::flops`), against PyTorch's own count
//! (`torch.utils.flop_counter.FlopCounterMode` over one training step of the PyTorch twin
//! of the model, `tests/python/bench_train_step.py --flops`), for every shipped config.
//! The paper config's 0.9% gap is attention: on CPU, torch 2.11's counter has no formula
//! for `_scaled_dot_product_flash_attention_for_cpu` (the small configs' dropout takes the
//! eager path, whose matrix products it counts: those agree exactly).

use std::process::Command;

use crate::support::repo_root;

/// PyTorch's count of one step of `config` at `batch` pairs and rows of `seq_len` tokens.
fn pytorch_flops(python: &std::path::Path, config: &str, batch: u64, seq_len: i64) -> f64 {
    let out = Command::new(python)
        .arg(repo_root().join("tests/python/bench_train_step.py"))
        .arg("--config")
        .arg(repo_root().join(config))
        .args([
            "--batch",
            &batch.to_string(),
            "--seq-len",
            &seq_len.to_string(),
        ])
        .args(["--steps", "1", "--warmup", "0", "--threads", "2", "--flops"])
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_VERBOSITY", "error")
        .output()
        .expect("run bench_train_step.py");
    assert!(
        out.status.success(),
        "bench_train_step.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    v["flops_per_step"].as_f64().expect("flops_per_step")
}

#[test]
fn model_flops_agree_with_torch_flop_counter_within_2_percent() {
    let Some(python) = testkit::python_with("torch, torchvision, transformers") else {
        return;
    };
    let cases = [
        ("configs/cpu-small.toml", 8, 40),
        ("configs/cpu-small-cropclr.toml", 8, 40),
        ("configs/paper.toml", 2, 64),
    ];
    for (config, batch, seq_len) in cases {
        let cfg = worker::config::Config::load(&repo_root().join(config)).expect(config);
        let spec = &cfg.spec;
        let ours = kernels::flops::train_step_flops(
            &spec.model,
            batch,
            i64::from(spec.data.patch_px),
            seq_len,
            spec.model_init.freeze_text,
        );
        let torch = pytorch_flops(&python, config, batch, seq_len);
        let off = (ours - torch).abs() / torch;
        eprintln!(
            "{config}: ours {ours:.4e}, FlopCounterMode {torch:.4e} ({:.3}% apart)",
            off * 100.0
        );
        assert!(
            off < 0.02,
            "{config}: ours {ours:.4e} vs PyTorch {torch:.4e}"
        );
    }
}
