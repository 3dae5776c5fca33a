//! An in-memory [`Backend`] for router tests. It honours the queries it is given, so that the
//! API's scoping is what the tests observe.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use serde_json::Value;
use tokio::sync::watch;
use xl_core::alert::{AlertAction, By};
use xl_core::live::StreamKind;
use xl_core::{Alert, AlertId, CameraId, CommunityId, OutboxEntry, Role};

use xl_core::topology::{Entry, EntryId, EntryMeta, Origin, Topology};

use crate::backend::*;
use crate::{ApiError, RowError};

#[derive(Default)]
pub(crate) struct Data {
    pub users: Vec<UserRecord>,
    pub sessions: Vec<SessionRecord>,
    pub audit: Vec<AuditEntry>,
    pub alerts: Vec<AlertView>,
    pub outbox: Vec<OutboxEntry>,
    pub snapshots: Vec<(SnapshotInfo, PathBuf)>,
    pub gate_events: Vec<Value>,
    pub vision_events: Vec<Value>,
    pub times: Vec<ResponseTimes>,
    /// What `topology_view` answers: the stations of communities, for station scope.
    pub topology: xl_core::topology::Topology,
    /// The topology's store (`topology`, `create_entry`...): entries with their secrets.
    pub stored: Vec<TopologyItem>,
    /// Every probe asked for.
    pub probes: Vec<ProbeRequest>,
    /// Recorded video, by camera (whatever the stream).
    pub recordings: Vec<FakeRecording>,
    /// Alerts' clips.
    pub clips: Vec<(AlertId, MemVideo)>,
    /// What `export` answers (`None`: this backend keeps no recordings).
    pub export: Option<ExportFile>,
    /// Every export made: what of, and for whom.
    pub exports: Vec<(ExportSubject, String)>,
    pub evidence_key: Option<EvidenceKey>,
    /// What `evidence_keys` answers (`None`: the trait's default, `evidence_key` alone).
    pub evidence_keys: Option<Vec<DistrictEvidenceKey>>,
    /// This node's segment files (`own_segment`), by id.
    pub segments: Vec<(i64, SegmentFile)>,
    /// The credential headers each recording, clip and export call came with.
    pub on_behalf: Vec<Vec<String>>,
}

/// A camera's recording: where it has video, and the MP4 every clip of it answers with.
#[derive(Clone)]
pub(crate) struct FakeRecording {
    pub camera: CameraId,
    /// In time order, not overlapping.
    pub ranges: Vec<Span>,
    pub video: MemVideo,
}

/// An MP4 in memory. Each read is recorded; a read reaching `fail_from` fails, as one of a
/// segment file deleted since the clip was planned.
#[derive(Clone)]
pub(crate) struct MemVideo {
    pub bytes: Arc<Vec<u8>>,
    pub start_at: Timestamp,
    pub end_at: Timestamp,
    pub fail_from: Option<u64>,
    pub reads: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl MemVideo {
    pub fn new(bytes: Vec<u8>, start_at: Timestamp, end_at: Timestamp) -> MemVideo {
        MemVideo {
            bytes: Arc::new(bytes),
            start_at,
            end_at,
            fail_from: None,
            reads: Arc::default(),
        }
    }
}

impl VideoBody for MemVideo {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn start_at(&self) -> Timestamp {
        self.start_at
    }

    fn end_at(&self) -> Timestamp {
        self.end_at
    }

