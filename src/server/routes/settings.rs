//! `/api/settings`: server config as defaults, stored overrides on top.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use super::responses::Message;
use crate::server::error::{ApiError, JsonBody};
use crate::server::AppState;
use crate::settings;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/settings", get(get_settings).post(post_settings))
        .route(
            "/api/reset-settings",
            post(|| async {
                ApiError::detail(
                    StatusCode::GONE,
                    "Resetting settings is no longer supported",
                )
            }),
        )
}

/// The user's settings over the server's configuration. With neither saved settings nor
/// an LLM in the configuration, a 404 as upstream: the OpenHands UI then opens its
/// first-run "AI Provider Configuration" dialog.
async fn get_settings(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let stored = state.manager.store().settings().await?;
    if !settings::saved(stored.as_ref()) && !state.config.llm_configured() {
        return Err(ApiError::error(StatusCode::NOT_FOUND, "Settings not found"));
    }
    let effective = settings::effective(&state.config, stored.as_ref());
    Ok(Json(settings::public_view(&effective)))
}

/// Stores any subset of the settings keys (checked by [`settings::update`]).
async fn post_settings(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Message>, ApiError> {
    let _guard = state.settings_lock.lock().await;
    let store = state.manager.store();
    let stored = store.settings().await?;
    let merged = settings::update(&state.config, stored, body).map_err(|e| match e {
        settings::SettingsError::KeyNeedsReentry => {
            ApiError::error(StatusCode::BAD_REQUEST, e.to_string())
        }
        e => ApiError::detail(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    })?;
    store.put_settings(merged).await?;
    Ok(Json(Message {
        message: "Settings stored",
    }))
}
