//! Tag rules stored in the database, and the set-wise queries of state rules: which members
//! match a rule's condition and still lack (or still have) one of its tags.

use super::{Store, StoreError};
use crate::members::segment::{Bind, Compiled};
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
pub enum RuleCondition<'a> {
    /// A compiled segment whose parameters are numbered from 2.
    Segment(&'a Compiled),
    /// At least `messages` messages since local day `since_day`.
    Activity { since_day: i32, messages: i64 },
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

    /// Members of `scope` matching `condition` that lack `tag` (`has_tag = false`) or have it
    /// (`true`); only `user` when given.
    pub async fn rule_candidates(
        &self,
        scope: &str,
        condition: &RuleCondition<'_>,
        tag: &str,
        has_tag: bool,
        user: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let (cond, binds, mut next) = match condition {
            RuleCondition::Segment(c) => (c.condition.clone(), c.binds.clone(), c.binds.len() + 2),
            RuleCondition::Activity {
                since_day,
                messages,
            } => (
                "m.id in (select d.member_id from member_daily_activity d where d.day >= $2 \
                 group by d.member_id having sum(d.message_count) >= $3)"
                    .to_owned(),
                vec![Bind::Int(i64::from(*since_day)), Bind::Int(*messages)],
                4,
            ),
        };
        let negate = if has_tag { "" } else { "not " };
        let join = crate::members::segment::AccountSql::for_backend(self.backend()).join();
        let (tag_scope, tag_name) = (next, next + 1);
        next += 2;
        let mut sql = format!(
            "select m.platform_user_id from members m{join} \
             where m.scope = $1 and {cond} and m.id {negate}in (select mt.member_id from member_tags mt \
             join tags t on t.id = mt.tag_id where t.scope = ${tag_scope} and t.name = ${tag_name})"
        );
        if user.is_some() {
            sql.push_str(&format!(" and m.platform_user_id = ${next}"));
        }
        Ok(on_pool!(self.pool(), p => {
            let mut q = sqlx::query_scalar::<_, String>(&sql).bind(scope);
            for b in &binds {
                q = match b {
                    Bind::Text(s) => q.bind(s.clone()),
                    Bind::Int(i) => q.bind(*i),
                };
            }
            q = q.bind(scope).bind(tag);
            if let Some(u) = user {
                q = q.bind(u);
            }
            q.fetch_all(p).await?
        }))
    }
}
