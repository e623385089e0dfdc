//! `GET|POST /callbacks/{channel_id}`: URL verification and deliveries.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::ingress::{CallbackQuery, CallbackResponse, GatewayHeaders, IngressError};
use crate::state::AppState;
use crate::wecom::gateway;

pub async fn verify(
    State(state): State<AppState>,
    Path(channel_id): Path<String>,
    Query(query): Query<CallbackQuery>,
) -> Response {
    respond(&channel_id, state.ingress.verify_url(&channel_id, &query))
}

pub async fn receive(
    State(state): State<AppState>,
    Path(channel_id): Path<String>,
    Query(query): Query<CallbackQuery>,
    gateway: GatewayHeaders,
    body: Bytes,
) -> Response {
    respond(
        &channel_id,
        state
            .ingress
            .receive(&channel_id, &query, &gateway, &body)
            .await,
    )
}

/// The gateway's two headers, read where they are: the `HeaderMap` extractor would copy every
/// header of every callback.
impl<S: Send + Sync> FromRequestParts<S> for GatewayHeaders {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(GatewayHeaders {
            timestamp: header(gateway::TIMESTAMP_HEADER),
            signature: header(gateway::SIGNATURE_HEADER),
        })
    }
}

fn respond(channel_id: &str, result: Result<CallbackResponse, IngressError>) -> Response {
    match result {
        Ok(CallbackResponse::Text(text)) => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
        Ok(CallbackResponse::Xml(xml)) => (
            [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
            xml,
        )
            .into_response(),
        Ok(CallbackResponse::Json(json)) => {
            ([(header::CONTENT_TYPE, "application/json")], json).into_response()
        }
        Ok(CallbackResponse::Empty) => StatusCode::OK.into_response(),
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            match &e {
                IngressError::Unavailable(detail) | IngressError::Internal(detail) => {
                    tracing::error!(channel = channel_id, status = status.as_u16(), detail = %detail, "callback failed");
                }
                _ => {
                    tracing::warn!(channel = channel_id, status = status.as_u16(), reason = %e, "callback rejected")
                }
            }
            (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                e.to_string(),
            )
                .into_response()
        }
    }
}
