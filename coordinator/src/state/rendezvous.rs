//! Rendezvous rounds: nodes join the open round; it closes when `max_nodes` have
//! joined, or when at least `min_nodes` have and no join arrived for the settle time.
//! Closing assigns global ranks deterministically (nodes sorted by name, then local
//! index) and fixes where the round starts: the newest checkpoint of the job's
//! configuration and its data position, so nothing is skipped or repeated whatever the
//! new world size. With the global batch known, a round closes only at a world size
//! that splits it evenly: below `max_nodes` it waits for more nodes (and says so); at
//! `max_nodes` its nodes are refused with the sizes that would work.

use super::{Action, ClosedRound, DecisionError, Join, OpenRound, Policy, RoundMember, State};
use proto::domain::{Assignment, DataPosition, JobPhase, JoinRequest, NodeId, Peer, Rank};
use std::sync::Arc;

/// Records a join. While a round runs, a node outside it that joins opens the next
/// round (the job grows) unless the round already has `max_nodes`; a member of the
/// running round joining again gets that round back.
pub fn join(
    state: &mut State,
    request: &JoinRequest,
    now_ms: u64,
    policy: &Policy,
) -> Result<Vec<Action>, DecisionError> {
    if state.phase.is_over() {
        return Err(DecisionError::JobOver(state.phase));
    }
    let node = state.node(request.node)?;
    if !node.alive {
        return Err(DecisionError::NodeGone(request.node));
    }
    if request.addresses.is_empty() || request.addresses.iter().any(|a| a.trim().is_empty()) {
        return Err(DecisionError::Invalid(format!(
            "{} joins without an address for each local process",
            request.node
        )));
    }
    let procs = node.spec.procs.max(1) as usize;
    if request.addresses.len() != procs {
        return Err(DecisionError::Invalid(format!(
            "{} joins with {} addresses but registered {procs} process(es): one address each",
            request.node,
            request.addresses.len()
        )));
    }
    if request.round > state.round {
        return Err(DecisionError::Invalid(format!(
            "{} joins round {}, but the latest round is {}",
            request.node, request.round, state.round
        )));
    }
    let mut actions = Vec::new();
    if state.phase == JobPhase::Running {
        let current = state.current.as_ref().expect("a running job has a round");
        if current.member(request.node).is_some() {
            return Ok(actions);
        }
        if current.members.len() as u32 >= policy.max_nodes {
            return Err(DecisionError::RoundFull {
                max_nodes: policy.max_nodes,
            });
        }
        let reason = format!("{} joined: the job grows", request.node);
        actions.push(open_round(state, now_ms, reason));
    }
    let open = state
        .open
        .as_mut()
        .expect("waiting or restarting jobs have an open round");
    open.joins.insert(
        request.node,
        Arc::new(Join {
            addresses: request.addresses.clone(),
            bootstrap_offer: request.bootstrap_offer.clone(),
            joined_ms: now_ms,
        }),
    );
    open.last_join_ms = now_ms;
    let (round, world, joined) = (open.round, open.world_size(), open.joins.len() as u32);
    if let Some(batch) = policy.global_batch.filter(|_| joined >= policy.min_nodes) {
        if !splits(batch, world) {
            actions.push(Action::RoundWaitsForWorldSize {
                round,
                world,
                batch,
                sizes: world_sizes(batch),
            });
        }
    }
    actions.extend(close_if_ready(state, now_ms, policy));
    Ok(actions)
}

/// Whether `world` processes split a global batch of `batch` evenly.
fn splits(batch: u32, world: u32) -> bool {
    world > 0 && batch.is_multiple_of(world)
}

/// The world sizes that split `batch` (its divisors), as text for messages.
fn world_sizes(batch: u32) -> String {
    let mut sizes: Vec<u32> = (1..)
        .take_while(|w: &u32| u64::from(*w) * u64::from(*w) <= u64::from(batch))
        .filter(|w| batch.is_multiple_of(*w))
        .flat_map(|w| [w, batch / w])
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let sizes: Vec<String> = sizes.iter().map(u32::to_string).collect();
    sizes.join(", ")
}

