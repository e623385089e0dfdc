//! Member tags: tags per scope, member–tag links with who set them, and a log of every change.

use sqlx::QueryBuilder;

use super::points::MEMBER_ID;
use super::{Store, StoreError, Tx};
use crate::{on_pool, on_tx};

const ENSURE_TAG: &str =
    "insert into tags (scope, name, source, created_at) values ($1, $2, $3, $4) \
     on conflict (scope, name) do nothing";
const TAG_ID: &str = "select id from tags where scope = $1 and name = $2";
const TAGS_OF: &str = "select t.name from member_tags mt join tags t on t.id = mt.tag_id \
     join members m on m.id = mt.member_id where m.scope = $1 and m.platform_user_id = $2 order by t.name";

/// Who or what changes a tag.
#[derive(Debug, Clone, Copy)]
pub struct TagChange<'a> {
    pub scope: &'a str,
    pub user_id: &'a str,
    pub tag: &'a str,
    /// manual, rule, channel or platform.
    pub source: &'a str,
    pub by: &'a str,
    pub now_ms: i64,
}

async fn member_id(tx: &mut Tx, scope: &str, user_id: &str) -> Result<Option<i64>, StoreError> {
    Ok(
        on_tx!(tx, c => sqlx::query_scalar::<_, i64>(MEMBER_ID).bind(scope).bind(user_id).fetch_optional(&mut **c).await?),
    )
}

impl<'a> TagChange<'a> {
    /// The same change, for any members of the scope.
    fn batch(&self) -> TagBatch<'a> {
        TagBatch {
            scope: self.scope,
            tag: self.tag,
            source: self.source,
            by: self.by,
            now_ms: self.now_ms,
        }
    }
}

/// Gives the member the tag (created if new); `false` if they had it already or are unknown.
pub async fn add(tx: &mut Tx, c: &TagChange<'_>) -> Result<bool, StoreError> {
    let Some(member) = member_id(tx, c.scope, c.user_id).await? else {
        return Ok(false);
    };
    Ok(set_many(tx, &c.batch(), &[member], true).await? == 1)
}

/// Takes the tag away (the removal is logged); `false` if the member did not have it.
pub async fn remove(tx: &mut Tx, c: &TagChange<'_>) -> Result<bool, StoreError> {
    let Some(member) = member_id(tx, c.scope, c.user_id).await? else {
        return Ok(false);
    };
    Ok(set_many(tx, &c.batch(), &[member], false).await? == 1)
}

/// One tag change for many members of one scope at once (the periodic job's rules).
#[derive(Debug, Clone, Copy)]
pub struct TagBatch<'a> {
    pub scope: &'a str,
    pub tag: &'a str,
    /// manual, rule, channel or platform.
    pub source: &'a str,
    pub by: &'a str,
    pub now_ms: i64,
}

/// Rows per multi-row statement (six parameters at most: 3,000, well under either limit).
const MANY: usize = 500;

/// Gives the tag to (`present`) or takes it from each of `members` (ids of members of the
/// batch's scope), a few statements per 500 members; every real change is logged. Returns how
/// many members' tags changed.
pub async fn set_many(
    tx: &mut Tx,
    b: &TagBatch<'_>,
    members: &[i64],
    present: bool,
) -> Result<usize, StoreError> {
    if members.is_empty() {
        return Ok(0);
    }
    if present {
        on_tx!(tx, conn => {
            sqlx::query(ENSURE_TAG).bind(b.scope).bind(b.tag).bind(b.source).bind(b.now_ms).execute(&mut **conn).await?;
        });
    }
    let tag = on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(TAG_ID).bind(b.scope).bind(b.tag).fetch_optional(&mut **conn).await?);
    let Some(tag) = tag else { return Ok(0) };
    let action = if present { "add" } else { "remove" };
    let mut changed = 0;
    for chunk in members.chunks(MANY) {
        let ids: Vec<i64> = on_tx!(tx, conn => {
            let mut qb = QueryBuilder::new("");
            if present {
                qb.push("insert into member_tags (member_id, tag_id, source, set_by, set_at) ");
                qb.push_values(chunk, |mut row, id| {
                    row.push_bind(*id).push_bind(tag).push_bind(b.source).push_bind(b.by).push_bind(b.now_ms);
                });
                qb.push(" on conflict (member_id, tag_id) do nothing returning member_id");
            } else {
                qb.push("delete from member_tags where tag_id = ");
                qb.push_bind(tag);
                qb.push(" and member_id in (");
                let mut list = qb.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                qb.push(") returning member_id");
            }
            qb.build_query_scalar::<i64>().fetch_all(&mut **conn).await?
        });
        if ids.is_empty() {
            continue;
        }
        on_tx!(tx, conn => {
            let mut qb = QueryBuilder::new("insert into member_tag_log (member_id, tag_id, action, source, set_by, at) ");
            qb.push_values(&ids, |mut row, id| {
                row.push_bind(*id).push_bind(tag).push_bind(action).push_bind(b.source).push_bind(b.by).push_bind(b.now_ms);
            });
            qb.build().execute(&mut **conn).await?;
        });
        changed += ids.len();
    }
    Ok(changed)
}

