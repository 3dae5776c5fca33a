//! Recording's wiring: a recorder on the recorded stream's tee of every camera that records,
//! the index of their segments in the store, the repair after a crash, retention and the disk
//! guard, and the clips that playback and exports read.
//!
//! - Each recording camera has one [`Recorder`] subscribed to the tee of the stream it records
//!   (the analysed stream's, always pulled, or the other one's, whose on-demand pull the
//!   subscription keeps running). Segment events go, in order, through one channel to the
//!   index task, which writes them to the store.
//! - A write error stops that camera's recorder and raises `recording.failed`; the recorder is
//!   started again after [`RETRY_AFTER`], and the alert resolves itself when a segment opens.
//! - At start, segments still `open` in the index (a crash) are repaired: truncated after their
//!   last complete fragment, or dropped when none is whole. Files of the newest day of each
//!   stream that the index does not know (made just before a crash, before their row) go.
//! - Every [`MAINTENANCE`] the disk guard checks the free space of the recordings' filesystem
//!   and deletes the oldest unheld segments while it is under `min_free_mib`; when nothing may
//!   go, recording pauses (every recorder stopped, `recording.failed` raised) until space is
//!   back. Retention runs every [`RETENTION_EVERY`]: per camera, continuous recordings are kept
//!   `retain_days`, the other modes keep unheld video `buffer_minutes`; a segment overlapped by
//!   a live hold (an alert's clip, an export being made) always stays.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use xl_core::clock::Clocks;
use xl_core::frame::AccessUnitSink;
use xl_core::live::StreamKind;
use xl_core::recording::RecordingMode;
use xl_core::topology::Camera;
use xl_core::{CameraId, CommunityId, ErrorKind};
use xl_live::{Subscription, Tee};
use xl_record::{Clip, RecordStats, Recorder, RecorderConfig, Repaired, SegmentEvent, SegmentRef};
use xl_rules::Input;
use xl_store::{NewSegment, SegmentRow, Store};

/// How soon a camera whose recorder failed is tried again.
pub const RETRY_AFTER: SignedDuration = SignedDuration::from_secs(30);
/// How often the disk guard looks at free space (and failed recorders are retried).
pub const MAINTENANCE: Duration = Duration::from_secs(10);
/// How often retention looks for expired segments.
pub const RETENTION_EVERY: Duration = Duration::from_secs(60);
/// Motion this long after the last frame with motion starts a new stretch; a stretch is held
/// once it has been quiet this long.
const MOTION_QUIET: SignedDuration = SignedDuration::from_secs(10);
/// A stretch of motion longer than this is held in pieces (so a camera that sees movement all
/// day still gets its holds written as it goes).
const MOTION_PIECE: SignedDuration = SignedDuration::from_mins(5);
/// Video kept around a stretch of motion, before and after.
const MOTION_MARGIN: SignedDuration = SignedDuration::from_secs(10);
/// Segments deleted per query of retention or the disk guard.
const DELETE_BATCH: u32 = 64;
/// Evidence packages, under the data directory; kept `evidence_days`.
pub const EXPORTS_DIR: &str = "exports";

/// `[recording]`: what cameras record by default, and how recordings are kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// The mode of a camera that does not set its own: `continuous`, `motion-and-events`,
    /// `events-only` or `off`. Default `off`: recording is turned on per camera or here, once
    /// the data directory has the room for it.
    pub mode: RecordingMode,
    /// The stream recorded: `main` (default, full resolution) or `sub`. A camera without it
    /// records the other one.
    pub stream: StreamKind,
    /// Days continuous recordings are kept (1 to 3650). Default 7.
    pub retain_days: u32,
    /// `motion-and-events` and `events-only`: minutes video that no motion or alert holds stays
    /// on disk (the seconds before an event are only there if they were written). Default 10.
    pub buffer_minutes: u32,
    /// Days an alert's clip stays after the alert is resolved. Default 30.
    pub evidence_days: u32,
    /// A segment file is cut at the first key frame this many seconds after its start (10 to
    /// 600). Default 60.
    pub segment_secs: u32,
    /// The disk guard: when the free space of the filesystem holding `<data_dir>/recordings`
    /// falls under this many MiB, the oldest unheld segments are deleted; when none may be,
    /// recording pauses. Default 2048.
    pub min_free_mib: u64,
    /// The longest range played or downloaded as one MP4, or exported. Default 60.
    pub max_clip_minutes: u32,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            mode: RecordingMode::Off,
            stream: StreamKind::Main,
            retain_days: 7,
            buffer_minutes: 10,
            evidence_days: 30,
            segment_secs: 60,
            min_free_mib: 2048,
            max_clip_minutes: 60,
        }
    }
}

