//! `/api/conversations/{id}/security/{path}`: the security analyzer's own API. The
//! Python server hands these requests to its analyzer; ours answers `GET` with the
//! analyzer's settings and rule set, and a 404 JSON when no analyzer is configured.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::checked_id;
use crate::security::{rules, Analyzer, Risk};
use crate::server::error::ApiError;
use crate::server::AppState;
use crate::settings::{self, UserSettings};

pub fn router() -> Router<AppState> {
    let refuse = || async {
        ApiError::detail(
            StatusCode::METHOD_NOT_ALLOWED,
            "The security analyzer's settings are read-only here: choose the analyzer with security_analyzer in the settings or [security] in config.toml.",
        )
    };
    Router::new().route(
        "/api/conversations/{id}/security/{*path}",
        get(analyzer_settings)
            .post(refuse)
            .put(refuse)
            .delete(refuse),
    )
}

/// The analyzer's settings.
#[derive(Serialize)]
struct AnalyzerSettings {
    /// `llm`, `rules` or `both`.
    analyzer: &'static str,
    confirmation_mode: bool,
    /// What confirmation mode holds for the user's decision.
    held_for_confirmation: &'static str,
    /// The built-in rules (empty for the `llm` analyzer, which does not use them).
    rules: Vec<RuleView>,
}

#[derive(Serialize)]
struct RuleView {
    id: &'static str,
    risk: &'static str,
    description: &'static str,
}

fn risk_name(risk: Risk) -> &'static str {
    match risk {
        Risk::Low => "low",
        Risk::Medium => "medium",
        Risk::High => "high",
    }
}

async fn analyzer_settings(
    State(state): State<AppState>,
    Path((id, _path)): Path<(String, String)>,
) -> Result<Json<AnalyzerSettings>, ApiError> {
    let id = checked_id(&id)?;
    if state.manager.store().conversation(id).await?.is_none() {
        return Err(ApiError::conversation_not_found());
    }
    let stored = state.manager.store().settings().await?;
    let effective = settings::effective(&state.config, stored.as_ref());
    let user = UserSettings::from_map(&effective);
    let configured = Analyzer::configured(state.config.file.security.security_analyzer.as_deref());
    let analyzer = match user.security_analyzer.as_deref() {
        Some(name) => Analyzer::parse(name).unwrap_or(configured),
        None => configured,
    };
    let Some(analyzer) = analyzer else {
        return Err(ApiError::detail(
            StatusCode::NOT_FOUND,
            "Security analyzer not initialized",
        ));
    };
    let rules = match analyzer {
        Analyzer::Llm => Vec::new(),
        _ => rules::all()
            .into_iter()
            .map(|r| RuleView {
                id: r.id,
                risk: risk_name(r.risk),
                description: r.description,
            })
            .collect(),
    };
    Ok(Json(AnalyzerSettings {
        analyzer: analyzer.name(),
        confirmation_mode: user
            .confirmation_mode
            .unwrap_or(state.config.file.security.confirmation_mode),
        held_for_confirmation: "commands and Python cells of high risk",
        rules,
    }))
}
