//! The API's [`Backend`] port on the store and the alert pipeline.

use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::watch;
use xl_api::ApiError;
use xl_api::RowError;
use xl_api::backend::{
    AlertQuery, AlertView, AuditEntry, AuditQuery, Author as ApiAuthor, Backend, BoxFut,
    DurationFigures, EventQuery, HistoryEntry, OnBehalf, ProbeRequest, ProbeResult, ResponseTimes,
    SecretEdit, SessionRecord, SnapshotInfo, TopologyItem, User, UserRecord,
};
use xl_core::ErrorKind;
use xl_core::alert::AlertAction;
use xl_core::topology::{Entry, EntryId, EntryMeta, Kind};
use xl_core::{Alert, AlertId, CameraId, CommunityId, OutboxEntry, Role};
use xl_store::{Author, SecretUpdate};
use xl_store::{Store, StoreError};

use xl_alerts::Alerts;

pub struct StoreBackend {
    /// With the runtime's check of topology writes ([`crate::runtime::gate_check`]), so that
    /// nothing is saved that the hub would refuse to run.
    pub store: Store,
    pub alerts: Arc<Alerts>,
    /// Where snapshot files are (`<data_dir>/snapshots`).
    pub snapshot_dir: PathBuf,
    /// The running topology (scope, names) and the runtime's wake-up after a write.
    pub topology: crate::runtime::TopologyFeed,
    /// The running cameras' streams.
    pub live: Arc<crate::live::LiveStreams>,
    /// The cameras' recordings: playback, clips, exports.
    pub recordings: Arc<crate::recording::Recordings>,
    /// Signs evidence exports.
    pub evidence_key: Arc<xl_evidence::HubKey>,
    /// Exports go under its `exports/`.
    pub data_dir: PathBuf,
    /// On a node of a district: its membership (`GET /api/v1/cluster`).
    pub cluster: Option<Arc<xl_cluster::Cluster>>,
}

fn api(e: StoreError) -> ApiError {
    ApiError::new(e.kind(), e.to_string())
}

fn user_record(u: xl_store::UserRow) -> UserRecord {
    UserRecord {
        user: User {
            username: u.username,
            role: u.role,
            communities: u.communities,
            stations: u.stations,
        },
        password_hash: u.password_hash,
        disabled: u.disabled,
        created_at: u.created_at,
    }
}

fn user_row(u: UserRecord) -> xl_store::UserRow {
    xl_store::UserRow {
        username: u.user.username,
        password_hash: u.password_hash,
        role: u.user.role,
        communities: u.user.communities,
        stations: u.user.stations,
        disabled: u.disabled,
        created_at: u.created_at,
    }
}

fn snapshot_info(s: &xl_store::SnapshotRow) -> SnapshotInfo {
    SnapshotInfo {
        id: s.id.clone(),
        camera: s.camera.clone(),
        alert: s.alert.clone(),
        taken_at: s.taken_at,
        width: s.width,
        height: s.height,
        boxes: s.boxes.clone(),
    }
}

fn durations(d: xl_store::Durations) -> DurationFigures {
    DurationFigures {
        count: d.count,
        mean_secs: d.mean_secs,
        p50_secs: d.p50_secs,
        p90_secs: d.p90_secs,
    }
}

impl StoreBackend {
    fn with_path(&self, s: xl_store::SnapshotRow) -> (SnapshotInfo, PathBuf) {
        (snapshot_info(&s), self.snapshot_dir.join(&s.path))
    }
}

