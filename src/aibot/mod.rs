//! The AI bot's long connection (智能机器人长连接, wecom-protocol.md §3.4): Yunying dials out, so no
//! public URL, certificate or trusted IP is needed. One task per `websocket`-mode channel:
//!
//! - only the lease holder connects (one live connection per bot across replicas: a second
//!   subscribe would kick the first, and two replicas reconnecting blindly kick each other forever);
//! - subscribe with bot id + secret, ping every `heartbeat_secs`, two unanswered pings → redial
//!   with capped exponential backoff and jitter;
//! - `aibot_msg_callback` / `aibot_event_callback` frames go through the same inbox as callbacks
//!   (dedupe by `msgid`), and replies go back as `aibot_respond_msg` / `aibot_respond_welcome_msg`
//!   echoing the frame's `req_id`;
//! - `disconnected_event` (another connection took over) is not answered by redialling at once:
//!   the task backs off and checks the lease first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use rand::Rng as _;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::{AibotConfig, ChannelKind, Config};
use crate::ingress::{normalize, Ingress};
use crate::store::Store;
use crate::wecom::xml;

pub use crate::outbox::links::{Links, Push, PushAck};

/// A connection up this long counts as healthy: its drop is not a failure in a row.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

type WsSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type WsSink = futures_util::stream::SplitSink<WsSocket, Message>;
type WsStream = futures_util::stream::SplitStream<WsSocket>;

pub const DEFAULT_WS_URL: &str = "wss://openws.work.weixin.qq.com";

/// One bot's long connection.
#[derive(Clone)]
pub struct Link {
    channel_id: String,
    url: String,
    bot_id: String,
    secret: String,
    settings: AibotConfig,
    ingress: Ingress,
    store: Store,
    clock: SharedClock,
    holder: String,
    links: Links,
}

/// Why a connection ended.
enum Ended {
    /// Another connection took over (`disconnected_event`): back off, re-check the lease.
    Kicked,
    /// The lease went to another replica.
    LostLease,
    /// Heartbeats unanswered, closed, or failed: redial with backoff.
    Dropped(String),
    Shutdown,
}

/// Starts a task for every enabled `wecom_aibot` channel in websocket mode.
pub fn spawn_all(
    config: &Config,
    ingress: &Ingress,
    store: &Store,
    clock: &SharedClock,
    links: &Links,
    shutdown: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let holder = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
    config
        .channels
        .iter()
        .filter(|(_, c)| {
            c.enabled && c.kind == ChannelKind::WecomAibot && c.mode.as_deref() == Some("websocket")
        })
        .map(|(id, c)| {
            let link = Link {
                channel_id: id.clone(),
                url: c.ws_url.clone().unwrap_or_else(|| DEFAULT_WS_URL.into()),
                bot_id: c.bot_id.clone().unwrap_or_default(),
                secret: c
                    .secret
                    .as_ref()
                    .map(|s| s.expose().to_owned())
                    .unwrap_or_default(),
                settings: config.aibot.clone(),
                ingress: ingress.clone(),
                store: store.clone(),
                clock: Arc::clone(clock),
                holder: holder.clone(),
                links: links.clone(),
            };
            let shutdown = shutdown.clone();
            tokio::spawn(async move { link.run(shutdown).await })
        })
        .collect()
}

fn req_id(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}

impl Link {
    async fn run(self, shutdown: CancellationToken) {
        let lease_ms = self.settings.lease_secs * 1000;
        let mut failures: u32 = 0;
        while !shutdown.is_cancelled() {
            let now = self.clock.now_ms();
            let held = self
                .store
                .acquire_lease(&self.lease_key(), &self.holder, now, now + lease_ms)
                .await
                .unwrap_or(false);
            self.links.lease_looked();
            if !held {
                // Someone else holds the bot; look again within the lease time.
                tracing::debug!(channel = %self.channel_id, "the long connection is held by another process");
                if self
                    .pause(
                        Duration::from_millis(u64::try_from(lease_ms / 3).unwrap_or(1000)),
                        &shutdown,
                    )
                    .await
                {
                    break;
                }
                continue;
            }
            let connected = std::time::Instant::now();
            let ended = self.connect_and_serve(&shutdown).await;
            // A connection that stayed up a while was healthy: the next drop starts the backoff over.
            if connected.elapsed() >= HEALTHY_AFTER {
                failures = 0;
            }
            let wait = match &ended {
                Ended::Shutdown => break,
                Ended::LostLease => Duration::from_millis(10),
                Ended::Kicked => {
                    tracing::warn!(channel = %self.channel_id, "kicked by another connection; backing off before checking the lease");
                    failures = failures.saturating_add(1);
                    self.backoff(failures.max(3))
                }
                Ended::Dropped(reason) => {
                    tracing::warn!(channel = %self.channel_id, %reason, "long connection dropped");
                    failures = failures.saturating_add(1);
                    self.backoff(failures)
                }
            };
            if matches!(ended, Ended::Kicked) {
                // Let the lease lapse for the other side unless it is really ours.
                let _ = self
                    .store
                    .release_lease(&self.lease_key(), &self.holder)
                    .await;
            }
            if self.pause(wait, &shutdown).await {
                break;
            }
        }
        let _ = self
            .store
            .release_lease(&self.lease_key(), &self.holder)
            .await;
    }

