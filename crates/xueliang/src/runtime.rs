//! The topology the hub runs: read from the store, applied camera by camera and gate by gate
//! ([`Topology::diff`]), and shared with the API.
//!
//! Each running camera has a [`CameraHandle`]: the cancel token of its RTSP session (or the
//! stop flag of its file source) and its entries in the per-camera maps (the camera registry,
//! the decode pool's input, detection and tracking, the evidence ring). Applying a change
//! touches only the entries that changed: an edited stream URL restarts that camera's session,
//! edited zones or detection settings only its analysis, and the other cameras never notice.
//!
//! The store is the one source of truth. After every write the API wakes the runtime
//! ([`TopologyFeed::changed`]), which re-reads the whole topology and applies the difference
//! from what runs; a burst of writes is applied in one pass, and a failed read is retried on
//! the next wake-up or within [`RETRY`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use xl_core::alert::AlertAction;
use xl_core::camera::{CameraInfo, CameraRegistry, CameraStats};
use xl_core::clock::Clocks;
use xl_core::frame::{AccessUnitSink, Frame, FrameSink};
use xl_core::live::StreamKind;
use xl_core::topology::{Camera, ChangeOp, EntryId, Gate, RtspTransport, StreamSource, Topology};
use xl_core::{CameraId, GateId};
use xl_decode::{DecodePool, FileSource, Pacing};
use xl_live::{OnDemand, Subscription, Tee};
use xl_rtsp::{CameraSource, Credentials, Timeouts, TransportKind};
use xl_store::Store;
use xl_vision::VisionEvent;

use crate::config::RtspConfig;
use crate::live::{self, CameraStreams, LiveStreams};
use xl_alerts::Alerts;
use xl_alerts::evidence::Rings;
use xl_analysis::{AnalysisError, CameraAnalysis, DetectConfig, Vision};

/// How soon a failed topology read is tried again without a wake-up.
const RETRY: Duration = Duration::from_secs(5);
/// How often a node of a district reads the store's topology without a wake-up.
const RESYNC: Duration = Duration::from_secs(30);

/// What the API sees of the running topology, and how it asks the runtime to catch up.
#[derive(Clone)]
pub struct TopologyFeed {
    /// The topology as last applied, secrets removed.
    pub applied: watch::Receiver<Arc<Topology>>,
    /// Wakes the runtime to re-read the store; notified after every topology write.
    pub changed: Arc<Notify>,
}

/// Detection, started when the first analysed camera appears: loading the models takes a
/// second or two, and a hub that analyses nothing need not have them. The decode pool's sink.
pub struct LazyVision {
    cfg: DetectConfig,
    clocks: Arc<dyn Clocks>,
    events: broadcast::Sender<VisionEvent>,
    rings: Arc<Rings>,
    /// Where frames with motion are told (recording's motion holds).
    motion: xl_analysis::RecordMotion,
    vision: OnceLock<Arc<Vision>>,
}

impl LazyVision {
    pub fn new(
        cfg: DetectConfig,
        clocks: Arc<dyn Clocks>,
        rings: Arc<Rings>,
        motion: xl_analysis::RecordMotion,
    ) -> LazyVision {
        LazyVision {
            cfg,
            clocks,
            events: broadcast::channel(4096).0,
            rings,
            motion,
            vision: OnceLock::new(),
        }
    }

    /// Vision events, from whenever detection starts.
    pub fn subscribe(&self) -> broadcast::Receiver<VisionEvent> {
        self.events.subscribe()
    }

    /// The running detection, if started.
    pub fn get(&self) -> Option<&Arc<Vision>> {
        self.vision.get()
    }

    /// Starts analysing a camera, detection first if need be (blocking: it loads the models).
    pub fn set_camera(&self, c: &CameraAnalysis) -> Result<(), AnalysisError> {
        if let Some(v) = self.vision.get() {
            return v.set_camera(c);
        }
        if !c.detect.enabled {
            return Ok(());
        }
        let v = Vision::start_with(
            &self.cfg,
            self.cfg.engine(),
            std::slice::from_ref(c),
            false,
            Arc::clone(&self.clocks),
            self.events.clone(),
        )?;
        let rings = Arc::clone(&self.rings);
        v.attach_evidence(Arc::new(move |at, frame, boxes| {
            rings.record_detections(at, frame, boxes);
        }));
        v.attach_motion(Arc::clone(&self.motion));
        let _ = self.vision.set(Arc::new(v));
        Ok(())
    }

