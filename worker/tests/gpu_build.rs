//! The GPU build (`cargo test -p worker --features cuda --test gpu_build`). On any machine:
//! libtorch's CUDA library is really linked, NCCL is found by the name cudarc loads, and
//! without an NVIDIA driver asking for CUDA or NCCL fails with a message naming what is
//! missing. On a GPU machine (the GPU kit's `gpu-check` runs the ignored tests): NCCL
//! collectives on libtorch's stream and memory, and a few bf16 training steps.
//!
//! The GPU kit (`scripts/gpu-kit`) carries this program to GPU nodes, where `WORKER_BIN`
//! names the kit's worker and `CAMERAS_DIR` generated photos: nothing of the build tree is
//! used there.

#![cfg(feature = "cuda")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{packed_photos, write_config, WORKER};

use worker::collective::nccl::{unique_id, Nccl};
use worker::collective::{Collective, CollectiveError};

/// The worker under test: `WORKER_BIN` (the GPU kit's) or the one cargo built.
fn worker_bin() -> String {
    std::env::var("WORKER_BIN").unwrap_or_else(|_| WORKER.to_string())
}

fn has_gpu() -> bool {
    tch::Cuda::is_available()
}

/// A communicator of one rank on GPU 0.
fn one_rank_group() -> Nccl {
    let id = unique_id().unwrap();
    Nccl::init(&id, 0, 1, 0, std::time::Duration::from_secs(60)).unwrap()
}

