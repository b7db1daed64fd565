//! REST routes, one module per resource (docs/protocol.md, "REST API").

mod conversation;
mod conversations;
mod files;
mod health;
pub(super) mod metrics;
mod options;
mod responses;
mod secrets;
mod security;
mod settings;

use axum::http::StatusCode;
use axum::Router;

use super::error::ApiError;
use super::AppState;

/// Every REST route, with JSON 404/405 fallbacks.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(options::router())
        .merge(settings::router())
        .merge(secrets::router())
        .merge(conversations::router())
        .merge(conversation::router())
        .merge(files::router())
        .merge(security::router())
        .fallback(crate::server::frontend::serve)
        .method_not_allowed_fallback(|| async {
            ApiError::detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
}

/// Checks a conversation id taken from a path.
pub(super) fn checked_id(id: &str) -> Result<&str, ApiError> {
    if super::valid_conversation_id(id) {
        Ok(id)
    } else {
        Err(ApiError::bad_request("Invalid conversation ID"))
    }
}
