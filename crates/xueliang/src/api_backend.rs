//! The API's [`Backend`] port on the store and the alert pipeline.

use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::watch;
use xl_api::ApiError;
use xl_api::backend::{
    AlertQuery, AlertView, AuditEntry, AuditQuery, Backend, BoxFut, DurationFigures, EventQuery,
    HistoryEntry, ResponseTimes, SessionRecord, SnapshotInfo, User, UserRecord,
};
use xl_core::alert::AlertAction;
use xl_core::{Alert, AlertId, CameraId, CommunityId, OutboxEntry, Role};
use xl_store::{Store, StoreError};

use crate::alerts::Alerts;

pub struct StoreBackend {
    pub store: Store,
    pub alerts: Arc<Alerts>,
    /// Where snapshot files are (`<data_dir>/snapshots`).
    pub snapshot_dir: PathBuf,
    /// The running topology (scope, names) and the runtime's wake-up after a write.
    pub topology: crate::runtime::TopologyFeed,
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
                .map(|r| {
                    let mut v = r.body;
                    if let Some(o) = v.as_object_mut() {
                        o.insert("id".into(), r.id.into());
                        o.insert("community".into(), r.community.to_string().into());
                    }
                    v
                })
                .collect())
        })
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
