//! Callback → verified, decrypted, normalized [`Event`](crate::events::Event) → durable inbox
//! (group commit) → handlers → passive reply. Every rejection is an
//! [`IngressError`](crate::ingress::IngressError) with a 4xx status and a short reason; a database
//! outage is a 503 so the platform retries; nothing panics.

pub mod limits;
pub mod normalize;
mod reply;
pub mod writer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

pub use reply::ReplyShape;
pub use writer::{InboxWriter, WriteError, WriterOptions};

use crate::bot::{BotContext, Dispatcher};
use crate::channels::{Channel, Channels};
use crate::config::{ChannelKind, MpMode};
use crate::events::Event;
use crate::store::inbox::{Accepted, NewInbox, Processed};
use crate::telemetry::{Metrics, Outcome};
use crate::wecom::crypto::{self, CryptoError};
use crate::wecom::gateway;
use crate::wecom::xml::{self, ParseError};

/// Query parameters WeCom and WeChat put on callback URLs (each URL-decoded exactly once).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct CallbackQuery {
    pub msg_signature: Option<String>,
    pub signature: Option<String>,
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    pub echostr: Option<String>,
    pub encrypt_type: Option<String>,
}

/// Gateway signature headers.
#[derive(Debug, Default, Clone)]
pub struct GatewayHeaders {
    pub timestamp: Option<String>,
    pub signature: Option<String>,
}

/// Why a callback was refused.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("unknown channel")]
    UnknownChannel,
    #[error("method not supported for this channel kind")]
    MethodNotAllowed,
    #[error("missing query parameter or header `{0}`")]
    Missing(&'static str),
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// The channel's configuration does not take this kind of delivery.
    #[error("{0}")]
    Refused(&'static str),
    #[error("storage unavailable")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl IngressError {
    /// HTTP status: 4xx for the sender's fault, 503 for ours-but-temporary.
    pub fn status(&self) -> u16 {
        match self {
            Self::UnknownChannel => 404,
            Self::MethodNotAllowed => 405,
            Self::Missing(_) | Self::Parse(_) | Self::Refused(_) => 400,
            Self::Crypto(CryptoError::BadSignature) => 401,
            Self::Crypto(CryptoError::StaleTimestamp { .. } | CryptoError::ReceiveIdMismatch) => {
                403
            }
            Self::Crypto(_) => 400,
            Self::Unavailable(_) => 503,
            Self::Internal(_) => 500,
        }
    }
}

/// The answer to a callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackResponse {
    /// Raw text body (URL verification echo).
    Text(String),
    Xml(String),
    Json(String),
    /// 200 with an empty body: "received, no passive reply".
    Empty,
}

/// Settings of the ingress pipeline.
#[derive(Debug, Clone)]
pub struct IngressOptions {
    pub replay_window_secs: i64,
    pub handler_budget: Duration,
    pub sweep_after: Duration,
    /// Platform times further from arrival than these are replaced by the arrival time.
    pub future_skew_secs: i64,
    pub past_skew_secs: i64,
    /// Hosts an AI bot's `response_url` may point at.
    pub response_url_hosts: Vec<String>,
}

/// Whether the passive answer went out without the chain's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Late {
    Pending,
    TimedOut,
    Done,
}

/// The callback pipeline. Cheap to clone (one shared part): every delivery clones it once.
#[derive(Clone)]
pub struct Ingress(Arc<IngressParts>);

/// What an [`Ingress`] shares between its clones.
pub struct IngressParts {
    channels: Arc<Channels>,
    writer: InboxWriter,
    dispatcher: Dispatcher,
    /// Shared, so that after-handlers going on in a task of their own take it for one count.
    bot: Arc<BotContext>,
    metrics: Metrics,
    options: IngressOptions,
}

impl std::ops::Deref for Ingress {
    type Target = IngressParts;

    fn deref(&self) -> &IngressParts {
        &self.0
    }
}

/// A verified, parsed delivery waiting for the inbox.
struct Verified {
    event: Event,
    shape: ReplyShape,
}

impl Ingress {
    pub fn new(
        channels: Arc<Channels>,
        writer: InboxWriter,
        dispatcher: Dispatcher,
        bot: BotContext,
        metrics: Metrics,
        options: IngressOptions,
    ) -> Self {
        Self(Arc::new(IngressParts {
            channels,
            writer,
            dispatcher,
            bot: Arc::new(bot),
            metrics,
            options,
        }))
    }

