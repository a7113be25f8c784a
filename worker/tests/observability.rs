//! Seeing a running job: a real two-node job (`coordinator serve`, two `worker join`
//! processes, one `worker train` rank each) reports per-rank step timing through its
//! heartbeats, and a rank slowed for real (its training process stopped and continued
//! with SIGSTOP / SIGCONT) is flagged as the straggler while the other is not.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, log_file, packed_photos, status, wait_for, write_config, TOKEN, WORKER};
use proto::domain::{JobStatus, Rank};

/// Long enough never to end during the test; the test stops the job.
const STEPS: u64 = 100_000;

fn join(dir: &Path, cfg: &Path, port: u16, name: &str) -> Child {
    Command::new(WORKER)
        .args(["--log-format", "json", "join", "--coordinator"])
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--config")
        .arg(cfg)
        .args(["--node-name", name, "--group-timeout-s", "30"])
        .env("COORDINATOR_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(log_file(dir, &format!("{name}.log")))
        .process_group(0)
        .spawn()
        .unwrap()
}

/// The one `worker train` process `worker join` `parent` runs.
fn training_process(parent: &Child) -> i32 {
    let out = Command::new("pgrep")
        .args(["-P", &parent.id().to_string()])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .next()
        .expect("a training process")
        .trim()
        .parse()
        .unwrap()
}

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: a process this test started (through `worker join`).
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Every rank of the running round has reported step timing.
fn timed_ranks(s: &JobStatus) -> Vec<(Rank, f64)> {
    s.members
        .iter()
        .flat_map(|m| &m.progress)
        .filter(|p| p.timing.step_s > 0.0)
        .map(|p| (p.global_rank, p.timing.own_s()))
        .collect()
}

#[test]
fn a_rank_slowed_by_sigstop_is_flagged_as_the_straggler_and_the_other_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = packed_photos(dir.path()) else {
        return;
    };
    let cfg = write_config(dir.path(), &data, STEPS);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = free_port();
    let mut server = common::serve(dir.path(), port, 2, "");
    let workers = [
        join(dir.path(), &cfg, port, "node-a"),
        join(dir.path(), &cfg, port, "node-b"),
    ];
    // Both ranks report their phases once a few steps are taken.
    let s = rt.block_on(wait_for(
        port,
        "step timing from both ranks",
        Duration::from_secs(180),
        |s| {
            timed_ranks(s).len() == 2
                && s.members
                    .iter()
                    .flat_map(|m| &m.progress)
                    .all(|p| p.step.get() >= 10)
        },
    ));
    for p in s.members.iter().flat_map(|m| &m.progress) {
        let t = &p.timing;
        assert!(
            t.forward_s > 0.0 && t.backward_s > 0.0 && t.optimizer_s > 0.0,
            "{p:?}"
        );
        let phases = t.data_wait_s
            + t.forward_s
            + t.backward_s
            + t.grad_reduce_s
            + t.optimizer_s
            + t.checkpoint_s;
        assert!(
            phases <= t.step_s * 1.001 && phases >= 0.5 * t.step_s,
            "phases {phases} of step {}: {p:?}",
            t.step_s
        );
        assert!(
            p.model_tflops > 0.0 && p.data.bytes_read > 0 && p.lr > 0.0,
            "{p:?}"
        );
    }

    // node-b holds rank 1 (ranks follow node names). Stop its training process for 2 s at
    // a time, letting it run 0.2 s in between, until the coordinator names it.
    let slow = training_process(&workers[1]);
    let t0 = Instant::now();
    let mut flagged = None;
    while t0.elapsed() < Duration::from_secs(90) {
        signal(slow, libc::SIGSTOP);
        std::thread::sleep(Duration::from_secs(2));
        signal(slow, libc::SIGCONT);
        std::thread::sleep(Duration::from_millis(200));
        let Some(s) = rt.block_on(status(port)) else {
            continue;
        };
        assert!(
            !s.stragglers.contains(&Rank::new(0)),
            "rank 0 flagged while rank 1 was the slow one: {s:?}"
        );
        if !s.stragglers.is_empty() {
            flagged = Some(s);
            break;
        }
    }
    signal(slow, libc::SIGCONT);
    let s = flagged.expect("the stopped rank was never flagged within 90 s");
    assert_eq!(s.stragglers, vec![Rank::new(1)], "{s:?}");
    let own = timed_ranks(&s);
    eprintln!(
        "flagged after {:.1} s: own time per step {own:?}, median {:.3} s",
        t0.elapsed().as_secs_f64(),
        s.median_own_step_s
    );
    let text = Command::new(common::coordinator_bin())
        .args([
            "status",
            "--coordinator",
            &format!("http://127.0.0.1:{port}"),
        ])
        .env("COORDINATOR_TOKEN", TOKEN)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("stragglers: rank(s) 1") && text.contains("STRAGGLER"),
        "{text}"
    );

    // Left alone again, it drops out of the flag once its window holds normal steps.
    rt.block_on(wait_for(
        port,
        "the flag to clear",
        Duration::from_secs(120),
        |s| s.stragglers.is_empty() && timed_ranks(s).len() == 2,
    ));

    for w in &workers {
        // SAFETY: process groups this test created.
        unsafe {
            libc::kill(-(w.id() as libc::pid_t), libc::SIGKILL);
        }
    }
    let _ = server.kill();
    let _ = server.wait();
}
