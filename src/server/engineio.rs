//! A small Engine.IO v4 server (polling, websocket, upgrade, heartbeat) on axum.
//!
//! We own this layer instead of using engineioxide/socketioxide so that a websocket's
//! replies to a frame are written before the next frame is read: websocat sends its one
//! frame and a Close right after it, and must still get the CONNECT ack (docs/engineio.md).

use async_trait::async_trait;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use futures::SinkExt;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// Heartbeat and size settings announced in the open packet.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Largest packet (and polling body) accepted, in bytes.
    pub max_payload: usize,
    /// Sessions open at once, in all.
    pub max_sessions: usize,
    /// Sessions open at once from one client address.
    pub max_sessions_per_peer: usize,
    /// Largest packet of a session that has not authenticated yet.
    pub unauthenticated_payload: usize,
    /// How long a session may stay unauthenticated before it is closed.
    pub auth_deadline: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 10_000_000,
            max_sessions: 4096,
            max_sessions_per_peer: 512,
            unauthenticated_payload: 64 * 1024,
            auth_deadline: Duration::from_secs(20),
        }
    }
}

/// A packet on its way to a client.
#[derive(Debug, Clone)]
pub enum OutPacket {
    /// A full Engine.IO text packet (`4…` for messages).
    Text(String),
    /// `42["oh_event",<json>]`, framed when written, so queues share the event's text.
    Event(Arc<str>),
    Binary(Bytes),
    /// Ends a pending poll during an upgrade.
    Noop,
}

/// What runs on top of Engine.IO (our Socket.IO layer).
#[async_trait]
pub trait EngineHandler: Send + Sync + 'static {
    /// A message packet's payload (without the leading `4`).
    async fn on_message(&self, session: &Arc<Session>, text: &str);
    async fn on_binary(&self, session: &Arc<Session>, data: Bytes);
    async fn on_close(&self, session: &Arc<Session>);
}

/// Depth of a session's outgoing data queue; a full queue back-pressures its producers.
const DATA_QUEUE: usize = 256;
/// More pending control packets than this means the client stopped reading.
const MAX_CONTROL: usize = 1024;

/// One Engine.IO connection, whichever transport currently carries it.
pub struct Session {
    pub sid: String,
    /// The query string of the handshake request (`conversation_id`, …).
    pub query: Vec<(String, String)>,
    /// The session API key from the handshake's cookie, if any.
    pub cookie_key: Option<String>,
    control: Mutex<VecDeque<OutPacket>>,
    /// Set when `control` may be non-empty (saves a lock per loop turn).
    has_control: AtomicBool,
    wake: Notify,
    data_tx: mpsc::Sender<OutPacket>,
    data_rx: tokio::sync::Mutex<mpsc::Receiver<OutPacket>>,
    pub closed: CancellationToken,
    upgraded: AtomicBool,
    pong: AtomicBool,
    /// The client's address, when known.
    peer: Option<std::net::IpAddr>,
    /// Whether the client proved who it is (at the handshake, or later through the
    /// application's own check); until then its packets are small and its time short.
    authenticated: AtomicBool,
}

impl Session {
    /// Marks the session as belonging to an authenticated client.
    pub fn authenticate(&self) {
        self.authenticated.store(true, Ordering::Release);
    }

    fn payload_limit(&self, config: &EngineConfig) -> usize {
        if self.authenticated.load(Ordering::Acquire) {
            config.max_payload
        } else {
            config.unauthenticated_payload.min(config.max_payload)
        }
    }

    /// First value of query parameter `key`.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All values of query parameter `key`.
    pub fn query_params<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Queues a reply ahead of data; written before the transport reads further input.
    pub fn reply(&self, packet: OutPacket) {
        let overflow = match self.control.lock() {
            Ok(mut q) => {
                q.push_back(packet);
                q.len() > MAX_CONTROL
            }
            Err(_) => true,
        };
        self.has_control.store(true, Ordering::Release);
        if overflow {
            self.closed.cancel();
        }
        self.wake.notify_one();
    }

