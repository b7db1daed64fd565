//! Health and server information (no auth).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::server::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/alive", get(alive))
        .route("/api/health", get(alive))
        .route("/health", get(health))
        .route("/server_info", get(server_info))
}

/// `{"status":"ok"}`: the server is up.
#[derive(Serialize)]
struct Health {
    status: &'static str,
}

async fn alive() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `"OK"` while the store answers; 503 with `{"status":"unhealthy","store":…}` when it
/// does not (a database that went away), so that a load balancer stops sending work.
async fn health(State(state): State<AppState>) -> Response {
    match state.manager.store().health().await {
        Ok(()) => Json("OK").into_response(),
        Err(e) => {
            tracing::warn!("unhealthy: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "unhealthy", "store": e.to_string()})),
            )
                .into_response()
        }
    }
}

/// The body of `GET /server_info`.
#[derive(Serialize)]
struct ServerInfo {
    version: &'static str,
    /// Seconds since the server started.
    uptime: f64,
    resources: Resources,
    conversations: OpenConversations,
}

#[derive(Serialize)]
struct Resources {
    cpu_count: usize,
    memory: Memory,
}

#[derive(Serialize)]
struct Memory {
    /// Resident memory in bytes; null where `/proc` cannot tell.
    rss: Option<u64>,
}

#[derive(Serialize)]
struct OpenConversations {
    /// Conversations open now.
    open: usize,
    /// Clients connected to them.
    connections: usize,
}

/// Resident memory of this process in bytes, from `/proc/self/status`.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

async fn server_info(State(state): State<AppState>) -> Json<ServerInfo> {
    let open = state.manager.open_ids().await;
    Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION"),
        uptime: state.started.elapsed().as_secs_f64(),
        resources: Resources {
            cpu_count: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory: Memory { rss: rss_bytes() },
        },
        conversations: OpenConversations {
            open: open.len(),
            connections: open.iter().map(|(_, n)| n).sum(),
        },
    })
}
