//! What the dashboard shows besides the job's state, in the database but never part of a
//! decision: its curves ([`crate::history`]; one row per kept point, the stride in
//! `meta`) and the pictures evaluations reported (splice heat maps, JPEG).

use super::{to_json, Store, StoreError};
use crate::history::{History, HistoryPoint};
use proto::domain::{EvalId, EvalImage};
use rusqlite::OptionalExtension;
use std::collections::BTreeMap;

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

impl Store {
    /// Stores the pictures of evaluation `id` (replacing any it had).
    pub fn put_eval_images(&mut self, id: EvalId, images: &[EvalImage]) -> Result<(), StoreError> {
        self.transaction(|tx| {
            tx.execute(
                "DELETE FROM eval_images WHERE eval_id = ?1",
                [id.get() as i64],
            )?;
            for (i, img) in images.iter().enumerate() {
                tx.execute(
                    "INSERT INTO eval_images (eval_id, idx, name, jpeg) VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![id.get() as i64, i as i64, img.name, img.jpeg],
                )?;
            }
            Ok(())
        })
    }

    /// The names of every evaluation's pictures, in order.
    pub fn eval_image_names(&self) -> Result<BTreeMap<EvalId, Vec<String>>, StoreError> {
        let unreadable = |source| StoreError::Unreadable {
            path: self.path.clone(),
            source,
        };
        let mut statement = self
            .conn
            .prepare("SELECT eval_id, name FROM eval_images ORDER BY eval_id, idx")
            .map_err(unreadable)?;
        let rows = statement
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(unreadable)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(unreadable)?;
        let mut names: BTreeMap<EvalId, Vec<String>> = BTreeMap::new();
        for (id, name) in rows {
            names.entry(EvalId::new(id as u64)).or_default().push(name);
        }
        Ok(names)
    }

    /// Picture `index` of evaluation `id`, if stored.
    pub fn eval_image(&self, id: EvalId, index: usize) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row(
                "SELECT jpeg FROM eval_images WHERE eval_id = ?1 AND idx = ?2",
                [id.get() as i64, index as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|source| StoreError::Unreadable {
                path: self.path.clone(),
                source,
            })
    }
}
