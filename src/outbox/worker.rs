//! Outbox workers: claim due rows with a lease, check expiry, mutes, peak hours and rate limits,
//! send through the API client with a cached token, and mark each row sent / task created /
//! retry later (exponential backoff, full jitter) / dead with the reason. Marks only land while
//! the lease is ours, so a worker that stalled past its lease cannot overwrite a newer result.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Datelike as _;
use rand::Rng as _;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::limits::{Limits, Rule};
use super::tokens::{Credentials, TokenError, Tokens};
use super::{enqueue, EnqueueError, Envelope, PRIORITY_NORMAL};
use crate::channels::Channels;
use crate::clock::SharedClock;
use crate::config::{ChannelKind, Config};
use crate::ingress::InboxWriter;
use crate::store::outbox::{apply_marks, reserve_quota, Mark, OutboxRow};
use crate::store::{Store, StoreError};
use crate::wecom::api::errors::describe;
use crate::wecom::api::types::{
    AddMsgTemplate, AppchatSend, CorpTagListRequest, CorpTagListResponse, CustomSend,
    ExternalContactResponse, GroupMsgSendResultRequest, MarkTag, MessageSend, RobotMessage,
    SendWelcomeMsg,
};
use crate::wecom::api::{ApiClient, ApiError, ErrorClass};

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct OutboxCounters {
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    pub deferred: AtomicU64,
    pub dead: AtomicU64,
}

struct Inner {
    config: Arc<Config>,
    channels: Arc<Channels>,
    store: Store,
    writer: Option<InboxWriter>,
    api: ApiClient,
    tokens: Tokens,
    limits: Limits,
    clock: SharedClock,
    wake: Notify,
    worker_id: String,
    counters: OutboxCounters,
}

/// The outbox of this process: enqueue, wake, and run workers. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

/// The name handlers and the API use.
pub type OutboxHandle = Outbox;

