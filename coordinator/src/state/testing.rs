//! Shared builders for the decision tests.

use super::*;
pub use proto::domain::{CheckpointReport, Directive, HeartbeatReport, StopRequest};

/// Two to three nodes, 1 s heartbeats, 5 s timeout, 2 s settle, 3 s evaluation leases.
pub fn policy() -> Policy {
    Policy {
        min_nodes: 2,
        max_nodes: 3,
        heartbeat_interval_ms: 1_000,
        heartbeat_timeout_ms: 5_000,
        rendezvous_settle_ms: 2_000,
        eval_lease_ms: 3_000,
        eval_max_attempts: 3,
        checkpoint_root: None,
        global_batch: None,
        stragglers: super::stragglers::StragglerPolicy::DEFAULT,
    }
}

/// A CPU node with `procs` processes running configuration `cfg`.
pub fn spec(name: &str, procs: u32) -> NodeSpec {
    NodeSpec {
        name: name.into(),
        host: format!("{name}.local"),
        device_count: 0,
        device_kind: "cpu".into(),
        procs,
        config_digest: "cfg".into(),
    }
}

/// Registers `name` and returns its id.
pub fn add(state: &mut State, name: &str, procs: u32, now: u64) -> NodeId {
    register(state, spec(name, procs), now, &policy())
        .unwrap()
        .0
}

/// Joins `node` with one address per process, named `<name>:<local index>`.
pub fn join_node(state: &mut State, node: NodeId, now: u64) -> Vec<Action> {
    join_node_under(state, node, now, &policy())
}

/// [`join_node`] under `policy`.
pub fn join_node_under(state: &mut State, node: NodeId, now: u64, policy: &Policy) -> Vec<Action> {
    let n = &state.nodes[&node];
    let addresses = (0..n.spec.procs)
        .map(|i| format!("{}:{}", n.spec.name, 7000 + i))
        .collect();
    let request = proto::domain::JoinRequest {
        node,
        addresses,
        bootstrap_offer: n.spec.name.as_bytes().to_vec(),
        round: RoundId::new(0),
    };
    join(state, &request, now, policy).unwrap()
}

/// A state with `names` registered and joined at time 0, closed by a tick at 2 s.
pub fn running(names: &[&str]) -> (State, Vec<NodeId>) {
    let mut state = State::new(JobId::new(1), 0);
    let ids: Vec<NodeId> = names.iter().map(|n| add(&mut state, n, 1, 0)).collect();
    for id in &ids {
        join_node(&mut state, *id, 0);
    }
    tick(&mut state, 2_000, &policy());
    assert_eq!(state.phase, JobPhase::Running);
    (state, ids)
}
