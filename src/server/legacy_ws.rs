//! The raw WebSocket endpoint `/ws` of the pre-Socket.IO protocol (seeds 001 and 003):
//! JSON messages in (`initialize`, `start`, event dicts), serialized events out.

use async_trait::async_trait;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::auth::{self, Credentials};
use super::error::ApiError;
use super::AppState;
use crate::conversation::{subscribe, Conversation, NewConversation, Subscriber};
use crate::events::{parse_client_event, Action, Event, MessageArgs, Notice};
use crate::store::StoredEvent;

#[derive(Deserialize)]
pub struct WsQuery {
    conversation_id: Option<String>,
    latest_event_id: Option<String>,
    session_api_key: Option<String>,
    /// `true`: live output frames `{"oh_output": …}` too.
    stream_output: Option<String>,
}

/// `GET /ws`: a new conversation, or `?conversation_id=…&latest_event_id=…` to resume one.
pub async fn handler(
    State(state): State<AppState>,
    Query(q): Query<WsQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let cookie = auth::cookie_key(&headers);
    let credentials = Credentials {
        query: q.session_api_key.as_deref(),
        header: auth::header_key(&headers),
        cookie: cookie.as_deref(),
        ..Credentials::default()
    };
    if !auth::authorized(state.config.session_api_key.as_deref(), &credentials) {
        return ApiError::detail(
            StatusCode::UNAUTHORIZED,
            "Missing or invalid session API key",
        )
        .into_response();
    }
    let conversation = match &q.conversation_id {
        Some(id) if super::valid_conversation_id(id) => state.manager.open(id, true).await,
        Some(_) => return ApiError::bad_request("Invalid conversation_id").into_response(),
        None => match state.manager.create(NewConversation::default()).await {
            Ok(id) => state.manager.open(&id, false).await,
            Err(e) => Err(e),
        },
    };
    let conversation = match conversation {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let after = q
        .latest_event_id
        .as_deref()
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| *v >= 0)
        .map(|v| v as u64);
    upgrade
        .max_message_size(super::socket::MAX_EVENT_BYTES)
        .on_upgrade(move |ws| {
            let stream_output = super::query_flag(q.stream_output.as_deref());
            serve(state, conversation, after, stream_output, ws)
        })
}

/// A frame for the websocket writer, with the moment a live event became durable.
type Outgoing = (String, Option<std::time::Instant>);

/// Sends frames to the websocket writer.
struct WsSubscriber {
    out: mpsc::Sender<Outgoing>,
    /// The client asked for live output.
    stream_output: bool,
}

#[async_trait]
impl Subscriber for WsSubscriber {
    async fn event(&self, event: &StoredEvent) -> bool {
        self.out
            .send((event.json.to_string(), event.durable_at))
            .await
            .is_ok()
    }

    async fn notice(&self, json: &str) -> bool {
        self.out.send((json.to_string(), None)).await.is_ok()
    }

    async fn closed(&self) {
        let _ = self.out.send((Notice::Stopped.to_json(), None)).await;
    }

    fn wants_output(&self) -> bool {
        self.stream_output
    }

    async fn output(&self, json: &Arc<str>) -> bool {
        let frame = format!("{{\"oh_output\":{json}}}");
        self.out.send((frame, None)).await.is_ok()
    }
}

fn error(message: &str) -> String {
    Notice::error(message).to_json()
}

