//! The job state machine as data (docs/architecture.md#lifecycle): the core's own `JobState`,
//! one transition function used by every operation that moves a job, and a test that walks
//! every (state, event) pair.
//!
//! - enqueue                          -> SCHEDULED (PENDING in the same step when due now)
//! - `ComeDue` (its timer fired)      : SCHEDULED -> PENDING (the entry moves to READY)
//! - `Expedite` (operator)            : SCHEDULED -> SCHEDULED, due now (then `ComeDue`)
//! - `Lease` (a worker takes it)      : PENDING -> RUNNING
//! - `Succeeded`                      : RUNNING -> SUCCEEDED; CANCELLED stays (result kept on the attempt)
//! - `Failed { retry: true }`         : RUNNING -> SCHEDULED (next attempt after the backoff)
//! - `Failed { retry: false }`        : RUNNING -> FAILED; CANCELLED stays
//! - `WorkerCancelled`                : RUNNING -> CANCELLED; CANCELLED stays
//! - `Cancel`                         : SCHEDULED, PENDING or RUNNING -> CANCELLED; terminal: refused
//! - `Expire` (its first attempt did not start by `expire_at_ms`): SCHEDULED or PENDING -> FAILED
//! - `Restart` (operator)             : FAILED or CANCELLED -> SCHEDULED, due now, fresh retry budget
//! - `Delete` (operator, retention)   : SUCCEEDED, FAILED or CANCELLED -> removed
//!
//! SCHEDULED and PENDING are exact: a job is SCHEDULED while its queue entry is in the
//! SCHEDULED family and PENDING once the entry moved to READY, so counts, the status index and
//! GetJob agree (docs/architecture.md#indexes-and-counts). A job whose time has come but whose
//! timer has not fired yet (a backlog of due timers) is still SCHEDULED.
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

/// Where a job is in its lifecycle: the wire's `JobStatus`, one to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobState {
    Scheduled,
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Scheduled,
        JobState::Pending,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The state a record stores (an unknown number is a corrupt record).
    pub fn of_record(state: i32) -> Result<JobState> {
        use records::JobState as R;
        match R::try_from(state) {
            Ok(R::Scheduled) => Ok(JobState::Scheduled),
            Ok(R::Pending) => Ok(JobState::Pending),
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
            JobState::Scheduled => R::Scheduled,
            JobState::Pending => R::Pending,
            JobState::Running => R::Running,
            JobState::Succeeded => R::Succeeded,
            JobState::Failed => R::Failed,
            JobState::Cancelled => R::Cancelled,
        }) as i32
    }

    /// The status a client sees.
    pub fn wire(self) -> wire::JobStatus {
        match self {
            JobState::Scheduled => wire::JobStatus::Scheduled,
            JobState::Pending => wire::JobStatus::Pending,
            JobState::Running => wire::JobStatus::Running,
            JobState::Succeeded => wire::JobStatus::Succeeded,
            JobState::Failed => wire::JobStatus::Failed,
            JobState::Cancelled => wire::JobStatus::Cancelled,
        }
    }

    /// The state of a wire status (None for UNSPECIFIED or an unknown number).
    pub fn of_wire(status: i32) -> Option<JobState> {
        JobState::ALL
            .into_iter()
            .find(|s| s.wire() as i32 == status)
    }

    /// Whether the job has a queue entry (SCHEDULED or READY) waiting for an attempt.
    pub fn is_queued(self) -> bool {
        matches!(self, JobState::Scheduled | JobState::Pending)
    }

    /// Whether the job has ended (SUCCEEDED, FAILED or CANCELLED): no new attempt follows
    /// unless an operator restarts it.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }

    /// The wire's name (`SCHEDULED`, ...): errors and ListQueues counts use it.
    pub fn name(self) -> &'static str {
        match self {
            JobState::Scheduled => "SCHEDULED",
            JobState::Pending => "PENDING",
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
    ComeDue,
    Expedite,
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
    Restart,
    Delete,
}

