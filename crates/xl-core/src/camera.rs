//! Cameras: what a camera is, how its stream is decoded, and the live figures every stage of the
//! camera path updates (status, frames, bytes, drops by reason, reconnects).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{CameraId, CommunityId};

/// Which network a camera belongs to. Property managers only ever see `community` cameras.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CameraNetwork {
    /// The community's own cameras.
    #[default]
    Community,
    /// Public-security "Skynet" (天网) cameras.
    Skynet,
    /// Private cameras (shops, residents) shared with the hub.
    Private,
}

/// Video codecs the RTSP path understands. File sources may carry any codec FFmpeg decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    H264,
    H265,
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VideoCodec::H264 => "h264",
            VideoCodec::H265 => "h265",
        })
    }
}

/// How much of a camera's stream is decoded. Switchable while the camera runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DecodePolicy {
    /// Decode every frame.
    #[default]
    All,
    /// Skip frames no other frame refers to (H.264 `nal_ref_idc == 0`, H.265 sub-layer
    /// non-reference pictures). Loses nothing the decoder needs.
    SkipNonReference,
    /// Decode key frames only: one frame per GOP, for idle cameras.
    KeyFrames,
}

impl DecodePolicy {
    pub const ALL: [DecodePolicy; 3] = [
        DecodePolicy::All,
        DecodePolicy::SkipNonReference,
        DecodePolicy::KeyFrames,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DecodePolicy::All => "all",
            DecodePolicy::SkipNonReference => "skip-non-reference",
            DecodePolicy::KeyFrames => "key-frames",
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            1 => DecodePolicy::SkipNonReference,
            2 => DecodePolicy::KeyFrames,
            _ => DecodePolicy::All,
        }
    }
}

impl fmt::Display for DecodePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DecodePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        DecodePolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown decode policy {s:?}: expected all, skip-non-reference or key-frames"
                )
            })
    }
}

/// Where faces are looked for on a camera.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaceMode {
    /// No face detection.
    Off,
    /// On the upper part of each person found (the default).
    #[default]
    Persons,
    /// On the whole frame (gate cameras, where people face the camera up close).
    Frame,
}

/// The lowest detection rate other than 0: one detection every 1000 s.
pub const MIN_DETECT_RATE: f32 = 0.001;

/// Whether `rate` is a usable detection rate (detections a second): 0 (no limit), or finite
/// and at least [`MIN_DETECT_RATE`].
pub fn valid_detect_rate(rate: f32) -> bool {
    rate == 0.0 || (rate.is_finite() && rate >= MIN_DETECT_RATE)
}

/// `[cameras.detect]`: how one camera is analysed.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraDetect {
    /// Default true.
    pub enabled: bool,
    /// Detections a second. Default: `[detect] rate`.
    pub rate: Option<f32>,
    /// Detect only where the motion gate sees motion, on crops around it. Default true; false
    /// detects on whole frames at `rate`.
    pub motion: bool,
    /// `persons` (default: faces on the upper part of persons), `frame` (whole frames: gate
    /// cameras, people close and facing the camera) or `off`.
    pub faces: FaceMode,
    /// Face embeddings. Default: `[detect] embeddings`.
    pub embed: Option<bool>,
}

impl Default for CameraDetect {
    fn default() -> Self {
        CameraDetect {
            enabled: true,
            rate: None,
            motion: true,
            faces: FaceMode::Persons,
            embed: None,
        }
    }
}

/// Where a camera stands now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CameraStatus {
    /// Connecting (or reconnecting); no frame received on this attempt yet.
    Connecting,
    /// Frames are arriving.
    Online,
    /// Not delivering frames; `reason` says why, in words an operator can act on.
    Offline { reason: String },
}

impl CameraStatus {
    pub fn label(&self) -> &'static str {
        match self {
            CameraStatus::Connecting => "connecting",
            CameraStatus::Online => "online",
            CameraStatus::Offline { .. } => "offline",
        }
    }
}

/// Why a frame (an access unit or a decoded picture) was not passed on. Each has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The camera's decode queue was full; the oldest access unit was dropped.
    QueueFull,
    /// Skipped until the next key frame: after (re)connecting, after a drop broke the chain of
    /// references, or after a decode policy change.
    AwaitingKeyFrame,
    /// Skipped by the camera's decode policy (non-reference or non-key frame).
    Policy,
    /// The decoder rejected the data.
    DecodeError,
}

