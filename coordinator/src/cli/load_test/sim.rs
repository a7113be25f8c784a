//! The simulated side of `coordinator load-test`: the coordinator process under test
//! and what N nodes, a checkpointing rank 0, an evaluation agent and a flooding client
//! send it, each over its own gRPC connection.

use super::{LoadTestArgs, TOKEN};
use anyhow::{bail, Context};
use coordinator::client::{connect, Client};
use proto::wire;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The config digest the simulated nodes register with and the agent evaluates for.
const CONFIG_DIGEST: &str = "load-test";

/// The coordinator process under test.
pub(super) struct Server {
    child: Child,
    pub(super) url: String,
    db: PathBuf,
}

impl Server {
    pub(super) fn start(dir: &Path, args: &LoadTestArgs) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let db = dir.join("coordinator.db");
        std::fs::write(dir.join("token"), TOKEN)?;
        let config = dir.join("coordinator.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndb_path = \"coordinator.db\"\ntoken_file = \"token\"\n\
                 min_nodes = {n}\nmax_nodes = {n}\nheartbeat_interval_ms = {hb}\n\
                 heartbeat_timeout_ms = {timeout}\nrendezvous_settle_ms = 500\n",
                n = args.nodes,
                hb = args.heartbeat_ms,
                timeout = args.heartbeat_ms * 5,
            ),
        )?;
        let exe = std::env::current_exe().context("cannot find this binary")?;
        let child = Command::new(exe)
            .args(["--log-format", "json", "serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start `coordinator serve`")?;
        Ok(Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            db,
        })
    }

    /// The process's user + system CPU seconds and resident memory in MB.
    pub(super) fn usage(&self) -> (f64, f64) {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let cpu = stat
            .rfind(')')
            .map(|i| stat[i + 2..].split_whitespace().collect::<Vec<_>>())
            .and_then(|f| Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?))
            .map_or(0.0, |ticks| ticks / 100.0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        (cpu, rss_kb / 1024.0)
    }

    pub(super) fn db_bytes(&self) -> u64 {
        ["", "-wal"]
            .iter()
            .filter_map(|s| std::fs::metadata(format!("{}{s}", self.db.display())).ok())
            .map(|m| m.len())
            .sum()
    }

    pub(super) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One simulated node's connection and identity.
pub(super) struct Node {
    pub(super) client: Client,
    pub(super) id: u64,
    pub(super) name: String,
}

