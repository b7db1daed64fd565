//! The workspace routes under `/api/conversations/{id}/`: list-files, select-file,
//! upload-files, zip-directory, git/changes, git/diff. None of them can leave the
//! workspace, whatever the path's encoding.

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::checked_id;
use crate::runtime::workspace::{GitChange, GitDiff, Workspace, WorkspaceError};
use crate::server::error::{log_internal, ApiError, ErrorBody, QueryParams};
use crate::server::AppState;

/// Largest upload request accepted.
const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    let base = "/api/conversations/{id}";
    Router::new()
        .route(&format!("{base}/list-files"), get(list_files))
        .route(&format!("{base}/select-file"), get(select_file))
        .route(
            &format!("{base}/upload-files"),
            post(upload_files).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route(&format!("{base}/zip-directory"), get(zip_directory))
        .route(&format!("{base}/git/changes"), get(git_changes))
        .route(&format!("{base}/git/diff"), get(git_diff))
}

impl From<WorkspaceError> for ApiError {
    fn from(e: WorkspaceError) -> Self {
        let status =
            StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            // git's and the OS's words stay in the log; the client gets an error id.
            let (error, error_id) = log_internal(&e);
            return ApiError::new(status, ErrorBody::ErrorWithId { error, error_id });
        }
        ApiError::error(status, e.to_string())
    }
}

/// Opens the workspace of an existing conversation.
async fn workspace(state: &AppState, id: &str) -> Result<Workspace, ApiError> {
    let id = checked_id(id)?;
    if state.manager.store().conversation(id).await?.is_none() {
        return Err(ApiError::conversation_not_found());
    }
    let root = state.config.workspace_for(id);
    blocking(move || Workspace::open(&root)).await
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WorkspaceError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

#[derive(Deserialize)]
struct ListQuery {
    path: Option<String>,
}

async fn list_files(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Vec<String>>, ApiError> {
    let ws = workspace(&state, &id).await?;
    let files =
        blocking(move || ws.list_files(q.path.as_deref().filter(|p| !p.is_empty()))).await?;
    Ok(Json(files))
}

#[derive(Deserialize)]
struct FileQuery {
    file: String,
}

async fn select_file(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<FileQuery>,
) -> Result<Json<FileContent>, ApiError> {
    let ws = workspace(&state, &id).await?;
    let code = blocking(move || ws.read_text(&q.file)).await?;
    Ok(Json(FileContent { code }))
}

/// `GET …/select-file`: a text file's content.
#[derive(Serialize)]
struct FileContent {
    code: String,
}

/// `POST …/upload-files`: where each file went, and the ones not written.
#[derive(Serialize)]
struct UploadResult {
    uploaded_files: Vec<String>,
    skipped_files: Vec<SkippedFile>,
}

/// An uploaded file that was not written, and why.
#[derive(Serialize)]
struct SkippedFile {
    name: String,
    reason: String,
}

async fn upload_files(
    State(state): State<AppState>,
    Path(id): Path<String>,
    mut form: Multipart,
) -> Result<Json<UploadResult>, ApiError> {
    let ws = workspace(&state, &id).await?;
    let mut uploaded = Vec::new();
    let mut skipped = Vec::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "Invalid multipart body: {e}"
                )))
            }
        };
        if field.name() != Some("files") {
            continue;
        }
        let name = field.file_name().unwrap_or("").to_string();
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "Cannot read upload {name:?}: {e}"
                )))
            }
        };
        if name.is_empty() {
            skipped.push(SkippedFile {
                name,
                reason: "The file has no name".into(),
            });
            continue;
        }
        let ws = ws.clone();
        let target = name.clone();
        let reason =
            match tokio::task::spawn_blocking(move || ws.write_upload(&target, &bytes)).await {
                Ok(Ok(path)) => {
                    uploaded.push(path.display().to_string());
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
        skipped.push(SkippedFile { name, reason });
    }
    Ok(Json(UploadResult {
        uploaded_files: uploaded,
        skipped_files: skipped,
    }))
}

async fn zip_directory(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let ws = workspace(&state, &id).await?;
    // Built in an unnamed temporary file and streamed from disk.
    let file = blocking(move || {
        let file = private_temp_file()
            .map_err(|e| WorkspaceError::Zip(format!("no temporary file: {e}")))?;
        let mut file = ws.zip_to(file)?;
        std::io::Seek::rewind(&mut file).map_err(|e| WorkspaceError::Zip(e.to_string()))?;
        Ok(file)
    })
    .await?;
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"workspace.zip\"".to_string(),
            ),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

async fn git_changes(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<GitChange>>, ApiError> {
    let ws = workspace(&state, &id).await?;
    let changes = blocking(move || ws.git_changes()).await?;
    Ok(Json(changes))
}

#[derive(Deserialize)]
struct DiffQuery {
    path: String,
}

async fn git_diff(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<DiffQuery>,
) -> Result<Json<GitDiff>, ApiError> {
    let ws = workspace(&state, &id).await?;
    let diff = blocking(move || ws.git_diff(&q.path)).await?;
    Ok(Json(diff))
}

/// A new file only this process can reach: created private (0600) in the temporary
/// directory and unlinked at once, so nothing is left behind whatever happens.
fn private_temp_file() -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path =
        std::env::temp_dir().join(format!("openhands-zip-{}", uuid::Uuid::new_v4().simple()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}
