//! The transcoder on real FFmpeg: H.265 made by the ffmpeg CLI goes in unit by unit, H.264
//! comes out unit for unit with the input's timestamps and key frames, and the ffmpeg CLI
//! decodes the result. Full queues, garbage and new streams are survived.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use xl_core::camera::VideoCodec;
use xl_core::frame::{AccessUnit, AccessUnitSink};
use xl_decode::{TranscodeStats, Transcoder};

/// Key frame interval of the test streams.
const GOP: usize = 10;
/// Guards waits on the transcoder thread against a hang (never reached when it works).
const HANG: Duration = Duration::from_secs(60);

/// What the output saw, in order.
#[derive(Debug)]
enum Event {
    Started(VideoCodec),
    Unit(AccessUnit),
}

/// Collects the output. With a gate, the first `push` waits until the test opens it: a
/// transcoder stuck on its output while its input keeps coming.
#[derive(Default)]
struct Collect {
    events: Mutex<Vec<Event>>,
    gate: Option<Gate>,
}

#[derive(Default)]
struct Gate {
    /// (a push is waiting at the gate, the gate is open)
    state: Mutex<(bool, bool)>,
    cv: Condvar,
}

impl Gate {
    fn pass(&self) {
        let mut s = self.state.lock().unwrap();
        s.0 = true;
        self.cv.notify_all();
        while !s.1 {
            s = self.cv.wait(s).unwrap();
        }
    }

    fn wait_for_a_push(&self) {
        let s = self.state.lock().unwrap();
        let (s, _) = self.cv.wait_timeout_while(s, HANG, |s| !s.0).unwrap();
        assert!(s.0, "the transcoder never pushed");
    }

    fn open(&self) {
        self.state.lock().unwrap().1 = true;
        self.cv.notify_all();
    }
}

impl Collect {
    fn gated() -> Self {
        Collect {
            gate: Some(Gate::default()),
            ..Collect::default()
        }
    }

    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }

    fn units(events: &[Event]) -> Vec<&AccessUnit> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Unit(u) => Some(u),
                Event::Started(_) => None,
            })
            .collect()
    }
}

impl AccessUnitSink for Collect {
    fn stream_started(&self, codec: VideoCodec) {
        self.events.lock().unwrap().push(Event::Started(codec));
    }

    fn push(&self, au: AccessUnit) {
        self.events.lock().unwrap().push(Event::Unit(au));
        if let Some(gate) = &self.gate {
            gate.pass();
        }
    }
}

/// A directory of this test's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("xl-transcode-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("running ffmpeg (is the ffmpeg CLI installed?)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `frames` frames of a moving 640x360 test pattern at 10 fps in `codec`, as a camera sends
/// them: closed GOPs of [`GOP`] frames, no B-frames, parameter sets on every key frame; split
/// into access units. Unit `i` has pts `9000 * i` and was received `i` seconds after 1.7e9.
fn camera_units(codec: VideoCodec, frames: usize) -> Vec<AccessUnit> {
    let dir = TempDir::new(&format!("{codec}-{frames}"));
    let path = dir.0.join("stream");
    let frames_arg = frames.to_string();
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=10",
        "-frames:v",
        &frames_arg,
        "-pix_fmt",
        "yuv420p",
    ];
    let x265 = format!(
        "log-level=error:keyint={GOP}:min-keyint={GOP}:bframes=0:open-gop=0:scenecut=0:repeat-headers=1:frame-threads=1"
    );
    let gop = GOP.to_string();
    match codec {
        VideoCodec::H265 => args.extend([
            "-c:v",
            "libx265",
            "-x265-params",
            &x265,
            "-bsf:v",
            "hevc_metadata=aud=insert",
            "-f",
            "hevc",
        ]),
        VideoCodec::H264 => args.extend([
            "-c:v",
            "libx264",
            "-bf",
            "0",
            "-g",
            &gop,
            "-keyint_min",
            &gop,
            "-sc_threshold",
            "0",
            "-x264-params",
            "repeat-headers=1:open-gop=0:threads=1",
            "-bsf:v",
            "h264_metadata=aud=insert",
            "-f",
            "h264",
        ]),
    }
    args.push(path.to_str().unwrap());
    ffmpeg(&args);
    let units = split_at_auds(codec, &std::fs::read(&path).unwrap());
    assert_eq!(units.len(), frames, "one access unit per frame");
    units
}