    fn remove_camera(&self, id: &CameraId) {
        if let Some(v) = self.vision.get() {
            v.remove_camera(id);
        }
    }
}

impl FrameSink for LazyVision {
    fn on_frame(&self, frame: Frame) {
        if let Some(v) = self.vision.get() {
            v.on_frame(frame);
        }
    }
}

impl xl_core::metrics::MetricsSource for LazyVision {
    fn render_prometheus(&self, out: &mut String) {
        if let Some(v) = self.vision.get() {
            v.render_prometheus(out);
        }
    }
}

/// What the runtime has applied, for `/metrics` (and the benchmark that times a change from the
/// API's answer to its effect).
#[derive(Default)]
pub struct RuntimeStats {
    /// Passes over the store's topology.
    reloads: AtomicU64,
    /// Entries added, changed or removed by those passes.
    changes: AtomicU64,
    /// Passes that could not read the store.
    failures: AtomicU64,
}

impl xl_core::metrics::MetricsSource for RuntimeStats {
    fn render_prometheus(&self, out: &mut String) {
        use std::fmt::Write;
        for (name, help, v) in [
            (
                "xueliang_topology_reloads_total",
                "Passes applying the store's topology to what runs.",
                &self.reloads,
            ),
            (
                "xueliang_topology_changes_applied_total",
                "Stations, communities, grids, cameras and gates added, changed or removed while running.",
                &self.changes,
            ),
            (
                "xueliang_topology_reload_failures_total",
                "Passes that could not read the topology from the store (retried).",
                &self.failures,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}

/// A running camera: how to stop it.
struct CameraHandle {
    /// The RTSP session's.
    cancel: CancellationToken,
    /// The file source's.
    stop: Arc<AtomicBool>,
    task: Option<JoinHandle<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    stats: Arc<CameraStats>,
    /// The decode pool's input on the analysed stream's tee (RTSP cameras).
    decode: Option<Subscription>,
}

impl CameraHandle {
    /// Stops the session or file source; its decode pool input goes with it.
    async fn stop(mut self) {
        self.cancel.cancel();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        self.decode = None;
        if let Some(t) = self.thread.take() {
            // a file source checks its flag between frames
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// What the runtime drives.
pub struct Parts {
    pub store: Store,
    pub pool: DecodePool,
    pub cameras: Arc<CameraRegistry>,
    /// `None` with `[detect] enabled = false`.
    pub vision: Option<Arc<LazyVision>>,
    pub rings: Arc<Rings>,
    pub gates: Option<Arc<xl_gates::Gates>>,
    pub alerts: Arc<Alerts>,
    pub rtsp: RtspConfig,
    pub applied: watch::Sender<Arc<Topology>>,
    pub stats: Arc<RuntimeStats>,
    /// The running cameras' streams, for live view.
    pub live: Arc<LiveStreams>,
    /// The recorders of the cameras that record.
    pub recordings: Arc<crate::recording::Recordings>,
    /// On a node of a district: the leases, which decide the cameras this node runs.
    /// `None`: a single hub runs every camera.
    pub cluster: Option<Ownership>,
}

/// A node's share of the district's cameras.
pub struct Ownership {
    pub cluster: Arc<xl_cluster::Cluster>,
    /// The leases this node holds ([`xl_cluster::Cluster::held`]).
    pub held: watch::Receiver<Arc<xl_cluster::Held>>,
}

/// The running cameras and gates, and the topology they were started from.
pub struct Runtime {
    parts: Parts,
    handles: HashMap<CameraId, CameraHandle>,
    /// What runs: the store's topology without disabled entries, secrets included.
    running: Topology,
}

impl Runtime {
    pub fn new(parts: Parts) -> Runtime {
        Runtime {
            parts,
            handles: HashMap::new(),
            running: Topology::default(),
        }
    }

    /// Reads the store's topology and applies what differs from what runs. A camera that
    /// cannot be started (a bad zone for the tracker) is logged and left out; the rest goes on.
    pub async fn reload(&mut self) -> anyhow::Result<()> {
        let stats = Arc::clone(&self.parts.stats);
        let stored = match self.parts.store.topology_for_runtime().await {
            Ok(s) => s,
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                return Err(e).context("cannot read the topology from the store");
            }
        };
        let full = stored.topology;
        let all = runnable(&full);
        let next = match &mut self.parts.cluster {
            None => all.clone(),
            Some(own) => {
                own.cluster.want(crate::cluster::wanted(&all));
                let held = own.held.borrow_and_update().clone();
                let mut mine = all.clone();
                mine.cameras
                    .retain(|id, _| crate::cluster::holds_camera(&held, id));
                mine
            }
        };
        let changes = Topology::diff(&self.running, &next);
        let mut gates_changed = false;
        let mut removed_cameras = Vec::new();
        let mut removed_gates = Vec::new();
        for change in &changes {
            match (&change.id, change.op) {
                (EntryId::Camera(id), ChangeOp::Removed) => {
                    self.stop_camera(id).await;
                    // A camera another node took over keeps its alerts.
                    if !all.cameras.contains_key(id) {
                        removed_cameras.push(id.clone());
                    }
                }
                (EntryId::Camera(id), ChangeOp::Added) => {
                    let camera = &next.cameras[id];
                    if let Err(e) = self.start_camera(camera).await {
                        warn!(camera = %id, error = %format!("{e:#}"), "cannot start camera");
                    }
                }
                (EntryId::Camera(id), ChangeOp::Changed) => {
                    let old = self.running.cameras[id].clone();
                    if let Err(e) = self.change_camera(&old, &next.cameras[id]).await {
                        warn!(camera = %id, error = %format!("{e:#}"), "cannot apply camera change");
                    }
                }
                (EntryId::Gate(id), op) => {
                    gates_changed = true;
                    // In a district, the node doing the gate's shard of the gate work resolves
                    // its alerts.
                    if op == ChangeOp::Removed && self.does_gate_work(id) {
                        removed_gates.push(id.clone());
                    }
                }
                // Stations, communities and grids run nothing themselves; disabling one
                // removes its cameras and gates from `next`.
                _ => {}
            }
        }
        if gates_changed && let Some(g) = &self.parts.gates {
            let list = next.gates.values().map(gate_config).collect();
            if let Err(e) = g.set_gates(list) {
                warn!(error = %e, "cannot apply the gates; the previous gates stay");
            }
        }
        self.set_rings(&next);
        self.record_rows(&next, &changes).await;
        self.resolve_alerts_of_removed(&removed_cameras, &removed_gates)
            .await;
        if !changes.is_empty() {
            info!(
                changes = changes.len(),
                cameras = self.handles.len(),
                gates = next.gates.len(),
                "topology applied"
            );
        }
        self.running = next;
        self.parts
            .applied
            .send_replace(Arc::new(full.without_secrets()));
        stats.reloads.fetch_add(1, Ordering::Relaxed);
        stats
            .changes
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Whether this hub resolves `gate`'s alerts when it is removed: a single hub, or the
    /// node holding the lease of the gate's shard of the gate work.
    fn does_gate_work(&self, gate: &GateId) -> bool {
        self.parts.cluster.as_ref().is_none_or(|own| {
            let shard = xl_alerts::gate_shard(gate);
            own.held
                .borrow()
                .leases
                .contains_key(&crate::cluster::gate_shard_key(shard))
        })
    }

    /// Applies the store's topology now and after every wake-up (and, in a district, every
    /// change of the leases held), until `shutdown`; then stops every camera.
    pub async fn run(mut self, changed: Arc<Notify>, shutdown: CancellationToken) {
        let cluster = self
            .parts
            .cluster
            .as_ref()
            .map(|own| Arc::clone(&own.cluster));
        let mut held = self.parts.cluster.as_ref().map(|own| own.held.clone());
        let mut elsewhere = cluster.as_ref().map(|c| c.topology_changed());
        // In a district, a write through this node's API is announced to the others.
        let mut written = false;
        loop {
            let retry = match self.reload().await {
                Ok(()) => None,
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "cannot apply the topology; retrying");
                    Some(RETRY)
                }
            };
            if std::mem::take(&mut written)
                && let Some(c) = &cluster
            {
                c.notify_topology().await;
            }
            // A district's nodes also read the store now and then, in case an announcement
            // was lost.
            let wait = retry.or(cluster.as_ref().map(|_| RESYNC));
            tokio::select! {
                () = changed.notified() => written = true,
                () = sleep_or_never(wait) => {}
                () = leases_changed(&mut held) => {}
                () = announced(&mut elsewhere) => {}
                () = shutdown.cancelled() => break,
            }
        }
        let ids: Vec<CameraId> = self.handles.keys().cloned().collect();
        for id in ids {
            self.stop_camera(&id).await;
        }
        // The decode threads stop when the pool is dropped; they may be mid-frame.
        let pool = self.parts.pool;
        let _ = tokio::task::spawn_blocking(move || drop(pool)).await;
    }

    async fn start_camera(&mut self, cam: &Camera) -> anyhow::Result<()> {
        let stats = Arc::new(CameraStats::new(cam.id.clone(), cam.decode));
        self.parts.cameras.insert(info(cam), Arc::clone(&stats));
        let input = self.parts.pool.add_camera(Arc::clone(&stats));
        let mut handle = CameraHandle {
            cancel: CancellationToken::new(),
            stop: Arc::new(AtomicBool::new(false)),
            task: None,
            thread: None,
            stats: Arc::clone(&stats),
            decode: None,
        };
        match cam.analysis_source() {
            Some(StreamSource::File { path }) => {
                let source = FileSource {
                    path: path.into(),
                    looped: true,
                    pacing: Pacing::RealTime,
                };
                let t = xl_decode::spawn_file_source(source, input, Arc::clone(&handle.stop))
                    .context("cannot start a file source thread")?;
                handle.thread = Some(t);
            }
            Some(StreamSource::Rtsp { url }) => {
                let source = self.rtsp_source(cam, url)?;
                let tee = Arc::new(Tee::new());
                handle.decode = Some(tee.subscribe(Arc::new(input)));
                handle.task = Some(tokio::spawn(xl_rtsp::run_camera(
                    source,
                    Arc::clone(&tee) as Arc<dyn AccessUnitSink>,
                    stats,
                    Arc::clone(self.parts.pool.clocks()),
                    handle.cancel.clone(),
                )));
                self.parts.live.insert(self.live_streams(cam, tee));
            }
            // validation refuses a camera without streams
            None => {}
        }
        self.handles.insert(cam.id.clone(), handle);
        self.record(cam);
        self.set_analysis(cam).await
    }

    /// Starts, changes or stops `cam`'s recording as its settings say. A camera without an
    /// RTSP stream (a file source) records nothing.
    fn record(&self, cam: &Camera) {
        let (_, stream) = self.parts.recordings.config().of(cam);
        let tee = self.parts.live.stream(&cam.id, stream);
        self.parts.recordings.set_camera(cam, tee);
    }

    async fn stop_camera(&mut self, id: &CameraId) {
        self.parts.recordings.remove_camera(id);
        self.parts.live.remove(id);
        if let Some(v) = &self.parts.vision {
            v.remove_camera(id);
        }
        self.parts.cameras.remove(id);
        if let Some(h) = self.handles.remove(id) {
            h.stop().await;
        }
    }

    /// Applies an edit: the stream restarts only when where or how it is pulled changed;
    /// names, the decode policy, detection and zones change in place.
    async fn change_camera(&mut self, old: &Camera, new: &Camera) -> anyhow::Result<()> {
        let stream = |c: &Camera| {
            (
                c.analysis_source().cloned(),
                c.username.clone(),
                c.password.clone(),
                c.transport,
            )
        };
        if stream(old) != stream(new) || !self.handles.contains_key(&new.id) {
            self.parts.live.restarting(&new.id);
            self.stop_camera(&new.id).await;
            return self.start_camera(new).await;
        }
        if (&old.main, &old.sub) != (&new.main, &new.sub)
            && let Some(tee) = self.parts.live.analysed(&new.id)
        {
            // Only the stream analysis does not pull changed: its viewers start again.
            self.parts.live.insert(self.live_streams(new, tee));
        }
        self.record(new);
        let stats = Arc::clone(&self.handles[&new.id].stats);
        if old.decode != new.decode {
            stats.set_decode_policy(new.decode);
        }
        self.parts.cameras.insert(info(new), stats);
        if (&old.detect, &old.zones) != (&new.detect, &new.zones) {
            self.set_analysis(new).await?;
        }
        Ok(())
    }

    /// How to pull `url` for `cam`: its credentials, transport and the `[rtsp]` timeouts.
    fn rtsp_source(&self, cam: &Camera, url: &str) -> anyhow::Result<CameraSource> {
        let credentials = cam.username.clone().map(|username| Credentials {
            username,
            password: cam
                .password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default(),
        });
        let rtsp = &self.parts.rtsp;
        let mut source = CameraSource::new(cam.id.clone(), url, credentials)
            .with_context(|| format!("camera {}: bad url", cam.id))?;
        source.transport = match cam.transport {
            Some(RtspTransport::Tcp) => TransportKind::Tcp,
            Some(RtspTransport::Udp) => TransportKind::Udp,
            None => rtsp.transport,
        };
        source.timeouts = Timeouts {
            request: Duration::from_secs(rtsp.request_timeout_secs),
            frame: Duration::from_secs(rtsp.frame_timeout_secs),
        };
        source.backoff_initial = Duration::from_secs_f64(rtsp.backoff_initial_secs);
        source.backoff_max = Duration::from_secs_f64(rtsp.backoff_max_secs);
        Ok(source)
    }

    /// `cam`'s streams for live view: `analysed`, the tee of the stream the decoder pulls, and
    /// the camera's other RTSP stream, if it has one, pulled while someone watches it.
    fn live_streams(&self, cam: &Camera, analysed: Arc<Tee>) -> CameraStreams {
        let (analysed_kind, other) = match (&cam.main, &cam.sub) {
            (Some(main), Some(_)) => (StreamKind::Sub, Some((StreamKind::Main, main))),
            (_, Some(_)) => (StreamKind::Sub, None),
            _ => (StreamKind::Main, None),
        };
        let streams = CameraStreams::new(cam.id.clone(), (analysed_kind, analysed));
        let Some((kind, StreamSource::Rtsp { url })) = other else {
            return streams;
        };
        let source = match self.rtsp_source(cam, url) {
            Ok(s) => s,
            Err(e) => {
                warn!(camera = %cam.id, error = %format!("{e:#}"), "no live view of the main stream");
                return streams;
            }
        };
        let tee = Arc::new(Tee::new());
        let clocks = Arc::clone(self.parts.pool.clocks());
        let live_stats = Arc::clone(self.parts.live.stats());
        let pull = OnDemand::new(
            format!("{} {kind}", cam.id),
            Arc::clone(&tee),
            live::LINGER,
            {
                let tee = Arc::clone(&tee);
                move || {
                    live_stats.pulls_started.fetch_add(1, Ordering::Relaxed);
                    let cancel = CancellationToken::new();
                    // This session's figures are its own: the camera's status is its
                    // analysed stream's.
                    let stats = Arc::new(CameraStats::new(
                        source.id.clone(),
                        xl_core::camera::DecodePolicy::All,
                    ));
                    tokio::spawn(xl_rtsp::run_camera(
                        source.clone(),
                        Arc::clone(&tee) as Arc<dyn AccessUnitSink>,
                        stats,
                        Arc::clone(&clocks),
                        cancel.clone(),
                    ));
                    Box::new(cancel.drop_guard())
                }
            },
        );
        streams.with_other(kind, pull)
    }

    async fn set_analysis(&self, cam: &Camera) -> anyhow::Result<()> {
        let Some(v) = &self.parts.vision else {
            return Ok(());
        };
        let v = Arc::clone(v);
        let analysis = CameraAnalysis {
            id: cam.id.clone(),
            detect: cam.detect.clone(),
            zones: cam.zones.clone(),
        };
        // Loading the models (first analysed camera) takes a second or two: off the async
        // threads.
        tokio::task::spawn_blocking(move || v.set_camera(&analysis))
            .await
            .context("detection set-up panicked")?
            .with_context(|| format!("camera {}: detection", cam.id))
    }

    /// A ring for each camera a gate names (its decoded frames) or that detection analyses.
    fn set_rings(&self, next: &Topology) {
        let named: HashSet<&CameraId> = next
            .gates
            .values()
            .filter_map(|g| g.camera.as_ref())
            .collect();
        let detecting = self.parts.vision.is_some();
        for (id, cam) in &next.cameras {
            let detected = detecting && cam.detect.enabled;
            self.parts
                .rings
                .set_camera(id, named.contains(id), detected);
        }
        for id in self.running.cameras.keys() {
            if !next.cameras.contains_key(id) {
                self.parts.rings.set_camera(id, false, false);
            }
        }
    }

    /// Keeps the store's camera and gate rows (what events and alerts name) up to date.
    async fn record_rows(&self, next: &Topology, changes: &[xl_core::topology::Change]) {
        let mut cameras = Vec::new();
        let mut gates = Vec::new();
        for c in changes.iter().filter(|c| c.op != ChangeOp::Removed) {
            match &c.id {
                EntryId::Camera(id) => cameras.push(camera_row(&next.cameras[id])),
                EntryId::Gate(id) => gates.push(gate_row(&next.gates[id])),
                _ => {}
            }
        }
        if !cameras.is_empty()
            && let Err(e) = self.parts.store.upsert_cameras(&cameras).await
        {
            warn!(error = %e, "cannot record cameras in the store");
        }
        if !gates.is_empty()
            && let Err(e) = self.parts.store.upsert_gates(&gates).await
        {
            warn!(error = %e, "cannot record gates in the store");
        }
    }

    /// A removed (or disabled) camera's or gate's open alerts are resolved with a note saying
    /// so; their evidence stays under its retention.
    async fn resolve_alerts_of_removed(&self, cameras: &[CameraId], gates: &[GateId]) {
        if cameras.is_empty() && gates.is_empty() {
            return;
        }
        let active = match self.parts.store.active_alerts().await {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "cannot read open alerts of removed cameras and gates");
                return;
            }
        };
        for alert in active {
            let note = match (&alert.camera, &alert.gate) {
                (_, Some(g)) if gates.contains(g) => {
                    format!("gate {g} was removed from the topology or disabled")
                }
                (Some(c), _) if cameras.contains(c) => {
                    format!("camera {c} was removed from the topology or disabled")
                }
                _ => continue,
            };
            let audit = xl_store::NewAudit {
                at: jiff::Timestamp::now(),
                actor: "system".to_owned(),
                action: "alert.resolve".to_owned(),
                target: Some(alert.id.to_string()),
                detail: serde_json::json!({ "note": note }),
                peer: None,
            };
            if let Err(e) = self
                .parts
                .alerts
                .act(
                    &alert.id,
                    AlertAction::Resolved,
                    "system",
                    Some(&note),
                    &audit,
                )
                .await
            {
                warn!(alert = %alert.id, error = %e, "cannot resolve an alert of a removed source");
            }
        }
    }
}

/// The check the store runs inside every topology write made for the API
/// ([`Store::with_topology_check`]), so that nothing is saved that the hub would not run: when
/// a write changes the gates that would run (the store's topology through [`runnable`] and
/// [`gate_config`], the list [`Runtime::reload`] hands `Gates::set_gates`), the gate ingest
/// must take the new list as `set_gates` would (`Gates::check_gates`). A gate that `[mqtt]`
/// accounts or subscriptions name cannot stop running, nor can a gate with a firmware the hub
/// does not know start. It holds the ingest rather than the `Gates`, which the hub takes back
/// whole at shutdown.
pub fn gate_check(ingest: Arc<xl_gates::Ingest>) -> xl_store::TopologyCheck {
    Arc::new(move |before, after| check_gate_change(&ingest, before, after))
}

/// Why the gate ingest would refuse the gates that run after a change from `before` to
/// `after`, naming the gates the change would stop; `Ok` when the change leaves them as they
/// are.
fn check_gate_change(
    ingest: &xl_gates::Ingest,
    before: &Topology,
    after: &Topology,
) -> Result<(), String> {
    let (old, new) = (runnable(before).gates, runnable(after).gates);
    if old == new {
        return Ok(());
    }
    let list: Vec<xl_gates::GateConfig> = new.values().map(gate_config).collect();
    ingest.check_gates(&list).map_err(|why| {
        let stopped: Vec<String> = old
            .keys()
            .filter(|id| !new.contains_key(*id))
            .map(|id| format!("{:?}", id.as_str()))
            .collect();
        match stopped.as_slice() {
            [] => format!("the gate ingest would refuse the gates that would run: {why}"),
            [one] => format!("gate {one} would stop running, which the gate ingest refuses: {why}"),
            many => format!(
                "gates {} would stop running, which the gate ingest refuses: {why}",
                many.join(", ")
            ),
        }
    })
}

/// Sleeps `d`; never returns for `None`.
async fn sleep_or_never(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Returns when another node announces a topology write; never on a single hub.
async fn announced(rx: &mut Option<watch::Receiver<u64>>) {
    match rx {
        Some(r) => {
            if r.changed().await.is_err() {
                *rx = None;
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Returns when the leases held change; never on a single hub.
async fn leases_changed(held: &mut Option<watch::Receiver<Arc<xl_cluster::Held>>>) {
    match held {
        Some(h) => {
            if h.changed().await.is_err() {
                *held = None;
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// The part of the topology that runs: entries not disabled, under a community and station
/// not disabled.
fn runnable(t: &Topology) -> Topology {
    let community_on = |c: &xl_core::CommunityId| {
        t.communities.get(c).is_none_or(|c| {
            !c.disabled
                && c.station
                    .as_ref()
                    .and_then(|s| t.stations.get(s))
                    .is_none_or(|s| !s.disabled)
        })
    };
    let mut r = t.clone();
    r.cameras
        .retain(|_, c| !c.disabled && community_on(&c.community));
    r.gates
        .retain(|_, g| !g.disabled && community_on(&g.community));
    // a gate naming a camera that does not run keeps running, without the camera
    for g in r.gates.values_mut() {
        if g.camera
            .as_ref()
            .is_some_and(|c| !r.cameras.contains_key(c))
        {
            g.camera = None;
        }
    }
    r
}

fn info(cam: &Camera) -> CameraInfo {
    CameraInfo {
        id: cam.id.clone(),
        name: cam.name.clone(),
        community: cam.community.clone(),
        network: cam.network,
    }
}

fn camera_row(c: &Camera) -> xl_store::CameraRow {
    xl_store::CameraRow {
        id: c.id.clone(),
        community: c.community.clone(),
        name: c.name.clone(),
        network: serde_json::to_value(c.network)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        // never the URL: it may carry credentials
        extras: serde_json::json!({
            "source": match c.analysis_source() {
                Some(StreamSource::File { .. }) => "file",
                _ => "rtsp",
            },
            "zones": c.zones.iter().map(|z| z.id.as_str()).collect::<Vec<_>>(),
        }),
    }
}

fn gate_row(g: &Gate) -> xl_store::GateRow {
    xl_store::GateRow {
        id: g.id.clone(),
        community: g.community.clone(),
        name: g.name.clone(),
        firmware: g.firmware.clone(),
        camera: g.camera.clone(),
        extras: serde_json::json!({ "device": g.device }),
    }
}

/// A gate as the gate ingest takes it.
pub fn gate_config(g: &Gate) -> xl_gates::GateConfig {
    xl_gates::GateConfig {
        id: g.id.clone(),
        name: Some(g.name.clone()),
        community: g.community.clone(),
        grid: g.grid.clone(),
        firmware: g.firmware.clone(),
        device: g.device.clone(),
        camera: g.camera.clone(),
        offline_after_secs: g.offline_after_secs,
        timezone: g.timezone.clone(),
        push_allow_from: g
            .push_allow_from
            .iter()
            .map(|n| xl_gates::config::IpNet {
                addr: n.addr(),
                prefix: n.prefix_len(),
            })
            .collect(),
        push_secret: g.push_secret.as_ref().map(|s| s.expose().to_owned()),
        transport: g.transport,
        disabled: g.disabled,
    }
}
