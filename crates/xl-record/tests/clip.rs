//! Playback clips of segments written by the crate's own recorder from xl-testkit's clips
//! (10 fps, a key frame every 2 s; pts 9000 x i, receipt times 100 ms apart on a made-up
//! clock): their layout checked box by box against the segment files, and the whole MP4 read
//! by FFmpeg, an independent reader.
//!
//! The recording most tests use: segments of a 10 s target, frames 0..240 received at 0..24 s
//! (one session: segments of 10, 10 and 4 s), then frames 240..340 received 10 s late (a pause
//! over two seconds: a new session, its timeline from 0 again), one segment at 34..44 s.
//!
//! Needs the `ffmpeg` and `ffprobe` CLIs and the test clips (scripts/setup); fails without.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use xl_core::camera::VideoCodec;
use xl_core::frame::{AccessUnit, AccessUnitSink};
use xl_core::ids::CameraId;
use xl_core::live::StreamKind;
use xl_record::{Clip, RecordError, Recorder, RecorderConfig, Segment, SegmentEvent, SegmentRef};
use xl_testkit::{ClipAccessUnit, TempDir};

mod common;
use common::{decode_complaints, path_str, run_tool};

const FRAME: SignedDuration = SignedDuration::from_millis(100);
const FRAME_90K: u64 = 9_000;

#[test]
fn clips_of_one_segment_part_of_one_two_of_a_session_and_across_a_gap() -> anyhow::Result<()> {
    for (clip_name, codec) in [
        (xl_testkit::H264_360P, VideoCodec::H264),
        (xl_testkit::H265_360P, VideoCodec::H265),
    ] {
        let rec = two_sessions(&format!("clip-{codec}"), codec, clip_name)?;
        let starts: Vec<_> = rec.segments.iter().map(|s| s.start_at).collect();
        assert_eq!(starts, [at(0), at(100), at(200), at(340)], "{codec}");
        let media: Vec<_> = rec.segments.iter().map(|s| s.media_start_90k).collect();
        assert_eq!(media, [0, 900_000, 1_800_000, 0], "{codec}");

        // (from, to), then what the clip must hold: fragments, start, end, frames.
        let cases = [
            (
                "one segment",
                (at(100), at(200)),
                (5, at(100), at(200), 100),
            ),
            ("inside one", (at(125), at(150)), (2, at(120), at(160), 40)),
            (
                "one fragment exactly",
                (at(120), at(140)),
                (1, at(120), at(140), 20),
            ),
            (
                "two of a session",
                (at(190), at(230)),
                (3, at(180), at(240), 60),
            ),
            (
                "across the gap",
                (at(230), at(370)),
                (3, at(220), at(380), 60),
            ),
            (
                "everything",
                (at(0) - FRAME * 50, at(1000)),
                (17, at(0), at(440), 340),
            ),
        ];
        for (what, (from, to), (fragments, start_at, end_at, frames)) in cases {
            let what = format!("{codec} {what}");
            let clip = Clip::plan(&rec.refs(), from, to)?;
            assert_eq!(clip.fragments(), fragments, "{what}");
            assert_eq!(
                (clip.start_at(), clip.end_at()),
                (start_at, end_at),
                "{what}"
            );
            assert_eq!(clip.duration_90k(), frames * FRAME_90K, "{what}");
            let bytes = whole(&clip)?;
            check_layout(&rec.files()?, &bytes, fragments).with_context(|| what.clone())?;

            let file = rec.dir.path.join("clip.mp4");
            std::fs::write(&file, &bytes)?;
            let (duration_secs, complaints) = ffprobe_duration(&file)?;
            assert_eq!(complaints, "", "{what}");
            let want_secs = frames as f64 * 0.1;
            assert!(
                (duration_secs - want_secs).abs() < 0.1,
                "{what}: ffprobe says {duration_secs} s, want {want_secs} s"
            );
            let pts = packet_pts(&file)?;
            let want: Vec<u64> = (0..frames).map(|i| i * FRAME_90K).collect();
            assert_eq!(pts, want, "{what}: one timeline from 0, the gap collapsed");
            assert_eq!(decode_complaints(&file)?, "", "{what}");
        }
    }
    Ok(())
}

