//! The recorder against real camera-like clips and FFmpeg, an independent reader: access units
//! of xl-testkit's clips (10 fps, a key frame every 2 s) are fed with pts 9000 x i and receipt
//! times 100 ms apart on a made-up clock (no sleeping); every segment must pass `ffprobe -v
//! error` silently with the right frame count, the events must describe the files, and the
//! segments of a session appended after one init segment must decode to the clip's frames.
//!
//! Needs the `ffmpeg` and `ffprobe` CLIs and the test clips (scripts/setup); fails without.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, ensure};
use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use xl_core::camera::VideoCodec;
use xl_core::frame::{AccessUnit, AccessUnitSink};
use xl_core::ids::CameraId;
use xl_core::live::StreamKind;
use xl_record::{
    EventSink, RecordError, RecordStats, Recorder, RecorderConfig, Repaired, Segment, SegmentEvent,
    repair,
};
use xl_testkit::{ClipAccessUnit, TempDir};

mod common;
use common::{decode_complaints, path_str, run_tool};

/// One frame at 10 fps, on the 90 kHz clock and on the wall clock.
const FRAME_90K: i64 = 9_000;
const FRAME: SignedDuration = SignedDuration::from_millis(100);
/// How long a test waits for an event the writer thread must send.
const EVENT_WAIT: Duration = Duration::from_secs(60);

#[test]
fn thirty_five_seconds_at_a_ten_second_target_make_four_segments_cut_at_key_frames()
-> anyhow::Result<()> {
    for (clip_name, codec) in [
        (xl_testkit::H264_360P, VideoCodec::H264),
        (xl_testkit::H265_360P, VideoCodec::H265),
    ] {
        let clip = clip(codec, clip_name)?;
        let rig = Rig::start(&format!("four-{codec}"), 10, |_| {})?;
        rig.recorder.stream_started(codec);
        for i in 0..350 {
            rig.recorder
                .push(unit(&clip, i, i as i64 * FRAME_90K, at(i)));
        }
        rig.recorder.stop();
        let segments = rig.closed_segments()?;
        ensure!(segments.len() == 4, "{codec}: {segments:#?}");

        let frames = [100, 100, 100, 50];
        for (k, s) in segments.iter().enumerate() {
            let what = format!("{codec} segment {k}");
            assert_eq!(s.start_at, at(100 * k), "{what}");
            assert_eq!(s.media_start_90k, 100 * k as u64 * 9_000, "{what}");
            let end = s.end_at.context("closed without end_at")?;
            // Each ends where the next starts, to the frame; the last 100 ms after its last
            // frame arrived.
            let next_start = segments.get(k + 1).map_or(at(350), |n| n.start_at);
            assert!(
                (end.duration_since(next_start)).abs() < FRAME,
                "{what}: ends {end}, next starts {next_start}"
            );
            assert_eq!(
                s.media_end_90k,
                Some(s.media_start_90k + frames[k] * 9_000),
                "{what}"
            );
            assert_eq!((s.codec, s.width, s.height), (codec, 640, 360), "{what}");
            assert_eq!(
                s.fragments,
                frames[k].div_ceil(20),
                "{what}: one fragment a GOP"
            );
            let expected_path = format!(
                "recordings/cam-rec/main/{}/{}.mp4",
                s.start_at.strftime("%Y-%m-%d"),
                s.start_at.as_millisecond()
            );
            assert_eq!(s.path, expected_path, "{what}");
            let file = rig.dir.path.join(&s.path);
            assert_eq!(std::fs::metadata(&file)?.len(), s.bytes, "{what}");
            assert_eq!(ffprobe_complaints(&file)?, "", "{what}");
            assert_eq!(count_frames(&file)?, frames[k], "{what}");
            let packets = packets(&file)?;
            assert!(packets[0].1, "{what} starts at a key frame");
        }

        // A download: the first segment's init segment, then every segment's fragments.
        let mut joined = Vec::new();
        for (k, s) in segments.iter().enumerate() {
            let data = std::fs::read(rig.dir.path.join(&s.path))?;
            let first_moof = init_len(&data)?;
            joined.extend_from_slice(if k == 0 { &data } else { &data[first_moof..] });
        }
        let joined_path = rig.dir.path.join("joined.mp4");
        std::fs::write(&joined_path, &joined)?;
        assert_eq!(ffprobe_complaints(&joined_path)?, "", "{codec}");
        assert_eq!(count_frames(&joined_path)?, 350, "{codec}");
        let pts: Vec<i64> = packets(&joined_path)?.into_iter().map(|p| p.0).collect();
        let want: Vec<i64> = (0..350).map(|i| i * FRAME_90K).collect();
        assert_eq!(pts, want, "{codec}: one timeline across the segments");
        assert_eq!(decode_complaints(&joined_path)?, "", "{codec}");
        let raw_format = if codec == VideoCodec::H264 {
            "h264"
        } else {
            "hevc"
        };
        let raw = xl_testkit::test_clip(clip_name)?;
        let want = frame_md5s(&["-f", raw_format, "-i", path_str(&raw)?, "-frames:v", "350"])?;
        let got = frame_md5s(&["-i", path_str(&joined_path)?])?;
        assert_eq!(want.len(), 350);
        assert!(
            got == want,
            "{codec}: decoded frames differ from the clip's"
        );

        let stats = &rig.stats;
        assert_eq!(stats.units_in.load(Ordering::Relaxed), 350);
        assert_eq!(stats.dropped(), 0);
        assert_eq!(stats.segments_opened.load(Ordering::Relaxed), 4);
        assert_eq!(stats.segments_closed.load(Ordering::Relaxed), 4);
        assert_eq!(
            stats.bytes_written.load(Ordering::Relaxed),
            segments.iter().map(|s| s.bytes).sum::<u64>()
        );
        assert_eq!(stats.write_errors.load(Ordering::Relaxed), 0);
    }
    Ok(())
}

