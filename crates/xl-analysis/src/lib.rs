//! The hub's video analysis: per camera, the motion gate picks the crops worth looking at, the
//! detection engine finds persons and faces in them, and the tracker and zones turn detections
//! into vision events. `[detect]` and each camera's `[cameras.detect]` and `[[cameras.zones]]`
//! configure it; `xueliang bench` runs the very same path.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;
use tokio::sync::broadcast;
use tracing::debug;
use xl_core::clock::Clocks;
use xl_core::frame::{Frame, FrameSink};
use xl_core::ids::CameraId;
use xl_detect::engine::{
    CameraPlan, DetectionSink, Detections, Engine, EngineConfig, FaceMode, FaceSettings, Job,
};
use xl_detect::geom::Crop;
use xl_detect::models::{EmbedModel, FaceModelConfig, PersonModelConfig, PersonModelKind};
use xl_detect::runtime::{Provider, SessionOptions};
use xl_detect::stats::Stage;
use xl_vision::motion::{CropConfig, CropPlanner, MotionConfig, MotionGate};
use xl_vision::track::{Detection, Tracker, TrackerConfig};
use xl_vision::zone::{ZoneConfig, Zones};
use xl_vision::{NormRect, ObjectClass, VisionEvent};

/// Where analysed frames and their person boxes go, for evidence (the hub passes its frame
/// rings' `record_detections`): the time, the frame, the boxes in normalised coordinates.
pub type RecordDetections = Arc<dyn Fn(Timestamp, Arc<Frame>, Vec<NormRect>) + Send + Sync>;

/// Told of every frame in which a camera's motion gate saw movement worth detecting (the
/// camera, the frame's receipt time); called on a decode thread, so it must be quick.
pub type RecordMotion = Arc<dyn Fn(&CameraId, Timestamp) + Send + Sync>;

/// Why analysis could not start, or could not take a camera's settings.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// A `[detect]` setting is wrong; the message names the key.
    #[error("{0}")]
    Config(String),
    #[error("camera {camera}: {source}")]
    Camera {
        camera: CameraId,
        source: xl_vision::VisionError,
    },
    #[error("cannot start detection ([detect]): {0}")]
    Start(#[from] xl_detect::DetectError),
}

/// `Err(AnalysisError::Config(..))` unless `ok`.
fn ensure(ok: bool, message: impl FnOnce() -> String) -> Result<(), AnalysisError> {
    if ok {
        Ok(())
    } else {
        Err(AnalysisError::Config(message()))
    }
}

/// `[detect]`: the models, where they run, and the defaults for every camera.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Run detection at all. Default true; with false, cameras are only received and decoded.
    pub enabled: bool,
    /// Inference worker threads, each with its own model sessions. 0 (default): one per core.
    pub workers: usize,
    /// ONNX Runtime threads per session. Default 1: several single-threaded sessions side by
    /// side keep the cores busier than one wide one.
    pub session_threads: usize,
    /// Crops from different cameras batched into one person-model run. Default 1: on the CPU
    /// provider single images ran 5-8% faster than batches of 4 here; GPUs want 4 to 16.
    pub batch: usize,
    /// `cpu` (default), `cuda`, `tensorrt` or `openvino`.
    pub provider: Provider,
    /// GPU for cuda and tensorrt. Default 0.
    pub device_id: i32,
    /// cuda: TensorFloat-32 convolutions and matrix products (faster on Ampere and later GPUs;
    /// face embeddings then differ from the CPU's by about 2e-3). Default false.
    pub tf32: bool,
    /// OpenVINO device type. Default `CPU`.
    pub openvino_device: String,
    /// The ONNX Runtime library. Default: `ORT_DYLIB_PATH`, else the one `scripts/setup-assets`
    /// fetched.
    pub onnxruntime: Option<PathBuf>,
    /// Where the default models are. Default: `XUELIANG_MODELS`, else the asset cache.
    pub models_dir: Option<PathBuf>,
    pub person: PersonSection,
    /// Face detection (YuNet) where cameras ask for it. Default true.
    pub faces: bool,
    /// Face embeddings (SFace) where cameras ask for them. Default true.
    pub embeddings: bool,
    /// `[detect.face]`: which persons are searched for faces and which faces are embedded.
    pub face: FaceSettings,
    /// Default detections a second per camera. Default 2.
    pub rate: f32,
    pub motion: MotionConfig,
    pub crop: CropConfig,
    pub tracker: TrackerConfig,
    /// Time zone of zone schedules. Default: the system's.
    pub time_zone: Option<String>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            enabled: true,
            workers: 0,
            session_threads: 1,
            batch: 1,
            provider: Provider::Cpu,
            device_id: 0,
            tf32: false,
            openvino_device: "CPU".into(),
            onnxruntime: None,
            models_dir: None,
            person: PersonSection::default(),
            faces: true,
            embeddings: true,
            face: FaceSettings::default(),
            rate: 2.0,
            motion: MotionConfig::default(),
            crop: CropConfig::default(),
            tracker: TrackerConfig::default(),
            time_zone: None,
        }
    }
}

