//! Health and server information (no auth).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::server::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/alive", get(alive))
        .route("/api/health", get(alive))
        .route("/health", get(|| async { Json("OK") }))
        .route("/server_info", get(server_info))
}

async fn alive() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Resident memory of this process in bytes, from `/proc/self/status`.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

async fn server_info(State(state): State<AppState>) -> Json<Value> {
    let open = state.manager.open_ids().await;
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": state.started.elapsed().as_secs_f64(),
        "resources": {
            "cpu_count": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "memory": {"rss": rss_bytes()},
        },
        "conversations": {
            "open": open.len(),
            "connections": open.iter().map(|(_, n)| n).sum::<usize>(),
        },
    }))
}
