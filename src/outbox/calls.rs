//! The outbox's platform calls: credentials and the token retry, one row's send by kind, the
//! customer mass-send task and its result polling, and the lookups other modules use.

use std::future::Future;

use chrono::Datelike as _;

use super::tokens::Credentials;
use super::worker::{Failure, Outbox};
use crate::config::ChannelKind;
use crate::store::outbox::{reserve_quota, Mark, OutboxRow};
use crate::store::StoreError;
use crate::wecom::api::errors::describe;
use crate::wecom::api::types::{
    AddMsgTemplate, AppchatSend, CustomSend, ExternalContactResponse, GroupMsgSendResultRequest,
    MarkTag, MessageSend, RobotMessage, SendWelcomeMsg,
};
use crate::wecom::api::{ApiError, ErrorClass};

/// The request body stored in a row.
fn payload<T: serde::de::DeserializeOwned>(row: &OutboxRow) -> Result<T, Failure> {
    serde_json::from_str(&row.payload)
        .map_err(|e| Failure::Api(ApiError::Decode(format!("stored payload: {e}"))))
}

impl Outbox {
    /// The customer's name from `externalcontact/get` (for a welcome addressed by name); `None`
    /// when the lookup fails, so the welcome still goes out in time.
    pub async fn contact_name(&self, channel_id: &str, external_userid: &str) -> Option<String> {
        let found = self.external_contact(channel_id, external_userid).await;
        found
            .ok()
            .map(|r| r.external_contact.name)
            .filter(|n| !n.is_empty())
    }

    /// `externalcontact/get` with the channel's token.
    pub async fn external_contact(
        &self,
        channel_id: &str,
        external_userid: &str,
    ) -> Result<ExternalContactResponse, String> {
        let api = &self.inner.api;
        self.with_token(channel_id, |t| async move {
            api.external_contact_get(&t, external_userid, "").await
        })
        .await
        .map_err(|f| f.to_string())
    }

    fn credentials(&self, channel_id: &str) -> Option<Credentials> {
        let c = self.inner.config.channels.get(channel_id)?;
        let secret = c.secret.as_ref()?.expose().to_owned();
        match c.kind {
            ChannelKind::WecomApp => Some(Credentials::Wecom {
                corp_id: c.corp_id.clone()?,
                secret,
            }),
            ChannelKind::WechatMp => Some(Credentials::Mp {
                app_id: c.app_id.clone()?,
                secret,
            }),
            _ => None,
        }
    }

