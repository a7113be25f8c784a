//! The batch scripts of `deploy/slurm` on a real Slurm: `slurmctld` and one `slurmd` per
//! emulated node on this machine (`deploy/slurm/testing/emulated-cluster.sh`), the small
//! CPU config, the project's own `coordinator` and `worker` binaries.
//!
//! - `train.sbatch` on 3 nodes is signalled the way `--signal=B:USR1@...` does ahead of a
//!   time limit: the workers checkpoint and leave, the job requeues itself, the next run
//!   continues from the registered checkpoint and finishes;
//! - `train-hetjob.sbatch` (coordinator in its own component) runs to the end;
//! - a node whose worker dies ends the job at once, and the log names the node;
//! - `pack.sbatch` as a 2-task array packs a YFCC100M-style corpus in two parts, and the
//!   manifest the last task merges equals a single process's.
//!
//! Needs Debian's slurm-wlm and munge and root; skipped without them unless CI=true.

mod common;

use common::{coordinator_bin, free_port, packed_photos, write_config, WORKER};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// One emulated cluster at a time: each picks free ports for its daemons, and two
/// starting together could pick the same.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// An emulated cluster, stopped when dropped.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    fn start(dir: &Path, nodes: u32) -> Option<Self> {
        let script = Path::new(REPO).join("deploy/slurm/testing/emulated-cluster.sh");
        let have_slurm = Command::new("sh")
            .args(["-c", "command -v slurmctld && command -v munged"])
            .output()
            .is_ok_and(|o| o.status.success());
        let root = unsafe { libc::geteuid() } == 0;
        if !(have_slurm && root) {
            testkit::skip(
                "no Slurm daemons here (slurm-wlm, munge: scripts/setup-cluster-tools.sh), or not root",
            );
            return None;
        }
        let dir = dir.join("slurm");
        let serial = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
        let out = Command::new(&script)
            .arg("start")
            .arg(&dir)
            .arg(nodes.to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        Some(Self {
            conf: dir.join("slurm.conf"),
            dir,
            _serial: serial,
        })
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self.cmd(program).args(args).output().unwrap();
        assert!(out.status.success(), "{program} {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Submits `script` with the job's settings; returns the job id.
    fn submit(&self, script: &str, work: &Path, config: &Path, extra: &[&str]) -> String {
        let bin_dir = Path::new(WORKER).parent().unwrap();
        assert!(coordinator_bin().exists());
        let out = self
            .cmd("sbatch")
            .arg("--parsable")
            .arg(format!("--output={}", work.join("job.log").display()))
            .args(extra)
            .arg(Path::new(REPO).join("deploy/slurm").join(script))
            .current_dir(work)
            .env("EXIFLANG_ROOT", REPO)
            .env("BIN_DIR", bin_dir)
            .env("JOB_CONFIG", config)
            .env("JOB_DIR", work.join("job"))
            .env("COORDINATOR_PORT", free_port().to_string())
            .env("METRICS_PORT", free_port().to_string())
            .env("HEARTBEAT_TIMEOUT_MS", "5000")
            .env("OMP_NUM_THREADS", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "sbatch: {}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    }

    /// The job's state and its reason (`PENDING BeginTime`, `RUNNING None`, `COMPLETED
    /// None`, ...).
    fn state(&self, job: &str) -> String {
        let line = self.run("scontrol", &["-o", "show", "job", job]);
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(name))
                .unwrap_or("?")
                .to_string()
        };
        format!("{} {}", field("JobState="), field("Reason="))
    }

    /// Whether the job ended (in any way).
    fn ended(&self, job: &str) -> bool {
        let state = self.state(job);
        ![
            "PENDING",
            "RUNNING",
            "CONFIGURING",
            "COMPLETING",
            "REQUEUE",
            "SUSPENDED",
        ]
        .iter()
        .any(|s| state.starts_with(s))
    }

    /// Waits until `done` holds, failing with the job's log after `limit`.
    fn wait(&self, work: &Path, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}\n{}\n{}",
                log(work),
                self.daemon_logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for the complete checkpoint of `step` (the config checkpoints every 2 steps).
    fn wait_for_checkpoint(&self, work: &Path, step: u64) {
        let complete = work.join(format!("ckpt/step-{step:09}/COMPLETE.json"));
        self.wait(
            work,
            &format!("a checkpoint at step {step}"),
            Duration::from_secs(300),
            || complete.exists(),
        );
    }

    /// Waits for the job to end (in any way).
    fn wait_for_end(&self, work: &Path, job: &str, limit: Duration) {
        self.wait(work, "the job to end", limit, || self.ended(job));
    }

    fn daemon_logs(&self) -> String {
        let ctld = std::fs::read_to_string(self.dir.join("log/slurmctld.log")).unwrap_or_default();
        let tail: Vec<&str> = ctld.lines().rev().take(30).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.cmd("scancel").args(["--full", "-u", "root"]).output();
        let _ = Command::new(Path::new(REPO).join("deploy/slurm/testing/emulated-cluster.sh"))
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The last lines of the emulated cluster's Slurm daemon logs (for failure messages).
fn daemon_logs(cluster: &Cluster) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(cluster.dir.join("log")) else {
        return out;
    };
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        out.push_str(&format!("--- {}\n{tail}\n", entry.path().display()));
    }
    out
}

fn log(work: &Path) -> String {
    std::fs::read_to_string(work.join("job.log")).unwrap_or_default()
}

/// The newest registered checkpoint's step in the job's database (`coordinator
/// checkpoints --db --json`).
fn newest_step(work: &Path) -> Option<u64> {
    let out = Command::new(coordinator_bin())
        .args(["checkpoints", "--json", "--db"])
        .arg(work.join("job/coordinator.db"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    entries[0]["checkpoint"]["step"].as_u64()
}

/// A 3-node emulated cluster and a work folder with packed photos and a small config of
/// `steps` steps (global batch 12: divisible by 2, 3 and 4 nodes); `None` where Slurm or
/// the photos are missing. Bound as `(tmp, config, cluster)`, locals drop in reverse: the
/// cluster stops before its folder goes.
fn job_setup(steps: u64) -> Option<(tempfile::TempDir, PathBuf, Cluster)> {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let data = packed_photos(work)?;
    let config = write_config(work, &data, steps);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("batch_size = 8"));
    std::fs::write(&config, text.replace("batch_size = 8", "batch_size = 12")).unwrap();
    let cluster = Cluster::start(work, 3)?;
    Some((tmp, config, cluster))
}

#[test]
fn a_signalled_job_checkpoints_requeues_and_finishes_from_its_checkpoint() {
    let Some((tmp, config, cluster)) = job_setup(40) else {
        return;
    };
    let work = tmp.path();
    let job = cluster.submit("train.sbatch", work, &config, &["--nodes=3"]);
    cluster.wait_for_checkpoint(work, 6);
    // What `--signal=B:USR1@SECONDS` does ahead of the time limit.
    cluster.run("scancel", &["--signal=USR1", "--batch", &job]);
    cluster.wait(work, "the requeue", Duration::from_secs(120), || {
        cluster.state(&job) == "PENDING BeginTime"
    });
    let first_run = log(work);
    assert!(
        first_run.contains("suspended: the job continues"),
        "the coordinator left the job resumable: {first_run}"
    );
    let resumable = newest_step(work).expect("a registered checkpoint");
    assert!((6..40).contains(&resumable), "{resumable}");
    // A requeued job waits for a begin time two minutes on; let it start now. Not in the
    // second of the requeue: slurmd revokes the job's credential with a one-second stamp,
    // and a run launched in that same second is killed as "Job credential revoked".
    std::thread::sleep(Duration::from_secs(2));
    cluster.run(
        "scontrol",
        &["update", &format!("JobId={job}"), "StartTime=now"],
    );
    cluster.wait_for_end(work, &job, Duration::from_secs(400));
    let log = log(work);
    let state = cluster.state(&job);
    assert!(
        state.starts_with("COMPLETED"),
        "{state}\n{log}\n{}",
        daemon_logs(&cluster)
    );
    assert!(log.contains("job finished"), "{log}");
    assert_eq!(newest_step(work), Some(40), "{log}");
    assert!(log.contains("requeueing job"), "{log}");
    assert!(
        !log.contains("failed: worker join exited"),
        "leaving on the signal is not a node failure: {log}"
    );
    assert!(log.contains("(restart 1)"), "the job ran again: {log}");
    assert!(
        log.contains("continuing the job"),
        "the second run continued the first one's job: {log}"
    );
    assert!(
        log.contains(&format!("\"resume\":\"Some({resumable})\""))
            || log.contains(&format!("resume=Some({resumable})")),
        "the second run started at the registered checkpoint {resumable}: {log}"
    );
    // Each role has its own private token, kept across the requeue.
    let tokens: Vec<String> = ["node", "agent", "operator"]
        .iter()
        .map(|role| {
            let file = work.join("job/tokens").join(format!("{role}.token"));
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
            std::fs::read_to_string(&file).unwrap()
        })
        .collect();
    assert!(tokens[0] != tokens[1] && tokens[1] != tokens[2] && tokens[0] != tokens[2]);
}

#[test]
fn the_heterogeneous_job_runs_the_coordinator_in_its_own_component_to_the_end() {
    let Some((tmp, config, cluster)) = job_setup(12) else {
        return;
    };
    let work = tmp.path();
    // One node for the coordinator, two for the workers (the script asks for 1 + 4).
    let job = cluster.submit(
        "train-hetjob.sbatch",
        work,
        &config,
        &["--nodes=1", ":", "--nodes=2"],
    );
    cluster.wait_for_end(work, &job, Duration::from_secs(300));
    let log = log(work);
    let state = cluster.state(&job);
    assert!(state.starts_with("COMPLETED"), "{state}\n{log}");
    assert!(log.contains("coordinator on n1"), "{log}");
    assert!(
        log.contains("dashboard: http://") && log.contains("/metrics (Authorization: Bearer"),
        "the job prints where to watch it: {log}"
    );
    assert!(log.contains("2 worker node(s)"), "{log}");
    assert!(log.contains("job finished"), "{log}");
    assert!(log.contains("ended (coordinator exit 0)"), "{log}");
    assert_eq!(newest_step(work), Some(12), "{log}");
}

#[test]
fn a_dead_node_ends_the_job_at_once_and_is_named() {
    let Some((tmp, config, cluster)) = job_setup(100_000) else {
        return;
    };
    let work = tmp.path();
    let job = cluster.submit("train.sbatch", work, &config, &["--nodes=3"]);
    cluster.wait_for_checkpoint(work, 4);
    // The `worker join` of the node with SLURM_NODEID 1 dies.
    let victim = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
            has(&cmdline, b"join\0")
                && has(&environ, work.join("job").to_string_lossy().as_bytes())
                && has(&environ, b"\0SLURM_NODEID=1\0")
        })
        .expect("the worker join of node 1");
    // SAFETY: kill(2) on a process this test's job started.
    assert_eq!(unsafe { libc::kill(victim, libc::SIGKILL) }, 0);
    cluster.wait_for_end(work, &job, Duration::from_secs(120));
    let log = log(work);
    let state = cluster.state(&job);
    assert!(state.starts_with("FAILED"), "{state}\n{log}");
    assert!(
        log.contains("SLURM_NODEID 1, address 127.0.0.1) failed: worker join exited with 137"),
        "the failing node is named: {log}"
    );
    assert!(log.contains("the workers' step failed"), "{log}");
    assert!(
        !log.contains("requeueing"),
        "a failure is not requeued: {log}"
    );
    let steps = newest_step(work).unwrap();
    assert!(steps < 100_000, "the job did not run on: {steps}");
}

