//! The only bridge from platform payloads to [`crate::events::Event`]: one mapping per channel
//! kind, and the dedupe-key rules (MsgId + sender for messages; a hash of all fields for events,
//! never sender + CreateTime alone, which merges two contacts added in the same second).

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::channels::Channel;
use crate::events::{Event, EventKind, GroupRef, Message, UserRef};
use crate::wecom::xml::{Fields, ParseError};

/// Dedupe key of a message: platform message id, then sender. The id leads so that, where ids
/// grow with time, new keys land next to each other in the inbox's unique index; with the
/// sender first every callback touched another index page (a third more bytes written per
/// callback, docs/benchmarks.md section 2). Random ids cost what they did before. Migration
/// 0018 rewrote the keys of the older form, `m:{sender}:{msg_id}`.
pub fn message_key(sender: &str, msg_id: &str) -> String {
    format!("msg:{msg_id}:{sender}")
}

/// Dedupe key of an event: SHA-256 over every (path, value) pair in a canonical order, so
/// two events that differ in any field (ExternalUserID, ChatId, UpdateDetail…) never collide.
pub fn event_key(fields: &Fields) -> String {
    let mut pairs: Vec<&(String, String)> = fields.pairs().iter().collect();
    pairs.sort();
    let mut hasher = Sha256::new();
    for (path, value) in pairs {
        hasher.update(path.as_bytes());
        hasher.update([0x1f]);
        hasher.update(value.trim().as_bytes());
        hasher.update([0x1e]);
    }
    format!("e:{}", hex::encode(&hasher.finalize()[..16]))
}

fn parse_time(fields: &Fields, fallback: i64) -> i64 {
    fields
        .non_empty(&["CreateTime", "create_time"])
        .and_then(|v| v.parse().ok())
        .unwrap_or(fallback)
}

fn required<'f>(fields: &'f Fields, name: &'static str) -> Result<&'f str, ParseError> {
    fields.non_empty(&[name]).ok_or(ParseError::Missing(name))
}

fn user(id: &str, name: Option<&str>) -> UserRef {
    UserRef::new(id, name.map(str::to_owned).filter(|n| !n.is_empty()))
}