#[test]
fn any_byte_range_is_the_same_slice_of_the_whole() -> anyhow::Result<()> {
    let rec = two_sessions("clip-ranges", VideoCodec::H264, xl_testkit::H264_360P)?;
    let clip = Clip::plan(&rec.refs(), at(150), at(370))?;
    let bytes = whole(&clip)?;
    let len = bytes.len() as u64;
    // Every box boundary, one byte either side, and the fields rewritten in each moof.
    let mut points = vec![0, 1, len - 1, len];
    for b in top_level_boxes(&bytes)? {
        for p in [b.at, b.at + 8, b.at + b.size] {
            points.extend([p.saturating_sub(1), p, p + 1].map(|p| (p as u64).min(len)));
        }
        if &b.kind == b"moof" {
            let f = fragment_at(&bytes, b.at)?;
            points.extend([f.seq_at, f.seq_at + 2, f.tfdt_at + 3].map(|p| p as u64));
        }
    }
    let mut pairs: Vec<(u64, u64)> = Vec::new();
    for (k, &p) in points.iter().enumerate() {
        pairs.push((p, p));
        pairs.push((p, len));
        pairs.push((0, p));
        pairs.push((p, points[(k * 7 + 3) % points.len()].max(p)));
    }
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    for _ in 0..1_500 {
        let a = next(len + 1);
        // Short ranges (splitting headers) as often as long ones.
        let span = if next(2) == 0 {
            next(64)
        } else {
            next(len + 1)
        };
        pairs.push((a, (a + span).min(len)));
    }
    for (start, end) in pairs {
        let mut out = Vec::new();
        clip.write_range(start, end, &mut out)?;
        assert!(
            out == bytes[start as usize..end as usize],
            "bytes {start}..{end} differ from the whole's"
        );
    }
    for (start, end) in [(0, len + 1), (len + 1, len + 2), (5, 4)] {
        let err = clip.write_range(start, end, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, RecordError::ClipRange { .. }), "{err}");
        assert_eq!(err.kind(), xl_core::ErrorKind::InvalidInput);
    }
    Ok(())
}

#[test]
fn a_range_with_nothing_recorded_is_no_recording() -> anyhow::Result<()> {
    let rec = two_sessions("clip-none", VideoCodec::H264, xl_testkit::H264_360P)?;
    let refs = rec.refs();
    for (what, segments, from, to) in [
        ("in the gap", &refs[..], at(245), at(335)),
        ("before", &refs[..], at(0) - FRAME * 100, at(0)),
        ("after", &refs[..], at(440), at(500)),
        ("empty", &refs[..], at(50), at(50)),
        ("inverted", &refs[..], at(60), at(50)),
        ("no segment", &[][..], at(0), at(500)),
    ] {
        let err = Clip::plan(segments, from, to).unwrap_err();
        assert!(
            matches!(err, RecordError::NoRecording { .. }),
            "{what}: {err}"
        );
        assert_eq!(err.kind(), xl_core::ErrorKind::NotFound, "{what}");
        assert!(err.to_string().contains(&from.to_string()), "{what}: {err}");
    }
    Ok(())
}

#[test]
fn a_missing_or_foreign_segment_file_fails_naming_it() -> anyhow::Result<()> {
    let rec = two_sessions("clip-missing", VideoCodec::H264, xl_testkit::H264_360P)?;
    let refs = rec.refs();
    // Planned while every file is there; then retention deletes the second segment.
    let clip = Clip::plan(&refs, at(0), at(500))?;
    std::fs::remove_file(&refs[1].path)?;
    let err = clip
        .write_range(0, clip.len(), &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, RecordError::Io { .. }), "{err}");
    assert!(err.to_string().contains(path_str(&refs[1].path)?), "{err}");
    assert_eq!(err.kind(), xl_core::ErrorKind::NotFound);
    // What lies before it is still served.
    let first_moof = top_level_boxes(&std::fs::read(&refs[0].path)?)?[2].at as u64;
    clip.write_range(0, first_moof, &mut Vec::new())?;

    let err = Clip::plan(&refs, at(0), at(500)).unwrap_err();
    assert!(matches!(err, RecordError::Io { .. }), "{err}");
    assert!(err.to_string().contains(path_str(&refs[1].path)?), "{err}");
    assert_eq!(err.kind(), xl_core::ErrorKind::NotFound);
    // A range that does not need it.
    let clip = Clip::plan(&refs, at(210), at(500))?;
    assert_eq!((clip.fragments(), clip.start_at()), (7, at(200)));

    // A file that is not a segment.
    std::fs::write(&refs[2].path, b"GIF89a, or anything but an MP4")?;
    let err = Clip::plan(&refs, at(210), at(500)).unwrap_err();
    assert!(matches!(err, RecordError::NotSegment { .. }), "{err}");
    assert!(err.to_string().contains(path_str(&refs[2].path)?), "{err}");
    Ok(())
}

