//! Operator endpoints: `/healthz` (process up), `/readyz` (database reachable), `/metrics`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.store.ping().await {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    use std::sync::atomic::Ordering;
    let c = state.outbox.counters();
    let gauges = crate::telemetry::Gauges {
        inbox_depth: state.store.inbox_depth().await.ok(),
        inbox_dead: state.store.inbox_dead_count().await.ok(),
        outbox_rows: state.store.outbox_counts().await.ok(),
        outbox_sends: [
            ("sent", c.sent.load(Ordering::Relaxed)),
            ("retried", c.retried.load(Ordering::Relaxed)),
            ("deferred", c.deferred.load(Ordering::Relaxed)),
            ("dead", c.dead.load(Ordering::Relaxed)),
        ],
    };
    let text = state.metrics.render(&gauges);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

pub async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}
