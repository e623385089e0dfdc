//! Scheduler ticks: one row per (schedule, scheduled_for); inserting it is the claim.

use super::{Store, StoreError};
use crate::on_pool;

const LAST: &str = "select max(scheduled_for) from schedule_ticks where schedule = $1";
const CLAIM: &str =
    "insert into schedule_ticks (schedule, scheduled_for, claimed_by, claimed_at, outcome) \
     values ($1, $2, $3, $4, $5) on conflict (schedule, scheduled_for) do nothing";
const FINISH: &str = "update schedule_ticks set finished_at = $3, outcome = $4 where schedule = $1 and scheduled_for = $2";
const COUNT: &str = "select cast(count(*) as bigint) from schedule_ticks where schedule = $1";

impl Store {
    /// The last tick of `schedule` any process recorded.
    pub async fn last_tick(&self, schedule: &str) -> Result<Option<i64>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_scalar::<_, Option<i64>>(LAST).bind(schedule).fetch_one(p).await?),
        )
    }

    /// `true` when this process inserted the tick (and so owns it).
    pub async fn claim_tick(
        &self,
        schedule: &str,
        scheduled_for: i64,
        worker: &str,
        now_ms: i64,
        outcome: &str,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self.pool(), p => sqlx::query(CLAIM).bind(schedule).bind(scheduled_for).bind(worker)
            .bind(now_ms).bind(outcome).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    pub async fn finish_tick(
        &self,
        schedule: &str,
        scheduled_for: i64,
        now_ms: i64,
        outcome: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self.pool(), p => { sqlx::query(FINISH).bind(schedule).bind(scheduled_for).bind(now_ms).bind(outcome).execute(p).await?; });
        Ok(())
    }

    pub async fn tick_count(&self, schedule: &str) -> Result<i64, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_scalar::<_, i64>(COUNT).bind(schedule).fetch_one(p).await?),
        )
    }
}