/// Why a send failed.
enum Failure {
    Api(ApiError),
    Token(TokenError),
    Store(StoreError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Api(e) => write!(f, "{}", reason(e)),
            Self::Token(e) => write!(f, "{e}"),
            Self::Store(e) => write!(f, "database: {e}"),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl Outbox {
    /// `writer`: on SQLite, outbox writes queue behind the group commits instead of contending
    /// for the file lock.
    pub fn new(
        config: Arc<Config>,
        channels: Arc<Channels>,
        store: Store,
        writer: Option<InboxWriter>,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        let api = ApiClient::new(
            &config.api.wecom_base,
            &config.api.mp_base,
            Duration::from_millis(config.api.timeout_ms),
        )?;
        let tokens = Tokens::new(api.clone(), store.clone(), Arc::clone(&clock));
        let worker_id = format!(
            "{}-{}-{:08x}",
            hostname(),
            std::process::id(),
            rand::random::<u32>()
        );
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                channels,
                store,
                writer,
                api,
                tokens,
                limits: Limits::default(),
                clock,
                wake: Notify::new(),
                worker_id,
                counters: OutboxCounters::default(),
            }),
        })
    }

    pub fn counters(&self) -> &OutboxCounters {
        &self.inner.counters
    }

    pub fn api(&self) -> &ApiClient {
        &self.inner.api
    }

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

    /// The corp tag library (`get_corp_tag_list`) with the channel's token.
    pub async fn corp_tags(&self, channel_id: &str) -> Result<CorpTagListResponse, String> {
        let api = &self.inner.api;
        let all = &CorpTagListRequest::default();
        self.with_token(channel_id, |t| async move {
            api.get_corp_tag_list(&t, all).await
        })
        .await
        .map_err(|f| f.to_string())
    }

    /// Wakes an idle worker (after rows were written elsewhere).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Queues one message in its own transaction; `false` when its key was queued before.
    pub async fn enqueue(&self, env: Envelope) -> Result<bool, EnqueueError> {
        let config = Arc::clone(&self.inner.config);
        let now = self.inner.clock.now_ms();
        let inserted = self
            .with_db(move |store| async move {
                let mut tx = store.begin_write().await?;
                let inserted = enqueue(&mut tx, &config, &env, now).await?;
                tx.commit().await?;
                Ok::<_, EnqueueError>(inserted)
            })
            .await
            .map_err(|e| EnqueueError::Invalid(e.to_string()))??;
        self.wake();
        Ok(inserted)
    }

    /// Runs a database step on the writer when there is one (SQLite), else on the pool.
    async fn with_db<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Store) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        match &self.inner.writer {
            Some(writer) => writer
                .run(f)
                .await
                .map_err(|e| StoreError::Other(e.to_string())),
            None => Ok(f(self.inner.store.clone()).await),
        }
    }

    /// The worker loop until `shutdown`; a round in progress finishes and is marked first.
    pub fn spawn(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let outbox = self.clone();
        tokio::spawn(async move { outbox.run(shutdown).await })
    }

    async fn run(self, shutdown: CancellationToken) {
        let poll = Duration::from_millis(self.inner.config.outbox.poll_interval_ms);
        let task_every_ms = self.inner.config.outbox.task_poll_secs.min(30) * 1000;
        let mut last_task_poll = 0;
        while !shutdown.is_cancelled() {
            let now = self.inner.clock.now_ms();
            if now - last_task_poll >= task_every_ms {
                last_task_poll = now;
                if let Err(e) = self.poll_tasks_once().await {
                    tracing::warn!(error = %e, "mass-send task poll failed");
                }
            }
            let handled = match self.run_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox round failed");
                    0
                }
            };
            if handled == 0 {
                tokio::select! {
                    () = self.inner.wake.notified() => {}
                    () = tokio::time::sleep(poll) => {}
                    () = shutdown.cancelled() => {}
                }
            }
        }
    }

    /// One round: claim due rows, send them concurrently, mark them in one transaction.
    /// Returns how many rows were claimed.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let o = &self.inner.config.outbox;
        let (worker, lease, batch) = (
            self.inner.worker_id.clone(),
            o.lease_secs * 1000,
            i64::try_from(o.batch_size).unwrap_or(16),
        );
        let now = self.inner.clock.now_ms();
        let rows = self
            .with_db(
                move |store| async move { store.claim_outbox(&worker, now, lease, batch).await },
            )
            .await??;
        let claimed = rows.len();
        if claimed == 0 {
            return Ok(0);
        }
        let mut set = JoinSet::new();
        for row in rows {
            let outbox = self.clone();
            set.spawn(async move { outbox.process(row).await });
        }
        let mut marks = Vec::with_capacity(claimed);
        while let Some(done) = set.join_next().await {
            match done {
                Ok(mark) => marks.push(mark),
                // A panicking send leaves its row claimed; the lease brings it back.
                Err(e) => tracing::error!(error = %e, "outbox send task failed"),
            }
        }
        self.count(&marks);
        self.apply(marks).await?;
        Ok(claimed)
    }

    async fn apply(&self, marks: Vec<Mark>) -> Result<(), StoreError> {
        let worker = self.inner.worker_id.clone();
        let now = self.inner.clock.now_ms();
        self.with_db(move |store| async move {
            let mut tx = store.begin_write().await?;
            apply_marks(&mut tx, &worker, &marks, now).await?;
            tx.commit().await
        })
        .await?
    }

    fn count(&self, marks: &[Mark]) {
        let c = &self.inner.counters;
        for m in marks {
            let counter = match m {
                Mark::Sent { .. } | Mark::TaskCreated { .. } | Mark::Delivered { .. } => &c.sent,
                Mark::Retry { .. } => &c.retried,
                Mark::Defer { .. } => &c.deferred,
                Mark::Dead { .. } => &c.dead,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Decides and performs one row's send.
    async fn process(&self, row: OutboxRow) -> Mark {
        let now = self.inner.clock.now_ms();
        let id = row.id;
        if row.expires_at.is_some_and(|at| at < now) {
            return Mark::Dead {
                id,
                error: "已过期未发送 (expired before it could be sent)".into(),
            };
        }
        let Some(channel) = self.inner.config.channels.get(&row.channel_id) else {
            return Mark::Dead {
                id,
                error: format!("channel `{}` is no longer configured", row.channel_id),
            };
        };
        if matches!(row.kind.as_str(), "app_message" | "mp_custom")
            && !row.recipient.contains('|')
            && self.muted(&row.channel_id, &row.recipient).await
        {
            return Mark::Dead {
                id,
                error: "收件人已被静音 (muted with /mute)".into(),
            };
        }
        if let Some(at) = self.peak_deferral(&row, now) {
            return Mark::Defer { id, at_ms: at };
        }
        let keys = self.limit_keys(&row);
        if let Err(at_ms) = self.inner.limits.acquire(&keys, now) {
            return Mark::Defer { id, at_ms };
        }
        let result = self.send(&row, channel.kind).await;
        let now = self.inner.clock.now_ms();
        match result {
            Ok(mark) => mark,
            Err(Failure::Store(e)) => self.retry(&row, now, format!("database: {e}")),
            Err(Failure::Token(TokenError::Unavailable {
                retry_at_ms,
                reason,
            })) => self.retry_at(&row, retry_at_ms, reason),
            Err(Failure::Token(e)) => self.retry(&row, now, e.to_string()),
            Err(Failure::Api(e)) => match e.class() {
                ErrorClass::RateLimited => {
                    // Minute-level limits refuse for the rest of the window.
                    let until = now + 60_000;
                    if let Some((key, _)) = keys.first() {
                        self.inner.limits.pause(key, until);
                    }
                    tracing::warn!(row = id, error = %e, "rate limited by the platform; pausing");
                    Mark::Defer { id, at_ms: until }
                }
                ErrorClass::Transient | ErrorClass::TokenInvalid => {
                    self.retry(&row, now, e.to_string())
                }
                ErrorClass::Permanent => Mark::Dead {
                    id,
                    error: reason(&e),
                },
            },
        }
    }

    fn retry(&self, row: &OutboxRow, now: i64, error: String) -> Mark {
        let o = &self.inner.config.outbox;
        let exp = row.attempts.clamp(1, 30) - 1;
        let ceiling = o
            .backoff_base_ms
            .saturating_mul(1_i64 << exp)
            .min(o.backoff_cap_ms);
        let delay = rand::thread_rng().gen_range(0..=ceiling);
        self.retry_at(row, now + delay, error)
    }

    fn retry_at(&self, row: &OutboxRow, at_ms: i64, error: String) -> Mark {
        if row.attempts >= self.inner.config.outbox.max_attempts {
            Mark::Dead {
                id: row.id,
                error: format!(
                    "{} 次尝试后放弃 (gave up after {} attempts): {error}",
                    row.attempts, row.attempts
                ),
            }
        } else {
            Mark::Retry {
                id: row.id,
                at_ms,
                error,
            }
        }
    }

    async fn muted(&self, channel_id: &str, user: &str) -> bool {
        let Some(channel) = self.inner.channels.get(channel_id) else {
            return false;
        };
        self.inner
            .store
            .is_muted(&channel.scope, user)
            .await
            .unwrap_or(false)
    }

    /// Scheduled (normal-priority) rows due right after :00 or :30 spread over the next window.
    fn peak_deferral(&self, row: &OutboxRow, now: i64) -> Option<i64> {
        let avoid = self.inner.config.outbox.avoid_peak_secs * 1000;
        if avoid == 0 || row.priority > PRIORITY_NORMAL {
            return None;
        }
        let into_half_hour = now.rem_euclid(1_800_000);
        (into_half_hour < avoid)
            .then(|| now - into_half_hour + avoid + rand::thread_rng().gen_range(0..avoid.max(1)))
    }

    fn limit_keys(&self, row: &OutboxRow) -> Vec<(String, Rule)> {
        let o = &self.inner.config.outbox;
        let mut keys = Vec::new();
        match row.kind.as_str() {
            "robot" => keys.push((
                format!("robot:{}", row.channel_id),
                Rule::Window {
                    limit: o.robot_per_minute,
                    window_ms: 60_000,
                },
            )),
            "app_message" => {
                for user in row.recipient.split('|').filter(|u| *u != "@all") {
                    keys.push((
                        format!("m:{}:{user}", row.channel_id),
                        Rule::Window {
                            limit: o.member_per_minute,
                            window_ms: 60_000,
                        },
                    ));
                    keys.push((
                        format!("h:{}:{user}", row.channel_id),
                        Rule::Window {
                            limit: o.member_per_hour,
                            window_ms: 3_600_000,
                        },
                    ));
                }
            }
            _ => {}
        }
        if o.channel_per_second > 0 {
            keys.push((
                format!("c:{}", row.channel_id),
                Rule::Bucket {
                    per_sec: o.channel_per_second,
                },
            ));
        }
        keys
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
    async fn with_token<T, F, Fut>(&self, channel_id: &str, f: F) -> Result<T, Failure>
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

    async fn send(&self, row: &OutboxRow, kind: ChannelKind) -> Result<Mark, Failure> {
        let id = row.id;
        let api = &self.inner.api;
        let bad =
            |e: serde_json::Error| Failure::Api(ApiError::Decode(format!("stored payload: {e}")));
        let sent = |platform_id: Option<String>| Mark::Sent { id, platform_id };
        match (row.kind.as_str(), kind) {
            ("app_message", ChannelKind::WecomApp) => {
                let body: &MessageSend = &serde_json::from_str(&row.payload).map_err(bad)?;
                let r = self
                    .with_token(&row.channel_id, |t| async move {
                        api.message_send(&t, body).await
                    })
                    .await?;
                if !r.invaliduser.is_empty() {
                    tracing::warn!(row = id, invalid = %r.invaliduser, "some recipients were invalid");
                }
                Ok(sent(Some(r.msgid).filter(|m| !m.is_empty())))
            }
            ("appchat", ChannelKind::WecomApp) => {
                let body: &AppchatSend = &serde_json::from_str(&row.payload).map_err(bad)?;
                self.with_token(&row.channel_id, |t| async move {
                    api.appchat_send(&t, body).await
                })
                .await?;
                Ok(sent(None))
            }
            ("welcome", ChannelKind::WecomApp) => {
                let body: &SendWelcomeMsg = &serde_json::from_str(&row.payload).map_err(bad)?;
                self.with_token(&row.channel_id, |t| async move {
                    api.send_welcome_msg(&t, body).await
                })
                .await?;
                Ok(sent(None))
            }
            ("mark_tag", ChannelKind::WecomApp) => {
                let body: &MarkTag = &serde_json::from_str(&row.payload).map_err(bad)?;
                self.with_token(
                    &row.channel_id,
                    |t| async move { api.mark_tag(&t, body).await },
                )
                .await?;
                Ok(sent(None))
            }
            ("mp_custom", ChannelKind::WechatMp) => {
                let body: &CustomSend = &serde_json::from_str(&row.payload).map_err(bad)?;
                self.with_token(&row.channel_id, |t| async move {
                    api.mp_custom_send(&t, body).await
                })
                .await?;
                Ok(sent(None))
            }
            ("robot", ChannelKind::WecomRobot) => {
                let body: RobotMessage = serde_json::from_str(&row.payload).map_err(bad)?;
                let key = self
                    .inner
                    .config
                    .channels
                    .get(&row.channel_id)
                    .and_then(|c| c.webhook_key.as_ref())
                    .map(|k| k.expose().to_owned())
                    .unwrap_or_default();
                api.webhook_send(&key, &body).await.map_err(Failure::Api)?;
                Ok(sent(None))
            }
            ("mass_template", ChannelKind::WecomApp) => self.create_task(row).await,
            (other, kind) => Ok(Mark::Dead {
                id,
                error: format!(
                    "a `{other}` row cannot go out on a {} channel",
                    kind.as_str()
                ),
            }),
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

fn reason(e: &ApiError) -> String {
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

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "yunying".into())
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