/// `[detect.person]`: the person detector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PersonSection {
    /// `ssd-mobilenet` (default, the fetched SSD), `yolov5` or `yolov8` (a YOLO-family ONNX
    /// export of your own, `path` required).
    pub kind: PersonModelKind,
    pub path: Option<PathBuf>,
    /// The person class index. Default: 1 for the SSD (TF COCO), 0 for YOLO (COCO).
    pub class: Option<usize>,
    /// Square input side of a YOLO model. Default 640.
    pub input_side: u32,
    /// Default 0.5.
    pub threshold: f32,
    /// Default 0.6 for the SSD; YOLO exports usually want 0.45.
    pub nms_iou: f32,
}

impl Default for PersonSection {
    fn default() -> Self {
        PersonSection {
            kind: PersonModelKind::SsdMobilenet,
            path: None,
            class: None,
            input_side: 640,
            threshold: 0.5,
            nms_iou: 0.6,
        }
    }
}

/// `[cameras.detect]`: how one camera is analysed (defined in `xl-core`, with the rest of a
/// camera's settings).
pub use xl_core::camera::CameraDetect;

impl DetectConfig {
    /// Checks what can be checked without loading anything.
    pub fn validate(&self) -> Result<(), AnalysisError> {
        ensure(self.batch >= 1, || "detect.batch must be at least 1".into())?;
        ensure(self.session_threads >= 1, || {
            "detect.session_threads must be at least 1".into()
        })?;
        ensure(xl_detect::engine::valid_rate(self.rate), || {
            format!(
                "detect.rate must be 0 (no limit) or at least {} detections a second, not {}",
                xl_detect::engine::MIN_RATE,
                self.rate
            )
        })?;
        ensure(
            self.person.kind == PersonModelKind::SsdMobilenet || self.person.path.is_some(),
            || {
                format!(
                    "detect.person.path is required for kind {:?}",
                    self.person.kind
                )
            },
        )?;
        ensure((0.0..1.0).contains(&self.person.threshold), || {
            "detect.person.threshold must be in [0, 1)".into()
        })?;
        ensure(
            self.face.person_crop_side >= 32 && self.face.person_crop_side.is_multiple_of(32),
            || "detect.face.person_crop_side must be a multiple of 32 (YuNet's input)".into(),
        )?;
        let config = |key: &str, e: xl_vision::VisionError| {
            AnalysisError::Config(format!("detect.{key}: {e}"))
        };
        self.motion.validate().map_err(|e| config("motion", e))?;
        self.crop.validate().map_err(|e| config("crop", e))?;
        self.tracker.validate().map_err(|e| config("tracker", e))?;
        self.zone()?;
        Ok(())
    }

    fn zone(&self) -> Result<TimeZone, AnalysisError> {
        match &self.time_zone {
            Some(name) => TimeZone::get(name).map_err(|_| {
                AnalysisError::Config(format!("detect.time_zone {name:?} is not a time zone"))
            }),
            None => Ok(TimeZone::system()),
        }
    }

