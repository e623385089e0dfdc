//! Bounds on what a verified delivery may carry before it reaches storage: identifiers within a
//! length limit (the same 400 on SQLite and PostgreSQL, instead of a failed group commit), no NUL
//! characters, names of a sane length, and a platform time close enough to the arrival time to be
//! believed.

use crate::events::{Event, EventKind, UserRef};
use crate::wecom::xml::ParseError;

/// Longest platform identifier accepted (WeCom's ids are at most 64 bytes; message ids ~20).
pub const MAX_ID_BYTES: usize = 256;
/// Longer display and group names are cut to this many characters.
pub const MAX_NAME_CHARS: usize = 128;

/// Checks identifiers, drops NUL characters, shortens names. Errors name the field.
pub fn check_event(event: &mut Event) -> Result<(), ParseError> {
    id("dedupe key", &event.dedupe_key, 2 * MAX_ID_BYTES + 16)?;
    match &mut event.kind {
        EventKind::Message(m) => {
            user("sender", &mut m.sender)?;
            if let Some(g) = &mut m.group {
                id("group id", &g.id, MAX_ID_BYTES)?;
                name(&mut g.name);
            }
            id("message id", &m.platform_msg_id, MAX_ID_BYTES)?;
            id("message type", &m.msg_type, 64)?;
            strip_nul(&mut m.text);
        }
        EventKind::MemberJoined {
            group,
            members,
            inviter,
            join_scene,
        } => {
            id("group id", &group.id, MAX_ID_BYTES)?;
            name(&mut group.name);
            members.iter_mut().try_for_each(|u| user("member", u))?;
            optional_id("inviter", inviter)?;
            optional_id("join scene", join_scene)?;
        }
        EventKind::MemberLeft { group, members, .. } => {
            id("group id", &group.id, MAX_ID_BYTES)?;
            name(&mut group.name);
            members.iter_mut().try_for_each(|u| user("member", u))?;
        }
        EventKind::ContactAdded {
            staff,
            contact,
            state,
            welcome_code,
        } => {
            id("staff id", staff, MAX_ID_BYTES)?;
            user("contact", contact)?;
            optional_id("state", state)?;
            optional_id("welcome code", welcome_code)?;
        }
        EventKind::ContactRemoved { staff, contact, .. } => {
            id("staff id", staff, MAX_ID_BYTES)?;
            user("contact", contact)?;
        }
        EventKind::Other { event, raw } => {
            id("event name", event, MAX_ID_BYTES)?;
            strip_nul(raw);
        }
    }
    Ok(())
}

/// When the platform's time is implausible (further than `future_secs` ahead of `arrival_secs`
/// or `past_secs` behind it), the arrival time stands in. Returns the time that was replaced.
pub fn clamp_time(
    event: &mut Event,
    arrival_secs: i64,
    future_secs: i64,
    past_secs: i64,
) -> Option<i64> {
    let at = event.occurred_at;
    let believable = at <= arrival_secs.saturating_add(future_secs)
        && at >= arrival_secs.saturating_sub(past_secs);
    if believable {
        return None;
    }
    event.occurred_at = arrival_secs;
    Some(at)
}

fn user(field: &'static str, u: &mut UserRef) -> Result<(), ParseError> {
    id(field, &u.id, MAX_ID_BYTES)?;
    name(&mut u.name);
    Ok(())
}

fn id(field: &'static str, value: &str, max: usize) -> Result<(), ParseError> {
    if value.contains('\0') {
        return Err(ParseError::Nul(field));
    }
    if value.len() > max {
        return Err(ParseError::TooLong {
            field,
            len: value.len(),
            max,
        });
    }
    Ok(())
}

fn optional_id(field: &'static str, value: &Option<String>) -> Result<(), ParseError> {
    value
        .as_deref()
        .map_or(Ok(()), |v| id(field, v, MAX_ID_BYTES))
}

fn name(value: &mut Option<String>) {
    if let Some(v) = value {
        strip_nul(v);
        if let Some((cut, _)) = v.char_indices().nth(MAX_NAME_CHARS) {
            v.truncate(cut);
        }
    }
}

fn strip_nul(value: &mut String) {
    if value.contains('\0') {
        value.retain(|c| c != '\0');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{GroupRef, Message};

    fn message(sender: &str, group: &str, name: &str) -> Event {
        Event {
            channel_id: "c".into(),
            scope: "s".into(),
            dedupe_key: "k".into(),
            occurred_at: 1_000_000,
            kind: EventKind::Message(Message {
                sender: UserRef::new(sender, Some(name.to_owned())),
                group: Some(GroupRef {
                    id: group.into(),
                    name: None,
                }),
                msg_type: "text".into(),
                text: "a\0b".into(),
                mentions_bot: true,
                platform_msg_id: "m".into(),
            }),
            reply_url: None,
            unsigned_body: false,
        }
    }

    #[test]
    fn long_or_nul_identifiers_are_refused_and_names_are_cut() {
        let long = "x".repeat(MAX_ID_BYTES + 1);
        assert_eq!(
            check_event(&mut message(&long, "g", "n")),
            Err(ParseError::TooLong {
                field: "sender",
                len: MAX_ID_BYTES + 1,
                max: MAX_ID_BYTES
            })
        );
        assert_eq!(
            check_event(&mut message("u", "g\0", "n")),
            Err(ParseError::Nul("group id"))
        );
        let mut ok = message("u", "g", &"名".repeat(500));
        check_event(&mut ok).expect("valid");
        let m = ok.message().expect("message");
        assert_eq!(
            m.sender.name.as_deref().map(|n| n.chars().count()),
            Some(MAX_NAME_CHARS)
        );
        assert_eq!(m.text, "ab");
    }

    #[test]
    fn implausible_times_are_replaced_by_the_arrival_time() {
        let arrival = 1_700_000_000;
        for (at, replaced) in [
            (0, true),
            (arrival + 2 * 86_400, true),
            (i64::MAX, true),
            (arrival - 90_000, true),
            (arrival + 500, false),
            (arrival - 80_000, false),
        ] {
            let mut e = message("u", "g", "n");
            e.occurred_at = at;
            let got = clamp_time(&mut e, arrival, 600, 86_400);
            assert_eq!(got.is_some(), replaced, "{at}");
            assert_eq!(e.occurred_at, if replaced { arrival } else { at });
        }
    }
}
