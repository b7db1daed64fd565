//! Opens, closes, reaps and deletes conversations; the one place that knows them all.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{broadcast, mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::handle::Conversation;
use super::stream::{EventStream, LIVE_BUFFER};
use super::{task, TOO_MANY_CONVERSATIONS};
use crate::agent::AgentOptions;
use crate::config::Config;
use crate::events::{Action, Event, MessageArgs, Notice, NoticeKind};
use crate::runtime::browse::BrowseLimits;
use crate::runtime::browser::BrowserConfig;
use crate::runtime::{LocalRuntime, RuntimeConfig};
use crate::store::{ConversationMetadata, EventStore, StoreError};

/// Errors of the conversation manager.
#[derive(Debug, Error)]
pub enum ManagerError {
    #[error("conversation {0} not found")]
    NotFound(String),
    #[error("invalid conversation id (1 to 100 letters, digits, _ or -)")]
    InvalidId,
    #[error("this server keeps at most {0} conversations; delete some to start new ones (`[limits] max_conversations`)")]
    TooManyStored(usize),
    #[error("too many conversations are busy ({0} open); try again when one finishes")]
    TooMany(usize),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("conversation {0} is being deleted")]
    Deleting(String),
    #[error(
        "the cluster's Redis is unreachable: this node cannot start conversations until it is back"
    )]
    ClusterUnavailable,
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

/// Owns every open conversation.
pub struct ConversationManager {
    store: Arc<dyn EventStore>,
    config: Arc<Config>,
    open: Mutex<HashMap<String, Arc<Conversation>>>,
    /// Ids being deleted: not reopened until the deletion is done.
    deleting: std::sync::Mutex<HashSet<String>>,
    /// One lock per conversation id being opened or deleted (see [`IdLock`]).
    id_locks: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
    shutdown: CancellationToken,
    metrics: Arc<crate::metrics::Metrics>,
    /// Cluster mode: this node's membership (conversations then run as
    /// [`super::clustered`] tasks).
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    /// This manager, for the owner kits of clustered conversations.
    me: std::sync::Weak<ConversationManager>,
}

impl ConversationManager {
    /// A manager over `store`; call [`ConversationManager::spawn_reaper`] to close idle ones.
    pub fn new(store: Arc<dyn EventStore>, config: Arc<Config>) -> Arc<Self> {
        Self::with_metrics(store, config, Arc::default())
    }

