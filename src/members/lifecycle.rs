//! Lifecycle stages: new → active → silent → lapsed, churned when a member left every group,
//! returned when a lapsed (or churned) member is active again. Pure rules here; the periodic
//! recompute in [`recompute`] applies them and records every change with its time.

use crate::config::LifecycleConfig;
use crate::store::lifecycle::{self as db, StageChange};
pub use crate::store::lifecycle::{Stage, StageFacts};
use crate::store::members::{CreatedMember, MemberChanges};
use crate::store::windows::MemberWindows;
use crate::store::{Store, StoreError};

const DAY_MS: i64 = 86_400_000;

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

/// The first stages of members that a group commit created, where the commit's own changes
/// decide them: the member is in at least one group of the batch and left none. Nothing else is
/// stored about a member created this moment, and being in a group rules out "churned" whatever
/// their contacts, so this is what [`stage_at`] gives for the stored facts. Others (a member
/// created by a contact or a leave event) are left to the stage check that reads them.
pub fn first_stages<'a>(
    changes: &MemberChanges,
    created: &'a [CreatedMember],
    config: &LifecycleConfig,
    now_ms: i64,
) -> Vec<(&'a CreatedMember, StageChange)> {
    use std::collections::{HashMap, HashSet};
    let upserts: HashMap<(&str, &str), _> = changes
        .members
        .iter()
        .map(|m| ((m.scope.as_str(), m.user_id.as_str()), m))
        .collect();
    // Per member: the groups of the batch, or `None` once they left one.
    let mut groups: HashMap<(&str, &str), Option<HashSet<&str>>> = HashMap::new();
    for j in &changes.memberships {
        let entry = groups
            .entry((j.scope.as_str(), j.user_id.as_str()))
            .or_insert_with(|| Some(HashSet::new()));
        match entry {
            Some(set) if !j.left => {
                set.insert(j.group_id.as_str());
            }
            _ => *entry = None,
        }
    }
    created
        .iter()
        .filter_map(|member| {
            let key = (member.scope.as_str(), member.platform_user_id.as_str());
            let upsert = upserts.get(&key)?;
            let in_groups = groups.get(&key)?.as_ref()?.len();
            if in_groups == 0 {
                return None;
            }
            let in_groups = i64::try_from(in_groups).unwrap_or(i64::MAX);
            let facts = StageFacts {
                first_seen_at: upsert.first_seen_at,
                last_active_at: upsert.last_active_at,
                groups_ever: in_groups,
                groups_now: in_groups,
                contacts_ever: 0,
                contacts_now: 0,
                previous: None,
            };
            let change = StageChange {
                member_id: member.id,
                from: None,
                to: stage_at(&facts, now_ms, config).as_str(),
                at: now_ms,
            };
            Some((member, change))
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

    fn upsert(user: &str, first: i64, last: i64) -> crate::store::members::MemberUpsert {
        crate::store::members::MemberUpsert {
            scope: "corp".into(),
            user_id: user.into(),
            name: None,
            first_seen_at: first,
            last_active_at: last,
            messages: 1,
        }
    }

    fn membership(user: &str, group: &str, left: bool) -> crate::store::members::MembershipUpsert {
        crate::store::members::MembershipUpsert {
            scope: "corp".into(),
            group_id: group.into(),
            user_id: user.into(),
            at: NOW,
            left,
        }
    }

    fn created(id: i64, user: &str) -> CreatedMember {
        CreatedMember {
            id,
            scope: "corp".into(),
            platform_user_id: user.into(),
        }
    }

    #[test]
    fn first_stages_only_where_the_batch_decides_them() {
        let changes = MemberChanges {
            members: vec![
                upsert("in-two-groups", NOW, NOW),
                upsert("joined-and-left", NOW, NOW),
                upsert("one-to-one", NOW, NOW),
                upsert("old-message", NOW - 40 * DAY_MS, NOW - 40 * DAY_MS),
                upsert("not-created", NOW, NOW),
            ],
            memberships: vec![
                membership("in-two-groups", "g1", false),
                membership("in-two-groups", "g2", false),
                membership("joined-and-left", "g1", false),
                membership("joined-and-left", "g2", true),
                membership("old-message", "g1", false),
                membership("not-created", "g1", false),
            ],
            ..MemberChanges::default()
        };
        let created = [
            created(1, "in-two-groups"),
            created(2, "joined-and-left"),
            created(3, "one-to-one"),
            created(4, "old-message"),
        ];
        let stages: Vec<(i64, Option<&str>, &str, i64)> =
            first_stages(&changes, &created, &config(), NOW)
                .into_iter()
                .map(|(m, c)| {
                    assert_eq!(m.id, c.member_id);
                    (c.member_id, c.from, c.to, c.at)
                })
                .collect();
        // A leave or no group at all: the stage check reads the stored facts instead.
        assert_eq!(
            stages,
            vec![(1, None, "new", NOW), (4, None, "lapsed", NOW)]
        );
        // The same rules as every other stage decision, with the configured thresholds.
        let no_new_days = LifecycleConfig {
            new_days: 0,
            ..config()
        };
        let first = first_stages(&changes, &created[..1], &no_new_days, NOW);
        assert_eq!(first[0].1.to, "active");
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
