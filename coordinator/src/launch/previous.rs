//! A launch folder whose database already holds a job. An unfinished job continues; a
//! job that is over (finished or stopped) is not run again: [`PreviousJob::over_message`]
//! says what was found and what to do, and `--new-job` keeps a copy of the database and
//! empties it for a new job ([`start_new_job`]).

use crate::state::State;
use crate::store::{Store, StoreError};
use proto::domain::{CheckpointInfo, JobPhase};
use std::path::{Path, PathBuf};

/// What the database of a launch folder says about the job it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviousJob {
    /// The database.
    pub db: PathBuf,
    /// The job's id.
    pub job_id: u64,
    /// Its phase.
    pub phase: JobPhase,
    /// Its latest round.
    pub round: u64,
    /// The highest training step a process reported, if any.
    pub step: Option<u64>,
    /// Its newest checkpoint (of the job's config), if any.
    pub newest: Option<CheckpointInfo>,
}

/// The job in the database at `db`; `None` when there is no database or it holds no
/// job. An unreadable file is the [`StoreError`] the server would report.
pub fn previous_job(db: &Path) -> Result<Option<PreviousJob>, StoreError> {
    if !db.exists() {
        return Ok(None);
    }
    let store = Store::open(db)?;
    Ok(store.load()?.map(|state| PreviousJob::of(db, &state)))
}

impl PreviousJob {
    /// The summary of `state`, stored at `db`.
    pub fn of(db: &Path, state: &State) -> Self {
        let step = state
            .nodes
            .values()
            .flat_map(|n| &n.progress)
            .map(|p| p.step.get())
            .max();
        let newest = match &state.config_digest {
            Some(digest) => state.checkpoints.newest(digest).cloned(),
            None => state.checkpoints.newest_first().into_iter().next(),
        };
        Self {
            db: db.to_path_buf(),
            job_id: state.job_id.get(),
            phase: state.phase,
            round: state.round.get(),
            step: step.or(newest.as_ref().map(|c| c.step.get())),
            newest,
        }
    }

    /// Whether the job is over (finished or stopped): nothing is left to run.
    pub fn is_over(&self) -> bool {
        self.phase.is_over()
    }

    /// `job 3 finished at step 40 (round 2); newest checkpoint step 40 at URL`.
    pub fn summary(&self) -> String {
        let how = match self.phase {
            JobPhase::Finished => "finished".to_string(),
            JobPhase::Stopped => "was stopped".to_string(),
            other => format!("is {other}"),
        };
        let at = self
            .step
            .map_or(" before any step".to_string(), |s| format!(" at step {s}"));
        let checkpoint = match &self.newest {
            Some(c) => format!("newest checkpoint step {} at {}", c.step, c.url),
            None => "no checkpoint".to_string(),
        };
        format!(
            "job {} {how}{at} (round {}); {checkpoint}",
            self.job_id, self.round
        )
    }

    /// What `launch` says when it finds a job that is over: what, and the two ways on.
    pub fn over_message(&self, work_dir: &Path) -> String {
        format!(
            "the work folder {} already holds a job that is over: {}. Nothing is left to run. \
             To train again, pass --work-dir with a new folder, or --new-job to start a new job \
             in this one (this job's database is then kept as {}). A new job's workers refuse to \
             write over checkpoints already at the training config's checkpoint.url, so point \
             it at a new location.",
            work_dir.display(),
            self.summary(),
            archive_path(&self.db, self.job_id).display()
        )
    }
}

/// Where the database of job `job_id` is kept when a new job starts in its folder:
/// `coordinator-job-<id>.db` beside it (`-2`, `-3`, ... if that exists).
pub fn archive_path(db: &Path, job_id: u64) -> PathBuf {
    let stem = db
        .file_stem()
        .map_or("coordinator".into(), |s| s.to_string_lossy().into_owned());
    let folder = db.parent().unwrap_or(Path::new("."));
    let first = folder.join(format!("{stem}-job-{job_id}.db"));
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|n| folder.join(format!("{stem}-job-{job_id}-{n}.db")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Keeps a copy of the database at `db` (see [`archive_path`]) and empties it, so that
/// the coordinator starts a new job there. Returns where the copy is.
pub fn start_new_job(db: &Path, job_id: u64) -> Result<PathBuf, StoreError> {
    let archive = archive_path(db, job_id);
    Store::open(db)?.start_over(&archive)?;
    Ok(archive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testing::running;
    use proto::domain::{DataPosition, Rank, RankProgress, RoundId, Step};

    fn finished_job() -> State {
        let (mut state, ids) = running(&["a", "b"]);
        for (i, id) in ids.iter().enumerate() {
            state.node_mut(*id).unwrap().progress = vec![RankProgress {
                global_rank: Rank::new(i as u32),
                step: Step::new(40 - i as u64),
                ..Default::default()
            }];
        }
        state.checkpoints.insert(CheckpointInfo {
            step: Step::new(40),
            url: "file:///runs/x/step-40".into(),
            position: DataPosition {
                epoch: 1,
                samples_consumed: 320,
            },
            config_digest: "cfg".into(),
            round: RoundId::new(1),
            registered_unix_ms: 5_000,
        });
        state.phase = JobPhase::Finished;
        state
    }

    #[test]
    fn a_finished_job_is_described_with_its_step_checkpoint_and_the_ways_on() {
        let job = PreviousJob::of(Path::new("/w/coordinator.db"), &finished_job());
        assert!(job.is_over());
        let text = job.over_message(Path::new("/w"));
        for part in [
            "/w already holds a job that is over",
            "job 1 finished at step 40 (round 1)",
            "newest checkpoint step 40 at file:///runs/x/step-40",
            "--work-dir",
            "--new-job",
            "/w/coordinator-job-1.db",
        ] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
    }

    #[test]
    fn a_stopped_job_without_progress_names_its_checkpoint_step() {
        let mut state = finished_job();
        state
            .nodes
            .values_mut()
            .for_each(|n| std::sync::Arc::make_mut(n).progress.clear());
        state.phase = JobPhase::Stopped;
        let job = PreviousJob::of(Path::new("c.db"), &state);
        assert_eq!(
            job.summary(),
            "job 1 was stopped at step 40 (round 1); newest checkpoint step 40 at file:///runs/x/step-40"
        );
    }

    #[test]
    fn starting_a_new_job_keeps_the_old_database_and_the_next_start_is_job_2() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("coordinator.db");
        Store::open(&db).unwrap().save(&finished_job()).unwrap();
        let job = previous_job(&db).unwrap().unwrap();
        let archive = start_new_job(&db, job.job_id).unwrap();
        assert_eq!(archive, dir.path().join("coordinator-job-1.db"));
        let kept = Store::open(&archive).unwrap().load().unwrap().unwrap();
        assert_eq!(kept, finished_job());
        let store = Store::open(&db).unwrap();
        assert!(store.load().unwrap().is_none(), "the job was emptied");
        assert_eq!(store.next_job_id().unwrap(), 2);
        assert!(previous_job(&db).unwrap().is_none());
        assert_eq!(
            archive_path(&db, 1),
            dir.path().join("coordinator-job-1-2.db"),
            "a second copy of job 1 does not overwrite the first"
        );
    }
}