/// What the [`join_outcome`] of a node waiting in the open round depends on, besides
/// its own entry (which only goes with a change of the round): the round, the job's
/// phase, whether the round still gathers, and its join count once it reached
/// `max_nodes` (a world that cannot split the batch). Waiting joins look again when
/// this changes, not at every other node's join: N waiting nodes re-checking at each of
/// N joins would cost N^2.
pub fn waiting_joins_key(state: &State, policy: &Policy) -> WaitingJoinsKey {
    let open = state.open.as_ref();
    WaitingJoinsKey {
        round: state.round,
        phase: state.phase,
        gathering: open.is_some(),
        full: open
            .map(|o| o.joins.len())
            .filter(|&n| n as u64 >= u64::from(policy.max_nodes)),
    }
}

/// See [`waiting_joins_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitingJoinsKey {
    round: proto::domain::RoundId,
    phase: JobPhase,
    gathering: bool,
    full: Option<usize>,
}

/// What a node waiting in a join gets now: `Ok(None)` while its round gathers, the
/// assignment once it closed, an error when the round went on without it.
pub fn join_outcome(
    state: &State,
    node: NodeId,
    policy: &Policy,
) -> Result<Option<Assignment>, DecisionError> {
    if state.phase.is_over() {
        return Err(DecisionError::JobOver(state.phase));
    }
    if !state.node(node)?.alive {
        return Err(DecisionError::NodeGone(node));
    }
    if let Some(open) = &state.open {
        if open.joins.contains_key(&node) {
            let nodes = open.joins.len();
            return match policy.global_batch {
                Some(batch)
                    if nodes as u32 >= policy.max_nodes && !splits(batch, open.world_size()) =>
                {
                    Err(DecisionError::WorldCannotSplitBatch {
                        round: open.round,
                        nodes,
                        world: open.world_size(),
                        batch,
                        sizes: world_sizes(batch),
                    })
                }
                _ => Ok(None),
            };
        }
        return Err(DecisionError::NotInRound {
            node,
            round: open.round,
        });
    }
    let current = state.current.as_ref().expect("a running job has a round");
    let member = current.member(node).ok_or(DecisionError::NotInRound {
        node,
        round: current.round,
    })?;
    // The leader and the node's own ranks: every other address is the collective's to
    // exchange, and a reply that listed all of them would make a round of N nodes send
    // N^2 addresses.
    let own = match (member.ranks.first(), member.ranks.last()) {
        (Some(first), Some(last)) => first.get() as usize..last.get() as usize + 1,
        _ => 0..0,
    };
    let leader = if own.start == 0 { 0..0 } else { 0..1 };
    let peers = [leader, own]
        .into_iter()
        .flat_map(|r| current.peers.get(r).unwrap_or_default())
        .cloned()
        .collect();
    Ok(Some(Assignment {
        round: current.round,
        world_size: current.world_size(),
        global_ranks: member.ranks.clone(),
        peers,
        bootstrap: current.bootstrap.clone(),
        start: current.start,
        resume_from: current.resume_from.clone(),
    }))
}

/// Opens the next round (after a failure, a restart of a node or growth).
pub(crate) fn open_round(state: &mut State, now_ms: u64, reason: String) -> Action {
    state.round = state.round.next();
    let joins = state.open.take().map(|o| o.joins).unwrap_or_default();
    state.open = Some(OpenRound {
        round: state.round,
        opened_ms: now_ms,
        last_join_ms: now_ms,
        joins,
    });
    state.phase = if state.current.is_some() {
        JobPhase::Restarting
    } else {
        JobPhase::WaitingForNodes
    };
    Action::RoundOpened {
        round: state.round,
        reason,
    }
}

