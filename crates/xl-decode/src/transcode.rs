//! An H.264 copy of a stream, for browsers that cannot play H.265 (live view): decoded with
//! FFmpeg, encoded with libx264, handed on as access units while someone watches.
//!
//! One dedicated thread per transcoder, fed through a small bounded queue that drops its oldest
//! unit when full and then skips to the next key frame, like a camera's decode queue: the
//! stream's producer never waits on the transcoder.
//!
//! Encoding: libx264 `preset=ultrafast`, `tune=zerolatency` (no lookahead, no B-frames, one
//! thread: a unit in comes out as soon as it is decoded and encoded), constrained baseline
//! profile, yuv420p, the decoded size. The output has a key frame (IDR) exactly where the input
//! has one and nowhere else (no periodic or scene-cut key frames), so a viewer joining at the
//! output's last key frame waits no longer than with the input. SPS and PPS precede every IDR
//! (Annex B, repeated headers, no global header). Timestamps pass through untouched: the
//! encoder's time base is the input's 90 kHz clock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use ffmpeg_next::format::Pixel;
use ffmpeg_next::software::scaling;
use ffmpeg_next::util::frame::video::Video;
use ffmpeg_next::util::picture;
use ffmpeg_next::{Dictionary, Rational, codec};
use jiff::Timestamp;
use tracing::{debug, info_span, trace, warn};
use xl_core::camera::VideoCodec;
use xl_core::frame::{AccessUnit, AccessUnitSink};

use crate::DecodeError;
use crate::queue::{StreamSpec, Unit};
use crate::worker::open_decoder;

/// The FFmpeg encoder the copies are made with.
const ENCODER: &str = "libx264";

/// libx264's options besides the rate factor. `keyint=infinite` and `scenecut=0`: key frames
/// only where forced (at the input's key frames); `forced-idr`: a forced key frame is an IDR,
/// where a decoder can start; `repeat-headers`: SPS and PPS in front of every IDR.
const X264_OPTIONS: [(&str, &str); 5] = [
    ("preset", "ultrafast"),
    ("tune", "zerolatency"),
    ("profile", "baseline"),
    ("forced-idr", "1"),
    (
        "x264-params",
        "keyint=infinite:scenecut=0:open-gop=0:repeat-headers=1",
    ),
];

/// Frame rate given to x264 when the stream signals none (or an implausible one). It only
/// weighs x264's rate control and fills the SPS timing; timestamps pass through regardless.
const FALLBACK_FRAME_RATE: i32 = 25;

/// Input units whose receipt time and key-frame flag are kept for matching output by pts.
const IN_FLIGHT: usize = 16;

/// Makes an H.264 copy of a stream on its own thread. Implements [`AccessUnitSink`]: subscribe it
/// to the stream (H.264 or H.265 in; a new decoder for each [`AccessUnitSink::stream_started`])
/// and it pushes the copy to the `output` it was started with, announcing each new output
/// stream with `output.stream_started(VideoCodec::H264)` before its first unit.
///
/// Each output unit carries the `pts_90k` and `received_at` of the input unit it was made from;
/// `is_key` marks IDRs, which are exactly the input's key frames.
///
/// Dropping it (or [`Transcoder::stop`]) ends the thread after the unit in hand, discarding what
/// is queued; [`Transcoder::finish`] first transcodes everything queued and flushes FFmpeg.
/// Both join the thread, whose FFmpeg objects are freed before it ends: the caller waits for
/// at most one unit's work (about 2 ms at 640x360).
pub struct Transcoder {
    name: String,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A transcoder's figures since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TranscodeStats {
    /// Access units pushed in (before stop or finish).
    pub units_in: u64,
    /// Access units pushed to the output.
    pub units_out: u64,
    /// Oldest units dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Units skipped while waiting for a key frame: after a drop or a decode error broke the
    /// chain of references, or discarded from the queue when a new stream started.
    pub dropped_awaiting_key_frame: u64,
    /// Units the decoder rejected (or that arrived with no decoder open).
    pub decode_errors: u64,
    /// Decoded pictures that could not be converted or encoded.
    pub encode_errors: u64,
    /// CPU time of the transcoder's thread (decoding, encoding, delivering to the output).
    pub cpu_time: Duration,
}

