//! The muxer against FFmpeg, an independent reader: clips encoded with the ffmpeg CLI are split
//! into access units, given 90 kHz pts (frame index x 9000) and muxed into one fragmented MP4
//! (init segment + fragments); ffprobe must see the codec, size, frame count, timestamps and key
//! frames that went in, ffmpeg must decode it without an error, and every decoded frame must
//! equal the one decoded from the raw Annex B input.
//!
//! Needs the `ffmpeg` and `ffprobe` CLIs (scripts/setup installs them); fails when they are
//! missing.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use xl_testkit::TempDir;

use anyhow::{Context, bail, ensure};
use serde_json::Value;
use xl_core::camera::VideoCodec;
use xl_media::fmp4::{FragmentPolicy, Fragmenter, VideoTrack, init_segment};

/// Frame rate and length of the generated clips: 40 frames, a key frame every 10.
const FPS: u32 = 10;
const SECONDS: u32 = 4;
const GOP: usize = 10;
/// 90 kHz ticks a frame at [`FPS`].
const FRAME_90K: i64 = 90_000 / FPS as i64;

#[test]
fn h264_clip_in_fragments_of_up_to_four_samples_decodes_like_its_source() -> anyhow::Result<()> {
    let dir = TempDir::new("h264-4")?;
    let clip = generated_clip(&dir, VideoCodec::H264)?;
    let policy = FragmentPolicy::MaxSamples(NonZeroUsize::new(4).unwrap());
    let muxed = check_round_trip(&dir, &clip, policy, (SECONDS * FPS) as usize)?;
    // GOPs of 10 cut into 4 + 4 + 2.
    assert_eq!(muxed.fragments, 4 * 3);
    Ok(())
}

#[test]
fn h265_clip_in_fragments_of_one_gop_decodes_like_its_source() -> anyhow::Result<()> {
    let dir = TempDir::new("h265-gop")?;
    let clip = generated_clip(&dir, VideoCodec::H265)?;
    let muxed = check_round_trip(&dir, &clip, FragmentPolicy::Gop, (SECONDS * FPS) as usize)?;
    assert_eq!(muxed.fragments, (SECONDS * FPS) as usize / GOP);
    Ok(())
}

#[test]
fn one_sample_fragments_decode_like_their_source() -> anyhow::Result<()> {
    for codec in [VideoCodec::H264, VideoCodec::H265] {
        let dir = TempDir::new(&format!("{codec}-1"))?;
        let clip = generated_clip(&dir, codec)?;
        let frames = (SECONDS * FPS) as usize;
        let muxed = check_round_trip(&dir, &clip, FragmentPolicy::EverySample, frames)?;
        assert_eq!(muxed.fragments, frames, "{codec}");
        // The file is the init segment's two boxes and then a moof + mdat pair per frame.
        let top = top_level_boxes(&muxed.bytes)?;
        assert_eq!(top.len(), 2 + 2 * frames, "{codec}");
        assert_eq!(&top[..2], [*b"ftyp", *b"moov"]);
        for pair in top[2..].chunks(2) {
            assert_eq!(pair, [*b"moof", *b"mdat"]);
        }
    }
    Ok(())
}

/// The camera-like clips of xl-testkit (a real scene, parameter sets repeated before every key
/// frame, no access unit delimiters: split by first-slice flags).
#[test]
fn camera_clips_without_delimiters_decode_like_their_source() -> anyhow::Result<()> {
    for (name, codec) in [
        (xl_testkit::H264_360P, VideoCodec::H264),
        (xl_testkit::H265_360P, VideoCodec::H265),
    ] {
        let dir = TempDir::new(&format!("camera-{codec}"))?;
        let clip = Clip {
            codec,
            path: xl_testkit::test_clip(name)?,
            width: 640,
            height: 360,
            gop: xl_testkit::CLIP_GOP_FRAMES as usize,
        };
        let muxed = check_round_trip(
            &dir,
            &clip,
            FragmentPolicy::EverySample,
            xl_testkit::CLIP_FRAMES as usize,
        )?;
        assert_eq!(muxed.fragments, xl_testkit::CLIP_FRAMES as usize, "{name}");
    }
    Ok(())
}

