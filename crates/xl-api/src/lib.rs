//! The hub's HTTP API (axum): health, Prometheus metrics, the camera and gate lists, behind
//! bearer-token authentication everywhere except the health checks and the device-facing
//! routes the binary mounts with [`router_with_devices`].
//!
//! Invariants: handlers never block (they read snapshots); every error leaves through
//! [`ApiError`], which maps error kinds to status codes in one place.

mod auth;
mod cameras;
mod error;
mod gates;
mod metrics;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use xl_core::camera::CameraRegistry;
use xl_core::gate_status::GateRegistry;

pub use auth::ApiToken;
pub use error::ApiError;
pub use gates::GateDto;

/// What the handlers read.
#[derive(Clone)]
pub struct ApiState {
    pub cameras: Arc<CameraRegistry>,
    /// Configured gates and their health, written by the gate transports.
    pub gates: Arc<GateRegistry>,
    pub token: Arc<ApiToken>,
    /// Set once start-up has finished; `/readyz` answers 503 until then.
    pub ready: Arc<AtomicBool>,
    /// Other stages' figures for `/metrics` (detection).
    pub extra_metrics: Vec<Arc<dyn xl_core::metrics::MetricsSource>>,
}

/// The whole HTTP surface.
pub fn router(state: ApiState) -> Router {
    router_with_devices(state, Router::new())
}

/// [`router`] plus `device_routes`: routes that devices call (gate HTTP push receivers), which
/// cannot present the API token and authenticate the device themselves. They are merged
/// outside the token check; everything else stays behind it.
pub fn router_with_devices(state: ApiState, device_routes: Router) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics::metrics))
        .nest("/api/v1", cameras::router().merge(gates::router()))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(protected)
        .with_state(state)
        .merge(device_routes)
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
