//! Members, groups, group membership and per-day activity. The group commits
//! (`pg_commit`, [`super::sqlite_commit`]) write them from pre-aggregated, key-sorted
//! rows (one per key), so a multi-row upsert never touches a row twice and concurrent writers
//! lock rows in the same order.

use sqlx::FromRow;

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

/// A member row that a group commit inserted (not one it updated).
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct CreatedMember {
    pub id: i64,
    pub scope: String,
    pub platform_user_id: String,
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

pub(super) const UPSERT_MEMBERS_TAIL: &str =
    " on conflict (scope, platform_user_id) do update set \
     display_name = coalesce(excluded.display_name, members.display_name), \
     last_active_at = case when excluded.last_active_at > members.last_active_at \
         then excluded.last_active_at else members.last_active_at end, \
     message_count = members.message_count + excluded.message_count";
// A busy group is touched by every batch; updating its row each time made concurrent
// PostgreSQL writers queue on its row lock. New groups are inserted without touching existing
// rows, and existing rows are updated only when the name changed or a minute has passed.
pub(super) const INSERT_GROUPS_TAIL: &str = " on conflict (scope, platform_group_id) do nothing";
pub(crate) const GROUP_ACTIVITY_GRANULARITY_MS: i64 = 60_000;
// The `where` skips the row rewrite when nothing changes (a member posting again in a group).
pub(super) const UPSERT_MEMBERSHIP_TAIL: &str = " on conflict (group_id, member_id) do update set \
     left_at = excluded.left_at, \
     joined_at = case when group_members.left_at is not null and excluded.left_at is null \
         then excluded.joined_at else group_members.joined_at end \
     where group_members.left_at is not null or excluded.left_at is not null";
pub(super) const UPSERT_ACTIVITY_TAIL: &str = " on conflict (day, member_id) do update set \
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

const SCOPE_AND_USER: &str = "select scope, platform_user_id from members where id = $1";

/// A member's (scope, platform user id) by row id.
pub async fn scope_and_user(
    tx: &mut Tx,
    member_id: i64,
) -> Result<Option<(String, String)>, StoreError> {
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, (String, String)>(SCOPE_AND_USER).bind(member_id).fetch_optional(&mut **c).await?),
    )
}

const IMPORT_MEMBER: &str = "insert into members (scope, platform_user_id, display_name, first_seen_at, last_active_at, message_count) \
     values ($1, $2, $3, $4, $5, 0) on conflict (scope, platform_user_id) do nothing";

impl Store {
    /// Adds a member known from elsewhere (an import, the demo's long-gone member) with their
    /// first and last activity; an existing member is left as is.
    pub async fn import_member(
        &self,
        scope: &str,
        user_id: &str,
        name: &str,
        first_seen_ms: i64,
        last_active_ms: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self.pool(), p => {
            sqlx::query(IMPORT_MEMBER).bind(scope).bind(user_id).bind(name).bind(first_seen_ms)
                .bind(last_active_ms).execute(p).await?;
        });
        Ok(())
    }
}
