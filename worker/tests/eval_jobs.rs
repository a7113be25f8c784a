//! Evaluation jobs for real: `coordinator launch --local --eval-agents 1` trains a small
//! job whose config schedules eval suites and ends with the results of its final
//! checkpoint; and an evaluation agent killed (SIGKILL) in the middle of an evaluation
//! loses its lease to a second agent, which finishes the job.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    add_suites, eval_agent, free_port, log_file, packed_photos, splice_bench, wait_for,
    write_config, TOKEN, WORKER,
};
use proto::domain::{EvalPhase, EvalReport, JobStatus, LeaseRequest, RoundId, Step};

fn metric(job: &serde_json::Value, name: &str) -> f64 {
    job["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no metric {name} in {job}"))["value"]
        .as_f64()
        .unwrap()
}

#[test]
fn launch_with_an_eval_agent_ends_with_the_results_of_the_final_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = packed_photos(dir.path()) else {
        return;
    };
    let bench = splice_bench(dir.path());
    let cfg = write_config(dir.path(), &data, 6);
    add_suites(
        &cfg,
        &format!(
            r#"
[[eval.suites]]
name = "splice-small"
every_steps = 4
[eval.suites.splice]
patches_per_side = 6
limit = 6
[eval.suites.splice.dataset]
kind = "generic"
path = "{bench}"

[[eval.suites]]
name = "retrieval"
[eval.suites.retrieval]
data = "{data}"
batch = 4
rounds = 1
"#,
            bench = bench.display()
        ),
    );
    let work = dir.path().join("launch");
    let run = Command::new(common::coordinator_bin())
        .args(["launch", "--nodes", "1", "--local", "--eval-agents", "1"])
        .arg("--config")
        .arg(&cfg)
        .arg("--work-dir")
        .arg(&work)
        .arg("--worker-bin")
        .arg(WORKER)
        .stderr(log_file(dir.path(), "launch.log"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let log = std::fs::read_to_string(dir.path().join("launch.log")).unwrap_or_default();
    assert!(run.status.success(), "{stdout}\n{log}");
    let results = stdout
        .split("evaluations of the checkpoint of step 6:")
        .nth(1)
        .unwrap_or_else(|| panic!("no results of step 6 in:\n{stdout}"));
    for expected in [
        "eval splice-small",
        "done by local-eval-0",
        "ncut.p_map",
        "chance.ncut.p_map",
        "detection_ap.mean_dissimilarity",
        "eval retrieval",
        "patch_to_patch.top1",
    ] {
        assert!(
            results.contains(expected),
            "{expected} missing in:\n{stdout}"
        );
    }

    // The registry, read from the database the launch left behind.
    let listed = Command::new(common::coordinator_bin())
        .args(["checkpoints", "--json", "--db"])
        .arg(work.join("coordinator.db"))
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let entries: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let suites_of = |step: u64| -> Vec<String> {
        let entry = entries
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["checkpoint"]["step"] == step)
            .unwrap_or_else(|| panic!("no checkpoint {step} in {entries}"));
        entry["evals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["suite"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        suites_of(2),
        Vec::<String>::new(),
        "no suite is due at step 2"
    );
    assert_eq!(suites_of(4), ["splice-small"], "every_steps = 4, not final");
    let mut last = suites_of(6);
    last.sort();
    assert_eq!(
        last,
        ["retrieval", "splice-small"],
        "both run on the final one"
    );

    // The results next to the checkpoint agree with the registry.
    let file = dir
        .path()
        .join("ckpt/step-000000006/eval/splice-small.json");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(written["checkpoint_step"], 6);
    let p_map = metric(&written, "ncut.p_map");
    assert!((0.0..=1.0).contains(&p_map), "{p_map}");
    let spliced = metric(&written, "images.spliced");
    let authentic = metric(&written, "images.authentic");
    assert_eq!(spliced + authentic, 6.0, "limit = 6 images, none failed");
    assert!(spliced > 0.0 && authentic > 0.0, "{written}");
    let registered = entries[0]["evals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["suite"] == "splice-small")
        .unwrap();
    let done = &registered["phase"]["Done"];
    assert_eq!(
        done["result_url"].as_str().unwrap(),
        file.display().to_string()
    );
    let in_registry = done["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "ncut.p_map")
        .unwrap()["value"]
        .as_f64()
        .unwrap();
    assert_eq!(in_registry, p_map);

    // The agent's TensorBoard scalars, read by TensorBoard's own reader: each evaluation
    // once, at its checkpoint's step.
    if let Some(python) = testkit::python_with("tensorboard") {
        let board = common::read_board(&python, &dir.path().join("ckpt/tensorboard"));
        let splice = &board.scalars["eval/splice-small/ncut.p_map"];
        assert_eq!(
            splice.iter().map(|p| p.0).collect::<Vec<_>>(),
            [4, 6],
            "{splice:?}"
        );
        assert!((splice[1].1 - p_map).abs() < 1e-6, "{splice:?} vs {p_map}");
        let retrieval = &board.scalars["eval/retrieval/patch_to_patch.top1"];
        assert_eq!(retrieval.iter().map(|p| p.0).collect::<Vec<_>>(), [6]);
    }
}

fn running_on(s: &JobStatus, agent: &str) -> bool {
    s.evals
        .iter()
        .any(|e| matches!(&e.phase, EvalPhase::Running { agent: a, .. } if a == agent))
}

#[test]
fn an_agent_killed_mid_evaluation_loses_its_lease_to_another_agent() {
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = packed_photos(dir.path()) else {
        return;
    };
    let bench = splice_bench(dir.path());
    let cfg = write_config(dir.path(), &data, 2);
    // Many patches on every image: slow enough to be killed in the middle.
    add_suites(
        &cfg,
        &format!(
            "[[eval.suites]]\nname = \"splice\"\n[eval.suites.splice]\npatches_per_side = 40\n\
             [eval.suites.splice.dataset]\nkind = \"generic\"\npath = \"{}\"\n",
            bench.display()
        ),
    );
    common::train(&cfg);
    let digest = worker::config::Config::load(&cfg).unwrap().digest.0;

    let port = free_port();
    let mut server = common::serve(dir.path(), port, 1, "eval_lease_ms = 1500\n");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    // A node reports the trained checkpoint with the suite due, as `worker join` does.
    let checkpoint = dir.path().join("ckpt/step-000000002").display().to_string();
    let scheduled = rt.block_on(async {
        let mut client = loop {
            match proto::client::connect(&url, TOKEN).await {
                Ok(c) => break c,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let spec = proto::domain::NodeSpec {
            name: "reporter".into(),
            procs: 1,
            config_digest: digest.clone(),
            ..Default::default()
        };
        let reg = client
            .register_node(proto::wire::RegisterNodeRequest::from(spec))
            .await
            .unwrap()
            .into_inner();
        let report = proto::domain::CheckpointReport {
            node: proto::domain::NodeId::new(reg.node_id),
            round: RoundId::new(1),
            step: Step::new(2),
            url: checkpoint.clone(),
            position: Default::default(),
            config_digest: digest.clone(),
            eval_suites: vec!["splice".into()],
        };
        client
            .report_checkpoint(proto::wire::ReportCheckpointRequest::from(report))
            .await
            .unwrap();
        wait_for(port, "the evaluation job", Duration::from_secs(10), |s| {
            s.evals.len() == 1
        })
        .await
    });
    assert_eq!(scheduled.evals[0].phase, EvalPhase::Pending);

    let mut first = eval_agent(dir.path(), &cfg, port, "first");
    rt.block_on(wait_for(
        port,
        "the first agent's lease",
        Duration::from_secs(60),
        |s| running_on(s, "first"),
    ));
    first.kill().unwrap();
    first.wait().unwrap();
    let mut second = eval_agent(dir.path(), &cfg, port, "second");
    let after = rt.block_on(wait_for(
        port,
        "the second agent's lease",
        Duration::from_secs(30),
        |s| running_on(s, "second"),
    ));
    assert_eq!(
        after.evals[0].attempts, 2,
        "the lease of the dead agent ran out first"
    );

    // The dead agent's lease number is refused from now on.
    let stale = rt.block_on(async {
        let mut client = proto::client::connect(&url, TOKEN).await.unwrap();
        let report = EvalReport {
            id: after.evals[0].id,
            attempt: 1,
            outcome: Ok((vec![], "file:///nowhere.json".into())),
            images: vec![],
        };
        client
            .report_eval_result(proto::wire::ReportEvalResultRequest::from(report))
            .await
    });
    assert_eq!(stale.unwrap_err().code(), tonic::Code::Aborted);

    let done = rt.block_on(wait_for(
        port,
        "the evaluation",
        Duration::from_secs(600),
        |s| s.evals[0].phase.is_over(),
    ));
    match &done.evals[0].phase {
        EvalPhase::Done {
            agent, result_url, ..
        } => {
            assert_eq!(agent, "second");
            assert!(Path::new(result_url).is_file(), "{result_url}");
        }
        other => panic!("expected the second agent to finish, got {other:?}"),
    }
    // Still waiting for work while the job runs; told to leave once it is stopped.
    assert!(second.try_wait().unwrap().is_none());
    rt.block_on(async {
        let mut client = proto::client::connect(&url, TOKEN).await.unwrap();
        let lease = LeaseRequest {
            agent: "probe".into(),
            config_digest: digest,
        };
        let answer = client
            .lease_eval(proto::wire::LeaseEvalRequest::from(lease))
            .await
            .unwrap()
            .into_inner();
        assert!(answer.lease.is_none() && !answer.over, "{answer:?}");
        client
            .stop_job(proto::wire::StopJobRequest {
                drain: false,
                reason: "test over".into(),
            })
            .await
            .unwrap();
    });
    let exited = (0..100).find_map(|_| {
        std::thread::sleep(Duration::from_millis(200));
        second.try_wait().unwrap()
    });
    assert!(
        exited.is_some_and(|s| s.success()),
        "the second agent did not leave: {exited:?}"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}
