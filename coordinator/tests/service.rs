//! The coordinator over real gRPC: a server on 127.0.0.1:0 in this process, tonic
//! clients. Rounds settle in 200 ms; tests about failures use an 800 ms heartbeat
//! timeout, the others one long enough that no node dies on a slow machine. Every wait
//! is a poll with a generous cap, never a timing assertion.

use coordinator::client::{connect, Client};
use coordinator::config::ServeConfig;
use coordinator::limits::CallLimits;
use coordinator::roles::Credentials;
use coordinator::server::RunningServer;
use coordinator::state::Policy;
use proto::domain::{Directive, JobPhase, JobStatus, RoundId};
use proto::wire::{self, coordinator_client::CoordinatorClient};
use std::path::Path;
use std::time::{Duration, Instant};

const TOKEN: &str = "test-token";

/// Failure tests time out silent nodes after 800 ms, the others after 60 s.
const SHORT_TIMEOUT_MS: u64 = 800;
const LONG_TIMEOUT_MS: u64 = 60_000;

fn config(db_path: &Path, heartbeat_timeout_ms: u64) -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        health_listen: Some("127.0.0.1:0".parse().unwrap()),
        metrics_listen: None,
        credentials: Credentials::shared(TOKEN).unwrap(),
        limits: CallLimits::DEFAULT,
        db_path: db_path.to_path_buf(),
        policy: Policy {
            min_nodes: 2,
            max_nodes: 2,
            heartbeat_interval_ms: 100,
            heartbeat_timeout_ms,
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

async fn start(db_path: &Path, heartbeat_timeout_ms: u64) -> (RunningServer, Client) {
    let server = RunningServer::start(config(db_path, heartbeat_timeout_ms))
        .await
        .unwrap();
    let client = connect(&server.url(), TOKEN).await.unwrap();
    (server, client)
}

async fn register(client: &mut Client, name: &str) -> u64 {
    let request = wire::RegisterNodeRequest {
        node_name: name.into(),
        host: format!("{name}.local"),
        device_kind: "cpu".into(),
        procs: 1,
        config_digest: "cfg".into(),
        ..Default::default()
    };
    client
        .register_node(request)
        .await
        .unwrap()
        .into_inner()
        .node_id
}

async fn join(mut client: Client, node: u64, round: u64) -> wire::JoinRendezvousResponse {
    let request = wire::JoinRendezvousRequest {
        node_id: node,
        addresses: vec![format!("10.0.0.{node}:7000")],
        bootstrap_offer: vec![node as u8],
        round,
    };
    client.join_rendezvous(request).await.unwrap().into_inner()
}

async fn beat(client: &mut Client, node: u64) -> Directive {
    let request = wire::HeartbeatRequest {
        node_id: node,
        ..Default::default()
    };
    client
        .heartbeat(request)
        .await
        .unwrap()
        .into_inner()
        .try_into()
        .unwrap()
}

async fn status(client: &mut Client) -> JobStatus {
    let reply = client.get_status(wire::GetStatusRequest {}).await.unwrap();
    reply.into_inner().try_into().unwrap()
}

/// Heartbeats `node` every 100 ms until the directive is not `Continue` (10 s at most).
async fn beat_until_told(client: &mut Client, node: u64) -> Directive {
    let cap = Instant::now() + Duration::from_secs(10);
    loop {
        let directive = beat(client, node).await;
        if directive != Directive::Continue || Instant::now() > cap {
            return directive;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts a join of `node` alone (min_nodes is 2, so it waits) and returns once the
/// coordinator has recorded it.
async fn lone_join(
    client: &mut Client,
    node: u64,
) -> tokio::task::JoinHandle<Result<tonic::Response<wire::JoinRendezvousResponse>, tonic::Status>> {
    let mut joiner = client.clone();
    let request = wire::JoinRendezvousRequest {
        node_id: node,
        addresses: vec!["10.0.0.1:7000".into()],
        ..Default::default()
    };
    let waiting = tokio::spawn(async move { joiner.join_rendezvous(request).await });
    let cap = Instant::now() + Duration::from_secs(10);
    while status(client).await.joined_nodes == 0 && Instant::now() < cap {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    waiting
}

/// Registers `a` and `b` and lets both join round 1.
async fn two_node_round(client: &mut Client) -> (u64, u64, [wire::JoinRendezvousResponse; 2]) {
    let a = register(client, "a").await;
    let b = register(client, "b").await;
    let (ra, rb) = tokio::join!(join(client.clone(), a, 0), join(client.clone(), b, 0));
    (a, b, [ra, rb])
}

#[tokio::test]
async fn two_nodes_join_the_same_round_with_ranks_0_and_1_and_the_leaders_address() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut client) = start(&dir.path().join("c.db"), LONG_TIMEOUT_MS).await;
    let (a, b, [ra, rb]) = two_node_round(&mut client).await;
    assert_eq!((ra.round, rb.round), (1, 1));
    assert_eq!((ra.world_size, rb.world_size), (2, 2));
    assert_eq!(
        (ra.global_ranks.clone(), rb.global_ranks.clone()),
        (vec![0], vec![1])
    );
    let addresses = |r: &wire::JoinRendezvousResponse| {
        r.peers
            .iter()
            .map(|p| (p.rank, p.address.clone()))
            .collect::<Vec<_>>()
    };
    let leader = (0, format!("10.0.0.{a}:7000"));
    assert_eq!(addresses(&ra), vec![leader.clone()]);
    assert_eq!(
        addresses(&rb),
        vec![leader, (1, format!("10.0.0.{b}:7000"))],
        "a node gets the leader's address and its own"
    );
    assert_eq!(
        ra.bootstrap,
        vec![a as u8],
        "bootstrap offered by the rank-0 node"
    );
    assert_eq!(ra.start, Some(wire::DataPosition::default()));
    assert!(ra.resume_from.is_none());
    assert_eq!(status(&mut client).await.phase, JobPhase::Running);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_node_that_stops_heartbeating_is_declared_dead_and_the_other_told_to_rejoin() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut client) = start(&dir.path().join("c.db"), SHORT_TIMEOUT_MS).await;
    let (a, b, _) = two_node_round(&mut client).await;
    assert_eq!(
        beat_until_told(&mut client, a).await,
        Directive::Rejoin {
            round: RoundId::new(2)
        }
    );
    let view = status(&mut client).await;
    assert_eq!(view.phase, JobPhase::Restarting);
    let alive = |id| {
        view.members
            .iter()
            .find(|m| m.node_id.get() == id)
            .unwrap()
            .alive
    };
    assert!(alive(a) && !alive(b));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_reported_checkpoint_shows_in_status_and_is_where_the_next_round_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut client) = start(&dir.path().join("c.db"), SHORT_TIMEOUT_MS).await;
    let (a, _b, _) = two_node_round(&mut client).await;
    let position = wire::DataPosition {
        epoch: 2,
        samples_consumed: 300,
    };
    let report = wire::ReportCheckpointRequest {
        node_id: a,
        round: 1,
        step: 50,
        url: "file:///runs/x/step-000000050".into(),
        position: Some(position),
        config_digest: "cfg".into(),
        eval_suites: vec![],
    };
    assert!(
        client
            .report_checkpoint(report)
            .await
            .unwrap()
            .into_inner()
            .newest
    );
    let view = status(&mut client).await;
    assert_eq!(view.checkpoints.len(), 1);
    assert_eq!(view.checkpoints[0].url, "file:///runs/x/step-000000050");

    // b goes silent; c replaces it in round 2, which resumes from the checkpoint.
    assert_eq!(
        beat_until_told(&mut client, a).await,
        Directive::Rejoin {
            round: RoundId::new(2)
        }
    );
    let c = register(&mut client, "c").await;
    let (ra, rc) = tokio::join!(join(client.clone(), a, 2), join(client.clone(), c, 0));
    assert_eq!((ra.round, rc.round), (2, 2));
    assert_eq!(
        (ra.global_ranks.clone(), rc.global_ranks.clone()),
        (vec![0], vec![1])
    );
    assert_eq!(rc.start, Some(position));
    assert_eq!(rc.resume_from.unwrap().url, "file:///runs/x/step-000000050");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn calls_without_or_with_a_wrong_token_are_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start(&dir.path().join("c.db"), LONG_TIMEOUT_MS).await;
    let mut bare = CoordinatorClient::connect(server.url()).await.unwrap();
    let err = bare
        .get_status(wire::GetStatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let mut wrong = connect(&server.url(), "not-the-token").await.unwrap();
    let err = wrong
        .register_node(wire::RegisterNodeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn health_is_served_without_the_token_on_its_own_port_and_only_there() {
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    use tonic_health::ServingStatus;
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start(&dir.path().join("c.db"), LONG_TIMEOUT_MS).await;
    let health_url = format!("http://{}", server.health_addr.unwrap());
    let channel = |url: String| async move {
        tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect()
            .await
            .unwrap()
    };
    let mut probe = HealthClient::new(channel(health_url.clone()).await);
    let status = probe
        .check(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    // The health port serves nothing else, and the main port does not serve health.
    let mut other = CoordinatorClient::connect(health_url).await.unwrap();
    let err = other
        .get_status(wire::GetStatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    let mut main = HealthClient::new(channel(server.url()).await);
    let err = main.check(HealthCheckRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_restarted_server_on_the_same_database_has_the_same_status_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let (server, mut client) = start(&db, LONG_TIMEOUT_MS).await;
    let (a, _b, _) = two_node_round(&mut client).await;
    let report = wire::ReportCheckpointRequest {
        node_id: a,
        round: 1,
        step: 10,
        url: "file:///runs/x/step-000000010".into(),
        position: Some(wire::DataPosition {
            epoch: 0,
            samples_consumed: 64,
        }),
        config_digest: "cfg".into(),
        eval_suites: vec!["splice".into()],
    };
    client.report_checkpoint(report).await.unwrap();
    let lease = wire::LeaseEvalRequest {
        agent_name: "agent".into(),
        config_digest: "cfg".into(),
    };
    let leased = client.lease_eval(lease).await.unwrap().into_inner();
    assert_eq!(leased.lease.map(|l| l.suite).as_deref(), Some("splice"));
    let before = status(&mut client).await;
    assert_eq!(before.evals.len(), 1);
    server.shutdown().await.unwrap();

    let (server, mut client) = start(&db, LONG_TIMEOUT_MS).await;
    let after = status(&mut client).await;
    let without_ages = |mut s: JobStatus| {
        s.members.iter_mut().for_each(|m| m.heartbeat_age_ms = 0);
        s
    };
    assert_eq!(without_ages(after), without_ages(before));
    assert_eq!(
        beat(&mut client, a).await,
        Directive::Continue,
        "members keep training"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unreadable_database_stops_the_server_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    std::fs::write(&db, vec![0x42; 4096]).unwrap();
    let err = RunningServer::start(config(&db, LONG_TIMEOUT_MS))
        .await
        .err()
        .expect("must refuse");
    assert!(err.to_string().contains("c.db"), "{err}");
}

#[tokio::test]
async fn stop_with_drain_tells_members_to_drain_and_fails_a_waiting_join() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut client) = start(&dir.path().join("c.db"), LONG_TIMEOUT_MS).await;
    let a = register(&mut client, "a").await;
    let waiting = lone_join(&mut client, a).await;
    let stop = wire::StopJobRequest {
        drain: true,
        reason: "test".into(),
    };
    let phase = client.stop_job(stop).await.unwrap().into_inner().state;
    assert_eq!(phase, wire::JobState::Stopped as i32);
    let err = waiting.await.unwrap().unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(beat(&mut client, a).await, Directive::Drain);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_answers_a_waiting_join_with_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut client) = start(&dir.path().join("c.db"), LONG_TIMEOUT_MS).await;
    let a = register(&mut client, "a").await;
    let waiting = lone_join(&mut client, a).await;
    server.shutdown().await.unwrap();
    let err = waiting.await.unwrap().unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
}

/// The hostile requests of RELIABILITY.md, sent as any client could, with the job's token:
/// each is INVALID_ARGUMENT and leaves the job's status as it was.
#[tokio::test]
async fn hostile_progress_and_checkpoints_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut client) = start(&dir.path().join("c.db"), LONG_TIMEOUT_MS).await;
    let a = register(&mut client, "a").await;
    let b = register(&mut client, "b").await;
    let (ja, jb) = tokio::join!(join(client.clone(), a, 0), join(client.clone(), b, 0));
    assert_eq!((ja.world_size, jb.world_size), (2, 2));
    let checkpoint = |step: u64, url: &str| wire::ReportCheckpointRequest {
        node_id: a,
        round: ja.round,
        step,
        url: url.into(),
        position: Some(wire::DataPosition::default()),
        config_digest: "cfg".into(),
        eval_suites: vec![],
    };
    // A legitimate checkpoint first: its directory becomes the job's.
    client
        .report_checkpoint(checkpoint(10, "s3://b/run/step-000000010"))
        .await
        .unwrap();
    let before = status(&mut client).await;

    let rank = |global_rank: u32, loss: f64, rate: f64| wire::RankProgress {
        global_rank,
        step: 12,
        loss,
        samples_per_sec: rate,
        ..Default::default()
    };
    let progress = |progress: Vec<wire::RankProgress>| wire::HeartbeatRequest {
        node_id: a,
        progress,
        ..Default::default()
    };
    let hostile_beats = [
        ("NaN loss", progress(vec![rank(0, f64::NAN, 1.0)])),
        ("negative samples/s", progress(vec![rank(0, 1.0, -3.0)])),
        (
            "200,000 progress entries",
            progress(vec![wire::RankProgress::default(); 200_000]),
        ),
        (
            "rank 4096 of a two-rank world",
            progress(vec![rank(4096, 1.0, 1.0)]),
        ),
    ];
    for (what, request) in hostile_beats {
        let err = client.heartbeat(request).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{what}: {err}");
    }
    // Over the 4 MiB message limit: refused before it is decoded.
    let huge = progress((0..200_000).map(|_| rank(0, 1.0, 1.0)).collect());
    let err = client.heartbeat(huge).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err}");
    for (what, request) in [
        ("a checkpoint at file:///etc", checkpoint(20, "file:///etc")),
        (
            "another directory",
            checkpoint(20, "file:///etc/step-000000020"),
        ),
        (
            "a .. segment",
            checkpoint(20, "s3://b/run/../x/step-000000020"),
        ),
        (
            "a name of another step",
            checkpoint(20, "s3://b/run/step-000000021"),
        ),
    ] {
        let err = client.report_checkpoint(request).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{what}: {err}");
    }
    let after = status(&mut client).await;
    assert_eq!(after.checkpoints, before.checkpoints);
    for (m, was) in after.members.iter().zip(&before.members) {
        assert_eq!(
            (m.node_id, &m.progress, m.alive),
            (was.node_id, &was.progress, was.alive)
        );
        // A refused heartbeat is no sign of life either.
        assert!(
            m.heartbeat_age_ms >= was.heartbeat_age_ms,
            "{m:?} / {was:?}"
        );
    }
    assert_eq!(after.round, before.round);
}

#[tokio::test]
async fn nodes_whose_processes_cannot_split_the_global_batch_are_refused_with_the_sizes_that_can() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir.path().join("c.db"), LONG_TIMEOUT_MS);
    config.policy.global_batch = Some(9);
    let server = RunningServer::start(config).await.unwrap();
    let client = connect(&server.url(), TOKEN).await.unwrap();
    let (a, b) = (
        register(&mut client.clone(), "a").await,
        register(&mut client.clone(), "b").await,
    );
    // Two nodes of one process each: the most this round may have, and 2 does not
    // split 9.
    let joins = [a, b].map(|node| {
        let mut client = client.clone();
        tokio::spawn(async move {
            let request = wire::JoinRendezvousRequest {
                node_id: node,
                addresses: vec![format!("10.0.0.{node}:7000")],
                ..Default::default()
            };
            client.join_rendezvous(request).await
        })
    });
    for join in joins {
        let err = join.await.unwrap().unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err}");
        assert!(
            err.message().contains("world sizes that can are 1, 3, 9"),
            "{err}"
        );
    }
    assert_eq!(
        status(&mut client.clone()).await.phase,
        JobPhase::WaitingForNodes
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn heartbeat_progress_kept_in_memory_is_written_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let (server, mut client) = start(&db, LONG_TIMEOUT_MS).await;
    let a = register(&mut client, "a").await;
    let beat = wire::HeartbeatRequest {
        node_id: a,
        progress: vec![wire::RankProgress {
            global_rank: 0,
            step: 17,
            loss: 2.5,
            ..Default::default()
        }],
        ..Default::default()
    };
    client.heartbeat(beat).await.unwrap();
    // A soft heartbeat is not written at once...
    let stored = |db: &Path| {
        let store = coordinator::store::Store::open(db).unwrap();
        let state = store.load().unwrap().unwrap();
        let node = state.nodes.values().next().unwrap().clone();
        (
            node.progress.first().map(|p| p.step.get()),
            node.last_heartbeat_ms,
        )
    };
    let (progress, _) = stored(&db);
    assert_eq!(progress, None, "soft state waits for the flush");
    // ...and is there once the coordinator has shut down.
    server.shutdown().await.unwrap();
    let (progress, last) = stored(&db);
    assert_eq!(progress, Some(17));
    assert!(last > 0);
}
