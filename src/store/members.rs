//! Members, groups, group membership and per-day activity. Writes take pre-aggregated,
//! key-sorted rows (one per key) so a multi-row upsert never touches a row twice and
//! concurrent writers lock rows in the same order.

use std::collections::HashMap;

use sqlx::{FromRow, QueryBuilder};

use super::{Store, StoreError, Tx};
use crate::{on_pool, on_tx};

/// One member's change within a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberUpsert {
    pub scope: String,
    pub user_id: String,
    pub name: Option<String>,
    pub first_seen_at: i64,
    /// 0 when the batch holds no activity by this member (e.g. only a leave event).
    pub last_active_at: i64,
    pub messages: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupUpsert {
    pub scope: String,
    pub group_id: String,
    pub name: Option<String>,
    pub at: i64,
}

/// Final membership state of a (group, member) pair within a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipUpsert {
    pub scope: String,
    pub group_id: String,
    pub user_id: String,
    pub at: i64,
    pub left: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityUpsert {
    pub scope: String,
    pub user_id: String,
    /// Local day as yyyymmdd.
    pub day: i32,
    pub messages: i64,
    pub events: i64,
}

/// Everything one batch changes about members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberChanges {
    pub members: Vec<MemberUpsert>,
    pub groups: Vec<GroupUpsert>,
    pub memberships: Vec<MembershipUpsert>,
    pub activity: Vec<ActivityUpsert>,
}

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct MemberRow {
    pub id: i64,
    pub scope: String,
    pub platform_user_id: String,
    pub display_name: Option<String>,
    pub first_seen_at: i64,
    pub last_active_at: i64,
    pub message_count: i64,
}

#[derive(FromRow)]
struct KeyId {
    id: i64,
    scope: String,
    key: String,
}

const CHUNK: usize = 1000;

const UPSERT_MEMBERS_TAIL: &str = " on conflict (scope, platform_user_id) do update set \
     display_name = coalesce(excluded.display_name, members.display_name), \
     last_active_at = case when excluded.last_active_at > members.last_active_at \
         then excluded.last_active_at else members.last_active_at end, \
     message_count = members.message_count + excluded.message_count \
     returning id, scope, platform_user_id as key";
const UPSERT_GROUPS_TAIL: &str = " on conflict (scope, platform_group_id) do update set \
     name = coalesce(excluded.name, chat_groups.name), \
     last_active_at = case when excluded.last_active_at > chat_groups.last_active_at \
         then excluded.last_active_at else chat_groups.last_active_at end \
     returning id, scope, platform_group_id as key";
// The `where` skips the row rewrite when nothing changes (a member posting again in a group).
const UPSERT_MEMBERSHIP_TAIL: &str = " on conflict (group_id, member_id) do update set \
     left_at = excluded.left_at, \
     joined_at = case when group_members.left_at is not null and excluded.left_at is null \
         then excluded.joined_at else group_members.joined_at end \
     where group_members.left_at is not null or excluded.left_at is not null";
const UPSERT_ACTIVITY_TAIL: &str = " on conflict (day, member_id) do update set \
     message_count = member_daily_activity.message_count + excluded.message_count, \
     event_count = member_daily_activity.event_count + excluded.event_count";

const SELECT_MEMBER: &str = "select id, scope, platform_user_id, display_name, first_seen_at, last_active_at, message_count \
     from members where scope = $1 and platform_user_id = $2";
const COUNT_MEMBERS: &str = "select cast(count(*) as bigint) from members";
const COUNT_ACTIVE_BETWEEN: &str = "select cast(count(distinct member_id) as bigint) from member_daily_activity where day >= $1 and day <= $2";
const GROUP_MEMBER_IDS: &str = "select m.platform_user_id from group_members gm \
     join chat_groups g on g.id = gm.group_id join members m on m.id = gm.member_id \
     where g.scope = $1 and g.platform_group_id = $2 and gm.left_at is null order by m.platform_user_id";
const ACTIVITY_OF: &str = "select cast(coalesce(sum(a.message_count), 0) as bigint) from member_daily_activity a \
     join members m on m.id = a.member_id where m.scope = $1 and m.platform_user_id = $2 and a.day = $3";