/// An Annex B clip on disk.
struct Clip {
    codec: VideoCodec,
    path: PathBuf,
    width: u32,
    height: u32,
    /// Frames from one key frame to the next.
    gop: usize,
}

struct Muxed {
    bytes: Vec<u8>,
    fragments: usize,
}

/// Encodes a [`SECONDS`] s test pattern at 640x360, [`FPS`] fps, a key frame every [`GOP`]
/// frames, no B-frames, an access unit delimiter in front of every access unit.
fn generated_clip(dir: &TempDir, codec: VideoCodec) -> anyhow::Result<Clip> {
    let (ext, encoder, format): (_, &[&str], _) = match codec {
        VideoCodec::H264 => (
            "h264",
            &[
                "-c:v",
                "libx264",
                "-g",
                "10",
                "-sc_threshold",
                "0",
                "-bf",
                "0",
                "-bsf:v",
                "h264_metadata=aud=insert",
            ],
            "h264",
        ),
        VideoCodec::H265 => (
            "h265",
            &[
                "-c:v",
                "libx265",
                "-x265-params",
                "log-level=error:bframes=0:keyint=10:scenecut=0",
                "-bsf:v",
                "hevc_metadata=aud=insert",
            ],
            "hevc",
        ),
    };
    let path = dir.path.join(format!("in.{ext}"));
    let source = format!("testsrc2=size=640x360:rate={FPS}");
    let duration = SECONDS.to_string();
    let mut args = vec!["-f", "lavfi", "-i", &source, "-t", &duration];
    args.extend_from_slice(encoder);
    args.extend_from_slice(&["-f", format]);
    run_tool("ffmpeg", &args, Some(&path))?;
    Ok(Clip {
        codec,
        path,
        width: 640,
        height: 360,
        gop: GOP,
    })
}

/// Muxes `clip` into `dir/out.mp4` with `policy` and checks it against FFmpeg's reading of the
/// clip itself.
fn check_round_trip(
    dir: &TempDir,
    clip: &Clip,
    policy: FragmentPolicy,
    frames: usize,
) -> anyhow::Result<Muxed> {
    let data =
        std::fs::read(&clip.path).with_context(|| format!("reading {}", clip.path.display()))?;
    let access_units = xl_testkit::split_access_units(clip.codec, &data);
    ensure!(
        access_units.len() == frames,
        "{}: {} access units, expected {frames}",
        clip.path.display(),
        access_units.len()
    );
    let keys: Vec<bool> = access_units
        .iter()
        .map(|au| xl_testkit::is_key_frame(clip.codec, au))
        .collect();
    for (i, &key) in keys.iter().enumerate() {
        ensure!(
            key == (i % clip.gop == 0),
            "access unit {i}: key frame {key}"
        );
    }

    let track = VideoTrack::from_key_frame(clip.codec, access_units[0], clip.width, clip.height)?;
    let mut bytes = init_segment(&track).to_vec();
    let mut fragmenter = Fragmenter::new(&track, policy);
    let mut fragments = 0;
    for (i, au) in access_units.iter().enumerate() {
        if let Some(fragment) = fragmenter.push_sample(au, i as i64 * FRAME_90K, keys[i])? {
            bytes.extend_from_slice(&fragment);
            fragments += 1;
        }
    }
    if let Some(fragment) = fragmenter.flush() {
        bytes.extend_from_slice(&fragment);
        fragments += 1;
    }
    assert_eq!(fragmenter.clamped_durations(), 0);
    let out = dir.path.join("out.mp4");
    std::fs::write(&out, &bytes)?;

    // What ffprobe sees: the codec, its tag, the size, every frame.
    let probe = ffprobe_json(&out, &["-show_streams", "-count_frames"])?;
    let streams = probe["streams"].as_array().context("no streams")?;
    assert_eq!(streams.len(), 1, "{probe:#}");
    let s = &streams[0];
    let (name, tag) = match clip.codec {
        VideoCodec::H264 => ("h264", "avc1"),
        VideoCodec::H265 => ("hevc", "hvc1"),
    };
    assert_eq!(s["codec_name"], name, "{s:#}");
    assert_eq!(s["codec_tag_string"], tag, "{s:#}");
    assert_eq!(s["width"], clip.width, "{s:#}");
    assert_eq!(s["height"], clip.height, "{s:#}");
    assert_eq!(s["time_base"], "1/90000", "{s:#}");
    assert_eq!(s["nb_read_frames"], frames.to_string(), "{s:#}");
    if clip.codec == VideoCodec::H264 {
        assert_eq!(
            (&s["is_avc"], &s["nal_length_size"]),
            (&"true".into(), &"4".into())
        );
    }

    // Every packet at its pts, with its duration, key frames flagged.
    let probe = ffprobe_json(
        &out,
        &[
            "-show_packets",
            "-show_entries",
            "packet=pts,dts,duration,flags",
        ],
    )?;
    let packets = probe["packets"].as_array().context("no packets")?;
    assert_eq!(packets.len(), frames);
    for (i, p) in packets.iter().enumerate() {
        let at = i as i64 * FRAME_90K;
        assert_eq!(
            (p["pts"].as_i64(), p["dts"].as_i64()),
            (Some(at), Some(at)),
            "packet {i}: {p}"
        );
        assert_eq!(p["duration"].as_i64(), Some(FRAME_90K), "packet {i}: {p}");
        let key = p["flags"].as_str().is_some_and(|f| f.starts_with('K'));
        assert_eq!(key, keys[i], "packet {i}: {p}");
    }

    // Decodes without a complaint, to the very frames of the raw stream.
    let errors = run_tool("ffmpeg", &["-i", path_str(&out)?, "-f", "null", "-"], None)?.stderr;
    assert!(
        errors.is_empty(),
        "ffmpeg decoding {}:\n{}",
        out.display(),
        String::from_utf8_lossy(&errors)
    );
    let raw_format = match clip.codec {
        VideoCodec::H264 => "h264",
        VideoCodec::H265 => "hevc",
    };
    let want = frame_md5s(&["-f", raw_format, "-i", path_str(&clip.path)?])?;
    let got = frame_md5s(&["-i", path_str(&out)?])?;
    assert_eq!(want.len(), frames);
    assert!(
        got == want,
        "decoded frames differ from the raw stream's: {} vs {} frames",
        got.len(),
        want.len()
    );
    Ok(Muxed { bytes, fragments })
}

