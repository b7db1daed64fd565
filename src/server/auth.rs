//! `X-Session-API-Key` for REST routes.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;

/// Routes reachable without the key: health checks, the UI, and Socket.IO (which
/// checks the key itself in its connect handler).
fn exempt(path: &str) -> bool {
    matches!(path, "/alive" | "/health" | "/server_info" | "/api/health")
        || path.starts_with("/socket.io")
        || path == "/ws"
        || !path.starts_with("/api/")
}

/// Compares two secrets without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Rejects REST requests without the configured session API key.
pub async fn require_session_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.config.session_api_key.as_deref() else {
        return next.run(req).await;
    };
    if exempt(req.uri().path()) {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get("x-session-api-key")
        .and_then(|v| v.to_str().ok());
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
        next.run(req).await
    } else {
        ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            serde_json::json!({"detail": "Missing or invalid X-Session-API-Key header"}),
        )
        .into_response()
    }
}
