//! Cron schedules in the community's time zone (seconds first: `sec min hour day month weekday`,
//! weekday 1–7 = Sun–Sat): the next tick after an instant, and the latest due tick of a span. A
//! leaf: recall plans, the scheduler and configuration checks all read schedules.

use std::str::FromStr;

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;

/// A cron schedule (seconds first: `sec min hour day month weekday`, weekday 1–7 = Sun–Sat).
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    cron: cron::Schedule,
}

impl Schedule {
    pub fn parse(name: &str, expression: &str) -> Result<Self, String> {
        let cron = cron::Schedule::from_str(expression).map_err(|e| {
            format!("`{expression}` is not a cron expression (sec min hour day month weekday): {e}")
        })?;
        Ok(Self {
            name: name.to_owned(),
            cron,
        })
    }

    /// The first tick strictly after `after_ms`, in epoch ms.
    pub fn next_after(&self, after_ms: i64, tz: Tz) -> Option<i64> {
        let after: DateTime<Tz> =
            tz.from_utc_datetime(&DateTime::<Utc>::from_timestamp_millis(after_ms)?.naive_utc());
        self.cron.after(&after).next().map(|t| t.timestamp_millis())
    }

    /// The latest tick in `(after_ms, now_ms]`, and how many earlier ticks in that span it replaces.
    pub fn latest_due(&self, after_ms: i64, now_ms: i64, tz: Tz) -> Option<(i64, usize)> {
        let mut latest = None;
        let mut skipped = 0;
        let mut cursor = after_ms;
        // Bounded: a per-second schedule down for a day is 86,400 steps, still cheap.
        for _ in 0..200_000 {
            match self.next_after(cursor, tz) {
                Some(t) if t <= now_ms => {
                    if latest.is_some() {
                        skipped += 1;
                    }
                    latest = Some(t);
                    cursor = t;
                }
                _ => break,
            }
        }
        latest.map(|t| (t, skipped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHANGHAI: Tz = chrono_tz::Asia::Shanghai;

    fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        SHANGHAI
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .map(|t| t.timestamp_millis())
            .unwrap_or_default()
    }

    #[test]
    fn ticks_follow_the_community_zone() {
        let daily = Schedule::parse("recall", "0 0 10 * * *").expect("cron");
        // 10:00 in Shanghai is 02:00 UTC.
        let next = daily
            .next_after(ms(2026, 11, 30, 9, 0), SHANGHAI)
            .expect("next");
        assert_eq!(next, ms(2026, 11, 30, 10, 0));
        let next = daily.next_after(next, SHANGHAI).expect("next");
        assert_eq!(next, ms(2026, 12, 1, 10, 0));
    }

    #[test]
    fn the_latest_due_tick_replaces_the_missed_ones() {
        let hourly = Schedule::parse("h", "0 0 * * * *").expect("cron");
        let (t, skipped) = hourly
            .latest_due(ms(2026, 11, 30, 8, 30), ms(2026, 11, 30, 11, 15), SHANGHAI)
            .expect("due");
        assert_eq!((t, skipped), (ms(2026, 11, 30, 11, 0), 2));
        assert!(hourly
            .latest_due(ms(2026, 11, 30, 11, 0), ms(2026, 11, 30, 11, 59), SHANGHAI)
            .is_none());
    }

    #[test]
    fn bad_expressions_say_so() {
        assert!(Schedule::parse("x", "every day").is_err());
    }
}
