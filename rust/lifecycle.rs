//! The job state machine as data (docs/architecture.md#lifecycle): the core's own `JobState`,
//! one transition function used by every operation that moves a job, and a test that walks
//! every (state, event) pair.
//!
//! - enqueue                          -> QUEUED
//! - `Lease` (a worker takes it)      : QUEUED -> RUNNING
//! - `Succeeded`                      : RUNNING -> SUCCEEDED; CANCELLED stays (result kept on the attempt)
//! - `Failed { retry: true }`         : RUNNING -> QUEUED (next attempt after the backoff)
//! - `Failed { retry: false }`        : RUNNING -> FAILED; CANCELLED stays
//! - `WorkerCancelled`                : RUNNING -> CANCELLED; CANCELLED stays
//! - `Cancel`                         : QUEUED or RUNNING -> CANCELLED; terminal: refused
//! - `Expire` (its first attempt did not start by `expire_at_ms`): QUEUED -> FAILED
//!
//! QUEUED is one state for the core: the job has one queued entry (SCHEDULED until its time,
//! then READY). The wire's SCHEDULED and PENDING are decided from it by the clock when a job is
//! read (`wire_status`), so a job coming due needs no write.
//!
//! An attempt's outcome also arrives for a job cancelled while it ran (the worker reports or
//! the lease expires after the cancel): the job stays CANCELLED and never retries.

/// The failure code the broker records when a lease expires. Reserved: a worker may not
/// report it (rust/validate.rs), so an attempt failed with it always means the lease ended.
pub const LEASE_EXPIRED: &str = "lease_expired";

/// The failure code of a job whose first attempt had not started by its `expire_at_ms`.
/// Reserved like `LEASE_EXPIRED`.
pub const EXPIRED: &str = "expired";

/// Failure codes only the broker records; a worker reporting one is refused.
pub const BROKER_FAILURE_CODES: [&str; 2] = [LEASE_EXPIRED, EXPIRED];

use crate::error::{Error, Result};
use crate::proto::{records, wire};

/// Where a job is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The state a record stores (an unknown number is a corrupt record).
    pub fn of_record(state: i32) -> Result<JobState> {
        use records::JobState as R;
        match R::try_from(state) {
            Ok(R::Queued) => Ok(JobState::Queued),
            Ok(R::Running) => Ok(JobState::Running),
            Ok(R::Succeeded) => Ok(JobState::Succeeded),
            Ok(R::Failed) => Ok(JobState::Failed),
            Ok(R::Cancelled) => Ok(JobState::Cancelled),
            Ok(R::Unknown) | Err(_) => Err(Error::Internal(format!(
                "a job record with unknown state {state}"
            ))),
        }
    }

    /// The number a record stores for this state.
    pub fn to_record(self) -> i32 {
        use records::JobState as R;
        (match self {
            JobState::Queued => R::Queued,
            JobState::Running => R::Running,
            JobState::Succeeded => R::Succeeded,
            JobState::Failed => R::Failed,
            JobState::Cancelled => R::Cancelled,
        }) as i32
    }

    /// The status a client sees: a queued job is SCHEDULED while its next attempt is in the
    /// future and PENDING once due.
    pub fn wire_status(self, next_attempt_at_ms: i64, now_ms: i64) -> wire::JobStatus {
        match self {
            JobState::Queued if next_attempt_at_ms > now_ms => wire::JobStatus::Scheduled,
            JobState::Queued => wire::JobStatus::Pending,
            JobState::Running => wire::JobStatus::Running,
            JobState::Succeeded => wire::JobStatus::Succeeded,
            JobState::Failed => wire::JobStatus::Failed,
            JobState::Cancelled => wire::JobStatus::Cancelled,
        }
    }

    /// Whether the job has ended (SUCCEEDED, FAILED or CANCELLED): no new attempt follows
    /// unless an operator restarts it.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }

    /// The name errors use (the wire's, for the terminal states clients see in them).
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "QUEUED",
            JobState::Running => "RUNNING",
            JobState::Succeeded => "SUCCEEDED",
            JobState::Failed => "FAILED",
            JobState::Cancelled => "CANCELLED",
        }
    }
}

/// What happens to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Lease,
    Succeeded,
    /// The attempt failed (report or lease expiry); `retry` when the policy allows another.
    Failed {
        retry: bool,
    },
    /// The worker gave the job up (or acknowledged a cancel).
    WorkerCancelled,
    Cancel,
    /// A queued job's first attempt did not start by its `expire_at_ms`.
    Expire,
}

