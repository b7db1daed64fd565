//! Per-conversation routes under `/api/conversations/{id}/`: events, messages,
//! trajectory and runtime information.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::checked_id;
use crate::events::{parse_client_event, Action, Event, MessageArgs};
use crate::server::error::{ApiError, JsonBody, QueryParams};
use crate::server::AppState;
use crate::store::EventRange;

pub fn router() -> Router<AppState> {
    let base = "/api/conversations/{id}";
    Router::new()
        .route(&format!("{base}/events"), get(events).post(post_event))
        .route(&format!("{base}/message"), post(post_message))
        .route(&format!("{base}/trajectory"), get(trajectory))
        .route(&format!("{base}/config"), get(runtime_config))
        .route(
            &format!("{base}/vscode-url"),
            get(|| async { Json(VscodeUrl { vscode_url: None }) }),
        )
        .route(
            &format!("{base}/web-hosts"),
            get(|| async {
                Json(WebHosts {
                    hosts: BTreeMap::new(),
                })
            }),
        )
        .route(
            &format!("{base}/microagents"),
            get(|| async {
                Json(Microagents {
                    microagents: Vec::new(),
                })
            }),
        )
        .route(
            &format!("{base}/submit-feedback"),
            post(|| async {
                ApiError::error(
                    StatusCode::NOT_IMPLEMENTED,
                    "Sharing feedback is not available on this server: nothing leaves your machine. Use Export to save the trajectory instead.",
                )
            }),
        )
}

/// `GET …/vscode-url`: no VS Code server runs here, so always null.
#[derive(Serialize)]
struct VscodeUrl {
    vscode_url: Option<String>,
}

/// `GET …/web-hosts`: the apps the agent serves, by URL; none are exposed.
#[derive(Serialize)]
struct WebHosts {
    hosts: BTreeMap<String, u16>,
}

/// `GET …/microagents`: the repository's microagents; none are loaded.
#[derive(Serialize)]
struct Microagents {
    microagents: Vec<Value>,
}

/// `GET …/config`: the conversation's runtime.
#[derive(Serialize)]
struct RuntimeConfig {
    /// Always null: the runtime is local.
    runtime_id: Option<String>,
    session_id: String,
}

/// What posting an event or a message answers once it is stored.
#[derive(Serialize)]
struct Success {
    success: bool,
}

/// `GET …/trajectory`. A page cut at `max_response_bytes` adds `has_more` and
/// `next_start_id`; a complete one has neither key.
#[derive(Serialize)]
struct Trajectory {
    trajectory: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    has_more: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_start_id: Option<u64>,
}

async fn exists(state: &AppState, id: &str) -> Result<(), ApiError> {
    match state.manager.store().conversation(id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::conversation_not_found()),
    }
}

async fn runtime_config(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RuntimeConfig>, ApiError> {
    let id = checked_id(&id)?;
    exists(&state, id).await?;
    Ok(Json(RuntimeConfig {
        runtime_id: None,
        session_id: id.to_string(),
    }))
}

#[derive(Deserialize)]
struct EventsQuery {
    start_id: Option<String>,
    end_id: Option<String>,
    reverse: Option<String>,
    limit: Option<String>,
}

fn parse_u64(v: Option<&str>, name: &str) -> Result<Option<u64>, ApiError> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("{name} must be a non-negative integer"))),
    }
}