impl Transcoder {
    /// Access units queued before the oldest is dropped: under a second of a 10 fps sub stream.
    /// The queue only absorbs jitter; a transcoder that falls further behind skips ahead to
    /// the next key frame rather than add latency.
    pub const QUEUE_UNITS: usize = 8;
    /// x264's constant rate factor. On the 640x360 10 fps test clip (a real street scene,
    /// H.265 at 512 kbit/s, a key frame every 2 s) `ultrafast` makes about 450 kbit/s at 28,
    /// under the H.265 it is made from, with an SSIM of 0.977 against the decoded input (26:
    /// 550 kbit/s, 0.982; 23: 740 kbit/s, 0.988). Constant quality rather than a bitrate: the
    /// bitrate follows the scene, and viewers are on the hub's network. No cap.
    pub const CRF: u32 = 28;

    /// Starts the thread. `name` names the stream in logs (e.g. `cam-7 sub`). Fails if FFmpeg
    /// has no libx264 or the thread cannot start; decoders and the encoder open on the thread,
    /// per stream, and their failures are logged and counted.
    pub fn start(name: &str, output: Arc<dyn AccessUnitSink>) -> Result<Transcoder, DecodeError> {
        crate::init()?;
        if ffmpeg_next::encoder::find_by_name(ENCODER).is_none() {
            return Err(DecodeError::NoEncoder {
                codec: ENCODER.into(),
            });
        }
        let shared = Arc::new(Shared::new(Self::QUEUE_UNITS));
        let (thread_name, thread_shared) = (name.to_owned(), Arc::clone(&shared));
        let thread = std::thread::Builder::new()
            .name("transcode".into())
            .spawn(move || Pipeline::new(thread_name, output, thread_shared).run())
            .map_err(|e| DecodeError::Init(format!("cannot start a transcoder thread: {e}")))?;
        Ok(Transcoder {
            name: name.to_owned(),
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn stats(&self) -> TranscodeStats {
        self.shared.counters.snapshot()
    }

    /// Units waiting in the queue (for producers that pace themselves on the transcoder).
    pub fn queued(&self) -> usize {
        self.shared.lock().units.len()
    }

    /// Transcodes what is queued, flushes the decoder and the encoder to the output, then ends
    /// the thread and waits for it. Units pushed afterwards are ignored.
    pub fn finish(&self) {
        self.end(End::Finish);
    }

    /// Ends the thread after the unit in hand (queued units are discarded) and waits for it.
    /// Units pushed afterwards are ignored. Idempotent; also what dropping does.
    pub fn stop(&self) {
        self.end(End::Stop);
    }

    fn end(&self, how: End) {
        self.shared.end(how);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(thread) = thread else { return };
        // Dropped by its own output (on its own thread): it ends by itself after this unit.
        if thread.thread().id() == std::thread::current().id() {
            return;
        }
        if thread.join().is_err() {
            warn!(stream = %self.name, "the transcoder thread panicked");
        }
    }
}

impl AccessUnitSink for Transcoder {
    fn stream_started(&self, codec: VideoCodec) {
        self.shared.start(codec);
    }

    fn push(&self, au: AccessUnit) {
        self.shared.push(Unit {
            data: au.data,
            pts_90k: au.pts_90k,
            is_key: au.is_key,
            received_at: au.received_at,
        });
    }
}

impl Drop for Transcoder {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoder")
            .field("name", &self.name)
            .field("stats", &self.stats())
            .finish()
    }
}

/// How the thread is asked to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// After the queue is drained and FFmpeg flushed.
    Finish,
    /// After the unit in hand.
    Stop,
}

#[derive(Default)]
struct Counters {
    units_in: AtomicU64,
    units_out: AtomicU64,
    queue_full: AtomicU64,
    awaiting_key_frame: AtomicU64,
    decode_errors: AtomicU64,
    encode_errors: AtomicU64,
    cpu_nanos: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> TranscodeStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TranscodeStats {
            units_in: get(&self.units_in),
            units_out: get(&self.units_out),
            dropped_queue_full: get(&self.queue_full),
            dropped_awaiting_key_frame: get(&self.awaiting_key_frame),
            decode_errors: get(&self.decode_errors),
            encode_errors: get(&self.encode_errors),
            cpu_time: Duration::from_nanos(get(&self.cpu_nanos)),
        }
    }
}