async fn serve(
    state: AppState,
    conversation: Arc<Conversation>,
    after: Option<u64>,
    stream_output: bool,
    ws: WebSocket,
) {
    let _attached = conversation.attach();
    let _counted = state.metrics.raw_ws_client();
    let (mut sink, mut stream) = ws.split();
    let (out, mut rx) = mpsc::channel::<Outgoing>(256);
    let cancel = CancellationToken::new();
    let metrics = state.metrics.clone();
    let writer = tokio::spawn(async move {
        while let Some((text, since)) = rx.recv().await {
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
            if let Some(since) = since {
                metrics.delivered(since.elapsed());
            }
        }
        let _ = sink.close().await;
    });
    let _ = out
        .send((json!({"token": &*conversation.id, "status": "ok", "conversation_id": &*conversation.id}).to_string(), None))
        .await;
    tokio::spawn(subscribe(
        conversation.clone(),
        state.manager.store().clone(),
        after,
        Arc::new(WsSubscriber {
            out: out.clone(),
            stream_output,
        }),
        cancel.clone(),
    ));
    while let Some(Ok(msg)) = stream.next().await {
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Binary(_) => {
                let _ = out
                    .send((
                        error("Binary messages are not supported: send JSON text"),
                        None,
                    ))
                    .await;
                continue;
            }
            Message::Close(_) => break,
            _ => continue,
        };
        if let Some(reply) = handle(&state, &conversation, text.trim()).await {
            if out.send((reply, None)).await.is_err() {
                break;
            }
        }
    }
    cancel.cancel();
    drop(out);
    let _ = writer.await;
}

/// Handles one client message; returns a direct reply, if any.
/// The LLM base URL in force (stored settings over the configuration).
async fn current_base_url(state: &AppState) -> Option<Value> {
    let stored = state.manager.store().settings().await.ok().flatten();
    crate::settings::effective(&state.config, stored.as_ref())
        .get("llm_base_url")
        .cloned()
}

async fn handle(state: &AppState, conversation: &Conversation, text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Some(error("Invalid JSON"));
    };
    let action = value
        .get("action")
        .and_then(Value::as_str)
        .map(str::to_string);
    let event = match action.as_deref() {
        Some("initialize") => {
            let args = value
                .get("args")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let mut overrides = initialize_settings(&args);
            if overrides.contains_key("llm_api_key") {
                // A key given here goes to the base URL given with it, or else to the
                // one in force now.
                let base = match overrides.get("llm_base_url") {
                    Some(b) => Some(b.clone()),
                    None => current_base_url(state).await,
                };
                overrides.insert(
                    crate::settings::KEY_BASE_URL.into(),
                    base.unwrap_or(Value::Null),
                );
            }
            conversation.set_overrides(overrides);
            return Some(
                json!({"action": "initialize", "message": "Control loop started."}).to_string(),
            );
        }
        Some("start") => match value.pointer("/args/task").and_then(Value::as_str) {
            Some(task) if !task.trim().is_empty() => {
                Event::action(Action::Message(MessageArgs::text(task)))
            }
            _ => return Some(error("`start` needs args.task: the task to start")),
        },
        Some("chat") => match value.get("message").and_then(Value::as_str) {
            Some(m) => Event::action(Action::Message(MessageArgs::text(m))),
            None => return Some(error("`chat` needs a message")),
        },
        _ => match parse_client_event(value) {
            Ok(e) => e,
            Err(e) => return Some(error(&e.to_string())),
        },
    };
    match conversation.submit(event).await {
        Ok(()) => None,
        Err(e) => Some(error(&e.to_string())),
    }
}

/// Maps `initialize` args (upstream's upper-case names) to settings keys.
fn initialize_settings(args: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (from, to) in [
        ("LLM_MODEL", "llm_model"),
        ("LLM_API_KEY", "llm_api_key"),
        ("LLM_BASE_URL", "llm_base_url"),
        ("AGENT", "agent"),
        ("LANGUAGE", "language"),
        ("SECURITY_ANALYZER", "security_analyzer"),
    ] {
        if let Some(v) = args
            .get(from)
            .or_else(|| args.get(to))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
        {
            out.insert(to.into(), json!(v));
        }
    }
    if let Some(v) = args
        .get("CONFIRMATION_MODE")
        .or_else(|| args.get("confirmation_mode"))
    {
        if let Some(b) = v
            .as_bool()
            .or_else(|| v.as_str().map(|s| s.eq_ignore_ascii_case("true")))
        {
            out.insert("confirmation_mode".into(), json!(b));
        }
    }
    if let Some(v) = args
        .get("MAX_ITERATIONS")
        .or_else(|| args.get("max_iterations"))
    {
        if let Some(n) = v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        {
            out.insert("max_iterations".into(), json!(n));
        }
    }
    out
}
