//! The stand-in's AI-bot long-connection endpoint (`GET /ws`): subscribe (a second subscribe of
//! the same bot kicks the first with `disconnected_event`), ping acks, every client frame kept,
//! and callbacks pushed on request.

use std::collections::HashMap;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State as AxState;
use axum::response::Response;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{lock, Shared};

/// What the endpoint remembers.
#[derive(Debug, Default)]
pub struct AibotState {
    /// bot id → (connection number, its outbox).
    pub live: HashMap<String, (u64, mpsc::UnboundedSender<String>)>,
    pub subscribes: u64,
    pub connections: u64,
    /// Every client frame except pings.
    pub frames: Vec<Value>,
    pub ignore_pings: bool,
}

pub(super) async fn upgrade(ws: WebSocketUpgrade, AxState(state): AxState<Shared>) -> Response {
    ws.on_upgrade(move |socket| session(state, socket))
}

const CLOSE: &str = "\u{0}close";

async fn session(state: Shared, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    let conn = {
        let mut st = lock(&state);
        st.aibot.connections += 1;
        st.aibot.connections
    };
    let mut bot: Option<String> = None;
    loop {
        tokio::select! {
            frame = rx.next() => {
                let Some(Ok(Message::Text(text))) = frame else { break };
                let v: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                let req_id = v["headers"]["req_id"].clone();
                let ack = json!({ "headers": { "req_id": req_id }, "errcode": 0, "errmsg": "ok" }).to_string();
                match v["cmd"].as_str() {
                    Some("aibot_subscribe") => {
                        let id = v["body"]["bot_id"].as_str().unwrap_or("").to_owned();
                        let secret_ok = !v["body"]["secret"].as_str().unwrap_or("").is_empty();
                        if !secret_ok {
                            let refuse = json!({ "headers": { "req_id": req_id }, "errcode": 40001, "errmsg": "invalid secret" });
                            let _ = tx.send(Message::Text(refuse.to_string().into())).await;
                            continue;
                        }
                        let mut st = lock(&state);
                        st.aibot.subscribes += 1;
                        // One live connection per bot: the older one is told and closed.
                        if let Some((_, old)) = st.aibot.live.insert(id.clone(), (conn, out_tx.clone())) {
                            let kicked = json!({ "cmd": "aibot_event_callback", "headers": { "req_id": "kick" },
                                "body": { "msgtype": "event", "event": { "eventtype": "disconnected_event" } } });
                            let _ = old.send(kicked.to_string());
                            let _ = old.send(CLOSE.to_owned());
                        }
                        drop(st);
                        bot = Some(id);
                        let _ = out_tx.send(ack);
                    }
                    Some("ping") => {
                        if !lock(&state).aibot.ignore_pings {
                            let _ = out_tx.send(ack);
                        }
                    }
                    _ => {
                        lock(&state).aibot.frames.push(v);
                        let _ = out_tx.send(ack);
                    }
                }
            }
            Some(out) = out_rx.recv() => {
                if out == CLOSE {
                    let _ = tx.send(Message::Close(None)).await;
                    break;
                }
                if tx.send(Message::Text(out.into())).await.is_err() {
                    break;
                }
            }
        }
    }
    if let Some(id) = bot {
        let mut st = lock(&state);
        if st.aibot.live.get(&id).is_some_and(|(c, _)| *c == conn) {
            st.aibot.live.remove(&id);
        }
    }
}

/// Sends a callback frame to the bot's live connection; returns its `req_id`.
pub fn push(state: &Shared, bot_id: &str, cmd: &str, body: Value) -> Option<String> {
    let st = lock(state);
    let (_, out) = st.aibot.live.get(bot_id)?;
    let req_id = format!("req_{:016x}", rand::random::<u64>());
    let frame = json!({ "cmd": cmd, "headers": { "req_id": req_id }, "body": body });
    out.send(frame.to_string()).ok()?;
    Some(req_id)
}
