//! Ops API for recall (`/api/v1/recall`, bearer token): plans, a dry-run preview, running a plan
//! now, and its results with the control group and lift.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;

use super::ops_api::{error, internal, Operator};
use crate::recall::{self, RecallError};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/recall/plans", get(plans))
        .route(
            "/api/v1/recall/plans/{plan}",
            put(put_plan).delete(delete_plan),
        )
        .route("/api/v1/recall/{plan}/preview", get(preview))
        .route("/api/v1/recall/{plan}/run", post(run_now))
        .route("/api/v1/recall/{plan}/stats", get(stats))
        .route("/api/v1/recall/at-risk/{scope}", get(at_risk))
}

async fn plans(_: Operator, State(state): State<AppState>) -> Response {
    if let Err(e) = state.recall.reload().await {
        return internal(e);
    }
    let list: Vec<_> = state
        .recall
        .all()
        .iter()
        .map(|p| {
            let c = &p.config;
            let from = if state.recall.is_configured(&c.id) {
                "config"
            } else {
                "database"
            };
            json!({ "plan": c, "from": from })
        })
        .collect();
    Json(json!({ "plans": list })).into_response()
}

/// Creates or replaces a plan stored in the database (plans in the configuration are read-only).
async fn put_plan(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(mut plan): Json<crate::config::RecallPlanConfig>,
) -> Response {
    if state.recall.is_configured(&id) {
        return error(
            StatusCode::CONFLICT,
            format!("plan `{id}` is defined in the configuration"),
        );
    }
    plan.id = id.clone();
    let problems: Vec<String> = recall::check_plan(&state.config, &plan)
        .into_iter()
        .map(|(field, reason)| format!("{field}: {reason}"))
        .collect();
    if !problems.is_empty() {
        return error(StatusCode::BAD_REQUEST, problems.join("; "));
    }
    let json = serde_json::to_string(&plan).unwrap_or_default();
    let now = state.ingress.clock().now_ms();
    if let Err(e) = state.store.put_plan(&id, &json, now).await {
        return internal(e);
    }
    if let Err(e) = state.recall.reload().await {
        return internal(e);
    }
    Json(json!({ "plan": id })).into_response()
}

async fn delete_plan(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    match state.store.delete_plan(&id).await {
        Ok(true) => match state.recall.reload().await {
            Ok(()) => Json(json!({ "deleted": id })).into_response(),
            Err(e) => internal(e),
        },
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no stored plan `{id}`")),
        Err(e) => internal(e),
    }
}

async fn run_plan(state: &AppState, id: &str, dry_run: bool) -> Response {
    let Some(plan) = state.recall.get(id) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no enabled recall plan `{id}`"),
        );
    };
    let now = state.ingress.clock().now_ms();
    match recall::run(&state.recall.ctx, &plan, now, dry_run).await {
        Ok(report) => Json(report).into_response(),
        Err(RecallError::Plan(e)) => error(StatusCode::BAD_REQUEST, e),
        Err(RecallError::Store(e)) => internal(e),
    }
}

/// What a run would do now: nothing is sent or recorded.
async fn preview(_: Operator, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    run_plan(&state, &id, true).await
}

/// Runs the plan now (outside its schedule); touches already made are not repeated.
async fn run_now(_: Operator, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    run_plan(&state, &id, false).await
}

async fn stats(_: Operator, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    if state.recall.get(&id).is_none() {
        return error(
            StatusCode::NOT_FOUND,
            format!("no enabled recall plan `{id}`"),
        );
    }
    match recall::stats::plan_stats(&state.store, &id).await {
        Ok(touches) => Json(json!({ "plan": id, "touches": touches })).into_response(),
        Err(e) => internal(e),
    }
}

/// Members at risk of lapsing (for 1:1 follow-up), most at risk first.
async fn at_risk(
    _: Operator,
    State(state): State<AppState>,
    Path(scope): Path<String>,
) -> Response {
    let threshold = state.config.recall.risk_threshold;
    match state.store.at_risk_above(&scope, threshold, 200).await {
        Ok(rows) => {
            let members: Vec<_> = rows
                .into_iter()
                .map(|(user, name, score, since)| json!({ "user_id": user, "name": name, "risk": score, "since": since }))
                .collect();
            Json(json!({ "members": members })).into_response()
        }
        Err(e) => internal(e),
    }
}
