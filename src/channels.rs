//! The channel registry built from configuration: channel id → kind, member scope and keys.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{ChannelConfig, ChannelKind, Config, MpMode};
use crate::wecom::crypto::{KeyError, MsgCrypt};

/// One configured, enabled channel with its decoded keys.
#[derive(Debug)]
pub struct Channel {
    pub id: String,
    pub kind: ChannelKind,
    /// Members of channels sharing a scope are the same people.
    pub scope: String,
    /// Callback crypto (absent for the gateway and for MP plaintext mode).
    pub crypt: Option<MsgCrypt>,
    /// Callback token for MP plaintext-mode signatures.
    pub token: Option<String>,
    /// HMAC secret of a gateway channel.
    pub gateway_secret: Option<Vec<u8>>,
    /// `@name` stripped from robot message texts.
    pub robot_name: Option<String>,
    /// CorpID of a `wecom_app`; AppID of a `wechat_mp`.
    pub receive_id: String,
    /// How a `wechat_mp` channel takes deliveries.
    pub mp_mode: Option<MpMode>,
}

/// The receive id inside a channel's callbacks: CorpID for apps, AppID for Official Accounts.
pub fn receive_id_of(c: &ChannelConfig) -> String {
    match c.kind {
        ChannelKind::WecomApp => c.corp_id.clone().unwrap_or_default(),
        ChannelKind::WechatMp => c.app_id.clone().unwrap_or_default(),
        // The AI bot's callbacks carry an empty receive id (Doc 101033).
        ChannelKind::WecomRobot | ChannelKind::WecomAibot | ChannelKind::Gateway => String::new(),
    }
}

/// The member scope of channel `id`: configured, else the corp id / app id, else the channel id.
pub fn scope_of(id: &str, c: &ChannelConfig) -> String {
    c.scope.clone().unwrap_or_else(|| match c.kind {
        ChannelKind::WecomApp | ChannelKind::WechatMp => receive_id_of(c),
        ChannelKind::WecomRobot | ChannelKind::WecomAibot | ChannelKind::Gateway => id.to_owned(),
    })
}

/// All enabled channels by id.
#[derive(Debug, Default)]
pub struct Channels {
    by_id: HashMap<String, Arc<Channel>>,
}

impl Channels {
    /// Builds the registry; keys were validated at load, so errors here are only defensive.
    pub fn from_config(config: &Config) -> Result<Self, KeyError> {
        let mut by_id = HashMap::new();
        for (id, c) in config.channels.iter().filter(|(_, c)| c.enabled) {
            let token = c.token.as_ref().map(|t| t.expose().to_owned());
            let receive_id = receive_id_of(c);
            let crypt = match (&token, &c.encoding_aes_key) {
                (Some(token), Some(key)) => Some(MsgCrypt::new(token, key.expose(), &receive_id)?),
                _ => None,
            };
            let scope = scope_of(id, c);
            let channel = Channel {
                id: id.clone(),
                kind: c.kind,
                scope,
                crypt,
                token,
                gateway_secret: (c.kind == ChannelKind::Gateway)
                    .then(|| c.secret.as_ref().map(|s| s.expose().as_bytes().to_vec()))
                    .flatten(),
                robot_name: c.robot_name.clone(),
                receive_id,
                mp_mode: (c.kind == ChannelKind::WechatMp).then(|| c.mp_mode()),
            };
            by_id.insert(id.clone(), Arc::new(channel));
        }
        Ok(Self { by_id })
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Channel>> {
        self.by_id.get(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
