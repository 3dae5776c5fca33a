//! The hub's HTTP API (axum): health, Prometheus metrics, login sessions, and the station
//! dashboard's JSON API under `/api/v1` (cameras, gates, alerts and their SSE stream, evidence,
//! recordings and their playback, evidence exports, events, figures, users, audit), plus
//! `/api/openapi.json`.
//!
//! Invariants: handlers never block (they read snapshots or await the [`Backend`]); every error
//! leaves through [`ApiError`], which maps error kinds to status codes in one place; every route
//! is declared once in the route table ([`routes::table`]), from which both the router and the
//! OpenAPI document are built, so the document cannot miss a route; every route but
//! `/healthz`, `/readyz`, login and the device routes needs a session or the API token, and
//! every handler filters by the caller's scope (`auth::Caller`).

mod alerts;
mod auth;
pub mod backend;
mod cameras;
mod cluster;
mod console;
mod error;
mod evidence;
mod forward;
mod gates;
pub mod live;
mod metrics;
mod openapi;
mod params;
mod proxy;
mod recordings;
mod routes;
mod schema;
pub mod server;
mod topology;
mod users;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use xl_core::camera::CameraRegistry;
use xl_core::gate_status::GateRegistry;

pub use auth::{ApiToken, LoginLimiter, hash_password};
pub use backend::Backend;
pub use cameras::CameraDto;
pub use error::{ApiError, ErrorDetail, RowError};
pub use gates::GateDto;
pub use proxy::{SocketPeer, TrustedProxies};
pub use users::{MIN_PASSWORD_CHARS, check_username};

/// What the handlers read.
#[derive(Clone)]
pub struct ApiState {
    pub cameras: Arc<CameraRegistry>,
    /// Configured gates and their health, written by the gate transports.
    pub gates: Arc<GateRegistry>,
    /// The static API token: an admin service account named `api-token` (Prometheus, scripts).
    pub token: Arc<ApiToken>,
    /// Set once start-up has finished; `/readyz` answers 503 until then.
    pub ready: Arc<AtomicBool>,
    /// Other stages' figures for `/metrics` (detection).
    pub extra_metrics: Vec<Arc<dyn xl_core::metrics::MetricsSource>>,
    /// Users, sessions, audit, alerts, evidence and events.
    pub backend: Arc<dyn Backend>,
    pub settings: ApiSettings,
    /// Failed logins per client address and per username (in memory).
    pub login_limiter: Arc<LoginLimiter>,
    /// Who looked at which camera's thumbnail lately, so that the audit log gets one line a
    /// while, not one per refresh (in memory).
    pub looks: Arc<live::RecentLooks>,
}

/// Tunables; [`Default`] is what the hub runs with.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// How long a login session lasts (default 12 h, a duty shift).
    pub session_ttl: Duration,
    /// Interval of the SSE heartbeat comment (default 15 s).
    pub sse_heartbeat: Duration,
    /// How often the SSE stream looks for camera status changes (default 1 s).
    pub camera_poll: Duration,
    /// How often an open SSE stream checks that its session still stands and re-reads the
    /// user's role and communities (default 10 s).
    pub session_recheck: Duration,
    /// Failed logins of one username from one address within `login_window` before 429 (one
    /// address may fail 4x as often, one username from all addresses 10x; see `LoginLimiter`).
    pub login_max_failures: u32,
    pub login_window: Duration,
    /// Adds `Secure` to the cookies (set when the console is served over HTTPS).
    pub secure_cookies: bool,
    /// Reverse proxies whose `X-Forwarded-For` is believed (default none): the client's
    /// address every handler sees as `ConnectInfo` is resolved through them.
    pub trusted_proxies: TrustedProxies,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            session_ttl: Duration::from_secs(12 * 3600),
            sse_heartbeat: Duration::from_secs(15),
            camera_poll: Duration::from_secs(1),
            session_recheck: Duration::from_secs(10),
            login_max_failures: 5,
            login_window: Duration::from_secs(300),
            secure_cookies: false,
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: ApiState) -> Router {
    router_with_devices(state, Router::new())
}

/// [`router`] plus `device_routes`: routes that devices call (gate HTTP push receivers), which
/// cannot present a session or the API token and authenticate the device themselves. They are
/// merged outside the authentication check; everything else stays behind it.
///
/// Serve it with [`server::serve`] (or `into_make_service_with_connect_info::<SocketAddr>()`)
/// so that the login rate limit, the audit log and the device allow-lists see the client's
/// address. Every route, device routes included, sees `ConnectInfo<SocketAddr>` as the client's
/// address resolved through `settings.trusted_proxies` (see [`TrustedProxies::client`]).
pub fn router_with_devices(state: ApiState, device_routes: Router) -> Router {
    let mut public = Router::new();
    let mut protected = Router::new();
    for route in routes::table() {
        let (path, access, handler) = (route.path, route.access, route.handler);
        match access {
            routes::Access::Public => public = public.route(path, handler),
            routes::Access::User => protected = protected.route(path, handler),
            routes::Access::Admin => {
                protected = protected.route(
                    path,
                    handler.route_layer(axum::middleware::from_fn(auth::require_admin)),
                )
            }
        }
    }
    let protected = protected.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::require_auth,
    ));
    let proxies = state.settings.trusted_proxies.clone();
    public
        .merge(protected)
        .with_state(state)
        // The console's static files need no login: the page asks for one when the API
        // answers 401.
        .merge(console::router())
        .merge(device_routes)
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::middleware::from_fn(trace_request))
        .layer(axum::middleware::from_fn_with_state(
            proxies,
            proxy::resolve_client,
        ))
}

async fn readyz(State(state): State<ApiState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

/// The console is served from the same origin; images may be data/blob URLs (snapshots drawn
/// on a canvas), the alarm sound a data URL, live video a MediaSource's blob URL. Live video's
/// same-origin WebSocket (`ws:`/`wss:`) is allowed by `'self'` (CSP Level 3; checked in
/// Chromium by the wall's browser test).
const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' data: blob:; \
                   object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// One `http` span per request, named by its route template (never the path itself: ids in
/// paths would make every span different and could carry what a client typed), and a DEBUG
/// line with the status and latency when the response starts. Errors inside are logged in it.
async fn trace_request(req: Request, next: Next) -> Response {
    use tracing::Instrument;
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("(unmatched)", |p| p.as_str())
        .to_owned();
    let span = tracing::info_span!("http", method = %req.method(), route = %route);
    let started = std::time::Instant::now();
    let resp = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            status = resp.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1e3,
            "request"
        );
    });
    resp
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests;
