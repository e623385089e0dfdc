//! FAQ storage: knowledge-base entries, unanswered questions, pending "您是不是想问" choices and
//! per-group answer settings. Lists of questions are stored as JSON text (same on both backends).

use sqlx::FromRow;

use super::{Store, StoreError, Tx};
use crate::{on_pool, on_tx};

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FaqEntry {
    pub id: i64,
    pub external_id: Option<String>,
    pub question: String,
    pub similar: Vec<String>,
    pub keywords: Vec<String>,
    pub answer: String,
    pub category: Option<String>,
    pub enabled: bool,
    pub hit_count: i64,
    pub updated_at: i64,
}

/// An entry to write.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewFaqEntry {
    #[serde(default, alias = "id")]
    pub external_id: Option<String>,
    pub question: String,
    #[serde(default)]
    pub similar: Vec<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    pub answer: String,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl From<FaqEntry> for NewFaqEntry {
    /// The entry's content, to write back changed (e.g. with one more similar question).
    fn from(e: FaqEntry) -> Self {
        Self {
            external_id: e.external_id,
            question: e.question,
            similar: e.similar,
            keywords: e.keywords,
            answer: e.answer,
            category: e.category,
            enabled: e.enabled,
        }
    }
}

#[derive(FromRow)]
struct EntryRow {
    id: i64,
    external_id: Option<String>,
    question: String,
    similar_questions: String,
    keywords: String,
    answer: String,
    category: Option<String>,
    enabled: bool,
    hit_count: i64,
    updated_at: i64,
}

impl From<EntryRow> for FaqEntry {
    fn from(r: EntryRow) -> Self {
        Self {
            id: r.id,
            external_id: r.external_id,
            question: r.question,
            similar: serde_json::from_str(&r.similar_questions).unwrap_or_default(),
            keywords: serde_json::from_str(&r.keywords).unwrap_or_default(),
            answer: r.answer,
            category: r.category,
            enabled: r.enabled,
            hit_count: r.hit_count,
            updated_at: r.updated_at,
        }
    }
}

/// A question nobody could answer, with how often it (or something like it) was asked.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize)]
pub struct Unanswered {
    pub id: i64,
    pub scope: String,
    pub question: String,
    pub asked: i64,
    pub first_at: i64,
    pub last_at: i64,
    pub status: String,
    pub entry_id: Option<i64>,
}

const COLUMNS: &str = "id, external_id, question, similar_questions, keywords, answer, category, enabled, hit_count, updated_at";
const INSERT: &str = "insert into faq_entries (external_id, question, similar_questions, keywords, answer, category, enabled, created_at, updated_at) \
     values ($1, $2, $3, $4, $5, $6, $7, $8, $8) returning id";
const UPDATE: &str = "update faq_entries set external_id = coalesce($1, external_id), question = $2, similar_questions = $3, keywords = $4, \
     answer = $5, category = $6, enabled = $7, updated_at = $8 where id = $9";
const ID_BY_EXTERNAL: &str = "select id from faq_entries where external_id = $1";
const DELETE: &str = "delete from faq_entries where id = $1";
const HIT: &str = "update faq_entries set hit_count = hit_count + 1 where id = $1";
const STAMP: &str =
    "select cast(count(*) as bigint), cast(coalesce(max(updated_at), 0) as bigint), \
     cast((select revision from faq_revision where id = 1) as bigint) from faq_entries";
const BUMP_REVISION: &str = "update faq_revision set revision = revision + 1 where id = 1";
const UNANSWERED_COLUMNS: &str = "id, scope, question, asked, first_at, last_at, status, entry_id";
const INSERT_UNANSWERED: &str = "insert into faq_unanswered (scope, question, asked, first_at, last_at) values ($1, $2, 1, $3, $3)";
const BUMP_UNANSWERED: &str =
    "update faq_unanswered set asked = asked + 1, last_at = $1 where id = $2";
const CLOSE_UNANSWERED: &str =
    "update faq_unanswered set status = $1, entry_id = $2 where id = $3 and status = 'open'";
