//! State rules applied set-wise: for each rule and each of its tags, the members who match the
//! condition and still lack the tag get it (or still have it and lose it). Only real changes are
//! written and logged (`rule:<id>`), so running it again — every event, every ten minutes —
//! changes nothing.

use super::rule_spec::{Rule, Trigger};
use crate::config::LevelConfig;
use crate::members::local_day;
use crate::members::segment::{to_sql, SegmentContext};
use crate::store::rules::{Candidates, RuleCondition};
use crate::store::stream::next_batch;
use crate::store::tags::{self, TagBatch};
use crate::store::{Store, StoreError};

/// Tag changes written per transaction.
const BATCH: usize = 500;

pub struct StateContext<'a> {
    pub levels: &'a [LevelConfig],
    pub now_ms: i64,
    pub timezone: chrono_tz::Tz,
}

/// Applies every state rule among `rules` in `scope` (to `user` only, when given); returns the
/// number of tag changes.
pub async fn apply<'r>(
    store: &Store,
    rules: impl Iterator<Item = &'r Rule>,
    scope: &str,
    user: Option<&str>,
    ctx: &StateContext<'_>,
) -> Result<usize, StoreError> {
    let mut changed = 0;
    for rule in rules.filter(|r| r.trigger.is_state()) {
        let compiled;
        let condition = match &rule.trigger {
            Trigger::Segment(expr) => {
                let seg = SegmentContext {
                    accounts: crate::members::segment::AccountSql::for_backend(store.backend()),
                    now_ms: ctx.now_ms,
                    levels: ctx.levels,
                };
                compiled = match to_sql(expr, &seg, 2) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(rule = %rule.id, error = %e, "state rule skipped");
                        continue;
                    }
                };
                RuleCondition::Segment(&compiled)
            }
            Trigger::Activity { messages, days } => RuleCondition::Activity {
                since_day: local_day(ctx.timezone, ctx.now_ms / 1000 - (days - 1) * 86_400),
                messages: *messages,
            },
            _ => continue,
        };
        let by = format!("rule:{}", rule.id);
        let wanted = rule
            .add
            .iter()
            .map(|t| (t, true))
            .chain(rule.remove.iter().map(|t| (t, false)));
        for (tag, add) in wanted {
            let query = Candidates {
                scope,
                condition,
                tag,
                has_tag: !add,
                user,
            };
            let query = store.candidate_query(&query);
            let change = TagBatch {
                scope,
                tag,
                source: "rule",
                by: &by,
                now_ms: ctx.now_ms,
            };
            let mut members = Some(store.rule_candidates(&query));
            while members.is_some() {
                let batch = next_batch(&mut members, BATCH).await?;
                if batch.is_empty() {
                    continue;
                }
                let mut tx = store.begin_write().await?;
                changed += tags::set_many(&mut tx, &change, &batch, add).await?;
                tx.commit().await?;
            }
        }
    }
    Ok(changed)
}
