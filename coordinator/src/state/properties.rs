//! Property tests of the decisions: random requests (many of them hostile: NaN and
//! negative numbers, huge or repeated ranks, unknown nodes, rounds to come, checkpoint URLs
//! anywhere) against a running two-node job. No decision panics, and a refused one leaves
//! the state exactly as it was.

use proptest::prelude::*;

use super::testing::*;
use super::*;
use proto::domain::{DataPosition, JoinRequest, Rank, RankProgress, Step};

/// One request, as any client holding the token could send it.
#[derive(Debug, Clone)]
enum Request {
    Heartbeat {
        node: u64,
        progress: Vec<(u32, f64, f64)>,
        finished: bool,
    },
    Join {
        node: u64,
        addresses: usize,
        round: u64,
    },
    Checkpoint {
        node: u64,
        step: u64,
        url: String,
    },
    Tick {
        after_ms: u64,
    },
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(-1.0), 0.0..1e6f64,]
}

fn url() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("file:///etc".to_string()),
        (0u64..50).prop_map(|s| format!("file:///ckpt/step-{s:09}")),
        (0u64..50).prop_map(|s| format!("file:///elsewhere/step-{s:09}")),
        (0u64..50).prop_map(|s| format!("file:///ckpt/../x/step-{s:09}")),
        "[ -~]{0,24}",
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (
            0u64..4,
            prop::collection::vec((0u32..6000, number(), number()), 0..4),
            any::<bool>()
        )
            .prop_map(|(node, progress, finished)| Request::Heartbeat {
                node,
                progress,
                finished
            }),
        (0u64..4, 0usize..4, 0u64..4).prop_map(|(node, addresses, round)| Request::Join {
            node,
            addresses,
            round
        }),
        (0u64..4, 0u64..50, url()).prop_map(|(node, step, url)| Request::Checkpoint {
            node,
            step,
            url
        }),
        (0u64..10_000).prop_map(|after_ms| Request::Tick { after_ms }),
    ]
}

/// Applies `request` at `now`: `Err` when the decision refused it.
fn apply(state: &mut State, request: &Request, now: u64) -> Result<(), DecisionError> {
    match request {
        Request::Heartbeat {
            node,
            progress,
            finished,
        } => {
            let progress = progress
                .iter()
                .map(|&(rank, loss, rate)| RankProgress {
                    global_rank: Rank::new(rank),
                    step: Step::new(3),
                    loss,
                    samples_per_sec: rate,
                    ..Default::default()
                })
                .collect();
            let report = HeartbeatReport {
                node: NodeId::new(*node),
                progress,
                finished: *finished,
                ..Default::default()
            };
            heartbeat(state, report, now, &policy()).map(|_| ())
        }
        Request::Join {
            node,
            addresses,
            round,
        } => {
            let request = JoinRequest {
                node: NodeId::new(*node),
                addresses: (0..*addresses).map(|i| format!("h:{}", 7000 + i)).collect(),
                bootstrap_offer: Vec::new(),
                round: RoundId::new(*round),
            };
            join(state, &request, now, &policy()).map(|_| ())
        }
        Request::Checkpoint { node, step, url } => {
            let report = CheckpointReport {
                node: NodeId::new(*node),
                round: state.round,
                step: Step::new(*step),
                url: url.clone(),
                position: DataPosition::default(),
                config_digest: "cfg".into(),
                eval_suites: Vec::new(),
            };
            checkpoints::report(state, report, now, &policy()).map(|_| ())
        }
        Request::Tick { .. } => {
            tick(state, now, &policy());
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_requests_never_panic_and_a_refused_one_changes_nothing(
        requests in prop::collection::vec(request(), 1..24)
    ) {
        let (mut state, _) = running(&["a", "b"]);
        let mut now = 2_000;
        for request in &requests {
            if let Request::Tick { after_ms } = request {
                now += after_ms;
            }
            let before = state.clone();
            if let Err(e) = apply(&mut state, request, now) {
                prop_assert_eq!(&state, &before, "{:?} was refused ({}) but changed the state", request, e);
            }
            // Whatever was taken, the registry holds only step directories of one directory.
            let dirs: std::collections::BTreeSet<_> = state
                .checkpoints
                .newest_first()
                .iter()
                .map(|c| c.url.rsplit_once('/').map(|(d, _)| d.to_string()))
                .collect();
            prop_assert!(dirs.len() <= 1, "{:?}", dirs);
            for node in state.nodes.values() {
                prop_assert!(node.progress.iter().all(|p| p.loss.is_finite() && p.loss >= 0.0));
                prop_assert!(node.progress.len() <= node.spec.procs.max(1) as usize);
            }
        }
    }
}
