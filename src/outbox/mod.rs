//! The durable outbox (发送队列): every outbound message is a row with a unique idempotency key,
//! written in the transaction of the change that caused it, then claimed, rate-limited, sent and
//! marked by [`worker`](crate::outbox::worker)s — exactly once across retries, crashes and
//! replicas (app messages use WeCom's duplicate check for the one gap a crash leaves: sent but not
//! yet marked).

mod calls;
pub mod directory;
pub mod limits;
pub mod links;
mod row;
pub mod tokens;
pub mod worker;

use crate::config::Config;
use crate::store::outbox::{self as rows, NewOutbox};
use crate::store::{StoreError, Tx};
use crate::wecom::api::types::{AppMessage, Text};

pub use worker::{Outbox, OutboxHandle};

/// Priorities: welcomes must leave within seconds; scheduled pushes can wait.
pub const PRIORITY_URGENT: i64 = 10;
pub const PRIORITY_NORMAL: i64 = 0;

/// What a message says, before any platform's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Text(String),
    Markdown(String),
}

impl Content {
    /// The app and Official Account message body (`msgtype` text or markdown).
    fn app_message(&self) -> AppMessage {
        match self {
            Self::Text(t) => AppMessage::Text {
                text: Text { content: t.clone() },
            },
            Self::Markdown(m) => AppMessage::Markdown {
                markdown: Text { content: m.clone() },
            },
        }
    }
}

/// What to send, before it becomes a row. Domain values only: the platform's wire types are
/// made from them in [`to_row`], the one place that knows both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// An app message to internal members (user ids).
    App { to: Vec<String>, message: Content },
    /// A message into a group chat the app created.
    Appchat { chat_id: String, message: Content },
    /// A post through a group robot into its group; `mentions` are @-ed (text only).
    Robot {
        message: Content,
        mentions: Vec<String>,
    },
    /// `send_welcome_msg` with the code of an add-contact event.
    Welcome { welcome_code: String, text: String },
    /// WeChat MP customer-service message to a follower.
    Mp { openid: String, message: Content },
    /// WeCom corp tag ids added to / removed from a customer (`customer`) of a staff member.
    MarkTag {
        staff: String,
        customer: String,
        add: Vec<String>,
        remove: Vec<String>,
    },
    /// A late answer posted to the AI bot's one-shot `response_url` (markdown).
    ReplyUrl { url: String, markdown: String },
    /// `aibot_send_msg` over an AI bot's long connection, to a chat that talked to the bot.
    AibotPush { chat_id: String, markdown: String },
    /// A message through a gateway's `send_url` (signed like its callbacks): into a group, @-ing
    /// `mentions`, or to one member when `group` is `None`.
    Gateway {
        group: Option<String>,
        to: Option<String>,
        text: String,
        mentions: Vec<String>,
    },
    /// A customer mass send (`add_msg_template`, `single`) to customers of `sender`.
    Mass {
        sender: String,
        recipients: Vec<String>,
        text: String,
    },
}

impl Outbound {
    /// Plain text content.
    pub fn text(content: impl Into<String>) -> Content {
        Content::Text(content.into())
    }
}

/// A message with its idempotency key and channel.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Unique per intended delivery, e.g. `campaign:7:run:3:user:u1` or `welcome:<event key>`.
    pub idem_key: String,
    pub channel_id: String,
    pub message: Outbound,
    pub priority: i64,
    pub not_before_ms: i64,
    pub expires_at_ms: Option<i64>,
}

/// Why a message cannot be queued on a channel.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("unknown or disabled channel `{0}`")]
    UnknownChannel(String),
    #[error("channel `{channel}` ({kind}) cannot send {what}")]
    WrongKind {
        channel: String,
        kind: &'static str,
        what: &'static str,
    },
    #[error("channel `{channel}` needs `{key}` to send")]
    MissingKey { channel: String, key: &'static str },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Turns an envelope into its row: the API body as JSON, checked against the channel.
pub fn to_row(config: &Config, env: &Envelope) -> Result<NewOutbox, EnqueueError> {
    let channel = config
        .channels
        .get(&env.channel_id)
        .filter(|c| c.enabled)
        .ok_or_else(|| EnqueueError::UnknownChannel(env.channel_id.clone()))?;
    let b = row::RowBuilder {
        config,
        channel,
        env,
    };
    let (kind, recipient, payload, sender) = match &env.message {
        Outbound::App { to, message } => b.app(to, message),
        Outbound::Appchat { chat_id, message } => b.appchat(chat_id, message),
        Outbound::Robot { message, mentions } => b.robot(message, mentions),
        Outbound::Welcome { welcome_code, text } => b.welcome(welcome_code, text),
        Outbound::MarkTag {
            staff,
            customer,
            add,
            remove,
        } => b.mark_tag(staff, customer, add, remove),
        Outbound::ReplyUrl { url, markdown } => b.reply_url(url, markdown),
        Outbound::AibotPush { chat_id, markdown } => b.aibot_push(chat_id, markdown),
        Outbound::Gateway {
            group,
            to,
            text,
            mentions,
        } => b.gateway(group.as_deref(), to.as_deref(), text, mentions),
        Outbound::Mp { openid, message } => b.mp(openid, message),
        Outbound::Mass {
            sender,
            recipients,
            text,
        } => b.mass(sender, recipients, text),
    }?;
    Ok(NewOutbox {
        idem_key: env.idem_key.clone(),
        channel_id: env.channel_id.clone(),
        kind: kind.to_owned(),
        recipient,
        payload,
        priority: env.priority,
        not_before_ms: env.not_before_ms,
        expires_at_ms: env.expires_at_ms,
        task_sender: sender,
    })
}

/// Records a message whose template failed for its recipient as a dead letter with the reason
/// (kind `unrendered`: a replay fails again until the template is fixed and the run repeated).
pub async fn enqueue_unrendered(
    tx: &mut Tx,
    channel_id: &str,
    idem_key: &str,
    recipient: &str,
    reason: &str,
    now_ms: i64,
) -> Result<bool, EnqueueError> {
    let row = NewOutbox {
        idem_key: idem_key.to_owned(),
        channel_id: channel_id.to_owned(),
        kind: "unrendered".into(),
        recipient: recipient.to_owned(),
        payload: "{}".into(),
        priority: PRIORITY_NORMAL,
        not_before_ms: now_ms,
        expires_at_ms: None,
        task_sender: None,
    };
    Ok(rows::enqueue_dead(tx, &row, &format!("template: {reason}"), now_ms).await?)
}

/// Whether a callback's `response_url` points at one of the allowed hosts (over http or https),
/// so a forged or tampered callback cannot make the server post to an address of its choice.
pub fn response_url_allowed(url: &str, hosts: &[String]) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    matches!(parsed.scheme(), "https" | "http")
        && parsed.username().is_empty()
        && parsed
            .host_str()
            .is_some_and(|h| hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(h)))
}

/// Writes the message into the caller's transaction; `false` when its key was queued before.
pub async fn enqueue(
    tx: &mut Tx,
    config: &Config,
    env: &Envelope,
    now_ms: i64,
) -> Result<bool, EnqueueError> {
    let row = to_row(config, env)?;
    Ok(rows::enqueue(tx, &row, now_ms).await?)
}
