//! The recorder of one stream: an access-unit sink that never blocks, and its writer thread.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use jiff::SignedDuration;
use tracing::info_span;
use xl_core::camera::VideoCodec;
use xl_core::frame::{AccessUnit, AccessUnitSink};
use xl_core::ids::CameraId;
use xl_core::live::StreamKind;

use crate::RecordError;
use crate::queue::RecordQueue;
use crate::segment::SegmentEvent;
use crate::stats::RecordStats;
use crate::writer::Writer;

/// Where a recorder reports its segments. Called on the recorder's writer thread, in order;
/// it should hand the event on (to a channel, to the store's task) rather than block.
pub type EventSink = Arc<dyn Fn(SegmentEvent) + Send + Sync>;

/// A segment's target length: it is cut at the first key frame this long after its start.
pub const DEFAULT_SEGMENT_DURATION: Duration = Duration::from_secs(60);

/// Access units a recorder's queue holds before it drops (about 30 s of a 30 fps stream that
/// the disk could not take).
pub const DEFAULT_QUEUE_MAX_UNITS: usize = 1024;

/// Bytes of access units a recorder's queue holds before it drops (32 MiB: about 30 s of an
/// 8 Mbit/s main stream).
pub const DEFAULT_QUEUE_MAX_BYTES: usize = 32 << 20;

/// What a [`Recorder`] records and where.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    pub camera: CameraId,
    pub stream: StreamKind,
    /// The hub's data directory; segments go under its `recordings/`.
    pub data_dir: PathBuf,
    /// A segment is cut at the first key frame at least this long after its start.
    pub segment_duration: Duration,
    /// Bounds of the queue in front of the writer thread (see [`crate::Recorder`]).
    pub queue_max_units: usize,
    pub queue_max_bytes: usize,
    /// Figures, shared by the recorders that are given the same.
    pub stats: Arc<RecordStats>,
}

impl RecorderConfig {
    /// `camera`'s `stream` into `data_dir`, segments of `segment_duration`, the default queue
    /// bounds and figures of its own.
    pub fn new(
        camera: CameraId,
        stream: StreamKind,
        data_dir: impl Into<PathBuf>,
        segment_duration: Duration,
    ) -> RecorderConfig {
        RecorderConfig {
            camera,
            stream,
            data_dir: data_dir.into(),
            segment_duration,
            queue_max_units: DEFAULT_QUEUE_MAX_UNITS,
            queue_max_bytes: DEFAULT_QUEUE_MAX_BYTES,
            stats: Arc::default(),
        }
    }
}

/// Records one stream of a camera into segment files (see the crate documentation).
///
/// Subscribe it to the stream's tee: [`AccessUnitSink::push`] only queues (bounded: the oldest
/// group of pictures is dropped when the writer falls behind, counted) and one writer thread
/// per recorder does the file I/O. A write error stops the recorder and is reported once as
/// [`SegmentEvent::Failed`]; it never panics.
///
/// [`Recorder::stop`], or dropping the recorder, writes what is queued, closes the open
/// segment (fsync, [`SegmentEvent::Closed`]) and joins the writer thread: call it where
/// blocking for a file sync is fine (not on an async runtime's worker).
pub struct Recorder {
    camera: CameraId,
    stream: StreamKind,
    queue: Arc<RecordQueue>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Recorder {
    /// Starts the writer thread. Fails on a camera id that cannot name a directory, or when
    /// the thread cannot be started; file errors come later, as [`SegmentEvent::Failed`].
    pub fn start(config: RecorderConfig, events: EventSink) -> Result<Recorder, RecordError> {
        if matches!(config.camera.as_str(), "." | "..") {
            return Err(RecordError::BadCameraId {
                camera: config.camera,
            });
        }
        let queue = Arc::new(RecordQueue::new(
            config.queue_max_units,
            config.queue_max_bytes,
            Arc::clone(&config.stats),
        ));
        let writer = Writer {
            camera: config.camera.clone(),
            stream: config.stream,
            data_dir: config.data_dir,
            segment_duration: SignedDuration::try_from(config.segment_duration)
                .unwrap_or(SignedDuration::MAX),
            events,
            stats: config.stats,
            codec: None,
            session: None,
        };
        let span = info_span!("recorder", camera = %config.camera, stream = %config.stream);
        let thread = std::thread::Builder::new()
            .name(format!("record-{}-{}", config.camera, config.stream))
            .spawn({
                let queue = Arc::clone(&queue);
                move || span.in_scope(|| writer.run(&queue))
            })
            .map_err(|source| RecordError::Thread {
                camera: config.camera.clone(),
                source,
            })?;
        Ok(Recorder {
            camera: config.camera,
            stream: config.stream,
            queue,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stops recording: what is queued is written, the open segment closed (fsync, `Closed`
    /// reported) and the writer thread joined. Later pushes are dropped (counted as stopped).
    /// Idempotent. Called from the events sink (on the writer thread itself), it only asks the
    /// thread to finish.
    pub fn stop(&self) {
        self.queue.close();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            if thread.thread().id() == std::thread::current().id() {
                return;
            }
            // The writer never panics on its input; a panic would be a bug already reported
            // by the panic hook.
            let _ = thread.join();
        }
    }

    /// Whether the writer thread still runs: false after [`Recorder::stop`] and after a write
    /// error stopped it.
    pub fn is_running(&self) -> bool {
        self.thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    pub fn camera(&self) -> &CameraId {
        &self.camera
    }

    pub fn stream(&self) -> StreamKind {
        self.stream
    }
}

impl AccessUnitSink for Recorder {
    fn stream_started(&self, codec: VideoCodec) {
        self.queue.started(codec);
    }

    fn push(&self, au: AccessUnit) {
        self.queue.push(au);
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("camera", &self.camera)
            .field("stream", &self.stream)
            .field("running", &self.is_running())
            .finish()
    }
}