fn raw_of(fields: &Fields) -> String {
    let map: serde_json::Map<String, serde_json::Value> = fields
        .pairs()
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

fn build(channel: &Channel, dedupe_key: String, occurred_at: i64, kind: EventKind) -> Event {
    Event {
        channel_id: channel.id.clone(),
        scope: channel.scope.clone(),
        dedupe_key,
        occurred_at,
        kind,
        reply_url: None,
        unsigned_body: false,
    }
}

/// A self-built app's decrypted message or event (doc 90930/90238, customer-contact doc 92130).
pub fn wecom_app(channel: &Channel, fields: &Fields, request_ts: i64) -> Result<Event, ParseError> {
    let msg_type = fields
        .non_empty(&["MsgType"])
        .ok_or(ParseError::Missing("MsgType"))?;
    let at = parse_time(fields, request_ts);
    if msg_type != "event" {
        let from = fields
            .non_empty(&["FromUserName"])
            .ok_or(ParseError::Missing("FromUserName"))?;
        let msg_id = fields.non_empty(&["MsgId"]);
        let key = msg_id.map_or_else(|| event_key(fields), |id| message_key(from, id));
        let message = Message {
            sender: user(from, None),
            group: None,
            msg_type: msg_type.to_owned(),
            text: if msg_type == "text" {
                fields.get("Content").unwrap_or_default().trim().to_owned()
            } else {
                String::new()
            },
            mentions_bot: true,
            platform_msg_id: msg_id.unwrap_or_default().to_owned(),
        };
        return Ok(build(channel, key, at, EventKind::Message(message)));
    }
    let event = fields
        .non_empty(&["Event"])
        .ok_or(ParseError::Missing("Event"))?;
    let change = fields.non_empty(&["ChangeType"]).unwrap_or_default();
    let kind = match (event, change) {
        ("change_external_contact", "add_external_contact" | "add_half_external_contact") => {
            EventKind::ContactAdded {
                staff: required(fields, "UserID")?.to_owned(),
                contact: user(required(fields, "ExternalUserID")?, None),
                state: fields.non_empty(&["State"]).map(str::to_owned),
                welcome_code: fields.non_empty(&["WelcomeCode"]).map(str::to_owned),
            }
        }
        ("change_external_contact", "del_external_contact" | "del_follow_user") => {
            EventKind::ContactRemoved {
                staff: required(fields, "UserID")?.to_owned(),
                contact: user(required(fields, "ExternalUserID")?, None),
                by_contact: change == "del_follow_user",
            }
        }
        ("change_external_chat", "update") => external_chat_update(fields)?,
        _ => EventKind::Other {
            event: if change.is_empty() {
                event.to_owned()
            } else {
                format!("{event}.{change}")
            },
            raw: raw_of(fields),
        },
    };
    Ok(build(channel, event_key(fields), at, kind))
}

/// A customer group's membership change (`change_external_chat` / `update`).
fn external_chat_update(fields: &Fields) -> Result<EventKind, ParseError> {
    let group = GroupRef {
        id: fields
            .non_empty(&["ChatId"])
            .ok_or(ParseError::Missing("ChatId"))?
            .to_owned(),
        name: None,
    };
    let members = changed_members(fields);
    Ok(
        match fields.non_empty(&["UpdateDetail"]).unwrap_or_default() {
            "add_member" => EventKind::MemberJoined {
                group,
                members,
                inviter: None,
                join_scene: fields.non_empty(&["JoinScene"]).map(str::to_owned),
            },
            "del_member" => EventKind::MemberLeft {
                group,
                members,
                removed: fields.non_empty(&["QuitScene"]) == Some("1"),
            },
            other => EventKind::Other {
                event: format!("change_external_chat.{other}"),
                raw: raw_of(fields),
            },
        },
    )
}

/// `MemChangeList` comes as `<Item>` children or, in older deliveries, one comma-separated string.
fn changed_members(fields: &Fields) -> Vec<UserRef> {
    let items: Vec<UserRef> = fields
        .all("MemChangeList.Item")
        .filter(|s| !s.trim().is_empty())
        .map(|s| user(s.trim(), None))
        .collect();
    if !items.is_empty() {
        return items;
    }
    fields
        .get("MemChangeList")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| user(s, None))
        .collect()
}

/// Removes the bot's @-mention. WeCom separates a mention from the text with U+2005.
pub fn strip_mention(text: &str, bot_name: Option<&str>) -> String {
    let is_sep = |c: char| c.is_whitespace() || c == '\u{2005}';
    let mut text = text.trim_matches(is_sep).to_owned();
    if let Some(name) = bot_name.filter(|n| !n.is_empty()) {
        text = text.replace(&format!("@{name}"), "");
    } else if let Some(rest) = text.strip_prefix('@') {
        text = rest
            .split_once(is_sep)
            .map(|(_, after)| after.to_owned())
            .unwrap_or_default();
    }
    text.trim_matches(is_sep).to_owned()
}

