//! Typed request and response bodies of the WeCom and WeChat MP APIs Yunying calls. Field names
//! are the platform's (wecom-protocol.md §4); optional fields are skipped when empty.

use serde::{Deserialize, Serialize};

/// Every response carries `errcode` (0 = ok) and `errmsg`; HTTP status is 200 even on errors.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Status {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub expires_in: i64,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Text {
    pub content: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct TextCard {
    pub title: String,
    pub description: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub btntxt: Option<String>,
}

/// The message part of `message/send`, `appchat/send` and the MP customer-service message.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(tag = "msgtype", rename_all = "snake_case")]
pub enum AppMessage {
    Text { text: Text },
    Markdown { markdown: Text },
    Textcard { textcard: TextCard },
}

/// `POST /cgi-bin/message/send` (Doc 90236).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct MessageSend {
    /// UserIDs joined by `|` (≤ 1000), or `@all`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub touser: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub toparty: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub totag: String,
    pub agentid: i64,
    #[serde(flatten)]
    pub message: AppMessage,
    #[serde(default)]
    pub safe: u8,
    /// 1: WeCom drops a copy with the same content to the same recipients within the interval.
    #[serde(default)]
    pub enable_duplicate_check: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_check_interval: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct MessageSendResponse {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    #[serde(default)]
    pub invaliduser: String,
    #[serde(default)]
    pub invalidparty: String,
    #[serde(default)]
    pub invalidtag: String,
    #[serde(default)]
    pub unlicenseduser: String,
    #[serde(default)]
    pub msgid: String,
}