impl RecordingConfig {
    /// Checks the numbers; the error names the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        use xl_core::recording::MAX_RETAIN_DAYS;
        let check = |ok: bool, key: &str, what: String| {
            if ok {
                Ok(())
            } else {
                Err(anyhow::anyhow!("[recording] {key}: {what}"))
            }
        };
        check(
            (1..=MAX_RETAIN_DAYS).contains(&self.retain_days),
            "retain_days",
            format!("must be 1 to {MAX_RETAIN_DAYS}, not {}", self.retain_days),
        )?;
        check(
            (1..=MAX_RETAIN_DAYS).contains(&self.evidence_days),
            "evidence_days",
            format!("must be 1 to {MAX_RETAIN_DAYS}, not {}", self.evidence_days),
        )?;
        check(
            (1..=24 * 60).contains(&self.buffer_minutes),
            "buffer_minutes",
            format!("must be 1 to 1440, not {}", self.buffer_minutes),
        )?;
        check(
            (10..=600).contains(&self.segment_secs),
            "segment_secs",
            format!("must be 10 to 600, not {}", self.segment_secs),
        )?;
        check(
            (1..=24 * 60).contains(&self.max_clip_minutes),
            "max_clip_minutes",
            format!("must be 1 to 1440, not {}", self.max_clip_minutes),
        )
    }

    /// What `cam` records: its mode and stream, each its own or the default.
    pub fn of(&self, cam: &Camera) -> (RecordingMode, StreamKind) {
        (
            cam.recording.mode.unwrap_or(self.mode),
            cam.recording.stream.unwrap_or(self.stream),
        )
    }

    /// How long `cam`'s unheld video is kept.
    fn keep(&self, cam: &Camera) -> SignedDuration {
        let (mode, _) = self.of(cam);
        match mode {
            RecordingMode::Continuous | RecordingMode::Off => {
                days(cam.recording.retain_days.unwrap_or(self.retain_days))
            }
            RecordingMode::MotionAndEvents | RecordingMode::EventsOnly => {
                SignedDuration::from_mins(i64::from(self.buffer_minutes))
            }
        }
    }

    /// How long an alert's clip stays held after the alert is resolved.
    pub fn evidence_keep(&self) -> SignedDuration {
        days(self.evidence_days)
    }

    pub fn max_clip(&self) -> SignedDuration {
        SignedDuration::from_mins(i64::from(self.max_clip_minutes))
    }
}

