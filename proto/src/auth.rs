//! The shared token every call carries: metadata `authorization: Bearer <token>`.
//!
//! Clients attach it with [`BearerToken`] (a tonic interceptor); the coordinator checks
//! it with [`token_matches`].

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The metadata key that carries the token.
pub const AUTHORIZATION: &str = "authorization";

/// Client interceptor adding `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct BearerToken {
    value: MetadataValue<tonic::metadata::Ascii>,
}

impl BearerToken {
    /// Builds the interceptor; fails with `InvalidArgument` when the token holds
    /// characters that cannot travel in metadata (non-ASCII, control characters).
    pub fn new(token: &str) -> Result<Self, Status> {
        let value = format!("Bearer {}", token.trim())
            .parse()
            .map_err(|_| Status::invalid_argument("the token must be printable ASCII"))?;
        Ok(Self { value })
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert(AUTHORIZATION, self.value.clone());
        Ok(request)
    }
}

/// Whether the `authorization` header value is `Bearer <expected>`; compares in time
/// independent of where the first difference is.
pub fn token_matches(header: Option<&[u8]>, expected: &str) -> bool {
    let Some(header) = header else { return false };
    let Some(given) = header.strip_prefix(b"Bearer ") else {
        return false;
    };
    same_secret(given, expected.as_bytes())
}

/// Whether two secrets are equal, compared in time independent of where the first
/// difference is (lengths are not secret).
pub fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_matches() {
        assert!(token_matches(Some(b"Bearer s3cret"), "s3cret"));
        assert!(!token_matches(Some(b"Bearer s3cres"), "s3cret"));
        assert!(!token_matches(Some(b"Bearer s3cret2"), "s3cret"));
        assert!(!token_matches(Some(b"s3cret"), "s3cret"));
        assert!(!token_matches(None, "s3cret"));
    }

    #[test]
    fn interceptor_sets_the_header_it_is_checked_against() {
        let mut interceptor = BearerToken::new("tok\n").unwrap();
        let request = interceptor.call(Request::new(())).unwrap();
        let header = request.metadata().get(AUTHORIZATION).unwrap();
        assert!(token_matches(Some(header.as_bytes()), "tok"));
    }
}
