//! Client of the WeCom server API and the WeChat MP customer-service API (wecom-protocol.md §4).
//! Every call returns the typed body or an [`ApiError`] whose [`ErrorClass`] tells the caller
//! what to do: retry later, refresh the token, slow down, or give up. The access token is an
//! argument: caching and refreshing it is the caller's business. URLs carry the token, so
//! errors never include them.

pub mod errors;
pub mod types;

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use errors::{classify, ErrorClass};
use types::*;

/// Where the real platforms live.
pub const WECOM_BASE: &str = "https://qyapi.weixin.qq.com";
pub const MP_BASE: &str = "https://api.weixin.qq.com";

/// Why a call did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("errcode {errcode}: {errmsg}")]
    Platform { errcode: i64, errmsg: String },
    #[error("HTTP {0}")]
    Http(u16),
    #[error("network: {0}")]
    Network(String),
    #[error("unexpected response: {0}")]
    Decode(String),
}

impl ApiError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Platform { errcode, .. } => classify(*errcode),
            Self::Http(429) => ErrorClass::RateLimited,
            Self::Http(s) if *s >= 500 => ErrorClass::Transient,
            Self::Http(_) => ErrorClass::Permanent,
            Self::Network(_) | Self::Decode(_) => ErrorClass::Transient,
        }
    }

    pub fn errcode(&self) -> Option<i64> {
        match self {
            Self::Platform { errcode, .. } => Some(*errcode),
            _ => None,
        }
    }
}

/// One HTTP client for both platforms. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    wecom_base: String,
    mp_base: String,
}