impl Backend for StoreBackend {
    fn user(&self, username: &str) -> BoxFut<'_, Option<UserRecord>> {
        let username = username.to_owned();
        Box::pin(async move {
            Ok(self
                .store
                .user(&username)
                .await
                .map_err(api)?
                .map(user_record))
        })
    }

    fn list_users(&self) -> BoxFut<'_, Vec<UserRecord>> {
        Box::pin(async move {
            Ok(self
                .store
                .list_users()
                .await
                .map_err(api)?
                .into_iter()
                .map(user_record)
                .collect())
        })
    }

    fn insert_user(&self, user: UserRecord) -> BoxFut<'_, ()> {
        Box::pin(async move { self.store.insert_user(&user_row(user)).await.map_err(api) })
    }

    fn update_user(&self, user: UserRecord) -> BoxFut<'_, ()> {
        Box::pin(async move { self.store.update_user(&user_row(user)).await.map_err(api) })
    }

    fn insert_session(&self, s: SessionRecord) -> BoxFut<'_, ()> {
        Box::pin(async move {
            self.store
                .insert_session(&xl_store::SessionRow {
                    token_hash: s.token_hash,
                    username: s.username,
                    created_at: s.created_at,
                    expires_at: s.expires_at,
                })
                .await
                .map_err(api)
        })
    }

    fn session(&self, token_hash: &str, now: Timestamp) -> BoxFut<'_, Option<SessionRecord>> {
        let token_hash = token_hash.to_owned();
        Box::pin(async move {
            Ok(self
                .store
                .session(&token_hash, now)
                .await
                .map_err(api)?
                .map(|s| SessionRecord {
                    token_hash: s.token_hash,
                    username: s.username,
                    created_at: s.created_at,
                    expires_at: s.expires_at,
                }))
        })
    }

    fn delete_session(&self, token_hash: &str) -> BoxFut<'_, ()> {
        let token_hash = token_hash.to_owned();
        Box::pin(async move {
            self.store
                .delete_session(&token_hash)
                .await
                .map(|_| ())
                .map_err(api)
        })
    }

    fn delete_sessions_of(&self, username: &str) -> BoxFut<'_, ()> {
        let username = username.to_owned();
        Box::pin(async move {
            self.store
                .delete_sessions_of(&username)
                .await
                .map(|_| ())
                .map_err(api)
        })
    }

    fn audit(&self, e: AuditEntry) -> BoxFut<'_, ()> {
        Box::pin(async move {
            self.store
                .audit(&new_audit(e))
                .await
                .map(|_| ())
                .map_err(api)
        })
    }

    fn list_audit(&self, q: AuditQuery) -> BoxFut<'_, Vec<AuditEntry>> {
        Box::pin(async move {
            let rows = self
                .store
                .list_audit(&xl_store::AuditFilter {
                    from: None,
                    before: q.before,
                    before_seq: q.before_seq,
                    limit: q.limit,
                })
                .await
                .map_err(api)?;
            Ok(rows
                .into_iter()
                .map(|r| AuditEntry {
                    seq: r.seq,
                    at: r.at,
                    actor: r.actor,
                    action: r.action,
                    target: r.target,
                    detail: r.detail,
                    peer: r.peer,
                })
                .collect())
        })
    }

    fn list_alerts(&self, q: AlertQuery) -> BoxFut<'_, Vec<Alert>> {
        Box::pin(async move {
            self.store
                .list_alerts(&xl_store::AlertFilter {
                    states: q.states,
                    kinds: q.kinds,
                    communities: q.communities,
                    from: q.from,
                    to: q.to,
                    limit: q.limit,
                })
                .await
                .map_err(api)
        })
    }

    fn alert(&self, id: &AlertId) -> BoxFut<'_, Option<AlertView>> {
        let id = id.clone();
        Box::pin(async move {
            let Some(d) = self.store.alert(&id).await.map_err(api)? else {
                return Ok(None);
            };
            Ok(Some(AlertView {
                alert: d.alert,
                history: d
                    .history
                    .into_iter()
                    .map(|h| HistoryEntry {
                        at: h.at,
                        actor: h.actor,
                        action: h.action,
                        from_state: h.from_state,
                        to_state: h.to_state,
                        note: h.note,
                    })
                    .collect(),
                snapshots: d.snapshots.iter().map(snapshot_info).collect(),
            }))
        })
    }

    fn act(
        &self,
        id: &AlertId,
        action: AlertAction,
        actor: &str,
        note: Option<String>,
        audit: AuditEntry,
    ) -> BoxFut<'_, OutboxEntry> {
        let (id, actor) = (id.clone(), actor.to_owned());
        Box::pin(async move {
            self.alerts
                .act(&id, action, &actor, note.as_deref(), &new_audit(audit))
                .await
                .map_err(api)
        })
    }

    fn outbox_after(&self, after: i64, limit: u32) -> BoxFut<'_, Vec<OutboxEntry>> {
        Box::pin(async move { self.store.outbox_after(after, limit).await.map_err(api) })
    }

    fn committed(&self) -> watch::Receiver<i64> {
        self.alerts.committed()
    }

    fn response_times(
        &self,
        from: Timestamp,
        to: Timestamp,
        communities: Option<Vec<CommunityId>>,
        routed_to: Option<Role>,
    ) -> BoxFut<'_, Vec<ResponseTimes>> {
        Box::pin(async move {
            let rows = self
                .store
                .response_times(from, to, communities.as_deref(), routed_to)
                .await
                .map_err(api)?;
            Ok(rows
                .into_iter()
                .map(|r| ResponseTimes {
                    community: r.community,
                    kind: r.kind,
                    raised: r.raised,
                    to_acknowledge: durations(r.to_acknowledge),
                    to_resolve: durations(r.to_resolve),
                })
                .collect())
        })
    }

    fn snapshot(&self, id: &str) -> BoxFut<'_, Option<(SnapshotInfo, PathBuf)>> {
        let id = id.to_owned();
        Box::pin(async move {
            Ok(self
                .store
                .snapshot(&id)
                .await
                .map_err(api)?
                .map(|s| self.with_path(s)))
        })
    }

    fn latest_snapshot(&self, camera: &CameraId) -> BoxFut<'_, Option<(SnapshotInfo, PathBuf)>> {
        let camera = camera.clone();
        Box::pin(async move {
            Ok(self
                .store
                .latest_snapshot(&camera)
                .await
                .map_err(api)?
                .map(|s| self.with_path(s)))
        })
    }

    fn gate_events(&self, q: EventQuery) -> BoxFut<'_, Vec<serde_json::Value>> {
        Box::pin(async move {
            let rows = self
                .store
                .list_gate_events(&xl_store::GateEventFilter {
                    gates: q.gates,
                    communities: q.communities,
                    kinds: None,
                    from: q.from,
                    to: q.to,
                    limit: q.limit,
                })
                .await
                .map_err(api)?;
            Ok(rows.into_iter().map(|r| r.body).collect())
        })
    }

    fn vision_events(&self, q: EventQuery) -> BoxFut<'_, Vec<serde_json::Value>> {
        Box::pin(async move {
            let rows = self
                .store
                .list_vision_events(&xl_store::VisionEventFilter {
                    cameras: q.cameras,
                    communities: q.communities,
                    kinds: None,
                    zones: None,
                    from: q.from,
                    to: q.to,
                    limit: q.limit,
                })
                .await
                .map_err(api)?;
            Ok(rows
                .into_iter()
                .map(crate::feeds::vision_event_json)
                .collect())
        })
    }

    fn topology_view(&self) -> Arc<xl_core::topology::Topology> {
        self.topology.applied.borrow().clone()
    }

    fn topology(&self) -> BoxFut<'_, Vec<TopologyItem>> {
        Box::pin(async move {
            let stored = self.store.topology().await.map_err(api)?;
            Ok(stored
                .topology
                .entries()
                .into_iter()
                .filter_map(|entry| {
                    let meta = stored.meta.get(&entry.id())?.clone();
                    Some(TopologyItem { entry, meta })
                })
                .collect())
        })
    }

    fn topology_entry(&self, id: &EntryId) -> BoxFut<'_, Option<TopologyItem>> {
        let id = id.clone();
        Box::pin(async move {
            let found = self.store.topology_entry(&id).await.map_err(api)?;
            Ok(found.map(|(entry, meta)| TopologyItem { entry, meta }))
        })
    }

    fn create_entry(&self, entry: Entry, by: ApiAuthor) -> BoxFut<'_, TopologyItem> {
        Box::pin(async move {
            let meta = self
                .store
                .create_entry(entry.clone(), &author(by), Timestamp::now())
                .await
                .map_err(topology_error)?;
            self.topology.changed.notify_one();
            Ok(shown(entry, meta))
        })
    }

    fn create_entries(&self, entries: Vec<Entry>, by: ApiAuthor) -> BoxFut<'_, Vec<TopologyItem>> {
        Box::pin(async move {
            let metas = self
                .store
                .create_entries(entries.clone(), &author(by), Timestamp::now())
                .await
                .map_err(topology_error)?;
            self.topology.changed.notify_one();
            Ok(entries
                .into_iter()
                .zip(metas)
                .map(|(entry, meta)| shown(entry, meta))
                .collect())
        })
    }

    fn update_entry(
        &self,
        entry: Entry,
        expected_revision: u64,
        secret: SecretEdit,
        by: ApiAuthor,
    ) -> BoxFut<'_, TopologyItem> {
        let secret = match secret {
            SecretEdit::Keep => SecretUpdate::KeepUnlessGiven,
            SecretEdit::Replace => SecretUpdate::Replace,
        };
        Box::pin(async move {
            let meta = self
                .store
                .update_entry(
                    entry.clone(),
                    expected_revision,
                    secret,
                    &author(by),
                    Timestamp::now(),
                )
                .await
                .map_err(topology_error)?;
            self.topology.changed.notify_one();
            Ok(shown(entry, meta))
        })
    }

    fn set_entry_disabled(
        &self,
        id: &EntryId,
        disabled: bool,
        expected_revision: u64,
        by: ApiAuthor,
    ) -> BoxFut<'_, TopologyItem> {
        let id = id.clone();
        Box::pin(async move {
            self.store
                .set_entry_disabled(
                    &id,
                    disabled,
                    expected_revision,
                    &author(by),
                    Timestamp::now(),
                )
                .await
                .map_err(topology_error)?;
            self.topology.changed.notify_one();
            // The entry as stored now (a change made since comes with its own revision, so
            // the answer and its ETag agree).
            let (entry, meta) = self
                .store
                .topology_entry(&id)
                .await
                .map_err(api)?
                .ok_or_else(|| ApiError::not_found(format!("no {id}")))?;
            Ok(TopologyItem { entry, meta })
        })
    }

    fn delete_entry(&self, id: &EntryId, expected_revision: u64, by: ApiAuthor) -> BoxFut<'_, ()> {
        let id = id.clone();
        Box::pin(async move {
            self.store
                .delete_entry(&id, expected_revision, &author(by), Timestamp::now())
                .await
                .map_err(topology_error)?;
            self.topology.changed.notify_one();
            Ok(())
        })
    }

    fn live(
        &self,
        camera: &CameraId,
        stream: xl_core::live::StreamKind,
        h265: bool,
    ) -> BoxFut<'_, Box<dyn xl_core::live::LiveFeed>> {
        let camera = camera.clone();
        Box::pin(async move { self.live.open(&camera, stream, h265).await })
    }

    fn thumbnail(&self, camera: &CameraId) -> BoxFut<'_, Option<bytes::Bytes>> {
        let camera = camera.clone();
        Box::pin(async move { self.live.thumbnail(&camera).await })
    }

    fn recordings(
        &self,
        camera: &CameraId,
        stream: Option<xl_core::live::StreamKind>,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> BoxFut<'_, xl_api::backend::Recorded> {
        let camera = camera.clone();
        Box::pin(async move {
            crate::playback::recorded(&self.store, &self.recordings, &camera, stream, from, to)
                .await
        })
    }

    fn recording_clip(
        &self,
        camera: &CameraId,
        stream: Option<xl_core::live::StreamKind>,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
        on_behalf: &OnBehalf,
    ) -> BoxFut<'_, Arc<dyn xl_api::backend::VideoBody>> {
        let (camera, on_behalf) = (camera.clone(), on_behalf.clone());
        Box::pin(async move {
            let r = &self.recordings;
            crate::playback::clip(&self.store, r, &camera, stream, from, to, &on_behalf).await
        })
    }

    fn alert_clip(
        &self,
        alert: &AlertId,
        on_behalf: &OnBehalf,
    ) -> BoxFut<'_, Arc<dyn xl_api::backend::VideoBody>> {
        let (alert, on_behalf) = (alert.clone(), on_behalf.clone());
        Box::pin(async move {
            crate::playback::alert_clip(&self.store, &self.recordings, &alert, &on_behalf).await
        })
    }

    fn export(
        &self,
        subject: xl_api::backend::ExportSubject,
        by: &str,
        on_behalf: &OnBehalf,
    ) -> BoxFut<'_, xl_api::backend::ExportFile> {
        let (by, on_behalf) = (by.to_owned(), on_behalf.clone());
        Box::pin(async move {
            crate::playback::Exporter {
                backend: self,
                key: &self.evidence_key,
                data_dir: &self.data_dir,
                on_behalf: &on_behalf,
            }
            .export(subject, &by)
            .await
        })
    }

    fn own_segment(&self, id: i64) -> BoxFut<'_, Option<xl_api::backend::SegmentFile>> {
        Box::pin(async move {
            let row = self.store.segment(id).await.map_err(|e| {
                xl_api::ApiError::internal(format!("reading recording segment {id}: {e}"))
            })?;
            Ok(row.filter(|s| s.node == self.recordings.node()).map(|s| {
                xl_api::backend::SegmentFile {
                    camera: s.camera,
                    path: self.data_dir.join(&s.path),
                    start_at: s.start_at,
                    end_at: s.end_at,
                }
            }))
        })
    }

    fn evidence_key(&self) -> BoxFut<'_, xl_api::backend::EvidenceKey> {
        let key = crate::playback::evidence_key(&self.evidence_key);
        Box::pin(async move { Ok(key) })
    }

    /// As the nodes registered them at start (each its own key; see `Hub::start`).
    fn evidence_keys(&self) -> BoxFut<'_, Vec<xl_api::backend::DistrictEvidenceKey>> {
        Box::pin(async move {
            let rows = self.store.evidence_keys().await.map_err(api)?;
            Ok(rows
                .into_iter()
                .map(|r| xl_api::backend::DistrictEvidenceKey {
                    algorithm: "ed25519".to_owned(),
                    public_key: r.public_key,
                    fingerprint: r.key_id,
                    node: r.node,
                    since: Some(r.first_seen_at),
                })
                .collect())
        })
    }

    fn remote_cameras(&self) -> Vec<(xl_core::camera::CameraInfo, xl_api::CameraDto)> {
        match &self.cluster {
            Some(c) => crate::cluster::remote_cameras(c, &self.topology.applied.borrow()),
            None => Vec::new(),
        }
    }

    fn cluster(&self) -> BoxFut<'_, xl_api::backend::ClusterView> {
        Box::pin(async move {
            let Some(cluster) = &self.cluster else {
                return Ok(xl_api::backend::ClusterView::default());
            };
            let view = cluster.view().await.map_err(|e| {
                tracing::warn!(error = %e, "cannot read the cluster's view from NATS");
                ApiError::new(
                    e.kind(),
                    "the cluster's state could not be read from NATS; try again",
                )
            })?;
            Ok(crate::cluster::view_dto(
                cluster.node(),
                view,
                cluster.pins(),
            ))
        })
    }

    fn camera_peer(&self, camera: &CameraId) -> BoxFut<'_, Option<xl_api::backend::Peer>> {
        let camera = camera.clone();
        Box::pin(async move {
            let Some(cluster) = &self.cluster else {
                return Ok(None);
            };
            let Ok(key) = xl_cluster::LeaseKey::camera(camera.as_str()) else {
                return Ok(None);
            };
            if cluster.held().borrow().leases.contains_key(&key) {
                return Ok(None);
            }
            let holder = match cluster.holder(&key).await {
                Ok(Some(holder)) if holder != cluster.node() => holder,
                Ok(_) => return Ok(None),
                Err(e) => {
                    tracing::debug!(camera = %camera, error = %e, "cannot read the camera's holder; serving here");
                    return Ok(None);
                }
            };
            let url = match cluster.node_address(&holder).await {
                Ok(Some(url)) => url,
                Ok(None) => {
                    tracing::debug!(camera = %camera, node = %holder, "the camera's node advertises no address ([cluster] advertise); serving here");
                    return Ok(None);
                }
                Err(e) => {
                    tracing::debug!(camera = %camera, node = %holder, error = %e, "cannot read the node's address; serving here");
                    return Ok(None);
                }
            };
            Ok(Some(xl_api::backend::Peer {
                node: holder,
                url,
                from: cluster.node().to_owned(),
            }))
        })
    }

    fn forget_node(&self, node: &str) -> BoxFut<'_, u64> {
        let node = node.to_owned();
        Box::pin(async move {
            let Some(cluster) = &self.cluster else {
                return Err(ApiError::not_found(format!(
                    "no node {node}: this hub is not a node of a district ([cluster])"
                )));
            };
            xl_cluster::check_node_id(&node).map_err(|e| {
                ApiError::new(xl_core::ErrorKind::InvalidInput, format!("node: {e}"))
            })?;
            let conflict = |why: String| ApiError::new(xl_core::ErrorKind::Conflict, why);
            if node == cluster.node() {
                return Err(conflict(format!(
                    "node {node} is the node answering: its recordings are still its own"
                )));
            }
            // Only a node with no heartbeat is forgotten; a node that is merely down for a
            // while comes back with its disk, so an admin forgets only one gone for good.
            let view = cluster.view().await.map_err(|e| {
                tracing::warn!(error = %e, "cannot read the cluster's view from NATS");
                ApiError::new(
                    e.kind(),
                    "the district's live nodes could not be read from NATS; try again",
                )
            })?;
            if view.nodes.iter().any(|n| n.id == node) {
                return Err(conflict(format!(
                    "node {node} is live: stop it for good before forgetting its recordings"
                )));
            }
            let removed = self.store.forget_node_segments(&node).await.map_err(api)?;
            tracing::info!(%node, segments = removed, "forgot a departed node's recordings");
            Ok(removed)
        })
    }

    fn pin_camera(&self, camera: &CameraId, node: Option<&str>) -> BoxFut<'_, ()> {
        let (camera, node) = (camera.clone(), node.map(str::to_owned));
        Box::pin(async move {
            let Some(cluster) = &self.cluster else {
                return Err(ApiError::new(
                    xl_core::ErrorKind::Unavailable,
                    "this hub is not a node of a district ([cluster])",
                ));
            };
            let key = xl_cluster::LeaseKey::camera(camera.as_str())
                .map_err(|e| ApiError::new(e.kind(), e.to_string()))?;
            if let Some(n) = &node {
                xl_cluster::check_node_id(n).map_err(|e| {
                    ApiError::new(xl_core::ErrorKind::InvalidInput, format!("node: {e}"))
                })?;
            }
            cluster.pin(&key, node.as_deref()).await.map_err(|e| {
                tracing::warn!(camera = %camera, error = %e, "cannot store a pin");
                ApiError::new(e.kind(), "the pin could not be stored in NATS; try again")
            })
        })
    }

    fn probe_camera(&self, request: ProbeRequest) -> BoxFut<'_, ProbeResult> {
        Box::pin(async move {
            let credentials = request.username.map(|username| xl_rtsp::Credentials {
                username,
                password: request
                    .password
                    .as_ref()
                    .map(|p| p.expose().to_owned())
                    .unwrap_or_default(),
            });
            let source = crate::probe::source(
                &request.url,
                credentials,
                xl_rtsp::TransportKind::Tcp,
                crate::probe::API_LIMIT / 3,
            )
            .map_err(|e| ApiError::invalid(format!("{e:#}")).with_field("url"))?;
            let Ok(_permit) = PROBES.try_acquire() else {
                return Err(ApiError::new(
                    ErrorKind::Unavailable,
                    "too many camera probes at once",
                ));
            };
            let found = crate::probe::probe_bounded(&source).await.map_err(|e| {
                tracing::info!(url = %source.url, error = %e, "camera probe failed");
                ApiError::new(e.kind(), e.to_string())
            })?;
            let r = found.report;
            Ok(ProbeResult {
                codec: r.codec,
                width: r.width,
                height: r.height,
                fps: r.fps,
                gop_frames: r.gop_frames,
                gop_secs: r.gop_secs,
                snapshot_jpeg: found.snapshot.bytes,
            })
        })
    }
}