#[test]
fn a_new_stream_cuts_the_segment_and_restarts_the_media_timeline() -> anyhow::Result<()> {
    let clip = clip(VideoCodec::H264, xl_testkit::H264_360P)?;
    let rig = Rig::start("restart", 60, |_| {})?;
    rig.recorder.stream_started(VideoCodec::H264);
    for i in 0..50 {
        rig.recorder
            .push(unit(&clip, i, i as i64 * FRAME_90K, at(i)));
    }
    // The camera reconnects 1 s later with its clock elsewhere: what comes before the new
    // stream's key frame is dropped.
    rig.recorder.stream_started(VideoCodec::H264);
    for i in 45..50 {
        rig.recorder.push(unit(&clip, i, 0, at(60)));
    }
    for j in 0..50 {
        let pts = 7_777_777 + j as i64 * FRAME_90K;
        rig.recorder.push(unit(&clip, 60 + j, pts, at(60 + j)));
    }
    let Rig {
        dir,
        recorder,
        events,
        stats,
    } = rig;
    drop(recorder); // closes the open segment, as stop() does
    let events: Vec<_> = events.try_iter().collect();
    let kinds: Vec<_> = events.iter().map(kind).collect();
    assert_eq!(kinds, ["opened", "closed", "opened", "closed"]);
    let segments = closed(events);
    let (a, b) = (&segments[0], &segments[1]);
    assert_eq!((a.start_at, a.end_at), (at(0), Some(at(50))));
    assert_eq!((a.media_start_90k, a.media_end_90k), (0, Some(50 * 9_000)));
    assert_eq!((b.start_at, b.end_at), (at(60), Some(at(110))));
    assert_eq!((b.media_start_90k, b.media_end_90k), (0, Some(50 * 9_000)));
    for s in [a, b] {
        let file = dir.path.join(&s.path);
        assert_eq!(ffprobe_complaints(&file)?, "");
        assert_eq!(count_frames(&file)?, 50);
    }
    assert_eq!(stats.dropped_awaiting_key.load(Ordering::Relaxed), 5);
    Ok(())
}

