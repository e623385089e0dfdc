//! A local stand-in for the WeCom server API and the WeChat MP customer-service API, speaking
//! their wire format (JSON bodies, `errcode`/`errmsg`, HTTP 200 on errors, `access_token` query
//! parameter). It keeps what it received (`GET /_fake/deliveries`, `/_fake/requests`,
//! `/_fake/stats`), can inject faults (`POST /_fake/faults`), and lets a test play the staff
//! member who confirms a mass-send task (`POST /_fake/confirm`). Its directory is seeded one by
//! one or generated at any size (`POST /_fake/community`). Used by `yunying fake-wecom`,
//! the tests and `yunying demo`; never by production code paths.

/// The injected faults and the token check in front of an endpoint: the delay to add to the
/// answer, or the failure answered at once.
macro_rules! guarded {
    ($state:expr, $api:expr, $to:expr, $token:expr) => {
        match before(&$state, $api, $to, $token).await {
            Roll::Fail(r) => {
                let latency = lock(&$state).faults.latency_ms;
                return after(latency, r).await;
            }
            Roll::Proceed { hang_ms } => hang_ms,
        }
    };
}

mod api;
mod directory;
mod state;
mod ws;

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use api::*;
pub use directory::{customer_id, group_id, Community};
use state::State;
pub use state::{Delivery, Faults, RequestLog, Task};

pub(super) type Shared = Arc<Mutex<State>>;

/// A running stand-in.
pub struct FakeWecom {
    pub port: u16,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeWecom {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeWecom {
    /// Binds `addr` (port 0 for any) and serves in the background.
    pub async fn start(addr: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let port = listener.local_addr()?.port();
        let state = Shared::default();
        let app = router(Arc::clone(&state));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app.into_make_service()).await;
        });
        Ok(Self { port, state, task })
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_faults(&self, faults: Faults) {
        apply_faults(&mut lock(&self.state), faults);
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.state).deliveries.clone()
    }

    pub fn requests(&self) -> Vec<RequestLog> {
        lock(&self.state).requests.clone()
    }

    pub fn gettoken_calls(&self) -> u64 {
        lock(&self.state).gettoken_calls.values().sum()
    }

    /// Token calls that arrived while `gettoken_delay_ms` held them back.
    pub fn delayed_token_calls(&self) -> u64 {
        lock(&self.state).token_waits.values().sum()
    }

    pub fn duplicates_suppressed(&self) -> u64 {
        lock(&self.state).duplicates_suppressed
    }

    /// Plays the staff member confirming a mass-send task in the client.
    pub fn confirm(&self, msgid: &str) -> bool {
        confirm_task(&mut lock(&self.state), msgid)
    }

    /// Seeds a customer: `{"external_userid", "name", "follow_user": [{"userid", "tags": […]}]}`.
    pub fn add_contact(&self, contact: &Value) {
        if let Some((id, record)) = contact_record(contact) {
            lock(&self.state).contacts.insert(id, record);
        }
    }

    /// Removes a customer (as if they deleted every staff member).
    pub fn remove_contact(&self, external_userid: &str) -> bool {
        lock(&self.state).contacts.remove(external_userid).is_some()
    }

    /// Seeds or replaces a customer group: a `group_chat` body (`chat_id`, `name`, `owner`,
    /// `member_list`, …), optionally with its `status`.
    pub fn set_group(&self, group: Value) {
        if let Some(id) = group["chat_id"].as_str().map(str::to_owned) {
            lock(&self.state).groups.insert(id, group);
        }
    }

    /// The group as the stand-in has it.
    pub fn group(&self, chat_id: &str) -> Option<Value> {
        lock(&self.state).groups.get(chat_id).cloned()
    }

    /// Dismisses a customer group.
    pub fn remove_group(&self, chat_id: &str) -> bool {
        lock(&self.state).groups.remove(chat_id).is_some()
    }

    /// Seeds a corp member for `user/get`.
    pub fn add_user(&self, userid: &str, name: &str) {
        lock(&self.state)
            .users
            .insert(userid.to_owned(), json!({ "userid": userid, "name": name }));
    }

    /// Fills the directory with a generated community (staff, customers, groups).
    pub fn generate(&self, community: Community) {
        directory::generate(&mut lock(&self.state), community);
    }

    /// Seeds a corp tag group: `{"group_id", "group_name", "tag": [{"id", "name"}]}`.
    pub fn add_tag_group(&self, group: Value) {
        lock(&self.state).tag_groups.push(group);
    }

    /// The long-connection URL (`ws://…/ws`).
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// Pushes an `aibot_msg_callback` (or `aibot_event_callback`) to the bot's live connection;
    /// `None` when the bot is not connected.
    pub fn aibot_push(&self, bot_id: &str, cmd: &str, body: Value) -> Option<String> {
        ws::push(&self.state, bot_id, cmd, body)
    }

    /// Frames the clients sent (replies, welcomes, pushes; not pings).
    pub fn aibot_frames(&self) -> Vec<Value> {
        lock(&self.state).aibot.frames.clone()
    }

    /// (subscribes, connections) so far.
    pub fn aibot_counts(&self) -> (u64, u64) {
        let st = lock(&self.state);
        (st.aibot.subscribes, st.aibot.connections)
    }

    /// Whether pings are answered (off: the client must notice and redial).
    pub fn aibot_ignore_pings(&self, ignore: bool) {
        lock(&self.state).aibot.ignore_pings = ignore;
    }

    /// Plays a second client subscribing to the bot: the live connection is kicked.
    pub fn aibot_kick(&self, bot_id: &str) -> bool {
        ws::push(
            &self.state,
            bot_id,
            "aibot_event_callback",
            serde_json::json!({
            "msgtype": "event", "event": { "eventtype": "disconnected_event" } }),
        )
        .is_some()
    }

    pub fn tasks(&self) -> Vec<Task> {
        lock(&self.state).tasks.values().cloned().collect()
    }
}

