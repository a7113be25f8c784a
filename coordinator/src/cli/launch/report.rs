//! What `launch` prints: how workers join, a progress line every poll, the closing
//! summary.

use super::tls::LaunchTls;
use super::LaunchArgs;
use coordinator::config::TOKEN_ENV;
use coordinator::launch::tokens::LaunchTokens;
use coordinator::roles::Role;
use proto::domain::{JobStatus, Rank};
use std::time::Duration;

pub(super) fn print_join_help(
    args: &LaunchArgs,
    url: &str,
    tokens: &LaunchTokens,
    tls: Option<&LaunchTls>,
) {
    println!("coordinator listening at {url}");
    let token = |role: Role| match tokens.file(role) {
        Some(path) => format!("{TOKEN_ENV}=$(cat {})", path.display()),
        None => format!("{TOKEN_ENV}=<the same value as here>"),
    };
    let tls = super::tls::join_flags(tls);
    let config = args.config.display();
    println!(
        "workers join with (one per node, e.g. from Slurm or a Kubernetes pod):\n  {} worker join --coordinator {url}{tls} --config {config} --procs <processes per node> --node-name <unique name>",
        token(Role::Node),
    );
    println!(
        "evaluation agents run:\n  {} worker eval agent --coordinator {url}{tls} --config {config} --until-over",
        token(Role::Agent),
    );
    println!(
        "operators watch and steer the job with:\n  {} coordinator status --coordinator {url}{tls}",
        token(Role::Operator),
    );
    if args.listen.ip().is_unspecified() {
        println!("  (from other machines, put this machine's name or address in the URL)");
    }
    if !args.local && args.listen.ip().is_loopback() {
        tracing::warn!(
            "listening on loopback only: pass --listen 0.0.0.0:PORT for workers on other machines"
        );
    }
}

/// Where the HTTP port serves the dashboard and the Prometheus metrics.
pub(super) fn print_http_urls(url: &str, tokens: &LaunchTokens) {
    let token = tokens
        .file(Role::Operator)
        .map_or("the job's token".to_string(), |p| {
            format!("the token in {}", p.display())
        });
    println!("dashboard: {url} (sign in with {token})");
    println!("Prometheus metrics: {url}metrics (Authorization: Bearer <any of the job's tokens>)");
}

/// One progress line: phase, round, world size, rank 0's step and loss, throughput and
/// the newest checkpoint.
pub(super) fn progress_line(s: &JobStatus) -> String {
    let rank0 = s
        .members
        .iter()
        .flat_map(|m| &m.progress)
        .find(|p| p.global_rank == Rank::LEADER);
    let (step, loss) = match rank0 {
        Some(p) => (p.step.to_string(), format!("{:.4}", p.loss)),
        None => ("-".into(), "-".into()),
    };
    format!(
        "job {}: round {}, world size {}, {} node(s) alive, rank 0 step {step} loss {loss}, {:.1} samples/s, {}",
        s.phase,
        s.round,
        s.world_size,
        s.members.iter().filter(|m| m.alive).count(),
        s.samples_per_sec,
        newest_checkpoint(s)
    )
}

pub(super) fn newest_checkpoint(s: &JobStatus) -> String {
    match s.checkpoints.first() {
        Some(c) => format!("newest checkpoint step {} at {}", c.step, c.url),
        None => "no checkpoint yet".into(),
    }
}

/// The closing summary of a finished job.
pub(super) fn summary(s: &JobStatus, wall: Duration) -> String {
    format!(
        "job finished: {}, wall time {:.1} s, {} round(s)",
        newest_checkpoint(s),
        wall.as_secs_f64(),
        s.round
    )
}

/// While waiting for evaluations: how many are pending, running, done and failed.
pub(super) fn evals_line(s: &JobStatus) -> String {
    let count = |name| s.evals.iter().filter(|e| e.phase.name() == name).count();
    format!(
        "evaluations: {} pending, {} running, {} done, {} failed",
        count("pending"),
        count("running"),
        count("done"),
        count("failed")
    )
}

/// The evaluations of the newest checkpoint with their results (empty without any).
pub(super) fn eval_results(s: &JobStatus) -> String {
    let Some(c) = s.checkpoints.first() else {
        return String::new();
    };
    let evals: Vec<_> = crate::cli::checkpoints::evals_of(s, c).collect();
    if evals.is_empty() {
        return String::new();
    }
    let mut out = format!("evaluations of the checkpoint of step {}:\n", c.step);
    for e in evals {
        out.push_str(&crate::cli::checkpoints::render_eval(e, "  "));
    }
    out
}

/// Evaluation jobs of the job that failed.
pub(super) fn failed_evals(s: &JobStatus) -> usize {
    s.evals
        .iter()
        .filter(|e| matches!(e.phase, proto::domain::EvalPhase::Failed { .. }))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::domain::*;

    #[test]
    fn progress_names_rank_zero_and_the_newest_checkpoint() {
        let rank = |global_rank, step| RankProgress {
            global_rank: Rank::new(global_rank),
            step: Step::new(step),
            loss: 1.25,
            ..Default::default()
        };
        let status = JobStatus {
            job_id: JobId::new(1),
            phase: JobPhase::Running,
            round: RoundId::new(2),
            world_size: 2,
            members: vec![MemberStatus {
                node_id: NodeId::new(1),
                spec: NodeSpec::default(),
                alive: true,
                heartbeat_age_ms: 0,
                global_ranks: vec![Rank::new(0), Rank::new(1)],
                progress: vec![rank(1, 7), rank(0, 9)],
                finished: false,
            }],
            samples_per_sec: 10.0,
            stragglers: vec![],
            median_own_step_s: 0.0,
            checkpoints: vec![CheckpointInfo {
                step: Step::new(8),
                url: "file:///c/step-8".into(),
                position: DataPosition {
                    epoch: 0,
                    samples_consumed: 64,
                },
                config_digest: "d".into(),
                round: RoundId::new(2),
                registered_unix_ms: 0,
            }],
            config_digest: "d".into(),
            joined_nodes: 0,
            evals: vec![],
        };
        let line = progress_line(&status);
        assert!(line.contains("round 2, world size 2"), "{line}");
        assert!(line.contains("rank 0 step 9 loss 1.2500"), "{line}");
        assert!(line.contains("step 8 at file:///c/step-8"), "{line}");
        let text = summary(&status, Duration::from_secs(3));
        assert!(
            text.contains("file:///c/step-8") && text.contains("2 round(s)"),
            "{text}"
        );
    }
}