    /// The clock the pipeline runs on.
    pub fn clock(&self) -> &crate::clock::SharedClock {
        &self.bot.clock
    }

    /// The group-commit writer (tests use it to simulate a database outage).
    pub fn writer(&self) -> &InboxWriter {
        &self.writer
    }

    fn channel(&self, channel_id: &str) -> Result<&Arc<Channel>, IngressError> {
        self.channels
            .get(channel_id)
            .ok_or(IngressError::UnknownChannel)
    }

    fn check_time(&self, timestamp: &str) -> Result<i64, IngressError> {
        Ok(crypto::check_replay_window(
            timestamp,
            self.bot.clock.now_secs(),
            self.options.replay_window_secs,
        )?)
    }

    /// URL verification (GET): WeCom gets the decrypted echo, WeChat MP the echostr verbatim.
    pub fn verify_url(
        &self,
        channel_id: &str,
        q: &CallbackQuery,
    ) -> Result<CallbackResponse, IngressError> {
        let result = self.verify_url_inner(channel_id, q);
        self.count(channel_id, &result.as_ref().map(|_| Outcome::Verified));
        result
    }

    fn verify_url_inner(
        &self,
        channel_id: &str,
        q: &CallbackQuery,
    ) -> Result<CallbackResponse, IngressError> {
        let channel = self.channel(channel_id)?;
        if channel.kind == ChannelKind::Gateway {
            return Err(IngressError::MethodNotAllowed);
        }
        let timestamp = q
            .timestamp
            .as_deref()
            .ok_or(IngressError::Missing("timestamp"))?;
        let nonce = q.nonce.as_deref().ok_or(IngressError::Missing("nonce"))?;
        let echostr = q
            .echostr
            .as_deref()
            .ok_or(IngressError::Missing("echostr"))?;
        self.check_time(timestamp)?;
        match channel.kind {
            ChannelKind::Gateway => Err(IngressError::MethodNotAllowed),
            ChannelKind::WechatMp => {
                let token = channel.token.as_deref().unwrap_or_default();
                let sig = q
                    .signature
                    .as_deref()
                    .ok_or(IngressError::Missing("signature"))?;
                crypto::verify_signature(token, timestamp, nonce, None, sig)?;
                Ok(CallbackResponse::Text(echostr.to_owned()))
            }
            ChannelKind::WecomApp | ChannelKind::WecomRobot | ChannelKind::WecomAibot => {
                let crypt = channel
                    .crypt
                    .as_ref()
                    .ok_or_else(|| IngressError::Internal("channel without keys".into()))?;
                let sig = q
                    .msg_signature
                    .as_deref()
                    .ok_or(IngressError::Missing("msg_signature"))?;
                let echo = crypt.open(sig, timestamp, nonce, echostr)?;
                let echo = String::from_utf8(echo).map_err(|_| CryptoError::NotUtf8)?;
                Ok(CallbackResponse::Text(echo))
            }
        }
    }

    /// A delivery (POST): verify, decrypt, normalize, write durably, run handlers, reply.
    pub async fn receive(
        &self,
        channel_id: &str,
        q: &CallbackQuery,
        headers: &GatewayHeaders,
        body: &[u8],
    ) -> Result<CallbackResponse, IngressError> {
        let result = self.receive_inner(channel_id, q, headers, body).await;
        self.count(channel_id, &result.as_ref().map(|(_, o)| *o));
        result.map(|(r, _)| r)
    }

    fn count<T>(&self, channel_id: &str, result: &Result<Outcome, T>)
    where
        T: std::borrow::Borrow<IngressError>,
    {
        let outcome = match result {
            Ok(o) => *o,
            Err(e) if matches!(e.borrow(), IngressError::Unavailable(_)) => Outcome::Unavailable,
            Err(_) => Outcome::Rejected,
        };
        self.metrics.callback(channel_id, outcome);
    }

