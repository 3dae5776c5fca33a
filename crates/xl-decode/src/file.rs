//! A video file standing in for a camera: demuxed by FFmpeg, looped, paced in real time, decoded
//! on the pool like any camera.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ffmpeg_next::{codec, media};
use tracing::{info, info_span, warn};
use xl_core::camera::{CameraStatus, VideoCodec};

use crate::queue::Unit;
use crate::{CameraInput, DecodeError};

/// How a file source feeds the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// At the file's own frame rate, as a live camera would.
    RealTime,
    /// As fast as the decoder takes it, never dropping (benchmarks).
    Unpaced,
}

#[derive(Debug, Clone)]
pub struct FileSource {
    pub path: PathBuf,
    /// Start again at the end of the file (the default), or stop.
    pub looped: bool,
    pub pacing: Pacing,
}

/// Runs `source` on its own thread until `stop` is set (or the file ends, if not looped).
/// Open failures mark the camera offline with the reason and are retried every few seconds.
///
/// Pacing is on real time (a file plays as fast as a camera would send it); each access unit is
/// stamped, as it is read, with the clocks of the pool `input` belongs to.
pub fn spawn_file_source(
    source: FileSource,
    input: CameraInput,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let name = format!("file-{}", input.stats().id);
    std::thread::Builder::new().name(name).spawn(move || {
        let span = info_span!("camera", camera = %input.stats().id);
        let _g = span.enter();
        let stats = Arc::clone(input.stats());
        while !stop.load(Ordering::Relaxed) {
            match play(&source, &input, &stop) {
                Ok(()) => {
                    if !source.looped {
                        stats.set_status(CameraStatus::Offline {
                            reason: "end of file".into(),
                        });
                        return;
                    }
                }
                Err(e) => {
                    warn!(path = %source.path.display(), error = %e, "file source failed");
                    stats.set_status(CameraStatus::Offline {
                        reason: e.to_string(),
                    });
                    sleep_unless_stopped(Duration::from_secs(5), &stop);
                }
            }
        }
    })
}

/// Plays the file once (or forever when looped); returns Ok at the end of a non-looped file or
/// when stopped.
fn play(source: &FileSource, input: &CameraInput, stop: &AtomicBool) -> Result<(), DecodeError> {
    crate::init()?;
    let path = source.path.display().to_string();
    let stats = Arc::clone(input.stats());
    let open = || {
        ffmpeg_next::format::input(&source.path).map_err(|e| DecodeError::Open {
            path: path.clone(),
            source: e,
        })
    };
    let mut ictx = open()?;
    let (index, time_base, params) = {
        let stream = ictx
            .streams()
            .best(media::Type::Video)
            .ok_or_else(|| DecodeError::NoVideo { path: path.clone() })?;
        (stream.index(), stream.time_base(), stream.parameters())
    };
    let codec_id = params.id();
    let h26x = match codec_id {
        codec::Id::H264 => Some(VideoCodec::H264),
        codec::Id::HEVC => Some(VideoCodec::H265),
        _ => None,
    };
    let (w, h) = {
        // SAFETY: reads two plain integer fields of a valid AVCodecParameters.
        let p = unsafe { &*params.as_ptr() };
        (p.width, p.height)
    };
    stats.update_stream(|s| {
        s.codec = Some(format!("{codec_id:?}").to_lowercase());
        s.width = u32::try_from(w).ok();
        s.height = u32::try_from(h).ok();
    });
    input.start_demuxed(params, h26x);
    info!(path, "file source playing");
    stats.set_status(CameraStatus::Online);

    let tb = f64::from(time_base.numerator()) / f64::from(time_base.denominator().max(1));
    let started = Instant::now();
    let mut loop_offset = 0.0f64;
    let mut first_ts: Option<i64> = None;
    let mut last_secs = 0.0f64;
    let mut frame_secs = 0.04f64;
    loop {
        let mut packet = codec::packet::Packet::empty();
        match packet.read(&mut ictx) {
            Ok(()) => {}
            Err(ffmpeg_next::Error::Eof) => {
                if !source.looped {
                    return Ok(());
                }
                loop_offset = last_secs + frame_secs;
                first_ts = None;
                ictx = open()?;
                continue;
            }
            Err(ffmpeg_next::Error::InvalidData) => continue,
            Err(e) => {
                return Err(DecodeError::Read {
                    path: path.clone(),
                    source: e,
                });
            }
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        if packet.stream() != index {
            continue;
        }
        let Some(data) = packet.data() else { continue };
        let ts = packet.pts().or(packet.dts()).unwrap_or(0);
        let first = *first_ts.get_or_insert(ts);
        let secs = loop_offset + (ts - first) as f64 * tb;
        if secs > last_secs {
            frame_secs = (secs - last_secs).min(1.0);
        }
        last_secs = secs;
        match source.pacing {
            Pacing::RealTime => {
                let due = started + Duration::from_secs_f64(secs.max(0.0));
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    sleep_unless_stopped(wait, stop);
                }
            }
            Pacing::Unpaced => {
                while input.queued() >= 4 && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
        let now = input.clocks().realtime();
        stats.record_frame_in(data.len(), now);
        input.push_unit(Unit {
            data: Bytes::copy_from_slice(data),
            pts_90k: (secs * 90_000.0).round() as i64,
            is_key: packet.is_key(),
            received_at: now,
        });
    }
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}