/// The NAL units of an Annex B stream: (offset of its start code, offset of its header).
fn nal_offsets(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            let sc = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
            out.push((sc, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    out
}

fn nal_type(codec: VideoCodec, header: u8) -> u8 {
    match codec {
        VideoCodec::H264 => header & 0x1f,
        VideoCodec::H265 => (header >> 1) & 0x3f,
    }
}

fn nal_types(codec: VideoCodec, data: &[u8]) -> Vec<u8> {
    nal_offsets(data)
        .into_iter()
        .filter_map(|(_, h)| data.get(h).map(|&b| nal_type(codec, b)))
        .collect()
}

/// Splits an Annex B stream into access units at its access unit delimiters (H.264 type 9,
/// H.265 type 35); a unit is a key frame when it holds an IDR (H.264 5) or IRAP (H.265 16-23).
fn split_at_auds(codec: VideoCodec, data: &[u8]) -> Vec<AccessUnit> {
    let aud = match codec {
        VideoCodec::H264 => 9,
        VideoCodec::H265 => 35,
    };
    let mut starts: Vec<usize> = nal_offsets(data)
        .into_iter()
        .filter(|&(_, h)| data.get(h).is_some_and(|&b| nal_type(codec, b) == aud))
        .map(|(sc, _)| sc)
        .collect();
    starts.push(data.len());
    starts
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let bytes = &data[w[0]..w[1]];
            let is_key = nal_types(codec, bytes).iter().any(|&t| match codec {
                VideoCodec::H264 => t == 5,
                VideoCodec::H265 => (16..=23).contains(&t),
            });
            AccessUnit {
                data: Bytes::copy_from_slice(bytes),
                pts_90k: 9000 * i as i64,
                is_key,
                received_at: Timestamp::from_second(1_700_000_000 + i as i64).unwrap(),
            }
        })
        .collect()
}

/// Checks an output unit's NAL units: SPS (7) and PPS (8) before the IDR slice (5) of a key
/// frame; non-IDR slices (1) and no IDR otherwise.
fn assert_h264_unit(au: &AccessUnit) {
    let types = nal_types(VideoCodec::H264, &au.data);
    let at = |t: u8| types.iter().position(|&x| x == t);
    if au.is_key {
        let (sps, pps, idr) = (at(7), at(8), at(5));
        assert!(
            sps.is_some() && pps.is_some() && idr.is_some() && sps < idr && pps < idr,
            "key frame at {} has NAL types {types:?}",
            au.pts_90k
        );
    } else {
        assert!(
            at(1).is_some() && at(5).is_none(),
            "non-key frame at {} has NAL types {types:?}",
            au.pts_90k
        );
    }
}

/// What `ffprobe -count_frames` says of an H.264 elementary stream.
fn ffprobe(units: &[&AccessUnit], dir: &Path) -> HashMap<String, String> {
    let path = dir.join("out.h264");
    let bytes: Vec<u8> = units.iter().flat_map(|u| u.data.iter().copied()).collect();
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,profile,width,height,nb_read_frames",
        ])
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(&path)
        .output()
        .expect("running ffprobe");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Pushes `units` without losing any: waits while the queue is full, as a producer pacing