/// The MD5 of every decoded frame, in order.
fn frame_md5s(input: &[&str]) -> anyhow::Result<Vec<String>> {
    let mut args = input.to_vec();
    args.extend_from_slice(&["-f", "framemd5", "-"]);
    let out = run_tool("ffmpeg", &args, None)?;
    let text = String::from_utf8(out.stdout)?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next())
        .map(|h| h.trim().to_owned())
        .collect())
}

fn ffprobe_json(path: &Path, what: &[&str]) -> anyhow::Result<Value> {
    let mut args = vec!["-of", "json"];
    args.extend_from_slice(what);
    args.push(path_str(path)?);
    let out = run_tool("ffprobe", &args, None)?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Runs an FFmpeg CLI tool at log level `error` (and `-y` to `output` when given); fails on a
/// non-zero exit, and with a clear message when the tool is not installed.
fn run_tool(tool: &str, args: &[&str], output: Option<&Path>) -> anyhow::Result<Output> {
    let mut cmd = Command::new(tool);
    cmd.args(["-hide_banner", "-v", "error"]).args(args);
    if tool == "ffmpeg" {
        cmd.arg("-nostdin");
    }
    if let Some(path) = output {
        cmd.arg("-y").arg(path);
    }
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| {
        anyhow::anyhow!(
            "cannot run `{tool}` ({e}): these tests need the FFmpeg command-line tools; \
             run scripts/setup, which installs Debian's ffmpeg package"
        )
    })?;
    if !out.status.success() {
        bail!(
            "{tool} {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// The types of the top-level boxes of an MP4 file, checking that their sizes tile it.
fn top_level_boxes(mut data: &[u8]) -> anyhow::Result<Vec<[u8; 4]>> {
    let mut kinds = Vec::new();
    while !data.is_empty() {
        ensure!(
            data.len() >= 8,
            "{} bytes left after the last box",
            data.len()
        );
        let size = u32::from_be_bytes(data[..4].try_into()?) as usize;
        ensure!(
            (8..=data.len()).contains(&size),
            "box size {size}, {} bytes left",
            data.len()
        );
        kinds.push(data[4..8].try_into()?);
        data = &data[size..];
    }
    Ok(kinds)
}
