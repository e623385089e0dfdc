//! State rules applied set-wise: for each rule and each of its tags, the members who match the
//! condition and still lack the tag get it (or still have it and lose it). Only real changes are
//! written and logged (`rule:<id>`), so running it again — every event, every ten minutes —
//! changes nothing.

use futures_util::stream::BoxStream;
use futures_util::TryStreamExt as _;

use super::rule_spec::{Rule, Trigger};
use crate::config::LevelConfig;
use crate::members::local_day;
use crate::members::segment::{to_sql, SegmentContext};
use crate::store::rules::{Candidates, RuleCondition};
use crate::store::tags::{self, TagChange};
use crate::store::{Store, StoreError};

/// Tag changes written per transaction.
const BATCH: usize = 500;

type UserStream<'q> = BoxStream<'q, Result<String, StoreError>>;

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
            let mut users = Some(store.rule_candidates(&query));
            while users.is_some() {
                let batch = next_batch(&mut users).await?;
                if batch.is_empty() {
                    continue;
                }
                let mut tx = store.begin_write().await?;
                for user_id in &batch {
                    let change = TagChange {
                        scope,
                        user_id,
                        tag,
                        source: "rule",
                        by: &by,
                        now_ms: ctx.now_ms,
                    };
                    changed += usize::from(tags::set(&mut tx, &change, add).await?);
                }
                tx.commit().await?;
            }
        }
    }
    Ok(changed)
}

/// Up to [`BATCH`] user ids from the stream; the stream is dropped (and its connection given
/// back) as soon as it ends, before the batch is written.
async fn next_batch(users: &mut Option<UserStream<'_>>) -> Result<Vec<String>, StoreError> {
    let mut batch = Vec::new();
    while let Some(stream) = users.as_mut() {
        match stream.try_next().await? {
            Some(user) => batch.push(user),
            None => *users = None,
        }
        if batch.len() == BATCH {
            break;
        }
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;

    use super::*;

    #[tokio::test]
    async fn batches_are_full_until_the_last_and_the_stream_is_let_go_when_it_ends() {
        let users: Vec<Result<String, StoreError>> =
            (0..BATCH * 2 + 1).map(|i| Ok(format!("u{i}"))).collect();
        let mut stream = Some(futures_util::stream::iter(users).boxed());
        let mut sizes = Vec::new();
        let mut seen = Vec::new();
        while stream.is_some() {
            let batch = next_batch(&mut stream).await.expect("batch");
            sizes.push(batch.len());
            seen.extend(batch);
        }
        assert_eq!(sizes, [BATCH, BATCH, 1]);
        assert_eq!(seen.len(), BATCH * 2 + 1);
        assert_eq!(seen.last().map(String::as_str), Some("u1000"));

        // Exactly a full batch: the end is found on the next read, with nothing left.
        let users: Vec<Result<String, StoreError>> =
            (0..BATCH).map(|i| Ok(format!("u{i}"))).collect();
        let mut stream = Some(futures_util::stream::iter(users).boxed());
        assert_eq!(next_batch(&mut stream).await.expect("full").len(), BATCH);
        assert!(stream.is_some());
        assert!(next_batch(&mut stream).await.expect("end").is_empty());
        assert!(stream.is_none());
    }
}
