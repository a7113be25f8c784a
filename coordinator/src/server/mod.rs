//! The gRPC server: the `Coordinator` service over the pure decisions and the store
//! ([`shared`] holds the one way the state changes), behind a gate run before every
//! call (per-client call limits, the token and the role its method needs: `guard`),
//! TLS when configured, and the timer that runs failure detection and closes rounds.
//!
//! One shutdown path: [`RunningServer::shutdown`] (or the future given to [`serve`])
//! stops the timer, fails waiting joins with `UNAVAILABLE` and lets tonic drain the
//! calls in flight.
//!
//! With `health_listen` the standard `grpc.health.v1.Health` service is also served, on
//! that address, in plain HTTP/2 and without the token: Kubernetes' gRPC probes can send
//! neither. It says SERVING while the coordinator serves and NOT_SERVING once it shuts
//! down.

mod access;
mod dashboard;
mod guard;
mod http;
mod https;
mod service;
mod shared;

use crate::config::ServeConfig;
use crate::history::History;
use crate::metrics::RpcMetrics;
use crate::state::{self, Policy, State};
use crate::store::{Store, StoreError};
use proto::domain::JobId;
use proto::wire::coordinator_server::CoordinatorServer;
use shared::Shared;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

/// A server that cannot start or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The state database cannot be used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS files load but do not make a usable server (e.g. the key does not
    /// belong to the certificate).
    #[error("the TLS settings ({files}) are unusable: {detail}")]
    Tls {
        /// The files.
        files: String,
        /// Why.
        detail: String,
    },
    /// The transport failed.
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Opening the database was interrupted (the runtime is shutting down).
    #[error("the coordinator stopped while opening its database")]
    Interrupted,
}

/// The largest request the coordinator decodes (larger ones: OUT_OF_RANGE). The
/// largest legitimate request, a heartbeat of a node of a few hundred processes, is a
/// few kilobytes.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Milliseconds since the UNIX epoch: the only clock the coordinator reads.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the database holds at start: the job's state, the store, the dashboard's curves
/// and its pictures' names.
type Opened = (State, Store, History, shared::EvalImageIndex);

/// Opens the database, loads the job (or starts a new one) and gives every live node a
/// full timeout from now; on a blocking thread.
async fn open_state(config: &ServeConfig) -> Result<Opened, ServeError> {
    let db_path = config.db_path.clone();
    let opened = tokio::task::spawn_blocking(move || open_state_blocking(&db_path)).await;
    match opened {
        Ok(result) => Ok(result?),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(ServeError::Interrupted),
    }
}

fn open_state_blocking(db_path: &std::path::Path) -> Result<Opened, StoreError> {
    let mut store = Store::open(db_path)?;
    let now = now_ms();
    let mut state = match store.load()? {
        Some(state) => {
            tracing::info!(
                db = %db_path.display(),
                job = state.job_id.get(),
                phase = %state.phase,
                round = state.round.get(),
                "continuing the job from the database"
            );
            state
        }
        None => {
            let job = JobId::new(store.next_job_id()?);
            tracing::info!(db = %db_path.display(), job = job.get(), "new job");
            State::new(job, now)
        }
    };
    state::resume_after_restart(&mut state, now);
    store.save(&state)?;
    let history = store.load_history()?;
    let images = store.eval_image_names()?;
    Ok((state, store, history, images))
}

/// The tonic server builder, with TLS when configured (checked here, at start).
fn builder(config: &ServeConfig) -> Result<Server, ServeError> {
    let builder = Server::builder();
    match &config.tls {
        None => Ok(builder),
        Some(tls) => builder
            .tls_config(tls.tonic_config())
            .map_err(|e| ServeError::Tls {
                files: tls.describe(),
                detail: error_chain(&e),
            }),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    text
}

/// How often the timer runs: a quarter of the shortest deadline, 20 ms to 1 s.
fn tick_period(policy: &Policy) -> Duration {
    let shortest = policy
        .heartbeat_timeout_ms
        .min(policy.rendezvous_settle_ms)
        .max(1);
    Duration::from_millis((shortest / 4).clamp(20, 1_000))
}

/// Binds `addr`.
fn bind(addr: SocketAddr) -> Result<TcpIncoming, ServeError> {
    TcpIncoming::bind(addr).map_err(|source| ServeError::Bind { addr, source })
}

/// The HTTP listener of `config`, bound (`None` without `metrics_listen`).
fn bind_metrics(config: &ServeConfig) -> Result<Option<tokio::net::TcpListener>, ServeError> {
    let Some(addr) = config.metrics_listen else {
        return Ok(None);
    };
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| {
            l.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(l)
        })
        .map_err(|source| ServeError::Bind { addr, source })?;
    Ok(Some(listener))
}

/// The listeners besides the gRPC one.
struct SideListeners {
    health: Option<TcpIncoming>,
    metrics: Option<tokio::net::TcpListener>,
}

/// The health listener of `config`, bound (`None` without `health_listen`).
fn bind_health(config: &ServeConfig) -> Result<Option<TcpIncoming>, ServeError> {
    config.health_listen.map(bind).transpose()
}

/// Serves on `incoming` until `shutdown` completes.
pub async fn serve(
    config: ServeConfig,
    incoming: TcpIncoming,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let server = builder(&config)?;
    let side = SideListeners {
        health: bind_health(&config)?,
        metrics: bind_metrics(&config)?,
    };
    let opened = open_state(&config).await?;
    serve_state(config, server, opened, (incoming, side), shutdown).await
}

