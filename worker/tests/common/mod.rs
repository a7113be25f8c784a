//! Helpers the worker's process-level tests share: a small packed dataset of real camera
//! photos and the tiny training config (from `testkit`), a free local port, coordinator
//! and worker processes.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

/// Every 12th camera photo packed into `dir/data`; `None` (skip) when the photos are absent
/// outside CI.
pub fn packed_photos(dir: &Path) -> Option<String> {
    testkit::packed_photos(dir, 12, None)
}

/// The tiny config over `data` ([`testkit::tiny_config`]), `steps` steps of global batch
/// 8, checkpoints every 2 in `dir/ckpt`, written to `dir/config.toml`.
pub fn write_config(dir: &Path, data: &str, steps: u64) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, testkit::tiny_config(data, &dir.join("ckpt"), steps)).unwrap();
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

/// What `tests/python/read_tensorboard.py` (TensorBoard's own readers) read of a folder.
#[derive(serde::Deserialize, Debug)]
pub struct Board {
    pub scalars: std::collections::BTreeMap<String, Vec<(u64, f64)>>,
    pub files: std::collections::BTreeMap<String, Vec<u64>>,
}

pub fn read_board(python: &std::path::Path, folder: &std::path::Path) -> Board {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/python/read_tensorboard.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(folder)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "read_tensorboard.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A splice benchmark made by `worker splice-bench make` from small photos of simulated
/// cameras (cross-camera splices need several camera models).
pub fn splice_bench(dir: &std::path::Path) -> std::path::PathBuf {
    let photos = dir.join("synth");
    let opts = dataloader::synth::SynthOptions {
        count: 8,
        width: 640,
        height: 480,
        ..dataloader::synth::SynthOptions::default()
    };
    dataloader::synth::generate(&photos, &opts).unwrap();
    let out = dir.join("bench");
    let made = std::process::Command::new(WORKER)
        .args([
            "splice-bench",
            "make",
            "--count",
            "3",
            "--seed",
            "0",
            "--photos",
        ])
        .arg(&photos)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    out
}

/// Appends eval suites to the training config at `cfg`.
pub fn add_suites(cfg: &std::path::Path, text: &str) {
    let mut config = std::fs::read_to_string(cfg).unwrap();
    config.push_str(text);
    std::fs::write(cfg, config).unwrap();
}

/// `worker eval agent --until-over` named `name`, against the coordinator on `port`,
/// waiting for it at start as the deployments do (it may be restarting).
pub fn eval_agent(dir: &Path, cfg: &Path, port: u16, name: &str) -> std::process::Child {
    std::process::Command::new(WORKER)
        .args(["eval", "agent", "--until-over", "--agent-name", name])
        .args(["--wait-for-coordinator-s", "60"])
        .arg("--coordinator")
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--config")
        .arg(cfg)
        .env("COORDINATOR_TOKEN", TOKEN)
        .env("OMP_NUM_THREADS", "1")
        .stdout(std::process::Stdio::null())
        .stderr(log_file(dir, &format!("{name}.log")))
        .spawn()
        .unwrap()
}

/// SIGKILLs the process group `child` leads (a `worker join` started with
/// `process_group(0)` and its training processes).
pub fn kill_group(child: &std::process::Child) {
    // SAFETY: a process group the test created.
    unsafe {
        libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
    }
}

/// The step of the job's newest registered checkpoint (0: none).
pub fn newest_step(s: &proto::domain::JobStatus) -> u64 {
    s.checkpoints
        .iter()
        .map(|c| c.step.get())
        .max()
        .unwrap_or(0)
}

/// Where `steps` uninterrupted steps of global batch `batch` over `samples` end: the
/// epoch and the samples consumed in it (each epoch's remainder is dropped).
pub fn uninterrupted_end(steps: u64, batch: u64, samples: u64) -> (u64, u64) {
    let per_epoch = samples / batch;
    (
        (steps - 1) / per_epoch,
        ((steps - 1) % per_epoch + 1) * batch,
    )
}

/// Replays the sample record in `dir` (`worker::train::sample_record`) and checks that
/// nothing was skipped or repeated: steps 1 to `steps`, each with its full global batch
/// of `batch`, each epoch's positions once, the last epoch up to where an uninterrupted
/// run over `samples` ends; a step read the same samples each time it ran. Returns how
/// many training processes the record holds.
pub fn assert_each_sample_once(dir: &Path, steps: u64, batch: u64, samples: u64) -> usize {
    use worker::train::sample_record::{read_dir, Trajectory};
    let attempts = read_dir(dir).unwrap();
    let t = Trajectory::replay(&attempts);
    assert!(t.conflicts.is_empty(), "{:?}", t.conflicts);
    assert_eq!(
        t.steps.keys().copied().collect::<Vec<_>>(),
        (1..=steps).collect::<Vec<_>>()
    );
    let processes: Vec<String> = attempts
        .iter()
        .map(|a| {
            let taken = a.steps.iter().map(|s| s.step);
            let (first, last) = (taken.clone().min(), taken.max());
            format!(
                "group {} rank {}/{} from step {}: steps {first:?}-{last:?}",
                a.header.group_started_unix_ms, a.header.rank, a.header.world, a.header.start_step
            )
        })
        .collect();
    for (step, (_, global)) in &t.steps {
        assert_eq!(
            global.len() as u64,
            batch,
            "step {step}'s global batch {global:?}; processes: {processes:#?}"
        );
    }
    let (last_epoch, last_consumed) = uninterrupted_end(steps, batch, samples);
    for (epoch, mut positions) in t.positions_by_epoch() {
        positions.sort_unstable();
        let consumed = if epoch == last_epoch {
            last_consumed
        } else {
            samples / batch * batch
        };
        assert_eq!(
            positions,
            (0..consumed).collect::<Vec<_>>(),
            "epoch {epoch}: each position once"
        );
    }
    attempts.len()
}

/// The Python with selenium and Debian's Chromium with its WebDriver, for the browser
/// tests; `None` (after saying why) where they are missing, which fails under `CI=true`.
pub fn browser_python() -> Option<PathBuf> {
    let python = testkit::python_with("selenium")?;
    if !Path::new("/usr/bin/chromium").exists() || !Path::new("/usr/bin/chromedriver").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "Chromium missing: run scripts/setup-cluster-tools.sh"
        );
        eprintln!("skipped: Debian's chromium and chromium-driver are not installed (scripts/setup-cluster-tools.sh)");
        return None;
    }
    Some(python)
}
