//! JSON errors for REST routes, and extractors whose rejections are JSON too.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// An HTTP error with a JSON body.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

/// The body of an error answer, one variant per shape. Untagged: a variant's fields are
/// the object's keys, in their order.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ErrorBody {
    /// `{"detail"}`, FastAPI's shape.
    Detail { detail: String },
    /// `{"detail","error_id"}`: a 500 naming its entry in the log.
    Internal { detail: String, error_id: String },
    /// `{"error"}`, as the settings, file and git routes answer.
    Error { error: String },
    /// `{"error","error_id"}`: a file or git route's 5xx naming its entry in the log.
    ErrorWithId { error: String, error_id: String },
    /// `{"message"}`, as the secrets routes answer.
    Message { message: String },
    /// `{"status":"error","message","msg_id"}`: upstream's "not found".
    NotFound {
        status: &'static str,
        message: &'static str,
        msg_id: &'static str,
    },
    /// `{"status":"error","conversation_id","message"}`: a conversation that failed to start.
    StartFailed {
        status: &'static str,
        conversation_id: String,
        message: String,
    },
}

impl ApiError {
    pub fn new(status: StatusCode, body: ErrorBody) -> Self {
        ApiError { status, body }
    }

    /// `{"detail": message}` with `status`.
    pub fn detail(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(
            status,
            ErrorBody::Detail {
                detail: message.into(),
            },
        )
    }

    /// `{"error": message}` with `status`.
    pub fn error(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(
            status,
            ErrorBody::Error {
                error: message.into(),
            },
        )
    }

    /// `{"message": message}` with `status`.
    pub fn message(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(
            status,
            ErrorBody::Message {
                message: message.into(),
            },
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::detail(StatusCode::BAD_REQUEST, message)
    }

    /// A 500 whose body names an error id to look up in the log, never the cause itself
    /// (which may hold paths or database messages).
    pub fn internal(message: impl std::fmt::Display) -> Self {
        let (detail, error_id) = log_internal(message);
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorBody::Internal { detail, error_id },
        )
    }

    /// 404 with upstream's "conversation not found" body: the one answer of every route
    /// for an unknown conversation.
    pub fn conversation_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorBody::NotFound {
                status: "error",
                message: "Conversation not found",
                msg_id: "CONVERSATION$NOT_FOUND",
            },
        )
    }
}

/// Logs an internal error under a new id; returns the client's message and the id.
pub fn log_internal(message: impl std::fmt::Display) -> (String, String) {
    let error_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    tracing::error!(error_id, "internal error: {message}");
    (
        format!("Internal server error (error id {error_id} in the server log)"),
        error_id,
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl From<crate::conversation::ManagerError> for ApiError {
    fn from(e: crate::conversation::ManagerError) -> Self {
        use crate::conversation::ManagerError as M;
        match e {
            M::NotFound(_) => ApiError::conversation_not_found(),
            M::InvalidId => ApiError::bad_request(e.to_string()),
            M::TooManyStored(_) => ApiError::detail(StatusCode::TOO_MANY_REQUESTS, e.to_string()),
            M::Deleting(_) => ApiError::detail(StatusCode::CONFLICT, e.to_string()),
            M::TooMany(_) | M::ShuttingDown | M::ClusterUnavailable => {
                ApiError::detail(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            other => ApiError::internal(other),
        }
    }
}

/// `Json<T>` whose rejections are 4xx with a JSON body.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(r) => Err(json_rejection(r)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let status = match &r {
        JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
        JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => r.status(),
    };
    ApiError::detail(status, r.body_text())
}

/// `Query<T>` whose rejections are 400 with a JSON body.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(QueryParams(v)),
            Err(r) => Err(query_rejection(r)),
        }
    }
}

fn query_rejection(r: QueryRejection) -> ApiError {
    ApiError::bad_request(r.body_text())
}
