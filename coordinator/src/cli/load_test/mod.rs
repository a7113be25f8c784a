//! `coordinator load-test`: the control plane under N nodes. Starts a real `coordinator
//! serve` (this binary, its own process, its own database) and N simulated nodes in this
//! process, each with its own gRPC connection over loopback, doing what `worker join`
//! does minus the training: register, join the rendezvous, heartbeat every interval with
//! the progress of each of its ranks. In the steady phase the node of rank 0 reports a
//! checkpoint every interval and an evaluation agent leases and reports the evaluations
//! they are due; with `--flood`, one more client floods the coordinator for the second
//! half of it (heartbeats back to back, oversized requests). Then one node falls silent,
//! the others are told to rejoin, and it comes back (re-registers) into the next round.
//! Prints what it measured as one JSON line (and a readable summary) -- see [`Figures`].

mod sim;

use anyhow::bail;
use coordinator::client::connect;
use sim::{Beat, Recorder, Server, FLOODED, QUIET};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
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
    /// One more client floods the coordinator for the second half of the steady phase
    /// (this many heartbeat loops back to back on one connection, plus a request over
    /// the size limit every 100 ms); the others' latencies are reported for each half.
    #[arg(long, default_value_t = 0)]
    pub flood: usize,
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
    /// Heartbeats of the nodes sent and answered in the steady phase (both halves).
    heartbeats: usize,
    heartbeat_p50_ms: f64,
    heartbeat_p99_ms: f64,
    heartbeat_max_ms: f64,
    /// The nodes' heartbeats while a client floods (absent without `--flood`).
    flooded_heartbeats: usize,
    flooded_heartbeat_p50_ms: f64,
    flooded_heartbeat_p99_ms: f64,
    /// Calls of the nodes, the rank-0 checkpoints and the agent that failed.
    errors: usize,
    /// Live nodes the coordinator declared dead (their heartbeats came too late).
    live_declared_dead: usize,
    checkpoints_reported: u64,
    checkpoint_p99_ms: f64,
    evaluations_done: u64,
    eval_call_p99_ms: f64,
    /// The flooder's calls: made, refused for its call limit, refused for their size.
    flood_calls: u64,
    flood_refused: u64,
    flood_oversized_refused: u64,
    /// The coordinator's user + system CPU per second over the quiet part of the steady
    /// phase (nodes, checkpoints and evaluations; no flood).
    coordinator_cpu_per_s: f64,
    /// The same while the client floods (0 without `--flood`).
    flooded_coordinator_cpu_per_s: f64,
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
        "{} nodes x {} ranks: all ranks {:.0} ms after the last join; heartbeat p50 {:.2} ms, p99 {:.2} ms ({} beats, {} errors, {} live nodes declared dead); {} checkpoints (p99 {:.1} ms), {} evaluations (calls p99 {:.1} ms); coordinator {:.3} CPU-s/s, {:.0} MB peak; database {} KB (+{:.0} B/s); dead node seen after {:.0} ms, next round closed {:.0} ms later",
        figures.nodes,
        args.ranks_per_node,
        figures.join_to_ranks_ms,
        figures.heartbeat_p50_ms,
        figures.heartbeat_p99_ms,
        figures.heartbeats,
        figures.errors,
        figures.live_declared_dead,
        figures.checkpoints_reported,
        figures.checkpoint_p99_ms,
        figures.evaluations_done,
        figures.eval_call_p99_ms,
        figures.coordinator_cpu_per_s,
        figures.coordinator_rss_peak_mb,
        figures.db_bytes / 1024,
        figures.db_bytes_per_s,
        figures.detect_dead_ms,
        figures.next_round_ms,
    );
    if args.flood > 0 {
        println!(
            "flooding client: {} calls, {} refused for the call limit, {} oversized refused; the nodes' heartbeats meanwhile: p50 {:.2} ms, p99 {:.2} ms ({} beats); coordinator {:.3} CPU-s/s",
            figures.flood_calls,
            figures.flood_refused,
            figures.flood_oversized_refused,
            figures.flooded_heartbeat_p50_ms,
            figures.flooded_heartbeat_p99_ms,
            figures.flooded_heartbeats,
            figures.flooded_coordinator_cpu_per_s,
        );
    }
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}

/// The `p` quantile of sorted values (0 when empty).
fn quantile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

