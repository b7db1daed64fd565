//! The per-conversation task: the only writer of the conversation's event stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::executor::{self, Job};
use super::handle::{Command, Conversation, ConversationError};
use super::host::ConversationHost;
use super::stream::EventStream;
use crate::agent::{AgentOptions, Appended};
use crate::config::Config;
use crate::events::{Action, Event, EventSource, Observation, Payload};
use crate::runtime::LocalRuntime;
use crate::store::{default_title, metadata_utc_now, EventStore};

/// How long closing waits for the action in progress to report after its processes die.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What the task works with besides its stream.
pub(super) struct TaskContext {
    pub store: Arc<dyn EventStore>,
    pub runtime: Arc<LocalRuntime>,
    jobs: mpsc::UnboundedSender<Job>,
    /// The agent's inbox: every appended event, in order.
    agent: mpsc::UnboundedSender<Appended>,
    untitled: bool,
    /// Cost and token totals not yet written to the metadata.
    usage: Option<serde_json::Map<String, serde_json::Value>>,
    /// Client message ids appended since the conversation opened (older ones are
    /// looked up in the store).
    client_ids: HashMap<Arc<str>, u64>,
}

impl TaskContext {
    /// Appends an event, tells the agent, and queues it for the runtime if it is an
    /// action the runtime executes.
    fn append(
        &mut self,
        conversation: &Conversation,
        stream: &mut EventStream,
        event: Event,
        source: EventSource,
        done: Option<super::AppendCallback>,
    ) -> u64 {
        self.append_keyed(conversation, stream, event, source, None, done)
    }

    /// [`TaskContext::append`] with the sender's own id of a user message.
    fn append_keyed(
        &mut self,
        conversation: &Conversation,
        stream: &mut EventStream,
        event: Event,
        source: EventSource,
        client_id: Option<Arc<str>>,
        done: Option<super::AppendCallback>,
    ) -> u64 {
        let copy = event.clone();
        if let Some(key) = &client_id {
            self.client_ids.insert(key.clone(), stream.next_id());
        }
        let id = stream.append_keyed(event, source, client_id, done);
        let job = Job::for_event(id, &copy, source);
        let _ = self.agent.send(Appended {
            id,
            source,
            event: copy,
        });
        if let Some(job) = job {
            conversation
                .pending_jobs
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            if self.jobs.send(job).is_err() {
                conversation
                    .pending_jobs
                    .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                let obs = Observation::error(
                    "The conversation is closing; the action was not executed.",
                    "",
                );
                self.append(
                    conversation,
                    stream,
                    Event::observation(obs, Some(id)),
                    source,
                    None,
                );
            }
        }
        id
    }
}

impl TaskContext {
    /// The event stored for a client message id, in this session or an earlier one.
    async fn stored_client_id(&self, conversation_id: &str, key: &str) -> Option<u64> {
        if let Some(id) = self.client_ids.get(key) {
            return Some(*id);
        }
        match self.store.client_message_event(conversation_id, key).await {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(conversation = %conversation_id, "cannot look up a client message id: {e}");
                None
            }
        }
    }
}

/// How often `last_updated_at` is written back while events flow.
const METADATA_FLUSH: Duration = Duration::from_secs(1);

/// Stops the agent's task when the conversation's task ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Marks the conversation closed and finished when the task ends.
pub(super) struct FinishGuard(pub(super) Arc<Conversation>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.0.closed.cancel();
        self.0.finished.cancel();
    }
}

/// Runs until the conversation is closed, then drains what was already queued.
pub(super) async fn run(
    conversation: Arc<Conversation>,
    stream: EventStream,
    mut commands: mpsc::Receiver<Command>,
    store: Arc<dyn EventStore>,
    runtime: Arc<LocalRuntime>,
    agent: (Arc<Config>, AgentOptions),
) {
    // Whatever happens (even a panic), the conversation ends up closed and finished.
    let _finished = FinishGuard(conversation.clone());
    let stop = conversation.closed.clone();
    let owner = Owner {
        runtime,
        agent,
        stop,
        note: None,
    };
    run_owned(conversation, stream, &mut commands, store, owner).await;
}

