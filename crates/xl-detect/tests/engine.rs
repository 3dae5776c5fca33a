//! The detection engine end to end on real photos turned into decoded frames: persons and faces
//! found where the reference puts them, embeddings attached, results in frame order, and under
//! overload every camera served in turn with waiting frames replaced, never queued.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use xl_core::clock::{RealClocks, SimulatedClocks};
use xl_core::frame::{Frame, PooledBuf};
use xl_core::ids::CameraId;
use xl_detect::engine::{
    CameraPlan, DetectionSink, Detections, Engine, EngineConfig, FaceMode, FaceSettings, Job, Offer,
};
use xl_detect::geom::{BBox, Crop};
use xl_detect::models::{FaceModelConfig, PersonModelConfig};
use xl_detect::pixels::{RgbView, rgb_to_i420};
use xl_detect::runtime::{self, SessionOptions};
use xl_detect::{face, models_dir};

fn photo_frame(name: &str, camera: &str) -> Arc<Frame> {
    let path: PathBuf = models_dir()
        .join("reference-pixels")
        .join(format!("{name}.png"));
    let img = image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup-assets)", path.display()))
        .to_rgb8();
    let (w, h) = (img.width() & !1, img.height() & !1);
    let img = image::imageops::crop_imm(&img, 0, 0, w, h).to_image();
    let i420 = rgb_to_i420(&RgbView::new(w, h, img.as_raw()).unwrap());
    Arc::new(Frame {
        camera: CameraId::new(camera).unwrap(),
        pts_90k: 0,
        received_at: jiff::Timestamp::now(),
        width: w,
        height: h,
        i420: PooledBuf::unpooled(i420),
    })
}

fn config(workers: usize, embed: bool) -> EngineConfig {
    let models = models_dir();
    EngineConfig {
        workers,
        session: SessionOptions::default(),
        batch: 4,
        person: PersonModelConfig::ssd(&models),
        face: Some(FaceModelConfig::yunet(&models)),
        embed: embed.then(|| xl_detect::models::EmbedModel::sface_path(&models)),
        faces: FaceSettings::default(),
        merge_iou: 0.5,
    }
}

#[derive(Default)]
struct Collect(Mutex<Vec<Detections>>);

impl DetectionSink for Collect {
    fn on_detections(&self, d: Detections) {
        self.0.lock().unwrap().push(d);
    }
}

fn cam(s: &str) -> CameraId {
    CameraId::new(s).unwrap()
}

fn close(a: &BBox, b: &BBox, tol: f32) -> bool {
    [(a.x0, b.x0), (a.y0, b.y0), (a.x1, b.x1), (a.y1, b.y1)]
        .iter()
        .all(|(x, y)| (x - y).abs() <= tol)
}

