//! `/api/options/*`: what the UI may choose from.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

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
            get(|| async { Json(json!(["CodeActAgent"])) }),
        )
        .route(
            "/api/options/security-analyzers",
            get(|| async { Json(json!([])) }),
        )
}

async fn config() -> Json<Value> {
    Json(json!({
        "APP_MODE": "oss",
        "GITHUB_CLIENT_ID": "",
        "POSTHOG_CLIENT_KEY": "",
        "PROVIDERS_CONFIGURED": [],
        "FEATURE_FLAGS": {
            "ENABLE_BILLING": false,
            "HIDE_LLM_SETTINGS": false,
            "ENABLE_JIRA": false,
            "ENABLE_JIRA_DC": false,
            "ENABLE_LINEAR": false,
        },
    }))
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
