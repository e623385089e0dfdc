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
    let depth = state.store.inbox_depth().await.ok();
    let mut text = state.metrics.render(depth);
    if let Ok(dead) = state.store.inbox_dead_count().await {
        use std::fmt::Write as _;
        text.push_str("# HELP yunying_inbox_dead Events set aside as dead, waiting for ops to re-drive or discard them.\n# TYPE yunying_inbox_dead gauge\n");
        let _ = writeln!(text, "yunying_inbox_dead {dead}");
    }
    outbox_metrics(&state, &mut text).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

pub async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

/// Outbox rows by state (from the database, so every replica reports the same) and this
/// process's send results.
async fn outbox_metrics(state: &AppState, out: &mut String) {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering;
    if let Ok(counts) = state.store.outbox_counts().await {
        out.push_str(
            "# HELP yunying_outbox_rows Outbox rows by state.\n# TYPE yunying_outbox_rows gauge\n",
        );
        for (s, n) in counts {
            let _ = writeln!(out, "yunying_outbox_rows{{state=\"{s}\"}} {n}");
        }
    }
    let c = state.outbox.counters();
    out.push_str("# HELP yunying_outbox_sends_total Send attempts of this process by result.\n# TYPE yunying_outbox_sends_total counter\n");
    for (label, v) in [
        ("sent", &c.sent),
        ("retried", &c.retried),
        ("deferred", &c.deferred),
        ("dead", &c.dead),
    ] {
        let _ = writeln!(
            out,
            "yunying_outbox_sends_total{{result=\"{label}\"}} {}",
            v.load(Ordering::Relaxed)
        );
    }
}