impl ApiClient {
    /// `wecom_base` / `mp_base` without a trailing slash, e.g. [`WECOM_BASE`] or a local stand-in.
    pub fn new(wecom_base: &str, mp_base: &str, timeout: Duration) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(32)
            .build()
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        Ok(Self {
            http,
            wecom_base: wecom_base.trim_end_matches('/').to_owned(),
            mp_base: mp_base.trim_end_matches('/').to_owned(),
        })
    }

    /// `GET /cgi-bin/gettoken` — one token per (corp id, secret), valid `expires_in` seconds.
    pub async fn gettoken(&self, corp_id: &str, secret: &str) -> Result<TokenResponse, ApiError> {
        let url = format!("{}/cgi-bin/gettoken", self.wecom_base);
        self.get(&url, &[("corpid", corp_id), ("corpsecret", secret)])
            .await
    }

    /// MP `GET /cgi-bin/token?grant_type=client_credential`.
    pub async fn mp_token(&self, app_id: &str, secret: &str) -> Result<TokenResponse, ApiError> {
        let url = format!("{}/cgi-bin/token", self.mp_base);
        let query = [
            ("grant_type", "client_credential"),
            ("appid", app_id),
            ("secret", secret),
        ];
        self.get(&url, &query).await
    }

    pub async fn message_send(
        &self,
        token: &str,
        body: &MessageSend,
    ) -> Result<MessageSendResponse, ApiError> {
        self.wecom_post(token, "message/send", body).await
    }

    pub async fn appchat_send(&self, token: &str, body: &AppchatSend) -> Result<Status, ApiError> {
        self.wecom_post(token, "appchat/send", body).await
    }

    /// The group robot: the webhook key is the credential, no access token.
    pub async fn webhook_send(&self, key: &str, body: &RobotMessage) -> Result<Status, ApiError> {
        let url = format!("{}/cgi-bin/webhook/send", self.wecom_base);
        self.post(&url, &[("key", key)], body).await
    }

    pub async fn external_contact_get(
        &self,
        token: &str,
        external_userid: &str,
        cursor: &str,
    ) -> Result<ExternalContactResponse, ApiError> {
        let url = format!("{}/cgi-bin/externalcontact/get", self.wecom_base);
        let query = [
            ("access_token", token),
            ("external_userid", external_userid),
            ("cursor", cursor),
        ];
        self.get(&url, &query).await
    }

    pub async fn external_contact_list(
        &self,
        token: &str,
        userid: &str,
    ) -> Result<ExternalContactList, ApiError> {
        let url = format!("{}/cgi-bin/externalcontact/list", self.wecom_base);
        self.get(&url, &[("access_token", token), ("userid", userid)])
            .await
    }

    /// `GET /cgi-bin/externalcontact/get_follow_user_list`: members who may have customers.
    pub async fn get_follow_user_list(&self, token: &str) -> Result<FollowUserList, ApiError> {
        let url = format!(
            "{}/cgi-bin/externalcontact/get_follow_user_list",
            self.wecom_base
        );
        self.get(&url, &[("access_token", token)]).await
    }

    /// `GET /cgi-bin/user/get`: one corp member.
    pub async fn user_get(&self, token: &str, userid: &str) -> Result<CorpUser, ApiError> {
        let url = format!("{}/cgi-bin/user/get", self.wecom_base);
        self.get(&url, &[("access_token", token), ("userid", userid)])
            .await
    }

    pub async fn batch_get_by_user(
        &self,
        token: &str,
        body: &BatchGetByUser,
    ) -> Result<BatchGetByUserResponse, ApiError> {
        self.wecom_post(token, "externalcontact/batch/get_by_user", body)
            .await
    }

    pub async fn get_corp_tag_list(
        &self,
        token: &str,
        body: &CorpTagListRequest,
    ) -> Result<CorpTagListResponse, ApiError> {
        self.wecom_post(token, "externalcontact/get_corp_tag_list", body)
            .await
    }

    pub async fn add_corp_tag(
        &self,
        token: &str,
        body: &AddCorpTag,
    ) -> Result<AddCorpTagResponse, ApiError> {
        self.wecom_post(token, "externalcontact/add_corp_tag", body)
            .await
    }

    pub async fn mark_tag(&self, token: &str, body: &MarkTag) -> Result<Status, ApiError> {
        self.wecom_post(token, "externalcontact/mark_tag", body)
            .await
    }

    pub async fn groupchat_list(
        &self,
        token: &str,
        body: &GroupChatListRequest,
    ) -> Result<GroupChatListResponse, ApiError> {
        self.wecom_post(token, "externalcontact/groupchat/list", body)
            .await
    }

    pub async fn groupchat_get(
        &self,
        token: &str,
        body: &GroupChatGetRequest,
    ) -> Result<GroupChatGetResponse, ApiError> {
        self.wecom_post(token, "externalcontact/groupchat/get", body)
            .await
    }

    pub async fn add_msg_template(
        &self,
        token: &str,
        body: &AddMsgTemplate,
    ) -> Result<AddMsgTemplateResponse, ApiError> {
        self.wecom_post(token, "externalcontact/add_msg_template", body)
            .await
    }

    pub async fn get_groupmsg_send_result(
        &self,
        token: &str,
        body: &GroupMsgSendResultRequest,
    ) -> Result<GroupMsgSendResultResponse, ApiError> {
        self.wecom_post(token, "externalcontact/get_groupmsg_send_result", body)
            .await
    }

    pub async fn send_welcome_msg(
        &self,
        token: &str,
        body: &SendWelcomeMsg,
    ) -> Result<Status, ApiError> {
        self.wecom_post(token, "externalcontact/send_welcome_msg", body)
            .await
    }

    /// WeChat MP customer-service message (within 48 h of the follower's last message).
    pub async fn mp_custom_send(&self, token: &str, body: &CustomSend) -> Result<Status, ApiError> {
        let url = format!("{}/cgi-bin/message/custom/send", self.mp_base);
        self.post(&url, &[("access_token", token)], body).await
    }

    /// POSTs JSON to a URL the platform handed out (the AI bot's `response_url`).
    pub async fn post_to<B: Serialize>(&self, url: &str, body: &B) -> Result<Status, ApiError> {
        self.post(url, &[], body).await
    }

    /// Posts `body` to a gateway's send URL with its HMAC signature headers; any 2xx is success.
    pub async fn gateway_send(
        &self,
        url: &str,
        secret: &[u8],
        timestamp: i64,
        body: &[u8],
    ) -> Result<(), ApiError> {
        let ts = timestamp.to_string();
        let signature = format!("sha256={}", crate::wecom::gateway::sign(secret, &ts, body));
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header(crate::wecom::gateway::TIMESTAMP_HEADER, &ts)
            .header(crate::wecom::gateway::SIGNATURE_HEADER, signature)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(ApiError::Http(response.status().as_u16()))
        }
    }

    async fn wecom_post<B: Serialize, R: DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
        body: &B,
    ) -> Result<R, ApiError> {
        let url = format!("{}/cgi-bin/{path}", self.wecom_base);
        self.post(&url, &[("access_token", token)], body).await
    }

    async fn get<R: DeserializeOwned>(
        &self,
        url: &str,
        query: &[(&str, &str)],
    ) -> Result<R, ApiError> {
        let request = self.http.get(url).query(query);
        decode(request.send().await).await
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        url: &str,
        query: &[(&str, &str)],
        body: &B,
    ) -> Result<R, ApiError> {
        let request = self.http.post(url).query(query).json(body);
        decode(request.send().await).await
    }
}

/// Branches on `errcode`, not on the HTTP status (the platform answers 200 to errors).
async fn decode<R: DeserializeOwned>(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<R, ApiError> {
    let response = sent.map_err(|e| ApiError::Network(e.without_url().to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(ApiError::Http(status.as_u16()));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
    let head: Status =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode(e.to_string()))?;
    if head.errcode != 0 {
        return Err(ApiError::Platform {
            errcode: head.errcode,
            errmsg: head.errmsg,
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode(e.to_string()))
}