    fn workers(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// The engine configuration this section describes.
    pub fn engine(&self) -> EngineConfig {
        let models = self
            .models_dir
            .clone()
            .unwrap_or_else(xl_detect::models_dir);
        let p = &self.person;
        let mut person = PersonModelConfig::ssd(&models);
        if p.kind != PersonModelKind::SsdMobilenet {
            person.class = 0;
            person.input_side = p.input_side;
        }
        person.kind = p.kind;
        if let Some(path) = &p.path {
            person.path = path.clone();
        }
        if let Some(c) = p.class {
            person.class = c;
        }
        person.threshold = p.threshold;
        person.nms_iou = p.nms_iou;
        EngineConfig {
            workers: self.workers(),
            session: SessionOptions {
                provider: self.provider.clone(),
                device_id: self.device_id,
                openvino_device: self.openvino_device.clone(),
                threads: self.session_threads,
                tf32: self.tf32,
            },
            batch: self.batch,
            person,
            face: self.faces.then(|| FaceModelConfig::yunet(&models)),
            embed: (self.faces && self.embeddings).then(|| EmbedModel::sface_path(&models)),
            faces: self.face.clone(),
            merge_iou: 0.5,
        }
    }

    pub fn library(&self) -> PathBuf {
        self.onnxruntime
            .clone()
            .unwrap_or_else(xl_detect::runtime::default_library)
    }
}

/// One camera as analysis sees it.
pub struct CameraAnalysis {
    pub id: CameraId,
    pub detect: CameraDetect,
    pub zones: Vec<ZoneConfig>,
}

/// Counters of the analysis around the engine.
#[derive(Default)]
pub struct VisionStats {
    /// Motion gate calls (frames); latency is the gate's time per frame.
    pub motion: Stage,
    /// Frames offered to detection.
    pub offered: AtomicU64,
    /// Tracker and zones per result.
    pub tracking: Stage,
    pub tracks_started: AtomicU64,
    pub events: AtomicU64,
}

struct MotionState {
    gate: MotionGate,
    planner: CropPlanner,
}

struct TrackState {
    tracker: Tracker,
    zones: Zones,
    detections: Vec<Detection>,
    events: Vec<VisionEvent>,
    /// Lossless replays (the bench) arrive faster than real time, so their tracker runs on the
    /// stream's own clock: the first frame's receipt plus its presentation time since then.
    media_clock: Option<(i64, jiff::Timestamp)>,
    lossless: bool,
}

impl TrackState {
    fn clock(&mut self, frame: &Frame) -> jiff::Timestamp {
        if !self.lossless {
            return frame.received_at;
        }
        let (pts0, t0) = *self
            .media_clock
            .get_or_insert((frame.pts_90k, frame.received_at));
        let since = jiff::SignedDuration::from_micros((frame.pts_90k - pts0) * 1000 / 90);
        t0.checked_add(since).unwrap_or(frame.received_at)
    }
}

/// The detection side: tracker and zones per camera, events out.
struct Tracking {
    cameras: RwLock<HashMap<CameraId, Arc<Mutex<TrackState>>>>,
    stats: Arc<VisionStats>,
    events: broadcast::Sender<VisionEvent>,
    /// Where analysed frames and their person boxes go for evidence, once attached.
    evidence: Arc<OnceLock<RecordDetections>>,
}

impl DetectionSink for Tracking {
    fn on_detections(&self, d: Detections) {
        let state = {
            let cameras = self.cameras.read().unwrap_or_else(|e| e.into_inner());
            cameras.get(&d.camera).cloned()
        };
        // a camera removed while its frame was in a model run
        let Some(state) = state else {
            return;
        };
        let start = Instant::now();
        let mut st = state.lock().unwrap();
        let at = st.clock(&d.frame);
        let TrackState {
            tracker,
            zones,
            detections,
            events,
            ..
        } = &mut *st;
        let (w, h) = (d.frame.width as f32, d.frame.height as f32);
        detections.clear();
        detections.extend(d.persons.iter().map(|p| Detection {
            bbox: NormRect::new(p.bbox.x0 / w, p.bbox.y0 / h, p.bbox.x1 / w, p.bbox.y1 / h),
            score: p.score,
            class: ObjectClass::Person,
        }));
        if let Some(record) = self.evidence.get() {
            let boxes = detections.iter().map(|d| d.bbox).collect();
            record(at, Arc::clone(&d.frame), boxes);
        }
        events.clear();
        let tracks = tracker.update(at, detections, events);
        zones.update(at, tracks, events);
        let started = events
            .iter()
            .filter(|e| matches!(e, VisionEvent::TrackStarted { .. }))
            .count();
        self.stats
            .tracks_started
            .fetch_add(started as u64, Ordering::Relaxed);
        self.stats
            .events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        for e in events.drain(..) {
            debug!(camera = %d.camera, event = ?e, "vision event");
            // no receiver is fine: nobody is listening yet
            let _ = self.events.send(e);
        }
        self.stats.tracking.record(1, start.elapsed());
    }
}

/// The running analysis: a `FrameSink` for the decode pool. Cameras are added, changed and
/// removed while it runs ([`Vision::set_camera`], [`Vision::remove_camera`]).
pub struct Vision {
    engine: Arc<Engine>,
    /// Cameras with detection on, with their motion gate when motion gating is on; frames of
    /// the others are dropped here.
    cameras: RwLock<HashMap<CameraId, Option<Arc<Mutex<MotionState>>>>>,
    tracking: Arc<Tracking>,
    cfg: DetectConfig,
    tz: TimeZone,
    lossless: bool,
    stats: Arc<VisionStats>,
    events: broadcast::Sender<VisionEvent>,
    evidence: Arc<OnceLock<RecordDetections>>,
    motion: OnceLock<RecordMotion>,
}

impl Vision {
    /// Loads the models and starts the inference workers for `cameras`, scheduling them on
    /// `clocks` (the clocks the decode pool stamps frames with).
    pub fn start(
        cfg: &DetectConfig,
        cameras: &[CameraAnalysis],
        lossless: bool,
        clocks: Arc<dyn Clocks>,
    ) -> Result<Vision, AnalysisError> {
        let (events, _) = broadcast::channel(4096);
        Self::start_with(cfg, cfg.engine(), cameras, lossless, clocks, events)
    }

