//! Registration, heartbeats and failure detection.
//!
//! A node is known by name: registering a known name again returns the same id and
//! means the node's processes restarted, so a round it took part in cannot go on. A
//! node that stays silent longer than the heartbeat timeout is dead
//! ([`dead_members`]); losing a node of the running round opens the next round.

use super::job::{directive_for, lose_node};
use super::{Action, DecisionError, Node, Policy, State};
use proto::domain::{
    Directive, HeartbeatReport, JobPhase, NodeId, NodeSpec, RankProgress, RoundId,
};
use std::sync::Arc;

/// The most training processes one node may register: above the GPUs or cores of any
/// machine, far below what would make a world size absurd.
pub const MAX_PROCS_PER_NODE: u32 = 1024;
/// The longest node name, host and config digest taken (a DNS name is at most 253).
pub const MAX_NAME_CHARS: usize = 253;

/// Registers `spec` (or refreshes the node of that name); returns its id.
pub fn register(
    state: &mut State,
    spec: NodeSpec,
    now_ms: u64,
    _policy: &Policy,
) -> Result<(NodeId, Vec<Action>), DecisionError> {
    if spec.name.trim().is_empty() {
        return Err(DecisionError::Invalid("node_name is empty".into()));
    }
    for (field, value) in [
        ("node_name", &spec.name),
        ("host", &spec.host),
        ("config_digest", &spec.config_digest),
    ] {
        if value.chars().count() > MAX_NAME_CHARS || value.chars().any(char::is_control) {
            return Err(DecisionError::Invalid(format!(
                "{field} must be at most {MAX_NAME_CHARS} printable characters"
            )));
        }
    }
    if spec.procs == 0 || spec.procs > MAX_PROCS_PER_NODE {
        return Err(DecisionError::Invalid(format!(
            "node {} registers {} processes: procs must be 1 to {MAX_PROCS_PER_NODE}",
            spec.name, spec.procs
        )));
    }
    if state.phase.is_over() {
        return Err(DecisionError::JobOver(state.phase));
    }
    if let Some(expected) = &state.config_digest {
        if *expected != spec.config_digest {
            return Err(DecisionError::ConfigMismatch {
                node: spec.name,
                expected: expected.clone(),
                got: spec.config_digest,
            });
        }
    }
    state.config_digest = Some(spec.config_digest.clone());
    let known = state
        .nodes
        .values()
        .find(|n| n.spec.name == spec.name)
        .map(|n| n.id);
    let mut actions = Vec::new();
    let id = match known {
        Some(id) => {
            let reason = format!(
                "node {} registered again: its processes restarted",
                spec.name
            );
            actions.extend(lose_node(state, id, now_ms, &reason));
            id
        }
        None => {
            let id = NodeId::new(state.next_node_id);
            state.next_node_id += 1;
            id
        }
    };
    actions.insert(
        0,
        Action::NodeRegistered {
            node: id,
            name: spec.name.clone(),
            known: known.is_some(),
        },
    );
    state.nodes.insert(
        id,
        Arc::new(Node {
            id,
            spec,
            alive: true,
            left: false,
            last_heartbeat_ms: now_ms,
            progress: Vec::new(),
            progress_round: RoundId::new(0),
            finished: false,
        }),
    );
    Ok((id, actions))
}

/// Whether [`heartbeat`] with `report` changes nothing but the node's soft state (its
/// last heartbeat time and progress, see [`Node`]): the node is known, alive and stays,
/// and the report finishes nothing that was not finished. Nearly every heartbeat is
/// one; the server applies them in place, without a copy of the state or a write.
pub fn heartbeat_is_soft(state: &State, report: &HeartbeatReport) -> bool {
    state.nodes.get(&report.node).is_some_and(|n| {
        let finishes = report.finished && !n.finished && state.in_running_round(n.id);
        n.alive && !n.left && !report.leaving && !finishes
    })
}

