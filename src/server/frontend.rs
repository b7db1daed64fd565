//! Serves the browser UI (`frontend/dist`) at `/`, with `index.html` for client-side routes.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use std::path::PathBuf;
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use super::error::ApiError;

/// Where the built UI may be, in order: `OPENHANDS_FRONTEND_DIR`; beside the binary
/// (`<dir of the binary>/frontend`, then `…/frontend/dist`); the checkout the binary was
/// built in, seen from `target/<profile>/` (`../../frontend/dist`); and the checkout's
/// path at build time.
fn candidates() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os("OPENHANDS_FRONTEND_DIR") {
        return vec![PathBuf::from(dir)];
    }
    let mut out = Vec::new();
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(PathBuf::from))
    {
        out.push(exe_dir.join("frontend"));
        out.push(exe_dir.join("frontend").join("dist"));
        out.push(exe_dir.join("../../frontend/dist"));
    }
    out.push(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/frontend/dist"
    )));
    out
}

/// The first place of [`candidates`] that holds a built UI (`index.html`); the first
/// candidate when none does (the 404 then says how to build it).
pub fn dist_dir() -> PathBuf {
    let all = candidates();
    all.iter()
        .find(|d| d.join("index.html").is_file())
        .or(all.first())
        .cloned()
        .unwrap_or_default()
}

/// The fallback for every path no route took: JSON 404 under `/api/`, the UI elsewhere.
pub async fn serve(req: Request<Body>) -> Response {
    if req.uri().path().starts_with("/api/") || req.uri().path() == "/api" {
        return ApiError::detail(StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    let dist = dist_dir();
    let index = dist.join("index.html");
    if !index.is_file() {
        return ApiError::detail(
            StatusCode::NOT_FOUND,
            "The web UI is not built: run `npm ci && npm run build` in frontend/ (or ./start_openhands.sh)",
        )
        .into_response();
    }
    let cache = if req.uri().path().starts_with("/assets/") {
        "public, max-age=2592000, immutable"
    } else {
        "no-cache, no-store, must-revalidate, max-age=0"
    };
    let service = ServeDir::new(&dist).fallback(ServeFile::new(index));
    match service.oneshot(req).await {
        Ok(mut res) => {
            if let Ok(v) = cache.parse() {
                res.headers_mut()
                    .insert(axum::http::header::CACHE_CONTROL, v);
            }
            res.into_response()
        }
        Err(e) => ApiError::internal(e).into_response(),
    }
}
