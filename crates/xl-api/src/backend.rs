//! The port through which the API reaches the store and the alert pipeline. The binary
//! implements it (on `xl-store` and its alert processor); router tests use an in-memory fake.
//! `xl-api` depends on no other edge crate, so rows cross this boundary as the DTOs below.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use xl_core::alert::AlertAction;
use xl_core::topology::{Entry, EntryId, EntryMeta, Secret, Topology};
use xl_core::{
    Alert, AlertId, AlertKind, AlertState, CameraId, CommunityId, ErrorKind, GateId, OutboxEntry,
    Role, StationId,
};

use crate::ApiError;

/// A boxed future, so that the port is object safe (`Arc<dyn Backend>`).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + Send + 'a>>;

/// Who a user is and what they may see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    pub role: Role,
    /// The communities a property user manages (ignored for the other roles).
    pub communities: Vec<CommunityId>,
    /// The stations a duty or police user is limited to: they see those stations'
    /// communities only (empty: all; ignored for admin and property users).
    #[serde(default)]
    pub stations: Vec<StationId>,
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

/// A topology entry as the store has it: the entry (its secret withheld: the serialiser skips
/// secrets, and reads leave them out) and what the store knows of it.
#[derive(Debug, Clone, PartialEq)]
pub struct TopologyItem {
    pub entry: Entry,
    pub meta: EntryMeta,
}

/// What a replacement does with the entry's stored secret (a camera's `password`, a gate's
/// `push_secret`), which no answer carries, so a client that edits an entry does not have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretEdit {
    /// The body left the field out: the stored secret stays (the entry carries none).
    Keep,
    /// The body gave the field: the entry's secret replaces the stored one, and none (JSON
    /// `null`) removes it.
    Replace,
}

/// Who makes a topology change, for the audit entry the store writes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub actor: String,
    /// The client's address.
    pub peer: Option<String>,
}

/// What to probe: an `rtsp://` URL without credentials, and the credentials beside it (so
/// that they never travel in a URL that might be logged). `Debug` hides the password.
#[derive(Debug, Clone)]
pub struct ProbeRequest {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// What a probe found in the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    /// `h264` or `h265`.
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// From the RTP timestamps; `None` when too few frames came.
    pub fps: Option<f64>,
    /// Frames from one key frame to the next, and the time between them; `None` when a
    /// second key frame did not come within the probe's time.
    pub gop_frames: Option<u32>,
    pub gop_secs: Option<f64>,
    /// A JPEG of the first key frame, decoded.
    pub snapshot_jpeg: Vec<u8>,
}

/// A stretch of wall-clock time, `from` to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub from: Timestamp,
    pub to: Timestamp,
}

/// What is recorded of one stream of a camera over a time range, for the timeline: recorded
/// stretches (spaces of up to two seconds bridged) and the gaps between and around them, each
/// in time order and clipped to the range asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recorded {
    pub camera: CameraId,
    pub stream: xl_core::live::StreamKind,
    pub ranges: Vec<Span>,
    pub gaps: Vec<Span>,
}

/// Recorded video to send: one MP4 assembled from a recording's segment files, whose length
/// is known before any byte is sent, read in byte ranges (HTTP `Range`) from the files as it is
/// sent.
pub trait VideoBody: Send + Sync + 'static {
    /// The MP4's length in bytes.
    fn len(&self) -> u64;
    /// Whether it has no bytes (never, for a clip that was found).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Wall time of its first picture: a key frame at or before the start asked for.
    fn start_at(&self) -> Timestamp;
    /// Wall time its last picture ends.
    fn end_at(&self) -> Timestamp;
    /// Bytes `[start, end)` (`end <= len()`). Blocking (file reads): call it off the async
    /// workers. A segment file gone since the clip was planned is an error naming it, for the
    /// log.
    fn read(&self, start: u64, end: u64) -> Result<Vec<u8>, ApiError>;
}

/// Marks a request one node of a district makes of another, with the asking node's id: such a
/// request is served where it arrives, never forwarded again. It grants nothing.
pub const FORWARDED_BY: &str = "x-xueliang-forwarded-by";

/// The caller's credentials (its `Authorization`, `Cookie` and `X-CSRF-Token` headers, nothing
/// else of theirs), for a node of a district that asks another node on the caller's behalf
/// (a forwarded camera route, a segment of a recording): sessions live in the shared store,
/// so the other node authenticates the same user, checks the same scope and audits what it
/// serves. Never logged (its `Debug` shows only which headers it holds).
#[derive(Clone, Default)]
pub struct OnBehalf(Vec<(axum::http::HeaderName, axum::http::HeaderValue)>);

