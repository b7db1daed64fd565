//! A conversation's MCP servers as agent tools ([`McpTools`]): started with the
//! conversation, offered to the model under their own names, called for `call_tool_mcp`
//! actions, stopped with the conversation.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

use super::config::{redact, McpConfig};
use super::server::{Endpoint, McpServer};
use crate::events::{McpArgs, McpExtras, Observation, ObservationKind};

/// At most this many MCP tools are offered (OpenAI's limit on tools is 128, and the
/// built-in ones count too).
const MAX_TOOLS: usize = 100;
/// A tool whose schema is longer than this (as JSON) is not offered.
const MAX_SCHEMA_BYTES: usize = 32 * 1024;
/// A tool description is cut to this many characters.
const MAX_DESCRIPTION_CHARS: usize = 4096;
/// A result longer than this (characters) keeps its head and tail, as command output.
const MAX_RESULT_CHARS: usize = 1024 * 1024;

/// The error ids of the observations about MCP servers.
pub const SERVER_FAILED: &str = "MCP$SERVER_FAILED";
pub const TOOL_REFUSED: &str = "MCP$TOOL_REFUSED";

#[derive(Default)]
struct State {
    servers: Vec<Arc<McpServer>>,
    /// Tool name → the server that has it.
    routes: HashMap<String, Arc<McpServer>>,
    /// The tool definitions the model gets, in the servers' order.
    definitions: Vec<Value>,
    secrets: Vec<String>,
}

/// The MCP clients of one conversation.
#[derive(Default)]
pub struct McpTools {
    state: RwLock<State>,
    closed: CancellationToken,
}

/// Where and with what environment stdio servers start.
pub struct ProcessContext<'a> {
    pub env: Vec<(String, String)>,
    pub cwd: &'a Path,
}

/// A server's name in messages: stdio servers by name, remote ones by host and path
/// (never the query, which may hold a key).
fn remote_name(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("{}{}", u.host_str().unwrap_or(""), u.path())
            .trim_end_matches('/')
            .to_string(),
        Err(_) => "server".into(),
    }
}

