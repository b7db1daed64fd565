//! The shared handle of a running conversation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use thiserror::Error;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::events::Event;
use crate::store::{StoreError, StoredEvent};

/// Why a command could not be carried out by a conversation.
#[derive(Debug, Error)]
pub enum ConversationError {
    #[error("the conversation is closed")]
    Closed,
    /// Cluster mode: the command could not reach the conversation's owner.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a conversation's task is asked to do.
pub(super) enum Command {
    /// Append an event sent by a user; reply with its id once durable.
    UserEvent {
        event: Event,
        /// The sender's own id of a message: a second send with it is not stored again.
        client_id: Option<Arc<str>>,
        reply: Option<oneshot::Sender<Result<u64, ConversationError>>>,
    },
    /// Append what the runtime observed for an action.
    Observation {
        event: Event,
        source: crate::events::EventSource,
    },
    /// Append an event of the agent's; reply with its id.
    Agent {
        event: Event,
        source: crate::events::EventSource,
        reply: oneshot::Sender<u64>,
    },
}

/// A running conversation: the channels to its task and its live feeds.
pub struct Conversation {
    pub id: Arc<str>,
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) live: broadcast::Sender<StoredEvent>,
    pub(super) notices: broadcast::Sender<Arc<str>>,
    pub(super) closed: CancellationToken,
    /// Cancelled when the task has stored everything and stopped.
    pub(super) finished: CancellationToken,
    connections: AtomicUsize,
    last_active: Mutex<Instant>,
    /// Actions waiting for or running on the runtime; a busy conversation is never
    /// closed to make room or for idling.
    pub(super) pending_jobs: AtomicUsize,
    /// Set while the agent works.
    pub(super) agent_busy: std::sync::atomic::AtomicBool,
    /// Settings for this conversation only (the raw `/ws` `initialize`), over the user's.
    overrides: Mutex<serde_json::Map<String, serde_json::Value>>,
    /// The runtime's status as `GET /api/conversations/{id}` reports it
    /// (`STATUS$SETTING_UP_WORKSPACE` while a repository is cloned, then `STATUS$READY`).
    runtime_status: Mutex<&'static str>,
    /// The server's metrics (bytes sent, commands run).
    pub(super) metrics: Arc<crate::metrics::Metrics>,
    /// Cluster mode: another node owns it and this one only follows its events (a
    /// follower does not count towards `max_concurrent_conversations`).
    pub(super) follower: std::sync::atomic::AtomicBool,
    /// Output as it happens, for the clients that asked for it.
    pub output: Arc<super::output_feed::OutputFeed>,
}

impl Conversation {
    pub(super) fn new(
        id: Arc<str>,
        commands: mpsc::Sender<Command>,
        live: broadcast::Sender<StoredEvent>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        let (notices, _) = broadcast::channel(64);
        Conversation {
            id,
            commands,
            live,
            notices,
            closed: CancellationToken::new(),
            finished: CancellationToken::new(),
            connections: AtomicUsize::new(0),
            last_active: Mutex::new(Instant::now()),
            pending_jobs: AtomicUsize::new(0),
            agent_busy: std::sync::atomic::AtomicBool::new(false),
            overrides: Mutex::new(serde_json::Map::new()),
            runtime_status: Mutex::new("STATUS$READY"),
            metrics,
            follower: std::sync::atomic::AtomicBool::new(false),
            output: super::output_feed::OutputFeed::new(),
        }
    }

    /// Whether it runs here (its agent and runtime): always on one node; in cluster mode,
    /// while this node owns it.
    pub fn runs_here(&self) -> bool {
        !self.follower.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The runtime's status (a RuntimeStatus id).
    pub fn runtime_status(&self) -> &'static str {
        self.runtime_status
            .lock()
            .map(|s| *s)
            .unwrap_or("STATUS$READY")
    }

    /// Records the runtime's status.
    pub(super) fn set_runtime_status(&self, status: &'static str) {
        if let Ok(mut s) = self.runtime_status.lock() {
            *s = status;
        }
    }

    /// Queues a user event without waiting for it to be stored.
    pub async fn submit(&self, event: Event) -> Result<(), ConversationError> {
        self.touch();
        self.commands
            .send(Command::UserEvent {
                event,
                client_id: None,
                reply: None,
            })
            .await
            .map_err(|_| ConversationError::Closed)
    }

    /// Appends a user event and waits until it is durable; returns its id.
    pub async fn submit_and_wait(&self, event: Event) -> Result<u64, ConversationError> {
        self.touch();
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::UserEvent {
                event,
                client_id: None,
                reply: Some(tx),
            })
            .await
            .map_err(|_| ConversationError::Closed)?;
        rx.await.map_err(|_| ConversationError::Closed)?
    }

    /// Queues a user event carrying the sender's own id (`client_message_id`). The
    /// receiver gets the stored event's id once it is durable; for an id already
    /// stored in this conversation, nothing is appended and it gets the first event's id.
    pub async fn submit_keyed(
        &self,
        event: Event,
        client_id: Arc<str>,
    ) -> Result<oneshot::Receiver<Result<u64, ConversationError>>, ConversationError> {
        self.touch();
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::UserEvent {
                event,
                client_id: Some(client_id),
                reply: Some(tx),
            })
            .await
            .map_err(|_| ConversationError::Closed)?;
        Ok(rx)
    }

    /// Sets settings for this conversation only (model, key, confirmation mode, …).
    pub fn set_overrides(&self, settings: serde_json::Map<String, serde_json::Value>) {
        if let Ok(mut o) = self.overrides.lock() {
            o.extend(settings);
        }
    }

    pub(super) fn overrides(&self) -> serde_json::Map<String, serde_json::Value> {
        self.overrides.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Sends a non-stored payload (status update, title change) to every live client.
    pub fn notify(&self, json: String) {
        let _ = self.notices.send(Arc::from(json));
    }

    /// Whether the conversation has been closed.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Number of attached clients.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Records a client attaching; the guard detaches it when dropped.
    pub fn attach(self: &Arc<Self>) -> AttachGuard {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.touch();
        AttachGuard(self.clone())
    }

    pub(super) fn idle_for(&self) -> std::time::Duration {
        self.last_active
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    pub(super) fn touch(&self) {
        if let Ok(mut t) = self.last_active.lock() {
            *t = Instant::now();
        }
    }

    /// Whether actions are running (never closed to make room or for idling then).
    pub fn is_busy(&self) -> bool {
        self.pending_jobs.load(Ordering::Relaxed) > 0 || self.agent_busy.load(Ordering::Relaxed)
    }

    /// Waits until the conversation's task has stopped (after it was closed).
    pub async fn finished(&self) {
        self.finished.cancelled().await
    }
}

/// Detaches a client from its conversation when dropped.
pub struct AttachGuard(Arc<Conversation>);

impl Drop for AttachGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}