#[test]
fn a_key_frame_with_new_parameter_sets_cuts_the_segment_and_changes_its_size() -> anyhow::Result<()>
{
    // The camera's resolution changed without a reconnect: 360p, then 720p on the same clock.
    let small = clip(VideoCodec::H264, xl_testkit::H264_360P)?;
    let large = clip(VideoCodec::H264, xl_testkit::H264_720P)?;
    let rig = Rig::start("new-size", 60, |_| {})?;
    rig.recorder.stream_started(VideoCodec::H264);
    for i in 0..40 {
        rig.recorder
            .push(unit(&small, i, i as i64 * FRAME_90K, at(i)));
    }
    for j in 0..40 {
        let i = 40 + j;
        rig.recorder
            .push(unit(&large, j, i as i64 * FRAME_90K, at(i)));
    }
    rig.recorder.stop();
    let segments = rig.closed_segments()?;
    assert_eq!(segments.len(), 2, "{segments:#?}");
    let sizes: Vec<_> = segments.iter().map(|s| (s.width, s.height)).collect();
    assert_eq!(sizes, [(640, 360), (1280, 720)]);
    assert_eq!(segments[0].end_at, Some(segments[1].start_at));
    assert_eq!(
        segments[1].media_start_90k, 0,
        "a new init segment, a new timeline"
    );
    for s in &segments {
        assert_eq!(count_frames(&rig.dir.path.join(&s.path))?, 40, "{}", s.path);
    }
    assert_eq!(rig.stats.dropped(), 0);
    Ok(())
}

#[test]
fn a_pause_in_arrival_over_two_seconds_cuts_the_segment_and_a_shorter_one_does_not()
-> anyhow::Result<()> {
    let clip = clip(VideoCodec::H264, xl_testkit::H264_360P)?;
    let rig = Rig::start("pause", 60, |_| {})?;
    rig.recorder.stream_started(VideoCodec::H264);
    // Frames 40..60 arrive 1.5 s late, frames 60..100 20 s late (the camera stalled); the
    // pts run on as the camera sent them.
    let arrival = |i: usize| match i {
        0..40 => at(i),
        40..60 => at(i + 15),
        _ => at(i + 200),
    };
    for i in 0..100 {
        rig.recorder
            .push(unit(&clip, i, i as i64 * FRAME_90K, arrival(i)));
    }
    rig.recorder.stop();
    let segments = rig.closed_segments()?;
    assert_eq!(segments.len(), 2, "{segments:#?}");
    let (a, b) = (&segments[0], &segments[1]);
    assert_eq!((a.start_at, a.end_at), (at(0), Some(at(75))));
    assert_eq!((b.start_at, b.end_at), (at(260), Some(at(300))));
    assert_eq!(b.media_start_90k, 0, "a new timeline after the gap");
    assert_eq!(count_frames(&rig.dir.path.join(&a.path))?, 60);
    assert_eq!(count_frames(&rig.dir.path.join(&b.path))?, 40);
    Ok(())
}

