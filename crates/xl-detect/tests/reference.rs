//! The Rust pre- and post-processing against the Python reference decoders: the outputs that
//! `models/verify.py` recorded in `models/reference/*.json` on real photos (fetched by
//! `scripts/setup-assets` from the packages `scripts/media.toml` names, decoded by `models/fetch`). Same boxes within a
//! pixel, same scores within 1e-3, and the SFace embeddings within 1e-3.
//!
//! `XUELIANG_TEST_PROVIDER` (cpu, cuda, tensorrt, openvino; default cpu) runs the same checks on
//! another execution provider, with an ONNX Runtime build that has it (`ORT_DYLIB_PATH`);
//! `XUELIANG_TEST_TF32=1` turns TensorFloat-32 on for cuda.

use std::path::PathBuf;

use serde_json::Value;
use xl_detect::geom::Crop;
use xl_detect::models::{EmbedModel, FaceModel, FaceModelConfig, PersonModel, PersonModelConfig};
use xl_detect::pixels::RgbView;
use xl_detect::runtime::{self, SessionOptions};
use xl_detect::{face, models_dir, ssd};

const TOL: f64 = 1e-3;

/// The reference images exactly as Pillow decoded them when the references were recorded
/// (`models/fetch` leaves them there): another JPEG decoder differs by a grey level here and
/// there, which moves SFace embeddings by about 3e-3 and would hide a real regression.
fn pixels_path(name: &str) -> PathBuf {
    models_dir()
        .join("reference-pixels")
        .join(format!("{name}.png"))
}

