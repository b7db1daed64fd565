//! The OpenHands Socket.IO handlers: connect with `conversation_id`/`latest_event_id`,
//! `oh_user_action` (and `oh_action`) in, `oh_event` out.

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use tokio_util::sync::CancellationToken;

use super::auth::{self, Credentials};
use super::sio::socketio::{self, EventName, Packet};
use super::sio::{EngineHandler, OutPacket, Session};
use super::AppState;
use crate::conversation::{subscribe, AttachGuard, Conversation, ConversationError, Subscriber};
use crate::events::{parse_client_event, take_client_message_id, Notice};
use crate::store::StoredEvent;

/// Everything the server sends on Socket.IO is an `oh_event`.
static OH_EVENT: LazyLock<EventName> = LazyLock::new(|| EventName::new("oh_event"));

/// Live output (never stored) for clients connected with `stream_output=true`.
static OH_OUTPUT: LazyLock<EventName> = LazyLock::new(|| EventName::new("oh_output"));

/// Largest `oh_user_action` accepted (upstream's Socket.IO buffer size).
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// Git providers a client may list in `providers_set`.
const PROVIDERS: &[&str] = &[
    "github",
    "gitlab",
    "bitbucket",
    "azure_devops",
    "forgejo",
    "enterprise_sso",
];

/// A Socket.IO socket joined to a conversation.
struct Joined {
    conversation: Arc<Conversation>,
    cancel: CancellationToken,
    _attached: AttachGuard,
}

/// Per engine session: the main-namespace socket, if connected.
#[derive(Default)]
struct SocketSlot {
    joined: Option<Joined>,
    /// Binary attachments still to swallow after a refused binary event.
    pending_binary: usize,
}

/// Our Socket.IO layer over the Engine.IO sessions.
pub struct SocketHandler {
    state: AppState,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<SocketSlot>>>>,
}

impl SocketHandler {
    pub fn new(state: AppState) -> Self {
        SocketHandler {
            state,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, session: &Session) -> Arc<tokio::sync::Mutex<SocketSlot>> {
        let mut slots = match self.slots.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        slots.entry(session.sid.clone()).or_default().clone()
    }
}

/// `{"error":true,"message":…}` on `oh_event`, to the sender only.
fn send_error(session: &Session, message: &str) {
    let body = Notice::error(message).to_json();
    session.reply(OutPacket::Text(OH_EVENT.message(&body)));
}

/// Why a connect was refused; the message goes into CONNECT_ERROR.
struct Refusal(String);

impl SocketHandler {
    /// Validates the handshake and joins the conversation, replaying after `latest_event_id`.
    async fn connect(
        &self,
        session: &Arc<Session>,
        slot: &mut SocketSlot,
        auth: &str,
    ) -> Result<(), Refusal> {
        let cid = session.query_param("conversation_id").unwrap_or("").trim();
        if cid.is_empty() {
            return Err(Refusal("No conversation_id in query params".into()));
        }
        if !super::valid_conversation_id(cid) {
            return Err(Refusal("Invalid conversation_id".into()));
        }
        for provider in session
            .query_params("providers_set")
            .flat_map(|v| v.split(','))
        {
            let p = provider.trim();
            if !p.is_empty() && !PROVIDERS.contains(&p) {
                return Err(Refusal(format!("Invalid provider in providers_set: {p:?}")));
            }
        }
        let auth = serde_json::from_str::<Value>(auth).ok();
        let credentials = Credentials {
            auth_payload: auth
                .as_ref()
                .and_then(|v| v.get("session_api_key"))
                .and_then(Value::as_str),
            query: session.query_param("session_api_key"),
            header: None,
            cookie: session.cookie_key.as_deref(),
        };
        if !auth::authorized(self.state.config.session_api_key.as_deref(), &credentials) {
            return Err(Refusal("invalid_session_api_key".into()));
        }
        session.authenticate();
        let after = session
            .query_param("latest_event_id")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|v| *v >= 0)
            .map(|v| v as u64);
        let conversation = self
            .state
            .manager
            .open(cid, true)
            .await
            .map_err(|e| Refusal(format!("Failed to join conversation: {e}")))?;
        if session.closed.is_cancelled() {
            return Err(Refusal("The connection closed".into()));
        }
        if let Some(old) = slot.joined.take() {
            old.cancel.cancel();
        }
        let sid = super::sio::new_sid();
        session.reply_message(&socketio::connect_ack(&sid));
        let cancel = CancellationToken::new();
        let subscriber = Arc::new(SocketSubscriber {
            session: session.clone(),
            cancel: cancel.clone(),
            stream_output: super::query_flag(session.query_param("stream_output")),
        });
        tokio::spawn(subscribe(
            conversation.clone(),
            self.state.manager.store().clone(),
            after,
            subscriber,
            cancel.clone(),
        ));
        slot.joined = Some(Joined {
            _attached: conversation.attach(),
            conversation,
            cancel,
        });
        Ok(())
    }

