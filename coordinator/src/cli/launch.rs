//! `coordinator launch --nodes N --config TRAIN_CONFIG [--local]`: runs the coordinator
//! in this process, prints how workers join, with `--local` starts and supervises N
//! `worker join` processes, reports progress every ~2 s and ends with the job.

use anyhow::{bail, Context};
use clap::Args;
use coordinator::config::{ServeConfig, TOKEN_ENV};
use coordinator::launch::{launch_token, supervise, worker_binary, LaunchError, LocalWorker};
use coordinator::server::RunningServer;
use coordinator::state::supervision::RestartPolicy;
use coordinator::state::Policy;
use proto::domain::{JobPhase, JobStatus, StopRequest};
use proto::wire::{GetStatusRequest, StopJobRequest};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long workers get to exit after the job ended before they are killed.
const WORKER_EXIT_WAIT: Duration = Duration::from_secs(60);
/// How often the job's status is polled.
const POLL: Duration = Duration::from_secs(2);

/// Arguments of `launch`.
#[derive(Args, Debug)]
pub struct LaunchArgs {
    /// Number of nodes (the round's maximum).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub nodes: u32,
    /// The training config every worker runs.
    #[arg(long)]
    pub config: PathBuf,
    /// Start the N workers on this machine (one process each).
    #[arg(long)]
    pub local: bool,
    /// Folder for the database, the token and the worker logs.
    #[arg(long, default_value = "work/launch")]
    pub work_dir: PathBuf,
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The `worker` binary (default: next to this executable).
    #[arg(long)]
    pub worker_bin: Option<PathBuf>,
    /// Silence after which a node is declared dead.
    #[arg(long, default_value_t = 10_000)]
    pub heartbeat_timeout_ms: u64,
    /// Nodes a round needs before it may close (default: --nodes).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub min_nodes: Option<u32>,
    /// Restarts of a failing local worker before the launch fails.
    #[arg(long, default_value_t = 3)]
    pub max_restarts: u32,
    /// Back-off before the first restart of a local worker (doubled per restart).
    #[arg(long, default_value_t = 2_000)]
    pub restart_backoff_ms: u64,
}

/// How the wait for the job ended.
enum Outcome {
    Over(JobStatus),
    Interrupted,
    WorkerFailed(LaunchError),
}

/// Runs the launch to the end of the job.
pub fn run(args: LaunchArgs) -> anyhow::Result<()> {
    let min_nodes = args.min_nodes.unwrap_or(args.nodes);
    if min_nodes > args.nodes {
        bail!("--min-nodes {min_nodes} exceeds --nodes {}", args.nodes);
    }
    let interval = (args.heartbeat_timeout_ms / 5).clamp(1, 2_000);
    if args.heartbeat_timeout_ms < 5 {
        bail!("--heartbeat-timeout-ms must be at least 5 (a few heartbeat intervals)");
    }
    if !args.config.is_file() {
        bail!(
            "the training config {} does not exist",
            args.config.display()
        );
    }
    let worker_bin = if args.local {
        Some(worker_binary(args.worker_bin.as_deref())?)
    } else {
        None
    };
    std::fs::create_dir_all(&args.work_dir)
        .with_context(|| format!("cannot create {}", args.work_dir.display()))?;
    let (token, token_file) = launch_token(&args.work_dir, std::env::var(TOKEN_ENV).ok())?;
    let config = ServeConfig {
        listen: args.listen,
        token: token.clone(),
        db_path: args.work_dir.join("coordinator.db"),
        policy: Policy {
            min_nodes,
            max_nodes: args.nodes,
            heartbeat_interval_ms: interval,
            heartbeat_timeout_ms: args.heartbeat_timeout_ms,
            rendezvous_settle_ms: 3_000,
        },
    };
    super::runtime()?.block_on(launch(args, config, token, token_file, worker_bin))
}

async fn launch(
    args: LaunchArgs,
    config: ServeConfig,
    token: String,
    token_file: Option<PathBuf>,
    worker_bin: Option<PathBuf>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let server = RunningServer::start(config).await?;
    let url = server.url();
    print_join_help(&args, &url, token_file.as_deref());
    let result = drive(&args, &url, &token, worker_bin).await;
    server.shutdown().await?;
    match result? {
        Outcome::Over(status) if status.phase == JobPhase::Finished => {
            println!("{}", summary(&status, started.elapsed()));
            Ok(())
        }
        Outcome::Over(status) => bail!(
            "the job was stopped (round {}); {}",
            status.round,
            newest_checkpoint(&status)
        ),
        Outcome::Interrupted => {
            bail!("interrupted: the job was stopped (members were told to checkpoint and exit)")
        }
        Outcome::WorkerFailed(e) => Err(e).context("the launch failed; the job was stopped"),
    }
}

