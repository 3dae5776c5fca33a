//! The fixed pool of decode threads and the per-camera handle producers push into.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use serde::Deserialize;
use xl_core::camera::{CameraStats, VideoCodec};
use xl_core::clock::Clocks;
use xl_core::frame::{AccessUnit, AccessUnitSink, BufferPool, FrameSink};

use crate::DecodeError;
use crate::queue::{CameraQueue, StreamSpec, Unit, WorkerSignal};
use crate::worker::Worker;

/// `[decode]` in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeConfig {
    /// Decode threads. 0 (the default) means one per CPU core.
    pub threads: usize,
    /// Widest analysis frame in pixels; the height follows the stream's aspect ratio and
    /// frames are never upscaled. Default 640.
    pub analysis_width: u32,
    /// Access units queued per camera before the oldest is dropped. Default 32 (about 3 s of
    /// a 10 fps sub-stream).
    pub queue_units: usize,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            threads: 0,
            analysis_width: 640,
            queue_units: 32,
        }
    }
}

struct WorkerHandle {
    signal: Arc<WorkerSignal>,
    cameras: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

/// A fixed set of decode threads. Each camera is pinned to the least-loaded thread when added.
pub struct DecodePool {
    workers: Vec<WorkerHandle>,
    queue_units: usize,
    clocks: Arc<dyn Clocks>,
}

impl DecodePool {
    /// Starts the decode threads. `clocks` is the time frames are stamped with where no producer
    /// did (frames flushed at the end of a stream) and the time file sources feeding this pool
    /// stamp their units with.
    pub fn new(
        config: &DecodeConfig,
        sink: Arc<dyn FrameSink>,
        clocks: Arc<dyn Clocks>,
    ) -> Result<Self, DecodeError> {
        crate::init()?;
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let pool = BufferPool::new();
        let workers = (0..threads)
            .map(|i| {
                let signal = Arc::new(WorkerSignal::default());
                let worker = Worker {
                    signal: Arc::clone(&signal),
                    sink: Arc::clone(&sink),
                    pool: pool.clone(),
                    analysis_width: config.analysis_width.max(2),
                    clocks: Arc::clone(&clocks),
                };
                let thread = std::thread::Builder::new()
                    .name(format!("decode-{i}"))
                    .spawn(move || worker.run())
                    .map_err(|e| DecodeError::Init(format!("cannot start a decode thread: {e}")))?;
                Ok(WorkerHandle {
                    signal,
                    cameras: Arc::new(AtomicUsize::new(0)),
                    thread: Some(thread),
                })
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        Ok(DecodePool {
            workers,
            queue_units: config.queue_units,
            clocks,
        })
    }

    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// The clocks frames of this pool are stamped with; RTSP sessions feeding it take them too.
    pub fn clocks(&self) -> &Arc<dyn Clocks> {
        &self.clocks
    }

    /// Registers a camera on the least-loaded thread. Dropping the returned input removes it.
    pub fn add_camera(&self, stats: Arc<CameraStats>) -> CameraInput {
        let w = self
            .workers
            .iter()
            .min_by_key(|w| w.cameras.load(Ordering::Relaxed))
            .expect("a pool has at least one thread");
        w.cameras.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(CameraQueue::new(
            self.queue_units,
            stats,
            Arc::clone(&w.signal),
        ));
        w.signal.with(|s| s.added.push(Arc::clone(&queue)));
        CameraInput {
            queue,
            load: Arc::clone(&w.cameras),
            clocks: Arc::clone(&self.clocks),
        }
    }
}

impl Drop for DecodePool {
    fn drop(&mut self) {
        for w in &self.workers {
            w.signal.with(|s| s.shutdown = true);
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// A camera's way into the decode pool. Implements [`AccessUnitSink`] for RTSP sessions; file
/// sources use [`CameraInput::start_demuxed`] and [`CameraInput::push_unit`].
pub struct CameraInput {
    queue: Arc<CameraQueue>,
    load: Arc<AtomicUsize>,
    /// The pool's clocks: a file source stamps its units with them.
    clocks: Arc<dyn Clocks>,
}

impl CameraInput {
    pub fn stats(&self) -> &Arc<CameraStats> {
        &self.queue.stats
    }

    pub(crate) fn start_demuxed(
        &self,
        params: ffmpeg_next::codec::Parameters,
        codec: Option<VideoCodec>,
    ) {
        self.queue.start(StreamSpec::Demuxed { params, codec });
    }

    pub(crate) fn clocks(&self) -> &Arc<dyn Clocks> {
        &self.clocks
    }

    pub(crate) fn push_unit(&self, unit: Unit) {
        self.queue.push(unit);
    }

    /// Units waiting in the queue (for producers that pace themselves on the decoder).
    pub fn queued(&self) -> usize {
        self.queue.queued()
    }
}

impl AccessUnitSink for CameraInput {
    fn stream_started(&self, codec: VideoCodec) {
        self.queue.start(StreamSpec::AnnexB(codec));
    }

    fn push(&self, au: AccessUnit) {
        self.queue.push(Unit {
            data: au.data,
            pts_90k: au.pts_90k,
            is_key: au.is_key,
            received_at: au.received_at,
        });
    }
}

impl Drop for CameraInput {
    fn drop(&mut self) {
        self.queue.close();
        self.load.fetch_sub(1, Ordering::Relaxed);
    }
}