/// [`add`] when `present`, else [`remove`]; `true` when the member's tags changed.
pub async fn set(tx: &mut Tx, c: &TagChange<'_>, present: bool) -> Result<bool, StoreError> {
    if present {
        add(tx, c).await
    } else {
        remove(tx, c).await
    }
}

impl Store {
    /// The member's tags, by name.
    pub async fn tags_of(&self, scope: &str, user_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_scalar::<_, String>(TAGS_OF).bind(scope).bind(user_id).fetch_all(p).await?),
        )
    }
}

const UPSERT_PLATFORM: &str = "insert into tags (scope, name, group_name, source, platform_id, created_at) \
     values ($1, $2, $3, 'platform', $4, $5) on conflict (scope, name) do update set \
     platform_id = excluded.platform_id, group_name = coalesce(excluded.group_name, tags.group_name)";
const BY_PLATFORM: &str = "select name from tags where scope = $1 and platform_id = $2";
const PLATFORM_LINKS: &str =
    "select t.name, t.platform_id from member_tags mt join tags t on t.id = mt.tag_id \
     join members m on m.id = mt.member_id where m.scope = $1 and m.platform_user_id = $2 \
     and t.platform_id is not null and mt.source = 'platform'";
const LOG_SINCE: &str =
    "select l.id, m.scope, m.platform_user_id, t.platform_id, l.action, l.source \
     from member_tag_log l join members m on m.id = l.member_id join tags t on t.id = l.tag_id \
     where l.id > $1 order by l.id limit $2";
const CURSOR: &str = "select position from job_cursors where name = $1";
const SET_CURSOR: &str = "insert into job_cursors (name, position) values ($1, $2) \
     on conflict (name) do update set position = excluded.position";

const TAG_LOG: &str = "select l.id, m.platform_user_id as user_id, m.display_name as name, t.name as tag, \
     l.action, l.source, l.set_by, l.at from member_tag_log l join members m on m.id = l.member_id \
     join tags t on t.id = l.tag_id where m.scope = $1 and ($2 = '' or m.platform_user_id = $2) and l.id < $3 \
     order by l.id desc limit $4";

/// One entry of the tag change log, for ops.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, PartialEq, Eq)]
pub struct TagLogEntry {
    pub id: i64,
    pub user_id: String,
    pub name: Option<String>,
    pub tag: String,
    /// `add` or `remove`.
    pub action: String,
    pub source: String,
    pub set_by: String,
    pub at: i64,
}

impl Store {
    /// The tag changes of `scope` (of one member when `user_id` is not empty), newest first,
    /// older than log id `before`.
    pub async fn tag_log(
        &self,
        scope: &str,
        user_id: &str,
        before: i64,
        limit: i64,
    ) -> Result<Vec<TagLogEntry>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, TagLogEntry>(TAG_LOG)
            .bind(scope).bind(user_id).bind(before).bind(limit).fetch_all(p).await?),
        )
    }
}

/// One logged tag change, for the WeCom mirror.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoggedChange {
    pub id: i64,
    pub scope: String,
    pub platform_user_id: String,
    pub platform_id: Option<String>,
    pub action: String,
    pub source: String,
}

/// Creates or maps the local tag of a WeCom corp tag (same name: the local tag gets the id).
pub async fn upsert_platform_tag(
    tx: &mut Tx,
    scope: &str,
    name: &str,
    group: Option<&str>,
    platform_id: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(UPSERT_PLATFORM).bind(scope).bind(name).bind(group).bind(platform_id).bind(now_ms)
            .execute(&mut **c).await?;
    });
    Ok(())
}

pub async fn set_cursor(tx: &mut Tx, name: &str, position: i64) -> Result<(), StoreError> {
    on_tx!(tx, c => { sqlx::query(SET_CURSOR).bind(name).bind(position).execute(&mut **c).await?; });
    Ok(())
}

impl Store {
    /// The local tag name of a WeCom tag id.
    pub async fn tag_by_platform_id(
        &self,
        scope: &str,
        platform_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_scalar::<_, String>(BY_PLATFORM).bind(scope).bind(platform_id).fetch_optional(p).await?),
        )
    }

    /// The member's tags that came from WeCom: (name, WeCom id).
    pub async fn platform_tags_of(
        &self,
        scope: &str,
        user_id: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, (String, String)>(PLATFORM_LINKS).bind(scope).bind(user_id).fetch_all(p).await?),
        )
    }

    /// Tag changes logged after `after_id`, oldest first.
    pub async fn tag_log_since(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<LoggedChange>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, LoggedChange>(LOG_SINCE).bind(after_id).bind(limit).fetch_all(p).await?),
        )
    }

    pub async fn cursor(&self, name: &str) -> Result<i64, StoreError> {
        Ok(on_pool!(self.pool(), p => sqlx::query_scalar::<_, i64>(CURSOR).bind(name).fetch_optional(p).await?)
            .unwrap_or(0))
    }
}

