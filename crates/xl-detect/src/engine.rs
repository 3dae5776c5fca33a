//! The detection scheduler: cameras offer frames (with the crops worth looking at), a fixed set
//! of inference workers takes them round robin across cameras, batches crops from different
//! cameras into one model run, and hands results to a sink in each camera's frame order.
//!
//! Bounded by construction: a camera holds at most one waiting frame (a newer one replaces it,
//! counted as superseded) unless it is `lossless` (benchmarks, file replays), where `offer` waits
//! instead. Each camera is due again `1 / rate` after its last frame was taken; under overload
//! every camera simply waits its turn, so per-camera rates fall evenly and nothing queues up.
//!
//! The schedule runs on the injected clocks' monotonic time (which frames are analysed is the
//! product's behaviour); workers wait on real time and read the clocks when they wake. Model
//! timings are real time.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{error, info};
use xl_core::clock::Clocks;
use xl_core::frame::Frame;
use xl_core::ids::CameraId;

use crate::geom::{BBox, Crop, Scored, nms};
use crate::models::{
    EmbedModel, FaceModel, FaceModelConfig, Person, PersonModel, PersonModelConfig,
};
use crate::pixels::I420View;
use crate::runtime::{self, SessionOptions};
use crate::stats::Stage;
use crate::yunet::Face;
use crate::{DetectError, face};

/// Where faces are looked for on a camera (a camera's setting, defined in `xl-core`).
pub use xl_core::camera::FaceMode;
/// The lowest detection rate other than 0, and whether a rate is usable ([`CameraPlan::rate`]):
/// the rule lives in `xl-core`, where a camera's settings are checked.
pub use xl_core::camera::{MIN_DETECT_RATE as MIN_RATE, valid_detect_rate as valid_rate};

/// How one camera is served.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraPlan {
    /// Detections a second at most; 0 = as often as frames are offered and workers are free.
    pub rate: f32,
    pub faces: FaceMode,
    /// Compute face embeddings (for faces big and sharp enough).
    pub embed: bool,
    /// `offer` waits rather than replace a waiting frame, and several frames of this camera may
    /// be in flight at once (results still arrive in order). For file replays and benchmarks.
    pub lossless: bool,
}

impl Default for CameraPlan {
    fn default() -> Self {
        CameraPlan {
            rate: 2.0,
            faces: FaceMode::Persons,
            embed: false,
            lossless: false,
        }
    }
}

/// Face thresholds (`[detect.face]` in the hub's config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaceSettings {
    /// Persons shorter than this (frame pixels) are not searched for faces. Default 48.
    pub min_person_height: f32,
    /// Square YuNet input side for the head crops of persons (a multiple of 32). Default 128.
    pub person_crop_side: u32,
    /// Faces narrower than this (frame pixels) are not embedded. Default 24.
    pub embed_min_width: f32,
    /// Faces scoring below this are not embedded. Default 0.7.
    pub embed_min_score: f32,
}

