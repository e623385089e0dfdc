//! Lifecycle stages: new → active → silent → lapsed, churned when a member left every group,
//! returned when a lapsed (or churned) member is active again. Pure rules here; the periodic
//! recompute in [`recompute`] applies them and records every change with its time.

use crate::config::LifecycleConfig;
use crate::store::lifecycle::{self as db, StageChange};
use crate::store::windows::MemberWindows;
use crate::store::{Store, StoreError};

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    New,
    Active,
    Silent,
    Lapsed,
    Churned,
    Returned,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Active => "active",
            Self::Silent => "silent",
            Self::Lapsed => "lapsed",
            Self::Churned => "churned",
            Self::Returned => "returned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "new" | "新成员" => Self::New,
            "active" | "活跃" => Self::Active,
            "silent" | "沉默" => Self::Silent,
            "lapsed" | "流失" => Self::Lapsed,
            "churned" | "已离开" => Self::Churned,
            "returned" | "回流" => Self::Returned,
            _ => return None,
        })
    }
}

/// What the rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageFacts {
    pub first_seen_at: i64,
    pub last_active_at: i64,
    /// Groups the member was ever in, and is in now.
    pub groups_ever: i64,
    pub groups_now: i64,
    /// Staff members who ever had the member as a customer contact, and still have.
    pub contacts_ever: i64,
    pub contacts_now: i64,
    /// The stage recorded last time, and since when.
    pub previous: Option<(Stage, i64)>,
}

/// The stage a member is in at `now`.
pub fn stage_at(facts: &StageFacts, now_ms: i64, t: &LifecycleConfig) -> Stage {
    // Every connection gone: left all groups, deleted (or was deleted by) every staff member.
    let had = facts.groups_ever + facts.contacts_ever > 0;
    if had && facts.groups_now == 0 && facts.contacts_now == 0 {
        return Stage::Churned;
    }
    let idle_days = (now_ms - facts.last_active_at) / DAY_MS;
    if idle_days >= t.lapsed_days {
        return Stage::Lapsed;
    }
    if idle_days >= t.silent_days {
        return Stage::Silent;
    }
    match facts.previous {
        // Active again after being gone.
        Some((Stage::Lapsed | Stage::Churned, _)) => return Stage::Returned,
        // "Returned" lasts as long as "new" does, then the member is simply active.
        Some((Stage::Returned, since)) if now_ms - since < t.new_days * DAY_MS => {
            return Stage::Returned
        }
        _ => {}
    }
    if now_ms - facts.first_seen_at < t.new_days * DAY_MS {
        Stage::New
    } else {
        Stage::Active
    }
}

/// Recomputes every member's stage, `window` members at a time; returns how many changed.
pub async fn recompute(
    store: &Store,
    config: &LifecycleConfig,
    now_ms: i64,
    window: i64,
) -> Result<usize, StoreError> {
    let mut windows = MemberWindows::new(window);
    let mut changed = 0;
    while let Some(ids) = windows.next(store).await? {
        let inputs = store.stage_inputs(ids).await?;
        changed += apply_stages(store, inputs, config, now_ms).await?;
    }
    Ok(changed)
}

/// The stage changes the given inputs call for at `now_ms`.
pub fn changes_of(
    inputs: Vec<(i64, StageFacts)>,
    config: &LifecycleConfig,
    now_ms: i64,
) -> Vec<StageChange> {
    inputs
        .into_iter()
        .filter_map(|(member_id, facts)| {
            let stage = stage_at(&facts, now_ms, config);
            let before = facts.previous.map(|(s, _)| s);
            (before != Some(stage)).then(|| StageChange {
                member_id,
                from: before.map(Stage::as_str),
                to: stage.as_str(),
                at: now_ms,
            })
        })
        .collect()
}

async fn apply_stages(
    store: &Store,
    inputs: Vec<(i64, StageFacts)>,
    config: &LifecycleConfig,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let changes = changes_of(inputs, config, now_ms);
    if !changes.is_empty() {
        let mut tx = store.begin_write().await?;
        db::apply_many(&mut tx, &changes).await?;
        tx.commit().await?;
    }
    Ok(changes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_717_200_000_000;

    fn config() -> LifecycleConfig {
        LifecycleConfig {
            new_days: 7,
            silent_days: 7,
            lapsed_days: 30,
        }
    }

    fn facts(joined_days_ago: i64, idle_days: i64, previous: Option<(Stage, i64)>) -> StageFacts {
        StageFacts {
            first_seen_at: NOW - joined_days_ago * DAY_MS,
            last_active_at: NOW - idle_days * DAY_MS,
            groups_ever: 1,
            groups_now: 1,
            contacts_ever: 0,
            contacts_now: 0,
            previous,
        }
    }

    #[test]
    fn transitions() {
        let c = config();
        assert_eq!(stage_at(&facts(2, 0, None), NOW, &c), Stage::New);
        assert_eq!(stage_at(&facts(20, 1, None), NOW, &c), Stage::Active);
        assert_eq!(stage_at(&facts(20, 7, None), NOW, &c), Stage::Silent);
        assert_eq!(stage_at(&facts(20, 6, None), NOW, &c), Stage::Active);
        assert_eq!(stage_at(&facts(60, 30, None), NOW, &c), Stage::Lapsed);
        let back = facts(60, 0, Some((Stage::Lapsed, NOW - 40 * DAY_MS)));
        assert_eq!(stage_at(&back, NOW, &c), Stage::Returned);
        let still = facts(60, 0, Some((Stage::Returned, NOW - 3 * DAY_MS)));
        assert_eq!(stage_at(&still, NOW, &c), Stage::Returned);
        let settled = facts(60, 0, Some((Stage::Returned, NOW - 8 * DAY_MS)));
        assert_eq!(stage_at(&settled, NOW, &c), Stage::Active);
        let left = StageFacts {
            groups_now: 0,
            ..facts(60, 0, None)
        };
        assert_eq!(stage_at(&left, NOW, &c), Stage::Churned);
        let never_in_a_group = StageFacts {
            groups_ever: 0,
            groups_now: 0,
            ..facts(60, 0, None)
        };
        assert_eq!(stage_at(&never_in_a_group, NOW, &c), Stage::Active);
        let still_a_contact = StageFacts {
            groups_now: 0,
            contacts_ever: 1,
            contacts_now: 1,
            ..facts(60, 0, None)
        };
        assert_eq!(stage_at(&still_a_contact, NOW, &c), Stage::Active);
        let deleted = StageFacts {
            groups_ever: 0,
            groups_now: 0,
            contacts_ever: 2,
            contacts_now: 0,
            ..facts(60, 0, None)
        };
        assert_eq!(stage_at(&deleted, NOW, &c), Stage::Churned);
    }
}
