//! The training processes of one node in one round: `worker train` children with their
//! global ranks, whose `--events-stdout` lines become [`ProcMsg`]s, and which can be asked
//! to stop (SIGTERM: checkpoint and leave) or killed.

use std::path::PathBuf;
use std::process::Stdio;

use proto::domain::{Assignment, Rank};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc::UnboundedSender;

use crate::events::{TrainEvent, EXIT_INTERRUPTED};

/// What a child reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcMsg {
    /// A training event of global rank `rank`.
    Event {
        /// The child's global rank.
        rank: Rank,
        /// What it reported.
        event: TrainEvent,
    },
}

/// How the children are started.
#[derive(Debug, Clone)]
pub struct ProcSpec {
    /// The `worker` binary.
    pub worker_bin: PathBuf,
    /// The training config.
    pub config: PathBuf,
    /// Seconds a collective waits for a peer (and for the group to form).
    pub group_timeout_s: u64,
    /// The GPUs of this node, one per local process (local rank `i` gets `gpus[i]` as its
    /// only visible device); empty on CPU nodes.
    pub gpus: Vec<String>,
}

/// The running children, by global rank.
#[derive(Debug)]
pub struct TrainProcesses {
    children: Vec<(Rank, Child)>,
}

impl TrainProcesses {
    /// Starts one child per global rank of `assignment` on this node; `addresses` are
    /// this node's collective addresses (the one of global rank 0, if here, is listened
    /// on by that child).
    pub fn spawn(
        spec: &ProcSpec,
        assignment: &Assignment,
        tx: &UnboundedSender<ProcMsg>,
    ) -> std::io::Result<Self> {
        let master = assignment
            .peers
            .iter()
            .find(|p| p.rank == Rank::LEADER)
            .map(|p| p.address.clone())
            .unwrap_or_default();
        let mut children = Vec::new();
        let secret = hex::encode(&assignment.bootstrap);
        let resume_step = assignment.resume_from.as_ref().map(|c| c.step.to_string());
        for (local, &rank) in assignment.global_ranks.iter().enumerate() {
            let mut command = Command::new(&spec.worker_bin);
            if let Some(gpu) = spec.gpus.get(local) {
                // One GPU per process, seen by it as cuda:0.
                command.env("CUDA_VISIBLE_DEVICES", gpu);
            }
            let mut child = command
                .env(crate::collective::GROUP_SECRET_ENV, &secret)
                .args([
                    "--log-format",
                    "json",
                    "train",
                    "--resume",
                    "--events-stdout",
                ])
                .arg("--config")
                .arg(&spec.config)
                .args(["--rank", &rank.to_string()])
                .args(["--world", &assignment.world_size.to_string()])
                .args(["--master", &master])
                .args(["--group-timeout-s", &spec.group_timeout_s.to_string()])
                // Every rank loads the checkpoint the coordinator chose for the round.
                .args(resume_step.iter().flat_map(|s| ["--resume-step", s.as_str()]))
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()?;
            let stdout = child.stdout.take().expect("stdout is piped");
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    match serde_json::from_str::<TrainEvent>(&line) {
                        Ok(event) => {
                            let _ = tx.send(ProcMsg::Event { rank, event });
                        }
                        Err(e) => {
                            tracing::warn!(rank = rank.get(), error = %e, line, "unreadable event line")
                        }
                    }
                }
            });
            tracing::info!(rank = rank.get(), world = assignment.world_size, %master, pid = child.id(), "training process started");
            children.push((rank, child));
        }
        Ok(Self { children })
    }

    /// `Some(all_ok)` once every child exited (`all_ok`: each completed the job; one that
    /// stopped on a signal after a checkpoint did not); `None` while one runs. A child
    /// that failed while others run is reported by [`any_failed`](Self::any_failed).
    pub fn poll_exit(&mut self) -> Option<bool> {
        let mut all_ok = true;
        for (_, child) in &mut self.children {
            match child.try_wait() {
                Ok(Some(status)) => all_ok &= status.success(),
                Ok(None) => return None,
                Err(_) => all_ok = false,
            }
        }
        Some(all_ok)
    }

    /// Whether a child exited with a failure. One that stopped on a signal after a
    /// checkpoint ([`EXIT_INTERRUPTED`]) did not fail: the others are stopping at the same
    /// step, and rank 0 may still be writing that checkpoint.
    pub fn any_failed(&mut self) -> bool {
        self.children
            .iter_mut()
            .any(|(rank, child)| match child.try_wait() {
                Ok(Some(status)) if !status.success() && !interrupted(status) => {
                    tracing::warn!(rank = rank.get(), %status, "training process failed");
                    true
                }
                _ => false,
            })
    }

    /// Asks every child to checkpoint and stop (SIGTERM), then waits for them.
    pub async fn drain(&mut self) -> bool {
        for (_, child) in &self.children {
            if let Some(pid) = child.id() {
                // SAFETY: kill(2) on a process id this node started and has not reaped.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGTERM);
                }
            }
        }
        let mut all_ok = true;
        for (_, child) in &mut self.children {
            all_ok &= child
                .wait()
                .await
                .is_ok_and(|s| s.success() || interrupted(s));
        }
        all_ok
    }

    /// Kills every child (SIGKILL) and reaps it.
    pub async fn kill(&mut self) {
        for (rank, child) in &mut self.children {
            if child.try_wait().ok().flatten().is_none() {
                tracing::info!(rank = rank.get(), "stopping training process");
                let _ = child.kill().await;
            }
        }
    }
}

/// Whether a training process stopped on a signal after checkpointing.
fn interrupted(status: std::process::ExitStatus) -> bool {
    status.code() == Some(EXIT_INTERRUPTED)
}