impl Default for FaceSettings {
    fn default() -> Self {
        FaceSettings {
            min_person_height: 48.0,
            person_crop_side: 128,
            embed_min_width: 24.0,
            embed_min_score: 0.7,
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Inference worker threads, each with its own sessions.
    pub workers: usize,
    /// Provider and intra-op threads of each session.
    pub session: SessionOptions,
    /// Crops per person-model run.
    pub batch: usize,
    pub person: PersonModelConfig,
    /// Face detector; `None` turns faces off on every camera.
    pub face: Option<FaceModelConfig>,
    /// Embedding model; `None` turns embeddings off.
    pub embed: Option<PathBuf>,
    pub faces: FaceSettings,
    /// Persons from overlapping crops of one frame closer than this IoU are one person.
    pub merge_iou: f32,
}

/// One frame offered for detection, with the parts of it worth looking at.
pub struct Job {
    pub frame: Arc<Frame>,
    /// Frame pixel rectangles to run the person detector on; empty = the whole frame.
    pub crops: Vec<Crop>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FaceResult {
    pub face: Face,
    /// L2-normalised, 128 values; when embeddings are on and the face qualifies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

/// What detection found on one frame.
pub struct Detections {
    pub camera: CameraId,
    /// The frame's position among this camera's frames taken for detection (0, 1, 2, ...).
    pub seq: u64,
    pub frame: Arc<Frame>,
    pub crops: Vec<Crop>,
    pub persons: Vec<Person>,
    pub faces: Vec<FaceResult>,
}

/// Receives results, in each camera's frame order. Called on an inference worker: must be quick.
pub trait DetectionSink: Send + Sync {
    fn on_detections(&self, d: Detections);
}

/// What became of an offered frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// Queued, and an older frame that had not been taken yet was dropped.
    Replaced,
    UnknownCamera,
    Stopped,
}

/// Live figures of the engine, for `/metrics` and `xueliang bench`.
#[derive(Default)]
pub struct EngineStats {
    /// Person-model runs: items are crops; busy is model time including pre/post-processing.
    pub person: Stage,
    /// Face-model runs: items are crops or frames searched.
    pub face: Stage,
    /// Embedding runs: items are faces.
    pub embed: Stage,
    /// Frames through detection: latency is frame receipt (network) to result.
    pub frames: Stage,
    /// Frames dropped because a newer one of the same camera replaced them before their turn.
    pub superseded: AtomicU64,
    /// Model runs that failed (the frames are delivered with no detections).
    pub failures: AtomicU64,
}

impl EngineStats {
    pub fn reset(&self) {
        for s in [&self.person, &self.face, &self.embed, &self.frames] {
            s.reset();
        }
        self.superseded.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
    }
}

struct Slot {
    camera: CameraId,
    plan: CameraPlan,
    pending: VecDeque<Job>,
    in_flight: usize,
    next_due: Instant,
    /// Frames taken for detection so far (also the next frame's number).
    next_seq: u64,
    /// Frames replaced before their turn.
    superseded: u64,
    deliver_seq: u64,
    done: BTreeMap<u64, Detections>,
    deliver: Arc<Mutex<()>>,
    /// Removed ([`Engine::remove_camera`]): offers are refused. The slot stays (workers name
    /// slots by index while a batch is in flight) and is reused if the camera comes back.
    retired: bool,
}

impl Slot {
    /// Frames of this camera that may be in flight at once: one (frame order is natural and the
    /// tracker sees every result before the next frame is taken), or for a lossless camera
    /// enough to give every worker a full batch twice over. A frame is in flight until it is
    /// delivered in order, so with only one batch each a worker that finished early would wait
    /// for a slower frame ahead of its own (a frame with more faces) instead of taking the next.
    fn capacity(&self, workers: usize, batch: usize) -> usize {
        if self.plan.lossless {
            2 * workers * batch
        } else {
            1
        }
    }
}

struct State {
    slots: Vec<Slot>,
    index: HashMap<CameraId, usize>,
    cursor: usize,
    stopping: bool,
}

impl State {
    /// Adds a camera, due at once (`now`).
    fn add(&mut self, camera: CameraId, plan: CameraPlan, now: Instant) {
        let i = self.slots.len();
        self.index.insert(camera.clone(), i);
        self.slots.push(Slot {
            camera,
            plan,
            pending: VecDeque::new(),
            in_flight: 0,
            next_due: now,
            next_seq: 0,
            superseded: 0,
            deliver_seq: 0,
            done: BTreeMap::new(),
            deliver: Arc::new(Mutex::new(())),
            retired: false,
        });
    }
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    space: Condvar,
    sink: Arc<dyn DetectionSink>,
    stats: EngineStats,
    workers: usize,
    batch: usize,
    clocks: Arc<dyn Clocks>,
}

/// The running detection engine.
pub struct Engine {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

struct Models {
    person: PersonModel,
    face: Option<FaceModel>,
    embed: Option<EmbedModel>,
}

impl Engine {
    /// Loads ONNX Runtime from `library`, opens every worker's sessions (errors come back here,
    /// before anything runs) and starts the workers. Cameras are scheduled on `clocks`, the
    /// clocks that stamped their frames.
    pub fn start(
        cfg: EngineConfig,
        library: &std::path::Path,
        sink: Arc<dyn DetectionSink>,
        clocks: Arc<dyn Clocks>,
    ) -> Result<Engine, DetectError> {
        let env = runtime::init(library)?;
        let workers = cfg.workers.max(1);
        let mut models = Vec::with_capacity(workers);
        for _ in 0..workers {
            models.push(Models {
                person: PersonModel::open(&env, cfg.person.clone(), &cfg.session)?,
                face: cfg
                    .face
                    .clone()
                    .map(|f| FaceModel::open(&env, f, &cfg.session))
                    .transpose()?,
                embed: cfg
                    .embed
                    .as_deref()
                    .map(|p| EmbedModel::open(&env, p, &cfg.session))
                    .transpose()?,
            });
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                slots: Vec::new(),
                index: HashMap::new(),
                cursor: 0,
                stopping: false,
            }),
            work: Condvar::new(),
            space: Condvar::new(),
            sink,
            stats: EngineStats::default(),
            workers,
            batch: cfg.batch.max(1),
            clocks,
        });
        let cfg = Arc::new(cfg);
        let mut threads = Vec::with_capacity(workers);
        for (i, m) in models.into_iter().enumerate() {
            let (shared, cfg) = (Arc::clone(&shared), Arc::clone(&cfg));
            let t = std::thread::Builder::new()
                .name(format!("detect-{i}"))
                .spawn(move || worker(&shared, &cfg, m))
                .map_err(|e| DetectError::Runtime(format!("cannot start inference thread: {e}")))?;
            threads.push(t);
        }
        info!(
            workers,
            batch = cfg.batch,
            provider = cfg.session.provider.name(),
            "detection started"
        );
        Ok(Engine { shared, threads })
    }

    pub fn stats(&self) -> &EngineStats {
        &self.shared.stats
    }

    /// Per camera: frames taken for detection and frames superseded, so an operator can see
    /// which cameras get less than their rate.
    pub fn camera_counts(&self) -> Vec<(CameraId, u64, u64)> {
        let st = self.shared.state.lock().unwrap();
        st.slots
            .iter()
            .filter(|s| !s.retired)
            .map(|s| (s.camera.clone(), s.next_seq, s.superseded))
            .collect()
    }

    /// Adds a camera, or changes its plan.
    pub fn set_camera(&self, camera: CameraId, plan: CameraPlan) {
        let mut st = self.shared.state.lock().unwrap();
        if let Some(&i) = st.index.get(&camera) {
            st.slots[i].plan = plan;
            st.slots[i].retired = false;
            return;
        }
        st.add(camera, plan, self.shared.clocks.monotonic());
    }

    /// Removes a camera: its waiting frames are dropped and its offers refused from now on;
    /// frames already in a model run are still delivered.
    pub fn remove_camera(&self, camera: &CameraId) {
        let mut st = self.shared.state.lock().unwrap();
        if let Some(&i) = st.index.get(camera) {
            st.slots[i].retired = true;
            st.slots[i].pending.clear();
        }
        drop(st);
        // a lossless offer of this camera may be waiting for room
        self.shared.space.notify_all();
    }

    /// Offers a frame of `camera`. Never blocks unless the camera is lossless.
    pub fn offer(&self, camera: &CameraId, job: Job) -> Offer {
        let sh = &self.shared;
        let mut st = sh.state.lock().unwrap();
        let Some(i) = st
            .index
            .get(camera)
            .copied()
            .filter(|&i| !st.slots[i].retired)
        else {
            return Offer::UnknownCamera;
        };
        let mut outcome = Offer::Queued;
        if st.slots[i].plan.lossless {
            while !st.stopping
                && !st.slots[i].retired
                && st.slots[i].pending.len() >= sh.workers * sh.batch
            {
                st = sh.space.wait(st).unwrap();
            }
            if st.slots[i].retired {
                return Offer::UnknownCamera;
            }
        } else if st.slots[i].pending.pop_front().is_some() {
            sh.stats.superseded.fetch_add(1, Ordering::Relaxed);
            st.slots[i].superseded += 1;
            outcome = Offer::Replaced;
        }
        if st.stopping {
            return Offer::Stopped;
        }
        st.slots[i].pending.push_back(job);
        drop(st);
        sh.work.notify_one();
        outcome
    }

    /// Waits until every frame offered so far has been delivered (benchmarks, tests).
    pub fn drain(&self) {
        let mut st = self.shared.state.lock().unwrap();
        while st
            .slots
            .iter()
            .any(|s| !s.pending.is_empty() || s.in_flight > 0)
        {
            st = self
                .shared
                .space
                .wait_timeout(st, Duration::from_millis(50))
                .unwrap()
                .0;
        }
    }

    /// Stops the workers; frames not yet taken are dropped.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.state.lock().unwrap().stopping = true;
        self.shared.work.notify_all();
        self.shared.space.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Takes the next batch: due cameras in round-robin order, up to `batch` crops.
fn take_batch(
    st: &mut State,
    workers: usize,
    batch: usize,
    now: Instant,
) -> Vec<(usize, u64, Job)> {
    let n = st.slots.len();
    let mut taken = Vec::new();
    let mut crops = 0;
    for k in 0..n {
        let i = (st.cursor + k) % n;
        let slot = &mut st.slots[i];
        while !slot.pending.is_empty()
            && slot.in_flight < slot.capacity(workers, batch)
            && slot.next_due <= now
            && crops < batch
        {
            // numbered when taken, so replaced frames leave no gap in the delivery order
            let job = slot.pending.pop_front().expect("not empty");
            let seq = slot.next_seq;
            slot.next_seq += 1;
            crops += job.crops.len().max(1);
            slot.in_flight += 1;
            if slot.plan.rate > 0.0 {
                let period = Duration::try_from_secs_f32(1.0 / slot.plan.rate)
                    .unwrap_or(Duration::from_secs(1000));
                slot.next_due = now.checked_add(period).unwrap_or(now);
            }
            taken.push((i, seq, job));
        }
        if crops >= batch {
            st.cursor = (i + 1) % n;
            return taken;
        }
    }
    if !taken.is_empty() {
        st.cursor = (taken.last().expect("not empty").0 + 1) % n;
    }
    taken
}

/// When the earliest waiting frame becomes due, if any is waiting.
fn next_due(st: &State, workers: usize, batch: usize) -> Option<Instant> {
    st.slots
        .iter()
        .filter(|s| !s.pending.is_empty() && s.in_flight < s.capacity(workers, batch))
        .map(|s| s.next_due)
        .min()
}

fn worker(sh: &Shared, cfg: &EngineConfig, mut models: Models) {
    let mut scratch = Scratch::default();
    loop {
        let batch = {
            let mut st = sh.state.lock().unwrap();
            loop {
                if st.stopping {
                    return;
                }
                let now = sh.clocks.monotonic();
                let b = take_batch(&mut st, sh.workers, sh.batch, now);
                if !b.is_empty() {
                    break b;
                }
                // Waits on real time for what is left on the clocks: with simulated clocks a
                // worker wakes, reads them again and waits again until they are advanced.
                st = match next_due(&st, sh.workers, sh.batch) {
                    Some(due) if due > now => sh.work.wait_timeout(st, due - now).unwrap().0,
                    Some(_) => st,
                    None => sh.work.wait(st).unwrap(),
                };
            }
        };
        sh.space.notify_all();
        let (slots, jobs): (Vec<(usize, u64)>, Vec<Job>) =
            batch.into_iter().map(|(i, s, j)| ((i, s), j)).unzip();
        let plans: Vec<CameraPlan> = {
            let st = sh.state.lock().unwrap();
            slots.iter().map(|&(i, _)| st.slots[i].plan).collect()
        };
        // A bug met by one batch (a panic) costs that batch, not the worker: the frames go on
        // without detections, and every camera keeps being served.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            detect(cfg, &sh.stats, &mut models, &mut scratch, &jobs, &plans)
        }));
        let results = match run {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                sh.stats.failures.fetch_add(1, Ordering::Relaxed);
                error!(error = %e, "detection failed; frames delivered without detections");
                jobs.iter().map(|_| (Vec::new(), Vec::new())).collect()
            }
            Err(panic) => {
                sh.stats.failures.fetch_add(1, Ordering::Relaxed);
                error!(
                    panic = panic_text(&*panic),
                    "detection panicked (a bug); frames delivered without detections"
                );
                scratch = Scratch::default();
                jobs.iter().map(|_| (Vec::new(), Vec::new())).collect()
            }
        };
        // on the clocks that stamped the frames (real time in the hub)
        let now = sh.clocks.realtime();
        let mut st = sh.state.lock().unwrap();
        for ((job, (persons, faces)), &(i, seq)) in jobs.into_iter().zip(results).zip(&slots) {
            let latency = now.duration_since(job.frame.received_at).unsigned_abs();
            sh.stats.frames.latency.record(latency);
            sh.stats.frames.items.fetch_add(1, Ordering::Relaxed);
            let slot = &mut st.slots[i];
            slot.done.insert(
                seq,
                Detections {
                    camera: slot.camera.clone(),
                    seq,
                    frame: job.frame,
                    crops: job.crops,
                    persons,
                    faces,
                },
            );
        }
        // Deliver what is in order, per camera, holding the camera's delivery lock so a later
        // frame finished by another worker cannot overtake.
        let mut ready = Vec::new();
        for &(i, _) in &slots {
            let slot = &mut st.slots[i];
            let mut out = Vec::new();
            while let Some(d) = slot.done.remove(&slot.deliver_seq) {
                slot.deliver_seq += 1;
                out.push(d);
            }
            if !out.is_empty() {
                ready.push((i, Arc::clone(&slot.deliver), out));
            }
        }
        let guards: Vec<_> = ready.iter().map(|(_, lock, _)| Arc::clone(lock)).collect();
        let locked: Vec<_> = guards.iter().map(|l| l.lock().unwrap()).collect();
        drop(st);
        let mut delivered = Vec::with_capacity(ready.len());
        for (i, _, out) in ready {
            delivered.push((i, out.len()));
            for d in out {
                let camera = d.camera.clone();
                let delivered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    sh.sink.on_detections(d)
                }));
                if let Err(panic) = delivered {
                    error!(%camera, panic = panic_text(&*panic), "the detections' consumer panicked (a bug)");
                }
            }
        }
        drop(locked);
        // A frame stays in flight until delivered: `drain` and the per-camera capacity see it.
        let mut st = sh.state.lock().unwrap();
        for (i, n) in delivered {
            st.slots[i].in_flight -= n;
        }
        drop(st);
        sh.space.notify_all();
        sh.work.notify_one();
    }
}

