//! Request tracing: every routed request gets an id (the caller's `X-Request-Id` when it is a
//! short token, else a new one), a span with the method, the matched route and the id, and the
//! id back in the `X-Request-Id` response header. Spans are at debug level, so they cost nothing
//! measurable unless `YUNYING_LOG` asks for them.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

const HEADER: &str = "x-request-id";

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The caller's id if it is 1–64 characters of letters, digits, `-` and `_`; else a new one.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(
            || {
                format!(
                    "{:x}-{:x}",
                    std::process::id(),
                    NEXT_ID.fetch_add(1, Ordering::Relaxed)
                )
            },
            str::to_owned,
        )
}

pub async fn trace_request(request: Request, next: Next) -> Response {
    let id = request_id(&request);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("-", MatchedPath::as_str)
        .to_owned();
    let span =
        tracing::debug_span!("request", method = %request.method(), route = %route, id = %id);
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}