const SET_PENDING: &str = "insert into faq_pending_choices (scope, user_id, group_id, entry_ids, created_at) values ($1, $2, $3, $4, $5) \
     on conflict (scope, user_id, group_id) do update set entry_ids = excluded.entry_ids, created_at = excluded.created_at";
const GET_PENDING: &str = "select entry_ids, created_at from faq_pending_choices where scope = $1 and user_id = $2 and group_id = $3";
const DROP_PENDING: &str =
    "delete from faq_pending_choices where scope = $1 and user_id = $2 and group_id = $3";
const GROUP: &str =
    "select auto_answer, last_answer_at from faq_groups where scope = $1 and group_id = $2";
const SET_AUTO_ANSWER: &str =
    "insert into faq_groups (scope, group_id, auto_answer) values ($1, $2, $3) \
     on conflict (scope, group_id) do update set auto_answer = excluded.auto_answer";
const TOUCH_GROUP: &str = "insert into faq_groups (scope, group_id, auto_answer, last_answer_at) values ($1, $2, $3, $4) \
     on conflict (scope, group_id) do update set last_answer_at = excluded.last_answer_at";

fn json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// All entries (or only the enabled ones), by id.
    pub async fn faq_entries(&self, enabled_only: bool) -> Result<Vec<FaqEntry>, StoreError> {
        let sql = if enabled_only {
            format!("select {COLUMNS} from faq_entries where enabled order by id")
        } else {
            format!("select {COLUMNS} from faq_entries order by id")
        };
        let rows =
            on_pool!(self.pool(), p => sqlx::query_as::<_, EntryRow>(&sql).fetch_all(p).await?);
        Ok(rows.into_iter().map(FaqEntry::from).collect())
    }

    /// Entries (enabled or not) changed at or after `since_ms`.
    pub async fn faq_entries_since(&self, since_ms: i64) -> Result<Vec<FaqEntry>, StoreError> {
        let sql = format!("select {COLUMNS} from faq_entries where updated_at >= $1 order by id");
        let rows = on_pool!(self.pool(), p => sqlx::query_as::<_, EntryRow>(&sql).bind(since_ms).fetch_all(p).await?);
        Ok(rows.into_iter().map(FaqEntry::from).collect())
    }

    pub async fn faq_entry(&self, id: i64) -> Result<Option<FaqEntry>, StoreError> {
        let sql = format!("select {COLUMNS} from faq_entries where id = $1");
        let row = on_pool!(self.pool(), p => sqlx::query_as::<_, EntryRow>(&sql).bind(id).fetch_optional(p).await?);
        Ok(row.map(FaqEntry::from))
    }

    /// (number of entries, latest change time, revision): a cheap way to notice that the
    /// knowledge base changed.
    pub async fn faq_stamp(&self) -> Result<(i64, i64, i64), StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, (i64, i64, i64)>(STAMP).fetch_one(p).await?),
        )
    }

    /// Questions still open (or of another status), most asked first.
    pub async fn faq_unanswered(
        &self,
        status: &str,
        limit: i64,
    ) -> Result<Vec<Unanswered>, StoreError> {
        let sql = format!(
            "select {UNANSWERED_COLUMNS} from faq_unanswered where status = $1 order by asked desc, last_at desc limit $2"
        );
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, Unanswered>(&sql).bind(status).bind(limit).fetch_all(p).await?),
        )
    }

    pub async fn faq_unanswered_by_id(&self, id: i64) -> Result<Option<Unanswered>, StoreError> {
        let sql = format!("select {UNANSWERED_COLUMNS} from faq_unanswered where id = $1");
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, Unanswered>(&sql).bind(id).fetch_optional(p).await?),
        )
    }

    /// Whether a "您是不是想问" list is waiting for this member here (read only).
    pub async fn faq_has_pending(
        &self,
        scope: &str,
        user_id: &str,
        group_id: &str,
    ) -> Result<bool, StoreError> {
        let row = on_pool!(self.pool(), p => sqlx::query_as::<_, (String, i64)>(GET_PENDING)
            .bind(scope).bind(user_id).bind(group_id).fetch_optional(p).await?);
        Ok(row.is_some())
    }

    /// Whether the group answers questions nobody addressed to the bot, and when it last did.
    pub async fn faq_group(
        &self,
        scope: &str,
        group_id: &str,
    ) -> Result<Option<(bool, i64)>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, (bool, i64)>(GROUP).bind(scope).bind(group_id).fetch_optional(p).await?),
        )
    }
}