/// A group robot's callback, XML or JSON mode (ROBOT-CB). It carries no CreateTime, so the
/// verified request timestamp stands in.
pub fn wecom_robot(
    channel: &Channel,
    fields: &Fields,
    request_ts: i64,
) -> Result<Event, ParseError> {
    // Each field by its documented spelling first: XML's capitalized name, JSON's lowercase one
    // (another spelling in the same payload must not win).
    let pick = |xml_name: &'static str, json_name: &'static str| {
        if fields.is_json() {
            fields.non_empty(&[json_name, xml_name])
        } else {
            fields.non_empty(&[xml_name, json_name])
        }
    };
    let msg_type = pick("MsgType", "msgtype").ok_or(ParseError::Missing("MsgType"))?;
    let at = parse_time(fields, request_ts);
    let from = pick("From.UserId", "from.userid");
    let chat_type = pick("ChatType", "chattype").unwrap_or("single");
    let chat_id = pick("ChatId", "chatid");
    if msg_type == "event" || from.is_none() {
        let event = fields
            .non_empty(&["Event.EventType", "event.event_type", "event.eventtype"])
            .unwrap_or(msg_type);
        return Ok(build(
            channel,
            event_key(fields),
            at,
            EventKind::Other {
                event: event.to_owned(),
                raw: raw_of(fields),
            },
        ));
    }
    let from = from.unwrap_or_default();
    let msg_id = pick("MsgId", "msgid").ok_or(ParseError::Missing("MsgId"))?;
    let raw_text = match msg_type {
        "text" => fields
            .get_any(&["Text.Content", "text.content"])
            .unwrap_or_default()
            .to_owned(),
        "mixed" => fields
            .all("MixedMessage.MsgItem.Text.Content")
            .chain(fields.all("mixed_message.msg_item.text.content"))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    };
    let group = (chat_type == "group").then(|| GroupRef {
        id: chat_id.unwrap_or_default().to_owned(),
        name: None,
    });
    let message = Message {
        sender: user(from, pick("From.Name", "from.name")),
        group,
        msg_type: msg_type.to_owned(),
        text: strip_mention(&raw_text, channel.robot_name.as_deref()),
        // Robots are called back only when @-mentioned in a group, or in their 1:1 chat.
        mentions_bot: true,
        platform_msg_id: msg_id.to_owned(),
    };
    Ok(build(
        channel,
        message_key(from, msg_id),
        at,
        EventKind::Message(message),
    ))
}

/// An AI bot (智能机器人) callback in API mode (Doc 100719): the robot's JSON shape plus `mixed`,
/// `voice` (its speech-to-text) and events (`enter_chat`, …) named by `event.eventtype`.
pub fn wecom_aibot(
    channel: &Channel,
    fields: &Fields,
    request_ts: i64,
) -> Result<Event, ParseError> {
    let msg_type = fields
        .non_empty(&["msgtype"])
        .ok_or(ParseError::Missing("msgtype"))?;
    match msg_type {
        "event" => {
            let at = parse_time(fields, request_ts);
            let name = fields.non_empty(&["event.eventtype"]).unwrap_or("event");
            Ok(build(
                channel,
                fields
                    .non_empty(&["msgid"])
                    .map_or_else(|| event_key(fields), |id| format!("event:{id}")),
                at,
                EventKind::Other {
                    event: format!("aibot.{name}"),
                    raw: raw_of(fields),
                },
            ))
        }
        "mixed" | "voice" => {
            let mut event = wecom_robot(channel, fields, request_ts)?;
            if let EventKind::Message(m) = &mut event.kind {
                let text = if msg_type == "voice" {
                    fields
                        .get_any(&["voice.content"])
                        .unwrap_or_default()
                        .to_owned()
                } else {
                    fields
                        .all("mixed.msg_item.text.content")
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                m.text = strip_mention(&text, channel.robot_name.as_deref());
                m.msg_type = "text".into();
            }
            Ok(event)
        }
        _ => wecom_robot(channel, fields, request_ts),
    }
    .map(|mut event| {
        event.reply_url = fields.non_empty(&["response_url"]).map(str::to_owned);
        event
    })
}

/// A WeChat Official Account message or event (MP message-push doc).
pub fn wechat_mp(channel: &Channel, fields: &Fields, request_ts: i64) -> Result<Event, ParseError> {
    let msg_type = fields
        .non_empty(&["MsgType"])
        .ok_or(ParseError::Missing("MsgType"))?;
    let from = fields
        .non_empty(&["FromUserName"])
        .ok_or(ParseError::Missing("FromUserName"))?;
    let at = parse_time(fields, request_ts);
    if msg_type != "event" {
        let msg_id = fields.non_empty(&["MsgId"]);
        let key = msg_id.map_or_else(|| event_key(fields), |id| message_key(from, id));
        let message = Message {
            sender: user(from, None),
            group: None,
            msg_type: msg_type.to_owned(),
            text: if msg_type == "text" {
                fields.get("Content").unwrap_or_default().trim().to_owned()
            } else {
                String::new()
            },
            mentions_bot: true,
            platform_msg_id: msg_id.unwrap_or_default().to_owned(),
        };
        return Ok(build(channel, key, at, EventKind::Message(message)));
    }
    let account = fields
        .non_empty(&["ToUserName"])
        .unwrap_or_default()
        .to_owned();
    let kind = match fields.non_empty(&["Event"]).unwrap_or_default() {
        "subscribe" => EventKind::ContactAdded {
            staff: account,
            contact: user(from, None),
            state: fields
                .non_empty(&["EventKey"])
                .map(|k| k.trim_start_matches("qrscene_").to_owned()),
            welcome_code: None,
        },
        "unsubscribe" => EventKind::ContactRemoved {
            staff: account,
            contact: user(from, None),
            by_contact: true,
        },
        other => EventKind::Other {
            event: other.to_owned(),
            raw: raw_of(fields),
        },
    };
    Ok(build(channel, event_key(fields), at, kind))
}

/// The gateway's JSON body (documented in the README's gateway section).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum GatewayBody {
    Message {
        msg_id: String,
        sender: GatewayUser,
        #[serde(default)]
        group: Option<GatewayGroup>,
        #[serde(default)]
        text: String,
        #[serde(default)]
        mentions_bot: bool,
        #[serde(default)]
        time: Option<i64>,
    },
    MemberJoined {
        group: GatewayGroup,
        members: Vec<GatewayUser>,
        #[serde(default)]
        inviter: Option<String>,
        #[serde(default)]
        time: Option<i64>,
    },
    MemberLeft {
        group: GatewayGroup,
        members: Vec<GatewayUser>,
        #[serde(default)]
        removed: bool,
        #[serde(default)]
        time: Option<i64>,
    },
}

