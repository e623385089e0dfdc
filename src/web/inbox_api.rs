//! Ops API for events whose handlers kept failing (`/api/v1/inbox/dead`, bearer token): list
//! them with the reason, re-drive one (the sweeper runs it again with fresh attempts) or discard
//! it (closed without running).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::ops_api::{error, internal, Operator};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/inbox/dead", get(list))
        .route("/api/v1/inbox/dead/{id}/retry", post(retry))
        .route("/api/v1/inbox/dead/{id}/discard", post(discard))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
}

async fn list(_: Operator, State(state): State<AppState>, Query(q): Query<ListQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    match state.store.inbox_dead(limit).await {
        Ok(events) => Json(json!({ "dead": events })).into_response(),
        Err(e) => internal(e),
    }
}

async fn retry(_: Operator, State(state): State<AppState>, Path(id): Path<i64>) -> Response {
    match state.store.inbox_redrive(id).await {
        Ok(true) => Json(json!({ "ok": true })).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, "no dead event with this id"),
        Err(e) => internal(e),
    }
}

async fn discard(_: Operator, State(state): State<AppState>, Path(id): Path<i64>) -> Response {
    let now = state.ingress.clock().now_ms();
    match state.store.inbox_discard(id, now).await {
        Ok(true) => Json(json!({ "ok": true })).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, "no dead event with this id"),
        Err(e) => internal(e),
    }
}
