//! The one internal event type every channel's deliveries are normalized into before any
//! business logic runs, so sign-in, FAQ, commands and tagging work the same on every channel.

use serde::{Deserialize, Serialize};

/// A platform user as seen in one delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    /// Platform user id: internal `UserID`, `external_userid`, MP OpenID or gateway id.
    pub id: String,
    /// Display name when the platform sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl UserRef {
    pub fn new(id: impl Into<String>, name: Option<String>) -> Self {
        Self {
            id: id.into(),
            name,
        }
    }
}

/// A group chat as seen in one delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A chat message from a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub sender: UserRef,
    /// `None` for a one-to-one chat with the bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupRef>,
    /// `text`, `image`, `voice`, `mixed`, …
    pub msg_type: String,
    /// The text with any leading @-mention of the bot stripped; empty for non-text messages.
    pub text: String,
    /// Whether the bot was @-mentioned (robot callbacks in groups always are).
    pub mentions_bot: bool,
    /// Platform message id (the dedupe key together with the sender).
    pub platform_msg_id: String,
}

/// What happened, normalized across channels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Message(Message),
    MemberJoined {
        group: GroupRef,
        members: Vec<UserRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inviter: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        join_scene: Option<String>,
    },
    MemberLeft {
        group: GroupRef,
        members: Vec<UserRef>,
        /// `true` when removed by the owner or an admin.
        removed: bool,
    },
    ContactAdded {
        /// The staff member whose contact list changed.
        staff: String,
        contact: UserRef,
        /// `State` of the contact-way QR code or link that brought the contact.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        welcome_code: Option<String>,
    },
    ContactRemoved {
        staff: String,
        contact: UserRef,
        /// `true` when the customer deleted the staff member (`del_follow_user`).
        by_contact: bool,
    },
    /// Anything else, kept with its platform event name and the decrypted payload.
    Other {
        event: String,
        raw: String,
    },
}

impl EventKind {
    /// Short stable name for logs, metrics and the inbox `kind` column.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Message(_) => "message",
            Self::MemberJoined { .. } => "member_joined",
            Self::MemberLeft { .. } => "member_left",
            Self::ContactAdded { .. } => "contact_added",
            Self::ContactRemoved { .. } => "contact_removed",
            Self::Other { .. } => "other",
        }
    }
}

/// One accepted delivery, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub channel_id: String,
    /// Member scope of the channel (e.g. the corp id), so channels of one corp share members.
    pub scope: String,
    /// Unique per channel; a retried delivery has the same key.
    pub dedupe_key: String,
    /// Platform time (`CreateTime`) in epoch seconds.
    pub occurred_at: i64,
    pub kind: EventKind,
    /// Where a late answer may still be posted (the AI bot's one-shot `response_url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_url: Option<String>,
    /// The body came without a signature over it (an Official Account's plaintext mode): such an
    /// event never acts with a staff role.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsigned_body: bool,
}

impl Event {
    pub fn message(&self) -> Option<&Message> {
        match &self.kind {
            EventKind::Message(m) => Some(m),
            _ => None,
        }
    }

    /// The member that acted, if any (for activity tracking and logs).
    pub fn actor(&self) -> Option<&UserRef> {
        match &self.kind {
            EventKind::Message(m) => Some(&m.sender),
            EventKind::ContactAdded { contact, .. } | EventKind::ContactRemoved { contact, .. } => {
                Some(contact)
            }
            _ => None,
        }
    }

    pub fn group(&self) -> Option<&GroupRef> {
        match &self.kind {
            EventKind::Message(m) => m.group.as_ref(),
            EventKind::MemberJoined { group, .. } | EventKind::MemberLeft { group, .. } => {
                Some(group)
            }
            _ => None,
        }
    }
}
