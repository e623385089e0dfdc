//! The member registry as an import writes it: members with names and first-seen times,
//! customer relations with their contact way and remark, groups with names, owners and
//! notices, memberships with how and by whom each member joined; the import runs with their
//! cursors; and what a finished run did not see (vanished relations and memberships). The
//! rows of a page are read together and only what changed is written (`rows`).

mod rows;

pub use rows::*;

use sqlx::FromRow;

use super::{Store, StoreError, Tx};
use crate::{on_pool, on_tx};

/// What one upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
    Unchanged,
}

/// Counts of a run, kept with its cursor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub gone: i64,
    pub errors: i64,
}

impl Tally {
    pub fn count(&mut self, w: Written) {
        match w {
            Written::Created => self.created += 1,
            Written::Updated => self.updated += 1,
            Written::Unchanged => self.unchanged += 1,
        }
    }

    pub fn add(&mut self, other: Tally) {
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.gone += other.gone;
        self.errors += other.errors;
    }
}

/// One import run of one kind (`contacts`, `groups`, `staff`) on one channel.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct SyncRun {
    pub id: i64,
    pub channel_id: String,
    pub what: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// Where to continue (the run's own format); empty at the start.
    pub cursor: String,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub gone: i64,
    pub errors: i64,
    pub last_error: Option<String>,
}

impl SyncRun {
    pub fn tally(&self) -> Tally {
        Tally {
            created: self.created,
            updated: self.updated,
            unchanged: self.unchanged,
            gone: self.gone,
            errors: self.errors,
        }
    }
}

const OPEN_RUN: &str = "select id, channel_id, what, started_at, finished_at, cursor, created, updated, unchanged, gone, errors, last_error \
     from sync_runs where channel_id = $1 and what = $2 and finished_at is null order by id desc limit 1";
const NEW_RUN: &str =
    "insert into sync_runs (channel_id, what, started_at) values ($1, $2, $3) returning id";
const SAVE_RUN: &str =
    "update sync_runs set cursor = $2, created = $3, updated = $4, unchanged = $5, gone = $6, \
     errors = $7, last_error = $8 where id = $1";
const FINISH_RUN: &str = "update sync_runs set finished_at = $2 where id = $1";
const LAST_RUNS: &str = "select id, channel_id, what, started_at, finished_at, cursor, created, updated, unchanged, gone, errors, last_error \
     from sync_runs order by id desc limit $1";

const GONE_FOLLOWS: &str =
    "update contact_follows set removed_at = $3 where scope = $1 and removed_at is null \
     and (seen_run is null or seen_run < $2) and added_at < $4";
const GONE_FOLLOW_MEMBERS: &str = "select distinct m.id from contact_follows cf join members m \
     on m.scope = cf.scope and m.platform_user_id = cf.external_userid \
     where cf.scope = $1 and cf.removed_at is null and (cf.seen_run is null or cf.seen_run < $2) and cf.added_at < $3";

const LEFT_MEMBERS: &str =
    "select member_id from group_members where group_id = $1 and left_at is null \
     and (seen_run is null or seen_run < $2) and joined_at < $3";
const LEAVE: &str =
    "update group_members set left_at = $3 where group_id = $1 and left_at is null \
     and (seen_run is null or seen_run < $2) and joined_at < $4";
const GONE_GROUPS: &str =
    "select id from chat_groups where scope = $1 and seen_run is not null and seen_run < $2 \
     and gone_at is null";
const GROUP_GONE: &str = "update chat_groups set gone_at = $2 where id = $1";

const UNNAMED_CORP_MEMBERS: &str = "select platform_user_id from members where scope = $1 \
     and (display_name is null or display_name = '') and platform_user_id > $2 \
     and platform_user_id not like 'wm%' and platform_user_id not like 'wo%' \
     order by platform_user_id limit $3";
const SET_NAME: &str =
    "update members set display_name = $3 where scope = $1 and platform_user_id = $2 \
     and (display_name is null or display_name <> $3)";
const PLATFORM_TAGS: &str =
    "select platform_id, name from tags where scope = $1 and platform_id is not null";

/// Ends the relations of `scope` that run `run` (started at `started_ms`) did not see: the
/// customer deleted the staff member or was deleted. Relations added after the run started are
/// kept (the run could not have seen them). Returns the members concerned.
pub async fn end_unseen_follows(
    tx: &mut Tx,
    scope: &str,
    run: i64,
    started_ms: i64,
    now_ms: i64,
) -> Result<Vec<i64>, StoreError> {
    let members: Vec<i64> = on_tx!(tx, c => sqlx::query_scalar(GONE_FOLLOW_MEMBERS)
        .bind(scope).bind(run).bind(started_ms).fetch_all(&mut **c).await?);
    on_tx!(tx, c => {
        sqlx::query(GONE_FOLLOWS).bind(scope).bind(run).bind(now_ms).bind(started_ms)
            .execute(&mut **c).await?;
    });
    Ok(members)
}

