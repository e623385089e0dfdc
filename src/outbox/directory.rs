//! Reads of the corp's directory for the member registry, with the channel's token: the staff
//! members who have customers, their customers page by page, customer groups page by page and
//! one by one, and a corp member's name. Answers are plain facts (no wire types), and a failure
//! says whether waiting helps.

use super::worker::{Failure, Outbox};
use crate::wecom::api::types::{
    AddCorpTag, BatchGetByUser, CorpTagListRequest, GroupChatGetRequest, GroupChatListRequest,
    NewCorpTag,
};
use crate::wecom::api::ErrorClass;

/// Customers per `batch/get_by_user` page, and staff members per call (both the platform's
/// maxima, Doc 92994).
pub const CUSTOMER_PAGE: u32 = 100;
pub const STAFF_PER_CALL: usize = 100;
/// Group ids per `groupchat/list` page (the platform's maximum, Doc 92120).
pub const GROUP_PAGE: u32 = 1000;

/// Why a directory read failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DirectoryError {
    /// A frequency limit: wait for the window to pass.
    #[error("rate limited: {0}")]
    RateLimited(String),
    /// Busy, a network error, a token not available yet: try again with backoff.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (permission, configuration, an unknown id).
    #[error("{0}")]
    Permanent(String),
}

impl From<Failure> for DirectoryError {
    fn from(f: Failure) -> Self {
        let text = f.to_string();
        match &f {
            Failure::Api(e) => match e.class() {
                ErrorClass::RateLimited => Self::RateLimited(text),
                ErrorClass::Transient | ErrorClass::TokenInvalid => Self::Transient(text),
                ErrorClass::Permanent => Self::Permanent(text),
            },
            Failure::Token(_) | Failure::Store(_) => Self::Transient(text),
        }
    }
}

/// One customer as one staff member has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerFact {
    pub external_userid: String,
    pub name: String,
    /// 1 a WeChat user, 2 a WeCom user of another corp.
    pub kind: i64,
    pub staff: String,
    pub remark: String,
    pub added_at_ms: i64,
    /// The contact way (活码) they came through, empty if none.
    pub state: String,
    /// WeCom corp tag ids on this relation.
    pub tag_ids: Vec<String>,
}

/// A group's id and status (0 normal, 1 owner left, 2 inheriting, 3 inherited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListed {
    pub chat_id: String,
    pub status: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFact {
    pub chat_id: String,
    pub name: String,
    pub owner: String,
    pub notice: String,
    pub created_at_ms: i64,
    pub members: Vec<GroupMemberFact>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberFact {
    pub user_id: String,
    /// A customer (not a member of the corp).
    pub external: bool,
    pub joined_at_ms: i64,
    /// 1 invited directly, 2 by link, 3 by QR code.
    pub join_scene: i64,
    pub inviter: Option<String>,
    pub name: String,
}

/// A tag of the corp tag library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpTagFact {
    pub id: String,
    pub name: String,
    pub group_name: String,
}

/// A page of results and the cursor of the next one (empty at the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: String,
}

impl Outbox {
    /// `get_corp_tag_list`: the corp tag library, deleted tags and groups left out.
    pub async fn corp_tag_library(
        &self,
        channel_id: &str,
    ) -> Result<Vec<CorpTagFact>, DirectoryError> {
        let api = &self.inner.api;
        let all = &CorpTagListRequest::default();
        let library = self
            .with_token(channel_id, |t: String| async move {
                api.get_corp_tag_list(&t, all).await
            })
            .await?;
        Ok(library
            .tag_group
            .into_iter()
            .filter(|g| !g.deleted)
            .flat_map(|g| {
                let group = g.group_name;
                g.tag
                    .into_iter()
                    .filter(|t| !t.deleted && !t.name.is_empty())
                    .map(move |t| CorpTagFact {
                        id: t.id,
                        name: t.name,
                        group_name: group.clone(),
                    })
            })
            .collect())
    }

    /// `add_corp_tag`: creates `names` in the corp tag group `group_name` (created if new);
    /// the tags as WeCom now has them, with their ids.
    pub async fn add_corp_tags(
        &self,
        channel_id: &str,
        group_name: &str,
        names: &[String],
    ) -> Result<Vec<CorpTagFact>, DirectoryError> {
        let api = &self.inner.api;
        let body = &AddCorpTag {
            group_name: group_name.to_owned(),
            tag: names
                .iter()
                .map(|n| NewCorpTag {
                    name: n.clone(),
                    order: 0,
                })
                .collect(),
            ..AddCorpTag::default()
        };
        let created = self
            .with_token(channel_id, |t: String| async move {
                api.add_corp_tag(&t, body).await
            })
            .await?;
        let group = created.tag_group;
        Ok(group
            .tag
            .into_iter()
            .filter(|t| !t.deleted && !t.id.is_empty())
            .map(|t| CorpTagFact {
                id: t.id,
                name: t.name,
                group_name: group.group_name.clone(),
            })
            .collect())
    }