/// Starts the local workers, waits for the job, then for the workers.
async fn drive(
    args: &LaunchArgs,
    url: &str,
    token: &str,
    worker_bin: Option<PathBuf>,
) -> anyhow::Result<Outcome> {
    let mut client = proto::client::connect(url, token).await?;
    let (over_tx, over_rx) = watch::channel(false);
    let (kill_tx, kill_rx) = watch::channel(false);
    let mut workers = JoinSet::new();
    let policy = RestartPolicy {
        max_restarts: args.max_restarts,
        backoff_ms: args.restart_backoff_ms,
        max_backoff_ms: 30_000,
    };
    if let Some(program) = worker_bin {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads_per_node = (cores / args.nodes as usize).max(1);
        for index in 0..args.nodes as usize {
            let worker = LocalWorker {
                index,
                program: program.clone(),
                args: vec![
                    "join".into(),
                    "--coordinator".into(),
                    url.into(),
                    "--config".into(),
                    args.config.display().to_string(),
                    "--procs".into(),
                    "1".into(),
                    "--node-name".into(),
                    format!("local-{index}"),
                ],
                env: vec![
                    (TOKEN_ENV.into(), token.into()),
                    // The local nodes share this machine's cores: one libtorch thread
                    // pool each of its share, not each of all the cores.
                    ("OMP_NUM_THREADS".into(), threads_per_node.to_string()),
                ],
                log: args.work_dir.join(format!("worker-{index}.log")),
            };
            workers.spawn(supervise(worker, policy, over_rx.clone(), kill_rx.clone()));
        }
    }
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let signal = super::serve::signal();
    tokio::pin!(signal);
    let outcome = loop {
        tokio::select! {
            _ = ticker.tick() => match client.get_status(GetStatusRequest {}).await {
                Ok(reply) => {
                    let status = JobStatus::try_from(reply.into_inner())?;
                    tracing::info!("{}", progress_line(&status));
                    if status.phase.is_over() {
                        break Outcome::Over(status);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the job status"),
            },
            _ = &mut signal => {
                tracing::warn!("signal received: stopping the job, members drain first");
                stop_job(&mut client, true, "launch interrupted").await;
                break Outcome::Interrupted;
            }
            Some(joined) = workers.join_next(), if !workers.is_empty() => match joined {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "a local worker cannot be kept running");
                    stop_job(&mut client, true, "a local worker kept failing").await;
                    break Outcome::WorkerFailed(e);
                }
                Err(join) => std::panic::resume_unwind(join.into_panic()),
            },
        }
    };
    let _ = over_tx.send(true);
    if !workers.is_empty() {
        tracing::info!(
            workers = workers.len(),
            "waiting for the local workers to exit"
        );
        let waited = tokio::time::timeout(WORKER_EXIT_WAIT, async {
            while let Some(joined) = workers.join_next().await {
                if let Ok(Err(e)) = joined {
                    tracing::warn!(error = %e, "a local worker failed while ending");
                }
            }
        })
        .await;
        if waited.is_err() {
            tracing::warn!(
                workers = workers.len(),
                "local workers still running; killing them"
            );
            let _ = kill_tx.send(true);
            while workers.join_next().await.is_some() {}
        }
    }
    Ok(outcome)
}

async fn stop_job(client: &mut proto::client::Client, drain: bool, reason: &str) {
    let request = StopJobRequest::from(StopRequest {
        drain,
        reason: reason.into(),
    });
    if let Err(e) = client.stop_job(request).await {
        tracing::warn!(error = %e, "cannot stop the job");
    }
}

fn print_join_help(args: &LaunchArgs, url: &str, token_file: Option<&std::path::Path>) {
    println!("coordinator listening at {url}");
    let token = match token_file {
        Some(path) => format!("{TOKEN_ENV}=$(cat {})", path.display()),
        None => format!("{TOKEN_ENV}=<the same value as here>"),
    };
    println!(
        "workers join with (one per node, e.g. from Slurm or a Kubernetes pod):\n  {token} worker join --coordinator {url} --config {} --procs <processes per node> --node-name <unique name>",
        args.config.display()
    );
    if !args.local && args.listen.ip().is_loopback() {
        tracing::warn!(
            "listening on loopback only: pass --listen 0.0.0.0:PORT for workers on other machines"
        );
    }
}

/// One progress line: phase, round, world size, rank 0's step and loss, throughput and
/// the newest checkpoint.
fn progress_line(s: &JobStatus) -> String {
    let rank0 = s
        .members
        .iter()
        .flat_map(|m| &m.progress)
        .find(|p| p.global_rank == 0);
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

fn newest_checkpoint(s: &JobStatus) -> String {
    match s.checkpoints.first() {
        Some(c) => format!("newest checkpoint step {} at {}", c.step, c.url),
        None => "no checkpoint yet".into(),
    }
}

/// The closing summary of a finished job.
fn summary(s: &JobStatus, wall: Duration) -> String {
    format!(
        "job finished: {}, wall time {:.1} s, {} round(s)",
        newest_checkpoint(s),
        wall.as_secs_f64(),
        s.round
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::domain::*;

    #[test]
    fn progress_names_rank_zero_and_the_newest_checkpoint() {
        let rank = |global_rank, step| RankProgress {
            global_rank,
            step,
            loss: 1.25,
            ..Default::default()
        };
        let status = JobStatus {
            job_id: JobId(1),
            phase: JobPhase::Running,
            round: 2,
            world_size: 2,
            members: vec![MemberStatus {
                node_id: NodeId(1),
                spec: NodeSpec::default(),
                alive: true,
                heartbeat_age_ms: 0,
                global_ranks: vec![0, 1],
                progress: vec![rank(1, 7), rank(0, 9)],
                finished: false,
            }],
            samples_per_sec: 10.0,
            checkpoints: vec![CheckpointInfo {
                step: 8,
                url: "file:///c/step-8".into(),
                position: DataPosition {
                    epoch: 0,
                    samples_consumed: 64,
                },
                config_digest: "d".into(),
                round: 2,
                registered_unix_ms: 0,
            }],
            config_digest: "d".into(),
            joined_nodes: 0,
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
