//! `coordinator launch --nodes N --config TRAIN_CONFIG [--local [--eval-agents K]]`: runs
//! the coordinator in this process, prints how workers join, with `--local` starts and
//! supervises N `worker join` processes (and K `worker eval agent` processes), reports
//! progress every ~2 s and ends with the job; with evaluation agents (or
//! `--wait-for-evals`) it then waits for the evaluations and prints the final
//! checkpoint's results. With
//! `--tls-cert` the coordinator serves TLS ([`tls`]). A work folder whose job is over is
//! not run again unless `--new-job` says to start a new one there, or `--keep-serving`
//! serves it as it is. Every process gets its own role's token
//! ([`coordinator::launch::tokens`]). On a cluster: `--tokens-dir` or `--token-file`
//! (mounted secrets), `--on-signal
//! suspend` (the coordinator goes, the job stays resumable), `--keep-serving` (status and
//! registry stay up after the job).

mod report;
mod tls;

use anyhow::{bail, Context};
use clap::Args;
use coordinator::config::{ServeConfig, TOKEN_ENV};
use coordinator::launch::previous::{previous_job, start_new_job};
use coordinator::launch::tokens::{launch_tokens, LaunchTokens};
use coordinator::launch::{members_told, supervise, worker_binary, LaunchError, LocalWorker};
use coordinator::limits::CallLimits;
use coordinator::roles::Role;
use coordinator::server::RunningServer;
use coordinator::state::stragglers::StragglerPolicy;
use coordinator::state::supervision::RestartPolicy;
use coordinator::state::Policy;
use proto::domain::{JobPhase, JobStatus, StopRequest};
use proto::wire::{GetStatusRequest, StopJobRequest};
use report::{
    eval_results, evals_line, failed_evals, newest_checkpoint, print_join_help, progress_line,
    summary,
};
use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tls::{worker_env, LaunchTls, LaunchTlsArgs};
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
    /// Folder for the database, the tokens and the worker logs.
    #[arg(long, default_value = "work/launch")]
    pub work_dir: PathBuf,
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Also serve grpc.health.v1 here, plain and without the token (for Kubernetes'
    /// gRPC probes).
    #[arg(long, value_name = "ADDR")]
    pub health_listen: Option<SocketAddr>,
    /// Serve HTTP here: `/metrics` for Prometheus and the dashboard (any of the job's
    /// tokens; port 0 picks a free one). Off by default.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
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
    /// With --local: also start this many evaluation agents (`worker eval agent`), which
    /// run the eval suites the training config schedules; the launch then waits for the
    /// evaluations before it ends.
    #[arg(long, default_value_t = 0)]
    pub eval_agents: u32,
    /// After training, wait for every evaluation job (run by agents started elsewhere).
    #[arg(long)]
    pub wait_for_evals: bool,
    /// An evaluation lease runs out after this long without a renewal (the agent died).
    #[arg(long, default_value_t = Policy::EVAL_LEASE_MS)]
    pub eval_lease_ms: u64,
    /// Start a new job even when --work-dir holds one (finished or not); its database
    /// is kept as coordinator-job-N.db beside the new one.
    #[arg(long)]
    pub new_job: bool,
    /// File holding one token shared by every role (e.g. a mounted secret); default: a
    /// token per role from --tokens-dir, else COORDINATOR_TOKEN (shared), else the work
    /// folder's `tokens/` (made when missing).
    #[arg(long, value_name = "FILE", conflicts_with = "tokens_dir")]
    pub token_file: Option<PathBuf>,
    /// Folder holding `node.token`, `agent.token` and `operator.token` (mounted secrets):
    /// nodes, evaluation agents and operators each prove their own role.
    #[arg(long, value_name = "DIR")]
    pub tokens_dir: Option<PathBuf>,
    /// What SIGTERM or Ctrl-C does: `stop` the job (members checkpoint and exit; it is
    /// over), or `suspend` it: the coordinator exits and the job continues from its
    /// database and newest checkpoint when the same launch runs again (a preempted or
    /// requeued batch job, a coordinator pod moved to another machine).
    #[arg(long, value_enum, default_value_t = OnSignal::Stop)]
    pub on_signal: OnSignal,
    /// With `--on-signal suspend`: first wait up to this long for the members to leave,
    /// so the checkpoints they write on the way out are registered (a scheduler that
    /// signals every process of a job at once).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub suspend_grace_s: u64,
    /// After the job (and its evaluations), keep serving its status and checkpoint
    /// registry until a signal; a work folder whose job is over is served as it is (a
    /// coordinator that runs as a service, restarted by its supervisor).
    #[arg(long)]
    pub keep_serving: bool,
    #[command(flatten)]
    /// TLS.
    pub tls: LaunchTlsArgs,
}