pub(super) fn lock(state: &Shared) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn now_ms() -> i64 {
    crate::clock::Clock::now_ms(&crate::clock::SystemClock)
}

fn apply_faults(st: &mut State, faults: Faults) {
    if faults.expire_tokens_now {
        for t in st.tokens.values_mut() {
            t.2 = true;
        }
    }
    st.faults = Faults {
        expire_tokens_now: false,
        ..faults
    };
}

fn confirm_task(st: &mut State, msgid: &str) -> bool {
    let Some(task) = st.tasks.get_mut(msgid) else {
        return false;
    };
    if task.confirmed {
        return true;
    }
    task.confirmed = true;
    let (to, body) = (
        task.recipients.join("|"),
        json!({ "text": { "content": task.text } }),
    );
    st.deliveries.push(Delivery {
        api: "groupmsg".into(),
        to,
        body,
        at_ms: now_ms(),
    });
    true
}

/// The stand-in's routes.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/cgi-bin/gettoken", get(gettoken))
        .route("/cgi-bin/token", get(mp_token))
        .route("/cgi-bin/message/send", post(message_send))
        .route("/cgi-bin/appchat/send", post(appchat_send))
        .route("/cgi-bin/webhook/send", post(webhook_send))
        .route("/cgi-bin/message/custom/send", post(mp_custom_send))
        .route("/cgi-bin/externalcontact/get", get(contact_get))
        .route("/cgi-bin/externalcontact/list", get(contact_list))
        .route(
            "/cgi-bin/externalcontact/batch/get_by_user",
            post(directory::batch_get_by_user),
        )
        .route(
            "/cgi-bin/externalcontact/get_corp_tag_list",
            post(corp_tags),
        )
        .route("/cgi-bin/externalcontact/add_corp_tag", post(add_corp_tag))
        .route("/cgi-bin/externalcontact/mark_tag", post(mark_tag))
        .route(
            "/cgi-bin/externalcontact/groupchat/list",
            post(directory::groupchat_list),
        )
        .route(
            "/cgi-bin/externalcontact/groupchat/get",
            post(directory::groupchat_get),
        )
        .route(
            "/cgi-bin/externalcontact/add_msg_template",
            post(add_msg_template),
        )
        .route(
            "/cgi-bin/externalcontact/get_groupmsg_send_result",
            post(groupmsg_result),
        )
        .route(
            "/cgi-bin/externalcontact/send_welcome_msg",
            post(send_welcome),
        )
        .route("/ws", get(ws::upgrade))
        .route("/cgi-bin/aibot/response", post(aibot_response))
        .route("/gateway/send", post(api::gateway_send))
        .route("/_fake/faults", post(set_faults))
        .route("/_fake/deliveries", get(list_deliveries))
        .route("/_fake/requests", get(list_requests))
        .route("/_fake/stats", get(stats))
        .route("/_fake/confirm", post(confirm))
        .route(
            "/cgi-bin/externalcontact/get_follow_user_list",
            get(directory::follow_user_list),
        )
        .route("/cgi-bin/user/get", get(directory::user_get))
        .route("/_fake/contacts", post(add_contact))
        .route("/_fake/community", post(generate_community))
        .with_state(state)
}

