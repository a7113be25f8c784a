//! `coordinator status`: prints the job, its members, round, progress, throughput and
//! checkpoints with their evaluations.

use super::Connection;
use clap::Args;
use proto::domain::JobStatus;
use proto::wire::GetStatusRequest;
use std::fmt::Write;

/// Arguments of `status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    /// Where the coordinator is.
    pub connection: Connection,
}

/// Fetches and prints the status.
pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let status = super::runtime()?.block_on(async {
        let mut client = args.connection.connect().await?;
        let reply = client.get_status(GetStatusRequest {}).await?.into_inner();
        anyhow::Ok(JobStatus::try_from(reply)?)
    })?;
    print!("{}", render(&status));
    Ok(())
}

/// The status as text.
pub fn render(s: &JobStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "job {}: {}, round {}, world size {}, {:.1} samples/s, config {}",
        s.job_id.get(),
        s.phase,
        s.round,
        s.world_size,
        s.samples_per_sec,
        if s.config_digest.is_empty() {
            "-"
        } else {
            &s.config_digest
        }
    );
    if s.joined_nodes > 0 {
        let _ = writeln!(
            out,
            "  {} node(s) joined round {} so far",
            s.joined_nodes, s.round
        );
    }
    let _ = writeln!(out, "members:");
    for m in &s.members {
        let _ = writeln!(
            out,
            "  {} {} ({}, {}x {}, {} procs) {} heartbeat {} ms ago, ranks {:?}{}",
            m.node_id.get(),
            m.spec.name,
            m.spec.host,
            m.spec.device_count,
            m.spec.device_kind,
            m.spec.procs,
            if m.alive { "alive" } else { "DEAD" },
            m.heartbeat_age_ms,
            m.global_ranks,
            if m.finished { ", finished" } else { "" }
        );
        for p in &m.progress {
            let _ = writeln!(
                out,
                "    rank {}: step {}, epoch {}, {} samples, loss {:.4}, {:.1} samples/s",
                p.global_rank, p.step, p.epoch, p.samples_consumed, p.loss, p.samples_per_sec
            );
        }
    }
    out.push_str(&super::checkpoints::render_registry(s));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::domain::*;

    #[test]
    fn render_shows_phase_members_progress_and_checkpoints() {
        let status = JobStatus {
            job_id: JobId::new(1),
            phase: JobPhase::Running,
            round: RoundId::new(3),
            world_size: 2,
            members: vec![MemberStatus {
                node_id: NodeId::new(2),
                spec: NodeSpec {
                    name: "gpu-07".into(),
                    procs: 2,
                    ..Default::default()
                },
                alive: false,
                heartbeat_age_ms: 12_000,
                global_ranks: vec![Rank::new(0), Rank::new(1)],
                progress: vec![RankProgress {
                    global_rank: Rank::new(1),
                    step: Step::new(77),
                    ..Default::default()
                }],
                finished: false,
            }],
            samples_per_sec: 99.5,
            checkpoints: vec![CheckpointInfo {
                step: Step::new(70),
                url: "s3://b/run/step-70".into(),
                position: DataPosition {
                    epoch: 1,
                    samples_consumed: 4480,
                },
                config_digest: "d".into(),
                round: RoundId::new(3),
                registered_unix_ms: 0,
            }],
            config_digest: "d".into(),
            joined_nodes: 0,
            evals: vec![],
        };
        let text = render(&status);
        assert!(
            text.starts_with("job 1: running, round 3, world size 2, 99.5 samples/s"),
            "{text}"
        );
        assert!(
            text.contains("gpu-07") && text.contains("DEAD") && text.contains("ranks [0, 1]"),
            "{text}"
        );
        assert!(text.contains("rank 1: step 77"), "{text}");
        assert!(
            text.contains("step 70 epoch 1 sample 4480 round 3: s3://b/run/step-70"),
            "{text}"
        );
    }
}
