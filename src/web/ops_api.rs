//! JSON API for ops staff (`/api/v1`, bearer token): member points and history, manual
//! adjustments, the reward catalog, and orders. Errors are JSON `{"error": "…", "code": "…"}` (`web/error.rs`).

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::ItemConfig;
use crate::members::local_day;
use crate::points::ops::{self, AdjustOutcome, OrderAction, OrderOutcome};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/members/{scope}/{user_id}/points",
            get(member_points).post(adjust_points),
        )
        .route("/api/v1/items", get(list_items).post(create_item))
        .route("/api/v1/items/{id}", post(update_item).delete(delete_item))
        .route("/api/v1/orders", get(list_orders))
        .route("/api/v1/orders/{id}/fulfil", post(fulfil_order))
        .route("/api/v1/orders/{id}/cancel", post(cancel_order))
        .route("/api/v1/audit", get(audit_log))
        .route("/api/v1/members/{scope}", get(list_members))
        .route("/api/v1/layers/{scope}", get(layer_distribution))
}

/// How many members are in each value layer.
async fn layer_distribution(
    _: Operator,
    State(state): State<AppState>,
    Path(scope): Path<String>,
) -> Response {
    match state.store.layer_distribution(&scope).await {
        Ok(rows) => {
            let layers: Vec<_> = rows
                .into_iter()
                .map(|(layer, count)| json!({ "layer": layer, "count": count }))
                .collect();
            Json(json!({ "layers": layers })).into_response()
        }
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct MembersQuery {
    /// A segment expression, e.g. `tag:VIP and last_active < 14d`; empty = everyone.
    segment: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// Members of a scope matching a segment: the count and one page of user ids.
async fn list_members(
    _: Operator,
    State(state): State<AppState>,
    Path(scope): Path<String>,
    Query(q): Query<MembersQuery>,
) -> Response {
    use crate::members::segment::{self, SegmentContext};
    let text = q.segment.unwrap_or_default();
    let text = if text.trim().is_empty() {
        "messages >= 0".to_owned()
    } else {
        text
    };
    let ctx = SegmentContext {
        accounts: crate::members::segment::AccountSql::for_backend(state.store.backend()),
        now_ms: state.ingress.clock().now_ms(),
        levels: &state.config.points.levels,
    };
    let compiled = match segment::parse(&text).and_then(|e| segment::to_sql(&e, &ctx, 2)) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("segment: {e}")),
    };
    let (limit, offset) = (
        q.limit.unwrap_or(50).clamp(1, 1000),
        q.offset.unwrap_or(0).max(0),
    );
    let count = match state.store.segment_count(&scope, &compiled).await {
        Ok(n) => n,
        Err(e) => return internal(e),
    };
    match state
        .store
        .segment_members(&scope, &compiled, limit, offset)
        .await
    {
        Ok(members) => {
            Json(json!({ "count": count, "members": members, "limit": limit, "offset": offset }))
                .into_response()
        }
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<i64>,
}

/// The command audit log, newest first.
async fn audit_log(
    _: Operator,
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Response {
    match state
        .store
        .audit_log(q.limit.unwrap_or(100).clamp(1, 1000))
        .await
    {
        Ok(records) => Json(json!({ "audit": records })).into_response(),
        Err(e) => internal(e),
    }
}

/// An error answer with `status` and a message for the caller.
pub(super) fn error(status: StatusCode, reason: impl Into<String>) -> Response {
    ApiError::with_status(status, reason).into_response()
}

/// A lower layer's failure: 503 when retrying could help (storage unavailable), else 500.
pub(super) fn internal(e: impl super::error::Failure) -> Response {
    ApiError::from(e).into_response()
}

/// The operator, authenticated by the bearer token (constant-time compare; default deny).
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let token = state.config.ops_api.token.expose();
        if token.is_empty() {
            return Err(error(
                StatusCode::FORBIDDEN,
                "the ops API is disabled (set ops_api.token)",
            ));
        }
        let given = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or_default();
        if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            Ok(Operator)
        } else {
            Err(ApiError::Unauthorized("missing or wrong bearer token".into()).into_response())
        }
    }
}