/// itself on the transcoder would (a live stream never waits; these tests check what comes
/// out). Then waits until the transcoder has taken the last of them.
fn feed(t: &Transcoder, units: &[AccessUnit]) {
    let wait_while = |full: &dyn Fn(usize) -> bool| {
        let deadline = std::time::Instant::now() + HANG;
        while full(t.queued()) {
            assert!(
                std::time::Instant::now() < deadline,
                "the transcoder is stuck"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    for au in units {
        wait_while(&|queued| queued >= Transcoder::QUEUE_UNITS);
        t.push(au.clone());
    }
    wait_while(&|queued| queued > 0);
}

fn pts_of(units: &[&AccessUnit]) -> Vec<i64> {
    units.iter().map(|u| u.pts_90k).collect()
}

fn key_pts(units: &[&AccessUnit]) -> Vec<i64> {
    units
        .iter()
        .filter(|u| u.is_key)
        .map(|u| u.pts_90k)
        .collect()
}

#[test]
fn an_h265_stream_comes_out_as_h264_unit_for_unit_with_the_inputs_key_frames_and_times() {
    let input = camera_units(VideoCodec::H265, 40);
    assert_eq!(
        key_pts(&input.iter().collect::<Vec<_>>()),
        [0, 90_000, 180_000, 270_000]
    );
    let sink = Arc::new(Collect::default());
    let t = Transcoder::start("test h265", sink.clone()).unwrap();
    t.stream_started(VideoCodec::H265);
    // No delay: each unit comes out before the next goes in (nothing waits in FFmpeg for a
    // later unit, so nothing is left for the flush at the end).
    for (i, au) in input.iter().enumerate() {
        t.push(au.clone());
        let deadline = std::time::Instant::now() + HANG;
        while sink.events.lock().unwrap().len() < 2 + i {
            assert!(
                std::time::Instant::now() < deadline,
                "unit {i} did not come out"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    t.finish();

    let events = sink.take();
    assert!(
        matches!(events.first(), Some(Event::Started(VideoCodec::H264))),
        "the output stream is announced first: {:?}",
        events.first()
    );
    assert_eq!(
        events.len(),
        1 + input.len(),
        "one announcement, then units only"
    );
    let out = Collect::units(&events);
    assert_eq!(pts_of(&out), pts_of(&input.iter().collect::<Vec<_>>()));
    for (o, i) in out.iter().zip(&input) {
        assert_eq!(
            o.is_key, i.is_key,
            "key frames where the input has them, at {}",
            i.pts_90k
        );
        assert_eq!(o.received_at, i.received_at, "receipt time carried over");
        assert_h264_unit(o);
    }
    let stats = t.stats();
    assert_eq!(
        TranscodeStats {
            cpu_time: Duration::ZERO,
            ..stats
        },
        TranscodeStats {
            units_in: 40,
            units_out: 40,
            ..TranscodeStats::default()
        }
    );
    assert!(
        stats.cpu_time > Duration::ZERO,
        "the thread's CPU time is read"
    );

    let dir = TempDir::new("probe");
    let probe = ffprobe(&out, &dir.0);
    assert_eq!(probe["codec_name"], "h264");
    assert_eq!(probe["profile"], "Constrained Baseline");
    assert_eq!(
        (probe["width"].as_str(), probe["height"].as_str()),
        ("640", "360")
    );
    assert_eq!(probe["nb_read_frames"], "40");
}

#[test]
fn a_full_queue_drops_the_oldest_and_the_copy_resumes_at_the_next_key_frame() {
    let input = camera_units(VideoCodec::H265, 36);
    let sink = Arc::new(Collect::gated());
    let t = Transcoder::start("test full", sink.clone()).unwrap();
    t.stream_started(VideoCodec::H265);
    t.push(input[0].clone());
    let gate = sink.gate.as_ref().unwrap();
    // The transcoder is stuck handing over unit 0 while 35 more arrive: the queue keeps the
    // newest 8 (28..=35); 28 and 29 are no key frames, 30 is.
    gate.wait_for_a_push();
    for au in &input[1..] {
        t.push(au.clone());
    }
    gate.open();
    t.finish();

    let stats = t.stats();
    let queued = Transcoder::QUEUE_UNITS as u64;
    assert_eq!(stats.units_in, 36);
    assert_eq!(stats.dropped_queue_full, 35 - queued);
    assert_eq!(stats.dropped_awaiting_key_frame, 2);
    assert_eq!(stats.units_out, 7);
    let events = sink.take();
    let out = Collect::units(&events);
    assert_eq!(pts_of(&out), [0, 30, 31, 32, 33, 34, 35].map(|i| i * 9000));
    assert_eq!(key_pts(&out), [0, 30 * 9000]);
    out.iter().for_each(|u| assert_h264_unit(u));
    let dir = TempDir::new("full");
    assert_eq!(ffprobe(&out, &dir.0)["nb_read_frames"], "7");
}

#[test]
fn a_garbage_unit_is_a_decode_error_and_the_copy_resumes_at_the_next_key_frame() {
    let mut input = camera_units(VideoCodec::H265, 40);
    // Noise without a zero byte (so without a start code), deterministic.
    let mut x = 0x2545_f491_u32;
    let garbage: Vec<u8> = (0..4000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as u8).max(1)
        })
        .collect();
    input[15].data = Bytes::from(garbage);
    let sink = Arc::new(Collect::default());
    let t = Transcoder::start("test garbage", sink.clone()).unwrap();
    t.stream_started(VideoCodec::H265);
    feed(&t, &input);
    t.finish();

    let stats = t.stats();
    assert_eq!(stats.decode_errors, 1);
    assert_eq!(stats.dropped_awaiting_key_frame, 4, "16..=19 wait for 20");
    assert_eq!(stats.units_out, 35);
    let events = sink.take();
    let out = Collect::units(&events);
    let expected: Vec<i64> = (0..40)
        .filter(|i| !(15..20).contains(i))
        .map(|i| i * 9000)
        .collect();
    assert_eq!(pts_of(&out), expected);
    assert_eq!(key_pts(&out), [0, 10, 20, 30].map(|i| i * 9000));
    out.iter().for_each(|u| assert_h264_unit(u));
    let dir = TempDir::new("garbage");
    assert_eq!(ffprobe(&out, &dir.0)["nb_read_frames"], "35");
}

#[test]
fn a_new_stream_starts_a_new_copy_even_in_another_codec() {
    let first = camera_units(VideoCodec::H265, 20);
    let second = camera_units(VideoCodec::H264, 20);
    let sink = Arc::new(Collect::default());
    let t = Transcoder::start("test reconnect", sink.clone()).unwrap();
    t.stream_started(VideoCodec::H265);
    // (feed returns when the queue is empty: a new stream discards what the old one queued)
    feed(&t, &first);
    // A reconnect: the camera now sends H.264, its clock starting again at 0.
    t.stream_started(VideoCodec::H264);
    feed(&t, &second);
    t.finish();

    let events = sink.take();
    let starts: Vec<usize> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| matches!(e, Event::Started(VideoCodec::H264)).then_some(i))
        .collect();
    assert_eq!(
        starts,
        [0, 21],
        "each input stream's copy is announced before its units"
    );
    for (events, input) in [(&events[1..21], &first), (&events[22..], &second)] {
        let out = Collect::units(events);
        assert_eq!(pts_of(&out), pts_of(&input.iter().collect::<Vec<_>>()));
        assert_eq!(key_pts(&out), [0, 90_000]);
        out.iter().for_each(|u| assert_h264_unit(u));
    }
    assert_eq!(t.stats().units_out, 40);
}

#[test]
fn dropping_a_transcoder_ends_its_thread_and_lets_go_of_the_output() {
    let input = camera_units(VideoCodec::H265, 20);
    let sink = Arc::new(Collect::default());
    let t = Transcoder::start("test drop", sink.clone()).unwrap();
    t.stream_started(VideoCodec::H265);
    feed(&t, &input);
    drop(t);
    assert_eq!(
        Arc::strong_count(&sink),
        1,
        "the thread has ended and dropped its handle on the output"
    );
    let events = sink.take();
    let out = Collect::units(&events);
    let input_pts = pts_of(&input.iter().collect::<Vec<_>>());
    assert!(
        pts_of(&out).iter().zip(&input_pts).all(|(o, i)| o == i),
        "whatever came out before the stop is a prefix of the input"
    );
}

/// CPU time of one child process, from `wait4`.
#[allow(
    clippy::zombie_processes,
    reason = "reaped by wait4, which also gives its CPU time"
)]
fn child_cpu_time(mut cmd: Command) -> Duration {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("running ffmpeg");
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child, which
    // std has not reaped (we never call wait on it).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child; status and usage are valid, exclusive pointers.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    let tv =
        |t: libc::timeval| Duration::from_micros(t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Not a check but a measurement (figures for the issue, no timing assertions):
/// `cargo test --locked -p xl-decode --test transcode -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn transcoding_cost_next_to_the_ffmpeg_cli() {
    let clip = xl_testkit::test_clip(xl_testkit::H265_360P).unwrap();
    let dir = TempDir::new("cost");
    let with_auds = dir.0.join("clip.hevc");
    let (clip_arg, auds_arg) = (clip.to_str().unwrap(), with_auds.to_str().unwrap());
    ffmpeg(&[
        "-i",
        clip_arg,
        "-c",
        "copy",
        "-bsf:v",
        "hevc_metadata=aud=insert",
        "-f",
        "hevc",
        auds_arg,
    ]);
    let input = split_at_auds(VideoCodec::H265, &std::fs::read(&with_auds).unwrap());
    let seconds = input.len() as f64 / f64::from(xl_testkit::CLIP_FPS);

    let sink = Arc::new(Collect::default());
    let t = Transcoder::start("cost", sink.clone()).unwrap();
    t.stream_started(VideoCodec::H265);
    feed(&t, &input);
    t.finish();
    let stats = t.stats();
    assert_eq!(stats.units_out, input.len() as u64, "{stats:?}");
    let out_bytes: usize = Collect::units(&sink.take())
        .iter()
        .map(|u| u.data.len())
        .sum();
    let ours = stats.cpu_time.as_secs_f64();

    let crf = Transcoder::CRF.to_string();
    let cli = |threads: Option<&str>| {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error"]);
        if let Some(n) = threads {
            cmd.args(["-threads", n]);
        }
        cmd.args([
            "-r",
            "10",
            "-i",
            clip_arg,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ]);
        cmd.args(["-tune", "zerolatency", "-crf", &crf]);
        if let Some(n) = threads {
            cmd.args(["-threads", n]);
        }
        cmd.args(["-f", "null", "-"]);
        child_cpu_time(cmd).as_secs_f64()
    };
    let cli_auto = cli(None);
    let cli_one = cli(Some("1"));

    println!(
        "{} frames ({seconds:.1} s of 640x360 10 fps H.265 -> H.264, CRF {crf}): \
         output {:.0} kbit/s",
        input.len(),
        out_bytes as f64 * 8.0 / seconds / 1000.0
    );
    println!(
        "transcoder thread: {:.3} s CPU = {:.2}% of a core per stream ({:.2} ms a frame)",
        ours,
        100.0 * ours / seconds,
        1000.0 * ours / input.len() as f64
    );
    println!(
        "ffmpeg CLI (threads auto): {:.3} s CPU = {:.2}% of a core; ours / CLI = {:.2}",
        cli_auto,
        100.0 * cli_auto / seconds,
        ours / cli_auto
    );
    println!(
        "ffmpeg CLI (-threads 1):   {:.3} s CPU = {:.2}% of a core; ours / CLI = {:.2}",
        cli_one,
        100.0 * cli_one / seconds,
        ours / cli_one
    );
}
