//! Who may talk to the server from a browser: the `Host` check (against DNS rebinding),
//! the `Origin` check (against cross-site requests and websocket hijacking), and the
//! security headers of every response. Clients that send no `Origin` (curl, websocat,
//! python-socketio, socket.io-client in Node) are not browsers and are not affected.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::config::{is_loopback_host, Config};

/// Longest URL (path and query) accepted.
const MAX_URI_BYTES: usize = 8 * 1024;

/// The browser-facing policy, decided once from the configuration.
#[derive(Debug, Clone)]
pub struct BrowserPolicy {
    /// Any `Host` is fine (the server is bound to a network address: the session key,
    /// not the name, is what keeps strangers out).
    any_host: bool,
    /// Host names accepted besides loopback names and the bound address.
    hosts: Vec<String>,
    bound: String,
    /// Origins trusted besides the server's own; `*` trusts any.
    origins: Vec<String>,
    any_origin: bool,
}

impl BrowserPolicy {
    pub fn new(config: &Config) -> Self {
        BrowserPolicy {
            any_host: !is_loopback_host(&config.host)
                || config.allowed_hosts.iter().any(|h| h == "*"),
            hosts: config
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            bound: config.host.to_ascii_lowercase(),
            origins: config
                .cors_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            any_origin: config.cors_origins.iter().any(|o| o == "*"),
        }
    }

    /// Whether the `Host` header names this server.
    pub fn host_allowed(&self, host: &str) -> bool {
        if self.any_host {
            return true;
        }
        let name = host_name(host).to_ascii_lowercase();
        is_loopback_host(&name) || name == self.bound || self.hosts.contains(&name)
    }

    /// Whether a browser page at `origin` may use the server reached as `host`: its own
    /// origin (same host and port) or a trusted one.
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        if self.any_origin {
            return true;
        }
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.origins.contains(&origin) {
            return true;
        }
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
    }

    /// Whether CORS may answer `origin` (a trusted origin; the server's own needs no CORS).
    pub fn cors_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        self.origins.contains(&origin)
    }

    pub fn any_origin(&self) -> bool {
        self.any_origin
    }
}

/// `host[:port]` → `host` (IPv6 literals keep their brackets).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

fn refuse(message: String) -> Response {
    ApiError::detail(StatusCode::FORBIDDEN, message).into_response()
}

/// Refuses requests for a foreign `Host` and browser requests from a foreign `Origin`,
/// before anything else (a refused websocket upgrade never gets a session).
pub async fn check_browser(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let uri_len = req.uri().path().len() + req.uri().query().map_or(0, |q| q.len() + 1);
    if uri_len > MAX_URI_BYTES {
        return ApiError::detail(
            StatusCode::URI_TOO_LONG,
            format!("The request's URL is longer than {MAX_URI_BYTES} bytes"),
        )
        .into_response();
    }
    let policy = &state.browser;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    if let Some(h) = host {
        if !policy.host_allowed(h) {
            tracing::warn!(host = h, path = %req.uri().path(), "refused: foreign Host");
            return refuse(format!(
                "Host {h:?} is not allowed: this server answers to localhost names; add the name to ALLOWED_HOSTS to serve it"
            ));
        }
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !policy.origin_allowed(origin, host) {
            tracing::warn!(origin, path = %req.uri().path(), "refused: foreign Origin");
            return refuse(format!(
                "Origin {origin:?} is not allowed: add it to CORS_ALLOWED_ORIGINS to let that page use this server"
            ));
        }
    }
    let mut res = next.run(req).await;
    security_headers(res.headers_mut());
    res
}

/// Headers every response carries; HTML pages also get a content security policy.
fn security_headers(headers: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, name: &'static str, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "x-frame-options", "DENY");
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html"));
    let csp = if html {
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    } else {
        "frame-ancestors 'none'"
    };
    set(headers, "content-security-policy", csp);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(host: &str, hosts: &[&str], origins: &[&str]) -> BrowserPolicy {
        let mut config = Config::for_tests();
        config.host = host.into();
        config.allowed_hosts = hosts.iter().map(|s| s.to_string()).collect();
        config.cors_origins = origins.iter().map(|s| s.to_string()).collect();
        BrowserPolicy::new(&config)
    }

    #[test]
    fn a_loopback_server_answers_only_to_loopback_names_and_listed_hosts() {
        let p = policy("127.0.0.1", &["box.lan"], &[]);
        for ok in [
            "localhost:3000",
            "127.0.0.1:3000",
            "[::1]:3000",
            "LOCALHOST",
            "app.localhost:1",
            "box.lan:3000",
            "127.0.0.1",
        ] {
            assert!(p.host_allowed(ok), "{ok}");
        }
        for bad in [
            "rebind.evil.example:3000",
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.evil.example:3000",
            "[::2]:3000",
        ] {
            assert!(!p.host_allowed(bad), "{bad}");
        }
        assert!(policy("0.0.0.0", &[], &[]).host_allowed("box.lan:3000"));
    }

    #[test]
    fn only_the_servers_own_origin_and_listed_ones_are_trusted() {
        let p = policy("127.0.0.1", &[], &["http://127.0.0.1:12001"]);
        assert!(p.origin_allowed("http://localhost:3000", Some("localhost:3000")));
        assert!(p.origin_allowed("http://127.0.0.1:12001", Some("127.0.0.1:12000")));
        assert!(!p.origin_allowed("http://evil.example", Some("localhost:3000")));
        assert!(!p.origin_allowed("http://localhost:9999", Some("localhost:3000")));
        assert!(!p.origin_allowed("null", Some("localhost:3000")));
        assert!(!p.origin_allowed("http://localhost:3000", None));
        assert!(policy("127.0.0.1", &[], &["*"]).origin_allowed("http://evil.example", None));
    }
}
