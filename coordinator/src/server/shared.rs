//! The state the handlers and the timer share, and the ways it changes. A decision runs
//! on a copy, the change is written to the database on a blocking thread (never on the
//! async runtime), and only then the copy is made current, so every answer a client gets
//! is about a state that survives a crash of the coordinator. The one exception is a
//! heartbeat that changes only its node's soft state (last heartbeat time, progress:
//! [`state::heartbeat_is_soft`]), nearly every heartbeat: it is applied in place, with
//! no copy, no write and no wake-up of waiting joins, and the nodes it touched are
//! written every [`SOFT_FLUSH`] and at shutdown. What a crash loses of it comes back
//! with the next heartbeats; a restart gives every node a grace period.

use super::now_ms;
use crate::history::{self, Change, History, HistoryPoint};
use crate::state::{self, Action, DecisionError, Node, Policy, State, WaitingJoinsKey};
use crate::status::ServiceError;
use crate::store::{Store, StoreError};
use proto::domain::{Directive, EvalId, EvalImage, HeartbeatReport, NodeId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The state clients see: only ever one that is in the database.
struct Committed {
    state: Mutex<Arc<State>>,
    /// What waiting joins depend on ([`state::waiting_joins_key`]): sent when it changes.
    waiting: watch::Sender<WaitingJoinsKey>,
}

impl Committed {
    fn current(&self) -> Arc<State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn replace(&self, next: State, key: WaitingJoinsKey) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        self.waiting
            .send_if_modified(|k| std::mem::replace(k, key) != key);
    }

    /// Runs `change` on the current state itself (copied first only while a reader
    /// holds it), without telling the waiters.
    fn change_in_place<T>(&self, change: impl FnOnce(&mut State) -> T) -> T {
        let mut current = self.state.lock().unwrap_or_else(|e| e.into_inner());
        change(Arc::make_mut(&mut current))
    }
}

/// How often the nodes' soft state is written.
pub(crate) const SOFT_FLUSH: std::time::Duration = std::time::Duration::from_secs(30);
/// Nodes written per transaction of a soft-state flush.
const SOFT_FLUSH_ROWS: usize = 128;

/// State, store and notifications shared by the handlers and the timer.
pub(crate) struct Shared {
    committed: Arc<Committed>,
    /// The database. Its lock orders the changes: a change is decided and written while
    /// holding it, and the guard moves into the write, so a call that is cancelled
    /// mid-write cannot let the next change start from a state about to be replaced.
    store: Arc<tokio::sync::Mutex<Store>>,
    pub(crate) policy: Policy,
    /// Set once at shutdown.
    pub(crate) stopping: watch::Receiver<bool>,
    /// The dashboard's curves (stored beside the state, outside decisions).
    history: Mutex<History>,
    /// The names of each evaluation's pictures (their bytes stay in the database).
    eval_images: Mutex<BTreeMap<EvalId, Vec<String>>>,
    /// Nodes whose soft state changed since it was last written.
    soft_changed: Mutex<BTreeSet<NodeId>>,
}

/// The names of each evaluation's pictures.
pub(crate) type EvalImageIndex = BTreeMap<EvalId, Vec<String>>;

/// What a new history point makes the database do.
enum HistoryWrite {
    Add(HistoryPoint),
    All(History),
}

impl Shared {
    /// Shares `state`, already stored in `store`.
    pub(crate) fn new(
        (state, store, history, eval_images): (State, Store, History, EvalImageIndex),
        policy: Policy,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Self {
            committed: Arc::new(Committed {
                waiting: watch::channel(state::waiting_joins_key(&state, &policy)).0,
                state: Mutex::new(Arc::new(state)),
            }),
            store: Arc::new(tokio::sync::Mutex::new(store)),
            policy,
            stopping,
            history: Mutex::new(history),
            eval_images: Mutex::new(eval_images),
            soft_changed: Mutex::new(BTreeSet::new()),
        }
    }