#[test]
fn a_torn_tail_ends_its_segment_at_the_last_complete_fragment() -> anyhow::Result<()> {
    let rec = two_sessions("clip-torn", VideoCodec::H264, xl_testkit::H264_360P)?;
    let files = rec.files()?;
    let mut refs = rec.refs();
    let last = refs[3].path.clone();
    let data = std::fs::read(&last)?;
    let boxes = top_level_boxes(&data)?;
    let last_moof = boxes[boxes.len() - 2].at;
    let last_mdat = boxes[boxes.len() - 1].at;
    // The open segment, with a file just created after it whose init is not whole yet.
    let opening = rec.dir.path.join("opening.mp4");
    std::fs::write(&opening, &data[..boxes[1].at + 10])?;
    refs.push(SegmentRef {
        path: opening,
        start_at: at(440),
        media_start_90k: 900_000,
    });
    for cut in [last_moof + 5, last_moof + 30, last_mdat + 8, data.len() - 1] {
        std::fs::write(&last, &data[..cut])?;
        let clip = Clip::plan(&refs, at(0), at(1000))?;
        assert_eq!(clip.fragments(), 16, "cut at {cut}");
        assert_eq!(clip.end_at(), at(420), "cut at {cut}");
        assert_eq!(clip.duration_90k(), 320 * FRAME_90K, "cut at {cut}");
        let bytes = whole(&clip)?;
        check_layout(&files, &bytes, 16).with_context(|| format!("cut at {cut}"))?;
        let file = rec.dir.path.join("clip.mp4");
        std::fs::write(&file, &bytes)?;
        assert_eq!(ffprobe_duration(&file)?.1, "", "cut at {cut}");
        assert_eq!(packet_pts(&file)?.len(), 320, "cut at {cut}");
    }
    // Only the torn segment asked for: its whole fragments.
    let clip = Clip::plan(&refs, at(410), at(1000))?;
    assert_eq!(
        (clip.fragments(), clip.start_at(), clip.end_at()),
        (1, at(400), at(420))
    );
    Ok(())
}

#[test]
fn a_new_picture_size_ends_the_clip_before_it() -> anyhow::Result<()> {
    // 360p, then 720p on the same clock: two segments with different init segments.
    let small = clip_units(VideoCodec::H264, xl_testkit::H264_360P)?;
    let large = clip_units(VideoCodec::H264, xl_testkit::H264_720P)?;
    let rec = record("clip-size", VideoCodec::H264, |recorder| {
        for i in 0..40 {
            recorder.push(unit(&small, i, i, at(i)));
        }
        for j in 0..40 {
            recorder.push(unit(&large, j, 40 + j, at(40 + j)));
        }
    })?;
    assert_eq!(rec.segments.len(), 2);
    let refs = rec.refs();
    let clip = Clip::plan(&refs, at(0), at(80))?;
    assert_eq!(
        (clip.fragments(), clip.start_at(), clip.end_at()),
        (2, at(0), at(40))
    );
    let bytes = whole(&clip)?;
    assert!(bytes.starts_with(&init_of(&refs[0].path)?));
    // From where it stopped: the rest, with the other init segment.
    let clip = Clip::plan(&refs, clip.end_at(), at(80))?;
    assert_eq!(
        (clip.fragments(), clip.start_at(), clip.end_at()),
        (2, at(40), at(80))
    );
    let bytes = whole(&clip)?;
    assert!(bytes.starts_with(&init_of(&refs[1].path)?));
    let file = rec.dir.path.join("clip.mp4");
    std::fs::write(&file, &bytes)?;
    assert_eq!(packet_pts(&file)?.len(), 40);
    Ok(())
}