    async fn receive_inner(
        &self,
        channel_id: &str,
        q: &CallbackQuery,
        headers: &GatewayHeaders,
        body: &[u8],
    ) -> Result<(CallbackResponse, Outcome), IngressError> {
        let channel = Arc::clone(self.channel(channel_id)?);
        let verified = self.verify_and_parse(&channel, q, headers, body)?;
        let (reply, outcome) = self.deliver(&channel, verified.event).await?;
        let response = match reply {
            Some(text) => {
                reply::render(&channel, &verified.shape, &text, self.bot.clock.now_secs())
            }
            None => verified.shape.empty_response(),
        };
        Ok((response, outcome))
    }

    /// An event that arrived over a long connection (already authenticated by the transport):
    /// durable inbox, dedupe, handlers; returns the reply text. Counted like a callback.
    pub async fn deliver_event(
        &self,
        channel_id: &str,
        event: Event,
    ) -> Result<Option<String>, IngressError> {
        let channel = Arc::clone(self.channel(channel_id)?);
        let result = self.deliver(&channel, event).await;
        self.count(channel_id, &result.as_ref().map(|(_, o)| *o));
        result.map(|(r, _)| r)
    }

    /// Waits until the after-handlers of the events handled so far are done (shutdown waits
    /// for them; tests read their effects after it).
    pub async fn after_handlers_settled(&self) {
        self.dispatcher.after_tasks().settled().await;
    }

    /// The channel registry (the long-connection clients normalize with it).
    pub fn channels(&self) -> &Arc<Channels> {
        &self.channels
    }

    async fn deliver(
        &self,
        channel: &Arc<Channel>,
        mut event: Event,
    ) -> Result<(Option<String>, Outcome), IngressError> {
        self.bound(&mut event)?;
        let event = Arc::new(event);
        let row = NewInbox {
            channel_id: channel.id.clone(),
            dedupe_key: event.dedupe_key.clone(),
            kind: event.kind.name().to_owned(),
            sender: event.actor().map(|u| u.id.clone()),
            group_id: event.group().map(|g| g.id.clone()),
            occurred_at: event.occurred_at.saturating_mul(1000),
            received_at: self.bot.clock.now_ms(),
            payload: serde_json::to_string(event.as_ref())
                .map_err(|e| IngressError::Internal(e.to_string()))?,
        };
        let accepted = self
            .writer
            .accept(row, Arc::clone(&event))
            .await
            .map_err(|e| match e {
                WriteError::Unavailable(m) => IngressError::Unavailable(m),
                WriteError::Failed(m) => IngressError::Internal(m),
            })?;
        Ok(match accepted {
            Accepted::New { id } => (self.run_handlers(id, event).await, Outcome::Accepted),
            Accepted::Duplicate { reply, .. } => (reply, Outcome::Duplicate),
        })
    }

    fn verify_and_parse(
        &self,
        channel: &Channel,
        q: &CallbackQuery,
        headers: &GatewayHeaders,
        body: &[u8],
    ) -> Result<Verified, IngressError> {
        if channel.kind == ChannelKind::Gateway {
            return self.verify_gateway(channel, headers, body);
        }
        let timestamp = q
            .timestamp
            .as_deref()
            .ok_or(IngressError::Missing("timestamp"))?;
        let nonce = q.nonce.as_deref().ok_or(IngressError::Missing("nonce"))?;
        let encrypted = q.encrypt_type.as_deref() == Some("aes");
        let (inner, json_envelope, unsigned) = match channel.mp_mode {
            Some(MpMode::Safe) if !encrypted => {
                return Err(IngressError::Refused(
                    "this Official Account channel is in safe mode: only encrypted deliveries \
                 (encrypt_type=aes with msg_signature) are accepted",
                ))
            }
            Some(MpMode::Plaintext) if encrypted => return Err(IngressError::Refused(
                "this Official Account channel is in plaintext mode: encrypted deliveries need \
                 encoding_aes_key and mode = \"safe\" or \"compatible\"",
            )),
            Some(_) if !encrypted => {
                // The signature covers token, timestamp and nonce only, not the body.
                let sig = q
                    .signature
                    .as_deref()
                    .ok_or(IngressError::Missing("signature"))?;
                let token = channel.token.as_deref().unwrap_or_default();
                crypto::verify_signature(token, timestamp, nonce, None, sig)?;
                (body.to_vec(), false, true)
            }
            _ => {
                let sig = q
                    .msg_signature
                    .as_deref()
                    .ok_or(IngressError::Missing("msg_signature"))?;
                // Only the ciphertext is taken out of the envelope before the signature over it
                // is checked; nothing else an unauthenticated sender wrote is parsed.
                let envelope = xml::envelope_encrypt(body)?;
                let crypt = channel
                    .crypt
                    .as_ref()
                    .ok_or_else(|| IngressError::Internal("channel without keys".into()))?;
                crypto::verify_signature(
                    crypt.token(),
                    timestamp,
                    nonce,
                    Some(&envelope.encrypt),
                    sig,
                )?;
                (crypt.decrypt(&envelope.encrypt)?, envelope.json, false)
            }
        };
        let ts = self.check_time(timestamp)?;
        let fields = xml::parse_any(&inner)?;
        let mut event = match channel.kind {
            ChannelKind::WecomApp => normalize::wecom_app(channel, &fields, ts)?,
            ChannelKind::WecomRobot => normalize::wecom_robot(channel, &fields, ts)?,
            ChannelKind::WecomAibot => normalize::wecom_aibot(channel, &fields, ts)?,
            ChannelKind::WechatMp => normalize::wechat_mp(channel, &fields, ts)?,
            ChannelKind::Gateway => {
                return Err(IngressError::Internal("unreachable gateway branch".into()))
            }
        };
        event.unsigned_body = unsigned;
        let shape = ReplyShape::for_event(channel, &event, &fields, json_envelope, unsigned);
        Ok(Verified { event, shape })
    }

