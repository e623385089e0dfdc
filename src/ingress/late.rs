//! Answers that cannot go out as the passive reply (the chain missed the reply budget, or the
//! sweeper ran the event again after a crash) go out as active messages through the outbox, once
//! per event (the idempotency key is the event's): an app message to the sender, a robot post
//! into the group with the sender @-ed, a customer-service message on an Official Account, the
//! gateway's send URL, or the AI bot's one-shot `response_url`.

use crate::channels::Channel;
use crate::config::ChannelKind;
use crate::events::Event;
use crate::outbox::{Envelope, Outbound, PRIORITY_URGENT};

/// The active message carrying `text` to whoever sent `event`, if the channel can reach them.
pub fn late_message(channel: &Channel, event: &Event, text: &str) -> Option<Outbound> {
    if let Some(url) = &event.reply_url {
        return Some(Outbound::ReplyUrl {
            url: url.clone(),
            markdown: text.to_owned(),
        });
    }
    let message = event.message()?;
    let sender = message.sender.id.clone();
    let group = message.group.as_ref().map(|g| g.id.clone());
    match channel.kind {
        ChannelKind::WecomApp => Some(Outbound::App {
            to: vec![sender],
            message: Outbound::text(text),
        }),
        // A robot's webhook posts into its own group; a 1:1 chat with it has no active route.
        ChannelKind::WecomRobot => group.map(|_| Outbound::Robot {
            message: Outbound::text(text),
            mentions: vec![sender],
        }),
        ChannelKind::WechatMp => Some(Outbound::Mp {
            openid: sender,
            message: Outbound::text(text),
        }),
        ChannelKind::Gateway => Some(Outbound::Gateway {
            to: group.is_none().then(|| sender.clone()),
            mentions: if group.is_some() {
                vec![sender]
            } else {
                Vec::new()
            },
            group,
            text: text.to_owned(),
        }),
        ChannelKind::WecomAibot => None,
    }
}

/// The envelope of an event's late answer: one per event, urgent, useful for an hour.
pub fn late_envelope(event: &Event, message: Outbound, now_ms: i64) -> Envelope {
    Envelope {
        idem_key: format!("late_reply:{}:{}", event.channel_id, event.dedupe_key),
        channel_id: event.channel_id.clone(),
        message,
        priority: PRIORITY_URGENT,
        not_before_ms: now_ms,
        // A response URL is valid for an hour (Doc 101138); an answer later than that is stale.
        expires_at_ms: Some(now_ms + 3_600_000),
    }
}
