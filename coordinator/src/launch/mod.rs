//! Support for `coordinator launch`: the tokens of a launch ([`tokens`]), finding the
//! `worker` binary, supervising local worker processes (restarted after a failure as
//! [`crate::state::supervision`] decides), and what to do with a folder whose database
//! already holds a job ([`previous`]).

pub mod previous;
pub mod tokens;

use crate::state::supervision::{on_worker_exit, ExitVerdict, RestartPolicy};
use proto::domain::JobStatus;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::sync::watch;

/// Something a launch cannot get past.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The token file cannot be read or written.
    #[error("token file {path}: {source}")]
    Token {
        /// Token file path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The token file exists but holds nothing.
    #[error("token file {0} is empty: put the token in it (a launch's own token file in its work folder can be deleted to get a fresh one)")]
    EmptyToken(PathBuf),
    /// No random bytes for the token.
    #[error("cannot read /dev/urandom for a token: {0}")]
    Random(std::io::Error),
    /// The tokens cannot be used together (one reused for two roles).
    #[error("launch tokens: {0}")]
    Credentials(#[from] crate::roles::CredentialError),
    /// The worker binary is not there.
    #[error(
        "worker binary {0} not found: build it with cargo build --release -p worker, or pass --worker-bin"
    )]
    WorkerMissing(PathBuf),
    /// The folder of the running executable is unknown.
    #[error(
        "cannot locate the running executable to find `worker` next to it ({0}); pass --worker-bin"
    )]
    NoCurrentExe(std::io::Error),
    /// A worker's log cannot be opened.
    #[error("cannot open the worker log {path}: {source}")]
    Log {
        /// Log path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A worker process cannot be started.
    #[error("cannot start local worker {index} ({program}): {source}; see {log}")]
    Spawn {
        /// Worker index.
        index: usize,
        /// The program.
        program: PathBuf,
        /// Its log.
        log: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A worker kept failing.
    #[error(
        "local worker {index} failed ({status}) after {restarts} restart(s); see its log {log}"
    )]
    WorkerFailed {
        /// Worker index.
        index: usize,
        /// Its last exit status.
        status: String,
        /// Restarts made.
        restarts: u32,
        /// Its log.
        log: PathBuf,
    },
}

/// The worker binary: `explicit` when given, else `worker` next to the running
/// executable; an error saying how to build it when it is missing.
pub fn worker_binary(explicit: Option<&Path>) -> Result<PathBuf, LaunchError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let exe = std::env::current_exe().map_err(LaunchError::NoCurrentExe)?;
            exe.parent().unwrap_or(Path::new(".")).join("worker")
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(LaunchError::WorkerMissing(path))
    }
}

/// One local worker process to keep running.
#[derive(Debug, Clone)]
pub struct LocalWorker {
    /// Its index (`local-<index>`).
    pub index: usize,
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables added to ours.
    pub env: Vec<(String, String)>,
    /// Environment variables of ours it must not see.
    pub env_remove: Vec<String>,
    /// Its stderr is appended here.
    pub log: PathBuf,
}

/// How a supervised worker ended without failing the launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerEnd {
    /// It exited on its own (0, or after the job was over).
    Exited,
    /// It was killed on request.
    Killed,
}