#[derive(Debug, Deserialize)]
struct GatewayUser {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GatewayGroup {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

impl From<GatewayUser> for UserRef {
    fn from(u: GatewayUser) -> Self {
        UserRef::new(u.id, u.name)
    }
}

impl From<GatewayGroup> for GroupRef {
    fn from(g: GatewayGroup) -> Self {
        GroupRef {
            id: g.id,
            name: g.name,
        }
    }
}

/// A gateway delivery (signed JSON).
pub fn gateway(channel: &Channel, body: &[u8], request_ts: i64) -> Result<Event, ParseError> {
    let parsed: GatewayBody = serde_json::from_slice(body)
        .map_err(|e| ParseError::Json(crate::wecom::xml::clean(&e.to_string())))?;
    let fields = crate::wecom::xml::parse_json(body)?;
    Ok(match parsed {
        GatewayBody::Message {
            msg_id,
            sender,
            group,
            text,
            mentions_bot,
            time,
        } => {
            if msg_id.is_empty() || sender.id.is_empty() {
                return Err(ParseError::Missing("msg_id/sender.id"));
            }
            let key = message_key(&sender.id, &msg_id);
            let message = Message {
                sender: sender.into(),
                group: group.map(Into::into),
                msg_type: "text".into(),
                text: text.trim().to_owned(),
                mentions_bot,
                platform_msg_id: msg_id,
            };
            build(
                channel,
                key,
                time.unwrap_or(request_ts),
                EventKind::Message(message),
            )
        }
        GatewayBody::MemberJoined {
            group,
            members,
            inviter,
            time,
        } => build(
            channel,
            event_key(&fields),
            time.unwrap_or(request_ts),
            EventKind::MemberJoined {
                group: group.into(),
                members: members.into_iter().map(Into::into).collect(),
                inviter,
                join_scene: None,
            },
        ),
        GatewayBody::MemberLeft {
            group,
            members,
            removed,
            time,
        } => build(
            channel,
            event_key(&fields),
            time.unwrap_or(request_ts),
            EventKind::MemberLeft {
                group: group.into(),
                members: members.into_iter().map(Into::into).collect(),
                removed,
            },
        ),
    })
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
