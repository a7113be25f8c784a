//! One invalid config field: its dotted path and what is wrong. The training config, the
//! model config, the evaluation datasets and the coordinator's config all report with it.

/// One invalid field: its path in the config file and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// Dotted path of the field, e.g. `train.batch_size`.
    pub field: String,
    /// What is wrong and what is allowed.
    pub reason: String,
}

impl FieldError {
    /// An error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Every error of a list, `; `-separated, for one message.
pub fn join_fields(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