/// `POST /cgi-bin/appchat/send` (Doc 90248).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct AppchatSend {
    pub chatid: String,
    #[serde(flatten)]
    pub message: AppMessage,
    #[serde(default)]
    pub safe: u8,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct RobotText {
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentioned_list: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentioned_mobile_list: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Article {
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub picurl: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct News {
    pub articles: Vec<Article>,
}

/// `POST /cgi-bin/webhook/send?key=` — the group robot (Doc 91770).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(tag = "msgtype", rename_all = "snake_case")]
pub enum RobotMessage {
    Text { text: RobotText },
    Markdown { markdown: Text },
    News { news: News },
}

/// `GET /cgi-bin/externalcontact/get` (Doc 92114).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ExternalContactResponse {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    #[serde(default)]
    pub external_contact: ExternalContact,
    #[serde(default)]
    pub follow_user: Vec<FollowUser>,
    #[serde(default)]
    pub next_cursor: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ExternalContact {
    #[serde(default)]
    pub external_userid: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub avatar: String,
    /// 1 WeChat user, 2 WeCom user.
    #[serde(default, rename = "type")]
    pub kind: i64,
    #[serde(default)]
    pub gender: i64,
    #[serde(default)]
    pub unionid: String,
    #[serde(default)]
    pub corp_name: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FollowUser {
    #[serde(default)]
    pub userid: String,
    #[serde(default)]
    pub remark: String,
    #[serde(default)]
    pub createtime: i64,
    #[serde(default)]
    pub tags: Vec<FollowTag>,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub add_way: i64,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FollowTag {
    #[serde(default)]
    pub group_name: String,
    #[serde(default)]
    pub tag_name: String,
    #[serde(default, rename = "type")]
    pub kind: i64,
    #[serde(default)]
    pub tag_id: String,
}

/// `GET /cgi-bin/externalcontact/list?userid=` (Doc 92113).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ExternalContactList {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    #[serde(default)]
    pub external_userid: Vec<String>,
}

/// `POST /cgi-bin/externalcontact/batch/get_by_user` (Doc 92994).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct BatchGetByUser {
    pub userid_list: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cursor: String,
    #[serde(default)]
    pub limit: u32,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct BatchGetByUserResponse {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    #[serde(default)]
    pub external_contact_list: Vec<ExternalContactWithFollow>,
    #[serde(default)]
    pub next_cursor: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ExternalContactWithFollow {
    #[serde(default)]
    pub external_contact: ExternalContact,
    #[serde(default)]
    pub follow_info: FollowInfo,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FollowInfo {
    #[serde(default)]
    pub userid: String,
    #[serde(default)]
    pub remark: String,
    #[serde(default)]
    pub createtime: i64,
    #[serde(default)]
    pub tag_id: Vec<String>,
    #[serde(default)]
    pub state: String,
}

/// `POST /cgi-bin/externalcontact/get_corp_tag_list` (Doc 92117).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct CorpTagListRequest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_id: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_id: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct CorpTagListResponse {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    #[serde(default)]
    pub tag_group: Vec<CorpTagGroup>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct CorpTagGroup {
    #[serde(default, deserialize_with = "null_default")]
    pub group_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub group_name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub create_time: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub order: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub deleted: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub tag: Vec<CorpTag>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct CorpTag {
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub create_time: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub order: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub deleted: bool,
}

/// `POST /cgi-bin/externalcontact/add_corp_tag`: a group by id or by name (≤ 30 chars).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AddCorpTag {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group_name: String,
    pub tag: Vec<NewCorpTag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agentid: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct NewCorpTag {
    pub name: String,
    #[serde(default)]
    pub order: i64,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AddCorpTagResponse {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    #[serde(default)]
    pub tag_group: CorpTagGroup,
}

/// `POST /cgi-bin/externalcontact/mark_tag` (Doc 92118): no callback fires for API changes.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct MarkTag {
    pub userid: String,
    pub external_userid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_tag: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_tag: Vec<String>,
}

/// `POST /cgi-bin/externalcontact/groupchat/list` (Doc 92120).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GroupChatListRequest {
    #[serde(default)]
    pub status_filter: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_filter: Option<OwnerFilter>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cursor: String,
    pub limit: u32,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct OwnerFilter {
    pub userid_list: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GroupChatListResponse {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    #[serde(default)]
    pub group_chat_list: Vec<GroupChatStatus>,
    #[serde(default)]
    pub next_cursor: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GroupChatStatus {
    pub chat_id: String,
    #[serde(default)]
    pub status: i64,
}

/// `POST /cgi-bin/externalcontact/groupchat/get` (Doc 92122).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GroupChatGetRequest {
    pub chat_id: String,
    #[serde(default)]
    pub need_name: u8,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GroupChatGetResponse {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    #[serde(default)]
    pub group_chat: GroupChat,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GroupChat {
    #[serde(default)]
    pub chat_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub create_time: i64,
    #[serde(default)]
    pub notice: String,
    #[serde(default)]
    pub member_list: Vec<GroupChatMember>,
    #[serde(default)]
    pub member_version: String,
}

/// Who invited a group member.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Invitor {
    #[serde(default, deserialize_with = "null_default")]
    pub userid: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GroupChatMember {
    #[serde(default, deserialize_with = "null_default")]
    pub userid: String,
    /// 1 member of the corp, 2 external contact.
    #[serde(default, rename = "type")]
    pub kind: i64,
    #[serde(default)]
    pub join_time: i64,
    #[serde(default)]
    pub join_scene: i64,
    #[serde(default)]
    pub invitor: Option<Invitor>,
    #[serde(default, deserialize_with = "null_default")]
    pub group_nickname: String,
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
}

/// `GET /cgi-bin/externalcontact/get_follow_user_list` (Doc 92571).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FollowUserList {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    #[serde(default, deserialize_with = "null_default")]
    pub follow_user: Vec<String>,
}

/// `GET /cgi-bin/user/get` (Doc 90196): the fields a reply needs.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct CorpUser {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    #[serde(default, deserialize_with = "null_default")]
    pub userid: String,
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
}

/// `POST /cgi-bin/externalcontact/add_msg_template` (Doc 92135): creates a task that the
/// sender confirms in the WeCom client; nothing is delivered by the call itself.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct AddMsgTemplate {
    /// `single` (customers) or `group` (customer groups).
    pub chat_type: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_userid: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chat_id_list: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sender: String,
    pub text: Text,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AddMsgTemplateResponse {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    #[serde(default)]
    pub fail_list: Vec<String>,
    #[serde(default)]
    pub msgid: String,
}

/// `POST /cgi-bin/externalcontact/get_groupmsg_send_result` (Doc 96355).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GroupMsgSendResultRequest {
    pub msgid: String,
    pub userid: String,
    #[serde(default)]
    pub limit: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cursor: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GroupMsgSendResultResponse {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    #[serde(default)]
    pub send_list: Vec<GroupMsgSendResult>,
    #[serde(default)]
    pub next_cursor: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GroupMsgSendResult {
    #[serde(default)]
    pub external_userid: String,
    #[serde(default)]
    pub chat_id: String,
    #[serde(default)]
    pub userid: String,
    /// 0 not sent yet, 1 sent, 2 failed (not a contact), 3 failed (already received one / quota).
    #[serde(default)]
    pub status: i64,
    #[serde(default)]
    pub send_time: i64,
}

/// `POST /cgi-bin/externalcontact/send_welcome_msg` (Doc 92137): within 20 s of the event, once.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct SendWelcomeMsg {
    pub welcome_code: String,
    pub text: Text,
}

/// WeChat MP `POST /cgi-bin/message/custom/send` (customer-service message).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct CustomSend {
    pub touser: String,
    #[serde(flatten)]
    pub message: AppMessage,
}

/// An optional field the platform may send as `null`: read as its default.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
