//! The SQLite group commit, run on the writer's own thread with cached prepared statements.
//! Through sqlx every query was a hand-off to its SQLite thread and every batch's multi-row SQL
//! was parsed afresh; that was most of the cost of a durable callback on the embedded default.
//! PostgreSQL keeps the sqlx path in [`super::batch`]. Same tables, same rules: a row is new
//! exactly when its (channel, dedupe key) was not there; member changes only for new rows.
//!
//! The writer remembers what it wrote to `members`, `chat_groups` and `group_members` (`Known`)
//! and skips the statements that would change nothing: a group touched less than a minute ago
//! under the same name, a membership already active. A member it has written is updated by row
//! id, without the look-ups of the unique key that the upsert and the id read cost. The memory
//! holds only while nobody else writes the file: each batch reads SQLite's `data_version` under
//! its write lock, and any commit by another connection (a second `serve` process, another
//! writer, the sqlx pool) makes it start over.
//!
//! The per-callback statements carry no RETURNING clause: SQLite collects RETURNING rows in a
//! temporary table, and opening and dropping one per statement showed in the writer's profile
//! (locks, allocations, page-cache set-up). New inbox ids come from `last_insert_rowid`, member
//! ids from a look-up by the unique key.
//!
//! The log is copied into the database file by a thread of its own ([`checkpoint`]), not by
//! the commit that happens to fill it.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::str::FromStr;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::batch::Committed;
use super::inbox::{Accepted, NewInbox, Processed};
use super::lifecycle::StageChange;
use super::members::MemberChanges;
use super::StoreError;

const INSERT_INBOX: &str = "insert into inbox \
     (channel_id, dedupe_key, kind, sender, group_id, occurred_at, received_at, payload) \
     values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) on conflict (channel_id, dedupe_key) do nothing";
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
     on conflict (scope, platform_group_id) do nothing returning id";
// Same effect as UPSERT_MEMBER's update, for a member whose row id the writer knows.
const UPDATE_MEMBER_BY_ID: &str = "update members set \
     display_name = coalesce(?2, display_name), last_active_at = max(?3, last_active_at), \
     message_count = message_count + ?4 where id = ?1";
const SELECT_MEMBER_ID: &str = "select id from members where scope = ?1 and platform_user_id = ?2";
const SELECT_GROUP: &str = "select id, name, last_active_at from chat_groups \
     where scope = ?1 and platform_group_id = ?2";
// Same effect as TOUCH_GROUP for a group whose row the writer knows needs it.
const TOUCH_GROUP_BY_ID: &str = "update chat_groups set name = coalesce(?2, name), \
     last_active_at = max(?3, last_active_at) where id = ?1 returning name, last_active_at";
// As on PostgreSQL: touch a known group only when renamed or a minute has passed.
const TOUCH_GROUP: &str = "update chat_groups set name = coalesce(?3, name), \
     last_active_at = max(?4, last_active_at) \
     where scope = ?1 and platform_group_id = ?2 \
     and (?4 > last_active_at + 60000 or (?3 is not null and (name is null or name <> ?3)))";
const UPSERT_MEMBERSHIP_BY_IDS: &str =
    "insert into group_members (group_id, member_id, joined_at, left_at) values (?1, ?2, ?3, ?4) \
     on conflict (group_id, member_id) do update set left_at = excluded.left_at, \
     joined_at = case when group_members.left_at is not null and excluded.left_at is null \
         then excluded.joined_at else group_members.joined_at end \
     where group_members.left_at is not null or excluded.left_at is not null";
const UPSERT_ACTIVITY_BY_ID: &str = "insert into member_daily_activity \
     (day, member_id, message_count, event_count) values (?1, ?2, ?3, ?4) \
     on conflict (day, member_id) do update set \
     message_count = member_daily_activity.message_count + excluded.message_count, \
     event_count = member_daily_activity.event_count + excluded.event_count";
// All reply-less marks of a batch in one statement (ids as a JSON array).
const MARK_PLAIN_MANY: &str = "update inbox set processed_at = ?1 \
     where id in (select value from json_each(?2)) and processed_at is null";