#[test]
fn a_pack_array_packs_one_part_per_task_and_the_last_one_merges() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(cluster) = Cluster::start(tmp.path(), 2) else {
        return;
    };
    let dataloader = Path::new(WORKER).with_file_name("dataloader");
    assert!(
        dataloader.exists(),
        "{} is missing: build it with `cargo build --workspace`",
        dataloader.display()
    );
    let work = tmp.path();
    let corpus = work.join("corpus");
    let (corpus_s, single, parts) = (
        corpus.to_str().unwrap(),
        work.join("single"),
        work.join("parts"),
    );
    let dl = |args: &[&str]| {
        let out = Command::new(&dataloader).args(args).output().unwrap();
        assert!(out.status.success(), "dataloader {args:?}: {}", text(&out));
    };
    dl(&[
        "generate-yfcc",
        "--out",
        corpus_s,
        "--lines",
        "200",
        "--seed",
        "5",
    ]);
    let (dataset, exif, photos) = (
        format!("{corpus_s}/yfcc100m_dataset.bz2"),
        format!("{corpus_s}/yfcc100m_exif.bz2"),
        format!("{corpus_s}/data/images"),
    );
    dl(&[
        "pack",
        "--out",
        single.to_str().unwrap(),
        "--yfcc-dataset",
        &dataset,
        "--yfcc-exif",
        &exif,
        "--photos",
        &photos,
        "--block-size",
        "30",
    ]);
    let out = cluster
        .cmd("sbatch")
        .args(["--parsable", "--array=0-1", "--cpus-per-task=1"])
        .arg(format!("--output={}/pack-%a.log", work.display()))
        .arg(Path::new(REPO).join("deploy/slurm/pack.sbatch"))
        .current_dir(work)
        .env("EXIFLANG_ROOT", REPO)
        .env("BIN_DIR", dataloader.parent().unwrap())
        .env("PACK_OUT", &parts)
        .env("YFCC_METADATA", corpus_s)
        .env("YFCC_PHOTOS", &photos)
        .env("PACK_ARGS", "--block-size 30")
        .output()
        .unwrap();
    assert!(out.status.success(), "sbatch: {}", text(&out));
    let job = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let logs = || {
        (0..2)
            .map(|i| {
                std::fs::read_to_string(work.join(format!("pack-{i}.log"))).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let start = Instant::now();
    loop {
        let queued = cluster.run("squeue", &["-h", "-j", &job]);
        if queued.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the pack array did not end: {queued}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let read = |dir: &Path| -> serde_json::Value {
        let text = std::fs::read_to_string(dir.join("manifest.json"))
            .unwrap_or_else(|e| panic!("no manifest in {}: {e}\n{}", dir.display(), logs()));
        serde_json::from_str(&text).unwrap()
    };
    let (one, merged) = (read(&single), read(&parts));
    for field in ["shards", "samples", "skipped", "tags"] {
        assert_eq!(merged[field], one[field], "{field}");
    }
    let logs = logs();
    for part in ["pack part 0/2", "pack part 1/2"] {
        assert!(
            logs.contains(part),
            "{part} missing from the task logs:\n{logs}"
        );
    }
}
