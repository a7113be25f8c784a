//! The job's course: directives, losing a node, stopping, and the status view.

use super::rendezvous::open_round;
use super::stragglers::{stragglers as find_stragglers, StragglerPolicy};
use super::{Action, State};
use proto::domain::{Directive, JobPhase, JobStatus, MemberStatus, NodeId, Rank, StopRequest};

/// What `node` must do now, given the job's phase and the rounds.
pub fn directive_for(state: &State, node: NodeId) -> Directive {
    match state.phase {
        JobPhase::Stopped if state.drain => Directive::Drain,
        JobPhase::Stopped | JobPhase::Finished => Directive::Stop,
        JobPhase::WaitingForNodes | JobPhase::Restarting => {
            let open = state
                .open
                .as_ref()
                .expect("gathering jobs have an open round");
            if open.joins.contains_key(&node) {
                Directive::Continue
            } else {
                Directive::Rejoin { round: open.round }
            }
        }
        JobPhase::Running if state.in_running_round(node) => Directive::Continue,
        JobPhase::Running => Directive::Standby,
    }
}

/// Takes `node` out of the rounds: out of the open round (whose number is bumped, so
/// nobody mistakes it for the one the node was in), or, if it trains in the running
/// round, the next round opens and every member must rejoin.
pub(crate) fn lose_node(state: &mut State, node: NodeId, now_ms: u64, reason: &str) -> Vec<Action> {
    if let Some(open) = &mut state.open {
        if open.joins.remove(&node).is_some() {
            return vec![open_round(state, now_ms, reason.to_string())];
        }
        return Vec::new();
    }
    if state.in_running_round(node) {
        return vec![open_round(state, now_ms, reason.to_string())];
    }
    Vec::new()
}

/// Ends the job; members are told to drain or stop on their next heartbeat and
/// waiting joins fail. Stopping a job that is over changes nothing.
pub fn stop(state: &mut State, request: StopRequest) -> Vec<Action> {
    if state.phase.is_over() {
        return Vec::new();
    }
    state.phase = JobPhase::Stopped;
    state.drain = request.drain;
    state.open = None;
    vec![Action::JobStopped {
        drain: request.drain,
        reason: request.reason,
    }]
}

/// The job as an operator sees it at `now_ms`.
pub fn status(state: &State, now_ms: u64, stragglers: StragglerPolicy) -> JobStatus {
    let current = state.current.as_ref();
    // One lookup per node (a member search each would cost N^2 at N nodes).
    let members_of_round: std::collections::BTreeMap<NodeId, &[Rank]> = current
        .map(|c| c.members.iter().map(|m| (m.node, &m.ranks[..])).collect())
        .unwrap_or_default();
    let ranks_of = |id: NodeId| {
        members_of_round
            .get(&id)
            .map(|r| r.to_vec())
            .unwrap_or_default()
    };
    let running_round = state.phase == JobPhase::Running;
    let members = state
        .nodes
        .values()
        .map(|n| MemberStatus {
            node_id: n.id,
            spec: n.spec.clone(),
            alive: n.alive,
            heartbeat_age_ms: now_ms.saturating_sub(n.last_heartbeat_ms),
            global_ranks: ranks_of(n.id),
            progress: n.progress.clone(),
            finished: n.finished,
        })
        .collect();
    let running = || {
        state
            .nodes
            .values()
            .filter(|n| n.alive && running_round && members_of_round.contains_key(&n.id))
            .flat_map(|n| n.progress.iter())
    };
    let samples_per_sec = running().map(|p| p.samples_per_sec).sum();
    let own: Vec<(Rank, f64)> = running()
        .filter(|p| p.timing.step_s > 0.0)
        .map(|p| (p.global_rank, p.timing.own_s()))
        .collect();
    let (stragglers, median_own_step_s) = find_stragglers(&own, stragglers);
    JobStatus {
        job_id: state.job_id,
        phase: state.phase,
        round: state.round,
        world_size: current.map_or(0, |c| c.world_size()),
        members,
        samples_per_sec,
        checkpoints: state.checkpoints.newest_first(),
        config_digest: state.config_digest.clone().unwrap_or_default(),
        joined_nodes: state.open.as_ref().map_or(0, |o| o.joins.len() as u32),
        evals: state.evals.jobs.clone(),
        stragglers,
        median_own_step_s,
    }
}

