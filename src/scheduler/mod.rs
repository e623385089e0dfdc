//! The scheduler: cron schedules evaluated in the community's time zone on an injectable clock.
//! Every tick of every schedule is claimed by inserting a `(schedule, scheduled_for)` row that
//! only one process can insert, so with several replicas each tick runs once. A tick missed
//! while no process was running runs once if it is less than `missed_window_secs` late;
//! older ones are skipped and logged (and recorded as skipped).

pub mod jobs;
pub mod runner;

use chrono_tz::Tz;

pub use crate::schedule::Schedule;
use crate::store::{Store, StoreError};

/// What became of a due tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// This process claimed the tick and must run it.
    Run {
        scheduled_for: i64,
    },
    /// Another process claimed it.
    Taken,
    /// Too late to be worth running (recorded as skipped).
    Skipped {
        scheduled_for: i64,
    },
    Nothing,
}

/// Ticks claimed by schedule: decides and claims the next due tick of `schedule` at `now_ms`.
pub async fn claim_due(
    store: &Store,
    schedule: &Schedule,
    tz: Tz,
    now_ms: i64,
    missed_window_ms: i64,
    started_ms: i64,
    worker: &str,
) -> Result<Due, StoreError> {
    // The last tick anyone recorded; a schedule never seen starts from this process's start.
    let last = store
        .last_tick(&schedule.name)
        .await?
        .unwrap_or(started_ms.min(now_ms));
    let Some((scheduled_for, skipped)) = schedule.latest_due(last, now_ms, tz) else {
        return Ok(Due::Nothing);
    };
    if skipped > 0 {
        tracing::warn!(schedule = %schedule.name, skipped, "missed ticks skipped; running the latest only");
    }
    let late = now_ms - scheduled_for;
    let outcome = if late > missed_window_ms {
        "skipped"
    } else {
        "claimed"
    };
    if !store
        .claim_tick(&schedule.name, scheduled_for, worker, now_ms, outcome)
        .await?
    {
        return Ok(Due::Taken);
    }
    if outcome == "skipped" {
        tracing::warn!(schedule = %schedule.name, late_secs = late / 1000, "tick missed by more than the window; skipped");
        return Ok(Due::Skipped { scheduled_for });
    }
    Ok(Due::Run { scheduled_for })
}
