//! Probing a camera before it is saved: what its stream carries (codec, size, frame rate,
//! GOP, read by `xl_rtsp::probe`) and a JPEG of its first key frame (decoded by `xl_decode`),
//! all within a bounded time. Used by `xueliang probe` and by the API's
//! `POST /api/v1/cameras/probe`.
//!
//! Credentials travel beside the URL ([`xl_rtsp::Credentials`], redacted in `Debug`); the URL
//! given is refused when it carries them, and errors never show them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use xl_core::CameraId;
use xl_core::ErrorKind;
use xl_core::camera::VideoCodec;
use xl_rtsp::{CameraSource, Credentials, ProbeReport, RtspError, TransportKind};

use xl_alerts::evidence::{Jpeg, Still, encode};

/// The API's bound on one probe, connecting included.
pub const API_LIMIT: Duration = Duration::from_secs(10);
/// Widest snapshot: enough to draw zones on, small enough for a JSON answer.
pub const SNAPSHOT_MAX_WIDTH: u32 = 1280;
const SNAPSHOT_QUALITY: u8 = 85;

/// What a probe found.
pub struct Probe {
    pub report: ProbeReport,
    /// The first key frame, at most [`SNAPSHOT_MAX_WIDTH`] wide.
    pub snapshot: Jpeg,
}

/// Why a probe failed. Messages are about the camera and never carry credentials.
#[derive(Debug)]
pub enum ProbeError {
    /// The camera could not be reached or its RTSP session failed.
    Rtsp(RtspError),
    /// The stream sent no key frame in time.
    NoKeyFrame { secs: u64 },
    /// The key frame did not decode.
    Decode(xl_decode::DecodeError),
    /// The whole probe took longer than its bound.
    TimedOut { secs: u64 },
    /// Not the camera's doing (the decoder thread died).
    Internal(String),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Rtsp(e) => write!(f, "{e}"),
            ProbeError::NoKeyFrame { secs } => write!(
                f,
                "no key frame within {secs}s: the camera streams, but its GOP is longer than that \
                 or it sends no I-frames"
            ),
            ProbeError::Decode(e) => write!(f, "{e}"),
            ProbeError::TimedOut { secs } => {
                write!(f, "the camera did not answer the probe within {secs}s")
            }
            ProbeError::Internal(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ProbeError {}

impl ProbeError {
    /// `Upstream` for what the camera did; `Internal` for what the hub did.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ProbeError::Decode(e) if e.kind() == ErrorKind::Internal => ErrorKind::Internal,
            ProbeError::Internal(_) => ErrorKind::Internal,
            _ => ErrorKind::Upstream,
        }
    }
}

/// A source for `url` (credentials in it move out; explicit `credentials` win) with
/// `transport` and request and frame timeouts of `timeout`.
pub fn source(
    url: &str,
    credentials: Option<Credentials>,
    transport: TransportKind,
    timeout: Duration,
) -> anyhow::Result<CameraSource> {
    let id = CameraId::new("probe")?;
    let mut source = CameraSource::new(id, url, credentials)
        .map_err(|e| anyhow::anyhow!("{:?} is not a URL: {e}", xl_rtsp::redact_url(url)))?;
    source.transport = transport;
    source.timeouts = xl_rtsp::Timeouts {
        request: timeout,
        frame: timeout,
    };
    Ok(source)
}

/// Reads `source`'s stream for at most `read_for` after PLAY (until two key frames), then
/// decodes the first key frame on a blocking thread.
pub async fn probe(source: &CameraSource, read_for: Duration) -> Result<Probe, ProbeError> {
    let mut report = xl_rtsp::probe(source, read_for)
        .await
        .map_err(ProbeError::Rtsp)?;
    let Some(key_frame) = report.key_frame.take() else {
        return Err(ProbeError::NoKeyFrame {
            secs: read_for.as_secs(),
        });
    };
    let codec = report.video_codec;
    let id = source.id.clone();
    let snapshot = tokio::task::spawn_blocking(move || key_frame_jpeg(id, codec, &key_frame))
        .await
        .map_err(|e| ProbeError::Internal(format!("the snapshot thread failed: {e}")))??;
    Ok(Probe { report, snapshot })
}

/// A JPEG of `key_frame` (Annex B with its parameter sets), at most [`SNAPSHOT_MAX_WIDTH`]
/// wide: the probe's snapshot, and the wall's thumbnails. CPU work: off the async threads.
pub fn key_frame_jpeg(
    camera: CameraId,
    codec: VideoCodec,
    key_frame: &[u8],
) -> Result<Jpeg, ProbeError> {
    let frame = xl_decode::decode_key_frame(
        camera,
        codec,
        key_frame,
        SNAPSHOT_MAX_WIDTH,
        Timestamp::now(),
    )
    .map_err(ProbeError::Decode)?;
    let still = Still {
        at: frame.received_at,
        frame: Arc::new(frame),
        boxes: None,
    };
    encode(&still, None, SNAPSHOT_QUALITY).map_err(|e| ProbeError::Internal(format!("{e:#}")))
}

/// [`probe`] within [`API_LIMIT`] in all: what the API runs.
pub async fn probe_bounded(source: &CameraSource) -> Result<Probe, ProbeError> {
    // Connecting takes part of the limit (each request at most a third of it, as the API's
    // source is built): read the stream for what is likely left.
    let read_for = API_LIMIT.saturating_sub(Duration::from_secs(3));
    match tokio::time::timeout(API_LIMIT, probe(source, read_for)).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::TimedOut {
            secs: API_LIMIT.as_secs(),
        }),
    }
}
