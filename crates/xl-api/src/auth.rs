//! Authentication and scope.
//!
//! A request is authenticated by `Authorization: Bearer <token>` (a session token, or the
//! static [`ApiToken`], an admin service account named `api-token` for Prometheus and
//! scripts) or by the `xl_session` cookie the login sets. With the cookie, a request that is not
//! GET/HEAD must also carry `X-CSRF-Token` equal to the `xl_csrf` cookie (double submit; the
//! cookies are `SameSite=Strict` too). Tokens are 32 random bytes, base64url; the store keeps
//! only their hex SHA-256. Passwords are argon2 PHC strings. Failed logins are limited per
//! username and address, per address and per username by [`LoginLimiter`].
//!
//! [`Caller`] is who is asking and what they may see: admins see everything; duty and police
//! users everything too, unless they are limited to stations (`User::stations`), then the
//! communities of those stations in the running topology; property users only their
//! communities (and of cameras only the community network, of alerts only those routed to
//! property).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use xl_core::alert::Alert;
use xl_core::camera::{CameraInfo, CameraNetwork};
use xl_core::gate_status::GateInfo;
use xl_core::topology::Topology;
use xl_core::{CommunityId, ErrorKind, Role, StationId};

use crate::backend::{AuditEntry, SessionRecord, User};
use crate::routes::{Access, Route};
use crate::{ApiError, ApiState};

pub(crate) const SESSION_COOKIE: &str = "xl_session";
pub(crate) const CSRF_COOKIE: &str = "xl_csrf";
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// The name the static API token acts under.
pub(crate) const TOKEN_USER: &str = "api-token";
/// Longest password accepted (argon2 work is bounded by it).
const MAX_PASSWORD_LEN: usize = 1024;
/// Longest bearer token or cookie value looked at.
const MAX_TOKEN_LEN: usize = 512;

/// The API token. `Debug` never shows it.
pub struct ApiToken(String);

impl ApiToken {
    pub fn new(token: String) -> Self {
        ApiToken(token)
    }

    fn matches(&self, presented: &str) -> bool {
        !self.0.is_empty() && ct_eq(self.0.as_bytes(), presented.as_bytes())
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

/// Compares in time independent of where the first difference is.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::POST,
            "/api/v1/auth/login",
            Access::Public,
            "Log in with {username, password}: a session token and the xl_session/xl_csrf cookies",
            post(login),
        )
        .body(crate::schema::login_request)
        .answers(crate::schema::login_response),
        Route::new(
            Method::POST,
            "/api/v1/auth/logout",
            Access::User,
            "End the session and clear the cookies",
            post(logout),
        )
        .ok_status(204),
        Route::new(
            Method::GET,
            "/api/v1/auth/me",
            Access::User,
            "Who is logged in",
            get(me),
        )
        .answers(crate::schema::me),
    ]
}

// ---------------------------------------------------------------------------------------------
// Who is asking.

/// The authenticated caller, put into the request by [`require_auth`].
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub user: User,
    /// What the caller is limited to (`None`: everything), resolved from the user and the
    /// running topology when the caller is built ([`Caller::new`]).
    scope: Option<Scope>,
    /// The session's token hash (absent for the API token).
    pub session: Option<String>,
    pub expires_at: Option<Timestamp>,
    /// The client's address, for the audit log.
    pub peer: Option<String>,
}

/// The communities (and stations) a limited caller sees.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scope {
    communities: BTreeSet<CommunityId>,
    /// The stations the caller sees: a station-scoped user's own (even one with no community
    /// yet), or the stations of a property user's communities.
    stations: BTreeSet<StationId>,
}

