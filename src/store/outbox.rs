//! The outbox table: enqueue (inside the caller's transaction), claim with a lease (`FOR UPDATE
//! SKIP LOCKED` on PostgreSQL; SQLite serializes writers, so the same statement is safe there),
//! mark results only while the lease is still ours, list, count and re-queue. Also the shared
//! access-token rows and the customer mass-send quota.

use super::{Backend, Store, StoreError, Tx};
use crate::{on_pool, on_tx};

/// A message to send, as the business change that caused it writes it.
#[derive(Debug, Clone)]
pub struct NewOutbox {
    pub idem_key: String,
    pub channel_id: String,
    pub kind: String,
    pub recipient: String,
    /// The request body as JSON (no credentials).
    pub payload: String,
    pub priority: i64,
    pub not_before_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub task_sender: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub idem_key: String,
    pub channel_id: String,
    pub kind: String,
    pub recipient: String,
    pub payload: String,
    pub priority: i64,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub expires_at: Option<i64>,
    pub last_error: Option<String>,
    pub platform_id: Option<String>,
    pub task_sender: Option<String>,
    pub result: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

/// What became of a claimed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    Sent {
        id: i64,
        platform_id: Option<String>,
    },
    /// A customer mass send is a task now; staff confirm it in the client.
    TaskCreated {
        id: i64,
        platform_id: String,
        next_poll_ms: i64,
    },
    /// The task was confirmed and every recipient has a final status.
    Delivered { id: i64, result: String },
    /// Failed for now; try again at `at_ms`.
    Retry { id: i64, at_ms: i64, error: String },
    /// Not attempted (rate limit, peak hour): try at `at_ms` without counting an attempt.
    Defer { id: i64, at_ms: i64 },
    /// Given up, with the reason.
    Dead { id: i64, error: String },
}

const COLUMNS: &str = "id, idem_key, channel_id, kind, recipient, payload, priority, state, attempts, \
     next_attempt_at, expires_at, last_error, platform_id, task_sender, result, created_at, sent_at";

const INSERT: &str = "insert into outbox (idem_key, channel_id, kind, recipient, payload, priority, state, \
     next_attempt_at, expires_at, task_sender, created_at, updated_at) \
     values ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10, $10) on conflict (idem_key) do nothing";

const INSERT_DEAD: &str =
    "insert into outbox (idem_key, channel_id, kind, recipient, payload, priority, state, \
     next_attempt_at, last_error, created_at, updated_at) \
     values ($1, $2, $3, $4, $5, 0, 'dead', $6, $7, $6, $6) on conflict (idem_key) do nothing";

fn claim_sql(backend: Backend) -> String {
    let lock = match backend {
        Backend::Postgres => " for update skip locked",
        Backend::Sqlite => "",
    };
    format!(
        "update outbox set state = 'sending', claimed_by = $1, claim_until = $2, attempts = attempts + 1, updated_at = $3 \
         where id in (select id from outbox where (state = 'pending' and next_attempt_at <= $3) \
           or (state = 'sending' and claim_until < $3) \
           order by priority desc, next_attempt_at, id limit $4{lock}) \
         returning {COLUMNS}"
    )
}

fn claim_tasks_sql(backend: Backend) -> String {
    let lock = match backend {
        Backend::Postgres => " for update skip locked",
        Backend::Sqlite => "",
    };
    format!(
        "update outbox set claimed_by = $1, next_attempt_at = $2, updated_at = $3 \
         where id in (select id from outbox where state = 'task_created' and next_attempt_at <= $3 \
           order by next_attempt_at, id limit $4{lock}) \
         returning {COLUMNS}"
    )
}

const MARK_SENT: &str = "update outbox set state = 'sent', platform_id = $3, sent_at = $4, updated_at = $4, \
     last_error = null, claimed_by = null, claim_until = null where id = $1 and claimed_by = $2 and state = 'sending'";
const MARK_TASK: &str = "update outbox set state = 'task_created', platform_id = $3, sent_at = $4, updated_at = $4, \
     next_attempt_at = $5, claimed_by = null, claim_until = null where id = $1 and claimed_by = $2 and state = 'sending'";
const MARK_DELIVERED: &str =
    "update outbox set state = 'delivered', result = $3, updated_at = $4, claimed_by = null \
     where id = $1 and claimed_by = $2 and state = 'task_created'";
const MARK_RETRY: &str =
    "update outbox set state = 'pending', next_attempt_at = $3, last_error = $4, updated_at = $5, \
     claimed_by = null, claim_until = null where id = $1 and claimed_by = $2 and state = 'sending'";
const MARK_DEFER: &str = "update outbox set state = 'pending', next_attempt_at = $3, attempts = attempts - 1, updated_at = $4, \
     claimed_by = null, claim_until = null where id = $1 and claimed_by = $2 and state = 'sending'";
