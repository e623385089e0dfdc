//! The SQLite group commit, run on the writer's own thread with cached prepared statements.
//! Through sqlx every query was a hand-off to its SQLite thread and every batch's multi-row SQL
//! was parsed afresh; that was most of the cost of a durable callback on the embedded default.
//! PostgreSQL keeps the sqlx path in [`super::batch`]. Same tables, same rules: a row is new
//! exactly when its (channel, dedupe key) was not there; member changes only for new rows.

use std::str::FromStr;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::inbox::{Accepted, NewInbox, Processed};
use super::members::MemberChanges;
use super::StoreError;

const INSERT_INBOX: &str = "insert into inbox \
     (channel_id, dedupe_key, kind, sender, group_id, occurred_at, received_at, payload) \
     values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) on conflict (channel_id, dedupe_key) do nothing returning id";
const SELECT_BY_KEY: &str =
    "select id, processed_at, reply from inbox where channel_id = ?1 and dedupe_key = ?2";
const UPSERT_MEMBER: &str = "insert into members \
     (scope, platform_user_id, display_name, first_seen_at, last_active_at, message_count) \
     values (?1, ?2, ?3, ?4, ?5, ?6) on conflict (scope, platform_user_id) do update set \
     display_name = coalesce(excluded.display_name, members.display_name), \
     last_active_at = max(excluded.last_active_at, members.last_active_at), \
     message_count = members.message_count + excluded.message_count";
const INSERT_GROUP: &str = "insert into chat_groups \
     (scope, platform_group_id, name, first_seen_at, last_active_at) values (?1, ?2, ?3, ?4, ?4) \
     on conflict (scope, platform_group_id) do nothing";
// As on PostgreSQL: touch a known group only when renamed or a minute has passed.
const TOUCH_GROUP: &str = "update chat_groups set name = coalesce(?3, name), \
     last_active_at = max(?4, last_active_at) \
     where scope = ?1 and platform_group_id = ?2 \
     and (?4 > last_active_at + 60000 or (?3 is not null and (name is null or name <> ?3)))";
const UPSERT_MEMBERSHIP: &str =
    "insert into group_members (group_id, member_id, joined_at, left_at) \
     select (select id from chat_groups where scope = ?1 and platform_group_id = ?2), \
     (select id from members where scope = ?1 and platform_user_id = ?3), ?4, ?5 where true \
     on conflict (group_id, member_id) do update set left_at = excluded.left_at, \
     joined_at = case when group_members.left_at is not null and excluded.left_at is null \
         then excluded.joined_at else group_members.joined_at end \
     where group_members.left_at is not null or excluded.left_at is not null";
const UPSERT_ACTIVITY: &str = "insert into member_daily_activity (day, member_id, message_count, event_count) \
     select ?3, (select id from members where scope = ?1 and platform_user_id = ?2), ?4, ?5 where true \
     on conflict (day, member_id) do update set \
     message_count = member_daily_activity.message_count + excluded.message_count, \
     event_count = member_daily_activity.event_count + excluded.event_count";
const MARK_PLAIN: &str =
    "update inbox set processed_at = ?1 where id = ?2 and processed_at is null";
const MARK_WITH_REPLY: &str = "update inbox set processed_at = ?1, reply = ?2 where id = ?3";

/// One writer's connection for group commits.
pub struct SqliteCommitter {
    conn: Option<Connection>,
}

impl SqliteCommitter {
    /// Opens the database file of a `sqlite:` URL with the same settings as the sqlx pool.
    pub fn open(url: &str, full_sync: bool) -> Result<Self, StoreError> {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
        let conn = Connection::open(options.get_filename()).map_err(store_error)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(store_error)?;
        conn.execute_batch(if full_sync {
            "pragma journal_mode = wal; pragma synchronous = full; pragma foreign_keys = on; \
             pragma temp_store = memory; pragma cache_size = -32000;"
        } else {
            "pragma journal_mode = wal; pragma synchronous = normal; pragma foreign_keys = on; \
             pragma temp_store = memory; pragma cache_size = -32000;"
        })
        .map_err(store_error)?;
        Ok(Self { conn: Some(conn) })
    }