async fn set_faults(AxState(state): AxState<Shared>, Json(faults): Json<Faults>) -> Response {
    apply_faults(&mut lock(&state), faults);
    ok(json!({}))
}

#[derive(Deserialize)]
struct ApiFilter {
    api: Option<String>,
}

async fn list_deliveries(AxState(state): AxState<Shared>, Query(f): Query<ApiFilter>) -> Response {
    let st = lock(&state);
    let list: Vec<&Delivery> = st
        .deliveries
        .iter()
        .filter(|d| f.api.as_ref().is_none_or(|a| &d.api == a))
        .collect();
    Json(json!({ "deliveries": list })).into_response()
}

async fn list_requests(AxState(state): AxState<Shared>, Query(f): Query<ApiFilter>) -> Response {
    let st = lock(&state);
    let list: Vec<&RequestLog> = st
        .requests
        .iter()
        .filter(|d| f.api.as_ref().is_none_or(|a| &d.api == a))
        .collect();
    Json(json!({ "requests": list })).into_response()
}

async fn stats(AxState(state): AxState<Shared>) -> Response {
    let st = lock(&state);
    Json(json!({
        "deliveries": st.deliveries.len(),
        "requests": st.requests.len(),
        "duplicates_suppressed": st.duplicates_suppressed,
        "gettoken_calls": st.gettoken_calls,
        "tasks": st.tasks.len(),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct ConfirmBody {
    msgid: String,
}

async fn confirm(AxState(state): AxState<Shared>, Json(b): Json<ConfirmBody>) -> Response {
    if confirm_task(&mut lock(&state), &b.msgid) {
        ok(json!({}))
    } else {
        errcode(41063, "msgid not found")
    }
}

fn contact_record(c: &Value) -> Option<(String, Value)> {
    let id = c["external_userid"]
        .as_str()
        .filter(|s| !s.is_empty())?
        .to_owned();
    let record = json!({
        "external_contact": { "external_userid": id, "name": c["name"], "type": 1 },
        "follow_user": c["follow_user"],
    });
    Some((id, record))
}

/// Seeds a customer: `{"external_userid", "name", "follow_user": [{"userid", "tags"?: […]}]}`.
async fn add_contact(AxState(state): AxState<Shared>, Json(c): Json<Value>) -> Response {
    match contact_record(&c) {
        Some((id, record)) => {
            lock(&state).contacts.insert(id, record);
            ok(json!({}))
        }
        None => (StatusCode::BAD_REQUEST, "external_userid is required").into_response(),
    }
}

/// `POST /_fake/community`: fills the directory with a generated community ([`Community`]).
async fn generate_community(AxState(state): AxState<Shared>, Json(c): Json<Community>) -> Response {
    directory::generate(&mut lock(&state), c);
    let st = lock(&state);
    ok(
        json!({ "customers": st.contacts.len(), "groups": st.groups.len(), "users": st.users.len() }),
    )
}