    /// Queues a Socket.IO packet as a reply (see [`Session::reply`]).
    pub fn reply_message(&self, sio: &str) {
        self.reply(OutPacket::Text(format!("4{sio}")));
    }

    /// Queues a packet as data, waiting while the client is behind. Returns false once
    /// the session is closed.
    pub async fn send_packet(&self, packet: OutPacket) -> bool {
        // Fast path: room in the queue.
        let packet = match self.data_tx.try_send(packet) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(p)) => p,
        };
        // Either the queue takes the packet, or the session ends first.
        tokio::select! {
            r = self.data_tx.send(packet) => r.is_ok(),
            _ = self.closed.cancelled() => false,
        }
    }

    fn take_control(&self) -> Vec<OutPacket> {
        self.control
            .lock()
            .map(|mut q| q.drain(..).collect())
            .unwrap_or_default()
    }
}

/// The Engine.IO server: its sessions and its handler.
pub struct Engine {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    handler: Arc<dyn EngineHandler>,
    config: EngineConfig,
    shutdown: CancellationToken,
}

/// The query of a request to `/socket.io/`.
#[derive(Debug, Default)]
pub struct EngineRequest {
    pub query: Vec<(String, String)>,
    /// The session API key cookie of the request, if any.
    pub cookie_key: Option<String>,
    /// The client's address, when known.
    pub peer: Option<std::net::IpAddr>,
    /// The request carried valid credentials (or none are needed).
    pub authenticated: bool,
}

impl EngineRequest {
    fn get(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn engine_error(code: u8, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"code": code, "message": message}).to_string(),
    )
        .into_response()
}

fn new_sid() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
}

impl Engine {
    pub fn new(handler: Arc<dyn EngineHandler>, config: EngineConfig) -> Arc<Self> {
        Arc::new(Engine {
            sessions: Mutex::new(HashMap::new()),
            handler,
            config,
            shutdown: CancellationToken::new(),
        })
    }