// --- recordings ---

struct Recording {
    dir: TempDir,
    segments: Vec<Segment>,
}

impl Recording {
    fn refs(&self) -> Vec<SegmentRef> {
        self.segments
            .iter()
            .map(|s| SegmentRef {
                path: self.dir.path.join(&s.path),
                start_at: s.start_at,
                media_start_90k: s.media_start_90k,
            })
            .collect()
    }

    /// The segment files' contents, in order.
    fn files(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        self.refs()
            .iter()
            .map(|r| std::fs::read(&r.path).with_context(|| r.path.display().to_string()))
            .collect()
    }
}

/// The recording the module documentation describes.
fn two_sessions(name: &str, codec: VideoCodec, clip_name: &str) -> anyhow::Result<Recording> {
    let units = clip_units(codec, clip_name)?;
    let rec = record(name, codec, |recorder| {
        for i in 0..240 {
            recorder.push(unit(&units, i, i, at(i)));
        }
        for i in 240..340 {
            recorder.push(unit(&units, i, i, at(i + 100)));
        }
    })?;
    ensure!(rec.segments.len() == 4, "{:#?}", rec.segments);
    Ok(rec)
}

/// Records what `feed` pushes (after `stream_started(codec)`) into segments of a 10 s target;
/// the closed segments.
fn record(
    name: &str,
    codec: VideoCodec,
    feed: impl FnOnce(&Recorder),
) -> anyhow::Result<Recording> {
    let dir = TempDir::new(name)?;
    let (tx, events) = mpsc::channel();
    let tx = Mutex::new(tx);
    let mut config = RecorderConfig::new(
        CameraId::new("cam-clip")?,
        StreamKind::Main,
        &dir.path,
        Duration::from_secs(10),
    );
    // Bounds no test fills: nothing is dropped however slow the box.
    config.queue_max_units = 100_000;
    config.queue_max_bytes = 1 << 30;
    let recorder = Recorder::start(
        config,
        Arc::new(move |e| {
            let _ = tx.lock().unwrap().send(e);
        }),
    )?;
    recorder.stream_started(codec);
    feed(&recorder);
    recorder.stop();
    let mut segments = Vec::new();
    for event in events.try_iter() {
        match event {
            SegmentEvent::Opened { .. } => {}
            SegmentEvent::Closed { segment } => segments.push(segment),
            SegmentEvent::Failed { error, .. } => bail!("recording failed: {error}"),
        }
    }
    Ok(Recording { dir, segments })
}

fn clip_units(codec: VideoCodec, name: &str) -> anyhow::Result<Vec<ClipAccessUnit>> {
    xl_testkit::clip_access_units(codec, &xl_testkit::test_clip(name)?)
}

/// The clip's `i`th access unit as frame `n`: pts 9000 x n, received at `received_at`.
fn unit(units: &[ClipAccessUnit], i: usize, n: usize, received_at: Timestamp) -> AccessUnit {
    AccessUnit {
        data: Bytes::copy_from_slice(&units[i].data),
        pts_90k: n as i64 * FRAME_90K as i64,
        is_key: units[i].is_key,
        received_at,
    }
}

/// The made-up clock: `i` frames after 2025-06-01 08:00 UTC.
fn at(i: usize) -> Timestamp {
    let t0: Timestamp = "2025-06-01T08:00:00Z".parse().expect("a timestamp");
    t0 + FRAME * i as i32
}

fn whole(clip: &Clip) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    clip.write_range(0, clip.len(), &mut out)?;
    ensure!(
        out.len() as u64 == clip.len(),
        "{} bytes written",
        out.len()
    );
    Ok(out)
}

// --- boxes ---

#[derive(Debug, Clone, Copy)]
struct Mp4Box {
    kind: [u8; 4],
    at: usize,
    size: usize,
}

