//! One decode thread: owns the decoders of its cameras and serves their queues round robin, one
//! access unit per camera per turn, so a busy camera cannot starve a quiet one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ffmpeg_next::codec;
use ffmpeg_next::util::frame::video::Video;
use jiff::Timestamp;
use tracing::{debug, trace, warn};
use xl_core::camera::{DecodePolicy, DropReason, VideoCodec};
use xl_core::clock::Clocks;
use xl_core::frame::{BufferPool, Frame, FrameSink};

use crate::DecodeError;
use crate::nal::is_reference;
use crate::queue::{CameraQueue, StreamSpec, Unit, WorkerSignal};
use crate::scale::{Scaler, analysis_size};

/// Received-at times of units in flight inside a decoder, matched back to frames by pts.
const IN_FLIGHT: usize = 16;

struct CameraDecoder {
    queue: Arc<CameraQueue>,
    decoder: Option<ffmpeg_next::decoder::Video>,
    codec: Option<VideoCodec>,
    need_key: bool,
    policy: DecodePolicy,
    scaler: Scaler,
    in_flight: VecDeque<(i64, Timestamp)>,
    decoded: Video,
    /// The producer is gone; forget this camera.
    closed: bool,
    /// A frame could not be scaled since the decoder opened (said once at WARN; every one is
    /// counted as a drop).
    scale_failed: bool,
}

pub(crate) struct Worker {
    pub signal: Arc<WorkerSignal>,
    pub sink: Arc<dyn FrameSink>,
    pub pool: BufferPool,
    pub analysis_width: u32,
    /// Stamps frames flushed at the end of a stream that match no unit in flight.
    pub clocks: Arc<dyn Clocks>,
}

impl Worker {
    pub fn run(self) {
        let mut cameras: Vec<CameraDecoder> = Vec::new();
        let mut next = 0usize;
        let mut idle = false;
        loop {
            let (added, shutdown) = if idle {
                self.signal.wait()
            } else {
                self.signal.poll()
            };
            if shutdown {
                return;
            }
            cameras.extend(added.into_iter().map(CameraDecoder::new));
            idle = true;
            let n = cameras.len();
            for i in 0..n {
                let cam = &mut cameras[(next + i) % n];
                if self.step(cam) {
                    idle = false;
                }
            }
            next = next.wrapping_add(1);
            cameras.retain(|c| !c.closed());
        }
    }

    /// Takes one unit from the camera's queue and decodes it. Returns whether there was work.
    fn step(&self, cam: &mut CameraDecoder) -> bool {
        let popped = cam.queue.pop();
        if let Some(spec) = popped.start {
            cam.open(spec);
        }
        if popped.gap {
            cam.need_key = true;
        }
        let Some(unit) = popped.unit else {
            if popped.closed {
                // The producer is gone and its queue is drained: deliver what the decoder still
                // holds, then forget the camera.
                if let Some(d) = cam.decoder.as_mut()
                    && d.send_eof().is_ok()
                {
                    self.receive_frames(cam, 0, self.clocks.realtime());
                }
                cam.closed = true;
                cam.decoder = None;
            }
            return false;
        };
        let stats = &cam.queue.stats;
        let policy = stats.decode_policy();
        if policy != cam.policy {
            debug!(camera = %stats.id, from = %cam.policy, to = %policy, "decode policy changed");
            // Frames skipped under key-frames-only are missing references for what follows.
            if cam.policy == DecodePolicy::KeyFrames {
                cam.need_key = true;
            }
            cam.policy = policy;
        }
        if cam.need_key && !unit.is_key {
            stats.record_drop(DropReason::AwaitingKeyFrame);
            return true;
        }
        let skip = match policy {
            DecodePolicy::All => false,
            DecodePolicy::KeyFrames => !unit.is_key,
            DecodePolicy::SkipNonReference => {
                cam.codec.is_some_and(|c| !is_reference(c, &unit.data))
            }
        };
        if skip {
            stats.record_drop(DropReason::Policy);
            return true;
        }
        cam.need_key = false;
        self.decode(cam, unit);
        true
    }

