//! The token bucket of one rate-limit key (docs/architecture.md#rate-limits): capacity `limit`,
//! refilled continuously at `limit` tokens per `period_ms`, full when the key is first seen.
//!
//! Exact integer arithmetic: the bucket counts *credit*, tokens in units of 1/period_ms (one
//! token = `period_ms` units), so that a refill of `limit` units per millisecond is exact and
//! the next token's time is a ceiling division. The bucket is stored as it was measured at
//! `measured_at_ms` and read at any later time by adding the refill since; only taking a token
//! or changing the limit writes it.
//!
//! Pure: the caller passes the time.

use crate::proto::records;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub limit: u32,
    pub period_ms: i64,
    /// Tokens × period_ms at `measured_at_ms`; negative while in debt (a lowered limit whose
    /// jobs admitted earlier still took their token).
    pub credit: i64,
    pub measured_at_ms: i64,
}

impl Bucket {
    /// A key seen for the first time: a full bucket.
    pub fn full(limit: u32, period_ms: i64, now_ms: i64) -> Bucket {
        Bucket {
            limit,
            period_ms,
            credit: i64::from(limit) * period_ms,
            measured_at_ms: now_ms,
        }
    }

    fn capacity(&self) -> i64 {
        i64::from(self.limit) * self.period_ms
    }

    /// The credit at `now_ms` (refilled since it was measured, capped at the capacity).
    pub fn credit_at(&self, now_ms: i64) -> i64 {
        let elapsed = i128::from((now_ms - self.measured_at_ms).max(0));
        let refilled = i128::from(self.credit) + elapsed * i128::from(self.limit);
        refilled.min(i128::from(self.capacity())) as i64
    }

    /// Whole tokens at `now_ms` (negative in debt).
    pub fn tokens_at(&self, now_ms: i64) -> i64 {
        self.credit_at(now_ms).div_euclid(self.period_ms)
    }

    /// Tokens at `now_ms`, with the fraction (for operators and tests).
    pub fn tokens_exact(&self, now_ms: i64) -> f64 {
        self.credit_at(now_ms) as f64 / self.period_ms as f64
    }

    /// Takes one token at `now_ms` (a job of the key starts).
    pub fn take(&mut self, now_ms: i64) {
        self.credit = self.credit_at(now_ms) - self.period_ms;
        self.measured_at_ms = now_ms.max(self.measured_at_ms);
    }

    /// The last enqueue's values win: the tokens held are kept (as tokens, whatever the new
    /// period), capped at the new limit. Returns whether anything changed.
    pub fn reconfigure(&mut self, limit: u32, period_ms: i64, now_ms: i64) -> bool {
        if (limit, period_ms) == (self.limit, self.period_ms) {
            return false;
        }
        let credit = i128::from(self.credit_at(now_ms)) * i128::from(period_ms);
        let credit = credit.div_euclid(i128::from(self.period_ms));
        let capacity = i128::from(limit) * i128::from(period_ms);
        *self = Bucket {
            limit,
            period_ms,
            credit: credit.min(capacity) as i64,
            measured_at_ms: now_ms.max(self.measured_at_ms),
        };
        true
    }

    /// The first time at which the bucket holds `n` whole tokens (`measured_at_ms` if it already
    /// does then); None when it never will (`n` over the limit).
    pub fn time_of_tokens(&self, n: i64) -> Option<i64> {
        if n > i64::from(self.limit) {
            return None;
        }
        let missing = n * self.period_ms - self.credit;
        if missing <= 0 {
            return Some(self.measured_at_ms);
        }
        let per_ms = i64::from(self.limit);
        Some(self.measured_at_ms + (missing + per_ms - 1) / per_ms)
    }

    pub fn to_record(self) -> records::RateBucketRecord {
        records::RateBucketRecord {
            limit: self.limit,
            period_ms: self.period_ms,
            credit: self.credit,
            measured_at_ms: self.measured_at_ms,
        }
    }

