//! Churn-risk early warning (流失预警): a member who usually shows up every `g` days and has been
//! away `d` days has risk `d / g`. Members at or above the threshold get the warning tag (and
//! lose it when they are back below 1) and are listed for 1:1 follow-up.

use chrono::NaiveDate;

use crate::config::Config;
use crate::members::local_day;
use crate::store::recall::put_risk;
use crate::store::tags::{self, TagChange};
use crate::store::{Store, StoreError};

const DAY_MS: i64 = 86_400_000;

/// Days between two yyyymmdd days.
fn days_between(a: i32, b: i32) -> Option<i64> {
    let parse = |d: i32| {
        NaiveDate::from_ymd_opt(
            d / 10_000,
            u32::try_from(d / 100 % 100).ok()?,
            u32::try_from(d % 100).ok()?,
        )
    };
    Some((parse(b)? - parse(a)?).num_days())
}

/// The usual gap in days between active days: the span over the gaps it contains.
pub fn usual_gap(active_days: i64, first_day: i32, last_day: i32) -> Option<f64> {
    let span = days_between(first_day, last_day)?;
    (active_days >= 2 && span > 0).then(|| span as f64 / (active_days - 1) as f64)
}

/// Recomputes every member's risk and the warning tag; returns how many tags changed.
pub async fn recompute(store: &Store, config: &Config, now_ms: i64) -> Result<usize, StoreError> {
    let r = &config.recall;
    let tz = config.timezone();
    let since = local_day(tz, now_ms / 1000 - r.risk_lookback_days * 86_400);
    let spans = store.active_spans(since, r.risk_min_active_days).await?;
    let mut changed = 0;
    for chunk in spans.chunks(1000) {
        let mut tx = store.begin_write().await?;
        for &(member_id, last_active_at, days, first, last) in chunk {
            let Some(gap) = usual_gap(days, first, last) else {
                continue;
            };
            let idle_days = (now_ms - last_active_at) as f64 / DAY_MS as f64;
            let risk = idle_days / gap.max(1.0);
            put_risk(&mut tx, member_id, risk, gap, now_ms).await?;
            let Some((scope, user)) = store_member(&mut tx, member_id).await? else {
                continue;
            };
            let change = TagChange {
                scope: &scope,
                user_id: &user,
                tag: &r.risk_tag,
                source: "rule",
                by: "rule:churn_risk",
                now_ms,
            };
            let did = if risk >= r.risk_threshold {
                tags::add(&mut tx, &change).await?
            } else if risk < 1.0 {
                tags::remove(&mut tx, &change).await?
            } else {
                false
            };
            changed += usize::from(did);
        }
        tx.commit().await?;
    }
    Ok(changed)
}

async fn store_member(
    tx: &mut crate::store::Tx,
    member_id: i64,
) -> Result<Option<(String, String)>, StoreError> {
    crate::store::members::scope_and_user(tx, member_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_gap_is_the_span_over_its_gaps() {
        // Active on Nov 1, 4, 7 and 10: every 3 days.
        assert_eq!(usual_gap(4, 20261101, 20261110), Some(3.0));
        assert_eq!(
            usual_gap(2, 20261130, 20261202),
            Some(2.0),
            "across a month end"
        );
        assert_eq!(usual_gap(1, 20261101, 20261101), None);
    }
}
