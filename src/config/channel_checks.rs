//! Checks of each channel: exactly the keys its kind uses, keys that decode, and what the kind
//! asks beyond them (modes, secrets, URLs).

use super::{ChannelConfig, ChannelKind};
use crate::wecom::crypto::AesKey;

/// An Official Account's mode and its key must agree: plaintext is never the silent default.
fn validate_mp_mode(prefix: &str, channel: &ChannelConfig, issues: &mut Vec<(String, String)>) {
    let has_key = channel.encoding_aes_key.is_some();
    let reason = match (channel.mode.as_deref(), has_key) {
        (None | Some("safe" | "compatible"), true) | (Some("plaintext"), false) => return,
        (None, false) => (
            "mode",
            "without encoding_aes_key the channel would take unsigned plaintext bodies: set \
             encoding_aes_key (安全模式) or say mode = \"plaintext\" explicitly"
                .to_owned(),
        ),
        (Some(mode @ ("safe" | "compatible")), false) => {
            ("encoding_aes_key", format!("required in {mode} mode"))
        }
        (Some("plaintext"), true) => (
            "mode",
            "plaintext mode takes no encoding_aes_key; mode = \"compatible\" accepts both"
                .to_owned(),
        ),
        (Some(other), _) => (
            "mode",
            format!("`{other}` is not `safe`, `compatible` or `plaintext`"),
        ),
    };
    issues.push((format!("{prefix}.{}", reason.0), reason.1));
}

/// Keys each kind needs and may have.
fn keys_for(kind: ChannelKind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        ChannelKind::WecomApp => (
            &["token", "encoding_aes_key", "corp_id"],
            &["agent_id", "secret", "scope"],
        ),
        ChannelKind::WecomRobot => (
            &["token", "encoding_aes_key"],
            &["webhook_key", "robot_name", "scope", "groups"],
        ),
        // Which keys are required depends on the mode (checked in `validate_channel`).
        ChannelKind::WecomAibot => (
            &[],
            &[
                "token",
                "encoding_aes_key",
                "bot_id",
                "secret",
                "mode",
                "ws_url",
                "robot_name",
                "scope",
            ],
        ),
        ChannelKind::WechatMp => (
            &["token", "app_id"],
            &["encoding_aes_key", "secret", "scope", "mode"],
        ),
        ChannelKind::Gateway => (&["secret"], &["send_url", "scope"]),
    }
}

fn present(channel: &ChannelConfig) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let pairs: [(&'static str, bool); 14] = [
        ("ws_url", channel.ws_url.is_some()),
        ("bot_id", channel.bot_id.is_some()),
        ("mode", channel.mode.is_some()),
        ("groups", !channel.groups.is_empty()),
        ("scope", channel.scope.is_some()),
        ("token", channel.token.is_some()),
        ("encoding_aes_key", channel.encoding_aes_key.is_some()),
        ("corp_id", channel.corp_id.is_some()),
        ("agent_id", channel.agent_id.is_some()),
        ("secret", channel.secret.is_some()),
        ("app_id", channel.app_id.is_some()),
        ("webhook_key", channel.webhook_key.is_some()),
        ("robot_name", channel.robot_name.is_some()),
        ("send_url", channel.send_url.is_some()),
    ];
    for (name, is_set) in pairs {
        if is_set {
            keys.push(name);
        }
    }
    keys
}

pub(super) fn validate_channel(id: &str, channel: &ChannelConfig) -> Vec<(String, String)> {
    let mut issues = Vec::new();
    let prefix = format!("channels.{id}");
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        issues.push((prefix.clone(), "channel ids use only a-z, 0-9, `_` and `-` (1–64 characters); they appear in the callback URL".into()));
    }
    let (required, optional) = keys_for(channel.kind);
    let set = present(channel);
    for key in required {
        if !set.contains(key) {
            issues.push((
                format!("{prefix}.{key}"),
                format!("required for kind {}", channel.kind.as_str()),
            ));
        }
    }
    for key in &set {
        if !required.contains(key) && !optional.contains(key) {
            issues.push((
                format!("{prefix}.{key}"),
                format!("not used by kind {}", channel.kind.as_str()),
            ));
        }
    }
    if let Some(key) = &channel.encoding_aes_key {
        if let Err(e) = AesKey::from_encoding_aes_key(key.expose()) {
            issues.push((
                format!("{prefix}.encoding_aes_key"),
                format!("invalid EncodingAESKey: {e}"),
            ));
        }
    }
    if let Some(token) = &channel.token {
        if token.expose().is_empty() {
            issues.push((format!("{prefix}.token"), "must not be empty".into()));
        }
    }
    issues.extend(validate_kind(&prefix, channel, &set));
    if let Some(corp_id) = &channel.corp_id {
        if corp_id.trim().is_empty() {
            issues.push((format!("{prefix}.corp_id"), "must not be empty".into()));
        }
    }
    issues
}

/// What one kind asks beyond its keys: a gateway's secret length, an AI bot's mode and URL, an
/// Official Account's mode.
fn validate_kind(prefix: &str, channel: &ChannelConfig, set: &[&str]) -> Vec<(String, String)> {
    let mut issues = Vec::new();
    if channel.kind == ChannelKind::Gateway {
        if let Some(secret) = &channel.secret {
            if secret.expose().len() < 16 {
                issues.push((
                    format!("{prefix}.secret"),
                    "must be at least 16 characters".into(),
                ));
            }
        }
    }
    if channel.kind == ChannelKind::WecomAibot {
        let needs: &[&str] = match channel.mode.as_deref() {
            None | Some("callback") => &["token", "encoding_aes_key"],
            Some("websocket") => &["bot_id", "secret"],
            Some(other) => {
                issues.push((
                    format!("{prefix}.mode"),
                    format!("`{other}` is not `callback` or `websocket`"),
                ));
                &[]
            }
        };
        for key in needs {
            if !set.contains(key) {
                issues.push((
                    format!("{prefix}.{key}"),
                    format!(
                        "required for a wecom_aibot in {} mode",
                        channel.mode.as_deref().unwrap_or("callback")
                    ),
                ));
            }
        }
        if let Some(url) = &channel.ws_url {
            if url::Url::parse(url).map_or(true, |u| !matches!(u.scheme(), "ws" | "wss")) {
                issues.push((
                    format!("{prefix}.ws_url"),
                    "must be a ws:// or wss:// URL".into(),
                ));
            }
        }
    }
    if channel.kind == ChannelKind::WechatMp {
        validate_mp_mode(prefix, channel, &mut issues);
    }
    issues
}
