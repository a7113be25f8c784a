//! Real `worker train` processes forming a data-parallel group over TCP on loopback: two
//! ranks finish together, agree on every step's loss, and leave a checkpoint at the same
//! data position as one process would; a rank killed with SIGKILL makes the other stop with
//! an error naming it instead of hanging; SIGTERM makes a process checkpoint and leave, and
//! `--resume` finishes the run where an uninterrupted one ends; ranks told to resume from
//! different checkpoints fail instead of drifting apart.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{free_port, packed_photos, write_config, WORKER};

/// `worker train` as rank `rank` of `world`; with `events`, its JSON event lines on a
/// piped stdout (read it, or the process blocks once the pipe is full).
fn spawn_with(
    config: &Path,
    summary: &Path,
    rank: usize,
    world: usize,
    port: u16,
    events: bool,
) -> Child {
    let mut cmd = Command::new(WORKER);
    cmd.args(["--log-format", "json", "train", "--config"])
        .arg(config)
        .arg("--summary")
        .arg(summary)
        .args(["--rank", &rank.to_string(), "--world", &world.to_string()])
        .args([
            "--master",
            &format!("127.0.0.1:{port}"),
            "--group-timeout-s",
            "20",
        ])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped());
    if events {
        cmd.arg("--events-stdout").stdout(Stdio::piped());
    } else {
        cmd.stdout(Stdio::null());
    }
    cmd.spawn().unwrap()
}

fn spawn(config: &Path, summary: &Path, rank: usize, world: usize, port: u16) -> Child {
    spawn_with(config, summary, rank, world, port, false)
}

fn summary_losses(path: &Path) -> Vec<f64> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_f64().unwrap())
        .collect()
}

/// The data position recorded in the newest checkpoint under `dir/ckpt`.
fn checkpoint_position(dir: &Path) -> (u64, u64, u64) {
    let mut steps: Vec<PathBuf> = std::fs::read_dir(dir.join("ckpt"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("COMPLETE.json").exists())
        .collect();
    steps.sort();
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(steps.last().unwrap().join("train_state.json")).unwrap(),
    )
    .unwrap();
    (
        state["step"].as_u64().unwrap(),
        state["data"]["epoch"].as_u64().unwrap(),
        state["data"]["consumed"].as_u64().unwrap(),
    )
}

#[test]
fn two_processes_train_one_model_and_checkpoint_where_one_process_would() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    let Some(data) = packed_photos(one.path()) else {
        return;
    };
    let steps = 6;
    let cfg1 = write_config(one.path(), &data, steps);
    let cfg2 = write_config(two.path(), &data, steps);

    let solo = spawn(&cfg1, &one.path().join("s.json"), 0, 1, free_port());
    let out = solo.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let port = free_port();
    let ranks: Vec<Child> = (0..2)
        .map(|r| spawn(&cfg2, &two.path().join(format!("s{r}.json")), r, 2, port))
        .collect();
    for (r, child) in ranks.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "rank {r}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (l0, l1) = (
        summary_losses(&two.path().join("s0.json")),
        summary_losses(&two.path().join("s1.json")),
    );
    assert_eq!(l0.len(), steps as usize);
    assert_eq!(l0, l1, "both ranks compute the same global-batch loss");
    assert!(l0.iter().all(|l| l.is_finite()));
    // Rank 0 wrote the checkpoints, at the data position a single process reaches.
    let (step, epoch, consumed) = checkpoint_position(two.path());
    assert_eq!(step, steps);
    assert_eq!((step, epoch, consumed), checkpoint_position(one.path()));
}

#[test]
fn a_rank_killed_mid_run_makes_the_other_fail_with_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = packed_photos(dir.path()) else {
        return;
    };
    let cfg = write_config(dir.path(), &data, 100_000);
    let port = free_port();
    let mut root = spawn(&cfg, &dir.path().join("s0.json"), 0, 2, port);
    let mut other = spawn(&cfg, &dir.path().join("s1.json"), 1, 2, port);
    // Wait until training is under way (the first checkpoint is committed).
    let start = Instant::now();
    while !dir
        .path()
        .join("ckpt/step-000000002/COMPLETE.json")
        .exists()
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "training never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    other.kill().unwrap(); // SIGKILL
    other.wait().unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = root.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "rank 0 hangs after its peer died"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(root.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("rank 1"), "{err}");
}

#[test]
fn sigterm_checkpoints_and_leaves_and_resume_finishes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = packed_photos(dir.path()) else {
        return;
    };
    let steps = 400;
    let cfg = write_config(dir.path(), &data, steps);
    let summary = dir.path().join("s.json");
    let child = spawn(&cfg, &summary, 0, 1, free_port());
    let start = Instant::now();
    while !dir
        .path()
        .join("ckpt/step-000000004/COMPLETE.json")
        .exists()
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "training never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(worker::events::EXIT_INTERRUPTED),
        "stopped early after a checkpoint: neither done nor failed\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(v["interrupted"], true);
    let (stopped_at, ..) = checkpoint_position(dir.path());
    assert_eq!(
        stopped_at,
        v["end_step"].as_u64().unwrap(),
        "checkpoint at the last step"
    );
    assert!(stopped_at < steps, "stopped early, at {stopped_at}");

    let resumed = Command::new(WORKER)
        .args(["--log-format", "json", "train", "--resume", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    // Steps of 8 from a 33-photo epoch: 4 steps per epoch, the last photo dropped; the
    // final checkpoint sits after the last batch of epoch (steps - 1) / 4.
    let per_epoch = 33 / 8;
    assert_eq!(
        checkpoint_position(dir.path()),
        (
            steps,
            (steps - 1) / per_epoch,
            ((steps - 1) % per_epoch + 1) * 8
        ),
        "the resumed run ends where an uninterrupted one would"
    );
}

#[test]
fn ranks_resuming_from_different_checkpoints_fail_instead_of_drifting_apart() {
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = packed_photos(dir.path()) else {
        return;
    };
    let config = write_config(dir.path(), &data, 6);
    // One process to step 4: checkpoints at steps 2 and 4.
    let first = Command::new(WORKER)
        .args(["train", "--stop-at-step", "4", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let port = free_port();
    let ranks: Vec<Child> = [("0", "2"), ("1", "4")]
        .iter()
        .map(|(rank, step)| {
            Command::new(WORKER)
                .args(["train", "--config"])
                .arg(&config)
                .args(["--resume-step", step, "--rank", rank, "--world", "2"])
                .args([
                    "--master",
                    &format!("127.0.0.1:{port}"),
                    "--group-timeout-s",
                    "20",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in ranks {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "a rank trained on: {err}");
        assert!(
            err.contains("did not resume from the same checkpoint"),
            "{err}"
        );
    }
    let (step, _, _) = checkpoint_position(dir.path());
    assert_eq!(step, 4, "nothing new was written");
}