    /// A stored bucket; None if it is malformed (a limit or period of 0 is never stored).
    pub fn from_record(r: &records::RateBucketRecord) -> Option<Bucket> {
        (r.limit > 0 && r.period_ms > 0).then_some(Bucket {
            limit: r.limit,
            period_ms: r.period_ms,
            credit: r.credit,
            measured_at_ms: r.measured_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_empties_then_refills_at_the_rate() {
        let mut b = Bucket::full(10, 1000, 0);
        assert_eq!(b.tokens_at(0), 10);
        for _ in 0..10 {
            b.take(0);
        }
        assert_eq!(b.tokens_at(0), 0);
        assert_eq!(b.tokens_at(99), 0);
        assert_eq!(b.tokens_at(100), 1, "10 per second: one token every 100 ms");
        assert_eq!(b.time_of_tokens(1), Some(100));
        assert_eq!(b.time_of_tokens(3), Some(300));
        assert_eq!(b.tokens_at(5_000), 10, "capped at the limit");
        assert_eq!(b.time_of_tokens(11), None);
    }

    #[test]
    fn next_token_times_round_up() {
        // 3 per 1000 ms: a token every 333.33 ms.
        let mut b = Bucket::full(3, 1000, 0);
        for _ in 0..3 {
            b.take(0);
        }
        assert_eq!(b.time_of_tokens(1), Some(334));
        assert_eq!(b.tokens_at(333), 0);
        assert_eq!(b.tokens_at(334), 1);
        assert_eq!(b.time_of_tokens(3), Some(1000));
    }

    #[test]
    fn any_window_stays_within_the_envelope() {
        // Greedy taking at every ms: starts in [a, a + w] never exceed limit + limit*w/period.
        let (limit, period) = (7u32, 1000i64);
        let mut b = Bucket::full(limit, period, 0);
        let mut starts = Vec::new();
        for t in 0..5_000 {
            while b.tokens_at(t) >= 1 {
                b.take(t);
                starts.push(t);
            }
        }
        for (i, &a) in starts.iter().enumerate() {
            for w in [0, 1, 100, 999, 1000, 2500] {
                let n = starts[i..].iter().take_while(|&&s| s <= a + w).count() as i64;
                let bound = i64::from(limit) + i64::from(limit) * w / period;
                assert!(n <= bound, "{n} starts in [{a}, {}] > {bound}", a + w);
            }
        }
        // Long run: 7 at once, then one every 1000/7 ms (34 more by t = 4999).
        assert_eq!(starts.len(), 7 + 34);
    }

    #[test]
    fn reconfiguring_keeps_tokens_and_caps_them() {
        let mut b = Bucket::full(10, 1000, 0);
        b.take(0);
        assert!(b.reconfigure(5, 1000, 0));
        assert_eq!(b.tokens_at(0), 5, "a lower limit caps the tokens held");
        assert!(!b.reconfigure(5, 1000, 0));
        assert!(b.reconfigure(5, 2000, 0));
        assert_eq!(b.tokens_at(0), 5, "tokens survive a new period");
        assert_eq!(b.time_of_tokens(5), Some(0));
        assert!(b.reconfigure(20, 2000, 0));
        assert_eq!(
            b.tokens_at(0),
            5,
            "a raised limit refills with time, not at once"
        );
        assert_eq!(b.tokens_at(100), 6);
    }

    #[test]
    fn debt_is_repaid_before_the_next_token() {
        let mut b = Bucket::full(1, 1000, 0);
        b.take(0);
        b.take(0);
        assert_eq!(b.tokens_at(0), -1);
        assert_eq!(b.time_of_tokens(1), Some(2000));
    }

    #[test]
    fn long_idle_times_do_not_overflow() {
        let b = Bucket {
            limit: u32::MAX,
            period_ms: 86_400_000,
            credit: 0,
            measured_at_ms: 0,
        };
        assert_eq!(b.tokens_at(i64::MAX / 2), i64::from(u32::MAX));
        let r = b.to_record();
        assert_eq!(Bucket::from_record(&r), Some(b));
    }
}