/// What a signal to the launch does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnSignal {
    /// Stop the job: members checkpoint and exit.
    Stop,
    /// Leave the job to continue when launched again.
    Suspend,
}

/// How the wait for the job ended.
enum Outcome {
    Over(JobStatus),
    Interrupted,
    Suspended,
    WorkerFailed(LaunchError),
}

/// Runs the launch to the end of the job.
/// The training config as TOML (the coordinator reads two values of it; the workers
/// validate the rest).
fn training_config(config: &Path) -> anyhow::Result<toml::Value> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read the training config {}", config.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("the training config {} is not TOML", config.display()))
}

/// The training config's `checkpoint.url`: the only directory whose `step-N` checkpoints
/// the coordinator registers (and sends evaluation agents to). `None` when the config
/// names none (the worker refuses such a config anyway).
fn checkpoint_root(config: &toml::Value) -> Option<String> {
    config
        .get("checkpoint")
        .and_then(|c| c.get("url"))
        .and_then(toml::Value::as_str)
        .map(|url| url.trim_end_matches('/').to_string())
}

/// Local workers run one process each, so a round of `k` nodes trains a world of `k`: every
/// `k` from `min_nodes` to `nodes` must divide the global batch (`train.batch_size`), or a
/// round that closes at that size fails at its first step. The error names the node
/// counts that work.
fn check_local_world_sizes(config: &toml::Value, min_nodes: u32, nodes: u32) -> anyhow::Result<()> {
    let Some(batch) = global_batch(config).map(i64::from) else {
        return Ok(());
    };
    let bad: Vec<u32> = (min_nodes..=nodes)
        .filter(|k| batch % i64::from(*k) != 0)
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    let good: Vec<String> = (1..=nodes)
        .filter(|k| batch % i64::from(*k) == 0)
        .map(|k| k.to_string())
        .collect();
    bail!(
        "train.batch_size {batch} cannot be split over {} node(s) (one process each); --nodes and --min-nodes must lie in {{{}}}: node counts that divide the global batch",
        bad.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
        good.join(", ")
    )
}

/// The training config's global batch (`train.batch_size`), when it holds a usable one
/// (the worker reports a bad one): rounds of remote nodes close only at world sizes that
/// split it.
fn global_batch(config: &toml::Value) -> Option<u32> {
    config
        .get("train")
        .and_then(|t| t.get("batch_size"))
        .and_then(toml::Value::as_integer)
        .and_then(|b| u32::try_from(b).ok())
        .filter(|b| *b > 0)
}

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
    let training = training_config(&args.config)?;
    if args.local {
        check_local_world_sizes(&training, min_nodes, args.nodes)?;
    }
    if args.eval_agents > 0 && !args.local {
        bail!("--eval-agents starts local processes: add --local, or start `worker eval agent` on other machines and pass --wait-for-evals");
    }
    if args.on_signal == OnSignal::Suspend && args.local {
        bail!("--on-signal suspend would leave the --local workers running without their coordinator: use it when workers run elsewhere (a batch job, a cluster)");
    }
    if args.eval_lease_ms < 1_000 {
        bail!("--eval-lease-ms must be at least 1000 (agents renew every third of it)");
    }
    let worker_bin = if args.local {
        Some(worker_binary(args.worker_bin.as_deref())?)
    } else {
        None
    };
    let tls = args.tls.load()?;
    std::fs::create_dir_all(&args.work_dir)
        .with_context(|| format!("cannot create {}", args.work_dir.display()))?;
    let db_path = args.work_dir.join("coordinator.db");
    let over = check_previous_job(&db_path, &args.work_dir, args.new_job, args.keep_serving)?;
    let tokens = launch_tokens(
        &args.work_dir,
        args.token_file.as_deref(),
        args.tokens_dir.as_deref(),
        std::env::var(TOKEN_ENV).ok(),
    )?;
    let config = ServeConfig {
        listen: args.listen,
        health_listen: args.health_listen,
        metrics_listen: args.metrics_listen,
        credentials: tokens.credentials.clone(),
        limits: CallLimits::DEFAULT,
        db_path,
        policy: Policy {
            min_nodes,
            max_nodes: args.nodes,
            heartbeat_interval_ms: interval,
            heartbeat_timeout_ms: args.heartbeat_timeout_ms,
            rendezvous_settle_ms: 3_000,
            eval_lease_ms: args.eval_lease_ms,
            eval_max_attempts: Policy::EVAL_MAX_ATTEMPTS,
            checkpoint_root: checkpoint_root(&training),
            global_batch: global_batch(&training),
            stragglers: StragglerPolicy::DEFAULT,
        },
        tls: tls.as_ref().map(|t| t.server.clone()),
    };
    let setup = Setup {
        tokens,
        worker_bin,
        tls,
        over,
    };
    super::runtime()?.block_on(launch(args, config, setup))
}