/// The state after `event`, or the error the caller answers with.
pub fn transition(from: JobState, event: Event) -> Result<JobState> {
    use Event as E;
    use JobState as S;
    match (from, event) {
        (S::Queued, E::Lease) => Ok(S::Running),
        (S::Queued | S::Running, E::Cancel) => Ok(S::Cancelled),
        (S::Running, E::Succeeded) => Ok(S::Succeeded),
        (S::Running, E::Failed { retry: true }) => Ok(S::Queued),
        (S::Running, E::Failed { retry: false }) => Ok(S::Failed),
        (S::Running, E::WorkerCancelled) => Ok(S::Cancelled),
        (S::Cancelled, E::Succeeded | E::Failed { .. } | E::WorkerCancelled) => Ok(S::Cancelled),
        (S::Queued, E::Expire) => Ok(S::Failed),
        (S::Succeeded | S::Failed | S::Cancelled, E::Cancel) => {
            Err(Error::JobTerminal(from.name()))
        }
        (S::Running | S::Succeeded | S::Failed | S::Cancelled, E::Expire)
        | (S::Succeeded | S::Failed | S::Cancelled, E::Lease)
        | (S::Succeeded | S::Failed, E::Succeeded | E::Failed { .. } | E::WorkerCancelled)
        | (S::Queued, E::Succeeded | E::Failed { .. } | E::WorkerCancelled)
        | (S::Running, E::Lease) => Err(Error::Internal(format!(
            "no transition from {} on {event:?}",
            from.name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: [Event; 7] = [
        Event::Lease,
        Event::Succeeded,
        Event::Failed { retry: true },
        Event::Failed { retry: false },
        Event::WorkerCancelled,
        Event::Cancel,
        Event::Expire,
    ];

    /// The expected table, written out in full: (from, event) -> to, or None when refused.
    fn expected(from: JobState, event: Event) -> Option<JobState> {
        use Event as E;
        use JobState as S;
        match (from, event) {
            (S::Queued, E::Lease) => Some(S::Running),
            (S::Queued | S::Running, E::Cancel) => Some(S::Cancelled),
            (S::Running, E::Succeeded) => Some(S::Succeeded),
            (S::Running, E::Failed { retry: true }) => Some(S::Queued),
            (S::Running, E::Failed { retry: false }) => Some(S::Failed),
            (S::Running, E::WorkerCancelled) => Some(S::Cancelled),
            (S::Cancelled, E::Succeeded | E::Failed { .. } | E::WorkerCancelled) => {
                Some(S::Cancelled)
            }
            (S::Queued, E::Expire) => Some(S::Failed),
            _ => None,
        }
    }

    #[test]
    fn every_state_and_event_pair() {
        let mut walked = 0;
        for from in JobState::ALL {
            for event in EVENTS {
                let got = transition(from, event).ok();
                assert_eq!(got, expected(from, event), "{} on {event:?}", from.name());
                walked += 1;
            }
        }
        assert_eq!(walked, JobState::ALL.len() * EVENTS.len());
    }

    #[test]
    fn cancelling_a_terminal_job_names_its_state() {
        for from in [JobState::Succeeded, JobState::Failed, JobState::Cancelled] {
            assert_eq!(
                transition(from, Event::Cancel),
                Err(Error::JobTerminal(from.name()))
            );
        }
    }

    #[test]
    fn terminal_states_take_no_new_attempt() {
        for from in [JobState::Succeeded, JobState::Failed, JobState::Cancelled] {
            assert!(transition(from, Event::Lease).is_err());
        }
    }

    #[test]
    fn records_round_trip_and_unknown_is_corrupt() {
        for s in JobState::ALL {
            assert_eq!(JobState::of_record(s.to_record()), Ok(s));
        }
        assert!(JobState::of_record(0).is_err());
        assert!(JobState::of_record(99).is_err());
    }

    #[test]
    fn a_queued_job_is_scheduled_until_due_then_pending() {
        assert_eq!(
            JobState::Queued.wire_status(11, 10),
            wire::JobStatus::Scheduled
        );
        assert_eq!(
            JobState::Queued.wire_status(10, 10),
            wire::JobStatus::Pending
        );
        assert_eq!(
            JobState::Running.wire_status(99, 10),
            wire::JobStatus::Running
        );
    }
}
