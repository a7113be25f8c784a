//! Property tests through the service: random request sequences, many of them hostile
//! (NaN and negative numbers, huge or repeated ranks, unknown nodes, rounds to come,
//! steps going back, checkpoints anywhere, wrong address counts), sent over real gRPC to a
//! coordinator on 127.0.0.1:0. The coordinator answers every one (no call fails inside
//! the server), and every refused request leaves the job as it was (`coordinator status`
//! before and after, heartbeat ages aside). Rounds settle and nodes time out only after a
//! minute, so nothing but the requests changes the job during a case.

use coordinator::client::{connect, Client};
use coordinator::config::ServeConfig;
use coordinator::limits::CallLimits;
use coordinator::roles::Credentials;
use coordinator::server::RunningServer;
use coordinator::state::Policy;
use proptest::prelude::*;
use proto::domain::JobStatus;
use proto::wire;
use std::time::Duration;
use tonic::Code;

const TOKEN: &str = "property-token";

fn config(dir: &std::path::Path) -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        health_listen: None,
        metrics_listen: None,
        credentials: Credentials::shared(TOKEN).unwrap(),
        limits: CallLimits {
            per_s: 100_000,
            burst: 100_000,
        },
        db_path: dir.join("c.db"),
        policy: Policy {
            min_nodes: 2,
            max_nodes: 2,
            heartbeat_interval_ms: 10_000,
            heartbeat_timeout_ms: 60_000,
            rendezvous_settle_ms: 60_000,
            eval_lease_ms: 60_000,
            eval_max_attempts: 2,
            checkpoint_root: Some("file:///ckpt".into()),
            global_batch: Some(8),
            stragglers: coordinator::state::stragglers::StragglerPolicy::DEFAULT,
        },
        tls: None,
    }
}

#[derive(Debug, Clone)]
enum Request {
    Register {
        name: u8,
        procs: u32,
        digest: &'static str,
    },
    Heartbeat {
        node: u64,
        progress: Vec<(u32, u64, f64, f64)>,
        round: u64,
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
    Lease {
        agent: u8,
        digest: &'static str,
    },
    Report {
        eval: u64,
        attempt: u32,
    },
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(-1.0), 0.0..1e6f64]
}

fn url() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("file:///etc".to_string()),
        (0u64..30).prop_map(|s| format!("file:///ckpt/step-{s:09}")),
        (0u64..30).prop_map(|s| format!("file:///elsewhere/step-{s:09}")),
        (0u64..30).prop_map(|s| format!("file:///ckpt/../x/step-{s:09}")),
        "[ -~]{0,24}",
    ]
}

fn request() -> impl Strategy<Value = Request> {
    let digest = prop_oneof![Just("cfg"), Just("other")];
    prop_oneof![
        (0u8..3, 0u32..3, digest.clone()).prop_map(|(name, procs, digest)| Request::Register {
            name,
            procs,
            digest
        }),
        (
            0u64..4,
            prop::collection::vec((0u32..6000, 0u64..30, number(), number()), 0..4),
            0u64..4,
            any::<bool>()
        )
            .prop_map(|(node, progress, round, finished)| Request::Heartbeat {
                node,
                progress,
                round,
                finished
            }),
        (0u64..4, 0usize..4, 0u64..4).prop_map(|(node, addresses, round)| Request::Join {
            node,
            addresses,
            round
        }),
        (0u64..4, 0u64..30, url()).prop_map(|(node, step, url)| Request::Checkpoint {
            node,
            step,
            url
        }),
        (0u8..2, digest).prop_map(|(agent, digest)| Request::Lease { agent, digest }),
        (0u64..4, 0u32..3).prop_map(|(eval, attempt)| Request::Report { eval, attempt }),
    ]
}

/// How long a join may wait for its round before the wait is ended (not a refusal: its
/// round cannot close within a case unless both nodes join).
const JOIN_WAIT: Duration = Duration::from_millis(150);

