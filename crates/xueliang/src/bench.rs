//! `xueliang bench`: K cameras replaying a real video through decode, the motion gate, detection
//! and tracking, with per-stage throughput and latency, drops, CPU and memory, and the ceiling
//! (the person model alone on bare ONNX Runtime with the same threads and batch) as a ratio.
//! Operators size hardware with it, so the output is meant to be read.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use xl_core::camera::{CameraStats, CameraStatus, DecodePolicy, DropReason};
use xl_core::clock::RealClocks;
use xl_core::frame::{Frame, FrameSink};
use xl_core::ids::CameraId;
use xl_decode::{DecodeConfig, DecodePool, FileSource, Pacing};
use xl_detect::ceiling::FrameCeiling;
use xl_detect::engine::FaceMode;
use xl_detect::runtime::Provider;
use xl_detect::stats::{Histogram, Stage};

use xl_analysis::{CameraAnalysis, CameraDetect, DetectConfig, Vision};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchArgs {
    pub cameras: usize,
    pub seconds: u64,
    pub video: PathBuf,
    /// Decode, detect persons, detect faces on the whole frame and embed every face, on every
    /// frame of the video once per camera, lossless, no motion gate: the full per-frame work.
    pub every_frame: bool,
    pub motion: bool,
    /// Detections a second per camera (0 = as fast as the workers go).
    pub rate: f32,
    pub faces: FaceMode,
    pub workers: usize,
    pub session_threads: usize,
    pub batch: usize,
    pub provider: Provider,
    /// Analysis width; 0 = the video's own.
    pub analysis_width: u32,
    pub ceiling_seconds: u64,
}

#[derive(Debug, Serialize)]
pub struct StageFigures {
    pub items: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Share of one core spent in the stage (model time for the model stages).
    pub core_share: f64,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub cameras: usize,
    pub seconds: f64,
    pub video: String,
    pub frame_size: String,
    pub mode: String,
    pub workers: usize,
    pub session_threads: usize,
    pub batch: usize,
    pub provider: String,
    pub rate_per_camera: f32,
    pub decode: StageFigures,
    pub motion: StageFigures,
    /// Frames the motion gate let through to detection, as a share of those it saw.
    pub motion_pass: f64,
    pub person_model: StageFigures,
    pub face_model: StageFigures,
    pub embedding_model: StageFigures,
    /// Frames through detection; latency from network receipt to result.
    pub detection: StageFigures,
    pub tracking: StageFigures,
    pub tracks_started: u64,
    pub dropped_decode: u64,
    pub superseded: u64,
    pub cpu_cores_busy: f64,
    pub peak_rss_mib: f64,
    pub ceiling_images_per_second: f64,
    /// Person-model images a second in the run over the ceiling.
    pub ratio_to_ceiling: f64,
    /// With `--every-frame` (faces on whole frames or off): what the models alone allow, in
    /// place of the person model's ceiling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_ceiling: Option<FrameCeiling>,
    /// Frames a second through detection in the run over `frame_ceiling`'s.
    pub frame_ratio_to_ceiling: f64,
}

/// Passes frames on to the analysis, noting the analysis frame size.
struct SizeProbe {
    inner: Arc<Vision>,
    /// `width << 32 | height`.
    size: AtomicU64,
}

impl FrameSink for SizeProbe {
    fn on_frame(&self, frame: Frame) {
        self.size.store(
            (frame.width as u64) << 32 | frame.height as u64,
            Ordering::Relaxed,
        );
        self.inner.on_frame(frame);
    }
}

fn figures(stage: &Stage, secs: f64) -> StageFigures {
    figures_of(stage.items(), stage.busy(), &stage.latency, secs)
}

fn figures_of(items: u64, busy: Duration, latency: &Histogram, secs: f64) -> StageFigures {
    StageFigures {
        items,
        per_second: items as f64 / secs,
        p50_ms: latency.quantile(0.5).as_secs_f64() * 1e3,
        p99_ms: latency.quantile(0.99).as_secs_f64() * 1e3,
        core_share: busy.as_secs_f64() / secs,
    }
}

/// CPU time of this process (user + system), from /proc (Linux reports it in 1/100 s).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Peak resident memory of this process in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