impl OnBehalf {
    /// The headers that go along: the credentials, and the CSRF token a cookie session's
    /// writes need.
    const HEADERS: [&str; 3] = ["authorization", "cookie", crate::auth::CSRF_HEADER];

    /// The credential headers of a request, in the order sent.
    pub fn of(headers: &axum::http::HeaderMap) -> OnBehalf {
        let kept = Self::HEADERS
            .iter()
            .flat_map(|name| {
                headers
                    .get_all(*name)
                    .iter()
                    .map(|v| (axum::http::HeaderName::from_static(name), v.clone()))
            })
            .collect();
        OnBehalf(kept)
    }

    /// The headers to send along.
    pub fn headers(
        &self,
    ) -> impl Iterator<Item = (&axum::http::HeaderName, &axum::http::HeaderValue)> {
        self.0.iter().map(|(n, v)| (n, v))
    }
}

impl std::fmt::Debug for OnBehalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_tuple("OnBehalf").field(&names).finish()
    }
}

/// A segment file of this node's recordings, as another node asks for it
/// ([`Backend::own_segment`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    pub camera: CameraId,
    pub path: PathBuf,
    pub start_at: Timestamp,
    /// `None` while it is being written (then only its bytes so far are sent).
    pub end_at: Option<Timestamp>,
}

/// What an evidence export packages.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ExportSubject {
    /// An alert: its clip, snapshot, history and related gate events.
    Alert(AlertId),
    /// A camera's recording over a time range, with the alerts and gate events in it.
    Range {
        camera: CameraId,
        /// Default: the stream the camera records.
        #[serde(default)]
        stream: Option<xl_core::live::StreamKind>,
        from: Timestamp,
        to: Timestamp,
    },
}

/// A finished evidence package: a zip kept under the data directory, signed with the hub's
/// key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    /// `export-<id>.zip`: the name it is downloaded as.
    pub file_name: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// Hex SHA-256 of the whole zip, for the audit log and the person who receives it.
    pub sha256: String,
}

/// The hub's evidence-signing key, public half.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceKey {
    /// `ed25519`.
    pub algorithm: String,
    /// The 32-byte public key, base64 (what `xueliang verify-export --key` takes).
    pub public_key: String,
    /// Hex SHA-256 of the public key's bytes, to read out over the phone.
    pub fingerprint: String,
}

/// A key the district's nodes sign (or signed) evidence packages with
/// (`GET /api/v1/evidence/keys`): [`EvidenceKey`]'s fields, with the node and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DistrictEvidenceKey {
    /// `ed25519`.
    pub algorithm: String,
    /// The 32-byte public key, base64 (what `xueliang verify-export --key` takes).
    pub public_key: String,
    /// The key id packages name (`ok: ..., signed by key ID`).
    pub fingerprint: String,
    /// The node that signs with it (`""`: a single hub).
    pub node: String,
    /// When the district first saw it (`None`: a key not registered in a store).
    pub since: Option<Timestamp>,
}

impl From<EvidenceKey> for DistrictEvidenceKey {
    /// A key of no named node, not registered in a store: a single hub's.
    fn from(key: EvidenceKey) -> DistrictEvidenceKey {
        DistrictEvidenceKey {
            algorithm: key.algorithm,
            public_key: key.public_key,
            fingerprint: key.fingerprint,
            node: String::new(),
            since: None,
        }
    }
}

/// The district as one node sees it (`GET /api/v1/cluster`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClusterView {
    /// Whether this hub is a node of a district (`[cluster]`); a single hub has no nodes.
    pub clustered: bool,
    /// The answering node's id.
    pub node: Option<String>,
    pub nodes: Vec<ClusterNode>,
    /// Every lease held, by key.
    pub leases: Vec<ClusterLease>,
    /// Cameras pinned to a node, by camera.
    pub pins: Vec<ClusterPin>,
}

/// A camera an admin pinned to a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterPin {
    pub camera: String,
    pub node: String,
}

/// A live node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterNode {
    pub id: String,
    /// Its capacity weight.
    pub weight: u32,
    /// Its API's URL, when it says.
    pub advertise: Option<String>,
    /// Leases it holds (cameras and tasks).
    pub held: usize,
    /// Of those, cameras.
    pub cameras: usize,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: u64,
}

/// A lease: `camera.<id>`, `task.<name>`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterLease {
    pub key: String,
    pub node: String,
    /// The lease's revision (its fencing token).
    pub revision: u64,
    /// Milliseconds since it was last renewed.
    pub age_ms: u64,
}

