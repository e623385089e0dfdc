//! Ops API for outbound messages (`/api/v1/outbox`, bearer token): push a message through the
//! outbox, list rows by state, counts per state, and re-queue dead rows.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::ops_api::{error, internal, Operator};
use crate::outbox::{Content, EnqueueError, Envelope, Outbound, PRIORITY_NORMAL};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/outbox", get(list).post(push))
        .route("/api/v1/outbox/stats", get(stats))
        .route("/api/v1/outbox/requeue", post(requeue_all))
        .route("/api/v1/outbox/{id}/requeue", post(requeue_one))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushBody {
    channel: String,
    /// Recipients: user ids (wecom_app), one OpenID (wechat_mp), customers (mass); ignored by robots.
    #[serde(default)]
    to: Vec<String>,
    text: String,
    /// `text` (default), `markdown`, or `mass` (customer mass send; needs `sender`).
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    sender: Option<String>,
    /// Idempotency key: the same key is queued once. Default: a new one per call.
    #[serde(default)]
    key: Option<String>,
    /// Send no earlier than this (epoch ms).
    #[serde(default)]
    not_before_ms: Option<i64>,
}

fn bad_request(reason: impl Into<String>) -> ApiError {
    ApiError::with_status(StatusCode::BAD_REQUEST, reason)
}

/// The single recipient of a channel that sends to one chat at a time.
fn only_one(to: &[String], refusal: &str) -> Result<String, ApiError> {
    match to {
        [one] => Ok(one.clone()),
        _ => Err(bad_request(refusal)),
    }
}

/// The outbound intent a push body asks for on its channel, or the answer refusing it.
fn intent(state: &AppState, b: &PushBody) -> Result<Outbound, ApiError> {
    let format = b.format.as_deref();
    if let Some(format) = format.filter(|f| !["text", "markdown", "mass"].contains(f)) {
        return Err(bad_request(format!(
            "format `{format}` is not text, markdown or mass"
        )));
    }
    let Some(kind) = state
        .config
        .channels
        .get(&b.channel)
        .map(|c| c.kind.as_str())
    else {
        return Err(ApiError::with_status(
            StatusCode::NOT_FOUND,
            format!("unknown channel `{}`", b.channel),
        ));
    };
    let markdown = format == Some("markdown");
    let message = if markdown {
        Content::Markdown(b.text.clone())
    } else {
        Content::Text(b.text.clone())
    };
    Ok(match (kind, format) {
        ("wecom_app", Some("mass")) => Outbound::Mass {
            sender: b.sender.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
                bad_request("a mass send needs `sender` (the staff member who confirms it)")
            })?,
            recipients: b.to.clone(),
            text: b.text.clone(),
        },
        ("wecom_app", _) => Outbound::App {
            to: b.to.clone(),
            message,
        },
        ("wechat_mp", _) => Outbound::Mp {
            openid: only_one(&b.to, "wechat_mp sends to exactly one OpenID")?,
            message,
        },
        ("wecom_aibot", _) => Outbound::AibotPush {
            chat_id: only_one(&b.to, "an AI bot push goes to exactly one chat id")?,
            markdown: b.text.clone(),
        },
        ("wecom_robot", _) => Outbound::Robot {
            message,
            mentions: if markdown { Vec::new() } else { b.to.clone() },
        },
        (other, _) => {
            return Err(bad_request(format!(
                "channel kind {other} has no outbound messages here"
            )))
        }
    })
}

async fn push(_: Operator, State(state): State<AppState>, Json(b): Json<PushBody>) -> Response {
    if b.text.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "text must not be empty");
    }
    let message = match intent(&state, &b) {
        Ok(message) => message,
        Err(refused) => return refused.into_response(),
    };
    let now = state.ingress.clock().now_ms();
    let key = b
        .key
        .clone()
        .unwrap_or_else(|| format!("api:{now}:{:016x}", rand::random::<u64>()));
    let env = Envelope {
        idem_key: key.clone(),
        channel_id: b.channel.clone(),
        message,
        priority: PRIORITY_NORMAL,
        not_before_ms: b.not_before_ms.unwrap_or(now),
        expires_at_ms: None,
    };
    match state.outbox.enqueue(env).await {
        Ok(created) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(json!({ "key": key, "queued": created }))).into_response()
        }
        Err(EnqueueError::Store(e)) => internal(e),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    limit: Option<i64>,
}

async fn list(_: Operator, State(state): State<AppState>, Query(q): Query<ListQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    match state.store.outbox_rows(q.state.as_deref(), limit).await {
        Ok(rows) => Json(json!({ "rows": rows })).into_response(),
        Err(e) => internal(e),
    }
}

async fn stats(_: Operator, State(state): State<AppState>) -> Response {
    match state.store.outbox_counts().await {
        Ok(counts) => {
            let map: serde_json::Map<String, serde_json::Value> =
                counts.into_iter().map(|(s, n)| (s, json!(n))).collect();
            Json(json!({ "states": map })).into_response()
        }
        Err(e) => internal(e),
    }
}

async fn requeue_one(_: Operator, State(state): State<AppState>, Path(id): Path<i64>) -> Response {
    let now = state.ingress.clock().now_ms();
    match state.store.requeue_outbox(Some(id), now).await {
        Ok(0) => error(StatusCode::NOT_FOUND, format!("no dead row {id}")),
        Ok(n) => {
            state.outbox.wake();
            Json(json!({ "requeued": n })).into_response()
        }
        Err(e) => internal(e),
    }
}

async fn requeue_all(_: Operator, State(state): State<AppState>) -> Response {
    let now = state.ingress.clock().now_ms();
    match state.store.requeue_outbox(None, now).await {
        Ok(n) => {
            state.outbox.wake();
            Json(json!({ "requeued": n })).into_response()
        }
        Err(e) => internal(e),
    }
}
