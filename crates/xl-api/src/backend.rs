//! The port through which the API reaches the store and the alert pipeline. The binary
//! implements it (on `xl-store` and its alert processor); router tests use an in-memory fake.
//! `xl-api` depends on no other edge crate, so rows cross this boundary as the DTOs below.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use xl_core::alert::AlertAction;
use xl_core::{
    Alert, AlertId, AlertKind, AlertState, CameraId, CommunityId, GateId, OutboxEntry, Role,
};

use crate::ApiError;

/// A boxed future, so that the port is object safe (`Arc<dyn Backend>`).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + Send + 'a>>;

/// Who a user is and what they may see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    pub role: Role,
    /// The communities a property user manages (ignored for the other roles, which see all).
    pub communities: Vec<CommunityId>,
}

/// A user as stored: with the argon2 PHC string and whether the account is disabled.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user: User,
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("user", &self.user)
            .field("password_hash", &"<redacted>")
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// A login session: only the token's hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    pub username: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// One append-only audit entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Assigned by the store; 0 on a new entry.
    #[serde(default)]
    pub seq: i64,
    pub at: Timestamp,
    /// The user, `"system"`, or `"anonymous"` for failed logins.
    pub actor: String,
    /// `login`, `login_failed`, `logout`, `alert.acknowledge`, `snapshot.view`, `user.add`...
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default)]
    pub detail: serde_json::Value,
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

/// Which audit entries (newest first). `before_seq` pages backwards: give the smallest `seq`
/// of the previous page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// `at < before`.
    pub before: Option<Timestamp>,
    /// `seq < before_seq`.
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// Which alerts (`None` = no condition; `Some(vec![])` matches nothing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertQuery {
    pub states: Option<Vec<AlertState>>,
    pub kinds: Option<Vec<AlertKind>>,
    pub communities: Option<Vec<CommunityId>>,
    /// On `raised_at`, `[from, to)`.
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub limit: u32,
}

/// One step of an alert's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: Timestamp,
    pub actor: String,
    pub action: AlertAction,
    pub from_state: Option<AlertState>,
    pub to_state: AlertState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A snapshot's metadata (the JPEG is served by `/api/v1/snapshots/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<CameraId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertId>,
    pub taken_at: Timestamp,
    pub width: u32,
    pub height: u32,
    /// Person boxes drawn on it, `[x0, y0, x1, y1]` normalised.
    #[serde(default)]
    pub boxes: serde_json::Value,
}

/// An alert with its history and evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    pub alert: Alert,
    pub history: Vec<HistoryEntry>,
    pub snapshots: Vec<SnapshotInfo>,
}

/// Mean, p50 and p90 of one duration, in seconds (`None` when no alert has one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DurationFigures {
    pub count: u64,
    pub mean_secs: Option<f64>,
    pub p50_secs: Option<f64>,
    pub p90_secs: Option<f64>,
}

/// Response times of one community and alert kind over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseTimes {
    pub community: CommunityId,
    pub kind: AlertKind,
    /// Alerts raised in the period.
    pub raised: u64,
    pub to_acknowledge: DurationFigures,
    pub to_resolve: DurationFigures,
}

/// Which gate or vision events (newest first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    pub gates: Option<Vec<GateId>>,
    pub cameras: Option<Vec<CameraId>>,
    pub communities: Option<Vec<CommunityId>>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub limit: u32,
}

/// Everything the API reads from or writes to beyond the live registries.
pub trait Backend: Send + Sync + 'static {
    // Users, sessions, audit.
    fn user(&self, username: &str) -> BoxFut<'_, Option<UserRecord>>;
    fn list_users(&self) -> BoxFut<'_, Vec<UserRecord>>;
    /// A duplicate username is `InvalidInput`.
    fn insert_user(&self, user: UserRecord) -> BoxFut<'_, ()>;
    /// A missing user is `NotFound`.
    fn update_user(&self, user: UserRecord) -> BoxFut<'_, ()>;
    fn insert_session(&self, session: SessionRecord) -> BoxFut<'_, ()>;
    /// `None` when unknown or expired at `now`.
    fn session(&self, token_hash: &str, now: Timestamp) -> BoxFut<'_, Option<SessionRecord>>;
    fn delete_session(&self, token_hash: &str) -> BoxFut<'_, ()>;
    /// Ends every session of `username`.
    fn delete_sessions_of(&self, username: &str) -> BoxFut<'_, ()>;
    fn audit(&self, entry: AuditEntry) -> BoxFut<'_, ()>;
    /// Newest (highest `seq`) first; every condition of `query` applied by the store, so a
    /// page may start anywhere in the log.
    fn list_audit(&self, query: AuditQuery) -> BoxFut<'_, Vec<AuditEntry>>;

    // Alerts.
    /// Newest first.
    fn list_alerts(&self, query: AlertQuery) -> BoxFut<'_, Vec<Alert>>;
    fn alert(&self, id: &AlertId) -> BoxFut<'_, Option<AlertView>>;
    /// A person's action; illegal transitions are `InvalidInput`, a missing alert `NotFound`.
    /// The change and `audit` (its `detail` gains the change's `seq`) are committed together
    /// and published (outbox) before this returns.
    fn act(
        &self,
        id: &AlertId,
        action: AlertAction,
        actor: &str,
        note: Option<String>,
        audit: AuditEntry,
    ) -> BoxFut<'_, OutboxEntry>;
    /// Outbox entries with `seq > after`, in order (the SSE stream and its resume).
    fn outbox_after(&self, after: i64, limit: u32) -> BoxFut<'_, Vec<OutboxEntry>>;
    /// The last committed outbox seq; changes when a new entry is committed.
    fn committed(&self) -> watch::Receiver<i64>;
    /// Of alerts in `communities` (all when `None`) and routed to `routed_to` (all when `None`).
    fn response_times(
        &self,
        from: Timestamp,
        to: Timestamp,
        communities: Option<Vec<CommunityId>>,
        routed_to: Option<Role>,
    ) -> BoxFut<'_, Vec<ResponseTimes>>;

    // Evidence and events.
    /// The snapshot's metadata and the path of its JPEG file.
    fn snapshot(&self, id: &str) -> BoxFut<'_, Option<(SnapshotInfo, PathBuf)>>;
    fn latest_snapshot(&self, camera: &CameraId) -> BoxFut<'_, Option<(SnapshotInfo, PathBuf)>>;
    /// Stored gate events as JSON objects (the stored event: `id`, `gate`, `community`,
    /// `received_at`, `event` with `kind`...).
    fn gate_events(&self, query: EventQuery) -> BoxFut<'_, Vec<serde_json::Value>>;
    /// Stored vision events as JSON objects (`kind`, `camera`, `zone`, `at`...).
    fn vision_events(&self, query: EventQuery) -> BoxFut<'_, Vec<serde_json::Value>>;
}
