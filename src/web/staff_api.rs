//! Ops API for roles and mutes (`/api/v1/staff`, bearer token): the way back when chat cannot
//! undo a change (a demoted admin, a muted operator). Every write is audited.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::ops_api::{error, internal, Operator};
use crate::commands::spec::Role;
use crate::state::AppState;
use crate::store::commands::{self as db, NewAudit};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/staff/{scope}", get(list))
        .route(
            "/api/v1/staff/{scope}/{user_id}/role",
            put(set_role).delete(drop_role),
        )
        .route(
            "/api/v1/staff/{scope}/{user_id}/mute",
            put(mute).delete(unmute),
        )
}

/// Roles granted in chat and muted members of a scope, with the configured staff.
async fn list(_: Operator, State(state): State<AppState>, Path(scope): Path<String>) -> Response {
    let granted = match state.store.granted_roles(&scope).await {
        Ok(g) => g,
        Err(e) => return internal(e),
    };
    let muted = match state.store.muted_members().await {
        Ok(m) => m,
        Err(e) => return internal(e),
    };
    let configured: Vec<_> = state
        .config
        .commands
        .staff
        .iter()
        .filter(|s| s.scope == scope || s.scope == "*")
        .map(|s| json!({ "user_id": s.user, "role": s.role, "scope": s.scope, "channel": s.channel }))
        .collect();
    let granted: Vec<_> = granted
        .into_iter()
        .map(|(user_id, role)| json!({ "user_id": user_id, "role": role }))
        .collect();
    let muted: Vec<_> = muted
        .into_iter()
        .filter(|(s, _)| *s == scope)
        .map(|(_, user_id)| user_id)
        .collect();
    Json(json!({ "configured": configured, "granted": granted, "muted": muted })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    /// `admin`, `operator` or `member`.
    role: String,
    /// Who asks (for the audit log).
    operator: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ByBody {
    operator: String,
}

/// Grants a role (overriding the configuration, except for configured admins).
async fn set_role(
    _: Operator,
    State(state): State<AppState>,
    Path((scope, user_id)): Path<(String, String)>,
    body: Result<Json<RoleBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return error(StatusCode::BAD_REQUEST, "body must be {role, operator}");
    };
    let Some(role) = Role::parse(&body.role) else {
        return error(StatusCode::BAD_REQUEST, "role is admin, operator or member");
    };
    let change = Change {
        scope,
        user_id,
        operator: body.operator,
        command: format!("api role {}", role.as_str()),
        role: role.as_str(),
        now_ms: state.ingress.clock().now_ms(),
    };
    write(&state, change, |tx, c| {
        Box::pin(async move {
            db::set_role(tx, &c.scope, &c.user_id, c.role, &c.operator, c.now_ms).await?;
            Ok(true)
        })
    })
    .await
}

/// Drops the role granted in chat: the configuration applies again.
async fn drop_role(
    _: Operator,
    State(state): State<AppState>,
    Path((scope, user_id)): Path<(String, String)>,
    body: Result<Json<ByBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    by_operator(state, scope, user_id, body, "api role reset", |tx, c| {
        Box::pin(async move { db::delete_role(tx, &c.scope, &c.user_id).await })
    })
    .await
}

async fn mute(
    _: Operator,
    State(state): State<AppState>,
    Path((scope, user_id)): Path<(String, String)>,
    body: Result<Json<ByBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    by_operator(state, scope, user_id, body, "api mute", |tx, c| {
        Box::pin(async move { db::mute(tx, &c.scope, &c.user_id, &c.operator, c.now_ms).await })
    })
    .await
}

async fn unmute(
    _: Operator,
    State(state): State<AppState>,
    Path((scope, user_id)): Path<(String, String)>,
    body: Result<Json<ByBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    by_operator(state, scope, user_id, body, "api unmute", |tx, c| {
        Box::pin(async move { db::unmute(tx, &c.scope, &c.user_id).await })
    })
    .await
}

async fn by_operator(
    state: AppState,
    scope: String,
    user_id: String,
    body: Result<Json<ByBody>, axum::extract::rejection::JsonRejection>,
    command: &str,
    apply: ApplyFn,
) -> Response {
    let Ok(Json(body)) = body else {
        return error(StatusCode::BAD_REQUEST, "body must be {operator}");
    };
    let change = Change {
        scope,
        user_id,
        operator: body.operator,
        command: command.to_owned(),
        role: "",
        now_ms: state.ingress.clock().now_ms(),
    };
    write(&state, change, apply).await
}

/// One audited change.
#[derive(Debug, Clone)]
struct Change {
    scope: String,
    user_id: String,
    operator: String,
    command: String,
    /// The role to grant, for role changes.
    role: &'static str,
    now_ms: i64,
}

type ApplyFn = for<'a> fn(
    &'a mut crate::store::Tx,
    Change,
) -> crate::store::BoxFuture<'a, Result<bool, crate::store::StoreError>>;

async fn write(state: &AppState, change: Change, apply: ApplyFn) -> Response {
    let key = format!("api:{}:{:016x}", change.now_ms, rand::random::<u64>());
    let result = state
        .ingress
        .writer()
        .run_batched(move |tx| {
            let (change, key) = (change.clone(), key.clone());
            Box::pin(async move {
                let changed = apply(tx, change.clone()).await?;
                let outcome = if changed { "ok" } else { "unchanged" };
                let audit = NewAudit {
                    source_key: &key,
                    scope: &change.scope,
                    channel_id: "api",
                    group_id: None,
                    user_id: &change.operator,
                    role: "api",
                    command: &change.command,
                    args: &json!([change.user_id]).to_string(),
                    outcome,
                    reply: "",
                    now_ms: change.now_ms,
                };
                db::insert_audit(tx, &audit).await?;
                Ok(changed)
            })
        })
        .await;
    match result {
        Ok(Ok(changed)) => Json(json!({ "ok": true, "changed": changed })).into_response(),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}
