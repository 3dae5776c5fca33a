//! The hub's HTTP API (axum): health, Prometheus metrics and the camera list, behind bearer-token
//! authentication everywhere except the health checks.
//!
//! Invariants: handlers never block (they read snapshots); every error leaves through
//! [`ApiError`], which maps error kinds to status codes in one place.

mod auth;
mod cameras;
mod error;
mod metrics;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use xl_core::camera::CameraRegistry;

pub use auth::ApiToken;
pub use error::ApiError;

/// What the handlers read.
#[derive(Clone)]
pub struct ApiState {
    pub cameras: Arc<CameraRegistry>,
    pub token: Arc<ApiToken>,
    /// Set once start-up has finished; `/readyz` answers 503 until then.
    pub ready: Arc<AtomicBool>,
}

/// The whole HTTP surface.
pub fn router(state: ApiState) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics::metrics))
        .nest("/api/v1", cameras::router())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(protected)
        .with_state(state)
}

async fn readyz(State(state): State<ApiState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

#[cfg(test)]
mod tests;
