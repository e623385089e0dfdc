//! Storage for ops commands: granted roles, muted members, the audit log, and looking members up
//! by display name for `@显示名`.

use sqlx::FromRow;

use super::{Store, StoreError, Tx};
use crate::{on_pool, on_tx};

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub source_key: String,
    pub scope: String,
    pub channel_id: String,
    pub group_id: Option<String>,
    pub user_id: String,
    pub role: String,
    pub command: String,
    pub args: String,
    pub outcome: String,
    pub reply: String,
    pub created_at: i64,
}

/// An audit record to write.
#[derive(Debug, Clone)]
pub struct NewAudit<'a> {
    pub source_key: &'a str,
    pub scope: &'a str,
    pub channel_id: &'a str,
    pub group_id: Option<&'a str>,
    pub user_id: &'a str,
    pub role: &'a str,
    pub command: &'a str,
    pub args: &'a str,
    pub outcome: &'a str,
    pub reply: &'a str,
    pub now_ms: i64,
}

/// A member found by display name.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct NamedMember {
    pub user_id: String,
    pub name: Option<String>,
}

const ROLE: &str = "select role from staff_roles where scope = $1 and user_id = $2";
const SET_ROLE: &str = "insert into staff_roles (scope, user_id, role, granted_by, granted_at) values ($1, $2, $3, $4, $5) \
     on conflict (scope, user_id) do update set role = excluded.role, granted_by = excluded.granted_by, granted_at = excluded.granted_at";
const ROLES_IN_SCOPE: &str =
    "select user_id, role from staff_roles where scope = $1 order by user_id";
const DELETE_ROLE: &str = "delete from staff_roles where scope = $1 and user_id = $2";
const MUTED: &str = "select scope, user_id from muted_members";
const MUTE: &str =
    "insert into muted_members (scope, user_id, muted_by, muted_at) values ($1, $2, $3, $4) \
     on conflict (scope, user_id) do nothing";
const UNMUTE: &str = "delete from muted_members where scope = $1 and user_id = $2";
const AUDIT_BY_SOURCE: &str = "select reply from command_audit where source_key = $1";
const INSERT_AUDIT: &str = "insert into command_audit (source_key, scope, channel_id, group_id, user_id, role, command, args, outcome, reply, created_at) \
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) on conflict (source_key) do nothing";
const AUDIT_LIST: &str = "select id, source_key, scope, channel_id, group_id, user_id, role, command, args, outcome, reply, created_at \
     from command_audit order by id desc limit $1";
const IN_GROUP_BY_NAME: &str = "select m.platform_user_id as user_id, m.display_name as name from members m \
     join group_members gm on gm.member_id = m.id and gm.left_at is null \
     join chat_groups g on g.id = gm.group_id \
     where g.scope = $1 and g.platform_group_id = $2 and m.display_name = $3 order by m.platform_user_id limit 10";
const IN_SCOPE_BY_NAME: &str = "select platform_user_id as user_id, display_name as name from members \
     where scope = $1 and (display_name = $2 or platform_user_id = $2) order by platform_user_id limit 10";

impl Store {
    /// The role granted in the database, if any (it overrides the configuration).
    pub async fn granted_role(
        &self,
        scope: &str,
        user_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_scalar::<_, String>(ROLE).bind(scope).bind(user_id).fetch_optional(p).await?),
        )
    }

    /// Every role granted in `scope`: (user id, role).
    pub async fn granted_roles(&self, scope: &str) -> Result<Vec<(String, String)>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, (String, String)>(ROLES_IN_SCOPE).bind(scope).fetch_all(p).await?),
        )
    }

    /// Every muted (scope, user id).
    pub async fn muted_members(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, (String, String)>(MUTED).fetch_all(p).await?),
        )
    }

    /// Members called `name`: in the group when there is one, else anywhere in the scope (also
    /// matching a platform user id).
    pub async fn members_named(
        &self,
        scope: &str,
        group_id: Option<&str>,
        name: &str,
    ) -> Result<Vec<NamedMember>, StoreError> {
        Ok(match group_id {
            Some(g) => {
                on_pool!(self.pool(), p => sqlx::query_as::<_, NamedMember>(IN_GROUP_BY_NAME)
                .bind(scope).bind(g).bind(name).fetch_all(p).await?)
            }
            None => on_pool!(self.pool(), p => sqlx::query_as::<_, NamedMember>(IN_SCOPE_BY_NAME)
                .bind(scope).bind(name).fetch_all(p).await?),
        })
    }

    /// The newest audit records first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, AuditRecord>(AUDIT_LIST).bind(limit).fetch_all(p).await?),
        )
    }
}

pub async fn set_role(
    tx: &mut Tx,
    scope: &str,
    user_id: &str,
    role: &str,
    by: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(SET_ROLE).bind(scope).bind(user_id).bind(role).bind(by).bind(now_ms).execute(&mut **c).await?;
    });
    Ok(())
}