#[test]
fn persons_faces_and_embeddings_on_decoded_frames() {
    let sink = Arc::new(Collect::default());
    let engine = Engine::start(
        config(1, true),
        &runtime::default_library(),
        sink.clone(),
        RealClocks::shared(),
    )
    .unwrap();
    let plan = CameraPlan {
        rate: 0.0,
        faces: FaceMode::Frame,
        embed: true,
        lossless: true,
    };
    engine.set_camera(cam("court"), plan);
    engine.set_camera(cam("gate"), plan);
    let court = photo_frame("basketball1.png", "court");
    // whole frame, then the same frame looked at through two crops around the players
    assert_eq!(
        engine.offer(
            &cam("court"),
            Job {
                frame: court.clone(),
                crops: vec![]
            }
        ),
        Offer::Queued
    );
    let crops = vec![
        Crop {
            x: 0,
            y: 0,
            w: 300,
            h: 480,
        },
        Crop {
            x: 340,
            y: 0,
            w: 300,
            h: 480,
        },
    ];
    engine.offer(
        &cam("court"),
        Job {
            frame: court,
            crops,
        },
    );
    engine.offer(
        &cam("gate"),
        Job {
            frame: photo_frame("obama.jpg", "gate"),
            crops: vec![],
        },
    );
    engine.offer(
        &cam("gate"),
        Job {
            frame: photo_frame("obama2.jpg", "gate"),
            crops: vec![],
        },
    );
    engine.drain();
    let got = std::mem::take(&mut *sink.0.lock().unwrap());
    assert_eq!(got.len(), 4);
    let by = |c: &str| {
        got.iter()
            .filter(|d| d.camera.as_str() == c)
            .collect::<Vec<_>>()
    };
    let (court, gate) = (by("court"), by("gate"));
    assert_eq!(court.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![0, 1]);

    // Whole frame: the reference's two players (I420 round trip moves pixels by a grey level,
    // so boxes within 3 px and scores within 0.05 rather than the reference test's exactness).
    let whole = &court[0].persons;
    assert_eq!(whole.len(), 2, "{whole:?}");
    assert!(
        close(&whole[0].bbox, &BBox::new(35.9, 79.4, 172.8, 479.8), 3.0),
        "{whole:?}"
    );
    assert!((whole[0].score - 0.988).abs() < 0.05);
    // Through crops the players are larger in the model input: both still found, in frame pixels.
    let cropped = &court[1].persons;
    assert!(
        cropped.iter().any(|p| p.bbox.iou(&whole[0].bbox) > 0.7),
        "{cropped:?}"
    );
    assert!(cropped.iter().any(|p| p.bbox.x0 > 400.0), "{cropped:?}");
    // The face on the court (whole-frame mode) with its embedding.
    let f = &court[0].faces;
    assert_eq!(
        f.len(),
        1,
        "{:?}",
        f.iter().map(|f| f.face).collect::<Vec<_>>()
    );
    assert!(close(
        &f[0].face.bbox,
        &BBox::new(72.2, 92.1, 104.2, 133.4),
        3.0
    ));
    assert_eq!(
        f[0].embedding.as_ref().map(Vec::len),
        Some(face::EMBEDDING_DIM)
    );

    // The two photos of one person match.
    let e = |d: &Detections| {
        d.faces
            .iter()
            .max_by(|a, b| a.face.bbox.area().total_cmp(&b.face.bbox.area()))
            .unwrap()
            .embedding
            .clone()
            .unwrap()
    };
    let cos = face::cosine(&e(gate[0]), &e(gate[1]));
    assert!(cos > face::MATCH_COSINE, "obama vs obama2 cosine {cos}");
}

