//! openhands-server: a wire-compatible Rust replacement for the OpenHands agent server.

pub mod agent;
pub mod build_info;
pub mod cluster;
pub mod config;
pub mod conversation;
pub mod events;
pub mod llm;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod provider_tokens;
pub mod runtime;
pub mod security;
pub mod server;
pub mod settings;
pub mod store;
