//! When a schedule ticks (docs/architecture.md#schedules): a cron expression read by the
//! `croner` crate in an IANA time zone from `chrono-tz` (so the zone's DST rules are the
//! libraries'), or a fixed interval anchored at the time the schedule was put.
//!
//! Pure: every function takes the times it needs.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// How long a scan for due ticks may look back before it tries a wider window (see
/// `Ticks::due`): an hour, a day, a month, a year, ten years, then all of it.
const SCAN_WINDOWS_MS: [i64; 5] = [
    3_600_000,
    86_400_000,
    31 * 86_400_000,
    366 * 86_400_000,
    3_660 * 86_400_000,
];

/// Most steps `next_after` takes through a repeated (fall-back) hour.
const MAX_DST_STEPS: usize = 4_000;

/// A parsed schedule time: which instants are ticks.
#[derive(Debug, Clone)]
pub enum Ticks {
    Cron { cron: Box<Cron>, zone: Tz },
    Interval { every_ms: i64, anchor_ms: i64 },
}

/// Reads a cron expression: 5 fields, or 6 with seconds first, or a name (`@hourly`,
/// `@daily`, `@weekly`, `@monthly`, `@yearly`/`@annually`). Errors: croner's message.
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    Cron::new(expr)
        .with_seconds_optional()
        .parse()
        .map_err(|e| e.to_string())
}

/// Reads an IANA time zone name; "" is UTC.
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    if name.is_empty() {
        return Ok(Tz::UTC);
    }
    name.parse::<Tz>()
        .map_err(|_| format!("{name:?} is not an IANA time zone name"))
}

