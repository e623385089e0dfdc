//! Passive replies in each channel's format: encrypted XML for apps, robots (XML mode) and MP
//! safe mode, an encrypted JSON envelope for robots in JSON mode, plain XML for MP plaintext
//! mode, and JSON for the gateway.

use crate::channels::Channel;
use crate::config::ChannelKind;
use crate::events::Event;
use crate::wecom::xml::{self, Fields};

use super::CallbackResponse;

/// How the answer to one delivery must look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyShape {
    /// App / MP text reply: `ToUserName` = the sender, `FromUserName` = corp id or `gh_` id.
    TextXml {
        to_user: String,
        from_user: String,
        encrypted: bool,
    },
    /// Group robot reply, optionally @-mentioning the sender.
    RobotXml {
        mention: Option<String>,
    },
    RobotJson {
        mention: Option<String>,
    },
    GatewayJson {
        mention: Option<String>,
    },
    /// AI bot: a `stream` finished in one frame, or the `text` welcome for `enter_chat`.
    AibotJson {
        welcome: bool,
    },
}

impl ReplyShape {
    pub(super) fn for_event(
        channel: &Channel,
        event: &Event,
        fields: &Fields,
        json_envelope: bool,
        mp_plaintext: bool,
    ) -> Self {
        let sender = event.actor().map(|u| u.id.clone()).unwrap_or_default();
        match channel.kind {
            ChannelKind::WecomRobot => {
                let mention = event
                    .message()
                    .filter(|m| m.group.is_some())
                    .map(|m| m.sender.id.clone());
                if json_envelope {
                    Self::RobotJson { mention }
                } else {
                    Self::RobotXml { mention }
                }
            }
            ChannelKind::WecomAibot => Self::AibotJson {
                welcome: matches!(&event.kind, crate::events::EventKind::Other { event, .. } if event == "aibot.enter_chat"),
            },
            ChannelKind::WechatMp | ChannelKind::WecomApp | ChannelKind::Gateway => Self::TextXml {
                to_user: fields.get("FromUserName").unwrap_or(&sender).to_owned(),
                from_user: fields
                    .get("ToUserName")
                    .map_or_else(|| channel.receive_id.clone(), str::to_owned),
                encrypted: !mp_plaintext,
            },
        }
    }

    /// "Received, nothing to say": empty 200 (`{}` for the gateway, which expects JSON).
    pub fn empty_response(&self) -> CallbackResponse {
        match self {
            Self::GatewayJson { .. } => CallbackResponse::Json("{}".into()),
            _ => CallbackResponse::Empty,
        }
    }
}

/// The encrypted JSON envelope (WXBizJsonMsgCrypt): `encrypt`, `msgsignature`, `timestamp`, `nonce`.
fn seal_json(channel: &Channel, inner: &serde_json::Value, now_secs: i64) -> CallbackResponse {
    let Some(crypt) = channel.crypt.as_ref() else {
        return CallbackResponse::Empty;
    };
    let ts = now_secs.to_string();
    let nonce = nonce();
    let (encrypt, sig) = crypt.seal(inner.to_string().as_bytes(), &ts, &nonce);
    CallbackResponse::Json(
        serde_json::json!({ "encrypt": encrypt, "msgsignature": sig, "timestamp": now_secs, "nonce": nonce })
            .to_string(),
    )
}

fn nonce() -> String {
    let n: u64 = rand::random();
    format!("{}", n % 10_000_000_000)
}

/// Builds the passive reply carrying `text`.
pub(super) fn render(
    channel: &Channel,
    shape: &ReplyShape,
    text: &str,
    now_secs: i64,
) -> CallbackResponse {
    let seal_xml = |inner: &str| -> CallbackResponse {
        let Some(crypt) = channel.crypt.as_ref() else {
            return CallbackResponse::Empty;
        };
        let ts = now_secs.to_string();
        let nonce = nonce();
        let (encrypt, sig) = crypt.seal(inner.as_bytes(), &ts, &nonce);
        CallbackResponse::Xml(xml::encrypted_reply_envelope(&encrypt, &sig, &ts, &nonce))
    };
    match shape {
        ReplyShape::TextXml { to_user, from_user, encrypted } => {
            let inner = xml::text_reply(to_user, from_user, now_secs, text);
            if *encrypted {
                seal_xml(&inner)
            } else {
                CallbackResponse::Xml(inner)
            }
        }
        ReplyShape::RobotXml { mention } => {
            let mentioned: Vec<String> = mention.iter().cloned().collect();
            seal_xml(&xml::robot_text_reply(text, &mentioned))
        }
        ReplyShape::RobotJson { mention } => seal_json(
            channel,
            &serde_json::json!({
                "msgtype": "text",
                "text": { "content": text, "mentioned_list": mention.iter().collect::<Vec<_>>() },
            }),
            now_secs,
        ),
        ReplyShape::AibotJson { welcome: true } => seal_json(
            channel,
            &serde_json::json!({ "msgtype": "text", "text": { "content": text } }),
            now_secs,
        ),
        // Our answers are short: the stream is finished in its first frame, so WeCom does not
        // come back for refreshes.
        ReplyShape::AibotJson { welcome: false } => seal_json(
            channel,
            &serde_json::json!({
                "msgtype": "stream",
                "stream": { "id": format!("{:016x}", rand::random::<u64>()), "finish": true, "content": text },
            }),
            now_secs,
        ),
        ReplyShape::GatewayJson { mention } => CallbackResponse::Json(
            serde_json::json!({ "reply": { "text": text, "mentions": mention.iter().collect::<Vec<_>>() } }).to_string(),
        ),
    }
}
