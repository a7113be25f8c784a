//! The sample record: on request (`worker train --sample-record DIR`, or
//! `WORKER_SAMPLE_RECORD` through `worker join`), every training process writes which
//! samples each of its steps consumes, one JSON-lines file per process start, each line
//! written through as the process takes its share of a batch, before the step's
//! collectives: a step that completed on every rank (and so every checkpoint) is in
//! every rank's record. Reading the files of a job back ([`read_dir`]) and replaying them in
//! start order ([`Trajectory::replay`]) gives the samples behind every step of the run
//! that counts: a process that resumed from the checkpoint of step R replaces whatever
//! earlier processes did after step R. Fault tests compare that with an uninterrupted
//! run: every epoch consumes each of its samples once, whatever was killed.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The first line of a process's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptHeader {
    /// When rank 0 of its group started (Unix ms, the same on every rank of the group):
    /// names the group, and groups are replayed in this order.
    pub group_started_unix_ms: u64,
    /// Its rank and the world size of its group.
    pub rank: usize,
    /// Processes in its group.
    pub world: usize,
    /// The step it resumed from (0: a fresh start).
    pub start_step: u64,
}

/// One step of one process: the samples of its share of the global batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSamples {
    /// The optimiser step the batch went into.
    pub step: u64,
    /// The epoch it came from.
    pub epoch: u64,
    /// Positions of the samples in the epoch's order.
    pub positions: Vec<u64>,
    /// Their keys.
    pub keys: Vec<String>,
}

/// Writes one process's record.
#[derive(Debug)]
pub struct SampleRecorder {
    file: std::fs::File,
    path: PathBuf,
}

/// A record that cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[error("sample record {path}: {detail}")]
pub struct RecordError {
    /// The file or folder.
    pub path: PathBuf,
    /// What went wrong.
    pub detail: String,
}

impl SampleRecorder {
    /// Starts this process's file in `dir` (created if needed).
    pub fn create(dir: &Path, header: &AttemptHeader) -> Result<Self, RecordError> {
        let error = |path: &Path, e: std::io::Error| RecordError {
            path: path.to_path_buf(),
            detail: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| error(dir, e))?;
        let path = dir.join(format!(
            "group-{}-rank-{}-pid-{}.jsonl",
            header.group_started_unix_ms,
            header.rank,
            std::process::id(),
        ));
        let file = std::fs::File::create(&path).map_err(|e| error(&path, e))?;
        let mut recorder = Self { file, path };
        recorder.line(header)?;
        Ok(recorder)
    }

    /// Appends a step (written through: a process killed right after loses nothing).
    pub fn step(&mut self, samples: &StepSamples) -> Result<(), RecordError> {
        self.line(samples)
    }

    fn line<T: Serialize>(&mut self, value: &T) -> Result<(), RecordError> {
        let mut line = serde_json::to_vec(value).expect("records serialise");
        line.push(b'\n');
        self.file.write_all(&line).map_err(|e| RecordError {
            path: self.path.clone(),
            detail: e.to_string(),
        })
    }
}

/// One process's record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Its first line.
    pub header: AttemptHeader,
    /// Its steps in order; a last line cut short by a kill is left out.
    pub steps: Vec<StepSamples>,
}

/// Reads every record file in `dir`, in start order.
pub fn read_dir(dir: &Path) -> Result<Vec<Attempt>, RecordError> {
    let error = |path: &Path, detail: String| RecordError {
        path: path.to_path_buf(),
        detail,
    };
    let mut attempts = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| error(dir, e.to_string()))?;
    for entry in entries {
        let path = entry.map_err(|e| error(dir, e.to_string()))?.path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let file = std::fs::File::open(&path).map_err(|e| error(&path, e.to_string()))?;
        let lines: Vec<String> = std::io::BufReader::new(file)
            .lines()
            .collect::<Result<_, _>>()
            .map_err(|e| error(&path, e.to_string()))?;
        let Some(first) = lines.first() else {
            continue; // killed before its header was written
        };
        let header: AttemptHeader =
            serde_json::from_str(first).map_err(|e| error(&path, format!("header: {e}")))?;
        let mut steps = Vec::new();
        for (i, line) in lines.iter().enumerate().skip(1) {
            match serde_json::from_str(line) {
                Ok(step) => steps.push(step),
                // Only the last line may be cut short (by a kill mid-write).
                Err(_) if i + 1 == lines.len() => {}
                Err(e) => return Err(error(&path, format!("line {}: {e}", i + 1))),
            }
        }
        attempts.push(Attempt { header, steps });
    }
    attempts.sort_by_key(|a| (a.header.group_started_unix_ms, a.header.rank));
    Ok(attempts)
}

/// The samples behind every step of the run that counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Trajectory {
    /// Per step: its epoch and its global batch (position -> key), every rank's share.
    pub steps: BTreeMap<u64, (u64, BTreeMap<u64, String>)>,
    /// Problems seen while replaying: a step whose ranks disagree on the epoch, a
    /// position given twice in one step, or one that another attempt gave another key.
    pub conflicts: Vec<String>,
}

impl Trajectory {
    /// Replays `attempts` group by group in start order: each group drops the steps after
    /// the one it resumed from, then adds its ranks' steps.
    pub fn replay(attempts: &[Attempt]) -> Self {
        let mut t = Trajectory::default();
        // (epoch, position) -> key over every attempt, dropped or not: the data order is a
        // function of seed, epoch and position, so a re-run step must read the same keys.
        let mut seen: BTreeMap<(u64, u64), String> = BTreeMap::new();
        let mut groups: BTreeMap<u64, Vec<&Attempt>> = BTreeMap::new();
        for a in attempts {
            groups
                .entry(a.header.group_started_unix_ms)
                .or_default()
                .push(a);
        }
        for (group, ranks) in groups {
            let start = ranks[0].header.start_step;
            if ranks.iter().any(|a| a.header.start_step != start) {
                t.conflicts
                    .push(format!("group {group}: ranks resumed from different steps"));
            }
            t.steps.retain(|&step, _| step <= start);
            for attempt in ranks {
                t.add(attempt, &mut seen);
            }
        }
        t
    }

