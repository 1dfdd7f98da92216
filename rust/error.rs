//! The one error type of the core: one variant per failure a caller can tell apart.

use std::fmt;

/// Every error the core returns. `status()` is the one status table (docs/api.md#status-codes):
/// each variant's gRPC code and the `silo.errors` class Python raises for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A request field is out of bounds. `field` names it (e.g. `jobs[3].priority`).
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("job not found")]
    JobNotFound,
    #[error("task not found")]
    TaskNotFound,
    #[error("schedule not found")]
    ScheduleNotFound,
    #[error("a job with this id already exists in this tenant")]
    JobAlreadyExists,
    #[error("an outcome was already recorded for this task")]
    OutcomeAlreadyRecorded,
    /// Cancel of a job that already ended.
    #[error("job is already {0}")]
    JobTerminal(&'static str),
    /// An operator call (restart, expedite, delete) on a job in a state it does not apply to;
    /// the message names the state.
    #[error("{0}")]
    InvalidJobState(String),
    /// The task's lease expired, belongs to another worker, or its outcome is recorded.
    #[error("{0}")]
    LeaseNotHeld(&'static str),
    /// The caller's token may not make this call, or not for this tenant (docs/security.md).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// SetFaults on a server started without --fault-injection.
    #[error("fault injection is off: start the server with --fault-injection")]
    FaultInjectionDisabled,
    #[error("{0} is not implemented yet")]
    Unimplemented(&'static str),
    /// The object store failed, the broker was fenced, or it is shutting down. Nothing that
    /// this error answered was acknowledged.
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    /// The call's shard is not served here right now: it is moving between nodes, has no
    /// owner yet, or its owner cannot be reached (docs/cluster.md#failure-modes). Nothing was
    /// applied; retrying (after the cluster map settles) may succeed.
    #[error("shard {shard} is unavailable: {reason}; retry")]
    ShardUnavailable { shard: u32, reason: String },
    /// The answer of the node that owns the call's shard, passed through unchanged: its code
    /// and message (the class is the code's family: docs/api.md#status-codes).
    #[error("{message}")]
    Forwarded { code: Code, message: String },
    /// A bug. The detail is for the log; clients see a fixed message.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The gRPC status codes the core answers with (batch results carry one per entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Code {
    InvalidArgument = 3,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl Code {
    /// The `silo.errors` family class of the code (the base class of its specific errors).
    pub fn family(self) -> &'static str {
        match self {
            Code::InvalidArgument => "InvalidArgument",
            Code::NotFound => "NotFound",
            Code::AlreadyExists => "AlreadyExists",
            Code::PermissionDenied => "PermissionDenied",
            Code::FailedPrecondition => "FailedPrecondition",
            Code::Unimplemented => "Unimplemented",
            Code::Internal => "InternalError",
            Code::Unavailable => "Unavailable",
            Code::ResourceExhausted => "ResourceExhausted",
            Code::Unauthenticated => "Unauthenticated",
        }
    }

    /// The code of a gRPC status number, if Silo answers with it.
    pub fn from_i32(code: i32) -> Option<Code> {
        [
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::FailedPrecondition,
            Code::Unimplemented,
            Code::Internal,
            Code::Unavailable,
            Code::ResourceExhausted,
            Code::Unauthenticated,
        ]
        .into_iter()
        .find(|c| *c as i32 == code)
    }
}

/// A row of the status table: the gRPC code and the `silo.errors` class of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub class: &'static str,
}

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

    /// The status table: this error's gRPC code and `silo.errors` class, in one match with no
    /// wildcard, so a new variant cannot compile without its row. `samples()` lists one error
    /// of each variant so that the table can be shown to Python (`silo._native.status_table`)
    /// and checked against python/silo/status.py by tests/test_status_table.py.
    pub fn status(&self) -> Status {
        let (code, class) = match self {
            Error::InvalidArgument { .. } => (Code::InvalidArgument, "InvalidArgument"),
            Error::JobNotFound => (Code::NotFound, "JobNotFound"),
            Error::TaskNotFound => (Code::NotFound, "TaskNotFound"),
            Error::ScheduleNotFound => (Code::NotFound, "ScheduleNotFound"),
            Error::JobAlreadyExists => (Code::AlreadyExists, "JobAlreadyExists"),
            Error::OutcomeAlreadyRecorded => (Code::AlreadyExists, "OutcomeAlreadyRecorded"),
            Error::JobTerminal(_) => (Code::FailedPrecondition, "JobTerminal"),
            Error::InvalidJobState(_) => (Code::FailedPrecondition, "InvalidJobState"),
            Error::LeaseNotHeld(_) => (Code::FailedPrecondition, "LeaseNotHeld"),
            Error::PermissionDenied(_) => (Code::PermissionDenied, "PermissionDenied"),
            Error::FaultInjectionDisabled => (Code::FailedPrecondition, "FaultInjectionDisabled"),
            Error::Unimplemented(_) => (Code::Unimplemented, "Unimplemented"),
            Error::StoreUnavailable(_) => (Code::Unavailable, "StoreUnavailable"),
            Error::ShardUnavailable { .. } => (Code::Unavailable, "ShardUnavailable"),
            Error::Forwarded { code, .. } => (*code, code.family()),
            Error::Internal(_) => (Code::Internal, "InternalError"),
        };
        Status { code, class }
    }

    /// One error of every variant, in declaration order (the rows of the status table).
    pub fn samples() -> Vec<Error> {
        vec![
            Error::invalid("field", "reason"),
            Error::JobNotFound,
            Error::TaskNotFound,
            Error::ScheduleNotFound,
            Error::JobAlreadyExists,
            Error::OutcomeAlreadyRecorded,
            Error::JobTerminal("succeeded"),
            Error::InvalidJobState("job is RUNNING".into()),
            Error::LeaseNotHeld("lease expired"),
            Error::PermissionDenied("detail".into()),
            Error::FaultInjectionDisabled,
            Error::Unimplemented("feature"),
            Error::StoreUnavailable("detail".into()),
            Error::ShardUnavailable {
                shard: 3,
                reason: "moving".into(),
            },
            // One row stands for every forwarded answer: its class is its code's family.
            Error::Forwarded {
                code: Code::NotFound,
                message: "job not found".into(),
            },
            Error::Internal("detail".into()),
        ]
    }

    /// The message a client may see (INTERNAL hides its detail).
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_)
            | Error::Forwarded {
                code: Code::Internal,
                ..
            } => "internal error".to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_cover_every_variant_once() {
        // Each variant has its own class, so distinct classes mean distinct variants.
        let kinds: Vec<&str> = Error::samples().iter().map(|e| e.status().class).collect();
        let mut unique = kinds.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            kinds.len(),
            "a variant appears twice: {kinds:?}"
        );
        // Adding a variant breaks `status()`'s match; this count is the
        // reminder to add its sample too.
        assert_eq!(kinds.len(), 16);
    }

    #[test]
    fn codes_are_grpc_codes() {
        assert_eq!(Error::invalid("f", "r").status().code as i32, 3);
        assert_eq!(Error::Internal("x".into()).status().code as i32, 13);
        assert_eq!(Error::StoreUnavailable("x".into()).status().code as i32, 14);
    }
}