/// The boxes that tile `data[from..to]` (8-byte headers: all our writers use).
fn boxes(data: &[u8], from: usize, to: usize) -> anyhow::Result<Vec<Mp4Box>> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        ensure!(to - at >= 8, "{} bytes after the last box", to - at);
        let size = u32_at(data, at) as usize;
        ensure!((8..=to - at).contains(&size), "box size {size} at {at}");
        out.push(Mp4Box {
            kind: data[at + 4..at + 8].try_into()?,
            at,
            size,
        });
        at += size;
    }
    Ok(out)
}

fn top_level_boxes(data: &[u8]) -> anyhow::Result<Vec<Mp4Box>> {
    boxes(data, 0, data.len())
}

fn child(data: &[u8], parent: Mp4Box, kind: &[u8; 4]) -> anyhow::Result<Mp4Box> {
    boxes(data, parent.at + 8, parent.at + parent.size)?
        .into_iter()
        .find(|b| &b.kind == kind)
        .with_context(|| format!("no {} at {}", String::from_utf8_lossy(kind), parent.at))
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(data[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(data[at..at + 8].try_into().expect("8 bytes"))
}

/// A `moof` + `mdat` as the fragmenter writes them.
#[derive(Debug)]
struct Fragment {
    moof: Mp4Box,
    mdat: Mp4Box,
    sequence: u32,
    seq_at: usize,
    decode_time_90k: u64,
    tfdt_at: usize,
    duration_90k: u64,
}

fn fragment_at(data: &[u8], moof_at: usize) -> anyhow::Result<Fragment> {
    let moof = boxes(data, moof_at, moof_at + u32_at(data, moof_at) as usize)?[0];
    let mdat = boxes(data, moof.at + moof.size, data.len())?[0];
    ensure!(
        &moof.kind == b"moof" && &mdat.kind == b"mdat",
        "not moof + mdat at {moof_at}"
    );
    let mfhd = child(data, moof, b"mfhd")?;
    let traf = child(data, moof, b"traf")?;
    let tfdt = child(data, traf, b"tfdt")?;
    ensure!(data[tfdt.at + 8] == 1, "tfdt version 1");
    let trun = child(data, traf, b"trun")?;
    ensure!(u32_at(data, trun.at + 8) == 0x701, "trun flags");
    let count = u32_at(data, trun.at + 12) as usize;
    let duration_90k = (0..count)
        .map(|i| u64::from(u32_at(data, trun.at + 20 + 12 * i)))
        .sum();
    Ok(Fragment {
        moof,
        mdat,
        sequence: u32_at(data, mfhd.at + 12),
        seq_at: mfhd.at + 12,
        decode_time_90k: u64_at(data, tfdt.at + 12),
        tfdt_at: tfdt.at + 12,
        duration_90k,
    })
}

/// The fragments of a file laid out as init segment (+ sidx), then `moof` + `mdat` pairs.
fn fragments(data: &[u8]) -> anyhow::Result<Vec<Fragment>> {
    let top = top_level_boxes(data)?;
    let first = top
        .iter()
        .position(|b| &b.kind == b"moof")
        .context("no moof")?;
    top[first..]
        .chunks(2)
        .map(|pair| fragment_at(data, pair[0].at))
        .collect()
}

fn init_of(path: &Path) -> anyhow::Result<Vec<u8>> {
    let data = std::fs::read(path)?;
    let top = top_level_boxes(&data)?;
    Ok(data[..top[2].at].to_vec())
}

/// Checks a clip against the recording's `files`: the first segment's init segment, a `sidx`
/// that describes the fragments, the fragments numbered from 1 on one timeline from 0, each
/// a source fragment with only those two fields changed, in the sources' order.
fn check_layout(files: &[Vec<u8>], clip: &[u8], want_fragments: usize) -> anyhow::Result<()> {
    let top = top_level_boxes(clip)?;
    let kinds: Vec<_> = top.iter().map(|b| b.kind).collect();
    ensure!(kinds[..3] == [*b"ftyp", *b"moov", *b"sidx"], "{kinds:?}");
    ensure!(
        kinds.len() == 3 + 2 * want_fragments,
        "{} boxes",
        kinds.len()
    );

    // Every fragment of the recording, in order: (file data, fragment).
    let mut sources = Vec::new();
    for data in files {
        for f in fragments(data)? {
            sources.push((data, f));
        }
    }
    let frags = fragments(clip)?;
    ensure!(frags.len() == want_fragments);
    let first_mdat = &clip[frags[0].mdat.at..frags[0].mdat.at + frags[0].mdat.size];
    let first = sources
        .iter()
        .position(|(data, f)| &data[f.mdat.at..f.mdat.at + f.mdat.size] == first_mdat)
        .context("the first fragment is in no segment")?;
    let first_data = sources[first].0;
    let init_len = top_level_boxes(first_data)?[2].at;
    ensure!(
        clip[..init_len] == first_data[..init_len],
        "not the first segment's init segment"
    );

    let sidx = top[2];
    let s = sidx.at + 8;
    ensure!(u32_at(clip, s) == 0x0100_0000, "sidx version 1");
    ensure!(u32_at(clip, s + 4) == 1, "reference_ID");
    ensure!(u32_at(clip, s + 8) == 90_000, "timescale");
    ensure!(u64_at(clip, s + 12) == 0 && u64_at(clip, s + 20) == 0);
    ensure!(
        u32_at(clip, s + 28) as usize == want_fragments,
        "reference_count"
    );
    ensure!(sidx.size == 40 + 12 * want_fragments);

    let mut decode_90k = 0;
    for (k, f) in frags.iter().enumerate() {
        let (src_data, src) = sources
            .get(first + k)
            .context("more fragments than the sources")?;
        ensure!(
            f.sequence as usize == k + 1,
            "fragment {k}: mfhd {}",
            f.sequence
        );
        ensure!(
            f.decode_time_90k == decode_90k,
            "fragment {k}: tfdt {} after {decode_90k}",
            f.decode_time_90k
        );
        ensure!(f.duration_90k == src.duration_90k);
        let r = s + 32 + 12 * k;
        ensure!(
            u32_at(clip, r) as usize == f.moof.size + f.mdat.size,
            "fragment {k}: referenced_size"
        );
        ensure!(
            u32_at(clip, r + 4) as u64 == f.duration_90k,
            "fragment {k}: duration"
        );
        ensure!(u32_at(clip, r + 8) == 0x9000_0000, "fragment {k}: SAP");
        // The source's bytes with the two fields set as in the clip.
        let mut want = src_data[src.moof.at..src.mdat.at + src.mdat.size].to_vec();
        let (seq, tfdt) = (src.seq_at - src.moof.at, src.tfdt_at - src.moof.at);
        want[seq..seq + 4].copy_from_slice(&f.sequence.to_be_bytes());
        want[tfdt..tfdt + 8].copy_from_slice(&f.decode_time_90k.to_be_bytes());
        ensure!(
            clip[f.moof.at..f.mdat.at + f.mdat.size] == want[..],
            "fragment {k} is not source fragment {} with two fields changed",
            first + k
        );
        decode_90k += f.duration_90k;
    }
    Ok(())
}

// --- FFmpeg ---

/// `ffprobe -v error -show_entries format=duration`: the duration and what it complained of.
fn ffprobe_duration(path: &Path) -> anyhow::Result<(f64, String)> {
    let out = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "json",
            path_str(path)?,
        ],
    )?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let duration = json["format"]["duration"]
        .as_str()
        .context("no duration")?
        .parse()?;
    Ok((duration, String::from_utf8_lossy(&out.stderr).into_owned()))
}

/// Every packet's pts, read by `ffprobe -v error`, which must have nothing to say.
fn packet_pts(path: &Path) -> anyhow::Result<Vec<u64>> {
    let out = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "packet=pts",
            "-of",
            "json",
            path_str(path)?,
        ],
    )?;
    let complaints = String::from_utf8_lossy(&out.stderr);
    ensure!(complaints.is_empty(), "ffprobe: {complaints}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    json["packets"]
        .as_array()
        .context("no packets")?
        .iter()
        .map(|p| p["pts"].as_u64().context("a pts"))
        .collect()
}
