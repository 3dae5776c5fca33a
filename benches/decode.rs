//! Decode throughput of the hub's decode path (file demux -> bounded queue -> one pooled decode
//! thread -> I420 at the analysis size), next to the FFmpeg CLI decoding the same file on one
//! thread (the ceiling), as a ratio.
//!
//! Run: `cargo bench -p xl-benches --bench decode`. Clips are 10 fps, 2 s closed GOPs, no
//! B-frames, transcoded from vtest.avi (real people walking), looped LOOPS times.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use xl_benches::{ffmpeg_cli_decode, median, process_cpu};
use xl_core::CameraId;
use xl_core::camera::{CameraStats, DecodePolicy};
use xl_core::clock::RealClocks;
use xl_core::frame::{Frame, FrameSink};
use xl_decode::{DecodeConfig, DecodePool, FileSource, Pacing};

const LOOPS: u32 = 3;
const RUNS: usize = 3;

#[derive(Default)]
struct Count(AtomicU64);

impl FrameSink for Count {
    fn on_frame(&self, _f: Frame) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Frames/s of the hub's path on one decode thread, and decode-thread CPU per frame.
fn hub_decode(
    clip: &std::path::Path,
    analysis_width: u32,
    frames: u64,
) -> anyhow::Result<(f64, f64)> {
    let count = Arc::new(Count::default());
    let config = DecodeConfig {
        threads: 1,
        analysis_width,
        queue_units: 8,
    };
    let pool = DecodePool::new(&config, count.clone(), RealClocks::shared())?;
    let stats = Arc::new(CameraStats::new(CameraId::new("bench")?, DecodePolicy::All));
    let input = pool.add_camera(Arc::clone(&stats));
    let stop = Arc::new(AtomicBool::new(false));
    let source = FileSource {
        path: clip.to_path_buf(),
        looped: true,
        pacing: Pacing::Unpaced,
    };
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    let feeder = xl_decode::spawn_file_source(source, input, Arc::clone(&stop))?;
    while count.0.load(Ordering::Relaxed) < frames {
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (process_cpu() - cpu0).as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = feeder.join();
    anyhow::ensure!(
        stats.dropped(xl_core::camera::DropReason::DecodeError) == 0,
        "decode errors"
    );
    Ok((frames as f64 / secs, cpu / frames as f64 * 1000.0))
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; ignore arguments.
    println!(
        "Decode throughput, one decode thread, {LOOPS} loops of each clip, median of {RUNS} runs"
    );
    println!("(ceiling: ffmpeg CLI -threads 1, same file, same output size)\n");
    println!(
        "{:<22} {:>10} {:>14} {:>12} {:>10} {:>12}",
        "clip", "output", "hub frames/s", "CLI frames/s", "ratio", "hub cpu ms/f"
    );
    for name in [
        "h264_640x360",
        "h264_1280x720",
        "h265_640x360",
        "h265_1280x720",
    ] {
        let clip = xl_testkit::test_clip(&format!("{name}.mp4"))?;
        let full_width: u32 = name
            .split('_')
            .nth(1)
            .and_then(|s| s.split('x').next())
            .and_then(|w| w.parse().ok())
            .unwrap_or(640);
        // Native size (decode + plane copy), then scaled to the 640-wide analysis size.
        let mut cases = vec![(full_width, None)];
        if full_width != 640 {
            cases.push((640, Some("scale=640:-2:flags=bilinear,format=yuv420p")));
        }
        for (width, filter) in cases {
            let mut cli = Vec::new();
            let mut hub = Vec::new();
            let mut cpu = Vec::new();
            let mut frames = 0;
            for _ in 0..RUNS {
                let (n, secs) = ffmpeg_cli_decode(&clip, LOOPS, filter)?;
                frames = n;
                cli.push(n as f64 / secs);
                let (fps, ms) = hub_decode(&clip, width, n)?;
                hub.push(fps);
                cpu.push(ms);
            }
            let (hub, cli) = (median(hub), median(cli));
            let output = if filter.is_some() {
                "640 wide"
            } else {
                "native"
            };
            println!(
                "{name:<22} {output:>10} {hub:>14.0} {cli:>12.0} {:>10.2} {:>12.2}   ({frames} frames)",
                hub / cli,
                median(cpu)
            );
        }
    }
    Ok(())
}
