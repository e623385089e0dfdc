//! Turns accepted events into member, group, membership and daily-activity changes, aggregated
//! per key so one batch writes each row once.

use std::collections::BTreeMap;

use chrono::TimeZone;
use chrono_tz::Tz;

use crate::events::{Event, EventKind, UserRef};
use crate::store::members::{
    ActivityUpsert, GroupUpsert, MemberChanges, MemberUpsert, MembershipUpsert,
};

/// The local calendar day (yyyymmdd) of an epoch-seconds instant in `tz`.
///
/// ```
/// // 2024-01-01 16:30 UTC is already 2 January in Beijing.
/// assert_eq!(yunying::members::local_day(chrono_tz::Asia::Shanghai, 1_704_126_600), 20240102);
/// ```
pub fn local_day(tz: Tz, epoch_secs: i64) -> i32 {
    use chrono::Datelike;
    let local = tz
        .timestamp_opt(epoch_secs, 0)
        .single()
        .unwrap_or_else(|| tz.from_utc_datetime(&chrono::DateTime::UNIX_EPOCH.naive_utc()));
    local.year() * 10_000
        + i32::try_from(local.month()).unwrap_or(1) * 100
        + i32::try_from(local.day()).unwrap_or(1)
}

#[derive(Default)]
struct Acc {
    members: BTreeMap<(String, String), MemberUpsert>,
    groups: BTreeMap<(String, String), GroupUpsert>,
    memberships: BTreeMap<(String, String, String), MembershipUpsert>,
    activity: BTreeMap<(String, String, i32), ActivityUpsert>,
}

impl Acc {
    fn member(&mut self, scope: &str, user: &UserRef, at: i64, active: bool, messages: i64) {
        let entry = self
            .members
            .entry((scope.to_owned(), user.id.clone()))
            .or_insert_with(|| MemberUpsert {
                scope: scope.to_owned(),
                user_id: user.id.clone(),
                name: None,
                first_seen_at: at,
                last_active_at: 0,
                messages: 0,
            });
        if user.name.is_some() {
            entry.name.clone_from(&user.name);
        }
        entry.first_seen_at = entry.first_seen_at.min(at);
        if active {
            entry.last_active_at = entry.last_active_at.max(at);
        }
        entry.messages += messages;
    }

    fn group(&mut self, scope: &str, id: &str, name: Option<&String>, at: i64) {
        let entry = self
            .groups
            .entry((scope.to_owned(), id.to_owned()))
            .or_insert_with(|| GroupUpsert {
                scope: scope.to_owned(),
                group_id: id.to_owned(),
                name: None,
                at,
            });
        if name.is_some() {
            entry.name = name.cloned();
        }
        entry.at = entry.at.max(at);
    }

    fn membership(&mut self, scope: &str, group_id: &str, user_id: &str, at: i64, left: bool) {
        let key = (scope.to_owned(), group_id.to_owned(), user_id.to_owned());
        let next = MembershipUpsert {
            scope: scope.to_owned(),
            group_id: group_id.to_owned(),
            user_id: user_id.to_owned(),
            at,
            left,
        };
        match self.memberships.get(&key) {
            Some(existing) if existing.at > at => {}
            _ => {
                self.memberships.insert(key, next);
            }
        }
    }

    fn activity(&mut self, scope: &str, user_id: &str, day: i32, messages: i64, events: i64) {
        let entry = self
            .activity
            .entry((scope.to_owned(), user_id.to_owned(), day))
            .or_insert_with(|| ActivityUpsert {
                scope: scope.to_owned(),
                user_id: user_id.to_owned(),
                day,
                messages: 0,
                events: 0,
            });
        entry.messages += messages;
        entry.events += events;
    }
}

