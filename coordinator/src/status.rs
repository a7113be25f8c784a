//! The one place where library errors become gRPC statuses. Handlers return
//! [`ServiceError`]; its `From` impl picks the code a client acts on:
//! `NOT_FOUND` means register again, `FAILED_PRECONDITION` give up, `ABORTED` follow
//! the next directive (or, for an evaluation, drop it: the lease is gone), `UNAVAILABLE` retry (the list is in `coordinator.proto`);
//! `INTERNAL` is logged here.

use crate::roles::Role;
use crate::state::DecisionError;
use crate::store::StoreError;
use proto::convert::ConvertError;
use tonic::{Code, Status};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The state refused the request.
    #[error(transparent)]
    Decision(#[from] DecisionError),
    /// The state could not be persisted.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request message is malformed.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// The coordinator is shutting down.
    #[error("the coordinator is shutting down: retry against its next start")]
    ShuttingDown,
    /// The client made more calls than its limit allows.
    #[error("too many calls from this client: slow down and retry later")]
    OverCallLimit,
    /// No token, or one the coordinator does not know.
    #[error("missing or wrong coordinator token")]
    Unauthenticated,
    /// The token does not hold the role the method needs.
    #[error("this call needs the {0} token; this token does not hold that role")]
    WrongRole(Role),
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        let code = match &error {
            ServiceError::Decision(d) => match d {
                DecisionError::UnknownNode(_) | DecisionError::NodeGone(_) => Code::NotFound,
                DecisionError::JobOver(_)
                | DecisionError::ConfigMismatch { .. }
                | DecisionError::WorldCannotSplitBatch { .. } => Code::FailedPrecondition,
                DecisionError::RoundFull { .. } => Code::ResourceExhausted,
                DecisionError::NotInRound { .. } | DecisionError::LeaseLost { .. } => Code::Aborted,
                DecisionError::Invalid(_) => Code::InvalidArgument,
            },
            ServiceError::Convert(_) => Code::InvalidArgument,
            ServiceError::Store(e) => {
                // Nothing changed (a decision is kept only once written); the client
                // retries, as after a restart, while the operator frees the disk.
                tracing::error!(error = %e, "state could not be persisted");
                Code::Unavailable
            }
            ServiceError::ShuttingDown => Code::Unavailable,
            ServiceError::OverCallLimit => Code::ResourceExhausted,
            ServiceError::Unauthenticated => Code::Unauthenticated,
            ServiceError::WrongRole(_) => Code::PermissionDenied,
        };
        if code == Code::InvalidArgument {
            // A refused request changes nothing; it is logged once, here.
            tracing::warn!(error = %error, "request refused as invalid");
        }
        Status::new(code, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::domain::{JobPhase, NodeId, RoundId};

    #[test]
    fn codes_tell_the_client_what_to_do() {
        let code = |e: ServiceError| Status::from(e).code();
        assert_eq!(
            code(DecisionError::UnknownNode(NodeId::new(3)).into()),
            Code::NotFound
        );
        assert_eq!(
            code(DecisionError::JobOver(JobPhase::Stopped).into()),
            Code::FailedPrecondition
        );
        assert_eq!(
            code(
                DecisionError::NotInRound {
                    node: NodeId::new(1),
                    round: RoundId::new(2)
                }
                .into()
            ),
            Code::Aborted
        );
        assert_eq!(
            code(DecisionError::RoundFull { max_nodes: 2 }.into()),
            Code::ResourceExhausted
        );
        let lost = DecisionError::LeaseLost {
            id: proto::domain::EvalId::new(1),
            attempt: 1,
            now: "running (lease 2)".into(),
        };
        assert_eq!(code(lost.into()), Code::Aborted);
        assert_eq!(code(ServiceError::ShuttingDown), Code::Unavailable);
        let missing = ConvertError::MissingField {
            message: "M",
            field: "f",
        };
        assert_eq!(code(missing.into()), Code::InvalidArgument);
    }
}
