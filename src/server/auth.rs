//! `X-Session-API-Key` for REST routes.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
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

/// The cookie a browser keeps the session API key in (set by opening the UI once with
/// `?session_api_key=…`).
const COOKIE: &str = "openhands_session_api_key";

/// The session API key from a request's cookies.
pub fn cookie_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// The request's path and query without `session_api_key`.
fn without_key(uri: &axum::http::Uri) -> String {
    let rest: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some("session_api_key"))
        .collect();
    if rest.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{}", uri.path(), rest.join("&"))
    }
}

fn query_key(req: &Request) -> Option<String> {
    req.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == "session_api_key")
            .map(|(_, v)| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .to_string()
            })
    })
}

/// Who is calling, as far as the transport and its credentials tell; put in every
/// request's extensions by [`require_session_key`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller {
    /// The client's address, when known.
    pub peer: Option<std::net::IpAddr>,
    /// The request carries the session key (header, cookie or query), or none is needed.
    pub key_ok: bool,
}

/// Rejects REST requests without the configured session API key (header or cookie).
/// Opening a page with `?session_api_key=…` stores the key in an HttpOnly cookie, so the
/// browser UI works when a key is set.
pub async fn require_session_key(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let Some(expected) = state.config.session_api_key.as_deref() else {
        req.extensions_mut().insert(Caller { peer, key_ok: true });
        return next.run(req).await;
    };
    let matches = |g: &str| constant_time_eq(g.as_bytes(), expected.as_bytes());
    let key_ok = req
        .headers()
        .get("x-session-api-key")
        .and_then(|v| v.to_str().ok())
        .is_some_and(matches)
        || cookie_key(req.headers()).is_some_and(|k| matches(&k))
        || query_key(&req).is_some_and(|k| matches(&k));
    req.extensions_mut().insert(Caller { peer, key_ok });
    let path = req.uri().path();
    if !path.starts_with("/api/") && !path.starts_with("/socket.io") && path != "/ws" {
        if let Some(key) = query_key(&req).filter(|k| matches(k)) {
            // Keep the key in a cookie and take it out of the address bar (and so out of
            // the browser's history) with a redirect to the same page without it.
            let secure = req
                .headers()
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
            let cookie = format!(
                "{COOKIE}={key}; Path=/; HttpOnly; SameSite=Strict{}",
                if secure { "; Secure" } else { "" }
            );
            let location = without_key(req.uri());
            let mut res = axum::http::StatusCode::SEE_OTHER.into_response();
            for (name, value) in [(header::SET_COOKIE, cookie), (header::LOCATION, location)] {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    res.headers_mut().insert(name, v);
                }
            }
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return res;
        }
    }
    if exempt(req.uri().path()) {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get("x-session-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| cookie_key(req.headers()));
    if given.is_some_and(|g| matches(&g)) {
        next.run(req).await
    } else {
        ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            serde_json::json!({"detail": "Missing or invalid X-Session-API-Key header"}),
        )
        .into_response()
    }
}