    /// Keeps the pictures of a finished evaluation (at most [`EvalImage::MAX_COUNT`] of at
    /// most [`EvalImage::MAX_BYTES`]; others are dropped with a warning). A failure to
    /// store them is logged: they are not the job's state.
    pub(crate) async fn keep_eval_images(&self, id: EvalId, images: Vec<EvalImage>) {
        let (kept, dropped): (Vec<_>, Vec<_>) =
            images.into_iter().enumerate().partition(|(i, img)| {
                *i < EvalImage::MAX_COUNT && img.jpeg.len() <= EvalImage::MAX_BYTES
            });
        if !dropped.is_empty() {
            tracing::warn!(
                eval = id.get(),
                dropped = dropped.len(),
                "evaluation pictures over the limits (4, 256 KiB each) dropped"
            );
        }
        let kept: Vec<EvalImage> = kept.into_iter().map(|(_, img)| img).collect();
        let names: Vec<String> = kept.iter().map(|i| i.name.clone()).collect();
        let mut store = self.store.clone().lock_owned().await;
        let written = tokio::task::spawn_blocking(move || store.put_eval_images(id, &kept)).await;
        match written {
            Ok(Ok(())) => {
                self.eval_images
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id, names);
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "evaluation pictures not stored"),
            Err(_) => {}
        }
    }

    /// The names of the pictures of every evaluation that has some.
    pub(crate) fn eval_image_names(&self) -> BTreeMap<EvalId, Vec<String>> {
        self.eval_images
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Picture `index` of evaluation `id`, from the database.
    pub(crate) async fn eval_image(&self, id: EvalId, index: usize) -> Option<Vec<u8>> {
        let store = self.store.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || store.eval_image(id, index))
            .await
            .ok()?
            .ok()?
    }

    /// Offers the job's current point to the history and stores what changed (a failure
    /// is logged: the curves are not the job's state).
    pub(crate) async fn note_history(&self) {
        let now = now_ms();
        let status = self.read(|s, now| state::status(s, now, self.policy.stragglers));
        let Some(point) = history::point_of(&status, now) else {
            return;
        };
        let write = {
            let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
            match h.offer(point) {
                Change::None => return,
                Change::Added(p) => HistoryWrite::Add(p),
                Change::Thinned => HistoryWrite::All(h.clone()),
            }
        };
        let mut store = self.store.clone().lock_owned().await;
        let written = tokio::task::spawn_blocking(move || match write {
            HistoryWrite::Add(p) => store.add_history_point(&p),
            HistoryWrite::All(h) => store.save_history(&h),
        })
        .await;
        if let Ok(Err(e)) = written {
            tracing::warn!(error = %e, "the dashboard's history was not stored");
        }
    }

    /// The dashboard's curves.
    pub(crate) fn history(&self) -> History {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records a heartbeat: in place when it is soft ([`state::heartbeat_is_soft`]),
    /// else through [`Shared::apply`].
    pub(crate) async fn heartbeat(
        &self,
        report: HeartbeatReport,
    ) -> Result<Directive, ServiceError> {
        let node = report.node;
        let soft = {
            // The database lock orders this with `apply`, whose copy would otherwise
            // replace the state without this heartbeat.
            let _order = self.store.lock().await;
            self.committed.change_in_place(|state| {
                if !state::heartbeat_is_soft(state, &report) {
                    return Err(report);
                }
                Ok(state::heartbeat(state, report, now_ms(), &self.policy))
            })
        };
        match soft {
            Ok(decided) => {
                let (directive, actions) = decided?;
                debug_assert!(
                    actions.is_empty(),
                    "a soft heartbeat changed the job: {actions:?}"
                );
                self.soft_changed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(node);
                Ok(directive)
            }
            Err(report) => {
                self.apply(|s, now, policy| state::heartbeat(s, report, now, policy))
                    .await
            }
        }
    }

    /// Writes the soft state of the nodes whose heartbeats changed it since the last
    /// time, [`SOFT_FLUSH_ROWS`] nodes per transaction so heartbeats (which wait for
    /// the database lock) never wait long. A failure is logged and the nodes stay to be
    /// written next time.
    pub(crate) async fn flush_soft(&self) {
        let ids: Vec<NodeId> =
            std::mem::take(&mut *self.soft_changed.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .collect();
        for chunk in ids.chunks(SOFT_FLUSH_ROWS) {
            let mut store = self.store.clone().lock_owned().await;
            let state = self.committed.current();
            let nodes: Vec<Arc<Node>> = chunk
                .iter()
                .filter_map(|id| state.nodes.get(id).cloned())
                .collect();
            drop(state);
            let written = tokio::task::spawn_blocking(move || store.save_nodes(&nodes)).await;
            if !matches!(written, Ok(Ok(()))) {
                if let Ok(Err(e)) = written {
                    tracing::warn!(error = %e, nodes = chunk.len(), "the nodes' heartbeat times and progress were not stored; trying again later");
                }
                self.soft_changed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(chunk);
            }
        }
    }

    /// Runs one decision on a copy of the state; when the copy differs, writes what
    /// changed (on a blocking thread) and only then makes it current; logs the
    /// decision's actions. A failed write leaves the state as it was.
    pub(crate) async fn apply<T>(
        &self,
        decide: impl FnOnce(&mut State, u64, &Policy) -> Result<(T, Vec<Action>), DecisionError>,
    ) -> Result<T, ServiceError> {
        let mut store = self.store.clone().lock_owned().await;
        let current = self.committed.current();
        let mut next = State::clone(&current);
        let (value, actions) = decide(&mut next, now_ms(), &self.policy)?;
        if next != *current {
            let committed = self.committed.clone();
            let key = state::waiting_joins_key(&next, &self.policy);
            let write = tokio::task::spawn_blocking(move || {
                store.save_change(&current, &next)?;
                // The old state goes before the lock: a soft heartbeat waiting for it
                // then finds the new state unshared and changes it without a copy.
                drop(current);
                committed.replace(next, key);
                drop(store);
                Ok::<_, StoreError>(())
            });
            match write.await {
                Ok(result) => result?,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => return Err(ServiceError::ShuttingDown),
            }
        }
        for action in actions {
            tracing::info!(target: "coordinator", "{action}");
        }
        Ok(value)
    }

    /// Reads the current state (never waits for a write).
    pub(crate) fn read<T>(&self, query: impl FnOnce(&State, u64) -> T) -> T {
        let state = self.committed.current();
        query(state.as_ref(), now_ms())
    }

    /// A receiver that sees every later change of what waiting joins depend on.
    pub(crate) fn watch_waiting_joins(&self) -> watch::Receiver<WaitingJoinsKey> {
        self.committed.waiting.subscribe()
    }
}
