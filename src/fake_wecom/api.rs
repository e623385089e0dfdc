//! The stand-in's platform endpoints: the WeCom and MP APIs in their wire format, each behind
//! the injected faults and the access-token check.

use std::time::Duration;

use axum::extract::{Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::Rng as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::state::{Delivery, RequestLog, State, Task};
use super::{lock, now_ms, Shared};

pub(super) fn errcode(code: i64, msg: &str) -> Response {
    Json(json!({ "errcode": code, "errmsg": msg })).into_response()
}

pub(super) fn ok(extra: Value) -> Response {
    let mut body = json!({ "errcode": 0, "errmsg": "ok" });
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    Json(body).into_response()
}

pub(super) fn log(st: &mut State, api: &str, to: &str, outcome: &str) {
    st.requests.push(RequestLog {
        api: api.into(),
        to: to.into(),
        at_ms: now_ms(),
        outcome: outcome.into(),
    });
}

/// What the fault dice decided for one call.
pub(super) enum Roll {
    Fail(Response),
    Proceed { hang_ms: u64 },
}

/// The injected failures, then the token check. Latency is added to the answer, after the
/// work is done: a caller that dies while waiting has been served all the same.
pub(super) async fn before(state: &Shared, api: &str, to: &str, token: Option<&str>) -> Roll {
    let mut st = lock(state);
    let f = st.faults.clone();
    let mut rng = rand::thread_rng();
    let mut dice = |rate: f64| rate > 0.0 && rng.gen_bool(rate.min(1.0));
    if dice(f.http_5xx_rate) {
        log(&mut st, api, to, "5xx");
        return Roll::Fail((StatusCode::BAD_GATEWAY, "upstream error").into_response());
    }
    if dice(f.error_rate) {
        log(&mut st, api, to, "busy");
        return Roll::Fail(errcode(-1, "system busy"));
    }
    if dice(f.rate_limit_rate) {
        log(&mut st, api, to, "rate_limited");
        return Roll::Fail(errcode(45009, "api freq out of limit"));
    }
    if let Some(token) = token {
        let valid = match st.tokens.get(token) {
            None => Some((40014, "invalid access_token")),
            Some((_, _, true)) => Some((42001, "access_token expired")),
            Some((_, exp, false)) if *exp < now_ms() => Some((42001, "access_token expired")),
            Some(_) => None,
        };
        if let Some((code, msg)) = valid {
            log(&mut st, api, to, "token_invalid");
            return Roll::Fail(errcode(code, msg));
        }
    }
    let hang_ms = if dice(f.timeout_rate) {
        f.timeout_ms.max(1)
    } else {
        0
    };
    Roll::Proceed {
        hang_ms: hang_ms + f.latency_ms,
    }
}

/// Answers after the injected delay (the work is already done: a lost answer, not a lost call).
pub(super) async fn after(hang_ms: u64, response: Response) -> Response {
    if hang_ms > 0 {
        tokio::time::sleep(Duration::from_millis(hang_ms)).await;
    }
    response
}

#[derive(Deserialize)]
pub(super) struct TokenQuery {
    #[serde(default)]
    pub(super) access_token: String,
}

#[derive(Deserialize)]
pub(super) struct GetTokenQuery {
    #[serde(default)]
    corpid: String,
    #[serde(default)]
    corpsecret: String,
    #[serde(default)]
    appid: String,
    #[serde(default)]
    secret: String,
}

pub(super) fn issue_token(state: &Shared, app: &str, secret: &str) -> Response {
    let mut st = lock(state);
    *st.gettoken_calls.entry(app.to_owned()).or_default() += 1;
    if app.is_empty() || secret.is_empty() || secret.starts_with("bad") {
        log(&mut st, "gettoken", app, "errcode 40001");
        return errcode(40001, "invalid secret");
    }
    let ttl = st.faults.token_ttl_secs.unwrap_or(7200);
    let token: String = (0..64)
        .map(|_| {
            char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rand::thread_rng().gen_range(0..36)])
        })
        .collect();
    st.tokens.insert(
        token.clone(),
        (app.to_owned(), now_ms() + ttl * 1000, false),
    );
    log(&mut st, "gettoken", app, "ok");
    ok(json!({ "access_token": token, "expires_in": ttl }))
}

