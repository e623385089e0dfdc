//! The one place where an outbound intent becomes the platform's request body: checked against
//! the channel (its kind, the keys it needs, the platform's limits) and serialized for the row.

use super::{response_url_allowed, Content, EnqueueError, Envelope};
use crate::config::{ChannelConfig, ChannelKind, Config};
use crate::wecom::api::types::{
    AddMsgTemplate, AppchatSend, CustomSend, MarkTag, MessageSend, RobotMessage, RobotText,
    SendWelcomeMsg, Text,
};

/// A row's kind, the recipient its rate limits are keyed by, the request body, and who confirms
/// a mass-send task.
pub(super) type RowParts = (&'static str, String, String, Option<String>);

/// Builds the row of one envelope on its channel.
pub(super) struct RowBuilder<'a> {
    pub config: &'a Config,
    pub channel: &'a ChannelConfig,
    pub env: &'a Envelope,
}

/// An API body as stored in the row (these types always serialize).
fn json<T: serde::Serialize + ?Sized>(body: &T) -> String {
    serde_json::to_string(body).unwrap_or_default()
}

impl RowBuilder<'_> {
    fn need(&self, kind: ChannelKind, what: &'static str) -> Result<(), EnqueueError> {
        if self.channel.kind == kind {
            Ok(())
        } else {
            Err(EnqueueError::WrongKind {
                channel: self.env.channel_id.clone(),
                kind: self.channel.kind.as_str(),
                what,
            })
        }
    }

    fn missing(&self, key: &'static str) -> EnqueueError {
        EnqueueError::MissingKey {
            channel: self.env.channel_id.clone(),
            key,
        }
    }

    fn secret(&self) -> Result<(), EnqueueError> {
        self.channel
            .secret
            .as_ref()
            .map(|_| ())
            .ok_or_else(|| self.missing("secret"))
    }

    pub fn app(&self, to: &[String], message: &Content) -> Result<RowParts, EnqueueError> {
        self.need(ChannelKind::WecomApp, "app messages")?;
        if to.is_empty() || to.len() > 1000 {
            return Err(EnqueueError::Invalid("1 to 1000 recipients".into()));
        }
        self.secret()?;
        let agentid = self
            .channel
            .agent_id
            .ok_or_else(|| self.missing("agent_id"))?;
        let dup = self.config.outbox.duplicate_check_secs;
        let body = MessageSend {
            touser: to.join("|"),
            toparty: String::new(),
            totag: String::new(),
            agentid,
            message: message.app_message(),
            safe: 0,
            enable_duplicate_check: u8::from(dup > 0),
            duplicate_check_interval: (dup > 0).then_some(dup),
        };
        Ok(("app_message", to.join("|"), json(&body), None))
    }

    pub fn appchat(&self, chat_id: &str, message: &Content) -> Result<RowParts, EnqueueError> {
        self.need(ChannelKind::WecomApp, "app group chat messages")?;
        self.secret()?;
        let body = AppchatSend {
            chatid: chat_id.to_owned(),
            message: message.app_message(),
            safe: 0,
        };
        Ok(("appchat", chat_id.to_owned(), json(&body), None))
    }

    pub fn robot(&self, message: &Content, mentions: &[String]) -> Result<RowParts, EnqueueError> {
        self.need(ChannelKind::WecomRobot, "robot messages")?;
        self.channel
            .webhook_key
            .as_ref()
            .ok_or_else(|| self.missing("webhook_key"))?;
        let body = match message {
            Content::Text(content) => RobotMessage::Text {
                text: RobotText {
                    content: content.clone(),
                    mentioned_list: mentions.to_vec(),
                    ..RobotText::default()
                },
            },
            Content::Markdown(content) => RobotMessage::Markdown {
                markdown: Text {
                    content: content.clone(),
                },
            },
        };
        Ok(("robot", self.env.channel_id.clone(), json(&body), None))
    }

    pub fn welcome(&self, welcome_code: &str, text: &str) -> Result<RowParts, EnqueueError> {
        self.need(ChannelKind::WecomApp, "welcome messages")?;
        self.secret()?;
        let body = SendWelcomeMsg {
            welcome_code: welcome_code.to_owned(),
            text: Text {
                content: text.to_owned(),
            },
        };
        Ok(("welcome", welcome_code.to_owned(), json(&body), None))
    }

    pub fn mark_tag(
        &self,
        staff: &str,
        customer: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<RowParts, EnqueueError> {
        self.need(ChannelKind::WecomApp, "customer tags")?;
        self.secret()?;
        let body = MarkTag {
            userid: staff.to_owned(),
            external_userid: customer.to_owned(),
            add_tag: add.to_vec(),
            remove_tag: remove.to_vec(),
        };
        Ok(("mark_tag", customer.to_owned(), json(&body), None))
    }

    pub fn reply_url(&self, url: &str, markdown: &str) -> Result<RowParts, EnqueueError> {
        self.need(ChannelKind::WecomAibot, "late replies")?;
        if !response_url_allowed(url, &self.config.aibot.response_url_hosts) {
            return Err(EnqueueError::Invalid(
                "response_url host is not in aibot.response_url_hosts".into(),
            ));
        }
        let body = serde_json::json!({
            "url": url, "msgtype": "markdown", "markdown": { "content": markdown },
        });
        Ok(("reply_url", url.to_owned(), body.to_string(), None))
    }

    pub fn aibot_push(&self, chat_id: &str, markdown: &str) -> Result<RowParts, EnqueueError> {
        self.need(ChannelKind::WecomAibot, "long-connection pushes")?;
        if self.channel.mode.as_deref() != Some("websocket") {
            return Err(EnqueueError::Invalid(format!(
                "channel `{}` pushes only in websocket mode",
                self.env.channel_id
            )));
        }
        let body = serde_json::json!({
            "chatid": chat_id, "msgtype": "markdown", "markdown": { "content": markdown },
        });
        Ok(("aibot_push", chat_id.to_owned(), body.to_string(), None))
    }

    pub fn gateway(
        &self,
        group: Option<&str>,
        to: Option<&str>,
        text: &str,
        mentions: &[String],
    ) -> Result<RowParts, EnqueueError> {
        self.need(ChannelKind::Gateway, "gateway messages")?;
        self.channel
            .send_url
            .as_ref()
            .ok_or_else(|| self.missing("send_url"))?;
        let recipient = group.or(to).map(str::to_owned).ok_or_else(|| {
            EnqueueError::Invalid("a gateway message needs a group or a member".into())
        })?;
        let body = serde_json::json!({
            "type": "send", "group": group.map(|g| serde_json::json!({ "id": g })),
            "to": to, "text": text, "mentions": mentions,
        });
        Ok(("gateway_send", recipient, body.to_string(), None))
    }

    pub fn mp(&self, openid: &str, message: &Content) -> Result<RowParts, EnqueueError> {
        self.need(ChannelKind::WechatMp, "customer-service messages")?;
        self.secret()?;
        let body = CustomSend {
            touser: openid.to_owned(),
            message: message.app_message(),
        };
        Ok(("mp_custom", openid.to_owned(), json(&body), None))
    }

    pub fn mass(
        &self,
        sender: &str,
        recipients: &[String],
        text: &str,
    ) -> Result<RowParts, EnqueueError> {
        self.need(ChannelKind::WecomApp, "customer mass sends")?;
        self.secret()?;
        if recipients.is_empty() || recipients.len() > 10_000 {
            return Err(EnqueueError::Invalid("1 to 10000 recipients".into()));
        }
        let body = AddMsgTemplate {
            chat_type: "single".into(),
            external_userid: recipients.to_vec(),
            chat_id_list: Vec::new(),
            sender: sender.to_owned(),
            text: Text {
                content: text.to_owned(),
            },
        };
        Ok((
            "mass_template",
            sender.to_owned(),
            json(&body),
            Some(sender.to_owned()),
        ))
    }
}
