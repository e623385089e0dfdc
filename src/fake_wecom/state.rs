//! What the stand-in remembers: issued tokens, every request and every delivery, duplicate-check
//! history, mass-send tasks, contacts and tags; and the faults it was asked to inject.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Faults to inject, set with `POST /_fake/faults` (every field optional).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share of API calls answered with HTTP 500 before anything is done.
    pub http_5xx_rate: f64,
    /// Share answered `errcode -1` (system busy) before anything is done.
    pub error_rate: f64,
    /// Share answered `errcode 45009` (frequency limit).
    pub rate_limit_rate: f64,
    /// Share that are carried out but answered only after `timeout_ms` (the caller times out
    /// and will send again: the duplicate check must catch the copy).
    pub timeout_rate: f64,
    pub timeout_ms: u64,
    /// Added to every answer.
    pub latency_ms: u64,
    /// Lifetime of issued tokens (default 7200).
    pub token_ttl_secs: Option<i64>,
    /// Ignore `enable_duplicate_check` (to show what a re-send without it does).
    pub ignore_duplicate_check: bool,
    /// When set, all tokens issued so far are invalid from now on (answers 40014 / 42001).
    pub expire_tokens_now: bool,
    /// `gettoken` (and the MP token call) counts the call, then answers only after this long.
    pub gettoken_delay_ms: u64,
}

/// One accepted request that delivered (or created) something.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// `message/send`, `webhook/send`, `send_welcome_msg`, …
    pub api: String,
    /// Recipient (touser, chat id, robot key, welcome code, openid, task msgid).
    pub to: String,
    pub body: Value,
    pub at_ms: i64,
}

/// One request as it arrived, with what the stand-in answered.
#[derive(Debug, Clone, Serialize)]
pub struct RequestLog {
    pub api: String,
    pub to: String,
    pub at_ms: i64,
    /// `ok`, `duplicate`, `5xx`, `busy`, `rate_limited`, `timeout`, `token_invalid`, `errcode N`.
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Task {
    pub msgid: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub text: String,
    pub confirmed: bool,
}

#[derive(Debug, Default)]
pub struct State {
    pub faults: Faults,
    /// token → (app, expires at ms, revoked)
    pub tokens: HashMap<String, (String, i64, bool)>,
    /// gettoken calls per corp id / app id.
    pub gettoken_calls: HashMap<String, u64>,
    /// Token calls held back by `gettoken_delay_ms`, counted when they arrive.
    pub token_waits: HashMap<String, u64>,
    pub deliveries: Vec<Delivery>,
    pub requests: Vec<RequestLog>,
    pub duplicates_suppressed: u64,
    /// (agentid, touser, content) → last accepted at ms, for the duplicate check.
    pub recent: HashMap<(i64, String, String), i64>,
    pub welcome_codes_used: HashSet<String>,
    pub tasks: HashMap<String, Task>,
    /// Sent mass messages per (recipient, month) for the quota answer.
    pub next_id: u64,
    /// Customers by external user id, in the order pages are served.
    pub contacts: BTreeMap<String, Value>,
    /// Customer groups by chat id (`group_chat` bodies with their `status`).
    pub groups: BTreeMap<String, Value>,
    /// The corp's own members by user id (`user/get` bodies).
    pub users: BTreeMap<String, Value>,
    pub tag_groups: Vec<Value>,
    pub aibot: super::ws::AibotState,
}

impl State {
    pub fn next_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:08}", self.next_id)
    }
}
