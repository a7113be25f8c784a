//! The coordinator's Prometheus metrics (OpenMetrics text, `prometheus-client`): the job
//! as `GetStatus` sees it, rendered at each scrape from a status view ([`render`]), and the
//! RPCs it served, counted as they happen ([`RpcMetrics`]). Names follow Prometheus
//! conventions: an `exiflang_` prefix, base units in the name (`_seconds`, `_bytes`,
//! `_ratio`), counters ending in `_total`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use proto::domain::{EvalPhase, JobPhase, JobStatus};
use std::sync::atomic::AtomicU64;

/// Label pairs of one series.
type Labels = Vec<(&'static str, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// The RPC methods, so that a label never takes a value a client made up.
const METHODS: [&str; 11] = [
    "RegisterNode",
    "Heartbeat",
    "JoinRendezvous",
    "ReportCheckpoint",
    "Ping",
    "GetStatus",
    "StopJob",
    "LeaseEval",
    "RenewEvalLease",
    "ReportEvalResult",
    "Check",
];

/// Calls served, by method and gRPC status code, and how long they took.
#[derive(Clone)]
pub struct RpcMetrics {
    calls: Family<Labels, Counter>,
    seconds: Family<Labels, Histogram>,
}

impl Default for RpcMetrics {
    fn default() -> Self {
        fn buckets() -> Histogram {
            // 100 us to ~52 s: heartbeats take well under a millisecond, a join waits
            // for its round.
            Histogram::new(exponential_buckets(1e-4, 4.0, 10))
        }
        Self {
            calls: Family::default(),
            seconds: Family::new_with_constructor(buckets),
        }
    }
}

impl RpcMetrics {
    /// Counts one call of the method at `path` (`/package.Service/Method`) that ended
    /// with `code` after `seconds`.
    pub fn observe(&self, path: &str, code: tonic::Code, seconds: f64) {
        let method = path.rsplit('/').next().unwrap_or_default();
        let method = METHODS
            .iter()
            .find(|&&m| m == method)
            .map_or("other", |m| m)
            .to_string();
        let labels = vec![("method", method), ("code", format!("{code:?}"))];
        self.calls.get_or_create(&labels).inc();
        self.seconds.get_or_create(&labels).observe(seconds);
    }
}

/// A gauge family being filled for one scrape.
struct Gauges<'r> {
    registry: &'r mut Registry,
}

impl Gauges<'_> {
    fn family(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        series: impl IntoIterator<Item = (Labels, f64)>,
    ) {
        let family = Family::<Labels, FloatGauge>::default();
        for (labels, value) in series {
            family.get_or_create(&labels).set(value);
        }
        match unit {
            Some(unit) => self.registry.register_with_unit(name, help, unit, family),
            None => self.registry.register(name, help, family),
        }
    }

    fn counter(&mut self, name: &str, help: &str, series: impl IntoIterator<Item = (Labels, u64)>) {
        let family = Family::<Labels, Counter>::default();
        for (labels, value) in series {
            family.get_or_create(&labels).inc_by(value);
        }
        self.registry.register(name, help, family);
    }
}

fn one(value: f64) -> Vec<(Labels, f64)> {
    vec![(Vec::new(), value)]
}

