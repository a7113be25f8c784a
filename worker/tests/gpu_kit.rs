//! The GPU kit (`scripts/gpu-kit`) on a node like the GPU nodes it is made for, with the
//! parts that run without a GPU: no network (a network namespace of its own, with no
//! interface but a loopback that is down), no cargo or rustc, the build tree out of reach
//! (an empty file system mounted over the workspace), and a separate copy of the torch
//! package, in a Python environment of its own, standing in for the node's PyTorch. The
//! kit's `gpu-check` must find that PyTorch, run the worker on it, report the GPU tests
//! that need a GPU as such (not crash), and say that there is no GPU.
//!
//! It needs a kit made from the test profile (`test.sh` makes it: `PROFILE=dev
//! scripts/gpu-kit target/gpu-kit-dev`, or name another with `GPU_KIT`) and the right to
//! make namespaces (root); without either it fails under CI and skips elsewhere.

#![cfg(feature = "cuda")]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The bound on what can be copied to a GPU node per run.
const KIT_LIMIT: u64 = 64 << 20;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn size_of(dir: &Path) -> u64 {
    let out = run(Command::new("du").arg("-sb").arg(dir));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().next().unwrap().parse().unwrap()
}

/// `from` copied to `to` as hard links (instant, on one file system), else copied.
fn copy_tree(from: &Path, to: &Path) {
    let linked = Command::new("cp").arg("-al").arg(from).arg(to).status();
    if !linked.is_ok_and(|s| s.success()) {
        let _ = std::fs::remove_dir_all(to);
        run(Command::new("cp").arg("-a").arg(from).arg(to));
    }
}

#[test]
fn the_kit_runs_on_a_gpu_node_with_only_its_own_pytorch() {
    let root = workspace();
    let kit = std::env::var_os("GPU_KIT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/gpu-kit-dev"));
    if !kit.join("gpu-check").is_file() {
        return testkit::skip(&format!(
            "no GPU kit at {}: make one with `PROFILE=dev scripts/gpu-kit {}`",
            kit.display(),
            kit.display()
        ));
    }
    let size = size_of(&kit);
    assert!(size < KIT_LIMIT, "the kit is {size} bytes, over 64 MiB");
    let can = Command::new("unshare")
        .args(["--net", "--mount", "true"])
        .status();
    if !can.is_ok_and(|s| s.success()) {
        return testkit::skip("cannot make network and mount namespaces (unshare; needs root)");
    }

    // The node: the kit copied over, and a Python with its own copy of torch and the
    // NVIDIA libraries beside it (as a site-installed PyTorch has them).
    // Beside the workspace when possible (one file system, so the torch copy is hard links),
    // never inside it (it is hidden from the check).
    let node = tempfile::Builder::new()
        .prefix("gpu-node-")
        .tempdir_in(root.parent().unwrap())
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let node_kit = node.path().join("kit");
    run(Command::new("cp").arg("-r").arg(&kit).arg(&node_kit));
    let py = node.path().join("py");
    run(Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&py));
    let site = std::fs::read_dir(py.join("lib"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("site-packages");
    let ours = root.join(".venv/lib/python3.11/site-packages");
    copy_tree(&ours.join("torch"), &site.join("torch"));
    copy_tree(&ours.join("nvidia"), &site.join("nvidia"));
    // The node's NCCL package has no libnccl.so link (setup.sh adds one to ours).
    let _ = std::fs::remove_file(site.join("nvidia/nccl/lib/libnccl.so"));
    let out = node.path().join("out");

    let script = format!(
        r#"set -u
mount -t tmpfs empty '{root}' || exit 90
[ -z "$(ls -A '{root}')" ] || exit 91
[ "$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ')" = lo ] || exit 92
if command -v cargo || command -v rustc; then exit 93; fi
exec '{kit}/gpu-check' '{out}'"#,
        root = root.display(),
        kit = node_kit.display(),
        out = out.display()
    );
    let path = format!("{}:/usr/bin:/bin:/usr/sbin:/sbin", py.join("bin").display());
    let check = Command::new("unshare")
        .args(["--net", "--mount", "--fork", "sh", "-c", &script])
        .env_clear()
        .env("PATH", &path)
        .env("HOME", node.path())
        .env("TMPDIR", node.path())
        .env("JOB_PHOTOS", "24")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_default();
    assert!(
        !matches!(check.status.code(), Some(90..=93)),
        "the node-like environment could not be made ({}): {stderr}",
        check.status
    );
    // No GPU: the check says so and exits 2, having done everything else.
    assert_eq!(check.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no NVIDIA GPU visible"), "{stderr}");

    // The worker runs on the node's PyTorch, not the build's (which it cannot reach).
    let torch = site.join("torch");
    let libtorch = read("libtorch.txt");
    assert!(
        libtorch.contains(&format!(
            "uses: {} (the PyTorch of python3)",
            torch.display()
        )),
        "{libtorch}"
    );
    assert!(libtorch.contains("the build's libtorch ("), "{libtorch}");
    assert!(libtorch.contains("): missing"), "{libtorch}");
    let env = read("env.txt");
    assert!(
        env.contains(&format!(
            "libtorch: {} from {}",
            torchenv::BUILT_FOR,
            torch.display()
        )),
        "{env}"
    );
    assert!(env.contains("CUDA: not available"), "{env}");
    assert!(env.contains("NCCL: 2.28."), "{env}");

    // Each GPU test: the ones that need no GPU pass, the ones that do say there is none.
    let tests = read("tests.txt");
    let result = |name: &str| -> String {
        tests
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("{name} not reported:\n{tests}"))
            .to_string()
    };
    for name in [
        "the_gpu_build_links_libtorch_cuda",
        "nccl_loads_by_the_name_cudarc_looks_for",
        "without_a_driver_cuda_training_and_nccl_say_what_is_missing",
    ] {
        assert_eq!(result(name), "passed", "{tests}");
    }
    for name in [
        "nccl_collectives_run_on_libtorch_memory_and_stream",
        "gradient_buckets_reduced_during_backward_on_the_side_stream_keep_the_gradients",
        "a_bf16_run_on_the_gpu_trains_and_checkpoints",
    ] {
        let r = result(name);
        assert!(
            r.starts_with("FAILED (") && r.contains("no GPU visible"),
            "{name}: {r}"
        );
    }
    assert_eq!(
        result("two_gpus_train_one_job_over_nccl_and_overlapped_buckets_change_nothing"),
        "skipped (fewer than two GPUs visible)"
    );
    assert_eq!(read("bench-step.txt").trim(), "skipped: no GPU");
}