/// Runs `worker` until it exits cleanly or the job is over, restarting it after
/// failures per `policy`. `job_over` turns true when the job finished or stopped;
/// `kill` turning true kills the process and returns.
pub async fn supervise(
    worker: LocalWorker,
    policy: RestartPolicy,
    job_over: watch::Receiver<bool>,
    mut kill: watch::Receiver<bool>,
) -> Result<WorkerEnd, LaunchError> {
    let mut restarts = 0;
    loop {
        let mut child = spawn(&worker)?;
        tracing::info!(worker = worker.index, pid = child.id(), log = %worker.log.display(), "local worker started");
        let status = tokio::select! {
            status = child.wait() => status,
            _ = killed(&mut kill) => {
                let _ = child.kill().await;
                return Ok(WorkerEnd::Killed);
            }
        };
        let (success, text) = match &status {
            Ok(s) => (s.success(), s.to_string()),
            Err(e) => (false, format!("wait failed: {e}")),
        };
        let over = *job_over.borrow();
        let verdict = on_worker_exit(success, over, restarts, &policy);
        match verdict {
            ExitVerdict::Done => {
                tracing::info!(worker = worker.index, status = %text, "local worker exited");
                return Ok(WorkerEnd::Exited);
            }
            ExitVerdict::GiveUp { restarts } => {
                return Err(LaunchError::WorkerFailed {
                    index: worker.index,
                    status: text,
                    restarts,
                    log: worker.log.clone(),
                })
            }
            ExitVerdict::Restart { attempt, after_ms } => {
                tracing::warn!(
                    worker = worker.index,
                    status = %text,
                    attempt,
                    of = policy.max_restarts,
                    after_ms,
                    log = %worker.log.display(),
                    "local worker failed; restarting it"
                );
                restarts = attempt;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(after_ms)) => {}
                    _ = killed(&mut kill) => return Ok(WorkerEnd::Killed),
                }
            }
        }
    }
}

/// Completes once `kill` is true (never when its sender is gone).
async fn killed(kill: &mut watch::Receiver<bool>) {
    if kill.wait_for(|k| *k).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn spawn(worker: &LocalWorker) -> Result<tokio::process::Child, LaunchError> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&worker.log)
        .map_err(|source| LaunchError::Log {
            path: worker.log.clone(),
            source,
        })?;
    let mut command = tokio::process::Command::new(&worker.program);
    for name in &worker.env_remove {
        command.env_remove(name);
    }
    command
        .args(&worker.args)
        .envs(worker.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| LaunchError::Spawn {
            index: worker.index,
            program: worker.program.clone(),
            log: worker.log.clone(),
            source,
        })
}

/// Whether every live member has heartbeated since the job ended `since_over` ago (so
/// it was told to stop), or `timeout` has passed: until then the coordinator keeps
/// serving, else a member that missed its last directive would heartbeat a coordinator
/// that is gone, and never exit.
pub fn members_told(status: &JobStatus, since_over: Duration, timeout: Duration) -> bool {
    since_over >= timeout
        || status
            .members
            .iter()
            .filter(|m| m.alive)
            .all(|m| Duration::from_millis(m.heartbeat_age_ms) < since_over)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::domain::RoundId;

    #[test]
    fn a_missing_worker_binary_says_how_to_build_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("worker");
        let err = worker_binary(Some(&missing)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&missing.display().to_string()), "{text}");
        assert!(text.contains("cargo build --release -p worker"), "{text}");
    }

    #[test]
    fn the_coordinator_serves_on_until_every_live_member_heard_the_end() {
        use proto::domain::{JobId, JobPhase, MemberStatus, NodeId};
        let member = |age_ms, alive| MemberStatus {
            node_id: NodeId::new(1),
            spec: Default::default(),
            alive,
            heartbeat_age_ms: age_ms,
            global_ranks: vec![],
            progress: vec![],
            finished: true,
        };
        let status = |members| JobStatus {
            job_id: JobId::new(1),
            phase: JobPhase::Finished,
            round: RoundId::new(1),
            world_size: 2,
            members,
            samples_per_sec: 0.0,
            checkpoints: vec![],
            config_digest: String::new(),
            joined_nodes: 0,
            evals: vec![],
            stragglers: vec![],
            median_own_step_s: 0.0,
        };
        let (ms, timeout) = (Duration::from_millis, Duration::from_secs(10));
        let s = status(vec![member(300, true), member(1_500, true)]);
        assert!(
            !members_told(&s, ms(1_000), timeout),
            "one last heard before the end"
        );
        assert!(members_told(&s, ms(2_000), timeout), "both heard since");
        let gone = status(vec![member(300, true), member(60_000, false)]);
        assert!(
            members_told(&gone, ms(1_000), timeout),
            "a dead member is not waited for"
        );
        assert!(members_told(&s, timeout, timeout), "not past the timeout");
    }
}
