//! Connecting to a coordinator with the shared token attached to every call, over
//! plain `http://` or TLS (`https://`, see [`crate::tls`]).
//!
//! A connection is checked before it is handed out: one `GetStatus` call must reach the
//! coordinator (any answer it gives, even a refused token, proves the transport works).
//! So a plain client at a TLS coordinator, an untrusted certificate or a missing client
//! certificate is a [`ConnectError`] that says what went wrong, not a failure at the
//! first real call.

use crate::auth::BearerToken;
use crate::tls::ClientTls;
use crate::wire::coordinator_client::CoordinatorClient;
use crate::wire::PingRequest;
use std::error::Error as _;
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A coordinator client that sends the token with every call.
pub type Client = CoordinatorClient<InterceptedService<Channel, BearerToken>>;

/// How long the TCP connection and the first call may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A coordinator that cannot be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not usable.
    #[error("coordinator URL {url:?} is invalid: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The TLS files load but do not make a usable client (e.g. the key does not belong
    /// to the certificate).
    #[error("the TLS settings for {url} ({files}) are unusable: {detail}")]
    Tls {
        /// The URL given.
        url: String,
        /// The files, as [`ClientTls::describe`] names them.
        files: String,
        /// Why.
        detail: String,
    },
    /// Nothing answers there, or the connection fails before any answer.
    #[error("cannot connect to the coordinator at {url}: {detail}")]
    Connect {
        /// The URL given.
        url: String,
        /// The error chain, with what to do where it is recognised.
        detail: String,
    },
}

/// Connects to `url` (e.g. `http://127.0.0.1:50051`) with `token`; an `https://` URL
/// trusts the system's CA roots.
pub async fn connect(url: &str, token: &str) -> Result<Client, ConnectError> {
    connect_with(url, token, None).await
}

/// Connects to `url` with `token` and, for an `https://` URL, the TLS settings `tls`
/// (the system's CA roots and no client certificate when `None`). TLS settings with an
/// `http://` URL are refused: the connection would not use them.
pub async fn connect_with(
    url: &str,
    token: &str,
    tls: Option<&ClientTls>,
) -> Result<Client, ConnectError> {
    let invalid = |reason: String| ConnectError::Url {
        url: url.to_string(),
        reason,
    };
    let bearer = BearerToken::new(token).map_err(|s| invalid(s.message().to_string()))?;
    let endpoint = Channel::from_shared(url.to_string()).map_err(|e| invalid(e.to_string()))?;
    let https = match endpoint.uri().scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(invalid("it must start with http:// or https://".into())),
    };
    let mut endpoint = endpoint.connect_timeout(CONNECT_TIMEOUT);
    match (https, tls) {
        (true, tls) => {
            let tls = tls.cloned().unwrap_or_default();
            endpoint = endpoint
                .tls_config(tls.tonic_config())
                .map_err(|e| ConnectError::Tls {
                    url: url.to_string(),
                    files: tls.describe(),
                    detail: with_hint(chain(&e), true),
                })?;
        }
        (false, Some(tls)) => {
            return Err(invalid(format!(
                "TLS settings are given ({}) but the URL is not https://: connect with https://",
                tls.describe()
            )))
        }
        (false, None) => {}
    }
    let failed = |detail: String| ConnectError::Connect {
        url: url.to_string(),
        detail: with_hint(detail, https),
    };
    let channel = endpoint.connect().await.map_err(|e| failed(chain(&e)))?;
    let mut client = CoordinatorClient::with_interceptor(channel, bearer);
    let mut probe = tonic::Request::new(PingRequest {});
    probe.set_timeout(CONNECT_TIMEOUT);
    if let Err(status) = client.ping(probe).await {
        if status.source().is_some() || status.code() == tonic::Code::DeadlineExceeded {
            return Err(failed(describe_status(&status)));
        }
        // The coordinator answered (e.g. refused the token): the transport works, and
        // the caller sees that answer at its own first call.
    }
    Ok(client)
}

