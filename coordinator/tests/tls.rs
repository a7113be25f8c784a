//! The coordinator over TLS, with certificates made in the test (`pki`): which clients
//! get in (the right CA, a client certificate when one is required, the token on every
//! call) and that every refusal is a clear connect error, never a hang.

mod pki;

use coordinator::client::{connect, connect_with, describe_status, ConnectError};
use coordinator::config::ServeConfig;
use coordinator::limits::CallLimits;
use coordinator::roles::Credentials;
use coordinator::server::{RunningServer, ServeError};
use coordinator::state::Policy;
use coordinator::tls::ServerTls;
use pki::{Ca, Pair};
use proto::tls::ClientTls;
use proto::wire::{self, coordinator_client::CoordinatorClient};
use std::future::Future;
use std::path::Path;
use std::time::Duration;
use tonic::Code;

const TOKEN: &str = "tls-test-token";

fn config(dir: &Path, tls: Option<ServerTls>) -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        health_listen: None,
        metrics_listen: None,
        credentials: Credentials::shared(TOKEN).unwrap(),
        limits: CallLimits::DEFAULT,
        db_path: dir.join("c.db"),
        policy: Policy {
            min_nodes: 1,
            max_nodes: 1,
            heartbeat_interval_ms: 1_000,
            heartbeat_timeout_ms: 60_000,
            rendezvous_settle_ms: 200,
            eval_lease_ms: 2_000,
            eval_max_attempts: 2,
            checkpoint_root: None,
            global_batch: None,
            stragglers: coordinator::state::stragglers::StragglerPolicy::DEFAULT,
        },
        tls,
    }
}

/// A TLS server with a certificate of `ca`; clients need a certificate of `client_ca`
/// when it is given.
async fn tls_server(dir: &Path, ca: &Ca, client_ca: Option<&Ca>) -> RunningServer {
    let Pair { cert, key } = ca.server("server");
    let tls = ServerTls::load(&cert, &key, client_ca.map(|c| c.cert.as_path())).unwrap();
    RunningServer::start(config(dir, Some(tls))).await.unwrap()
}

fn trusting(ca: &Ca, identity: Option<&Pair>) -> ClientTls {
    ClientTls::load(
        Some(&ca.cert),
        identity.map(|p| p.cert.as_path()),
        identity.map(|p| p.key.as_path()),
    )
    .unwrap()
    .unwrap()
}

/// Awaits `future`, failing the test if it takes more than 30 s (a hang).
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("the connection attempt hung")
}

/// The connect error's text; panics when the connection succeeded.
async fn refused(url: &str, tls: Option<&ClientTls>) -> String {
    match bounded(connect_with(url, TOKEN, tls)).await {
        Ok(_) => panic!("{url}: the connection was accepted"),
        Err(e @ ConnectError::Connect { .. }) => e.to_string(),
        Err(e) => panic!("{url}: expected a connect error, got {e}"),
    }
}

