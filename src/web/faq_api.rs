//! Ops API for the FAQ (`/api/v1/faq`, bearer token): entries CRUD, testing a question, the
//! unanswered list and turning an unanswered question into an entry or a similar question,
//! and the per-group auto-answer switch. Every change rebuilds the matcher at once.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::ops_api::{error, internal, Operator};
use crate::faq::check_entry;
use crate::state::AppState;
use crate::store::faq::{self as db, NewFaqEntry};
use crate::store::{Store, StoreError};

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/faq/entries", get(list).post(create))
        .route(
            "/api/v1/faq/entries/{id}",
            get(show).put(update).delete(remove),
        )
        .route("/api/v1/faq/test", post(test_question))
        .route("/api/v1/faq/unanswered", get(unanswered))
        .route("/api/v1/faq/unanswered/{id}/resolve", post(resolve))
        .route("/api/v1/faq/unanswered/{id}/ignore", post(ignore))
        .route("/api/v1/faq/groups/{scope}/{group_id}", put(group_switch))
}

fn bad_json(e: &axum::extract::rejection::JsonRejection) -> Response {
    error(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}"))
}

/// Runs a write transaction on the writer and rebuilds the matcher afterwards.
async fn write<T: Send + 'static>(
    state: &AppState,
    f: impl for<'a> FnOnce(
            &'a mut crate::store::Tx,
        ) -> crate::store::BoxFuture<'a, Result<T, StoreError>>
        + Send
        + 'static,
) -> Result<T, Response> {
    let result = state
        .ingress
        .writer()
        .run(move |store: Store| async move {
            let mut tx = store.begin_write().await?;
            let value = f(&mut tx).await?;
            tx.commit().await?;
            Ok::<T, StoreError>(value)
        })
        .await;
    state.faq.invalidate();
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(StoreError::UniqueViolation)) => {
            Err(error(StatusCode::CONFLICT, "an entry with this id exists"))
        }
        Ok(Err(e)) => Err(internal(e)),
        Err(e) => Err(internal(e)),
    }
}

async fn list(_: Operator, State(state): State<AppState>) -> Response {
    match state.store.faq_entries(false).await {
        Ok(entries) => Json(json!({ "entries": entries })).into_response(),
        Err(e) => internal(e),
    }
}

async fn show(_: Operator, State(state): State<AppState>, Path(id): Path<i64>) -> Response {
    match state.store.faq_entry(id).await {
        Ok(Some(entry)) => Json(entry).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such entry"),
        Err(e) => internal(e),
    }
}

async fn create(
    _: Operator,
    State(state): State<AppState>,
    body: JsonBody<NewFaqEntry>,
) -> Response {
    let Json(entry) = match body {
        Ok(b) => b,
        Err(e) => return bad_json(&e),
    };
    if let Err(reason) = check_entry(&entry) {
        return error(StatusCode::BAD_REQUEST, reason);
    }
    let now = state.ingress.clock().now_ms();
    match write(&state, move |tx| {
        Box::pin(async move { db::insert_entry(tx, &entry, now).await })
    })
    .await
    {
        Ok(id) => created(&state, id).await,
        Err(r) => r,
    }
}

async fn created(state: &AppState, id: i64) -> Response {
    match state.store.faq_entry(id).await {
        Ok(Some(entry)) => (StatusCode::CREATED, Json(entry)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such entry"),
        Err(e) => internal(e),
    }
}

async fn update(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: JsonBody<NewFaqEntry>,
) -> Response {
    let Json(entry) = match body {
        Ok(b) => b,
        Err(e) => return bad_json(&e),
    };
    if let Err(reason) = check_entry(&entry) {
        return error(StatusCode::BAD_REQUEST, reason);
    }
    let now = state.ingress.clock().now_ms();
    match write(&state, move |tx| {
        Box::pin(async move { db::update_entry(tx, id, &entry, now).await })
    })
    .await
    {
        Ok(true) => show(Operator, State(state), Path(id)).await,
        Ok(false) => error(StatusCode::NOT_FOUND, "no such entry"),
        Err(r) => r,
    }
}

async fn remove(_: Operator, State(state): State<AppState>, Path(id): Path<i64>) -> Response {
    match write(&state, move |tx| {
        Box::pin(async move { db::delete_entry(tx, id).await })
    })
    .await
    {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, "no such entry"),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    question: String,
}

async fn test_question(
    _: Operator,
    State(state): State<AppState>,
    body: JsonBody<TestBody>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_json(&e),
    };
    let now = state.ingress.clock().now_ms();
    let snapshot = match state.faq.snapshot(&state.store, now).await {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let config = state.faq.config();
    let ranked = snapshot.rank(&body.question, 5);
    let confidence = ranked.first().map_or(0.0, |(c, _)| c.confidence);
    let decision = if confidence >= config.answer_threshold {
        "answer"
    } else if confidence >= config.suggest_threshold {
        "suggest"
    } else {
        "unanswered"
    };
    let candidates: Vec<_> = ranked
        .iter()
        .map(|(c, e)| json!({ "id": e.id, "question": e.question, "matched": c.question, "score": c.score }))
        .collect();
    Json(json!({ "decision": decision, "confidence": confidence, "candidates": candidates }))
        .into_response()
}

#[derive(Deserialize)]
struct UnansweredQuery {
    status: Option<String>,
    limit: Option<i64>,
}

async fn unanswered(
    _: Operator,
    State(state): State<AppState>,
    Query(q): Query<UnansweredQuery>,
) -> Response {
    let status = q.status.unwrap_or_else(|| "open".into());
    if !matches!(status.as_str(), "open" | "resolved" | "ignored") {
        return error(
            StatusCode::BAD_REQUEST,
            "status is open, resolved or ignored",
        );
    }
    match state
        .store
        .faq_unanswered(&status, q.limit.unwrap_or(100).clamp(1, 1000))
        .await
    {
        Ok(items) => Json(json!({ "unanswered": items })).into_response(),
        Err(e) => internal(e),
    }
}

/// Either `{"entry_id": N}` (the question becomes a similar question of entry N) or
/// `{"answer": "…", "question"?: "…", "category"?: "…"}` (a new entry).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    entry_id: Option<i64>,
    answer: Option<String>,
    question: Option<String>,
    category: Option<String>,
}

