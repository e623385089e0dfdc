//! Tag rules stored in the database, and the set-wise queries of state rules: which members
//! match a rule's condition and still lack (or still have) one of its tags.

use futures_util::{StreamExt as _, TryStreamExt as _};

use super::segments::{Bind, Compiled};
use super::stream::RowStream;
use super::{bind_all, Store, StoreError};
use crate::on_pool;

/// A rule as stored; tags are JSON arrays.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct TagRuleRow {
    pub id: String,
    pub kind: String,
    pub pattern: String,
    pub add_tags: String,
    pub remove_tags: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The condition of a state rule, as SQL over `members m`.
#[derive(Clone, Copy)]
pub enum RuleCondition<'a> {
    /// A compiled segment whose parameters are numbered from 2.
    Segment(&'a Compiled),
    /// At least `messages` messages since local day `since_day`.
    Activity { since_day: i32, messages: i64 },
}

/// Which members a state rule's tag change applies to: those of `scope` matching `condition`
/// that lack `tag` (`has_tag = false`) or have it (`true`); only `user` when given.
pub struct Candidates<'a> {
    pub scope: &'a str,
    pub condition: RuleCondition<'a>,
    pub tag: &'a str,
    pub has_tag: bool,
    pub user: Option<&'a str>,
    /// Members who do *not* meet the condition (those a rule's tag no longer fits).
    pub unmet: bool,
    /// Only members whose tag was set by this (`rule:<id>`).
    pub set_by: Option<&'a str>,
}

const LIST: &str =
    "select id, kind, pattern, add_tags, remove_tags, enabled, created_at, updated_at \
     from tag_rules order by id";
const STAMP: &str =
    "select cast(count(*) as bigint), cast(coalesce(max(updated_at), 0) as bigint) from tag_rules";
const PUT: &str = "insert into tag_rules (id, kind, pattern, add_tags, remove_tags, enabled, created_at, updated_at) \
     values ($1, $2, $3, $4, $5, $6, $7, $7) on conflict (id) do update set kind = excluded.kind, \
     pattern = excluded.pattern, add_tags = excluded.add_tags, remove_tags = excluded.remove_tags, \
     enabled = excluded.enabled, updated_at = excluded.updated_at";
const DELETE: &str = "delete from tag_rules where id = $1";
const SCOPES: &str = "select distinct scope from members order by scope";

impl Store {
    pub async fn tag_rule_rows(&self) -> Result<Vec<TagRuleRow>, StoreError> {
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, TagRuleRow>(LIST).fetch_all(p).await?))
    }

    /// (number of rules, last change): changes when any rule is added, edited or deleted.
    pub async fn tag_rules_stamp(&self) -> Result<(i64, i64), StoreError> {
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, (i64, i64)>(STAMP).fetch_one(p).await?))
    }

    pub async fn put_tag_rule(&self, r: &TagRuleRow) -> Result<(), StoreError> {
        on_pool!(self.pool(), p => {
            sqlx::query(PUT).bind(&r.id).bind(&r.kind).bind(&r.pattern).bind(&r.add_tags)
                .bind(&r.remove_tags).bind(r.enabled).bind(r.updated_at).execute(p).await?;
        });
        Ok(())
    }

    /// Every member scope.
    pub async fn member_scopes(&self) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self.pool(), p => sqlx::query_scalar::<_, String>(SCOPES).fetch_all(p).await?))
    }

    pub async fn delete_tag_rule(&self, id: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self.pool(), p => sqlx::query(DELETE).bind(id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// The query for the members matching a state rule's condition that lack (or have) its tag.
    pub fn candidate_query(&self, query: &Candidates<'_>) -> CandidateQuery {
        let mut binds = vec![Bind::Text(query.scope.to_owned())];
        let cond = match &query.condition {
            RuleCondition::Segment(c) => {
                binds.extend(c.binds.iter().cloned());
                c.condition.clone()
            }
            RuleCondition::Activity {
                since_day,
                messages,
            } => {
                binds.extend([Bind::Int(i64::from(*since_day)), Bind::Int(*messages)]);
                "m.id in (select d.member_id from member_daily_activity d where d.day >= $2 \
                 group by d.member_id having sum(d.message_count) >= $3)"
                    .to_owned()
            }
        };
        let negate = if query.has_tag { "" } else { "not " };
        let cond = if query.unmet {
            format!("not ({cond})")
        } else {
            cond
        };
        let join = super::segments::AccountSql::for_backend(self.backend()).join();
        let (tag_scope, tag_name) = (binds.len() + 1, binds.len() + 2);
        binds.extend([
            Bind::Text(query.scope.to_owned()),
            Bind::Text(query.tag.to_owned()),
        ]);
        let set_by = match query.set_by {
            Some(by) => {
                binds.push(Bind::Text(by.to_owned()));
                format!(" and mt.set_by = ${}", binds.len())
            }
            None => String::new(),
        };
        let mut sql = format!(
            "select m.id from members m{join} \
             where m.scope = $1 and {cond} and m.id {negate}in (select mt.member_id from member_tags mt \
             join tags t on t.id = mt.tag_id where t.scope = ${tag_scope} and t.name = ${tag_name}{set_by})"
        );
        if let Some(user) = query.user {
            binds.push(Bind::Text(user.to_owned()));
            sql.push_str(&format!(" and m.platform_user_id = ${}", binds.len()));
        }
        CandidateQuery { sql, binds }
    }

    /// The member ids a [`CandidateQuery`] finds, read as they are consumed: a run over a million
    /// members never holds them all. The query runs once (its sub-selects computed once); on
    /// SQLite it reads one snapshot throughout.
    pub fn rule_candidates<'q>(&'q self, query: &'q CandidateQuery) -> RowStream<'q, i64> {
        on_pool!(self.pool(), p => {
            let q = sqlx::query_scalar::<_, i64>(&query.sql);
            bind_all!(q, &query.binds).fetch(p).map_err(StoreError::from).boxed()
        })
    }
}

/// A state rule's candidate query, built once and then read as a stream.
pub struct CandidateQuery {
    sql: String,
    binds: Vec<Bind>,
}