const TAG_LINKS: &str = "select t.name, t.group_name, t.color, mt.source, mt.set_by, mt.set_at \
     from member_tags mt join tags t on t.id = mt.tag_id join members m on m.id = mt.member_id \
     where m.scope = $1 and m.platform_user_id = $2 order by t.name";
const TAG_LIST: &str = "select t.name, t.group_name, t.color, t.source, t.platform_id, \
     cast((select count(*) from member_tags mt where mt.tag_id = t.id) as bigint) as members \
     from tags t where t.scope = $1 order by t.group_name, t.name";
const CREATE_TAG: &str = "insert into tags (scope, name, group_name, color, source, created_at) \
     values ($1, $2, $3, $4, 'manual', $5) on conflict (scope, name) do nothing";
const UPDATE_TAG: &str =
    "update tags set group_name = coalesce($3, group_name), color = coalesce($4, color) \
     where scope = $1 and name = $2";
const LINKED_USERS: &str =
    "select m.platform_user_id from member_tags mt join members m on m.id = mt.member_id \
     join tags t on t.id = mt.tag_id where t.scope = $1 and t.name = $2";
const DELETE_TAG: &str = "delete from tags where scope = $1 and name = $2";
const STAGE_NOW: &str =
    "select s.stage, s.since from member_stages s join members m on m.id = s.member_id \
     where m.scope = $1 and m.platform_user_id = $2";
const LAYER_NOW: &str = "select l.layer, cast(l.score as bigint) from member_layers l join members m on m.id = l.member_id \
     where m.scope = $1 and m.platform_user_id = $2";

/// A member's tag with where it came from.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct TagLink {
    pub name: String,
    pub group_name: Option<String>,
    pub color: Option<String>,
    pub source: String,
    pub set_by: String,
    pub set_at: i64,
}

/// A tag of a scope with how many members carry it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct TagInfo {
    pub name: String,
    pub group_name: Option<String>,
    pub color: Option<String>,
    pub source: String,
    pub platform_id: Option<String>,
    pub members: i64,
}

pub async fn create_tag(
    tx: &mut Tx,
    scope: &str,
    name: &str,
    group: Option<&str>,
    color: Option<&str>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let n = on_tx!(tx, c => sqlx::query(CREATE_TAG).bind(scope).bind(name).bind(group).bind(color).bind(now_ms)
        .execute(&mut **c).await?.rows_affected());
    Ok(n == 1)
}

pub async fn update_tag(
    tx: &mut Tx,
    scope: &str,
    name: &str,
    group: Option<&str>,
    color: Option<&str>,
) -> Result<bool, StoreError> {
    let n = on_tx!(tx, c => sqlx::query(UPDATE_TAG).bind(scope).bind(name).bind(group).bind(color)
        .execute(&mut **c).await?.rows_affected());
    Ok(n == 1)
}

/// Deletes a tag: every member loses it first (each removal logged), then the tag goes.
pub async fn delete_tag(
    tx: &mut Tx,
    scope: &str,
    name: &str,
    by: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let users = on_tx!(tx, c => sqlx::query_scalar::<_, String>(LINKED_USERS).bind(scope).bind(name).fetch_all(&mut **c).await?);
    for user_id in &users {
        let change = TagChange {
            scope,
            user_id,
            tag: name,
            source: "manual",
            by,
            now_ms,
        };
        remove(tx, &change).await?;
    }
    let n = on_tx!(tx, c => sqlx::query(DELETE_TAG).bind(scope).bind(name).execute(&mut **c).await?.rows_affected());
    Ok(n == 1)
}

impl Store {
    pub async fn tag_links(&self, scope: &str, user_id: &str) -> Result<Vec<TagLink>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, TagLink>(TAG_LINKS).bind(scope).bind(user_id).fetch_all(p).await?),
        )
    }

    pub async fn tag_list(&self, scope: &str) -> Result<Vec<TagInfo>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, TagInfo>(TAG_LIST).bind(scope).fetch_all(p).await?),
        )
    }

    /// The member's stage and since when.
    pub async fn stage_of(
        &self,
        scope: &str,
        user_id: &str,
    ) -> Result<Option<(String, i64)>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, (String, i64)>(STAGE_NOW).bind(scope).bind(user_id).fetch_optional(p).await?),
        )
    }

    /// The member's value layer and RFM score.
    pub async fn layer_of(
        &self,
        scope: &str,
        user_id: &str,
    ) -> Result<Option<(String, i64)>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, (String, i64)>(LAYER_NOW).bind(scope).bind(user_id).fetch_optional(p).await?),
        )
    }
}