impl Scope {
    /// `user`'s scope in `topology`, `None` when unlimited. A station-scoped user's
    /// communities are looked up at every request (and every re-check of the alert stream),
    /// so a community moved to or from their station applies at once; a station unknown to the
    /// topology gives no community, so the scope fails closed.
    fn of(user: &User, topology: &Topology) -> Option<Scope> {
        let station_of =
            |c: &CommunityId| topology.communities.get(c).and_then(|c| c.station.clone());
        match user.role {
            Role::Admin => None,
            Role::Duty | Role::Police if user.stations.is_empty() => None,
            Role::Duty | Role::Police => {
                let stations: BTreeSet<StationId> = user.stations.iter().cloned().collect();
                let communities = topology
                    .communities
                    .values()
                    .filter(|c| c.station.as_ref().is_some_and(|s| stations.contains(s)))
                    .map(|c| c.id.clone())
                    .collect();
                Some(Scope {
                    communities,
                    stations,
                })
            }
            Role::Property => Some(Scope {
                communities: user.communities.iter().cloned().collect(),
                stations: user.communities.iter().filter_map(station_of).collect(),
            }),
        }
    }
}

impl Caller {
    /// The caller `user`, limited as [`Scope::of`] says in `topology`.
    pub fn new(
        user: User,
        topology: &Topology,
        session: Option<String>,
        expires_at: Option<Timestamp>,
        peer: Option<String>,
    ) -> Caller {
        Caller {
            scope: Scope::of(&user, topology),
            user,
            session,
            expires_at,
            peer,
        }
    }

    pub fn name(&self) -> &str {
        &self.user.username
    }

    /// Whether the caller sees everything (admins, and duty and police users without
    /// stations): no filter of any kind applies. False for a station-scoped user too.
    pub fn sees_all(&self) -> bool {
        self.scope.is_none()
    }

    pub fn sees_community(&self, c: &CommunityId) -> bool {
        self.scope
            .as_ref()
            .is_none_or(|s| s.communities.contains(c))
    }

    /// A station is visible when it is one of the caller's stations, or, for a property
    /// user, the station of one of their communities.
    pub fn sees_station(&self, s: &StationId) -> bool {
        self.scope
            .as_ref()
            .is_none_or(|scope| scope.stations.contains(s))
    }

    pub fn sees_camera(&self, info: &CameraInfo) -> bool {
        self.sees_community(&info.community)
            && (self.user.role != Role::Property || info.network == CameraNetwork::Community)
    }

    pub fn sees_gate(&self, info: &GateInfo) -> bool {
        self.sees_community(&info.community)
    }

    pub fn sees_alert(&self, alert: &Alert) -> bool {
        self.sees_community(&alert.community)
            && self
                .alerts_routed_to()
                .is_none_or(|r| alert.roles.contains(&r))
    }

    /// The role an alert must be routed to for this caller to get it: `property` for property
    /// users; `None` (any alert of the communities they see) for the others.
    pub fn alerts_routed_to(&self) -> Option<Role> {
        (self.user.role == Role::Property).then_some(Role::Property)
    }

    /// The communities a query may cover: those asked for (all when `None`) that the caller
    /// sees. `None` means no condition.
    pub fn communities(&self, asked: Option<Vec<CommunityId>>) -> Option<Vec<CommunityId>> {
        let Some(scope) = &self.scope else {
            return asked;
        };
        Some(match asked {
            None => scope.communities.iter().cloned().collect(),
            Some(asked) => asked
                .into_iter()
                .filter(|c| scope.communities.contains(c))
                .collect(),
        })
    }

    /// An audit entry of this caller's, for a backend call that writes it with its change.
    pub fn audit_entry(
        &self,
        action: &str,
        target: Option<String>,
        detail: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            seq: 0,
            at: Timestamp::now(),
            actor: self.name().to_owned(),
            action: action.to_owned(),
            target,
            detail,
            peer: self.peer.clone(),
        }
    }

    /// Appends to the audit log. Fails closed: when the entry cannot be written, the action
    /// fails too.
    pub async fn audit(
        &self,
        state: &ApiState,
        action: &str,
        target: Option<String>,
        detail: serde_json::Value,
    ) -> Result<(), ApiError> {
        audit(
            state,
            self.name(),
            action,
            target,
            detail,
            self.peer.clone(),
        )
        .await
    }
}

