//! Roles and call limits over real gRPC: a coordinator on 127.0.0.1:0 with one token per
//! role; clients holding each token make every call of the service; a client that floods
//! the coordinator is slowed down on its own while a node beside it is served.

use coordinator::client::{connect, Client};
use coordinator::config::ServeConfig;
use coordinator::limits::CallLimits;
use coordinator::roles::{Credentials, Role};
use coordinator::server::RunningServer;
use coordinator::state::Policy;
use proto::domain::{JobPhase, JobStatus};
use proto::wire;
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::Code;

fn credentials() -> Credentials {
    Credentials::per_role("node-secret", "agent-secret", "operator-secret").unwrap()
}

fn config(db_path: &Path, limits: CallLimits) -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        health_listen: None,
        metrics_listen: None,
        credentials: credentials(),
        limits,
        db_path: db_path.to_path_buf(),
        policy: Policy {
            min_nodes: 1,
            max_nodes: 1,
            heartbeat_interval_ms: 100,
            heartbeat_timeout_ms: 60_000,
            rendezvous_settle_ms: 200,
            eval_lease_ms: 2_000,
            eval_max_attempts: 2,
            checkpoint_root: None,
            global_batch: None,
            stragglers: coordinator::state::stragglers::StragglerPolicy::DEFAULT,
        },
        tls: None,
    }
}

const METHODS: [(&str, Role); 9] = [
    ("RegisterNode", Role::Node),
    ("Heartbeat", Role::Node),
    ("JoinRendezvous", Role::Node),
    ("ReportCheckpoint", Role::Node),
    ("LeaseEval", Role::Agent),
    ("RenewEvalLease", Role::Agent),
    ("ReportEvalResult", Role::Agent),
    ("GetStatus", Role::Operator),
    ("StopJob", Role::Operator),
];

fn timed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_secs(5));
    request
}

/// Makes the call named `method` with an empty request; the status code it got (`Ok`
/// for an answer).
async fn call(client: &mut Client, method: &str) -> Code {
    let result = match method {
        "RegisterNode" => client
            .register_node(timed(wire::RegisterNodeRequest::default()))
            .await
            .map(drop),
        "Heartbeat" => client
            .heartbeat(timed(wire::HeartbeatRequest::default()))
            .await
            .map(drop),
        "JoinRendezvous" => client
            .join_rendezvous(timed(wire::JoinRendezvousRequest::default()))
            .await
            .map(drop),
        "ReportCheckpoint" => client
            .report_checkpoint(timed(wire::ReportCheckpointRequest::default()))
            .await
            .map(drop),
        "LeaseEval" => client
            .lease_eval(timed(wire::LeaseEvalRequest::default()))
            .await
            .map(drop),
        "RenewEvalLease" => client
            .renew_eval_lease(timed(wire::RenewEvalLeaseRequest::default()))
            .await
            .map(drop),
        "ReportEvalResult" => client
            .report_eval_result(timed(wire::ReportEvalResultRequest::default()))
            .await
            .map(drop),
        "GetStatus" => client
            .get_status(timed(wire::GetStatusRequest {}))
            .await
            .map(drop),
        "Ping" => client.ping(timed(wire::PingRequest {})).await.map(drop),
        "StopJob" => client
            .stop_job(timed(wire::StopJobRequest {
                drain: true,
                reason: "roles test".into(),
            }))
            .await
            .map(drop),
        other => panic!("no such method {other}"),
    };
    result.err().map_or(Code::Ok, |status| status.code())
}

async fn phase(operator: &mut Client) -> JobPhase {
    let reply = operator
        .get_status(wire::GetStatusRequest {})
        .await
        .unwrap();
    JobStatus::try_from(reply.into_inner()).unwrap().phase
}

#[tokio::test]
async fn each_roles_token_makes_exactly_its_roles_calls() {
    let dir = tempfile::tempdir().unwrap();
    let server = RunningServer::start(config(&dir.path().join("c.db"), CallLimits::DEFAULT))
        .await
        .unwrap();
    let creds = credentials();
    let mut operator = connect(&server.url(), creds.token(Role::Operator))
        .await
        .unwrap();
    // The operator's StopJob comes last: it ends the job the other calls run against.
    for role in Role::ALL {
        let mut client = connect(&server.url(), creds.token(role)).await.unwrap();
        for (method, needs) in METHODS {
            let code = call(&mut client, method).await;
            if needs == role {
                assert!(
                    !matches!(code, Code::PermissionDenied | Code::Unauthenticated),
                    "{role} calling {method}: {code:?}"
                );
            } else {
                assert_eq!(code, Code::PermissionDenied, "{role} calling {method}");
            }
        }
        assert_eq!(call(&mut client, "Ping").await, Code::Ok, "{role} pings");
        if role != Role::Operator {
            assert!(
                !phase(&mut operator).await.is_over(),
                "a {role} token stopped the job"
            );
        }
    }
    assert!(
        phase(&mut operator).await.is_over(),
        "the operator stops it"
    );
    let mut stranger = connect(&server.url(), "not-a-token").await.unwrap();
    for method in METHODS.iter().map(|(m, _)| *m).chain(["Ping"]) {
        assert_eq!(
            call(&mut stranger, method).await,
            Code::Unauthenticated,
            "{method}"
        );
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_flooding_client_is_slowed_down_alone_and_the_node_beside_it_is_served() {
    let limits = CallLimits {
        per_s: 20,
        burst: 40,
    };
    let dir = tempfile::tempdir().unwrap();
    let server = RunningServer::start(config(&dir.path().join("c.db"), limits))
        .await
        .unwrap();
    let node_token = credentials().token(Role::Node).to_string();
    let mut node = connect(&server.url(), &node_token).await.unwrap();
    let node_id = node
        .register_node(wire::RegisterNodeRequest {
            node_name: "steady".into(),
            host: "steady.local".into(),
            device_kind: "cpu".into(),
            procs: 1,
            config_digest: "cfg".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .node_id;

    // A broken node on its own connection: 16 callers in a tight loop for 3 s.
    let flooder = connect(&server.url(), &node_token).await.unwrap();
    let started = Instant::now();
    let flood_for = Duration::from_secs(3);
    let floods: Vec<_> = (0..16)
        .map(|_| {
            let mut client = flooder.clone();
            tokio::spawn(async move {
                let (mut served, mut refused) = (0u64, 0u64);
                while started.elapsed() < flood_for {
                    match call(&mut client, "Heartbeat").await {
                        Code::ResourceExhausted => refused += 1,
                        _ => served += 1,
                    }
                }
                (served, refused)
            })
        })
        .collect();

    // The steady node heartbeats every 100 ms meanwhile: every one is answered.
    let mut beats = 0;
    while started.elapsed() < flood_for {
        let request = wire::HeartbeatRequest {
            node_id,
            ..Default::default()
        };
        if let Err(status) = node.heartbeat(request).await {
            panic!("the steady node was refused during the flood: {status}");
        }
        beats += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut served, mut refused) = (0, 0);
    for flood in floods {
        let (s, r) = flood.await.unwrap();
        served += s;
        refused += r;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let allowed = f64::from(limits.burst) + f64::from(limits.per_s) * elapsed;
    println!("steady node: {beats} heartbeats served; flooder: {served} served, {refused} refused in {elapsed:.1} s");
    assert!(beats >= 10, "the steady node made {beats} heartbeats");
    assert!(refused > 0, "the flooder was never refused");
    assert!(
        served as f64 <= allowed + 1.0,
        "the flooder was served {served} calls, its limit allows {allowed:.0}"
    );
    server.shutdown().await.unwrap();
}
