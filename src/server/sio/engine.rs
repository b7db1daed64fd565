//! A small Engine.IO v4 server (polling, websocket, upgrade, heartbeat) on axum.
//!
//! We own this layer instead of using engineioxide/socketioxide so that a websocket's
//! replies to a frame are written before the next frame is read: websocat sends its one
//! frame and a Close right after it, and must still get the CONNECT ack (docs/engineio.md).

use async_trait::async_trait;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::SinkExt;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::packet::{self, ClientPacket, Frame, OutPacket, PayloadPart};
use super::session::Session;

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

/// What runs on top of Engine.IO (a Socket.IO layer).
#[async_trait]
pub trait EngineHandler: Send + Sync + 'static {
    /// A message packet's payload (without the leading `4`).
    async fn on_message(&self, session: &Arc<Session>, text: &str);
    /// A binary packet (a websocket binary frame, or `b<base64>` when polling).
    async fn on_binary(&self, session: &Arc<Session>, data: Bytes);
    /// The session ended, whichever side closed it.
    async fn on_close(&self, session: &Arc<Session>);
    /// A timed packet (`OutPacket::since`) was written to the client's connection.
    fn written(&self, _since: std::time::Instant) {}
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
    /// The credential cookie of the request, if any (kept on a new session).
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

    /// How many open sessions are on a websocket, and how many are polling.
    pub fn transports(&self) -> (usize, usize) {
        let Ok(sessions) = self.sessions.lock() else {
            return (0, 0);
        };
        let websocket = sessions
            .values()
            .filter(|s| s.upgraded.load(Ordering::Acquire))
            .count();
        (websocket, sessions.len() - websocket)
    }

    /// The open session `sid`.
    pub(super) fn session(&self, sid: &str) -> Option<Arc<Session>> {
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
        let EngineRequest {
            query,
            cookie_key,
            peer,
            authenticated,
        } = req;
        let session = Arc::new(Session::new(
            super::new_sid(),
            query,
            cookie_key,
            peer,
            authenticated,
            websocket,
        ));
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
                if !s.is_authenticated() {
                    tracing::debug!(sid = %s.sid, "closing a session that never authenticated");
                    s.closed.cancel();
                }
            });
        }
        session
    }

    fn open_packet(&self, session: &Session, upgrades: bool) -> String {
        packet::open_packet(
            &session.sid,
            upgrades,
            self.config.ping_interval.as_millis() as u64,
            self.config.ping_timeout.as_millis() as u64,
            self.config.max_payload,
        )
    }

    /// Largest packet the session may send now (small until it authenticates).
    fn payload_limit(&self, session: &Session) -> usize {
        if session.is_authenticated() {
            self.config.max_payload
        } else {
            self.config
                .unauthenticated_payload
                .min(self.config.max_payload)
        }
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

    /// Handles one incoming Engine.IO text packet; anything a client may not send
    /// closes the session.
    async fn on_text(&self, session: &Arc<Session>, text: &str) {
        match packet::decode_packet(text) {
            Some(ClientPacket::Message(m)) => self.handler.on_message(session, m).await,
            Some(ClientPacket::Pong) => session.pong.store(true, Ordering::Release),
            Some(ClientPacket::Ping(p)) => session.reply(OutPacket::Text(format!("3{p}"))),
            Some(ClientPacket::Close) => session.closed.cancel(),
            Some(ClientPacket::Upgrade | ClientPacket::Noop) => {}
            None => {
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
                        size += p.wire_len();
                        out.push(p);
                    }
                    Err(_) => break,
                }
            }
            if !out.is_empty() {
                let body = packet::encode_payload(&out);
                for since in out.iter().filter_map(OutPacket::since) {
                    self.handler.written(since);
                }
                return text_response(body);
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
        if body.len() > self.payload_limit(&session) {
            session.closed.cancel();
            return (StatusCode::PAYLOAD_TOO_LARGE, "payload too large").into_response();
        }
        let Ok(text) = std::str::from_utf8(&body) else {
            session.closed.cancel();
            return engine_error(3, "Bad request");
        };
        for part in packet::decode_payload(text) {
            if session.closed.is_cancelled() {
                break;
            }
            match part {
                Ok(PayloadPart::Text(t)) => self.on_text(&session, t).await,
                Ok(PayloadPart::Binary(data)) => self.handler.on_binary(&session, data).await,
                Err(_) => session.closed.cancel(),
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
        // Timed packets fed to the socket but not flushed yet.
        let mut unflushed: Vec<std::time::Instant> = Vec::new();
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
            for since in unflushed.drain(..) {
                self.handler.written(since);
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
                    Some(Ok(Message::Text(t))) if t.len() > self.payload_limit(&session) => {
                        tracing::debug!(sid = %session.sid, len = t.len(), "packet too large; closing");
                        session.closed.cancel();
                    }
                    Some(Ok(Message::Binary(b))) if b.len() > self.payload_limit(&session) => {
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
                        unflushed.extend(p.since());
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

/// The websocket message for a packet; none for a noop (polling only).
fn ws_message(p: OutPacket) -> Option<Message> {
    match p {
        OutPacket::Noop => None,
        p => Some(match p.into_frame() {
            Frame::Text(t) => Message::Text(t.into()),
            Frame::Binary(b) => Message::Binary(b),
        }),
    }
}

fn text_response(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        body,
    )
        .into_response()
}
