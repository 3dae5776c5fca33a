//! Live view's wiring: the streams of the running cameras that viewers subscribe to.
//!
//! For each running RTSP camera the runtime registers the stream it pulls for analysis (its
//! tee, always pulled) and the camera's other stream (pulled on demand while watched). A
//! viewer subscribes through [`LiveStreams::open`]: many viewers of one stream share its one
//! pull. A browser that cannot play H.265 gets an H.264 copy made by an FFmpeg transcoder that
//! runs, once per stream, only while someone watches it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;

use tokio::sync::watch;
use xl_core::camera::VideoCodec;
use xl_core::frame::AccessUnitSink;
use xl_core::live::{LiveEnd, LiveFeed, StreamKind};
use xl_core::{CameraId, ErrorKind};
use xl_live::{LiveStats, OnDemand, Relay, Subscription, Tee, ViewerQueue};

use xl_api::ApiError;

/// How long a stream pulled on demand keeps running after its last viewer left.
pub const LINGER: Duration = Duration::from_secs(15);
/// A viewer's queue: about ten seconds of a sub stream; past it the viewer skips to the next
/// key frame.
const VIEWER_MAX_UNITS: usize = 150;
const VIEWER_MAX_BYTES: usize = 8 << 20;
/// How long opening a session waits for a stream that is not flowing yet to show its codec.
pub const CODEC_WAIT: Duration = Duration::from_secs(8);

/// Starts the transcoder of a stream into `output` (H.264); dropping what it returns stops it.
pub type StartTranscoder = Arc<
    dyn Fn(&str, Arc<dyn AccessUnitSink>) -> Result<Arc<dyn AccessUnitSink>, String> + Send + Sync,
>;

/// One running camera's streams.
pub struct CameraStreams {
    id: CameraId,
    /// The stream the decoder pulls, always running.
    analysis: (StreamKind, Arc<Tee>),
    /// The other stream, pulled while watched.
    other: Option<(StreamKind, OnDemand)>,
    /// H.264 copies of H.265 streams, made when first asked for.
    transcoded: Mutex<HashMap<StreamKind, Arc<OnDemand>>>,
    /// Set when the camera is removed or disabled, or its streams restart: its viewers are told
    /// why.
    ended: watch::Sender<Option<LiveEnd>>,
}

impl CameraStreams {
    pub fn new(id: CameraId, analysis: (StreamKind, Arc<Tee>)) -> Self {
        CameraStreams {
            id,
            analysis,
            other: None,
            transcoded: Mutex::default(),
            ended: watch::channel(None).0,
        }
    }

    /// The camera's other stream, pulled by `pull` while watched.
    pub fn with_other(mut self, kind: StreamKind, pull: OnDemand) -> Self {
        self.other = Some((kind, pull));
        self
    }

    /// The tee of `kind`; a camera without that stream gives its other one.
    fn tee(&self, kind: StreamKind) -> (StreamKind, &Arc<Tee>) {
        match &self.other {
            Some((k, pull)) if *k == kind => (*k, pull.tee()),
            _ => (self.analysis.0, &self.analysis.1),
        }
    }

    /// An H.264 copy of `kind` (already H.265), made now if nobody asked before.
    fn transcoded(
        &self,
        kind: StreamKind,
        start: &StartTranscoder,
        stats: &Arc<LiveStats>,
    ) -> Arc<Tee> {
        let mut copies = self.transcoded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = copies.get(&kind) {
            return Arc::clone(t.tee());
        }
        let source = Arc::clone(self.tee(kind).1);
        let output = Arc::new(Tee::new());
        let name = format!("{} {kind} h264", self.id);
        let pull = OnDemand::new(name.clone(), Arc::clone(&output), LINGER, {
            let (start, output, stats) =
                (Arc::clone(start), Arc::clone(&output), Arc::clone(stats));
            move || match start(&name, Arc::clone(&output) as Arc<dyn AccessUnitSink>) {
                Ok(transcoder) => {
                    stats.transcoders_started.fetch_add(1, Ordering::Relaxed);
                    Box::new(source.subscribe(transcoder))
                }
                Err(e) => {
                    tracing::warn!(stream = %name, error = %e, "cannot start the transcoder");
                    Box::new(())
                }
            }
        });
        copies.insert(kind, Arc::new(pull));
        output
    }
}

/// The live streams of every running camera.
pub struct LiveStreams {
    cameras: RwLock<HashMap<CameraId, Arc<CameraStreams>>>,
    stats: Arc<LiveStats>,
    transcoder: StartTranscoder,
    /// Per camera, the JPEG of the last key frame asked for, by that key frame's arrival.
    thumbnails: Mutex<HashMap<CameraId, (jiff::Timestamp, Bytes)>>,
}

impl LiveStreams {
    pub fn new(transcoder: StartTranscoder) -> Self {
        LiveStreams {
            cameras: RwLock::default(),
            stats: Arc::default(),
            transcoder,
            thumbnails: Mutex::default(),
        }
    }

    pub fn stats(&self) -> &Arc<LiveStats> {
        &self.stats
    }