    /// Like [`Vision::start`] with the engine configuration given (the bench adjusts it) and
    /// vision events sent on `events`.
    pub fn start_with(
        cfg: &DetectConfig,
        engine: EngineConfig,
        cameras: &[CameraAnalysis],
        lossless: bool,
        clocks: Arc<dyn Clocks>,
        events: broadcast::Sender<VisionEvent>,
    ) -> Result<Vision, AnalysisError> {
        cfg.validate()?;
        let tz = cfg.zone()?;
        let stats = Arc::new(VisionStats::default());
        let evidence = Arc::new(OnceLock::new());
        let tracking = Arc::new(Tracking {
            cameras: RwLock::default(),
            stats: Arc::clone(&stats),
            events: events.clone(),
            evidence: Arc::clone(&evidence),
        });
        let sink: Arc<dyn DetectionSink> = Arc::clone(&tracking) as _;
        let engine = Engine::start(engine, &cfg.library(), sink, clocks)?;
        let vision = Vision {
            engine: Arc::new(engine),
            cameras: RwLock::default(),
            tracking,
            cfg: cfg.clone(),
            tz,
            lossless,
            stats,
            events,
            evidence,
            motion: OnceLock::new(),
        };
        for c in cameras {
            vision.set_camera(c)?;
        }
        Ok(vision)
    }

    /// Starts analysing a camera, or applies its changed settings and zones (its tracks start
    /// afresh); a camera with detection off is removed. Refused (nothing changed): zones or
    /// settings the tracker or zones cannot take.
    pub fn set_camera(&self, c: &CameraAnalysis) -> Result<(), AnalysisError> {
        if !c.detect.enabled {
            self.remove_camera(&c.id);
            return Ok(());
        }
        let cfg = &self.cfg;
        let at_camera = |source| AnalysisError::Camera {
            camera: c.id.clone(),
            source,
        };
        let tracker = Tracker::new(c.id.clone(), cfg.tracker.clone()).map_err(at_camera)?;
        let zones = Zones::new(c.id.clone(), self.tz.clone(), &c.zones).map_err(at_camera)?;
        let motion = if c.detect.motion {
            let gate = MotionGate::new(cfg.motion.clone()).map_err(at_camera)?;
            let planner = CropPlanner::new(cfg.crop.clone()).map_err(at_camera)?;
            Some(Arc::new(Mutex::new(MotionState { gate, planner })))
        } else {
            None
        };
        let state = TrackState {
            tracker,
            zones,
            detections: Vec::new(),
            events: Vec::new(),
            media_clock: None,
            lossless: self.lossless,
        };
        let plan = CameraPlan {
            rate: c.detect.rate.unwrap_or(cfg.rate),
            faces: if cfg.faces {
                c.detect.faces
            } else {
                FaceMode::Off
            },
            embed: c.detect.embed.unwrap_or(cfg.embeddings),
            lossless: self.lossless,
        };
        self.tracking
            .cameras
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(c.id.clone(), Arc::new(Mutex::new(state)));
        self.engine.set_camera(c.id.clone(), plan);
        self.cameras
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(c.id.clone(), motion);
        Ok(())
    }

