//! Opens, closes, reaps and deletes conversations; the one place that knows them all.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{broadcast, mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::handle::Conversation;
use super::stream::{EventStream, LIVE_BUFFER};
use super::{status_update, task, TOO_MANY_CONVERSATIONS};
use crate::config::Config;
use crate::events::{Action, Event, MessageArgs};
use crate::runtime::browse::BrowseLimits;
use crate::runtime::{LocalRuntime, RuntimeConfig};
use crate::store::{ConversationMetadata, EventStore, StoreError};

/// Errors of the conversation manager.
#[derive(Debug, Error)]
pub enum ManagerError {
    #[error("conversation {0} not found")]
    NotFound(String),
    #[error("too many conversations are busy ({0} open); try again when one finishes")]
    TooMany(usize),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Conversation(#[from] super::ConversationError),
}

/// What a new conversation starts with.
#[derive(Debug, Default)]
pub struct NewConversation {
    pub initial_user_msg: Option<String>,
    pub image_urls: Option<Vec<String>>,
    pub selected_repository: Option<String>,
    pub selected_branch: Option<String>,
    pub git_provider: Option<String>,
    pub trigger: Option<String>,
}

struct Running {
    conversation: Arc<Conversation>,
    task: JoinHandle<()>,
}

/// Owns every open conversation.
pub struct ConversationManager {
    store: Arc<dyn EventStore>,
    config: Arc<Config>,
    open: Mutex<HashMap<String, Running>>,
    shutdown: CancellationToken,
}

impl ConversationManager {
    /// A manager over `store`; call [`ConversationManager::spawn_reaper`] to close idle ones.
    pub fn new(store: Arc<dyn EventStore>, config: Arc<Config>) -> Arc<Self> {
        Arc::new(ConversationManager {
            store,
            config,
            open: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
        })
    }

    /// The store behind the conversations.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The open conversation `id`, if any.
    pub async fn get_open(&self, id: &str) -> Option<Arc<Conversation>> {
        let open = self.open.lock().await;
        open.get(id)
            .filter(|r| !r.conversation.is_closed())
            .map(|r| r.conversation.clone())
    }

    /// Returns the open conversation `id`, reopening it from the store if needed; with
    /// `create`, an unknown id becomes a new conversation.
    pub async fn open(&self, id: &str, create: bool) -> Result<Arc<Conversation>, ManagerError> {
        if self.shutdown.is_cancelled() {
            return Err(ManagerError::ShuttingDown);
        }
        let mut open = self.open.lock().await;
        if let Some(r) = open.get(id) {
            if !r.conversation.is_closed() {
                return Ok(r.conversation.clone());
            }
            open.remove(id);
        }
        if self.store.conversation(id).await?.is_none() {
            if !create {
                return Err(ManagerError::NotFound(id.to_string()));
            }
            self.store
                .put_conversation(ConversationMetadata::new(id, Some("gui")))
                .await?;
        }
        self.make_room(&mut open).await?;
        let id: Arc<str> = Arc::from(id);
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        let stream = EventStream::open(id.clone(), self.store.clone(), live.clone()).await?;
        let (tx, rx) = mpsc::channel(256);
        let conversation = Arc::new(Conversation::new(id.clone(), tx, live));
        let runtime = Arc::new(LocalRuntime::new(
            &self.config.workspace_for(&id),
            self.runtime_config(),
        ));
        let task = tokio::spawn(task::run(
            conversation.clone(),
            stream,
            rx,
            self.store.clone(),
            runtime,
        ));
        tracing::info!(conversation = %id, "conversation opened");
        open.insert(
            id.to_string(),
            Running {
                conversation: conversation.clone(),
                task,
            },
        );
        Ok(conversation)
    }

