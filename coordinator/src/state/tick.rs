//! The periodic decision, above the others: lease expiry ([`super::eval`]), failure
//! detection ([`super::membership`]), losing nodes ([`super::job`]) and closing rounds
//! ([`super::rendezvous`]).

use super::job::lose_node;
use super::membership::dead_members;
use super::rendezvous::close_if_ready;
use super::{Action, Policy, State};

/// The periodic decision: takes back evaluation leases that ran out, declares silent
/// nodes dead (opening the next round when one of them was training) and closes an open
/// round that is ready.
pub fn tick(state: &mut State, now_ms: u64, policy: &Policy) -> Vec<Action> {
    let mut actions = super::eval::expire_leases(state, now_ms, policy);
    if state.phase.is_over() {
        return actions;
    }
    for id in dead_members(state, now_ms, policy.heartbeat_timeout_ms) {
        let node = state
            .node_mut(id)
            .expect("dead_members returns known nodes");
        node.alive = false;
        let silent_ms = now_ms.saturating_sub(node.last_heartbeat_ms);
        actions.push(Action::NodeDeclaredDead {
            node: id,
            silent_ms,
        });
        let reason = format!("{id} missed its heartbeats for {silent_ms} ms");
        actions.extend(lose_node(state, id, now_ms, &reason));
    }
    actions.extend(close_if_ready(state, now_ms, policy));
    actions
}