#[test]
fn a_writer_that_falls_behind_drops_whole_groups_and_its_files_still_decode() -> anyhow::Result<()>
{
    let clip = clip(VideoCodec::H264, xl_testkit::H264_360P)?;
    // The first Opened event blocks the writer until the test lets it go: meanwhile the queue
    // (30 units) overflows.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let rig = Rig::start_with("behind", 60, 30, move |kind| {
        if kind == "opened" {
            let _ = release_rx.lock().unwrap().recv();
        }
    })?;
    rig.recorder.stream_started(VideoCodec::H264);
    rig.recorder.push(unit(&clip, 0, 0, at(0)));
    let first = rig.events.recv_timeout(EVENT_WAIT)?;
    assert_eq!(kind(&first), "opened");
    for i in 1..200 {
        rig.recorder
            .push(unit(&clip, i, i as i64 * FRAME_90K, at(i)));
    }
    drop(release_tx);
    rig.recorder.stop();
    let events: Vec<_> = std::iter::once(first)
        .chain(rig.events.try_iter())
        .collect();
    let kinds: Vec<_> = events.iter().map(kind).collect();
    assert!(!kinds.contains(&"failed"), "{kinds:?}");
    let mut frames = 0;
    for s in closed(events) {
        let file = rig.dir.path.join(&s.path);
        assert_eq!(ffprobe_complaints(&file)?, "", "{}", s.path);
        assert_eq!(decode_complaints(&file)?, "", "{}", s.path);
        frames += count_frames(&file)?;
    }
    // The writer was one unit in when it stalled: at most the queue's 30 and that one are left.
    let stats = &rig.stats;
    let dropped = stats.dropped_queue_full.load(Ordering::Relaxed);
    assert!(dropped >= 200 - 31, "dropped {dropped}");
    assert_eq!(stats.dropped(), dropped);
    assert_eq!(frames + dropped, 200);
    Ok(())
}

#[test]
fn a_segment_torn_anywhere_in_its_last_fragment_is_repaired_to_the_fragments_before()
-> anyhow::Result<()> {
    let clip = clip(VideoCodec::H264, xl_testkit::H264_360P)?;
    let rig = Rig::start("repair", 60, |_| {})?;
    rig.recorder.stream_started(VideoCodec::H264);
    for i in 0..60 {
        rig.recorder
            .push(unit(&clip, i, i as i64 * FRAME_90K, at(i)));
    }
    rig.recorder.stop();
    let segments = rig.closed_segments()?;
    let data = std::fs::read(rig.dir.path.join(&segments[0].path))?;
    let fragments = fragment_starts(&data)?;
    assert_eq!(fragments.len(), 3);

    // Whole: kept as it is.
    let whole = rig.dir.path.join("whole.mp4");
    std::fs::write(&whole, &data)?;
    assert_eq!(
        repair(&whole)?,
        Repaired::Kept {
            bytes: data.len() as u64,
            truncated_bytes: 0,
            fragments: 3,
            samples: 60,
            media_start_90k: 0,
            media_end_90k: 60 * 9_000,
        }
    );

    // Torn in its last fragment: every byte of the moof and the mdat header, then a sample of
    // the mdat.
    let last = fragments[2];
    let offsets: Vec<usize> = (last..last + 200)
        .chain((last + 200..data.len()).step_by(211))
        .chain(data.len() - 3..data.len())
        .collect();
    let torn = rig.dir.path.join("torn.mp4");
    for (n, &cut) in offsets.iter().enumerate() {
        std::fs::write(&torn, &data[..cut])?;
        let repaired = repair(&torn)?;
        assert_eq!(
            repaired,
            Repaired::Kept {
                bytes: last as u64,
                truncated_bytes: (cut - last) as u64,
                fragments: 2,
                samples: 40,
                media_start_90k: 0,
                media_end_90k: 40 * 9_000,
            },
            "cut at {cut}"
        );
        assert!(std::fs::read(&torn)? == data[..last], "cut at {cut}");
        if n % 40 == 0 {
            assert_eq!(ffprobe_complaints(&torn)?, "", "cut at {cut}");
            assert_eq!(count_frames(&torn)?, 40, "cut at {cut}");
        }
    }

    // Only the init segment, or part of the first fragment: nothing to keep.
    for cut in [fragments[0], fragments[0] + 100, fragments[1] - 1] {
        std::fs::write(&torn, &data[..cut])?;
        assert_eq!(repair(&torn)?, Repaired::Empty, "cut at {cut}");
    }
    // Not a segment at all: an error, the file untouched.
    let garbage = rig.dir.path.join("garbage.mp4");
    for bytes in [
        b"GIF89a, or anything else that is not an MP4".to_vec(),
        std::fs::read(xl_testkit::test_clip(xl_testkit::H264_360P)?)?[..100_000].to_vec(),
        data[fragments[0]..].to_vec(),
    ] {
        std::fs::write(&garbage, &bytes)?;
        let err = repair(&garbage).unwrap_err();
        assert!(matches!(err, RecordError::NotSegment { .. }), "{err}");
        assert_eq!(err.kind(), xl_core::ErrorKind::InvalidInput);
        assert!(std::fs::read(&garbage)? == bytes);
    }
    Ok(())
}