    fn runtime_config(&self) -> RuntimeConfig {
        let sandbox = &self.config.file.sandbox;
        RuntimeConfig {
            default_timeout: Duration::from_secs(sandbox.timeout),
            no_change_timeout: Duration::from_secs(sandbox.no_change_timeout),
            browse: BrowseLimits::default(),
            env: sandbox
                .runtime_startup_env_vars
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Closes the oldest idle conversations until one more fits.
    async fn make_room(&self, open: &mut HashMap<String, Running>) -> Result<(), ManagerError> {
        let max = self.config.file.core.max_concurrent_conversations;
        open.retain(|_, r| !r.conversation.is_closed());
        while open.len() >= max {
            let victim = open
                .values()
                .filter(|r| !r.conversation.is_busy())
                .max_by_key(|r| (r.conversation.connections() == 0, r.conversation.idle_for()))
                .map(|r| r.conversation.id.to_string());
            let Some(victim) = victim else {
                return Err(ManagerError::TooMany(open.len()));
            };
            if let Some(r) = open.remove(&victim) {
                r.conversation.notify(status_update(
                    "error",
                    "AGENT_ERROR$TOO_MANY_CONVERSATIONS",
                    TOO_MANY_CONVERSATIONS,
                ));
                // Let the notice reach the clients before their sockets are told to go.
                tokio::task::yield_now().await;
                close_running(r).await;
            }
        }
        Ok(())
    }

    /// Creates a conversation (new id) and opens it; the initial message becomes its first event.
    pub async fn create(&self, new: NewConversation) -> Result<String, ManagerError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.create_with_id(&id, new).await?;
        Ok(id)
    }

    /// Creates conversation `id` (which must not exist yet) and opens it.
    pub async fn create_with_id(&self, id: &str, new: NewConversation) -> Result<(), ManagerError> {
        let mut meta = ConversationMetadata::new(id, new.trigger.as_deref().or(Some("gui")));
        meta.selected_repository = new.selected_repository;
        meta.selected_branch = new.selected_branch;
        meta.git_provider = new.git_provider;
        self.store.put_conversation(meta).await?;
        let conversation = self.open(id, false).await?;
        if let Some(text) = new.initial_user_msg.filter(|t| !t.is_empty()) {
            let mut args = MessageArgs::text(text);
            args.image_urls = Some(new.image_urls.unwrap_or_default());
            args.file_urls = Some(Vec::new());
            conversation
                .submit_and_wait(Event::action(Action::Message(args)))
                .await?;
        }
        Ok(())
    }

    /// Closes conversation `id` if it is open; true if it was.
    pub async fn close(&self, id: &str) -> bool {
        let running = self.open.lock().await.remove(id);
        match running {
            Some(r) => {
                let was_open = !r.conversation.is_closed();
                close_running(r).await;
                was_open
            }
            None => false,
        }
    }

    /// Closes and deletes conversation `id`; false if it did not exist.
    pub async fn delete(&self, id: &str) -> Result<bool, ManagerError> {
        self.close(id).await;
        let existed = self.store.delete_conversation(id).await?;
        if existed && !self.config.shared_workspace() {
            let dir = self.config.workspace_for(id);
            if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(conversation = %id, "cannot remove {}: {e}", dir.display());
                }
            }
        }
        Ok(existed)
    }

    /// Ids of the open conversations with their client counts.
    pub async fn open_ids(&self) -> Vec<(String, usize)> {
        let open = self.open.lock().await;
        open.values()
            .filter(|r| !r.conversation.is_closed())
            .map(|r| (r.conversation.id.to_string(), r.conversation.connections()))
            .collect()
    }

    /// Periodically closes conversations idle for `[sandbox] close_delay` with no client.
    pub fn spawn_reaper(self: &Arc<Self>) -> JoinHandle<()> {
        let me = self.clone();
        let close_delay = Duration::from_secs(self.config.file.sandbox.close_delay);
        let period = (close_delay / 4).clamp(Duration::from_millis(250), Duration::from_secs(15));
        tokio::spawn(async move {
            if close_delay.is_zero() {
                return;
            }
            let mut tick = tokio::time::interval(period);
            loop {
                // Reap on every tick until shutdown.
                tokio::select! {
                    _ = tick.tick() => me.reap(close_delay).await,
                    _ = me.shutdown.cancelled() => return,
                }
            }
        })
    }

    async fn reap(&self, close_delay: Duration) {
        let idle: Vec<Running> = {
            let mut open = self.open.lock().await;
            let ids: Vec<String> = open
                .values()
                .filter(|r| {
                    r.conversation.is_closed()
                        || (r.conversation.connections() == 0
                            && !r.conversation.is_busy()
                            && r.conversation.idle_for() >= close_delay)
                })
                .map(|r| r.conversation.id.to_string())
                .collect();
            ids.iter().filter_map(|id| open.remove(id)).collect()
        };
        for r in idle {
            tracing::info!(conversation = %r.conversation.id, "closing idle conversation");
            close_running(r).await;
        }
    }

    /// Closes every conversation (their queued events are stored) and flushes the store.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let all: Vec<Running> = self.open.lock().await.drain().map(|(_, r)| r).collect();
        for r in all {
            close_running(r).await;
        }
        if let Err(e) = self.store.flush().await {
            tracing::error!("final flush failed: {e}");
        }
    }
}

async fn close_running(r: Running) {
    r.conversation.closed.cancel();
    if let Err(e) = r.task.await {
        tracing::error!(conversation = %r.conversation.id, "conversation task failed: {e}");
    }
}
