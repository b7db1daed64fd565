//! `/api/options/*`: what the UI may choose from.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::server::AppState;

/// Well-known models offered in the UI; the configured one is always included.
const MODELS: &[&str] = &[
    "anthropic/claude-opus-4-20250514",
    "anthropic/claude-sonnet-4-20250514",
    "anthropic/claude-3-7-sonnet-20250219",
    "anthropic/claude-3-5-haiku-20241022",
    "openai/gpt-4o",
    "openai/gpt-4o-mini",
    "openai/gpt-4.1",
    "openai/gpt-4.1-mini",
    "openai/o3",
    "openai/o4-mini",
    "ollama/llama3.1",
    "ollama/qwen2.5-coder",
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/options/config", get(config))
        .route("/api/options/models", get(models))
        .route(
            "/api/options/agents",
            get(|| async { Json(["CodeActAgent"]) }),
        )
        .route(
            "/api/options/security-analyzers",
            get(|| async { Json(["both", "llm", "rules"]) }),
        )
}

/// The body of `GET /api/options/config`: upstream's web client config for OSS mode.
#[derive(Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
struct WebClientConfig {
    app_mode: &'static str,
    github_client_id: &'static str,
    posthog_client_key: &'static str,
    /// Git providers with an integration: none.
    providers_configured: Vec<String>,
    feature_flags: FeatureFlags,
    /// This server's version (ours; upstream's UI ignores it).
    version: &'static str,
    /// What this build can do (ours): `crate::build_info::FEATURES`.
    features: &'static [&'static str],
    /// Ours: the sandbox's mode and what this kernel enforces of it.
    sandbox: crate::runtime::sandbox::SandboxInfo,
}

/// Upstream's feature flags, all off.
#[derive(Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
struct FeatureFlags {
    enable_billing: bool,
    hide_llm_settings: bool,
    enable_jira: bool,
    enable_jira_dc: bool,
    enable_linear: bool,
}

async fn config(State(state): State<AppState>) -> Json<WebClientConfig> {
    Json(WebClientConfig {
        app_mode: "oss",
        github_client_id: "",
        posthog_client_key: "",
        providers_configured: Vec::new(),
        feature_flags: FeatureFlags {
            enable_billing: false,
            hide_llm_settings: false,
            enable_jira: false,
            enable_jira_dc: false,
            enable_linear: false,
        },
        version: crate::build_info::VERSION,
        features: crate::build_info::FEATURES,
        sandbox: crate::runtime::sandbox::SandboxInfo::of(&state.config),
    })
}

async fn models(State(state): State<AppState>) -> Json<Vec<String>> {
    let mut models: Vec<String> = MODELS.iter().map(|m| m.to_string()).collect();
    if let Some(m) = &state.config.file.llm.model {
        models.push(m.clone());
    }
    models.sort();
    models.dedup();
    Json(models)
}
