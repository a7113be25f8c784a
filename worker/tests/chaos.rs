//! Chaos for real: a 3-node job (`coordinator serve`, three `worker join` with a training
//! process each, an evaluation agent) on the tiny config, with faults from a seeded
//! schedule: SIGKILL of a training process, of a whole `worker join` process group (then
//! started again, as a supervisor would), of the coordinator (restarted on its
//! database) and of the evaluation agent (started again), each when the newest checkpoint
//! reaches the step the schedule drew. At the end:
//! - the job finished, with its newest checkpoint at the step and data position an
//!   uninterrupted run ends at;
//! - every registered checkpoint is complete and loads, at the step and position the
//!   registry holds;
//! - the sample record of every process, replayed, gives each step its full global batch
//!   and each epoch every sample position once: nothing skipped, nothing counted twice;
//! - every evaluation job ended once, done, with its result written.
//!
//! `CHAOS_SEED` (default 1) and `CHAOS_FAULTS` (default 5) choose the schedule;
//! `scripts/chaos.sh` runs it over many seeds.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    eval_agent, free_port, kill_group, newest_step, packed_photos, status, write_config, TOKEN,
    WORKER,
};
use infra::store::StoreOptions;
use proto::domain::{EvalPhase, JobPhase, JobStatus};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use worker::checkpoint::CheckpointStore;

const STEPS: u64 = 48;
const BATCH: u64 = 6;
/// The packed photos (every 12th of the shared ones).
const PHOTOS: u64 = 33;
const NODES: usize = 3;
const EVAL_EVERY: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// SIGKILL one training process of a node.
    Trainer(usize),
    /// SIGKILL a node's `worker join` and its processes; then start it again.
    Node(usize),
    /// SIGKILL the coordinator; then start it again on its database.
    Coordinator,
    /// SIGKILL the evaluation agent; then start it again.
    Agent,
}