/// Records a heartbeat and decides what the node does next.
pub fn heartbeat(
    state: &mut State,
    report: HeartbeatReport,
    now_ms: u64,
    _policy: &Policy,
) -> Result<(Directive, Vec<Action>), DecisionError> {
    let id = report.node;
    let node = state.node(id)?;
    if node.left {
        return Ok((Directive::Stop, Vec::new()));
    }
    check_progress(state, node, &report.progress)?;
    let current = check_progress_round(state, node, &report)?;
    let mut actions = Vec::new();
    let node = state.node_mut(id).expect("checked above");
    node.last_heartbeat_ms = now_ms;
    if !report.progress.is_empty() && current {
        node.progress = report.progress;
        node.progress_round = report.round;
    }
    if !node.alive {
        node.alive = true;
        actions.push(Action::NodeRevived { node: id });
    }
    if report.leaving {
        node.alive = false;
        node.left = true;
        actions.push(Action::NodeLeft { node: id });
        if !state.phase.is_over() {
            let reason = format!("{id} left the job");
            actions.extend(lose_node(state, id, now_ms, &reason));
        }
        return Ok((Directive::Stop, actions));
    }
    if report.finished && state.in_running_round(id) {
        state.node_mut(id).expect("checked above").finished = true;
        let current = state.current.as_ref().expect("running round");
        let all = current
            .members
            .iter()
            .all(|m| state.nodes.get(&m.node).is_some_and(|n| n.finished));
        if all {
            state.phase = JobPhase::Finished;
            actions.push(Action::JobFinished);
        }
    }
    Ok((directive_for(state, id), actions))
}

/// Skip reasons a rank may report (the data pipeline has four).
const MAX_SKIP_REASONS: usize = 16;

/// A node reports one entry per training process it runs: at most its process count, one
/// per global rank, ranks below the job's largest possible world (every registered
/// process), and numbers that a training process can produce (finite, not negative).
fn check_progress(
    state: &State,
    node: &Node,
    progress: &[RankProgress],
) -> Result<(), DecisionError> {
    let refuse = |why: String| {
        Err(DecisionError::Invalid(format!(
            "{}: progress {why}",
            node.id
        )))
    };
    let procs = node.spec.procs.max(1) as usize;
    if progress.len() > procs {
        return refuse(format!(
            "for {} ranks, but the node runs {procs} process(es)",
            progress.len()
        ));
    }
    let most_ranks: u64 = state
        .nodes
        .values()
        .map(|n| u64::from(n.spec.procs.max(1)))
        .sum();
    let mut seen = std::collections::BTreeSet::new();
    for p in progress {
        if u64::from(p.global_rank.get()) >= most_ranks {
            return refuse(format!(
                "for rank {}, but the job's processes number {most_ranks}",
                p.global_rank
            ));
        }
        if !seen.insert(p.global_rank) {
            return refuse(format!("repeats rank {}", p.global_rank));
        }
        let figures = [
            ("loss", p.loss),
            ("samples_per_sec", p.samples_per_sec),
            ("lr", p.lr),
            ("logit_scale", p.logit_scale),
            ("grad_norm", p.grad_norm),
            ("model_tflops", p.model_tflops),
            ("mfu", p.mfu),
            ("data.prefetch_fill", p.data.prefetch_fill),
        ];
        for (what, value) in figures.into_iter().chain(p.timing.named()) {
            if !value.is_finite() || value < 0.0 {
                return refuse(format!("of rank {} has {what} {value}", p.global_rank));
            }
        }
        let reasons = &p.data.skipped;
        if reasons.len() > MAX_SKIP_REASONS
            || reasons
                .keys()
                .any(|k| k.is_empty() || k.len() > 64 || !k.chars().all(|c| c.is_ascii_graphic()))
        {
            return refuse(format!(
                "of rank {} has {} skip reasons (at most {MAX_SKIP_REASONS}, short printable names)",
                p.global_rank,
                reasons.len()
            ));
        }
    }
    Ok(())
}