    fn read(&self, start: u64, end: u64) -> Result<Vec<u8>, ApiError> {
        self.reads.lock().unwrap().push((start, end));
        assert!(start < end && end <= self.len(), "read {start}..{end}");
        if self.fail_from.is_some_and(|f| end > f) {
            return Err(ApiError::internal(
                "segment /data/rec/cam-a/0001.m4s is gone",
            ));
        }
        Ok(self.bytes[start as usize..end as usize].to_vec())
    }
}

/// An export's zip of `content`, written to a file of its own under the temp directory.
pub(crate) fn export_file(content: &[u8]) -> ExportFile {
    use sha2::Digest;
    let dir = std::env::temp_dir().join(format!(
        "xl-api-export-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file_name = "export-0192f3a4.zip".to_owned();
    let path = dir.join(&file_name);
    std::fs::write(&path, content).unwrap();
    let sha256 = sha2::Sha256::digest(content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    ExportFile {
        file_name,
        path,
        bytes: content.len() as u64,
        sha256,
    }
}

/// `ranges` clipped to `[from, to)`, and the gaps between and around them there.
fn recorded_in(ranges: &[Span], from: Timestamp, to: Timestamp) -> (Vec<Span>, Vec<Span>) {
    let mut inside = Vec::new();
    let mut gaps = Vec::new();
    let mut at = from;
    for r in ranges {
        let (start, end) = (r.from.max(from), r.to.min(to));
        if start >= end {
            continue;
        }
        if at < start {
            gaps.push(Span {
                from: at,
                to: start,
            });
        }
        inside.push(Span {
            from: start,
            to: end,
        });
        at = end;
    }
    if at < to {
        gaps.push(Span { from: at, to });
    }
    (inside, gaps)
}

pub(crate) struct Fake {
    pub data: Mutex<Data>,
    committed: watch::Sender<i64>,
}

impl Fake {
    pub fn new(data: Data) -> Fake {
        Fake {
            data: Mutex::new(data),
            committed: watch::channel(0).0,
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap()
    }

    /// Commits an outbox entry for `alert` (as the alert processor would) and returns its seq.
    pub fn commit(&self, alert: Alert, change: AlertAction) -> i64 {
        let seq = {
            let mut d = self.lock();
            let seq = d.outbox.len() as i64 + 1;
            d.outbox.push(OutboxEntry {
                seq,
                at: alert.last_seen_at,
                change,
                alert,
            });
            seq
        };
        self.committed.send_replace(seq);
        seq
    }

    pub fn audit_actions(&self) -> Vec<(String, String)> {
        self.lock()
            .audit
            .iter()
            .map(|e| (e.actor.clone(), e.action.clone()))
            .collect()
    }
}

fn ready<'a, T: Send + 'a>(v: Result<T, ApiError>) -> BoxFut<'a, T> {
    Box::pin(async move { v })
}

fn in_list<T: PartialEq>(filter: &Option<Vec<T>>, v: &T) -> bool {
    filter.as_ref().is_none_or(|f| f.contains(v))
}

fn in_range(from: Option<Timestamp>, to: Option<Timestamp>, at: Timestamp) -> bool {
    from.is_none_or(|f| at >= f) && to.is_none_or(|t| at < t)
}

fn events(rows: &[Value], q: &EventQuery, at_key: &str) -> Vec<Value> {
    rows.iter()
        .filter(|r| {
            let s = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            let at: Timestamp = s(at_key).parse().unwrap();
            in_list(
                &q.gates
                    .as_ref()
                    .map(|g| g.iter().map(|x| x.to_string()).collect()),
                &s("gate"),
            ) && in_list(
                &q.cameras
                    .as_ref()
                    .map(|g| g.iter().map(|x| x.to_string()).collect()),
                &s("camera"),
            ) && in_list(
                &q.communities
                    .as_ref()
                    .map(|g| g.iter().map(|x| x.to_string()).collect()),
                &s("community"),
            ) && in_range(q.from, q.to, at)
        })
        .take(q.limit as usize)
        .cloned()
        .collect()
}

impl Backend for Fake {
    fn user(&self, username: &str) -> BoxFut<'_, Option<UserRecord>> {
        let u = self
            .lock()
            .users
            .iter()
            .find(|u| u.user.username == username)
            .cloned();
        ready(Ok(u))
    }

    fn list_users(&self) -> BoxFut<'_, Vec<UserRecord>> {
        ready(Ok(self.lock().users.clone()))
    }

    fn insert_user(&self, user: UserRecord) -> BoxFut<'_, ()> {
        let mut d = self.lock();
        if d.users
            .iter()
            .any(|u| u.user.username == user.user.username)
        {
            return ready(Err(ApiError::invalid("duplicate username")));
        }
        d.users.push(user);
        ready(Ok(()))
    }

    fn update_user(&self, user: UserRecord) -> BoxFut<'_, ()> {
        let mut d = self.lock();
        match d
            .users
            .iter_mut()
            .find(|u| u.user.username == user.user.username)
        {
            Some(u) => {
                *u = user;
                ready(Ok(()))
            }
            None => ready(Err(ApiError::not_found("no such user"))),
        }
    }

