//! The ceilings a pipeline figure is compared with: the models alone, on bare ONNX Runtime, with
//! the same workers and session threads, no pre- or post-processing.

use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::DetectError;
use crate::models::{EmbedModel, FaceModel, FaceModelConfig, PersonModel, PersonModelConfig};
use crate::runtime::{self, SessionOptions};
use crate::yunet;

/// Runs `run` on `workers` threads at once, each on its own model from `open` (opened and run
/// once before the clock starts), for `duration`; returns the runs a second of all threads
/// together.
fn runs_per_second<M: Send>(
    workers: usize,
    duration: Duration,
    open: impl Fn() -> Result<M, DetectError>,
    run: impl Fn(&mut M) -> Result<(), DetectError> + Sync,
) -> Result<f64, DetectError> {
    let mut models = Vec::new();
    for _ in 0..workers.max(1) {
        let mut m = open()?;
        run(&mut m)?;
        models.push(m);
    }
    let start = Barrier::new(models.len());
    let results: Vec<Result<(u64, Duration), DetectError>> = std::thread::scope(|s| {
        let handles: Vec<_> = models
            .into_iter()
            .map(|mut m| {
                let (start, run) = (&start, &run);
                s.spawn(move || {
                    start.wait();
                    let t = Instant::now();
                    let mut runs = 0u64;
                    while t.elapsed() < duration {
                        run(&mut m)?;
                        runs += 1;
                    }
                    Ok((runs, t.elapsed()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("ceiling thread"))
            .collect()
    });
    let mut total = 0.0;
    for r in results {
        let (runs, took) = r?;
        total += runs as f64 / took.as_secs_f64();
    }
    Ok(total)
}

/// Images a second the person model reaches alone: `workers` threads, each with its own session,
/// running batches of `batch` of constant input for `duration`.
pub fn person_images_per_second(
    library: &Path,
    cfg: &PersonModelConfig,
    opts: &SessionOptions,
    workers: usize,
    batch: usize,
    duration: Duration,
) -> Result<f64, DetectError> {
    let env = runtime::init(library)?;
    let open = || PersonModel::open(&env, cfg.clone(), opts);
    let runs = runs_per_second(workers, duration, open, |m| m.run_bare(batch))?;
    Ok(runs * batch as f64)
}

/// What the models of full work on every frame allow: each model alone on all the workers at
/// batch 1, and the frames a second they allow together.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct FrameCeiling {
    pub person_per_second: f64,
    /// Whole frames a second (0 without faces).
    pub face_per_second: f64,
    /// Faces a second (0 without embeddings).
    pub embed_per_second: f64,
    pub faces_per_frame: f64,
    /// `1 / (1/person + 1/face + faces_per_frame/embed)`: models side by side barely slow each
    /// other (`benches/python-reference/side_by_side.py`), so a frame costs the sum of its runs.
    pub frames_per_second: f64,
}

/// Measures each model of the every-frame work alone for `duration`: the person model, the face
/// model on whole `frame`-sized images (when `face` is set) and the embedding model (when
/// `embed` is set, counted `faces_per_frame` times a frame).
#[allow(clippy::too_many_arguments)]
pub fn every_frame(
    library: &Path,
    person: &PersonModelConfig,
    face: Option<&FaceModelConfig>,
    embed: Option<&Path>,
    opts: &SessionOptions,
    workers: usize,
    frame: (u32, u32),
    faces_per_frame: f64,
    duration: Duration,
) -> Result<FrameCeiling, DetectError> {
    let env = runtime::init(library)?;
    let mut c = FrameCeiling {
        faces_per_frame,
        ..FrameCeiling::default()
    };
    let open = || PersonModel::open(&env, person.clone(), opts);
    c.person_per_second = runs_per_second(workers, duration, open, |m| m.run_bare(1))?;
    let mut frame_secs = 1.0 / c.person_per_second;
    if let Some(face) = face {
        let (w, h) = yunet::padded_size(frame.0, frame.1);
        let open = || FaceModel::open(&env, face.clone(), opts);
        c.face_per_second = runs_per_second(workers, duration, open, |m| m.run_bare(w, h))?;
        frame_secs += 1.0 / c.face_per_second;
    }
    if let Some(embed) = embed {
        let open = || EmbedModel::open(&env, embed, opts);
        c.embed_per_second = runs_per_second(workers, duration, open, |m| m.run_bare(1))?;
        frame_secs += faces_per_frame / c.embed_per_second;
    }
    c.frames_per_second = 1.0 / frame_secs;
    Ok(c)
}