pub(super) async fn connect_node(url: &str, i: u32, ranks: u32) -> anyhow::Result<Node> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut client = loop {
        match connect(url, TOKEN).await {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => return Err(e).context("connecting"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let name = format!("node-{i:05}");
    let id = register(&mut client, &name, ranks).await?;
    Ok(Node { client, id, name })
}

pub(super) async fn register(client: &mut Client, name: &str, ranks: u32) -> anyhow::Result<u64> {
    let request = wire::RegisterNodeRequest {
        node_name: name.to_string(),
        host: format!("{name}.load-test"),
        device_kind: "cuda".into(),
        device_count: ranks,
        procs: ranks,
        config_digest: CONFIG_DIGEST.into(),
    };
    Ok(client.register_node(request).await?.into_inner().node_id)
}

pub(super) async fn join(node: &mut Node, ranks: u32, round: u64) -> anyhow::Result<u64> {
    let request = wire::JoinRendezvousRequest {
        node_id: node.id,
        addresses: (0..ranks)
            .map(|r| format!("{}:{}", node.name, 29500 + r))
            .collect(),
        bootstrap_offer: Vec::new(),
        round,
    };
    let reply = node.client.join_rendezvous(request).await?.into_inner();
    if reply.global_ranks.len() != ranks as usize {
        bail!(
            "{} got {} ranks, wanted {ranks}",
            node.name,
            reply.global_ranks.len()
        );
    }
    Ok(reply.round)
}

/// Every node joins `round` at once; returns the rounds they got and the time from the
/// last request sent to the last reply.
pub(super) async fn join_all(
    nodes: &mut [Node],
    ranks: u32,
    round: u64,
) -> anyhow::Result<(Vec<u64>, f64)> {
    let last_sent = Arc::new(Mutex::new(Instant::now()));
    let joins = nodes.iter_mut().map(|n| {
        let last_sent = last_sent.clone();
        async move {
            *last_sent.lock().unwrap() = Instant::now();
            join(n, ranks, round).await
        }
    });
    let rounds = futures::future::try_join_all(joins).await?;
    let waited = last_sent.lock().unwrap().elapsed();
    Ok((rounds, waited.as_secs_f64() * 1e3))
}

fn progress(ranks: &[u32], step: u64) -> Vec<wire::RankProgress> {
    ranks
        .iter()
        .map(|&r| wire::RankProgress {
            global_rank: r,
            step,
            epoch: 0,
            samples_consumed: step * 1024,
            loss: 4.0 - step as f64 * 1e-3,
            ..Default::default()
        })
        .collect()
}

/// The phase of the run, which decides where a latency is recorded.
pub(super) const SETTING_UP: u8 = 0;
/// Steady heartbeats, nothing else unusual.
pub(super) const QUIET: u8 = 1;
/// Steady heartbeats while one client floods the coordinator.
pub(super) const FLOODED: u8 = 2;

/// What the simulated clients share with the driver.
#[derive(Default)]
pub(super) struct Recorder {
    /// Heartbeat latencies in ms by phase (quiet, flooded): beats sent and answered in it.
    pub(super) latencies: Mutex<[Vec<f64>; 2]>,
    /// Latencies of checkpoint reports and evaluation calls (lease, report), in ms.
    pub(super) checkpoint_latencies: Mutex<Vec<f64>>,
    pub(super) eval_latencies: Mutex<Vec<f64>>,
    pub(super) checkpoints: AtomicU64,
    pub(super) evals_done: AtomicU64,
    pub(super) errors: Mutex<Vec<String>>,
    /// Nodes declared dead while alive.
    pub(super) false_deaths: Mutex<Vec<usize>>,
    /// When the first REJOIN arrived, and its round.
    pub(super) rejoin_seen: Mutex<Option<(Instant, u64)>>,
    /// The flooder's calls: made, refused for its call limit, refused for their size.
    pub(super) flood_calls: AtomicU64,
    pub(super) flood_refused: AtomicU64,
    pub(super) flood_oversized_refused: AtomicU64,
    pub(super) phase: AtomicU8,
    pub(super) stop: AtomicBool,
}

impl Recorder {
    fn steady_phase(&self) -> Option<usize> {
        match self.phase.load(Ordering::Relaxed) {
            QUIET => Some(0),
            FLOODED => Some(1),
            _ => None,
        }
    }

    fn error(&self, what: String) {
        self.errors.lock().unwrap().push(what);
    }
}

/// A node's heartbeat loop, from registration to the end: with the progress of its
/// ranks while it holds them in `round` (0: waiting in a rendezvous, no progress), not
/// at all while `silent`. A REJOIN drops its round to 0, as a node does before joining.
pub(super) struct Beat {
    pub(super) id: AtomicU64,
    pub(super) round: AtomicU64,
    pub(super) silent: AtomicBool,
}

pub(super) fn spawn_beats(
    i: usize,
    mut client: Client,
    beat: Arc<Beat>,
    my_ranks: Vec<u32>,
    interval: Duration,
    offset: Duration,
    rec: Arc<Recorder>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(offset).await;
        let mut step = 0u64;
        while !rec.stop.load(Ordering::Relaxed) {
            if beat.silent.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            let round = beat.round.load(Ordering::Relaxed);
            step += 1;
            let request = wire::HeartbeatRequest {
                node_id: beat.id.load(Ordering::Relaxed),
                progress: if round == 0 {
                    Vec::new()
                } else {
                    progress(&my_ranks, step)
                },
                round,
                ..Default::default()
            };
            let (t, sent_in) = (Instant::now(), rec.steady_phase());
            match client.heartbeat(request).await {
                Ok(reply) => {
                    // Beats sent and answered in one steady phase (not those sent
                    // during the rendezvous burst before it).
                    if let Some(phase) = sent_in.filter(|&p| Some(p) == rec.steady_phase()) {
                        let ms = t.elapsed().as_secs_f64() * 1e3;
                        rec.latencies.lock().unwrap()[phase].push(ms);
                    }
                    let reply = reply.into_inner();
                    if reply.directive == wire::Directive::Rejoin as i32 {
                        beat.round.store(0, Ordering::Relaxed);
                        let mut seen = rec.rejoin_seen.lock().unwrap();
                        seen.get_or_insert((Instant::now(), reply.round));
                    }
                }
                Err(status) if status.code() == tonic::Code::NotFound => {
                    // Declared dead while alive: the coordinator fell behind.
                    rec.false_deaths.lock().unwrap().push(i);
                    beat.silent.store(true, Ordering::Relaxed);
                }
                Err(status) => rec.error(format!("heartbeat of node {i}: {status}")),
            }
            tokio::time::sleep(interval).await;
        }
    })
}