pub(super) async fn gettoken(
    AxState(state): AxState<Shared>,
    Query(q): Query<GetTokenQuery>,
) -> Response {
    delay_token(&state, &q.corpid).await;
    issue_token(&state, &q.corpid, &q.corpsecret)
}

pub(super) async fn mp_token(
    AxState(state): AxState<Shared>,
    Query(q): Query<GetTokenQuery>,
) -> Response {
    delay_token(&state, &q.appid).await;
    issue_token(&state, &q.appid, &q.secret)
}

/// The injected `gettoken_delay_ms`: the call is seen (counted in the stats) before the wait.
async fn delay_token(state: &Shared, app: &str) {
    let delay = {
        let mut st = lock(state);
        let delay = st.faults.gettoken_delay_ms;
        if delay > 0 {
            *st.token_waits.entry(app.to_owned()).or_default() += 1;
        }
        delay
    };
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
}

pub(super) fn deliver(st: &mut State, api: &str, to: &str, body: Value) {
    log(st, api, to, "ok");
    st.deliveries.push(Delivery {
        api: api.into(),
        to: to.into(),
        body,
        at_ms: now_ms(),
    });
}

pub(super) fn content_of(body: &Value) -> String {
    let kind = body["msgtype"].as_str().unwrap_or("");
    body.get(kind).map(Value::to_string).unwrap_or_default()
}

pub(super) async fn message_send(
    AxState(state): AxState<Shared>,
    Query(q): Query<TokenQuery>,
    Json(body): Json<Value>,
) -> Response {
    let touser = body["touser"].as_str().unwrap_or("").to_owned();
    let hang = guarded!(state, "message/send", &touser, Some(&q.access_token));
    let response = {
        let mut st = lock(&state);
        if touser.is_empty() || body["agentid"].as_i64().is_none() {
            log(&mut st, "message/send", &touser, "errcode 81013");
            return errcode(81013, "user & party & tag all invalid");
        }
        let now = now_ms();
        let check =
            body["enable_duplicate_check"].as_i64() == Some(1) && !st.faults.ignore_duplicate_check;
        let interval = body["duplicate_check_interval"].as_i64().unwrap_or(1800) * 1000;
        let key = (
            body["agentid"].as_i64().unwrap_or(0),
            touser.clone(),
            content_of(&body),
        );
        let duplicate = check && st.recent.get(&key).is_some_and(|&at| now - at < interval);
        if duplicate {
            st.duplicates_suppressed += 1;
            log(&mut st, "message/send", &touser, "duplicate");
        } else {
            st.recent.insert(key, now);
            deliver(&mut st, "message/send", &touser, body);
        }
        let msgid = st.next_id("msg");
        ok(
            json!({ "invaliduser": "", "invalidparty": "", "invalidtag": "", "unlicenseduser": "", "msgid": msgid }),
        )
    };
    after(hang, response).await
}

pub(super) async fn appchat_send(
    AxState(state): AxState<Shared>,
    Query(q): Query<TokenQuery>,
    Json(body): Json<Value>,
) -> Response {
    let chat = body["chatid"].as_str().unwrap_or("").to_owned();
    let hang = guarded!(state, "appchat/send", &chat, Some(&q.access_token));
    deliver(&mut lock(&state), "appchat/send", &chat, body);
    after(hang, ok(json!({}))).await
}

#[derive(Deserialize)]
pub(super) struct KeyQuery {
    #[serde(default)]
    key: String,
}

pub(super) async fn webhook_send(
    AxState(state): AxState<Shared>,
    Query(q): Query<KeyQuery>,
    Json(body): Json<Value>,
) -> Response {
    if q.key.is_empty() {
        return errcode(93000, "invalid webhook url");
    }
    let hang = guarded!(state, "webhook/send", &q.key, None);
    let msgtype = body["msgtype"].as_str().unwrap_or("");
    if ![
        "text",
        "markdown",
        "markdown_v2",
        "news",
        "image",
        "file",
        "template_card",
    ]
    .contains(&msgtype)
    {
        return errcode(40008, "invalid message type");
    }
    deliver(&mut lock(&state), "webhook/send", &q.key, body);
    after(hang, ok(json!({}))).await
}