/// Probes at once: each holds an RTSP session and, for a moment, a decoder.
static PROBES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

fn author(by: ApiAuthor) -> Author {
    Author {
        actor: by.actor,
        peer: by.peer,
    }
}

/// An entry written as the API answers it: without its secret.
fn shown(mut entry: Entry, meta: EntryMeta) -> TopologyItem {
    entry.set_secret(None);
    TopologyItem { entry, meta }
}

/// A topology write's refusal, naming the entry and the field (an id already taken is about
/// `id`); an import's, each entry by its position from 1.
fn topology_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Topology(e) => e.into(),
        StoreError::Refused {
            entry: Some(ref id),
            ..
        } => {
            let (kind, id) = (id.kind(), id.as_str().to_owned());
            api(e).with_entry(kind, id)
        }
        StoreError::StationInScope { ref station, .. } => {
            let station = station.clone();
            api(e).with_entry(Kind::Station, station)
        }
        StoreError::Duplicate { what, id } => {
            let err = ApiError::invalid(format!("{what} {id:?} already exists")).with_field("id");
            match Kind::ALL.into_iter().find(|k| k.as_str() == what) {
                Some(kind) => err.with_entry(kind, id),
                None => err,
            }
        }
        StoreError::Batch { total, refused } => {
            let message = format!(
                "{} of {total} entries refused; nothing was stored",
                refused.len()
            );
            let rows = refused
                .into_iter()
                .map(|(i, e)| {
                    let e = topology_error(e);
                    RowError {
                        row: i + 1,
                        field: e.field().map(str::to_owned),
                        message: e.message,
                    }
                })
                .collect();
            ApiError::invalid(message).with_rows(rows)
        }
        e => api(e),
    }
}

fn new_audit(e: AuditEntry) -> xl_store::NewAudit {
    xl_store::NewAudit {
        at: e.at,
        actor: e.actor,
        action: e.action,
        target: e.target,
        detail: e.detail,
        peer: e.peer,
    }
}
