//! State rules applied set-wise: for each rule and each of its tags, the members who match the
//! condition and still lack the tag get it (or still have it and lose it); members who no longer
//! match lose the tags the rule itself gave them (a tag set by hand stays). Only real changes are
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
        // Members who meet the condition get the rule's tags (and lose its removals); members
        // who no longer meet it lose the tags this rule gave them.
        let wanted = rule
            .add
            .iter()
            .map(|t| (t, true, false))
            .chain(rule.remove.iter().map(|t| (t, false, false)))
            .chain(rule.add.iter().map(|t| (t, false, true)));
        for (tag, add, unmet) in wanted {
            let query = Candidates {
                scope,
                condition,
                tag,
                has_tag: !add,
                user,
                unmet,
                set_by: unmet.then_some(by.as_str()),
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

/// Every rule, configured and stored, compiled (a stored rule that no longer compiles is skipped).
pub async fn all_rules(
    configs: &[crate::config::TagRuleConfig],
    store: &Store,
) -> Result<Vec<Rule>, StoreError> {
    let mut all: Vec<Rule> = configs
        .iter()
        .filter_map(|c| super::rule_spec::compile(c).ok())
        .collect();
    all.extend(super::rules::compile_rows(&store.tag_rule_rows().await?));
    Ok(all)
}

/// Applies every state rule to one member now (after a change outside the event chain, such as
/// a points adjustment through the API); returns the number of tag changes.
pub async fn apply_to_member(
    store: &Store,
    config: &crate::config::Config,
    scope: &str,
    user: &str,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let rules = all_rules(&config.tag_rules, store).await?;
    let ctx = StateContext {
        levels: &config.points.levels,
        now_ms,
        timezone: config.timezone(),
    };
    apply(store, rules.iter(), scope, Some(user), &ctx).await
}