    fn lease_key(&self) -> String {
        format!("aibot:{}", self.channel_id)
    }

    /// Capped exponential backoff with full jitter.
    fn backoff(&self, failures: u32) -> Duration {
        let cap = self.settings.reconnect_max_secs.max(1) * 1000;
        let ceiling = (500_u64 << failures.min(10)).min(cap);
        Duration::from_millis(rand::thread_rng().gen_range(ceiling / 2..=ceiling))
    }

    /// Sleeps unless shut down first; `true` when shut down.
    async fn pause(&self, wait: Duration, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            () = tokio::time::sleep(wait) => false,
            () = shutdown.cancelled() => true,
        }
    }

    async fn connect_and_serve(&self, shutdown: &CancellationToken) -> Ended {
        let (sink, stream) = match self.open().await {
            Ok(halves) => halves,
            Err(ended) => return ended,
        };
        tracing::info!(channel = %self.channel_id, "long connection up");
        self.serve(sink, stream, shutdown).await
    }

    /// Dials, subscribes, and waits for the subscribe's acknowledgement.
    async fn open(&self) -> Result<(WsSink, WsStream), Ended> {
        let (socket, _) = match tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(self.url.as_str()),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(Ended::Dropped(format!("connect: {e}"))),
            Err(_) => return Err(Ended::Dropped("connect timed out".into())),
        };
        let (mut sink, mut stream) = socket.split();
        let subscribe_id = req_id("aibot_subscribe");
        let subscribe = json!({
            "cmd": "aibot_subscribe",
            "headers": { "req_id": subscribe_id },
            "body": { "bot_id": self.bot_id, "secret": self.secret },
        });
        if sink
            .send(Message::Text(subscribe.to_string().into()))
            .await
            .is_err()
        {
            return Err(Ended::Dropped("subscribe not sent".into()));
        }
        // The subscribe must be acknowledged before anything else counts.
        let ack = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(frame)) = stream.next().await {
                if let Message::Text(t) = frame {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                    if v["headers"]["req_id"] == subscribe_id {
                        return Some(v);
                    }
                }
            }
            None
        })
        .await;
        match ack {
            Ok(Some(v)) if v["errcode"].as_i64().unwrap_or(0) == 0 => {}
            Ok(Some(v)) => {
                return Err(Ended::Dropped(format!(
                    "subscribe refused: {} {}",
                    v["errcode"], v["errmsg"]
                )))
            }
            _ => return Err(Ended::Dropped("no answer to subscribe".into())),
        }
        Ok((sink, stream))
    }

    /// The connection's life: frames in, answers and pushes out, heartbeats and lease renewals.
    async fn serve(
        &self,
        mut sink: WsSink,
        mut stream: WsStream,
        shutdown: &CancellationToken,
    ) -> Ended {
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
        let (push_tx, mut push_rx) = mpsc::unbounded_channel::<Push>();
        self.links.set(&self.channel_id, Some(push_tx));
        let mut pending: HashMap<String, PushAck> = HashMap::new();
        let heartbeat = Duration::from_secs(self.settings.heartbeat_secs.max(1));
        let mut ping_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        let lease_every = Duration::from_millis(
            u64::try_from(self.settings.lease_secs * 1000 / 3).unwrap_or(1000),
        );
        let mut lease_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + lease_every, lease_every);
        let mut unanswered = 0_u32;
        let mut last_ping = String::new();
        let ended = loop {
            tokio::select! {
                () = shutdown.cancelled() => break Ended::Shutdown,
                frame = stream.next() => match frame {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                        if let Some(ended) = self.on_frame(v, &out_tx, &mut pending, &last_ping, &mut unanswered) {
                            break ended;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => break Ended::Dropped("closed by the server".into()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break Ended::Dropped(e.to_string()),
                },
                _ = ping_tick.tick() => {
                    if unanswered >= 2 {
                        break Ended::Dropped("two heartbeats unanswered".into());
                    }
                    last_ping = req_id("ping");
                    let ping = json!({ "cmd": "ping", "headers": { "req_id": last_ping } });
                    if sink.send(Message::Text(ping.to_string().into())).await.is_err() {
                        break Ended::Dropped("ping not sent".into());
                    }
                    unanswered += 1;
                }
                _ = lease_tick.tick() => {
                    let now = self.clock.now_ms();
                    let until = now + self.settings.lease_secs * 1000;
                    self.links.lease_looked();
                    if !self.store.acquire_lease(&self.lease_key(), &self.holder, now, until).await.unwrap_or(false) {
                        break Ended::LostLease;
                    }
                }
                Some(out) = out_rx.recv() => {
                    if sink.send(Message::Text(out.into())).await.is_err() {
                        break Ended::Dropped("reply not sent".into());
                    }
                }
                Some(push) = push_rx.recv() => {
                    let id = req_id("aibot_send_msg");
                    let frame = json!({ "cmd": "aibot_send_msg", "headers": { "req_id": id }, "body": push.body });
                    if sink.send(Message::Text(frame.to_string().into())).await.is_err() {
                        let _ = push.done.send(Err((-1, "connection lost".into())));
                        break Ended::Dropped("push not sent".into());
                    }
                    pending.insert(id, push.done);
                }
            }
        };
        self.links.set(&self.channel_id, None);
        for (_, done) in pending.drain() {
            let _ = done.send(Err((-1, "connection closed before the ack".into())));
        }
        let _ = sink.send(Message::Close(None)).await;
        ended
    }

    /// One text frame: a callback to answer, a kick, or the ack of a ping or a push. `Some` when
    /// the connection ends with it.
    fn on_frame(
        &self,
        v: Value,
        out_tx: &mpsc::UnboundedSender<String>,
        pending: &mut HashMap<String, PushAck>,
        last_ping: &str,
        unanswered: &mut u32,
    ) -> Option<Ended> {
        match v["cmd"].as_str() {
            Some("aibot_msg_callback") => self.answer(v, "aibot_respond_msg", out_tx.clone()),
            Some("aibot_event_callback") => {
                if v["body"]["event"]["eventtype"] == "disconnected_event" {
                    return Some(Ended::Kicked);
                }
                self.answer(v, "aibot_respond_welcome_msg", out_tx.clone());
            }
            _ => {
                let id = v["headers"]["req_id"].as_str().unwrap_or_default();
                if id == last_ping {
                    *unanswered = 0;
                } else if let Some(done) = pending.remove(id) {
                    let code = v["errcode"].as_i64().unwrap_or(0);
                    let outcome = if code == 0 {
                        Ok(())
                    } else {
                        Err((code, v["errmsg"].as_str().unwrap_or_default().to_owned()))
                    };
                    let _ = done.send(outcome);
                }
            }
        }
        None
    }

    /// Runs a callback frame through the inbox and handlers off the read loop; the reply goes
    /// back echoing the frame's `req_id`.
    fn answer(&self, frame: Value, respond_cmd: &'static str, out: mpsc::UnboundedSender<String>) {
        let link = self.clone();
        tokio::spawn(async move {
            let req_id = frame["headers"]["req_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let body = frame["body"].to_string();
            let Some(channel) = link.ingress.channels().get(&link.channel_id).cloned() else {
                return;
            };
            let event = xml::parse_any(body.as_bytes())
                .map_err(|e| e.to_string())
                .and_then(|fields| {
                    normalize::wecom_aibot(&channel, &fields, link.clock.now_secs())
                        .map_err(|e| e.to_string())
                });
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(channel = %link.channel_id, error = %e, "unreadable frame skipped");
                    return;
                }
            };
            let welcome = respond_cmd == "aibot_respond_welcome_msg";
            match link.ingress.deliver_event(&link.channel_id, event).await {
                Ok(Some(text)) => {
                    let body = if welcome {
                        json!({ "msgtype": "text", "text": { "content": text } })
                    } else {
                        json!({ "msgtype": "stream", "stream": {
                            "id": format!("{:016x}", rand::random::<u64>()), "finish": true, "content": text } })
                    };
                    let reply = json!({ "cmd": respond_cmd, "headers": { "req_id": req_id }, "body": body });
                    let _ = out.send(reply.to_string());
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(channel = %link.channel_id, error = %e, "long-connection message not accepted")
                }
            }
        });
    }
}
