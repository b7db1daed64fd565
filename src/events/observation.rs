//! Observations (docs/protocol.md, "Observations"): what happened in answer to an action.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::action::TaskItem;

fn neg1() -> i64 {
    -1
}
fn impl_default() -> String {
    "default".into()
}
fn browse() -> String {
    "browse".into()
}

/// An observation: `content` plus a kind-specific `extras` object.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub content: String,
    pub kind: ObservationKind,
}

/// The kind of an observation, tagged on the wire as `"observation": <kind>, "extras": {...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "observation", content = "extras", rename_all = "snake_case")]
pub enum ObservationKind {
    Run(CmdOutputExtras),
    RunIpython(IPythonExtras),
    Read(FileReadExtras),
    Write(FileWriteExtras),
    Edit(FileEditExtras),
    Browse(Box<BrowseExtras>),
    Mcp(McpExtras),
    Think(EmptyExtras),
    AgentStateChanged(AgentStateChangedExtras),
    Error(ErrorExtras),
    Success(EmptyExtras),
    UserRejected(EmptyExtras),
    Delegate(DelegateExtras),
    Condense(EmptyExtras),
    Recall(Box<RecallExtras>),
    Download(DownloadExtras),
    TaskTracking(TaskTrackingExtras),
    Null(EmptyExtras),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EmptyExtras {}

/// Metadata of a shell command's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CmdOutputMetadata {
    #[serde(default = "neg1")]
    pub exit_code: i64,
    #[serde(default = "neg1")]
    pub pid: i64,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub py_interpreter_path: Option<String>,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub suffix: String,
}