/// Serves `grpc.health.v1.Health` on `incoming` until `stopping`; NOT_SERVING from then.
async fn serve_health(
    incoming: TcpIncoming,
    mut stopping: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let (reporter, service) = tonic_health::server::health_reporter();
    let signal = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
        reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
    };
    Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, signal)
        .await
        .map_err(ServeError::from)
}

async fn serve_state(
    config: ServeConfig,
    mut server: Server,
    opened: Opened,
    (incoming, side): (TcpIncoming, SideListeners),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared::new(opened, config.policy.clone(), stop_rx.clone()));
    match &config.tls {
        Some(tls) => tracing::info!(tls = %tls.describe(), "serving over TLS"),
        None => tracing::info!("serving plain HTTP/2 (no [tls] configured)"),
    }
    let health = side
        .health
        .map(|h| tokio::spawn(serve_health(h, stop_rx.clone())));
    let rpc = RpcMetrics::default();
    let http_tls = match &config.tls {
        Some(tls) if side.metrics.is_some() => {
            Some(tls.rustls_config().map_err(|detail| ServeError::Tls {
                files: tls.describe(),
                detail,
            })?)
        }
        _ => None,
    };
    let metrics = side.metrics.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            let scheme = if http_tls.is_some() { "https" } else { "http" };
            tracing::info!(url = %format!("{scheme}://{addr}/"), "serving the dashboard and Prometheus /metrics");
        }
        let state = access::HttpState {
            shared: shared.clone(),
            rpc: rpc.clone(),
            credentials: config.credentials.clone(),
            tls: http_tls.is_some(),
        };
        tokio::spawn(http::serve_http(listener, http_tls, state, stop_rx.clone()))
    });
    let timer = tokio::spawn(run_timer(shared.clone(), stop_rx));
    let service = guard::Guarded::new(
        CoordinatorServer::new(service::CoordinatorService::new(shared.clone()))
            .max_decoding_message_size(MAX_REQUEST_BYTES),
        config.credentials.clone(),
        config.limits,
        rpc,
    );
    let signal = async move {
        shutdown.await;
        tracing::info!("coordinator shutting down");
        let _ = stop_tx.send(true);
    };
    let result = server
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, signal)
        .await;
    let _ = timer.await;
    shared.flush_soft().await;
    if let Some(health) = health {
        if let Ok(Err(e)) = health.await {
            tracing::warn!(error = %e, "the health service failed");
        }
    }
    if let Some(metrics) = metrics {
        if let Ok(Err(e)) = metrics.await {
            tracing::warn!(error = %e, "the HTTP (metrics) service failed");
        }
    }
    result.map_err(ServeError::from)
}

async fn run_timer(shared: Arc<Shared>, mut stopping: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(tick_period(&shared.policy));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush = tokio::time::interval_at(
        tokio::time::Instant::now() + shared::SOFT_FLUSH,
        shared::SOFT_FLUSH,
    );
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = flush.tick() => {
                shared.flush_soft().await;
                continue;
            }
            _ = stopping.changed() => return,
        }
        let result = shared
            .apply(|state, now, policy| Ok(((), state::tick(state, now, policy))))
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "failure detection could not record its decision");
        }
    }
}

/// A server running in a task of this runtime.
pub struct RunningServer {
    /// Where it listens (the real port when the config said port 0).
    pub addr: SocketAddr,
    /// Where the health service listens, if configured (the real port).
    pub health_addr: Option<SocketAddr>,
    /// Where the HTTP port (`/metrics`, the dashboard) listens, if configured.
    pub metrics_addr: Option<SocketAddr>,
    tls: bool,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl RunningServer {
    /// Binds `config.listen` and serves in a task.
    pub async fn start(config: ServeConfig) -> Result<Self, ServeError> {
        let addr = config.listen;
        let incoming = bind(addr)?;
        let addr = incoming
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        let side = SideListeners {
            health: bind_health(&config)?,
            metrics: bind_metrics(&config)?,
        };
        let health_addr = side.health.as_ref().and_then(|h| h.local_addr().ok());
        let metrics_addr = side.metrics.as_ref().and_then(|m| m.local_addr().ok());
        // Check TLS and load the state before returning so that bad files or a bad
        // database are reported at start.
        let server = builder(&config)?;
        let opened = open_state(&config).await?;
        let tls = config.tls.is_some();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve_state(
            config,
            server,
            opened,
            (incoming, side),
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(Self {
            addr,
            health_addr,
            metrics_addr,
            tls,
            stop,
            task,
        })
    }

    /// Shuts down cleanly and waits until the server has stopped.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        let Self { stop, task, .. } = self;
        let _ = stop.send(());
        finish(task).await
    }

    /// Waits until the server stops on its own (an error).
    pub async fn wait(self) -> Result<(), ServeError> {
        let Self { stop, task, .. } = self;
        let result = finish(task).await;
        drop(stop);
        result
    }

    /// The dashboard's URL (`https://` with TLS), when the HTTP port is served.
    pub fn http_url(&self) -> Option<String> {
        let scheme = if self.tls { "https" } else { "http" };
        self.metrics_addr
            .map(|addr| format!("{scheme}://{}/", loopback_if_wildcard(addr)))
    }

    /// The URL clients connect to (`https://` with TLS); a wildcard listen address
    /// (`0.0.0.0`, `::`) becomes loopback, the address clients on this machine use.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", loopback_if_wildcard(self.addr))
    }
}

/// `addr` with a wildcard IP (`0.0.0.0`, `::`) made loopback: where clients on this
/// machine connect.
fn loopback_if_wildcard(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        });
    }
    addr
}

async fn finish(task: tokio::task::JoinHandle<Result<(), ServeError>>) -> Result<(), ServeError> {
    match task.await {
        Ok(result) => result,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}
