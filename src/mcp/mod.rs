//! MCP servers as agent tools: the `[mcp]` configuration, one client per configured
//! server and conversation (rmcp), and the `call_tool_mcp` action → `mcp` observation.

pub mod config;
mod server;
mod sse;
mod tools;

pub use config::{McpConfig, McpConfigError};
pub use server::McpError;
pub use tools::{McpTools, ProcessContext, SERVER_FAILED, TOOL_REFUSED};