/// A job already in the database: an unfinished one continues; one that is over is an
/// error that says what was found and what to do, unless `new_job` starts a new one or
/// `keep_serving` serves it as it is (then `true`).
fn check_previous_job(
    db: &Path,
    work_dir: &Path,
    new_job: bool,
    keep_serving: bool,
) -> anyhow::Result<bool> {
    let Some(job) = previous_job(db)? else {
        return Ok(false);
    };
    if new_job {
        let archive = start_new_job(db, job.job_id)?;
        println!(
            "starting a new job in {}; the previous one ({}) is kept in {}",
            work_dir.display(),
            job.summary(),
            archive.display()
        );
    } else if job.is_over() && keep_serving {
        println!(
            "the job in {} is over ({}); serving its status and registry",
            db.display(),
            job.summary()
        );
        return Ok(true);
    } else if job.is_over() {
        bail!("{}", job.over_message(work_dir));
    } else {
        println!("continuing the job in {}: {}", db.display(), job.summary());
    }
    Ok(false)
}

/// What `run` prepared for the launch.
struct Setup {
    tokens: LaunchTokens,
    worker_bin: Option<PathBuf>,
    tls: Option<LaunchTls>,
    /// The job in the work folder is over: serve it, run nothing.
    over: bool,
}

async fn launch(args: LaunchArgs, config: ServeConfig, setup: Setup) -> anyhow::Result<()> {
    let started = Instant::now();
    let server = RunningServer::start(config).await?;
    let url = server.url();
    if setup.over {
        serve_until_signal(&url).await;
        server.shutdown().await?;
        return Ok(());
    }
    print_join_help(&args, &url, &setup.tokens, setup.tls.as_ref());
    if let Some(url) = server.http_url() {
        report::print_http_urls(&url, &setup.tokens);
    }
    let outcome = drive(&args, &url, &setup).await;
    let keep_serving = args.keep_serving && matches!(outcome, Ok(Outcome::Over(_)));
    let result = conclude(outcome, started);
    if keep_serving {
        if let Err(e) = &result {
            tracing::error!(error = %format!("{e:#}"), "the job did not end well");
        }
        serve_until_signal(&url).await;
    }
    server.shutdown().await?;
    result
}

/// Serves the status and registry at `url` until SIGTERM or Ctrl-C.
async fn serve_until_signal(url: &str) {
    tracing::info!(%url, "serving the job's status and checkpoint registry until SIGTERM");
    super::serve::signal().await;
}