/// Whether the heartbeat's progress is of the latest round (to be stored); progress of an
/// earlier round is not (a heartbeat sent while the node learnt of the next one).
/// Progress of the latest round must be of a closed round and of the node's own ranks in
/// it, and a rank's step never goes back within it; a round not yet opened is refused.
/// A node that does not say its round (0) is taken at its word.
fn check_progress_round(
    state: &State,
    node: &Node,
    report: &HeartbeatReport,
) -> Result<bool, DecisionError> {
    let round = report.round;
    if round.get() == 0 {
        return Ok(true);
    }
    if round > state.round {
        return Err(DecisionError::Invalid(format!(
            "{}: progress of round {round}, but the latest round is {}",
            node.id, state.round
        )));
    }
    if round < state.round || round < node.progress_round {
        return Ok(false);
    }
    if report.progress.is_empty() {
        return Ok(true);
    }
    // Progress of the latest round: the round has closed, and each rank is one of the
    // node's own in it.
    let Some(current) = state.current.as_ref().filter(|c| c.round == round) else {
        return Err(DecisionError::Invalid(format!(
            "{}: progress of round {round}, which has not closed",
            node.id
        )));
    };
    let ranks = current.member(node.id).map_or(&[][..], |m| &m.ranks[..]);
    for p in &report.progress {
        if !ranks.contains(&p.global_rank) {
            return Err(DecisionError::Invalid(format!(
                "{}: progress of rank {}, which is not one of its ranks in round {round}",
                node.id, p.global_rank
            )));
        }
        if round != node.progress_round {
            continue;
        }
        let before = node
            .progress
            .iter()
            .find(|b| b.global_rank == p.global_rank);
        if let Some(before) = before.filter(|b| p.step < b.step) {
            return Err(DecisionError::Invalid(format!(
                "{}: rank {} went back from step {} to {} within round {round}",
                node.id, p.global_rank, before.step, p.step
            )));
        }
    }
    Ok(true)
}

/// Nodes considered alive whose last heartbeat is older than `timeout_ms` at `now_ms`,
/// by id.
pub fn dead_members(state: &State, now_ms: u64, timeout_ms: u64) -> Vec<NodeId> {
    state
        .nodes
        .values()
        .filter(|n| n.alive && now_ms.saturating_sub(n.last_heartbeat_ms) > timeout_ms)
        .map(|n| n.id)
        .collect()
}

