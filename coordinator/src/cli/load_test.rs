//! `coordinator load-test`: the control plane under N nodes. Starts a real `coordinator
//! serve` (this binary, its own process, its own database) and N simulated nodes in this
//! process, each with its own gRPC connection over loopback, doing what `worker join`
//! does minus the training: register, join the rendezvous, heartbeat every interval with
//! the progress of each of its ranks; one node then falls silent, the others are told to
//! rejoin, and it comes back (re-registers) into the next round. Prints what it measured
//! as one JSON line (and a readable summary): time from the last join to every node
//! holding its ranks, heartbeat latency p50/p99, the coordinator's CPU and peak memory,
//! its database size, time to detect the dead node and to close the next round.

use anyhow::{bail, Context};
use coordinator::client::{connect, Client};
use proto::wire;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arguments of `coordinator load-test`.
#[derive(clap::Args, Debug)]
pub struct LoadTestArgs {
    /// Simulated nodes.
    #[arg(long, default_value_t = 16)]
    pub nodes: u32,
    /// Ranks (training processes) per node; each heartbeat carries their progress.
    #[arg(long, default_value_t = 8)]
    pub ranks_per_node: u32,
    /// Heartbeat interval the coordinator asks for, in milliseconds (the timeout is 5x).
    #[arg(long, default_value_t = 2000)]
    pub heartbeat_ms: u64,
    /// Seconds of steady heartbeats measured before a node falls silent.
    #[arg(long, default_value_t = 20)]
    pub steady_s: u64,
}

const TOKEN: &str = "load-test-token";

/// What one run measured.
#[derive(Debug, serde::Serialize)]
struct Figures {
    nodes: u32,
    ranks: u32,
    heartbeat_ms: u64,
    /// From the last node's join request to every node holding its ranks.
    join_to_ranks_ms: f64,
    heartbeats: usize,
    heartbeat_p50_ms: f64,
    heartbeat_p99_ms: f64,
    heartbeat_max_ms: f64,
    /// Heartbeats refused (rate limit or error).
    heartbeat_errors: usize,
    /// Live nodes the coordinator declared dead (their heartbeats came too late).
    live_declared_dead: usize,
    /// The coordinator's user + system CPU over the steady phase, per second of it.
    coordinator_cpu_per_s: f64,
    coordinator_rss_peak_mb: f64,
    db_bytes: u64,
    /// Database growth per second over the steady phase.
    db_bytes_per_s: f64,
    /// From the silent node's last heartbeat to the first REJOIN a live node receives.
    detect_dead_ms: f64,
    /// From that REJOIN to every node (the dead one back) holding ranks in the new round.
    next_round_ms: f64,
}