const MARK_DEAD: &str =
    "update outbox set state = 'dead', last_error = $3, updated_at = $4, claimed_by = null, \
     claim_until = null where id = $1 and claimed_by = $2 and state in ('sending', 'task_created')";
const REQUEUE: &str =
    "update outbox set state = 'pending', attempts = 0, next_attempt_at = $2, last_error = null, \
     updated_at = $2 where id = $1 and state = 'dead'";
const REQUEUE_ALL: &str =
    "update outbox set state = 'pending', attempts = 0, next_attempt_at = $1, last_error = null, \
     updated_at = $1 where state = 'dead'";
const COUNTS: &str = "select state, count(*) from outbox group by state order by state";
const IS_MUTED: &str = "select count(*) from muted_members where scope = $1 and user_id = $2";

const TOKEN_GET: &str = "select token, expires_at from api_tokens where app_key = $1";
const TOKEN_PUT: &str = "insert into api_tokens (app_key, token, expires_at, fetched_at) values ($1, $2, $3, $4) \
     on conflict (app_key) do update set token = excluded.token, expires_at = excluded.expires_at, fetched_at = excluded.fetched_at";
const TOKEN_DROP: &str = "update api_tokens set expires_at = 0 where app_key = $1 and token = $2";

const QUOTA_USED: &str =
    "select used from mass_send_quota where scope = $1 and recipient = $2 and month = $3";
const QUOTA_TAKE: &str =
    "insert into mass_send_quota (scope, recipient, month, used) values ($1, $2, $3, 1) \
     on conflict (scope, recipient, month) do update set used = mass_send_quota.used + 1";
const RESERVED: &str = "select result from outbox where id = $1";
const SET_RESERVED: &str = "update outbox set result = $2 where id = $1";

/// Writes the row unless its idempotency key exists; `true` when it was new.
pub async fn enqueue(tx: &mut Tx, row: &NewOutbox, now_ms: i64) -> Result<bool, StoreError> {
    let n = on_tx!(tx, c => sqlx::query(INSERT)
        .bind(&row.idem_key).bind(&row.channel_id).bind(&row.kind).bind(&row.recipient)
        .bind(&row.payload).bind(row.priority).bind(row.not_before_ms).bind(row.expires_at_ms)
        .bind(&row.task_sender).bind(now_ms)
        .execute(&mut **c).await?.rows_affected());
    Ok(n == 1)
}

/// Records a message that could not be made (its template failed for this recipient) as a dead
/// letter with the reason, under the key it would have had; `false` when the key exists.
pub async fn enqueue_dead(
    tx: &mut Tx,
    row: &NewOutbox,
    reason: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let n = on_tx!(tx, c => sqlx::query(INSERT_DEAD)
        .bind(&row.idem_key).bind(&row.channel_id).bind(&row.kind).bind(&row.recipient)
        .bind(&row.payload).bind(now_ms).bind(reason)
        .execute(&mut **c).await?.rows_affected());
    Ok(n == 1)
}

/// Applies the marks of one round in one transaction; marks whose lease was lost do nothing.
pub async fn apply_marks(
    tx: &mut Tx,
    worker: &str,
    marks: &[Mark],
    now_ms: i64,
) -> Result<(), StoreError> {
    for mark in marks {
        on_tx!(tx, c => {
            let q = match mark {
                Mark::Sent { id, platform_id } => sqlx::query(MARK_SENT).bind(*id).bind(worker).bind(platform_id.clone()).bind(now_ms),
                Mark::TaskCreated { id, platform_id, next_poll_ms } => sqlx::query(MARK_TASK).bind(*id).bind(worker)
                    .bind(platform_id.clone()).bind(now_ms).bind(*next_poll_ms),
                Mark::Delivered { id, result } => sqlx::query(MARK_DELIVERED).bind(*id).bind(worker).bind(result.clone()).bind(now_ms),
                Mark::Retry { id, at_ms, error } => sqlx::query(MARK_RETRY).bind(*id).bind(worker).bind(*at_ms).bind(error.clone()).bind(now_ms),
                Mark::Defer { id, at_ms } => sqlx::query(MARK_DEFER).bind(*id).bind(worker).bind(*at_ms).bind(now_ms),
                Mark::Dead { id, error } => sqlx::query(MARK_DEAD).bind(*id).bind(worker).bind(error.clone()).bind(now_ms),
            };
            q.execute(&mut **c).await?;
        });
    }
    Ok(())
}