async fn resolve(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: JsonBody<ResolveBody>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_json(&e),
    };
    let item = match state.store.faq_unanswered_by_id(id).await {
        Ok(Some(item)) if item.status == "open" => item,
        Ok(Some(_)) => return error(StatusCode::CONFLICT, "already closed"),
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such question"),
        Err(e) => return internal(e),
    };
    let now = state.ingress.clock().now_ms();
    let target = match (body.entry_id, body.answer) {
        (Some(entry_id), None) => {
            let mut entry = match state.store.faq_entry(entry_id).await {
                Ok(Some(e)) => e,
                Ok(None) => return error(StatusCode::NOT_FOUND, "no such entry"),
                Err(e) => return internal(e),
            };
            if !entry.similar.contains(&item.question) {
                entry.similar.push(item.question.clone());
            }
            Target::Similar(entry_id, NewFaqEntry::from(entry))
        }
        (None, Some(answer)) => {
            let entry = NewFaqEntry {
                question: body.question.unwrap_or(item.question.clone()),
                answer,
                category: body.category,
                enabled: true,
                ..NewFaqEntry::default()
            };
            if let Err(reason) = check_entry(&entry) {
                return error(StatusCode::BAD_REQUEST, reason);
            }
            Target::New(entry)
        }
        _ => return error(StatusCode::BAD_REQUEST, "give either entry_id or answer"),
    };
    let result = write(&state, move |tx| {
        Box::pin(async move {
            let entry_id = match &target {
                Target::Similar(entry_id, entry) => {
                    db::update_entry(tx, *entry_id, entry, now).await?;
                    *entry_id
                }
                Target::New(entry) => db::insert_entry(tx, entry, now).await?,
            };
            let closed = db::close_unanswered(tx, id, "resolved", Some(entry_id)).await?;
            Ok((entry_id, closed))
        })
    })
    .await;
    match result {
        Ok((entry_id, true)) => {
            Json(json!({ "resolved": id, "entry_id": entry_id })).into_response()
        }
        Ok((_, false)) => error(StatusCode::CONFLICT, "already closed"),
        Err(r) => r,
    }
}

enum Target {
    Similar(i64, NewFaqEntry),
    New(NewFaqEntry),
}

async fn ignore(_: Operator, State(state): State<AppState>, Path(id): Path<i64>) -> Response {
    match write(&state, move |tx| {
        Box::pin(async move { db::close_unanswered(tx, id, "ignored", None).await })
    })
    .await
    {
        Ok(true) => Json(json!({ "ignored": id })).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, "no open question with this id"),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    auto_answer: bool,
}

async fn group_switch(
    _: Operator,
    State(state): State<AppState>,
    Path((scope, group_id)): Path<(String, String)>,
    body: JsonBody<GroupBody>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_json(&e),
    };
    let on = body.auto_answer;
    let (s, g) = (scope.clone(), group_id.clone());
    match write(&state, move |tx| {
        Box::pin(async move { db::set_auto_answer(tx, &s, &g, on).await })
    })
    .await
    {
        Ok(()) => {
            Json(json!({ "scope": scope, "group_id": group_id, "auto_answer": on })).into_response()
        }
        Err(r) => r,
    }
}
