//! Actions (docs/protocol.md, "Actions"): what the user or the agent asks to happen.
//!
//! Each variant's args struct lists its fields in the order the reference serializer
//! writes them; defaults are the reference dataclass defaults.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

fn neg1() -> i64 {
    -1
}
fn one() -> i64 {
    1
}
fn yes() -> bool {
    true
}
fn impl_default() -> String {
    "default".into()
}
fn impl_oh_aci() -> String {
    "oh_aci".into()
}
fn view() -> String {
    "view".into()
}

/// Whether a risky action was confirmed by the user (confirmation mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmationState {
    #[default]
    Confirmed,
    Rejected,
    AwaitingConfirmation,
}

/// An action, tagged on the wire as `"action": <kind>, "args": {...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "args", rename_all = "snake_case")]
pub enum Action {
    Message(MessageArgs),
    System(SystemArgs),
    Run(CmdRunArgs),
    RunIpython(IPythonRunCellArgs),
    Read(FileReadArgs),
    Write(FileWriteArgs),
    Edit(FileEditArgs),
    Browse(BrowseUrlArgs),
    BrowseInteractive(BrowseInteractiveArgs),
    CallToolMcp(McpArgs),
    Think(ThinkArgs),
    Finish(FinishArgs),
    Reject(RejectArgs),
    Delegate(DelegateArgs),
    Recall(RecallArgs),
    ChangeAgentState(ChangeAgentStateArgs),
    Condensation(CondensationArgs),
    CondensationRequest(EmptyArgs),
    TaskTracking(TaskTrackingArgs),
    Null(EmptyArgs),
}