    /// [`ConversationManager::new`], reporting to `metrics`.
    pub fn with_metrics(
        store: Arc<dyn EventStore>,
        config: Arc<Config>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| ConversationManager {
            cluster: std::sync::OnceLock::new(),
            me: me.clone(),
            metrics,
            store,
            config,
            open: Mutex::new(HashMap::new()),
            deleting: std::sync::Mutex::new(HashSet::new()),
            id_locks: std::sync::Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
        })
    }

    /// Turns cluster mode on (before any conversation opens); false if it already was.
    pub fn set_cluster(&self, cluster: Arc<crate::cluster::Cluster>) -> bool {
        self.cluster.set(cluster).is_ok()
    }

    /// This node's cluster membership, in cluster mode.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    /// The metrics the conversations report to.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// How many conversations are open, and how many of those are working (agent busy
    /// or actions running).
    pub async fn activity(&self) -> (usize, usize) {
        let open = self.open.lock().await;
        let live = open.values().filter(|c| !c.is_closed());
        live.fold((0, 0), |(n, busy), c| {
            (n + 1, busy + usize::from(c.is_busy()))
        })
    }

    /// The store behind the conversations.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The open conversation `id`, if any.
    pub async fn get_open(&self, id: &str) -> Option<Arc<Conversation>> {
        let open = self.open.lock().await;
        open.get(id).filter(|c| !c.is_closed()).cloned()
    }

    /// Returns the open conversation `id`, reopening it from the store if needed; with
    /// `create`, an unknown id becomes a new conversation.
    pub async fn open(&self, id: &str, create: bool) -> Result<Arc<Conversation>, ManagerError> {
        if !super::valid_id(id) {
            return Err(ManagerError::InvalidId);
        }
        let _one_at_a_time = self.lock_id(id).await;
        loop {
            if self.shutdown.is_cancelled() {
                return Err(ManagerError::ShuttingDown);
            }
            if self
                .deleting
                .lock()
                .map(|d| d.contains(id))
                .unwrap_or(false)
            {
                return Err(ManagerError::Deleting(id.to_string()));
            }
            let mut open = self.open.lock().await;
            match open.get(id).cloned() {
                Some(c) if !c.is_closed() => return Ok(c),
                Some(c) if !c.finished.is_cancelled() => {
                    // Still closing: its last events must be stored before a new
                    // stream continues after them.
                    drop(open);
                    c.finished().await;
                    continue;
                }
                Some(_) => {
                    open.remove(id);
                }
                None => {}
            }
            open.retain(|_, c| !c.is_closed());
            // Only the conversations running here count: followers are cheap.
            let running = open.values().filter(|c| c.runs_here()).count();
            if running >= self.config.file.core.max_concurrent_conversations {
                let victim = self
                    .pick_victim(&open)
                    .ok_or(ManagerError::TooMany(running))?;
                drop(open);
                victim.notify(
                    Notice::status(
                        NoticeKind::Error,
                        "AGENT_ERROR$TOO_MANY_CONVERSATIONS",
                        TOO_MANY_CONVERSATIONS,
                    )
                    .to_json(),
                );
                self.close_and_forget(&victim).await;
                continue;
            }
            break;
        }
        // The store and the runtime are set up without the map's lock: other
        // conversations open and close meanwhile; this id's lock keeps this one single.
        let conversation = self.start(id, create).await?;
        let mut open = self.open.lock().await;
        if self.shutdown.is_cancelled() {
            conversation.closed.cancel();
            return Err(ManagerError::ShuttingDown);
        }
        open.insert(id.to_string(), conversation.clone());
        Ok(conversation)
    }

    /// Waits for, then holds, the lock of conversation `id` (opening and deleting one id
    /// take turns; different ids do not wait for each other).
    async fn lock_id(&self, id: &str) -> IdLock<'_> {
        let lock = match self.id_locks.lock() {
            Ok(mut locks) => locks.entry(id.to_string()).or_default().clone(),
            Err(_) => Arc::default(),
        };
        IdLock {
            manager: self,
            id: id.to_string(),
            guard: Some(lock.lock_owned().await),
        }
    }

    /// Loads (or creates) conversation `id` and starts its task.
    async fn start(&self, id: &str, create: bool) -> Result<Arc<Conversation>, ManagerError> {
        self.ensure_cluster()?;
        if self.store.conversation(id).await?.is_none() {
            if !create {
                return Err(ManagerError::NotFound(id.to_string()));
            }
            self.ensure_room().await?;
            self.store
                .put_conversation(ConversationMetadata::new(id, Some("gui")))
                .await?;
        }
        let id: Arc<str> = Arc::from(id);
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        if let Some(cluster) = self.cluster.get() {
            return self.start_clustered(id, live, cluster.clone()).await;
        }
        let stream = EventStream::open(id.clone(), self.store.clone(), live.clone()).await?;
        let (tx, rx) = mpsc::channel(256);
        let conversation = Arc::new(Conversation::new(
            id.clone(),
            tx,
            live,
            self.metrics.clone(),
        ));
        let (secrets, git_tokens) = self.user_secrets(&id).await;
        let runtime = Arc::new(LocalRuntime::new(
            &self.config.workspace_for(&id),
            self.runtime_config(&id, secrets, git_tokens),
        ));
        let workspace = self.config.workspace_for(&id).display().to_string();
        let ipython = self.config.file.agent.enable_jupyter
            && crate::runtime::ipython::allowed_in(runtime.sandbox())
            && crate::runtime::ipython::available().await;
        let span = tracing::info_span!("conversation", conversation_id = %id);
        tokio::spawn(
            task::run(
                conversation.clone(),
                stream,
                rx,
                self.store.clone(),
                runtime,
                (self.config.clone(), self.agent_options(workspace, ipython)),
            )
            .instrument(span),
        );
        tracing::info!(conversation = %id, "conversation opened");
        Ok(conversation)
    }

    /// The user's custom secrets and git provider tokens for a conversation's runtime.
    async fn user_secrets(
        &self,
        id: &str,
    ) -> (
        Vec<crate::settings::CustomSecret>,
        Vec<crate::provider_tokens::ProviderToken>,
    ) {
        match self.store.settings().await {
            Ok(stored) => (
                crate::settings::custom_secrets(stored.as_ref()),
                crate::provider_tokens::stored(stored.as_ref()),
            ),
            Err(e) => {
                tracing::warn!(conversation = %id, "cannot read the user's secrets: {e}");
                (Vec::new(), Vec::new())
            }
        }
    }

    /// Starts conversation `id` in cluster mode: owned here when its lease is free,
    /// followed from the database otherwise.
    async fn start_clustered(
        &self,
        id: Arc<str>,
        live: broadcast::Sender<crate::store::StoredEvent>,
        cluster: Arc<crate::cluster::Cluster>,
    ) -> Result<Arc<Conversation>, ManagerError> {
        let (tx, rx) = mpsc::channel(256);
        let conversation = Arc::new(Conversation::new(
            id.clone(),
            tx,
            live,
            self.metrics.clone(),
        ));
        let (secrets, git_tokens) = self.user_secrets(&id).await;
        let ipython =
            self.config.file.agent.enable_jupyter && crate::runtime::ipython::available().await;
        let me = self.me.clone();
        let kit_id = id.clone();
        let kit: super::clustered::OwnerKit = Box::new(move || {
            let manager = me.upgrade()?;
            let runtime = Arc::new(LocalRuntime::new(
                &manager.config.workspace_for(&kit_id),
                manager.runtime_config(&kit_id, secrets.clone(), git_tokens.clone()),
            ));
            let workspace = manager.config.workspace_for(&kit_id).display().to_string();
            let ipython = ipython && crate::runtime::ipython::allowed_in(runtime.sandbox());
            Some((
                runtime,
                (
                    manager.config.clone(),
                    manager.agent_options(workspace, ipython),
                ),
            ))
        });
        let span = tracing::info_span!("conversation", conversation_id = %id, node = %cluster.node);
        tokio::spawn(
            super::clustered::run(conversation.clone(), rx, self.store.clone(), cluster, kit)
                .instrument(span),
        );
        tracing::info!(conversation = %id, "conversation opened (cluster)");
        Ok(conversation)
    }

    /// The oldest idle conversation (preferring ones without clients), never a busy one.
    fn pick_victim(&self, open: &HashMap<String, Arc<Conversation>>) -> Option<Arc<Conversation>> {
        open.values()
            .filter(|c| !c.is_busy() && c.runs_here())
            .max_by_key(|c| (c.connections() == 0, c.idle_for()))
            .cloned()
    }

    /// Closes `conversation`, waits until its task has stored everything, and forgets it.
    async fn close_and_forget(&self, conversation: &Arc<Conversation>) {
        conversation.closed.cancel();
        conversation.finished().await;
        let mut open = self.open.lock().await;
        if open
            .get(&*conversation.id)
            .is_some_and(|c| Arc::ptr_eq(c, conversation))
        {
            open.remove(&*conversation.id);
        }
    }

    fn agent_options(&self, workspace: String, ipython: bool) -> AgentOptions {
        let f = &self.config.file;
        AgentOptions {
            llm: f.llm.clone(),
            max_iterations: f.core.max_iterations,
            max_budget_per_task: f.core.max_budget_per_task,
            confirmation_mode: f.security.confirmation_mode,
            ipython,
            security_analyzer: crate::security::Analyzer::configured(
                f.security.security_analyzer.as_deref(),
            ),
            workspace,
            llm_factory: metered_factory(&f.llm, self.metrics.clone()),
            browser: f.agent.enable_browsing && self.browser_config().is_ok(),
            condenser_max_size: f.condenser.max_size,
        }
    }

    /// The runtime's settings; the user's custom secrets and git provider tokens become
    /// environment variables (a custom secret of the same name wins).
    fn runtime_config(
        &self,
        id: &str,
        secrets: Vec<crate::settings::CustomSecret>,
        git_tokens: Vec<crate::provider_tokens::ProviderToken>,
    ) -> RuntimeConfig {
        let sandbox = &self.config.file.sandbox;
        RuntimeConfig {
            default_timeout: Duration::from_secs(sandbox.timeout),
            no_change_timeout: Duration::from_secs(sandbox.no_change_timeout),
            browse: BrowseLimits::default(),
            browser: self.browser_config(),
            env: sandbox
                .runtime_startup_env_vars
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain(crate::provider_tokens::shell_env(&git_tokens))
                .chain(secrets.into_iter().map(|s| (s.name, s.value)))
                .collect(),
            git_tokens,
            sandbox: crate::runtime::sandbox::SandboxPolicy::for_conversation(&self.config, id),
        }
    }

    /// The interactive browser's settings, or why there is none.
    fn browser_config(&self) -> Result<BrowserConfig, String> {
        let f = &self.config.file;
        if !f.core.enable_browser {
            return Err("the browser is turned off (`[core] enable_browser = false`)".into());
        }
        let executable = crate::runtime::browser::find_chromium().ok_or_else(|| {
            "Chromium was not found (install Debian's `chromium` package or set CHROMIUM_PATH)"
                .to_string()
        })?;
        let idle = match f.sandbox.browser_idle_timeout {
            0 => Duration::MAX,
            secs => Duration::from_secs(secs),
        };
        Ok(BrowserConfig {
            executable,
            action_timeout: Duration::from_secs(f.sandbox.browser_action_timeout.max(1)),
            idle_timeout: idle,
        })
    }

    /// Creates a conversation (new id) and opens it; the initial message becomes its first event.
    pub async fn create(&self, new: NewConversation) -> Result<String, ManagerError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.create_with_id(&id, new).await?;
        Ok(id)
    }

    /// Creates conversation `id` (which must not exist yet) and opens it.
    pub async fn create_with_id(&self, id: &str, new: NewConversation) -> Result<(), ManagerError> {
        if !super::valid_id(id) {
            return Err(ManagerError::InvalidId);
        }
        self.ensure_cluster()?;
        self.ensure_room().await?;
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

    /// Cluster mode: refuses to start a conversation here while Redis is unreachable
    /// (nobody could tell which node owns it).
    fn ensure_cluster(&self) -> Result<(), ManagerError> {
        match self.cluster.get() {
            Some(cluster) if !cluster.redis_ok() => Err(ManagerError::ClusterUnavailable),
            _ => Ok(()),
        }
    }

    /// Refuses a new conversation once `[limits] max_conversations` are stored.
    async fn ensure_room(&self) -> Result<(), ManagerError> {
        let max = self.config.file.limits.max_conversations;
        if max == 0 {
            return Err(ManagerError::TooManyStored(0));
        }
        if !self.store.conversations(max - 1, 1).await?.is_empty() {
            return Err(ManagerError::TooManyStored(max));
        }
        Ok(())
    }

    /// Closes conversation `id` if it is open; true if it was.
    pub async fn close(&self, id: &str) -> bool {
        let conversation = self.open.lock().await.get(id).cloned();
        match conversation {
            Some(c) => {
                let was_open = !c.is_closed();
                self.close_and_forget(&c).await;
                was_open
            }
            None => false,
        }
    }

    /// Closes and deletes conversation `id`; false if it did not exist.
    pub async fn delete(&self, id: &str) -> Result<bool, ManagerError> {
        if !super::valid_id(id) {
            return Err(ManagerError::InvalidId);
        }
        let _one_at_a_time = self.lock_id(id).await;
        if let Ok(mut d) = self.deleting.lock() {
            d.insert(id.to_string());
        }
        let _done = DeletingGuard(self, id.to_string());
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
        if existed {
            // The sandbox's private home and temporary directory go with it.
            let private = self.config.file_store_path().join("sandbox").join(id);
            if let Err(e) = tokio::fs::remove_dir_all(&private).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(conversation = %id, "cannot remove {}: {e}", private.display());
                }
            }
        }
        Ok(existed)
    }

    /// Ids of the open conversations with their client counts.
    pub async fn open_ids(&self) -> Vec<(String, usize)> {
        let open = self.open.lock().await;
        open.values()
            .filter(|c| !c.is_closed())
            .map(|c| (c.id.to_string(), c.connections()))
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
        let idle: Vec<Arc<Conversation>> = {
            let open = self.open.lock().await;
            open.values()
                .filter(|c| {
                    c.is_closed()
                        || (c.connections() == 0 && !c.is_busy() && c.idle_for() >= close_delay)
                })
                .cloned()
                .collect()
        };
        for c in idle {
            tracing::info!(conversation = %c.id, "closing idle conversation");
            self.close_and_forget(&c).await;
        }
    }

    /// Closes every conversation at once (their queued events are stored) and flushes
    /// the store.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let all: Vec<Arc<Conversation>> = self.open.lock().await.drain().map(|(_, c)| c).collect();
        for c in &all {
            c.closed.cancel();
        }
        futures::future::join_all(all.iter().map(|c| c.finished())).await;
        if let Err(e) = self.store.flush().await {
            tracing::error!("final flush failed: {e}");
        }
    }
}