#[derive(Default)]
struct State {
    units: VecDeque<Unit>,
    /// A new stream started: the decoder is rebuilt before the next unit.
    start: Option<VideoCodec>,
    /// Units were dropped since the last one taken: the chain of references is broken.
    gap: bool,
    end: Option<End>,
}

/// What the thread does next.
enum Work {
    Start(VideoCodec),
    Unit { unit: Unit, gap: bool },
    Finish,
    Stop,
}

/// The queue between the producer and the thread, and the figures both update.
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    capacity: usize,
    counters: Counters,
}

impl Shared {
    fn new(capacity: usize) -> Self {
        Shared {
            state: Mutex::default(),
            wake: Condvar::new(),
            capacity: capacity.max(1),
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new stream begins: what is queued belongs to the old one and is discarded.
    fn start(&self, codec: VideoCodec) {
        {
            let mut s = self.lock();
            if s.end.is_some() {
                return;
            }
            let discarded = s.units.len() as u64;
            s.units.clear();
            Counters::add(&self.counters.awaiting_key_frame, discarded);
            s.start = Some(codec);
            s.gap = false;
        }
        self.wake.notify_one();
    }

    /// Queues a unit, dropping the oldest if full. Never blocks beyond a short lock.
    fn push(&self, unit: Unit) {
        {
            let mut s = self.lock();
            if s.end.is_some() {
                return;
            }
            Counters::add(&self.counters.units_in, 1);
            if s.units.len() >= self.capacity {
                s.units.pop_front();
                s.gap = true;
                Counters::add(&self.counters.queue_full, 1);
            }
            s.units.push_back(unit);
        }
        self.wake.notify_one();
    }

    /// Asks the thread to end; a stop overrides a finish in progress.
    fn end(&self, how: End) {
        {
            let mut s = self.lock();
            if s.end.is_none() || how == End::Stop {
                s.end = Some(how);
            }
        }
        self.wake.notify_one();
    }

    /// Waits for the next thing to do.
    fn next(&self) -> Work {
        let mut s = self.lock();
        loop {
            if s.end == Some(End::Stop) {
                return Work::Stop;
            }
            if let Some(codec) = s.start.take() {
                return Work::Start(codec);
            }
            if let Some(unit) = s.units.pop_front() {
                let gap = std::mem::take(&mut s.gap);
                return Work::Unit { unit, gap };
            }
            if s.end == Some(End::Finish) {
                return Work::Finish;
            }
            s = self.wake.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// An input unit being decoded and encoded.
struct InFlight {
    pts_90k: i64,
    received_at: Timestamp,
    is_key: bool,
}

struct Encoder {
    inner: ffmpeg_next::encoder::video::Encoder,
    width: u32,
    height: u32,
}

/// Decoded pictures in another format than yuv420p (full-range yuvj420p, 10-bit), converted.
struct Converter {
    from: (Pixel, u32, u32),
    sws: scaling::Context,
    out: Video,
}

/// The transcoder thread's state: everything FFmpeg, owned by the thread and freed with it.
struct Pipeline {
    name: String,
    output: Arc<dyn AccessUnitSink>,
    shared: Arc<Shared>,
    decoder: Option<ffmpeg_next::decoder::Video>,
    need_key: bool,
    in_flight: VecDeque<InFlight>,
    decoded: Video,
    converter: Option<Converter>,
    encoder: Option<Encoder>,
    packet: codec::packet::Packet,
    /// `stream_started(H264)` was said for the encoder now open.
    output_started: bool,
    /// The encoder could not be opened for this stream (said once at WARN; each picture is
    /// counted as an encode error).
    encoder_failed: bool,
}

impl Pipeline {
    fn new(name: String, output: Arc<dyn AccessUnitSink>, shared: Arc<Shared>) -> Self {
        Pipeline {
            name,
            output,
            shared,
            decoder: None,
            need_key: true,
            in_flight: VecDeque::with_capacity(IN_FLIGHT),
            decoded: Video::empty(),
            converter: None,
            encoder: None,
            packet: codec::packet::Packet::empty(),
            output_started: false,
            encoder_failed: false,
        }
    }

    fn run(mut self) {
        let span = info_span!("transcode", stream = %self.name);
        let _g = span.enter();
        debug!("transcoder started");
        loop {
            match self.shared.next() {
                Work::Start(codec) => self.open(codec),
                Work::Unit { unit, gap } => self.transcode(unit, gap),
                Work::Finish => {
                    self.flush();
                    break;
                }
                Work::Stop => break,
            }
            self.record_cpu_time();
        }
        self.record_cpu_time();
        debug!(stats = ?self.shared.counters.snapshot(), "transcoder ended");
    }

    fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    fn record_cpu_time(&self) {
        if let Some(t) = thread_cpu_time() {
            let nanos = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
            self.counters().cpu_nanos.store(nanos, Ordering::Relaxed);
        }
    }

    /// A new input stream: what the old one left in FFmpeg goes out first, then a new decoder.
    fn open(&mut self, codec: VideoCodec) {
        self.flush();
        self.decoder = None;
        self.converter = None;
        self.in_flight.clear();
        self.need_key = true;
        self.encoder_failed = false;
        match open_decoder(StreamSpec::AnnexB(codec)) {
            Ok(d) => self.decoder = Some(d),
            Err(e) => warn!(error = %e, "cannot open a decoder"),
        }
    }

    fn transcode(&mut self, unit: Unit, gap: bool) {
        if gap {
            self.need_key = true;
        }
        if self.need_key && !unit.is_key {
            Counters::add(&self.counters().awaiting_key_frame, 1);
            return;
        }
        let Some(decoder) = self.decoder.as_mut() else {
            Counters::add(&self.shared.counters.decode_errors, 1);
            return;
        };
        self.need_key = false;
        let mut packet = codec::packet::Packet::copy(&unit.data);
        packet.set_pts(Some(unit.pts_90k));
        packet.set_dts(None);
        if unit.is_key {
            packet.set_flags(codec::packet::Flags::KEY);
        }
        if self.in_flight.len() == IN_FLIGHT {
            self.in_flight.pop_front();
        }
        self.in_flight.push_back(InFlight {
            pts_90k: unit.pts_90k,
            received_at: unit.received_at,
            is_key: unit.is_key,
        });
        if let Err(e) = decoder.send_packet(&packet) {
            trace!(error = %e, pts_90k = unit.pts_90k, "decoder rejected an access unit");
            Counters::add(&self.shared.counters.decode_errors, 1);
            self.need_key = true;
            return;
        }
        self.receive_frames(unit.pts_90k);
    }

    /// Encodes every picture the decoder has ready. `pts_90k` stands in for pictures that come
    /// back without a pts.
    fn receive_frames(&mut self, pts_90k: i64) {
        loop {
            let Some(decoder) = self.decoder.as_mut() else {
                return;
            };
            if decoder.receive_frame(&mut self.decoded).is_err() {
                return;
            }
            let frame_rate = decoder.frame_rate();
            self.encode_decoded(pts_90k, frame_rate);
        }
    }

    fn encode_decoded(&mut self, fallback_pts_90k: i64, frame_rate: Option<Rational>) {
        let pts_90k = self.decoded.pts().unwrap_or(fallback_pts_90k);
        let is_key = self
            .in_flight
            .iter()
            .find(|u| u.pts_90k == pts_90k)
            .map_or_else(|| self.decoded.is_key(), |u| u.is_key);
        let (width, height) = (self.decoded.width(), self.decoded.height());
        if self
            .encoder
            .as_ref()
            .is_none_or(|e| (e.width, e.height) != (width, height))
        {
            // First picture, or the stream changed size: a new H.264 stream for the output.
            self.drain_encoder();
            self.output_started = false;
            match open_encoder(width, height, frame_rate) {
                Ok(inner) => {
                    debug!(width, height, "encoder opened");
                    self.encoder = Some(Encoder {
                        inner,
                        width,
                        height,
                    });
                }
                Err(e) => {
                    if !std::mem::replace(&mut self.encoder_failed, true) {
                        warn!(error = %e, "cannot open the encoder (said once; each picture is counted as an encode error)");
                    }
                    Counters::add(&self.shared.counters.encode_errors, 1);
                    return;
                }
            }
        }
        let frame = if self.decoded.format() == Pixel::YUV420P {
            &mut self.decoded
        } else {
            match convert(&mut self.converter, &self.decoded) {
                Ok(f) => f,
                Err(e) => {
                    trace!(error = %e, format = ?self.decoded.format(), "cannot convert a decoded picture to yuv420p");
                    Counters::add(&self.shared.counters.encode_errors, 1);
                    return;
                }
            }
        };
        frame.set_pts(Some(pts_90k));
        // Forced where the input has a key frame (an IDR, with forced-idr); the encoder decides
        // elsewhere (the decoder's own picture types must not reach x264).
        frame.set_kind(if is_key {
            picture::Type::I
        } else {
            picture::Type::None
        });
        let Some(encoder) = self.encoder.as_mut() else {
            return;
        };
        if let Err(e) = encoder.inner.send_frame(frame) {
            trace!(error = %e, pts_90k, "encoder rejected a picture");
            Counters::add(&self.shared.counters.encode_errors, 1);
            return;
        }
        self.receive_packets();
    }

    /// Hands every packet the encoder has ready to the output.
    fn receive_packets(&mut self) {
        let Some(encoder) = self.encoder.as_mut() else {
            return;
        };
        while encoder.inner.receive_packet(&mut self.packet).is_ok() {
            let (Some(data), Some(pts_90k)) = (self.packet.data(), self.packet.pts()) else {
                continue;
            };
            let received_at = self
                .in_flight
                .iter()
                .find(|u| u.pts_90k == pts_90k)
                .or(self.in_flight.back())
                .map_or(Timestamp::UNIX_EPOCH, |u| u.received_at);
            if !std::mem::replace(&mut self.output_started, true) {
                self.output.stream_started(VideoCodec::H264);
            }
            self.output.push(AccessUnit {
                data: Bytes::copy_from_slice(data),
                pts_90k,
                is_key: self.packet.is_key(),
                received_at,
            });
            Counters::add(&self.shared.counters.units_out, 1);
        }
    }

    /// Delivers what the decoder and the encoder still hold, and closes the encoder.
    fn flush(&mut self) {
        if let Some(d) = self.decoder.as_mut()
            && d.send_eof().is_ok()
        {
            let last = self.in_flight.back().map_or(0, |u| u.pts_90k);
            self.receive_frames(last);
        }
        self.drain_encoder();
    }

    fn drain_encoder(&mut self) {
        if let Some(e) = self.encoder.as_mut()
            && e.inner.send_eof().is_ok()
        {
            self.receive_packets();
        }
        self.encoder = None;
    }
}

/// `src` as yuv420p of the same size, in a frame the converter keeps for reuse.
fn convert<'a>(
    converter: &'a mut Option<Converter>,
    src: &Video,
) -> Result<&'a mut Video, ffmpeg_next::Error> {
    let from = (src.format(), src.width(), src.height());
    if converter.as_ref().is_none_or(|c| c.from != from) {
        let sws = scaling::Context::get(
            from.0,
            from.1,
            from.2,
            Pixel::YUV420P,
            from.1,
            from.2,
            scaling::Flags::BILINEAR,
        )?;
        *converter = Some(Converter {
            from,
            sws,
            out: Video::empty(),
        });
    }
    let Some(c) = converter.as_mut() else {
        unreachable!("set just above")
    };
    c.sws.run(src, &mut c.out)?;
    Ok(&mut c.out)
}

/// libx264 for `width` x `height` yuv420p on the 90 kHz clock, one thread, options as in
/// [`X264_OPTIONS`] and [`Transcoder::CRF`].
fn open_encoder(
    width: u32,
    height: u32,
    frame_rate: Option<Rational>,
) -> Result<ffmpeg_next::encoder::video::Encoder, DecodeError> {
    let failed = |source| DecodeError::OpenEncoder {
        codec: ENCODER.into(),
        width,
        height,
        source,
    };
    let found =
        ffmpeg_next::encoder::find_by_name(ENCODER).ok_or_else(|| DecodeError::NoEncoder {
            codec: ENCODER.into(),
        })?;
    let mut ctx = codec::Context::new_with_codec(found);
    // One thread: x264's frame threads would delay output by a frame each, and the hub runs
    // many streams side by side anyway.
    ctx.set_threading(codec::threading::Config {
        kind: codec::threading::Type::Slice,
        count: 1,
        ..Default::default()
    });
    let mut encoder = ctx.encoder().video().map_err(failed)?;
    encoder.set_width(width);
    encoder.set_height(height);
    encoder.set_format(Pixel::YUV420P);
    encoder.set_time_base(Rational::new(1, 90_000));
    let plausible = |r: &Rational| (1.0..=240.0).contains(&f64::from(*r));
    encoder.set_frame_rate(Some(
        frame_rate
            .filter(plausible)
            .unwrap_or(Rational::new(FALLBACK_FRAME_RATE, 1)),
    ));
    encoder.set_max_b_frames(0);
    let mut options = Dictionary::new();
    for (key, value) in X264_OPTIONS {
        options.set(key, value);
    }
    options.set("crf", &Transcoder::CRF.to_string());
    encoder.open_as_with(found, options).map_err(failed)
}

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid, exclusive pointer;
    // CLOCK_THREAD_CPUTIME_ID is the calling thread's CPU-time clock.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return None;
    }
    Some(Duration::new(
        u64::try_from(ts.tv_sec).ok()?,
        u32::try_from(ts.tv_nsec).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(pts_90k: i64, is_key: bool) -> Unit {
        Unit {
            data: Bytes::new(),
            pts_90k,
            is_key,
            received_at: Timestamp::UNIX_EPOCH,
        }
    }

    fn taken(work: Work) -> (i64, bool) {
        match work {
            Work::Unit { unit, gap } => (unit.pts_90k, gap),
            _ => panic!("expected a unit"),
        }
    }

    #[test]
    fn a_full_queue_drops_the_oldest_counts_it_and_flags_the_gap_once() {
        let q = Shared::new(3);
        for pts in 0..5 {
            q.push(unit(pts, pts == 0));
        }
        let stats = q.counters.snapshot();
        assert_eq!((stats.units_in, stats.dropped_queue_full), (5, 2));
        assert_eq!(taken(q.next()), (2, true), "oldest dropped, gap reported");
        assert_eq!(taken(q.next()), (3, false), "the gap is reported once");
    }

    #[test]
    fn a_new_stream_comes_first_and_discards_what_the_old_one_queued() {
        let q = Shared::new(8);
        q.push(unit(0, true));
        q.push(unit(1, false));
        q.start(VideoCodec::H265);
        q.push(unit(100, true));
        assert!(matches!(q.next(), Work::Start(VideoCodec::H265)));
        assert_eq!(taken(q.next()), (100, false));
        assert_eq!(q.counters.snapshot().dropped_awaiting_key_frame, 2);
    }

    #[test]
    fn finish_comes_after_the_queue_stop_before_it_and_later_pushes_are_ignored() {
        let q = Shared::new(8);
        q.push(unit(0, true));
        q.end(End::Finish);
        q.push(unit(1, false));
        assert_eq!(taken(q.next()), (0, false));
        assert!(matches!(q.next(), Work::Finish));
        assert_eq!(q.counters.snapshot().units_in, 1);

        let q = Shared::new(8);
        q.push(unit(0, true));
        q.end(End::Finish);
        q.end(End::Stop);
        assert!(matches!(q.next(), Work::Stop), "a stop overrides a finish");
    }
}
