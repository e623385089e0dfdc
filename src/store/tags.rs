//! Member tags: tags per scope, member–tag links with who set them, and a log of every change.

use super::points::MEMBER_ID;
use super::{Store, StoreError, Tx};
use crate::{on_pool, on_tx};

const ENSURE_TAG: &str =
    "insert into tags (scope, name, source, created_at) values ($1, $2, $3, $4) \
     on conflict (scope, name) do nothing";
const TAG_ID: &str = "select id from tags where scope = $1 and name = $2";
const LINK: &str = "insert into member_tags (member_id, tag_id, source, set_by, set_at) values ($1, $2, $3, $4, $5) \
     on conflict (member_id, tag_id) do nothing";
const UNLINK: &str = "delete from member_tags where member_id = $1 and tag_id = $2";
const LOG: &str = "insert into member_tag_log (member_id, tag_id, action, source, set_by, at) values ($1, $2, $3, $4, $5, $6)";
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

async fn log(
    tx: &mut Tx,
    member: i64,
    tag: i64,
    action: &str,
    c: &TagChange<'_>,
) -> Result<(), StoreError> {
    on_tx!(tx, conn => {
        sqlx::query(LOG).bind(member).bind(tag).bind(action).bind(c.source).bind(c.by).bind(c.now_ms)
            .execute(&mut **conn).await?;
    });
    Ok(())
}

/// Gives the member the tag (created if new); `false` if they had it already or are unknown.
pub async fn add(tx: &mut Tx, c: &TagChange<'_>) -> Result<bool, StoreError> {
    let Some(member) = member_id(tx, c.scope, c.user_id).await? else {
        return Ok(false);
    };
    on_tx!(tx, conn => {
        sqlx::query(ENSURE_TAG).bind(c.scope).bind(c.tag).bind(c.source).bind(c.now_ms).execute(&mut **conn).await?;
    });
    let tag = on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(TAG_ID).bind(c.scope).bind(c.tag).fetch_one(&mut **conn).await?);
    let added = on_tx!(tx, conn => sqlx::query(LINK).bind(member).bind(tag).bind(c.source).bind(c.by).bind(c.now_ms)
        .execute(&mut **conn).await?.rows_affected())
        == 1;
    if added {
        log(tx, member, tag, "add", c).await?;
    }
    Ok(added)
}

/// Takes the tag away (the removal is logged); `false` if the member did not have it.
pub async fn remove(tx: &mut Tx, c: &TagChange<'_>) -> Result<bool, StoreError> {
    let Some(member) = member_id(tx, c.scope, c.user_id).await? else {
        return Ok(false);
    };
    let tag = on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(TAG_ID).bind(c.scope).bind(c.tag).fetch_optional(&mut **conn).await?);
    let Some(tag) = tag else { return Ok(false) };
    let removed = on_tx!(tx, conn => sqlx::query(UNLINK).bind(member).bind(tag).execute(&mut **conn).await?.rows_affected())
        == 1;
    if removed {
        log(tx, member, tag, "remove", c).await?;
    }
    Ok(removed)
}

impl Store {
    /// The member's tags, by name.
    pub async fn tags_of(&self, scope: &str, user_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_scalar::<_, String>(TAGS_OF).bind(scope).bind(user_id).fetch_all(p).await?),
        )
    }
}
