//! Every request runs in a `request` span carrying its method, its path (never the
//! query string: it may hold the session key) and a request id, so that every log line
//! written while serving it says which request it belongs to. The id is also sent back
//! as `X-Request-Id`.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

/// Longest path written into the span (the guard refuses longer URLs anyway).
const MAX_LOGGED_PATH: usize = 256;

/// Routes polled all the time: their completion is logged at debug level only.
fn chatty(path: &str) -> bool {
    path.starts_with("/socket.io") || matches!(path, "/alive" | "/health" | "/api/health")
}

/// The request-span middleware (outermost layer).
pub async fn request_span(req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let path = req.uri().path();
    let path = match path.char_indices().nth(MAX_LOGGED_PATH) {
        Some((cut, _)) => &path[..cut],
        None => path,
    };
    let chatty = chatty(path);
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %path,
        request_id = %id,
    );
    let started = Instant::now();
    let mut res = next.run(req).instrument(span.clone()).await;
    let status = res.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if chatty {
            tracing::debug!(status, ms, "request done");
        } else {
            tracing::info!(status, ms, "request done");
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_routes_are_chatty_and_rest_routes_are_not() {
        assert!(chatty("/socket.io/"));
        assert!(chatty("/alive"));
        assert!(!chatty("/api/conversations"));
        assert!(!chatty("/metrics"));
    }
}