    /// Calls `f` with the app's token; on a token-invalid answer, refreshes once and retries once.
    pub(super) async fn with_token<T, F, Fut>(&self, channel_id: &str, f: F) -> Result<T, Failure>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let creds = self.credentials(channel_id).ok_or_else(|| {
            Failure::Api(ApiError::Platform {
                errcode: 40001,
                errmsg: format!("channel `{channel_id}` has no API credentials"),
            })
        })?;
        let tokens = &self.inner.tokens;
        let token = tokens
            .get(channel_id, &creds)
            .await
            .map_err(Failure::Token)?;
        match f(token.clone()).await {
            Err(e) if e.class() == ErrorClass::TokenInvalid => {
                tracing::info!(channel = channel_id, error = %e, "token refused; refreshing once");
                tokens
                    .invalidate(channel_id, &token)
                    .await
                    .map_err(Failure::Token)?;
                let fresh = tokens
                    .get(channel_id, &creds)
                    .await
                    .map_err(Failure::Token)?;
                f(fresh).await.map_err(Failure::Api)
            }
            other => other.map_err(Failure::Api),
        }
    }

    pub(super) async fn send(&self, row: &OutboxRow, kind: ChannelKind) -> Result<Mark, Failure> {
        let sent = Mark::Sent {
            id: row.id,
            platform_id: None,
        };
        match (row.kind.as_str(), kind) {
            ("app_message", ChannelKind::WecomApp) => self.send_app_message(row).await,
            ("appchat", ChannelKind::WecomApp) => {
                let body: &AppchatSend = &payload(row)?;
                let api = &self.inner.api;
                self.with_token(&row.channel_id, |t| async move {
                    api.appchat_send(&t, body).await
                })
                .await?;
                Ok(sent)
            }
            ("welcome", ChannelKind::WecomApp) => {
                let body: &SendWelcomeMsg = &payload(row)?;
                let api = &self.inner.api;
                self.with_token(&row.channel_id, |t| async move {
                    api.send_welcome_msg(&t, body).await
                })
                .await?;
                Ok(sent)
            }
            ("mark_tag", ChannelKind::WecomApp) => {
                let body: &MarkTag = &payload(row)?;
                let api = &self.inner.api;
                self.with_token(
                    &row.channel_id,
                    |t| async move { api.mark_tag(&t, body).await },
                )
                .await?;
                Ok(sent)
            }
            ("mp_custom", ChannelKind::WechatMp) => {
                let body: &CustomSend = &payload(row)?;
                let api = &self.inner.api;
                self.with_token(&row.channel_id, |t| async move {
                    api.mp_custom_send(&t, body).await
                })
                .await?;
                Ok(sent)
            }
            ("robot", ChannelKind::WecomRobot) => self.send_robot(row).await.map(|()| sent),
            ("mass_template", ChannelKind::WecomApp) => self.create_task(row).await,
            ("gateway_send", ChannelKind::Gateway) => self.send_gateway(row).await.map(|()| sent),
            ("reply_url", ChannelKind::WecomAibot) => {
                let mut body: serde_json::Value = payload(row)?;
                let url = body["url"].as_str().unwrap_or_default().to_owned();
                if let Some(map) = body.as_object_mut() {
                    map.remove("url");
                }
                self.inner
                    .api
                    .post_to(&url, &body)
                    .await
                    .map_err(Failure::Api)?;
                Ok(sent)
            }
            ("aibot_push", ChannelKind::WecomAibot) => self.send_aibot_push(row).await,
            (other, kind) => Ok(Mark::Dead {
                id: row.id,
                error: format!(
                    "a `{other}` row cannot go out on a {} channel",
                    kind.as_str()
                ),
            }),
        }
    }

    async fn send_app_message(&self, row: &OutboxRow) -> Result<Mark, Failure> {
        let body: &MessageSend = &payload(row)?;
        let api = &self.inner.api;
        let r = self
            .with_token(&row.channel_id, |t| async move {
                api.message_send(&t, body).await
            })
            .await?;
        if !r.invaliduser.is_empty() {
            tracing::warn!(row = row.id, invalid = %r.invaliduser, "some recipients were invalid");
        }
        Ok(Mark::Sent {
            id: row.id,
            platform_id: Some(r.msgid).filter(|m| !m.is_empty()),
        })
    }

    async fn send_robot(&self, row: &OutboxRow) -> Result<(), Failure> {
        let body: RobotMessage = payload(row)?;
        let key = self
            .inner
            .config
            .channels
            .get(&row.channel_id)
            .and_then(|c| c.webhook_key.as_ref())
            .map(|k| k.expose().to_owned())
            .unwrap_or_default();
        self.inner
            .api
            .webhook_send(&key, &body)
            .await
            .map_err(Failure::Api)?;
        Ok(())
    }

    async fn send_gateway(&self, row: &OutboxRow) -> Result<(), Failure> {
        let channel = self.inner.config.channels.get(&row.channel_id);
        let url = channel.and_then(|c| c.send_url.clone()).unwrap_or_default();
        let secret = channel
            .and_then(|c| c.secret.as_ref())
            .map(|s| s.expose().as_bytes().to_vec())
            .unwrap_or_default();
        let now = self.inner.clock.now_secs();
        self.inner
            .api
            .gateway_send(&url, &secret, now, row.payload.as_bytes())
            .await
            .map_err(Failure::Api)
    }

    /// Only the process holding the bot's connection can send; the others leave the row for it
    /// (without counting an attempt).
    async fn send_aibot_push(&self, row: &OutboxRow) -> Result<Mark, Failure> {
        let defer = || Mark::Defer {
            id: row.id,
            at_ms: self.inner.clock.now_ms() + 2_000,
        };
        let Some(link) = self.inner.links.sender(&row.channel_id) else {
            return Ok(defer());
        };
        let body: serde_json::Value = payload(row)?;
        let (done, ack) = tokio::sync::oneshot::channel();
        if link.send(super::links::Push { body, done }).is_err() {
            return Ok(defer());
        }
        match tokio::time::timeout(std::time::Duration::from_secs(5), ack).await {
            Ok(Ok(Ok(()))) => Ok(Mark::Sent {
                id: row.id,
                platform_id: None,
            }),
            Ok(Ok(Err((errcode, errmsg)))) => {
                Err(Failure::Api(ApiError::Platform { errcode, errmsg }))
            }
            _ => Err(Failure::Api(ApiError::Network(
                "no ack on the long connection".into(),
            ))),
        }
    }

    /// Customer mass send: take the monthly quota, then create the task staff will confirm.
    async fn create_task(&self, row: &OutboxRow) -> Result<Mark, Failure> {
        let mut body: AddMsgTemplate = serde_json::from_str(&row.payload)
            .map_err(|e| Failure::Api(ApiError::Decode(e.to_string())))?;
        let scope = self
            .inner
            .channels
            .get(&row.channel_id)
            .map(|c| c.scope.clone())
            .unwrap_or_default();
        let mut recipients = Vec::with_capacity(body.external_userid.len());
        for r in &body.external_userid {
            if !self.muted(&row.channel_id, r).await {
                recipients.push(r.clone());
            }
        }
        let now = self.inner.clock.now_ms();
        let local = chrono::DateTime::from_timestamp_millis(now)
            .unwrap_or_default()
            .with_timezone(&self.inner.config.timezone());
        let month = format!("{:04}-{:02}", local.year(), local.month());
        let quota = match self.inner.config.outbox.customer_monthly_quota {
            0 => i64::from(days_in_month(local.year(), local.month())),
            n => n,
        };
        let row_id = row.id;
        let allowed = self
            .with_db(move |store| async move {
                let mut tx = store.begin_write().await?;
                let allowed =
                    reserve_quota(&mut tx, row_id, &scope, &recipients, &month, quota).await?;
                tx.commit().await?;
                Ok::<_, StoreError>(allowed)
            })
            .await??;
        if allowed.is_empty() {
            return Ok(Mark::Dead {
                id: row.id,
                error: "收件人本月群发次数已用完或已静音 (monthly quota used up or muted)".into(),
            });
        }
        body.external_userid = allowed;
        let api = &self.inner.api;
        let body = &body;
        let r = self
            .with_token(&row.channel_id, |t| async move {
                api.add_msg_template(&t, body).await
            })
            .await?;
        let poll = self.inner.config.outbox.task_poll_secs * 1000;
        Ok(Mark::TaskCreated {
            id: row.id,
            platform_id: r.msgid,
            next_poll_ms: self.inner.clock.now_ms() + poll,
        })
    }

    /// Asks WeCom how the confirmed mass-send tasks went; returns how many tasks were polled.
    pub async fn poll_tasks_once(&self) -> Result<usize, StoreError> {
        let o = &self.inner.config.outbox;
        let now = self.inner.clock.now_ms();
        let (worker, next) = (self.inner.worker_id.clone(), now + o.task_poll_secs * 1000);
        let rows = self
            .with_db(move |store| async move { store.claim_tasks(&worker, now, next, 50).await })
            .await??;
        let polled = rows.len();
        let mut marks = Vec::new();
        for row in rows {
            if let Some(mark) = self.poll_task(&row, now).await {
                marks.push(mark);
            }
        }
        if !marks.is_empty() {
            self.count(&marks);
            self.apply(marks).await?;
        }
        Ok(polled)
    }

    async fn poll_task(&self, row: &OutboxRow, now: i64) -> Option<Mark> {
        let expire_ms = self.inner.config.outbox.task_expire_hours * 3_600_000;
        if row.sent_at.unwrap_or(row.created_at) + expire_ms < now {
            return Some(Mark::Dead {
                id: row.id,
                error: "群发任务超时未被确认 (staff did not confirm the task in time)".into(),
            });
        }
        let (msgid, sender) = (row.platform_id.clone()?, row.task_sender.clone()?);
        let reserved: Vec<String> = row
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or_default();
        let api = &self.inner.api;
        let mut statuses = std::collections::HashMap::new();
        let mut cursor = String::new();
        for _ in 0..20 {
            let request = GroupMsgSendResultRequest {
                msgid: msgid.clone(),
                userid: sender.clone(),
                limit: 1000,
                cursor: cursor.clone(),
            };
            let request = &request;
            let page = match self
                .with_token(&row.channel_id, |t| async move {
                    api.get_groupmsg_send_result(&t, request).await
                })
                .await
            {
                Ok(page) => page,
                Err(Failure::Api(e)) if e.class() == ErrorClass::Permanent => {
                    return Some(Mark::Dead {
                        id: row.id,
                        error: reason(&e),
                    });
                }
                Err(_) => return None,
            };
            for r in page.send_list {
                statuses.insert(r.external_userid, r.status);
            }
            if page.next_cursor.is_empty() {
                break;
            }
            cursor = page.next_cursor;
        }
        let mut tally = [0_i64; 4];
        for r in &reserved {
            match statuses.get(r) {
                Some(&s @ 1..=3) => tally[usize::try_from(s).unwrap_or(0)] += 1,
                _ => return None,
            }
        }
        Some(Mark::Delivered {
            id: row.id,
            result: serde_json::json!({
                "sent": tally[1], "not_a_contact": tally[2], "quota_or_duplicate": tally[3]
            })
            .to_string(),
        })
    }
}

pub(super) fn reason(e: &ApiError) -> String {
    match e.errcode() {
        Some(code) => format!("{}（{e}）", describe(code)),
        None => e.to_string(),
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    chrono::NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.pred_opt())
        .map_or(30, |d| d.day())
}

#[cfg(test)]
mod tests {
    use super::days_in_month;

    #[test]
    fn months_have_their_days() {
        assert_eq!(days_in_month(2026, 2), 28);
        assert_eq!(days_in_month(2028, 2), 29);
        assert_eq!(days_in_month(2026, 11), 30);
        assert_eq!(days_in_month(2026, 12), 31);
    }
}