async fn measure(args: &LoadTestArgs, server: &mut Server) -> anyhow::Result<Figures> {
    let ranks = args.ranks_per_node;
    let interval = Duration::from_millis(args.heartbeat_ms);
    let connected = (0..args.nodes).map(|i| sim::connect_node(&server.url, i, ranks));
    let mut nodes = futures::future::try_join_all(connected).await?;
    let rec = Arc::new(Recorder::default());
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
            sim::spawn_beats(
                i,
                n.client.clone(),
                beats[i].clone(),
                my_ranks,
                interval,
                offset,
                rec.clone(),
            )
        })
        .collect();
    let (rounds, join_ms) = sim::join_all(&mut nodes, ranks, 0).await?;
    let round = rounds[0];
    if rounds.iter().any(|&r| r != round) {
        bail!("nodes got different rounds: {rounds:?}");
    }
    for b in &beats {
        b.round.store(round, Ordering::Relaxed);
    }

    // The steady phase: every node beats with its ranks' progress, rank 0 (node 0:
    // names sort in node order) checkpoints, an agent evaluates; a flood in its second
    // half.
    let checkpointing = Arc::new(AtomicBool::new(true));
    let checkpoints = sim::spawn_checkpoints(
        nodes[0].client.clone(),
        nodes[0].id,
        round,
        interval,
        checkpointing.clone(),
        rec.clone(),
    );
    let agent = sim::spawn_eval_agent(connect(&server.url, TOKEN).await?, rec.clone());
    let flooding = Arc::new(AtomicBool::new(false));
    let (cpu0, _) = server.usage();
    let (db0, started) = (server.db_bytes(), Instant::now());
    rec.phase.store(QUIET, Ordering::Relaxed);
    let steady = Duration::from_secs(args.steady_s);
    let mut flood = Vec::new();
    let mut peak = 0f64;
    let mut quiet_cpu = None;
    while started.elapsed() < steady {
        if args.flood > 0 && flood.is_empty() && started.elapsed() >= steady / 2 {
            quiet_cpu = Some((server.usage().0, started.elapsed().as_secs_f64()));
            let mut client = connect(&server.url, TOKEN).await?;
            let id = sim::register(&mut client, "flood-00000", ranks).await?;
            flooding.store(true, Ordering::Relaxed);
            flood = sim::spawn_flood(client, id, args.flood, flooding.clone(), rec.clone());
            rec.phase.store(FLOODED, Ordering::Relaxed);
        }
        peak = peak.max(server.usage().1);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    rec.phase.store(sim::SETTING_UP, Ordering::Relaxed);
    flooding.store(false, Ordering::Relaxed);
    checkpointing.store(false, Ordering::Relaxed);
    let (cpu1, _) = server.usage();
    let steady_s = started.elapsed().as_secs_f64();
    // CPU-s per s: quiet (up to the flood, if any) and flooded.
    let (cpu_quiet, cpu_flooded) = match quiet_cpu {
        Some((cpu, at_s)) => ((cpu - cpu0) / at_s, (cpu1 - cpu) / (steady_s - at_s)),
        None => ((cpu1 - cpu0) / steady_s, 0.0),
    };
    let db1 = server.db_bytes();
    for t in flood {
        let _ = t.await;
    }
    let _ = checkpoints.await;

    // Node 0 falls silent; wait for the coordinator to tell the others to rejoin.
    *rec.rejoin_seen.lock().unwrap() = None;
    let silent = Instant::now();
    beats[0].silent.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + interval * 20;
    let (seen_at, next) = loop {
        if let Some(seen) = *rec.rejoin_seen.lock().unwrap() {
            break seen;
        }
        if Instant::now() > deadline {
            rec.stop.store(true, Ordering::Relaxed);
            bail!("no node was told to rejoin after node 0 fell silent");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Node 0 comes back (as a restarted `worker join` does), and so does any node
    // declared dead while it was alive; then every node joins the announced round.
    let mut dead: Vec<usize> = std::mem::take(&mut *rec.false_deaths.lock().unwrap());
    let live_declared_dead = dead.len();
    dead.push(0);
    dead.sort_unstable();
    dead.dedup();
    for i in dead {
        let node = &mut nodes[i];
        node.id = sim::register(&mut node.client, &node.name.clone(), ranks).await?;
        beats[i].id.store(node.id, Ordering::Relaxed);
        beats[i].round.store(0, Ordering::Relaxed);
        beats[i].silent.store(false, Ordering::Relaxed);
    }
    let (rounds, _) = sim::join_all(&mut nodes, ranks, next).await?;
    if rounds.iter().any(|&r| r != next) {
        bail!("the next round is not the one announced ({next}): {rounds:?}");
    }
    let next_round_ms = seen_at.elapsed().as_secs_f64() * 1e3;
    rec.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let _ = agent.await;

    let [quiet, flooded] = std::mem::take(&mut *rec.latencies.lock().unwrap()).map(sorted);
    let all = sorted([&quiet[..], &flooded[..]].concat());
    let checkpoint = sorted(std::mem::take(
        &mut *rec.checkpoint_latencies.lock().unwrap(),
    ));
    let eval = sorted(std::mem::take(&mut *rec.eval_latencies.lock().unwrap()));
    let errors = rec.errors.lock().unwrap().clone();
    for e in errors.iter().take(5) {
        eprintln!("error: {e}");
    }
    Ok(Figures {
        nodes: args.nodes,
        ranks: args.nodes * ranks,
        heartbeat_ms: args.heartbeat_ms,
        join_to_ranks_ms: join_ms,
        heartbeats: all.len(),
        heartbeat_p50_ms: quantile(&quiet, 0.5),
        heartbeat_p99_ms: quantile(&quiet, 0.99),
        heartbeat_max_ms: all.last().copied().unwrap_or(0.0),
        flooded_heartbeats: flooded.len(),
        flooded_heartbeat_p50_ms: quantile(&flooded, 0.5),
        flooded_heartbeat_p99_ms: quantile(&flooded, 0.99),
        errors: errors.len(),
        live_declared_dead,
        checkpoints_reported: rec.checkpoints.load(Ordering::Relaxed),
        checkpoint_p99_ms: quantile(&checkpoint, 0.99),
        evaluations_done: rec.evals_done.load(Ordering::Relaxed),
        eval_call_p99_ms: quantile(&eval, 0.99),
        flood_calls: rec.flood_calls.load(Ordering::Relaxed),
        flood_refused: rec.flood_refused.load(Ordering::Relaxed),
        flood_oversized_refused: rec.flood_oversized_refused.load(Ordering::Relaxed),
        coordinator_cpu_per_s: cpu_quiet,
        flooded_coordinator_cpu_per_s: cpu_flooded,
        coordinator_rss_peak_mb: peak,
        db_bytes: server.db_bytes(),
        db_bytes_per_s: (db1.saturating_sub(db0)) as f64 / steady_s,
        detect_dead_ms: seen_at.duration_since(silent).as_secs_f64() * 1e3,
        next_round_ms,
    })
}
