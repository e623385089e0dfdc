//! The durable inbox: one row per accepted delivery, unique on (channel, dedupe key). Written
//! in batches by the group-commit writer; a retry finds the existing row and is not re-run.

use std::collections::HashMap;

use sqlx::FromRow;

use super::{Store, StoreError, Tx};
use crate::{on_pool, on_tx};

/// A delivery to record.
#[derive(Debug, Clone)]
pub struct NewInbox {
    pub channel_id: String,
    pub dedupe_key: String,
    pub kind: String,
    pub sender: Option<String>,
    pub group_id: Option<String>,
    pub occurred_at: i64,
    pub received_at: i64,
    /// The normalized event as JSON.
    pub payload: String,
}

/// What the insert found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// First time this delivery was seen: process it.
    New { id: i64 },
    /// A retry: answer with the stored reply if processing finished, otherwise with nothing.
    Duplicate {
        id: i64,
        processed: bool,
        reply: Option<String>,
    },
}

/// Marks a row handled, with the reply it produced (kept for retries).
#[derive(Debug, Clone)]
pub struct Processed {
    pub id: i64,
    pub at: i64,
    pub reply: Option<String>,
}

#[derive(Debug, Clone, FromRow)]
pub struct InboxRow {
    pub id: i64,
    pub channel_id: String,
    pub dedupe_key: String,
    pub kind: String,
    pub occurred_at: i64,
    pub received_at: i64,
    pub payload: String,
    pub processed_at: Option<i64>,
    pub reply: Option<String>,
    /// Runs of the handlers that failed.
    pub attempts: i64,
    pub last_error: Option<String>,
    /// Set aside after too many failed runs.
    pub dead_at: Option<i64>,
}

/// A dead event as ops see it.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct DeadEvent {
    pub id: i64,
    pub channel_id: String,
    pub dedupe_key: String,
    pub kind: String,
    pub received_at: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub dead_at: i64,
}

/// A failed run of an event's handlers.
#[derive(Debug, Clone)]
pub struct Failed<'a> {
    pub id: i64,
    pub reason: &'a str,
    pub now_ms: i64,
    /// When to run it again.
    pub retry_at_ms: i64,
    /// Set it aside as dead instead.
    pub dead: bool,
}

#[derive(FromRow)]
pub(super) struct InsertedKey {
    pub(super) id: i64,
    pub(super) channel_id: String,
    pub(super) dedupe_key: String,
}

#[derive(FromRow)]
struct ExistingRow {
    id: i64,
    processed_at: Option<i64>,
    reply: Option<String>,
}

pub(super) const SELECT_BY_KEY: &str =
    "select id, processed_at, reply from inbox where channel_id = $1 and dedupe_key = $2";
pub(super) const MARK_PROCESSED: &str =
    "update inbox set processed_at = $1, reply = $2 where id = $3";
const SELECT_ROW: &str = "select id, channel_id, dedupe_key, kind, occurred_at, received_at, payload, processed_at, reply, \
     cast(attempts as bigint) as attempts, last_error, dead_at from inbox where id = $1";
// Due: unprocessed, not dead, older than the grace period, and past its retry time if it failed.
const SELECT_DUE: &str = "select id, channel_id, dedupe_key, kind, occurred_at, received_at, payload, processed_at, reply, \
     cast(attempts as bigint) as attempts, last_error, dead_at \
     from inbox where processed_at is null and dead_at is null and received_at < $1 \
     and (retry_at is null or retry_at <= $2) order by received_at limit $3";
const COUNT_UNPROCESSED: &str =
    "select cast(count(*) as bigint) from inbox where processed_at is null and dead_at is null";
const COUNT_DEAD: &str =
    "select cast(count(*) as bigint) from inbox where processed_at is null and dead_at is not null";
const FAILED: &str = "update inbox set attempts = attempts + 1, last_error = $1, retry_at = $2, \
     dead_at = case when $3 then $4 else null end where id = $5 and processed_at is null";
const LIST_DEAD: &str = "select id, channel_id, dedupe_key, kind, received_at, cast(attempts as bigint) as attempts, \
     last_error, dead_at from inbox where processed_at is null and dead_at is not null order by dead_at desc, id desc limit $1";
const REDRIVE: &str = "update inbox set dead_at = null, attempts = 0, retry_at = null \
     where id = $1 and processed_at is null and dead_at is not null";
