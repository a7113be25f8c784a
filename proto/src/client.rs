//! Connecting to a coordinator with the shared token attached to every call.

use crate::auth::BearerToken;
use crate::wire::coordinator_client::CoordinatorClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A coordinator client that sends the token with every call.
pub type Client = CoordinatorClient<InterceptedService<Channel, BearerToken>>;

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
    /// Nothing answers there.
    #[error("cannot connect to the coordinator at {url}: {source}")]
    Connect {
        /// The URL given.
        url: String,
        /// The transport error.
        source: tonic::transport::Error,
    },
}

/// Connects to `url` (e.g. `http://127.0.0.1:50051`) with `token`.
pub async fn connect(url: &str, token: &str) -> Result<Client, ConnectError> {
    let invalid = |reason: String| ConnectError::Url {
        url: url.to_string(),
        reason,
    };
    let bearer = BearerToken::new(token).map_err(|s| invalid(s.message().to_string()))?;
    let endpoint = Channel::from_shared(url.to_string()).map_err(|e| invalid(e.to_string()))?;
    let channel = endpoint
        .connect()
        .await
        .map_err(|source| ConnectError::Connect {
            url: url.to_string(),
            source,
        })?;
    Ok(CoordinatorClient::with_interceptor(channel, bearer))
}
