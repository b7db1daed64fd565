//! The Engine.IO server driven as clients drive it: polling requests straight into the
//! engine, websockets over a real socket, with a handler that echoes what it gets.

use async_trait::async_trait;
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::session::{DATA_QUEUE, MAX_CONTROL};
use super::{Engine, EngineConfig, EngineHandler, EngineRequest, OutPacket, Session};

/// Echoes every message back as a reply (`4<text>`) and records what it saw.
#[derive(Default)]
struct Echo {
    seen: Mutex<Vec<String>>,
}

impl Echo {
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

#[async_trait]
impl EngineHandler for Echo {
    async fn on_message(&self, session: &Arc<Session>, text: &str) {
        self.seen.lock().unwrap().push(text.to_string());
        session.reply_message(text);
    }

    async fn on_binary(&self, _session: &Arc<Session>, data: Bytes) {
        self.seen
            .lock()
            .unwrap()
            .push(format!("binary {:?}", &data[..]));
    }

    async fn on_close(&self, session: &Arc<Session>) {
        self.seen
            .lock()
            .unwrap()
            .push(format!("closed {}", session.sid));
    }
}

fn config() -> EngineConfig {
    EngineConfig {
        ping_interval: Duration::from_secs(60),
        ..EngineConfig::default()
    }
}

fn engine_with(config: EngineConfig) -> (Arc<Engine>, Arc<Echo>) {
    let echo = Arc::new(Echo::default());
    (Engine::new(echo.clone(), config), echo)
}

fn request(query: &str) -> EngineRequest {
    EngineRequest {
        query: url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        authenticated: true,
        ..EngineRequest::default()
    }
}

async fn body(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// A polling handshake; returns the session id and the session.
async fn open_polling(engine: &Arc<Engine>) -> (String, Arc<Session>) {
    let (status, open) = body(engine.poll(request("EIO=4&transport=polling")).await).await;
    assert_eq!(status, 200, "{open}");
    let v: serde_json::Value = serde_json::from_str(&open[1..]).unwrap();
    let sid = v["sid"].as_str().unwrap().to_string();
    let session = engine.session(&sid).unwrap();
    (sid, session)
}

async fn poll(engine: &Arc<Engine>, sid: &str) -> (u16, String) {
    body(
        engine
            .poll(request(&format!("EIO=4&transport=polling&sid={sid}")))
            .await,
    )
    .await
}

async fn post(engine: &Arc<Engine>, sid: &str, payload: &str) -> (u16, String) {
    let req = request(&format!("EIO=4&transport=polling&sid={sid}"));
    body(engine.post(req, Bytes::from(payload.to_string())).await).await
}

/// Serves the engine on an ephemeral port, as `src/server/mod.rs` does.
async fn serve(engine: Arc<Engine>) -> u16 {
    async fn handle(
        State(engine): State<Arc<Engine>>,
        Query(query): Query<Vec<(String, String)>>,
        ws: WebSocketUpgrade,
    ) -> Response {
        let req = EngineRequest {
            query,
            authenticated: true,
            ..EngineRequest::default()
        };
        engine.websocket(req, ws)
    }
    let app = axum::Router::new()
        .route("/socket.io/", get(handle))
        .with_state(engine);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(port: u16, query: &str) -> Client {
    let url = format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket{query}");
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next frame as text (`close` for a Close frame, `end` when the stream ends).
async fn recv(ws: &mut Client) -> String {
    let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a frame within 5 s");
    match frame {
        Some(Ok(WsMessage::Text(t))) => t.to_string(),
        Some(Ok(WsMessage::Close(_))) => "close".into(),
        Some(Ok(other)) => format!("{other:?}"),
        Some(Err(_)) | None => "end".into(),
    }
}

async fn send(ws: &mut Client, text: &str) {
    ws.send(WsMessage::Text(text.into())).await.unwrap();
}

// ---------------------------------------------------------------- handshake and polling

#[tokio::test]
async fn a_polling_handshake_opens_a_session_that_offers_the_websocket_upgrade() {
    let (engine, _) = engine_with(config());
    let (status, open) = body(engine.poll(request("EIO=4&transport=polling")).await).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
    assert_eq!(v["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!(v["pingInterval"], 60000);
    assert_eq!(v["pingTimeout"], 20000);
    assert_eq!(v["maxPayload"], 10_000_000);
    assert!(engine.session(v["sid"].as_str().unwrap()).is_some());
}

#[tokio::test]
async fn a_wrong_version_transport_or_sid_is_a_400_with_the_engine_io_code() {
    let (engine, _) = engine_with(config());
    let cases = [
        (
            "EIO=3&transport=polling",
            r#"{"code":5,"message":"Unsupported protocol version"}"#,
        ),
        (
            "EIO=4&transport=websocket",
            r#"{"code":0,"message":"Transport unknown"}"#,
        ),
        (
            "EIO=4&transport=polling&sid=nope",
            r#"{"code":1,"message":"Session ID unknown"}"#,
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(
            body(engine.poll(request(query)).await).await,
            (400, expected.to_string()),
            "{query}"
        );
    }
}

#[tokio::test]
async fn a_post_hands_each_packet_of_its_payload_to_the_handler_in_order() {
    let (engine, echo) = engine_with(config());
    let (sid, _) = open_polling(&engine).await;
    let (status, ok) = post(&engine, &sid, "40\u{1e}bAAH/\u{1e}42[\"a\"]").await;
    assert_eq!((status, ok.as_str()), (200, "ok"));
    assert_eq!(echo.seen(), ["0", "binary [0, 1, 255]", "2[\"a\"]"]);
    // The replies come back in one poll, separated by the record separator.
    assert_eq!(poll(&engine, &sid).await, (200, "40\u{1e}42[\"a\"]".into()));
}

#[tokio::test]
async fn a_ping_from_the_client_is_answered_with_its_payload() {
    let (engine, _) = engine_with(config());
    let (sid, _) = open_polling(&engine).await;
    post(&engine, &sid, "2hello").await;
    assert_eq!(poll(&engine, &sid).await.1, "3hello");
}

#[tokio::test]
async fn an_invalid_packet_or_bad_base64_closes_the_session() {
    for payload in ["9", "0{}", "b!!!"] {
        let (engine, echo) = engine_with(config());
        let (sid, session) = open_polling(&engine).await;
        post(&engine, &sid, &format!("{payload}\u{1e}4after")).await;
        assert!(session.closed.is_cancelled(), "{payload}");
        assert!(!echo.seen().contains(&"after".to_string()), "{payload}");
    }
}

#[tokio::test]
async fn a_body_over_the_unauthenticated_limit_is_413_and_closes_the_session() {
    let (engine, _) = engine_with(EngineConfig {
        unauthenticated_payload: 16,
        ..config()
    });
    let mut req = request("EIO=4&transport=polling");
    req.authenticated = false;
    let (_, open) = body(engine.poll(req).await).await;
    let sid = serde_json::from_str::<serde_json::Value>(&open[1..]).unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let session = engine.session(&sid).unwrap();
    let (status, _) = post(&engine, &sid, &format!("4{}", "x".repeat(16))).await;
    assert_eq!(status, 413);
    assert!(session.closed.is_cancelled());
}

#[tokio::test]
async fn a_second_poll_while_one_is_pending_closes_the_session() {
    let (engine, _) = engine_with(config());
    let (sid, session) = open_polling(&engine).await;
    let first = tokio::spawn({
        let (engine, sid) = (engine.clone(), sid.clone());
        async move { poll(&engine, &sid).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        poll(&engine, &sid).await,
        (
            400,
            r#"{"code":3,"message":"Overlapping polling requests"}"#.into()
        )
    );
    assert!(session.closed.is_cancelled());
    assert_eq!(first.await.unwrap(), (200, "1".into()));
}

// ---------------------------------------------------------------- back-pressure

#[tokio::test]
async fn control_replies_jump_ahead_of_queued_data() {
    let (engine, _) = engine_with(config());
    let (sid, session) = open_polling(&engine).await;
    assert!(
        session
            .send_packet(OutPacket::message("2[\"data\",1]"))
            .await
    );
    assert!(
        session
            .send_packet(OutPacket::message("2[\"data\",2]"))
            .await
    );
    session.reply_message("0{\"sid\":\"x\"}");
    assert_eq!(
        poll(&engine, &sid).await.1,
        "40{\"sid\":\"x\"}\u{1e}42[\"data\",1]\u{1e}42[\"data\",2]"
    );
}

#[tokio::test]
async fn a_full_data_queue_makes_the_sender_wait_until_the_client_reads() {
    let (engine, _) = engine_with(config());
    let (sid, session) = open_polling(&engine).await;
    for i in 0..DATA_QUEUE {
        assert!(
            session
                .send_packet(OutPacket::message(&i.to_string()))
                .await
        );
    }
    let waiting = tokio::spawn({
        let session = session.clone();
        async move { session.send_packet(OutPacket::message("last")).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waiting.is_finished(),
        "the sender waits while the queue is full"
    );
    // A reply still gets through, ahead of everything queued.
    session.reply_message("ack");
    let (_, first) = poll(&engine, &sid).await;
    assert!(first.starts_with("4ack\u{1e}40\u{1e}41\u{1e}"), "{first}");
    assert!(tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap());
    let mut all = first;
    if !all.ends_with("4last") {
        all.push('\u{1e}');
        all.push_str(&poll(&engine, &sid).await.1);
    }
    let packets: Vec<&str> = all.split('\u{1e}').collect();
    assert_eq!(packets.len(), 1 + DATA_QUEUE + 1, "nothing was dropped");
    assert_eq!(packets.last(), Some(&"4last"));
}

#[tokio::test]
async fn a_sender_waiting_on_a_full_queue_gives_up_when_the_session_closes() {
    let (engine, _) = engine_with(config());
    let (_, session) = open_polling(&engine).await;
    for _ in 0..DATA_QUEUE {
        session.send_packet(OutPacket::message("x")).await;
    }
    let waiting = tokio::spawn({
        let session = session.clone();
        async move { session.send_packet(OutPacket::message("y")).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    session.closed.cancel();
    assert!(!waiting.await.unwrap());
}

#[tokio::test]
async fn a_client_that_stops_reading_replies_is_closed() {
    let (engine, _) = engine_with(config());
    let (_, session) = open_polling(&engine).await;
    for _ in 0..MAX_CONTROL {
        session.reply_message("x");
    }
    assert!(!session.closed.is_cancelled());
    session.reply_message("x");
    assert!(session.closed.is_cancelled());
}

// ---------------------------------------------------------------- heartbeat

fn fast_heartbeat() -> EngineConfig {
    EngineConfig {
        ping_interval: Duration::from_millis(200),
        ..EngineConfig::default()
    }
}

#[tokio::test]
async fn the_server_pings_and_closes_a_polling_client_that_does_not_pong() {
    let (engine, echo) = engine_with(fast_heartbeat());
    let (sid, session) = open_polling(&engine).await;
    assert_eq!(poll(&engine, &sid).await.1, "2");
    // No pong: by the next interval the session is gone.
    assert_eq!(poll(&engine, &sid).await.1, "1");
    assert!(session.closed.is_cancelled());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(engine.session(&sid).is_none());
    assert!(echo.seen().contains(&format!("closed {sid}")));
}

#[tokio::test]
async fn a_client_that_answers_every_ping_stays_connected() {
    let (engine, _) = engine_with(fast_heartbeat());
    let (sid, session) = open_polling(&engine).await;
    for _ in 0..3 {
        assert_eq!(poll(&engine, &sid).await.1, "2");
        post(&engine, &sid, "3").await;
    }
    assert!(!session.closed.is_cancelled());
}

#[tokio::test]
async fn the_server_closes_a_websocket_client_that_does_not_pong() {
    let (engine, _) = engine_with(fast_heartbeat());
    let port = serve(engine).await;
    let mut ws = ws_connect(port, "").await;
    assert!(recv(&mut ws).await.starts_with("0{"));
    assert_eq!(recv(&mut ws).await, "2");
    assert_eq!(recv(&mut ws).await, "1");
    assert_eq!(recv(&mut ws).await, "close");
}

// ---------------------------------------------------------------- websocket and upgrade

#[tokio::test]
async fn a_websocket_session_opens_without_upgrades_and_echoes() {
    let (engine, _) = engine_with(config());
    let port = serve(engine).await;
    let mut ws = ws_connect(port, "").await;
    let open = recv(&mut ws).await;
    assert!(open.contains(r#""upgrades":[]"#), "{open}");
    send(&mut ws, "40").await;
    assert_eq!(recv(&mut ws).await, "40");
    send(&mut ws, "2x").await;
    assert_eq!(recv(&mut ws).await, "3x");
}

#[tokio::test]
async fn a_frame_followed_at_once_by_a_close_still_gets_its_replies() {
    let (engine, echo) = engine_with(config());
    let port = serve(engine).await;
    let mut ws = ws_connect(port, "").await;
    recv(&mut ws).await;
    // As websocat does: the frame and the Close leave together.
    ws.feed(WsMessage::Text("42[\"one-shot\"]\n".into()))
        .await
        .unwrap();
    ws.feed(WsMessage::Close(None)).await.unwrap();
    ws.flush().await.unwrap();
    assert_eq!(recv(&mut ws).await, "42[\"one-shot\"]");
    assert_eq!(recv(&mut ws).await, "close");
    assert_eq!(echo.seen()[0], "2[\"one-shot\"]");
}

#[tokio::test]
async fn a_polling_session_upgrades_with_the_probe_handshake() {
    let (engine, _) = engine_with(config());
    let port = serve(engine.clone()).await;
    let (sid, session) = open_polling(&engine).await;
    let pending = tokio::spawn({
        let (engine, sid) = (engine.clone(), sid.clone());
        async move { poll(&engine, &sid).await }
    });
    let mut ws = ws_connect(port, &format!("&sid={sid}")).await;
    send(&mut ws, "2probe").await;
    assert_eq!(recv(&mut ws).await, "3probe");
    // The pending poll ends with a noop so the client can send the upgrade.
    assert_eq!(pending.await.unwrap(), (200, "6".into()));
    send(&mut ws, "5").await;
    send(&mut ws, "40").await;
    assert_eq!(recv(&mut ws).await, "40");
    // Data now goes over the websocket, and polling is over for this session.
    session.send_packet(OutPacket::message("2[\"data\"]")).await;
    assert_eq!(recv(&mut ws).await, "42[\"data\"]");
    assert_eq!(
        poll(&engine, &sid).await,
        (400, r#"{"code":3,"message":"Bad request"}"#.into())
    );
}

#[tokio::test]
async fn an_upgrade_without_the_probe_leaves_the_session_polling() {
    let (engine, _) = engine_with(config());
    let port = serve(engine.clone()).await;
    let (sid, session) = open_polling(&engine).await;
    let mut ws = ws_connect(port, &format!("&sid={sid}")).await;
    send(&mut ws, "5").await;
    assert!(matches!(recv(&mut ws).await.as_str(), "close" | "end"));
    assert!(!session.closed.is_cancelled());
    session.reply_message("still");
    assert_eq!(poll(&engine, &sid).await.1, "4still");
}
