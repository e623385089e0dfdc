//! Ops API for members (`/api/v1`, bearer token): member detail (tags with provenance, stage and
//! its history, value layer, points), manual tagging, tag CRUD, WeCom tag pull, and tag-rule CRUD.
//! Listing and counting by segment is `GET /api/v1/members/{scope}?segment=` (ops_api.rs).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use super::error::ApiError;
use serde_json::json;

use super::ops_api::{error, internal, Operator};
use crate::config::TagRuleConfig;
use crate::members::rule_spec;
use crate::members::tag_sync;
use crate::state::AppState;
use crate::store::rules::TagRuleRow;
use crate::store::tags::{self, TagChange};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/members/{scope}/{user_id}", get(member_detail))
        .route("/api/v1/members/{scope}/{user_id}/tags", post(tag_member))
        .route("/api/v1/tags/{scope}", get(list_tags).post(create_tag))
        .route("/api/v1/tags/{scope}/sync", post(sync_tags))
        .route("/api/v1/tags/{scope}/log", get(tag_log))
        .route(
            "/api/v1/tags/{scope}/wecom",
            get(wecom_diff).post(push_to_wecom),
        )
        .route(
            "/api/v1/tags/{scope}/{name}",
            post(update_tag).delete(delete_tag),
        )
        .route("/api/v1/tag-rules", get(list_rules))
        .route("/api/v1/tag-rules/{id}", put(put_rule).delete(delete_rule))
}

fn now(state: &AppState) -> i64 {
    state.ingress.clock().now_ms()
}