/// The credentials of `Authorization: Bearer <token>`; the scheme is case-insensitive (RFC 9110).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn today(state: &AppState) -> i32 {
    local_day(state.config.timezone(), state.ingress.clock().now_secs())
}

async fn member_points(
    _: Operator,
    State(state): State<AppState>,
    Path((scope, user_id)): Path<(String, String)>,
) -> Response {
    let account = match state.store.points_account(&scope, &user_id).await {
        Ok(Some(a)) => a,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such member"),
        Err(e) => return internal(e),
    };
    let (id, account) = account;
    match state.store.ledger_of(id, 100).await {
        Ok(ledger) => Json(json!({
            "balance": account.balance, "total_earned": account.total_earned, "streak": account.streak,
            "best_streak": account.best_streak, "last_signin_day": account.last_signin_day, "ledger": ledger,
        }))
        .into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdjustBody {
    delta: i64,
    reason: String,
    operator: String,
    /// Idempotency key: the same request id applies once.
    request_id: String,
}

/// The body of an adjustment, or the 400 saying what is wrong with it.
fn checked_adjustment(
    state: &AppState,
    body: Result<Json<AdjustBody>, axum::extract::rejection::JsonRejection>,
) -> Result<AdjustBody, ApiError> {
    let bad = |reason: String| ApiError::with_status(StatusCode::BAD_REQUEST, reason);
    let Ok(Json(body)) = body else {
        return Err(bad(
            "body must be {delta, reason, operator, request_id}".into()
        ));
    };
    if body.delta == 0
        || body.reason.trim().is_empty()
        || body.operator.trim().is_empty()
        || body.request_id.trim().is_empty()
    {
        return Err(bad(
            "delta must not be 0; reason, operator and request_id are required".into(),
        ));
    }
    let max = state.config.commands.max_points_adjustment;
    if body.delta.unsigned_abs() > max.unsigned_abs() {
        return Err(bad(format!(
            "delta must be between -{max} and {max} (commands.max_points_adjustment)"
        )));
    }
    Ok(body)
}

async fn adjust_points(
    _: Operator,
    State(state): State<AppState>,
    Path((scope, user_id)): Path<(String, String)>,
    body: Result<Json<AdjustBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let body = match checked_adjustment(&state, body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    // An adjustment is for a member the registry has: a mistyped id or scope is not a new member.
    match state.store.member(&scope, &user_id).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no member `{user_id}` in scope `{scope}`"),
            )
        }
        Err(e) => return internal(e),
    }
    let (day, now) = (today(&state), state.ingress.clock().now_ms());
    let (scope_for_rules, user_for_rules) = (scope.clone(), user_id.clone());
    let result = state
        .ingress
        .writer()
        .run(move |store| async move {
            let adjustment = ops::Adjustment {
                scope: &scope,
                user_id: &user_id,
                delta: body.delta,
                reason: &body.reason,
                operator: &body.operator,
                request_id: &body.request_id,
                day,
                now_ms: now,
            };
            ops::adjust(&store, &adjustment).await
        })
        .await;
    match result {
        Ok(Ok(AdjustOutcome::Applied { balance })) => {
            // Points thresholds and levels tag at once, not at the next periodic run.
            if let Err(e) = crate::members::state_rules::apply_to_member(
                &state.store,
                &state.config,
                &scope_for_rules,
                &user_for_rules,
                now,
            )
            .await
            {
                tracing::warn!(error = %e, "state tag rules not applied after the adjustment; the periodic job will");
            }
            Json(json!({ "applied": true, "balance": balance })).into_response()
        }
        Ok(Ok(AdjustOutcome::Duplicate { balance })) => {
            Json(json!({ "applied": false, "balance": balance })).into_response()
        }
        Ok(Ok(AdjustOutcome::WouldGoNegative { balance })) => error(
            StatusCode::CONFLICT,
            format!("balance {balance} cannot go below zero"),
        ),
        Ok(Ok(AdjustOutcome::Conflict { delta, reason })) => error(
            StatusCode::CONFLICT,
            format!("request_id was used for this member with delta {delta} and reason `{reason}`"),
        ),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

async fn list_items(_: Operator, State(state): State<AppState>) -> Response {
    match state.store.all_items().await {
        Ok(items) => Json(json!({ "items": items })).into_response(),
        Err(e) => internal(e),
    }
}

async fn create_item(
    _: Operator,
    State(state): State<AppState>,
    body: Result<Json<ItemConfig>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(item)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "body must be {name, cost, stock, per_member_limit?, enabled?}",
        );
    };
    if item.name.trim().is_empty()
        || item.name.contains(char::is_whitespace)
        || item.cost <= 0
        || item.stock < 0
        || item.per_member_limit < 0
    {
        return error(
            StatusCode::BAD_REQUEST,
            "name is one word; cost > 0; stock and per_member_limit >= 0",
        );
    }
    match state
        .store
        .create_item(
            &crate::points::redemption::catalog_item(&item),
            state.ingress.clock().now_ms(),
        )
        .await
    {
        Ok(Some(created)) => (StatusCode::CREATED, Json(created)).into_response(),
        Ok(None) => error(StatusCode::CONFLICT, "an item with this name exists"),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemUpdate {
    cost: i64,
    stock: i64,
    per_member_limit: i64,
    enabled: bool,
}

async fn update_item(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: Result<Json<ItemUpdate>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(u)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "body must be {cost, stock, per_member_limit, enabled}",
        );
    };
    if u.cost <= 0 || u.stock < 0 || u.per_member_limit < 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "cost > 0; stock and per_member_limit >= 0",
        );
    }
    match state
        .store
        .update_item(id, u.cost, u.stock, u.per_member_limit, u.enabled)
        .await
    {
        Ok(Some(item)) => Json(item).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such item"),
        Err(e) => internal(e),
    }
}

