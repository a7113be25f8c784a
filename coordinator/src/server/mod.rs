//! The gRPC server: the `Coordinator` service over the pure decisions and the store,
//! the shared-token check on every call, and the timer that runs failure detection and
//! closes rounds.
//!
//! One shutdown path: [`RunningServer::shutdown`] (or the future given to [`serve`])
//! stops the timer, fails waiting joins with `UNAVAILABLE` and lets tonic drain the
//! calls in flight.

mod auth;
mod service;

use crate::config::ServeConfig;
use crate::state::{self, Action, DecisionError, Policy, State};
use crate::status::ServiceError;
use crate::store::{Store, StoreError};
use proto::domain::JobId;
use proto::wire::coordinator_server::CoordinatorServer;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;

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
    /// The transport failed.
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Milliseconds since the UNIX epoch: the only clock the coordinator reads.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Inner {
    state: State,
    store: Store,
}

/// State, store and notifications shared by the handlers and the timer.
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    policy: Policy,
    /// Bumped after every change of the state; joins wait on it.
    changed: watch::Sender<u64>,
    /// Set once at shutdown.
    stopping: watch::Receiver<bool>,
}

impl Shared {
    /// Runs one decision on a copy of the state, persists the copy when it changed and
    /// only then makes it current; logs the decision's actions.
    pub(crate) fn apply<T>(
        &self,
        decide: impl FnOnce(&mut State, u64, &Policy) -> Result<(T, Vec<Action>), DecisionError>,
    ) -> Result<T, ServiceError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = inner.state.clone();
        let (value, actions) = decide(&mut next, now_ms(), &self.policy)?;
        if next != inner.state {
            inner.store.save(&next)?;
            inner.state = next;
            self.changed.send_modify(|v| *v += 1);
        }
        drop(inner);
        for action in actions {
            tracing::info!(target: "coordinator", "{action}");
        }
        Ok(value)
    }

    /// Reads the state.
    pub(crate) fn read<T>(&self, query: impl FnOnce(&State, u64) -> T) -> T {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        query(&inner.state, now_ms())
    }
}

/// Opens the database, loads the job (or starts a new one) and gives every live node a
/// full timeout from now.
fn open_state(config: &ServeConfig) -> Result<Inner, StoreError> {
    let mut store = Store::open(&config.db_path)?;
    let now = now_ms();
    let mut state = match store.load()? {
        Some(state) => {
            tracing::info!(
                db = %config.db_path.display(),
                job = state.job_id.0,
                phase = %state.phase,
                round = state.round,
                "continuing the job from the database"
            );
            state
        }
        None => {
            tracing::info!(db = %config.db_path.display(), "new job");
            State::new(JobId(1), now)
        }
    };
    state::resume_after_restart(&mut state, now);
    store.save(&state)?;
    Ok(Inner { state, store })
}

/// How often the timer runs: a quarter of the shortest deadline, 20 ms to 1 s.
fn tick_period(policy: &Policy) -> Duration {
    let shortest = policy
        .heartbeat_timeout_ms
        .min(policy.rendezvous_settle_ms)
        .max(1);
    Duration::from_millis((shortest / 4).clamp(20, 1_000))
}

/// Serves on `incoming` until `shutdown` completes.
pub async fn serve(
    config: ServeConfig,
    incoming: TcpIncoming,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let inner = open_state(&config)?;
    serve_state(config, inner, incoming, shutdown).await
}

async fn serve_state(
    config: ServeConfig,
    inner: Inner,
    incoming: TcpIncoming,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        inner: Mutex::new(inner),
        policy: config.policy.clone(),
        changed: watch::channel(0).0,
        stopping: stop_rx.clone(),
    });
    let timer = tokio::spawn(run_timer(shared.clone(), stop_rx));
    let service = CoordinatorServer::with_interceptor(
        service::CoordinatorService::new(shared),
        auth::TokenCheck::new(&config.token),
    );
    let signal = async move {
        shutdown.await;
        tracing::info!("coordinator shutting down");
        let _ = stop_tx.send(true);
    };
    let result = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, signal)
        .await;
    let _ = timer.await;
    result.map_err(ServeError::from)
}

async fn run_timer(shared: Arc<Shared>, mut stopping: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(tick_period(&shared.policy));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stopping.changed() => return,
        }
        let result = shared.apply(|state, now, policy| Ok(((), state::tick(state, now, policy))));
        if let Err(e) = result {
            tracing::error!(error = %e, "failure detection could not record its decision");
        }
    }
}

/// A server running in a task of this runtime.
pub struct RunningServer {
    /// Where it listens (the real port when the config said port 0).
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl RunningServer {
    /// Binds `config.listen` and serves in a task.
    pub async fn start(config: ServeConfig) -> Result<Self, ServeError> {
        let addr = config.listen;
        let incoming =
            TcpIncoming::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
        let addr = incoming
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        // Load the state before returning so that a bad database is reported at start.
        let inner = open_state(&config)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve_state(config, inner, incoming, async move {
            let _ = stopped.await;
        }));
        Ok(Self { addr, stop, task })
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

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn finish(task: tokio::task::JoinHandle<Result<(), ServeError>>) -> Result<(), ServeError> {
    match task.await {
        Ok(result) => result,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}