const SET_STAGE: &str = "insert into member_stages (member_id, stage, since) values (?1, ?2, ?3) \
     on conflict (member_id) do update set stage = excluded.stage, since = excluded.since";
const LOG_STAGE: &str =
    "insert into member_stage_history (member_id, from_stage, to_stage, at) values (?1, ?2, ?3, ?4)";
const MARK_WITH_REPLY: &str = "update inbox set processed_at = ?1, reply = ?2 where id = ?3";

/// A group row as the writer last left it.
#[derive(Debug, Clone)]
struct GroupSeen {
    id: i64,
    name: Option<String>,
    last_active_at: i64,
}

/// What the writer knows it wrote to `chat_groups` and `group_members`. Only what committed is
/// remembered; a failed batch forgets its own changes. Bounded: past the limits it starts over.
#[derive(Debug, Default)]
struct Known {
    /// Member row ids by scope and platform user id.
    members: HashMap<String, HashMap<String, i64>>,
    member_count: usize,
    groups: HashMap<(String, String), GroupSeen>,
    /// Memberships known to be active, as (group row id, member row id). Kept as three strings,
    /// a million of them held 165 MiB more (docs/benchmarks.md §6).
    active: HashSet<(i64, i64)>,
    /// `pragma data_version` when the memory was last known good: it changes with every commit
    /// by another connection, never with this connection's own.
    data_version: Option<i64>,
}

// An estimate, not measured: a map slot (33 bytes, 7/8 full at most) and the id's string, about
// 60-75 bytes each, so 12-15 MB for 200,000 members.
const KNOWN_MEMBERS_MAX: usize = 200_000;
const KNOWN_GROUPS_MAX: usize = 100_000;
// An estimate, not measured alone: 17 bytes a slot in a table of 2^21 at a million, about 36 MB.
const KNOWN_MEMBERSHIPS_MAX: usize = 1_000_000;

/// Changes to [`Known`] made by one batch, applied after its commit.
#[derive(Default)]
struct KnownDelta {
    members: Vec<(String, String, i64)>,
    groups: Vec<((String, String), GroupSeen)>,
    memberships: Vec<((i64, i64), bool)>,
}

impl Known {
    /// Forgets everything if another connection committed since this one last looked.
    fn check(&mut self, data_version: i64) {
        if self.data_version != Some(data_version) {
            self.members.clear();
            self.member_count = 0;
            self.groups.clear();
            self.active.clear();
            self.data_version = Some(data_version);
        }
    }

    fn member_id(&self, scope: &str, user_id: &str) -> Option<i64> {
        self.members.get(scope)?.get(user_id).copied()
    }

    fn apply(&mut self, delta: KnownDelta) {
        if self.member_count + delta.members.len() > KNOWN_MEMBERS_MAX {
            self.members.clear();
            self.member_count = 0;
        }
        for (scope, user_id, id) in delta.members {
            if self
                .members
                .entry(scope)
                .or_default()
                .insert(user_id, id)
                .is_none()
            {
                self.member_count += 1;
            }
        }
        if self.groups.len() + delta.groups.len() > KNOWN_GROUPS_MAX {
            self.groups.clear();
        }
        if self.active.len() + delta.memberships.len() > KNOWN_MEMBERSHIPS_MAX {
            self.active.clear();
        }
        self.groups.extend(delta.groups);
        for (key, active) in delta.memberships {
            if active {
                self.active.insert(key);
            } else {
                self.active.remove(&key);
            }
        }
    }
}

/// One writer's connection for group commits.
pub struct SqliteCommitter {
    conn: Option<Connection>,
    /// The process's write turn on this file, shared with the sqlx pool's write transactions.
    turn: Option<super::turn::WriteTurn>,
    /// `None` only in tests that compare against a writer without memory.
    /// Boxed: the maps' heads would make every [`super::batch::BatchCommitter`] this large.
    known: Option<Box<Known>>,
    /// Copies the log into the database file off the commit path ([`checkpoint`]).
    checkpointer: Option<checkpoint::Checkpointer>,
}

