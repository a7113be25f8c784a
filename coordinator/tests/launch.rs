//! `coordinator launch` without a real worker: argument checks, a missing worker binary
//! and the restart limit for a local worker that keeps failing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn launch(work: &Path, extra: &[&str]) -> Output {
    let config = work.join("train.toml");
    std::fs::write(&config, "").unwrap();
    Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .arg("launch")
        .arg("--config")
        .arg(&config)
        .arg("--work-dir")
        .arg(work.join("launch"))
        .args(extra)
        .env_remove("COORDINATOR_TOKEN")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn zero_nodes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = launch(dir.path(), &["--nodes", "0", "--local"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--nodes"), "{}", stderr(&out));
    assert!(!dir.path().join("launch").exists(), "nothing started");
}

#[test]
fn a_missing_worker_binary_is_named_with_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-worker");
    let out = launch(
        dir.path(),
        &[
            "--nodes",
            "1",
            "--local",
            "--worker-bin",
            missing.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no-such-worker"), "{err}");
    assert!(err.contains("cargo build --release -p worker"), "{err}");
}

#[test]
fn a_worker_that_keeps_failing_is_restarted_at_most_k_times_then_the_launch_fails() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let script = dir.path().join("fake-worker.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@ token=${{COORDINATOR_TOKEN:+set}}\" >> {}\necho 'fake worker fails' >&2\nexit 1\n",
            runs.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = launch(
        dir.path(),
        &[
            "--nodes",
            "1",
            "--local",
            "--worker-bin",
            script.to_str().unwrap(),
            "--max-restarts",
            "2",
            "--restart-backoff-ms",
            "10",
        ],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    let log = dir.path().join("launch").join("worker-0.log");
    assert!(err.contains(&log.display().to_string()), "{err}");
    assert!(err.contains("2 restart(s)"), "{err}");
    let runs = std::fs::read_to_string(&runs).unwrap();
    let lines: Vec<_> = runs.lines().collect();
    assert_eq!(lines.len(), 3, "the first start and 2 restarts: {runs}");
    for line in &lines {
        assert!(
            line.starts_with("join --coordinator http://127.0.0.1:"),
            "{line}"
        );
        assert!(
            line.contains("--procs 1 --node-name local-0 token=set"),
            "{line}"
        );
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        logged.matches("fake worker fails").count(),
        3,
        "stderr appended"
    );
    let token = dir.path().join("launch").join("token");
    let mode = std::fs::metadata(&token).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(dir.path().join("launch").join("coordinator.db").exists());
}