/// Whether the open round may close at `now_ms`: enough nodes, settled, and (with the
/// global batch known) a world size that splits it.
pub fn ready_to_close(open: &OpenRound, now_ms: u64, policy: &Policy) -> bool {
    let joined = open.joins.len() as u32;
    let enough = joined >= policy.max_nodes
        || (joined >= policy.min_nodes
            && now_ms.saturating_sub(open.last_join_ms) >= policy.rendezvous_settle_ms);
    enough
        && policy
            .global_batch
            .is_none_or(|batch| splits(batch, open.world_size()))
}

/// Closes the open round if [`ready_to_close`] says so.
pub(crate) fn close_if_ready(state: &mut State, now_ms: u64, policy: &Policy) -> Vec<Action> {
    let Some(open) = state.open.as_ref() else {
        return Vec::new();
    };
    if !ready_to_close(open, now_ms, policy) {
        return Vec::new();
    }
    let open = state.open.take().expect("checked above");
    let mut joined: Vec<(&str, NodeId, &Join)> = open
        .joins
        .iter()
        .map(|(id, join)| (state.nodes[id].spec.name.as_str(), *id, join.as_ref()))
        .collect();
    joined.sort_by(|a, b| a.0.cmp(b.0));
    let mut members = Vec::new();
    let mut peers = Vec::new();
    for (name, node, join) in &joined {
        let first = peers.len() as u32;
        for (i, address) in join.addresses.iter().enumerate() {
            peers.push(Peer {
                rank: Rank::new(first + i as u32),
                address: address.clone(),
                node_name: name.to_string(),
            });
        }
        members.push(RoundMember {
            node: *node,
            name: name.to_string(),
            ranks: (first..peers.len() as u32).map(Rank::new).collect(),
        });
    }
    let bootstrap = joined
        .first()
        .map(|j| j.2.bootstrap_offer.clone())
        .unwrap_or_default();
    let digest = state.config_digest.clone().unwrap_or_default();
    let resume_from = state.checkpoints.newest(&digest).cloned();
    let start = resume_from
        .as_ref()
        .map_or(DataPosition::default(), |c| c.position);
    let closed = ClosedRound {
        round: open.round,
        closed_ms: now_ms,
        members,
        peers,
        bootstrap,
        start,
        resume_from,
    };
    for node in state.nodes.values_mut().filter(|n| n.finished) {
        Arc::make_mut(node).finished = false;
    }
    let action = Action::RoundClosed {
        round: closed.round,
        world_size: closed.world_size(),
        nodes: closed.members.len(),
        start,
    };
    state.current = Some(Arc::new(closed));
    state.phase = JobPhase::Running;
    vec![action]
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;
    use super::*;
    use proto::domain::{DataPosition, JobId};

    /// Runs `steps` from `start`; after each, every node that was waiting in a join
    /// (outcome `Ok(None)`) and whose outcome changed must see the key change.
    fn check_key(policy: &Policy, start: State, steps: &[&dyn Fn(&mut State)]) -> usize {
        let (mut state, mut seen) = (start, 0);
        for step in steps {
            let before = state.clone();
            step(&mut state);
            let key_changed =
                waiting_joins_key(&before, policy) != waiting_joins_key(&state, policy);
            for &id in before.nodes.keys() {
                let was = join_outcome(&before, id, policy);
                if was == Ok(None) && join_outcome(&state, id, policy) != was {
                    assert!(
                        key_changed,
                        "{id}'s outcome changed without the key: {:?}",
                        join_outcome(&state, id, policy)
                    );
                    seen += 1;
                }
            }
        }
        seen
    }

    #[test]
    fn a_waiting_joins_outcome_changes_only_with_its_key() {
        let p = policy();
        let three = || {
            let mut state = State::new(JobId::new(1), 0);
            for name in ["a", "b", "c"] {
                add(&mut state, name, 1, 0);
            }
            state
        };
        let [a, b, c] = [1, 2, 3].map(NodeId::new);
        let join = |id| move |s: &mut State| drop(join_node(s, id, 100));
        let (ja, jb, jc) = (join(a), join(b), join(c));
        // Closing at max_nodes, and by the settle time.
        assert_eq!(check_key(&p, three(), &[&ja, &jb, &jc]), 2);
        let settle = |s: &mut State| drop(tick(s, 2_200, &policy()));
        assert_eq!(check_key(&p, three(), &[&ja, &jb, &settle]), 2);
        // A waiting node declared dead; a waiting node registering again; a stop.
        let silent = |s: &mut State| {
            heartbeat(
                s,
                HeartbeatReport {
                    node: NodeId::new(1),
                    ..Default::default()
                },
                5_500,
                &policy(),
            )
            .unwrap();
            tick(s, 5_500, &policy());
        };
        assert_eq!(check_key(&p, three(), &[&ja, &jb, &silent]), 1);
        let again = |s: &mut State| {
            add(s, "a", 1, 300);
        };
        assert_eq!(check_key(&p, three(), &[&ja, &jb, &again]), 1);
        let halt = |s: &mut State| drop(stop(s, StopRequest::default()));
        assert_eq!(check_key(&p, three(), &[&ja, &jb, &halt]), 2);
        // Every node joined and the world cannot split the batch.
        let batch = Policy {
            global_batch: Some(4),
            ..policy()
        };
        let join_under = |id| {
            move |s: &mut State| {
                drop(join_node_under(
                    s,
                    id,
                    100,
                    &Policy {
                        global_batch: Some(4),
                        ..policy()
                    },
                ))
            }
        };
        let (ja, jb, jc) = (join_under(a), join_under(b), join_under(c));
        assert_eq!(check_key(&batch, three(), &[&ja, &jb, &jc]), 2);
    }

    #[test]
    fn round_waits_for_min_nodes_then_the_settle_time() {
        let mut state = State::new(JobId::new(1), 0);
        let a = add(&mut state, "a", 1, 0);
        join_node(&mut state, a, 0);
        tick(&mut state, 3_000, &policy());
        assert!(state.open.is_some(), "one node is below min_nodes");
        heartbeat(
            &mut state,
            HeartbeatReport {
                node: a,
                ..Default::default()
            },
            3_000,
            &policy(),
        )
        .unwrap();
        let b = add(&mut state, "b", 1, 3_000);
        join_node(&mut state, b, 3_000);
        tick(&mut state, 4_999, &policy());
        assert!(state.open.is_some(), "settle time not over");
        tick(&mut state, 5_000, &policy());
        assert_eq!(state.phase, JobPhase::Running);
        assert_eq!(state.current.as_ref().unwrap().round, RoundId::new(1));
    }

    #[test]
    fn a_round_closes_only_at_a_world_size_that_splits_the_global_batch() {
        let policy = Policy {
            global_batch: Some(12),
            ..policy()
        };
        let mut state = State::new(JobId::new(1), 0);
        let a = add(&mut state, "a", 4, 0);
        let b = add(&mut state, "b", 3, 0);
        join_node_under(&mut state, a, 0, &policy);
        let actions = join_node_under(&mut state, b, 0, &policy);
        // 7 processes cannot split 12: the round says so and waits past its settle time.
        assert!(
            matches!(&actions[..], [Action::RoundWaitsForWorldSize { world: 7, batch: 12, sizes, .. }] if sizes == "1, 2, 3, 4, 6, 12"),
            "{actions:?}"
        );
        tick(&mut state, 4_000, &policy);
        assert_eq!(state.phase, JobPhase::WaitingForNodes);
        assert_eq!(join_outcome(&state, a, &policy), Ok(None), "still waiting");
        // The last node it may have brings 8: its nodes are refused with what would work.
        let c = add(&mut state, "c", 1, 4_000);
        join_node_under(&mut state, c, 4_000, &policy);
        tick(&mut state, 4_500, &policy);
        assert_eq!(state.phase, JobPhase::WaitingForNodes);
        let err = join_outcome(&state, a, &policy).unwrap_err();
        assert!(
            matches!(
                err,
                DecisionError::WorldCannotSplitBatch {
                    world: 8,
                    batch: 12,
                    nodes: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("world sizes that can are 1, 2, 3, 4, 6, 12"),
            "{err}"
        );

        // 4 + 2 processes split 12: the round closes after its settle time as usual.
        let mut state = State::new(JobId::new(1), 0);
        let a = add(&mut state, "a", 4, 0);
        let b = add(&mut state, "b", 2, 0);
        join_node_under(&mut state, a, 0, &policy);
        assert!(join_node_under(&mut state, b, 0, &policy).is_empty());
        tick(&mut state, 2_000, &policy);
        assert_eq!(state.phase, JobPhase::Running);
        assert_eq!(state.current.as_ref().unwrap().world_size(), 6);
    }

    #[test]
    fn round_closes_at_once_when_max_nodes_joined() {
        let mut state = State::new(JobId::new(1), 0);
        let ids: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|n| add(&mut state, n, 1, 0))
            .collect();
        join_node(&mut state, ids[0], 0);
        join_node(&mut state, ids[1], 0);
        let actions = join_node(&mut state, ids[2], 0);
        assert!(matches!(
            actions[..],
            [Action::RoundClosed {
                world_size: 3,
                nodes: 3,
                ..
            }]
        ));
    }

    #[test]
    fn ranks_follow_node_names_then_local_index_whatever_the_join_order() {
        let mut state = State::new(JobId::new(1), 0);
        let zed = add(&mut state, "zed", 2, 0);
        let amy = add(&mut state, "amy", 3, 0);
        join_node(&mut state, zed, 0);
        join_node(&mut state, amy, 1);
        tick(&mut state, 2_001, &policy());
        let amy_ranks = join_outcome(&state, amy, &policy()).unwrap().unwrap();
        let zed_ranks = join_outcome(&state, zed, &policy()).unwrap().unwrap();
        assert_eq!(amy_ranks.global_ranks, [0, 1, 2].map(Rank::new));
        assert_eq!(zed_ranks.global_ranks, [3, 4].map(Rank::new));
        assert_eq!(amy_ranks.world_size, 5);
        let addresses = |a: &Assignment| {
            a.peers
                .iter()
                .map(|p| (p.rank.get(), p.address.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            addresses(&amy_ranks),
            [(0, "amy:7000"), (1, "amy:7001"), (2, "amy:7002")].map(|(r, a)| (r, a.to_string())),
            "the leader's node gets its own ranks"
        );
        assert_eq!(
            addresses(&zed_ranks),
            [(0, "amy:7000"), (3, "zed:7000"), (4, "zed:7001")].map(|(r, a)| (r, a.to_string())),
            "another node gets the leader and its own ranks"
        );
        assert_eq!(
            amy_ranks.bootstrap, b"amy",
            "bootstrap comes from the rank-0 node"
        );
        assert_eq!(amy_ranks.bootstrap, zed_ranks.bootstrap);
    }

    #[test]
    fn a_node_failing_while_the_round_gathers_bumps_the_round_and_keeps_the_others() {
        let mut state = State::new(JobId::new(1), 0);
        let a = add(&mut state, "a", 1, 0);
        let b = add(&mut state, "b", 1, 0);
        join_node(&mut state, a, 0);
        join_node(&mut state, b, 4_000);
        // a heartbeats at 5 s, b never: b is dead at 9 001 ms.
        heartbeat(
            &mut state,
            HeartbeatReport {
                node: a,
                ..Default::default()
            },
            5_000,
            &policy(),
        )
        .unwrap();
        tick(&mut state, 9_001, &policy());
        let open = state.open.as_ref().unwrap();
        assert_eq!(open.round, RoundId::new(2));
        assert_eq!(open.joins.keys().copied().collect::<Vec<_>>(), vec![a]);
        assert!(matches!(
            join_outcome(&state, b, &policy()),
            Err(DecisionError::NodeGone(_))
        ));
        assert_eq!(join_outcome(&state, a, &policy()), Ok(None));
    }

    #[test]
    fn next_round_resumes_from_the_newest_checkpoint_position() {
        let (mut state, ids) = running(&["a", "b"]);
        for (step, consumed) in [(10, 640), (20, 1280)] {
            let report = CheckpointReport {
                node: ids[0],
                round: RoundId::new(1),
                step: Step::new(step),
                url: format!("file:///ckpt/step-{step:09}"),
                position: DataPosition {
                    epoch: 0,
                    samples_consumed: consumed,
                },
                config_digest: "cfg".into(),
                eval_suites: vec![],
            };
            checkpoints::report(&mut state, report, 11_000, &policy()).unwrap();
        }
        // b dies; a alone is below min_nodes, so c replaces it.
        heartbeat(
            &mut state,
            HeartbeatReport {
                node: ids[0],
                ..Default::default()
            },
            16_000,
            &policy(),
        )
        .unwrap();
        tick(&mut state, 16_000, &policy());
        assert_eq!(state.phase, JobPhase::Restarting);
        join_node(&mut state, ids[0], 16_000);
        let c = add(&mut state, "c", 1, 16_000);
        join_node(&mut state, c, 16_000);
        tick(&mut state, 18_000, &policy());
        let assignment = join_outcome(&state, c, &policy()).unwrap().unwrap();
        assert_eq!(assignment.round, RoundId::new(2));
        assert_eq!(
            assignment.start,
            DataPosition {
                epoch: 0,
                samples_consumed: 1280
            }
        );
        assert_eq!(assignment.resume_from.unwrap().step, Step::new(20));
    }

    #[test]
    fn growing_past_max_nodes_is_refused_and_below_it_opens_a_round() {
        let (mut state, _) = running(&["a", "b"]);
        let c = add(&mut state, "c", 1, 11_000);
        assert_eq!(directive_for(&state, c), Directive::Standby);
        join_node(&mut state, c, 11_000);
        assert_eq!(state.phase, JobPhase::Restarting);
        assert_eq!(state.round, RoundId::new(2));

        let mut full = running(&["a", "b", "c"]).0;
        let d = add(&mut full, "d", 1, 11_000);
        let request = JoinRequest {
            node: d,
            addresses: vec!["d:1".into()],
            ..Default::default()
        };
        assert_eq!(
            join(&mut full, &request, 11_000, &policy()),
            Err(DecisionError::RoundFull { max_nodes: 3 })
        );
    }

    #[test]
    fn join_needs_an_address_per_process_and_a_live_job() {
        let mut state = State::new(JobId::new(1), 0);
        let a = add(&mut state, "a", 1, 0);
        let empty = JoinRequest {
            node: a,
            ..Default::default()
        };
        assert!(matches!(
            join(&mut state, &empty, 0, &policy()),
            Err(DecisionError::Invalid(_))
        ));
        stop(
            &mut state,
            StopRequest {
                drain: false,
                reason: "test".into(),
            },
        );
        let ok = JoinRequest {
            node: a,
            addresses: vec!["a:1".into()],
            ..Default::default()
        };
        assert_eq!(
            join(&mut state, &ok, 0, &policy()),
            Err(DecisionError::JobOver(JobPhase::Stopped))
        );
    }

    #[test]
    fn a_join_must_match_the_registration_and_name_a_round_that_exists() {
        let mut state = State::new(JobId::new(1), 0);
        let two = add(&mut state, "two", 2, 0);
        let before = state.clone();
        let join_with = |addresses: &[&str], round: u64| JoinRequest {
            node: two,
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            round: RoundId::new(round),
            ..Default::default()
        };
        for (what, request) in [
            ("one address for two processes", join_with(&["t:1"], 0)),
            ("three addresses", join_with(&["t:1", "t:2", "t:3"], 0)),
            ("a round to come", join_with(&["t:1", "t:2"], 7)),
        ] {
            let err = join(&mut state, &request, 0, &policy()).unwrap_err();
            assert!(matches!(err, DecisionError::Invalid(_)), "{what}: {err}");
            assert_eq!(state, before, "{what} changed the state");
        }
        join(&mut state, &join_with(&["t:1", "t:2"], 0), 0, &policy()).unwrap();
    }
}
