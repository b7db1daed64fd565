//! CodeAct-style tools (docs/protocol.md, "Actions"): their JSON schemas, and tool call → action.

use serde_json::{json, Map, Value};
use thiserror::Error;

use crate::events::{
    Action, BrowseUrlArgs, CmdRunArgs, ConfirmationState, FileEditArgs, FileReadArgs, FinishArgs,
    IPythonRunCellArgs, McpArgs, TaskItem, TaskTrackingArgs, ThinkArgs,
};

/// A tool call the model should hear about as an error (the loop goes on).
#[derive(Debug, Error, PartialEq)]
pub enum ToolError {
    #[error("Tool {0:?} does not exist. Available tools: execute_bash, str_replace_editor, fetch, think, finish, task_tracker (and execute_ipython_cell where Python cells are available).")]
    Unknown(String),
    #[error("Invalid arguments for tool {0}: {1}")]
    InvalidArguments(String, String),
}

/// What a tool call becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedAction {
    pub action: Action,
    /// Hard timeout for commands, in seconds.
    pub timeout: Option<f64>,
}

const RISK: &str = "The LLM's assessment of the safety risk of this action: LOW (read-only or easily undone), MEDIUM (changes files or state in the workspace), HIGH (destructive, irreversible, touches things outside the workspace, or uses the network to change remote state).";

fn risk_param() -> Value {
    json!({"type": "string", "enum": ["LOW", "MEDIUM", "HIGH"], "description": RISK})
}

/// The tool definitions sent to the model.
pub fn definitions() -> Vec<Value> {
    vec![
        json!({"type": "function", "function": {
            "name": "execute_bash",
            "description": "Execute a bash command in a persistent shell session in the workspace.\n* One command at a time; chain with && or ; when needed. The working directory, environment variables and activated virtualenvs persist between calls.\n* Long-running commands: run servers in the background with output redirected, e.g. `python3 app.py > server.log 2>&1 &`.\n* If a command returns exit code -1 it is still running: send an empty command to see more output, send text with is_input=true to answer a prompt, or send C-c (is_input=true) to interrupt it.\n* Use `timeout` (seconds) for commands that may take long; the command is killed when it expires.\n* Avoid commands that produce huge output; pipe through head/tail or grep.",
            "parameters": {"type": "object", "properties": {
                "command": {"type": "string", "description": "The bash command to run. Empty to see more output of the running command; `C-c`, `C-d` or `C-z` (with is_input=true) to send that key."},
                "is_input": {"type": "string", "enum": ["true", "false"], "description": "If \"true\", the command is sent as input to the running process instead of being run."},
                "timeout": {"type": "number", "description": "Optional hard timeout in seconds; the command and everything it started are killed when it expires."},
                "security_risk": risk_param(),
            }, "required": ["command", "security_risk"]},
        }}),
        json!({"type": "function", "function": {
            "name": "str_replace_editor",
            "description": "View, create and edit files.\n* `view` shows a file with line numbers (like `cat -n`) or lists a directory two levels deep.\n* `create` writes a new file (it refuses to overwrite one).\n* `str_replace` replaces `old_str` by `new_str`; `old_str` must match exactly one place in the file, including whitespace: include enough context to make it unique.\n* `insert` inserts `new_str` after line `insert_line` (0 = at the top).\n* `undo_edit` reverts the last edit of the file.\nPaths are absolute, or relative to the workspace.",
            "parameters": {"type": "object", "properties": {
                "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "undo_edit"], "description": "The command to run."},
                "path": {"type": "string", "description": "Absolute path of the file or directory, e.g. /workspace/app.py."},
                "file_text": {"type": "string", "description": "Content of the file to create (for `create`)."},
                "old_str": {"type": "string", "description": "The exact text to replace (for `str_replace`)."},
                "new_str": {"type": "string", "description": "The new text (for `str_replace` and `insert`)."},
                "insert_line": {"type": "integer", "description": "Insert after this line (for `insert`)."},
                "view_range": {"type": "array", "items": {"type": "integer"}, "description": "Optional [start, end] lines for `view` of a file (1-based, end -1 = to the end)."},
                "security_risk": risk_param(),
            }, "required": ["command", "path", "security_risk"]},
        }}),
        json!({"type": "function", "function": {
            "name": "fetch",
            "description": "Fetch a web page (http or https) and return it as markdown text. Use it to read documentation or check a local server.",
            "parameters": {"type": "object", "properties": {
                "url": {"type": "string", "description": "The URL to fetch."},
                "security_risk": risk_param(),
            }, "required": ["url"]},
        }}),
        json!({"type": "function", "function": {
            "name": "think",
            "description": "Think something through without acting: plan, weigh options, or reason about a bug. The thought is logged; nothing changes.",
            "parameters": {"type": "object", "properties": {
                "thought": {"type": "string", "description": "The thought."},
            }, "required": ["thought"]},
        }}),
        json!({"type": "function", "function": {
            "name": "finish",
            "description": "Finish the task: call it when the work is done and verified, or when you cannot go on. Summarize what you did and what the user should know.",
            "parameters": {"type": "object", "properties": {
                "message": {"type": "string", "description": "The final message to the user."},
            }, "required": ["message"]},
        }}),
        json!({"type": "function", "function": {
            "name": "task_tracker",
            "description": "Plan and track multi-step work. `plan` replaces the task list; `view` shows it. Keep exactly one task in_progress while working, and mark tasks done as soon as they are.",
            "parameters": {"type": "object", "properties": {
                "command": {"type": "string", "enum": ["view", "plan"]},
                "task_list": {"type": "array", "items": {"type": "object", "properties": {
                    "id": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "string", "enum": ["todo", "in_progress", "done"]},
                    "notes": {"type": "string"},
                }, "required": ["id", "title", "status"]}},
            }, "required": ["command"]},
        }}),
    ]
}