/// The seeded schedule: each kind once in a drawn order, then drawn kinds, each at a
/// drawn checkpoint step (in order).
fn schedule(seed: u64, faults: usize) -> Vec<(u64, Fault)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut draw = |n: u64| rng.next_u64() % n;
    let kind = |k: u64, node: usize| match k {
        0 => Fault::Trainer(node),
        1 => Fault::Node(node),
        2 => Fault::Coordinator,
        _ => Fault::Agent,
    };
    let mut kinds: Vec<u64> = (0..4).collect();
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, draw(i as u64 + 1) as usize);
    }
    let mut plan: Vec<(u64, Fault)> = (0..faults)
        .map(|i| {
            let k = if i < 4 { kinds[i] } else { draw(4) };
            // Checkpoints come every 2 steps; faults between steps 4 and STEPS - 12.
            let at = 4 + 2 * draw((STEPS - 16) / 2 + 1);
            (at, kind(k, draw(NODES as u64) as usize))
        })
        .collect();
    plan.sort_by_key(|(at, _)| *at);
    plan
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn join(dir: &Path, cfg: &Path, port: u16, name: &str) -> Child {
    Command::new(WORKER)
        .args(["--log-format", "json", "join", "--coordinator"])
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--config")
        .arg(cfg)
        .args(["--node-name", name, "--group-timeout-s", "10", "--procs", "1"])
        // As the deployments do: a node started while the coordinator restarts waits.
        .args(["--wait-for-coordinator-s", "60"])
        .env("COORDINATOR_TOKEN", TOKEN)
        .env("WORKER_SAMPLE_RECORD", dir.join("samples"))
        .env("OMP_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(common::log_file(dir, &format!("{name}.log")))
        .process_group(0) // the worker and its training processes, killable as one
        .spawn()
        .unwrap()
}

/// The training processes of a `worker join` (its children).
fn trainers(worker: &Child) -> Vec<i32> {
    let out = Command::new("pgrep")
        .args(["-P", &worker.id().to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Polls the status until `done` holds; after `limit`, fails with the last status and
/// the end of every log of the job.
fn wait(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    port: u16,
    what: &str,
    limit: Duration,
    done: impl Fn(&JobStatus) -> bool,
) -> JobStatus {
    let t = Instant::now();
    let mut last = None;
    while t.elapsed() < limit {
        if let Some(s) = rt.block_on(status(port)) {
            if done(&s) {
                return s;
            }
            last = Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut logs = String::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            // The last lines that are not backtrace frames.
            let tail: Vec<&str> = text
                .lines()
                .rev()
                .filter(|l| !l.starts_with(' '))
                .take(15)
                .collect();
            logs += &format!("\n== {}\n", path.display());
            for line in tail.iter().rev() {
                logs += &format!("{line}\n");
            }
        }
    }
    panic!("timed out waiting for {what}; last status {last:#?}{logs}");
}

struct Job<'a> {
    dir: &'a Path,
    cfg: &'a Path,
    port: u16,
    server: Child,
    workers: Vec<Child>,
    agent: Child,
}

impl Job<'_> {
    /// Injects `fault`; false when it could not be (a node with no training process
    /// for 10 s: the job ended first).
    fn inject(&mut self, fault: Fault) -> bool {
        match fault {
            Fault::Trainer(i) => {
                let t = Instant::now();
                // Between rounds a node has no training process: wait for one.
                let pid = loop {
                    if let Some(&pid) = trainers(&self.workers[i]).first() {
                        break pid;
                    }
                    if t.elapsed() > Duration::from_secs(10) {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                };
                // SAFETY: a child of a worker this test started.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            Fault::Node(i) => {
                kill_group(&self.workers[i]);
                let _ = self.workers[i].wait();
                self.workers[i] = join(self.dir, self.cfg, self.port, &format!("node-{i}"));
            }
            Fault::Coordinator => {
                self.server.kill().unwrap();
                self.server.wait().unwrap();
                std::thread::sleep(Duration::from_millis(500));
                self.server = serve(self.dir, self.port);
            }
            Fault::Agent => {
                self.agent.kill().unwrap();
                self.agent.wait().unwrap();
                self.agent = eval_agent(self.dir, self.cfg, self.port, "agent");
            }
        }
        true
    }
}

impl Drop for Job<'_> {
    /// Nothing outlives the test, whatever failed.
    fn drop(&mut self) {
        for w in &mut self.workers {
            if matches!(w.try_wait(), Ok(None)) {
                kill_group(w);
                let _ = w.wait();
            }
        }
        for child in [&mut self.agent, &mut self.server] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn serve(dir: &Path, port: u16) -> Child {
    common::serve(dir, port, NODES as u32, "eval_lease_ms = 3000\n")
}

#[test]
fn a_job_under_seeded_faults_finishes_with_nothing_lost_or_repeated() {
    let (seed, faults) = (env_or("CHAOS_SEED", 1), env_or("CHAOS_FAULTS", 5) as usize);
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = packed_photos(dir.path()) else {
        return;
    };
    let cfg = write_config(dir.path(), &data, STEPS);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text
        .replace("batch_size = 8", &format!("batch_size = {BATCH}"))
        .replace("keep_last = 3", "keep_last = 1000");
    let suite = format!(
        "[[eval.suites]]\nname = \"retrieval\"\nevery_steps = {EVAL_EVERY}\n\
         [eval.suites.retrieval]\ndata = \"{data}\"\nbatch = 4\nrounds = 1\n"
    );
    std::fs::write(&cfg, text + &suite).unwrap();

    let plan = schedule(seed, faults);
    eprintln!("chaos seed {seed}: {plan:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = free_port();
    let mut job = Job {
        dir: dir.path(),
        cfg: &cfg,
        port,
        server: serve(dir.path(), port),
        workers: (0..NODES)
            .map(|i| join(dir.path(), &cfg, port, &format!("node-{i}")))
            .collect(),
        agent: eval_agent(dir.path(), &cfg, port, "agent"),
    };
    let mut injected = 0;
    for &(at, fault) in &plan {
        wait(
            &rt,
            dir.path(),
            port,
            "the fault's step",
            Duration::from_secs(300),
            |s| newest_step(s) >= at || s.phase.is_over(),
        );
        let done = job.inject(fault);
        eprintln!(
            "chaos seed {seed}: at step {at}: {fault:?}{}",
            if done {
                ""
            } else {
                " (no training process left: not injected)"
            }
        );
        injected += usize::from(done);
    }
    let done = wait(
        &rt,
        dir.path(),
        port,
        "the job and its evaluations to end",
        Duration::from_secs(240),
        |s| s.phase.is_over() && !s.evals.is_empty() && s.evals.iter().all(|e| e.phase.is_over()),
    );
    let agent_exit = (0..150).find_map(|_| {
        std::thread::sleep(Duration::from_millis(200));
        job.agent.try_wait().unwrap()
    });
    for w in &mut job.workers {
        let t = Instant::now();
        while w.try_wait().unwrap().is_none() && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
        kill_group(w);
        let _ = w.wait();
    }
    let _ = job.agent.kill();
    let _ = job.server.kill();
    let _ = job.server.wait();
    assert!(
        rt.block_on(status(port)).is_none(),
        "the coordinator is gone"
    );

    // The job, and its end where an uninterrupted run ends.
    assert_eq!(done.phase, JobPhase::Finished, "{done:?}");
    let newest = done.checkpoints.iter().max_by_key(|c| c.step).unwrap();
    assert_eq!(newest.step.get(), STEPS);
    assert_eq!(
        (newest.position.epoch, newest.position.samples_consumed),
        common::uninterrupted_end(STEPS, BATCH, PHOTOS),
        "the data position of an uninterrupted run"
    );

    // Every registered checkpoint is complete and loads, as registered.
    let store = CheckpointStore::open(
        &dir.path().join("ckpt").display().to_string(),
        &StoreOptions::default(),
    )
    .unwrap();
    let stored = rt.block_on(store.list()).unwrap();
    for c in &done.checkpoints {
        let r = stored
            .iter()
            .find(|r| r.step == c.step.get())
            .unwrap_or_else(|| panic!("registered step {} is not complete in storage", c.step));
        let ck = rt.block_on(store.load(r)).unwrap();
        assert_eq!(
            (ck.state.step, ck.state.data.epoch, ck.state.data.consumed),
            (c.step.get(), c.position.epoch, c.position.samples_consumed),
            "checkpoint {} loads as registered",
            c.url
        );
    }

    // Every step's full batch, every epoch's samples once.
    let processes =
        common::assert_each_sample_once(&dir.path().join("samples"), STEPS, BATCH, PHOTOS);

    // Every evaluation ended once, done, with its result written; one per checkpoint due
    // (every EVAL_EVERY steps and the last).
    let mut due: Vec<u64> = done
        .checkpoints
        .iter()
        .map(|c| c.step.get())
        .filter(|&s| s % EVAL_EVERY == 0 || s == STEPS)
        .collect();
    due.sort_unstable();
    let mut evaluated: Vec<u64> = done.evals.iter().map(|e| e.checkpoint_step.get()).collect();
    evaluated.sort_unstable();
    assert_eq!(evaluated, due, "one evaluation per checkpoint due");
    for e in &done.evals {
        match &e.phase {
            EvalPhase::Done { result_url, .. } => {
                assert!(Path::new(result_url).is_file(), "{result_url}")
            }
            other => panic!("evaluation {} ended {other:?}", e.id),
        }
    }
    assert!(
        agent_exit.is_some_and(|s| s.success()),
        "the agent leaves once the job and its evaluations are over: {agent_exit:?}"
    );
    let retried = done.evals.iter().filter(|e| e.attempts > 1).count();
    assert!(
        injected >= 3,
        "only {injected} of the faults were injected before the end"
    );
    eprintln!(
        "chaos seed {seed}: {injected} faults survived; rounds {}; {} processes started; {} evaluations ({retried} leased again); nothing skipped or repeated",
        done.round,
        processes,
        done.evals.len(),
    );
}
