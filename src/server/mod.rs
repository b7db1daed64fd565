//! The HTTP server: REST routes, Socket.IO at `/socket.io/`, auth and CORS.

mod auth;
mod error;
mod frontend;
mod guard;
mod legacy_ws;
mod listener;
mod request_span;
mod routes;
mod sio;
mod socket;

use axum::extract::{DefaultBodyLimit, Query, State, WebSocketUpgrade};
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::Config;
use crate::conversation::ConversationManager;
pub use sio::EngineConfig;
use sio::{Engine, EngineRequest};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub manager: Arc<ConversationManager>,
    pub started: Instant,
    /// Serialises read-modify-write changes of the stored settings.
    pub settings_lock: Arc<tokio::sync::Mutex<()>>,
    /// Which browser pages and host names may use the server.
    pub browser: Arc<guard::BrowserPolicy>,
    /// The operator metrics (`GET /metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Conversation ids are `[A-Za-z0-9_-]{1,100}` everywhere (REST paths, socket and `/ws`
/// queries), so an id is always one directory name of its own.
pub fn valid_conversation_id(id: &str) -> bool {
    crate::conversation::valid_id(id)
}

/// A yes/no connect query flag such as `stream_output`: `true` or `1` (any case) is yes.
pub(crate) fn query_flag(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1")
}

/// The axum app and the Engine.IO server behind its `/socket.io/` route.
pub fn app(state: AppState, engine_config: EngineConfig) -> (Router, Arc<Engine>) {
    let engine = Engine::new(
        Arc::new(socket::SocketHandler::new(state.clone())),
        engine_config,
    );
    let socket_routes = Router::new()
        .route("/socket.io/", get(socket_get).post(socket_post))
        .layer(DefaultBodyLimit::max(engine_config.max_payload))
        .with_state(engine.clone());
    let router = routes::router()
        .route("/ws", get(legacy_ws::handler))
        .merge(socket_routes)
        .merge(routes::metrics::router(state.clone(), engine.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_session_key,
        ))
        .layer(cors(state.browser.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::check_browser,
        ))
        .layer(axum::middleware::from_fn(request_span::request_span))
        .with_state(state);
    (router, engine)
}

/// CORS for the trusted origins of [`guard::BrowserPolicy`]; `*` answers any origin but
/// never with credentials (the session cookie then stays with the server's own pages).
fn cors(policy: Arc<guard::BrowserPolicy>) -> CorsLayer {
    let base = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(tower_http::cors::AllowHeaders::mirror_request());
    if policy.any_origin() {
        return base.allow_origin(AllowOrigin::any());
    }
    base.allow_credentials(true)
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin.to_str().is_ok_and(|o| policy.cors_allowed(o))
        }))
}

async fn socket_get(
    State(engine): State<Arc<Engine>>,
    Query(query): Query<Vec<(String, String)>>,
    caller: Option<axum::Extension<auth::Caller>>,
    headers: axum::http::HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let caller = caller.map(|c| c.0).unwrap_or_default();
    let req = EngineRequest {
        query,
        cookie_key: auth::cookie_key(&headers),
        peer: caller.peer,
        authenticated: caller.key_ok,
    };
    match ws {
        Ok(upgrade) => engine.websocket(req, upgrade),
        Err(_) => engine.poll(req).await,
    }
}

async fn socket_post(
    State(engine): State<Arc<Engine>>,
    Query(query): Query<Vec<(String, String)>>,
    caller: Option<axum::Extension<auth::Caller>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let caller = caller.map(|c| c.0).unwrap_or_default();
    let req = EngineRequest {
        query,
        cookie_key: auth::cookie_key(&headers),
        peer: caller.peer,
        authenticated: caller.key_ok,
    };
    engine.post(req, body).await
}