fn reference(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/reference")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

struct Image {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Image {
    fn load(name: &str) -> Image {
        let path = pixels_path(name);
        let img = image::open(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup-assets)", path.display()))
            .to_rgb8();
        Image {
            width: img.width(),
            height: img.height(),
            rgb: img.into_raw(),
        }
    }

    fn view(&self) -> RgbView<'_> {
        RgbView::new(self.width, self.height, &self.rgb).unwrap()
    }
}

fn env() -> ort::environment::Environment {
    runtime::init(&runtime::default_library()).expect("ONNX Runtime (run scripts/setup-assets)")
}

/// Sessions on the provider `XUELIANG_TEST_PROVIDER` names (default cpu).
fn opts() -> SessionOptions {
    let provider = match std::env::var("XUELIANG_TEST_PROVIDER").as_deref() {
        Ok("") | Err(_) => runtime::Provider::Cpu,
        Ok(name) => serde_json::from_value(Value::String(name.to_owned()))
            .unwrap_or_else(|e| panic!("XUELIANG_TEST_PROVIDER={name}: {e}")),
    };
    SessionOptions {
        provider,
        tf32: std::env::var("XUELIANG_TEST_TF32").is_ok_and(|v| v == "1"),
        ..SessionOptions::default()
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

fn assert_close(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got:.6}, reference {want:.6} (tolerance {tol})"
    );
}

/// Score within 1e-3 and box corners within a pixel of a reference detection.
fn assert_detection(name: &str, score: f32, bbox: &xl_detect::geom::BBox, want: &Value) {
    assert_close(
        &format!("{name} score"),
        score as f64,
        f(&want["score"]),
        TOL,
    );
    let b = &want["box_xyxy"];
    for (i, v) in [bbox.x0, bbox.y0, bbox.x1, bbox.y1].into_iter().enumerate() {
        assert_close(&format!("{name} box[{i}]"), v as f64, f(&b[i]), 1.0);
    }
}

#[test]
fn ssd_persons_match_the_python_reference() {
    let env = env();
    let mut model =
        PersonModel::open(&env, PersonModelConfig::ssd(&models_dir()), &opts()).unwrap();
    let refs = reference("ssd_mobilenet_v2_coco.json");
    let mut out = Vec::new();
    for (name, want) in refs["images"].as_object().unwrap() {
        let img = Image::load(name);
        model
            .detect(
                &[(img.view(), Crop::whole(img.width, img.height))],
                &mut out,
            )
            .unwrap();
        let got = &out[0];
        let want = want["persons"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{name}: persons {got:?}");
        for (g, w) in got.iter().zip(want) {
            assert_detection(name, g.score, &g.bbox, w);
        }
    }
}

#[test]
fn ssd_anchor_generator_matches_the_anchor_file() {
    let path = models_dir().join("ssd_mobilenet_v2_coco_anchors_ymin_xmin_ymax_xmax.f32");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let generated = ssd::anchor_corners();
    assert_eq!(file.len(), generated.len() * 4);
    let worst = generated
        .iter()
        .flatten()
        .zip(&file)
        .map(|(g, f)| (g - f).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1e-6, "anchors differ by {worst}");
}

#[test]
fn yunet_faces_match_the_python_reference() {
    let env = env();
    let mut model = FaceModel::open(&env, FaceModelConfig::yunet(&models_dir()), &opts()).unwrap();
    let refs = reference("yunet_2023mar.json");
    let mut out = Vec::new();
    for (name, want) in refs["images"].as_object().unwrap() {
        let img = Image::load(name);
        let best = model
            .detect(
                &[(img.view(), Crop::whole(img.width, img.height))],
                None,
                &mut out,
            )
            .unwrap();
        assert_close(
            &format!("{name} max score"),
            best as f64,
            f(&want["raw"]["max_score"]),
            TOL,
        );
        let got = &out[0];
        let want = want["faces"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{name}: faces {got:?}");
        for (g, w) in got.iter().zip(want) {
            assert_detection(name, g.score, &g.bbox, w);
            for (j, p) in g.landmarks.iter().enumerate() {
                for k in 0..2 {
                    assert_close(
                        &format!("{name} landmark {j}"),
                        p[k] as f64,
                        f(&w["landmarks_xy"][j][k]),
                        1.0,
                    );
                }
            }
        }
    }
}

#[test]
fn sface_embeddings_match_the_reference_and_tell_obama_from_biden() {
    let env = env();
    let opts = opts();
    let mut faces = FaceModel::open(&env, FaceModelConfig::yunet(&models_dir()), &opts).unwrap();
    let mut embed = EmbedModel::open(&env, &EmbedModel::sface_path(&models_dir()), &opts).unwrap();
    let refs = reference("sface_2021dec.json");
    let labels: Vec<&str> = refs["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut embeddings = Vec::new();
    let mut found = Vec::new();
    let mut e = Vec::new();
    for (name, want) in labels.iter().zip(refs["faces"].as_array().unwrap()) {
        let img = Image::load(name);
        faces
            .detect(
                &[(img.view(), Crop::whole(img.width, img.height))],
                None,
                &mut found,
            )
            .unwrap();
        let largest = found[0]
            .iter()
            .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))
            .expect("a face");
        embed
            .embed(&[(img.view(), largest.landmarks)], &mut e)
            .unwrap();
        assert_eq!(e.len(), face::EMBEDDING_DIM);
        for (i, w) in want["embedding_first8"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            assert_close(&format!("{name} embedding[{i}]"), e[i] as f64, f(w), TOL);
        }
        embeddings.push(e.clone());
    }
    let cos = refs["cosine"].as_array().unwrap();
    for i in 0..labels.len() {
        for j in 0..labels.len() {
            let got = face::cosine(&embeddings[i], &embeddings[j]) as f64;
            assert_close(
                &format!("cosine {} {}", labels[i], labels[j]),
                got,
                f(&cos[i][j]),
                TOL,
            );
        }
    }
    // The three full obama photos are closer to each other than any of them is to biden.
    let idx = |n: &str| labels.iter().position(|l| *l == n).unwrap();
    let obamas = ["obama.jpg", "obama2.jpg", "obama3.jpg"].map(idx);
    let biden = idx("biden.jpg");
    let c = |a: usize, b: usize| face::cosine(&embeddings[a], &embeddings[b]);
    let worst_same = obamas
        .iter()
        .flat_map(|&a| {
            obamas
                .iter()
                .filter(move |&&b| b != a)
                .map(move |&b| c(a, b))
        })
        .fold(1.0f32, f32::min);
    let best_other = obamas.iter().map(|&a| c(a, biden)).fold(-1.0f32, f32::max);
    assert!(
        worst_same > best_other,
        "same person {worst_same} vs biden {best_other}"
    );
    assert!(worst_same > face::MATCH_COSINE && best_other < face::MATCH_COSINE);
}