    fn verify_gateway(
        &self,
        channel: &Channel,
        headers: &GatewayHeaders,
        body: &[u8],
    ) -> Result<Verified, IngressError> {
        let timestamp = headers
            .timestamp
            .as_deref()
            .ok_or(IngressError::Missing(gateway::TIMESTAMP_HEADER))?;
        let signature = headers
            .signature
            .as_deref()
            .ok_or(IngressError::Missing(gateway::SIGNATURE_HEADER))?;
        let secret = channel.gateway_secret.as_deref().unwrap_or_default();
        if !gateway::verify(secret, timestamp, body, signature) {
            return Err(CryptoError::BadSignature.into());
        }
        let ts = self.check_time(timestamp)?;
        let event = normalize::gateway(channel, body, ts)?;
        let shape = ReplyShape::GatewayJson {
            mention: event
                .message()
                .filter(|m| m.group.is_some())
                .map(|m| m.sender.id.clone()),
        };
        Ok(Verified { event, shape })
    }

    /// Bounds what a delivery carries before it is stored: identifiers, names, the time, and a
    /// reply URL only to an allowed host.
    fn bound(&self, event: &mut Event) -> Result<(), IngressError> {
        limits::check_event(event)?;
        if let Some(url) = &event.reply_url {
            if !crate::outbox::response_url_allowed(url, &self.options.response_url_hosts) {
                tracing::warn!(
                    channel = %event.channel_id,
                    host = %xml::clean(url::Url::parse(url).ok().as_ref().and_then(url::Url::host_str).unwrap_or("?")),
                    "response_url host not allowed (aibot.response_url_hosts); late answers will not go there"
                );
                event.reply_url = None;
            }
        }
        let arrival = self.bot.clock.now_secs();
        let (future, past) = (self.options.future_skew_secs, self.options.past_skew_secs);
        if let Some(claimed) = limits::clamp_time(event, arrival, future, past) {
            tracing::warn!(
                channel = %event.channel_id,
                key = %event.dedupe_key,
                claimed,
                arrival,
                "platform time outside the skew window; using the arrival time"
            );
        }
        Ok(())
    }