pub(crate) async fn audit(
    state: &ApiState,
    actor: &str,
    action: &str,
    target: Option<String>,
    detail: serde_json::Value,
    peer: Option<String>,
) -> Result<(), ApiError> {
    state
        .backend
        .audit(AuditEntry {
            seq: 0,
            at: Timestamp::now(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target,
            detail,
            peer,
        })
        .await
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::internal("route is not behind authentication"))
    }
}

/// The client's address when the server was started with connect info.
pub(crate) fn peer_of(ext: &axum::http::Extensions) -> Option<String> {
    ext.get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip().to_string())
}

/// The value of cookie `name` (the first one).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(ErrorKind::Unauthenticated, message)
}

/// Resolves the caller (bearer token or session cookie), checks CSRF for cookie sessions, and
/// puts the [`Caller`] into the request.
pub(crate) async fn require_auth(
    State(state): State<ApiState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = req.headers();
    let peer = peer_of(req.extensions());
    let bearer = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or_else(|| unauthenticated("expected `Authorization: Bearer <token>`"))?,
        ),
    };
    let (token, via_cookie) = match (bearer, cookie(headers, SESSION_COOKIE)) {
        (Some(t), _) => (t, false),
        (None, Some(t)) => (t, true),
        (None, None) => {
            return Err(unauthenticated(
                "log in, or send `Authorization: Bearer <token>`",
            ));
        }
    };
    if !via_cookie && state.token.matches(token) {
        let user = User {
            username: TOKEN_USER.to_owned(),
            role: Role::Admin,
            communities: vec![],
            stations: vec![],
        };
        let caller = Caller::new(user, &Topology::default(), None, None, peer);
        req.extensions_mut().insert(caller);
        return Ok(next.run(req).await);
    }
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(unauthenticated("invalid or expired session"));
    }
    let hash = token_hash(token);
    let session = state
        .backend
        .session(&hash, Timestamp::now())
        .await?
        .ok_or_else(|| unauthenticated("invalid or expired session"))?;
    if via_cookie && !matches!(*req.method(), Method::GET | Method::HEAD) {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let expected = cookie(headers, CSRF_COOKIE);
        let ok = matches!((sent, expected), (Some(s), Some(e)) if !e.is_empty() && ct_eq(s.as_bytes(), e.as_bytes()));
        if !ok {
            return Err(ApiError::new(
                ErrorKind::PermissionDenied,
                "missing or wrong X-CSRF-Token header (must equal the xl_csrf cookie)",
            ));
        }
    }
    let record = state
        .backend
        .user(&session.username)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| unauthenticated("invalid or expired session"))?;
    let caller = Caller::new(
        record.user,
        &state.backend.topology_view(),
        Some(hash),
        Some(session.expires_at),
        peer,
    );
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

/// The caller as the store has them now, for long-lived requests (the alert stream): `None`
/// once the session has expired or ended or the user is disabled or gone; otherwise with the
/// user's current role, communities and stations, resolved in the topology running now. The
/// API token's caller does not change.
pub(crate) async fn recheck(state: &ApiState, caller: &Caller) -> Result<Option<Caller>, ApiError> {
    let Some(hash) = &caller.session else {
        return Ok(Some(caller.clone()));
    };
    let Some(session) = state.backend.session(hash, Timestamp::now()).await? else {
        return Ok(None);
    };
    let user = state
        .backend
        .user(&session.username)
        .await?
        .filter(|u| !u.disabled);
    Ok(user.map(|record| {
        Caller::new(
            record.user,
            &state.backend.topology_view(),
            Some(hash.clone()),
            Some(session.expires_at),
            caller.peer.clone(),
        )
    }))
}

/// Lets only admins through (runs after [`require_auth`]).
pub(crate) async fn require_admin(caller: Caller, req: Request, next: Next) -> Response {
    if caller.user.role != Role::Admin {
        return ApiError::new(ErrorKind::PermissionDenied, "admins only").into_response();
    }
    next.run(req).await
}

