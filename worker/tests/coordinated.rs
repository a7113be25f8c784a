//! A coordinated job for real: a `coordinator serve` process and two `worker join`
//! processes, each running a `worker train` rank. Things are killed with SIGKILL (a
//! training process, a whole worker with its processes, the coordinator, which is then
//! restarted on its database) and each time the job finishes, with its last checkpoint at
//! the step and data position an uninterrupted run ends at.
//!
//! The coordinator binary is the one built beside the worker binary (`cargo build
//! --workspace`, as `./test.sh` does).

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    free_port, kill_group, newest_step, packed_photos, status, wait_for, write_config, TOKEN,
    WORKER,
};
use proto::domain::{JobPhase, JobStatus, Rank};

const STEPS: u64 = 60;

/// Starts `coordinator serve` on `port` with its database in `dir`, for a 2-node job.
fn serve(dir: &Path, port: u16) -> Child {
    serve_nodes(dir, port, 2)
}

/// Starts `coordinator serve` on `port` with its database in `dir`, for `nodes` nodes.
fn serve_nodes(dir: &Path, port: u16, nodes: u32) -> Child {
    common::serve(dir, port, nodes, "")
}

fn join(dir: &Path, cfg: &Path, port: u16, name: &str) -> Child {
    join_procs(dir, cfg, port, name, 1)
}

/// `worker join` with `procs` training processes on this node.
fn join_procs(dir: &Path, cfg: &Path, port: u16, name: &str, procs: u32) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .unwrap();
    Command::new(WORKER)
        .args(["--log-format", "json", "join", "--coordinator"])
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--config")
        .arg(cfg)
        .args(["--node-name", name, "--group-timeout-s", "10"])
        .args(["--procs", &procs.to_string()])
        .env("COORDINATOR_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0) // the worker and its training processes, killable as one
        .spawn()
        .unwrap()
}

/// The job finished with its newest checkpoint where 60 uninterrupted steps of 8 over the
/// 33-photo epoch end (4 steps per epoch, the last photo dropped), after `min_rounds`.
fn assert_finished_right(s: &JobStatus, min_rounds: u64) {
    assert_eq!(s.phase, JobPhase::Finished, "{s:?}");
    let newest = s.checkpoints.iter().max_by_key(|c| c.step).unwrap();
    assert_eq!(newest.step.get(), STEPS);
    assert_eq!(
        (newest.position.epoch, newest.position.samples_consumed),
        common::uninterrupted_end(STEPS, 8, 33),
        "no sample skipped or repeated: the data position of an uninterrupted run"
    );
    assert!(
        s.round.get() >= min_rounds,
        "round {} after a failure",
        s.round
    );
}

fn reap(children: Vec<Child>) {
    for mut c in children {
        let t = Instant::now();
        while c.try_wait().unwrap().is_none() && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
        kill_group(&c);
        let _ = c.wait();
    }
}

/// Runs a 2-node job with `disturb` called once the first checkpoints exist.
fn run_job(
    disturb: impl FnOnce(&tokio::runtime::Runtime, &Path, &Path, u16, &mut Vec<Child>, &mut Child),
) -> Option<JobStatus> {
    let dir = tempfile::tempdir().unwrap();
    let data = packed_photos(dir.path())?;
    let cfg = write_config(dir.path(), &data, STEPS);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = free_port();
    let mut server = serve(dir.path(), port);
    let mut workers = vec![
        join(dir.path(), &cfg, port, "node-a"),
        join(dir.path(), &cfg, port, "node-b"),
    ];
    rt.block_on(wait_for(
        port,
        "training to start",
        Duration::from_secs(120),
        |s| newest_step(s) >= 6,
    ));
    disturb(&rt, dir.path(), &cfg, port, &mut workers, &mut server);
    let s = rt.block_on(wait_for(
        port,
        "the job to finish",
        Duration::from_secs(240),
        |s| s.phase.is_over(),
    ));
    reap(workers);
    let _ = server.kill();
    let _ = server.wait();
    Some(s)
}

#[test]
fn a_training_process_killed_mid_epoch_is_replaced_and_the_job_finishes() {
    let Some(s) = run_job(|_, _, _, _, workers, _| {
        let out = Command::new("pgrep")
            .args(["-P", &workers[1].id().to_string()])
            .output()
            .unwrap();
        let pid: i32 = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }) else {
        return;
    };
    assert_finished_right(&s, 2);
}

#[test]
fn a_whole_worker_killed_is_replaced_and_the_job_finishes() {
    let Some(s) = run_job(|_, dir, cfg, port, workers, _| {
        kill_group(&workers[1]);
        let _ = workers[1].wait();
        // What a supervisor (Kubernetes, Slurm, `coordinator launch --local`) does.
        workers[1] = join(dir, cfg, port, "node-b");
    }) else {
        return;
    };
    assert_finished_right(&s, 2);
}

#[test]
fn a_coordinator_killed_and_restarted_carries_on_from_its_database() {
    let Some(s) = run_job(|rt, dir, _, port, _, server| {
        let before = rt.block_on(status(port)).unwrap();
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
        std::thread::sleep(Duration::from_secs(1));
        *server = serve(dir, port);
        let after = rt.block_on(wait_for(
            port,
            "the coordinator to answer",
            Duration::from_secs(30),
            |_| true,
        ));
        assert_eq!(after.round, before.round, "same round after the restart");
        assert!(
            newest_step(&after) >= newest_step(&before),
            "checkpoint registry kept"
        );
    }) else {
        return;
    };
    assert_finished_right(&s, 1);
}

#[test]
fn one_node_with_two_processes_trains_with_synchronised_batch_norm_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = packed_photos(dir.path()) else {
        return;
    };
    let cfg = write_config(dir.path(), &data, STEPS);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let synced = text.replace("[train]\n", "[train]\nbatch_norm = \"synced\"\n");
    assert_ne!(synced, text, "the config has a [train] section");
    std::fs::write(&cfg, synced).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = free_port();
    let mut server = serve_nodes(dir.path(), port, 1);
    let worker = join_procs(dir.path(), &cfg, port, "node-a", 2);
    let running = rt.block_on(wait_for(
        port,
        "both processes to train",
        Duration::from_secs(120),
        |s| newest_step(s) >= 1,
    ));
    assert_eq!(running.world_size, 2, "{running:?}");
    assert_eq!(running.members[0].global_ranks, [0, 1].map(Rank::new));
    let s = rt.block_on(wait_for(
        port,
        "the job to finish",
        Duration::from_secs(240),
        |s| s.phase.is_over(),
    ));
    reap(vec![worker]);
    let _ = server.kill();
    let _ = server.wait();
    assert_finished_right(&s, 1);
}