/// Applies one batch of member changes inside the caller's transaction.
pub async fn apply(tx: &mut Tx, changes: &MemberChanges) -> Result<(), StoreError> {
    let member_ids = upsert_members(tx, &changes.members).await?;
    let group_ids = upsert_groups(tx, &changes.groups).await?;

    // Sorted by key so concurrent PostgreSQL writers lock rows in the same order.
    let mut memberships: Vec<(i64, i64, i64, bool)> = changes
        .memberships
        .iter()
        .filter_map(|m| {
            let g = group_ids.get(&(m.scope.clone(), m.group_id.clone()))?;
            let u = member_ids.get(&(m.scope.clone(), m.user_id.clone()))?;
            Some((*g, *u, m.at, m.left))
        })
        .collect();
    memberships.sort_unstable();
    for chunk in memberships.chunks(CHUNK) {
        on_tx!(tx, c => {
            let mut qb = QueryBuilder::new("insert into group_members (group_id, member_id, joined_at, left_at) ");
            qb.push_values(chunk, |mut b, &(g, u, at, left)| {
                b.push_bind(g).push_bind(u).push_bind(at).push_bind(if left { Some(at) } else { None });
            });
            qb.push(UPSERT_MEMBERSHIP_TAIL);
            qb.build().execute(&mut **c).await?;
        });
    }

    let mut activity: Vec<(i64, i32, i64, i64)> = changes
        .activity
        .iter()
        .filter_map(|a| {
            let u = member_ids.get(&(a.scope.clone(), a.user_id.clone()))?;
            Some((*u, a.day, a.messages, a.events))
        })
        .collect();
    activity.sort_unstable_by_key(|&(member, day, _, _)| (day, member));
    for chunk in activity.chunks(CHUNK) {
        on_tx!(tx, c => {
            let mut qb = QueryBuilder::new("insert into member_daily_activity (day, member_id, message_count, event_count) ");
            qb.push_values(chunk, |mut b, &(u, day, messages, events)| {
                b.push_bind(day).push_bind(u).push_bind(messages).push_bind(events);
            });
            qb.push(UPSERT_ACTIVITY_TAIL);
            qb.build().execute(&mut **c).await?;
        });
    }
    Ok(())
}

async fn upsert_members(
    tx: &mut Tx,
    members: &[MemberUpsert],
) -> Result<HashMap<(String, String), i64>, StoreError> {
    let mut ids = HashMap::with_capacity(members.len());
    for chunk in members.chunks(CHUNK) {
        let rows: Vec<KeyId> = on_tx!(tx, c => {
            let mut qb = QueryBuilder::new(
                "insert into members (scope, platform_user_id, display_name, first_seen_at, last_active_at, message_count) ",
            );
            qb.push_values(chunk, |mut b, m| {
                b.push_bind(&m.scope)
                    .push_bind(&m.user_id)
                    .push_bind(&m.name)
                    .push_bind(m.first_seen_at)
                    .push_bind(m.last_active_at)
                    .push_bind(m.messages);
            });
            qb.push(UPSERT_MEMBERS_TAIL);
            qb.build_query_as::<KeyId>().fetch_all(&mut **c).await?
        });
        ids.extend(rows.into_iter().map(|r| ((r.scope, r.key), r.id)));
    }
    Ok(ids)
}

async fn upsert_groups(
    tx: &mut Tx,
    groups: &[GroupUpsert],
) -> Result<HashMap<(String, String), i64>, StoreError> {
    let mut ids = HashMap::with_capacity(groups.len());
    for chunk in groups.chunks(CHUNK) {
        let rows: Vec<KeyId> = on_tx!(tx, c => {
            let mut qb = QueryBuilder::new(
                "insert into chat_groups (scope, platform_group_id, name, first_seen_at, last_active_at) ",
            );
            qb.push_values(chunk, |mut b, g| {
                b.push_bind(&g.scope).push_bind(&g.group_id).push_bind(&g.name).push_bind(g.at).push_bind(g.at);
            });
            qb.push(UPSERT_GROUPS_TAIL);
            qb.build_query_as::<KeyId>().fetch_all(&mut **c).await?
        });
        ids.extend(rows.into_iter().map(|r| ((r.scope, r.key), r.id)));
    }
    Ok(ids)
}

impl Store {
    pub async fn member(
        &self,
        scope: &str,
        user_id: &str,
    ) -> Result<Option<MemberRow>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, MemberRow>(SELECT_MEMBER)
            .bind(scope)
            .bind(user_id)
            .fetch_optional(p)
            .await?),
        )
    }

    pub async fn member_count(&self) -> Result<i64, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_scalar::<_, i64>(COUNT_MEMBERS).fetch_one(p).await?),
        )
    }

    /// Distinct members active on local days `from..=to` (yyyymmdd): DAU, WAU, MAU.
    pub async fn active_members_between(
        &self,
        from_day: i32,
        to_day: i32,
    ) -> Result<i64, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_scalar::<_, i64>(COUNT_ACTIVE_BETWEEN)
            .bind(from_day)
            .bind(to_day)
            .fetch_one(p)
            .await?),
        )
    }

    /// Current members of a group (platform user ids, sorted).
    pub async fn group_member_ids(
        &self,
        scope: &str,
        group_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_scalar::<_, String>(GROUP_MEMBER_IDS)
            .bind(scope)
            .bind(group_id)
            .fetch_all(p)
            .await?),
        )
    }

    /// Messages a member sent on one local day.
    pub async fn member_messages_on(
        &self,
        scope: &str,
        user_id: &str,
        day: i32,
    ) -> Result<i64, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_scalar::<_, i64>(ACTIVITY_OF)
            .bind(scope)
            .bind(user_id)
            .bind(day)
            .fetch_one(p)
            .await?),
        )
    }
}