/// The names of the built-in tools.
pub fn names(definitions: &[Value]) -> Vec<String> {
    definitions
        .iter()
        .filter_map(|d| d.pointer("/function/name").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// A call of the MCP tool `name` (its server checks the arguments).
pub fn mcp_action(name: &str, arguments: &str) -> Result<PlannedAction, ToolError> {
    let parsed: Value = if arguments.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(arguments).map_err(|e| {
            ToolError::InvalidArguments(name.into(), format!("arguments are not valid JSON ({e})"))
        })?
    };
    let Value::Object(arguments) = parsed else {
        return Err(ToolError::InvalidArguments(
            name.into(),
            "arguments must be a JSON object".into(),
        ));
    };
    Ok(PlannedAction {
        action: Action::CallToolMcp(McpArgs {
            name: name.to_string(),
            arguments,
            thought: String::new(),
            security_risk: -1,
        }),
        timeout: None,
    })
}

/// The `execute_ipython_cell` tool, offered when a kernel can start here.
pub fn ipython_definition() -> Value {
    json!({"type": "function", "function": {
        "name": "execute_ipython_cell",
        "description": "Run a cell of Python code in an IPython environment (a persistent kernel in the workspace).\n* Define variables and import packages before using them; they persist between cells.\n* Variables defined here are not available in the terminal (execute_bash), and the other way round.\n* Magic commands such as %pip work. Images (for example matplotlib figures) are shown to the user.\n* A cell that prints nothing for a while, or runs past `timeout` seconds, is interrupted (KeyboardInterrupt).",
        "parameters": {"type": "object", "properties": {
            "code": {"type": "string", "description": "The Python code to execute. Supports magic commands like %pip."},
            "timeout": {"type": "number", "description": "Optional hard timeout in seconds; the cell is interrupted when it expires (without it, it is also interrupted after a while without output)."},
            "security_risk": risk_param(),
        }, "required": ["code", "security_risk"]},
    }})
}

/// The optional `timeout` argument (seconds; a number or a numeric string, positive).
fn timeout(args: &Map<String, Value>, tool: &str) -> Result<Option<f64>, ToolError> {
    match args.get("timeout") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .filter(|t| t.is_finite() && *t > 0.0)
            .map(Some)
            .ok_or_else(|| {
                ToolError::InvalidArguments(
                    tool.into(),
                    format!("`timeout` must be a positive number, got {v}"),
                )
            }),
    }
}

/// The `security_risk` argument as the int OpenHands stores (-1 unknown … 2 high).
pub(super) fn risk(args: &Map<String, Value>) -> i64 {
    match args
        .get("security_risk")
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        Some("LOW") => 0,
        Some("MEDIUM") => 1,
        Some("HIGH") => 2,
        _ => -1,
    }
}

pub(super) fn string(
    args: &Map<String, Value>,
    key: &str,
    tool: &str,
) -> Result<String, ToolError> {
    match args.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(ToolError::InvalidArguments(
            tool.into(),
            format!("`{key}` must be a string, got {other}"),
        )),
        None => Err(ToolError::InvalidArguments(
            tool.into(),
            format!("missing required argument `{key}`"),
        )),
    }
}