/// [`connect_with`], retried while nothing answers at `url` ([`ConnectError::Connect`])
/// for up to `patience`: on a cluster the workers may start before the coordinator (or
/// while it restarts). Other errors (a bad URL, unusable TLS files) return at once.
pub async fn connect_patiently(
    url: &str,
    token: &str,
    tls: Option<&ClientTls>,
    patience: Duration,
) -> Result<Client, ConnectError> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut pause = Duration::from_millis(500);
    loop {
        match connect_with(url, token, tls).await {
            Err(ConnectError::Connect { detail, .. })
                if tokio::time::Instant::now() + pause < deadline =>
            {
                tracing::info!(%url, error = %detail, retry_in_ms = pause.as_millis() as u64, "coordinator not reachable yet; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// Where a coordinator is and how to reach it: what `worker join` and an evaluation agent
/// are given.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Its URL (`http://host:port`, or `https://` for TLS).
    pub url: String,
    /// The shared token.
    pub token: String,
    /// What to trust and present over TLS (`https://` URLs).
    pub tls: Option<ClientTls>,
    /// How long to keep trying to reach it at start ([`connect_patiently`]).
    pub patience: Duration,
}

impl Endpoint {
    /// Connects, retrying while nothing answers for up to `patience`.
    pub async fn connect(&self) -> Result<Client, ConnectError> {
        connect_patiently(&self.url, &self.token, self.tls.as_ref(), self.patience).await
    }
}

/// A failed call as one line: its code, message and the chain of transport errors
/// behind it.
pub fn describe_status(status: &tonic::Status) -> String {
    let first = format!("{:?}: {}", status.code(), status.message());
    join_chain(vec![first], status.source())
}

/// An error and its sources, joined by `": "`, each said once.
fn chain(error: &dyn std::error::Error) -> String {
    join_chain(Vec::new(), Some(error))
}

fn join_chain(mut parts: Vec<String>, mut next: Option<&dyn std::error::Error>) -> String {
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// `detail` with what to do when the failure is one this client recognises.
fn with_hint(detail: String, https: bool) -> String {
    match hint(&detail, https) {
        Some(hint) => format!("{detail} ({hint})"),
        None => detail,
    }
}

/// What to do about a failed connection, from its error text (rustls and h2 name the
/// cause in their messages); `None` when nothing specific applies.
pub fn hint(detail: &str, https: bool) -> Option<&'static str> {
    let has = |needle: &str| detail.contains(needle);
    if has("KeyMismatch") {
        Some("the key file does not belong to the certificate file")
    } else if has("native certs") {
        Some("this machine has no CA roots to trust: pass --tls-ca")
    } else if has("UnknownIssuer") || has("unknown issuer") {
        Some("the coordinator's certificate is not signed by a CA this client trusts: pass --tls-ca with the CA that signed it")
    } else if has("NotValidForName") {
        Some("the coordinator's certificate does not name the URL's host: connect to a name or IP address the certificate lists")
    } else if has("CertificateRequired") {
        Some("the coordinator requires a client certificate: pass --tls-cert and --tls-key")
    } else if has("UnknownCA") || has("BadCertificate") || has("DecryptError") {
        Some("the coordinator refused this client's certificate: it must be signed by the CA the coordinator's tls.client_ca names")
    } else if https && (has("InvalidContentType") || has("corrupt message")) {
        Some("the coordinator does not seem to serve TLS: connect with http://")
    } else if !https && !has("refused") && !has("tcp connect") {
        Some("if the coordinator serves TLS, connect with https:// and --tls-ca")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognised_failures_say_what_to_do() {
        let cases = [
            ("invalid peer certificate: UnknownIssuer", true, "--tls-ca"),
            (
                "received fatal alert: CertificateRequired",
                true,
                "--tls-cert",
            ),
            (
                "received corrupt message of type InvalidContentType",
                true,
                "http://",
            ),
            (
                "h2 protocol error: frame with invalid size",
                false,
                "https://",
            ),
        ];
        for (detail, https, expected) in cases {
            let hint = hint(detail, https).unwrap_or_else(|| panic!("{detail}: no hint"));
            assert!(hint.contains(expected), "{detail}: {hint}");
        }
        assert_eq!(hint("tcp connect error: Connection refused", false), None);
    }

    #[tokio::test]
    async fn tls_settings_with_a_plain_url_or_a_strange_scheme_are_refused() {
        let tls = ClientTls::default();
        let err = connect_with("http://127.0.0.1:1", "t", Some(&tls))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&err, ConnectError::Url { reason, .. } if reason.contains("https://")),
            "{err}"
        );
        let err = connect("ftp://127.0.0.1:1", "t").await.err().unwrap();
        assert!(matches!(err, ConnectError::Url { .. }), "{err}");
    }
}
