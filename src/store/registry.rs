//! The member registry as an import writes it: members with names and first-seen times,
//! customer relations with their contact way and remark, groups with names, owners and
//! notices, memberships with how and by whom each member joined; the import runs with their
//! cursors; and what a finished run did not see (vanished relations and memberships).

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

const MEMBER: &str =
    "select id, display_name, first_seen_at from members where scope = $1 and platform_user_id = $2";
const INSERT_MEMBER: &str = "insert into members (scope, platform_user_id, display_name, first_seen_at, last_active_at, message_count) \
     values ($1, $2, $3, $4, $4, 0) returning id";
const UPDATE_MEMBER: &str =
    "update members set display_name = $2, first_seen_at = $3 where id = $1";

const FOLLOW: &str = "select state, remark, added_at, removed_at from contact_follows \
     where scope = $1 and external_userid = $2 and staff = $3";
const INSERT_FOLLOW: &str = "insert into contact_follows (scope, external_userid, staff, state, remark, added_at, removed_at, seen_run) \
     values ($1, $2, $3, $4, $5, $6, null, $7)";
const UPDATE_FOLLOW: &str = "update contact_follows set state = $4, remark = $5, added_at = $6, removed_at = null, seen_run = $7 \
     where scope = $1 and external_userid = $2 and staff = $3";
const SEE_FOLLOW: &str =
    "update contact_follows set seen_run = $4 where scope = $1 and external_userid = $2 and staff = $3";
const GONE_FOLLOWS: &str =
    "update contact_follows set removed_at = $3 where scope = $1 and removed_at is null \
     and (seen_run is null or seen_run < $2) and added_at < $4";
const GONE_FOLLOW_MEMBERS: &str = "select distinct m.id from contact_follows cf join members m \
     on m.scope = cf.scope and m.platform_user_id = cf.external_userid \
     where cf.scope = $1 and cf.removed_at is null and (cf.seen_run is null or cf.seen_run < $2) and cf.added_at < $3";

const GROUP: &str =
    "select id, name, owner, notice, gone_at from chat_groups where scope = $1 and platform_group_id = $2";
const INSERT_GROUP: &str = "insert into chat_groups (scope, platform_group_id, name, owner, notice, first_seen_at, last_active_at, seen_run) \
     values ($1, $2, $3, $4, $5, $6, $6, $7) returning id";
const UPDATE_GROUP: &str =
    "update chat_groups set name = $2, owner = $3, notice = $4, gone_at = null, seen_run = $5 where id = $1";
const SEE_GROUP: &str = "update chat_groups set seen_run = $2 where id = $1";
const MEMBERSHIP: &str = "select joined_at, left_at, join_scene, inviter from group_members where group_id = $1 and member_id = $2";
const INSERT_MEMBERSHIP: &str = "insert into group_members (group_id, member_id, joined_at, left_at, join_scene, inviter, seen_run) \
     values ($1, $2, $3, null, $4, $5, $6)";
const UPDATE_MEMBERSHIP: &str = "update group_members set joined_at = $3, left_at = null, join_scene = $4, inviter = $5, seen_run = $6 \
     where group_id = $1 and member_id = $2";
const SEE_MEMBERSHIP: &str =
    "update group_members set seen_run = $3 where group_id = $1 and member_id = $2";
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

/// A member as the import knows them.
#[derive(Debug, Clone, Copy)]
pub struct KnownMember<'a> {
    pub scope: &'a str,
    pub user_id: &'a str,
    pub name: &'a str,
    /// When they first appeared (a customer's add time, a group join time).
    pub first_seen_ms: i64,
}

/// Creates the member, or gives them the name and the earlier first-seen time; their id and
/// what changed. An empty name never replaces one.
pub async fn upsert_member(tx: &mut Tx, m: &KnownMember<'_>) -> Result<(i64, Written), StoreError> {
    let found: Option<(i64, Option<String>, i64)> = on_tx!(tx, c => sqlx::query_as(MEMBER)
        .bind(m.scope).bind(m.user_id).fetch_optional(&mut **c).await?);
    let name = Some(m.name).filter(|n| !n.is_empty());
    let Some((id, old_name, first_seen)) = found else {
        let id: i64 = on_tx!(tx, c => sqlx::query_scalar(INSERT_MEMBER)
            .bind(m.scope).bind(m.user_id).bind(name).bind(m.first_seen_ms)
            .fetch_one(&mut **c).await?);
        return Ok((id, Written::Created));
    };
    let name = name.map(str::to_owned).or(old_name.clone());
    let first = first_seen.min(m.first_seen_ms);
    if name == old_name && first == first_seen {
        return Ok((id, Written::Unchanged));
    }
    on_tx!(tx, c => {
        sqlx::query(UPDATE_MEMBER).bind(id).bind(&name).bind(first).execute(&mut **c).await?;
    });
    Ok((id, Written::Updated))
}

/// A customer relation as the platform has it.
#[derive(Debug, Clone, Copy)]
pub struct KnownFollow<'a> {
    pub scope: &'a str,
    pub external_userid: &'a str,
    pub staff: &'a str,
    pub state: &'a str,
    pub remark: &'a str,
    pub added_at_ms: i64,
    pub run: i64,
}

