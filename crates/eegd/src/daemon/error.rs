//! The daemon's one API error type: every handler returns it, and it alone decides what a client
//! sees. Client mistakes (4xx) carry their reason; internal failures are logged here and answered
//! with a bare "internal error", so no path, OS message or backtrace leaks out.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pipeline::exec::PatchError;
use pipeline::topology::Diagnostics;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A pipeline file that does not validate: every error with its line and column.
    #[error("invalid pipeline file")]
    InvalidPipeline(Diagnostics),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit the daemon's state (locked by a recording, nothing running).
    #[error("{0}")]
    Conflict(String),
    /// Well-formed but refused for what it says (a marker outside the recording).
    #[error("{0}")]
    Unprocessable(String),
    #[error("a bearer token is required")]
    Unauthorized,
    /// A browser request from a foreign origin or to a foreign `Host` (see `access.rs`).
    #[error("{0}")]
    Forbidden(String),
    /// The request took longer than the daemon waits (a body sent too slowly).
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Unavailable(String),
    /// Logged with its detail; the client sees only that something failed inside.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidPipeline(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body a client gets: `{"error": …}`, plus `errors` for an invalid pipeline.
    pub fn body(&self) -> serde_json::Value {
        match self {
            ApiError::InvalidPipeline(d) => json!({
                "error": format!("invalid pipeline file: {} error{}", d.items.len(), if d.items.len() == 1 { "" } else { "s" }),
                "errors": d.items.iter().map(|i| json!({
                    "file": d.file,
                    "line": i.span.map(|s| s.line),
                    "column": i.span.map(|s| s.col),
                    "message": i.message,
                })).collect::<Vec<_>>(),
            }),
            ApiError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "Request failed");
                json!({ "error": "internal error" })
            }
            other => json!({ "error": other.to_string() }),
        }
    }
}

impl From<PatchError> for ApiError {
    fn from(e: PatchError) -> Self {
        match e {
            PatchError::UnknownStage(_) => ApiError::NotFound(e.to_string()),
            PatchError::Locked { .. } | PatchError::NotRunning(_) => ApiError::Conflict(e.to_string()),
            PatchError::Invalid(_) => ApiError::BadRequest(e.to_string()),
            PatchError::Busy(_) => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(self.body())).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Largest error body turned into JSON; the framework's rejections are one short line.
const MAX_REJECTION_TEXT: usize = 4096;

/// Middleware: every error response is the JSON error, including those the framework makes
/// before a handler runs (a body over the limit → 413, a bad query or path → 400, a wrong
/// method → 405, a WebSocket route without an upgrade → 400), which are plain text as axum
/// writes them. The text becomes the `error`; the status stays.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let r = next.run(req).await;
    let is_json = r
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(r.status().is_client_error() || r.status().is_server_error()) || is_json {
        return r;
    }
    let (parts, body) = r.into_parts();
    let text = axum::body::to_bytes(body, MAX_REJECTION_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let error = match text {
        t if t.is_empty() => parts.status.canonical_reason().unwrap_or("error").to_lowercase(),
        t => t,
    };
    let mut out = (parts.status, Json(json!({ "error": error }))).into_response();
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
