//! Callback → verified, decrypted, normalized [`Event`](crate::events::Event) → durable inbox
//! (group commit) → handlers → passive reply. Every rejection is an
//! [`IngressError`](crate::ingress::IngressError) with a 4xx status and a short reason; a database
//! outage is a 503 so the platform retries; nothing panics.

mod chain;
pub mod late;
pub mod limits;
pub mod normalize;
mod reply;
pub mod rules;
mod sweep;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::store::writer::{InboxWriter, WriteError};
pub use reply::ReplyShape;

use crate::bot::{BotContext, Dispatcher};
use crate::channels::{Channel, Channels};
use crate::config::{ChannelKind, MpMode};
use crate::events::Event;
use crate::store::inbox::{Accepted, NewInbox};
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
    /// Failed runs of an event before it is set aside as dead.
    pub max_attempts: i64,
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
    /// Where late answers go (absent when the outbox is off).
    outbox: Option<crate::outbox::Outbox>,
    /// Events this process is running the chain for, by inbox id: a duplicate delivery racing
    /// the first copy waits here for its answer.
    in_flight: chain::InFlight,
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
        outbox: Option<crate::outbox::Outbox>,
        metrics: Metrics,
        options: IngressOptions,
    ) -> Self {
        Self(Arc::new(IngressParts {
            channels,
            writer,
            dispatcher,
            bot: Arc::new(bot),
            outbox,
            metrics,
            options,
            in_flight: chain::InFlight::default(),
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
        let span = tracing::debug_span!("ingress", channel = channel_id);
        let result =
            tracing::Instrument::instrument(self.receive_inner(channel_id, q, headers, body), span)
                .await;
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
            .accept(row, Arc::clone(&event) as crate::store::writer::Delivery)
            .await
            .map_err(|e| match e {
                WriteError::Unavailable(m) => IngressError::Unavailable(m),
                WriteError::Failed(m) => IngressError::Internal(m),
            })?;
        Ok(match accepted {
            Accepted::New { id } => (self.run_handlers(id, event).await, Outcome::Accepted),
            Accepted::Duplicate {
                reply,
                processed: true,
                ..
            } => (reply, Outcome::Duplicate),
            Accepted::Duplicate { id, .. } => {
                (self.first_copy_answer(id).await, Outcome::Duplicate)
            }
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
}
