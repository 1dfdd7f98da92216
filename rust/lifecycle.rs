//! The job state machine as data (SPEC §2): one transition function, used by every operation
//! that moves a job, and a test that walks every (state, event) pair.
//!
//! Stored states: SCHEDULED stands for "waiting" (SCHEDULED or PENDING on the wire, decided by
//! the clock at read time), then RUNNING, and the terminal SUCCEEDED, FAILED, CANCELLED.
//! - enqueue                          -> SCHEDULED
//! - `Lease` (a worker takes it)      : SCHEDULED -> RUNNING
//! - `Succeeded`                      : RUNNING -> SUCCEEDED; CANCELLED stays (result kept on the attempt)
//! - `Failed { retry: true }`         : RUNNING -> SCHEDULED (next attempt after the backoff)
//! - `Failed { retry: false }`        : RUNNING -> FAILED; CANCELLED stays
//! - `WorkerCancelled`                : RUNNING -> CANCELLED; CANCELLED stays
//! - `Cancel`                         : SCHEDULED or RUNNING -> CANCELLED; terminal: refused
//!
//! An attempt's outcome also arrives for a job cancelled while it ran (the worker reports or
//! the lease expires after the cancel): the job stays CANCELLED and never retries.

use crate::error::{Error, Result};
use crate::proto::wire::JobStatus;

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
}

/// The state after `event`, or the error the caller answers with.
pub fn transition(from: JobStatus, event: Event) -> Result<JobStatus> {
    use Event as E;
    use JobStatus as S;
    match (from, event) {
        (S::Scheduled | S::Pending, E::Lease) => Ok(S::Running),
        (S::Scheduled | S::Pending | S::Running, E::Cancel) => Ok(S::Cancelled),
        (S::Running, E::Succeeded) => Ok(S::Succeeded),
        (S::Running, E::Failed { retry: true }) => Ok(S::Scheduled),
        (S::Running, E::Failed { retry: false }) => Ok(S::Failed),
        (S::Running, E::WorkerCancelled) => Ok(S::Cancelled),
        (S::Cancelled, E::Succeeded | E::Failed { .. } | E::WorkerCancelled) => Ok(S::Cancelled),
        (S::Succeeded | S::Failed | S::Cancelled, E::Cancel) => Err(Error::JobTerminal(name(from))),
        (S::Succeeded | S::Failed | S::Cancelled, E::Lease)
        | (S::Succeeded | S::Failed, E::Succeeded | E::Failed { .. } | E::WorkerCancelled)
        | (S::Scheduled | S::Pending, E::Succeeded | E::Failed { .. } | E::WorkerCancelled)
        | (S::Running, E::Lease)
        | (S::Unspecified, _) => Err(Error::Internal(format!(
            "no transition from {} on {event:?}",
            name(from)
        ))),
    }
}

/// The wire name of a status.
pub fn name(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Unspecified => "UNSPECIFIED",
        JobStatus::Scheduled => "SCHEDULED",
        JobStatus::Pending => "PENDING",
        JobStatus::Running => "RUNNING",
        JobStatus::Succeeded => "SUCCEEDED",
        JobStatus::Failed => "FAILED",
        JobStatus::Cancelled => "CANCELLED",
    }
}

/// The stored status of a record (an unknown number is a corrupt record).
pub fn stored(status: i32) -> Result<JobStatus> {
    JobStatus::try_from(status).map_err(|_| Error::Internal(format!("unknown job status {status}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATES: [JobStatus; 7] = [
        JobStatus::Unspecified,
        JobStatus::Scheduled,
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];
    const EVENTS: [Event; 6] = [
        Event::Lease,
        Event::Succeeded,
        Event::Failed { retry: true },
        Event::Failed { retry: false },
        Event::WorkerCancelled,
        Event::Cancel,
    ];

    /// The expected table, written out in full: (from, event) -> to, or None when refused.
    fn expected(from: JobStatus, event: Event) -> Option<JobStatus> {
        use Event as E;
        use JobStatus as S;
        match (from, event) {
            (S::Scheduled | S::Pending, E::Lease) => Some(S::Running),
            (S::Scheduled | S::Pending | S::Running, E::Cancel) => Some(S::Cancelled),
            (S::Running, E::Succeeded) => Some(S::Succeeded),
            (S::Running, E::Failed { retry: true }) => Some(S::Scheduled),
            (S::Running, E::Failed { retry: false }) => Some(S::Failed),
            (S::Running, E::WorkerCancelled) => Some(S::Cancelled),
            (S::Cancelled, E::Succeeded | E::Failed { .. } | E::WorkerCancelled) => {
                Some(S::Cancelled)
            }
            _ => None,
        }
    }

    #[test]
    fn every_state_and_event_pair() {
        let mut walked = 0;
        for from in STATES {
            for event in EVENTS {
                let got = transition(from, event).ok();
                assert_eq!(got, expected(from, event), "{} on {event:?}", name(from));
                walked += 1;
            }
        }
        assert_eq!(walked, STATES.len() * EVENTS.len());
    }

    #[test]
    fn cancelling_a_terminal_job_names_its_state() {
        for from in [
            JobStatus::Succeeded,
            JobStatus::Failed,
            JobStatus::Cancelled,
        ] {
            assert_eq!(
                transition(from, Event::Cancel),
                Err(Error::JobTerminal(name(from)))
            );
        }
    }

    #[test]
    fn terminal_states_take_no_new_attempt() {
        for from in [
            JobStatus::Succeeded,
            JobStatus::Failed,
            JobStatus::Cancelled,
        ] {
            assert!(transition(from, Event::Lease).is_err());
        }
    }
}
