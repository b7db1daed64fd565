//! `/api/conversations`: create, list, get, rename, delete, start, stop.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::checked_id;
use crate::conversation::NewConversation;
use crate::server::error::{ApiError, ErrorBody, JsonBody, QueryParams};
use crate::server::AppState;
use crate::store::ConversationMetadata;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/conversations", post(create).get(list))
        .route(
            "/api/conversations/{id}",
            get(get_one).patch(rename).delete(delete),
        )
        .route("/api/conversations/{id}/start", post(start))
        .route("/api/conversations/{id}/stop", post(stop))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    repository: Option<String>,
    git_provider: Option<String>,
    selected_branch: Option<String>,
    initial_user_msg: Option<String>,
    image_urls: Option<Vec<String>>,
    #[allow(dead_code)]
    replay_json: Option<String>,
    suggested_task: Option<Value>,
    #[allow(dead_code)]
    create_microagent: Option<Value>,
    #[allow(dead_code)]
    conversation_instructions: Option<String>,
    #[allow(dead_code)]
    mcp_config: Option<Value>,
    conversation_id: Option<String>,
}

/// Whether a conversation is open.
#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum ConversationStatus {
    Running,
    Stopped,
}

/// Upstream's `ConversationResponse`: what creating, starting and stopping answer.
#[derive(Serialize)]
struct ConversationResponse {
    /// Always `"ok"` (failures are errors).
    status: &'static str,
    conversation_id: String,
    message: Option<&'static str>,
    conversation_status: ConversationStatus,
}

impl ConversationResponse {
    fn ok(
        conversation_id: &str,
        message: Option<&'static str>,
        conversation_status: ConversationStatus,
    ) -> Self {
        ConversationResponse {
            status: "ok",
            conversation_id: conversation_id.to_string(),
            message,
            conversation_status,
        }
    }
}

async fn create(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CreateRequest>,
) -> Result<Json<ConversationResponse>, ApiError> {
    let trigger = if req.suggested_task.is_some() {
        "suggested_task"
    } else {
        "gui"
    };
    let new = NewConversation {
        initial_user_msg: req.initial_user_msg,
        image_urls: req.image_urls,
        selected_repository: req.repository,
        selected_branch: req.selected_branch,
        git_provider: req.git_provider,
        trigger: Some(trigger.into()),
    };
    let id = match req.conversation_id {
        Some(id) if std::env::var("ALLOW_SET_CONVERSATION_ID").is_ok_and(|v| v == "1") => {
            let id = checked_id(&id)?.to_string();
            if state.manager.store().conversation(&id).await?.is_some() {
                return Err(ApiError::detail(
                    axum::http::StatusCode::CONFLICT,
                    "Conversation already exists",
                ));
            }
            state.manager.create_with_id(&id, new).await?;
            id
        }
        Some(_) => {
            return Err(ApiError::detail(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "conversation_id may not be set",
            ))
        }
        None => state.manager.create(new).await?,
    };
    Ok(Json(ConversationResponse::ok(
        &id,
        None,
        ConversationStatus::Running,
    )))
}

