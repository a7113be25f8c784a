//! `worker join`: one node of a coordinated job. Registers with the coordinator,
//! heartbeats with its processes' progress, joins rendezvous rounds, runs one `worker
//! train` process per local rank of each round ([`procs`]), forwards their checkpoints to
//! the registry, and follows the coordinator's directives; [`decide`] holds the rules.
//!
//! Failure handling: a training process that fails makes the node register again, which
//! makes the coordinator start a new round (a node whose processes died still
//! heartbeats, so heartbeats alone would not tell); a node that dies stops heartbeating
//! and the coordinator restarts the others without it. Every round resumes from the newest
//! checkpoint (`worker train --resume`), whose data position does not depend on the world
//! size, so no sample of an epoch is skipped or repeated.

pub mod decide;
pub mod figures;
pub mod identity;
pub mod procs;

use crate::collective::tcp::GroupSecret;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use proto::client::{Client, Endpoint};
use proto::domain::{
    Assignment, CheckpointReport, DataPosition, Directive, HeartbeatReport, JoinRequest, NodeId,
    NodeSpec, Rank, Registration, RoundId, Step,
};
use proto::wire;
use tokio::sync::{mpsc, watch};
use tonic::Code;

use crate::events::TrainEvent;
use decide::{decide, Action, Event, Phase};
use figures::{RankFigures, StepProgress};
use procs::{ProcMsg, ProcSpec, TrainProcesses};

/// Why the node stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The coordinator cannot be reached or refused a call.
    #[error("coordinator: {0}")]
    Coordinator(String),
    /// A training process could not be started.
    #[error("cannot start a training process: {0}")]
    Spawn(#[from] std::io::Error),
    /// The coordinator ended the job before this node's part was done.
    #[error("the coordinator stopped the job before it finished")]
    Stopped,
    /// The coordinator refused this node for good (another config than the job's, a job
    /// that is over, an invalid registration): retrying cannot help.
    #[error("the coordinator refused this node: {0}")]
    Refused(String),
    /// A signal made this node leave before the job finished, after its processes
    /// checkpointed: not done, not failed.
    #[error("this node left the job on a signal after its processes checkpointed; running it again continues the job")]
    Left,
    /// The training processes failed round after round before completing a step: a
    /// cause that retrying does not fix (often the config against the world size).
    #[error("the training processes failed in {0} rounds in a row without completing a step (their errors are above): fix the cause and run again")]
    NoProgress(u32),
}

impl NodeError {
    /// Whether retrying the same node cannot help (a configuration problem), as opposed
    /// to a failure of the moment.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Refused(_) | Self::NoProgress(_))
    }
}

/// Rounds in a row whose processes fail before completing a step before the node gives up.
const MAX_FRUITLESS_ROUNDS: u32 = 3;

fn rpc(what: &str, status: tonic::Status) -> NodeError {
    NodeError::Coordinator(format!(
        "{what}: {} ({:?})",
        status.message(),
        status.code()
    ))
}

/// How the node runs.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The coordinator and how to reach it.
    pub coordinator: Endpoint,
    /// This node's stable name.
    pub name: String,
    /// Address other nodes reach this host at (for the collective).
    pub host: String,
    /// Training processes on this node.
    pub procs: u32,
    /// Digest of the training config (every node must run the same).
    pub config_digest: String,
    /// How the processes start.
    pub spec: ProcSpec,
    /// The eval suites of the training config: each checkpoint report names those due.
    pub eval: crate::config::eval::EvalConfig,
}

