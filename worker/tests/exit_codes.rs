//! The exit statuses a cluster's restart policy reads from `worker join`: 2 for a
//! configuration problem retrying cannot fix (a config that does not load; training
//! processes that fail round after round before a single step), so a Kubernetes pod
//! failure policy or a batch script fails the job instead of restarting it forever.

mod common;

use common::{free_port, serve, write_config, TOKEN, WORKER};
use std::process::Command;

#[test]
fn a_config_that_does_not_load_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[train]\nbatch_size = \"many\"\n").unwrap();
    let out = Command::new(WORKER)
        .args(["join", "--coordinator", "http://127.0.0.1:9", "--config"])
        .arg(&config)
        .env("COORDINATOR_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn training_that_fails_before_any_step_round_after_round_ends_the_node_with_2() {
    let dir = tempfile::tempdir().unwrap();
    // The dataset is not there: every training process fails before its first step.
    let missing = dir.path().join("no-such-dataset").display().to_string();
    let config = write_config(dir.path(), &missing, 10);
    let port = free_port();
    let mut coordinator = serve(dir.path(), port, 1, "");
    let out = Command::new(WORKER)
        .args(["join", "--coordinator", &format!("http://127.0.0.1:{port}")])
        .args([
            "--node-name",
            "solo",
            "--wait-for-coordinator-s",
            "30",
            "--config",
        ])
        .arg(&config)
        .env("COORDINATOR_TOKEN", TOKEN)
        .output()
        .unwrap();
    let _ = coordinator.kill();
    let _ = coordinator.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("failed in 3 rounds in a row without completing a step"),
        "{stderr}"
    );
}