/// Runs `coordinator load-test`.
pub fn run(args: LoadTestArgs) -> anyhow::Result<()> {
    if args.nodes < 2 {
        bail!("--nodes must be at least 2 (one node falls silent)");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let mut server = Server::start(dir.path(), &args)?;
    let figures = rt.block_on(measure(&args, &mut server))?;
    server.stop();
    println!(
        "{} nodes x {} ranks: all ranks {:.0} ms after the last join; heartbeat p50 {:.2} ms, p99 {:.2} ms ({} beats, {} refused, {} live nodes declared dead); coordinator {:.3} CPU-s/s, {:.0} MB peak; database {} KB (+{:.0} B/s); dead node seen after {:.0} ms, next round closed {:.0} ms later",
        figures.nodes,
        args.ranks_per_node,
        figures.join_to_ranks_ms,
        figures.heartbeat_p50_ms,
        figures.heartbeat_p99_ms,
        figures.heartbeats,
        figures.heartbeat_errors,
        figures.live_declared_dead,
        figures.coordinator_cpu_per_s,
        figures.coordinator_rss_peak_mb,
        figures.db_bytes / 1024,
        figures.db_bytes_per_s,
        figures.detect_dead_ms,
        figures.next_round_ms,
    );
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}

/// The coordinator process under test.
struct Server {
    child: Child,
    url: String,
    db: PathBuf,
}

impl Server {
    fn start(dir: &Path, args: &LoadTestArgs) -> anyhow::Result<Self> {
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
    fn usage(&self) -> (f64, f64) {
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

    fn db_bytes(&self) -> u64 {
        ["", "-wal"]
            .iter()
            .filter_map(|s| std::fs::metadata(format!("{}{s}", self.db.display())).ok())
            .map(|m| m.len())
            .sum()
    }

    fn stop(&mut self) {
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
struct Node {
    client: Client,
    id: u64,
    name: String,
}

async fn connect_node(url: &str, i: u32, ranks: u32) -> anyhow::Result<Node> {
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

async fn register(client: &mut Client, name: &str, ranks: u32) -> anyhow::Result<u64> {
    let request = wire::RegisterNodeRequest {
        node_name: name.to_string(),
        host: format!("{name}.load-test"),
        device_kind: "cuda".into(),
        device_count: ranks,
        procs: ranks,
        config_digest: "load-test".into(),
    };
    Ok(client.register_node(request).await?.into_inner().node_id)
}

async fn join(node: &mut Node, ranks: u32, round: u64) -> anyhow::Result<u64> {
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
async fn join_all(nodes: &mut [Node], ranks: u32, round: u64) -> anyhow::Result<(Vec<u64>, f64)> {
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

/// What the heartbeat tasks share with the driver.
#[derive(Default)]
struct Shared {
    /// Steady-phase heartbeat latencies in ms.
    latencies: Mutex<Vec<f64>>,
    errors: Mutex<usize>,
    /// Nodes declared dead while alive.
    false_deaths: Mutex<Vec<usize>>,
    /// When the first REJOIN arrived, and its round.
    rejoin_seen: Mutex<Option<(Instant, u64)>>,
    /// Set while latencies are recorded.
    steady: AtomicBool,
    stop: AtomicBool,
}

/// A node's heartbeat loop, from registration to the end: with the progress of its
/// ranks while it holds them in `round` (0: waiting in a rendezvous, no progress), not
/// at all while `silent`. A REJOIN drops its round to 0, as a node does before joining.
struct Beat {
    id: AtomicU64,
    round: AtomicU64,
    silent: AtomicBool,
}

fn spawn_beats(
    i: usize,
    mut client: Client,
    beat: Arc<Beat>,
    my_ranks: Vec<u32>,
    interval: Duration,
    offset: Duration,
    shared: Arc<Shared>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(offset).await;
        let mut step = 0u64;
        while !shared.stop.load(Ordering::Relaxed) {
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
            let t = Instant::now();
            match client.heartbeat(request).await {
                Ok(reply) => {
                    if shared.steady.load(Ordering::Relaxed) {
                        let ms = t.elapsed().as_secs_f64() * 1e3;
                        shared.latencies.lock().unwrap().push(ms);
                    }
                    let reply = reply.into_inner();
                    if reply.directive == wire::Directive::Rejoin as i32 {
                        beat.round.store(0, Ordering::Relaxed);
                        let mut seen = shared.rejoin_seen.lock().unwrap();
                        seen.get_or_insert((Instant::now(), reply.round));
                    }
                }
                Err(status) if status.code() == tonic::Code::NotFound => {
                    // Declared dead while alive: the coordinator fell behind.
                    shared.false_deaths.lock().unwrap().push(i);
                    beat.silent.store(true, Ordering::Relaxed);
                }
                Err(_) => *shared.errors.lock().unwrap() += 1,
            }
            tokio::time::sleep(interval).await;
        }
    })
}

async fn measure(args: &LoadTestArgs, server: &mut Server) -> anyhow::Result<Figures> {
    let ranks = args.ranks_per_node;
    let interval = Duration::from_millis(args.heartbeat_ms);
    let connected = (0..args.nodes).map(|i| connect_node(&server.url, i, ranks));
    let mut nodes = futures::future::try_join_all(connected).await?;
    let shared = Arc::new(Shared::default());
    let beats: Vec<Arc<Beat>> = nodes
        .iter()
        .map(|n| {
            Arc::new(Beat {
                id: AtomicU64::new(n.id),
                round: AtomicU64::new(0),
                silent: AtomicBool::new(false),
            })
        })
        .collect();
    // Every node heartbeats from registration on, the first beats spread over one
    // interval as real nodes drift apart.
    let tasks: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let my_ranks = (0..ranks).map(|r| i as u32 * ranks + r).collect();
            let offset = interval.mul_f64(i as f64 / args.nodes as f64);
            spawn_beats(
                i,
                n.client.clone(),
                beats[i].clone(),
                my_ranks,
                interval,
                offset,
                shared.clone(),
            )
        })
        .collect();
    let (rounds, join_ms) = join_all(&mut nodes, ranks, 0).await?;
    let round = rounds[0];
    if rounds.iter().any(|&r| r != round) {
        bail!("nodes got different rounds: {rounds:?}");
    }
    for b in &beats {
        b.round.store(round, Ordering::Relaxed);
    }

    // The steady phase: every node beats with its ranks' progress.
    let (cpu0, _) = server.usage();
    let (db0, started) = (server.db_bytes(), Instant::now());
    shared.steady.store(true, Ordering::Relaxed);
    let mut peak = 0f64;
    while started.elapsed() < Duration::from_secs(args.steady_s) {
        peak = peak.max(server.usage().1);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    shared.steady.store(false, Ordering::Relaxed);
    let (cpu1, _) = server.usage();
    let steady_s = started.elapsed().as_secs_f64();
    let db1 = server.db_bytes();

    // Node 0 falls silent; wait for the coordinator to tell the others to rejoin.
    *shared.rejoin_seen.lock().unwrap() = None;
    let silent = Instant::now();
    beats[0].silent.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + interval * 20;
    let (seen_at, next) = loop {
        if let Some(seen) = *shared.rejoin_seen.lock().unwrap() {
            break seen;
        }
        if Instant::now() > deadline {
            shared.stop.store(true, Ordering::Relaxed);
            bail!("no node was told to rejoin after node 0 fell silent");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Node 0 comes back (as a restarted `worker join` does), and so does any node
    // declared dead while it was alive; then every node joins the announced round.
    let mut dead: Vec<usize> = std::mem::take(&mut *shared.false_deaths.lock().unwrap());
    let live_declared_dead = dead.len();
    dead.push(0);
    dead.sort_unstable();
    dead.dedup();
    for i in dead {
        let node = &mut nodes[i];
        node.id = register(&mut node.client, &node.name.clone(), ranks).await?;
        beats[i].id.store(node.id, Ordering::Relaxed);
        beats[i].round.store(0, Ordering::Relaxed);
        beats[i].silent.store(false, Ordering::Relaxed);
    }
    let (rounds, _) = join_all(&mut nodes, ranks, next).await?;
    if rounds.iter().any(|&r| r != next) {
        bail!("the next round is not the one announced ({next}): {rounds:?}");
    }
    let next_round_ms = seen_at.elapsed().as_secs_f64() * 1e3;
    shared.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }

    let mut lat = std::mem::take(&mut *shared.latencies.lock().unwrap());
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let heartbeat_errors = *shared.errors.lock().unwrap();
    Ok(Figures {
        nodes: args.nodes,
        ranks: args.nodes * ranks,
        heartbeat_ms: args.heartbeat_ms,
        join_to_ranks_ms: join_ms,
        heartbeats: lat.len(),
        heartbeat_p50_ms: pct(0.5),
        heartbeat_p99_ms: pct(0.99),
        heartbeat_max_ms: lat.last().copied().unwrap_or(0.0),
        heartbeat_errors,
        live_declared_dead,
        coordinator_cpu_per_s: (cpu1 - cpu0) / steady_s,
        coordinator_rss_peak_mb: peak,
        db_bytes: server.db_bytes(),
        db_bytes_per_s: (db1.saturating_sub(db0)) as f64 / steady_s,
        detect_dead_ms: seen_at.duration_since(silent).as_secs_f64() * 1e3,
        next_round_ms,
    })
}