/// The metrics text for a scrape: the job from `status` and the RPCs of `rpc`.
pub fn render(status: &JobStatus, rpc: &RpcMetrics) -> String {
    let mut registry = Registry::with_prefix("exiflang");
    let mut g = Gauges {
        registry: &mut registry,
    };
    let phases = [
        JobPhase::WaitingForNodes,
        JobPhase::Running,
        JobPhase::Restarting,
        JobPhase::Finished,
        JobPhase::Stopped,
    ];
    g.family(
        "job_state",
        "1 for the job's current state, 0 for the others",
        None,
        phases.map(|p| {
            let name = p.to_string().replace(' ', "_");
            (
                vec![("state", name)],
                f64::from(u8::from(p == status.phase)),
            )
        }),
    );
    g.family(
        "job_round",
        "The latest rendezvous round (each restart opens one)",
        None,
        one(status.round.get() as f64),
    );
    g.family(
        "job_world_size",
        "Training processes in the current round",
        None,
        one(f64::from(status.world_size)),
    );
    g.family(
        "job_samples_per_second",
        "Pairs per second, summed over the current round's ranks",
        None,
        one(status.samples_per_sec),
    );
    let alive = status.members.iter().filter(|m| m.alive).count();
    g.family(
        "members",
        "Registered nodes by liveness",
        None,
        [("alive", alive), ("dead", status.members.len() - alive)]
            .map(|(state, n)| (vec![("state", state.to_string())], n as f64)),
    );
    g.family(
        "node_heartbeat_age",
        "Time since the node's last heartbeat",
        Some(Unit::Seconds),
        status.members.iter().map(|m| {
            (
                vec![("node", m.spec.name.clone())],
                m.heartbeat_age_ms as f64 / 1e3,
            )
        }),
    );
    rank_metrics(&mut g, status);
    checkpoint_and_eval_metrics(&mut g, status);
    registry.register(
        "rpc_requests",
        "RPCs served, by method and gRPC status code",
        rpc.calls.clone(),
    );
    registry.register_with_unit(
        "rpc_duration",
        "Time to answer an RPC, by method and gRPC status code",
        Unit::Seconds,
        rpc.seconds.clone(),
    );
    let mut out = String::new();
    encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}

/// Per-rank series: step, throughput, phases, device and data pipeline, stragglers.
fn rank_metrics(g: &mut Gauges<'_>, status: &JobStatus) {
    let ranks: Vec<_> = status
        .members
        .iter()
        .flat_map(|m| m.progress.iter().map(move |p| (m, p)))
        .collect();
    let rank_label = |p: &proto::domain::RankProgress, node: &str| -> Labels {
        vec![
            ("rank", p.global_rank.to_string()),
            ("node", node.to_string()),
        ]
    };
    let per_rank = |f: fn(&proto::domain::RankProgress) -> f64| {
        ranks
            .iter()
            .map(move |(m, p)| (rank_label(p, &m.spec.name), f(p)))
            .collect::<Vec<_>>()
    };
    g.family(
        "rank_step",
        "Optimiser steps the rank has taken",
        None,
        per_rank(|p| p.step.get() as f64),
    );
    g.family(
        "rank_loss",
        "The rank's latest training loss",
        None,
        per_rank(|p| p.loss),
    );
    g.family(
        "rank_samples_per_second",
        "The rank's share of the global batch per second",
        None,
        per_rank(|p| p.samples_per_sec),
    );
    g.family(
        "rank_learning_rate",
        "Learning rate of the rank's latest step",
        None,
        per_rank(|p| p.lr),
    );
    g.family(
        "rank_grad_norm",
        "Gradient norm before clipping, recent mean",
        None,
        per_rank(|p| p.grad_norm),
    );
    g.family(
        "rank_phase",
        "Seconds per step in each phase (step: the whole step; collective: inside collective calls), recent mean",
        Some(Unit::Seconds),
        ranks.iter().flat_map(|(m, p)| {
            p.timing.named().map(|(phase, v)| {
                let mut labels = rank_label(p, &m.spec.name);
                labels.push(("phase", phase.to_string()));
                (labels, v)
            })
        }),
    );
    g.family(
        "rank_own_step",
        "Step time less the time in collectives (what names a straggler)",
        Some(Unit::Seconds),
        per_rank(|p| p.timing.own_s()),
    );
    g.family(
        "rank_straggler",
        "1 when the rank's own step time is over the straggler factor times the other ranks' median",
        None,
        ranks.iter().map(|(m, p)| {
            (
                rank_label(p, &m.spec.name),
                f64::from(u8::from(status.stragglers.contains(&p.global_rank))),
            )
        }),
    );
    g.family(
        "rank_model_tflops",
        "Model TFLOP/s of the rank's share of each step",
        None,
        per_rank(|p| p.model_tflops),
    );
    g.family(
        "rank_mfu",
        "Model FLOPs utilisation (0: the device's peak is unknown)",
        Some(Unit::Other("ratio".into())),
        per_rank(|p| p.mfu),
    );
    g.family(
        "rank_memory_allocated",
        "GPU memory held by libtorch's caching allocator",
        Some(Unit::Bytes),
        per_rank(|p| p.memory_allocated_bytes as f64),
    );
    g.family(
        "rank_memory_peak",
        "Peak of it over the recent steps",
        Some(Unit::Bytes),
        per_rank(|p| p.memory_peak_bytes as f64),
    );
    g.family(
        "rank_prefetch_fill",
        "How full the prefetch queue was when the trainer took a batch (0: starving)",
        Some(Unit::Other("ratio".into())),
        per_rank(|p| p.data.prefetch_fill),
    );
    g.counter(
        "rank_data_read_bytes",
        "Bytes the rank's data pipeline fetched from storage since its run started",
        ranks
            .iter()
            .map(|(m, p)| (rank_label(p, &m.spec.name), p.data.bytes_read)),
    );
    g.counter(
        "rank_storage_retries",
        "Storage requests the rank retried after a transient error",
        ranks
            .iter()
            .map(|(m, p)| (rank_label(p, &m.spec.name), p.data.storage_retries)),
    );
    g.counter(
        "rank_samples_skipped",
        "Samples the rank's data pipeline skipped, by reason",
        ranks.iter().flat_map(|(m, p)| {
            p.data.skipped.iter().map(|(reason, n)| {
                let mut labels = rank_label(p, &m.spec.name);
                labels.push(("reason", reason.clone()));
                (labels, *n)
            })
        }),
    );
    g.family(
        "job_median_own_step",
        "Median own step time over the round's ranks",
        Some(Unit::Seconds),
        one(status.median_own_step_s),
    );
}

