//! The coordinator state in an embedded SQLite database, so a restarted coordinator
//! continues the job: the job row (phase, round, open round), the joins of the open
//! round (a row each, so a join writes one row), the nodes, every closed round (the
//! highest is the current one), the checkpoint registry and the evaluation jobs.
//!
//! [`Store::save`] writes the whole state in one transaction, [`Store::save_change`]
//! only what a decision changed; [`Store::load`] reads it back. The calls
//! block: the server makes them on blocking threads. A file that is not a coordinator
//! database, or one with malformed rows, is a [`StoreError`] naming the file and what
//! to do.

use crate::state::{CheckpointRegistry, ClosedRound, EvalQueue, Join, Node, OpenRound, State};
use proto::domain::{
    CheckpointInfo, DataPosition, EvalJob, JobId, JobPhase, NodeId, RoundId, Step,
};
use rusqlite::{Connection, OptionalExtension};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod history;
mod write;

/// Version of the table layout below.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS job (
    id INTEGER PRIMARY KEY, phase TEXT NOT NULL, drain INTEGER NOT NULL,
    round INTEGER NOT NULL, config_digest TEXT, next_node_id INTEGER NOT NULL,
    open_round TEXT);
CREATE TABLE IF NOT EXISTS nodes (id INTEGER PRIMARY KEY, name TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS joins (node INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rounds (round INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    config_digest TEXT NOT NULL, step INTEGER NOT NULL, url TEXT NOT NULL,
    epoch INTEGER NOT NULL, samples_consumed INTEGER NOT NULL, round INTEGER NOT NULL,
    registered_unix_ms INTEGER NOT NULL, PRIMARY KEY (config_digest, step));
CREATE TABLE IF NOT EXISTS evals (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (step INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS eval_images (
    eval_id INTEGER NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL, jpeg BLOB NOT NULL,
    PRIMARY KEY (eval_id, idx));
";

/// A database problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file cannot be opened or created.
    #[error("cannot open the coordinator database {path}: {source}; check that its folder exists and is writable")]
    Open {
        /// Database path.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file is not a readable coordinator database.
    #[error("the coordinator database {path} is unreadable ({source}): it is damaged or not a coordinator database; move it aside to start a new job, or restore a copy")]
    Unreadable {
        /// Database path.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Written by another version of the coordinator.
    #[error("the coordinator database {path} has schema version {found}, this coordinator reads version {expected}")]
    Schema {
        /// Database path.
        path: PathBuf,
        /// Version in the file.
        found: i64,
        /// Version this build reads.
        expected: i64,
    },
    /// A row does not decode.
    #[error("the coordinator database {path} holds a malformed {what}: {detail}; move it aside to start a new job, or restore a copy")]
    Corrupt {
        /// Database path.
        path: PathBuf,
        /// Which row.
        what: String,
        /// Why.
        detail: String,
    },
    /// A write failed.
    #[error("cannot write the coordinator database {path}: {source}; nothing was changed: free space on its file system or make it writable, and the coordinator carries on")]
    Write {
        /// Database path.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The copy kept before starting a new job cannot be made.
    #[error("cannot keep a copy of the coordinator database {path} as {archive}: {detail}")]
    Archive {
        /// Database path.
        path: PathBuf,
        /// Where the copy was to go.
        archive: PathBuf,
        /// Why.
        detail: String,
    },
}

/// An open coordinator database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the database at `path` and checks its schema version.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        let conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        let unreadable = |source| StoreError::Unreadable {
            path: path.clone(),
            source,
        };
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(unreadable)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(unreadable)?;
        conn.execute_batch(SCHEMA).map_err(unreadable)?;
        let found: Option<i64> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(unreadable)?;
        match found {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION],
                )
                .map_err(|source| StoreError::Write {
                    path: path.clone(),
                    source,
                })?;
            }
            Some(v) if v != SCHEMA_VERSION => {
                return Err(StoreError::Schema {
                    path,
                    found: v,
                    expected: SCHEMA_VERSION,
                })
            }
            Some(_) => {}
        }
        Ok(Self { conn, path })
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the state back; `None` for a database that never held a job.
    pub fn load(&self) -> Result<Option<State>, StoreError> {
        let unreadable = |source| StoreError::Unreadable {
            path: self.path.clone(),
            source,
        };
        let job = self
            .conn
            .query_row(
                "SELECT id, phase, drain, round, config_digest, next_node_id, open_round FROM job",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, bool>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, Option<String>>(6)?,
                    ))
                },
            )
            .optional()
            .map_err(unreadable)?;
        let Some((job_id, phase, drain, round, config_digest, next_node_id, open)) = job else {
            return Ok(None);
        };
        let phase: JobPhase = self.decode("job phase", &phase)?;
        let mut open: Option<OpenRound> =
            open.map(|o| self.decode("open round", &o)).transpose()?;
        let mut stmt = self
            .conn
            .prepare("SELECT node, body FROM joins ORDER BY node")
            .map_err(unreadable)?;
        let joins = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(unreadable)?;
        if let Some(open) = &mut open {
            for (node, body) in joins {
                let join: Join = self.decode("join", &body)?;
                open.joins.insert(NodeId::new(node as u64), Arc::new(join));
            }
        }

        let mut nodes = BTreeMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT body FROM nodes ORDER BY id")
            .map_err(unreadable)?;
        let bodies = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(unreadable)?;
        for body in bodies {
            let node: Node = self.decode("node", &body)?;
            nodes.insert(node.id, Arc::new(node));
        }
        let current: Option<ClosedRound> = self
            .conn
            .query_row(
                "SELECT body FROM rounds ORDER BY round DESC LIMIT 1",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(unreadable)?
            .map(|b| self.decode("round", &b))
            .transpose()?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT config_digest, step, url, epoch, samples_consumed, round, registered_unix_ms
                 FROM checkpoints ORDER BY registered_unix_ms, rowid",
            )
            .map_err(unreadable)?;
        let checkpoints = stmt
            .query_map([], |r| {
                Ok(CheckpointInfo {
                    config_digest: r.get(0)?,
                    step: Step::new(r.get::<_, i64>(1)? as u64),
                    url: r.get(2)?,
                    position: DataPosition {
                        epoch: r.get::<_, i64>(3)? as u64,
                        samples_consumed: r.get::<_, i64>(4)? as u64,
                    },
                    round: RoundId::new(r.get::<_, i64>(5)? as u64),
                    registered_unix_ms: r.get::<_, i64>(6)? as u64,
                })
            })
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(unreadable)?;
        let mut stmt = self
            .conn
            .prepare("SELECT body FROM evals ORDER BY id")
            .map_err(unreadable)?;
        let jobs = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(unreadable)?
            .iter()
            .map(|body| self.decode::<EvalJob>("evaluation job", body))
            .collect::<Result<Vec<_>, _>>()?;
        let evals = EvalQueue {
            next_id: jobs.last().map_or(0, |j| j.id.get() + 1),
            jobs,
        };
        Ok(Some(State {
            job_id: JobId::new(job_id as u64),
            phase,
            drain,
            round: RoundId::new(round as u64),
            config_digest,
            next_node_id: next_node_id as u64,
            nodes,
            open,
            current: current.map(Arc::new),
            checkpoints: CheckpointRegistry::from_entries(checkpoints),
            evals,
        }))
    }

    fn decode<T: DeserializeOwned>(&self, what: &str, json: &str) -> Result<T, StoreError> {
        serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            what: what.to_string(),
            detail: e.to_string(),
        })
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("state types always serialise to JSON")
}

#[cfg(test)]
mod tests;