impl DropReason {
    pub const ALL: [DropReason; 4] = [
        DropReason::QueueFull,
        DropReason::AwaitingKeyFrame,
        DropReason::Policy,
        DropReason::DecodeError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::AwaitingKeyFrame => "awaiting_key_frame",
            DropReason::Policy => "policy",
            DropReason::DecodeError => "decode_error",
        }
    }
}

/// What the camera's current stream carries, learnt from the SDP or the first decoded frame.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamInfo {
    /// Codec name as FFmpeg or the SDP calls it (`h264`, `hevc`, `msmpeg4v3`).
    pub codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// Rates over the last sampling window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Rates {
    /// Access units received per second.
    pub fps: f64,
    /// Frames decoded per second.
    pub decoded_fps: f64,
    /// Received bits per second.
    pub bitrate_bps: f64,
}

#[derive(Debug, Default)]
struct RateSample {
    at: Option<Timestamp>,
    frames_in: u64,
    decoded: u64,
    bytes: u64,
    rates: Rates,
}

/// Live figures of one camera. Cheap to update from any thread: counters are atomics, and the
/// few fields behind a mutex change only on state changes, never per frame.
#[derive(Debug)]
pub struct CameraStats {
    pub id: CameraId,
    /// Access units (encoded frames) received from the camera.
    pub frames_in: AtomicU64,
    /// Payload bytes received.
    pub bytes_in: AtomicU64,
    /// Pictures decoded and delivered at the analysis size.
    pub frames_decoded: AtomicU64,
    /// RTP packets lost (sequence-number gaps) as retina reports them.
    pub rtp_packets_lost: AtomicU64,
    /// Connection attempts after the first.
    pub reconnects: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    /// Unix milliseconds of the last access unit received; 0 = never.
    last_frame_at_ms: AtomicI64,
    decode_policy: std::sync::atomic::AtomicU8,
    status: Mutex<CameraStatus>,
    stream: Mutex<StreamInfo>,
    sample: Mutex<RateSample>,
}

impl CameraStats {
    pub fn new(id: CameraId, policy: DecodePolicy) -> Self {
        CameraStats {
            id,
            frames_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            frames_decoded: AtomicU64::new(0),
            rtp_packets_lost: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            dropped: Default::default(),
            last_frame_at_ms: AtomicI64::new(0),
            decode_policy: std::sync::atomic::AtomicU8::new(policy.to_u8()),
            status: Mutex::new(CameraStatus::Connecting),
            stream: Mutex::new(StreamInfo::default()),
            sample: Mutex::new(RateSample::default()),
        }
    }

    /// Counts one received access unit of `bytes` bytes.
    pub fn record_frame_in(&self, bytes: usize, at: Timestamp) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        self.last_frame_at_ms
            .store(at.as_millisecond(), Ordering::Relaxed);
    }

    pub fn record_drop(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }

    pub fn last_frame_at(&self) -> Option<Timestamp> {
        match self.last_frame_at_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Timestamp::from_millisecond(ms).ok(),
        }
    }

    pub fn decode_policy(&self) -> DecodePolicy {
        DecodePolicy::from_u8(self.decode_policy.load(Ordering::Relaxed))
    }

    /// Changes the decode policy; the decoder picks it up at its next access unit.
    pub fn set_decode_policy(&self, policy: DecodePolicy) {
        self.decode_policy.store(policy.to_u8(), Ordering::Relaxed);
    }

    pub fn status(&self) -> CameraStatus {
        lock(&self.status).clone()
    }

    /// Sets the status; returns the previous one so callers can log transitions once.
    pub fn set_status(&self, status: CameraStatus) -> CameraStatus {
        std::mem::replace(&mut *lock(&self.status), status)
    }

    pub fn stream(&self) -> StreamInfo {
        lock(&self.stream).clone()
    }

    pub fn update_stream(&self, f: impl FnOnce(&mut StreamInfo)) {
        f(&mut lock(&self.stream));
    }

    /// Recomputes the rates from the counters since the previous call. Called about once a
    /// second by one sampler task.
    pub fn sample_rates(&self, now: Timestamp) {
        let frames_in = self.frames_in.load(Ordering::Relaxed);
        let decoded = self.frames_decoded.load(Ordering::Relaxed);
        let bytes = self.bytes_in.load(Ordering::Relaxed);
        let mut s = lock(&self.sample);
        if let Some(prev) = s.at {
            let secs = now.duration_since(prev).as_secs_f64();
            if secs > 0.0 {
                s.rates = Rates {
                    fps: frames_in.saturating_sub(s.frames_in) as f64 / secs,
                    decoded_fps: decoded.saturating_sub(s.decoded) as f64 / secs,
                    bitrate_bps: bytes.saturating_sub(s.bytes) as f64 * 8.0 / secs,
                };
            }
        }
        s.at = Some(now);
        s.frames_in = frames_in;
        s.decoded = decoded;
        s.bytes = bytes;
    }

    pub fn rates(&self) -> Rates {
        lock(&self.sample).rates
    }
}

