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

/// One HTTP/1.1 GET over TLS to the coordinator's HTTP port, trusting `ca`: the response.
async fn https_get(addr: std::net::SocketAddr, ca: &Ca, path: &str, token: &str) -> String {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    https_request(addr, ca, &request).await
}

/// `request` (HTTP/1.1 text) over TLS to `addr`, trusting `ca`: the response.
async fn https_request(addr: std::net::SocketAddr, ca: &Ca, request: &str) -> String {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(&ca.cert).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

/// With TLS configured, the HTTP port (metrics, dashboard) is served over TLS with the
/// same certificate: a client trusting the CA gets the metrics with the token, plain HTTP
/// gets no answer, and the dashboard's cookie is marked Secure.
#[tokio::test]
async fn the_metrics_and_dashboard_port_is_served_over_tls_when_the_coordinator_is() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let Pair { cert, key } = ca.server("server");
    let tls = ServerTls::load(&cert, &key, None).unwrap();
    let mut cfg = config(dir.path(), Some(tls));
    cfg.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = RunningServer::start(cfg).await.unwrap();
    let addr = server.metrics_addr.unwrap();
    assert_eq!(server.http_url().unwrap(), format!("https://{addr}/"));

    let metrics = bounded(https_get(addr, &ca, "/metrics", TOKEN)).await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("exiflang_job_state"), "{metrics}");
    let refused = bounded(https_get(addr, &ca, "/metrics", "wrong")).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let body = format!("token={TOKEN}");
    let login = format!(
        "POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let signed_in = bounded(https_request(addr, &ca, &login)).await;
    assert!(signed_in.starts_with("HTTP/1.1 303"), "{signed_in}");
    let cookie = signed_in
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_default();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("; Secure"),
        "{cookie}"
    );

    // Plain HTTP to the TLS port: no HTTP answer.
    let plain = bounded(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    })
    .await;
    assert!(!plain.contains("HTTP/1.1 200"), "{plain}");
    server.shutdown().await.unwrap();
}