/// Lets an id be reopened once its deletion is over.
struct DeletingGuard<'a>(&'a ConversationManager, String);

impl Drop for DeletingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut d) = self.0.deleting.lock() {
            d.remove(&self.1);
        }
    }
}

/// Holds the lock of one conversation id; the entry goes when nobody waits for it.
struct IdLock<'a> {
    manager: &'a ConversationManager,
    id: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for IdLock<'_> {
    fn drop(&mut self) {
        self.guard.take();
        if let Ok(mut locks) = self.manager.id_locks.lock() {
            // Waiters hold clones, taken under this same mutex: one reference is the map's.
            if locks
                .get(&self.id)
                .is_some_and(|l| Arc::strong_count(l) == 1)
            {
                locks.remove(&self.id);
            }
        }
    }
}

/// The production LLM factory, with every client reporting to `metrics`.
fn metered_factory(
    llm: &crate::config::LlmConfig,
    metrics: Arc<crate::metrics::Metrics>,
) -> crate::agent::LlmFactory {
    let prices = crate::metrics::Prices {
        input: llm.input_cost_per_token,
        output: llm.output_cost_per_token,
    };
    crate::agent::LlmFactory::new(move |settings| {
        let client = crate::llm::client(settings)?;
        Ok(crate::metrics::metered(
            client,
            &settings.model,
            prices,
            metrics.clone(),
        ))
    })
}
