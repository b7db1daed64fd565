//! One MCP server of a conversation: how it is reached, its live client (rmcp), and the
//! restart of a server that stopped.

use rmcp::model::{CallToolRequestParams, CallToolResult, Tool};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;
use thiserror::Error;
use tokio::io::AsyncReadExt;
use tokio::sync::Mutex;

/// Why a server could not start or a call did not get an answer.
#[derive(Debug, Error)]
pub enum McpError {
    #[error("cannot run `{command}`: {reason}")]
    Spawn { command: String, reason: String },
    #[error("{0}")]
    Connect(String),
    #[error("no answer within {0} seconds")]
    Timeout(u64),
    #[error("the server stopped ({0})")]
    Stopped(String),
    #[error("{0}")]
    Tool(String),
}

/// How a server is reached.
#[derive(Clone)]
pub enum Endpoint {
    /// A child process speaking MCP on stdin and stdout.
    Stdio {
        command: String,
        args: Vec<String>,
        /// The whole environment of the process.
        env: Vec<(String, String)>,
        cwd: PathBuf,
    },
    /// Streamable HTTP.
    Http {
        url: String,
        api_key: Option<String>,
    },
    /// The older HTTP+SSE transport.
    Sse {
        url: String,
        api_key: Option<String>,
    },
}

type Client = RunningService<RoleClient, ()>;

/// What a stdio server last wrote on stderr (its last 2000 characters), for errors.
#[derive(Clone, Default)]
struct StderrTail(Arc<StdMutex<String>>);

impl StderrTail {
    const KEEP: usize = 2000;

    fn push(&self, text: &str) {
        if let Ok(mut t) = self.0.lock() {
            t.push_str(text);
            let extra = t.chars().count().saturating_sub(Self::KEEP);
            if extra > 0 {
                let cut = t.char_indices().nth(extra).map_or(t.len(), |(i, _)| i);
                t.drain(..cut);
            }
        }
    }

    fn take(&self) -> String {
        self.0
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
    }
}

/// One configured MCP server and its client, if connected.
pub struct McpServer {
    /// The name in messages: the stdio server's name, or the URL's host and path.
    pub name: String,
    /// `stdio`, `shttp` or `sse`.
    pub transport: &'static str,
    endpoint: Endpoint,
    /// How long a call may take.
    pub call_timeout: Duration,
    client: Mutex<Option<Client>>,
    stderr: StderrTail,
}

/// Installs the TLS provider rmcp's HTTP client uses (once per process).
fn install_tls_provider() {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl McpServer {
    /// A server that is not connected yet.
    pub fn new(
        name: String,
        transport: &'static str,
        endpoint: Endpoint,
        call_timeout: Duration,
    ) -> Self {
        McpServer {
            name,
            transport,
            endpoint,
            call_timeout,
            client: Mutex::new(None),
            stderr: StderrTail::default(),
        }
    }

    async fn connect(&self) -> Result<Client, McpError> {
        match &self.endpoint {
            Endpoint::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args)
                    .env_clear()
                    .envs(env.iter().cloned())
                    .current_dir(cwd)
                    .kill_on_drop(true);
                let (child, stderr) = TokioChildProcess::builder(cmd)
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|e| McpError::Spawn {
                        command: command.clone(),
                        reason: e.to_string(),
                    })?;
                if let Some(mut stderr) = stderr {
                    let tail = self.stderr.clone();
                    tokio::spawn(async move {
                        let mut buf = [0u8; 4096];
                        while let Ok(n) = stderr.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            tail.push(&String::from_utf8_lossy(&buf[..n]));
                        }
                    });
                }
                ().serve(child)
                    .await
                    .map_err(|e| self.connect_error(e.to_string()))
            }
            Endpoint::Http { url, api_key } => {
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
                if let Some(key) = api_key {
                    config = config.auth_header(key.clone());
                }
                install_tls_provider();
                let transport = StreamableHttpClientTransport::from_config(config);
                ().serve(transport)
                    .await
                    .map_err(|e| McpError::Connect(e.to_string()))
            }
            Endpoint::Sse { url, api_key } => {
                let transport = super::sse::connect(url, api_key.as_deref()).await?;
                ().serve(transport)
                    .await
                    .map_err(|e| McpError::Connect(e.to_string()))
            }
        }
    }

    fn connect_error(&self, why: String) -> McpError {
        let stderr = self.stderr.take();
        let stderr = stderr.trim();
        if stderr.is_empty() {
            McpError::Connect(why)
        } else {
            McpError::Connect(format!("{why}; its stderr ends with:\n{stderr}"))
        }
    }

    /// Connects and lists the server's tools, within `timeout`.
    pub async fn start(&self, timeout: Duration) -> Result<Vec<Tool>, McpError> {
        let work = async {
            let client = self.connect().await?;
            let tools = client
                .list_all_tools()
                .await
                .map_err(|e| self.connect_error(format!("listing its tools failed: {e}")))?;
            *self.client.lock().await = Some(client);
            Ok(tools)
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(self.connect_error(format!(
                "it did not start and list its tools within {} seconds",
                timeout.as_secs()
            ))),
        }
    }

    /// Calls tool `name`; a server that stopped is started again first.
    pub async fn call(
        &self,
        name: &str,
        arguments: Map<String, Value>,
    ) -> Result<CallToolResult, McpError> {
        let mut slot = self.client.lock().await;
        let restart = slot.as_ref().is_none_or(|c| c.is_closed());
        if restart {
            let fresh = tokio::time::timeout(self.call_timeout, self.connect())
                .await
                .map_err(|_| McpError::Timeout(self.call_timeout.as_secs()))??;
            tracing::info!(server = %self.name, "MCP server restarted");
            *slot = Some(fresh);
        }
        let Some(client) = slot.as_ref() else {
            return Err(McpError::Stopped("not connected".into()));
        };
        let params = CallToolRequestParams::new(name.to_string()).with_arguments(arguments);
        match tokio::time::timeout(self.call_timeout, client.call_tool(params)).await {
            Err(_) => Err(McpError::Timeout(self.call_timeout.as_secs())),
            Ok(Ok(result)) => Ok(result),
            Ok(Err(rmcp::ServiceError::McpError(e))) => Err(McpError::Tool(e.message.to_string())),
            Ok(Err(e)) => {
                // The connection is gone: the next call starts the server again.
                if let Some(mut dead) = slot.take() {
                    let _ = dead.close_with_timeout(Duration::from_secs(2)).await;
                }
                let stderr = self.stderr.take();
                let mut why = e.to_string();
                if !stderr.trim().is_empty() {
                    why.push_str(&format!("; its stderr ends with:\n{}", stderr.trim()));
                }
                Err(McpError::Stopped(why))
            }
        }
    }

    /// Stops the client (and a stdio server's process).
    pub async fn close(&self) {
        if let Some(mut client) = self.client.lock().await.take() {
            let _ = client.close_with_timeout(Duration::from_secs(2)).await;
        }
    }
}