/// After a coordinator restart: every live node gets a full timeout from `now_ms`, and
/// an open round a full settle time, so the coordinator's own downtime kills nobody.
pub fn resume_after_restart(state: &mut State, now_ms: u64) {
    for node in state.nodes.values_mut().filter(|n| n.alive) {
        if node.last_heartbeat_ms < now_ms {
            Arc::make_mut(node).last_heartbeat_ms = now_ms;
        }
    }
    if let Some(open) = &mut state.open {
        open.last_join_ms = open.last_join_ms.max(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;
    use super::{MAX_NAME_CHARS, MAX_PROCS_PER_NODE};
    use proto::domain::{Directive, HeartbeatReport, JobId, JobPhase, Rank, RankProgress, Step};

    fn beat(state: &mut State, node: NodeId, now: u64) -> Directive {
        let report = HeartbeatReport {
            node,
            ..Default::default()
        };
        heartbeat(state, report, now, &policy()).unwrap().0
    }

    #[test]
    fn same_name_gets_same_id_and_new_names_new_ids() {
        let mut state = State::new(JobId::new(1), 0);
        let a = add(&mut state, "a", 1, 0);
        let b = add(&mut state, "b", 1, 0);
        assert_ne!(a, b);
        assert_eq!(add(&mut state, "a", 2, 5), a);
        assert_eq!(state.nodes[&a].spec.procs, 2);
        assert_eq!(state.nodes.len(), 2);
    }

    #[test]
    fn registration_refuses_bad_specs_and_other_configs() {
        let mut state = State::new(JobId::new(1), 0);
        assert!(matches!(
            register(&mut state, spec("", 1), 0, &policy()),
            Err(DecisionError::Invalid(_))
        ));
        assert!(matches!(
            register(&mut state, spec("a", 0), 0, &policy()),
            Err(DecisionError::Invalid(_))
        ));
        add(&mut state, "a", 1, 0);
        let mut other = spec("b", 1);
        other.config_digest = "other".into();
        let err = register(&mut state, other, 0, &policy()).unwrap_err();
        assert!(matches!(err, DecisionError::ConfigMismatch { .. }), "{err}");
        assert_eq!(state.nodes.len(), 1);
    }

    #[test]
    fn dead_members_are_those_silent_past_the_timeout() {
        let mut state = State::new(JobId::new(1), 0);
        let a = add(&mut state, "a", 1, 0);
        let b = add(&mut state, "b", 1, 0);
        beat(&mut state, b, 4_000);
        assert!(
            dead_members(&state, 5_000, 5_000).is_empty(),
            "exactly the timeout is not dead yet"
        );
        assert_eq!(dead_members(&state, 5_001, 5_000), vec![a]);
        assert_eq!(dead_members(&state, 9_001, 5_000), vec![a, b]);
    }

    #[test]
    fn registering_again_mid_round_restarts_the_job() {
        let (mut state, ids) = running(&["a", "b"]);
        add(&mut state, "b", 1, 20_000);
        assert_eq!(state.phase, JobPhase::Restarting);
        assert_eq!(state.open.as_ref().unwrap().round, RoundId::new(2));
        assert_eq!(
            beat(&mut state, ids[0], 20_001),
            Directive::Rejoin {
                round: RoundId::new(2)
            }
        );
    }

    #[test]
    fn a_leaving_node_is_told_to_stop_and_the_others_to_rejoin() {
        let (mut state, ids) = running(&["a", "b"]);
        let report = HeartbeatReport {
            node: ids[1],
            leaving: true,
            ..Default::default()
        };
        let (directive, actions) = heartbeat(&mut state, report, 11_000, &policy()).unwrap();
        assert_eq!(directive, Directive::Stop);
        assert!(actions.contains(&Action::NodeLeft { node: ids[1] }));
        assert_eq!(
            beat(&mut state, ids[0], 11_001),
            Directive::Rejoin {
                round: RoundId::new(2)
            }
        );
        assert_eq!(beat(&mut state, ids[1], 11_002), Directive::Stop);
    }

    #[test]
    fn job_finishes_when_every_member_reports_finished() {
        let (mut state, ids) = running(&["a", "b"]);
        let done = |node| HeartbeatReport {
            node,
            finished: true,
            ..Default::default()
        };
        heartbeat(&mut state, done(ids[0]), 11_000, &policy()).unwrap();
        assert_eq!(state.phase, JobPhase::Running);
        let (directive, actions) = heartbeat(&mut state, done(ids[1]), 11_000, &policy()).unwrap();
        assert_eq!(state.phase, JobPhase::Finished);
        assert_eq!(directive, Directive::Stop);
        assert_eq!(actions, vec![Action::JobFinished]);
    }

    /// The state without the nodes' soft state.
    fn hard(state: &State) -> State {
        let mut hard = state.clone();
        for node in hard.nodes.values_mut() {
            let node = std::sync::Arc::make_mut(node);
            node.last_heartbeat_ms = 0;
            node.progress.clear();
            node.progress_round = RoundId::new(0);
        }
        hard
    }

    #[test]
    fn soft_heartbeats_change_only_the_soft_state_and_no_other_heartbeat_is_soft() {
        let (running, ids) = running(&["a", "b", "c"]);
        let rank_of = |s: &State, id| s.current.as_ref().unwrap().member(id).unwrap().ranks[0];
        let mut dead = running.clone();
        dead.node_mut(ids[0]).unwrap().alive = false;
        let mut left = running.clone();
        heartbeat(
            &mut left,
            HeartbeatReport {
                node: ids[0],
                leaving: true,
                ..Default::default()
            },
            9_000,
            &policy(),
        )
        .unwrap();
        let mut done = running.clone();
        heartbeat(
            &mut done,
            HeartbeatReport {
                node: ids[0],
                finished: true,
                ..Default::default()
            },
            9_000,
            &policy(),
        )
        .unwrap();
        let mut gathering = running.clone();
        add(&mut gathering, "c", 1, 9_000);
        assert_eq!(gathering.phase, JobPhase::Restarting);
        let states = [
            ("running", running),
            ("a dead", dead),
            ("a left", left),
            ("a finished", done),
            ("gathering", gathering),
        ];
        let (mut soft, mut hard_seen) = (0, 0);
        for (what, state) in &states {
            let progress = vec![RankProgress {
                global_rank: state
                    .current
                    .as_ref()
                    .map_or(Rank::new(0), |_| rank_of(state, ids[0])),
                step: Step::new(5),
                ..Default::default()
            }];
            let reports = [
                HeartbeatReport {
                    node: ids[0],
                    ..Default::default()
                },
                HeartbeatReport {
                    node: ids[0],
                    round: state.round,
                    progress,
                    ..Default::default()
                },
                HeartbeatReport {
                    node: ids[0],
                    finished: true,
                    ..Default::default()
                },
                HeartbeatReport {
                    node: ids[0],
                    leaving: true,
                    ..Default::default()
                },
                HeartbeatReport {
                    node: NodeId::new(99),
                    ..Default::default()
                },
            ];
            for report in reports {
                let mut after = state.clone();
                let is_soft = heartbeat_is_soft(state, &report);
                let result = heartbeat(&mut after, report.clone(), 10_000, &policy());
                if result.is_err() {
                    assert_eq!(
                        &after, state,
                        "{what}: a refused {report:?} changed the state"
                    );
                } else if is_soft {
                    soft += 1;
                    assert_eq!(hard(&after), hard(state), "{what}: {report:?} is not soft");
                } else if result.is_ok() && hard(&after) != hard(state) {
                    hard_seen += 1;
                }
            }
        }
        // Plain and progress beats of live nodes are soft (a finished node reporting it
        // again too); reviving, leaving and finishing change the job; a left node's
        // beats change nothing, unknown nodes and progress of an open round are refused.
        assert_eq!((soft, hard_seen), (7, 8));
    }

    #[test]
    fn restart_grace_keeps_nodes_alive_for_a_full_timeout() {
        let (mut state, _) = running(&["a", "b"]);
        resume_after_restart(&mut state, 60_000);
        assert!(dead_members(&state, 64_000, 5_000).is_empty());
        assert_eq!(dead_members(&state, 65_001, 5_000).len(), 2);
    }

    #[test]
    fn hostile_progress_is_refused_and_changes_nothing() {
        let (mut state, ids) = running(&["a", "b"]);
        let rank = |global_rank: u32, loss: f64, rate: f64| RankProgress {
            global_rank: Rank::new(global_rank),
            step: Step::new(3),
            loss,
            samples_per_sec: rate,
            ..Default::default()
        };
        let hostile: Vec<(&str, Vec<RankProgress>)> = vec![
            ("NaN loss", vec![rank(0, f64::NAN, 1.0)]),
            ("negative loss", vec![rank(0, -1.0, 1.0)]),
            ("infinite rate", vec![rank(0, 1.0, f64::INFINITY)]),
            ("negative rate", vec![rank(0, 1.0, -5.0)]),
            (
                "200,000 entries",
                (0..200_000).map(|_| rank(0, 1.0, 1.0)).collect(),
            ),
            ("rank 4096 of two processes", vec![rank(4096, 1.0, 1.0)]),
            ("NaN step time", {
                let mut p = rank(0, 1.0, 1.0);
                p.timing.step_s = f64::NAN;
                vec![p]
            }),
            ("negative collective time", {
                let mut p = rank(0, 1.0, 1.0);
                p.timing.collective_s = -1.0;
                vec![p]
            }),
            ("infinite MFU", {
                let mut p = rank(0, 1.0, 1.0);
                p.mfu = f64::INFINITY;
                vec![p]
            }),
            ("1,000 skip reasons", {
                let mut p = rank(0, 1.0, 1.0);
                p.data.skipped = (0..1000).map(|i| (format!("r{i}"), 1)).collect();
                vec![p]
            }),
            ("a skip reason with a newline", {
                let mut p = rank(0, 1.0, 1.0);
                p.data.skipped = [("bad\nline".to_string(), 1)].into();
                vec![p]
            }),
        ];
        let before = state.clone();
        for (what, progress) in hostile {
            let report = HeartbeatReport {
                node: ids[0],
                progress,
                ..Default::default()
            };
            let err = heartbeat(&mut state, report, 1_500, &policy()).unwrap_err();
            assert!(matches!(err, DecisionError::Invalid(_)), "{what}: {err}");
            assert_eq!(state, before, "{what} changed the state");
        }
        // One process per node: two ranks from one node, or one rank twice, are refused.
        let two = vec![rank(0, 1.0, 1.0), rank(1, 1.0, 1.0)];
        let report = HeartbeatReport {
            node: ids[0],
            progress: two,
            ..Default::default()
        };
        assert!(heartbeat(&mut state, report, 1_500, &policy()).is_err());
        // What a training process reports is taken.
        let good = HeartbeatReport {
            node: ids[0],
            progress: vec![rank(1, 2.5, 40.0)],
            ..Default::default()
        };
        heartbeat(&mut state, good, 1_500, &policy()).unwrap();
        assert_eq!(state.nodes[&ids[0]].progress[0].loss, 2.5);
    }

    #[test]
    fn steps_never_go_back_within_a_round_and_an_earlier_rounds_progress_is_dropped() {
        let (mut state, ids) = running(&["a", "b"]);
        let round = state.round;
        let at = |step: u64, round: RoundId| HeartbeatReport {
            node: ids[0],
            progress: vec![RankProgress {
                global_rank: Rank::new(0),
                step: Step::new(step),
                ..Default::default()
            }],
            round,
            ..Default::default()
        };
        let step_of = |state: &State| state.nodes[&ids[0]].progress[0].step.get();
        heartbeat(&mut state, at(10, round), 1_000, &policy()).unwrap();
        heartbeat(&mut state, at(10, round), 1_100, &policy()).unwrap();
        let before = state.clone();
        let err = heartbeat(&mut state, at(4, round), 1_200, &policy()).unwrap_err();
        assert!(
            err.to_string().contains("went back from step 10 to 4"),
            "{err}"
        );
        assert_eq!(state, before, "a refused heartbeat changes nothing");
        let err = heartbeat(&mut state, at(12, round.next()), 1_200, &policy()).unwrap_err();
        assert!(err.to_string().contains("latest round is"), "{err}");
        assert_eq!(state, before);
        // Node a holds rank 0 of the round; rank 1 is b's.
        let mut others = at(12, round);
        others.progress[0].global_rank = Rank::new(1);
        let err = heartbeat(&mut state, others, 1_200, &policy()).unwrap_err();
        assert!(err.to_string().contains("not one of its ranks"), "{err}");
        assert_eq!(state, before);

        // The next round resumes from a checkpoint: lower steps are its own (once it has
        // closed: progress of a gathering round is refused).
        super::super::rendezvous::open_round(&mut state, 1_300, "test".into());
        let next = state.round;
        let err = heartbeat(&mut state, at(6, next), 1_350, &policy()).unwrap_err();
        assert!(err.to_string().contains("has not closed"), "{err}");
        for id in &ids {
            join_node(&mut state, *id, 1_350);
        }
        tick(&mut state, 3_400, &policy());
        assert_eq!(state.current.as_ref().unwrap().round, next);
        heartbeat(&mut state, at(6, next), 3_400, &policy()).unwrap();
        assert_eq!(step_of(&state), 6);
        // A late heartbeat of the round before is a sign of life, its progress is not kept.
        heartbeat(&mut state, at(11, round), 3_500, &policy()).unwrap();
        assert_eq!(step_of(&state), 6);
        assert_eq!(state.nodes[&ids[0]].last_heartbeat_ms, 3_500);
        // A node that does not say its round is taken at its word (older clients).
        heartbeat(&mut state, at(2, RoundId::new(0)), 3_600, &policy()).unwrap();
        assert_eq!(step_of(&state), 2);
    }

    #[test]
    fn absurd_registrations_are_refused_and_change_nothing() {
        let (mut state, _) = running(&["a", "b"]);
        let before = state.clone();
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        let cases = [
            (
                "5000 processes",
                NodeSpec {
                    procs: 5_000,
                    ..spec("c", 1)
                },
            ),
            (
                "u32::MAX processes",
                NodeSpec {
                    procs: u32::MAX,
                    ..spec("c", 1)
                },
            ),
            ("a 254-character name", spec(&long, 1)),
            ("a control character", spec("c\u{1b}[2J", 1)),
            (
                "a huge host",
                NodeSpec {
                    host: long.clone(),
                    ..spec("c", 1)
                },
            ),
        ];
        for (what, spec) in cases {
            let err = register(&mut state, spec, 1_000, &policy()).unwrap_err();
            assert!(matches!(err, DecisionError::Invalid(_)), "{what}: {err}");
            assert!(
                !err.to_string().contains(&long),
                "{what}: the message echoes it"
            );
            assert_eq!(state, before, "{what}");
        }
        register(&mut state, spec("c", MAX_PROCS_PER_NODE), 1_000, &policy()).unwrap();
    }
}