const DISCARD: &str = "update inbox set processed_at = $1 \
     where id = $2 and processed_at is null and dead_at is not null";
const COUNT_ALL: &str = "select cast(count(*) as bigint) from inbox";
const PRUNE: &str = "delete from inbox where processed_at is not null and processed_at < $1";

/// Maps each row to `New` (its key was inserted now; first copy only) or `Duplicate`.
pub(super) async fn resolve_outcomes(
    tx: &mut Tx,
    rows: &[NewInbox],
    mut inserted: HashMap<(String, String), i64>,
) -> Result<Vec<Accepted>, StoreError> {
    let mut outcomes = Vec::with_capacity(rows.len());
    for row in rows {
        let key = (row.channel_id.clone(), row.dedupe_key.clone());
        if let Some(id) = inserted.remove(&key) {
            outcomes.push(Accepted::New { id });
            continue;
        }
        let existing: ExistingRow = on_tx!(tx, c => sqlx::query_as::<_, ExistingRow>(SELECT_BY_KEY)
            .bind(&row.channel_id)
            .bind(&row.dedupe_key)
            .fetch_one(&mut **c)
            .await?);
        outcomes.push(Accepted::Duplicate {
            id: existing.id,
            processed: existing.processed_at.is_some(),
            reply: existing.reply,
        });
    }
    Ok(outcomes)
}

impl Store {
    pub async fn inbox_row(&self, id: i64) -> Result<InboxRow, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, InboxRow>(SELECT_ROW).bind(id).fetch_one(p).await?),
        )
    }

    /// Accepted rows not yet processed that arrived before `cutoff_ms` (crash leftovers and
    /// failed runs whose retry time has come), oldest first; dead rows are left out.
    pub async fn inbox_due(
        &self,
        cutoff_ms: i64,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<InboxRow>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, InboxRow>(SELECT_DUE)
            .bind(cutoff_ms)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(p)
            .await?),
        )
    }

    /// Records a failed run: when to try again, or that the row is dead now.
    pub async fn inbox_failed(&self, f: &Failed<'_>) -> Result<(), StoreError> {
        on_pool!(self.pool(), p => {
            sqlx::query(FAILED).bind(f.reason).bind(f.retry_at_ms).bind(f.dead).bind(f.now_ms).bind(f.id)
                .execute(p).await?;
        });
        Ok(())
    }

    /// Dead events, most recent first.
    pub async fn inbox_dead(&self, limit: i64) -> Result<Vec<DeadEvent>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, DeadEvent>(LIST_DEAD).bind(limit).fetch_all(p).await?),
        )
    }

    /// How many events are dead.
    pub async fn inbox_dead_count(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(self.pool(), p => sqlx::query_scalar::<_, i64>(COUNT_DEAD).fetch_one(p).await?))
    }

    /// Gives a dead event its attempts back: the sweeper runs it again. `false` if it is not dead.
    pub async fn inbox_redrive(&self, id: i64) -> Result<bool, StoreError> {
        let n = on_pool!(self.pool(), p => sqlx::query(REDRIVE).bind(id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Closes a dead event without running it (it stays in the table, marked processed, until
    /// retention prunes it). `false` if it is not dead.
    pub async fn inbox_discard(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let n = on_pool!(self.pool(), p => sqlx::query(DISCARD).bind(now_ms).bind(id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Number of accepted rows still waiting to be processed (dead ones not counted).
    pub async fn inbox_depth(&self) -> Result<i64, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_scalar::<_, i64>(COUNT_UNPROCESSED).fetch_one(p).await?),
        )
    }

    pub async fn inbox_count(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(self.pool(), p => sqlx::query_scalar::<_, i64>(COUNT_ALL).fetch_one(p).await?))
    }

    /// Marks one row processed outside the group-commit writer (sweeper).
    pub async fn inbox_mark_processed(&self, mark: &Processed) -> Result<(), StoreError> {
        on_pool!(self.pool(), p => {
            sqlx::query(MARK_PROCESSED).bind(mark.at).bind(&mark.reply).bind(mark.id).execute(p).await?;
        });
        Ok(())
    }

    /// Deletes processed rows older than `before_ms` (retries come within minutes); returns how many.
    pub async fn prune_inbox(&self, before_ms: i64) -> Result<u64, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query(PRUNE).bind(before_ms).execute(p).await?.rows_affected()),
        )
    }
}