/// The action names this server knows, as they appear on the wire.
pub const ACTION_KINDS: &[&str] = &[
    "message",
    "system",
    "run",
    "run_ipython",
    "read",
    "write",
    "edit",
    "browse",
    "browse_interactive",
    "call_tool_mcp",
    "think",
    "finish",
    "reject",
    "delegate",
    "recall",
    "change_agent_state",
    "condensation",
    "condensation_request",
    "task_tracking",
    "null",
];

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyArgs {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageArgs {
    pub content: String,
    #[serde(default)]
    pub file_urls: Option<Vec<String>>,
    #[serde(default)]
    pub image_urls: Option<Vec<String>>,
    #[serde(default)]
    pub wait_for_response: bool,
    #[serde(default = "neg1")]
    pub security_risk: i64,
}

impl MessageArgs {
    /// A plain text message with the reference defaults.
    pub fn text(content: impl Into<String>) -> Self {
        MessageArgs {
            content: content.into(),
            file_urls: None,
            image_urls: None,
            wait_for_response: false,
            security_risk: -1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemArgs {
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub tools: Option<Value>,
    #[serde(default)]
    pub openhands_version: Option<String>,
    #[serde(default)]
    pub agent_class: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmdRunArgs {
    pub command: String,
    #[serde(default)]
    pub is_input: bool,
    #[serde(default)]
    pub thought: String,
    #[serde(default)]
    pub blocking: bool,
    #[serde(default)]
    pub is_static: bool,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub confirmation_state: ConfirmationState,
    #[serde(default = "neg1")]
    pub security_risk: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IPythonRunCellArgs {
    pub code: String,
    #[serde(default)]
    pub thought: String,
    #[serde(default = "yes")]
    pub include_extra: bool,
    #[serde(default)]
    pub confirmation_state: ConfirmationState,
    #[serde(default = "neg1")]
    pub security_risk: i64,
    #[serde(default)]
    pub kernel_init_code: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileReadArgs {
    pub path: String,
    #[serde(default)]
    pub start: i64,
    #[serde(default = "neg1")]
    pub end: i64,
    #[serde(default)]
    pub thought: String,
    #[serde(default = "neg1")]
    pub security_risk: i64,
    #[serde(default = "impl_default")]
    pub impl_source: String,
    #[serde(default)]
    pub view_range: Option<Vec<i64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileWriteArgs {
    pub path: String,
    pub content: String,
    #[serde(default)]
    pub start: i64,
    #[serde(default = "neg1")]
    pub end: i64,
    #[serde(default)]
    pub thought: String,
    #[serde(default = "neg1")]
    pub security_risk: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEditArgs {
    pub path: String,
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub file_text: Option<String>,
    #[serde(default)]
    pub old_str: Option<String>,
    #[serde(default)]
    pub new_str: Option<String>,
    #[serde(default)]
    pub insert_line: Option<i64>,
    #[serde(default)]
    pub content: String,
    #[serde(default = "one")]
    pub start: i64,
    #[serde(default = "neg1")]
    pub end: i64,
    #[serde(default)]
    pub thought: String,
    #[serde(default = "neg1")]
    pub security_risk: i64,
    #[serde(default = "impl_oh_aci")]
    pub impl_source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowseUrlArgs {
    pub url: String,
    #[serde(default)]
    pub thought: String,
    #[serde(default = "neg1")]
    pub security_risk: i64,
    #[serde(default)]
    pub return_axtree: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowseInteractiveArgs {
    pub browser_actions: String,
    #[serde(default)]
    pub thought: String,
    #[serde(default)]
    pub browsergym_send_msg_to_user: String,
    #[serde(default = "neg1")]
    pub security_risk: i64,
    #[serde(default)]
    pub return_axtree: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpArgs {
    pub name: String,
    #[serde(default)]
    pub arguments: Map<String, Value>,
    #[serde(default)]
    pub thought: String,
    #[serde(default = "neg1")]
    pub security_risk: i64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThinkArgs {
    #[serde(default)]
    pub thought: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinishArgs {
    #[serde(default)]
    pub final_thought: String,
    #[serde(default)]
    pub outputs: Map<String, Value>,
    #[serde(default)]
    pub thought: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectArgs {
    #[serde(default)]
    pub outputs: Map<String, Value>,
    #[serde(default)]
    pub thought: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelegateArgs {
    pub agent: String,
    pub inputs: Map<String, Value>,
    #[serde(default)]
    pub thought: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecallArgs {
    pub recall_type: String,
    #[serde(default)]
    pub query: String,
    #[serde(default)]
    pub thought: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeAgentStateArgs {
    pub agent_state: String,
    #[serde(default)]
    pub thought: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CondensationArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forgotten_event_ids: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forgotten_events_start_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forgotten_events_end_id: Option<u64>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub summary_offset: Option<i64>,
}

/// One entry of the agent's task list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskItem {
    pub id: String,
    pub title: String,
    pub status: String,
    #[serde(default)]
    pub notes: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskTrackingArgs {
    #[serde(default = "view")]
    pub command: String,
    #[serde(default)]
    pub task_list: Vec<TaskItem>,
    #[serde(default)]
    pub thought: String,
}

impl Action {
    /// The wire name (`"run"`, `"message"`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Message(_) => "message",
            Action::System(_) => "system",
            Action::Run(_) => "run",
            Action::RunIpython(_) => "run_ipython",
            Action::Read(_) => "read",
            Action::Write(_) => "write",
            Action::Edit(_) => "edit",
            Action::Browse(_) => "browse",
            Action::BrowseInteractive(_) => "browse_interactive",
            Action::CallToolMcp(_) => "call_tool_mcp",
            Action::Think(_) => "think",
            Action::Finish(_) => "finish",
            Action::Reject(_) => "reject",
            Action::Delegate(_) => "delegate",
            Action::Recall(_) => "recall",
            Action::ChangeAgentState(_) => "change_agent_state",
            Action::Condensation(_) => "condensation",
            Action::CondensationRequest(_) => "condensation_request",
            Action::TaskTracking(_) => "task_tracking",
            Action::Null(_) => "null",
        }
    }

    /// The human summary the reference computes for the top-level `message` key.
    pub fn message(&self) -> String {
        match self {
            Action::Message(a) => a.content.clone(),
            Action::System(a) => a.content.clone(),
            Action::Run(a) => format!("Running command: {}", a.command),
            Action::RunIpython(a) => format!("Running Python code interactively: {}", a.code),
            Action::Read(a) => format!("Reading file: {}", a.path),
            Action::Write(a) => format!("Writing file: {}", a.path),
            Action::Edit(_) => String::new(),
            Action::Browse(a) => format!("I am browsing the URL: {}", a.url),
            Action::BrowseInteractive(a) => {
                format!(
                    "I am interacting with the browser:\n```\n{}\n```",
                    a.browser_actions
                )
            }
            Action::CallToolMcp(a) => format!("I am calling MCP tool: {}", a.name),
            Action::Think(a) => format!("I am thinking...: {}", a.thought),
            Action::Finish(a) if !a.thought.is_empty() => a.thought.clone(),
            Action::Finish(_) => "All done! What's next on the agenda?".into(),
            Action::Reject(a) => format!("Task is rejected by the agent. {}", a.thought),
            Action::Delegate(a) => format!("I'm asking {} for help with this task.", a.agent),
            Action::Recall(a) => {
                let query: String = a.query.chars().take(50).collect();
                format!("Retrieving content for: {query}")
            }
            Action::ChangeAgentState(a) => format!("Agent state changed to {}", a.agent_state),
            Action::Condensation(_) => "Summary: condensed history".into(),
            Action::CondensationRequest(_) => {
                "Requesting a condensation of the conversation history".into()
            }
            Action::TaskTracking(a) => format!("Managing {} tasks", a.task_list.len()),
            Action::Null(_) => "No action".into(),
        }
    }
}
