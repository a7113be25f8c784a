//! `coordinator status`: prints the job, its members, round, progress, throughput and
//! checkpoints with their evaluations.

use super::Connection;
use clap::Args;
use proto::domain::{JobStatus, RankProgress};
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
    if !s.stragglers.is_empty() {
        let ranks: Vec<String> = s.stragglers.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "  stragglers: rank(s) {} (own time per step over the serve config's factor times the other ranks' median; round median {:.3} s)",
            ranks.join(", "),
            s.median_own_step_s
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
                "    rank {}: step {}, epoch {}, {} samples, loss {:.4}, {:.1} samples/s{}",
                p.global_rank,
                p.step,
                p.epoch,
                p.samples_consumed,
                p.loss,
                p.samples_per_sec,
                if s.stragglers.contains(&p.global_rank) {
                    "  STRAGGLER"
                } else {
                    ""
                }
            );
            render_figures(&mut out, p);
        }
    }
    out.push_str(&super::checkpoints::render_registry(s));
    out
}

/// A rank's step timing, device figures and data pipeline, when it reported them.
fn render_figures(out: &mut String, p: &RankProgress) {
    let t = &p.timing;
    if t.step_s > 0.0 {
        let ms = |s: f64| format!("{:.1}", s * 1e3);
        let _ = writeln!(
            out,
            "      step {} ms: data wait {}, forward {}, backward {}, grad reduce {}, optimizer {}, checkpoint {}; in collectives {} (own {})",
            ms(t.step_s),
            ms(t.data_wait_s),
            ms(t.forward_s),
            ms(t.backward_s),
            ms(t.grad_reduce_s),
            ms(t.optimizer_s),
            ms(t.checkpoint_s),
            ms(t.collective_s),
            ms(t.own_s()),
        );
    }
    let mut device = format!("{:.3} model TFLOP/s", p.model_tflops);
    if p.mfu > 0.0 {
        let _ = write!(device, ", MFU {:.1}%", p.mfu * 100.0);
    }
    if p.memory_peak_bytes > 0 {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        let _ = write!(
            device,
            ", memory {:.2} GiB (peak {:.2} GiB)",
            gib(p.memory_allocated_bytes),
            gib(p.memory_peak_bytes)
        );
    }
    let d = &p.data;
    let skipped: Vec<String> = d.skipped.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let _ = writeln!(
        out,
        "      {device}; data: {:.1} MB read, {} storage retries, prefetch {:.0}% full, skipped {}",
        d.bytes_read as f64 / 1e6,
        d.storage_retries,
        d.prefetch_fill * 100.0,
        if skipped.is_empty() {
            "none".to_string()
        } else {
            skipped.join(", ")
        }
    );
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
                    timing: StepTiming {
                        step_s: 0.9,
                        forward_s: 0.5,
                        collective_s: 0.1,
                        ..Default::default()
                    },
                    data: DataFigures {
                        skipped: [("bad_tar".to_string(), 3)].into(),
                        prefetch_fill: 0.25,
                        ..Default::default()
                    },
                    mfu: 0.42,
                    ..Default::default()
                }],
                finished: false,
            }],
            samples_per_sec: 99.5,
            stragglers: vec![Rank::new(1)],
            median_own_step_s: 0.3,
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
            text.contains("STRAGGLER") && text.contains("stragglers: rank(s) 1"),
            "{text}"
        );
        assert!(
            text.contains("step 900.0 ms: data wait 0.0, forward 500.0")
                && text.contains("own 800.0")
                && text.contains("MFU 42.0%")
                && text.contains("prefetch 25% full, skipped bad_tar 3"),
            "{text}"
        );
        assert!(
            text.contains("step 70 epoch 1 sample 4480 round 3: s3://b/run/step-70"),
            "{text}"
        );
    }
}
