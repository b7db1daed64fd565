//! The session API key: one check for REST, Socket.IO and `/ws` ([`authorized`]), the
//! REST middleware, and the cookie that keeps the key for the browser UI.

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
        || (!path.starts_with("/api/") && path != METRICS)
}

/// The metrics route: behind the key like the REST API; Prometheus may also send the key
/// as `Authorization: Bearer <key>` (its `authorization` scrape setting).
const METRICS: &str = "/metrics";

/// The key of an `Authorization: Bearer <key>` header.
fn bearer_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Compares two secrets without leaking where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The credentials a client presents, each where it was found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Credentials<'a> {
    /// `session_api_key` in a Socket.IO CONNECT's auth payload.
    pub auth_payload: Option<&'a str>,
    /// `session_api_key` in the query string.
    pub query: Option<&'a str>,
    /// The `X-Session-API-Key` header.
    pub header: Option<&'a str>,
    /// The key cookie ([`cookie_key`]).
    pub cookie: Option<&'a str>,
}

/// Whether a client may in: always when no key is configured; otherwise one of the
/// credentials it presents (auth payload, query, header, cookie) must be the key. Any one
/// proves it: the OpenHands UI, for one, sends the query `session_api_key=null` next to
/// the cookie that holds the key.
pub fn authorized(expected: Option<&str>, given: &Credentials) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    [given.auth_payload, given.query, given.header, given.cookie]
        .into_iter()
        .flatten()
        .any(|g| constant_time_eq(g.as_bytes(), expected.as_bytes()))
}

/// The `X-Session-API-Key` header of a request.
pub fn header_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-session-api-key")
        .and_then(|v| v.to_str().ok())
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
    let query = query_key(&req);
    let cookie = cookie_key(req.headers());
    let header = header_key(req.headers()).or_else(|| {
        (req.uri().path() == METRICS)
            .then(|| bearer_key(req.headers()))
            .flatten()
    });
    let cookie = cookie.as_deref();
    // REST takes the header or the cookie; a handshake (Socket.IO) also the query.
    let rest_ok = authorized(
        Some(expected),
        &Credentials {
            header,
            cookie,
            ..Credentials::default()
        },
    );
    let key_ok = authorized(
        Some(expected),
        &Credentials {
            query: query.as_deref(),
            header,
            cookie,
            ..Credentials::default()
        },
    );
    req.extensions_mut().insert(Caller { peer, key_ok });
    let path = req.uri().path();
    if !path.starts_with("/api/")
        && !path.starts_with("/socket.io")
        && path != "/ws"
        && path != METRICS
    {
        let query_ok = |k: &String| {
            authorized(
                Some(expected),
                &Credentials {
                    query: Some(k),
                    ..Credentials::default()
                },
            )
        };
        if let Some(key) = query.filter(query_ok) {
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
    if exempt(req.uri().path()) || rest_ok {
        next.run(req).await
    } else {
        ApiError::detail(
            axum::http::StatusCode::UNAUTHORIZED,
            "Missing or invalid X-Session-API-Key header",
        )
        .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_configured_key_everyone_is_authorized() {
        assert!(authorized(None, &Credentials::default()));
        assert!(authorized(
            None,
            &Credentials {
                query: Some("anything"),
                ..Credentials::default()
            }
        ));
    }

    #[test]
    fn the_key_is_accepted_from_any_one_place() {
        let key = Some("s3cret");
        for given in [
            Credentials {
                auth_payload: Some("s3cret"),
                ..Credentials::default()
            },
            Credentials {
                query: Some("s3cret"),
                ..Credentials::default()
            },
            Credentials {
                header: Some("s3cret"),
                ..Credentials::default()
            },
            Credentials {
                cookie: Some("s3cret"),
                ..Credentials::default()
            },
        ] {
            assert!(authorized(key, &given), "{given:?}");
        }
    }

    #[test]
    fn no_credential_or_a_wrong_one_is_refused() {
        let key = Some("s3cret");
        assert!(!authorized(key, &Credentials::default()));
        for wrong in ["", "s3cre", "s3cret ", "S3CRET", "null"] {
            let given = Credentials {
                header: Some(wrong),
                ..Credentials::default()
            };
            assert!(!authorized(key, &given), "{wrong:?}");
        }
    }

    #[test]
    fn any_credential_that_is_the_key_lets_the_client_in() {
        let key = Some("s3cret");
        // The OpenHands UI: the literal query `null` beside the cookie with the key.
        let ui = Credentials {
            query: Some("null"),
            cookie: Some("s3cret"),
            ..Credentials::default()
        };
        assert!(authorized(key, &ui));
        let all_wrong = Credentials {
            auth_payload: Some("wrong"),
            query: Some("null"),
            header: Some(""),
            cookie: Some("s3cre"),
        };
        assert!(!authorized(key, &all_wrong));
    }

    #[test]
    fn the_key_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; openhands_session_api_key=k; b=2"),
        );
        assert_eq!(cookie_key(&headers).as_deref(), Some("k"));
        assert_eq!(cookie_key(&HeaderMap::new()), None);
    }
}
