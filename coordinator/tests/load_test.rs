//! `coordinator load-test` on a small job: a real `coordinator serve` process and 12
//! simulated nodes of 8 ranks; every node gets its ranks, heartbeats are answered, the
//! silent node is seen dead, the others are told to rejoin and the next round closes with
//! it back. The figures are printed, not asserted against times (shared machines).

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
            "3",
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
    assert_eq!(f["heartbeat_errors"], 0, "{json}");
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