async fn member_detail(
    _: Operator,
    State(state): State<AppState>,
    Path((scope, user)): Path<(String, String)>,
) -> Response {
    let s = &state.store;
    let member = match s.member(&scope, &user).await {
        Ok(Some(m)) => m,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no member {user} in {scope}"),
            )
        }
        Err(e) => return internal(e),
    };
    let result = async {
        let tags = s.tag_links(&scope, &user).await?;
        let stage = s.stage_of(&scope, &user).await?;
        let history = s.stage_history(&scope, &user).await?;
        let layer = s.layer_of(&scope, &user).await?;
        let points = s.points_account(&scope, &user).await?;
        Ok::<_, crate::store::StoreError>((tags, stage, history, layer, points))
    }
    .await;
    let (tags, stage, history, layer, points) = match result {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let history: Vec<_> = history
        .into_iter()
        .map(|(from, to, at)| json!({ "from": from, "to": to, "at": at }))
        .collect();
    let points =
        points.map(|(_, a)| json!({ "balance": a.balance, "total_earned": a.total_earned }));
    Json(json!({
        "user_id": member.platform_user_id,
        "name": member.display_name,
        "first_seen_at": member.first_seen_at,
        "last_active_at": member.last_active_at,
        "messages": member.message_count,
        "tags": tags,
        "stage": stage.map(|(stage, since)| json!({ "stage": stage, "since": since })),
        "stage_history": history,
        "layer": layer.map(|(layer, score)| json!({ "layer": layer, "score": score })),
        "points": points,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagLogQuery {
    /// One member's changes only.
    user: Option<String>,
    /// Entries older than this log id (the last `id` of the previous page).
    before: Option<i64>,
    limit: Option<i64>,
}

/// The tag change log of a scope, newest first: who got or lost which tag, from which source,
/// set by whom, when.
async fn tag_log(
    _: Operator,
    State(state): State<AppState>,
    Path(scope): Path<String>,
    q: Result<Query<TagLogQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return error(
            StatusCode::BAD_REQUEST,
            "query: user, before (a log id) and limit (1–500)",
        );
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let before = q.before.unwrap_or(i64::MAX);
    let user = q.user.unwrap_or_default();
    match state.store.tag_log(&scope, &user, before, limit).await {
        Ok(entries) => {
            let next = (entries.len() == usize::try_from(limit).unwrap_or(0))
                .then(|| entries.last().map(|e| e.id))
                .flatten();
            Json(json!({ "entries": entries, "next_before": next })).into_response()
        }
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagMemberBody {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
    /// Who did it (shown in the member's tag provenance); default `api`.
    #[serde(default)]
    by: Option<String>,
}

async fn tag_member(
    _: Operator,
    State(state): State<AppState>,
    Path((scope, user)): Path<(String, String)>,
    Json(b): Json<TagMemberBody>,
) -> Response {
    if b.add
        .iter()
        .chain(&b.remove)
        .any(|t| t.trim().is_empty() || t.chars().count() > 64)
    {
        return error(StatusCode::BAD_REQUEST, "tag names are 1–64 characters");
    }
    match state.store.member(&scope, &user).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no member {user} in {scope}"),
            )
        }
        Err(e) => return internal(e),
    }
    let by = b.by.clone().unwrap_or_else(|| "api".into());
    let now_ms = now(&state);
    let result = async {
        let mut tx = state.store.begin_write().await?;
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for (tag, add) in b
            .add
            .iter()
            .map(|t| (t, true))
            .chain(b.remove.iter().map(|t| (t, false)))
        {
            let change = TagChange {
                scope: &scope,
                user_id: &user,
                tag: tag.trim(),
                source: "manual",
                by: &by,
                now_ms,
            };
            if tags::set(&mut tx, &change, add).await? {
                if add { &mut added } else { &mut removed }.push(tag.clone());
            }
        }
        tx.commit().await?;
        Ok::<_, crate::store::StoreError>((added, removed))
    }
    .await;
    match result {
        Ok((added, removed)) => Json(json!({ "added": added, "removed": removed })).into_response(),
        Err(e) => internal(e),
    }
}

async fn list_tags(
    _: Operator,
    State(state): State<AppState>,
    Path(scope): Path<String>,
) -> Response {
    match state.store.tag_list(&scope).await {
        Ok(tags) => Json(json!({ "tags": tags })).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    group: Option<String>,
    /// e.g. `#e5484d`.
    #[serde(default)]
    color: Option<String>,
}

fn valid_color(color: Option<&str>) -> bool {
    color.is_none_or(|c| {
        c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|ch| ch.is_ascii_hexdigit())
    })
}

async fn create_tag(
    _: Operator,
    State(state): State<AppState>,
    Path(scope): Path<String>,
    Json(b): Json<TagBody>,
) -> Response {
    let name = b.name.clone().unwrap_or_default();
    if name.trim().is_empty() || name.chars().count() > 64 {
        return error(
            StatusCode::BAD_REQUEST,
            "`name` is required (1–64 characters)",
        );
    }
    if !valid_color(b.color.as_deref()) {
        return error(StatusCode::BAD_REQUEST, "`color` is #rrggbb");
    }
    let now_ms = now(&state);
    let result = async {
        let mut tx = state.store.begin_write().await?;
        let created = tags::create_tag(
            &mut tx,
            &scope,
            name.trim(),
            b.group.as_deref(),
            b.color.as_deref(),
            now_ms,
        )
        .await?;
        tx.commit().await?;
        Ok::<_, crate::store::StoreError>(created)
    }
    .await;
    match result {
        Ok(true) => (StatusCode::CREATED, Json(json!({ "name": name.trim() }))).into_response(),
        Ok(false) => error(
            StatusCode::CONFLICT,
            format!("tag `{}` exists", name.trim()),
        ),
        Err(e) => internal(e),
    }
}

async fn update_tag(
    _: Operator,
    State(state): State<AppState>,
    Path((scope, name)): Path<(String, String)>,
    Json(b): Json<TagBody>,
) -> Response {
    if !valid_color(b.color.as_deref()) {
        return error(StatusCode::BAD_REQUEST, "`color` is #rrggbb");
    }
    let result = async {
        let mut tx = state.store.begin_write().await?;
        let done = tags::update_tag(
            &mut tx,
            &scope,
            &name,
            b.group.as_deref(),
            b.color.as_deref(),
        )
        .await?;
        tx.commit().await?;
        Ok::<_, crate::store::StoreError>(done)
    }
    .await;
    match result {
        Ok(true) => Json(json!({ "updated": name })).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no tag `{name}`")),
        Err(e) => internal(e),
    }
}

async fn delete_tag(
    _: Operator,
    State(state): State<AppState>,
    Path((scope, name)): Path<(String, String)>,
) -> Response {
    let now_ms = now(&state);
    let result = async {
        let mut tx = state.store.begin_write().await?;
        let done = tags::delete_tag(&mut tx, &scope, &name, "api", now_ms).await?;
        tx.commit().await?;
        Ok::<_, crate::store::StoreError>(done)
    }
    .await;
    match result {
        Ok(true) => Json(json!({ "deleted": name })).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no tag `{name}`")),
        Err(e) => internal(e),
    }
}

async fn sync_tags(
    _: Operator,
    State(state): State<AppState>,
    Path(scope): Path<String>,
) -> Response {
    let channel = match tag_channel(&state, &scope) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    match tag_sync::pull(&state.outbox, &state.store, channel, &scope, now(&state)).await {
        Ok(n) => Json(json!({ "channel": channel, "tags": n })).into_response(),
        Err(tag_sync::SyncError::Api(e)) => error(StatusCode::BAD_GATEWAY, e),
        Err(e) => internal(e),
    }
}

/// The `wecom_app` channel that syncs tags for `scope`, or the 404 saying there is none.
fn tag_channel<'c>(state: &'c AppState, scope: &str) -> Result<&'c str, ApiError> {
    tag_sync::sync_channels(&state.config)
        .find(|(_, s)| *s == scope)
        .map(|(c, _)| c)
        .ok_or_else(|| {
            ApiError::with_status(
                StatusCode::NOT_FOUND,
                format!("no wecom_app channel with a secret serves scope `{scope}`"),
            )
        })
}

/// How the scope's tags and the corp tag library differ.
async fn wecom_diff(
    _: Operator,
    State(state): State<AppState>,
    Path(scope): Path<String>,
) -> Response {
    let channel = match tag_channel(&state, &scope) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    match tag_sync::diff(&state.outbox, &state.store, channel, &scope).await {
        Ok(d) => Json(d).into_response(),
        Err(tag_sync::SyncError::Api(e)) => error(StatusCode::BAD_GATEWAY, e),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushBody {
    /// The corp tag group to create them in.
    group: String,
    tags: Vec<String>,
}

/// Creates local tags at WeCom as corp tags in a group, and maps them.
async fn push_to_wecom(
    _: Operator,
    State(state): State<AppState>,
    Path(scope): Path<String>,
    body: Result<Json<PushBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(b)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "body must be {\"group\", \"tags\": [...]}",
        );
    };
    let group = b.group.trim();
    if group.is_empty() || group.chars().count() > 30 {
        return error(
            StatusCode::BAD_REQUEST,
            "group: 1 to 30 characters (WeCom's limit)",
        );
    }
    let tags: Vec<String> = b
        .tags
        .iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    if tags.is_empty() || tags.iter().any(|t| t.chars().count() > 30) {
        return error(
            StatusCode::BAD_REQUEST,
            "tags: at least one, each 1 to 30 characters",
        );
    }
    let channel = match tag_channel(&state, &scope) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    match tag_sync::push(
        &state.outbox,
        &state.store,
        channel,
        &scope,
        group,
        &tags,
        now(&state),
    )
    .await
    {
        Ok(created) => {
            let names: Vec<&str> = created.iter().map(|t| t.name.as_str()).collect();
            Json(json!({ "channel": channel, "group": group, "created": names })).into_response()
        }
        Err(tag_sync::SyncError::Api(e)) => error(StatusCode::BAD_GATEWAY, e),
        Err(e) => internal(e),
    }
}

async fn list_rules(_: Operator, State(state): State<AppState>) -> Response {
    let stored = match state.store.tag_rule_rows().await {
        Ok(rows) => rows,
        Err(e) => return internal(e),
    };
    let configured: Vec<_> = state
        .config
        .tag_rules
        .iter()
        .map(|r| json!({ "id": r.id, "kind": r.when, "pattern": r.pattern, "add": r.add, "remove": r.remove, "from": "config" }))
        .collect();
    let stored: Vec<_> = stored
        .iter()
        .map(|r| json!({
            "id": r.id, "kind": r.kind, "pattern": r.pattern, "enabled": r.enabled, "from": "database",
            "add": serde_json::from_str::<serde_json::Value>(&r.add_tags).unwrap_or_default(),
            "remove": serde_json::from_str::<serde_json::Value>(&r.remove_tags).unwrap_or_default(),
        }))
        .collect();
    Json(json!({ "config": configured, "database": stored, "kinds": rule_spec::KINDS }))
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    kind: String,
    pattern: String,
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

async fn put_rule(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(b): Json<RuleBody>,
) -> Response {
    if state.config.tag_rules.iter().any(|r| r.id == id) {
        return error(
            StatusCode::CONFLICT,
            format!("rule `{id}` is defined in the configuration"),
        );
    }
    let spec = TagRuleConfig {
        id: id.clone(),
        when: b.kind.clone(),
        pattern: b.pattern.clone(),
        add: b.add.clone(),
        remove: b.remove.clone(),
    };
    if let Err(reason) = rule_spec::compile(&spec) {
        return error(StatusCode::BAD_REQUEST, reason);
    }
    let now_ms = now(&state);
    let row = TagRuleRow {
        id: id.clone(),
        kind: b.kind,
        pattern: b.pattern,
        add_tags: serde_json::to_string(&b.add).unwrap_or_else(|_| "[]".into()),
        remove_tags: serde_json::to_string(&b.remove).unwrap_or_else(|_| "[]".into()),
        enabled: b.enabled,
        created_at: now_ms,
        updated_at: now_ms,
    };
    match state.store.put_tag_rule(&row).await {
        Ok(()) => Json(json!({ "id": id })).into_response(),
        Err(e) => internal(e),
    }
}

async fn delete_rule(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    match state.store.delete_tag_rule(&id).await {
        Ok(true) => Json(json!({ "deleted": id })).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no stored rule `{id}`")),
        Err(e) => internal(e),
    }
}