    /// Closes every session (clients get a close packet) and refuses new ones.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
        let all: Vec<Arc<Session>> = self
            .sessions
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        for s in all {
            s.closed.cancel();
        }
    }

    fn session(&self, sid: &str) -> Option<Arc<Session>> {
        self.sessions.lock().ok().and_then(|s| s.get(sid).cloned())
    }

    /// Refuses a new session past the limits (in all, and per client address).
    fn admit(&self, req: &EngineRequest) -> Option<Response> {
        let sessions = self.sessions.lock().ok()?;
        let from_peer = || {
            sessions
                .values()
                .filter(|s| s.peer.is_some() && s.peer == req.peer)
                .count()
        };
        if sessions.len() >= self.config.max_sessions
            || (req.peer.is_some() && from_peer() >= self.config.max_sessions_per_peer)
        {
            tracing::warn!(peer = ?req.peer, open = sessions.len(), "refused an Engine.IO session: too many");
            return Some(
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::CONTENT_TYPE, "application/json")],
                    serde_json::json!({"code": 3, "message": "Too many sessions"}).to_string(),
                )
                    .into_response(),
            );
        }
        None
    }

    fn create_session(self: &Arc<Self>, req: EngineRequest, websocket: bool) -> Arc<Session> {
        let (data_tx, data_rx) = mpsc::channel(DATA_QUEUE);
        let EngineRequest {
            query,
            cookie_key,
            peer,
            authenticated,
        } = req;
        let session = Arc::new(Session {
            sid: new_sid(),
            query,
            cookie_key,
            peer,
            authenticated: AtomicBool::new(authenticated),
            control: Mutex::new(VecDeque::new()),
            has_control: AtomicBool::new(false),
            wake: Notify::new(),
            data_tx,
            data_rx: tokio::sync::Mutex::new(data_rx),
            closed: CancellationToken::new(),
            upgraded: AtomicBool::new(websocket),
            pong: AtomicBool::new(true),
        });
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(session.sid.clone(), session.clone());
        }
        tokio::spawn(self.clone().heartbeat(session.clone()));
        tokio::spawn(self.clone().on_closed(session.clone()));
        if !authenticated {
            let (s, deadline) = (session.clone(), self.config.auth_deadline);
            tokio::spawn(async move {
                // The client has until the deadline to authenticate, unless it leaves first.
                tokio::select! {
                    _ = tokio::time::sleep(deadline) => {}
                    _ = s.closed.cancelled() => return,
                }
                if !s.authenticated.load(Ordering::Acquire) {
                    tracing::debug!(sid = %s.sid, "closing a session that never authenticated");
                    s.closed.cancel();
                }
            });
        }
        session
    }

    fn open_packet(&self, session: &Session, upgrades: bool) -> String {
        let upgrades: &[&str] = if upgrades { &["websocket"] } else { &[] };
        format!(
            "0{}",
            serde_json::json!({
                "sid": session.sid,
                "upgrades": upgrades,
                "pingInterval": self.config.ping_interval.as_millis() as u64,
                "pingTimeout": self.config.ping_timeout.as_millis() as u64,
                "maxPayload": self.config.max_payload,
            })
        )
    }

    /// Pings every interval; a client that did not answer the previous ping is gone.
    async fn heartbeat(self: Arc<Self>, session: Arc<Session>) {
        loop {
            // Sleep one interval unless the session ends first.
            tokio::select! {
                _ = tokio::time::sleep(self.config.ping_interval) => {}
                _ = session.closed.cancelled() => return,
            }
            if !session.pong.swap(false, Ordering::AcqRel) {
                tracing::debug!(sid = %session.sid, "ping timeout");
                session.closed.cancel();
                return;
            }
            session.reply(OutPacket::Text("2".into()));
        }
    }

    /// Removes a closed session and tells the handler.
    async fn on_closed(self: Arc<Self>, session: Arc<Session>) {
        session.closed.cancelled().await;
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(&session.sid);
        }
        session.wake.notify_waiters();
        self.handler.on_close(&session).await;
    }

    /// Handles one incoming Engine.IO text packet.
    async fn on_text(&self, session: &Arc<Session>, text: &str) {
        let text = text.trim_end_matches(['\n', '\r']);
        let mut chars = text.chars();
        match chars.next() {
            Some('4') => self.handler.on_message(session, chars.as_str()).await,
            Some('3') => session.pong.store(true, Ordering::Release),
            Some('2') => session.reply(OutPacket::Text(format!("3{}", chars.as_str()))),
            Some('1') => session.closed.cancel(),
            Some('6') | Some('5') => {}
            _ => {
                tracing::debug!(sid = %session.sid, "invalid engine.io packet; closing");
                session.closed.cancel();
            }
        }
    }

    /// `GET /socket.io/?transport=polling`: handshake or long poll.
    pub async fn poll(self: &Arc<Self>, req: EngineRequest) -> Response {
        if let Some(e) = self.check(&req, "polling") {
            return e;
        }
        if req.get("sid").is_none() {
            if let Some(refused) = self.admit(&req) {
                return refused;
            }
            let session = self.create_session(req, false);
            return text_response(self.open_packet(&session, true));
        }
        let Some(sid) = req.get("sid") else {
            return engine_error(1, "Session ID unknown");
        };
        let Some(session) = self.session(sid) else {
            return engine_error(1, "Session ID unknown");
        };
        if session.upgraded.load(Ordering::Acquire) {
            return engine_error(3, "Bad request");
        }
        let Ok(mut rx) = session.data_rx.try_lock() else {
            session.closed.cancel();
            return engine_error(3, "Overlapping polling requests");
        };
        let mut out: Vec<OutPacket> = Vec::new();
        loop {
            out.extend(session.take_control());
            let mut size = 0;
            while size < self.config.max_payload {
                match rx.try_recv() {
                    Ok(p) => {
                        size += packet_len(&p);
                        out.push(p);
                    }
                    Err(_) => break,
                }
            }
            if !out.is_empty() {
                return text_response(encode_polling(&out));
            }
            // Wait for data, a control packet, or the end of the session.
            tokio::select! {
                _ = session.closed.cancelled() => return text_response("1".into()),
                _ = session.wake.notified() => {}
                p = rx.recv() => match p {
                    Some(p) => out.push(p),
                    None => return text_response("1".into()),
                },
            }
        }
    }

    /// `POST /socket.io/?transport=polling&sid=…`: packets from the client.
    pub async fn post(self: &Arc<Self>, req: EngineRequest, body: Bytes) -> Response {
        if let Some(e) = self.check(&req, "polling") {
            return e;
        }
        let Some(session) = req.get("sid").and_then(|sid| self.session(sid)) else {
            return engine_error(1, "Session ID unknown");
        };
        if body.len() > session.payload_limit(&self.config) {
            session.closed.cancel();
            return (StatusCode::PAYLOAD_TOO_LARGE, "payload too large").into_response();
        }
        let Ok(text) = std::str::from_utf8(&body) else {
            session.closed.cancel();
            return engine_error(3, "Bad request");
        };
        for packet in text.split('\u{1e}') {
            if session.closed.is_cancelled() {
                break;
            }
            if let Some(b64) = packet.strip_prefix('b') {
                match base64::engine::general_purpose::STANDARD.decode(b64) {
                    Ok(data) => self.handler.on_binary(&session, Bytes::from(data)).await,
                    Err(_) => session.closed.cancel(),
                }
            } else {
                self.on_text(&session, packet).await;
            }
        }
        (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], "ok").into_response()
    }

    /// `GET /socket.io/?transport=websocket`: a new websocket session or an upgrade.
    pub fn websocket(self: &Arc<Self>, req: EngineRequest, upgrade: WebSocketUpgrade) -> Response {
        if let Some(e) = self.check(&req, "websocket") {
            return e;
        }
        let existing = match req.get("sid") {
            Some(sid) => match self.session(sid) {
                Some(s) if !s.upgraded.load(Ordering::Acquire) => Some(s),
                Some(_) => return engine_error(3, "Bad request"),
                None => return engine_error(1, "Session ID unknown"),
            },
            None => {
                if let Some(refused) = self.admit(&req) {
                    return refused;
                }
                None
            }
        };
        let me = self.clone();
        upgrade
            // tungstenite zero-fills up to this much buffer on every read; the 128 KiB
            // default made memset the top cost of fan-out.
            .read_buffer_size(16 * 1024)
            .max_message_size(self.config.max_payload)
            .max_frame_size(self.config.max_payload)
            .on_upgrade(move |ws| async move {
                match existing {
                    Some(session) => me.upgrade(session, ws).await,
                    None => me.new_websocket(req, ws).await,
                }
            })
    }

    fn check(&self, req: &EngineRequest, transport: &str) -> Option<Response> {
        if self.shutdown.is_cancelled() {
            return Some((StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response());
        }
        if req.get("EIO") != Some("4") {
            return Some(engine_error(5, "Unsupported protocol version"));
        }
        if req.get("transport") != Some(transport) {
            return Some(engine_error(0, "Transport unknown"));
        }
        None
    }

    async fn new_websocket(self: Arc<Self>, req: EngineRequest, mut ws: WebSocket) {
        let session = self.create_session(req, true);
        if ws
            .send(Message::Text(self.open_packet(&session, false).into()))
            .await
            .is_err()
        {
            session.closed.cancel();
            return;
        }
        self.run_websocket(session, ws).await;
    }

    /// The probe handshake of a polling session moving to websocket.
    async fn upgrade(self: Arc<Self>, session: Arc<Session>, mut ws: WebSocket) {
        if next(&mut ws).await.as_deref() != Some("2probe") {
            return;
        }
        if ws.send(Message::Text("3probe".into())).await.is_err() {
            return;
        }
        // Ends the client's pending poll so it can send the upgrade packet.
        session.reply(OutPacket::Noop);
        if next(&mut ws).await.as_deref() != Some("5") {
            return;
        }
        session.upgraded.store(true, Ordering::Release);
        session.wake.notify_waiters();
        self.run_websocket(session, ws).await;
    }

    /// Carries a session over a websocket until either side closes it.
    async fn run_websocket(self: Arc<Self>, session: Arc<Session>, mut ws: WebSocket) {
        let mut rx = session.data_rx.lock().await;
        // Created once, not per turn: registering waiters costs a lock each time.
        let closed = session.closed.cancelled();
        tokio::pin!(closed);
        let mut wake = Box::pin(session.wake.notified());
        loop {
            // Replies to what the client sent go out before we read anything further.
            for p in session.take_control() {
                if let Some(m) = ws_message(p) {
                    if !timed(ws.feed(m)).await {
                        session.closed.cancel();
                        return;
                    }
                }
            }
            if !timed(ws.flush()).await {
                session.closed.cancel();
                return;
            }
            // Input from the client, data for it, a reply to write, or the end.
            tokio::select! {
                biased;
                _ = &mut closed => {
                    let bye = async {
                        ws.send(Message::Text("1".into())).await?;
                        ws.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
                    return;
                }
                _ = &mut wake => wake.set(session.wake.notified()),
                msg = ws.recv() => match msg {
                    Some(Ok(Message::Text(t))) if t.len() > session.payload_limit(&self.config) => {
                        tracing::debug!(sid = %session.sid, len = t.len(), "packet too large; closing");
                        session.closed.cancel();
                    }
                    Some(Ok(Message::Binary(b))) if b.len() > session.payload_limit(&self.config) => {
                        session.closed.cancel();
                    }
                    Some(Ok(Message::Text(t))) => self.on_text(&session, t.as_str()).await,
                    Some(Ok(Message::Binary(b))) => self.handler.on_binary(&session, b).await,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) => {
                        // Everything we owed the client was written above; now answer its Close.
                        session.closed.cancel();
                        let _ = ws.close().await;
                        return;
                    }
                    Some(Err(_)) | None => {
                        session.closed.cancel();
                        return;
                    }
                },
                p = rx.recv() => {
                    let Some(p) = p else { return };
                    let mut batch = vec![p];
                    while batch.len() < 64 {
                        match rx.try_recv() {
                            Ok(p) => batch.push(p),
                            Err(_) => break,
                        }
                    }
                    for p in batch {
                        if let Some(m) = ws_message(p) {
                            if !timed(ws.feed(m)).await {
                                session.closed.cancel();
                                return;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// How long one write to a client may block before the client is considered gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(45);

/// Runs a websocket write with [`WRITE_TIMEOUT`]; false if it failed or timed out.
async fn timed<E>(write: impl std::future::Future<Output = Result<(), E>>) -> bool {
    matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(())))
}

/// The next text frame of an upgrading websocket, if it comes within 10 s.
async fn next(ws: &mut WebSocket) -> Option<String> {
    match tokio::time::timeout(Duration::from_secs(10), ws.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => Some(t.to_string()),
        _ => None,
    }
}

/// `42["oh_event",<json>]`, built in one allocation.
pub fn oh_event_frame(json: &str) -> String {
    const HEAD: &str = "42[\"oh_event\",";
    let mut p = String::with_capacity(HEAD.len() + json.len() + 1);
    p.push_str(HEAD);
    p.push_str(json);
    p.push(']');
    p
}

fn ws_message(p: OutPacket) -> Option<Message> {
    match p {
        OutPacket::Text(t) => Some(Message::Text(t.into())),
        OutPacket::Event(json) => Some(Message::Text(oh_event_frame(&json).into())),
        OutPacket::Binary(b) => Some(Message::Binary(b)),
        OutPacket::Noop => None,
    }
}

fn packet_len(p: &OutPacket) -> usize {
    match p {
        OutPacket::Text(t) => t.len(),
        OutPacket::Event(j) => j.len() + 14,
        OutPacket::Binary(b) => b.len() * 4 / 3 + 1,
        OutPacket::Noop => 1,
    }
}

fn encode_polling(packets: &[OutPacket]) -> String {
    let parts: Vec<String> = packets
        .iter()
        .map(|p| match p {
            OutPacket::Text(t) => t.clone(),
            OutPacket::Event(j) => oh_event_frame(j),
            OutPacket::Binary(b) => {
                format!("b{}", base64::engine::general_purpose::STANDARD.encode(b))
            }
            OutPacket::Noop => "6".into(),
        })
        .collect();
    parts.join("\u{1e}")
}

fn text_response(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        body,
    )
        .into_response()
}