/// What one owned run of a conversation works with (see [`run_owned`]).
pub(super) struct Owner {
    pub runtime: Arc<LocalRuntime>,
    pub agent: (Arc<Config>, AgentOptions),
    /// Ends the run: the conversation's closing, or (cluster mode) the loss of its lease.
    pub stop: tokio_util::sync::CancellationToken,
    /// An event stored right after the opening one (cluster mode: the takeover notice).
    pub note: Option<Event>,
}

/// Runs the agent and the runtime as the conversation's one writer until `owner.stop`.
/// When the conversation itself was closed, the commands already queued are drained;
/// otherwise (a cluster node stepping down) they stay queued, and the clients' commands
/// that came while it wound down are returned, for the next owner.
pub(super) async fn run_owned(
    conversation: Arc<Conversation>,
    mut stream: EventStream,
    commands: &mut mpsc::Receiver<Command>,
    store: Arc<dyn EventStore>,
    owner: Owner,
) -> Vec<Command> {
    let Owner {
        runtime,
        agent,
        stop,
        note,
    } = owner;
    tracing::debug!("conversation task started");
    // The first event of every (re)opening, as upstream stores it: the agent is loading.
    // It goes before any command, so an initial message always follows it; the agent
    // announces `awaiting_user_input` once it has read the history.
    stream.append(
        Event::observation(
            Observation::agent_state_changed(crate::events::AgentState::Loading, ""),
            None,
        ),
        EventSource::Environment,
        None,
    );
    let (jobs, jobs_rx) = mpsc::unbounded_channel();
    // Started by the agent as it gets ready, stopped below with the conversation.
    let mcp = Arc::new(crate::mcp::McpTools::new());
    let mut executor = tokio::spawn(
        executor::run(
            runtime.clone(),
            mcp.clone(),
            jobs_rx,
            conversation.commands.clone(),
            conversation.metrics.clone(),
            conversation.output.clone(),
        )
        .in_current_span(),
    );
    let (agent_tx, agent_rx) = mpsc::unbounded_channel();
    let host = Arc::new(ConversationHost {
        conversation: conversation.clone(),
        store: store.clone(),
        config: agent.0,
        runtime: runtime.clone(),
        mcp: mcp.clone(),
    });
    let _stop_agent = AbortOnDrop(tokio::spawn(
        crate::agent::run(host, agent.1, agent_rx).in_current_span(),
    ));
    let mut ctx = TaskContext {
        store,
        runtime,
        jobs,
        agent: agent_tx,
        untitled: true,
        usage: None,
        client_ids: HashMap::new(),
    };
    if let Some(note) = note {
        // Through the agent's inbox: the model reads it before what follows.
        ctx.append(
            &conversation,
            &mut stream,
            note,
            EventSource::Environment,
            None,
        );
    }
    let mut dirty = false;
    let mut tick = tokio::time::interval(METADATA_FLUSH);
    loop {
        // Commands are the work; the tick writes metadata back; closing ends the loop.
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(cmd) => {
                    handle(&conversation, &mut stream, &mut ctx, cmd).await;
                    dirty = true;
                }
                None => break,
            },
            _ = tick.tick() => {
                if std::mem::take(&mut dirty) {
                    touch_metadata(&ctx.store, &conversation.id, ctx.usage.take()).await;
                }
            }
            _ = stop.cancelled() => break,
        }
    }
    // Kill what runs, and let the action in progress report before we stop listening,
    // so that every stored action that ran has its observation. MCP servers go first;
    // what they started carries the runtime's marker and dies with its processes.
    mcp.close().await;
    ctx.runtime.close();
    let (closed_jobs, _) = mpsc::unbounded_channel();
    ctx.jobs = closed_jobs;
    let mut left = Vec::new();
    let grace = tokio::time::sleep(CLOSE_GRACE);
    tokio::pin!(grace);
    loop {
        // Observations still arrive while the executor winds down; the grace period
        // bounds the wait.
        tokio::select! {
            cmd = commands.recv() => match cmd {
                // Stepping down: a client's command is for the next owner.
                Some(cmd @ Command::UserEvent { .. }) if !conversation.closed.is_cancelled() => {
                    left.push(cmd)
                }
                Some(cmd) => handle(&conversation, &mut stream, &mut ctx, cmd).await,
                None => break,
            },
            _ = &mut executor => break,
            _ = &mut grace => {
                executor.abort();
                break;
            }
        }
    }
    if conversation.closed.is_cancelled() {
        commands.close();
        while let Some(cmd) = commands.recv().await {
            handle(&conversation, &mut stream, &mut ctx, cmd).await;
        }
    }
    touch_metadata(&ctx.store, &conversation.id, ctx.usage.take()).await;
    if let Err(e) = ctx.store.flush().await {
        tracing::error!(conversation = %conversation.id, "flush on close failed: {e}");
    }
    left
}