    /// Registers a running camera's streams, replacing the previous ones (their viewers are
    /// told the stream restarted, and open again).
    pub fn insert(&self, streams: CameraStreams) {
        let old = self
            .cameras
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(streams.id.clone(), Arc::new(streams));
        if let Some(old) = old {
            old.ended.send_replace(Some(LiveEnd::Restarted));
        }
    }

    /// The camera's streams are about to restart (a changed source): its viewers are told to
    /// open again, not that the camera went away.
    pub fn restarting(&self, id: &CameraId) {
        self.end(id, LiveEnd::Restarted);
    }

    /// The tee of the stream `camera`'s decoder pulls.
    pub fn analysed(&self, camera: &CameraId) -> Option<Arc<Tee>> {
        let cameras = self.cameras.read().unwrap_or_else(|e| e.into_inner());
        Some(Arc::clone(&cameras.get(camera)?.analysis.1))
    }

    /// The tee of `camera`'s `kind` stream, or of its other one when it has no such stream;
    /// subscribing to an on-demand stream's tee keeps it pulled.
    pub fn stream(&self, camera: &CameraId, kind: StreamKind) -> Option<(StreamKind, Arc<Tee>)> {
        let cameras = self.cameras.read().unwrap_or_else(|e| e.into_inner());
        let (kind, tee) = cameras.get(camera)?.tee(kind);
        Some((kind, Arc::clone(tee)))
    }

    /// A JPEG of the latest key frame of the stream `camera`'s decoder pulls (decoded once per
    /// key frame, however many ask).
    pub async fn thumbnail(&self, camera: &CameraId) -> Result<Option<Bytes>, ApiError> {
        let Some((codec, key)) = self.analysed(camera).and_then(|t| t.last_key_frame()) else {
            return Ok(None);
        };
        {
            let cached = self.thumbnails.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, jpeg)) = cached.get(camera)
                && *at == key.received_at
            {
                return Ok(Some(jpeg.clone()));
            }
        }
        let id = camera.clone();
        let jpeg = tokio::task::spawn_blocking(move || {
            crate::probe::key_frame_jpeg(id, codec, &key.data).map(|j| (key.received_at, j))
        })
        .await
        .map_err(|e| ApiError::internal(format!("the thumbnail thread failed: {e}")))?;
        let (at, jpeg) = match jpeg {
            Ok(j) => j,
            // A key frame FFmpeg cannot decode is no picture, not a failure of the hub.
            Err(e) => {
                tracing::debug!(camera = %camera, error = %e, "no thumbnail");
                return Ok(None);
            }
        };
        let jpeg = Bytes::from(jpeg.bytes);
        self.thumbnails
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(camera.clone(), (at, jpeg.clone()));
        Ok(Some(jpeg))
    }

    /// The camera stopped: its viewers are told, its on-demand pulls stop.
    pub fn remove(&self, id: &CameraId) {
        self.end(id, LiveEnd::CameraGone);
    }

    fn end(&self, id: &CameraId, why: LiveEnd) {
        self.thumbnails
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        let old = self
            .cameras
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(old) = old {
            old.ended.send_replace(Some(why));
        }
    }

    /// A live session of `camera`'s `kind` stream. `h265` says whether the viewer can play
    /// H.265; if not, an H.265 stream is sent as an H.264 copy. A stream not yet flowing (pulled
    /// on demand, or the camera reconnecting) is waited for up to [`CODEC_WAIT`] to learn its
    /// codec; past that the session starts on the stream as it is.
    pub async fn open(
        &self,
        camera: &CameraId,
        kind: StreamKind,
        h265: bool,
    ) -> Result<Box<dyn LiveFeed>, ApiError> {
        let streams = self
            .cameras
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(camera)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    ErrorKind::NotFound,
                    format!("camera {camera} has no live stream (not running, or not RTSP)"),
                )
            })?;
        let (kind, source) = streams.tee(kind);
        let source = Arc::clone(source);
        let (mut queue, mut subscription) = self.viewer(&source);
        let mut codec = source.codec();
        let known = tokio::time::timeout(CODEC_WAIT, codec.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|c| c.ok().and_then(|c| *c));
        let transcode = !h265 && known == Some(VideoCodec::H265);
        if transcode {
            let copy = streams.transcoded(kind, &self.transcoder, &self.stats);
            (queue, subscription) = self.viewer(&copy);
        }
        Ok(Box::new(Relay::new(
            queue,
            subscription,
            streams.ended.subscribe(),
            transcode,
            Arc::clone(&self.stats),
        )))
    }

    fn viewer(&self, tee: &Arc<Tee>) -> (Arc<ViewerQueue>, Subscription) {
        let queue = Arc::new(ViewerQueue::new(
            VIEWER_MAX_UNITS,
            VIEWER_MAX_BYTES,
            Arc::clone(&self.stats),
        ));
        let subscription = tee.subscribe(Arc::clone(&queue) as Arc<dyn AccessUnitSink>);
        (queue, subscription)
    }
}