/// Upstream's `ConversationInfo`: a conversation's metadata and whether it is open.
#[derive(Serialize)]
struct ConversationInfo {
    conversation_id: String,
    title: String,
    last_updated_at: String,
    status: ConversationStatus,
    /// The runtime's status while open (`STATUS$SETTING_UP_WORKSPACE` while its
    /// repository is cloned, else `STATUS$READY`), else null.
    runtime_status: Option<&'static str>,
    selected_repository: Option<String>,
    selected_branch: Option<String>,
    git_provider: Option<String>,
    trigger: Option<String>,
    num_connections: usize,
    /// The conversation's REST path while open, else null.
    url: Option<String>,
    /// Always null: the session key is never handed out here.
    session_api_key: Option<String>,
    created_at: String,
    pr_number: Vec<i64>,
    /// The model of the last LLM call, and the conversation's LLM cost and token totals
    /// (upstream's metadata fields; updated at most once a second while it runs).
    llm_model: Option<String>,
    accumulated_cost: f64,
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

/// One page of `GET /api/conversations`.
#[derive(Serialize)]
struct ConversationPage {
    results: Vec<ConversationInfo>,
    next_page_id: Option<String>,
}

async fn info(state: &AppState, meta: ConversationMetadata) -> ConversationInfo {
    let open = state.manager.get_open(&meta.conversation_id).await;
    let (status, runtime_status, url, num_connections) = match &open {
        Some(c) => (
            ConversationStatus::Running,
            Some(c.runtime_status()),
            Some(format!("/api/conversations/{}", meta.conversation_id)),
            c.connections(),
        ),
        None => (ConversationStatus::Stopped, None, None, 0),
    };
    ConversationInfo {
        conversation_id: meta.conversation_id,
        title: meta.title,
        last_updated_at: meta.last_updated_at,
        status,
        runtime_status,
        selected_repository: meta.selected_repository,
        selected_branch: meta.selected_branch,
        git_provider: meta.git_provider,
        trigger: meta.trigger,
        num_connections,
        url,
        session_api_key: None,
        created_at: meta.created_at,
        pr_number: meta.pr_number,
        llm_model: meta.llm_model,
        accumulated_cost: meta.accumulated_cost,
        prompt_tokens: meta.prompt_tokens,
        completion_tokens: meta.completion_tokens,
        total_tokens: meta.total_tokens,
    }
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<String>,
    page_id: Option<String>,
    selected_repository: Option<String>,
    conversation_trigger: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<ConversationPage>, ApiError> {
    let limit = match q.limit.as_deref() {
        None | Some("") => 20,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| ApiError::bad_request("limit must be an integer from 1 to 100"))?,
    };
    let offset = match q.page_id.as_deref().filter(|p| !p.is_empty()) {
        None => 0,
        Some(p) => base64::engine::general_purpose::STANDARD
            .decode(p)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(|| ApiError::bad_request("Invalid page_id"))?,
    };
    let mut page = state
        .manager
        .store()
        .conversations(offset, limit + 1)
        .await?;
    let next_page_id = if page.len() > limit {
        page.truncate(limit);
        Some(
            base64::engine::general_purpose::STANDARD
                .encode(offset.saturating_add(limit).to_string()),
        )
    } else {
        None
    };
    let mut results = Vec::with_capacity(page.len());
    for meta in page.into_iter().filter(|m| {
        q.selected_repository
            .as_ref()
            .is_none_or(|r| m.selected_repository.as_ref() == Some(r))
            && q.conversation_trigger
                .as_ref()
                .is_none_or(|t| m.trigger.as_ref() == Some(t))
    }) {
        results.push(info(&state, meta).await);
    }
    Ok(Json(ConversationPage {
        results,
        next_page_id,
    }))
}

async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ConversationInfo>, ApiError> {
    let id = checked_id(&id)?;
    let meta = state
        .manager
        .store()
        .conversation(id)
        .await?
        .ok_or_else(ApiError::conversation_not_found)?;
    Ok(Json(info(&state, meta).await))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameRequest {
    title: String,
}

async fn rename(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<RenameRequest>,
) -> Result<Json<bool>, ApiError> {
    let id = checked_id(&id)?;
    let title = req.title.trim().to_string();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(ApiError::detail(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "title must be 1 to 200 characters",
        ));
    }
    let live = state.manager.get_open(id).await;
    let changed =
        crate::conversation::set_title(state.manager.store(), id, live.as_deref(), &title, None)
            .await?;
    if !changed {
        return Err(ApiError::conversation_not_found());
    }
    Ok(Json(true))
}

/// `true`, or `false` if the conversation did not exist.
async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<bool>, ApiError> {
    let id = checked_id(&id)?;
    Ok(Json(state.manager.delete(id).await?))
}

async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: bytes::Bytes,
) -> Result<Json<ConversationResponse>, ApiError> {
    let id = checked_id(&id)?;
    // Empty, or any JSON object (upstream's `{"providers_set": …}`), which is not used.
    let is_object = || serde_json::from_slice::<serde_json::Map<String, Value>>(&body).is_ok();
    if !body.iter().all(u8::is_ascii_whitespace) && !is_object() {
        return Err(ApiError::detail(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "body must be a JSON object such as {\"providers_set\": null}",
        ));
    }
    match state.manager.open(id, false).await {
        Ok(_) => Ok(Json(ConversationResponse::ok(
            id,
            None,
            ConversationStatus::Running,
        ))),
        Err(crate::conversation::ManagerError::NotFound(_)) => {
            Err(ApiError::conversation_not_found())
        }
        Err(e) => Err(ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            ErrorBody::StartFailed {
                status: "error",
                conversation_id: id.to_string(),
                message: format!("Failed to start conversation: {e}"),
            },
        )),
    }
}

async fn stop(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ConversationResponse>, ApiError> {
    let id = checked_id(&id)?;
    if state.manager.store().conversation(id).await?.is_none() {
        return Err(ApiError::conversation_not_found());
    }
    let was_running = state.manager.close(id).await;
    let (message, status) = if was_running {
        (
            "Conversation stopped successfully",
            ConversationStatus::Running,
        )
    } else {
        ("Conversation was not running", ConversationStatus::Stopped)
    };
    Ok(Json(ConversationResponse::ok(id, Some(message), status)))
}
