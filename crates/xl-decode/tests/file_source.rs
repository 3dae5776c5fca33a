//! The decode pool fed by a file source: every frame of a real clip decoded exactly once, at the
//! analysis size, under each decode policy, stamped with the pool's clocks.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use xl_core::CameraId;
use xl_core::camera::{CameraStats, CameraStatus, DecodePolicy, DropReason};
use xl_core::clock::{Clocks, RealClocks, SimulatedClocks};
use xl_core::frame::{Frame, FrameSink};
use xl_decode::{DecodeConfig, DecodePool, FileSource, Pacing};
use xl_testkit::{CLIP_FRAMES, CLIP_GOP_FRAMES, test_clip};

/// Width, height, pts and receipt time of a decoded frame.
type Out = (u32, u32, i64, Timestamp);

#[derive(Default)]
struct Sizes(Mutex<Vec<Out>>);

impl FrameSink for Sizes {
    fn on_frame(&self, f: Frame) {
        self.0
            .lock()
            .unwrap()
            .push((f.width, f.height, f.pts_90k, f.received_at));
    }
}

/// Plays `clip` once, unpaced, and returns what came out.
fn play_once(clip: &str, policy: DecodePolicy) -> (Vec<Out>, Arc<CameraStats>) {
    play_once_on(clip, policy, RealClocks::shared())
}

/// Like [`play_once`], the pool on `clocks`.
fn play_once_on(
    clip: &str,
    policy: DecodePolicy,
    clocks: Arc<dyn Clocks>,
) -> (Vec<Out>, Arc<CameraStats>) {
    let sink = Arc::new(Sizes::default());
    let pool = DecodePool::new(
        &DecodeConfig {
            threads: 1,
            ..DecodeConfig::default()
        },
        sink.clone(),
        clocks,
    )
    .unwrap();
    let stats = Arc::new(CameraStats::new(CameraId::new("file").unwrap(), policy));
    let input = pool.add_camera(Arc::clone(&stats));
    let source = FileSource {
        path: test_clip(clip).unwrap(),
        looped: false,
        pacing: Pacing::Unpaced,
    };
    let t = xl_decode::spawn_file_source(source, input, Arc::new(AtomicBool::new(false))).unwrap();
    t.join().unwrap();
    // The feeder is done; let the decode thread drain the queue.
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = |s: &CameraStats| {
        s.frames_decoded.load(std::sync::atomic::Ordering::Relaxed)
            + DropReason::ALL.iter().map(|r| s.dropped(*r)).sum::<u64>()
    };
    while done(&stats) < u64::from(CLIP_FRAMES) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(pool);
    let frames = std::mem::take(&mut *sink.0.lock().unwrap());
    (frames, stats)
}

#[test]
fn every_frame_of_a_720p_clip_is_decoded_once_at_the_analysis_size() {
    let (frames, stats) = play_once("h264_1280x720.mp4", DecodePolicy::All);
    assert_eq!(frames.len(), CLIP_FRAMES as usize);
    assert!(frames.iter().all(|&(w, h, _, _)| (w, h) == (640, 360)));
    assert!(frames.windows(2).all(|p| p[1].2 > p[0].2), "pts increase");
    assert_eq!(stats.dropped(DropReason::DecodeError), 0);
    assert_eq!(
        stats.status(),
        CameraStatus::Offline {
            reason: "end of file".into()
        }
    );
}

#[test]
fn key_frames_only_decodes_one_frame_per_gop() {
    let (frames, stats) = play_once("h265_640x360.mp4", DecodePolicy::KeyFrames);
    let gops = CLIP_FRAMES.div_ceil(CLIP_GOP_FRAMES) as usize;
    assert_eq!(frames.len(), gops);
    assert_eq!(
        stats.dropped(DropReason::Policy),
        u64::from(CLIP_FRAMES) - gops as u64
    );
}

#[test]
fn skipping_non_reference_frames_keeps_every_frame_of_a_stream_without_them() {
    // Camera-like clips have no B-frames: every picture is a reference, nothing may be skipped.
    let (frames, stats) = play_once("h264_640x360.mp4", DecodePolicy::SkipNonReference);
    assert_eq!(frames.len(), CLIP_FRAMES as usize);
    assert_eq!(stats.dropped(DropReason::Policy), 0);
}

#[test]
fn frames_of_a_file_source_are_stamped_with_the_pools_simulated_clocks() {
    let t0: Timestamp = "2024-03-01T08:00:00Z".parse().unwrap();
    let clocks = SimulatedClocks::new(t0);
    // moved before the file plays: the stamp is the clocks' time, not the time they were made
    clocks.advance(Duration::from_secs(90));
    let at = clocks.realtime();
    let (frames, stats) = play_once_on("h264_640x360.mp4", DecodePolicy::All, clocks.shared());
    assert_eq!(frames.len(), CLIP_FRAMES as usize);
    assert!(
        frames.iter().all(|&(_, _, _, t)| t == at),
        "every frame received at {at}: {:?}",
        frames.iter().map(|f| f.3).collect::<Vec<_>>()
    );
    assert_eq!(stats.last_frame_at(), Some(at));
}
