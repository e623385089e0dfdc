//! `yunying send`: builds a correctly signed and encrypted callback for a configured channel,
//! exactly as WeCom / WeChat / a gateway would send it, and opens the passive reply. Used by
//! people to try a running server and by the integration tests.

use crate::channels::Channel;
use crate::config::ChannelKind;
use crate::wecom::crypto::{self, CryptoError};
use crate::wecom::gateway;
use crate::wecom::xml::{self, cdata, ParseError};

/// What to simulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Simulated {
    Text {
        from: String,
        name: Option<String>,
        /// Group chat id; `None` for a one-to-one message.
        group: Option<String>,
        text: String,
        msg_id: String,
    },
    Join {
        group: String,
        members: Vec<String>,
    },
    /// A customer added a staff member (`change_external_contact` / `add_external_contact`).
    ContactAdded {
        staff: String,
        external: String,
        state: Option<String>,
        welcome_code: Option<String>,
    },
}

/// A request ready to send: query string (already encoded), headers and body.
#[derive(Debug, Clone)]
pub struct BuiltRequest {
    pub query: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Why a request could not be built or a reply not opened.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Unsupported(String),
    #[error("reply: {0}")]
    Crypto(#[from] CryptoError),
    #[error("reply: {0}")]
    Parse(#[from] ParseError),
}

fn encode_query(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The decrypted inner message a platform would send for `what`.
pub fn inner_payload(
    channel: &Channel,
    what: &Simulated,
    timestamp: i64,
) -> Result<String, SendError> {
    match channel.kind {
        ChannelKind::WecomApp => app_payload(channel, what, timestamp),
        ChannelKind::WecomRobot => robot_payload(channel, what),
        ChannelKind::WecomAibot => aibot_payload(channel, what),
        ChannelKind::WechatMp => mp_payload(what, timestamp),
        ChannelKind::Gateway => gateway_payload(what, timestamp),
    }
}

/// A self-built app's message or customer event.
fn app_payload(channel: &Channel, what: &Simulated, timestamp: i64) -> Result<String, SendError> {
    match what {
        Simulated::Text { group: Some(_), .. } => Err(SendError::Unsupported(
            "wecom_app channels receive one-to-one messages only; use a wecom_robot or gateway channel for group messages".into(),
        )),
        Simulated::Text { from, text, msg_id, .. } => Ok(format!(
            "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{timestamp}</CreateTime><MsgType>{}</MsgType><Content>{}</Content><MsgId>{msg_id}</MsgId><AgentID>1000002</AgentID></xml>",
            cdata(&channel.receive_id), cdata(from), cdata("text"), cdata(text)
        )),
        Simulated::Join { group, members } => {
            let items: String = members.iter().map(|m| format!("<Item>{}</Item>", cdata(m))).collect();
            Ok(format!(
                "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{timestamp}</CreateTime><MsgType>{}</MsgType><Event>{}</Event><ChatId>{}</ChatId><ChangeType>{}</ChangeType><UpdateDetail>{}</UpdateDetail><JoinScene>0</JoinScene><MemChangeCnt>{}</MemChangeCnt><MemChangeList>{items}</MemChangeList></xml>",
                cdata(&channel.receive_id), cdata("sys"), cdata("event"), cdata("change_external_chat"), cdata(group),
                cdata("update"), cdata("add_member"), members.len()
            ))
        }
        Simulated::ContactAdded { staff, external, state, welcome_code } => {
            let opt = |tag: &str, v: &Option<String>| v.as_ref().map(|v| format!("<{tag}>{}</{tag}>", cdata(v))).unwrap_or_default();
            Ok(format!(
                "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{timestamp}</CreateTime><MsgType>{}</MsgType><Event>{}</Event><ChangeType>{}</ChangeType><UserID>{}</UserID><ExternalUserID>{}</ExternalUserID>{}{}</xml>",
                cdata(&channel.receive_id), cdata("sys"), cdata("event"), cdata("change_external_contact"),
                cdata("add_external_contact"), cdata(staff), cdata(external), opt("State", state), opt("WelcomeCode", welcome_code)
            ))
        }
    }
}

/// A group robot's callback (XML mode).
fn robot_payload(channel: &Channel, what: &Simulated) -> Result<String, SendError> {
    match what {
        Simulated::Text { from, name, group, text, msg_id } => {
            let mention = channel.robot_name.as_deref().map(|n| format!("@{n}\u{2005}")).unwrap_or_default();
            let (chat_type, chat_id) = match group {
                Some(g) => ("group", g.as_str()),
                None => ("single", from.as_str()),
            };
            let content = if group.is_some() { format!("{mention}{text}") } else { text.clone() };
            Ok(format!(
                "<xml><WebhookUrl>{}</WebhookUrl><MsgId>{}</MsgId><ChatId>{}</ChatId><ChatType>{chat_type}</ChatType><From><UserId>{}</UserId><Name>{}</Name><Alias>{}</Alias></From><MsgType>text</MsgType><Text><Content>{}</Content></Text></xml>",
                cdata("http://127.0.0.1/cgi-bin/webhook/send?key=demo"), cdata(msg_id), cdata(chat_id), cdata(from),
                cdata(name.as_deref().unwrap_or(from)), cdata(from), cdata(&content)
            ))
        }
        Simulated::Join { .. } => Err(SendError::Unsupported(
            "group robots are not told when members join; use a wecom_app (customer group) or gateway channel".into(),
        )),
        Simulated::ContactAdded { .. } => Err(SendError::Unsupported(
            "customer-contact events come from wecom_app channels".into(),
        )),
    }
}

/// An AI bot's JSON callback.
fn aibot_payload(channel: &Channel, what: &Simulated) -> Result<String, SendError> {
    match what {
        Simulated::Text {
            from,
            name,
            group,
            text,
            msg_id,
        } => {
            let mention = channel
                .robot_name
                .as_deref()
                .map(|n| format!("@{n} "))
                .unwrap_or_default();
            let mut message = serde_json::json!({
                "msgid": msg_id,
                "aibotid": "aibot-demo",
                "chattype": if group.is_some() { "group" } else { "single" },
                "from": { "userid": from, "name": name },
                "msgtype": "text",
                "text": { "content": if group.is_some() { format!("{mention}{text}") } else { text.clone() } },
                "response_url": "http://127.0.0.1/cgi-bin/aibot/response",
            });
            if let Some(g) = group {
                message["chatid"] = serde_json::Value::String(g.clone());
            }
            Ok(message.to_string())
        }
        _ => Err(SendError::Unsupported(
            "AI bots receive messages and enter_chat events only".into(),
        )),
    }
}

/// An Official Account's message.
fn mp_payload(what: &Simulated, timestamp: i64) -> Result<String, SendError> {
    match what {
        Simulated::Text {
            from,
            text,
            msg_id,
            group,
            ..
        } => {
            if group.is_some() {
                return Err(SendError::Unsupported(
                    "Official Accounts have no group chats".into(),
                ));
            }
            Ok(format!(
                "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{timestamp}</CreateTime><MsgType>{}</MsgType><Content>{}</Content><MsgId>{msg_id}</MsgId></xml>",
                cdata("gh_demo000001"), cdata(from), cdata("text"), cdata(text)
            ))
        }
        Simulated::Join { .. } => Err(SendError::Unsupported(
            "Official Accounts have no group chats".into(),
        )),
        Simulated::ContactAdded { .. } => Err(SendError::Unsupported(
            "customer-contact events come from wecom_app channels".into(),
        )),
    }
}

/// A gateway's JSON body.
fn gateway_payload(what: &Simulated, timestamp: i64) -> Result<String, SendError> {
    match what {
        Simulated::Text { from, name, group, text, msg_id } => Ok(serde_json::json!({
            "type": "message", "msg_id": msg_id, "sender": { "id": from, "name": name },
            "group": group.as_ref().map(|g| serde_json::json!({ "id": g })), "text": text,
            "mentions_bot": true, "time": timestamp,
        })
        .to_string()),
        Simulated::Join { group, members } => Ok(serde_json::json!({
            "type": "member_joined", "group": { "id": group },
            "members": members.iter().map(|m| serde_json::json!({ "id": m })).collect::<Vec<_>>(), "time": timestamp,
        })
        .to_string()),
        Simulated::ContactAdded { .. } => Err(SendError::Unsupported(
            "customer-contact events come from wecom_app channels".into(),
        )),
    }
}

/// Wraps an inner payload the way the platform does: encrypted envelope and signed query.
pub fn build_request(
    channel: &Channel,
    inner: &str,
    timestamp: i64,
    nonce: &str,
) -> Result<BuiltRequest, SendError> {
    let ts = timestamp.to_string();
    if channel.kind == ChannelKind::Gateway {
        let secret = channel.gateway_secret.as_deref().unwrap_or_default();
        let sig = gateway::sign(secret, &ts, inner.as_bytes());
        return Ok(BuiltRequest {
            query: String::new(),
            headers: vec![
                (gateway::TIMESTAMP_HEADER, ts),
                (gateway::SIGNATURE_HEADER, format!("sha256={sig}")),
            ],
            body: inner.as_bytes().to_vec(),
        });
    }
    let Some(crypt) = channel.crypt.as_ref() else {
        // WeChat MP plaintext mode: the three-value signature, plain XML body.
        let token = channel.token.as_deref().unwrap_or_default();
        let sig = crypto::signature(token, &ts, nonce, None);
        return Ok(BuiltRequest {
            query: encode_query(&[
                ("signature", &sig),
                ("timestamp", &ts),
                ("nonce", nonce),
                ("openid", "o"),
            ]),
            headers: vec![],
            body: inner.as_bytes().to_vec(),
        });
    };
    let (encrypt, msg_sig) = crypt.seal(inner.as_bytes(), &ts, nonce);
    let (body, query) = envelope(channel, crypt, &encrypt, &msg_sig, &ts, nonce);
    Ok(BuiltRequest {
        query,
        headers: vec![],
        body: body.into_bytes(),
    })
}

/// The envelope around a ciphertext and the signed query, in each kind's shape.
fn envelope(
    channel: &Channel,
    crypt: &crypto::MsgCrypt,
    encrypt: &str,
    msg_sig: &str,
    ts: &str,
    nonce: &str,
) -> (String, String) {
    let signed = || {
        encode_query(&[
            ("msg_signature", msg_sig),
            ("timestamp", ts),
            ("nonce", nonce),
        ])
    };
    match channel.kind {
        ChannelKind::WecomApp => (
            format!(
                "<xml><ToUserName>{}</ToUserName><Encrypt>{}</Encrypt><AgentID>{}</AgentID></xml>",
                cdata(&channel.receive_id),
                cdata(encrypt),
                cdata("1000002")
            ),
            signed(),
        ),
        ChannelKind::WecomAibot => (
            serde_json::json!({ "encrypt": encrypt }).to_string(),
            signed(),
        ),
        ChannelKind::WecomRobot => (
            format!("<xml><Encrypt>{}</Encrypt></xml>", cdata(encrypt)),
            signed(),
        ),
        _ => {
            let plain_sig = crypto::signature(crypt.token(), ts, nonce, None);
            (
                format!(
                    "<xml><ToUserName>{}</ToUserName><Encrypt>{}</Encrypt></xml>",
                    cdata("gh_demo000001"),
                    cdata(encrypt)
                ),
                encode_query(&[
                    ("signature", &plain_sig),
                    ("timestamp", ts),
                    ("nonce", nonce),
                    ("openid", "o"),
                    ("encrypt_type", "aes"),
                    ("msg_signature", msg_sig),
                ]),
            )
        }
    }
}

/// The query of a URL-verification GET with a fresh echo string; returns (query, expected echo).
pub fn build_verification(
    channel: &Channel,
    timestamp: i64,
    nonce: &str,
) -> Result<(String, String), SendError> {
    let ts = timestamp.to_string();
    let echo = format!("{}", rand::random::<u64>());
    match (channel.kind, channel.crypt.as_ref()) {
        (ChannelKind::Gateway, _) => Err(SendError::Unsupported(
            "gateway channels have no URL verification".into(),
        )),
        (ChannelKind::WechatMp, _) => {
            let token = channel.token.as_deref().unwrap_or_default();
            let sig = crypto::signature(token, &ts, nonce, None);
            Ok((
                encode_query(&[
                    ("signature", &sig),
                    ("timestamp", &ts),
                    ("nonce", nonce),
                    ("echostr", &echo),
                ]),
                echo,
            ))
        }
        (_, Some(crypt)) => {
            let (encrypted_echo, sig) = crypt.seal(echo.as_bytes(), &ts, nonce);
            Ok((
                encode_query(&[
                    ("msg_signature", &sig),
                    ("timestamp", &ts),
                    ("nonce", nonce),
                    ("echostr", &encrypted_echo),
                ]),
                echo,
            ))
        }
        (_, None) => Err(SendError::Unsupported("channel has no keys".into())),
    }
}

/// Verifies and decrypts a passive reply; returns its text (`None` for an empty answer).
pub fn open_reply(channel: &Channel, body: &[u8]) -> Result<Option<String>, SendError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if channel.kind == ChannelKind::Gateway {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
        return Ok(value
            .pointer("/reply/text")
            .and_then(|v| v.as_str())
            .map(str::to_owned));
    }
    let envelope = xml::parse_any(body)?;
    let inner = match (
        channel.crypt.as_ref(),
        envelope.get_any(&["Encrypt", "encrypt"]),
    ) {
        (Some(crypt), Some(encrypt)) => {
            let ts = envelope
                .get_any(&["TimeStamp", "timestamp"])
                .ok_or(ParseError::Missing("TimeStamp"))?;
            let nonce = envelope
                .get_any(&["Nonce", "nonce"])
                .ok_or(ParseError::Missing("Nonce"))?;
            let sig = envelope
                .get_any(&["MsgSignature", "msgsignature"])
                .ok_or(ParseError::Missing("MsgSignature"))?;
            crypt.open(sig, ts, nonce, encrypt)?
        }
        _ => body.to_vec(),
    };
    let fields = xml::parse_any(&inner)?;
    Ok(fields
        .get_any(&["Content", "Text.Content", "text.content", "stream.content"])
        .map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::Channels;
    use crate::config::Config;

    #[test]
    fn verification_query_encodes_plus_and_slash_once() {
        let config = Config::example().expect("example config");
        let channels = Channels::from_config(&config).expect("channels");
        let app = channels.get("demo_app").expect("demo_app");
        for i in 0..20 {
            let (query, _) = build_verification(app, 1_700_000_000 + i, "n").expect("query");
            assert!(!query.contains('+'), "{query}");
        }
    }
}