async fn delete_item(_: Operator, State(state): State<AppState>, Path(id): Path<i64>) -> Response {
    match state.store.delete_item(id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(
            StatusCode::CONFLICT,
            "the item has orders; disable it instead (enabled = false)",
        ),
        Err(crate::store::StoreError::NotFound) => error(StatusCode::NOT_FOUND, "no such item"),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct OrdersQuery {
    status: Option<String>,
}

async fn list_orders(
    _: Operator,
    State(state): State<AppState>,
    Query(q): Query<OrdersQuery>,
) -> Response {
    let status = q.status.unwrap_or_else(|| "pending".into());
    if !["pending", "fulfilled", "cancelled"].contains(&status.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            "status is pending, fulfilled or cancelled",
        );
    }
    match state.store.order_views(&status).await {
        Ok(orders) => Json(json!({ "orders": orders })).into_response(),
        Err(e) => internal(e),
    }
}

async fn close(state: AppState, id: i64, action: OrderAction) -> Response {
    let (day, now) = (today(&state), state.ingress.clock().now_ms());
    let result =
        state
            .ingress
            .writer()
            .run(move |store| async move {
                ops::close_order(&store, id, action, "ops-api", day, now).await
            })
            .await;
    match result {
        Ok(Ok(OrderOutcome::Done)) => Json(json!({ "ok": true })).into_response(),
        Ok(Ok(OrderOutcome::NotFound)) => error(StatusCode::NOT_FOUND, "no such order"),
        Ok(Ok(OrderOutcome::NotPending { status })) => {
            error(StatusCode::CONFLICT, format!("order is already {status}"))
        }
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

async fn fulfil_order(_: Operator, State(state): State<AppState>, Path(id): Path<i64>) -> Response {
    close(state, id, OrderAction::Fulfil).await
}

async fn cancel_order(_: Operator, State(state): State<AppState>, Path(id): Path<i64>) -> Response {
    close(state, id, OrderAction::Cancel).await
}