    /// Closes the connection: later commits fail as unavailable (shutdown, outage tests).
    pub fn close(&mut self) {
        self.conn = None;
    }

    /// Writes one batch atomically; `changes_for` turns the outcomes (which rows are new) into
    /// the member changes written in the same transaction.
    pub fn commit_batch(
        &mut self,
        rows: &[NewInbox],
        marks: &[Processed],
        changes_for: impl FnOnce(&[Accepted]) -> MemberChanges,
    ) -> Result<Vec<Accepted>, StoreError> {
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("database connection closed".into()))?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(store_error)?;
        let outcomes = insert_rows(&tx, rows).map_err(store_error)?;
        apply_changes(&tx, &changes_for(&outcomes)).map_err(store_error)?;
        mark(&tx, marks).map_err(store_error)?;
        tx.commit().map_err(store_error)?;
        Ok(outcomes)
    }
}

fn insert_rows(
    tx: &rusqlite::Transaction<'_>,
    rows: &[NewInbox],
) -> rusqlite::Result<Vec<Accepted>> {
    let mut insert = tx.prepare_cached(INSERT_INBOX)?;
    let mut existing = tx.prepare_cached(SELECT_BY_KEY)?;
    let mut outcomes = Vec::with_capacity(rows.len());
    for r in rows {
        let id: Option<i64> = insert
            .query_row(
                params![
                    r.channel_id,
                    r.dedupe_key,
                    r.kind,
                    r.sender,
                    r.group_id,
                    r.occurred_at,
                    r.received_at,
                    r.payload
                ],
                |row| row.get(0),
            )
            .optional()?;
        let outcome = match id {
            Some(id) => Accepted::New { id },
            // A retry (or a second copy in this very batch): report the stored row.
            None => existing.query_row(params![r.channel_id, r.dedupe_key], |row| {
                Ok(Accepted::Duplicate {
                    id: row.get(0)?,
                    processed: row.get::<_, Option<i64>>(1)?.is_some(),
                    reply: row.get(2)?,
                })
            })?,
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

fn apply_changes(tx: &rusqlite::Transaction<'_>, changes: &MemberChanges) -> rusqlite::Result<()> {
    let mut member = tx.prepare_cached(UPSERT_MEMBER)?;
    for m in &changes.members {
        member.execute(params![
            m.scope,
            m.user_id,
            m.name,
            m.first_seen_at,
            m.last_active_at,
            m.messages
        ])?;
    }
    let mut insert_group = tx.prepare_cached(INSERT_GROUP)?;
    let mut touch_group = tx.prepare_cached(TOUCH_GROUP)?;
    for g in &changes.groups {
        if insert_group.execute(params![g.scope, g.group_id, g.name, g.at])? == 0 {
            touch_group.execute(params![g.scope, g.group_id, g.name, g.at])?;
        }
    }
    let mut membership = tx.prepare_cached(UPSERT_MEMBERSHIP)?;
    for r in &changes.memberships {
        let left_at = r.left.then_some(r.at);
        membership.execute(params![r.scope, r.group_id, r.user_id, r.at, left_at])?;
    }
    let mut activity = tx.prepare_cached(UPSERT_ACTIVITY)?;
    for a in &changes.activity {
        activity.execute(params![a.scope, a.user_id, a.day, a.messages, a.events])?;
    }
    Ok(())
}

fn mark(tx: &rusqlite::Transaction<'_>, marks: &[Processed]) -> rusqlite::Result<()> {
    let mut plain = tx.prepare_cached(MARK_PLAIN)?;
    let mut with_reply = tx.prepare_cached(MARK_WITH_REPLY)?;
    for m in marks {
        match &m.reply {
            None => plain.execute(params![m.at, m.id])?,
            Some(reply) => with_reply.execute(params![m.at, reply, m.id])?,
        };
    }
    Ok(())
}

/// Busy/locked and I/O trouble mean "try again later" (503 to the platform), as with sqlx.
fn store_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::DiskFull
                    | ErrorCode::CannotOpen
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}