pub fn run(args: &BenchArgs) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(args.cameras >= 1, "--cameras must be at least 1");
    anyhow::ensure!(
        args.video.is_file(),
        "video {} not found (run scripts/setup-assets)",
        args.video.display()
    );
    xl_decode::init()?;
    let every = args.every_frame;
    let cfg = DetectConfig {
        workers: args.workers,
        session_threads: args.session_threads,
        batch: args.batch,
        provider: args.provider.clone(),
        faces: args.faces != FaceMode::Off,
        embeddings: every,
        rate: if every { 0.0 } else { args.rate },
        ..DetectConfig::default()
    };
    let mut engine_cfg = cfg.engine();
    if every {
        // the reference script embeds every face it finds
        engine_cfg.faces.embed_min_width = 0.0;
        engine_cfg.faces.embed_min_score = 0.0;
    }
    let ids: Vec<CameraId> = (0..args.cameras)
        .map(|i| CameraId::new(format!("bench-{i:03}")))
        .collect::<Result<_, _>>()?;
    let cameras: Vec<CameraAnalysis> = ids
        .iter()
        .map(|id| CameraAnalysis {
            id: id.clone(),
            detect: CameraDetect {
                motion: args.motion && !every,
                faces: args.faces,
                ..CameraDetect::default()
            },
            zones: Vec::new(),
        })
        .collect();
    // The hub's clocks: frames stamped and detection scheduled on real time.
    let clocks = RealClocks::shared();
    let vision = Arc::new(Vision::start_with(
        &cfg,
        engine_cfg.clone(),
        &cameras,
        every,
        Arc::clone(&clocks),
        tokio::sync::broadcast::channel(4096).0,
    )?);
    let sizes = Arc::new(SizeProbe {
        inner: Arc::clone(&vision),
        size: AtomicU64::new(0),
    });
    let decode_cfg = DecodeConfig {
        analysis_width: if args.analysis_width == 0 {
            8192
        } else {
            args.analysis_width
        },
        ..DecodeConfig::default()
    };
    let pool = DecodePool::new(&decode_cfg, sizes.clone(), clocks)?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut stats = Vec::new();
    let mut threads = Vec::new();
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    for id in &ids {
        let s = Arc::new(CameraStats::new(id.clone(), DecodePolicy::All));
        let input = pool.add_camera(Arc::clone(&s));
        let source = FileSource {
            path: args.video.clone(),
            looped: !every,
            pacing: if every {
                Pacing::Unpaced
            } else {
                Pacing::RealTime
            },
        };
        threads.push(xl_decode::spawn_file_source(
            source,
            input,
            Arc::clone(&stop),
        )?);
        stats.push(s);
    }
    if every {
        // until every camera has played the file once, its queue is decoded and detection has
        // caught up
        let settled = |s: &CameraStats| {
            let handled = s.frames_decoded.load(Ordering::Relaxed)
                + DropReason::ALL.iter().map(|r| s.dropped(*r)).sum::<u64>();
            matches!(s.status(), CameraStatus::Offline { .. })
                && handled >= s.frames_in.load(Ordering::Relaxed)
        };
        while !stats.iter().all(|s| settled(s)) {
            std::thread::sleep(Duration::from_millis(5));
        }
        vision.engine().drain();
    } else {
        std::thread::sleep(Duration::from_secs(args.seconds));
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu0).as_secs_f64() / secs;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let es = vision.engine().stats();
    let vs = vision.stats();
    let decoded: u64 = stats
        .iter()
        .map(|s| s.frames_decoded.load(Ordering::Relaxed))
        .sum();
    let dropped: u64 = stats
        .iter()
        .map(|s| DropReason::ALL.iter().map(|r| s.dropped(*r)).sum::<u64>())
        .sum();
    let size = sizes.size.load(Ordering::Relaxed);
    let source = stats.first().map(|s| s.stream()).unwrap_or_default();
    let frame_size = format!(
        "{} {}x{}, analysed at {}x{}",
        source.codec.unwrap_or_default(),
        source.width.unwrap_or(0),
        source.height.unwrap_or(0),
        size >> 32,
        size & 0xffff_ffff
    );
    let offered = vs.offered.load(Ordering::Relaxed);
    let mut report = BenchReport {
        cameras: args.cameras,
        seconds: secs,
        video: args.video.display().to_string(),
        frame_size,
        mode: if every {
            "every frame, full work".into()
        } else {
            format!(
                "live, motion gate {}",
                if args.motion { "on" } else { "off" }
            )
        },
        workers: args.workers,
        session_threads: args.session_threads,
        batch: args.batch,
        provider: args.provider.name().into(),
        rate_per_camera: cfg.rate,
        decode: figures_of(decoded, Duration::ZERO, &Histogram::default(), secs),
        motion: figures(&vs.motion, secs),
        motion_pass: if vs.motion.items() > 0 {
            offered as f64 / vs.motion.items() as f64
        } else {
            1.0
        },
        person_model: figures(&es.person, secs),
        face_model: figures(&es.face, secs),
        embedding_model: figures(&es.embed, secs),
        detection: figures_of(es.frames.items(), Duration::ZERO, &es.frames.latency, secs),
        tracking: figures(&vs.tracking, secs),
        tracks_started: vs.tracks_started.load(Ordering::Relaxed),
        dropped_decode: dropped,
        superseded: es.superseded.load(Ordering::Relaxed),
        cpu_cores_busy: cpu,
        peak_rss_mib: peak_rss_mib(),
        ceiling_images_per_second: 0.0,
        ratio_to_ceiling: 0.0,
        frame_ceiling: None,
        frame_ratio_to_ceiling: 0.0,
    };
    drop(pool);
    drop(sizes);
    drop(vision);
    let ceiling_time = Duration::from_secs(args.ceiling_seconds);
    if args.ceiling_seconds > 0 && every && args.faces != FaceMode::Persons {
        let frames = report.detection.items.max(1) as f64;
        let c = xl_detect::ceiling::every_frame(
            &cfg.library(),
            &engine_cfg.person,
            engine_cfg.face.as_ref(),
            engine_cfg.embed.as_deref(),
            &engine_cfg.session,
            args.workers,
            ((size >> 32) as u32, (size & 0xffff_ffff) as u32),
            report.embedding_model.items as f64 / frames,
            ceiling_time,
        )?;
        report.frame_ratio_to_ceiling = report.detection.per_second / c.frames_per_second;
        report.frame_ceiling = Some(c);
    } else if args.ceiling_seconds > 0 {
        let ceiling = xl_detect::ceiling::person_images_per_second(
            &cfg.library(),
            &engine_cfg.person,
            &engine_cfg.session,
            args.workers,
            args.batch,
            ceiling_time,
        )?;
        report.ceiling_images_per_second = ceiling;
        report.ratio_to_ceiling = report.person_model.per_second / ceiling;
    }
    Ok(report)
}