/// Binds, serves until SIGINT/SIGTERM, then closes every conversation cleanly.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    if config.file.sandbox.require {
        crate::runtime::sandbox::announce(&config).map_err(|e| anyhow::anyhow!(e))?;
    } else {
        // Probing the kernel starts a process: off the start's critical path when a
        // missing mechanism is only to be reported, not refused.
        let config = config.clone();
        std::thread::spawn(move || {
            let _ = crate::runtime::sandbox::announce(&config);
        });
    }
    let store_dir = config.file_store_path();
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let store = open_store(&config, &metrics).await?;
    let manager = ConversationManager::with_metrics(store, config.clone(), metrics.clone());
    let cluster_stop = tokio_util::sync::CancellationToken::new();
    if let Some(url) = config.redis_url() {
        let cluster = crate::cluster::Cluster::connect(
            url,
            config.file.cluster.clone(),
            cluster_stop.clone(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot join the cluster at {url}: {e}"))?;
        tokio::spawn(crate::conversation::scan_orphans(
            Arc::downgrade(&manager),
            cluster.clone(),
            cluster_stop.clone(),
        ));
        manager.set_cluster(cluster);
    }
    let reaper = manager.spawn_reaper();
    let state = AppState {
        config: config.clone(),
        manager: manager.clone(),
        started: Instant::now(),
        settings_lock: Arc::default(),
        browser: Arc::new(guard::BrowserPolicy::new(&config)),
        metrics,
    };
    let limits = &config.file.limits;
    let engine_config = EngineConfig {
        max_sessions: limits.max_engineio_sessions,
        max_sessions_per_peer: limits.max_engineio_sessions_per_client,
        unauthenticated_payload: limits.unauthenticated_payload_bytes,
        auth_deadline: Duration::from_secs(limits.auth_deadline_seconds),
        ..EngineConfig::default()
    };
    let (router, engine) = app(state, engine_config);
    let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}:{}: {e}", config.host, config.port))?;
    let addr = listener.local_addr()?;
    say(&format!("openhands-server listening on http://{addr}"));
    if config.generated_key {
        // As Jupyter prints its token URL: the key is needed from every client.
        let key = config.session_api_key.as_deref().unwrap_or_default();
        let port = addr.port();
        let name = hostname().unwrap_or_else(|| "<this machine>".into());
        say(&format!(
            "This server is reachable from the network, so it requires a session key (set SESSION_API_KEY to choose one, or --no-auth behind your own authentication).\nOpen the UI with:\n    http://{name}:{port}/?session_api_key={key}\n    http://127.0.0.1:{port}/?session_api_key={key}\nAPI clients send the header X-Session-API-Key: {key}"
        ));
    } else if config.session_api_key.is_none() && !crate::config::is_loopback_host(&config.host) {
        tracing::warn!("serving {addr} without a session key (--no-auth): anyone who reaches it can run commands");
    }
    let store_name = match config.database_url() {
        Some(_) => "postgresql".to_string(),
        None => store_dir.display().to_string(),
    };
    tracing::info!(store = %store_name, "listening on http://{addr}");
    let shutdown_engine = engine.clone();
    let listener_limits = listener::ListenerLimits {
        header_read_timeout: Duration::from_secs(limits.header_read_timeout_seconds.max(1)),
        max_connections: limits.max_connections,
    };
    listener::serve(listener, router, listener_limits, async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        // Long-lived sockets would hold graceful shutdown open: close them first.
        shutdown_engine.shutdown();
    })
    .await;
    // The store may be waiting for an unreachable database: a stop does not wait for
    // it longer than this.
    if tokio::time::timeout(SHUTDOWN_STORE_WAIT, manager.shutdown())
        .await
        .is_err()
    {
        tracing::error!(
            waited = ?SHUTDOWN_STORE_WAIT,
            "stopping with writes not stored: the database did not come back"
        );
    }
    cluster_stop.cancel();
    reaper.abort();
    tracing::info!("stopped");
    Ok(())
}

/// How long a stop waits for the conversations to close and their writes to be stored.
const SHUTDOWN_STORE_WAIT: Duration = Duration::from_secs(30);

/// The configured store: PostgreSQL with a database URL, else SQLite in the file store.
async fn open_store(
    config: &Config,
    metrics: &Arc<crate::metrics::Metrics>,
) -> anyhow::Result<Arc<dyn crate::store::EventStore>> {
    let observer = metrics.clone();
    let observer: crate::store::CommitObserver =
        Arc::new(move |took, events| observer.store_committed(took, events));
    if let Some(url) = config.database_url() {
        let store = crate::store::PostgresStore::connect(url, Some(observer))
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the PostgreSQL store: {e}"))?;
        return Ok(Arc::new(store));
    }
    let store_dir = config.file_store_path();
    let store = crate::store::SqliteStore::open_observed(&store_dir, Some(observer))
        .map_err(|e| anyhow::anyhow!("cannot open the store in {}: {e}", store_dir.display()))?;
    Ok(Arc::new(store))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        // Whichever signal comes first starts the shutdown.
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// This machine's host name, for the URL printed at start.
fn hostname() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
}

/// Prints a line on stdout; a closed stdout is no reason to stop serving.
fn say(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
