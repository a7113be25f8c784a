//! `coordinator launch` without a real worker: argument checks, a missing worker binary,
//! the restart limit for a local worker that keeps failing, a work folder whose job is
//! over (refused, or served with `--keep-serving` and a token file), and TLS settings
//! handed to the local workers (a stand-in worker runs `coordinator status` with them).

mod pki;

use coordinator::state::{Node, State};
use coordinator::store::Store;
use proto::domain::{
    CheckpointInfo, DataPosition, JobId, JobPhase, NodeId, NodeSpec, Rank, RankProgress, RoundId,
    Step,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn launch(work: &Path, extra: &[&str]) -> Output {
    launch_with_env(work, extra, &[])
}

fn launch_with_env(work: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
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
        .env_remove("COORDINATOR_TLS_CA")
        .env_remove("COORDINATOR_TLS_CERT")
        .env_remove("COORDINATOR_TLS_KEY")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// An executable shell script at `path`.
fn script(path: &Path, body: &str) -> PathBuf {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_path_buf()
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
fn a_local_world_that_cannot_split_the_global_batch_is_refused_naming_what_works() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("train.toml");
    let out = |nodes: &str, min: &str| {
        std::fs::write(&config, "[train]\nbatch_size = 8\n").unwrap();
        Command::new(env!("CARGO_BIN_EXE_coordinator"))
            .args([
                "launch",
                "--local",
                "--nodes",
                nodes,
                "--min-nodes",
                min,
                "--config",
            ])
            .arg(&config)
            .arg("--work-dir")
            .arg(dir.path().join("launch"))
            .arg("--worker-bin")
            .arg(dir.path().join("no-worker"))
            .output()
            .unwrap()
    };
    // 3 nodes of one process each do not divide a global batch of 8.
    let refused = out("4", "3");
    assert!(!refused.status.success());
    let text = stderr(&refused);
    assert!(
        text.contains("train.batch_size 8 cannot be split over 3 node(s)"),
        "{text}"
    );
    assert!(text.contains("{1, 2, 4}"), "{text}");
    assert!(!dir.path().join("launch").exists(), "nothing started");
    // 4 nodes pass this check (and stop at the missing worker binary).
    let text = stderr(&out("4", "4"));
    assert!(!text.contains("cannot be split"), "{text}");
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
    let script = script(
        &dir.path().join("fake-worker.sh"),
        &format!(
            "echo \"$@ token=${{COORDINATOR_TOKEN:+set}} tls=${{COORDINATOR_TLS_CA:-none}}\" >> {}\necho \"$COORDINATOR_TOKEN\" > {}\necho 'fake worker fails' >&2\nexit 1\n",
            runs.display(),
            dir.path().join("given-token").display()
        ),
    );
    // A TLS setting in the environment of a launch without TLS does not reach workers.
    let out = launch_with_env(
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
        &[("COORDINATOR_TLS_CA", "/elsewhere/ca.pem")],
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
            line.contains("--procs 1 --node-name local-0 token=set tls=none"),
            "{line}"
        );
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        logged.matches("fake worker fails").count(),
        3,
        "stderr appended"
    );
    // One private token per role, and the worker was given the node's.
    let tokens = dir.path().join("launch").join("tokens");
    for role in ["node", "agent", "operator"] {
        let file = tokens.join(format!("{role}.token"));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{role}");
    }
    let node_token = std::fs::read_to_string(tokens.join("node.token")).unwrap();
    let given = std::fs::read_to_string(dir.path().join("given-token")).unwrap();
    assert_eq!(
        given.trim(),
        node_token.trim(),
        "a node gets the node token"
    );
    assert!(dir.path().join("launch").join("coordinator.db").exists());
}

/// A database holding job 1, finished at step 40 with its newest checkpoint at step 40.
fn finished_job_db(db: &Path) {
    let mut state = State::new(JobId::new(1), 1_000);
    state.phase = JobPhase::Finished;
    state.open = None;
    state.config_digest = Some("cfg".into());
    let spec = NodeSpec {
        name: "local-0".into(),
        procs: 1,
        config_digest: "cfg".into(),
        ..Default::default()
    };
    let progress = RankProgress {
        global_rank: Rank::new(0),
        step: Step::new(40),
        ..Default::default()
    };
    let node = Node {
        id: NodeId::new(1),
        spec,
        alive: true,
        left: true,
        last_heartbeat_ms: 9_000,
        progress: vec![progress],
        progress_round: RoundId::new(1),
        finished: true,
    };
    state.nodes.insert(node.id, std::sync::Arc::new(node));
    for step in [20, 40] {
        state.checkpoints.insert(CheckpointInfo {
            step: Step::new(step),
            url: format!("file:///runs/x/step-{step}"),
            position: DataPosition {
                epoch: 0,
                samples_consumed: step * 8,
            },
            config_digest: "cfg".into(),
            round: RoundId::new(1),
            registered_unix_ms: 2_000 + step,
        });
    }
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    Store::open(db).unwrap().save(&state).unwrap();
}

#[test]
fn a_work_dir_whose_job_finished_is_named_with_its_step_checkpoint_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("launch").join("coordinator.db");
    finished_job_db(&db);
    let out = launch(dir.path(), &["--nodes", "1"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    for part in [
        "already holds a job that is over",
        "job 1 finished at step 40",
        "newest checkpoint step 40 at file:///runs/x/step-40",
        "--work-dir",
        "--new-job",
    ] {
        assert!(err.contains(part), "{part:?} missing: {err}");
    }
    let state = Store::open(&db).unwrap().load().unwrap().unwrap();
    assert_eq!(state.phase, JobPhase::Finished, "the database is untouched");
}

#[test]
fn new_job_keeps_the_finished_jobs_database_and_starts_job_2_in_the_same_dir() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("launch").join("coordinator.db");
    finished_job_db(&db);
    let worker = script(&dir.path().join("fake-worker.sh"), "exit 1\n");
    let out = launch(
        dir.path(),
        &[
            "--nodes",
            "1",
            "--new-job",
            "--local",
            "--worker-bin",
            worker.to_str().unwrap(),
            "--max-restarts",
            "0",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let kept = dir.path().join("launch").join("coordinator-job-1.db");
    assert!(
        stdout.contains("starting a new job") && stdout.contains(&kept.display().to_string()),
        "{stdout}"
    );
    assert!(
        stderr(&out).contains("0 restart(s)"),
        "the new job ran (its stand-in worker failed): {}",
        stderr(&out)
    );
    let old = Store::open(&kept).unwrap().load().unwrap().unwrap();
    assert_eq!((old.job_id, old.phase), (JobId::new(1), JobPhase::Finished));
    assert_eq!(old.checkpoints.entries().len(), 2);
    let new = Store::open(&db).unwrap().load().unwrap().unwrap();
    assert_eq!(new.job_id, JobId::new(2));
    assert!(new.checkpoints.entries().is_empty());
}

#[test]
fn local_workers_get_the_tls_settings_and_can_use_them() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new(dir.path(), "server");
    let clients = pki::Ca::new(dir.path(), "clients");
    let server = ca.server("coordinator");
    let member = clients.client("member");
    let report = dir.path().join("status.txt");
    // The stand-in worker asks for the status over the URL it was given ($3), with the
    // token and TLS settings from its environment (refused: a node may not), then with
    // the operator's token, then fails so the launch ends.
    let worker = script(
        &dir.path().join("fake-worker.sh"),
        &format!(
            "echo \"url=$3\" >> {r}\n\"$COORDINATOR_BIN\" status --coordinator \"$3\" >> {r} 2>&1\necho \"own-token-exit=$?\" >> {r}\nCOORDINATOR_TOKEN=$(cat {op}) \"$COORDINATOR_BIN\" status --coordinator \"$3\" >> {r} 2>&1\necho \"exit=$?\" >> {r}\nexit 1\n",
            r = report.display(),
            op = dir.path().join("launch/tokens/operator.token").display()
        ),
    );
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    let args = [
        "--nodes".to_string(),
        "1".into(),
        "--local".into(),
        "--worker-bin".into(),
        arg(&worker),
        "--max-restarts".into(),
        "0".into(),
        "--tls-cert".into(),
        arg(&server.cert),
        "--tls-key".into(),
        arg(&server.key),
        "--tls-ca".into(),
        arg(&ca.cert),
        "--tls-client-ca".into(),
        arg(&clients.cert),
        "--tls-client-cert".into(),
        arg(&member.cert),
        "--tls-client-key".into(),
        arg(&member.key),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = launch_with_env(
        dir.path(),
        &args,
        &[("COORDINATOR_BIN", env!("CARGO_BIN_EXE_coordinator"))],
    );
    let report = std::fs::read_to_string(&report).unwrap_or_default();
    assert!(
        report.contains("url=https://127.0.0.1:"),
        "{report}\n{}",
        stderr(&out)
    );
    // The worker's node token gets through TLS and is authenticated, but a status call
    // needs the operator's token.
    assert!(report.contains("own-token-exit=1"), "{report}");
    assert!(report.contains("needs the operator token"), "{report}");
    assert!(report.contains("\nexit=0"), "{report}");
    assert!(report.contains("job 1: waiting for nodes"), "{report}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let join_line = format!(
        "--tls-ca {} --tls-cert <client certificate> --tls-key <its key>",
        ca.cert.display()
    );
    assert!(
        stdout.contains("worker join --coordinator https://127.0.0.1:")
            && stdout.contains(&join_line),
        "the printed join line carries the TLS flags: {stdout}"
    );
}

#[test]
fn a_malformed_tls_file_is_named_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("server.pem");
    let key = dir.path().join("server.key");
    std::fs::write(&cert, "not a certificate\n").unwrap();
    std::fs::write(&key, "not a key\n").unwrap();
    let out = launch(
        dir.path(),
        &[
            "--nodes",
            "1",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("server.pem"), "{err}");
    assert!(!dir.path().join("launch").exists(), "nothing started");
}

#[test]
fn keep_serving_serves_a_finished_jobs_registry_with_a_token_file_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("launch").join("coordinator.db");
    finished_job_db(&db);
    let token = dir.path().join("secret-token");
    std::fs::write(&token, "mounted-secret\n").unwrap();
    let config = dir.path().join("train.toml");
    std::fs::write(&config, "").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(["launch", "--nodes", "1", "--keep-serving", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(&config)
        .arg("--work-dir")
        .arg(dir.path().join("launch"))
        .arg("--token-file")
        .arg(&token)
        .env_remove("COORDINATOR_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The registry answers (with the mounted token), again and again, until SIGTERM.
    let start = std::time::Instant::now();
    let listed = loop {
        let out = Command::new(env!("CARGO_BIN_EXE_coordinator"))
            .args([
                "checkpoints",
                "--json",
                "--coordinator",
                &url,
                "--token-file",
            ])
            .arg(&token)
            .output()
            .unwrap();
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{}",
            stderr(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let entries: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(entries[0]["checkpoint"]["step"], 40, "{listed}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "still serving");
    // SAFETY: kill(2) on the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("is over (job 1 finished at step 40"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let state = Store::open(&db).unwrap().load().unwrap().unwrap();
    assert_eq!(state.phase, JobPhase::Finished, "the database is untouched");
}

#[test]
fn suspend_with_local_workers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = launch(
        dir.path(),
        &["--nodes", "1", "--local", "--on-signal", "suspend"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--on-signal suspend would leave the --local workers"),
        "{}",
        stderr(&out)
    );
}

/// `coordinator serve` for a few seconds with stderr to a pipe, `env` added: its stderr.
fn serve_briefly(dir: &Path, env: &[(&str, &str)]) -> String {
    let config = dir.join("serve.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\ndb_path = \"s.db\"\n").unwrap();
    let out = Command::new("timeout")
        .args(["-s", "TERM", "3"])
        .arg(env!("CARGO_BIN_EXE_coordinator"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("COORDINATOR_TOKEN", "t")
        .env_remove("LOG_FORMAT")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    stderr(&out)
}

#[test]
fn logs_off_a_terminal_are_json_lines_and_never_hold_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let json = serve_briefly(dir.path(), &[]);
    assert!(!json.contains('\x1b'), "colour codes in a pipe: {json}");
    let messages: Vec<String> = json
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            v["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        messages.iter().any(|m| m == "coordinator listening"),
        "{messages:?}"
    );
    // Text asked for: still no colour codes when stderr is not a terminal.
    let text = serve_briefly(dir.path(), &[("LOG_FORMAT", "text")]);
    assert!(text.contains("coordinator listening"), "{text}");
    assert!(!text.contains('\x1b'), "colour codes in a pipe: {text}");
    assert!(!text.trim_start().starts_with('{'), "{text}");
}
