//! The agent: a CodeAct-style LLM tool-calling loop driven by a conversation's events.
//!
//! The agent runs as its own task next to its conversation's task. It sees every
//! appended event (in order) through an inbox, and acts only by appending events
//! through its [`AgentHost`]: it never touches the store or the runtime itself.

mod browser_tool;
mod condense;
mod controller;
mod history;
mod metrics;
mod prompt;
mod stuck;
mod tasks;
#[cfg(test)]
mod tests;
mod title;
mod tools;
mod turn;

use async_trait::async_trait;
use futures::FutureExt;
use serde_json::{Map, Value};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::sync::mpsc;

pub use history::truncate_middle;

use crate::config::LlmConfig;
use crate::events::{Event, EventSource, Notice, NoticeKind};
use crate::llm::{self, LlmClient, LlmError, LlmSettings};

/// Server-level agent settings (the user's settings may override some per turn).
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub llm: LlmConfig,
    pub max_iterations: u64,
    pub max_budget_per_task: Option<f64>,
    pub confirmation_mode: bool,
    /// Whether Python cells (`execute_ipython_cell`) are offered: a kernel can start here
    /// and `[agent] enable_jupyter` is on.
    pub ipython: bool,
    /// The security analyzer of `[security] security_analyzer` (user settings may choose
    /// another per turn).
    pub security_analyzer: Option<crate::security::Analyzer>,
    pub workspace: String,
    /// Makes the LLM clients (the default speaks HTTP to the configured provider).
    pub llm_factory: LlmFactory,
    /// Offer the `browser` tool (Chromium is there and browsing is on).
    pub browser: bool,
    /// Condense once the history holds more events than this (`[condenser] max_size`).
    pub condenser_max_size: Option<u64>,
}

/// The signature of a function that makes an LLM client for some settings.
type MakeClient = dyn Fn(&LlmSettings) -> Result<Box<dyn LlmClient>, LlmError> + Send + Sync;

/// Makes the LLM client of a turn from its settings: [`llm::client`] by default; tests
/// give one that answers from a script.
#[derive(Clone)]
pub struct LlmFactory(Arc<MakeClient>);

impl LlmFactory {
    /// A factory that calls `make`.
    pub fn new(
        make: impl Fn(&LlmSettings) -> Result<Box<dyn LlmClient>, LlmError> + Send + Sync + 'static,
    ) -> Self {
        LlmFactory(Arc::new(make))
    }

    /// The client for `settings`.
    pub fn client(&self, settings: &LlmSettings) -> Result<Box<dyn LlmClient>, LlmError> {
        (self.0)(settings)
    }
}

impl Default for LlmFactory {
    fn default() -> Self {
        LlmFactory::new(llm::client)
    }
}

impl std::fmt::Debug for LlmFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LlmFactory")
    }
}

/// An event as appended to the conversation.
#[derive(Debug, Clone)]
pub struct Appended {
    pub id: u64,
    pub source: EventSource,
    pub event: Event,
}

/// What the agent needs from its conversation.
#[async_trait]
pub trait AgentHost: Send + Sync {
    /// Appends an event; returns its id (None if the conversation is closing).
    async fn append(&self, event: Event, source: EventSource) -> Option<u64>;
    /// Sends a status update or error notice (not stored) to the live clients.
    fn notify(&self, json: String);
    /// The effective user settings (stored settings over the server config).
    async fn settings(&self) -> Map<String, Value>;
    /// The conversation's stored events, in order (to rebuild the history).
    async fn stored_events(&self) -> Vec<Appended>;
    /// Whether the agent is working (a busy conversation is not closed).
    fn set_busy(&self, busy: bool);
    /// Sets the conversation's title if it is still `if_title`, and tells the clients.
    async fn retitle(&self, title: String, if_title: String);
    /// Prepares the workspace before the agent is ready (clones the conversation's
    /// repository); an error says why it could not.
    async fn setup_workspace(&self) -> Result<(), String> {
        Ok(())
    }
    /// Starts the conversation's MCP servers and returns their tool definitions (tools
    /// named like one of `reserved` are refused); each server's start is stored.
    async fn start_tools(&self, _reserved: Vec<String>) -> Vec<Value> {
        Vec::new()
    }
    /// What the workspace's microagents add for the user message `query`: repository
    /// instructions with the first message, triggered knowledge with any; None when
    /// nothing applies.
    async fn recall(&self, _query: &str, _first: bool) -> Option<crate::events::RecallExtras> {
        None
    }
    /// Where the model's answer goes as it is written, for a request built from the
    /// events up to `after`; None when nobody watches.
    fn thought_sink(&self, _after: u64) -> Option<crate::llm::TextSink> {
        None
    }
}

/// How often a crashed agent is restarted before it is given up.
const MAX_RESTARTS: u32 = 5;

/// Runs the agent of one conversation until its inbox closes, restarting it (from the
/// stored events) if it ever panics, so a bug never leaves a conversation hanging.
pub async fn run(
    host: Arc<dyn AgentHost>,
    options: AgentOptions,
    inbox: mpsc::UnboundedReceiver<Appended>,
) {
    let inbox = Arc::new(tokio::sync::Mutex::new(inbox));
    for attempt in 0..=MAX_RESTARTS {
        let run = controller::run(host.clone(), options.clone(), inbox.clone());
        if AssertUnwindSafe(run).catch_unwind().await.is_ok() {
            return;
        }
        tracing::error!(attempt, "the agent crashed; restarting it");
        host.set_busy(false);
        let message = if attempt < MAX_RESTARTS {
            "The agent hit an internal error and was restarted; send a message to continue."
        } else {
            "The agent keeps failing and was stopped for this conversation; reopen the conversation to try again."
        };
        host.notify(Notice::status(NoticeKind::Error, "STATUS$ERROR", message).to_json());
    }
}

/// The title a conversation gets from its first message before (or without) the LLM:
/// its first 30 characters.
pub fn fallback_title(text: &str) -> String {
    let trimmed = text.trim();
    let mut title: String = trimmed.chars().take(30).collect();
    if trimmed.chars().count() > 30 {
        title.push_str("...");
    }
    title
}