#[test]
fn a_write_error_stops_the_recorder_with_one_failed_event() -> anyhow::Result<()> {
    let clip = clip(VideoCodec::H264, xl_testkit::H264_360P)?;
    // The first segment starts 5 s before midnight (UTC); the next day's directory cannot be
    // made: a file is in its way.
    let midnight: Timestamp = "2025-06-02T00:00:00Z".parse()?;
    let t0 = midnight - SignedDuration::from_secs(5);
    let rig = Rig::start("write-error", 10, |_| {})?;
    let day2 = rig.dir.path.join("recordings/cam-rec/main/2025-06-02");
    std::fs::create_dir_all(day2.parent().context("a parent")?)?;
    std::fs::write(&day2, b"in the way")?;
    rig.recorder.stream_started(VideoCodec::H264);
    let at = |i: usize| t0 + FRAME * i as i32;
    for i in 0..150 {
        rig.recorder
            .push(unit(&clip, i, i as i64 * FRAME_90K, at(i)));
    }
    let mut events = Vec::new();
    while events.len() < 3 {
        events.push(rig.events.recv_timeout(EVENT_WAIT)?);
    }
    let kinds: Vec<_> = events.iter().map(kind).collect();
    assert_eq!(kinds, ["opened", "closed", "failed"]);
    let SegmentEvent::Failed {
        camera,
        stream,
        error,
        open,
    } = &events[2]
    else {
        unreachable!()
    };
    assert_eq!((camera.as_str(), *stream), ("cam-rec", StreamKind::Main));
    assert!(matches!(error, RecordError::Io { .. }), "{error}");
    assert!(error.to_string().contains("2025-06-02"), "{error}");
    assert!(open.is_none());
    // The day's segment before the error is whole.
    let SegmentEvent::Closed { segment } = &events[1] else {
        unreachable!()
    };
    assert!(segment.path.contains("/2025-06-01/"));
    assert_eq!(count_frames(&rig.dir.path.join(&segment.path))?, 100);

    // Stopped: what comes now is dropped, and nothing more is reported.
    rig.recorder
        .push(unit(&clip, 160, 160 * FRAME_90K, at(160)));
    rig.recorder.stop();
    assert!(!rig.recorder.is_running());
    assert_eq!(rig.events.try_iter().count(), 0);
    let stats = &rig.stats;
    assert_eq!(stats.write_errors.load(Ordering::Relaxed), 1);
    assert!(stats.dropped_stopped.load(Ordering::Relaxed) >= 1);
    assert_eq!(stats.segments_closed.load(Ordering::Relaxed), 1);

    // A data directory where `recordings` is a file: the first segment already fails.
    let rig = Rig::start("no-dir", 10, |_| {})?;
    std::fs::write(rig.dir.path.join("recordings"), b"")?;
    rig.recorder.stream_started(VideoCodec::H264);
    for i in 0..30 {
        rig.recorder
            .push(unit(&clip, i, i as i64 * FRAME_90K, at(i)));
    }
    let failed = rig.events.recv_timeout(EVENT_WAIT)?;
    assert_eq!(kind(&failed), "failed");
    rig.recorder.stop();
    assert_eq!(rig.events.try_iter().count(), 0);
    Ok(())
}