async fn bump_revision(tx: &mut Tx) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(BUMP_REVISION).execute(&mut **c).await?;
    });
    Ok(())
}

/// Inserts an entry; returns its id.
pub async fn insert_entry(tx: &mut Tx, e: &NewFaqEntry, now_ms: i64) -> Result<i64, StoreError> {
    let id = on_tx!(tx, c => sqlx::query_scalar::<_, i64>(INSERT)
        .bind(&e.external_id).bind(&e.question).bind(json(&e.similar)).bind(json(&e.keywords))
        .bind(&e.answer).bind(&e.category).bind(e.enabled).bind(now_ms)
        .fetch_one(&mut **c).await?);
    bump_revision(tx).await?;
    Ok(id)
}

/// Replaces an entry's content; `false` if there is no such entry.
pub async fn update_entry(
    tx: &mut Tx,
    id: i64,
    e: &NewFaqEntry,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let n = on_tx!(tx, c => sqlx::query(UPDATE)
        .bind(&e.external_id).bind(&e.question).bind(json(&e.similar)).bind(json(&e.keywords))
        .bind(&e.answer).bind(&e.category).bind(e.enabled).bind(now_ms).bind(id)
        .execute(&mut **c).await?.rows_affected());
    if n == 1 {
        bump_revision(tx).await?;
    }
    Ok(n == 1)
}

/// Inserts, or updates the entry with the same external id; returns (id, created).
pub async fn upsert_by_external_id(
    tx: &mut Tx,
    e: &NewFaqEntry,
    now_ms: i64,
) -> Result<(i64, bool), StoreError> {
    if let Some(external) = &e.external_id {
        let existing = on_tx!(tx, c => sqlx::query_scalar::<_, i64>(ID_BY_EXTERNAL).bind(external).fetch_optional(&mut **c).await?);
        if let Some(id) = existing {
            update_entry(tx, id, e, now_ms).await?;
            return Ok((id, false));
        }
    }
    Ok((insert_entry(tx, e, now_ms).await?, true))
}

pub async fn delete_entry(tx: &mut Tx, id: i64) -> Result<bool, StoreError> {
    let n = on_tx!(tx, c => sqlx::query(DELETE).bind(id).execute(&mut **c).await?.rows_affected());
    if n == 1 {
        bump_revision(tx).await?;
    }
    Ok(n == 1)
}

pub async fn count_hit(tx: &mut Tx, id: i64) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(HIT).bind(id).execute(&mut **c).await?;
    });
    Ok(())
}

/// Open unanswered questions of a scope, most recent first (the candidates to group with).
pub async fn open_unanswered(
    tx: &mut Tx,
    scope: &str,
    limit: i64,
) -> Result<Vec<(i64, String)>, StoreError> {
    Ok(on_tx!(tx, c => sqlx::query_as::<_, (i64, String)>(
        "select id, question from faq_unanswered where scope = $1 and status = 'open' order by last_at desc limit $2")
        .bind(scope).bind(limit).fetch_all(&mut **c).await?))
}

pub async fn insert_unanswered(
    tx: &mut Tx,
    scope: &str,
    question: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(INSERT_UNANSWERED).bind(scope).bind(question).bind(now_ms).execute(&mut **c).await?;
    });
    Ok(())
}

pub async fn bump_unanswered(tx: &mut Tx, id: i64, now_ms: i64) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(BUMP_UNANSWERED).bind(now_ms).bind(id).execute(&mut **c).await?;
    });
    Ok(())
}