pub(super) async fn mp_custom_send(
    AxState(state): AxState<Shared>,
    Query(q): Query<TokenQuery>,
    Json(body): Json<Value>,
) -> Response {
    let to = body["touser"].as_str().unwrap_or("").to_owned();
    let hang = guarded!(state, "message/custom/send", &to, Some(&q.access_token));
    deliver(&mut lock(&state), "message/custom/send", &to, body);
    after(hang, ok(json!({}))).await
}

pub(super) async fn send_welcome(
    AxState(state): AxState<Shared>,
    Query(q): Query<TokenQuery>,
    Json(body): Json<Value>,
) -> Response {
    let code = body["welcome_code"].as_str().unwrap_or("").to_owned();
    let hang = guarded!(state, "send_welcome_msg", &code, Some(&q.access_token));
    let response = {
        let mut st = lock(&state);
        if code.is_empty() || !st.welcome_codes_used.insert(code.clone()) {
            log(&mut st, "send_welcome_msg", &code, "errcode 41051");
            return errcode(41051, "welcome code already used or expired");
        }
        deliver(&mut st, "send_welcome_msg", &code, body);
        ok(json!({}))
    };
    after(hang, response).await
}

pub(super) async fn add_msg_template(
    AxState(state): AxState<Shared>,
    Query(q): Query<TokenQuery>,
    Json(body): Json<Value>,
) -> Response {
    let sender = body["sender"].as_str().unwrap_or("").to_owned();
    let hang = guarded!(state, "add_msg_template", &sender, Some(&q.access_token));
    let recipients: Vec<String> = body["external_userid"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let response = {
        let mut st = lock(&state);
        let msgid = st.next_id("task");
        let task = Task {
            msgid: msgid.clone(),
            sender: sender.clone(),
            recipients,
            text: body["text"]["content"].as_str().unwrap_or("").to_owned(),
            confirmed: false,
        };
        st.tasks.insert(msgid.clone(), task);
        log(&mut st, "add_msg_template", &sender, "ok");
        ok(json!({ "fail_list": [], "msgid": msgid }))
    };
    after(hang, response).await
}

pub(super) async fn groupmsg_result(
    AxState(state): AxState<Shared>,
    Query(q): Query<TokenQuery>,
    Json(body): Json<Value>,
) -> Response {
    let msgid = body["msgid"].as_str().unwrap_or("").to_owned();
    let hang = guarded!(
        state,
        "get_groupmsg_send_result",
        &msgid,
        Some(&q.access_token)
    );
    let response = {
        let st = lock(&state);
        let Some(task) = st.tasks.get(&msgid) else {
            return errcode(41063, "msgid not found");
        };
        let status = i64::from(task.confirmed);
        let list: Vec<Value> = task
            .recipients
            .iter()
            .map(|r| json!({ "external_userid": r, "userid": task.sender, "status": status, "send_time": 0 }))
            .collect();
        ok(json!({ "send_list": list, "next_cursor": "" }))
    };
    after(hang, response).await
}

#[derive(Deserialize)]
pub(super) struct ContactQuery {
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    external_userid: String,
    #[serde(default)]
    userid: String,
}

pub(super) async fn contact_get(
    AxState(state): AxState<Shared>,
    Query(q): Query<ContactQuery>,
) -> Response {
    let hang = guarded!(
        state,
        "externalcontact/get",
        &q.external_userid,
        Some(&q.access_token)
    );
    let found = lock(&state).contacts.get(&q.external_userid).cloned();
    let response = match found {
        Some(c) => ok(
            json!({ "external_contact": c["external_contact"], "follow_user": c["follow_user"], "next_cursor": "" }),
        ),
        None => errcode(40096, "invalid external userid"),
    };
    after(hang, response).await
}

pub(super) async fn contact_list(
    AxState(state): AxState<Shared>,
    Query(q): Query<ContactQuery>,
) -> Response {
    let hang = guarded!(
        state,
        "externalcontact/list",
        &q.userid,
        Some(&q.access_token)
    );
    let ids: Vec<String> = lock(&state)
        .contacts
        .iter()
        .filter(|(_, c)| followed_by(c, &q.userid))
        .map(|(id, _)| id.clone())
        .collect();
    after(hang, ok(json!({ "external_userid": ids }))).await
}

pub(super) fn followed_by(contact: &Value, userid: &str) -> bool {
    contact["follow_user"]
        .as_array()
        .is_some_and(|f| f.iter().any(|u| u["userid"] == userid))
}

pub(super) async fn corp_tags(
    AxState(state): AxState<Shared>,
    Query(q): Query<TokenQuery>,
) -> Response {
    let hang = guarded!(state, "get_corp_tag_list", "", Some(&q.access_token));
    let groups = lock(&state).tag_groups.clone();
    after(hang, ok(json!({ "tag_group": groups }))).await
}

pub(super) async fn add_corp_tag(
    AxState(state): AxState<Shared>,
    Query(q): Query<TokenQuery>,
    Json(body): Json<Value>,
) -> Response {
    let hang = guarded!(state, "add_corp_tag", "", Some(&q.access_token));
    let response = {
        let mut st = lock(&state);
        let group_id = st.next_id("etgroup");
        let tags: Vec<Value> = body["tag"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                json!({ "id": format!("et{}", t["name"].as_str().unwrap_or("")), "name": t["name"],
                "order": t["order"].as_i64().unwrap_or(0), "deleted": false })
            })
            .collect();
        let group = json!({ "group_id": group_id, "group_name": body["group_name"],
            "order": body["order"].as_i64().unwrap_or(0), "deleted": false, "tag": tags });
        st.tag_groups.push(group.clone());
        log(&mut st, "add_corp_tag", "", "ok");
        ok(json!({ "tag_group": group }))
    };
    after(hang, response).await
}

