//! One error type for the JSON API: each kind keeps its status (a logic error is a 500, not a
//! 503 that tells the client to retry), the body is always `{"error": "<message>", "code":
//! "<kind>"}`, and internals are logged once here and never returned.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::store::writer::WriteError;
use crate::store::StoreError;

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unprocessable(String),
    /// The database is unreachable or overloaded: worth retrying.
    #[error("storage unavailable, try again")]
    Unavailable(String),
    /// A bug or an unexpected state: not worth retrying as is.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable kind in the body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Unprocessable(_) => "unprocessable",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// The error of `status` with a message meant for the caller.
    pub fn with_status(status: StatusCode, message: impl Into<String>) -> Self {
        let message = message.into();
        match status {
            StatusCode::UNAUTHORIZED => Self::Unauthorized(message),
            StatusCode::FORBIDDEN => Self::Forbidden(message),
            StatusCode::NOT_FOUND => Self::NotFound(message),
            StatusCode::CONFLICT => Self::Conflict(message),
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge(message),
            StatusCode::UNPROCESSABLE_ENTITY => Self::Unprocessable(message),
            StatusCode::SERVICE_UNAVAILABLE => Self::Unavailable(message),
            s if s.is_server_error() => Self::Internal(message),
            _ => Self::BadRequest(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Unavailable(detail) => {
                tracing::warn!(detail = %detail, "api: storage unavailable")
            }
            Self::Internal(detail) => tracing::error!(detail = %detail, "api: internal error"),
            _ => {}
        }
        let mut response = (
            self.status(),
            Json(json!({ "error": self.to_string(), "code": self.code() })),
        )
            .into_response();
        if matches!(self, Self::Unauthorized(_)) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"yunying\""),
            );
        }
        response
    }
}

/// A failure from a lower layer: whether retrying could help.
pub trait Failure: std::fmt::Display {
    fn unavailable(&self) -> bool {
        false
    }
}

impl Failure for StoreError {
    fn unavailable(&self) -> bool {
        self.is_unavailable()
    }
}

impl Failure for WriteError {
    fn unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl Failure for crate::recall::RecallError {
    fn unavailable(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_unavailable())
    }
}

impl Failure for crate::outbox::EnqueueError {
    fn unavailable(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_unavailable())
    }
}

impl Failure for crate::members::tag_sync::SyncError {
    fn unavailable(&self) -> bool {
        // WeCom not answering is worth retrying too.
        match self {
            Self::Api(_) => true,
            Self::Store(e) => e.is_unavailable(),
        }
    }
}

impl Failure for anyhow::Error {
    fn unavailable(&self) -> bool {
        self.downcast_ref::<StoreError>()
            .is_some_and(StoreError::is_unavailable)
    }
}

impl<E: Failure> From<E> for ApiError {
    fn from(e: E) -> Self {
        if e.unavailable() {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_storage_is_503_and_a_logic_error_500() {
        let down = ApiError::from(StoreError::Unavailable("pool timed out".into()));
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        let bug = ApiError::from(StoreError::Other("syntax error".into()));
        assert_eq!(bug.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            bug.to_string(),
            "internal error",
            "internals are not returned"
        );
        assert_eq!(
            ApiError::with_status(StatusCode::CONFLICT, "exists").code(),
            "conflict"
        );
    }
}
