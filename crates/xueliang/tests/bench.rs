//! `xueliang bench` as an operator runs it, on real video: the JSON report of a short
//! every-frame run (every stage sees every frame, and the whole frame's ceiling is measured) and
//! of a live run with the motion gate (the person model's ceiling).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn vtest() -> PathBuf {
    let path = xl_detect::cache_dir().join("media/vtest.avi");
    assert!(
        path.is_file(),
        "{} missing: run scripts/setup-assets",
        path.display()
    );
    path
}

fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_xueliang"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xueliang bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn positive(v: &Value) -> f64 {
    let x = v.as_f64().unwrap_or(f64::NAN);
    assert!(x.is_finite() && x > 0.0, "{v} is not a positive number");
    x
}

/// The first `frames` frames of vtest.avi as an H.264 file in `dir`.
fn short_clip(dir: &Path, frames: u32) -> PathBuf {
    let clip = dir.join("vtest-short.mp4");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(vtest())
        .args([
            "-frames:v",
            &frames.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
        ])
        .arg(&clip)
        .status()
        .expect("ffmpeg (scripts/setup installs it)");
    assert!(status.success(), "ffmpeg could not cut the clip");
    clip
}

#[test]
fn every_frame_bench_sees_every_frame_in_every_stage_and_measures_the_frames_ceiling() {
    let dir = std::env::temp_dir().join(format!("xl-bench-{:x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let clip = short_clip(&dir, 24);
    let r = bench(&[
        "--every-frame",
        "--cameras",
        "1",
        "--video",
        clip.to_str().unwrap(),
        "--ceiling-seconds",
        "1",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    for stage in [
        "decode",
        "person_model",
        "face_model",
        "detection",
        "tracking",
    ] {
        assert_eq!(r[stage]["items"], 24, "{stage}: {r:#}");
    }
    assert_eq!(r["dropped_decode"], 0);
    assert_eq!(r["superseded"], 0);
    assert!(
        r["frame_size"].as_str().unwrap().contains("768x576"),
        "{r:#}"
    );
    let c = &r["frame_ceiling"];
    positive(&c["person_per_second"]);
    positive(&c["face_per_second"]);
    positive(&c["embed_per_second"]);
    let faces = r["embedding_model"]["items"].as_f64().unwrap();
    assert_eq!(c["faces_per_frame"].as_f64().unwrap(), faces / 24.0);
    let ratio = positive(&r["frame_ratio_to_ceiling"]);
    let through = positive(&r["detection"]["per_second"]);
    assert!((ratio * positive(&c["frames_per_second"]) / through - 1.0).abs() < 1e-9);
}

#[test]
fn live_bench_with_the_motion_gate_measures_the_person_models_ceiling() {
    let video = vtest();
    let r = bench(&[
        "--cameras",
        "2",
        "--seconds",
        "3",
        "--video",
        video.to_str().unwrap(),
        "--ceiling-seconds",
        "1",
    ]);
    assert_eq!(r["cameras"], 2);
    assert!(
        r["mode"].as_str().unwrap().contains("motion gate on"),
        "{r:#}"
    );
    positive(&r["decode"]["items"]);
    positive(&r["motion"]["items"]);
    positive(&r["person_model"]["items"]);
    let ceiling = positive(&r["ceiling_images_per_second"]);
    let ratio = positive(&r["ratio_to_ceiling"]);
    let through = positive(&r["person_model"]["per_second"]);
    assert!((ratio * ceiling / through - 1.0).abs() < 1e-9);
    assert!(r.get("frame_ceiling").is_none(), "{r:#}");
}