/// Closes an open question as `resolved` (with the entry that now answers it) or `ignored`.
pub async fn close_unanswered(
    tx: &mut Tx,
    id: i64,
    status: &str,
    entry_id: Option<i64>,
) -> Result<bool, StoreError> {
    let n = on_tx!(tx, c => sqlx::query(CLOSE_UNANSWERED).bind(status).bind(entry_id).bind(id)
        .execute(&mut **c).await?.rows_affected());
    Ok(n == 1)
}

pub async fn set_pending(
    tx: &mut Tx,
    scope: &str,
    user_id: &str,
    group_id: &str,
    entry_ids: &[i64],
    now_ms: i64,
) -> Result<(), StoreError> {
    let ids = serde_json::to_string(entry_ids).unwrap_or_else(|_| "[]".into());
    on_tx!(tx, c => {
        sqlx::query(SET_PENDING).bind(scope).bind(user_id).bind(group_id).bind(&ids).bind(now_ms)
            .execute(&mut **c).await?;
    });
    Ok(())
}

/// The choices offered to this member here, with when; `None` if none.
pub async fn pending(
    tx: &mut Tx,
    scope: &str,
    user_id: &str,
    group_id: &str,
) -> Result<Option<(Vec<i64>, i64)>, StoreError> {
    let row = on_tx!(tx, c => sqlx::query_as::<_, (String, i64)>(GET_PENDING)
        .bind(scope).bind(user_id).bind(group_id).fetch_optional(&mut **c).await?);
    Ok(row.map(|(ids, at)| (serde_json::from_str(&ids).unwrap_or_default(), at)))
}

pub async fn drop_pending(
    tx: &mut Tx,
    scope: &str,
    user_id: &str,
    group_id: &str,
) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(DROP_PENDING).bind(scope).bind(user_id).bind(group_id).execute(&mut **c).await?;
    });
    Ok(())
}

pub async fn set_auto_answer(
    tx: &mut Tx,
    scope: &str,
    group_id: &str,
    on: bool,
) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(SET_AUTO_ANSWER).bind(scope).bind(group_id).bind(on).execute(&mut **c).await?;
    });
    Ok(())
}

/// Records an answer in a group now (the cooldown starts); new groups get `auto_answer`.
pub async fn touch_group(
    tx: &mut Tx,
    scope: &str,
    group_id: &str,
    auto_answer: bool,
    now_ms: i64,
) -> Result<(), StoreError> {
    on_tx!(tx, c => {
        sqlx::query(TOUCH_GROUP).bind(scope).bind(group_id).bind(auto_answer).bind(now_ms)
            .execute(&mut **c).await?;
    });
    Ok(())
}

const COUNT_DAY: &str =
    "insert into faq_daily (scope, day, answered, unanswered) values ($1, $2, $3, $4) \
     on conflict (scope, day) do update set answered = faq_daily.answered + excluded.answered, \
     unanswered = faq_daily.unanswered + excluded.unanswered";

/// Counts one question of the day as answered (or not).
pub async fn count_day(
    tx: &mut Tx,
    scope: &str,
    day: i32,
    answered: bool,
) -> Result<(), StoreError> {
    let (a, u) = if answered { (1_i64, 0_i64) } else { (0, 1) };
    on_tx!(tx, c => {
        sqlx::query(COUNT_DAY).bind(scope).bind(day).bind(a).bind(u).execute(&mut **c).await?;
    });
    Ok(())
}

const FAQ_TOP: &str =
    "select question from faq_entries where enabled = true order by hit_count desc, id limit $1";

impl Store {
    /// The most asked questions (recall messages show them: "最近大家在聊…").
    pub async fn faq_top_questions(&self, n: i64) -> Result<Vec<String>, StoreError> {
        Ok(
            on_pool!(self.pool(), p => sqlx::query_scalar::<_, String>(FAQ_TOP).bind(n).fetch_all(p).await?),
        )
    }
}
