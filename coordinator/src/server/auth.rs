//! The shared-token check run before every call; a refusal is logged with the peer.

use proto::auth::{token_matches, AUTHORIZATION};
use std::sync::Arc;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Interceptor accepting only calls that carry `authorization: Bearer <token>`.
#[derive(Clone)]
pub(crate) struct TokenCheck {
    token: Arc<str>,
}

impl TokenCheck {
    pub(crate) fn new(token: &str) -> Self {
        Self {
            token: token.into(),
        }
    }
}

impl Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let header = request.metadata().get(AUTHORIZATION).map(|v| v.as_bytes());
        if token_matches(header, &self.token) {
            return Ok(request);
        }
        let peer = request
            .remote_addr()
            .map_or("unknown".to_string(), |a| a.to_string());
        let why = if header.is_none() {
            "no token"
        } else {
            "a wrong token"
        };
        tracing::warn!(%peer, "refused a call with {why}");
        Err(Status::unauthenticated(
            "missing or wrong coordinator token",
        ))
    }
}