// --- helpers ---

/// A recorder of camera `cam-rec`'s main stream into a scratch data directory, its events in
/// a channel (then `also` is called, on the writer thread, with the event's kind), its own
/// figures.
struct Rig {
    dir: TempDir,
    recorder: Recorder,
    events: Receiver<SegmentEvent>,
    stats: Arc<RecordStats>,
}

impl Rig {
    fn start(
        name: &str,
        segment_secs: u64,
        also: impl Fn(&'static str) + Send + Sync + 'static,
    ) -> anyhow::Result<Rig> {
        // Bounds no test run fills: nothing is dropped however slow the box.
        Rig::start_with(name, segment_secs, 100_000, also)
    }

    fn start_with(
        name: &str,
        segment_secs: u64,
        queue_max_units: usize,
        also: impl Fn(&'static str) + Send + Sync + 'static,
    ) -> anyhow::Result<Rig> {
        let dir = TempDir::new(name)?;
        let (tx, events) = mpsc::channel();
        let tx = Mutex::new(tx);
        let sink: EventSink = Arc::new(move |e| {
            let k = kind(&e);
            let _ = tx.lock().unwrap().send(e);
            also(k);
        });
        let mut config = RecorderConfig::new(
            CameraId::new("cam-rec")?,
            StreamKind::Main,
            &dir.path,
            Duration::from_secs(segment_secs),
        );
        config.queue_max_units = queue_max_units;
        config.queue_max_bytes = 1 << 30;
        let stats = Arc::clone(&config.stats);
        let recorder = Recorder::start(config, sink)?;
        Ok(Rig {
            dir,
            recorder,
            events,
            stats,
        })
    }

    /// After the recorder stopped: the closed segments, checking that each was opened first
    /// and closed before the next opened.
    fn closed_segments(&self) -> anyhow::Result<Vec<Segment>> {
        let events: Vec<_> = self.events.try_iter().collect();
        let kinds: Vec<_> = events.iter().map(kind).collect();
        let want: Vec<_> = (0..kinds.len())
            .map(|i| if i % 2 == 0 { "opened" } else { "closed" })
            .collect();
        ensure!(kinds == want, "events out of order: {kinds:?}");
        Ok(closed(events))
    }
}

fn closed(events: Vec<SegmentEvent>) -> Vec<Segment> {
    events
        .into_iter()
        .filter_map(|e| match e {
            SegmentEvent::Closed { segment } => Some(segment),
            _ => None,
        })
        .collect()
}

fn kind(e: &SegmentEvent) -> &'static str {
    match e {
        SegmentEvent::Opened { .. } => "opened",
        SegmentEvent::Closed { .. } => "closed",
        SegmentEvent::Failed { .. } => "failed",
    }
}

fn clip(codec: VideoCodec, name: &str) -> anyhow::Result<Vec<ClipAccessUnit>> {
    let units = xl_testkit::clip_access_units(codec, &xl_testkit::test_clip(name)?)?;
    for (i, u) in units.iter().enumerate() {
        ensure!(
            u.is_key == (i % xl_testkit::CLIP_GOP_FRAMES as usize == 0),
            "{name}: access unit {i}: key frame {}",
            u.is_key
        );
    }
    Ok(units)
}

/// The clip's `i`th access unit at `pts_90k`, received at `received_at`.
fn unit(clip: &[ClipAccessUnit], i: usize, pts_90k: i64, received_at: Timestamp) -> AccessUnit {
    AccessUnit {
        data: Bytes::copy_from_slice(&clip[i].data),
        pts_90k,
        is_key: clip[i].is_key,
        received_at,
    }
}

/// The made-up clock: `i` frames after 2025-06-01 08:00 UTC.
fn at(i: usize) -> Timestamp {
    let t0: Timestamp = "2025-06-01T08:00:00Z".parse().expect("a timestamp");
    t0 + FRAME * i as i32
}

/// The top-level boxes of an MP4 file: `(type, offset)`, checking that their sizes tile it.
fn top_level_boxes(data: &[u8]) -> anyhow::Result<Vec<([u8; 4], usize)>> {
    let mut boxes = Vec::new();
    let mut at = 0;
    while at < data.len() {
        ensure!(
            data.len() - at >= 8,
            "{} bytes after the last box",
            data.len() - at
        );
        let size = u32::from_be_bytes(data[at..at + 4].try_into()?) as usize;
        ensure!(
            (8..=data.len() - at).contains(&size),
            "box size {size} at {at}"
        );
        boxes.push((data[at + 4..at + 8].try_into()?, at));
        at += size;
    }
    Ok(boxes)
}

/// Where each fragment (`moof` + `mdat`) starts, checking the file is an init segment and then
/// only such pairs.
fn fragment_starts(data: &[u8]) -> anyhow::Result<Vec<usize>> {
    let boxes = top_level_boxes(data)?;
    let kinds: Vec<_> = boxes.iter().map(|b| b.0).collect();
    ensure!(kinds[..2] == [*b"ftyp", *b"moov"], "no init segment");
    for pair in kinds[2..].chunks(2) {
        ensure!(pair == [*b"moof", *b"mdat"], "not moof + mdat: {pair:?}");
    }
    Ok(boxes[2..].iter().step_by(2).map(|b| b.1).collect())
}

fn init_len(data: &[u8]) -> anyhow::Result<usize> {
    fragment_starts(data)?
        .first()
        .copied()
        .context("no fragment")
}

/// What `ffprobe -v error` says about a file: nothing for a good one. It reads every packet
/// (`-count_frames`): without that it says nothing even of a file cut in the middle of a sample.
fn ffprobe_complaints(path: &Path) -> anyhow::Result<String> {
    let out = run_tool("ffprobe", &["-v", "error", path_str(path)?])?;
    Ok(format!(
        "{}{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        probe(path)?.1
    ))
}

/// Frames `ffprobe -v error -count_frames` reads from a file that it has nothing to say about.
fn count_frames(path: &Path) -> anyhow::Result<u64> {
    let (frames, complaints) = probe(path)?;
    ensure!(
        complaints.is_empty(),
        "ffprobe on {}:\n{complaints}",
        path.display()
    );
    Ok(frames)
}

fn probe(path: &Path) -> anyhow::Result<(u64, String)> {
    let out = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            path_str(path)?,
        ],
    )?;
    let text = String::from_utf8(out.stdout)?;
    let frames = text
        .trim()
        .parse()
        .with_context(|| format!("nb_read_frames of {}: {text:?}", path.display()))?;
    Ok((frames, String::from_utf8_lossy(&out.stderr).into_owned()))
}

/// Every packet's pts and whether it is a key frame.
fn packets(path: &Path) -> anyhow::Result<Vec<(i64, bool)>> {
    let out = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "packet=pts,flags",
            "-of",
            "json",
            path_str(path)?,
        ],
    )?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    json["packets"]
        .as_array()
        .context("no packets")?
        .iter()
        .map(|p| {
            let pts = p["pts"].as_i64().context("a pts")?;
            let key = p["flags"].as_str().is_some_and(|f| f.starts_with('K'));
            Ok((pts, key))
        })
        .collect()
}

/// The MD5 of every decoded frame, in order.
fn frame_md5s(input: &[&str]) -> anyhow::Result<Vec<String>> {
    let mut args = vec!["-nostdin", "-v", "error"];
    args.extend_from_slice(input);
    args.extend_from_slice(&["-f", "framemd5", "-"]);
    let out = run_tool("ffmpeg", &args)?;
    let text = String::from_utf8(out.stdout)?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next())
        .map(|h| h.trim().to_owned())
        .collect())
}