fn non_empty(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

/// Records the relation as seen by `run`, creating or correcting it.
pub async fn upsert_follow(tx: &mut Tx, f: &KnownFollow<'_>) -> Result<Written, StoreError> {
    type Row = (Option<String>, Option<String>, i64, Option<i64>);
    let found: Option<Row> = on_tx!(tx, c => sqlx::query_as(FOLLOW)
        .bind(f.scope).bind(f.external_userid).bind(f.staff).fetch_optional(&mut **c).await?);
    let (state, remark) = (non_empty(f.state), non_empty(f.remark));
    let sql = match &found {
        None => INSERT_FOLLOW,
        Some((s, r, added, removed))
            if s.as_deref() == state
                && r.as_deref() == remark
                && *added == f.added_at_ms
                && removed.is_none() =>
        {
            on_tx!(tx, c => {
                sqlx::query(SEE_FOLLOW).bind(f.scope).bind(f.external_userid).bind(f.staff).bind(f.run)
                    .execute(&mut **c).await?;
            });
            return Ok(Written::Unchanged);
        }
        Some(_) => UPDATE_FOLLOW,
    };
    on_tx!(tx, c => {
        sqlx::query(sql).bind(f.scope).bind(f.external_userid).bind(f.staff).bind(state).bind(remark)
            .bind(f.added_at_ms).bind(f.run).execute(&mut **c).await?;
    });
    Ok(if found.is_none() {
        Written::Created
    } else {
        Written::Updated
    })
}

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

/// A customer group as the platform has it.
#[derive(Debug, Clone, Copy)]
pub struct KnownGroup<'a> {
    pub scope: &'a str,
    pub chat_id: &'a str,
    pub name: &'a str,
    pub owner: &'a str,
    pub notice: &'a str,
    pub created_ms: i64,
    pub run: i64,
}

/// Creates or corrects the group; its id and what changed.
pub async fn upsert_group(tx: &mut Tx, g: &KnownGroup<'_>) -> Result<(i64, Written), StoreError> {
    type Row = (
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    let found: Option<Row> = on_tx!(tx, c => sqlx::query_as(GROUP)
        .bind(g.scope).bind(g.chat_id).fetch_optional(&mut **c).await?);
    let (name, owner, notice) = (non_empty(g.name), non_empty(g.owner), non_empty(g.notice));
    match found {
        None => {
            let id: i64 = on_tx!(tx, c => sqlx::query_scalar(INSERT_GROUP)
                .bind(g.scope).bind(g.chat_id).bind(name).bind(owner).bind(notice).bind(g.created_ms)
                .bind(g.run).fetch_one(&mut **c).await?);
            Ok((id, Written::Created))
        }
        Some((id, n, o, t, gone))
            if n.as_deref() == name
                && o.as_deref() == owner
                && t.as_deref() == notice
                && gone.is_none() =>
        {
            on_tx!(tx, c => { sqlx::query(SEE_GROUP).bind(id).bind(g.run).execute(&mut **c).await?; });
            Ok((id, Written::Unchanged))
        }
        Some((id, ..)) => {
            on_tx!(tx, c => {
                sqlx::query(UPDATE_GROUP).bind(id).bind(name).bind(owner).bind(notice).bind(g.run)
                    .execute(&mut **c).await?;
            });
            Ok((id, Written::Updated))
        }
    }
}

/// One member of a group as the platform has them.
#[derive(Debug, Clone, Copy)]
pub struct KnownMembership<'a> {
    pub group_id: i64,
    pub member_id: i64,
    pub joined_at_ms: i64,
    pub join_scene: i64,
    pub inviter: Option<&'a str>,
    pub run: i64,
}

/// Records the membership as seen by `run`.
pub async fn upsert_membership(
    tx: &mut Tx,
    m: &KnownMembership<'_>,
) -> Result<Written, StoreError> {
    type Row = (i64, Option<i64>, Option<i64>, Option<String>);
    let found: Option<Row> = on_tx!(tx, c => sqlx::query_as(MEMBERSHIP)
        .bind(m.group_id).bind(m.member_id).fetch_optional(&mut **c).await?);
    let sql = match &found {
        None => INSERT_MEMBERSHIP,
        Some((joined, left, scene, inviter))
            if *joined == m.joined_at_ms
                && left.is_none()
                && *scene == Some(m.join_scene)
                && inviter.as_deref() == m.inviter =>
        {
            on_tx!(tx, c => {
                sqlx::query(SEE_MEMBERSHIP).bind(m.group_id).bind(m.member_id).bind(m.run)
                    .execute(&mut **c).await?;
            });
            return Ok(Written::Unchanged);
        }
        Some(_) => UPDATE_MEMBERSHIP,
    };
    on_tx!(tx, c => {
        sqlx::query(sql).bind(m.group_id).bind(m.member_id).bind(m.joined_at_ms).bind(m.join_scene)
            .bind(m.inviter).bind(m.run).execute(&mut **c).await?;
    });
    Ok(if found.is_none() {
        Written::Created
    } else {
        Written::Updated
    })
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