/// `t + d`, or the latest instant there is.
pub(crate) fn plus(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// `t - d`, or the earliest instant there is.
pub(crate) fn minus(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_sub(d).unwrap_or(Timestamp::MIN)
}

fn days(d: u32) -> SignedDuration {
    SignedDuration::from_hours(24 * i64::from(d))
}

/// One camera's recording.
struct CameraRecording {
    community: CommunityId,
    mode: RecordingMode,
    stream: StreamKind,
    /// What it records from (kept to start the recorder again after a failure).
    tee: Arc<Tee>,
    running: Option<Running>,
    /// When its recorder failed (or the disk guard paused it), and why; `None` while it records.
    failed: Option<(Timestamp, String)>,
}

struct Running {
    recorder: Arc<Recorder>,
    /// Keeps the recorder on the tee (and an on-demand stream pulled).
    _subscription: Subscription,
}

/// The recordings of the running cameras (see the module documentation).
pub struct Recordings {
    cfg: RecordingConfig,
    data_dir: PathBuf,
    store: Store,
    clocks: Arc<dyn Clocks>,
    stats: Arc<RecordStats>,
    events: mpsc::UnboundedSender<SegmentEvent>,
    /// To the alert processor: `recording.failed` raised and resolved.
    health: mpsc::UnboundedSender<Input>,
    cameras: Mutex<HashMap<CameraId, CameraRecording>>,
    /// Set by the disk guard while the disk is full and nothing may be deleted.
    paused: Mutex<bool>,
    /// Recorders being stopped (closing a segment syncs its file), for [`Recordings::stop_all`].
    stopping: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Stretches of motion not held yet (`motion-and-events` cameras).
    motion: Mutex<Motion>,
    /// In a district: this node's id (its segments carry it; '' for a single hub) and the
    /// other nodes' segments, fetched for clips.
    node: String,
    /// The topology as applied: the recorded stream of a camera that does not record here.
    topology: tokio::sync::watch::Receiver<Arc<xl_core::topology::Topology>>,
    peers: Option<crate::peer_video::PeerSegments>,
}

/// Per camera, the stretch of motion going on (its first and last frame with motion), and the
/// stretches that ended.
#[derive(Default)]
struct Motion {
    current: HashMap<CameraId, (Timestamp, Timestamp)>,
    ended: Vec<(CameraId, Timestamp, Timestamp)>,
}

impl Recordings {
    /// The recordings under `data_dir`, of this node of `cluster` when there is one; the
    /// returned receiver feeds [`Recordings::run_index`].
    pub fn new(
        cfg: RecordingConfig,
        data_dir: &Path,
        store: Store,
        clocks: Arc<dyn Clocks>,
        health: mpsc::UnboundedSender<Input>,
        cluster: Option<Arc<xl_cluster::Cluster>>,
        topology: tokio::sync::watch::Receiver<Arc<xl_core::topology::Topology>>,
    ) -> (Arc<Recordings>, mpsc::UnboundedReceiver<SegmentEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        let peers = cluster.map(|c| crate::peer_video::PeerSegments::new(c, data_dir));
        let r = Recordings {
            node: peers
                .as_ref()
                .map_or_else(String::new, |p| p.node().to_owned()),
            peers,
            topology,
            cfg,
            data_dir: data_dir.to_owned(),
            store,
            clocks,
            stats: Arc::default(),
            events,
            health,
            cameras: Mutex::default(),
            paused: Mutex::new(false),
            stopping: Mutex::default(),
            motion: Mutex::default(),
        };
        (Arc::new(r), rx)
    }

    pub fn config(&self) -> &RecordingConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &Arc<RecordStats> {
        &self.stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CameraId, CameraRecording>> {
        self.cameras.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `cam` from `tee` (the tee of `stream`, as the camera's live streams give it),
    /// or stops recording it when its mode is `off`. A camera already recording the same tee
    /// and stream goes on untouched (a changed mode only changes what retention keeps).
    pub fn set_camera(&self, cam: &Camera, tee: Option<(StreamKind, Arc<Tee>)>) {
        let (mode, _) = self.cfg.of(cam);
        let Some((stream, tee)) = tee.filter(|_| mode != RecordingMode::Off) else {
            self.remove_camera(&cam.id);
            return;
        };
        let stopped = {
            let mut cameras = self.lock();
            if let Some(c) = cameras.get_mut(&cam.id)
                && c.stream == stream
                && Arc::ptr_eq(&c.tee, &tee)
            {
                c.mode = mode;
                c.community = cam.community.clone();
                return;
            }
            let old = cameras.insert(
                cam.id.clone(),
                CameraRecording {
                    community: cam.community.clone(),
                    mode,
                    stream,
                    tee,
                    running: None,
                    failed: None,
                },
            );
            old.and_then(|o| o.running)
        };
        self.stop_later(stopped);
        self.start_recorder(&cam.id);
    }

    /// Stops recording `id` (its open segment is closed on a blocking thread).
    pub fn remove_camera(&self, id: &CameraId) {
        let Some(old) = self.lock().remove(id) else {
            return;
        };
        if old.failed.is_some() {
            self.send_health(id, &old.community, true, String::new());
        }
        self.stop_later(old.running);
    }

    /// Starts `id`'s recorder on its tee, unless it runs or recording is paused.
    fn start_recorder(&self, id: &CameraId) {
        if *self.paused.lock().unwrap_or_else(|e| e.into_inner()) {
            return;
        }
        let mut cameras = self.lock();
        let Some(c) = cameras.get_mut(id) else {
            return;
        };
        if c.running.is_some() {
            return;
        }
        let mut config = RecorderConfig::new(
            id.clone(),
            c.stream,
            &self.data_dir,
            Duration::from_secs(u64::from(self.cfg.segment_secs)),
        );
        config.stats = Arc::clone(&self.stats);
        let events = self.events.clone();
        let recorder = match Recorder::start(
            config,
            Arc::new(move |e| {
                let _ = events.send(e);
            }),
        ) {
            Ok(r) => Arc::new(r),
            Err(e) => {
                warn!(camera = %id, error = %e, "cannot start recording");
                return;
            }
        };
        let subscription = c
            .tee
            .subscribe(Arc::clone(&recorder) as Arc<dyn AccessUnitSink>);
        c.running = Some(Running {
            recorder,
            _subscription: subscription,
        });
        debug!(camera = %id, stream = %c.stream, "recording started");
    }

    /// Stops a recorder on a blocking thread (closing its segment syncs the file).
    fn stop_later(&self, running: Option<Running>) {
        if let Some(r) = running {
            drop(r._subscription);
            let recorder = r.recorder;
            let task = tokio::task::spawn_blocking(move || recorder.stop());
            let mut stopping = self.stopping.lock().unwrap_or_else(|e| e.into_inner());
            stopping.retain(|t| !t.is_finished());
            stopping.push(task);
        }
    }

    /// Stops every recorder and waits for their open segments to close (at shutdown, after
    /// the runtime stopped the cameras).
    pub async fn stop_all(&self) {
        let running: Vec<Running> = self
            .lock()
            .values_mut()
            .filter_map(|c| c.running.take())
            .collect();
        for r in running {
            self.stop_later(Some(r));
        }
        let stopping =
            std::mem::take(&mut *self.stopping.lock().unwrap_or_else(|e| e.into_inner()));
        for t in stopping {
            let _ = t.await;
        }
    }

    fn send_health(&self, camera: &CameraId, community: &CommunityId, ok: bool, why: String) {
        let _ = self.health.send(Input::RecordingHealth {
            camera: camera.clone(),
            community: community.clone(),
            recording: ok,
            reason: why,
            at: self.clocks.realtime(),
        });
    }

    /// Writes the recorders' segment events to the store, in order, until `done` (after
    /// [`Recordings::stop_all`]); then what is left in the channel.
    pub async fn run_index(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<SegmentEvent>,
        done: CancellationToken,
    ) {
        // The rows of the segments being written, by path.
        let mut open: HashMap<String, i64> = HashMap::new();
        loop {
            let event = tokio::select! {
                e = rx.recv() => e,
                () = done.cancelled() => rx.try_recv().ok(),
            };
            let Some(event) = event else {
                return;
            };
            match event {
                SegmentEvent::Opened { segment } => {
                    self.recovered(&segment.camera);
                    match self
                        .store
                        .segment_opened(&new_segment(&segment, &self.node))
                        .await
                    {
                        Ok(id) => {
                            open.insert(segment.path, id);
                        }
                        Err(e) => {
                            warn!(path = %segment.path, error = %e, "cannot index a segment; indexed when it closes")
                        }
                    }
                }
                SegmentEvent::Closed { segment } => {
                    let id = match open.remove(&segment.path) {
                        Some(id) => Ok(id),
                        None => {
                            self.store
                                .segment_opened(&new_segment(&segment, &self.node))
                                .await
                        }
                    };
                    let (Ok(id), Some(end)) = (id, segment.end_at) else {
                        warn!(path = %segment.path, "cannot index a closed segment; its file is swept at the next start");
                        continue;
                    };
                    if let Err(e) = self.store.segment_closed(id, end, segment.bytes).await {
                        warn!(path = %segment.path, error = %e, "cannot close a segment's row; repaired at the next start");
                    }
                }
                SegmentEvent::Failed {
                    camera,
                    stream,
                    error,
                    open: segment,
                } => {
                    warn!(camera = %camera, %stream, error = %error, "recording stopped by a write error");
                    if let Some(s) = segment {
                        let id = open.remove(&s.path);
                        self.repair_one(id, &s.path, s.start_at, s.media_start_90k)
                            .await;
                    }
                    self.failed(&camera, failure_reason(&error));
                }
            }
        }
    }

    /// `camera`'s recorder stopped: remember why, raise `recording.failed`.
    fn failed(&self, camera: &CameraId, why: String) {
        let (community, running) = {
            let mut cameras = self.lock();
            let Some(c) = cameras.get_mut(camera) else {
                return;
            };
            c.failed = Some((self.clocks.realtime(), why.clone()));
            (c.community.clone(), c.running.take())
        };
        self.stop_later(running);
        self.send_health(camera, &community, false, why);
    }

    /// A segment of `camera` opened: if it had failed, it records again.
    fn recovered(&self, camera: &CameraId) {
        let community = {
            let mut cameras = self.lock();
            let Some(c) = cameras.get_mut(camera) else {
                return;
            };
            if c.failed.take().is_none() {
                return;
            }
            c.community.clone()
        };
        info!(camera = %camera, "recording again");
        self.send_health(camera, &community, true, String::new());
    }

    /// Repairs the segment at `path` (relative) left open, and updates or removes its row
    /// (`id`, if it has one).
    async fn repair_one(
        &self,
        id: Option<i64>,
        path: &str,
        start_at: Timestamp,
        media_start_90k: u64,
    ) {
        let full = self.data_dir.join(path);
        let repaired = {
            let full = full.clone();
            tokio::task::spawn_blocking(move || xl_record::repair(&full)).await
        };
        let kept = match repaired {
            Ok(Ok(Repaired::Kept {
                bytes,
                media_end_90k,
                truncated_bytes,
                ..
            })) => {
                debug!(path, truncated_bytes, "segment repaired");
                // The row's `start_at` is the wall time of decode time `media_start_90k`.
                let ticks = media_end_90k.saturating_sub(media_start_90k);
                let end = start_at
                    .checked_add(ticks_90k(ticks))
                    .unwrap_or(start_at)
                    .max(start_at);
                Some((end, bytes))
            }
            Ok(Ok(Repaired::Empty)) => None,
            Ok(Err(e)) if e.kind() == ErrorKind::NotFound => None,
            Ok(Err(e)) => {
                warn!(path, error = %e, "cannot repair a segment; left open in the index");
                return;
            }
            Err(e) => {
                warn!(path, error = %e, "the repair thread failed");
                return;
            }
        };
        match (kept, id) {
            (Some((end, bytes)), Some(id)) => {
                if let Err(e) = self.store.segment_repaired(id, end, bytes).await {
                    warn!(path, error = %e, "cannot record a repaired segment");
                }
            }
            // A file without a row is swept at the next start.
            (Some(_), None) => {}
            (None, id) => {
                if let Some(id) = id
                    && let Err(e) = self.store.remove_segment(id).await
                {
                    warn!(path, error = %e, "cannot remove an empty segment's row");
                    return;
                }
                remove_file(&full);
            }
        }
    }

    /// After a crash: repairs this node's segments left open, and deletes the files of each
    /// stream's newest day that the index does not know.
    pub async fn recover(&self) -> anyhow::Result<()> {
        if !self.node.is_empty() {
            self.adopt_single_hub_segments().await?;
        }
        let open = self.store.open_segments(&self.node).await?;
        for s in &open {
            self.repair_one(Some(s.id), &s.path, s.start_at, s.media_start_90k)
                .await;
        }
        if !open.is_empty() {
            info!(
                segments = open.len(),
                "recordings: segments left open repaired"
            );
        }
        let root = self.data_dir.join(xl_record::RECORDINGS_DIR);
        let newest = tokio::task::spawn_blocking(move || newest_day_dirs(&root)).await?;
        for (camera, stream, day, files) in newest {
            let from = day
                .checked_sub(SignedDuration::from_hours(24))
                .unwrap_or(day);
            let to = day
                .checked_add(SignedDuration::from_hours(48))
                .unwrap_or(day);
            let known: HashSet<String> = self
                .store
                .segments(&camera, stream, from, to)
                .await?
                .into_iter()
                .map(|s| s.path)
                .collect();
            for (rel, full) in files {
                if !known.contains(&rel) {
                    info!(path = %rel, "recordings: a file the index does not know, deleted");
                    remove_file(&full);
                }
            }
        }
        Ok(())
    }

    /// A hub that joined a district: the segments it recorded as a single hub (node `''`)
    /// become this node's when their files are on this disk (file names carry the start's
    /// millisecond, so no other hub has the same ones), so that the other nodes fetch them
    /// from here and this node's repair, retention and disk guard take them.
    async fn adopt_single_hub_segments(&self) -> anyhow::Result<()> {
        let Some((oldest, newest)) = self.store.single_hub_segment_ends().await? else {
            return Ok(());
        };
        let here = |s: &SegmentRow| self.data_dir.join(&s.path).is_file();
        if !(here(&oldest) || here(&newest)) {
            debug!("recordings: a single hub's segments are indexed, their files are not here");
            return Ok(());
        }
        let taken = self.store.adopt_single_hub_segments(&self.node).await?;
        info!(
            segments = taken,
            "recordings: the segments recorded before this hub joined the district are now this node's"
        );
        Ok(())
    }

    /// A frame of `camera` with motion at `at` (from a decode thread: only a map update).
    pub fn motion_seen(&self, camera: &CameraId, at: Timestamp) {
        let wanted = self
            .lock()
            .get(camera)
            .is_some_and(|c| c.mode == RecordingMode::MotionAndEvents);
        if !wanted {
            return;
        }
        let mut motion = self.motion.lock().unwrap_or_else(|e| e.into_inner());
        let Motion { current, ended } = &mut *motion;
        match current.get_mut(camera) {
            Some((first, last)) if at.duration_since(*last) >= MOTION_QUIET => {
                ended.push((camera.clone(), *first, *last));
                (*first, *last) = (at, at);
            }
            Some((_, last)) => *last = (*last).max(at),
            None => {
                current.insert(camera.clone(), (at, at));
            }
        }
    }

    /// Holds the stretches of motion that have ended (quiet for [`MOTION_QUIET`]) or grown
    /// past [`MOTION_PIECE`] (all of them with `all`, at shutdown): their video, with
    /// [`MOTION_MARGIN`] either side, is kept the camera's retention days.
    async fn hold_motion(&self, cameras: &[Camera], all: bool) {
        let now = self.clocks.realtime();
        let due: Vec<(CameraId, Timestamp, Timestamp)> = {
            let mut motion = self.motion.lock().unwrap_or_else(|e| e.into_inner());
            let Motion { current, ended } = &mut *motion;
            let mut due = std::mem::take(ended);
            current.retain(|camera, (first, last)| {
                let quiet = now.duration_since(*last) >= MOTION_QUIET;
                let long = last.duration_since(*first) >= MOTION_PIECE;
                if all || quiet || long {
                    due.push((camera.clone(), *first, *last));
                    return false;
                }
                true
            });
            due
        };
        for (camera, first, last) in due {
            let keep = cameras.iter().find(|c| c.id == camera).map_or_else(
                || days(self.cfg.retain_days),
                |c| days(c.recording.retain_days.unwrap_or(self.cfg.retain_days)),
            );
            let hold = xl_store::NewHold {
                camera: camera.clone(),
                from: minus(first, MOTION_MARGIN),
                to: plus(last, MOTION_MARGIN),
                until: Some(plus(last, keep)),
                reason: "motion".to_owned(),
                holder: format!("motion:{camera}"),
                keep_after: SignedDuration::ZERO,
            };
            if let Err(e) = self.store.add_hold(&hold).await {
                warn!(camera = %camera, error = %e, "cannot hold a stretch of motion");
            }
        }
    }

    /// Retention, the disk guard and retries, until `shutdown`.
    pub async fn run_maintenance(
        self: Arc<Self>,
        topology: tokio::sync::watch::Receiver<Arc<xl_core::topology::Topology>>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(MAINTENANCE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_retention: Option<std::time::Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => break,
            }
            self.guard_disk().await;
            self.sweep_peer_copies().await;
            self.retry_failed();
            let cameras: Vec<Camera> = topology.borrow().cameras.values().cloned().collect();
            self.hold_motion(&cameras, false).await;
            if last_retention.is_none_or(|t| t.elapsed() >= RETENTION_EVERY) {
                last_retention = Some(std::time::Instant::now());
                self.retention(&cameras).await;
            }
        }
        let cameras: Vec<Camera> = topology.borrow().cameras.values().cloned().collect();
        self.hold_motion(&cameras, true).await;
    }

    /// Starts again the recorders that failed more than [`RETRY_AFTER`] ago.
    fn retry_failed(&self) {
        let now = self.clocks.realtime();
        let due: Vec<CameraId> = self
            .lock()
            .iter()
            .filter(|(_, c)| {
                c.running.is_none()
                    && c.failed
                        .as_ref()
                        .is_some_and(|(at, _)| now.duration_since(*at) >= RETRY_AFTER)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.start_recorder(&id);
        }
    }

    /// Deletes the segments past their camera's keep (never a held one).
    async fn retention(&self, cameras: &[Camera]) {
        let now = self.clocks.realtime();
        let keep: Vec<(CameraId, Option<SignedDuration>)> = cameras
            .iter()
            .map(|c| (c.id.clone(), Some(self.cfg.keep(c))))
            .collect();
        let default = Some(days(self.cfg.retain_days));
        let mut deleted = 0usize;
        loop {
            let expired = match self
                .store
                .expired_segments(&self.node, &keep, default, now, DELETE_BATCH)
                .await
            {
                Ok(e) => e,
                Err(e) => {
                    warn!(error = %e, "retention: cannot list expired segments");
                    return;
                }
            };
            if expired.is_empty() {
                break;
            }
            let n = expired.len();
            if !self.delete(&expired).await {
                return;
            }
            deleted += n;
            if n < DELETE_BATCH as usize {
                break;
            }
        }
        if let Err(e) = self.store.delete_ended_holds(now).await {
            warn!(error = %e, "retention: cannot delete ended holds");
        }
        let exports = self.data_dir.join(EXPORTS_DIR);
        let keep = self.cfg.evidence_keep();
        let _ = tokio::task::spawn_blocking(move || sweep_exports(&exports, keep)).await;
        if deleted > 0 {
            info!(segments = deleted, "retention: expired recordings deleted");
        }
    }

    /// Deletes each segment's file, then its row. False when the store failed (retried on the
    /// next pass).
    async fn delete(&self, segments: &[SegmentRow]) -> bool {
        for s in segments {
            let full = self.data_dir.join(&s.path);
            if !remove_file(&full) {
                continue;
            }
            if let Err(e) = self.store.remove_segment(s.id).await {
                warn!(path = %s.path, error = %e, "cannot remove a segment's row");
                return false;
            }
        }
        true
    }

    /// Free bytes of the filesystem the recordings are on.
    fn free_bytes(&self) -> Option<u64> {
        let dir = self.data_dir.join(xl_record::RECORDINGS_DIR);
        let dir = if dir.exists() {
            dir
        } else {
            self.data_dir.clone()
        };
        free_bytes(&dir)
    }

    /// Deletes the oldest unheld segments while free space is under the floor; pauses
    /// recording when nothing may go, and resumes it once there is room again.
    async fn guard_disk(&self) {
        let floor = self.cfg.min_free_mib.saturating_mul(1 << 20);
        let mut deleted = 0usize;
        loop {
            let Some(free) = self.free_bytes() else {
                return;
            };
            if free >= floor {
                break;
            }
            let oldest = match self
                .store
                .oldest_unheld_segments(&self.node, self.clocks.realtime(), DELETE_BATCH)
                .await
            {
                Ok(o) => o,
                Err(e) => {
                    warn!(error = %e, "disk guard: cannot list segments");
                    return;
                }
            };
            if oldest.is_empty() {
                self.pause(free, floor);
                return;
            }
            // A few at a time: each file frees its share.
            let batch = &oldest[..oldest.len().min(8)];
            deleted += batch.len();
            if !self.delete(batch).await {
                return;
            }
        }
        if deleted > 0 {
            warn!(
                segments = deleted,
                min_free_mib = self.cfg.min_free_mib,
                "disk guard: free space was under the floor; the oldest unheld recordings were deleted"
            );
        }
        self.resume();
    }

    /// The disk is full and nothing may be deleted: every recorder stops.
    fn pause(&self, free: u64, floor: u64) {
        {
            let mut paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
            if *paused {
                return;
            }
            *paused = true;
        }
        warn!(
            free_mib = free >> 20,
            min_free_mib = floor >> 20,
            "disk guard: the disk is full and every recording left is held; recording paused"
        );
        let ids: Vec<CameraId> = self.lock().keys().cloned().collect();
        for id in ids {
            self.failed(&id, "the disk is full".to_owned());
        }
    }

    /// Space is back: the paused recorders start again.
    fn resume(&self) {
        {
            let mut paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
            if !*paused {
                return;
            }
            *paused = false;
        }
        info!("disk guard: space is back; recording resumed");
        let ids: Vec<CameraId> = self.lock().keys().cloned().collect();
        for id in ids {
            self.start_recorder(&id);
        }
    }

    /// This node's id in the district ('' for a single hub): the segments it records carry it.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The stream `camera` records: the one its recorder here takes, else (another node runs
    /// it, or it stopped) the one its settings in the topology name (the other one when it
    /// has not that stream), else the default.
    pub fn recorded_stream(&self, camera: &CameraId) -> StreamKind {
        if let Some(c) = self.lock().get(camera) {
            return c.stream;
        }
        let topology = self.topology.borrow();
        let Some(cam) = topology.cameras.get(camera) else {
            return self.cfg.stream;
        };
        match self.cfg.of(cam).1 {
            StreamKind::Main if cam.main.is_none() && cam.sub.is_some() => StreamKind::Sub,
            StreamKind::Sub if cam.sub.is_none() && cam.main.is_some() => StreamKind::Main,
            wanted => wanted,
        }
    }

    /// The clip of `camera`'s `stream` over `[from, to)`. In a district, the segments other
    /// nodes recorded are fetched from them `on_behalf` of the caller.
    pub async fn clip(
        &self,
        camera: &CameraId,
        stream: StreamKind,
        from: Timestamp,
        to: Timestamp,
        on_behalf: &xl_api::backend::OnBehalf,
    ) -> Result<Clip, ClipError> {
        let rows = self.store.segments(camera, stream, from, to).await?;
        let mut segments = Vec::with_capacity(rows.len());
        // Held until the clip is planned: the copy of another node's segment being written
        // grows (or is cut back after a failed fetch) under its lock, so the plan reads it
        // whole, and the bytes it planned on never change after.
        let mut copies = Vec::new();
        for s in needed(&rows, from, to) {
            let path = match &self.peers {
                Some(peers) if s.node != self.node => {
                    let copy = peers.local_copy(s, on_behalf).await.map_err(|e| {
                        ClipError::Peer(PeerPart {
                            start_at: s.start_at,
                            end_at: s.end_at,
                            error: e,
                        })
                    })?;
                    let path = copy.path().to_owned();
                    copies.push(copy);
                    path
                }
                _ => self.data_dir.join(&s.path),
            };
            segments.push(SegmentRef {
                path,
                start_at: s.start_at,
                media_start_90k: s.media_start_90k,
            });
        }
        let clip = tokio::task::spawn_blocking(move || Clip::plan(&segments, from, to))
            .await
            .map_err(|e| ClipError::Thread(e.to_string()))??;
        drop(copies);
        Ok(clip)
    }

    /// The bytes fetched from other nodes, for `/metrics` (in a district).
    pub fn peer_stats(&self) -> Option<&Arc<crate::peer_video::PeerStats>> {
        self.peers.as_ref().map(|p| p.stats())
    }

    /// Deletes the copies of other nodes' segments not read lately.
    async fn sweep_peer_copies(self: &Arc<Self>) {
        if self.peers.is_some() {
            let me = Arc::clone(self);
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(p) = &me.peers {
                    p.sweep();
                }
            })
            .await;
        }
    }
}

/// The segments of `rows` (in start order, overlapping `[from, to)`) a clip of that range
/// reads: not those before the last one starting at or before `from` (as [`Clip::plan`]
/// skips them), so that no other node is asked for a segment the clip does not use.
fn needed(rows: &[SegmentRow], from: Timestamp, to: Timestamp) -> Vec<&SegmentRow> {
    rows.iter()
        .enumerate()
        .filter(|(i, s)| s.start_at < to && rows.get(i + 1).is_none_or(|next| next.start_at > from))
        .map(|(_, s)| s)
        .collect()
}

/// Why a clip could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error(transparent)]
    Store(#[from] xl_store::StoreError),
    #[error(transparent)]
    Record(#[from] xl_record::RecordError),
    #[error("the clip thread failed: {0}")]
    Thread(String),
    /// A part recorded on another node could not be had from it.
    #[error("{0}")]
    Peer(PeerPart),
}

/// A part of a recording another node holds, and why it could not be had.
#[derive(Debug)]
pub struct PeerPart {
    pub start_at: Timestamp,
    pub end_at: Option<Timestamp>,
    pub error: crate::peer_video::FetchError,
}

impl std::fmt::Display for PeerPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.end_at {
            Some(end) => write!(
                f,
                "the part from {} to {end}: {}",
                self.start_at, self.error
            ),
            None => write!(f, "the part from {} on: {}", self.start_at, self.error),
        }
    }
}

fn new_segment(s: &xl_record::Segment, node: &str) -> NewSegment {
    NewSegment {
        node: node.to_owned(),
        camera: s.camera.clone(),
        stream: s.stream,
        start_at: s.start_at,
        codec: s.codec,
        width: s.width,
        height: s.height,
        media_start_90k: s.media_start_90k,
        path: s.path.clone(),
    }
}

/// A write error in words for an alert's title: what failed, never a path.
fn failure_reason(e: &xl_record::RecordError) -> String {
    match e {
        xl_record::RecordError::Io { what, source, .. } => {
            let why = match source.kind() {
                std::io::ErrorKind::StorageFull => "the disk is full".to_owned(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                std::io::ErrorKind::ReadOnlyFilesystem => "the disk is read-only".to_owned(),
                k => k.to_string(),
            };
            format!("{what} failed: {why}")
        }
        other => format!("{:?}", other.kind()),
    }
}

/// 90 kHz ticks as a duration.
fn ticks_90k(ticks: u64) -> SignedDuration {
    let ticks = i64::try_from(ticks)
        .unwrap_or(i64::MAX)
        .min(i64::MAX / 100_000);
    SignedDuration::from_nanos(ticks * 100_000 / 9)
}

/// Removes a file; true when it is gone (also when it was gone before).
fn remove_file(path: &Path) -> bool {
    match std::fs::remove_file(path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot delete a recording file");
            false
        }
    }
}

/// Deletes the evidence packages (and leftovers of interrupted ones) older than `keep`.
fn sweep_exports(dir: &Path, keep: SignedDuration) {
    let Ok(keep) = Duration::try_from(keep) else {
        return;
    };
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > keep);
        if old && e.path().is_file() && remove_file(&e.path()) {
            info!(file = %e.path().display(), "retention: evidence export past evidence_days deleted");
        }
    }
}

