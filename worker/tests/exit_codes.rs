//! The exit statuses a cluster's restart policy reads from `worker join`: 2 for a
//! configuration problem retrying cannot fix (a config that does not load; training
//! processes that fail round after round before a single step), so a Kubernetes pod
//! failure policy or a batch script fails the job instead of restarting it forever.

mod common;

use common::{free_port, serve, status, write_config, TOKEN, WORKER};
use std::path::Path;
use std::process::{Child, Command};

/// A `coordinator serve` for one node that answers; a new port when one could not be
/// bound (a free port picked, then taken by another socket before the bind).
fn running_coordinator(dir: &Path) -> (Child, u16) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for _ in 0..3 {
        let port = free_port();
        let mut child = serve(dir, port, 1, "");
        for _ in 0..100 {
            if rt.block_on(status(port)).is_some() {
                return (child, port);
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let log = std::fs::read_to_string(dir.join("coordinator.log")).unwrap_or_default();
    panic!("the coordinator did not start:\n{log}");
}

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
    let (mut coordinator, port) = running_coordinator(dir.path());
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