    /// Runs the handler chain within the budget. A chain that overruns keeps going in the
    /// background and records its reply when done; the platform gets an empty answer now.
    async fn run_handlers(&self, inbox_id: i64, event: Arc<Event>) -> Option<String> {
        let this = self.clone();
        let started = Instant::now();
        // Who answers: the passive reply if the chain is in time; else, where the platform gave a
        // one-shot reply URL (the AI bot), the late reply goes there through the outbox.
        let late = Arc::new(std::sync::Mutex::new(Late::Pending));
        let late_in_task = Arc::clone(&late);
        let mut chain = Box::pin(async move {
            // On a handler error nothing is marked: the sweeper runs the event again later.
            let reply = this.dispatcher.dispatch(&this.bot, &event).await.ok()?;
            this.metrics
                .handler_latency(started.elapsed().as_secs_f64());
            let mark = Processed {
                id: inbox_id,
                at: this.bot.clock.now_ms(),
                reply: reply.clone(),
            };
            if reply.is_some() {
                // A retry must find the reply; without one, a lost mark only costs a re-run.
                if let Err(e) = this.writer.mark_processed_durably(mark).await {
                    tracing::warn!(inbox_id, error = %e, "could not store the reply; the sweeper will re-run this event");
                }
            } else {
                this.writer.mark_processed(mark);
            }
            let missed = {
                let mut state = late_in_task.lock().unwrap_or_else(|p| p.into_inner());
                let missed = *state == Late::TimedOut;
                *state = Late::Done;
                missed
            };
            if let (true, Some(text), Some(url)) = (missed, &reply, &event.reply_url) {
                this.answer_late(&event, url, text).await;
            }
            reply
        });
        // Most chains never wait on anything (a chat line no handler wants): finished on the
        // first poll, they need no task and no timer. The rest go on in a task of their own.
        if let Some(reply) = crate::bot::poll_once(&mut chain).await {
            return reply;
        }
        let task = tokio::spawn(chain);
        match tokio::time::timeout(self.options.handler_budget, task).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(join)) => {
                tracing::error!(inbox_id, error = %join, "handler task panicked");
                None
            }
            Err(_) => {
                let mut state = late.lock().unwrap_or_else(|p| p.into_inner());
                if *state == Late::Done {
                    // Finished between the deadline and now: the stored reply is for retries.
                    drop(state);
                    return None;
                }
                *state = Late::TimedOut;
                drop(state);
                self.metrics.handler_timeout();
                tracing::warn!(
                    inbox_id,
                    "handlers missed the reply budget; answering without a passive reply"
                );
                None
            }
        }
    }

    /// Queues a reply that missed the passive answer for the platform's reply URL.
    async fn answer_late(&self, event: &Event, url: &str, text: &str) {
        let Some(outbox) = &self.bot.outbox else {
            return;
        };
        let now = self.bot.clock.now_ms();
        let env = crate::outbox::Envelope {
            idem_key: format!("late_reply:{}:{}", event.channel_id, event.dedupe_key),
            channel_id: event.channel_id.clone(),
            message: crate::outbox::Outbound::ReplyUrl {
                url: url.to_owned(),
                markdown: text.to_owned(),
            },
            priority: crate::outbox::PRIORITY_URGENT,
            not_before_ms: now,
            // The URL is valid for an hour (Doc 101138).
            expires_at_ms: Some(now + 3_600_000),
        };
        if let Err(e) = outbox.enqueue(env).await {
            tracing::warn!(error = %e, "late reply not queued");
        }
    }

    /// Re-runs accepted deliveries that were never marked processed (a crash between the
    /// commit and the handlers). Handlers are idempotent per event, so a re-run is safe.
    /// Returns how many rows were handled.
    pub async fn sweep(&self) -> Result<usize, crate::store::StoreError> {
        let cutoff = self.bot.clock.now_ms()
            - i64::try_from(self.options.sweep_after.as_millis()).unwrap_or(i64::MAX);
        let rows = self.bot.store.inbox_unprocessed(cutoff, 500).await?;
        let count = rows.len();
        for row in rows {
            let reply = match serde_json::from_str::<Event>(&row.payload) {
                Ok(event) => match self.dispatcher.dispatch(&self.bot, &Arc::new(event)).await {
                    Ok(reply) => reply,
                    // Still failing: leave it for the next round.
                    Err(_) => continue,
                },
                Err(e) => {
                    tracing::error!(inbox_id = row.id, error = %e, "stored event does not parse; marking processed");
                    None
                }
            };
            if reply.is_some() {
                // Too late for a passive reply; active delivery goes through the outbox.
                tracing::info!(
                    inbox_id = row.id,
                    "swept event produced a reply; stored for retries"
                );
            }
            self.bot
                .store
                .inbox_mark_processed(&Processed {
                    id: row.id,
                    at: self.bot.clock.now_ms(),
                    reply,
                })
                .await?;
        }
        Ok(count)
    }
}