    /// Stops analysing a camera: its frames are dropped from now on and its tracks forgotten.
    pub fn remove_camera(&self, id: &CameraId) {
        self.cameras
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        self.engine.remove_camera(id);
        self.tracking
            .cameras
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Analysed frames and their person boxes go to `record` from now on (evidence for camera
    /// alerts). Only the first call counts.
    pub fn attach_evidence(&self, record: RecordDetections) {
        let _ = self.evidence.set(record);
    }

    /// Frames with motion are told to `record` from now on (recording keeps the video around
    /// them). Only the first call counts.
    pub fn attach_motion(&self, record: RecordMotion) {
        let _ = self.motion.set(record);
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn stats(&self) -> &VisionStats {
        &self.stats
    }

    /// Vision events (tracks, zones) as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<VisionEvent> {
        self.events.subscribe()
    }
}

impl FrameSink for Vision {
    fn on_frame(&self, frame: Frame) {
        let motion = {
            let cameras = self.cameras.read().unwrap_or_else(|e| e.into_inner());
            match cameras.get(&frame.camera) {
                Some(m) => m.clone(),
                None => return,
            }
        };
        let mut crops = Vec::new();
        if let Some(m) = motion {
            let start = Instant::now();
            let mut m = m.lock().unwrap();
            let MotionState { gate, planner } = &mut *m;
            let regions = match gate.process_frame(&frame) {
                Ok(outcome) => outcome.regions,
                Err(e) => {
                    debug!(camera = %frame.camera, error = %e, "motion gate refused a frame");
                    return;
                }
            };
            let planned = planner.plan(regions, frame.width, frame.height);
            crops.extend(planned.iter().map(|r| Crop {
                x: r.x,
                y: r.y,
                w: r.width,
                h: r.height,
            }));
            self.stats.motion.record(1, start.elapsed());
            if crops.is_empty() {
                return;
            }
            if let Some(record) = self.motion.get() {
                record(&frame.camera, frame.received_at);
            }
        }
        self.stats.offered.fetch_add(1, Ordering::Relaxed);
        let camera = frame.camera.clone();
        self.engine.offer(
            &camera,
            Job {
                frame: Arc::new(frame),
                crops,
            },
        );
    }
}

impl xl_core::metrics::MetricsSource for Vision {
    fn render_prometheus(&self, out: &mut String) {
        use std::fmt::Write;
        let es = self.engine.stats();
        let vs = &self.stats;
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            "xueliang_motion_frames_total",
            "Frames through the motion gates.",
            vs.motion.items(),
        );
        counter(
            "xueliang_detection_offered_total",
            "Frames offered to detection (motion seen, or motion gating off).",
            vs.offered.load(Ordering::Relaxed),
        );
        counter(
            "xueliang_detection_frames_total",
            "Frames through detection.",
            es.frames.items(),
        );
        counter(
            "xueliang_detection_superseded_total",
            "Frames replaced by a newer one of the same camera before their turn.",
            es.superseded.load(Ordering::Relaxed),
        );
        counter(
            "xueliang_detection_failures_total",
            "Model runs that failed (frames delivered without detections).",
            es.failures.load(Ordering::Relaxed),
        );
        counter(
            "xueliang_tracks_started_total",
            "Tracks confirmed.",
            vs.tracks_started.load(Ordering::Relaxed),
        );
        counter(
            "xueliang_vision_events_total",
            "Vision events (tracks, zones).",
            vs.events.load(Ordering::Relaxed),
        );
        let models = [
            ("person", &es.person),
            ("face", &es.face),
            ("embedding", &es.embed),
        ];
        let name = "xueliang_detection_model_items_total";
        let _ = writeln!(
            out,
            "# HELP {name} Crops, frames or faces through each model.\n# TYPE {name} counter"
        );
        for (m, s) in models {
            let _ = writeln!(out, "{name}{{model=\"{m}\"}} {}", s.items());
        }
        let name = "xueliang_detection_model_seconds_total";
        let _ = writeln!(
            out,
            "# HELP {name} Time spent in each model, pre/post-processing included.\n# TYPE {name} counter"
        );
        for (m, s) in models {
            let _ = writeln!(out, "{name}{{model=\"{m}\"}} {:.6}", s.busy().as_secs_f64());
        }
        let counts = self.engine.camera_counts();
        let name = "xueliang_detection_camera_frames_total";
        let _ = writeln!(
            out,
            "# HELP {name} Frames of each camera taken for detection.\n# TYPE {name} counter"
        );
        for (camera, taken, _) in &counts {
            let _ = writeln!(out, "{name}{{camera=\"{camera}\"}} {taken}");
        }
        let name = "xueliang_detection_camera_superseded_total";
        let _ = writeln!(
            out,
            "# HELP {name} Frames of each camera replaced by a newer one before their turn.\n# TYPE {name} counter"
        );
        for (camera, _, superseded) in &counts {
            let _ = writeln!(out, "{name}{{camera=\"{camera}\"}} {superseded}");
        }
        let name = "xueliang_detection_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} From a frame's receipt to its detection result (5% buckets).\n# TYPE {name} summary"
        );
        for q in [0.5, 0.9, 0.99] {
            let _ = writeln!(
                out,
                "{name}{{quantile=\"{q}\"}} {:.6}",
                es.frames.latency.quantile(q).as_secs_f64()
            );
        }
        let _ = writeln!(out, "{name}_count {}", es.frames.latency.count());
    }
}
