//! The ceiling a pipeline figure is compared with: the person model alone, on bare ONNX Runtime,
//! with the same workers, session threads and batch size, no pre- or post-processing.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::DetectError;
use crate::models::{PersonModel, PersonModelConfig};
use crate::runtime::{self, SessionOptions};

/// Images a second the person model reaches alone: `workers` threads, each with its own session,
/// running batches of `batch` for `duration` after one warm-up run each.
pub fn person_images_per_second(
    library: &std::path::Path,
    cfg: &PersonModelConfig,
    opts: &SessionOptions,
    workers: usize,
    batch: usize,
    duration: Duration,
) -> Result<f64, DetectError> {
    let env = runtime::init(library)?;
    let mut models = Vec::new();
    for _ in 0..workers.max(1) {
        let mut m = PersonModel::open(&env, cfg.clone(), opts)?;
        m.run_bare(batch)?;
        models.push(m);
    }
    let start = Barrier::new(models.len());
    let results: Vec<Result<(u64, Duration), DetectError>> = std::thread::scope(|s| {
        let handles: Vec<_> = models
            .into_iter()
            .map(|mut m| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    let t = Instant::now();
                    let mut images = 0u64;
                    while t.elapsed() < duration {
                        m.run_bare(batch)?;
                        images += batch as u64;
                    }
                    Ok((images, t.elapsed()))
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
        let (images, took) = r?;
        total += images as f64 / took.as_secs_f64();
    }
    Ok(total)
}