impl Default for CmdOutputMetadata {
    fn default() -> Self {
        CmdOutputMetadata {
            exit_code: -1,
            pid: -1,
            username: None,
            hostname: None,
            working_dir: None,
            py_interpreter_path: None,
            prefix: String::new(),
            suffix: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CmdOutputExtras {
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub metadata: CmdOutputMetadata,
    #[serde(default)]
    pub hidden: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IPythonExtras {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub image_urls: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileReadExtras {
    pub path: String,
    #[serde(default = "impl_default")]
    pub impl_source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileWriteExtras {
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEditExtras {
    pub path: String,
    #[serde(default)]
    pub prev_exist: bool,
    #[serde(default)]
    pub old_content: Option<String>,
    #[serde(default)]
    pub new_content: Option<String>,
    #[serde(default = "impl_default")]
    pub impl_source: String,
    #[serde(default)]
    pub diff: Option<String>,
    #[serde(default, rename = "_diff_cache")]
    pub diff_cache: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrowseExtras {
    pub url: String,
    #[serde(default = "browse")]
    pub trigger_by_action: String,
    #[serde(default)]
    pub screenshot: String,
    #[serde(default)]
    pub screenshot_path: Option<String>,
    #[serde(default)]
    pub set_of_marks: String,
    #[serde(default)]
    pub error: bool,
    #[serde(default)]
    pub goal_image_urls: Vec<Value>,
    #[serde(default)]
    pub open_pages_urls: Vec<String>,
    #[serde(default = "neg1")]
    pub active_page_index: i64,
    #[serde(default)]
    pub dom_object: Map<String, Value>,
    #[serde(default)]
    pub axtree_object: Map<String, Value>,
    #[serde(default)]
    pub extra_element_properties: Map<String, Value>,
    #[serde(default)]
    pub last_browser_action: String,
    #[serde(default)]
    pub last_browser_action_error: String,
    #[serde(default)]
    pub focused_element_bid: String,
    #[serde(default)]
    pub filter_visible_only: bool,
}

impl BrowseExtras {
    /// Extras of a plain page fetch of `url` (no screenshot, no DOM).
    pub fn new(url: String) -> Self {
        BrowseExtras {
            url,
            trigger_by_action: "browse".into(),
            screenshot: String::new(),
            screenshot_path: None,
            set_of_marks: String::new(),
            error: false,
            goal_image_urls: Vec::new(),
            open_pages_urls: Vec::new(),
            active_page_index: -1,
            dom_object: Map::new(),
            axtree_object: Map::new(),
            extra_element_properties: Map::new(),
            last_browser_action: String::new(),
            last_browser_action_error: String::new(),
            focused_element_bid: String::new(),
            filter_visible_only: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpExtras {
    pub name: String,
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStateChangedExtras {
    pub agent_state: String,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ErrorExtras {
    #[serde(default)]
    pub error_id: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DelegateExtras {
    #[serde(default)]
    pub outputs: Map<String, Value>,
}

/// One piece of microagent knowledge recalled for the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MicroagentKnowledge {
    pub name: String,
    pub trigger: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RecallExtras {
    pub recall_type: String,
    #[serde(default)]
    pub repo_name: String,
    #[serde(default)]
    pub repo_directory: String,
    #[serde(default)]
    pub repo_branch: String,
    #[serde(default)]
    pub repo_instructions: String,
    #[serde(default)]
    pub runtime_hosts: Map<String, Value>,
    #[serde(default)]
    pub additional_agent_instructions: String,
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub custom_secrets_descriptions: Map<String, Value>,
    #[serde(default)]
    pub conversation_instructions: String,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default)]
    pub microagent_knowledge: Vec<MicroagentKnowledge>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownloadExtras {
    pub file_path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskTrackingExtras {
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub task_list: Vec<TaskItem>,
}

impl Observation {
    /// The wire name (`"run"`, `"agent_state_changed"`, …).
    pub fn kind(&self) -> &'static str {
        match &self.kind {
            ObservationKind::Run(_) => "run",
            ObservationKind::RunIpython(_) => "run_ipython",
            ObservationKind::Read(_) => "read",
            ObservationKind::Write(_) => "write",
            ObservationKind::Edit(_) => "edit",
            ObservationKind::Browse(_) => "browse",
            ObservationKind::Mcp(_) => "mcp",
            ObservationKind::Think(_) => "think",
            ObservationKind::AgentStateChanged(_) => "agent_state_changed",
            ObservationKind::Error(_) => "error",
            ObservationKind::Success(_) => "success",
            ObservationKind::UserRejected(_) => "user_rejected",
            ObservationKind::Delegate(_) => "delegate",
            ObservationKind::Condense(_) => "condense",
            ObservationKind::Recall(_) => "recall",
            ObservationKind::Download(_) => "download",
            ObservationKind::TaskTracking(_) => "task_tracking",
            ObservationKind::Null(_) => "null",
        }
    }

    /// The human summary the reference computes for the top-level `message` key.
    pub fn message(&self) -> String {
        match &self.kind {
            ObservationKind::Run(e) => format!(
                "Command `{}` executed with exit code {}.",
                e.command, e.metadata.exit_code
            ),
            ObservationKind::RunIpython(e) => format!("Code executed in IPython cell: {}", e.code),
            ObservationKind::Read(e) => format!("I read the file {}.", e.path),
            ObservationKind::Write(e) => format!("I wrote to the file {}.", e.path),
            ObservationKind::Edit(e) => format!("I edited the file {}.", e.path),
            ObservationKind::Browse(e) => format!("Visited {}", e.url),
            ObservationKind::AgentStateChanged(_) => String::new(),
            ObservationKind::Null(_) => "No observation".into(),
            ObservationKind::Recall(e) if e.recall_type == "workspace_context" => {
                "Added workspace context".into()
            }
            ObservationKind::Recall(_) => "Added microagent knowledge".into(),
            ObservationKind::Download(e) => {
                format!("Downloaded the file at location: {}", e.file_path)
            }
            _ => self.content.clone(),
        }
    }

    /// The top-level `success` key, present only for command results.
    pub fn success(&self) -> Option<bool> {
        match &self.kind {
            ObservationKind::Run(e) => Some(e.metadata.exit_code == 0),
            ObservationKind::RunIpython(_) => Some(true),
            _ => None,
        }
    }

    /// An `agent_state_changed` observation.
    pub fn agent_state_changed(state: super::AgentState, reason: impl Into<String>) -> Self {
        Observation {
            content: String::new(),
            kind: ObservationKind::AgentStateChanged(AgentStateChangedExtras {
                agent_state: state.as_str().into(),
                reason: reason.into(),
            }),
        }
    }

    /// An `error` observation with the given text.
    pub fn error(content: impl Into<String>, error_id: impl Into<String>) -> Self {
        Observation {
            content: content.into(),
            kind: ObservationKind::Error(ErrorExtras {
                error_id: error_id.into(),
            }),
        }
    }
}
