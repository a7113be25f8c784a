//! What every call passes before the service sees it: the per-client call limit
//! ([`RateLimiter`], keyed by the connection's remote address), then the token, then the
//! role the method needs ([`required_role`]). A refusal is answered here (its code
//! chosen in [`crate::status`]: RESOURCE_EXHAUSTED, UNAUTHENTICATED, PERMISSION_DENIED)
//! and logged once per run of refusals of a connection, with the peer.

use super::now_ms;
use crate::limits::{Admission, CallLimits, RateLimiter};
use crate::metrics::RpcMetrics;
use crate::roles::{required_role, Credentials};
use crate::status::ServiceError;
use proto::auth::AUTHORIZATION;
use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::codegen::{http, BoxFuture, Service};
use tonic::server::NamedService;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::Status;

/// Distinct (peer, refusal) pairs remembered so each is logged once.
const LOGGED_REFUSALS: usize = 4096;

/// The shared part of every clone of a [`Guarded`] service.
struct Gate {
    credentials: Credentials,
    rpc: RpcMetrics,
    limiter: Mutex<RateLimiter<Option<SocketAddr>>>,
    logged: Mutex<HashSet<(Option<SocketAddr>, &'static str)>>,
}

/// A service behind the gate.
#[derive(Clone)]
pub(crate) struct Guarded<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S> Guarded<S> {
    pub(crate) fn new(
        inner: S,
        credentials: Credentials,
        limits: CallLimits,
        rpc: RpcMetrics,
    ) -> Self {
        Self {
            inner,
            gate: Arc::new(Gate {
                credentials,
                rpc,
                limiter: Mutex::new(RateLimiter::new(limits)),
                logged: Mutex::new(HashSet::new()),
            }),
        }
    }
}

impl Gate {
    /// `Ok` when the call may go on; the refusal to answer otherwise.
    fn check<B>(&self, request: &http::Request<B>) -> Result<(), ServiceError> {
        let peer = remote_addr(request);
        let path = request.uri().path();
        let admission = self
            .limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(&peer, now_ms());
        match admission {
            Admission::Refused { first } => {
                if first {
                    tracing::warn!(peer = %show(peer), method = path, "client over its call limit: refusing its calls until it slows down");
                }
                return Err(ServiceError::OverCallLimit);
            }
            Admission::Admitted { after_refused } if after_refused > 0 => {
                tracing::info!(peer = %show(peer), refused = after_refused, "client back under its call limit");
            }
            Admission::Admitted { .. } => {}
        }
        let header = request
            .headers()
            .get(AUTHORIZATION)
            .map(|value| value.as_bytes());
        let roles = self.credentials.roles_of(header);
        if roles.is_empty() {
            let why = if header.is_none() {
                "no token"
            } else {
                "a wrong token"
            };
            self.log_once(peer, why, path);
            return Err(ServiceError::Unauthenticated);
        }
        match required_role(path) {
            Some(role) if !roles.contains(role) => {
                self.log_once(peer, "a token without the method's role", path);
                Err(ServiceError::WrongRole(role))
            }
            _ => Ok(()),
        }
    }

    fn log_once(&self, peer: Option<SocketAddr>, why: &'static str, method: &str) {
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged.len() >= LOGGED_REFUSALS {
            logged.clear();
        }
        if logged.insert((peer, why)) {
            tracing::warn!(peer = %show(peer), method, "refused a call with {why}");
        }
    }
}

fn show(peer: Option<SocketAddr>) -> String {
    peer.map_or("unknown".into(), |a| a.to_string())
}

/// The connection's remote address, over plain TCP or TLS.
fn remote_addr<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        })
}

impl<S, B> Service<http::Request<B>> for Guarded<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let path = request.uri().path().to_string();
        let gate = Arc::clone(&self.gate);
        match self.gate.check(&request) {
            Ok(()) => {
                let answer = self.inner.call(request);
                Box::pin(async move {
                    let response = answer.await?;
                    let code = grpc_code(&response);
                    gate.rpc
                        .observe(&path, code, started.elapsed().as_secs_f64());
                    Ok(response)
                })
            }
            Err(refusal) => {
                let status = Status::from(refusal);
                gate.rpc
                    .observe(&path, status.code(), started.elapsed().as_secs_f64());
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

/// The gRPC status of a unary answer: in its headers when the call failed (tonic answers
/// errors with headers only), OK otherwise (the trailers that carry it come later).
fn grpc_code<B>(response: &http::Response<B>) -> tonic::Code {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from)
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}