#[tokio::test]
async fn a_client_that_trusts_the_ca_and_has_the_token_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "server");
    let server = tls_server(dir.path(), &ca, None).await;
    let url = server.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let mut client = bounded(connect_with(&url, TOKEN, Some(&trusting(&ca, None))))
        .await
        .unwrap();
    let request = wire::RegisterNodeRequest {
        node_name: "a".into(),
        procs: 1,
        config_digest: "cfg".into(),
        ..Default::default()
    };
    let node = client.register_node(request).await.unwrap().into_inner();
    let status = client
        .get_status(wire::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.members.len(), 1);
    assert_eq!(status.members[0].node_id, node.node_id);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn over_tls_a_call_without_the_token_or_with_a_wrong_one_is_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "server");
    let server = tls_server(dir.path(), &ca, None).await;
    let tls = trusting(&ca, None);
    let mut wrong = bounded(connect_with(&server.url(), "not-the-token", Some(&tls)))
        .await
        .expect("the transport works; the token is checked per call");
    let err = wrong
        .register_node(wire::RegisterNodeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let channel = tonic::transport::Channel::from_shared(server.url())
        .unwrap()
        .tls_config(tls.tonic_config())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let err = CoordinatorClient::new(channel)
        .get_status(wire::GetStatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::Unauthenticated,
        "{}",
        describe_status(&err)
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_client_that_trusts_another_ca_is_refused_at_connect() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "server");
    let other = Ca::new(dir.path(), "other");
    let server = tls_server(dir.path(), &ca, None).await;
    let err = refused(&server.url(), Some(&trusting(&other, None))).await;
    assert!(err.contains("--tls-ca"), "says which CA to trust: {err}");
    // The system's roots do not know the test CA either.
    let err = refused(&server.url(), None).await;
    assert!(err.contains("--tls-ca"), "{err}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_plain_client_at_a_tls_server_and_a_tls_client_at_a_plain_one_fail_at_connect() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "server");
    let server = tls_server(dir.path(), &ca, None).await;
    let plain_url = format!("http://{}", server.addr);
    let err = match bounded(connect(&plain_url, TOKEN)).await {
        Ok(_) => panic!("a plain client got through to a TLS server"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("https://"), "tells to use https: {err}");
    server.shutdown().await.unwrap();

    let plain = RunningServer::start(config(dir.path(), None))
        .await
        .unwrap();
    let tls_url = format!("https://{}", plain.addr);
    let err = refused(&tls_url, Some(&trusting(&ca, None))).await;
    assert!(err.contains("http://"), "tells to use http: {err}");
    plain.shutdown().await.unwrap();
}

#[tokio::test]
async fn with_a_client_ca_only_clients_with_a_certificate_it_signed_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "server");
    let clients = Ca::new(dir.path(), "clients");
    let strangers = Ca::new(dir.path(), "strangers");
    let server = tls_server(dir.path(), &ca, Some(&clients)).await;
    let url = server.url();

    let err = refused(&url, Some(&trusting(&ca, None))).await;
    assert!(
        err.contains("--tls-cert"),
        "says a certificate is needed: {err}"
    );

    let stranger = strangers.client("stranger");
    let err = refused(&url, Some(&trusting(&ca, Some(&stranger)))).await;
    assert!(
        err.contains("client_ca"),
        "says whose signature is needed: {err}"
    );

    let member = clients.client("member");
    let mut client = bounded(connect_with(
        &url,
        TOKEN,
        Some(&trusting(&ca, Some(&member))),
    ))
    .await
    .unwrap();
    let status = client.get_status(wire::GetStatusRequest {}).await.unwrap();
    assert_eq!(status.into_inner().job_id, 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_key_that_does_not_belong_to_the_certificate_stops_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "server");
    let first = ca.server("first");
    let second = ca.server("second");
    let tls = ServerTls::load(&first.cert, &second.key, None).unwrap();
    let err = RunningServer::start(config(dir.path(), Some(tls)))
        .await
        .err()
        .expect("a mismatched key must not start");
    assert!(matches!(err, ServeError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("first.pem"), "{err}");
}

#[tokio::test]
async fn certs_makes_files_a_coordinator_serves_with_and_clients_trust_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tls");
    let certs = |out: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_coordinator"))
            .args(["certs", "--dns", "exiflang-coordinator", "--out"])
            .arg(out)
            .output()
            .unwrap()
    };
    let made = certs(&out);
    assert!(made.status.success(), "{made:?}");
    let mode = std::fs::metadata(out.join("tls.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the key is private");
    let tls = ServerTls::load(&out.join("tls.crt"), &out.join("tls.key"), None).unwrap();
    let server = RunningServer::start(config(dir.path(), Some(tls)))
        .await
        .unwrap();
    let trust = ClientTls::load(Some(&out.join("ca.crt")), None, None)
        .unwrap()
        .unwrap();
    // The launch's own client (127.0.0.1) and one using a name (localhost) are served.
    let port = server.addr.port();
    for url in [server.url(), format!("https://localhost:{port}")] {
        let mut client = bounded(connect_with(&url, TOKEN, Some(&trust)))
            .await
            .unwrap();
        let status = client.get_status(wire::GetStatusRequest {}).await;
        assert!(status.is_ok(), "{url}: {status:?}");
    }
    // Another CA's clients are not fooled, and the files are never overwritten.
    let other = Ca::new(dir.path(), "other");
    let err = refused(&server.url(), Some(&trusting(&other, None))).await;
    assert!(err.contains("certificate"), "{err}");
    let again = certs(&out);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwritten"));
    server.shutdown().await.unwrap();
}
