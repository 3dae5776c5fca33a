//! `xueliang probe`: what a camera's stream carries, read from the stream itself.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use retina::client::PlayOptions;
use retina::codec::{CodecItem, ParametersRef};
use serde::Serialize;
use xl_core::camera::VideoCodec;

use crate::camera::{describe_and_setup, with_timeout};
use crate::{CameraSource, RtspError};

/// What `probe` found.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// The URL, without credentials.
    pub url: String,
    pub codec: String,
    /// RFC 6381 codec string, e.g. `avc1.64001F`.
    pub codec_profile: Option<String>,
    pub width: u32,
    pub height: u32,
    /// Measured from RTP timestamps over the probed frames.
    pub fps: Option<f64>,
    /// Frames from one key frame to the next, when two were seen.
    pub gop_frames: Option<u32>,
    /// Seconds from one key frame to the next (RTP timestamps), when two were seen.
    pub gop_secs: Option<f64>,
    pub audio: Option<String>,
    pub frames_read: u32,
    /// The server's `a=tool` SDP attribute, when it sends one.
    pub server_tool: Option<String>,
    /// The codec, typed (what `codec` names).
    #[serde(skip)]
    pub video_codec: VideoCodec,
    /// The first key frame, Annex B with its parameter sets, for a snapshot.
    #[serde(skip)]
    pub key_frame: Option<Bytes>,
}

/// Reads the stream until two key frames have been seen or `max_wait` has passed since PLAY
/// (then reports what it saw). A camera silent for the source's frame timeout is an error.
pub async fn probe(source: &CameraSource, max_wait: Duration) -> Result<ProbeReport, RtspError> {
    let t = source.timeouts;
    let (session, stream_i, codec) = describe_and_setup(source).await?;
    let audio = session
        .streams()
        .iter()
        .find(|s| s.media() == "audio")
        .map(|s| s.encoding_name().to_owned());
    let server_tool = session.tool().map(|t| format!("{t:?}"));
    let playing = with_timeout("PLAY", t.request, session.play(PlayOptions::default())).await?;
    let mut demuxed = playing
        .demuxed()
        .map_err(|e| RtspError::from_retina("PLAY", e))?;
    let started = Instant::now();
    let mut frames = 0u32;
    let mut key_at: Vec<(u32, i64)> = Vec::new();
    let mut key_frame = None;
    let (mut first_ts, mut last_ts) = (None, 0i64);
    while key_at.len() < 2 {
        let Some(left) = max_wait.checked_sub(started.elapsed()) else {
            break;
        };
        let item = match tokio::time::timeout(t.frame.min(left), demuxed.next()).await {
            Err(_) if left <= t.frame => break,
            Err(_) => {
                return Err(RtspError::Timeout {
                    stage: "streaming",
                    timeout: t.frame,
                });
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(RtspError::from_retina("streaming", e)),
            Ok(Some(Ok(item))) => item,
        };
        if let CodecItem::VideoFrame(f) = item {
            let ts = f.timestamp().elapsed();
            if f.is_random_access_point() {
                key_at.push((frames, ts));
            }
            first_ts.get_or_insert(ts);
            last_ts = ts;
            frames += 1;
            if key_frame.is_none() && f.is_random_access_point() {
                key_frame = Some(Bytes::from(f.into_data()));
            }
        }
    }
    let (width, height, codec_profile) = match demuxed.streams()[stream_i].parameters() {
        Some(ParametersRef::Video(v)) => {
            let (w, h) = v.pixel_dimensions();
            (w, h, Some(v.rfc6381_codec().to_owned()))
        }
        _ => (0, 0, None),
    };
    let fps = first_ts
        .filter(|&f| last_ts > f && frames > 1)
        .map(|f| f64::from(frames - 1) * 90_000.0 / (last_ts - f) as f64);
    Ok(ProbeReport {
        url: source.url.to_string(),
        codec: codec.to_string(),
        codec_profile,
        width,
        height,
        fps,
        gop_frames: (key_at.len() == 2).then(|| key_at[1].0 - key_at[0].0),
        gop_secs: (key_at.len() == 2).then(|| (key_at[1].1 - key_at[0].1) as f64 / 90_000.0),
        audio,
        frames_read: frames,
        server_tool,
        video_codec: codec,
        key_frame,
    })
}
