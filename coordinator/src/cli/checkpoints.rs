//! `coordinator checkpoints`: the checkpoint registry with each checkpoint's evaluation
//! jobs and their results, from a running coordinator or (`--db`) from the database a
//! finished launch left behind. `--json` prints it for scripts.

use super::Connection;
use anyhow::Context;
use clap::Args;
use proto::domain::{CheckpointInfo, EvalJob, EvalPhase, JobStatus};
use proto::wire::GetStatusRequest;
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;

/// Arguments of `checkpoints`.
#[derive(Args, Debug)]
pub struct CheckpointsArgs {
    /// Read the coordinator database (e.g. work/launch/coordinator.db) instead of asking
    /// a running coordinator.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Print JSON: one object per checkpoint, newest first, with its evaluations.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    /// Where the coordinator is (without --db).
    pub connection: Connection,
}

/// One checkpoint and its evaluation jobs.
#[derive(Serialize)]
struct Entry<'a> {
    checkpoint: &'a CheckpointInfo,
    evals: Vec<&'a EvalJob>,
}

/// Prints the registry.
pub fn run(args: CheckpointsArgs) -> anyhow::Result<()> {
    let status = match &args.db {
        Some(path) => read_db(path)?,
        None => super::runtime()?.block_on(async {
            let mut client = args.connection.connect().await?;
            let reply = client.get_status(GetStatusRequest {}).await?.into_inner();
            anyhow::Ok(JobStatus::try_from(reply)?)
        })?,
    };
    if args.json {
        let entries: Vec<Entry> = status
            .checkpoints
            .iter()
            .map(|c| Entry {
                checkpoint: c,
                evals: evals_of(&status, c).collect(),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        print!("{}", render_registry(&status));
    }
    Ok(())
}

fn read_db(path: &std::path::Path) -> anyhow::Result<JobStatus> {
    if !path.is_file() {
        anyhow::bail!("no coordinator database at {}", path.display());
    }
    let store = coordinator::store::Store::open(path)?;
    let state = store
        .load()?
        .with_context(|| format!("the database {} holds no job", path.display()))?;
    Ok(coordinator::state::status(
        &state,
        coordinator::server::now_ms(),
        coordinator::state::stragglers::StragglerPolicy::DEFAULT,
    ))
}

/// The evaluation jobs of checkpoint `c`, oldest first.
pub fn evals_of<'a>(s: &'a JobStatus, c: &'a CheckpointInfo) -> impl Iterator<Item = &'a EvalJob> {
    s.evals
        .iter()
        .filter(move |e| e.checkpoint_step == c.step && e.config_digest == c.config_digest)
}

/// Every checkpoint, newest first, each followed by its evaluations.
pub fn render_registry(s: &JobStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "checkpoints (newest first):");
    if s.checkpoints.is_empty() {
        let _ = writeln!(out, "  none yet");
    }
    for c in &s.checkpoints {
        let _ = writeln!(
            out,
            "  step {} epoch {} sample {} round {}: {}",
            c.step, c.position.epoch, c.position.samples_consumed, c.round, c.url
        );
        for e in evals_of(s, c) {
            out.push_str(&render_eval(e, "    "));
        }
    }
    out
}

/// One evaluation job: suite, state, agent and, when done, its metrics and result file.
pub fn render_eval(e: &EvalJob, indent: &str) -> String {
    let head = format!("{indent}eval {} ({}):", e.suite, e.id.get());
    match &e.phase {
        EvalPhase::Pending => format!("{head} pending\n"),
        EvalPhase::Running { agent, .. } => {
            format!("{head} running on {agent} (lease {})\n", e.attempts)
        }
        EvalPhase::Done {
            agent,
            metrics,
            result_url,
            ..
        } => {
            let mut text = format!("{head} done by {agent}\n");
            for m in metrics {
                let value = if m.value.fract() == 0.0 && m.value.abs() < 1e12 {
                    format!("{}", m.value as i64)
                } else {
                    format!("{:.4}", m.value)
                };
                let _ = writeln!(text, "{indent}  {:<40} {value}", m.name);
            }
            let _ = writeln!(text, "{indent}  result: {result_url}");
            text
        }
        EvalPhase::Failed { agent, error, .. } => {
            let by = if agent.is_empty() {
                String::new()
            } else {
                format!(" on {agent}")
            };
            format!("{head} FAILED{by}: {error}\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::domain::*;

    #[test]
    fn each_checkpoint_lists_its_own_evaluations_with_metrics_or_errors() {
        let checkpoint = |step| CheckpointInfo {
            step,
            url: format!("s3://b/run/step-{step}"),
            position: DataPosition::default(),
            config_digest: "d".into(),
            round: RoundId::new(1),
            registered_unix_ms: 0,
        };
        let job = |id, step, phase| EvalJob {
            id: EvalId::new(id),
            suite: "splice".into(),
            checkpoint_step: step,
            checkpoint_url: format!("s3://b/run/step-{step}"),
            config_digest: "d".into(),
            created_ms: 0,
            attempts: 2,
            phase,
        };
        let status = JobStatus {
            job_id: JobId::new(1),
            phase: JobPhase::Finished,
            round: RoundId::new(1),
            world_size: 1,
            members: vec![],
            samples_per_sec: 0.0,
            stragglers: vec![],
            median_own_step_s: 0.0,
            checkpoints: vec![checkpoint(Step::new(20)), checkpoint(Step::new(10))],
            config_digest: "d".into(),
            joined_nodes: 0,
            evals: vec![
                job(
                    1,
                    Step::new(10),
                    EvalPhase::Failed {
                        agent: "a".into(),
                        error: "no dataset at /x".into(),
                        finished_ms: 1,
                    },
                ),
                job(
                    2,
                    Step::new(20),
                    EvalPhase::Done {
                        agent: "b".into(),
                        metrics: vec![EvalMetric {
                            name: "ncut.p_map".into(),
                            value: 0.68612,
                        }],
                        result_url: "s3://b/run/step-20/eval/splice.json".into(),
                        finished_ms: 2,
                    },
                ),
            ],
        };
        let text = render_registry(&status);
        let newest = text.find("step 20").unwrap();
        let done = text.find("eval splice (2): done by b").unwrap();
        let older = text.find("step 10").unwrap();
        let failed = text
            .find("eval splice (1): FAILED on a: no dataset at /x")
            .unwrap();
        assert!(newest < done && done < older && older < failed, "{text}");
        assert!(
            text.contains("ncut.p_map") && text.contains("0.6861"),
            "{text}"
        );
        assert!(
            text.contains("result: s3://b/run/step-20/eval/splice.json"),
            "{text}"
        );
    }
}
