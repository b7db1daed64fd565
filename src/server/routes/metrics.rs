//! `GET /metrics`: the server's metrics for Prometheus (behind the session key when one
//! is set, like the REST API).

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

use crate::metrics::{Format, Snapshot};
use crate::server::sio::Engine;
use crate::server::AppState;

#[derive(Clone)]
struct MetricsState {
    app: AppState,
    engine: Arc<Engine>,
}

/// The `/metrics` route; the Engine.IO server tells how Socket.IO clients are connected.
pub fn router(app: AppState, engine: Arc<Engine>) -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(MetricsState { app, engine })
}

async fn metrics(State(state): State<MetricsState>, headers: HeaderMap) -> Response {
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let (open, running) = state.app.manager.activity().await;
    let (websocket, polling) = state.engine.transports();
    let processes = tokio::task::spawn_blocking(crate::metrics::descendant_processes)
        .await
        .unwrap_or(0);
    let text = state.app.metrics.render(
        Snapshot {
            conversations_open: open,
            conversations_running: running,
            clients_websocket: websocket,
            clients_polling: polling,
            runtime_processes: processes,
        },
        format,
    );
    ([(header::CONTENT_TYPE, format.content_type())], text).into_response()
}