#[test]
fn overload_serves_every_camera_in_turn_and_replaces_waiting_frames() {
    struct Count(Mutex<HashMap<String, Vec<u64>>>);
    impl DetectionSink for Count {
        fn on_detections(&self, d: Detections) {
            self.0
                .lock()
                .unwrap()
                .entry(d.camera.as_str().to_owned())
                .or_default()
                .push(d.seq);
        }
    }
    let sink = Arc::new(Count(Mutex::new(HashMap::new())));
    let mut cfg = config(1, false);
    cfg.face = None;
    let engine = Engine::start(
        cfg,
        &runtime::default_library(),
        sink.clone(),
        RealClocks::shared(),
    )
    .unwrap();
    let cams: Vec<CameraId> = (0..8).map(|i| cam(&format!("c{i}"))).collect();
    for c in &cams {
        engine.set_camera(
            c.clone(),
            CameraPlan {
                rate: 0.0,
                faces: FaceMode::Off,
                embed: false,
                lossless: false,
            },
        );
    }
    let frame = photo_frame("basketball1.png", "c0");
    // Offer far faster than one worker can detect: 8 cameras, every 2 ms, until three rounds
    // have been served (however fast this machine detects).
    let mut replaced = 0;
    let start = std::time::Instant::now();
    let mut offered = 0;
    let served = || sink.0.lock().unwrap().values().map(Vec::len).sum::<usize>();
    while served() < 3 * cams.len() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{} served in 2 minutes",
            served()
        );
        for c in &cams {
            offered += 1;
            if engine.offer(
                c,
                Job {
                    frame: frame.clone(),
                    crops: vec![],
                },
            ) == Offer::Replaced
            {
                replaced += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    engine.drain();
    let served = sink.0.lock().unwrap().clone();
    let counts: Vec<usize> = cams
        .iter()
        .map(|c| served.get(c.as_str()).map_or(0, Vec::len))
        .collect();
    let total: usize = counts.iter().sum();
    assert_eq!(
        total + replaced,
        offered,
        "every offered frame is either detected or replaced"
    );
    assert!(
        replaced > total,
        "overloaded: most frames replaced ({replaced} replaced, {total} served)"
    );
    let (min, max) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
    assert!(
        min >= 2 && max - min <= 2,
        "round robin: every camera served about equally: {counts:?}"
    );
    assert_eq!(
        engine
            .stats()
            .superseded
            .load(std::sync::atomic::Ordering::Relaxed) as usize,
        replaced
    );
    for (camera, taken, superseded) in engine.camera_counts() {
        let got = served.get(camera.as_str()).map_or(0, Vec::len) as u64;
        assert_eq!(taken, got, "{camera}: frames taken = frames delivered");
        assert!(
            superseded > 0,
            "{camera}: replaced frames counted per camera"
        );
    }
    for seqs in served.values() {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    }
}

#[test]
fn a_camera_with_a_rate_is_not_served_more_often() {
    let sink = Arc::new(Collect::default());
    let mut cfg = config(1, false);
    cfg.face = None;
    let engine = Engine::start(
        cfg,
        &runtime::default_library(),
        sink.clone(),
        RealClocks::shared(),
    )
    .unwrap();
    engine.set_camera(
        cam("slow"),
        CameraPlan {
            rate: 4.0,
            faces: FaceMode::Off,
            embed: false,
            lossless: false,
        },
    );
    let frame = photo_frame("basketball1.png", "slow");
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(1000) {
        engine.offer(
            &cam("slow"),
            Job {
                frame: frame.clone(),
                crops: vec![],
            },
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    engine.drain();
    let secs = start.elapsed().as_secs_f64();
    let n = sink.0.lock().unwrap().len();
    // At most 4 a second: the first at once, then one every 250 ms at the soonest (fewer where
    // the machine is slow; no lower bound on speed). At least two: frames kept coming after
    // the first was taken, and the last one waiting is served by `drain`.
    let most = 1 + (secs * 4.0).floor() as usize;
    assert!(
        (2..=most).contains(&n),
        "{n} detections in {secs:.2} s at rate 4 (at most {most})"
    );
}

#[test]
fn a_provider_missing_from_the_runtime_fails_at_start_with_its_name() {
    // The CPU build of ONNX Runtime that setup fetches has no CUDA, TensorRT or OpenVINO.
    for provider in [
        runtime::Provider::Cuda,
        runtime::Provider::Tensorrt,
        runtime::Provider::Openvino,
    ] {
        let mut cfg = config(1, false);
        cfg.session.provider = provider.clone();
        let err = match Engine::start(
            cfg,
            &runtime::default_library(),
            Arc::new(Collect::default()),
            RealClocks::shared(),
        ) {
            Ok(_) => panic!("{provider:?} started on a CPU-only ONNX Runtime"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(provider.name()) && err.contains("not available"),
            "{err}"
        );
    }
}

#[test]
fn a_missing_model_file_is_named() {
    let mut cfg = config(1, false);
    cfg.person.path = PathBuf::from("/nonexistent/persons.onnx");
    let err = Engine::start(
        cfg,
        &runtime::default_library(),
        Arc::new(Collect::default()),
        RealClocks::shared(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("/nonexistent/persons.onnx") && err.contains("no such file"),
        "{err}"
    );
}

/// A model path that holds another kind of model (a config mistake) fails at start, naming
/// the file and what it lacks, instead of failing (or panicking) on every frame.
#[test]
fn a_model_of_another_kind_is_refused_at_start() {
    let models = models_dir();
    let (yunet, sface) = (
        FaceModelConfig::yunet(&models).path,
        xl_detect::models::EmbedModel::sface_path(&models),
    );
    let start = |cfg: EngineConfig| match Engine::start(
        cfg,
        &runtime::default_library(),
        Arc::new(Collect::default()),
        RealClocks::shared(),
    ) {
        Ok(_) => panic!("started with a wrong model"),
        Err(e) => e.to_string(),
    };
    let mut cfg = config(1, false);
    cfg.person.path = yunet.clone();
    let err = start(cfg);
    assert!(
        err.contains(&*yunet.to_string_lossy())
            && err.contains("not the SSD-MobileNet-v2")
            && err.contains("Squeeze:0"),
        "{err}"
    );
    let mut cfg = config(1, false);
    cfg.face.as_mut().unwrap().path = sface;
    let err = start(cfg);
    assert!(
        err.contains("not a YuNet model") && err.contains("cls_8"),
        "{err}"
    );
}

#[test]
fn faces_are_found_on_the_upper_part_of_persons() {
    let sink = Arc::new(Collect::default());
    let engine = Engine::start(
        config(1, false),
        &runtime::default_library(),
        sink.clone(),
        RealClocks::shared(),
    )
    .unwrap();
    let plan = CameraPlan {
        rate: 0.0,
        faces: FaceMode::Persons,
        embed: false,
        lossless: true,
    };
    engine.set_camera(cam("court"), plan);
    engine.offer(
        &cam("court"),
        Job {
            frame: photo_frame("basketball1.png", "court"),
            crops: vec![],
        },
    );
    engine.drain();
    let got = std::mem::take(&mut *sink.0.lock().unwrap());
    let faces: Vec<_> = got[0].faces.iter().map(|f| f.face).collect();
    // the player's face, found in the head crop of his person box and mapped back to the frame
    assert!(
        faces
            .iter()
            .any(|f| f.bbox.iou(&BBox::new(72.2, 92.1, 104.2, 133.4)) > 0.5),
        "{faces:?}"
    );
}

/// The every-frame ceiling measures each model on its real session (a whole 768x576 frame for
/// YuNet, one 112x112 face for SFace) and combines them as a frame's sum of run times.
#[test]
fn the_every_frame_ceiling_runs_each_model_and_sums_a_frames_runs() {
    let cfg = config(2, true);
    let embed = cfg.embed.clone().unwrap();
    let measure = |faces_per_frame: f64| {
        xl_detect::ceiling::every_frame(
            &runtime::default_library(),
            &cfg.person,
            cfg.face.as_ref(),
            Some(&embed),
            &cfg.session,
            2,
            (768, 576),
            faces_per_frame,
            Duration::from_millis(300),
        )
        .unwrap()
    };
    let c = measure(2.0);
    for rate in [c.person_per_second, c.face_per_second, c.embed_per_second] {
        assert!(rate.is_finite() && rate > 0.0, "{c:?}");
    }
    let frame_secs = 1.0 / c.person_per_second + 1.0 / c.face_per_second + 2.0 / c.embed_per_second;
    assert!(
        (c.frames_per_second * frame_secs - 1.0).abs() < 1e-9,
        "{c:?}"
    );
    assert!(c.frames_per_second < c.person_per_second.min(c.face_per_second));
    // persons only: the person model's own rate
    let p = xl_detect::ceiling::every_frame(
        &runtime::default_library(),
        &cfg.person,
        None,
        None,
        &cfg.session,
        1,
        (768, 576),
        0.0,
        Duration::from_millis(200),
    )
    .unwrap();
    assert!(
        (p.frames_per_second / p.person_per_second - 1.0).abs() < 1e-9,
        "{p:?}"
    );
    assert_eq!((p.face_per_second, p.embed_per_second), (0.0, 0.0));
}

#[test]
fn a_camera_with_a_rate_is_due_again_on_the_engines_clocks_not_on_real_time() {
    let clocks = SimulatedClocks::new("2024-03-01T08:00:00Z".parse().unwrap());
    let sink = Arc::new(Collect::default());
    let mut cfg = config(1, false);
    cfg.face = None;
    let engine = Engine::start(
        cfg,
        &runtime::default_library(),
        sink.clone(),
        clocks.shared(),
    )
    .unwrap();
    engine.set_camera(
        cam("slow"),
        CameraPlan {
            rate: 4.0,
            faces: FaceMode::Off,
            embed: false,
            lossless: false,
        },
    );
    let frame = photo_frame("basketball1.png", "slow");
    let offer = || {
        engine.offer(
            &cam("slow"),
            Job {
                frame: frame.clone(),
                crops: vec![],
            },
        )
    };
    let delivered = || sink.0.lock().unwrap().len();
    let wait_for = |n: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while delivered() < n && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        delivered()
    };
    // due at once
    offer();
    assert_eq!(wait_for(1), 1);
    // then not again however much real time passes while the clocks stand still ...
    offer();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(delivered(), 1, "served again on real time");
    clocks.advance(Duration::from_millis(249));
    offer();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(delivered(), 1, "served again before 1/rate on the clocks");
    // ... and as soon as 1/rate (250 ms) has passed on them
    clocks.advance(Duration::from_millis(1));
    assert_eq!(wait_for(2), 2);
}
