//! Outbox workers: claim due rows with a lease, check expiry, mutes, peak hours and rate limits,
//! send through the API client with a cached token, and mark each row sent / task created /
//! retry later (exponential backoff, full jitter) / dead with the reason. Marks only land while
//! the lease is ours, so a worker that stalled past its lease cannot overwrite a newer result.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::calls::reason;
use super::limits::{Limits, Rule};
use super::tokens::{TokenError, Tokens};
use super::{enqueue, EnqueueError, Envelope, PRIORITY_NORMAL};
use crate::channels::Channels;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::store::outbox::{apply_marks, Mark, OutboxRow};
use crate::store::writer::InboxWriter;
use crate::store::{Store, StoreError};
use crate::wecom::api::{ApiClient, ApiError, ErrorClass};

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct OutboxCounters {
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    pub deferred: AtomicU64,
    pub dead: AtomicU64,
}

pub(super) struct Inner {
    pub(super) config: Arc<Config>,
    pub(super) channels: Arc<Channels>,
    pub(super) store: Store,
    pub(super) writer: Option<InboxWriter>,
    pub(super) api: ApiClient,
    pub(super) tokens: Tokens,
    pub(super) limits: Limits,
    pub(super) clock: SharedClock,
    pub(super) wake: Notify,
    pub(super) worker_id: String,
    pub(super) counters: OutboxCounters,
    pub(super) links: super::links::Links,
}

/// The outbox of this process: enqueue, wake, and run workers. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    pub(super) inner: Arc<Inner>,
}

/// The name handlers and the API use.
pub type OutboxHandle = Outbox;

/// Why a send failed.
pub(super) enum Failure {
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
        let tokens = Tokens::new(
            api.clone(),
            store.clone(),
            Arc::clone(&clock),
            config.api.timeout_ms,
        );
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
                links: super::links::Links::default(),
            }),
        })
    }

    /// This process's AI-bot connections, which carry `aibot_push` rows.
    pub fn aibot_links(&self) -> &super::links::Links {
        &self.inner.links
    }

    pub fn counters(&self) -> &OutboxCounters {
        &self.inner.counters
    }

    pub fn api(&self) -> &ApiClient {
        &self.inner.api
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
    pub(super) async fn with_db<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
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

    pub(super) async fn apply(&self, marks: Vec<Mark>) -> Result<(), StoreError> {
        let worker = self.inner.worker_id.clone();
        let now = self.inner.clock.now_ms();
        self.with_db(move |store| async move {
            let mut tx = store.begin_write().await?;
            apply_marks(&mut tx, &worker, &marks, now).await?;
            tx.commit().await
        })
        .await?
    }

    pub(super) fn count(&self, marks: &[Mark]) {
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
        let span = tracing::debug_span!("outbox_send", row = row.id, kind = %row.kind, channel = %row.channel_id);
        let result = tracing::Instrument::instrument(self.send(&row, channel.kind), span).await;
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

    pub(super) async fn muted(&self, channel_id: &str, user: &str) -> bool {
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
            // Per conversation: 30 per minute and 1000 per hour, replies and pushes together.
            "aibot_push" => {
                keys.push((
                    format!("conv:{}:{}", row.channel_id, row.recipient),
                    Rule::Window {
                        limit: 30,
                        window_ms: 60_000,
                    },
                ));
                keys.push((
                    format!("conv_h:{}:{}", row.channel_id, row.recipient),
                    Rule::Window {
                        limit: 1000,
                        window_ms: 3_600_000,
                    },
                ));
            }
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
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "yunying".into())
}