fn utc(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

impl Ticks {
    /// The first tick strictly after `after_ms`; None when there is none (a cron expression
    /// that never matches again, or a time out of range).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match self {
            Ticks::Interval {
                every_ms,
                anchor_ms,
            } => {
                let n = (after_ms - anchor_ms).div_euclid(*every_ms) + 1;
                anchor_ms.checked_add(n.checked_mul(*every_ms)?)
            }
            Ticks::Cron { cron, zone } => {
                // croner searches in local (naive) time; in a repeated hour (DST fall-back) it
                // answers the first of two equal local times, which may be at or before
                // `after_ms`: step on through local time until the answer is later.
                let mut from = utc(after_ms)?.with_timezone(zone);
                for _ in 0..MAX_DST_STEPS {
                    let next = cron.find_next_occurrence(&from, false).ok()?;
                    let next_ms = next.timestamp_millis();
                    if next_ms > after_ms {
                        return Some(next_ms);
                    }
                    from = next;
                }
                None
            }
        }
    }

    /// The latest `max` ticks in `[from_ms, to_ms]`, oldest first. A long stretch (a broker
    /// down for weeks under a per-second cron) is not walked from its start: the scan begins
    /// a window before `to_ms`, widening the window until it has found `max` ticks or covers
    /// `from_ms`.
    pub fn due(&self, from_ms: i64, to_ms: i64, max: usize) -> Vec<i64> {
        if max == 0 || from_ms > to_ms {
            return Vec::new();
        }
        if let Ticks::Interval {
            every_ms,
            anchor_ms,
        } = self
        {
            // Ticks are anchor + k*every: the last one at or before `to_ms`, and back from it.
            let last = anchor_ms + (to_ms - anchor_ms).div_euclid(*every_ms) * every_ms;
            let mut out: Vec<i64> = (0..max as i64)
                .map(|k| last - k * every_ms)
                .take_while(|&t| t >= from_ms)
                .collect();
            out.reverse();
            return out;
        }
        for window in SCAN_WINDOWS_MS.iter().copied().map(Some).chain([None]) {
            let start = match window {
                Some(w) => from_ms.max(to_ms.saturating_sub(w)),
                None => from_ms,
            };
            let found = self.scan(start, to_ms, max);
            if found.len() >= max || start == from_ms {
                return found;
            }
        }
        Vec::new()
    }

    /// Ticks in `[start_ms, to_ms]`, keeping the latest `max`.
    fn scan(&self, start_ms: i64, to_ms: i64, max: usize) -> Vec<i64> {
        let mut out = std::collections::VecDeque::with_capacity(max.min(1024));
        let mut t = self.next_after(start_ms - 1);
        while let Some(tick) = t.filter(|&tick| tick <= to_ms) {
            if out.len() == max {
                out.pop_front();
            }
            out.push_back(tick);
            t = self.next_after(tick);
        }
        out.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn cron(expr: &str, zone: &str) -> Ticks {
        Ticks::Cron {
            cron: Box::new(parse_cron(expr).unwrap()),
            zone: parse_zone(zone).unwrap(),
        }
    }

    /// Unix ms of a UTC wall time.
    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, s)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    #[test]
    fn five_and_six_fields_and_names_parse_and_bad_ones_do_not() {
        for ok in [
            "* * * * *",
            "*/5 * * * * *",
            "@hourly",
            "@daily",
            "@weekly",
            "0 9 * * mon-fri",
        ] {
            assert!(parse_cron(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "* * * *",
            "61 * * * *",
            "* * * * * * * *",
            "@often",
            "nope",
        ] {
            assert!(parse_cron(bad).is_err(), "{bad}");
        }
        assert!(parse_zone("Europe/Berlin").is_ok());
        assert_eq!(parse_zone("").unwrap(), Tz::UTC);
        assert!(parse_zone("Mars/Olympus").is_err());
    }

    #[test]
    fn intervals_tick_from_their_anchor() {
        let t = Ticks::Interval {
            every_ms: 1000,
            anchor_ms: 500,
        };
        assert_eq!(t.next_after(500), Some(1500));
        assert_eq!(t.next_after(1499), Some(1500));
        assert_eq!(t.next_after(1500), Some(2500));
        assert_eq!(t.due(1500, 4700, 10), vec![1500, 2500, 3500, 4500]);
        assert_eq!(t.due(1500, 4700, 2), vec![3500, 4500]);
        assert!(t.due(1600, 2400, 10).is_empty());
    }

    #[test]
    fn seconds_cron_ticks_every_second() {
        let t = cron("* * * * * *", "UTC");
        let t0 = at(2026, 1, 1, 0, 0, 0);
        assert_eq!(t.next_after(t0), Some(t0 + 1000));
        assert_eq!(t.next_after(t0 + 1), Some(t0 + 1000));
        assert_eq!(t.due(t0, t0 + 2500, 10), vec![t0, t0 + 1000, t0 + 2000]);
    }

    #[test]
    fn berlin_spring_forward_moves_a_missing_time_to_the_first_valid_one() {
        // 2026-03-29: at 02:00 CET clocks jump to 03:00 CEST (01:00 UTC).
        let t = cron("30 2 * * *", "Europe/Berlin");
        let before = at(2026, 3, 28, 12, 0, 0);
        let first = t.next_after(before).unwrap();
        assert_eq!(
            first,
            at(2026, 3, 29, 1, 0, 0),
            "02:30 does not exist: 03:00 CEST"
        );
        assert_eq!(
            t.next_after(first),
            Some(at(2026, 3, 30, 0, 30, 0)),
            "then 02:30 CEST"
        );
        // An hourly cron has 23 ticks that day.
        let hourly = cron("0 * * * *", "Europe/Berlin");
        let day = hourly.due(at(2026, 3, 28, 23, 0, 0), at(2026, 3, 29, 21, 59, 0), 100);
        assert_eq!(day.len(), 23);
    }

    #[test]
    fn berlin_fall_back_runs_a_repeated_time_once() {
        // 2026-10-25: at 03:00 CEST clocks go back to 02:00 CET; 02:30 happens twice.
        let t = cron("30 2 * * *", "Europe/Berlin");
        let first = t.next_after(at(2026, 10, 24, 12, 0, 0)).unwrap();
        assert_eq!(first, at(2026, 10, 25, 0, 30, 0), "the first 02:30 (CEST)");
        assert_eq!(
            t.next_after(first),
            Some(at(2026, 10, 26, 1, 30, 0)),
            "not the second"
        );
        // From inside the repeated hour (02:45 CET), the next tick is still later, never earlier.
        let inside = at(2026, 10, 25, 1, 45, 0);
        assert_eq!(t.next_after(inside), Some(at(2026, 10, 26, 1, 30, 0)));
        let every_min = cron("* * * * *", "Europe/Berlin");
        assert!(every_min.next_after(inside).unwrap() > inside);
    }

    #[test]
    fn new_york_spring_forward_and_fall_back() {
        // 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC); 2026-11-01 02:00 EDT -> 01:00 EST.
        let t = cron("30 2 * * *", "America/New_York");
        let spring = t.next_after(at(2026, 3, 7, 12, 0, 0)).unwrap();
        assert_eq!(
            spring,
            at(2026, 3, 8, 7, 0, 0),
            "02:30 does not exist: 03:00 EDT"
        );
        let fall = cron("30 1 * * *", "America/New_York");
        let first = fall.next_after(at(2026, 10, 31, 12, 0, 0)).unwrap();
        assert_eq!(first, at(2026, 11, 1, 5, 30, 0), "the first 01:30 (EDT)");
        assert_eq!(fall.next_after(first), Some(at(2026, 11, 2, 6, 30, 0)));
        // A daily 09:00 keeps its wall-clock time across the change (UTC offset moves).
        let nine = cron("0 9 * * *", "America/New_York");
        assert_eq!(
            nine.next_after(at(2026, 11, 1, 0, 0, 0)),
            Some(at(2026, 11, 1, 14, 0, 0))
        );
        assert_eq!(
            nine.next_after(at(2026, 10, 31, 0, 0, 0)),
            Some(at(2026, 10, 31, 13, 0, 0))
        );
    }

    #[test]
    fn a_long_downtime_is_scanned_from_the_end() {
        let t = cron("* * * * * *", "UTC");
        let to = at(2026, 6, 1, 0, 0, 0);
        let from = to - 30 * 86_400_000; // a month of per-second ticks
        let last = t.due(from, to, 3);
        assert_eq!(last, vec![to - 2000, to - 1000, to]);
        let yearly = cron("@yearly", "UTC");
        assert_eq!(
            yearly.due(at(2020, 6, 1, 0, 0, 0), to, 1000),
            (2021..=2026)
                .map(|y| at(y, 1, 1, 0, 0, 0))
                .collect::<Vec<_>>()
        );
    }
}
