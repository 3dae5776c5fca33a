//! Shared helpers of the benchmarks: process CPU time, the FFmpeg CLI ceiling, table output.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// CPU time (user + system) this process has used so far, from `/proc/self/stat`.
pub fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let hz = 100; // USER_HZ on Linux
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / hz)
}

/// Peak resident memory of this process, in MiB, from `/proc/self/status`.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Frames per second the FFmpeg CLI reaches decoding `clip` on one thread, with `filter`
/// (e.g. `scale=640:-2`) applied when given. Uses FFmpeg's own `-benchmark` real time, so
/// process start-up is not counted. Returns (frames, seconds).
pub fn ffmpeg_cli_decode(
    clip: &Path,
    loops: u32,
    filter: Option<&str>,
) -> anyhow::Result<(u64, f64)> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-benchmark", "-threads", "1"])
        .args(["-stream_loop", &(loops.saturating_sub(1)).to_string()])
        .arg("-i")
        .arg(clip)
        .args(["-an", "-threads", "1", "-filter_threads", "1"]);
    if let Some(f) = filter {
        cmd.args(["-vf", f]);
    }
    cmd.args(["-f", "null", "-"]);
    let out = cmd.output()?;
    let log = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(out.status.success(), "ffmpeg failed: {log}");
    let rtime = log
        .lines()
        .find_map(|l| l.split("rtime=").nth(1))
        .and_then(|v| v.trim().trim_end_matches('s').parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no rtime in ffmpeg's -benchmark output: {log}"))?;
    let frames = log
        .rsplit("frame=")
        .next()
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no frame count in ffmpeg output: {log}"))?;
    Ok((frames, rtime))
}

/// The median of some measurements.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
