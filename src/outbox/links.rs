//! The AI bots' long connections this process holds, by channel id: the outbox hands them its
//! pushes (`aibot_send_msg`) and waits for WeCom's ack; the connections register themselves here.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

/// The ack of a push: `Err((errcode, errmsg))` when refused or the connection went away.
pub type PushAck = tokio::sync::oneshot::Sender<Result<(), (i64, String)>>;

/// A proactive message for the connection (`aibot_send_msg`).
pub struct Push {
    pub body: Value,
    pub done: PushAck,
}

/// The live connections of this process by channel id (the outbox hands them its pushes), and
/// how often the links looked at their leases (each look is an event tests can wait for).
#[derive(Clone, Default)]
pub struct Links(
    Arc<std::sync::Mutex<HashMap<String, mpsc::UnboundedSender<Push>>>>,
    Arc<std::sync::atomic::AtomicU64>,
);

impl Links {
    /// A link of this process looked at (or renewed) its lease.
    pub fn lease_looked(&self) {
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Lease looks of this process's links so far.
    pub fn lease_looks(&self) -> u64 {
        self.1.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The connection of `channel_id`, if this process holds it now.
    pub fn sender(&self, channel_id: &str) -> Option<mpsc::UnboundedSender<Push>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(channel_id).filter(|s| !s.is_closed()).cloned()
    }

    /// Registers (or, with `None`, forgets) this process's connection of `channel_id`.
    pub fn set(&self, channel_id: &str, sender: Option<mpsc::UnboundedSender<Push>>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match sender {
            Some(s) => map.insert(channel_id.to_owned(), s),
            None => map.remove(channel_id),
        };
    }
}