/// Runs the node until the job ends; `Ok` when its part finished.
pub async fn run(opts: NodeOptions) -> Result<(), NodeError> {
    let mut client = opts
        .coordinator
        .connect()
        .await
        .map_err(|e| NodeError::Coordinator(e.to_string()))?;
    let mut reg = register(&mut client, &opts).await?;
    let shared = std::sync::Arc::new(std::sync::Mutex::new(Shared::default()));
    let (dir_tx, mut dir_rx) = watch::channel(Directive::Continue);
    let heartbeat = tokio::spawn(heartbeats(
        client.clone(),
        reg.clone(),
        shared.clone(),
        dir_tx,
    ));
    let (tx, mut rx) = mpsc::unbounded_channel::<ProcMsg>();
    let mut terminate = signals()?;
    let mut round = RoundId::new(0);
    let mut fruitless = 0;
    let outcome = 'rounds: loop {
        let assignment = match join(&mut client, reg.node_id, &opts, round).await {
            Ok(a) => a,
            Err(e) => break 'rounds Err(e),
        };
        round = assignment.round;
        {
            let mut s = shared.lock().unwrap();
            (s.round, s.world) = (round, assignment.world_size);
            // Progress is of this round's ranks only (the coordinator refuses more ranks than
            // the node runs processes).
            s.ranks.clear();
            // This round's processes have not finished (a round can reopen after a
            // node's part finished).
            s.finished = false;
        }
        tracing::info!(round = round.get(), world = assignment.world_size, ranks = ?assignment.global_ranks, resume = ?assignment.resume_from.as_ref().map(|c| c.step), "round assigned");
        let mut procs = TrainProcesses::spawn(&opts.spec, &assignment, &tx)?;
        let mut phase = Phase::Training { round };
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            let event = tokio::select! {
                Some(msg) = rx.recv() => {
                    on_message(&mut client, &reg, &shared, &opts.eval, msg).await;
                    continue;
                }
                _ = tick.tick() => {
                    if !matches!(phase, Phase::Training { .. }) {
                        continue;
                    }
                    match procs.poll_exit() {
                        Some(all_ok) => Event::ProcessesExited { all_ok },
                        None if procs.any_failed() => Event::ProcessFailed,
                        None => continue,
                    }
                }
                Ok(()) = dir_rx.changed() => Event::Directive(*dir_rx.borrow_and_update()),
                _ = terminate.recv() => Event::Terminate,
            };
            match decide(phase, event) {
                Action::Wait => {}
                Action::Rejoin { round: r } => {
                    procs.kill().await;
                    round = r;
                    continue 'rounds;
                }
                Action::ReportFinished => {
                    tracing::info!(round = round.get(), "every local process finished");
                    shared.lock().unwrap().finished = true;
                    phase = Phase::Finished;
                }
                Action::RestartRound => {
                    procs.kill().await;
                    phase = Phase::Failed;
                    if !shared
                        .lock()
                        .unwrap()
                        .ranks
                        .values()
                        .any(RankFigures::stepped)
                    {
                        fruitless += 1;
                        if fruitless >= MAX_FRUITLESS_ROUNDS {
                            break 'rounds Err(NodeError::NoProgress(fruitless));
                        }
                    } else {
                        fruitless = 0;
                    }
                    tracing::warn!(
                        round = round.get(),
                        "a training process failed or stopped early: registering again for a new round"
                    );
                    reg = register(&mut client, &opts).await?;
                }
                Action::DrainAndExit => {
                    let ok = procs.drain().await;
                    break 'rounds if ok { Ok(()) } else { Err(NodeError::Stopped) };
                }
                Action::LeaveAndExit => {
                    tracing::warn!("terminating: processes checkpoint and leave");
                    shared.lock().unwrap().leaving = true;
                    procs.drain().await;
                    send_heartbeat(&mut client, &reg, &shared).await.ok();
                    let done = shared.lock().unwrap().finished;
                    break 'rounds if done { Ok(()) } else { Err(NodeError::Left) };
                }
                Action::Exit { success } => {
                    procs.kill().await;
                    break 'rounds if success {
                        Ok(())
                    } else {
                        Err(NodeError::Stopped)
                    };
                }
            }
        }
    };
    // Drain the last events (a final checkpoint report).
    while let Ok(msg) = rx.try_recv() {
        on_message(&mut client, &reg, &shared, &opts.eval, msg).await;
    }
    heartbeat.abort();
    outcome
}

/// What heartbeats report, kept up to date from the processes' events.
#[derive(Debug, Default)]
struct Shared {
    ranks: BTreeMap<Rank, RankFigures>,
    finished: bool,
    leaving: bool,
    round: RoundId,
    world: u32,
}

