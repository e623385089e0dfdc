//! Churn-risk early warning (流失预警): a member who usually shows up every `g` days and has been
//! away `d` days has risk `d / g`. Members at or above the threshold get the warning tag (and
//! lose it when they are back below 1) and are listed for 1:1 follow-up.
//!
//! The warning is for members with a recent rhythm. One whose active days in the look-back
//! window drop below the minimum has none left to measure: their stored risk would stay frozen
//! at its last value, so it is dropped with the tag (by then the member is lapsed, which is what
//! recall plans target).

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::config::Config;
use crate::members::local_day;
use crate::store::recall::{drop_risks, put_risks, ActiveSpan};
use crate::store::tags::{self, TagBatch};
use crate::store::windows::MemberWindows;
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

/// `x` kept to `places` decimals. The risk is kept to one (it grows by at most one a day), so
/// a run every few minutes stores it again only every few hours.
fn rounded(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

/// What one member needs written: the new (risk, gap) if it moved, and the tag change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskUpdate {
    pub store: Option<(f64, f64)>,
    pub tag: Option<bool>,
}

/// The update for one member at `now_ms`, `None` when nothing changes: the risk is stored when it
/// moved, the tag added at or above `threshold` and removed below 1.
pub fn update_of(span: &ActiveSpan, now_ms: i64, threshold: f64) -> Option<RiskUpdate> {
    let gap = rounded(usual_gap(span.days, span.first_day, span.last_day)?, 2);
    let idle_days = (now_ms - span.last_active_at) as f64 / DAY_MS as f64;
    let risk = rounded(idle_days / gap.max(1.0), 1);
    let store =
        (span.risk != Some(risk) || span.usual_gap_days != Some(gap)).then_some((risk, gap));
    let tagged = span.tagged != 0;
    let tag = if risk >= threshold && !tagged {
        Some(true)
    } else if risk < 1.0 && tagged {
        Some(false)
    } else {
        None
    };
    (store.is_some() || tag.is_some()).then_some(RiskUpdate { store, tag })
}

/// Stored risks in a window whose members are no longer measured (not among `measured`, both
/// sorted by member id).
fn unmeasured<'a>(stored: &'a [(i64, String)], measured: &[i64]) -> Vec<&'a (i64, String)> {
    stored
        .iter()
        .filter(|(id, _)| measured.binary_search(id).is_err())
        .collect()
}

/// The tag changes of one window, as member ids per (scope, add or remove).
type TagChanges<'a> = BTreeMap<(&'a str, bool), Vec<i64>>;

/// Recomputes every member's risk and the warning tag, `window` members at a time, writing only
/// what changed, and drops the risk and tag of members no longer measured; returns how many
/// tags changed.
pub async fn recompute(
    store: &Store,
    config: &Config,
    now_ms: i64,
    window: i64,
) -> Result<usize, StoreError> {
    let tz = config.timezone();
    let r = &config.recall;
    let since = local_day(tz, now_ms / 1000 - r.risk_lookback_days * 86_400);
    let mut windows = MemberWindows::new(window);
    let mut changed = 0;
    while let Some(ids) = windows.next(store).await? {
        let spans = store
            .active_spans(since, r.risk_min_active_days, ids, &r.risk_tag)
            .await?;
        let mut measured: Vec<i64> = spans.iter().map(|s| s.member_id).collect();
        measured.sort_unstable();
        let stored = store.risk_rows_in(ids).await?;
        let stale = unmeasured(&stored, &measured);
        let mut risks = Vec::new();
        let mut tag_changes = TagChanges::new();
        for (id, scope) in &stale {
            tag_changes.entry((scope, false)).or_default().push(*id);
        }
        for span in &spans {
            let Some(update) = update_of(span, now_ms, r.risk_threshold) else {
                continue;
            };
            if let Some((risk, gap)) = update.store {
                risks.push((span.member_id, risk, gap));
            }
            if let Some(add) = update.tag {
                let key = (span.scope.as_str(), add);
                tag_changes.entry(key).or_default().push(span.member_id);
            }
        }
        if stale.is_empty() && risks.is_empty() && tag_changes.is_empty() {
            continue;
        }
        let mut tx = store.begin_write().await?;
        let stale: Vec<i64> = stale.iter().map(|(id, _)| *id).collect();
        drop_risks(&mut tx, &stale).await?;
        put_risks(&mut tx, &risks, now_ms).await?;
        for ((scope, add), members) in &tag_changes {
            let change = TagBatch {
                scope,
                tag: &r.risk_tag,
                source: "rule",
                by: "rule:churn_risk",
                now_ms,
            };
            changed += tags::set_many(&mut tx, &change, members, *add).await?;
        }
        tx.commit().await?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(risk: Option<f64>, tagged: bool) -> ActiveSpan {
        // Active on Nov 1, 4, 7 and 10 (every 3 days), last seen Nov 10 at 00:00 UTC.
        ActiveSpan {
            member_id: 1,
            scope: "s".into(),
            last_active_at: 1_762_732_800_000,
            days: 4,
            first_day: 20261101,
            last_day: 20261110,
            risk,
            usual_gap_days: risk.map(|_| 3.0),
            tagged: i64::from(tagged),
        }
    }

    #[test]
    fn only_changes_are_written() {
        let nov_10 = 1_762_732_800_000;
        // Nine days away over a gap of three: risk 3, the tag is due.
        let at = nov_10 + 9 * DAY_MS;
        let first = update_of(&span(None, false), at, 3.0);
        assert_eq!(
            first,
            Some(RiskUpdate {
                store: Some((3.0, 3.0)),
                tag: Some(true)
            })
        );
        assert_eq!(
            update_of(&span(Some(3.0), true), at, 3.0),
            None,
            "nothing moved"
        );
        // An hour later the risk moved by less than a tenth: still nothing to write.
        assert_eq!(update_of(&span(Some(3.0), true), at + 3_600_000, 3.0), None);
        // Back the next day (risk 0): the tag goes, the new risk is stored.
        let back = ActiveSpan {
            last_active_at: at,
            ..span(Some(3.0), true)
        };
        assert_eq!(
            update_of(&back, at, 3.0),
            Some(RiskUpdate {
                store: Some((0.0, 3.0)),
                tag: Some(false)
            })
        );
        // Between 1 and the threshold the tag is left as it is.
        let between = nov_10 + 6 * DAY_MS;
        assert_eq!(update_of(&span(Some(2.0), true), between, 3.0), None);
        assert_eq!(update_of(&span(Some(2.0), false), between, 3.0), None);
    }

    #[test]
    fn stored_risks_of_unmeasured_members_are_found() {
        let stored: Vec<(i64, String)> = [2, 5, 7, 9].map(|id| (id, "s".to_owned())).into();
        let ids = |found: Vec<&(i64, String)>| found.iter().map(|(id, _)| *id).collect::<Vec<_>>();
        assert_eq!(ids(unmeasured(&stored, &[1, 5, 9])), [2, 7]);
        assert!(unmeasured(&[], &[1, 2]).is_empty());
        assert_eq!(ids(unmeasured(&stored[..1], &[])), [2]);
    }

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
