//! Seeing a running job: a real two-node job (`coordinator serve`, two `worker join`
//! processes, one `worker train` rank each) reports per-rank step timing through its
//! heartbeats, and a rank slowed for real (its training process stopped and continued
//! with SIGSTOP / SIGCONT, 80 ms of every 100) is flagged as the straggler while the other
//! is not.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    free_port, log_file, packed_photos, read_board, status, wait_for, write_config, TOKEN, WORKER,
};
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

/// A process stopped 80 ms of every 100 ms (SIGSTOP, SIGCONT) by a thread, as a slow
/// machine would be, until this is dropped (a failing assertion included); every round
/// ends with SIGCONT, so the process then runs on.
struct Throttle {
    on: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Throttle {
    fn start(pid: i32) -> Self {
        let on = Arc::new(AtomicBool::new(true));
        let thread = {
            let on = on.clone();
            std::thread::spawn(move || {
                while on.load(Ordering::Relaxed) {
                    signal(pid, libc::SIGSTOP);
                    std::thread::sleep(Duration::from_millis(80));
                    signal(pid, libc::SIGCONT);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Self {
            on,
            thread: Some(thread),
        }
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.on.store(false, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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

    // node-b holds rank 1 (ranks follow node names). Throttle its training process (80 ms
    // stopped of every 100 ms, so the stops fall through its computation) until the
    // coordinator names it and `coordinator status` has shown it. (Long stops would often
    // land while it waits inside a collective, which, from where it stands, is waiting for
    // the others: not its own time.) The throttling goes on while the status command runs,
    // so the flag cannot clear in between.
    let throttle = Throttle::start(training_process(&workers[1]));
    let t0 = Instant::now();
    let mut flagged = None;
    while t0.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_secs(1));
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
    drop(throttle);
    let text = String::from_utf8_lossy(&text.stdout);
    eprintln!("{text}");
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

/// One family of a scrape, as prometheus_client parsed it.
#[derive(serde::Deserialize, Debug)]
struct Family {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    unit: String,
    samples: Vec<(String, std::collections::BTreeMap<String, String>, f64)>,
}

#[derive(serde::Deserialize, Debug)]
struct Scrape {
    status: u16,
    content_type: String,
    families: Vec<Family>,
}

/// Scrapes `url` with `token` through `tests/python/scrape_metrics.py`.
fn scrape(python: &Path, url: &str, token: Option<&str>) -> Scrape {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/scrape_metrics.py");
    let out = Command::new(python)
        .arg(script)
        .arg(url)
        .args(token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scrape_metrics.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

impl Scrape {
    fn family(&self, name: &str) -> &Family {
        self.families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "no family {name} in {:?}",
                    self.families.iter().map(|f| &f.name).collect::<Vec<_>>()
                )
            })
    }

    /// The value of `name`'s sample whose labels include `labels`.
    fn value(&self, family: &str, sample: &str, labels: &[(&str, &str)]) -> f64 {
        self.family(family)
            .samples
            .iter()
            .find(|(n, l, _)| {
                n == sample
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .unwrap_or_else(|| panic!("no {sample}{labels:?} in {:?}", self.family(family)))
            .2
    }
}

#[test]
fn prometheus_metrics_of_a_running_two_node_launch_parse_with_prometheus_client_and_agree_with_status(
) {
    let Some(python) = testkit::python_with("prometheus_client") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = packed_photos(dir.path()) else {
        return;
    };
    let cfg = write_config(dir.path(), &data, STEPS);
    let (mut launch, port, http_port) = launch_two_nodes(dir.path(), &cfg, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(wait_for(
        port,
        "both ranks training",
        Duration::from_secs(180),
        |s| timed_ranks(s).len() == 2 && !s.checkpoints.is_empty(),
    ));
    let url = format!("http://127.0.0.1:{http_port}/metrics");

    // No token, or a wrong one: no data.
    assert_eq!(scrape(&python, &url, None).status, 401);
    assert_eq!(scrape(&python, &url, Some("not-the-token")).status, 401);

    let before = rt.block_on(status(port)).unwrap();
    let m = scrape(&python, &url, Some(TOKEN));
    let after = rt.block_on(status(port)).unwrap();
    assert_eq!(m.status, 200);
    assert!(
        m.content_type.starts_with("application/openmetrics-text"),
        "{}",
        m.content_type
    );

    // The job as status shows it.
    assert_eq!(
        m.value(
            "exiflang_job_state",
            "exiflang_job_state",
            &[("state", "running")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "exiflang_job_state",
            "exiflang_job_state",
            &[("state", "finished")]
        ),
        0.0
    );
    assert_eq!(
        m.value("exiflang_job_round", "exiflang_job_round", &[]),
        after.round.get() as f64
    );
    assert_eq!(
        m.value("exiflang_job_world_size", "exiflang_job_world_size", &[]),
        2.0
    );
    assert_eq!(
        m.value(
            "exiflang_members",
            "exiflang_members",
            &[("state", "alive")]
        ),
        2.0
    );
    let checkpoints = m.value("exiflang_checkpoints", "exiflang_checkpoints", &[]) as usize;
    assert!((before.checkpoints.len()..=after.checkpoints.len()).contains(&checkpoints));
    for (b, a) in before.members.iter().zip(&after.members) {
        let age = m.value(
            "exiflang_node_heartbeat_age_seconds",
            "exiflang_node_heartbeat_age_seconds",
            &[("node", &a.spec.name)],
        );
        assert!(
            (0.0..3.0).contains(&age),
            "{} heartbeat age {age}",
            a.spec.name
        );
        for (pb, pa) in b.progress.iter().zip(&a.progress) {
            let rank = pa.global_rank.to_string();
            let labels = [("rank", rank.as_str()), ("node", a.spec.name.as_str())];
            let step = m.value("exiflang_rank_step", "exiflang_rank_step", &labels);
            assert!(
                (pb.step.get() as f64..=pa.step.get() as f64).contains(&step),
                "rank {rank} step {step} outside [{}, {}]",
                pb.step,
                pa.step
            );
            let read = m.value(
                "exiflang_rank_data_read_bytes",
                "exiflang_rank_data_read_bytes_total",
                &labels,
            );
            assert!(
                (pb.data.bytes_read as f64..=pa.data.bytes_read as f64).contains(&read)
                    && read > 0.0
            );
            for phase in ["step", "forward", "backward", "optimizer", "collective"] {
                let mut l = labels.to_vec();
                l.push(("phase", phase));
                let v = m.value(
                    "exiflang_rank_phase_seconds",
                    "exiflang_rank_phase_seconds",
                    &l,
                );
                assert!(v.is_finite() && v >= 0.0, "{phase} {v}");
            }
            assert!(
                m.value(
                    "exiflang_rank_phase_seconds",
                    "exiflang_rank_phase_seconds",
                    &[("rank", &rank), ("phase", "step")]
                ) > 0.0
            );
        }
    }
    // Types and units as Prometheus names them.
    assert_eq!(m.family("exiflang_rank_phase_seconds").unit, "seconds");
    assert_eq!(m.family("exiflang_rank_data_read_bytes").kind, "counter");
    assert_eq!(m.family("exiflang_rpc_duration_seconds").kind, "histogram");
    // The RPCs: the nodes' heartbeats were answered OK, with a latency histogram.
    let heartbeats = m.value(
        "exiflang_rpc_requests",
        "exiflang_rpc_requests_total",
        &[("method", "Heartbeat"), ("code", "Ok")],
    );
    assert!(heartbeats >= 2.0, "{heartbeats} heartbeats");
    let observed = m.value(
        "exiflang_rpc_duration_seconds",
        "exiflang_rpc_duration_seconds_count",
        &[("method", "Heartbeat"), ("code", "Ok")],
    );
    assert_eq!(observed, heartbeats, "one latency per call");
    // The wrong-token scrapes above are HTTP, not RPCs; a gRPC call with a wrong token is.
    rt.block_on(async {
        // connect's probe (Ping) is refused; connect itself leaves that to later calls.
        let _ = proto::client::connect(&format!("http://127.0.0.1:{port}"), "wrong").await;
    });
    let m = scrape(&python, &url, Some(TOKEN));
    let refused = m.value(
        "exiflang_rpc_requests",
        "exiflang_rpc_requests_total",
        &[("method", "Ping"), ("code", "Unauthenticated")],
    );
    assert!(refused >= 1.0);

    kill_group(&mut launch);
}

/// Polls the event files under `url` until their newest step satisfies `done` (at most
/// 120 s): that step.
fn wait_for_step(
    rt: &tokio::runtime::Runtime,
    url: &str,
    done: impl Fn(u64) -> bool,
) -> Option<u64> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(120) {
        let files = rt
            .block_on(worker::tensorboard::read_folder(url, &Default::default()))
            .unwrap_or_default();
        let newest = files
            .iter()
            .flat_map(|(_, e)| e)
            .map(|e| e.step as u64)
            .max()
            .unwrap_or(0);
        if done(newest) {
            return Some(newest);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// The newest complete checkpoint's step under `ckpt`.
fn newest_checkpoint(ckpt: &Path) -> u64 {
    std::fs::read_dir(ckpt)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            e.path().join("COMPLETE.json").exists().then_some(())?;
            e.file_name().to_str()?.strip_prefix("step-")?.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn tensorboard_scalars_of_a_killed_and_resumed_run_hold_every_step_once_as_tensorboard_reads_them()
{
    let Some(python) = testkit::python_with("tensorboard") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = packed_photos(dir.path()) else {
        return;
    };
    let board = dir.path().join("board");
    let ckpt = dir.path().join("ckpt");
    let cfg = dir.path().join("config.toml");
    let text = testkit::tiny_config(&data, &ckpt, 40).replace("every_steps = 2", "every_steps = 5")
        + &format!(
            "[logging]\nevery_steps = 1\ntensorboard = \"{}\"\n",
            board.display()
        );
    std::fs::write(&cfg, text).unwrap();

    // A first run, killed between checkpoints: its files hold steps the checkpoint lacks.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = board.to_str().unwrap();
    let mut first = Command::new(WORKER)
        .args(["train", "--config"])
        .arg(&cfg)
        .stderr(log_file(dir.path(), "first.log"))
        .spawn()
        .unwrap();
    // Killed once a step between checkpoints (every 5) is in the files.
    let written = wait_for_step(&rt, url, |newest| {
        newest >= 6 && newest % 5 != 0 && newest % 5 != 4
    });
    let _ = first.kill(); // SIGKILL
    let _ = first.wait();
    let written = written.expect("no TensorBoard events within 120 s");
    let resumed_at = newest_checkpoint(&ckpt);
    let before = read_board(&python, &board);
    let orphans: Vec<u64> = before
        .files
        .values()
        .flatten()
        .copied()
        .filter(|&s| s > resumed_at)
        .collect();
    assert!(
        !orphans.is_empty(),
        "steps after checkpoint {resumed_at} were written (up to {written})"
    );

    // The resumed run takes them out and writes them again, once.
    let summary = dir.path().join("summary.json");
    let out = Command::new(WORKER)
        .args(["train", "--resume", "--stop-at-step", "20", "--config"])
        .arg(&cfg)
        .arg("--summary")
        .arg(&summary)
        .stderr(log_file(dir.path(), "resumed.log"))
        .status()
        .unwrap();
    assert!(out.success());
    let losses: Vec<(u64, f64)> = serde_json::from_value(
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(&summary).unwrap()).unwrap()
            ["losses"]
            .clone(),
    )
    .unwrap();
    let board = read_board(&python, &board);
    let mut steps: Vec<u64> = board.files.values().flatten().copied().collect();
    steps.sort();
    assert_eq!(
        steps,
        (1..=20).collect::<Vec<_>>(),
        "every step once over the files: {:?}",
        board.files
    );
    for tag in [
        "train/loss",
        "train/lr",
        "train/logit_scale",
        "train/grad_norm",
        "train/samples_per_sec",
        "train/model_tflops",
        "time/step_s",
        "time/forward_s",
        "time/backward_s",
        "time/optimizer_s",
        "time/data_wait_s",
        "data/prefetch_fill",
        "data/bytes_read",
    ] {
        let points = board
            .scalars
            .get(tag)
            .unwrap_or_else(|| panic!("no {tag}: {:?}", board.scalars.keys()));
        let got: Vec<u64> = points.iter().map(|p| p.0).collect();
        assert_eq!(got, (1..=20).collect::<Vec<_>>(), "{tag}");
        assert!(points.iter().all(|p| p.1.is_finite()), "{tag}: {points:?}");
    }
    // The resumed steps' losses are the run's own, as f32.
    let loss = &board.scalars["train/loss"];
    assert_eq!(losses.first().map(|l| l.0), Some(resumed_at + 1));
    for (step, value) in losses {
        let (_, shown) = loss[step as usize - 1];
        assert!(
            (shown - value).abs() <= 1e-6 * value.abs().max(1.0),
            "step {step}: {shown} vs {value}"
        );
    }
    assert!(board.scalars["time/forward_s"].iter().all(|p| p.1 > 0.0));
}

/// `coordinator launch --nodes 2 --local` of `cfg` with the shared token [`TOKEN`] and the
/// HTTP port on: the launch (its own process group), its gRPC port and its HTTP port.
fn launch_two_nodes(dir: &Path, cfg: &Path, extra: &[&str]) -> (Child, u16, u16) {
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let (port, http_port) = (free_port(), free_port());
    let launch = Command::new(common::coordinator_bin())
        .args(["launch", "--nodes", "2", "--local", "--config"])
        .arg(cfg)
        .arg("--work-dir")
        .arg(dir.join("launch"))
        .arg("--worker-bin")
        .arg(WORKER)
        .arg("--token-file")
        .arg(&token_file)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{http_port}")])
        .args(extra)
        .stdout(log_file(dir, "launch.out"))
        .stderr(log_file(dir, "launch.log"))
        .process_group(0)
        .spawn()
        .unwrap();
    (launch, port, http_port)
}

/// Kills `child`'s process group and reaps `child`.
fn kill_group(child: &mut Child) {
    common::kill_group(child);
    let _ = child.wait();
}

/// What `tests/python/dashboard_check.py` saw in Chromium.
#[derive(serde::Deserialize, Debug)]
struct Seen {
    login_form: bool,
    error: Option<String>,
    member_rows: usize,
    member_nodes: Vec<String>,
    loss_points: usize,
    #[serde(default)]
    loss_points_before: usize,
    phase_points: usize,
    checkpoint_rows: usize,
    summary: Option<String>,
    heatmaps_loaded: usize,
}

#[test]
fn the_dashboard_in_headless_chromium_shows_members_live_curves_and_checkpoints_only_after_sign_in()
{
    let Some(python) = common::browser_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = packed_photos(dir.path()) else {
        return;
    };
    let cfg = write_config(dir.path(), &data, STEPS);
    let bench = common::splice_bench(dir.path());
    common::add_suites(
        &cfg,
        &format!(
            "[[eval.suites]]\nname = \"splice\"\nevery_steps = 40\n[eval.suites.splice]\npatches_per_side = 6\nlimit = 4\n\
             [eval.suites.splice.dataset]\nkind = \"generic\"\npath = \"{}\"\n",
            bench.display()
        ),
    );
    let (mut launch, port, http_port) = launch_two_nodes(dir.path(), &cfg, &["--eval-agents", "1"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(wait_for(
        port,
        "training and a splice evaluation done",
        Duration::from_secs(240),
        |s| {
            timed_ranks(s).len() == 2
                && s.evals
                    .iter()
                    .any(|e| matches!(e.phase, proto::domain::EvalPhase::Done { .. }))
        },
    ));
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/dashboard_check.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(format!("http://127.0.0.1:{http_port}/"))
        .arg(TOKEN)
        .arg(&screenshot)
        .output()
        .unwrap();
    kill_group(&mut launch);
    assert!(
        out.status.success(),
        "dashboard_check.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: std::collections::BTreeMap<String, Seen> =
        serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{seen:#?}\nscreenshot: {}", screenshot.display());
    for stage in ["without_token", "wrong_token"] {
        let s = &seen[stage];
        assert!(
            s.login_form && s.member_rows == 0 && s.checkpoint_rows == 0 && s.loss_points == 0,
            "{stage}: {s:?}"
        );
    }
    assert!(seen["wrong_token"]
        .error
        .as_deref()
        .is_some_and(|e| e.contains("not one of this job's tokens")));
    let s = &seen["signed_in"];
    assert!(!s.login_form, "{s:?}");
    assert_eq!(s.member_nodes, ["local-0", "local-1"], "{s:?}");
    assert!(s.member_rows >= 2 && s.checkpoint_rows >= 1, "{s:?}");
    assert!(
        s.loss_points >= 3 && s.phase_points >= 3,
        "curves with several steps: {s:?}"
    );
    assert!(
        s.loss_points > s.loss_points_before,
        "the page updated live: {s:?}"
    );
    assert!(
        s.summary
            .as_deref()
            .is_some_and(|t| t.contains("world size 2")),
        "{s:?}"
    );
    assert!(s.heatmaps_loaded >= 1, "splice heat maps shown: {s:?}");
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000);
}
