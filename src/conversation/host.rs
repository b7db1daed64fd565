//! The conversation as seen by its agent ([`AgentHost`]).

use async_trait::async_trait;
use serde_json::{Map, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::oneshot;

use super::handle::{Command, Conversation};
use crate::agent::{AgentHost, Appended};
use crate::config::Config;
use crate::events::{Event, EventSource};
use crate::store::{EventRange, EventStore};

/// Gives the agent its conversation's stream, notices, settings and history.
pub(super) struct ConversationHost {
    pub conversation: Arc<Conversation>,
    pub store: Arc<dyn EventStore>,
    pub config: Arc<Config>,
    pub runtime: Arc<crate::runtime::LocalRuntime>,
    /// The conversation's MCP clients (the executor calls them).
    pub mcp: Arc<crate::mcp::McpTools>,
}

#[async_trait]
impl AgentHost for ConversationHost {
    fn thought_sink(&self, after: u64) -> Option<crate::llm::TextSink> {
        self.conversation.output.thought_sink(after)
    }

    async fn append(&self, event: Event, source: EventSource) -> Option<u64> {
        let (reply, rx) = oneshot::channel();
        self.conversation
            .commands
            .send(Command::Agent {
                event,
                source,
                reply,
            })
            .await
            .ok()?;
        rx.await.ok()
    }

    fn notify(&self, json: String) {
        self.conversation.notify(json);
    }

    async fn settings(&self) -> Map<String, Value> {
        let stored = self.store.settings().await.ok().flatten();
        let mut settings = crate::settings::effective(&self.config, stored.as_ref());
        settings.extend(self.conversation.overrides());
        settings
    }

    async fn stored_events(&self) -> Vec<Appended> {
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let range = EventRange {
                start,
                end: None,
                limit: 1000,
                reverse: false,
                max_bytes: 64 * 1024 * 1024,
            };
            let Ok(page) = self.store.events(&self.conversation.id, range).await else {
                break;
            };
            let Some(last) = page.last() else { break };
            start = last.id + 1;
            for stored in page {
                let Ok(value) = serde_json::from_str::<Value>(&stored.json) else {
                    continue;
                };
                let Ok(event) = Event::from_value(value) else {
                    continue;
                };
                let source = event.source.unwrap_or(EventSource::Agent);
                out.push(Appended {
                    id: stored.id,
                    source,
                    event,
                });
            }
        }
        out
    }

    fn set_busy(&self, busy: bool) {
        self.conversation.agent_busy.store(busy, Ordering::Relaxed);
    }

    async fn setup_workspace(&self) -> Result<(), String> {
        let meta = match self.store.conversation(&self.conversation.id).await {
            Ok(Some(m)) => m,
            _ => return Ok(()),
        };
        let Some(repository) = meta.selected_repository.filter(|r| !r.trim().is_empty()) else {
            return Ok(());
        };
        let status = |kind, id: &str, message: &str| {
            self.conversation
                .notify(crate::events::Notice::status(kind, id, message).to_json())
        };
        self.conversation
            .set_runtime_status("STATUS$SETTING_UP_WORKSPACE");
        status(
            crate::events::NoticeKind::Info,
            "STATUS$SETTING_UP_WORKSPACE",
            "Setting up workspace...",
        );
        match self
            .runtime
            .open_repository(&repository, meta.selected_branch.as_deref())
            .await
        {
            Ok(dir) => {
                tracing::info!(conversation = %self.conversation.id, dir = %dir.display(), "repository ready");
                self.conversation.set_runtime_status("STATUS$READY");
                status(crate::events::NoticeKind::Info, "STATUS$READY", "");
                Ok(())
            }
            Err(e) => {
                let why = e.to_string();
                // The conversation stays usable without the repository.
                self.conversation.set_runtime_status("STATUS$READY");
                status(crate::events::NoticeKind::Error, "STATUS$ERROR", &why);
                Err(why)
            }
        }
    }

    async fn start_tools(&self, reserved: Vec<String>) -> Vec<Value> {
        let settings = self.settings().await;
        let mut config = self.config.file.mcp.clone();
        let mut notes = Vec::new();
        match settings
            .get("mcp_config")
            .map(crate::mcp::McpConfig::from_settings)
        {
            Some(Ok(user)) => config = config.merge(user),
            Some(Err(e)) => notes.push(crate::events::Observation::error(
                format!("The MCP servers of the settings were not started: {e}"),
                crate::mcp::SERVER_FAILED,
            )),
            None => {}
        }
        if !config.is_empty() {
            let process = crate::mcp::ProcessContext {
                env: self.runtime.process_env(),
                cwd: self.runtime.workspace(),
            };
            let span = tracing::info_span!("mcp", conversation = %self.conversation.id);
            let started = self.mcp.start(config, &reserved, process);
            notes.extend(tracing::Instrument::instrument(started, span).await);
        }
        for note in notes {
            let event = Event::observation(note, None);
            if self.append(event, EventSource::Environment).await.is_none() {
                break;
            }
        }
        self.mcp.definitions().await
    }

    async fn recall(&self, query: &str, first: bool) -> Option<crate::events::RecallExtras> {
        let dir = self.runtime.workspace().to_path_buf();
        let user = self.config.user_microagents_dir();
        let found = tokio::task::spawn_blocking(move || {
            crate::runtime::microagents::load(&dir, user.as_deref())
        })
        .await
        .ok()?;
        if first {
            for e in &found.errors {
                self.conversation.notify(
                    crate::events::Notice::error(format!("A microagent was skipped: {e}"))
                        .to_json(),
                );
            }
        }
        let knowledge: Vec<crate::events::MicroagentKnowledge> = found
            .triggered(query)
            .into_iter()
            .map(|(k, trigger)| crate::events::MicroagentKnowledge {
                name: k.name.clone(),
                trigger,
                content: k.content.clone(),
            })
            .collect();
        let instructions = if first {
            found.repo.join("\n\n")
        } else {
            String::new()
        };
        if instructions.is_empty() && knowledge.is_empty() {
            return None;
        }
        Some(crate::events::RecallExtras {
            recall_type: if first {
                "workspace_context"
            } else {
                "knowledge"
            }
            .into(),
            repo_instructions: instructions,
            working_dir: if first {
                self.runtime.workspace().display().to_string()
            } else {
                String::new()
            },
            date: if first {
                chrono::Local::now().format("%Y-%m-%d").to_string()
            } else {
                String::new()
            },
            microagent_knowledge: knowledge,
            ..Default::default()
        })
    }

    async fn retitle(&self, title: String, if_title: String) {
        set_title_if(&self.conversation, &self.store, &title, if_title).await;
    }
}

/// Sets the conversation's title if it is still `if_title` (a rename by the user wins),
/// and tells its clients.
pub(super) async fn set_title_if(
    conversation: &Conversation,
    store: &Arc<dyn EventStore>,
    title: &str,
    if_title: String,
) {
    let _ = super::set_title(
        store,
        &conversation.id,
        Some(conversation),
        title,
        Some(if_title),
    )
    .await;
}
