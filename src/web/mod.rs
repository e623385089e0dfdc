//! HTTP surface: router assembly and layers. Handlers are thin: extract, call one function of
//! the pipeline, map the result.

mod callbacks;
pub mod error;
mod faq_api;
mod health;
mod inbox_api;
mod members_api;
mod ops_api;
mod outbox_api;
mod recall_api;
pub mod serve;
mod staff_api;
mod trace;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

/// The full router.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.server.body_limit_bytes;
    let body_deadline = std::time::Duration::from_secs(state.config.server.body_read_timeout_secs);
    // Each route's own limit applies after this (callbacks: `body_limit`; JSON: 2 MiB).
    let body_buffer = body_limit.max(2 * 1024 * 1024);
    let callbacks = Router::new()
        .route(
            "/callbacks/{channel_id}",
            get(callbacks::verify).post(callbacks::receive),
        )
        .layer(DefaultBodyLimit::max(body_limit));
    Router::new()
        .merge(callbacks)
        .merge(ops_api::router())
        .merge(faq_api::router())
        .merge(outbox_api::router())
        .merge(members_api::router())
        .merge(recall_api::router())
        .merge(staff_api::router())
        .merge(inbox_api::router())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route_layer(axum::middleware::from_fn(trace::trace_request))
        .fallback(health::not_found)
        .layer(axum::middleware::from_fn(move |request, next| {
            serve::body_deadline(body_deadline, body_buffer, request, next)
        }))
        .with_state(state)
}