/// The checkpoint registry and the evaluation jobs with their latest results.
fn checkpoint_and_eval_metrics(g: &mut Gauges<'_>, status: &JobStatus) {
    g.family(
        "checkpoints",
        "Checkpoints in the registry",
        None,
        one(status.checkpoints.len() as f64),
    );
    let newest = status
        .checkpoints
        .iter()
        .map(|c| c.step.get())
        .max()
        .unwrap_or(0);
    g.family(
        "checkpoint_latest_step",
        "Step of the newest registered checkpoint",
        None,
        one(newest as f64),
    );
    let states = ["pending", "running", "done", "failed"];
    g.family(
        "eval_jobs",
        "Evaluation jobs by state",
        None,
        states.map(|state| {
            let n = status
                .evals
                .iter()
                .filter(|e| e.phase.name() == state)
                .count();
            (vec![("state", state.to_string())], n as f64)
        }),
    );
    // The latest result of each suite and metric (the newest checkpoint step that has one).
    let mut latest: std::collections::BTreeMap<(String, String), (u64, f64)> = Default::default();
    for e in &status.evals {
        if let EvalPhase::Done { metrics, .. } = &e.phase {
            for m in metrics {
                let key = (e.suite.clone(), m.name.clone());
                let step = e.checkpoint_step.get();
                if latest.get(&key).is_none_or(|&(s, _)| step >= s) {
                    latest.insert(key, (step, m.value));
                }
            }
        }
    }
    g.family(
        "eval_latest",
        "The latest result of each evaluation suite's metric",
        None,
        latest.iter().map(|((suite, metric), &(_, v))| {
            (
                vec![("suite", suite.clone()), ("metric", metric.clone())],
                v,
            )
        }),
    );
    g.family(
        "eval_latest_checkpoint_step",
        "The checkpoint step of that result",
        None,
        latest.iter().map(|((suite, metric), &(step, _))| {
            (
                vec![("suite", suite.clone()), ("metric", metric.clone())],
                step as f64,
            )
        }),
    );
}