/// Drops a role granted in chat (the configuration applies again); `true` if there was one.
pub async fn delete_role(tx: &mut Tx, scope: &str, user_id: &str) -> Result<bool, StoreError> {
    let n = on_tx!(tx, c => sqlx::query(DELETE_ROLE).bind(scope).bind(user_id).execute(&mut **c).await?.rows_affected());
    Ok(n == 1)
}

/// `true` if the member was not muted before.
pub async fn mute(
    tx: &mut Tx,
    scope: &str,
    user_id: &str,
    by: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let n = on_tx!(tx, c => sqlx::query(MUTE).bind(scope).bind(user_id).bind(by).bind(now_ms)
        .execute(&mut **c).await?.rows_affected());
    Ok(n == 1)
}

/// `true` if the member was muted.
pub async fn unmute(tx: &mut Tx, scope: &str, user_id: &str) -> Result<bool, StoreError> {
    let n = on_tx!(tx, c => sqlx::query(UNMUTE).bind(scope).bind(user_id).execute(&mut **c).await?.rows_affected());
    Ok(n == 1)
}

/// The reply recorded for a source message, if that message was executed before.
pub async fn audited_reply(tx: &mut Tx, source_key: &str) -> Result<Option<String>, StoreError> {
    Ok(
        on_tx!(tx, c => sqlx::query_scalar::<_, String>(AUDIT_BY_SOURCE).bind(source_key).fetch_optional(&mut **c).await?),
    )
}

pub async fn insert_audit(tx: &mut Tx, a: &NewAudit<'_>) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(INSERT_AUDIT)
            .bind(a.source_key).bind(a.scope).bind(a.channel_id).bind(a.group_id).bind(a.user_id)
            .bind(a.role).bind(a.command).bind(a.args).bind(a.outcome).bind(a.reply).bind(a.now_ms)
            .execute(&mut **c).await?;
    });
    Ok(())
}

const GROUPS_OF: &str = "select g.platform_group_id, g.name from group_members gm \
     join chat_groups g on g.id = gm.group_id join members m on m.id = gm.member_id \
     where m.scope = $1 and m.platform_user_id = $2 and gm.left_at is null order by g.platform_group_id";
const NEW_MEMBERS: &str =
    "select cast(count(*) as bigint) from members where scope = $1 and first_seen_at >= $2";
const ACTIVE_BETWEEN: &str =
    "select cast(count(distinct a.member_id) as bigint) from member_daily_activity a \
     join members m on m.id = a.member_id where m.scope = $1 and a.day >= $2 and a.day <= $3";
const SIGNINS_BETWEEN: &str =
    "select cast(count(*) as bigint) from signins where scope = $1 and day >= $2 and day <= $3";
const POINTS_ISSUED: &str = "select cast(coalesce(sum(l.delta), 0) as bigint) from points_ledger l \
     join members m on m.id = l.member_id where m.scope = $1 and l.day >= $2 and l.day <= $3 and l.delta > 0";
const FAQ_ANSWERED: &str = "select cast(coalesce(sum(answered), 0) as bigint) from faq_daily \
     where scope = $1 and day >= $2 and day <= $3";
const FAQ_UNANSWERED: &str = "select cast(coalesce(sum(unanswered), 0) as bigint) from faq_daily \
     where scope = $1 and day >= $2 and day <= $3";

/// Numbers for `/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub active: i64,
    pub new_members: i64,
    pub signins: i64,
    pub points_issued: i64,
    pub faq_answered: i64,
    pub faq_unanswered: i64,
}

impl Store {
    /// The groups a member is in: (group id, name).
    pub async fn groups_of(
        &self,
        scope: &str,
        user_id: &str,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, (String, Option<String>)>(GROUPS_OF)
            .bind(scope).bind(user_id).fetch_all(p).await?),
        )
    }

    /// Community numbers for local days `from..=to` (`since_ms`: the first day's start).
    pub async fn stats(
        &self,
        scope: &str,
        from: i32,
        to: i32,
        since_ms: i64,
    ) -> Result<Stats, StoreError> {
        let one = |sql: &'static str| async move {
            Ok::<i64, StoreError>(
                on_pool!(self.pool(), p => sqlx::query_scalar::<_, i64>(sql).bind(scope).bind(from).bind(to).fetch_one(p).await?),
            )
        };
        let since = |sql: &'static str| async move {
            Ok::<i64, StoreError>(
                on_pool!(self.pool(), p => sqlx::query_scalar::<_, i64>(sql).bind(scope).bind(since_ms).fetch_one(p).await?),
            )
        };
        Ok(Stats {
            active: one(ACTIVE_BETWEEN).await?,
            new_members: since(NEW_MEMBERS).await?,
            signins: one(SIGNINS_BETWEEN).await?,
            points_issued: one(POINTS_ISSUED).await?,
            faq_answered: one(FAQ_ANSWERED).await?,
            faq_unanswered: one(FAQ_UNANSWERED).await?,
        })
    }
}