async fn send(client: &mut Client, request: &Request) -> Code {
    let result = match request.clone() {
        Request::Register {
            name,
            procs,
            digest,
        } => client
            .register_node(wire::RegisterNodeRequest {
                node_name: format!("n{name}"),
                host: "127.0.0.1".into(),
                device_kind: "cpu".into(),
                procs,
                config_digest: digest.into(),
                ..Default::default()
            })
            .await
            .map(drop),
        Request::Heartbeat {
            node,
            progress,
            round,
            finished,
        } => client
            .heartbeat(wire::HeartbeatRequest {
                node_id: node,
                progress: progress
                    .into_iter()
                    .map(|(rank, step, loss, rate)| wire::RankProgress {
                        global_rank: rank,
                        step,
                        loss,
                        samples_per_sec: rate,
                        ..Default::default()
                    })
                    .collect(),
                round,
                finished,
                ..Default::default()
            })
            .await
            .map(drop),
        Request::Join {
            node,
            addresses,
            round,
        } => {
            let join = client.join_rendezvous(wire::JoinRendezvousRequest {
                node_id: node,
                addresses: (0..addresses)
                    .map(|i| format!("127.0.0.1:{}", 7000 + i))
                    .collect(),
                bootstrap_offer: vec![1; 32],
                round,
            });
            match tokio::time::timeout(JOIN_WAIT, join).await {
                Ok(answer) => answer.map(drop),
                Err(_) => return Code::DeadlineExceeded,
            }
        }
        Request::Checkpoint { node, step, url } => client
            .report_checkpoint(wire::ReportCheckpointRequest {
                node_id: node,
                step,
                url,
                round: step % 3,
                config_digest: "cfg".into(),
                eval_suites: vec!["retrieval".into()],
                ..Default::default()
            })
            .await
            .map(drop),
        Request::Lease { agent, digest } => client
            .lease_eval(wire::LeaseEvalRequest {
                agent_name: format!("agent-{agent}"),
                config_digest: digest.into(),
            })
            .await
            .map(drop),
        Request::Report { eval, attempt } => client
            .report_eval_result(wire::ReportEvalResultRequest {
                eval_id: eval,
                attempt,
                ..Default::default()
            })
            .await
            .map(drop),
    };
    result.err().map_or(Code::Ok, |status| status.code())
}

/// The job as `status` shows it, without what time alone changes.
async fn job(client: &mut Client) -> JobStatus {
    let reply = client.get_status(wire::GetStatusRequest {}).await.unwrap();
    let mut status = JobStatus::try_from(reply.into_inner()).unwrap();
    for member in &mut status.members {
        member.heartbeat_age_ms = 0;
    }
    status
}

fn run_case(requests: &[Request]) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = RunningServer::start(config(dir.path())).await.unwrap();
        let mut client = connect(&server.url(), TOKEN).await.unwrap();
        // Two nodes to start with (ids 1 and 2), so that many requests reach real ones.
        for name in 0..2 {
            let register = Request::Register {
                name,
                procs: 1,
                digest: "cfg",
            };
            prop_assert_eq!(send(&mut client, &register).await, Code::Ok);
        }
        for request in requests {
            let before = job(&mut client).await;
            let code = send(&mut client, request).await;
            prop_assert!(
                // A handler that panics is seen as CANCELLED.
                !matches!(
                    code,
                    Code::Internal | Code::Unknown | Code::Unavailable | Code::Cancelled
                ),
                "{request:?} failed inside the coordinator: {code:?}"
            );
            let refused = !matches!(code, Code::Ok | Code::DeadlineExceeded);
            if refused {
                let after = job(&mut client).await;
                prop_assert_eq!(
                    &before,
                    &after,
                    "{:?} was refused ({:?}) but changed the job",
                    request,
                    code
                );
            }
        }
        server.shutdown().await.unwrap();
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_request_is_answered_and_a_refused_one_changes_nothing(
        requests in prop::collection::vec(request(), 1..16)
    ) {
        run_case(&requests)?;
    }
}
