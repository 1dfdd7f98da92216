//! Retry policy: defaults and the delay before retry n (docs/api.md#retry-policy).

use crate::proto::records::{JobRecord, RetryPolicyRecord as RetryPolicy};

pub const DEFAULT_INITIAL_BACKOFF_MS: i64 = 1000;
pub const DEFAULT_BACKOFF_MULTIPLIER: f64 = 2.0;
pub const DEFAULT_MAX_BACKOFF_MS: i64 = 3_600_000;

/// Attempts allowed in all: the first plus `max_retries`.
pub fn max_attempts(policy: Option<&RetryPolicy>) -> u32 {
    policy.map_or(1, |p| p.max_retries.saturating_add(1))
}

/// Attempts counted against the job's policy: those since its last RestartJob (a restart
/// gives a fresh retry budget).
pub fn attempts_used(job: &JobRecord) -> u32 {
    job.attempt_count.saturating_sub(job.retry_base)
}

/// Whether the job's latest attempt is the last its policy allows.
pub fn is_last_attempt(job: &JobRecord) -> bool {
    attempts_used(job) >= max_attempts(job.retry_policy.as_ref())
}

/// The delay before retry `n` (1-based: retry 1 follows attempt 1). `unit_random` is a number
/// in [0, 1) used for jitter (±20 %), so the function stays pure and testable.
pub fn backoff_ms(policy: &RetryPolicy, n: u32, unit_random: f64) -> i64 {
    let n = n.max(1);
    let base = if !policy.schedule_ms.is_empty() {
        let i = ((n - 1) as usize).min(policy.schedule_ms.len() - 1);
        policy.schedule_ms[i]
    } else {
        let initial = if policy.initial_backoff_ms > 0 {
            policy.initial_backoff_ms
        } else {
            DEFAULT_INITIAL_BACKOFF_MS
        };
        let mult = if policy.backoff_multiplier > 0.0 {
            policy.backoff_multiplier
        } else {
            DEFAULT_BACKOFF_MULTIPLIER
        };
        let max = if policy.max_backoff_ms > 0 {
            policy.max_backoff_ms
        } else {
            DEFAULT_MAX_BACKOFF_MS
        };
        let exp = (initial as f64) * mult.powi((n - 1).min(1024) as i32);
        if exp.is_finite() && exp < max as f64 {
            exp as i64
        } else {
            max
        }
    };
    if policy.jitter {
        let factor = 0.8 + 0.4 * unit_random.clamp(0.0, 1.0);
        ((base as f64) * factor).round() as i64
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_schedule_repeats_its_last_entry() {
        let p = RetryPolicy {
            max_retries: 5,
            schedule_ms: vec![10, 20],
            ..Default::default()
        };
        assert_eq!(backoff_ms(&p, 1, 0.5), 10);
        assert_eq!(backoff_ms(&p, 2, 0.5), 20);
        assert_eq!(backoff_ms(&p, 5, 0.5), 20);
    }

    #[test]
    fn exponential_uses_defaults_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(backoff_ms(&p, 1, 0.0), 1000);
        assert_eq!(backoff_ms(&p, 3, 0.0), 4000);
        assert_eq!(backoff_ms(&p, 40, 0.0), DEFAULT_MAX_BACKOFF_MS);
        let p = RetryPolicy {
            initial_backoff_ms: 100,
            backoff_multiplier: 3.0,
            max_backoff_ms: 1000,
            ..Default::default()
        };
        assert_eq!(backoff_ms(&p, 2, 0.0), 300);
        assert_eq!(backoff_ms(&p, 4, 0.0), 1000);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let p = RetryPolicy {
            schedule_ms: vec![1000],
            jitter: true,
            ..Default::default()
        };
        assert_eq!(backoff_ms(&p, 1, 0.0), 800);
        assert_eq!(backoff_ms(&p, 1, 0.999_999), 1200);
    }
}