impl SqliteCommitter {
    /// Opens the database file of a `sqlite:` URL with the same settings as the sqlx pool.
    pub fn open(url: &str, full_sync: bool) -> Result<Self, StoreError> {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
        let conn = Connection::open(options.get_filename()).map_err(store_error)?;
        conn.busy_timeout(super::turn::TURN_TIMEOUT)
            .map_err(store_error)?;
        conn.execute_batch(if full_sync {
            "pragma journal_mode = wal; pragma synchronous = full; pragma foreign_keys = on; \
             pragma temp_store = memory; pragma cache_size = -32000;"
        } else {
            "pragma journal_mode = wal; pragma synchronous = normal; pragma foreign_keys = on; \
             pragma temp_store = memory; pragma cache_size = -32000;"
        })
        .map_err(store_error)?;
        let turn = super::turn::WriteTurn::for_file(options.get_filename());
        // An in-memory database (no turn) has no log, and no second connection could see it.
        let checkpointer = if turn.is_some() {
            conn.pragma_update(None, "wal_autocheckpoint", checkpoint::WAL_BACKSTOP_PAGES)
                .map_err(store_error)?;
            Some(checkpoint::Checkpointer::start(
                options.get_filename(),
                full_sync,
                turn.clone(),
                checkpoint::RESTART_AT_PAGES,
            )?)
        } else {
            None
        };
        Ok(Self {
            conn: Some(conn),
            turn,
            known: Some(Box::default()),
            checkpointer,
        })
    }

    /// The write turn to take before [`Self::commit_batch`].
    pub fn turn(&self) -> Option<&super::turn::WriteTurn> {
        self.turn.as_ref()
    }

    /// Closes the connection: later commits fail as unavailable (shutdown, outage tests).
    pub fn close(&mut self) {
        self.conn = None;
        self.checkpointer = None;
    }

    /// Writes one batch atomically; `changes_for` turns the outcomes (which rows are new) into
    /// the member changes written in the same transaction. Stage changes that fail are rolled
    /// back alone (a savepoint) and reported in [`Committed::stages_failed`]: a bad stage must
    /// not turn away the callbacks that share its commit.
    pub fn commit_batch(
        &mut self,
        rows: &[NewInbox],
        marks: &[Processed],
        stages: &[StageChange],
        changes_for: impl FnOnce(&[Accepted]) -> MemberChanges,
    ) -> Result<Committed, StoreError> {
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("database connection closed".into()))?;
        let mut tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(store_error)?;
        if let Some(known) = &mut self.known {
            // Read under the write lock: nobody else can commit between here and our commit.
            let version = tx
                .query_row("pragma data_version", [], |row| row.get(0))
                .map_err(store_error)?;
            known.check(version);
        }
        let outcomes = insert_rows(&tx, rows).map_err(store_error)?;
        let delta = apply_changes(&tx, &changes_for(&outcomes), self.known.as_deref())
            .map_err(store_error)?;
        mark(&tx, marks).map_err(store_error)?;
        let stages_failed = if stages.is_empty() {
            None
        } else {
            let savepoint = tx.savepoint().map_err(store_error)?;
            match record_stages(&savepoint, stages) {
                Ok(()) => {
                    savepoint.commit().map_err(store_error)?;
                    None
                }
                // Dropping the savepoint rolls the stage writes back.
                Err(e) => Some(store_error(e)),
            }
        };
        tx.commit().map_err(store_error)?;
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.nudge();
        }
        if let Some(known) = &mut self.known {
            known.apply(delta);
        }
        Ok(Committed {
            accepted: outcomes,
            stages_failed,
        })
    }
}

/// Members' new stages, in the order they were decided (the last one per member stays).
fn record_stages(tx: &Connection, stages: &[StageChange]) -> rusqlite::Result<()> {
    let mut set = tx.prepare_cached(SET_STAGE)?;
    let mut log = tx.prepare_cached(LOG_STAGE)?;
    for c in stages {
        set.execute(params![c.member_id, c.to, c.at])?;
        log.execute(params![c.member_id, c.from, c.to, c.at])?;
    }
    Ok(())
}