    fn insert_session(&self, session: SessionRecord) -> BoxFut<'_, ()> {
        self.lock().sessions.push(session);
        ready(Ok(()))
    }

    fn session(&self, token_hash: &str, now: Timestamp) -> BoxFut<'_, Option<SessionRecord>> {
        let s = self
            .lock()
            .sessions
            .iter()
            .find(|s| s.token_hash == token_hash && s.expires_at > now)
            .cloned();
        ready(Ok(s))
    }

    fn delete_session(&self, token_hash: &str) -> BoxFut<'_, ()> {
        self.lock().sessions.retain(|s| s.token_hash != token_hash);
        ready(Ok(()))
    }

    fn delete_sessions_of(&self, username: &str) -> BoxFut<'_, ()> {
        self.lock().sessions.retain(|s| s.username != username);
        ready(Ok(()))
    }

    fn audit(&self, mut entry: AuditEntry) -> BoxFut<'_, ()> {
        let mut d = self.lock();
        entry.seq = d.audit.len() as i64 + 1;
        d.audit.push(entry);
        ready(Ok(()))
    }

    fn list_audit(&self, q: AuditQuery) -> BoxFut<'_, Vec<AuditEntry>> {
        let rows = self
            .lock()
            .audit
            .iter()
            .rev()
            .filter(|e| q.before.is_none_or(|b| e.at < b))
            .filter(|e| q.before_seq.is_none_or(|s| e.seq < s))
            .take(q.limit as usize)
            .cloned()
            .collect();
        ready(Ok(rows))
    }

    fn list_alerts(&self, q: AlertQuery) -> BoxFut<'_, Vec<Alert>> {
        let mut rows: Vec<Alert> = self
            .lock()
            .alerts
            .iter()
            .map(|v| v.alert.clone())
            .filter(|a| {
                in_list(&q.states, &a.state)
                    && in_list(&q.kinds, &a.kind)
                    && in_list(&q.communities, &a.community)
                    && in_range(q.from, q.to, a.raised_at)
            })
            .collect();
        rows.sort_by_key(|a| std::cmp::Reverse(a.raised_at));
        rows.truncate(q.limit as usize);
        ready(Ok(rows))
    }

    fn alert(&self, id: &AlertId) -> BoxFut<'_, Option<AlertView>> {
        let v = self
            .lock()
            .alerts
            .iter()
            .find(|v| &v.alert.id == id)
            .cloned();
        ready(Ok(v))
    }

    fn act(
        &self,
        id: &AlertId,
        action: AlertAction,
        actor: &str,
        note: Option<String>,
        audit: AuditEntry,
    ) -> BoxFut<'_, OutboxEntry> {
        let alert = {
            let mut d = self.lock();
            let Some(view) = d.alerts.iter_mut().find(|v| &v.alert.id == id) else {
                return ready(Err(ApiError::not_found("no such alert")));
            };
            // The store's state machine, as the hub's backend applies it.
            let at = Timestamp::now();
            let t = match view.alert.apply(action, By::Person, at) {
                Ok(t) => t,
                Err(e) => return ready(Err(ApiError::invalid(e.to_string()))),
            };
            view.history.push(HistoryEntry {
                at,
                actor: actor.to_owned(),
                action,
                from_state: Some(t.from),
                to_state: t.to,
                note,
            });
            view.alert.clone()
        };
        let seq = self.commit(alert, action);
        let mut audit = audit;
        if let Some(d) = audit.detail.as_object_mut() {
            d.insert("seq".to_owned(), seq.into());
        }
        {
            let mut d = self.lock();
            audit.seq = d.audit.len() as i64 + 1;
            d.audit.push(audit);
        }
        let entry = self.lock().outbox[seq as usize - 1].clone();
        ready(Ok(entry))
    }

    fn outbox_after(&self, after: i64, limit: u32) -> BoxFut<'_, Vec<OutboxEntry>> {
        let rows = self
            .lock()
            .outbox
            .iter()
            .filter(|e| e.seq > after)
            .take(limit as usize)
            .cloned()
            .collect();
        ready(Ok(rows))
    }

    fn committed(&self) -> watch::Receiver<i64> {
        self.committed.subscribe()
    }

    fn response_times(
        &self,
        _from: Timestamp,
        _to: Timestamp,
        communities: Option<Vec<CommunityId>>,
        _routed_to: Option<Role>,
    ) -> BoxFut<'_, Vec<ResponseTimes>> {
        let rows = self
            .lock()
            .times
            .iter()
            .filter(|r| in_list(&communities, &r.community))
            .cloned()
            .collect();
        ready(Ok(rows))
    }

    fn snapshot(&self, id: &str) -> BoxFut<'_, Option<(SnapshotInfo, PathBuf)>> {
        let s = self
            .lock()
            .snapshots
            .iter()
            .find(|(s, _)| s.id == id)
            .cloned();
        ready(Ok(s))
    }

    fn latest_snapshot(&self, camera: &CameraId) -> BoxFut<'_, Option<(SnapshotInfo, PathBuf)>> {
        let s = self
            .lock()
            .snapshots
            .iter()
            .filter(|(s, _)| s.camera.as_ref() == Some(camera))
            .max_by_key(|(s, _)| s.taken_at)
            .cloned();
        ready(Ok(s))
    }

    fn gate_events(&self, q: EventQuery) -> BoxFut<'_, Vec<Value>> {
        ready(Ok(events(&self.lock().gate_events, &q, "received_at")))
    }

    fn vision_events(&self, q: EventQuery) -> BoxFut<'_, Vec<Value>> {
        ready(Ok(events(&self.lock().vision_events, &q, "at")))
    }

    fn topology_view(&self) -> std::sync::Arc<xl_core::topology::Topology> {
        std::sync::Arc::new(self.lock().topology.clone())
    }

    // The topology's store, as `xl_store` behaves where the API's tests look: revisions,
    // read-only config entries, secrets kept unless given and never read back, an entry in
    // use refused. References between entries are the store's tests' business.
    fn topology(&self) -> BoxFut<'_, Vec<TopologyItem>> {
        let mut items: Vec<TopologyItem> = self.lock().stored.iter().map(without_secret).collect();
        items.sort_by_key(|i| i.entry.id());
        ready(Ok(items))
    }

    fn topology_entry(&self, id: &EntryId) -> BoxFut<'_, Option<TopologyItem>> {
        let found = self
            .lock()
            .stored
            .iter()
            .find(|i| &i.entry.id() == id)
            .map(without_secret);
        ready(Ok(found))
    }

    fn create_entry(&self, entry: Entry, _by: Author) -> BoxFut<'_, TopologyItem> {
        ready(self.create(entry).map(|i| without_secret(&i)))
    }

    fn create_entries(&self, entries: Vec<Entry>, _by: Author) -> BoxFut<'_, Vec<TopologyItem>> {
        let mut d = self.lock();
        let mut taken: std::collections::HashSet<EntryId> =
            d.stored.iter().map(|i| i.entry.id()).collect();
        let mut rows = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if let Err(err) = e.validate() {
                rows.push(RowError {
                    row: i + 1,
                    field: err.field().map(str::to_owned),
                    message: err.to_string(),
                });
            }
            if !taken.insert(e.id()) {
                rows.push(RowError {
                    row: i + 1,
                    field: Some("id".into()),
                    message: format!("{} already exists", e.id()),
                });
            }
        }
        if !rows.is_empty() {
            return ready(Err(ApiError::invalid("refused").with_rows(rows)));
        }
        let at = Timestamp::now();
        let mut created = Vec::with_capacity(entries.len());
        for entry in entries {
            let item = TopologyItem {
                meta: EntryMeta {
                    origin: Origin::Store,
                    revision: 1,
                    created_at: at,
                    updated_at: at,
                    secret_set: entry.secret().is_some(),
                },
                entry,
            };
            created.push(without_secret(&item));
            d.stored.push(item);
        }
        ready(Ok(created))
    }

    fn update_entry(
        &self,
        entry: Entry,
        expected: u64,
        secret: SecretEdit,
        _by: Author,
    ) -> BoxFut<'_, TopologyItem> {
        let id = entry.id();
        ready(self.change(&id, expected, |old| {
            let mut new = entry;
            if secret == SecretEdit::Keep {
                new.set_secret(old.secret().cloned());
            }
            *old = new;
        }))
    }

    fn set_entry_disabled(
        &self,
        id: &EntryId,
        disabled: bool,
        expected: u64,
        _by: Author,
    ) -> BoxFut<'_, TopologyItem> {
        ready(self.change(id, expected, |e| e.set_disabled(disabled)))
    }

    fn delete_entry(&self, id: &EntryId, expected: u64, _by: Author) -> BoxFut<'_, ()> {
        let r = self.writable(id, expected).and_then(|_| {
            let mut d = self.lock();
            let all = Topology::from_entries(d.stored.iter().map(|i| i.entry.clone()));
            all.check_remove(id).map_err(ApiError::from)?;
            d.stored.retain(|i| &i.entry.id() != id);
            Ok(())
        });
        ready(r)
    }

    fn probe_camera(&self, request: ProbeRequest) -> BoxFut<'_, ProbeResult> {
        let unreachable = request.url.contains("unreachable");
        self.lock().probes.push(request);
        if unreachable {
            return ready(Err(ApiError::new(
                xl_core::ErrorKind::Upstream,
                "DESCRIBE failed: Connection refused",
            )));
        }
        ready(Ok(ProbeResult {
            codec: "h264".into(),
            width: 640,
            height: 360,
            fps: Some(10.0),
            gop_frames: Some(20),
            gop_secs: Some(2.0),
            snapshot_jpeg: vec![0xff, 0xd8, 0xff, 0xd9],
        }))
    }

    fn recordings(
        &self,
        camera: &CameraId,
        stream: Option<StreamKind>,
        from: Timestamp,
        to: Timestamp,
    ) -> BoxFut<'_, Recorded> {
        let d = self.lock();
        let ranges = d
            .recordings
            .iter()
            .find(|r| &r.camera == camera)
            .map_or(&[][..], |r| &r.ranges[..]);
        let (ranges, gaps) = recorded_in(ranges, from, to);
        ready(Ok(Recorded {
            camera: camera.clone(),
            stream: stream.unwrap_or(StreamKind::Main),
            ranges,
            gaps,
        }))
    }

    fn recording_clip(
        &self,
        camera: &CameraId,
        _stream: Option<StreamKind>,
        from: Timestamp,
        to: Timestamp,
        on_behalf: &OnBehalf,
    ) -> BoxFut<'_, Arc<dyn VideoBody>> {
        let mut d = self.lock();
        d.on_behalf.push(names(on_behalf));
        let found = d.recordings.iter().find(|r| &r.camera == camera);
        let (ranges, gaps) = recorded_in(found.map_or(&[], |r| &r.ranges), from, to);
        match found {
            Some(r) if !ranges.is_empty() => {
                ready(Ok(Arc::new(r.video.clone()) as Arc<dyn VideoBody>))
            }
            _ => ready(Err(ApiError::not_found(format!(
                "nothing of camera {camera} is recorded from {from} to {to}"
            ))
            .with_gaps(gaps))),
        }
    }

    fn alert_clip(&self, alert: &AlertId, on_behalf: &OnBehalf) -> BoxFut<'_, Arc<dyn VideoBody>> {
        let mut d = self.lock();
        d.on_behalf.push(names(on_behalf));
        let clip = d
            .clips
            .iter()
            .find(|(a, _)| a == alert)
            .map(|(_, v)| Arc::new(v.clone()) as Arc<dyn VideoBody>)
            .ok_or_else(|| ApiError::not_found(format!("alert {alert} has no clip")));
        ready(clip)
    }

    fn export(
        &self,
        subject: ExportSubject,
        by: &str,
        on_behalf: &OnBehalf,
    ) -> BoxFut<'_, ExportFile> {
        let mut d = self.lock();
        d.on_behalf.push(names(on_behalf));
        let Some(file) = d.export.clone() else {
            return ready(Err(ApiError::new(
                xl_core::ErrorKind::Unavailable,
                "no export configured",
            )));
        };
        d.exports.push((subject, by.to_owned()));
        ready(Ok(file))
    }

    fn own_segment(&self, id: i64) -> BoxFut<'_, Option<SegmentFile>> {
        let found = self
            .lock()
            .segments
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, f)| f.clone());
        ready(Ok(found))
    }

    fn evidence_key(&self) -> BoxFut<'_, EvidenceKey> {
        ready(
            self.lock()
                .evidence_key
                .clone()
                .ok_or_else(|| ApiError::new(xl_core::ErrorKind::Unavailable, "no evidence key")),
        )
    }

    fn evidence_keys(&self) -> BoxFut<'_, Vec<DistrictEvidenceKey>> {
        match self.lock().evidence_keys.clone() {
            Some(keys) => ready(Ok(keys)),
            // What a backend that keeps no district's keys answers.
            None => Box::pin(async move { Ok(vec![self.evidence_key().await?.into()]) }),
        }
    }
}