/// Registration attempts, a second apart, while the coordinator is unavailable.
const REGISTER_RETRIES: u32 = 60;

async fn register(client: &mut Client, opts: &NodeOptions) -> Result<Registration, NodeError> {
    let spec = NodeSpec {
        name: opts.name.clone(),
        host: opts.host.clone(),
        device_count: 0,
        device_kind: "cpu".into(),
        procs: opts.procs,
        config_digest: opts.config_digest.clone(),
    };
    // A coordinator restarting (UNAVAILABLE) is waited for: a node re-registering after
    // its processes failed must not die because the coordinator is down at that moment.
    let mut unavailable = 0;
    let reg: Registration = loop {
        match client
            .register_node(wire::RegisterNodeRequest::from(spec.clone()))
            .await
        {
            Ok(reply) => break reply.into_inner().into(),
            Err(s) if s.code() == Code::Unavailable && unavailable < REGISTER_RETRIES => {
                unavailable += 1;
                tracing::info!(error = %s.message(), "coordinator unavailable; registering again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(s) if matches!(s.code(), Code::FailedPrecondition | Code::InvalidArgument) => {
                return Err(NodeError::Refused(s.message().to_string()))
            }
            Err(s) => return Err(rpc("register", s)),
        }
    };
    tracing::info!(
        node = reg.node_id.get(),
        job = reg.job_id.get(),
        "registered"
    );
    Ok(reg)
}

/// Joins `round`, retrying while the coordinator is briefly unavailable or the round went
/// on without this node.
async fn join(
    client: &mut Client,
    node: NodeId,
    opts: &NodeOptions,
    round: RoundId,
) -> Result<Assignment, NodeError> {
    let mut attempt = 0;
    loop {
        let addresses = (0..opts.procs)
            .map(|_| reserve_address(&opts.host))
            .collect::<Result<Vec<_>, _>>()?;
        // A fresh secret per join: if this node holds rank 0, the coordinator hands it
        // to every member of the round, and its training processes' group admits only
        // ranks that present it. (No NCCL id from this long-lived process: each id
        // leaves an NCCL bootstrap thread and socket behind. Rank 0's training process
        // makes the round's id and passes it over the TCP group.)
        let secret = GroupSecret::random()?;
        let req = JoinRequest {
            node,
            addresses,
            bootstrap_offer: secret.as_bytes().to_vec(),
            round,
        };
        match client
            .join_rendezvous(wire::JoinRendezvousRequest::from(req))
            .await
        {
            Ok(resp) => {
                return Assignment::try_from(resp.into_inner())
                    .map_err(|e| NodeError::Coordinator(e.to_string()))
            }
            Err(s)
                if matches!(
                    s.code(),
                    Code::Unavailable | Code::Aborted | Code::DeadlineExceeded
                ) && attempt < 30 =>
            {
                attempt += 1;
                tracing::info!(round = round.get(), code = ?s.code(), "rendezvous not ready; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            // The job is over, or the round cannot close with its nodes (their processes
            // cannot split the global batch): retrying cannot help.
            Err(s) if s.code() == Code::FailedPrecondition => {
                return Err(NodeError::Refused(s.message().to_string()))
            }
            Err(s) => return Err(rpc("join rendezvous", s)),
        }
    }
}

/// A free port on `host` for a training process's collective endpoint.
fn reserve_address(host: &str) -> std::io::Result<String> {
    let listener = std::net::TcpListener::bind((host, 0))?;
    Ok(format!("{host}:{}", listener.local_addr()?.port()))
}

async fn on_message(
    client: &mut Client,
    reg: &Registration,
    shared: &std::sync::Arc<std::sync::Mutex<Shared>>,
    eval: &crate::config::eval::EvalConfig,
    msg: ProcMsg,
) {
    let ProcMsg::Event { rank, event } = msg;
    match event {
        TrainEvent::Step {
            step,
            epoch,
            consumed,
            loss,
            samples,
            figures,
        } => {
            let mut s = shared.lock().unwrap();
            let world = s.world;
            let progress = StepProgress {
                step,
                epoch,
                consumed,
                loss,
                samples,
            };
            s.ranks.entry(rank).or_default().on_step(
                rank,
                progress,
                figures,
                world,
                std::time::Instant::now(),
            );
        }
        TrainEvent::Checkpoint {
            step,
            url,
            epoch,
            consumed,
            config_digest,
            final_step,
        } => {
            let round = shared.lock().unwrap().round;
            let eval_suites = eval.due(step, final_step);
            let report = CheckpointReport {
                node: reg.node_id,
                round,
                step: Step::new(step),
                url: url.clone(),
                position: DataPosition {
                    epoch,
                    samples_consumed: consumed,
                },
                config_digest,
                eval_suites,
            };
            match report_checkpoint(client, wire::ReportCheckpointRequest::from(report)).await {
                Ok(()) => tracing::info!(step, url, "checkpoint registered"),
                Err(s) => {
                    tracing::warn!(step, url, code = ?s.code(), error = %s.message(), "checkpoint not registered (it stays in storage, but a restart resumes from the newest registered one)")
                }
            }
        }
    }
}

/// Waits before each retry of a checkpoint report the coordinator could not take now.
const REPORT_RETRY_PAUSES_MS: [u64; 5] = [250, 500, 1_000, 2_000, 4_000];

/// Reports a checkpoint, retried (for up to ~8 s) while the coordinator is restarting
/// (UNAVAILABLE) or this node is over its call limit (RESOURCE_EXHAUSTED): a checkpoint
/// the registry never hears of is no resume point.
async fn report_checkpoint(
    client: &mut Client,
    request: wire::ReportCheckpointRequest,
) -> Result<(), tonic::Status> {
    let mut pauses = REPORT_RETRY_PAUSES_MS.iter();
    loop {
        match client.report_checkpoint(request.clone()).await {
            Ok(_) => return Ok(()),
            Err(s) if matches!(s.code(), Code::Unavailable | Code::ResourceExhausted) => {
                let Some(&pause) = pauses.next() else {
                    return Err(s);
                };
                tracing::info!(step = request.step, code = ?s.code(), retry_in_ms = pause, "checkpoint report not taken yet; retrying");
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            Err(s) => return Err(s),
        }
    }
}

async fn send_heartbeat(
    client: &mut Client,
    reg: &Registration,
    shared: &std::sync::Arc<std::sync::Mutex<Shared>>,
) -> Result<Directive, tonic::Status> {
    let report = {
        let s = shared.lock().unwrap();
        HeartbeatReport {
            node: reg.node_id,
            progress: s.ranks.values().map(|r| r.progress().clone()).collect(),
            finished: s.finished,
            leaving: s.leaving,
            round: s.round,
        }
    };
    let resp = client
        .heartbeat(wire::HeartbeatRequest::from(report))
        .await?
        .into_inner();
    Directive::try_from(resp).map_err(|e| tonic::Status::internal(e.to_string()))
}

/// Heartbeats every interval; each answer goes to the supervisor.
async fn heartbeats(
    mut client: Client,
    reg: Registration,
    shared: std::sync::Arc<std::sync::Mutex<Shared>>,
    directives: watch::Sender<Directive>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(reg.heartbeat_interval_ms.max(50)));
    loop {
        tick.tick().await;
        match send_heartbeat(&mut client, &reg, &shared).await {
            Ok(d) => {
                directives.send_if_modified(|cur| {
                    let changed = *cur != d;
                    *cur = d;
                    changed
                });
            }
            Err(s) => tracing::warn!(code = ?s.code(), error = %s.message(), "heartbeat failed"),
        }
    }
}

/// SIGTERM or SIGINT, as a channel.
fn signals() -> Result<mpsc::Receiver<()>, NodeError> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = mpsc::channel(1);
    for kind in [SignalKind::terminate(), SignalKind::interrupt()] {
        let mut s = signal(kind)?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                let _ = tx.send(()).await;
            }
        });
    }
    Ok(rx)
}

/// The worker binary to start training processes with: this executable.
pub fn this_binary() -> std::io::Result<PathBuf> {
    std::env::current_exe()
}
