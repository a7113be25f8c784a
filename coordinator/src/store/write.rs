//! Writing the state, one transaction each: all of it ([`Store::save`], at start), only
//! what a decision changed ([`Store::save_change`], after every change: a join writes
//! its own row, a node's change its row; rows shared by both states are skipped by
//! pointer), and starting a new job in the same file
//! after keeping a copy of the old one ([`Store::start_over`]).

use super::{to_json, Store, StoreError};
use crate::state::{Node, OpenRound, State};
use proto::domain::{CheckpointInfo, EvalJob, RoundId};
use rusqlite::{params, OptionalExtension, Transaction};
use std::collections::BTreeMap;
use std::path::Path;

impl Store {
    /// Writes the whole state in one transaction.
    pub fn save(&mut self, state: &State) -> Result<(), StoreError> {
        self.transaction(|tx| {
            write_job(tx, state)?;
            tx.execute("DELETE FROM nodes", [])?;
            for node in state.nodes.values() {
                write_node(tx, node)?;
            }
            write_round(tx, state)?;
            write_joins(tx, None, state)?;
            tx.execute("DELETE FROM checkpoints", [])?;
            for c in state.checkpoints.entries() {
                write_checkpoint(tx, c)?;
            }
            tx.execute("DELETE FROM evals", [])?;
            for job in &state.evals.jobs {
                write_eval(tx, job)?;
            }
            Ok(())
        })
    }

    /// Writes the difference between `before` (what the database holds) and `after`,
    /// in one transaction: the job row if it changed, changed and removed nodes, the
    /// current round if it changed, the checkpoints from the first one that differs, and
    /// the evaluation jobs that changed (jobs are only ever added or updated).
    pub fn save_change(&mut self, before: &State, after: &State) -> Result<(), StoreError> {
        self.transaction(|tx| {
            if job_row(before) != job_row(after) {
                write_job(tx, after)?;
            }
            for (id, node) in &after.nodes {
                if before.nodes.get(id) != Some(node) {
                    write_node(tx, node)?;
                }
            }
            for id in before.nodes.keys() {
                if !after.nodes.contains_key(id) {
                    tx.execute("DELETE FROM nodes WHERE id = ?1", [id.get() as i64])?;
                }
            }
            if before.current != after.current {
                write_round(tx, after)?;
            }
            write_joins(tx, Some(before), after)?;
            // Registration order is row order: keep the common prefix, rewrite the rest.
            let (old, new) = (before.checkpoints.entries(), after.checkpoints.entries());
            let same = old.iter().zip(new).take_while(|(a, b)| a == b).count();
            for c in &old[same..] {
                tx.execute(
                    "DELETE FROM checkpoints WHERE config_digest = ?1 AND step = ?2",
                    params![c.config_digest, c.step.get() as i64],
                )?;
            }
            for c in &new[same..] {
                write_checkpoint(tx, c)?;
            }
            let old = &before.evals.jobs;
            for (i, job) in after.evals.jobs.iter().enumerate() {
                if old.get(i) != Some(job) {
                    write_eval(tx, job)?;
                }
            }
            Ok(())
        })
    }

    /// Writes these nodes' rows (their soft state: the server keeps heartbeat times and
    /// progress in memory between writes).
    pub fn save_nodes(&mut self, nodes: &[std::sync::Arc<Node>]) -> Result<(), StoreError> {
        self.transaction(|tx| nodes.iter().try_for_each(|n| write_node(tx, n)))
    }

    /// The id a new job in this database gets: one more than the last job that
    /// [`Store::start_over`] set aside, 1 at first.
    pub fn next_job_id(&self) -> Result<u64, StoreError> {
        let value: Option<i64> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'next_job_id'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|source| StoreError::Unreadable {
                path: self.path.clone(),
                source,
            })?;
        Ok(value.map_or(1, |v| v.max(1) as u64))
    }

    /// Copies the whole database to `archive` (which must not exist), then empties the
    /// job, so that the next start begins a new job (with the next job id).
    pub fn start_over(&mut self, archive: &Path) -> Result<(), StoreError> {
        let archive_error = |detail: String| StoreError::Archive {
            path: self.path.clone(),
            archive: archive.to_path_buf(),
            detail,
        };
        let target = archive
            .to_str()
            .ok_or_else(|| archive_error("the path is not valid UTF-8".into()))?;
        if archive.exists() {
            return Err(archive_error("it already exists".into()));
        }
        self.conn
            .execute("VACUUM INTO ?1", [target])
            .map_err(|e| archive_error(e.to_string()))?;
        let next = self.next_job_id()?;
        let last: Option<i64> = self
            .conn
            .query_row("SELECT id FROM job", [], |r| r.get(0))
            .optional()
            .map_err(|source| StoreError::Unreadable {
                path: self.path.clone(),
                source,
            })?;
        let next = next.max(last.map_or(0, |l| l as u64 + 1));
        self.transaction(|tx| {
            for table in [
                "job",
                "joins",
                "nodes",
                "rounds",
                "checkpoints",
                "evals",
                "history",
                "eval_images",
            ] {
                tx.execute(&format!("DELETE FROM {table}"), [])?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_job_id', ?1)",
                [next as i64],
            )?;
            tx.execute("DELETE FROM meta WHERE key = 'history_stride'", [])?;
            Ok(())
        })
    }

    pub(super) fn transaction(
        &mut self,
        body: impl FnOnce(&Transaction) -> rusqlite::Result<()>,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let write = |source| StoreError::Write { path, source };
        let tx = self.conn.transaction().map_err(write.clone())?;
        body(&tx).map_err(write.clone())?;
        tx.commit().map_err(write)
    }
}