/// The state after `event`, or the error the caller answers with. `Delete` answers the state
/// the job is deleted in.
pub fn transition(from: JobState, event: Event) -> Result<JobState> {
    use Event as E;
    use JobState as S;
    match (from, event) {
        (S::Scheduled, E::ComeDue) => Ok(S::Pending),
        (S::Scheduled, E::Expedite) => Ok(S::Scheduled),
        (S::Pending, E::Lease) => Ok(S::Running),
        (S::Scheduled | S::Pending | S::Running, E::Cancel) => Ok(S::Cancelled),
        (S::Running, E::Succeeded) => Ok(S::Succeeded),
        (S::Running, E::Failed { retry: true }) => Ok(S::Scheduled),
        (S::Running, E::Failed { retry: false }) => Ok(S::Failed),
        (S::Running, E::WorkerCancelled) => Ok(S::Cancelled),
        (S::Cancelled, E::Succeeded | E::Failed { .. } | E::WorkerCancelled) => Ok(S::Cancelled),
        (S::Scheduled | S::Pending, E::Expire) => Ok(S::Failed),
        (S::Failed | S::Cancelled, E::Restart) => Ok(S::Scheduled),
        (S::Succeeded | S::Failed | S::Cancelled, E::Delete) => Ok(from),
        (S::Succeeded | S::Failed | S::Cancelled, E::Cancel) => {
            Err(Error::JobTerminal(from.name()))
        }
        // Operator calls on a job in the wrong state: the caller's precondition failed.
        (S::Pending | S::Running | S::Succeeded | S::Failed | S::Cancelled, E::Expedite) => {
            Err(Error::InvalidJobState(format!(
                "job is {}: only a SCHEDULED job can be expedited",
                from.name()
            )))
        }
        (S::Scheduled | S::Pending | S::Running | S::Succeeded, E::Restart) => {
            Err(Error::InvalidJobState(format!(
                "job is {}: only a FAILED or CANCELLED job can be restarted",
                from.name()
            )))
        }
        (S::Scheduled | S::Pending | S::Running, E::Delete) => {
            Err(Error::InvalidJobState(format!(
                "job is {}: only a SUCCEEDED, FAILED or CANCELLED job can be deleted",
                from.name()
            )))
        }
        (S::Pending | S::Running | S::Succeeded | S::Failed | S::Cancelled, E::ComeDue)
        | (S::Running | S::Succeeded | S::Failed | S::Cancelled, E::Expire)
        | (S::Scheduled | S::Running | S::Succeeded | S::Failed | S::Cancelled, E::Lease)
        | (S::Succeeded | S::Failed, E::Succeeded | E::Failed { .. } | E::WorkerCancelled)
        | (S::Scheduled | S::Pending, E::Succeeded | E::Failed { .. } | E::WorkerCancelled) => Err(
            Error::Internal(format!("no transition from {} on {event:?}", from.name())),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: [Event; 11] = [
        Event::ComeDue,
        Event::Expedite,
        Event::Lease,
        Event::Succeeded,
        Event::Failed { retry: true },
        Event::Failed { retry: false },
        Event::WorkerCancelled,
        Event::Cancel,
        Event::Expire,
        Event::Restart,
        Event::Delete,
    ];

    /// The expected table, written out in full: (from, event) -> to, or None when refused.
    fn expected(from: JobState, event: Event) -> Option<JobState> {
        use Event as E;
        use JobState as S;
        match (from, event) {
            (S::Scheduled, E::ComeDue) => Some(S::Pending),
            (S::Scheduled, E::Expedite) => Some(S::Scheduled),
            (S::Pending, E::Lease) => Some(S::Running),
            (S::Scheduled | S::Pending | S::Running, E::Cancel) => Some(S::Cancelled),
            (S::Running, E::Succeeded) => Some(S::Succeeded),
            (S::Running, E::Failed { retry: true }) => Some(S::Scheduled),
            (S::Running, E::Failed { retry: false }) => Some(S::Failed),
            (S::Running, E::WorkerCancelled) => Some(S::Cancelled),
            (S::Cancelled, E::Succeeded | E::Failed { .. } | E::WorkerCancelled) => {
                Some(S::Cancelled)
            }
            (S::Scheduled | S::Pending, E::Expire) => Some(S::Failed),
            (S::Failed | S::Cancelled, E::Restart) => Some(S::Scheduled),
            (S::Succeeded | S::Failed | S::Cancelled, E::Delete) => Some(from),
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
    fn operator_calls_in_the_wrong_state_are_preconditions_naming_the_state() {
        for (from, event) in [
            (JobState::Pending, Event::Expedite),
            (JobState::Succeeded, Event::Restart),
            (JobState::Running, Event::Restart),
            (JobState::Running, Event::Delete),
            (JobState::Scheduled, Event::Delete),
        ] {
            match transition(from, event) {
                Err(Error::InvalidJobState(m)) => assert!(m.contains(from.name()), "{m}"),
                other => panic!("{} on {event:?}: {other:?}", from.name()),
            }
        }
    }

    #[test]
    fn terminal_states_take_no_new_attempt() {
        for from in [JobState::Succeeded, JobState::Failed, JobState::Cancelled] {
            assert!(transition(from, Event::Lease).is_err());
            assert!(from.is_terminal() && !from.is_queued());
        }
    }

    #[test]
    fn records_and_wire_statuses_round_trip_and_unknown_is_corrupt() {
        for s in JobState::ALL {
            assert_eq!(JobState::of_record(s.to_record()), Ok(s));
            assert_eq!(JobState::of_wire(s.wire() as i32), Some(s));
            assert_eq!(s.wire().as_str_name(), format!("JOB_STATUS_{}", s.name()));
        }
        assert!(JobState::of_record(0).is_err());
        assert!(JobState::of_record(99).is_err());
        assert_eq!(JobState::of_wire(0), None);
    }
}