/// Free bytes (for an unprivileged process) of the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Per camera and stream under `root` (`<camera>/<stream>/<YYYY-MM-DD>/*.mp4`), the newest day
/// directory's date (UTC midnight) and its files, relative to the data directory and full.
#[allow(clippy::type_complexity)]
fn newest_day_dirs(root: &Path) -> Vec<(CameraId, StreamKind, Timestamp, Vec<(String, PathBuf)>)> {
    let mut out = Vec::new();
    let dirs = |p: &Path| -> Vec<(String, PathBuf)> {
        std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.to_owned(), e.path())))
            .collect()
    };
    for (camera, cam_dir) in dirs(root) {
        let Ok(camera_id) = CameraId::new(&camera) else {
            continue;
        };
        for (stream, stream_dir) in dirs(&cam_dir) {
            let Ok(kind) = stream.parse::<StreamKind>() else {
                continue;
            };
            let newest = dirs(&stream_dir)
                .into_iter()
                .filter_map(|(name, p)| {
                    let date: jiff::civil::Date = name.parse().ok()?;
                    let at = date.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
                    Some((at, name, p))
                })
                .max_by_key(|(at, _, _)| *at);
            let Some((at, day, day_dir)) = newest else {
                continue;
            };
            let files = dirs(&day_dir)
                .into_iter()
                .filter(|(name, _)| name.ends_with(".mp4"))
                .map(|(name, p)| {
                    (
                        format!(
                            "{}/{camera}/{stream}/{day}/{name}",
                            xl_record::RECORDINGS_DIR
                        ),
                        p,
                    )
                })
                .collect();
            out.push((camera_id.clone(), kind, at, files));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clip_needs_the_segment_holding_its_start_and_those_after() {
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let row = |id: i64, start: i64, end: Option<i64>| SegmentRow {
            id,
            camera: CameraId::new("c").unwrap(),
            stream: StreamKind::Main,
            start_at: t(start),
            end_at: end.map(t),
            bytes: 0,
            codec: xl_core::camera::VideoCodec::H264,
            width: 640,
            height: 360,
            media_start_90k: 0,
            path: format!("{id}.mp4"),
            state: if end.is_some() {
                xl_store::SegmentState::Closed
            } else {
                xl_store::SegmentState::Open
            },
            node: String::new(),
        };
        // As the index answers [70, 150): every segment overlapping it.
        let rows = [
            row(1, 0, Some(60)),
            row(2, 60, Some(120)),
            row(3, 120, Some(180)),
            row(4, 180, None),
        ];
        let ids = |v: Vec<&SegmentRow>| v.iter().map(|s| s.id).collect::<Vec<_>>();
        // The one before the segment holding `from` (it starts at or before 70) is not read.
        assert_eq!(ids(needed(&rows, t(70), t(150))), [2, 3]);
        // A start exactly at a segment's start: the earlier ones go.
        assert_eq!(ids(needed(&rows, t(120), t(200))), [3, 4]);
        // Before everything: from the first on.
        assert_eq!(ids(needed(&rows, t(-10), t(65))), [1, 2]);
    }

    #[test]
    fn config_defaults_and_checks() {
        let cfg = RecordingConfig::default();
        cfg.validate().unwrap();
        assert_eq!(cfg.mode, RecordingMode::Off);
        let bad = RecordingConfig {
            segment_secs: 5,
            ..RecordingConfig::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("segment_secs"), "{e}");
        let bad = RecordingConfig {
            retain_days: 0,
            ..RecordingConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("retain_days")
        );
    }

    #[test]
    fn write_errors_are_told_without_paths() {
        let e = xl_record::RecordError::Io {
            what: "writing",
            path: "/var/lib/xueliang/recordings/cam/main/2026-12-03/1.mp4".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        };
        let why = failure_reason(&e);
        assert_eq!(why, "writing failed: the disk is full");
        assert!(!why.contains('/'));
    }

    fn camera_in(mode: RecordingMode) -> Camera {
        let mut c: Camera = serde_json::from_value(serde_json::json!({
            "id": "cam-m",
            "name": "cam-m",
            "community": "xingfu",
            "sub": {"kind": "rtsp", "url": "rtsp://192.0.2.1/sub"},
        }))
        .unwrap();
        c.recording.mode = Some(mode);
        c.recording.retain_days = Some(3);
        c
    }

    /// Stretches of motion become holds: one per stretch, split at 10 s of quiet, with 10 s
    /// either side, kept the camera's retention days; only for `motion-and-events` cameras.
    #[tokio::test]
    async fn motion_is_held_in_stretches() {
        let dir = xl_testkit::TempDir::new("motion-holds").unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path.join("db").display()))
            .await
            .unwrap();
        let t0: Timestamp = "2026-12-03T10:00:00Z".parse().unwrap();
        let clocks = xl_core::clock::SimulatedClocks::new(t0);
        let (health, _rx) = mpsc::unbounded_channel();
        let (rec, _events) = Recordings::new(
            RecordingConfig::default(),
            &dir.path,
            store.clone(),
            clocks.shared(),
            health,
            None,
            tokio::sync::watch::channel(Arc::default()).1,
        );
        let cam = camera_in(RecordingMode::MotionAndEvents);
        rec.set_camera(&cam, Some((StreamKind::Sub, Arc::new(Tee::new()))));
        let at = |s: i64| t0 + SignedDuration::from_secs(s);
        for s in [0, 2, 4] {
            rec.motion_seen(&cam.id, at(s));
        }
        // Still moving: nothing held yet.
        clocks.advance(Duration::from_secs(5));
        rec.hold_motion(std::slice::from_ref(&cam), false).await;
        let held = || store.holds_overlapping(&cam.id, at(-3600), at(3600));
        assert!(held().await.unwrap().is_empty());
        // Quiet for 10 s: the stretch is held; new motion starts another.
        clocks.advance(Duration::from_secs(10));
        rec.motion_seen(&cam.id, at(30));
        rec.hold_motion(std::slice::from_ref(&cam), false).await;
        let holds = held().await.unwrap();
        assert_eq!(holds.len(), 1);
        assert_eq!((holds[0].from, holds[0].to), (at(-10), at(14)));
        assert_eq!(holds[0].until, Some(at(4) + SignedDuration::from_hours(72)));
        // At shutdown what is pending is held too.
        rec.hold_motion(std::slice::from_ref(&cam), true).await;
        assert_eq!(held().await.unwrap().len(), 2);

        // An events-only camera's motion holds nothing.
        let other = camera_in(RecordingMode::EventsOnly);
        rec.set_camera(&other, Some((StreamKind::Sub, Arc::new(Tee::new()))));
        rec.motion_seen(&other.id, at(40));
        rec.hold_motion(std::slice::from_ref(&other), true).await;
        assert_eq!(held().await.unwrap().len(), 2);
        rec.stop_all().await;
    }

    #[test]
    fn newest_day_dirs_are_found() {
        let dir = xl_testkit::TempDir::new("newest-days").unwrap();
        let root = dir.path.join("recordings");
        for d in ["2026-12-01", "2026-12-02"] {
            let p = root.join("cam-1/main").join(d);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("1.mp4"), b"x").unwrap();
        }
        std::fs::create_dir_all(root.join("cam-1/other/2026-12-03")).unwrap();
        let found = newest_day_dirs(&root);
        assert_eq!(found.len(), 1);
        let (camera, stream, at, files) = &found[0];
        assert_eq!(camera.as_str(), "cam-1");
        assert_eq!(*stream, StreamKind::Main);
        assert_eq!(at.to_string(), "2026-12-02T00:00:00Z");
        assert_eq!(files[0].0, "recordings/cam-1/main/2026-12-02/1.mp4");
    }
}