fn cut(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
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

fn valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl McpTools {
    /// No servers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts every server of `config` (at once, each within its start timeout) and
    /// lists their tools; tools named like one of `reserved` (the built-in tools) or
    /// an earlier server's are refused. Returns one observation per server (connected
    /// with N tools, or failed with the error) and one per refused tool, to be stored.
    pub async fn start(
        &self,
        config: McpConfig,
        reserved: &[String],
        process: ProcessContext<'_>,
    ) -> Vec<Observation> {
        let secrets = config.secrets();
        let call_timeout = Duration::from_secs(config.call_timeout);
        let mut servers = Vec::new();
        for s in &config.stdio_servers {
            let mut env = process.env.clone();
            env.extend(s.env.iter().map(|(k, v)| (k.clone(), v.0.clone())));
            servers.push(McpServer::new(
                s.name.clone(),
                "stdio",
                Endpoint::Stdio {
                    command: s.command.trim().to_string(),
                    args: s.args.clone(),
                    env,
                    cwd: process.cwd.to_path_buf(),
                },
                call_timeout,
            ));
        }
        for (list, transport) in [
            (&config.shttp_servers, "shttp"),
            (&config.sse_servers, "sse"),
        ] {
            for s in list {
                let url = s.url.trim().to_string();
                let api_key = s.api_key.as_ref().map(|k| k.0.clone());
                let endpoint = if transport == "sse" {
                    Endpoint::Sse {
                        url: url.clone(),
                        api_key,
                    }
                } else {
                    Endpoint::Http {
                        url: url.clone(),
                        api_key,
                    }
                };
                let timeout = s.timeout.map_or(call_timeout, Duration::from_secs);
                servers.push(McpServer::new(
                    remote_name(&url),
                    transport,
                    endpoint,
                    timeout,
                ));
            }
        }
        let servers: Vec<Arc<McpServer>> = servers.into_iter().map(Arc::new).collect();
        let start_timeout = Duration::from_secs(config.start_timeout);
        let started = futures::future::join_all(servers.iter().map(|s| {
            let s = s.clone();
            async move {
                let began = std::time::Instant::now();
                let r = s.start(start_timeout).await;
                (r, began.elapsed())
            }
        }));
        let results = tokio::select! {
            r = started => r,
            _ = self.closed.cancelled() => {
                for s in &servers {
                    s.close().await;
                }
                return Vec::new();
            }
        };
        let mut events = Vec::new();
        let mut state = State {
            secrets: secrets.clone(),
            ..State::default()
        };
        for (server, (result, took)) in servers.iter().zip(results) {
            let label = format!("MCP server {:?} ({})", server.name, server.transport);
            let tools = match result {
                Ok(tools) => tools,
                Err(e) => {
                    let text = redact(&format!("{label} failed: {e}"), &secrets);
                    tracing::warn!("{text}");
                    events.push(Observation::error(text, SERVER_FAILED));
                    continue;
                }
            };
            let mut offered = Vec::new();
            for tool in tools {
                let name = tool.name.to_string();
                let refuse = if reserved.contains(&name) {
                    Some("a built-in tool has that name".to_string())
                } else if state.routes.contains_key(&name) {
                    Some("an earlier MCP server has a tool of that name".to_string())
                } else if !valid_tool_name(&name) {
                    Some("tool names are 1 to 64 letters, digits, `_` and `-`".to_string())
                } else if state.routes.len() >= MAX_TOOLS {
                    Some(format!("at most {MAX_TOOLS} MCP tools are offered"))
                } else {
                    let schema = Value::Object((*tool.input_schema).clone());
                    let size = schema.to_string().len();
                    if size > MAX_SCHEMA_BYTES {
                        Some(format!(
                            "its input schema is {size} bytes (more than {MAX_SCHEMA_BYTES})"
                        ))
                    } else {
                        let description: String = tool
                            .description
                            .as_deref()
                            .unwrap_or("")
                            .chars()
                            .take(MAX_DESCRIPTION_CHARS)
                            .collect();
                        state
                            .definitions
                            .push(json!({"type": "function", "function": {
                                "name": name,
                                "description": description,
                                "parameters": schema,
                            }}));
                        state.routes.insert(name.clone(), server.clone());
                        offered.push(name.clone());
                        None
                    }
                };
                if let Some(why) = refuse {
                    let shown: String = name.chars().take(100).collect();
                    events.push(Observation::error(
                        redact(&format!("MCP tool {shown:?} of server {:?} is not offered to the agent: {why}.", server.name), &secrets),
                        TOOL_REFUSED,
                    ));
                }
            }
            tracing::info!(server = %server.name, tools = offered.len(), ms = took.as_millis() as u64, "MCP server connected");
            events.push(Observation {
                content: format!(
                    "{label} connected with {} tools: {}",
                    offered.len(),
                    offered.join(", ")
                ),
                kind: ObservationKind::Success(Default::default()),
            });
            state.servers.push(server.clone());
        }
        // Servers that failed are kept too: nothing routes to them, and close is cheap.
        for s in &servers {
            if !state.servers.iter().any(|k| Arc::ptr_eq(k, s)) {
                s.close().await;
            }
        }
        *self.state.write().await = state;
        if self.closed.is_cancelled() {
            self.close().await;
        }
        events
    }

    /// The tool definitions for the model (OpenAI function tools).
    pub async fn definitions(&self) -> Vec<Value> {
        self.state.read().await.definitions.clone()
    }

    /// Calls the tool of a `call_tool_mcp` action: an `mcp` observation with the result
    /// as JSON (the server's own errors included, `isError`), or an `error` observation
    /// when there is no such tool, the call times out or the server stopped.
    pub async fn call(&self, args: &McpArgs) -> Observation {
        let (server, secrets) = {
            let state = self.state.read().await;
            (state.routes.get(&args.name).cloned(), state.secrets.clone())
        };
        let Some(server) = server else {
            let state = self.state.read().await;
            let mut names: Vec<&String> = state.routes.keys().collect();
            names.sort();
            let shown: String = args.name.chars().take(100).collect();
            let available = if names.is_empty() {
                "none".to_string()
            } else {
                names
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Observation::error(
                format!("There is no MCP tool named {shown:?}. MCP tools available: {available}."),
                "",
            );
        };
        if self.closed.is_cancelled() {
            return Observation::error(
                "The conversation is closing; the MCP tool was not called.",
                "",
            );
        }
        let began = std::time::Instant::now();
        let result = tokio::select! {
            r = server.call(&args.name, args.arguments.clone()) => r,
            _ = self.closed.cancelled() => {
                return Observation::error("The conversation closed while the MCP tool was running.", "");
            }
        };
        tracing::debug!(tool = %args.name, ms = began.elapsed().as_millis() as u64, "MCP call");
        match result {
            Ok(result) => {
                let text = serde_json::to_string(&result).unwrap_or_else(|e| {
                    json!({"isError": true, "error": format!("unreadable result: {e}"), "content": []}).to_string()
                });
                Observation {
                    content: cut(&text, MAX_RESULT_CHARS),
                    kind: ObservationKind::Mcp(McpExtras {
                        name: args.name.clone(),
                        arguments: args.arguments.clone(),
                    }),
                }
            }
            Err(e) => {
                let mut text = format!(
                    "MCP tool {:?} of server {:?} failed: {e}",
                    args.name, server.name
                );
                if matches!(e, super::server::McpError::Stopped(_)) {
                    text.push_str("\nThe server will be started again for the next call.");
                }
                Observation::error(cut(&redact(&text, &secrets), MAX_RESULT_CHARS), "")
            }
        }
    }

    /// Stops every server (stdio processes end); calls in flight get an error.
    pub async fn close(&self) {
        self.closed.cancel();
        let servers = self.state.read().await.servers.clone();
        futures::future::join_all(servers.iter().map(|s| s.close())).await;
    }
}
