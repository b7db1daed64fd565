//! `/api/secrets`: the user's named secrets, given to the agent's shell as environment
//! variables. Values are write-only: no route ever returns one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::responses::Message;
use crate::provider_tokens;
use crate::server::error::{ApiError, JsonBody};
use crate::server::AppState;
use crate::settings::{self, CustomSecret, SecretError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/secrets", get(list).post(create))
        .route("/api/secrets/{name}", put(update).delete(delete))
        .route("/api/add-git-providers", post(add_git_providers))
        .route("/api/unset-provider-tokens", post(unset_provider_tokens))
}

#[derive(Serialize)]
struct SecretInfo {
    name: String,
    description: String,
}

#[derive(Serialize)]
struct SecretList {
    custom_secrets: Vec<SecretInfo>,
}

async fn list(State(state): State<AppState>) -> Result<Json<SecretList>, ApiError> {
    let stored = state.manager.store().settings().await?;
    let custom_secrets = settings::custom_secrets(stored.as_ref())
        .into_iter()
        .map(|s| SecretInfo {
            name: s.name,
            description: s.description,
        })
        .collect();
    Ok(Json(SecretList { custom_secrets }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSecret {
    name: String,
    value: String,
    #[serde(default)]
    description: Option<String>,
}

fn secret_error(e: SecretError) -> ApiError {
    let status = match e {
        SecretError::NotFound(_) => StatusCode::NOT_FOUND,
        SecretError::BadName | SecretError::TooLarge | SecretError::Exists(_) => {
            StatusCode::BAD_REQUEST
        }
    };
    ApiError::message(status, e.to_string())
}

/// Reads, changes and writes the stored settings under the settings lock.
async fn change(
    state: &AppState,
    f: impl FnOnce(Option<Value>) -> Result<Value, SecretError>,
) -> Result<(), ApiError> {
    let _guard = state.settings_lock.lock().await;
    let store = state.manager.store();
    let updated = f(store.settings().await?).map_err(secret_error)?;
    store.put_settings(updated).await?;
    Ok(())
}

async fn create(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CreateSecret>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let secret = CustomSecret {
        name: req.name,
        value: req.value,
        description: req.description.unwrap_or_default(),
    };
    change(&state, |stored| settings::add_secret(stored, secret)).await?;
    Ok((
        StatusCode::CREATED,
        Json(Message {
            message: "Secret created successfully",
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateSecret {
    name: String,
    #[serde(default)]
    description: Option<String>,
}

async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<UpdateSecret>,
) -> Result<Json<Message>, ApiError> {
    change(&state, |stored| {
        settings::update_secret(stored, &name, &req.name, req.description)
    })
    .await?;
    Ok(Json(Message {
        message: "Secret updated successfully",
    }))
}

async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Message>, ApiError> {
    change(&state, |stored| settings::delete_secret(stored, &name)).await?;
    Ok(Json(Message {
        message: "Secret deleted successfully",
    }))
}

#[derive(Deserialize)]
struct PostProviders {
    #[serde(default)]
    provider_tokens: Value,
}

/// Stores git provider tokens (write-only): used for https clones of their host and given
/// to the agent's shell. Unlike upstream, the token is not checked against the provider's
/// API here (a local server may have no route to it); a wrong one fails the clone with the
/// provider's own message.
async fn add_git_providers(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<PostProviders>,
) -> Result<Json<Message>, ApiError> {
    let posted = match req.provider_tokens {
        Value::Null => Value::Object(Default::default()),
        v => v,
    };
    let _guard = state.settings_lock.lock().await;
    let store = state.manager.store();
    let updated = provider_tokens::replace(store.settings().await?, &posted)
        .map_err(|e| ApiError::error(StatusCode::BAD_REQUEST, e.to_string()))?;
    store.put_settings(updated).await?;
    Ok(Json(Message {
        message: "Git providers stored",
    }))
}

/// Forgets every git provider token (the UI's "logout").
async fn unset_provider_tokens(State(state): State<AppState>) -> Result<Json<Message>, ApiError> {
    let _guard = state.settings_lock.lock().await;
    let store = state.manager.store();
    let updated = provider_tokens::remove_all(store.settings().await?);
    store.put_settings(updated).await?;
    Ok(Json(Message {
        message: "Unset Git provider tokens",
    }))
}
