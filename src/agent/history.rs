//! The conversation as the model sees it: stored events → chat messages.

use serde_json::Value;
use std::collections::HashSet;

use crate::events::{Action, Event, EventSource, ObservationKind, Payload};
use crate::llm::{ChatMessage, ToolCall};

#[derive(Debug, Clone)]
enum Item {
    User(String),
    AssistantText(String),
    Assistant {
        content: Option<String>,
        calls: Vec<ToolCall>,
    },
    Tool {
        call_id: String,
        name: String,
        content: String,
    },
}

/// What the model has seen and said, rebuilt from the events in id order.
#[derive(Debug, Default)]
pub struct History {
    /// Items with the id of the event they came from.
    items: Vec<(u64, Item)>,
    responses: HashSet<String>,
    seen: HashSet<u64>,
    /// Whether older turns were condensed away.
    condensed: bool,
    /// The model's summary of what was condensed away, if it wrote one.
    summary: Option<String>,
    /// Commands the user ran in the terminal, by action id, until their output comes.
    user_commands: std::collections::HashMap<u64, String>,
    /// The id of the user's last stop (`change_agent_state` to `stopped`): the result of
    /// an action from before it that arrives after it was cut short by the user.
    last_stop: Option<u64>,
    /// The highest event id pushed.
    newest: u64,
}

/// Added to the result of a tool call the user's stop cut short.
pub const INTERRUPTED_NOTE: &str =
    "[The user interrupted this action: its processes were killed before it finished.]";

/// Cuts `text` to about `max` characters, keeping its head and tail (UTF-8 safe).
pub fn truncate_middle(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max || max == 0 {
        return text.to_string();
    }
    let half = max / 2;
    let head: String = text.chars().take(half).collect();
    let tail: String = text.chars().skip(count - half).collect();
    format!(
        "{head}\n[... Observation truncated due to length: {} characters omitted ...]\n{tail}",
        count - 2 * half
    )
}

/// The text of an observation as the model reads it.
pub fn observation_text(event: &Event, max_chars: usize) -> Option<String> {
    let Payload::Observation(o) = &event.payload else {
        return None;
    };
    let text = match &o.kind {
        ObservationKind::Run(e) => format!(
            "{}{}{}",
            e.metadata.prefix,
            truncate_middle(&o.content, max_chars),
            e.metadata.suffix
        ),
        // Images reach the user, not the model (as upstream): a placeholder per image.
        ObservationKind::RunIpython(_) => truncate_middle(
            &o.content
                .lines()
                .map(|l| {
                    if l.contains("![image](data:image/png;base64,") {
                        "![image](data:image/png;base64, ...) already displayed to user"
                    } else {
                        l
                    }
                })
                .collect::<Vec<_>>()
                .join("\n"),
            max_chars,
        ),
        ObservationKind::Browse(e) if e.error && e.trigger_by_action == "browse" => format!(
            "Error fetching {}: {}",
            e.url,
            truncate_middle(&o.content, max_chars)
        ),
        _ => truncate_middle(&o.content, max_chars),
    };
    Some(text)
}

fn calls_of(response: &Value) -> (Option<String>, Vec<ToolCall>) {
    let message = response
        .pointer("/choices/0/message")
        .unwrap_or(&Value::Null);
    let content = message
        .get("content")
        .and_then(Value::as_str)
        .map(str::to_string)
        .filter(|c| !c.is_empty());
    (content, crate::llm::tool_calls_of(message))
}

