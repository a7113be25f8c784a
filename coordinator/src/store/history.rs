//! The dashboard's curves ([`crate::history`]) in the database: one row per kept point
//! and the stride in `meta`, beside the job's state but never part of a decision.

use super::{to_json, Store, StoreError};
use crate::history::{History, HistoryPoint};
use rusqlite::OptionalExtension;

impl Store {
    /// The kept points (none for a database that has none).
    pub fn load_history(&self) -> Result<History, StoreError> {
        let unreadable = |source| StoreError::Unreadable {
            path: self.path.clone(),
            source,
        };
        let stride: Option<i64> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'history_stride'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(unreadable)?;
        let mut statement = self
            .conn
            .prepare("SELECT body FROM history ORDER BY step")
            .map_err(unreadable)?;
        let bodies = statement
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(unreadable)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(unreadable)?;
        let points = bodies
            .iter()
            .filter_map(|b| serde_json::from_str::<HistoryPoint>(b).ok())
            .collect();
        Ok(History {
            stride: stride.map_or(1, |s| s.max(1) as u64),
            points,
        })
    }

    /// Adds one point.
    pub fn add_history_point(&mut self, point: &HistoryPoint) -> Result<(), StoreError> {
        self.transaction(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO history (step, body) VALUES (?1, ?2)",
                rusqlite::params![point.step as i64, to_json(point)],
            )?;
            Ok(())
        })
    }

    /// Replaces every point and the stride (after the history was thinned).
    pub fn save_history(&mut self, history: &History) -> Result<(), StoreError> {
        self.transaction(|tx| {
            tx.execute("DELETE FROM history", [])?;
            for p in &history.points {
                tx.execute(
                    "INSERT INTO history (step, body) VALUES (?1, ?2)",
                    rusqlite::params![p.step as i64, to_json(p)],
                )?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('history_stride', ?1)",
                [history.stride as i64],
            )?;
            Ok(())
        })
    }
}