async fn handle(
    conversation: &Arc<Conversation>,
    stream: &mut EventStream,
    ctx: &mut TaskContext,
    cmd: Command,
) {
    match cmd {
        Command::UserEvent {
            event,
            client_id,
            reply,
        } => {
            if let Some(key) = &client_id {
                if let Some(id) = ctx.stored_client_id(&conversation.id, key).await {
                    // A retry of a message already stored: acknowledged, not stored again.
                    tracing::debug!(conversation = %conversation.id, id, "duplicate client message id");
                    if let Some(tx) = reply {
                        let _ = tx.send(Ok(id));
                    }
                    return;
                }
            }
            let first_text = match &event.payload {
                Payload::Action(Action::Message(m)) => Some(m.content.clone()),
                _ => None,
            };
            if let Payload::Action(Action::ChangeAgentState(a)) = &event.payload {
                if crate::events::AgentState::parse(&a.agent_state)
                    == Some(crate::events::AgentState::Stopped)
                {
                    // Stop kills the running command's processes at once.
                    ctx.runtime.interrupt();
                }
            }
            let done = reply.map(|tx| {
                Box::new(move |r: Result<u64, crate::store::StoreError>| {
                    let _ = tx.send(r.map_err(ConversationError::from));
                }) as super::AppendCallback
            });
            ctx.append_keyed(
                conversation,
                stream,
                event,
                EventSource::User,
                client_id,
                done,
            );
            if let Some(text) = first_text.filter(|_| ctx.untitled) {
                ctx.untitled = false;
                auto_title(conversation, &ctx.store, &text).await;
            }
        }
        Command::Observation { event, source } => {
            conversation
                .pending_jobs
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            conversation.touch();
            ctx.append(conversation, stream, event, source, None);
        }
        Command::Agent {
            event,
            source,
            reply,
        } => {
            conversation.touch();
            if let Some(totals) = event.llm_metrics.as_ref().and_then(super::usage::totals) {
                ctx.usage = Some(totals);
            }
            let id = ctx.append(conversation, stream, event, source, None);
            let _ = reply.send(id);
        }
    }
}

/// Gives a conversation still titled `Conversation xxxxx` a title from the user's first
/// message (its first 30 characters), and tells its clients.
async fn auto_title(conversation: &Arc<Conversation>, store: &Arc<dyn EventStore>, text: &str) {
    if text.trim().is_empty() {
        return;
    }
    let title = crate::agent::fallback_title(text);
    super::host::set_title_if(conversation, store, &title, default_title(&conversation.id)).await;
}

/// Writes `last_updated_at`, and the cost and token totals when they changed.
async fn touch_metadata(
    store: &Arc<dyn EventStore>,
    id: &str,
    usage: Option<serde_json::Map<String, serde_json::Value>>,
) {
    let mut patch = usage.unwrap_or_default();
    patch.insert("last_updated_at".into(), metadata_utc_now().into());
    let patch = serde_json::Value::Object(patch);
    if let Err(e) = store.patch_conversation(id, patch, None).await {
        tracing::warn!(conversation = %id, "cannot update metadata: {e}");
    }
}