// ---------------------------------------------------------------------------------------------
// Passwords and tokens.

/// An argon2id PHC string for `password` (for the hub's `user add` command and the users API).
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| ApiError::internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(format!("hashing the password: {e}")))
}

/// Whether `password` matches the PHC string `hash` (false when the string is unparsable).
/// Takes about 19 MiB and tens of milliseconds of a core (argon2's defaults): only through
/// [`LoginLimiter::try_verify`].
fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => {
            tracing::warn!("a stored password hash is not a PHC string");
            false
        }
    }
}

/// A hash to verify against when the user does not exist, so that unknown and known names take
/// the same time.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default())
}

/// 32 random bytes, base64url.
fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Hex SHA-256 of a token, as the store keeps it.
pub(crate) fn token_hash(token: &str) -> String {
    use std::fmt::Write;
    Sha256::digest(token.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

// ---------------------------------------------------------------------------------------------
// Login rate limit.

/// A limiter key: the first 16 bytes of the SHA-256 of what it stands for, so that a 2 MB
/// username costs the map no more than a short one.
pub(crate) type LimitKey = [u8; 16];

/// The key of `kind` (`pair`, `ip`, `user`) for `parts`.
pub(crate) fn limit_key(kind: &str, parts: &[&str]) -> LimitKey {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    for p in parts {
        // The length first, so that ("a|b", "c") and ("a", "b|c") differ.
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let mut key = [0u8; 16];
    key.copy_from_slice(&h.finalize()[..16]);
    key
}

/// Failed logins per key in a fixed window opened by the first failure. A login is refused
/// (429) for the rest of the window after `login_max_failures` failures of one username from
/// one address, 4x that from one address (whatever the names), or 10x that for one username
/// (whatever the addresses). So a duty account cannot be locked by a few wrong passwords sent
/// from elsewhere, while guessing stays slow: argon2 per try, and every limit.
///
/// An attempt is counted before its password is verified ([`LoginLimiter::reserve`]) and
/// un-counted when it succeeds, so however many arrive at once, at most the limit of them
/// reach argon2; counting after the verification let 190 of 250 concurrent tries through a
/// limit of 5. Names that cannot exist (see `check_username`) count only per address.
///
/// Bounded: keys are fixed-size hashes, and when the map is full expired entries go first,
/// then the oldest. Verifications run at most [`LoginLimiter::max_verifying`] at once (each
/// holds about 19 MiB); a login beyond that is answered 503 rather than queued.
#[derive(Debug)]
pub struct LoginLimiter {
    entries: Mutex<HashMap<LimitKey, Window>>,
    max_keys: usize,
    verifying: Arc<Semaphore>,
    max_verifying: usize,
    verifications: AtomicU64,
}

/// Failures counted since `start`.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    n: u32,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(10_000, default_max_verifying())
    }
}

/// Twice the cores, between 2 and 16 (16 x 19 MiB = 304 MiB at most).
fn default_max_verifying() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_mul(2))
        .unwrap_or(4)
        .clamp(2, 16)
}

impl LoginLimiter {
    /// `max_keys` entries at most; the default number of verifications at once.
    pub fn with_capacity(max_keys: usize) -> Self {
        LoginLimiter::new(max_keys, default_max_verifying())
    }