impl History {
    /// Adds one appended event (ids already seen are ignored).
    pub fn push(&mut self, id: u64, source: EventSource, event: &Event, max_chars: usize) {
        if !self.seen.insert(id) {
            return;
        }
        self.newest = self.newest.max(id);
        if let Payload::Action(Action::ChangeAgentState(c)) = &event.payload {
            if source == EventSource::User && c.agent_state == "stopped" {
                self.last_stop = Some(id);
            }
        }
        if let Some(tcm) = &event.tool_call_metadata {
            // The model's response opens the turn, whichever of its events comes first
            // (an invalid tool call has only an error observation).
            let response = tcm.get("model_response").cloned().unwrap_or(Value::Null);
            let key = response
                .get("id")
                .and_then(Value::as_str)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| response.to_string());
            if self.responses.insert(key) {
                let (content, calls) = calls_of(&response);
                self.items.push((id, Item::Assistant { content, calls }));
            }
            if let Payload::Observation(_) = &event.payload {
                if let Some(mut content) = observation_text(event, max_chars) {
                    if event
                        .cause
                        .zip(self.last_stop)
                        .is_some_and(|(cause, stop)| cause < stop)
                    {
                        content.push('\n');
                        content.push_str(INTERRUPTED_NOTE);
                    }
                    let text = |key: &str| {
                        tcm.get(key)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    };
                    self.items.push((
                        id,
                        Item::Tool {
                            call_id: text("tool_call_id"),
                            name: text("function_name"),
                            content,
                        },
                    ));
                }
            }
            return;
        }
        // What the user did in the terminal is context the model should have.
        if source == EventSource::User {
            match &event.payload {
                Payload::Action(Action::Run(r)) if !r.is_input && !r.command.trim().is_empty() => {
                    self.user_commands.insert(id, r.command.clone());
                }
                Payload::Observation(_) => {
                    if let Some(command) = event.cause.and_then(|c| self.user_commands.remove(&c)) {
                        if let Some(output) = observation_text(event, max_chars) {
                            self.items.push((
                                id,
                                Item::User(format!("[I ran a command in the terminal myself: `{command}`]\n{output}")),
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        // The notice that the conversation moved to another node (its shell was lost).
        if let Payload::Observation(o) = &event.payload {
            if let crate::events::ObservationKind::Error(e) = &o.kind {
                if e.error_id == crate::cluster::TAKEOVER_ERROR_ID && event.cause.is_none() {
                    self.items
                        .push((id, Item::User(format!("[Notice: {}]", o.content))));
                    return;
                }
            }
        }
        // Repository instructions and triggered knowledge are context from the user's side.
        if let Payload::Observation(o) = &event.payload {
            if let crate::events::ObservationKind::Recall(r) = &o.kind {
                let mut text = String::new();
                if !r.repo_instructions.trim().is_empty() {
                    text.push_str(&format!(
                        "<REPOSITORY_INSTRUCTIONS>\n{}\n</REPOSITORY_INSTRUCTIONS>\n",
                        r.repo_instructions.trim()
                    ));
                }
                for k in &r.microagent_knowledge {
                    text.push_str(&format!(
                        "<EXTRA_INFO>\nThe following information was added because the message mentions \"{}\" ({}):\n{}\n</EXTRA_INFO>\n",
                        k.trigger, k.name, k.content.trim()
                    ));
                }
                if !text.is_empty() {
                    self.items
                        .push((id, Item::User(text.trim_end().to_string())));
                }
                return;
            }
        }
        if let Payload::Action(Action::Message(m)) = &event.payload {
            let mut text = m.content.clone();
            if let Some(files) = m.file_urls.as_ref().filter(|f| !f.is_empty()) {
                text.push_str(&format!("\n\nAttached files: {}", files.join(", ")));
            }
            match source {
                EventSource::User => self.items.push((id, Item::User(text))),
                _ => self.items.push((id, Item::AssistantText(text))),
            }
        }
        if let Payload::Action(Action::Condensation(c)) = &event.payload {
            let forgotten: HashSet<u64> = match (
                &c.forgotten_event_ids,
                c.forgotten_events_start_id,
                c.forgotten_events_end_id,
            ) {
                (Some(ids), _, _) => ids.iter().copied().collect(),
                (None, Some(a), Some(b)) if a <= b => (a..=b).collect(),
                _ => HashSet::new(),
            };
            self.items.retain(|(i, _)| !forgotten.contains(i));
            self.condensed = true;
            if let Some(s) = c.summary.as_ref().filter(|s| !s.trim().is_empty()) {
                self.summary = Some(s.clone());
            }
        }
    }

    /// The highest event id pushed so far (0 before any).
    pub fn newest_id(&self) -> u64 {
        self.newest
    }

    /// Event ids to forget to roughly halve the history: everything after the first
    /// user message up to the middle. None when there is too little to condense.
    /// How many events the model's context holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn condensation_range(&self) -> Option<(u64, u64)> {
        let first_user = self
            .items
            .iter()
            .position(|(_, i)| matches!(i, Item::User(_)))?;
        let rest = &self.items[first_user + 1..];
        if rest.len() < 4 {
            return None;
        }
        let start = rest.first()?.0;
        let end = rest.get(rest.len() / 2)?.0;
        Some((start, end))
    }

    /// The items with ids from `start` to `end` as plain text (and the summary of what was
    /// condensed before them), for the model to summarise.
    pub fn text_between(&self, start: u64, end: u64) -> String {
        let mut out = String::new();
        if let Some(s) = &self.summary {
            out.push_str(&format!("Summary of even earlier steps:\n{s}\n\n"));
        }
        for (_, item) in self.items.iter().filter(|(i, _)| (start..=end).contains(i)) {
            let line = match item {
                Item::User(t) => format!("USER: {t}"),
                Item::AssistantText(t) => format!("AGENT: {t}"),
                Item::Assistant { content, calls } => {
                    let calls: Vec<String> = calls
                        .iter()
                        .map(|c| format!("{}({})", c.name, c.arguments))
                        .collect();
                    format!(
                        "AGENT: {} {}",
                        content.as_deref().unwrap_or(""),
                        calls.join(", ")
                    )
                }
                Item::Tool { name, content, .. } => format!("RESULT of {name}: {content}"),
            };
            out.push_str(line.trim());
            out.push('\n');
        }
        out
    }

    /// The chat messages for the next completion, after `system`.
    pub fn messages(&self, system: &str) -> Vec<ChatMessage> {
        let mut out = vec![ChatMessage::System(system.to_string())];
        // Tool results must follow their assistant message directly: anything else that
        // happened meanwhile (a user message) waits until the calls are answered.
        let mut pending: Vec<(String, String)> = Vec::new();
        let mut deferred: Vec<ChatMessage> = Vec::new();
        let close = |out: &mut Vec<ChatMessage>,
                     pending: &mut Vec<(String, String)>,
                     deferred: &mut Vec<ChatMessage>| {
            for (id, name) in pending.drain(..) {
                let content = if name == "finish" {
                    "The task was marked as finished.".to_string()
                } else {
                    "The tool call was not executed (the agent was stopped or the call was superseded).".to_string()
                };
                out.push(ChatMessage::Tool {
                    tool_call_id: id,
                    name,
                    content,
                });
            }
            out.append(deferred);
        };
        let first_user = self
            .items
            .iter()
            .position(|(_, i)| matches!(i, Item::User(_)));
        for (n, (_, item)) in self.items.iter().enumerate() {
            if self.condensed && Some(n) == first_user.map(|f| f + 1) {
                close(&mut out, &mut pending, &mut deferred);
                out.push(ChatMessage::User(match &self.summary {
                    Some(summary) => format!("[Earlier steps of this conversation were condensed to fit the model's context window. Their summary:\n{summary}\nRe-check the current state of files before relying on it.]"),
                    None => "[Earlier steps of this conversation were condensed to fit the model's context window. Re-check the current state of files before relying on earlier observations.]".into(),
                }));
            }
            match item {
                Item::Assistant { content, calls } => {
                    close(&mut out, &mut pending, &mut deferred);
                    pending = calls
                        .iter()
                        .map(|c| (c.id.clone(), c.name.clone()))
                        .collect();
                    out.push(ChatMessage::Assistant {
                        content: content.clone(),
                        tool_calls: calls.clone(),
                    });
                }
                Item::Tool {
                    call_id,
                    name,
                    content,
                } => {
                    if let Some(pos) = pending.iter().position(|(id, _)| id == call_id) {
                        pending.remove(pos);
                        out.push(ChatMessage::Tool {
                            tool_call_id: call_id.clone(),
                            name: name.clone(),
                            content: content.clone(),
                        });
                        if pending.is_empty() {
                            out.append(&mut deferred);
                        }
                    }
                }
                Item::User(text) => {
                    let m = ChatMessage::User(text.clone());
                    if pending.is_empty() {
                        out.push(m);
                    } else {
                        deferred.push(m);
                    }
                }
                Item::AssistantText(text) => {
                    let m = ChatMessage::Assistant {
                        content: Some(text.clone()),
                        tool_calls: Vec::new(),
                    };
                    if pending.is_empty() {
                        out.push(m);
                    } else {
                        deferred.push(m);
                    }
                }
            }
        }
        close(&mut out, &mut pending, &mut deferred);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{MessageArgs, Observation, ThinkArgs};
    use serde_json::json;

    fn tcm(call: &str, name: &str, response: &Value) -> Value {
        json!({"function_name": name, "tool_call_id": call, "model_response": response, "total_calls_in_response": 2})
    }

    #[test]
    fn tool_results_follow_their_calls_and_late_user_messages_wait() {
        let response = json!({"id": "r1", "choices": [{"message": {"content": "Plan", "tool_calls": [
            {"id": "a", "function": {"name": "think", "arguments": "{\"thought\":\"x\"}"}},
            {"id": "b", "function": {"name": "think", "arguments": "{\"thought\":\"y\"}"}}]}}]});
        let mut h = History::default();
        h.push(
            0,
            EventSource::User,
            &Event::action(Action::Message(MessageArgs::text("hi"))),
            100,
        );
        let mut act = Event::action(Action::Think(ThinkArgs {
            thought: "x".into(),
        }));
        act.tool_call_metadata = Some(tcm("a", "think", &response));
        h.push(1, EventSource::Agent, &act, 100);
        let mut obs = Event::observation(
            Observation {
                content: "logged".into(),
                kind: ObservationKind::Think(Default::default()),
            },
            Some(1),
        );
        obs.tool_call_metadata = Some(tcm("a", "think", &response));
        h.push(2, EventSource::Agent, &obs, 100);
        h.push(
            3,
            EventSource::User,
            &Event::action(Action::Message(MessageArgs::text("also this"))),
            100,
        );
        h.push(
            3,
            EventSource::User,
            &Event::action(Action::Message(MessageArgs::text("duplicate id"))),
            100,
        );
        let m = h.messages("sys");
        assert_eq!(m.len(), 6, "{m:?}");
        assert!(
            matches!(&m[2], ChatMessage::Assistant { content: Some(c), tool_calls } if c == "Plan" && tool_calls.len() == 2)
        );
        assert!(
            matches!(&m[3], ChatMessage::Tool { tool_call_id, content, .. } if tool_call_id == "a" && content == "logged")
        );
        assert!(matches!(&m[4], ChatMessage::Tool { tool_call_id, .. } if tool_call_id == "b"));
        assert_eq!(m[5], ChatMessage::User("also this".into()));
    }

    #[test]
    fn the_users_own_terminal_commands_are_context_for_the_model() {
        use crate::events::{CmdOutputExtras, CmdRunArgs, ConfirmationState};
        let mut h = History::default();
        let run = Event::action(Action::Run(CmdRunArgs {
            command: "make test".into(),
            is_input: false,
            thought: String::new(),
            blocking: false,
            is_static: false,
            cwd: None,
            hidden: false,
            confirmation_state: ConfirmationState::Confirmed,
            security_risk: -1,
        }));
        h.push(0, EventSource::User, &run, 100);
        let mut extras = CmdOutputExtras::default();
        extras.metadata.exit_code = 2;
        extras.metadata.suffix = "\n[The command completed with exit code 2.]".into();
        let obs = Event::observation(
            Observation {
                content: "1 failed".into(),
                kind: ObservationKind::Run(extras),
            },
            Some(0),
        );
        h.push(1, EventSource::User, &obs, 100);
        let m = h.messages("sys");
        assert_eq!(m.len(), 2);
        assert!(
            matches!(&m[1], ChatMessage::User(t) if t.contains("`make test`") && t.contains("1 failed") && t.contains("exit code 2")),
            "{m:?}"
        );
    }

    #[test]
    fn truncation_keeps_head_and_tail_on_char_boundaries() {
        let text = "é".repeat(50) + &"x".repeat(50);
        let t = truncate_middle(&text, 20);
        assert!(
            t.starts_with(&"é".repeat(10)) && t.ends_with(&"x".repeat(10)),
            "{t}"
        );
        assert!(t.contains("80 characters omitted"));
        assert_eq!(truncate_middle("short", 20), "short");
    }

    #[test]
    fn a_result_that_arrives_after_the_users_stop_says_the_action_was_interrupted() {
        let response = json!({"id": "r9", "choices": [{"message": {"content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "execute_bash", "arguments": "{}"}}
        ]}}]});
        let tcm = json!({"function_name": "execute_bash", "tool_call_id": "c1", "model_response": response, "total_calls_in_response": 1});
        let result = |id: u64, cause: u64| {
            let mut obs = Event::observation(Observation::error("Killed", ""), Some(cause));
            obs.tool_call_metadata = Some(tcm.clone());
            (id, obs)
        };
        let mut act = Event::action(Action::Think(ThinkArgs::default()));
        act.tool_call_metadata = Some(tcm.clone());
        let stop = Event::action(Action::ChangeAgentState(
            crate::events::ChangeAgentStateArgs {
                agent_state: "stopped".into(),
                thought: String::new(),
            },
        ));
        let tool_text = |h: &History| {
            h.messages("sys")
                .iter()
                .find_map(|m| match m {
                    ChatMessage::Tool { content, .. } => Some(content.clone()),
                    _ => None,
                })
                .unwrap_or_default()
        };

        let mut stopped = History::default();
        stopped.push(1, EventSource::Agent, &act, 1000);
        stopped.push(2, EventSource::User, &stop, 1000);
        let (id, obs) = result(3, 1);
        stopped.push(id, EventSource::Agent, &obs, 1000);
        assert!(tool_text(&stopped).ends_with(INTERRUPTED_NOTE));

        let mut finished = History::default();
        finished.push(1, EventSource::Agent, &act, 1000);
        let (id, obs) = result(2, 1);
        finished.push(id, EventSource::Agent, &obs, 1000);
        finished.push(3, EventSource::User, &stop, 1000);
        assert!(
            !tool_text(&finished).contains(INTERRUPTED_NOTE),
            "a stop after the result interrupts nothing"
        );
    }
}