#[cfg(test)]
mod tests {
    use super::super::stragglers::StragglerPolicy;
    use super::super::testing::*;
    use super::super::*;
    use proto::domain::{HeartbeatReport, RankProgress};

    #[test]
    fn a_silent_member_is_declared_dead_and_the_survivor_told_to_rejoin() {
        let (mut state, ids) = running(&["a", "b"]);
        heartbeat(
            &mut state,
            HeartbeatReport {
                node: ids[0],
                ..Default::default()
            },
            6_000,
            &policy(),
        )
        .unwrap();
        let actions = tick(&mut state, 6_000, &policy());
        assert_eq!(
            actions[0],
            Action::NodeDeclaredDead {
                node: ids[1],
                silent_ms: 6_000
            }
        );
        assert!(
            matches!(&actions[1], Action::RoundOpened { round, .. } if *round == RoundId::new(2))
        );
        assert_eq!(state.phase, JobPhase::Restarting);
        assert!(!state.nodes[&ids[1]].alive);
        assert_eq!(
            directive_for(&state, ids[0]),
            Directive::Rejoin {
                round: RoundId::new(2)
            }
        );
    }

    #[test]
    fn a_dead_standby_node_does_not_restart_the_job() {
        let (mut state, ids) = running(&["a", "b"]);
        let c = add(&mut state, "c", 1, 2_000);
        for id in &ids {
            heartbeat(
                &mut state,
                HeartbeatReport {
                    node: *id,
                    ..Default::default()
                },
                8_000,
                &policy(),
            )
            .unwrap();
        }
        let actions = tick(&mut state, 8_000, &policy());
        assert_eq!(
            actions,
            vec![Action::NodeDeclaredDead {
                node: c,
                silent_ms: 6_000
            }]
        );
        assert_eq!(state.phase, JobPhase::Running);
    }

    #[test]
    fn stop_with_drain_tells_members_to_drain_and_fails_waiting_joins() {
        let mut state = State::new(JobId::new(1), 0);
        let a = add(&mut state, "a", 1, 0);
        join_node(&mut state, a, 0);
        stop(
            &mut state,
            StopRequest {
                drain: true,
                reason: "operator".into(),
            },
        );
        assert_eq!(directive_for(&state, a), Directive::Drain);
        assert_eq!(
            join_outcome(&state, a, &policy()),
            Err(DecisionError::JobOver(JobPhase::Stopped))
        );
        assert!(
            stop(&mut state, StopRequest::default()).is_empty(),
            "stopping twice changes nothing"
        );
        assert!(state.drain);
    }

    #[test]
    fn status_sums_throughput_of_the_running_round_and_lists_ranks() {
        let (mut state, ids) = running(&["a", "b"]);
        for (i, id) in ids.iter().enumerate() {
            let progress = vec![RankProgress {
                global_rank: Rank::new(i as u32),
                samples_per_sec: 10.0 + i as f64,
                ..Default::default()
            }];
            heartbeat(
                &mut state,
                HeartbeatReport {
                    node: *id,
                    progress,
                    ..Default::default()
                },
                3_000,
                &policy(),
            )
            .unwrap();
        }
        let view = status(&state, 4_000, StragglerPolicy::DEFAULT);
        assert_eq!(view.phase, JobPhase::Running);
        assert_eq!(view.world_size, 2);
        assert_eq!(view.samples_per_sec, 21.0);
        assert_eq!(view.members[1].global_ranks, vec![Rank::new(1)]);
        assert_eq!(view.members[0].heartbeat_age_ms, 1_000);
    }
}
