//! Round trips, incremental writes and damaged files.

use super::*;
use crate::state::testing::{policy, running};
use crate::state::{checkpoints, register};
use proto::domain::{CheckpointReport, NodeSpec, RoundId, Step};

fn busy_state() -> State {
    let (mut state, ids) = running(&["a", "b"]);
    let report = CheckpointReport {
        node: ids[0],
        round: RoundId::new(1),
        step: Step::new(30),
        url: "file:///ckpt/step-000000030".into(),
        position: DataPosition {
            epoch: 1,
            samples_consumed: 96,
        },
        config_digest: "cfg".into(),
        eval_suites: vec!["splice".into(), "retrieval".into()],
    };
    checkpoints::report(&mut state, report, 3_000, &policy()).unwrap();
    let agent = proto::domain::LeaseRequest {
        agent: "agent-1".into(),
        config_digest: "cfg".into(),
    };
    crate::state::eval::lease(&mut state, &agent, 3_000, &crate::state::testing::policy()).unwrap();
    assert_eq!(state.evals.jobs.len(), 2);
    // A third node registering and joining opens round 2 next to the closed round 1.
    let spec = NodeSpec {
        name: "c".into(),
        procs: 2,
        config_digest: "cfg".into(),
        ..Default::default()
    };
    let c = register(&mut state, spec, 3_000, &crate::state::testing::policy())
        .unwrap()
        .0;
    crate::state::testing::join_node(&mut state, c, 3_000);
    assert!(state.open.is_some() && state.current.is_some());
    state
}

#[test]
fn state_written_then_reopened_is_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coord.db");
    let state = busy_state();
    {
        let mut store = Store::open(&path).unwrap();
        assert!(
            store.load().unwrap().is_none(),
            "a new database holds no job"
        );
        store.save(&state).unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.load().unwrap().unwrap(), state);
}

#[test]
fn saving_again_replaces_the_previous_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coord.db");
    let mut store = Store::open(&path).unwrap();
    let mut state = busy_state();
    store.save(&state).unwrap();
    state.nodes.remove(&proto::domain::NodeId::new(1));
    state.checkpoints = CheckpointRegistry::default();
    store.save(&state).unwrap();
    assert_eq!(store.load().unwrap().unwrap(), state);
}

/// Applies `change` to the stored `state` with [`Store::save_change`]; checks that the
/// database then reads back as the changed state; returns the rows written.
fn change_and_reload(store: &mut Store, state: &mut State, change: impl FnOnce(&mut State)) -> u64 {
    let before = state.clone();
    change(state);
    let written = store.conn.total_changes();
    store.save_change(&before, state).unwrap();
    let written = store.conn.total_changes() - written;
    assert_eq!(&store.load().unwrap().unwrap(), state);
    written
}

#[test]
fn changes_written_one_by_one_read_back_as_the_changed_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("coord.db")).unwrap();
    let mut state = busy_state();
    store.save(&state).unwrap();
    let policy = crate::state::testing::policy();
    let a = proto::domain::NodeId::new(1);
    let report = |step, url: &str| CheckpointReport {
        node: a,
        round: RoundId::new(1),
        step,
        url: url.into(),
        position: DataPosition {
            epoch: 2,
            samples_consumed: step.get() * 4,
        },
        config_digest: "cfg".into(),
        eval_suites: vec!["splice".into()],
    };
    let beat = proto::domain::HeartbeatReport {
        node: a,
        ..Default::default()
    };
    let rows = change_and_reload(&mut store, &mut state, |s| {
        crate::state::heartbeat(s, beat, 4_000, &policy).unwrap();
    });
    assert_eq!(rows, 1, "a heartbeat rewrites its node's row only");
    let rows = change_and_reload(&mut store, &mut state, |s| {
        crate::state::testing::join_node(s, a, 4_050);
    });
    assert_eq!(
        rows, 3,
        "a join writes its own row and the job row (the last join's time; a delete and an \
         insert), not the others' joins"
    );
    let rows = change_and_reload(&mut store, &mut state, |s| {
        checkpoints::report(
            s,
            report(Step::new(60), "file:///ckpt/step-000000060"),
            4_100,
            &policy,
        )
        .unwrap();
    });
    assert_eq!(
        rows, 2,
        "a new checkpoint is one row, its evaluation job another"
    );
    let rows = change_and_reload(&mut store, &mut state, |s| {
        let report = proto::domain::EvalReport {
            id: proto::domain::EvalId::new(1),
            attempt: 1,
            outcome: Ok((
                vec![],
                "file:///ckpt/step-000000030/eval/splice.json".into(),
            )),
            images: vec![],
        };
        crate::state::eval::report(s, report, 4_150).unwrap();
    });
    assert_eq!(rows, 1, "a finished evaluation rewrites its own row only");
    // The same step again replaces the older entry, which moves to the end.
    change_and_reload(&mut store, &mut state, |s| {
        checkpoints::report(
            s,
            report(Step::new(30), "file:///ckpt/step-000000030"),
            4_200,
            &policy,
        )
        .unwrap();
    });
    change_and_reload(&mut store, &mut state, |s| {
        s.nodes.remove(&proto::domain::NodeId::new(2));
    });
    change_and_reload(&mut store, &mut state, |s| {
        // Everyone falls silent: nodes die, the round moves on.
        assert!(!crate::state::tick(s, 60_000, &policy).is_empty());
    });
    change_and_reload(&mut store, &mut state, |s| {
        s.phase = JobPhase::Finished;
        s.checkpoints = CheckpointRegistry::default();
    });
    drop(store);
    let reopened = Store::open(&dir.path().join("coord.db")).unwrap();
    assert_eq!(reopened.load().unwrap().unwrap(), state);
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coord.db");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = Store::open(&path).err().expect("garbage must not open");
    assert!(matches!(err, StoreError::Unreadable { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("coord.db") && message.contains("move it aside"),
        "{message}"
    );
}

#[test]
fn a_malformed_row_names_what_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coord.db");
    Store::open(&path).unwrap().save(&busy_state()).unwrap();
    let conn = Connection::open(&path).unwrap();
    conn.execute("UPDATE nodes SET body = '{\"id\":' WHERE id = 1", [])
        .unwrap();
    drop(conn);
    let err = Store::open(&path).unwrap().load().unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { what, .. } if what == "node"),
        "{err}"
    );
}

#[test]
fn another_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coord.db");
    drop(Store::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    let err = Store::open(&path).err().unwrap();
    assert!(
        matches!(
            err,
            StoreError::Schema {
                found: 99,
                expected: 1,
                ..
            }
        ),
        "{err}"
    );
}