/// The tests' small training config on `data`, on the GPU in `precision`, with `train`
/// lines added to its `[train]` table.
fn cuda_config(dir: &Path, data: &str, steps: u64, precision: &str, train: &str) -> PathBuf {
    let cfg = write_config(dir, data, steps);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("device = \"cpu\"", &format!("device = \"cuda\"\n{train}"))
        .replace(
            "precision = \"fp32\"",
            &format!("precision = \"{precision}\""),
        );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

#[test]
fn the_gpu_build_links_libtorch_cuda() {
    let worker = worker_bin();
    let out = Command::new("readelf").args(["-d", &worker]).output();
    let Ok(out) = out else {
        if std::env::var_os("WORKER_BIN").is_some() {
            eprintln!("skipping: readelf (binutils) is not on this node");
            return;
        }
        panic!("readelf (binutils) is needed to check the GPU build's libraries");
    };
    let text = String::from_utf8_lossy(&out.stdout);
    for lib in ["libtorch_cuda.so", "libc10_cuda.so", "libtorch.so"] {
        assert!(
            text.contains(&format!("[{lib}]")),
            "{lib} is not NEEDED by {worker}:\n{text}"
        );
    }
    // The build tree's binary finds NCCL through its rpath; the kit's has none (torchenv
    // puts the node's NCCL on the loader's path).
    if std::env::var_os("WORKER_BIN").is_none() {
        assert!(
            text.contains("nvidia/nccl/lib"),
            "NCCL's folder not on the rpath:\n{text}"
        );
    }
}

#[test]
fn nccl_loads_by_the_name_cudarc_looks_for() {
    // SAFETY: only tries to dlopen the library.
    assert!(
        unsafe { cudarc::nccl::sys::is_culib_present() },
        "libnccl.so not found: scripts/setup.sh links it next to libnccl.so.2 (torchenv on nodes)"
    );
}

#[test]
fn without_a_driver_cuda_training_and_nccl_say_what_is_missing() {
    if has_gpu() {
        eprintln!("skipping: this machine has a GPU");
        return;
    }
    let err = unique_id().unwrap_err();
    assert!(
        matches!(&err, CollectiveError::Setup(m) if m.contains("libcuda.so.1")),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = cuda_config(dir.path(), "/nonexistent/data", 2, "bf16", "");
    let run = Command::new(worker_bin())
        .args(["train", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains("cuda:0") && stderr.contains("0 CUDA device") && stderr.contains("driver"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
#[ignore = "needs an NVIDIA GPU: the GPU kit's gpu-check runs it"]
fn nccl_collectives_run_on_libtorch_memory_and_stream() {
    assert!(has_gpu(), "no GPU visible");
    let mut group = one_rank_group();
    let dev = tch::Device::Cuda(0);
    let mut t = tch::Tensor::arange(6, (tch::Kind::Float, dev));
    group.all_reduce_sum(&mut t).unwrap();
    assert_eq!(
        Vec::<f32>::try_from(&t.to_device(tch::Device::Cpu)).unwrap(),
        [0., 1., 2., 3., 4., 5.]
    );
    let mut half = tch::Tensor::ones([4], (tch::Kind::BFloat16, dev));
    group.all_reduce_sum(&mut half).unwrap();
    let gathered = group
        .all_gather(&tch::Tensor::ones([3, 2], (tch::Kind::Float, dev)))
        .unwrap();
    assert_eq!(gathered.len(), 1);
    assert_eq!(gathered[0].size(), [3, 2]);
    // CPU control values go through the device and come back.
    let mut flags = tch::Tensor::from_slice(&[3i64, 0]);
    group.all_reduce_sum(&mut flags).unwrap();
    assert_eq!(Vec::<i64>::try_from(&flags).unwrap(), [3, 0]);
    // Deferred reductions (the gradient buckets) hold their sums after `complete`.
    let mut a = tch::Tensor::full([5], 2.0, (tch::Kind::Float, dev));
    let mut b = tch::Tensor::full([7], 3.0, (tch::Kind::BFloat16, dev));
    group.all_reduce_sum_deferred(&mut a).unwrap();
    group.all_reduce_sum_deferred(&mut b).unwrap();
    group.complete().unwrap();
    assert_eq!(a.sum(tch::Kind::Float).double_value(&[]), 10.0);
    assert_eq!(b.sum(tch::Kind::Float).double_value(&[]), 21.0);
    group.barrier().unwrap();
}

#[test]
#[ignore = "needs an NVIDIA GPU: the GPU kit's gpu-check runs it"]
fn gradient_buckets_reduced_during_backward_on_the_side_stream_keep_the_gradients() {
    use worker::collective::{GradBuckets, GradReduce};
    assert!(has_gpu(), "no GPU visible");
    let mut group = one_rank_group();
    let dev = tch::Device::Cuda(0);
    tch::manual_seed(0);
    let params: Vec<tch::Tensor> = [(512, 256), (256, 64), (64, 8)]
        .iter()
        .map(|&(i, o)| tch::Tensor::randn([i, o], (tch::Kind::Float, dev)).set_requires_grad(true))
        .collect();
    let x = tch::Tensor::randn([32, 512], (tch::Kind::Float, dev));
    let loss = || {
        params
            .iter()
            .fold(x.shallow_clone(), |h, w| h.matmul(w).tanh())
            .square()
            .sum(tch::Kind::Float)
    };
    loss().backward();
    let plain: Vec<tch::Tensor> = params.iter().map(|p| p.grad().copy()).collect();
    for p in &params {
        let _ = p.grad().zero_();
    }
    // Hooks armed as for two ranks: every bucket (64 KiB) is issued from libtorch's
    // backward thread onto the side stream; one rank's sum is its own gradient.
    let mut buckets = GradBuckets::new(&params, 64 << 10, GradReduce::Fp32)
        .overlapped(true)
        .unwrap();
    buckets.backward(&loss(), &mut group).unwrap();
    buckets.reduce(&mut group).unwrap();
    for (p, want) in params.iter().zip(&plain) {
        let diff = (p.grad() - want).abs().max().double_value(&[]);
        assert!(diff <= 1e-5, "gradient changed by {diff}");
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU: the GPU kit's gpu-check runs it"]
fn a_bf16_run_on_the_gpu_trains_and_checkpoints() {
    assert!(has_gpu(), "no GPU visible");
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = packed_photos(dir.path()) else {
        return;
    };
    let cfg = cuda_config(dir.path(), &data, 4, "bf16", "");
    let summary = dir.path().join("summary.json");
    let run = Command::new(worker_bin())
        .args(["train", "--config"])
        .arg(&cfg)
        .arg("--summary")
        .arg(&summary)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(summary).unwrap()).unwrap();
    let losses = s["losses"].as_array().unwrap();
    assert_eq!(losses.len(), 4);
    assert!(
        losses.iter().all(|l| l[1].as_f64().unwrap().is_finite()),
        "{losses:?}"
    );
    assert!(dir
        .path()
        .join("ckpt/step-000000004/COMPLETE.json")
        .is_file());
}

/// One `worker train` process per GPU (CUDA_VISIBLE_DEVICES), NCCL between them: the
/// ranks agree on every loss, and buckets summed during backward (on the side stream)
/// train as buckets summed after it. Skips when fewer than two GPUs are visible.
#[test]
#[ignore = "needs two NVIDIA GPUs: the GPU kit's gpu-check runs it (it says when it skips)"]
fn two_gpus_train_one_job_over_nccl_and_overlapped_buckets_change_nothing() {
    if tch::Cuda::device_count() < 2 {
        eprintln!("skipping: fewer than two GPUs visible");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = packed_photos(dir.path()) else {
        return;
    };
    let losses = |name: &str, overlap: bool| -> Vec<Vec<f64>> {
        let ranks = 2;
        let sub = dir.path().join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let cfg = cuda_config(
            &sub,
            &data,
            4,
            "fp32",
            &format!("overlap_grad_reduce = {overlap}"),
        );
        let master = format!("127.0.0.1:{}", common::free_port());
        let procs: Vec<_> = (0..ranks)
            .map(|rank| {
                let summary = sub.join(format!("summary-{rank}.json"));
                let child = Command::new(worker_bin())
                    .args(["train", "--config"])
                    .arg(&cfg)
                    .args(["--world", &ranks.to_string(), "--rank", &rank.to_string()])
                    .args(["--master", &master, "--summary"])
                    .arg(&summary)
                    .env("CUDA_VISIBLE_DEVICES", rank.to_string())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                (child, summary)
            })
            .collect();
        procs
            .into_iter()
            .map(|(child, summary)| {
                let out = child.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let s: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(summary).unwrap()).unwrap();
                s["losses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l[1].as_f64().unwrap())
                    .collect()
            })
            .collect()
    };
    let during = losses("during", true);
    let after = losses("after", false);
    assert_eq!(during[0].len(), 4);
    for (a, b) in during[0].iter().zip(&during[1]) {
        assert!((a - b).abs() <= 1e-4, "the ranks disagree: {during:?}");
    }
    for (a, b) in during[0].iter().zip(&after[0]) {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1.0),
            "buckets during backward {during:?} vs after {after:?}"
        );
    }
}