    /// `get_follow_user_list`: the staff members who may have customers.
    pub async fn follow_users(&self, channel_id: &str) -> Result<Vec<String>, DirectoryError> {
        let api = &self.inner.api;
        let list = self
            .with_token(channel_id, |t: String| async move {
                api.get_follow_user_list(&t).await
            })
            .await?;
        Ok(list.follow_user)
    }

    /// One `batch/get_by_user` page for up to [`STAFF_PER_CALL`] staff members.
    pub async fn customers_page(
        &self,
        channel_id: &str,
        staff: &[String],
        cursor: &str,
    ) -> Result<Page<CustomerFact>, DirectoryError> {
        let api = &self.inner.api;
        let body = &BatchGetByUser {
            userid_list: staff.to_vec(),
            cursor: cursor.to_owned(),
            limit: CUSTOMER_PAGE,
        };
        let page = self
            .with_token(channel_id, |t: String| async move {
                api.batch_get_by_user(&t, body).await
            })
            .await?;
        let items = page
            .external_contact_list
            .into_iter()
            .filter(|c| !c.external_contact.external_userid.is_empty())
            .map(|c| CustomerFact {
                external_userid: c.external_contact.external_userid,
                name: c.external_contact.name,
                kind: c.external_contact.kind,
                staff: c.follow_info.userid,
                remark: c.follow_info.remark,
                added_at_ms: c.follow_info.createtime.saturating_mul(1000),
                state: c.follow_info.state,
                tag_ids: c.follow_info.tag_id,
            })
            .collect();
        Ok(Page {
            items,
            next_cursor: page.next_cursor,
        })
    }

    /// One `groupchat/list` page of every customer group (all statuses).
    pub async fn groups_page(
        &self,
        channel_id: &str,
        cursor: &str,
    ) -> Result<Page<GroupListed>, DirectoryError> {
        let api = &self.inner.api;
        let body = &GroupChatListRequest {
            status_filter: 0,
            owner_filter: None,
            cursor: cursor.to_owned(),
            limit: GROUP_PAGE,
        };
        let page = self
            .with_token(channel_id, |t: String| async move {
                api.groupchat_list(&t, body).await
            })
            .await?;
        Ok(Page {
            items: page
                .group_chat_list
                .into_iter()
                .map(|g| GroupListed {
                    chat_id: g.chat_id,
                    status: g.status,
                })
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// `groupchat/get` with member names.
    pub async fn group(
        &self,
        channel_id: &str,
        chat_id: &str,
    ) -> Result<GroupFact, DirectoryError> {
        let api = &self.inner.api;
        let body = &GroupChatGetRequest {
            chat_id: chat_id.to_owned(),
            need_name: 1,
        };
        let got = self
            .with_token(channel_id, |t: String| async move {
                api.groupchat_get(&t, body).await
            })
            .await?;
        let g = got.group_chat;
        Ok(GroupFact {
            chat_id: if g.chat_id.is_empty() {
                chat_id.to_owned()
            } else {
                g.chat_id
            },
            name: g.name,
            owner: g.owner,
            notice: g.notice,
            created_at_ms: g.create_time.saturating_mul(1000),
            members: g
                .member_list
                .into_iter()
                .filter(|m| !m.userid.is_empty())
                .map(|m| GroupMemberFact {
                    external: m.kind == 2,
                    joined_at_ms: m.join_time.saturating_mul(1000),
                    join_scene: m.join_scene,
                    inviter: m.invitor.map(|i| i.userid).filter(|u| !u.is_empty()),
                    name: if m.name.is_empty() {
                        m.group_nickname
                    } else {
                        m.name
                    },
                    user_id: m.userid,
                })
                .collect(),
        })
    }

    /// `user/get`: a corp member's name; `None` for an id the corp does not know.
    pub async fn corp_member_name(
        &self,
        channel_id: &str,
        user_id: &str,
    ) -> Result<Option<String>, DirectoryError> {
        let api = &self.inner.api;
        match self
            .with_token(channel_id, |t: String| async move {
                api.user_get(&t, user_id).await
            })
            .await
        {
            Ok(user) => Ok(Some(user.name).filter(|n| !n.is_empty())),
            Err(Failure::Api(e)) if matches!(e.errcode(), Some(60111 | 46004)) => Ok(None),
            Err(f) => Err(f.into()),
        }
    }
}