/// What the launch says and returns for how the job ended.
fn conclude(outcome: anyhow::Result<Outcome>, started: Instant) -> anyhow::Result<()> {
    match outcome? {
        Outcome::Over(status) if status.phase == JobPhase::Finished => {
            println!("{}", summary(&status, started.elapsed()));
            print!("{}", eval_results(&status));
            let failed = failed_evals(&status);
            if failed > 0 {
                bail!("{failed} evaluation(s) failed (see above; `coordinator checkpoints` lists them)");
            }
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
        Outcome::Suspended => {
            println!("suspended: the job continues from its newest checkpoint when this launch runs again with the same --work-dir");
            Ok(())
        }
        Outcome::WorkerFailed(e) => Err(e).context("the launch failed; the job was stopped"),
    }
}

/// Starts the local workers and evaluation agents, waits for the job (then, when asked,
/// for its evaluations), then for the processes.
async fn drive(args: &LaunchArgs, url: &str, setup: &Setup) -> anyhow::Result<Outcome> {
    let client_tls = setup.tls.as_ref().map(|t| &t.client);
    let operator = setup.tokens.token(Role::Operator);
    let mut client = proto::client::connect_with(url, operator, client_tls).await?;
    let (over_tx, over_rx) = watch::channel(false);
    let (evals_over_tx, evals_over_rx) = watch::channel(false);
    let (kill_tx, kill_rx) = watch::channel(false);
    let (mut workers, mut agents) = (JoinSet::new(), JoinSet::new());
    let policy = RestartPolicy {
        max_restarts: args.max_restarts,
        backoff_ms: args.restart_backoff_ms,
        max_backoff_ms: 30_000,
    };
    if let Some(program) = &setup.worker_bin {
        let (joins, evals) = local_processes(args, url, setup, program);
        for worker in joins {
            workers.spawn(supervise(worker, policy, over_rx.clone(), kill_rx.clone()));
        }
        for agent in evals {
            agents.spawn(supervise(
                agent,
                policy,
                evals_over_rx.clone(),
                kill_rx.clone(),
            ));
        }
    }
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let signal = super::serve::signal();
    tokio::pin!(signal);
    let wait_for_evals = args.eval_agents > 0 || args.wait_for_evals;
    let heartbeat_timeout = Duration::from_millis(args.heartbeat_timeout_ms);
    let mut over_at: Option<Instant> = None;
    let mut suspend_by: Option<Instant> = None;
    let outcome = loop {
        tokio::select! {
            _ = ticker.tick() => match client.get_status(GetStatusRequest {}).await {
                _ if suspend_by.is_some_and(|by| Instant::now() >= by) => {
                    tracing::warn!("members still running after the grace period; suspending");
                    break Outcome::Suspended;
                }
                Ok(reply) => {
                    let status = JobStatus::try_from(reply.into_inner())?;
                    if suspend_by.is_some() && !status.members.iter().any(|m| m.alive) {
                        break Outcome::Suspended;
                    }
                    let evals_left = status.evals.iter().any(|e| !e.phase.is_over());
                    if over_at.is_none() {
                        tracing::info!("{}", progress_line(&status));
                    } else if evals_left {
                        tracing::info!("{}", evals_line(&status));
                    }
                    if status.phase.is_over() && over_at.is_none() {
                        over_at = Some(Instant::now());
                        let _ = over_tx.send(true);
                    }
                    let done_waiting = !wait_for_evals
                        || status.phase != JobPhase::Finished
                        || !evals_left;
                    let told = |at: Instant| members_told(&status, at.elapsed(), heartbeat_timeout);
                    if over_at.is_some_and(told) && done_waiting {
                        break Outcome::Over(status);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the job status"),
            },
            _ = &mut signal, if suspend_by.is_none() => {
                if args.on_signal == OnSignal::Suspend {
                    tracing::warn!(grace_s = args.suspend_grace_s, "signal received: the coordinator exits (after the members left, within the grace period), the job is left to continue");
                    if args.suspend_grace_s == 0 {
                        break Outcome::Suspended;
                    }
                    suspend_by = Some(Instant::now() + Duration::from_secs(args.suspend_grace_s));
                    continue;
                }
                tracing::warn!("signal received: stopping the job, members drain first");
                stop_job(&mut client, true, "launch interrupted").await;
                break Outcome::Interrupted;
            }
            Some(joined) = workers.join_next(), if !workers.is_empty() => {
                if let Some(failed) = gave_up(joined, "worker", &mut client).await {
                    break failed;
                }
            }
            Some(joined) = agents.join_next(), if !agents.is_empty() => {
                if let Some(failed) = gave_up(joined, "evaluation agent", &mut client).await {
                    break failed;
                }
            }
        }
    };
    let _ = over_tx.send(true);
    let _ = evals_over_tx.send(true);
    for (what, set) in [
        ("workers", &mut workers),
        ("evaluation agents", &mut agents),
    ] {
        wait_for_exit(what, set, &kill_tx).await;
    }
    Ok(outcome)
}

/// The `worker join` processes of `--local`, and the `worker eval agent` processes.
fn local_processes(
    args: &LaunchArgs,
    url: &str,
    setup: &Setup,
    program: &Path,
) -> (Vec<LocalWorker>, Vec<LocalWorker>) {
    let (tls_env, env_remove) = worker_env(setup.tls.as_ref());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads_per_node = (cores / args.nodes as usize).max(1);
    let process = |index: usize, role: Role, args: Vec<String>, log: PathBuf| LocalWorker {
        index,
        program: program.to_path_buf(),
        args,
        env: [
            (TOKEN_ENV.into(), setup.tokens.token(role).to_string()),
            // The local processes share this machine's cores: one libtorch thread pool
            // each of a node's share, not each of all the cores.
            ("OMP_NUM_THREADS".into(), threads_per_node.to_string()),
        ]
        .into_iter()
        .chain(tls_env.iter().cloned())
        .collect(),
        env_remove: env_remove.clone(),
        log,
    };
    let config = args.config.display().to_string();
    let common = |sub: &[&str]| -> Vec<String> {
        sub.iter()
            .map(|s| s.to_string())
            .chain([
                "--coordinator".into(),
                url.into(),
                "--config".into(),
                config.clone(),
            ])
            .collect()
    };
    let nodes = args.nodes as usize;
    let joins = (0..nodes).map(|i| {
        let mut a = common(&["join"]);
        a.extend([
            "--procs".into(),
            "1".into(),
            "--node-name".into(),
            format!("local-{i}"),
        ]);
        let log = args.work_dir.join(format!("worker-{i}.log"));
        process(i, Role::Node, a, log)
    });
    let agents = (0..args.eval_agents as usize).map(|i| {
        let mut a = common(&["eval", "agent"]);
        a.extend([
            "--agent-name".into(),
            format!("local-eval-{i}"),
            "--until-over".into(),
        ]);
        let log = args.work_dir.join(format!("eval-agent-{i}.log"));
        process(nodes + i, Role::Agent, a, log)
    });
    (joins.collect(), agents.collect())
}

/// Waits up to [`WORKER_EXIT_WAIT`] for the supervised processes in `set`, then kills them.
async fn wait_for_exit(
    what: &str,
    set: &mut JoinSet<Result<coordinator::launch::WorkerEnd, LaunchError>>,
    kill: &watch::Sender<bool>,
) {
    if set.is_empty() {
        return;
    }
    tracing::info!(
        processes = set.len(),
        "waiting for the local {what} to exit"
    );
    let waited = tokio::time::timeout(WORKER_EXIT_WAIT, async {
        while let Some(joined) = set.join_next().await {
            if let Ok(Err(e)) = joined {
                tracing::warn!(error = %e, "a local process failed while ending");
            }
        }
    })
    .await;
    if waited.is_err() {
        tracing::warn!(
            processes = set.len(),
            "local {what} still running; killing them"
        );
        let _ = kill.send(true);
        while set.join_next().await.is_some() {}
    }
}

/// A supervised local process (`what`) that ended: `Some` when supervision gave up on it
/// (the job is stopped, members draining), `None` when it exited on its own.
async fn gave_up(
    joined: Result<Result<coordinator::launch::WorkerEnd, LaunchError>, tokio::task::JoinError>,
    what: &str,
    client: &mut proto::client::Client,
) -> Option<Outcome> {
    match joined {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "a local {what} cannot be kept running");
            stop_job(client, true, &format!("a local {what} kept failing")).await;
            Some(Outcome::WorkerFailed(e))
        }
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
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