    pub fn new(max_keys: usize, max_verifying: usize) -> Self {
        let max_verifying = max_verifying.max(1);
        LoginLimiter {
            entries: Mutex::new(HashMap::new()),
            max_keys: max_keys.max(1),
            verifying: Arc::new(Semaphore::new(max_verifying)),
            max_verifying,
            verifications: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<LimitKey, Window>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts an attempt against every `(key, max)` at once, unless one of them is already at
    /// its max: then nothing is counted and the answer is how long that key stays blocked.
    /// The attempt stays counted (a failure) unless the [`Reservation`] is released.
    pub(crate) fn reserve(
        &self,
        limits: &[(LimitKey, u32)],
        window: Duration,
    ) -> Result<Reservation<'_>, Duration> {
        let now = Instant::now();
        let mut map = self.lock();
        let blocked = limits
            .iter()
            .filter_map(|(k, max)| {
                let w = map.get(k)?;
                let left = window.checked_sub(now.duration_since(w.start))?;
                (w.n >= *max && !left.is_zero()).then_some(left)
            })
            .max();
        if let Some(left) = blocked {
            return Err(left);
        }
        let mut held = Vec::with_capacity(limits.len());
        for (key, _) in limits {
            if !map.contains_key(key) && map.len() >= self.max_keys {
                map.retain(|_, w| now.duration_since(w.start) < window);
                if map.len() >= self.max_keys
                    && let Some(oldest) = map.iter().min_by_key(|(_, w)| w.start).map(|(k, _)| *k)
                {
                    map.remove(&oldest);
                }
            }
            let w = map.entry(*key).or_insert(Window { start: now, n: 0 });
            if now.duration_since(w.start) >= window {
                *w = Window { start: now, n: 0 };
            }
            w.n = w.n.saturating_add(1);
            held.push((*key, w.start));
        }
        Ok(Reservation {
            limiter: self,
            held,
        })
    }

    /// Forgets `key` (a successful login clears its username-and-address count).
    pub(crate) fn clear(&self, key: &LimitKey) {
        self.lock().remove(key);
    }

    /// A place among the verifications running now, or `None` when all are taken. The permit
    /// goes into the blocking task, so a client that hangs up cannot free it early.
    pub(crate) fn try_verify(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.verifying).try_acquire_owned().ok()
    }

    /// Counts one password verification (argon2 run).
    fn verified_once(&self) {
        self.verifications.fetch_add(1, Ordering::Relaxed);
    }