/// Writes the joins of `after`'s open round: those that differ from `before`'s when
/// both are the same open round, else all of them after deleting the others (`before`
/// is `None` for a whole save).
fn write_joins(tx: &Transaction, before: Option<&State>, after: &State) -> rusqlite::Result<()> {
    let empty = BTreeMap::new();
    let open = after.open.as_ref();
    let joins = open.map_or(&empty, |o| &o.joins);
    let old = match before.map(|b| b.open.as_ref()) {
        Some(Some(old)) if open.is_some_and(|o| o.round == old.round) => &old.joins,
        // No open round before: its rows went when it closed.
        Some(None) => &empty,
        _ => {
            tx.execute("DELETE FROM joins", [])?;
            &empty
        }
    };
    for id in old.keys().filter(|id| !joins.contains_key(id)) {
        tx.execute("DELETE FROM joins WHERE node = ?1", [id.get() as i64])?;
    }
    for (id, join) in joins {
        if old.get(id) != Some(join) {
            tx.execute(
                "INSERT OR REPLACE INTO joins (node, body) VALUES (?1, ?2)",
                params![id.get() as i64, to_json(join)],
            )?;
        }
    }
    Ok(())
}

/// The open round as the job row holds it: without its joins, which have rows of their
/// own.
fn open_round_row(open: &OpenRound) -> String {
    to_json(&OpenRound {
        round: open.round,
        opened_ms: open.opened_ms,
        last_join_ms: open.last_join_ms,
        joins: BTreeMap::new(),
    })
}

/// What the job row holds.
#[allow(clippy::type_complexity)]
fn job_row(
    s: &State,
) -> (
    u64,
    proto::domain::JobPhase,
    bool,
    u64,
    &Option<String>,
    u64,
    Option<(RoundId, u64, u64)>,
) {
    (
        s.job_id.get(),
        s.phase,
        s.drain,
        s.round.get(),
        &s.config_digest,
        s.next_node_id,
        s.open
            .as_ref()
            .map(|o| (o.round, o.opened_ms, o.last_join_ms)),
    )
}

fn write_job(tx: &Transaction, state: &State) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM job", [])?;
    tx.execute(
        "INSERT INTO job (id, phase, drain, round, config_digest, next_node_id, open_round)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            state.job_id.get() as i64,
            to_json(&state.phase),
            state.drain,
            state.round.get() as i64,
            state.config_digest,
            state.next_node_id as i64,
            state.open.as_ref().map(open_round_row),
        ],
    )?;
    Ok(())
}

fn write_node(tx: &Transaction, node: &Node) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO nodes (id, name, body) VALUES (?1, ?2, ?3)",
        params![node.id.get() as i64, node.spec.name, to_json(node)],
    )?;
    Ok(())
}

fn write_round(tx: &Transaction, state: &State) -> rusqlite::Result<()> {
    if let Some(current) = &state.current {
        tx.execute(
            "INSERT OR REPLACE INTO rounds (round, body) VALUES (?1, ?2)",
            params![current.round.get() as i64, to_json(current)],
        )?;
    }
    Ok(())
}

fn write_checkpoint(tx: &Transaction, c: &CheckpointInfo) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO checkpoints (config_digest, step, url, epoch, samples_consumed, round, registered_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            c.config_digest,
            c.step.get() as i64,
            c.url,
            c.position.epoch as i64,
            c.position.samples_consumed as i64,
            c.round.get() as i64,
            c.registered_unix_ms as i64,
        ],
    )?;
    Ok(())
}

fn write_eval(tx: &Transaction, job: &EvalJob) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO evals (id, body) VALUES (?1, ?2)",
        params![job.id.get() as i64, to_json(job)],
    )?;
    Ok(())
}