fn insert_rows(
    tx: &rusqlite::Transaction<'_>,
    rows: &[NewInbox],
) -> rusqlite::Result<Vec<Accepted>> {
    let mut insert = tx.prepare_cached(INSERT_INBOX)?;
    let mut existing = tx.prepare_cached(SELECT_BY_KEY)?;
    let mut outcomes = Vec::with_capacity(rows.len());
    for r in rows {
        let inserted = insert.execute(params![
            r.channel_id,
            r.dedupe_key,
            r.kind,
            r.sender,
            r.group_id,
            r.occurred_at,
            r.received_at,
            r.payload
        ])?;
        let outcome = match inserted {
            // `on conflict do nothing` changed one row: it is the row just inserted.
            1 => Accepted::New {
                id: tx.last_insert_rowid(),
            },
            // A retry (or a second copy in this very batch): report the stored row.
            _ => existing.query_row(params![r.channel_id, r.dedupe_key], |row| {
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

fn apply_changes(
    tx: &rusqlite::Transaction<'_>,
    changes: &MemberChanges,
    known: Option<&Known>,
) -> rusqlite::Result<KnownDelta> {
    let mut delta = KnownDelta::default();
    let mut member_ids: HashMap<(&str, &str), i64> = HashMap::with_capacity(changes.members.len());
    let mut member = tx.prepare_cached(UPSERT_MEMBER)?;
    let mut member_by_id = tx.prepare_cached(UPDATE_MEMBER_BY_ID)?;
    let mut member_id_of = tx.prepare_cached(SELECT_MEMBER_ID)?;
    for m in &changes.members {
        let known_id = known.and_then(|k| k.member_id(&m.scope, &m.user_id));
        // Zero rows means the remembered row is gone: the upsert below puts it back.
        if let Some(id) = known_id {
            if member_by_id.execute(params![id, m.name, m.last_active_at, m.messages])? == 1 {
                member_ids.insert((m.scope.as_str(), m.user_id.as_str()), id);
                continue;
            }
        }
        member.execute(params![
            m.scope,
            m.user_id,
            m.name,
            m.first_seen_at,
            m.last_active_at,
            m.messages
        ])?;
        let id: i64 = member_id_of.query_row(params![m.scope, m.user_id], |row| row.get(0))?;
        member_ids.insert((m.scope.as_str(), m.user_id.as_str()), id);
        if known.is_some() {
            delta.members.push((m.scope.clone(), m.user_id.clone(), id));
        }
    }
    let mut group_ids: HashMap<(&str, &str), i64> = HashMap::with_capacity(changes.groups.len());
    for g in &changes.groups {
        let key = (g.scope.clone(), g.group_id.clone());
        let seen = match known.and_then(|k| k.groups.get(&key)) {
            Some(seen) => touch_known_group(tx, seen, g.name.as_ref(), g.at)?,
            None => Some(write_group(
                tx,
                &g.scope,
                &g.group_id,
                g.name.as_ref(),
                g.at,
            )?),
        };
        // `None` only for a group the writer knows and left untouched.
        let id = match seen {
            Some(seen) => {
                let id = seen.id;
                delta.groups.push((key, seen));
                id
            }
            None => known.and_then(|k| k.groups.get(&key)).map_or(0, |s| s.id),
        };
        group_ids.insert((g.scope.as_str(), g.group_id.as_str()), id);
    }
    let mut membership_by_ids = tx.prepare_cached(UPSERT_MEMBERSHIP_BY_IDS)?;
    for r in &changes.memberships {
        // Every membership's group is in the same batch (`changes_for`).
        let group = group_ids
            .get(&(r.scope.as_str(), r.group_id.as_str()))
            .copied()
            .unwrap_or(0);
        let member = member_id(tx, &member_ids, &r.scope, &r.user_id)?;
        let key = (group, member);
        if !r.left && known.is_some_and(|k| k.active.contains(&key)) {
            continue;
        }
        let left_at = r.left.then_some(r.at);
        membership_by_ids.execute(params![group, member, r.at, left_at])?;
        delta.memberships.push((key, !r.left));
    }
    let mut activity_by_id = tx.prepare_cached(UPSERT_ACTIVITY_BY_ID)?;
    for a in &changes.activity {
        let id = member_id(tx, &member_ids, &a.scope, &a.user_id)?;
        activity_by_id.execute(params![a.day, id, a.messages, a.events])?;
    }
    Ok(delta)
}

/// The id of a member upserted in this batch (every member an event names is; the look-up is a
/// guard, not a path in use).
fn member_id(
    tx: &rusqlite::Transaction<'_>,
    upserted: &HashMap<(&str, &str), i64>,
    scope: &str,
    user_id: &str,
) -> rusqlite::Result<i64> {
    match upserted.get(&(scope, user_id)) {
        Some(&id) => Ok(id),
        None => tx
            .prepare_cached(SELECT_MEMBER_ID)?
            .query_row(params![scope, user_id], |row| row.get(0)),
    }
}

/// A group the writer has not seen: insert it, or touch it as the PostgreSQL path does, and
/// read back what the row now holds.
fn write_group(
    tx: &rusqlite::Transaction<'_>,
    scope: &str,
    group_id: &str,
    name: Option<&String>,
    at: i64,
) -> rusqlite::Result<GroupSeen> {
    let mut insert = tx.prepare_cached(INSERT_GROUP)?;
    let inserted: Option<i64> = insert
        .query_row(params![scope, group_id, name, at], |row| row.get(0))
        .optional()?;
    if let Some(id) = inserted {
        return Ok(GroupSeen {
            id,
            name: name.cloned(),
            last_active_at: at,
        });
    }
    tx.prepare_cached(TOUCH_GROUP)?
        .execute(params![scope, group_id, name, at])?;
    tx.prepare_cached(SELECT_GROUP)?
        .query_row(params![scope, group_id], |row| {
            Ok(GroupSeen {
                id: row.get(0)?,
                name: row.get(1)?,
                last_active_at: row.get(2)?,
            })
        })
}

/// A group the writer knows: touched only when renamed or a minute has passed, as
/// `TOUCH_GROUP` would. `None` when nothing needed writing.
fn touch_known_group(
    tx: &rusqlite::Transaction<'_>,
    seen: &GroupSeen,
    name: Option<&String>,
    at: i64,
) -> rusqlite::Result<Option<GroupSeen>> {
    let renamed = name.is_some_and(|n| seen.name.as_ref() != Some(n));
    if !renamed && at <= seen.last_active_at + GROUP_TOUCH_MS {
        return Ok(None);
    }
    tx.prepare_cached(TOUCH_GROUP_BY_ID)?
        .query_row(params![seen.id, name, at], |row| {
            Ok(Some(GroupSeen {
                id: seen.id,
                name: row.get(0)?,
                last_active_at: row.get(1)?,
            }))
        })
}

/// The group-touch rule both committers follow (the SQL above spells the same number).
const GROUP_TOUCH_MS: i64 = super::members::GROUP_ACTIVITY_GRANULARITY_MS;

fn mark(tx: &rusqlite::Transaction<'_>, marks: &[Processed]) -> rusqlite::Result<()> {
    let mut with_reply = tx.prepare_cached(MARK_WITH_REPLY)?;
    let mut plain_ids = String::from("[");
    let mut plain_at = 0;
    for m in marks {
        match &m.reply {
            None => {
                if plain_ids.len() > 1 {
                    plain_ids.push(',');
                }
                let _ = write!(plain_ids, "{}", m.id);
                plain_at = plain_at.max(m.at);
            }
            Some(reply) => {
                with_reply.execute(params![m.at, reply, m.id])?;
            }
        }
    }
    if plain_ids.len() > 1 {
        plain_ids.push(']');
        tx.prepare_cached(MARK_PLAIN_MANY)?
            .execute(params![plain_at, plain_ids])?;
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

pub mod checkpoint;
#[cfg(test)]
mod tests;