fn opt_string(
    args: &Map<String, Value>,
    key: &str,
    tool: &str,
) -> Result<Option<String>, ToolError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => string(args, key, tool).map(Some),
    }
}

pub(super) fn check_keys(
    args: &Map<String, Value>,
    allowed: &[&str],
    tool: &str,
) -> Result<(), ToolError> {
    match args.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ToolError::InvalidArguments(
            tool.into(),
            format!("unexpected argument `{k}`"),
        )),
        None => Ok(()),
    }
}

/// Turns one tool call into the action it stands for.
pub fn to_action(name: &str, arguments: &str) -> Result<PlannedAction, ToolError> {
    let parsed: Value = if arguments.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(arguments).map_err(|e| {
            ToolError::InvalidArguments(name.into(), format!("arguments are not valid JSON ({e})"))
        })?
    };
    let Value::Object(args) = parsed else {
        return Err(ToolError::InvalidArguments(
            name.into(),
            "arguments must be a JSON object".into(),
        ));
    };
    let plain = |action| {
        Ok(PlannedAction {
            action,
            timeout: None,
        })
    };
    match name {
        "execute_bash" => {
            check_keys(
                &args,
                &["command", "is_input", "timeout", "security_risk"],
                name,
            )?;
            let command = string(&args, "command", name)?;
            let is_input = match args.get("is_input") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
                Some(other) => {
                    return Err(ToolError::InvalidArguments(
                        name.into(),
                        format!("`is_input` must be \"true\" or \"false\", got {other}"),
                    ))
                }
            };
            let timeout = timeout(&args, name)?;
            Ok(PlannedAction {
                action: Action::Run(CmdRunArgs {
                    command,
                    is_input,
                    thought: String::new(),
                    blocking: timeout.is_some(),
                    is_static: false,
                    cwd: None,
                    hidden: false,
                    confirmation_state: ConfirmationState::Confirmed,
                    security_risk: risk(&args),
                }),
                timeout,
            })
        }
        "str_replace_editor" => {
            check_keys(
                &args,
                &[
                    "command",
                    "path",
                    "file_text",
                    "old_str",
                    "new_str",
                    "insert_line",
                    "view_range",
                    "security_risk",
                ],
                name,
            )?;
            let command = string(&args, "command", name)?;
            let path = string(&args, "path", name)?;
            let view_range = match args.get("view_range") {
                None | Some(Value::Null) => None,
                Some(Value::Array(a)) if a.len() == 2 && a.iter().all(Value::is_i64) => {
                    Some(a.iter().filter_map(Value::as_i64).collect())
                }
                Some(other) => {
                    return Err(ToolError::InvalidArguments(
                        name.into(),
                        format!("`view_range` must be [start, end], got {other}"),
                    ))
                }
            };
            let insert_line = match args.get("insert_line") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_i64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                        .ok_or_else(|| {
                            ToolError::InvalidArguments(
                                name.into(),
                                format!("`insert_line` must be an integer, got {v}"),
                            )
                        })?,
                ),
            };
            if command == "view" {
                return plain(Action::Read(FileReadArgs {
                    path,
                    start: 0,
                    end: -1,
                    thought: String::new(),
                    security_risk: risk(&args),
                    impl_source: "oh_aci".into(),
                    view_range,
                }));
            }
            if !matches!(
                command.as_str(),
                "create" | "str_replace" | "insert" | "undo_edit"
            ) {
                return Err(ToolError::InvalidArguments(name.into(), format!("unknown command {command:?}; use view, create, str_replace, insert or undo_edit")));
            }
            plain(Action::Edit(FileEditArgs {
                path,
                command,
                file_text: opt_string(&args, "file_text", name)?,
                old_str: opt_string(&args, "old_str", name)?,
                new_str: opt_string(&args, "new_str", name)?,
                insert_line,
                content: String::new(),
                start: 1,
                end: -1,
                thought: String::new(),
                security_risk: risk(&args),
                impl_source: "oh_aci".into(),
            }))
        }
        "fetch" | "web_read" => {
            check_keys(
                &args,
                &["url", "security_risk", "max_length", "start_index", "raw"],
                name,
            )?;
            plain(Action::Browse(BrowseUrlArgs {
                url: string(&args, "url", name)?,
                thought: String::new(),
                security_risk: risk(&args),
                return_axtree: false,
            }))
        }
        "execute_ipython_cell" => {
            check_keys(&args, &["code", "timeout", "security_risk"], name)?;
            let timeout = timeout(&args, name)?;
            Ok(PlannedAction {
                action: Action::RunIpython(IPythonRunCellArgs {
                    code: string(&args, "code", name)?,
                    thought: String::new(),
                    include_extra: true,
                    confirmation_state: ConfirmationState::Confirmed,
                    security_risk: risk(&args),
                    kernel_init_code: String::new(),
                }),
                timeout,
            })
        }
        "think" => plain(Action::Think(ThinkArgs {
            thought: string(&args, "thought", name)?,
        })),
        "finish" => plain(Action::Finish(FinishArgs {
            final_thought: opt_string(&args, "message", name)?.unwrap_or_default(),
            outputs: Map::new(),
            thought: String::new(),
        })),
        "task_tracker" => {
            let command = opt_string(&args, "command", name)?.unwrap_or_else(|| "view".into());
            let task_list: Vec<TaskItem> = match args.get("task_list") {
                None | Some(Value::Null) => Vec::new(),
                Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                    ToolError::InvalidArguments(name.into(), format!("`task_list`: {e}"))
                })?,
            };
            if command == "plan" && args.get("task_list").is_none() {
                return Err(ToolError::InvalidArguments(
                    name.into(),
                    "`task_list` is required for plan".into(),
                ));
            }
            plain(Action::TaskTracking(TaskTrackingArgs {
                command,
                task_list,
                thought: String::new(),
            }))
        }
        "browser" => plain(super::browser_tool::to_action(&args)?),
        other => Err(ToolError::Unknown(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_calls_become_actions() {
        let p = to_action(
            "execute_bash",
            r#"{"command":"ls","is_input":"false","timeout":30,"security_risk":"LOW"}"#,
        )
        .unwrap();
        assert_eq!(p.timeout, Some(30.0));
        assert!(
            matches!(p.action, Action::Run(ref a) if a.command == "ls" && a.blocking && a.security_risk == 0)
        );
        let p = to_action(
            "str_replace_editor",
            r#"{"command":"view","path":"/w/a.py","view_range":[1,5]}"#,
        )
        .unwrap();
        assert!(
            matches!(p.action, Action::Read(ref a) if a.view_range == Some(vec![1, 5]) && a.impl_source == "oh_aci")
        );
        let p = to_action("finish", r#"{"message":"done"}"#).unwrap();
        assert!(matches!(p.action, Action::Finish(ref a) if a.final_thought == "done"));
        assert!(matches!(
            to_action("fetch", r#"{"url":"http://x"}"#).unwrap().action,
            Action::Browse(_)
        ));
    }

    #[test]
    fn python_cells_become_run_ipython_actions() {
        let p = to_action(
            "execute_ipython_cell",
            r#"{"code":"print(1)","timeout":"5","security_risk":"MEDIUM"}"#,
        )
        .unwrap();
        assert_eq!(p.timeout, Some(5.0));
        assert!(
            matches!(p.action, Action::RunIpython(ref a) if a.code == "print(1)" && a.security_risk == 1 && a.include_extra)
        );
        assert!(matches!(
            to_action("execute_ipython_cell", r#"{"code":"1","timeout":-3}"#),
            Err(ToolError::InvalidArguments(..))
        ));
        assert!(matches!(
            to_action("execute_ipython_cell", r#"{"code":1}"#),
            Err(ToolError::InvalidArguments(..))
        ));
        assert_eq!(
            ipython_definition()["function"]["name"],
            "execute_ipython_cell"
        );
    }

    #[test]
    fn bad_tool_calls_are_errors_for_the_model() {
        assert_eq!(
            to_action("fly", "{}"),
            Err(ToolError::Unknown("fly".into()))
        );
        assert!(matches!(
            to_action("execute_bash", "{"),
            Err(ToolError::InvalidArguments(..))
        ));
        assert!(
            matches!(to_action("execute_bash", "{}"), Err(ToolError::InvalidArguments(_, m)) if m.contains("command"))
        );
        assert!(
            matches!(to_action("str_replace_editor", r#"{"command":"view","path":"a","bogus":1}"#), Err(ToolError::InvalidArguments(_, m)) if m.contains("bogus"))
        );
        assert!(matches!(
            to_action("think", "[1]"),
            Err(ToolError::InvalidArguments(..))
        ));
    }
}