async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<EventsQuery>,
) -> Result<Response, ApiError> {
    let id = checked_id(&id)?;
    exists(&state, id).await?;
    let start = parse_u64(q.start_id.as_deref(), "start_id")?.unwrap_or(0);
    let end = parse_u64(q.end_id.as_deref(), "end_id")?;
    let limit = match q.limit.as_deref().filter(|s| !s.is_empty()) {
        None => 20,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| *l <= 100)
            .ok_or_else(|| ApiError::bad_request("Invalid limit"))?,
    };
    let reverse = match q.reverse.as_deref() {
        None | Some("") | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => return Err(ApiError::bad_request("reverse must be true or false")),
    };
    let max_bytes = state.config.file.limits.max_response_bytes;
    let mut page = state
        .manager
        .store()
        .events(
            id,
            EventRange {
                start,
                end,
                limit: limit + 1,
                reverse,
                max_bytes,
            },
        )
        .await?;
    // A page cut short by its size says there is more, like one cut by its count.
    let cut_by_size = page.iter().map(|e| e.json.len()).sum::<usize>() >= max_bytes;
    let has_more = page.len() > limit || cut_by_size;
    page.truncate(limit);
    // The stored JSON is sent as is: the same bytes as on the socket.
    let mut body = String::with_capacity(page.iter().map(|e| e.json.len() + 1).sum::<usize>() + 32);
    body.push_str("{\"events\":[");
    for (i, e) in page.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&e.json);
    }
    body.push_str(&format!("],\"has_more\":{has_more}}}"));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn post_event(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Success>, ApiError> {
    let id = checked_id(&id)?;
    let event = parse_client_event(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    submit(&state, id, event).await
}

#[derive(Deserialize)]
struct MessageRequest {
    message: String,
}

async fn post_message(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<MessageRequest>,
) -> Result<Json<Success>, ApiError> {
    let id = checked_id(&id)?;
    submit(
        &state,
        id,
        Event::action(Action::Message(MessageArgs::text(body.message))),
    )
    .await
}

async fn submit(state: &AppState, id: &str, event: Event) -> Result<Json<Success>, ApiError> {
    let conversation = state.manager.open(id, false).await?;
    conversation
        .submit_and_wait(event)
        .await
        .map_err(|e| ApiError::detail(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(Success { success: true }))
}

#[derive(Deserialize)]
struct TrajectoryQuery {
    start_id: Option<String>,
}

/// `GET …/trajectory`: the conversation's events for export, as upstream. One answer
/// holds at most `[limits] max_response_bytes`; past that it ends with `"has_more": true`
/// and `"next_start_id"`, to ask for with `?start_id=`.
async fn trajectory(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<TrajectoryQuery>,
) -> Result<Json<Trajectory>, ApiError> {
    let id = checked_id(&id)?;
    exists(&state, id).await?;
    let store = state.manager.store();
    let max_bytes = state.config.file.limits.max_response_bytes;
    let mut out = Vec::new();
    let mut start = parse_u64(q.start_id.as_deref(), "start_id")?.unwrap_or(0);
    let mut bytes = 0usize;
    loop {
        let page = store
            .events(
                id,
                EventRange {
                    start,
                    end: None,
                    limit: 1000,
                    reverse: false,
                    max_bytes: usize::MAX,
                },
            )
            .await?;
        let full = page.len() == 1000;
        for e in &page {
            if bytes >= max_bytes && !out.is_empty() {
                return Ok(Json(Trajectory {
                    trajectory: out,
                    has_more: Some(true),
                    next_start_id: Some(e.id),
                }));
            }
            bytes += e.json.len();
            start = e.id + 1;
            let Ok(v) = serde_json::from_str::<Value>(&e.json) else {
                continue;
            };
            let hidden = v
                .pointer("/args/hidden")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                || v.pointer("/extras/hidden")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
            if !hidden {
                out.push(strip_browser_extras(v));
            }
        }
        if !full {
            break;
        }
    }
    Ok(Json(Trajectory {
        trajectory: out,
        has_more: None,
        next_start_id: None,
    }))
}

/// Drops screenshots and DOM/accessibility trees, as upstream's trajectory does.
fn strip_browser_extras(mut v: Value) -> Value {
    if let Some(extras) = v.get_mut("extras").and_then(Value::as_object_mut) {
        for key in [
            "screenshot",
            "dom_object",
            "axtree_object",
            "extra_element_properties",
            "set_of_marks",
        ] {
            extras.remove(key);
        }
    }
    v
}