/// Aggregates the member changes of newly accepted events. Times in the result are epoch ms.
pub fn changes_for<'a>(events: impl IntoIterator<Item = &'a Event>, tz: Tz) -> MemberChanges {
    let mut acc = Acc::default();
    for event in events {
        let at = event.occurred_at.saturating_mul(1000);
        let day = local_day(tz, event.occurred_at);
        let scope = event.scope.as_str();
        match &event.kind {
            EventKind::Message(m) => {
                acc.member(scope, &m.sender, at, true, 1);
                acc.activity(scope, &m.sender.id, day, 1, 0);
                if let Some(g) = &m.group {
                    acc.group(scope, &g.id, g.name.as_ref(), at);
                    acc.membership(scope, &g.id, &m.sender.id, at, false);
                }
            }
            EventKind::MemberJoined { group, members, .. } => {
                acc.group(scope, &group.id, group.name.as_ref(), at);
                for user in members {
                    acc.member(scope, user, at, true, 0);
                    acc.activity(scope, &user.id, day, 0, 1);
                    acc.membership(scope, &group.id, &user.id, at, false);
                }
            }
            EventKind::MemberLeft { group, members, .. } => {
                acc.group(scope, &group.id, group.name.as_ref(), at);
                for user in members {
                    acc.member(scope, user, at, false, 0);
                    acc.membership(scope, &group.id, &user.id, at, true);
                }
            }
            EventKind::ContactAdded { contact, .. } => {
                acc.member(scope, contact, at, true, 0);
                acc.activity(scope, &contact.id, day, 0, 1);
            }
            EventKind::ContactRemoved {
                contact,
                by_contact,
                ..
            } => {
                acc.member(scope, contact, at, *by_contact, 0);
            }
            EventKind::Other { .. } => {}
        }
    }
    MemberChanges {
        members: acc.members.into_values().collect(),
        groups: acc.groups.into_values().collect(),
        memberships: acc.memberships.into_values().collect(),
        activity: acc.activity.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{GroupRef, Message};

    fn msg(user: &str, group: Option<&str>, at: i64) -> Event {
        Event {
            channel_id: "c".into(),
            scope: "s".into(),
            dedupe_key: format!("{user}{at}"),
            occurred_at: at,
            kind: EventKind::Message(Message {
                sender: UserRef::new(user, Some(format!("name-{user}"))),
                group: group.map(|g| GroupRef {
                    id: g.into(),
                    name: None,
                }),
                msg_type: "text".into(),
                text: "hi".into(),
                mentions_bot: false,
                platform_msg_id: "1".into(),
            }),
            reply_url: None,
            unsigned_body: false,
        }
    }

    #[test]
    fn local_day_uses_the_configured_zone_not_utc() {
        // 2024-01-01 16:30 UTC is 2024-01-02 00:30 in Shanghai.
        let ts = 1_704_126_600;
        assert_eq!(local_day(chrono_tz::Asia::Shanghai, ts), 20240102);
        assert_eq!(local_day(chrono_tz::UTC, ts), 20240101);
    }

    proptest::proptest! {
        /// Instants within a day of local midnight map to the date a fixed-offset reference model
        /// gives (Asia/Shanghai +8, Asia/Tokyo +9; no DST since 1992 — China had DST 1986–1991,
        /// which the tz database models and a fixed offset does not), whatever the host's zone.
        #[test]
        fn local_day_matches_a_fixed_offset_model(day_index in 8_100i64..29_000, around in -7200i64..7200, tokyo in proptest::bool::ANY) {
            let (tz, offset) = if tokyo { (chrono_tz::Asia::Tokyo, 9 * 3600) } else { (chrono_tz::Asia::Shanghai, 8 * 3600) };
            // Local midnight of day `day_index` since 1970-01-01, plus up to two hours either way.
            let instant = day_index * 86_400 - offset + around;
            let local = chrono::DateTime::from_timestamp(instant + offset, 0).expect("in range").date_naive();
            use chrono::Datelike;
            let expected = local.year() * 10_000 + i32::try_from(local.month()).expect("m") * 100 + i32::try_from(local.day()).expect("d");
            proptest::prop_assert_eq!(local_day(tz, instant), expected);
        }
    }

    #[test]
    fn aggregates_per_member_and_day() {
        let events = vec![
            msg("a", Some("g"), 100),
            msg("a", Some("g"), 200),
            msg("b", None, 150),
        ];
        let changes = changes_for(&events, chrono_tz::UTC);
        assert_eq!(changes.members.len(), 2);
        let a = &changes.members[0];
        assert_eq!(
            (
                a.user_id.as_str(),
                a.messages,
                a.first_seen_at,
                a.last_active_at
            ),
            ("a", 2, 100_000, 200_000)
        );
        assert_eq!(changes.groups.len(), 1);
        assert_eq!(changes.memberships.len(), 1);
        assert_eq!(changes.activity.iter().map(|x| x.messages).sum::<i64>(), 3);
    }

    #[test]
    fn a_later_leave_wins_over_an_earlier_message() {
        let mut events = vec![msg("a", Some("g"), 100)];
        events.push(Event {
            channel_id: "c".into(),
            scope: "s".into(),
            dedupe_key: "left".into(),
            occurred_at: 300,
            kind: EventKind::MemberLeft {
                group: GroupRef {
                    id: "g".into(),
                    name: None,
                },
                members: vec![UserRef::new("a", None)],
                removed: false,
            },
            reply_url: None,
            unsigned_body: false,
        });
        let changes = changes_for(&events, chrono_tz::UTC);
        assert!(changes.memberships[0].left);
        assert_eq!(changes.members[0].last_active_at, 100_000);
    }
}