/// Takes this month's quota for each recipient of a mass send, once per row (a retried row gets
/// its first reservation back). Returns the recipients within quota.
pub async fn reserve_quota(
    tx: &mut Tx,
    row_id: i64,
    scope: &str,
    recipients: &[String],
    month: &str,
    quota: i64,
) -> Result<Vec<String>, StoreError> {
    let earlier = on_tx!(tx, c => sqlx::query_scalar::<_, Option<String>>(RESERVED).bind(row_id).fetch_optional(&mut **c).await?)
        .flatten();
    if let Some(json) = earlier.filter(|s| s.starts_with('[')) {
        return serde_json::from_str(&json).map_err(|e| StoreError::Other(e.to_string()));
    }
    let mut allowed = Vec::new();
    for r in recipients {
        let used = on_tx!(tx, c => sqlx::query_scalar::<_, i64>(QUOTA_USED).bind(scope).bind(r).bind(month).fetch_optional(&mut **c).await?)
            .unwrap_or(0);
        if used < quota {
            on_tx!(tx, c => { sqlx::query(QUOTA_TAKE).bind(scope).bind(r).bind(month).execute(&mut **c).await?;});
            allowed.push(r.clone());
        }
    }
    let json = serde_json::to_string(&allowed).map_err(|e| StoreError::Other(e.to_string()))?;
    on_tx!(tx, c => { sqlx::query(SET_RESERVED).bind(row_id).bind(json).execute(&mut **c).await?;});
    Ok(allowed)
}

impl Store {
    /// Claims up to `limit` due rows (pending and due, or sending with an expired lease).
    pub async fn claim_outbox(
        &self,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = claim_sql(self.backend());
        // A write transaction, so that on SQLite the claim queues for the process's write turn
        // like every other writer instead of starving in the busy handler behind them.
        let mut tx = self.begin_write().await?;
        let rows = on_tx!(&mut tx, c => sqlx::query_as::<_, OutboxRow>(&sql)
            .bind(worker).bind(now_ms + lease_ms).bind(now_ms).bind(limit).fetch_all(&mut **c).await?);
        tx.commit().await?;
        Ok(rows)
    }

    /// Claims mass-send tasks due for a result poll; the next poll is scheduled at `next_poll_ms`.
    pub async fn claim_tasks(
        &self,
        worker: &str,
        now_ms: i64,
        next_poll_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = claim_tasks_sql(self.backend());
        // A write transaction, so that on SQLite the claim queues for the process's write turn
        // like every other writer instead of starving in the busy handler behind them.
        let mut tx = self.begin_write().await?;
        let rows = on_tx!(&mut tx, c => sqlx::query_as::<_, OutboxRow>(&sql)
            .bind(worker).bind(next_poll_ms).bind(now_ms).bind(limit).fetch_all(&mut **c).await?);
        tx.commit().await?;
        Ok(rows)
    }

    pub async fn outbox_rows(
        &self,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = format!(
            "select {COLUMNS} from outbox where ($1 = '' or state = $1) order by id desc limit $2"
        );
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, OutboxRow>(&sql)
            .bind(state.unwrap_or("")).bind(limit).fetch_all(p).await?),
        )
    }

    pub async fn outbox_row(&self, idem_key: &str) -> Result<Option<OutboxRow>, StoreError> {
        let sql = format!("select {COLUMNS} from outbox where idem_key = $1");
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, OutboxRow>(&sql)
            .bind(idem_key).fetch_optional(p).await?),
        )
    }

    /// Rows per state.
    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, (String, i64)>(COUNTS).fetch_all(p).await?),
        )
    }

    /// Puts a dead row (or every dead row) back in the queue; returns how many.
    pub async fn requeue_outbox(&self, id: Option<i64>, now_ms: i64) -> Result<u64, StoreError> {
        Ok(match id {
            Some(id) => {
                on_pool!(self.pool(), p => sqlx::query(REQUEUE).bind(id).bind(now_ms).execute(p).await?.rows_affected())
            }
            None => {
                on_pool!(self.pool(), p => sqlx::query(REQUEUE_ALL).bind(now_ms).execute(p).await?.rows_affected())
            }
        })
    }

    pub async fn is_muted(&self, scope: &str, user_id: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self.pool(), p => sqlx::query_scalar::<_, i64>(IS_MUTED).bind(scope).bind(user_id).fetch_one(p).await?);
        Ok(n > 0)
    }

    /// The shared token of an app, if any was stored: (token, expires at ms).
    pub async fn stored_token(&self, app_key: &str) -> Result<Option<(String, i64)>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, (String, i64)>(TOKEN_GET).bind(app_key).fetch_optional(p).await?),
        )
    }

    /// Stores a freshly fetched token for every worker and replica (one statement, no
    /// transaction held while it was fetched).
    pub async fn save_token(
        &self,
        app_key: &str,
        token: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self.pool(), p => {
            sqlx::query(TOKEN_PUT).bind(app_key).bind(token).bind(expires_at_ms).bind(now_ms).execute(p).await?;
        });
        Ok(())
    }

    /// Forgets `token` unless another worker already replaced it.
    pub async fn drop_token(&self, app_key: &str, token: &str) -> Result<(), StoreError> {
        on_pool!(self.pool(), p => { sqlx::query(TOKEN_DROP).bind(app_key).bind(token).execute(p).await?;});
        Ok(())
    }
}