/// What a caught panic said.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Person crops searched for faces in one YuNet run: they are small (128x128), so many fit.
const FACE_CROPS_PER_RUN: usize = 16;

/// Buffers reused across batches.
#[derive(Default)]
struct Scratch {
    persons: Vec<Vec<Person>>,
    faces: Vec<Vec<Face>>,
    embeddings: Vec<f32>,
}

type FrameResult = (Vec<Person>, Vec<FaceResult>);

impl Scored for Person {
    fn bbox(&self) -> &BBox {
        &self.bbox
    }
    fn score(&self) -> f32 {
        self.score
    }
    fn rank(&self) -> u32 {
        0
    }
}

/// Runs the models on one batch of jobs.
fn detect(
    cfg: &EngineConfig,
    stats: &EngineStats,
    m: &mut Models,
    s: &mut Scratch,
    jobs: &[Job],
    plans: &[CameraPlan],
) -> Result<Vec<FrameResult>, DetectError> {
    let views: Vec<I420View<'_>> = jobs.iter().map(|j| I420View::of(&j.frame)).collect();
    // Persons, on every crop of every job, `batch` crops a run.
    let mut crops: Vec<(I420View<'_>, Crop)> = Vec::new();
    let mut owner: Vec<usize> = Vec::new();
    for (k, (job, view)) in jobs.iter().zip(&views).enumerate() {
        if job.crops.is_empty() {
            crops.push((*view, Crop::whole(view.width, view.height)));
            owner.push(k);
        }
        for c in &job.crops {
            crops.push((*view, *c));
            owner.push(k);
        }
    }
    let mut out: Vec<FrameResult> = jobs.iter().map(|_| (Vec::new(), Vec::new())).collect();
    let mut at = 0;
    for chunk in crops.chunks(cfg.batch.max(1)) {
        let t = Instant::now();
        m.person.detect(chunk, &mut s.persons)?;
        stats.person.record(chunk.len() as u64, t.elapsed());
        for found in &s.persons {
            out[owner[at]].0.extend_from_slice(found);
            at += 1;
        }
    }
    for (persons, _) in &mut out {
        nms(persons, cfg.merge_iou);
    }

    // Faces: on whole frames (same size frames in one run), or on the upper part of persons.
    let Some(face_model) = m.face.as_mut() else {
        return Ok(out);
    };
    let mut face_crops: Vec<(I420View<'_>, Crop)> = Vec::new();
    let mut face_owner: Vec<usize> = Vec::new();
    let mut whole: Vec<(I420View<'_>, Crop)> = Vec::new();
    let mut whole_owner: Vec<usize> = Vec::new();
    for (k, plan) in plans.iter().enumerate() {
        let v = views[k];
        match plan.faces {
            FaceMode::Off => {}
            FaceMode::Frame => {
                whole.push((v, Crop::whole(v.width, v.height)));
                whole_owner.push(k);
            }
            FaceMode::Persons => {
                for p in &out[k].0 {
                    if p.bbox.height() < cfg.faces.min_person_height {
                        continue;
                    }
                    // the head: a square a third of the person's height, at the top, centred
                    let side = (p.bbox.height() / 3.0).max(16.0);
                    let cx = (p.bbox.x0 + p.bbox.x1) / 2.0;
                    let head = BBox::new(
                        cx - side / 2.0,
                        p.bbox.y0,
                        cx + side / 2.0,
                        p.bbox.y0 + side,
                    );
                    face_crops.push((v, Crop::covering(&head, v.width, v.height)));
                    face_owner.push(k);
                }
            }
        }
    }
    let side = cfg.faces.person_crop_side;
    for chunk_start in (0..face_crops.len()).step_by(FACE_CROPS_PER_RUN) {
        let end = (chunk_start + FACE_CROPS_PER_RUN).min(face_crops.len());
        let t = Instant::now();
        face_model.detect(
            &face_crops[chunk_start..end],
            Some((side, side)),
            &mut s.faces,
        )?;
        stats.face.record((end - chunk_start) as u64, t.elapsed());
        for (j, found) in s.faces.iter().enumerate() {
            let k = face_owner[chunk_start + j];
            out[k].1.extend(found.iter().map(|f| FaceResult {
                face: *f,
                embedding: None,
            }));
        }
    }
    // Whole frames: one run per frame size.
    let mut done = vec![false; whole.len()];
    for a in 0..whole.len() {
        if done[a] {
            continue;
        }
        let size = (whole[a].1.w, whole[a].1.h);
        let group: Vec<usize> = (a..whole.len())
            .filter(|&b| !done[b] && (whole[b].1.w, whole[b].1.h) == size)
            .collect();
        let frames: Vec<(I420View<'_>, Crop)> = group.iter().map(|&b| whole[b]).collect();
        let t = Instant::now();
        face_model.detect(&frames, None, &mut s.faces)?;
        stats.face.record(frames.len() as u64, t.elapsed());
        for (j, &b) in group.iter().enumerate() {
            done[b] = true;
            out[whole_owner[b]]
                .1
                .extend(s.faces[j].iter().map(|f| FaceResult {
                    face: *f,
                    embedding: None,
                }));
        }
    }
    // One face per head even where person crops overlapped.
    for (_, faces) in &mut out {
        dedup_faces(faces);
    }

    // Embeddings of the faces that qualify.
    let Some(embed_model) = m.embed.as_mut() else {
        return Ok(out);
    };
    let mut todo: Vec<(I420View<'_>, [[f32; 2]; 5])> = Vec::new();
    let mut todo_at: Vec<(usize, usize)> = Vec::new();
    for (k, (_, faces)) in out.iter().enumerate() {
        if !plans[k].embed {
            continue;
        }
        for (j, f) in faces.iter().enumerate() {
            if f.face.bbox.width() >= cfg.faces.embed_min_width
                && f.face.score >= cfg.faces.embed_min_score
            {
                todo.push((views[k], f.face.landmarks));
                todo_at.push((k, j));
            }
        }
    }
    for (chunk, at) in todo
        .chunks(cfg.batch.max(1))
        .zip(todo_at.chunks(cfg.batch.max(1)))
    {
        let t = Instant::now();
        embed_model.embed(chunk, &mut s.embeddings)?;
        stats.embed.record(chunk.len() as u64, t.elapsed());
        for (e, &(k, j)) in s.embeddings.chunks_exact(face::EMBEDDING_DIM).zip(at) {
            out[k].1[j].embedding = Some(e.to_vec());
        }
    }
    Ok(out)
}

/// Removes faces that overlap a better one (person crops of one frame can overlap).
fn dedup_faces(faces: &mut Vec<FaceResult>) {
    faces.sort_by(|a, b| b.face.score.total_cmp(&a.face.score));
    let mut kept: Vec<FaceResult> = Vec::with_capacity(faces.len());
    for f in faces.drain(..) {
        if kept.iter().all(|k| k.face.bbox.iou(&f.face.bbox) <= 0.3) {
            kept.push(f);
        }
    }
    *faces = kept;
}

#[cfg(test)]
mod tests {
    use xl_core::clock::{Clocks, SimulatedClocks};
    use xl_core::frame::PooledBuf;

    use super::*;

    fn job(camera: &CameraId, clocks: &SimulatedClocks) -> Job {
        Job {
            frame: Arc::new(Frame {
                camera: camera.clone(),
                pts_90k: 0,
                received_at: clocks.realtime(),
                width: 2,
                height: 2,
                i420: PooledBuf::unpooled(vec![0; Frame::i420_len(2, 2)]),
            }),
            crops: Vec::new(),
        }
    }

    #[test]
    fn a_camera_is_due_exactly_when_the_clocks_pass_one_over_its_rate() {
        let clocks = SimulatedClocks::new("2024-03-01T08:00:00Z".parse().unwrap());
        let c1 = CameraId::new("c1").unwrap();
        let mut st = State {
            slots: Vec::new(),
            index: HashMap::new(),
            cursor: 0,
            stopping: false,
        };
        let plan = CameraPlan {
            rate: 4.0,
            ..CameraPlan::default()
        };
        let start = clocks.monotonic();
        st.add(c1.clone(), plan, start);
        // due at once
        st.slots[0].pending.push_back(job(&c1, &clocks));
        assert_eq!(take_batch(&mut st, 1, 4, clocks.monotonic()).len(), 1);
        st.slots[0].in_flight = 0; // delivered
        st.slots[0].pending.push_back(job(&c1, &clocks));
        assert_eq!(
            next_due(&st, 1, 4),
            Some(start + Duration::from_millis(250))
        );
        clocks.advance(Duration::from_millis(249));
        assert!(take_batch(&mut st, 1, 4, clocks.monotonic()).is_empty());
        clocks.advance(Duration::from_millis(1));
        let taken = take_batch(&mut st, 1, 4, clocks.monotonic());
        assert_eq!(taken.iter().map(|t| t.1).collect::<Vec<_>>(), [1]);
        // and due again 250 ms after that, not after the first
        st.slots[0].in_flight = 0;
        st.slots[0].pending.push_back(job(&c1, &clocks));
        assert_eq!(
            next_due(&st, 1, 4),
            Some(start + Duration::from_millis(500))
        );
    }
}