/// The report as a table.
pub fn render(r: &BenchReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "xueliang bench: {} camera(s) x {:.1} s of {} ({})",
        r.cameras, r.seconds, r.video, r.mode
    );
    let _ = writeln!(s, "  video: {}", r.frame_size);
    let _ = writeln!(
        s,
        "  {} inference worker(s) x {} thread(s), batch {}, provider {}, rate {} per camera",
        r.workers,
        r.session_threads,
        r.batch,
        r.provider,
        if r.rate_per_camera > 0.0 {
            format!("{}/s", r.rate_per_camera)
        } else {
            "unlimited".into()
        }
    );
    let _ = writeln!(
        s,
        "\n  {:<26} {:>9} {:>10} {:>9} {:>9} {:>7}",
        "stage", "items", "items/s", "p50 ms", "p99 ms", "cores"
    );
    let row = |s: &mut String, name: &str, f: &StageFigures| {
        if f.items == 0 {
            let _ = writeln!(s, "  {name:<26} {:>9}", "-");
            return;
        }
        let _ = writeln!(
            s,
            "  {:<26} {:>9} {:>10.1} {:>9.2} {:>9.2} {:>7.2}",
            name, f.items, f.per_second, f.p50_ms, f.p99_ms, f.core_share
        );
    };
    row(&mut s, "decode (frames)", &r.decode);
    row(&mut s, "motion gate (frames)", &r.motion);
    row(&mut s, "person model (crops)", &r.person_model);
    row(&mut s, "face model (crops/frames)", &r.face_model);
    row(&mut s, "embedding model (faces)", &r.embedding_model);
    row(&mut s, "detection (frames, e2e)", &r.detection);
    row(&mut s, "tracking (frames)", &r.tracking);
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "  motion gate passed {:.0}% of frames; {} tracks started",
        r.motion_pass * 100.0,
        r.tracks_started
    );
    let _ = writeln!(
        s,
        "  dropped: {} in decode queues, {} frames superseded by newer ones before detection",
        r.dropped_decode, r.superseded
    );
    let _ = writeln!(
        s,
        "  process: {:.2} cores busy on average, peak memory {:.0} MiB",
        r.cpu_cores_busy, r.peak_rss_mib
    );
    if let Some(c) = &r.frame_ceiling {
        let mut models = format!("person {:.1} images/s", c.person_per_second);
        if c.face_per_second > 0.0 {
            let _ = write!(models, ", face {:.1} frames/s", c.face_per_second);
        }
        if c.embed_per_second > 0.0 {
            let _ = write!(models, ", embedding {:.1} faces/s", c.embed_per_second);
        }
        let _ = writeln!(
            s,
            "  ceiling: each model alone on ONNX Runtime, {} x {} thread(s), batch 1: {models}",
            r.workers, r.session_threads
        );
        let _ = writeln!(
            s,
            "  together, at {:.2} faces a frame: {:.1} frames/s; pipeline / ceiling: {:.1} / {:.1} = {:.2}",
            c.faces_per_frame,
            c.frames_per_second,
            r.detection.per_second,
            c.frames_per_second,
            r.frame_ratio_to_ceiling
        );
    }
    if r.ceiling_images_per_second > 0.0 {
        let _ = writeln!(
            s,
            "  ceiling: person model alone on ONNX Runtime, {} x {} thread(s), batch {}: {:.1} images/s",
            r.workers, r.session_threads, r.batch, r.ceiling_images_per_second
        );
        let _ = writeln!(
            s,
            "  pipeline / ceiling: {:.1} / {:.1} = {:.2}",
            r.person_model.per_second, r.ceiling_images_per_second, r.ratio_to_ceiling
        );
    }
    s
}
