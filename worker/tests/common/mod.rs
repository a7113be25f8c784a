//! Helpers the worker's process-level tests share: a small packed dataset of real camera
//! photos, a small training config, a free local port.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

use dataloader::pack::{pack, Input, PackOptions};

/// Every 12th camera photo packed into `dir/data`; `None` (skip) when the photos are absent
/// outside CI.
pub fn packed_photos(dir: &Path) -> Option<String> {
    let cameras = std::env::var_os("CAMERAS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/cameras"));
    let images = cameras.join("images");
    if !images.is_dir() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "camera photos missing at {} (set CAMERAS_DIR)",
            images.display()
        );
        eprintln!("skipping: no camera photos at {}", images.display());
        return None;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    let list = dir.join("photos.txt");
    let lines: Vec<String> = files
        .iter()
        .step_by(12)
        .map(|p| p.display().to_string())
        .collect();
    std::fs::write(&list, lines.join("\n")).unwrap();
    let out = dir.join("data").display().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(pack(
        &Input::FileList(list),
        &PackOptions::new(&out),
        &|_| (),
    ))
    .unwrap();
    Some(out)
}

/// A small config over `data`, `steps` steps of global batch 8, checkpoints every 2.
pub fn write_config(dir: &Path, data: &str, steps: u64) -> PathBuf {
    let text = format!(
        r#"
[data]
url = "{data}"
seed = 3
patch_px = 64
prefetch_batches = 2
decode_threads = 1
max_text_tokens = 64
[model]
embed_dim = 16
objective = "image_text"
[model.image]
block = "basic"
layers = [1, 1, 1, 1]
width = 4
[model.text]
kind = "distil_bert"
hidden_size = 16
num_layers = 1
num_heads = 2
intermediate_size = 32
pooling = "masked_mean"
[model.temperature]
mode = "learnable"
init = 14.285714
max = 100.0
[optim]
lr = 1e-3
betas = [0.9, 0.999]
eps = 1e-8
weight_decay = 0.0
warmup_steps = 1
[train]
batch_size = 8
max_steps = {steps}
precision = "fp32"
device = "cpu"
[checkpoint]
url = "{ckpt}"
every_steps = 2
keep_last = 3
"#,
        ckpt = dir.join("ckpt").display()
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The token the process tests' coordinators use.
pub const TOKEN: &str = "test-token";

/// The `worker` binary under test.
pub const WORKER: &str = env!("CARGO_BIN_EXE_worker");

/// The `coordinator` binary built beside the worker (`cargo build --workspace`).
pub fn coordinator_bin() -> PathBuf {
    let bin = Path::new(WORKER).with_file_name("coordinator");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --workspace`",
        bin.display()
    );
    bin
}

/// A log file in `dir`, appended to.
pub fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .unwrap()
}

/// Starts `coordinator serve` on `port` with its database in `dir`, for `nodes` nodes,
/// with `extra` lines added to its config.
pub fn serve(dir: &Path, port: u16, nodes: u32, extra: &str) -> std::process::Child {
    let config = dir.join("coordinator.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndb_path = \"coordinator.db\"\nmin_nodes = {nodes}\nmax_nodes = {nodes}\n\
             heartbeat_interval_ms = 200\nheartbeat_timeout_ms = 3000\nrendezvous_settle_ms = 300\n{extra}"
        ),
    )
    .unwrap();
    std::process::Command::new(coordinator_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .env("COORDINATOR_TOKEN", TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(log_file(dir, "coordinator.log"))
        .spawn()
        .unwrap()
}

/// The job's status, `None` while the coordinator cannot be reached.
pub async fn status(port: u16) -> Option<proto::domain::JobStatus> {
    let mut c = proto::client::connect(&format!("http://127.0.0.1:{port}"), TOKEN)
        .await
        .ok()?;
    let s = c
        .get_status(proto::wire::GetStatusRequest {})
        .await
        .ok()?
        .into_inner();
    proto::domain::JobStatus::try_from(s).ok()
}

/// Polls the status until `done` holds; fails after `limit`.
pub async fn wait_for(
    port: u16,
    what: &str,
    limit: std::time::Duration,
    done: impl Fn(&proto::domain::JobStatus) -> bool,
) -> proto::domain::JobStatus {
    let t = std::time::Instant::now();
    loop {
        if let Some(s) = status(port).await {
            if done(&s) {
                return s;
            }
        }
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Runs `worker train --config cfg` to the end; fails the test with its stderr otherwise.
pub fn train(cfg: &Path) {
    let run = std::process::Command::new(WORKER)
        .args(["train", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}
