//! What the HTTP port's handlers share ([`HttpState`]) and who may read: one of the job's
//! tokens (any role), as `Authorization: Bearer <token>` or in the dashboard's cookie
//! (the token hex-encoded, so that any token fits in a cookie).

use std::sync::Arc;

use axum::http::{header, HeaderMap};

use super::Shared;
use crate::metrics::RpcMetrics;
use crate::roles::Credentials;

/// The cookie holding the token (hex).
pub(super) const COOKIE: &str = "exiflang_token";

/// What the HTTP handlers read.
#[derive(Clone)]
pub(super) struct HttpState {
    pub(super) shared: Arc<Shared>,
    pub(super) rpc: RpcMetrics,
    pub(super) credentials: Credentials,
    /// Served over TLS: the cookie is marked Secure.
    pub(super) tls: bool,
}

impl HttpState {
    /// Whether the request carries one of the job's tokens as a bearer token.
    pub(super) fn authorised(&self, headers: &HeaderMap) -> bool {
        let given = bearer(headers);
        !self.credentials.roles_of(given.as_deref()).is_empty()
    }
}

/// The token a request carries: `Authorization: Bearer <token>`, else the cookie.
pub(super) fn bearer(headers: &HeaderMap) -> Option<Vec<u8>> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return Some(value.as_bytes().to_vec());
    }
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let hex = cookies
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)?
        .1;
    let token = decode_hex(hex)?;
    let mut value = b"Bearer ".to_vec();
    value.extend_from_slice(&token);
    Some(value)
}

pub(super) fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_cookie_token_round_trips_and_a_malformed_one_is_no_token() {
        let mut headers = HeaderMap::new();
        let cookie = format!("other=1; {COOKIE}={}", encode_hex(b"s3cr;t =x"));
        headers.insert(header::COOKIE, HeaderValue::from_str(&cookie).unwrap());
        assert_eq!(bearer(&headers).unwrap(), b"Bearer s3cr;t =x");
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("exiflang_token=zz1"),
        );
        assert_eq!(bearer(&headers), None);
    }
}