/// Static description of a camera, as operators configure it.
#[derive(Debug, Clone, Serialize)]
pub struct CameraInfo {
    pub id: CameraId,
    pub name: String,
    pub community: CommunityId,
    pub network: CameraNetwork,
}

/// Locks a mutex whose data stays consistent even if a holder panicked (plain values only).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_policy_parses_its_kebab_case_names_only() {
        for p in DecodePolicy::ALL {
            assert_eq!(p.as_str().parse::<DecodePolicy>(), Ok(p));
            assert_eq!(DecodePolicy::from_u8(p.to_u8()), p);
        }
        let err = "keyframes".parse::<DecodePolicy>().unwrap_err();
        assert!(err.contains("key-frames"), "{err}");
    }

    #[test]
    fn rates_come_from_counter_deltas_over_elapsed_time() {
        let s = CameraStats::new(CameraId::new("c").unwrap(), DecodePolicy::All);
        let t0 = Timestamp::from_second(1_000).unwrap();
        s.sample_rates(t0);
        for _ in 0..30 {
            s.record_frame_in(1000, t0);
        }
        s.frames_decoded.fetch_add(15, Ordering::Relaxed);
        s.sample_rates(t0 + jiff::SignedDuration::from_secs(2));
        let r = s.rates();
        assert_eq!(r.fps, 15.0);
        assert_eq!(r.decoded_fps, 7.5);
        assert_eq!(r.bitrate_bps, 30.0 * 1000.0 * 8.0 / 2.0);
        assert_eq!(s.last_frame_at(), Some(t0));
    }

    #[test]
    fn drops_are_counted_per_reason() {
        let s = CameraStats::new(CameraId::new("c").unwrap(), DecodePolicy::All);
        s.record_drop(DropReason::QueueFull);
        s.record_drop(DropReason::QueueFull);
        s.record_drop(DropReason::Policy);
        assert_eq!(s.dropped(DropReason::QueueFull), 2);
        assert_eq!(s.dropped(DropReason::Policy), 1);
        assert_eq!(s.dropped(DropReason::DecodeError), 0);
    }
}

/// A camera's description and live figures, as the registry hands them out.
pub type CameraEntry = (CameraInfo, Arc<CameraStats>);

/// The cameras the hub runs now, with their live figures. Cameras can be added and removed
/// while running; readers take a snapshot.
#[derive(Debug, Default)]
pub struct CameraRegistry {
    cameras: RwLock<BTreeMap<CameraId, CameraEntry>>,
}

impl CameraRegistry {
    pub fn insert(&self, info: CameraInfo, stats: Arc<CameraStats>) {
        self.write().insert(info.id.clone(), (info, stats));
    }

    pub fn remove(&self, id: &CameraId) -> Option<CameraEntry> {
        self.write().remove(id)
    }

    pub fn get(&self, id: &CameraId) -> Option<CameraEntry> {
        self.read().get(id).cloned()
    }

    /// All cameras, ordered by id.
    pub fn snapshot(&self) -> Vec<CameraEntry> {
        self.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<CameraId, CameraEntry>> {
        self.cameras.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<CameraId, CameraEntry>> {
        self.cameras.write().unwrap_or_else(|e| e.into_inner())
    }
}