/// The node of a district that runs a camera this node does not: where the camera's
/// node-local routes (live view, thumbnail, snapshot, decode policy) are forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The node's id.
    pub node: String,
    /// Its advertised API base URL (`http://10.0.0.5:8080`).
    pub url: String,
    /// This node's id, which the forwarded request carries (`x-xueliang-forwarded-by`).
    pub from: String,
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

    // Topology.
    /// The topology the hub runs now (secrets removed): which station each community belongs
    /// to decides what a station-scoped user sees (`auth::Caller`). Empty by default, so a
    /// station-scoped user of a backend without one sees nothing.
    fn topology_view(&self) -> Arc<Topology> {
        Arc::new(Topology::default())
    }

    // The topology as stored, and its changes (the store checks every entry and reference,
    // refuses changes to entries from the config file and stale revisions, and audits each
    // change with its before and after). A write whose result the hub could not run (its gate
    // ingest would refuse the gates that would run) is refused as `Conflict`, saying why, and
    // nothing is saved. The defaults answer that this backend keeps none.
    /// Every entry, each kind by id; secrets withheld.
    fn topology(&self) -> BoxFut<'_, Vec<TopologyItem>> {
        no_topology()
    }
    /// One entry, secret withheld.
    fn topology_entry(&self, id: &EntryId) -> BoxFut<'_, Option<TopologyItem>> {
        let _ = id;
        no_topology()
    }
    /// A new entry (revision 1). A taken id is `InvalidInput` naming the field `id`.
    fn create_entry(&self, entry: Entry, by: Author) -> BoxFut<'_, TopologyItem> {
        let _ = (entry, by);
        no_topology()
    }
    /// Entries created together, all or nothing. A refusal is `InvalidInput` whose `rows`
    /// name each refused entry by its position in `entries`, from 1.
    fn create_entries(&self, entries: Vec<Entry>, by: Author) -> BoxFut<'_, Vec<TopologyItem>> {
        let _ = (entries, by);
        no_topology()
    }
    /// Replaces an entry still at `expected_revision` (else `Conflict`); its stored secret as
    /// `secret` says.
    fn update_entry(
        &self,
        entry: Entry,
        expected_revision: u64,
        secret: SecretEdit,
        by: Author,
    ) -> BoxFut<'_, TopologyItem> {
        let _ = (entry, expected_revision, secret, by);
        no_topology()
    }
    /// Disables (or enables) an entry still at `expected_revision`.
    fn set_entry_disabled(
        &self,
        id: &EntryId,
        disabled: bool,
        expected_revision: u64,
        by: Author,
    ) -> BoxFut<'_, TopologyItem> {
        let _ = (id, disabled, expected_revision, by);
        no_topology()
    }
    /// Deletes an entry still at `expected_revision` that nothing refers to (else
    /// `Conflict`, naming the referrer), and, for a station, that no user is scoped to (else
    /// `Conflict`, naming the users).
    fn delete_entry(&self, id: &EntryId, expected_revision: u64, by: Author) -> BoxFut<'_, ()> {
        let _ = (id, expected_revision, by);
        no_topology()
    }
    /// Connects to a camera and reports its stream, within a bounded time. A camera that
    /// cannot be reached or streams nothing usable is `Upstream`, saying why (never with the
    /// credentials).
    fn probe_camera(&self, request: ProbeRequest) -> BoxFut<'_, ProbeResult> {
        let _ = request;
        Box::pin(async {
            Err(ApiError::new(
                ErrorKind::Unavailable,
                "this backend cannot probe cameras",
            ))
        })
    }
    /// A live session of a camera's stream (the caller's scope is checked before). `h265`:
    /// whether the viewer can play H.265 as it is. A camera with nothing to watch (not
    /// running, a file source) is `NotFound`.
    fn live(
        &self,
        camera: &CameraId,
        stream: xl_core::live::StreamKind,
        h265: bool,
    ) -> BoxFut<'_, Box<dyn xl_core::live::LiveFeed>> {
        let _ = (camera, stream, h265);
        Box::pin(async {
            Err(ApiError::new(
                ErrorKind::NotFound,
                "this backend has no live video",
            ))
        })
    }
    /// A JPEG of the camera's latest key frame; `None` when it has none (not running, a file
    /// source, no key frame yet).
    fn thumbnail(&self, camera: &CameraId) -> BoxFut<'_, Option<bytes::Bytes>> {
        let _ = camera;
        Box::pin(async { Ok(None) })
    }
    /// What is recorded of `camera`'s `stream` (default: the stream it records) over
    /// `[from, to)`. The caller checks scope and the range's bounds.
    fn recordings(
        &self,
        camera: &CameraId,
        stream: Option<xl_core::live::StreamKind>,
        from: Timestamp,
        to: Timestamp,
    ) -> BoxFut<'_, Recorded> {
        let _ = (camera, stream, from, to);
        no_recordings()
    }
    /// `camera`'s recording of `[from, to)` as one MP4. Nothing recorded in it is `NotFound`
    /// with the gaps ([`ApiError::with_gaps`]); a range longer than the hub allows is
    /// `InvalidInput` naming the limit. In a district, segments recorded on other nodes are
    /// fetched from them `on_behalf` of the caller.
    fn recording_clip(
        &self,
        camera: &CameraId,
        stream: Option<xl_core::live::StreamKind>,
        from: Timestamp,
        to: Timestamp,
        on_behalf: &OnBehalf,
    ) -> BoxFut<'_, Arc<dyn VideoBody>> {
        let _ = (camera, stream, from, to, on_behalf);
        no_recordings()
    }
    /// The clip of an alert (the caller has checked the alert is in scope): its camera's (or
    /// its gate's camera's) recording from the rule's `pre` before it was raised to `post`
    /// after. `NotFound` when it has no camera or nothing was recorded.
    fn alert_clip(&self, alert: &AlertId, on_behalf: &OnBehalf) -> BoxFut<'_, Arc<dyn VideoBody>> {
        let _ = (alert, on_behalf);
        no_recordings()
    }
    /// Makes a signed evidence package of `subject` (scope checked by the caller) for the
    /// user `by`.
    fn export(
        &self,
        subject: ExportSubject,
        by: &str,
        on_behalf: &OnBehalf,
    ) -> BoxFut<'_, ExportFile> {
        let _ = (subject, by, on_behalf);
        no_recordings()
    }
    /// Segment `id` of this node's recordings (`None`: no such segment, or another node's),
    /// for another node of the district that plays it.
    fn own_segment(&self, id: i64) -> BoxFut<'_, Option<SegmentFile>> {
        let _ = id;
        Box::pin(async { Ok(None) })
    }
    /// The public half of the key evidence packages are signed with.
    fn evidence_key(&self) -> BoxFut<'_, EvidenceKey> {
        no_recordings()
    }
    /// Every key the district's nodes have signed evidence packages with, oldest first (a
    /// package made on any node verifies against one of them). The default: this node's key
    /// ([`Backend::evidence_key`]) alone.
    fn evidence_keys(&self) -> BoxFut<'_, Vec<DistrictEvidenceKey>> {
        Box::pin(async move { Ok(vec![self.evidence_key().await?.into()]) })
    }
    /// In a district, the cameras other nodes run, as they last posted them, each with what
    /// scope checks read. A single hub (the default) has none.
    fn remote_cameras(&self) -> Vec<(xl_core::camera::CameraInfo, crate::cameras::CameraDto)> {
        Vec::new()
    }
    /// Pins `camera` to `node` (checked: a node id), or removes its pin (`None`). A single
    /// hub (the default) answers Unavailable.
    fn pin_camera(&self, camera: &CameraId, node: Option<&str>) -> BoxFut<'_, ()> {
        let _ = (camera, node);
        Box::pin(async {
            Err(ApiError::new(
                ErrorKind::Unavailable,
                "this hub is not a node of a district ([cluster])",
            ))
        })
    }
    /// Removes the recording index's rows of `node`, a node that left the district for good
    /// (its video went with its disk); how many. Refused (Conflict) while the node is live or
    /// for the answering node itself. A single hub (the default) has no nodes: NotFound.
    fn forget_node(&self, node: &str) -> BoxFut<'_, u64> {
        let message = format!("no node {node}: this hub is not a node of a district ([cluster])");
        Box::pin(async move { Err(ApiError::not_found(message)) })
    }
    /// The district's nodes and leases; a single hub's answer (the default) has none.
    fn cluster(&self) -> BoxFut<'_, ClusterView> {
        Box::pin(async { Ok(ClusterView::default()) })
    }
    /// In a district, the node that runs `camera` when it is another node (the holder of
    /// its lease, with its advertised URL); `None` when this node runs it, when no node does
    /// now (it is moving), or when that cannot be told (the caller then serves the request
    /// itself). A single hub (the default) runs all its cameras.
    fn camera_peer(&self, camera: &CameraId) -> BoxFut<'_, Option<Peer>> {
        let _ = camera;
        Box::pin(async { Ok(None) })
    }
}

fn no_recordings<'a, T: Send + 'a>() -> BoxFut<'a, T> {
    Box::pin(async {
        Err(ApiError::new(
            ErrorKind::Unavailable,
            "this backend keeps no recordings",
        ))
    })
}

fn no_topology<'a, T: Send + 'a>() -> BoxFut<'a, T> {
    Box::pin(async {
        Err(ApiError::new(
            ErrorKind::Unavailable,
            "this backend keeps no topology",
        ))
    })
}