/// Rank 0's checkpoints: while `running` holds, one report per `interval` for round
/// `round` (step 100, 200, ...), each due one evaluation.
pub(super) fn spawn_checkpoints(
    mut client: Client,
    node: u64,
    round: u64,
    interval: Duration,
    running: Arc<AtomicBool>,
    rec: Arc<Recorder>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut step = 0;
        while running.load(Ordering::Relaxed) {
            step += 100;
            let request = wire::ReportCheckpointRequest {
                node_id: node,
                round,
                step,
                url: format!("file:///load-test/run/step-{step:09}"),
                position: Some(wire::DataPosition {
                    epoch: 0,
                    samples_consumed: step * 1024,
                }),
                config_digest: CONFIG_DIGEST.into(),
                eval_suites: vec!["splice".into()],
            };
            let t = Instant::now();
            match client.report_checkpoint(request).await {
                Ok(_) => {
                    rec.checkpoint_latencies
                        .lock()
                        .unwrap()
                        .push(t.elapsed().as_secs_f64() * 1e3);
                    rec.checkpoints.fetch_add(1, Ordering::Relaxed);
                }
                Err(status) => rec.error(format!("checkpoint {step}: {status}")),
            }
            tokio::time::sleep(interval).await;
        }
    })
}

/// An evaluation agent: leases what is pending, reports it done at once, asks again
/// after the coordinator's retry time (at most 500 ms) when nothing is.
pub(super) fn spawn_eval_agent(
    mut client: Client,
    rec: Arc<Recorder>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !rec.stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            let request = wire::LeaseEvalRequest {
                agent_name: "load-test-agent".into(),
                config_digest: CONFIG_DIGEST.into(),
            };
            let answer = match client.lease_eval(request).await {
                Ok(a) => a.into_inner(),
                Err(status) => {
                    rec.error(format!("evaluation lease: {status}"));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            rec.eval_latencies
                .lock()
                .unwrap()
                .push(t.elapsed().as_secs_f64() * 1e3);
            let Some(lease) = answer.lease else {
                let wait = answer.retry_after_ms.clamp(10, 500);
                tokio::time::sleep(Duration::from_millis(wait)).await;
                continue;
            };
            let report = wire::ReportEvalResultRequest {
                eval_id: lease.eval_id,
                attempt: lease.attempt,
                metrics: vec![wire::EvalMetric {
                    name: "p_map".into(),
                    value: 0.5,
                }],
                result_url: format!("{}/eval/{}.json", lease.checkpoint_url, lease.suite),
                ..Default::default()
            };
            let t = Instant::now();
            match client.report_eval_result(report).await {
                Ok(_) => {
                    rec.eval_latencies
                        .lock()
                        .unwrap()
                        .push(t.elapsed().as_secs_f64() * 1e3);
                    rec.evals_done.fetch_add(1, Ordering::Relaxed);
                }
                Err(status) => rec.error(format!("evaluation report: {status}")),
            }
        }
    })
}

/// A broken client on one connection: `loops` tasks sending heartbeats of node `node`
/// back to back, and one sending a request over the coordinator's size limit every
/// 100 ms, while `running` holds.
pub(super) fn spawn_flood(
    client: Client,
    node: u64,
    loops: usize,
    running: Arc<AtomicBool>,
    rec: Arc<Recorder>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks: Vec<_> = (0..loops)
        .map(|_| {
            let (mut client, running, rec) = (client.clone(), running.clone(), rec.clone());
            tokio::spawn(async move {
                while running.load(Ordering::Relaxed) {
                    let request = wire::HeartbeatRequest {
                        node_id: node,
                        ..Default::default()
                    };
                    rec.flood_calls.fetch_add(1, Ordering::Relaxed);
                    match client.heartbeat(request).await {
                        Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                            rec.flood_refused.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
            })
        })
        .collect();
    let mut client = client.clone();
    tasks.push(tokio::spawn(async move {
        // Skip reasons of 2 MiB in all: over the 1 MiB a request may have.
        let huge: std::collections::HashMap<String, u64> = (0..2048)
            .map(|i| (format!("reason-{i:04}-{}", "x".repeat(1000)), 1u64))
            .collect();
        while running.load(Ordering::Relaxed) {
            let request = wire::HeartbeatRequest {
                node_id: node,
                progress: vec![wire::RankProgress {
                    data: Some(wire::DataFigures {
                        skipped: huge.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            };
            rec.flood_calls.fetch_add(1, Ordering::Relaxed);
            match client.heartbeat(request).await {
                Err(s)
                    if s.code() == tonic::Code::ResourceExhausted
                        && s.message().contains("too many calls") =>
                {
                    rec.flood_refused.fetch_add(1, Ordering::Relaxed);
                }
                Err(s) if s.code() != tonic::Code::Ok => {
                    rec.flood_oversized_refused.fetch_add(1, Ordering::Relaxed);
                }
                _ => rec.error("an oversized heartbeat was accepted".into()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }));
    tasks
}