fn without_secret(item: &TopologyItem) -> TopologyItem {
    let mut item = item.clone();
    item.entry.set_secret(None);
    item
}

impl Fake {
    fn create(&self, entry: Entry) -> Result<TopologyItem, ApiError> {
        entry.validate()?;
        let mut d = self.lock();
        if d.stored.iter().any(|i| i.entry.id() == entry.id()) {
            return Err(
                ApiError::invalid(format!("{} already exists", entry.id())).with_field("id")
            );
        }
        let at = Timestamp::now();
        let item = TopologyItem {
            meta: EntryMeta {
                origin: Origin::Store,
                revision: 1,
                created_at: at,
                updated_at: at,
                secret_set: entry.secret().is_some(),
            },
            entry,
        };
        d.stored.push(item.clone());
        Ok(item)
    }

    fn writable(&self, id: &EntryId, expected: u64) -> Result<(), ApiError> {
        let d = self.lock();
        let Some(item) = d.stored.iter().find(|i| &i.entry.id() == id) else {
            return Err(ApiError::not_found(format!("no {id}")));
        };
        if item.meta.origin == Origin::Config {
            return Err(ApiError::new(
                xl_core::ErrorKind::PermissionDenied,
                format!("{id} is declared in the config file and read-only here"),
            ));
        }
        if item.meta.revision != expected {
            return Err(ApiError::new(
                xl_core::ErrorKind::Conflict,
                format!("{id} is at revision {}", item.meta.revision),
            ));
        }
        Ok(())
    }

    fn change(
        &self,
        id: &EntryId,
        expected: u64,
        f: impl FnOnce(&mut Entry),
    ) -> Result<TopologyItem, ApiError> {
        self.writable(id, expected)?;
        let mut d = self.lock();
        let Some(item) = d.stored.iter_mut().find(|i| &i.entry.id() == id) else {
            return Err(ApiError::not_found(format!("no {id}")));
        };
        f(&mut item.entry);
        item.entry.validate()?;
        item.meta.revision += 1;
        item.meta.secret_set = item.entry.secret().is_some();
        Ok(without_secret(item))
    }
}

/// `name: value` of each credential header, to check what a call was given.
fn names(on_behalf: &OnBehalf) -> Vec<String> {
    on_behalf
        .headers()
        .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
        .collect()
}