    /// Password verifications (argon2 runs) since start.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Verifications allowed at once.
    pub fn max_verifying(&self) -> usize {
        self.max_verifying
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An attempt counted by [`LoginLimiter::reserve`]. Dropped, it stays counted as a failure
/// (also when the client hangs up mid-verification); [`Reservation::release`] un-counts it.
#[must_use]
pub(crate) struct Reservation<'a> {
    limiter: &'a LoginLimiter,
    /// Each key and the start of the window the attempt was counted in.
    held: Vec<(LimitKey, Instant)>,
}

impl Reservation<'_> {
    /// Un-counts the attempt: it succeeded, or was never verified.
    pub fn release(self) {
        let mut map = self.limiter.lock();
        for (key, start) in &self.held {
            if let Some(w) = map.get_mut(key)
                && w.start == *start
            {
                w.n = w.n.saturating_sub(1);
                if w.n == 0 {
                    map.remove(key);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers.

/// Body of `POST /api/v1/auth/login`. `Debug` never shows the password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Serialize)]
struct LoginResponse<'a> {
    token: &'a str,
    expires_at: Timestamp,
    user: &'a User,
}

async fn login(
    State(state): State<ApiState>,
    parts: Parts,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let peer = peer_of(&parts.extensions);
    // A cross-site form can post `text/plain` but not JSON without a CORS preflight: this
    // keeps another site from logging a browser into an account of its choosing.
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json {
        return Err(ApiError::invalid(
            "log in with `Content-Type: application/json`",
        ));
    }
    let req: LoginRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("expected {{\"username\", \"password\"}}: {e}")))?;
    let s = &state.settings;
    let addr = peer.as_deref().unwrap_or("unknown");
    let max = s.login_max_failures;
    // A name the users API would refuse cannot be anyone's: it is not looked up, costs no
    // argon2, and counts only against the address (so long names cannot fill the limiter).
    let name_ok = crate::users::check_username(&req.username).is_ok();
    let plausible = name_ok && req.password.len() <= MAX_PASSWORD_LEN;
    // (key, attempts allowed in the window): see [`LoginLimiter`].
    let pair = limit_key("pair", &[addr, &req.username]);
    let mut limits = vec![(limit_key("ip", &[addr]), max.saturating_mul(4))];
    if name_ok {
        limits.push((pair, max));
        limits.push((limit_key("user", &[&req.username]), max.saturating_mul(10)));
    }
    let limiter = &state.login_limiter;
    let reservation = match limiter.reserve(&limits, s.login_window) {
        Ok(r) => r,
        Err(left) => {
            tracing::warn!(peer = addr, "login refused: too many failures");
            return Ok(crate::error::rate_limited(left.as_secs()));
        }
    };
    let permit = if plausible {
        match limiter.try_verify() {
            Some(p) => Some(p),
            None => {
                reservation.release();
                // DEBUG: a burst would write a line per refused login; the client retries.
                tracing::debug!(
                    peer = addr,
                    max_verifying = limiter.max_verifying(),
                    "login refused: too many password verifications at once"
                );
                return Ok(crate::error::logins_busy(1));
            }
        }
    } else {
        None
    };

    let record = if plausible {
        match state.backend.user(&req.username).await {
            Ok(r) => r,
            Err(e) => {
                // Not the caller's failure: a store outage must not lock anyone out.
                reservation.release();
                return Err(e);
            }
        }
    } else {
        None
    };
    let (hash, exists) = match &record {
        Some(r) => (r.password_hash.clone(), true),
        None => (dummy_hash().to_owned(), false),
    };
    let password = req.password;
    let verified = match permit {
        Some(permit) => {
            let limiter = Arc::clone(&state.login_limiter);
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                limiter.verified_once();
                verify_password(&password, &hash)
            })
            .await
            .unwrap_or(false)
        }
        None => false,
    };
    let record = match record {
        Some(r) if verified && exists && !r.disabled => r,
        other => {
            // The reservation stays: this attempt is a failure.
            drop(reservation);
            let (actor, reason) = match &other {
                None => ("anonymous", "unknown_user"),
                Some(r) if r.disabled => (req.username.as_str(), "disabled"),
                Some(_) => (req.username.as_str(), "wrong_password"),
            };
            let detail = serde_json::json!({ "reason": reason });
            if let Err(e) = audit(&state, actor, "login_failed", None, detail, peer).await {
                tracing::error!(error = %e.message, "could not audit a failed login");
            }
            return Err(unauthenticated("wrong username or password"));
        }
    };
    reservation.release();
    limiter.clear(&pair);

    let token = random_token();
    let csrf = random_token();
    let now = Timestamp::now();
    let ttl = jiff::SignedDuration::try_from(s.session_ttl)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let expires_at = now
        .checked_add(ttl)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    state
        .backend
        .insert_session(SessionRecord {
            token_hash: token_hash(&token),
            username: record.user.username.clone(),
            created_at: now,
            expires_at,
        })
        .await?;
    audit(
        &state,
        &record.user.username,
        "login",
        None,
        serde_json::Value::Null,
        peer,
    )
    .await?;
    let max_age = s.session_ttl.as_secs();
    let secure = if s.secure_cookies { "; Secure" } else { "" };
    let mut resp = Json(LoginResponse {
        token: &token,
        expires_at,
        user: &record.user,
    })
    .into_response();
    for c in [
        format!(
            "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
        ),
        format!("{CSRF_COOKIE}={csrf}; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"),
    ] {
        let v = HeaderValue::from_str(&c).map_err(|e| ApiError::internal(e.to_string()))?;
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

async fn logout(State(state): State<ApiState>, caller: Caller) -> Result<Response, ApiError> {
    if let Some(hash) = &caller.session {
        state.backend.delete_session(hash).await?;
    }
    caller
        .audit(&state, "logout", None, serde_json::Value::Null)
        .await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        let http_only = if name == SESSION_COOKIE {
            "; HttpOnly"
        } else {
            ""
        };
        let v = format!("{name}=; SameSite=Strict; Path=/; Max-Age=0{http_only}");
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

#[derive(Serialize)]
struct Me {
    user: User,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<Timestamp>,
}

async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        user: caller.user,
        expires_at: caller.expires_at,
    })
}
