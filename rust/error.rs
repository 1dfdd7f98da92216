//! The one error type of the core: one variant per failure a caller can tell apart.

use std::fmt;

/// Every error the core returns. `rust/py/errors.rs` maps each variant to a class of
/// `silo.errors` with no wildcard arm; `code()` gives the gRPC status used in batch results.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A request field is out of bounds. `field` names it (e.g. `jobs[3].priority`).
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("job not found")]
    JobNotFound,
    #[error("task not found")]
    TaskNotFound,
    #[error("a job with this id already exists in this tenant")]
    JobAlreadyExists,
    #[error("an outcome was already recorded for this task")]
    OutcomeAlreadyRecorded,
    /// Cancel of a job that already ended.
    #[error("job is already {0}")]
    JobTerminal(&'static str),
    /// The task's lease expired, belongs to another worker, or its outcome is recorded.
    #[error("{0}")]
    LeaseNotHeld(&'static str),
    /// SetFaults on a server started without --fault-injection.
    #[error("fault injection is off: start the server with --fault-injection")]
    FaultInjectionDisabled,
    #[error("{0} is not implemented yet")]
    Unimplemented(&'static str),
    /// The object store failed, the broker was fenced, or it is shutting down. Nothing that
    /// this error answered was acknowledged.
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    /// A bug. The detail is for the log; clients see a fixed message.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// Prefix the field of an `InvalidArgument` (for entries of a batch: `jobs[3].`).
    pub fn in_field(self, prefix: &str) -> Self {
        match self {
            Error::InvalidArgument { field, reason } => Error::InvalidArgument {
                field: format!("{prefix}{field}"),
                reason,
            },
            other => other,
        }
    }

    /// The gRPC status code of this error (batch results carry it per entry).
    pub fn code(&self) -> i32 {
        match self {
            Error::InvalidArgument { .. } => 3,
            Error::JobNotFound | Error::TaskNotFound => 5,
            Error::JobAlreadyExists | Error::OutcomeAlreadyRecorded => 6,
            Error::JobTerminal(_) | Error::LeaseNotHeld(_) | Error::FaultInjectionDisabled => 9,
            Error::Unimplemented(_) => 12,
            Error::Internal(_) => 13,
            Error::StoreUnavailable(_) => 14,
        }
    }

    /// The message a client may see (INTERNAL hides its detail).
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        }
    }
}

impl From<slatedb::Error> for Error {
    fn from(e: slatedb::Error) -> Self {
        use slatedb::ErrorKind;
        match e.kind() {
            ErrorKind::Closed(_) | ErrorKind::Unavailable => Error::StoreUnavailable(e.to_string()),
            ErrorKind::Transaction | ErrorKind::Invalid | ErrorKind::Data | ErrorKind::Internal => {
                Error::Internal(format!("slatedb: {e}"))
            }
            #[allow(unreachable_patterns)]
            _ => Error::Internal(format!("slatedb: {e}")),
        }
    }
}

impl From<prost::DecodeError> for Error {
    fn from(e: prost::DecodeError) -> Self {
        Error::Internal(format!("stored record does not decode: {e}"))
    }
}