pub(super) async fn mark_tag(
    AxState(state): AxState<Shared>,
    Query(q): Query<TokenQuery>,
    Json(body): Json<Value>,
) -> Response {
    let external = body["external_userid"].as_str().unwrap_or("").to_owned();
    let hang = guarded!(state, "mark_tag", &external, Some(&q.access_token));
    let response = {
        let mut st = lock(&state);
        let userid = body["userid"].as_str().unwrap_or("");
        let related = st
            .contacts
            .get(&external)
            .is_some_and(|c| followed_by(c, userid));
        if !related {
            log(&mut st, "mark_tag", &external, "errcode 84061");
            return errcode(84061, "not external contact");
        }
        deliver(&mut st, "mark_tag", &external, body);
        ok(json!({}))
    };
    after(hang, response).await
}

/// The AI bot's one-shot `response_url`: usable once.
pub(super) async fn aibot_response(
    AxState(state): AxState<Shared>,
    Query(q): Query<KeyQuery>,
    Json(body): Json<Value>,
) -> Response {
    let hang = guarded!(state, "aibot/response", &q.key, None);
    let response = {
        let mut st = lock(&state);
        let used = st
            .deliveries
            .iter()
            .any(|d| d.api == "aibot/response" && d.to == q.key);
        if used {
            log(&mut st, "aibot/response", &q.key, "errcode 40029");
            return errcode(40029, "response_url already used");
        }
        deliver(&mut st, "aibot/response", &q.key, body);
        ok(json!({}))
    };
    after(hang, response).await
}

/// A group gateway's send URL: records what Yunying pushed (the signature headers are checked by
/// the tests that read the request log).
pub(super) async fn gateway_send(
    AxState(state): AxState<Shared>,
    Json(body): Json<Value>,
) -> Response {
    let to = body["group"]["id"]
        .as_str()
        .or_else(|| body["to"].as_str())
        .unwrap_or_default()
        .to_owned();
    let mut st = lock(&state);
    deliver(&mut st, "gateway/send", &to, body);
    ok(json!({}))
}