    /// Adds one rank's steps after the one its group resumed from.
    fn add(&mut self, attempt: &Attempt, seen: &mut BTreeMap<(u64, u64), String>) {
        let start = attempt.header.start_step;
        for s in attempt.steps.iter().filter(|s| s.step > start) {
            let (epoch, batch) = self
                .steps
                .entry(s.step)
                .or_insert_with(|| (s.epoch, BTreeMap::new()));
            if *epoch != s.epoch {
                self.conflicts.push(format!(
                    "step {}: epoch {} and {} (rank {})",
                    s.step, epoch, s.epoch, attempt.header.rank
                ));
            }
            for (&position, key) in s.positions.iter().zip(&s.keys) {
                if batch.insert(position, key.clone()).is_some() {
                    self.conflicts.push(format!(
                        "step {}: position {position} consumed twice",
                        s.step
                    ));
                }
                let known = seen
                    .entry((s.epoch, position))
                    .or_insert_with(|| key.clone());
                if known != key {
                    self.conflicts.push(format!(
                        "epoch {} position {position}: {known} once, {key} later",
                        s.epoch
                    ));
                }
            }
        }
    }

    /// Per epoch, the positions its steps consumed, in step order (a position listed
    /// twice was consumed twice).
    pub fn positions_by_epoch(&self) -> BTreeMap<u64, Vec<u64>> {
        let mut by_epoch: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for (epoch, batch) in self.steps.values() {
            by_epoch.entry(*epoch).or_default().extend(batch.keys());
        }
        by_epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(
        started: u64,
        rank: usize,
        start_step: u64,
        steps: &[(u64, u64, &[u64])],
    ) -> Attempt {
        Attempt {
            header: AttemptHeader {
                group_started_unix_ms: started,
                rank,
                world: 2,
                start_step,
            },
            steps: steps
                .iter()
                .map(|&(step, epoch, positions)| StepSamples {
                    step,
                    epoch,
                    positions: positions.to_vec(),
                    keys: positions.iter().map(|p| format!("e{epoch}-{p}")).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_resumed_attempt_replaces_what_was_done_after_its_checkpoint() {
        // Two ranks take steps 1-3 (2 samples each of a 4-sample batch); rank 1 dies
        // during step 3; both resume from the checkpoint of step 2 and finish.
        let first = [
            attempt(
                10,
                0,
                0,
                &[(1, 0, &[0, 1]), (2, 0, &[4, 5]), (3, 1, &[0, 1])],
            ),
            attempt(10, 1, 0, &[(1, 0, &[2, 3]), (2, 0, &[6, 7])]),
        ];
        let second = [
            attempt(20, 0, 2, &[(3, 1, &[0, 1]), (4, 1, &[4, 5])]),
            attempt(20, 1, 2, &[(3, 1, &[2, 3]), (4, 1, &[6, 7])]),
        ];
        let t = Trajectory::replay(&[first.clone(), second.clone()].concat());
        assert!(t.conflicts.is_empty(), "{:?}", t.conflicts);
        let by_epoch = t.positions_by_epoch();
        assert_eq!(by_epoch[&0], (0..8).collect::<Vec<_>>());
        assert_eq!(by_epoch[&1], (0..8).collect::<Vec<_>>());
        // Replayed as if they had resumed from step 3, rank 1's share of step 3 (which
        // it never recorded) is missing: a skip the epoch's positions show.
        let mut stale = second.clone();
        stale[0].header.start_step = 3;
        stale[1].header.start_step = 3;
        let t = Trajectory::replay(&[first, stale].concat());
        assert_eq!(t.positions_by_epoch()[&1], [0, 1, 4, 5, 6, 7]);
    }

    #[test]
    fn a_rerun_step_that_reads_other_keys_is_a_conflict() {
        let first = [attempt(10, 0, 0, &[(1, 0, &[0, 1])])];
        let mut again = attempt(20, 0, 0, &[(1, 0, &[0, 1])]);
        again.steps[0].keys[1] = "another".into();
        let t = Trajectory::replay(&[first[0].clone(), again]);
        assert_eq!(t.conflicts.len(), 1, "{:?}", t.conflicts);
    }

    #[test]
    fn files_are_read_in_start_order_and_a_cut_last_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        for started in [30, 10] {
            let header = AttemptHeader {
                group_started_unix_ms: started,
                rank: 0,
                world: 1,
                start_step: 0,
            };
            let mut r = SampleRecorder::create(dir.path(), &header).unwrap();
            r.step(&StepSamples {
                step: 1,
                epoch: 0,
                positions: vec![0],
                keys: vec!["a".into()],
            })
            .unwrap();
            r.file.write_all(b"{\"step\": 2, \"ep").unwrap();
        }
        let attempts = read_dir(dir.path()).unwrap();
        assert_eq!(
            attempts
                .iter()
                .map(|a| a.header.group_started_unix_ms)
                .collect::<Vec<_>>(),
            [10, 30]
        );
        assert!(attempts.iter().all(|a| a.steps.len() == 1));
        std::fs::write(dir.path().join("bad.jsonl"), "{}\n").unwrap();
        let err = read_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("bad.jsonl"), "{err}");
    }
}
