//! The kinds of channel, and what member activity each lets Yunying see.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    WecomApp,
    WecomRobot,
    /// 智能机器人 (AI bot), API mode.
    WecomAibot,
    WechatMp,
    Gateway,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WecomApp => "wecom_app",
            Self::WecomRobot => "wecom_robot",
            Self::WecomAibot => "wecom_aibot",
            Self::WechatMp => "wechat_mp",
            Self::Gateway => "gateway",
        }
    }

    /// Which member activity reaches Yunying through a channel of this kind, and what that
    /// means for lifecycle stages and recall (shown by `check-config`).
    pub fn sees(self) -> &'static str {
        match self {
            Self::WecomApp => "1:1 messages to the app, customer add/remove and customer-group join/leave events (no group chat content: that needs the chat archive or a gateway); with a secret, `yunying sync` imports every customer and customer group. 应用：单聊消息、加好友与进退群事件；群聊内容看不到。",
            Self::WecomRobot => "only messages that @ the robot in its group; members who never @ it look silent to the stages and recall. 群机器人：只收到 @ 它的消息。",
            Self::WecomAibot => "only messages that @ the bot (or 1:1 chats with it) and enter-chat events. 智能机器人：只收到 @ 它的消息和单聊。",
            Self::WechatMp => "messages and follow events of the Official Account's followers. 公众号：粉丝消息与关注事件。",
            Self::Gateway => "every message and join/leave in the gateway's groups: stages and recall see all activity. 群网关：群内全部消息与进退群。",
        }
    }
}