    async fn on_event(
        &self,
        session: &Arc<Session>,
        slot: &mut SocketSlot,
        ack: Option<u64>,
        data: &str,
    ) {
        let (event, client_id) = match parse_event(data) {
            Ok(parsed) => parsed,
            Err(message) => {
                ack_now(session, ack);
                return send_error(session, &message);
            }
        };
        let Some(joined) = slot.joined.as_ref() else {
            return ack_now(session, ack);
        };
        let Some(client_id) = client_id else {
            ack_now(session, ack);
            if let Err(ConversationError::Closed) = joined.conversation.submit(event).await {
                send_error(
                    session,
                    "The conversation was closed; reconnect to reopen it",
                );
            }
            return;
        };
        match joined.conversation.submit_keyed(event, client_id).await {
            // The acknowledgement waits until the message is durable and carries its id.
            Ok(stored) => {
                let session = session.clone();
                tokio::spawn(async move {
                    let reply = match stored.await {
                        Ok(Ok(id)) => serde_json::json!({"event_id": id}),
                        Ok(Err(e)) => serde_json::json!({"error": e.to_string()}),
                        Err(_) => serde_json::json!({"error": "the conversation was closed"}),
                    };
                    if let Some(ack) = ack {
                        session.reply_message(&format!("3{ack}[{reply}]"));
                    }
                });
            }
            Err(_) => {
                ack_now(session, ack);
                send_error(
                    session,
                    "The conversation was closed; reconnect to reopen it",
                );
            }
        }
    }
}

/// Parses an event packet's data into the action and its client message id; the error
/// text is sent back to the client.
fn parse_event(data: &str) -> Result<(crate::events::Event, Option<Arc<str>>), String> {
    if data.len() > MAX_EVENT_BYTES {
        return Err(format!(
            "Message too large: {} bytes; the limit is {MAX_EVENT_BYTES} bytes",
            data.len()
        ));
    }
    let parsed: Value =
        serde_json::from_str(data).map_err(|e| format!("Invalid JSON in event packet: {e}"))?;
    let Value::Array(mut args) = parsed else {
        return Err("Malformed event packet: expected [\"event_name\", payload]".into());
    };
    let name = match args.first() {
        Some(Value::String(n)) => n.clone(),
        _ => return Err("Malformed event packet: the event name must be a string".into()),
    };
    if name != "oh_user_action" && name != "oh_action" {
        return Err(format!(
            "Unknown event {name:?}: send actions as oh_user_action"
        ));
    }
    if args.len() < 2 {
        return Err(format!("{name} needs one JSON object as its payload"));
    }
    let mut payload = args.swap_remove(1);
    let client_id = take_client_message_id(&mut payload).map_err(|e| e.to_string())?;
    let event = parse_client_event(payload).map_err(|e| e.to_string())?;
    Ok((event, client_id))
}

/// Acknowledges an event at once (with no data), if the client asked.
fn ack_now(session: &Session, ack: Option<u64>) {
    if let Some(id) = ack {
        session.reply_message(&socketio::ack(id));
    }
}