/// Marks the members of group `group_id` that run `run` did not see as left (those who joined
/// after the run started stay); returns them.
pub async fn leave_unseen(
    tx: &mut Tx,
    group_id: i64,
    run: i64,
    started_ms: i64,
    now_ms: i64,
) -> Result<Vec<i64>, StoreError> {
    let members: Vec<i64> = on_tx!(tx, c => sqlx::query_scalar(LEFT_MEMBERS)
        .bind(group_id).bind(run).bind(started_ms).fetch_all(&mut **c).await?);
    if !members.is_empty() {
        on_tx!(tx, c => {
            sqlx::query(LEAVE).bind(group_id).bind(run).bind(now_ms).bind(started_ms)
                .execute(&mut **c).await?;
        });
    }
    Ok(members)
}

/// The groups of `scope` an earlier run saw and run `run` did not (dismissed, or out of the
/// app's sight): each is marked gone and its members left. Returns (groups, members).
pub async fn end_unseen_groups(
    tx: &mut Tx,
    scope: &str,
    run: i64,
    now_ms: i64,
) -> Result<(i64, Vec<i64>), StoreError> {
    let groups: Vec<i64> = on_tx!(tx, c => sqlx::query_scalar(GONE_GROUPS)
        .bind(scope).bind(run).fetch_all(&mut **c).await?);
    let mut members = Vec::new();
    for &group in &groups {
        members.extend(leave_unseen(tx, group, i64::MAX, i64::MAX, now_ms).await?);
        on_tx!(tx, c => { sqlx::query(GROUP_GONE).bind(group).bind(now_ms).execute(&mut **c).await?; });
    }
    Ok((i64::try_from(groups.len()).unwrap_or(i64::MAX), members))
}

/// Sets a member's name; `false` if it was that already (or the member is unknown).
pub async fn set_name(
    tx: &mut Tx,
    scope: &str,
    user_id: &str,
    name: &str,
) -> Result<bool, StoreError> {
    Ok(
        on_tx!(tx, c => sqlx::query(SET_NAME).bind(scope).bind(user_id).bind(name)
        .execute(&mut **c).await?.rows_affected())
            == 1,
    )
}

pub async fn save_run(tx: &mut Tx, run: &SyncRun) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(SAVE_RUN).bind(run.id).bind(&run.cursor).bind(run.created).bind(run.updated)
            .bind(run.unchanged).bind(run.gone).bind(run.errors).bind(&run.last_error)
            .execute(&mut **c).await?;
    });
    Ok(())
}

impl Store {
    /// PostgreSQL: gathers the statistics of the tables an import writes, so the planner looks
    /// a page's rows up by index instead of scanning tables it still thinks are empty (an import
    /// into a new database outgrows the statistics within seconds). SQLite: nothing to do.
    pub async fn analyze_registry(&self) -> Result<(), StoreError> {
        if let super::Pool::Postgres(p) = self.pool() {
            sqlx::query(
                "analyze members, contact_follows, member_tags, tags, chat_groups, group_members",
            )
            .execute(p)
            .await?;
        }
        Ok(())
    }

    /// The unfinished run of (`channel_id`, `what`) to continue, or a new one.
    pub async fn open_sync_run(
        &self,
        channel_id: &str,
        what: &str,
        now_ms: i64,
    ) -> Result<SyncRun, StoreError> {
        let open: Option<SyncRun> = on_pool!(self.pool(), p => sqlx::query_as(OPEN_RUN)
            .bind(channel_id).bind(what).fetch_optional(p).await?);
        if let Some(run) = open {
            return Ok(run);
        }
        let id: i64 = on_pool!(self.pool(), p => sqlx::query_scalar(NEW_RUN)
            .bind(channel_id).bind(what).bind(now_ms).fetch_one(p).await?);
        Ok(SyncRun {
            id,
            channel_id: channel_id.to_owned(),
            what: what.to_owned(),
            started_at: now_ms,
            finished_at: None,
            cursor: String::new(),
            created: 0,
            updated: 0,
            unchanged: 0,
            gone: 0,
            errors: 0,
            last_error: None,
        })
    }

    pub async fn finish_sync_run(&self, run: &SyncRun, now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        save_run(&mut tx, run).await?;
        on_tx!(&mut tx, c => { sqlx::query(FINISH_RUN).bind(run.id).bind(now_ms).execute(&mut **c).await?; });
        tx.commit().await
    }

    /// The latest runs, newest first.
    pub async fn sync_runs(&self, limit: i64) -> Result<Vec<SyncRun>, StoreError> {
        Ok(on_pool!(self.pool(), p => sqlx::query_as(LAST_RUNS).bind(limit).fetch_all(p).await?))
    }

    /// Up to `limit` members of `scope` after `after` who are corp members (not customers) and
    /// have no name yet.
    pub async fn unnamed_corp_members(
        &self,
        scope: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_scalar(UNNAMED_CORP_MEMBERS)
            .bind(scope).bind(after).bind(limit).fetch_all(p).await?),
        )
    }

    /// WeCom tag id → local tag name, for `scope`.
    pub async fn platform_tag_names(
        &self,
        scope: &str,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let rows: Vec<(String, String)> = on_pool!(self.pool(), p => sqlx::query_as(PLATFORM_TAGS)
            .bind(scope).fetch_all(p).await?);
        Ok(rows.into_iter().collect())
    }
}