    fn decode(&self, cam: &mut CameraDecoder, unit: Unit) {
        let stats = Arc::clone(&cam.queue.stats);
        let Some(decoder) = cam.decoder.as_mut() else {
            stats.record_drop(DropReason::DecodeError);
            return;
        };
        let mut packet = codec::packet::Packet::copy(&unit.data);
        packet.set_pts(Some(unit.pts_90k));
        packet.set_dts(None);
        if unit.is_key {
            packet.set_flags(codec::packet::Flags::KEY);
        }
        if cam.in_flight.len() == IN_FLIGHT {
            cam.in_flight.pop_front();
        }
        cam.in_flight.push_back((unit.pts_90k, unit.received_at));
        if let Err(e) = decoder.send_packet(&packet) {
            trace!(camera = %stats.id, error = %e, "decoder rejected an access unit");
            stats.record_drop(DropReason::DecodeError);
            cam.need_key = true;
            return;
        }
        self.receive_frames(cam, unit.pts_90k, unit.received_at);
    }

    /// Scales and delivers every frame the decoder has ready. `pts_90k` and `received_at` stand
    /// in for frames that come back without a pts.
    fn receive_frames(&self, cam: &mut CameraDecoder, pts_90k: i64, received_at: Timestamp) {
        let stats = Arc::clone(&cam.queue.stats);
        let Some(decoder) = cam.decoder.as_mut() else {
            return;
        };
        while decoder.receive_frame(&mut cam.decoded).is_ok() {
            let (w, h) = analysis_size(
                cam.decoded.width(),
                cam.decoded.height(),
                self.analysis_width,
            );
            let mut buf = self.pool.get(Frame::i420_len(w, h));
            if let Err(e) = cam.scaler.write_i420(&cam.decoded, w, h, &mut buf) {
                if !std::mem::replace(&mut cam.scale_failed, true) {
                    warn!(camera = %stats.id, error = %e, "cannot scale a decoded frame (said once; each is counted as a decode_error drop)");
                } else {
                    trace!(camera = %stats.id, error = %e, "cannot scale a decoded frame");
                }
                stats.record_drop(DropReason::DecodeError);
                continue;
            }
            let pts_90k = cam.decoded.pts().unwrap_or(pts_90k);
            let received_at = cam
                .in_flight
                .iter()
                .find(|(p, _)| *p == pts_90k)
                .map_or(received_at, |(_, t)| *t);
            stats.frames_decoded.fetch_add(1, Ordering::Relaxed);
            self.sink.on_frame(Frame {
                camera: stats.id.clone(),
                pts_90k,
                received_at,
                width: w,
                height: h,
                i420: buf,
            });
        }
    }
}

impl CameraDecoder {
    fn new(queue: Arc<CameraQueue>) -> Self {
        let policy = queue.stats.decode_policy();
        CameraDecoder {
            queue,
            decoder: None,
            codec: None,
            need_key: true,
            policy,
            scaler: Scaler::default(),
            in_flight: VecDeque::with_capacity(IN_FLIGHT),
            decoded: Video::empty(),
            closed: false,
            scale_failed: false,
        }
    }

    fn closed(&self) -> bool {
        self.closed
    }

    fn open(&mut self, spec: StreamSpec) {
        self.need_key = true;
        self.scale_failed = false;
        self.in_flight.clear();
        self.codec = match &spec {
            StreamSpec::AnnexB(c) => Some(*c),
            StreamSpec::Demuxed { codec, .. } => *codec,
        };
        match open_decoder(spec) {
            Ok(d) => self.decoder = Some(d),
            Err(e) => {
                warn!(camera = %self.queue.stats.id, error = %e, "cannot open a decoder");
                self.decoder = None;
            }
        }
    }
}

pub(crate) fn open_decoder(spec: StreamSpec) -> Result<ffmpeg_next::decoder::Video, DecodeError> {
    let mut ctx = match spec {
        StreamSpec::AnnexB(c) => {
            let id = match c {
                VideoCodec::H264 => codec::Id::H264,
                VideoCodec::H265 => codec::Id::HEVC,
            };
            let found = ffmpeg_next::decoder::find(id).ok_or_else(|| DecodeError::NoDecoder {
                codec: c.to_string(),
            })?;
            codec::Context::new_with_codec(found)
        }
        StreamSpec::Demuxed { params, .. } => {
            codec::Context::from_parameters(params).map_err(|source| DecodeError::OpenDecoder {
                codec: "demuxed stream".into(),
                source,
            })?
        }
    };
    // One thread per stream: the pool, not FFmpeg, spreads work over the cores.
    ctx.set_threading(codec::threading::Config {
        kind: codec::threading::Type::Frame,
        count: 1,
        ..Default::default()
    });
    ctx.set_flags(codec::Flags::LOW_DELAY);
    let name = format!("{:?}", ctx.id()).to_lowercase();
    ctx.decoder()
        .video()
        .map_err(|source| DecodeError::OpenDecoder {
            codec: name,
            source,
        })
}