#[async_trait]
impl EngineHandler for SocketHandler {
    async fn on_message(&self, session: &Arc<Session>, text: &str) {
        if session.closed.is_cancelled() {
            return;
        }
        let slot = self.slot(session);
        let mut slot = slot.lock().await;
        match socketio::parse(text) {
            Some(Packet::Connect { nsp: "/", data }) => {
                if slot
                    .joined
                    .as_ref()
                    .is_some_and(|j| !j.conversation.is_closed())
                {
                    return;
                }
                if let Err(Refusal(m)) = self.connect(session, &mut slot, data).await {
                    session.reply_message(&socketio::connect_error("/", &m, None));
                }
            }
            Some(Packet::Connect { nsp, .. }) => {
                session.reply_message(&socketio::connect_error(nsp, "Invalid namespace", None));
            }
            Some(Packet::Disconnect { .. }) => {
                if let Some(j) = slot.joined.take() {
                    j.cancel.cancel();
                }
            }
            Some(Packet::Event {
                nsp: "/",
                ack,
                data,
            }) => {
                // An event before any CONNECT (websocat's one-shot) is an implicit connect.
                if slot
                    .joined
                    .as_ref()
                    .is_none_or(|j| j.conversation.is_closed())
                {
                    if let Err(Refusal(m)) = self.connect(session, &mut slot, "").await {
                        session.reply_message(&socketio::connect_error("/", &m, None));
                        return;
                    }
                }
                self.on_event(session, &mut slot, ack, data).await;
            }
            Some(Packet::Event { nsp, .. }) => {
                session.reply_message(&socketio::connect_error(nsp, "Invalid namespace", None));
            }
            Some(Packet::BinaryEvent { attachments, .. })
            | Some(Packet::BinaryAck { attachments, .. }) => {
                slot.pending_binary = slot.pending_binary.saturating_add(attachments);
                send_error(
                    session,
                    "Binary attachments are not supported: send oh_user_action as JSON",
                );
            }
            Some(Packet::Ack { .. }) => {}
            None => send_error(session, "Malformed Socket.IO packet"),
        }
    }

    async fn on_binary(&self, session: &Arc<Session>, _data: Bytes) {
        if session.closed.is_cancelled() {
            return;
        }
        let slot = self.slot(session);
        let mut slot = slot.lock().await;
        if slot.pending_binary > 0 {
            slot.pending_binary -= 1;
        } else {
            send_error(
                session,
                "Unexpected binary frame: send oh_user_action as JSON text",
            );
        }
    }

    async fn on_close(&self, session: &Arc<Session>) {
        let slot = match self.slots.lock() {
            Ok(mut s) => s.remove(&session.sid),
            Err(_) => None,
        };
        if let Some(slot) = slot {
            if let Some(j) = slot.lock().await.joined.take() {
                j.cancel.cancel();
            }
        }
    }

    fn written(&self, since: std::time::Instant) {
        self.state.metrics.delivered(since.elapsed());
    }
}

/// Forwards a conversation's events to one socket as `oh_event`.
struct SocketSubscriber {
    session: Arc<Session>,
    /// Cancelled when this socket leaves the conversation.
    cancel: CancellationToken,
    /// The client asked for output as it happens (`oh_output`).
    stream_output: bool,
}

#[async_trait]
impl Subscriber for SocketSubscriber {
    async fn event(&self, event: &StoredEvent) -> bool {
        !self.cancel.is_cancelled()
            && self
                .session
                .send_packet(OH_EVENT.timed_packet(event.json.clone(), event.durable_at))
                .await
    }

    async fn notice(&self, json: &str) -> bool {
        !self.cancel.is_cancelled()
            && self
                .session
                .send_packet(OH_EVENT.packet(Arc::from(json)))
                .await
    }

    fn wants_output(&self) -> bool {
        self.stream_output
    }

    async fn output(&self, json: &Arc<str>) -> bool {
        !self.cancel.is_cancelled()
            && self
                .session
                .send_packet(OH_OUTPUT.packet(json.clone()))
                .await
    }

    async fn closed(&self) {
        if self.cancel.is_cancelled() {
            return;
        }
        self.session
            .send_packet(OH_EVENT.packet(Arc::from(Notice::Stopped.to_json())))
            .await;
        // Server-side disconnect of the main namespace.
        self.session.send_packet(OutPacket::Text("41".into())).await;
    }
}
