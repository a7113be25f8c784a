//! `coordinator load-test` on a small job: a real `coordinator serve` process and 12
//! simulated nodes of 8 ranks; every node gets its ranks, heartbeats are answered,
//! rank 0's checkpoints are registered and each evaluation they are due is leased and
//! done, a flooding client is refused while the nodes are served, the silent node is
//! seen dead, the others are told to rejoin and the next round closes with it back. The
//! figures are printed, not asserted against times (shared machines).

use std::process::Command;

#[test]
fn a_small_load_test_runs_every_phase_and_reports_its_figures() {
    let out = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args([
            "load-test",
            "--nodes",
            "12",
            "--heartbeat-ms",
            "300",
            "--steady-s",
            "4",
            "--flood",
            "4",
        ])
        .output()
        .expect("run coordinator load-test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = stdout.lines().last().expect("a JSON line");
    let f: serde_json::Value = serde_json::from_str(json).expect("the last line is JSON");
    assert_eq!(f["nodes"], 12);
    assert_eq!(f["ranks"], 96);
    assert!(f["heartbeats"].as_u64().unwrap() >= 12, "{json}");
    assert_eq!(
        f["errors"], 0,
        "no call of a node or the agent failed: {json}"
    );
    assert!(f["flooded_heartbeats"].as_u64().unwrap() >= 12, "{json}");
    let checkpoints = f["checkpoints_reported"].as_u64().unwrap();
    assert!(checkpoints >= 4, "one checkpoint per interval: {json}");
    let evaluated = f["evaluations_done"].as_u64().unwrap();
    assert!(
        evaluated >= 1 && evaluated <= checkpoints,
        "one evaluation per checkpoint at most, done as they come: {json}"
    );
    let (calls, refused) = (
        f["flood_calls"].as_u64().unwrap(),
        f["flood_refused"].as_u64().unwrap(),
    );
    assert!(
        refused > calls / 2,
        "the flooding client is refused most of its calls: {json}"
    );
    for field in [
        "join_to_ranks_ms",
        "heartbeat_p99_ms",
        "detect_dead_ms",
        "next_round_ms",
    ] {
        assert!(f[field].as_f64().unwrap() > 0.0, "{field}: {json}");
    }
    assert!(f["db_bytes"].as_u64().unwrap() > 0, "{json}");
    assert!(
        f["coordinator_rss_peak_mb"].as_f64().unwrap() > 0.0,
        "{json}"
    );
}
