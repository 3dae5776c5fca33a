//! A YOLO-family person detector selected by `kind`: both head layouts decoded through ONNX
//! Runtime on small models this test builds (`make_yolo.py`), with letterboxing undone.

use std::path::PathBuf;
use std::process::Command;

use xl_detect::geom::{BBox, Crop};
use xl_detect::models::{PersonModel, PersonModelConfig, PersonModelKind};
use xl_detect::pixels::RgbView;
use xl_detect::runtime::{self, SessionOptions};

fn build_models() -> PathBuf {
    let out = std::env::temp_dir().join(format!("xl-yolo-{}", std::process::id()));
    let python = xl_detect::cache_dir().join("venvs/models-onnx/bin/python");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/make_yolo.py");
    let st = Command::new(&python)
        .arg(&script)
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup-assets)", python.display()));
    assert!(st.success(), "make_yolo.py failed");
    out
}

fn config(kind: PersonModelKind, path: PathBuf) -> PersonModelConfig {
    PersonModelConfig {
        kind,
        path,
        class: 0,
        input_side: 64,
        threshold: 0.5,
        nms_iou: 0.45,
    }
}

#[test]
fn yolov5_and_yolov8_heads_give_the_same_persons_in_frame_pixels() {
    let dir = build_models();
    let env = runtime::init(&runtime::default_library()).unwrap();
    // A 160x80 frame; the detector looks at the crop x 32.., y 8.., 128x64: letterbox scale 0.5,
    // centred with 16 rows of padding above. Input (16, 32) +- (4, 8) maps back to crop
    // ((16 - 0) * 2, (32 - 16) * 2) +- (8, 16), then + (32, 8) to frame pixels.
    let rgb = vec![90u8; 160 * 80 * 3];
    let frame = RgbView::new(160, 80, &rgb).unwrap();
    let crop = Crop {
        x: 32,
        y: 8,
        w: 128,
        h: 64,
    };
    for (kind, file) in [
        (PersonModelKind::Yolov8, "yolov8_tiny.onnx"),
        (PersonModelKind::Yolov5, "yolov5_tiny.onnx"),
    ] {
        let mut m = PersonModel::open(
            &env,
            config(kind, dir.join(file)),
            &SessionOptions::default(),
        )
        .unwrap();
        let mut out = Vec::new();
        m.detect(&[(frame, crop), (frame, crop)], &mut out).unwrap();
        assert_eq!(out.len(), 2, "{kind:?}: one result per crop");
        for persons in &out {
            assert_eq!(persons.len(), 1, "{kind:?}: {persons:?}");
            assert!((persons[0].score - 0.9).abs() < 1e-6, "{kind:?}");
            assert_eq!(
                persons[0].bbox,
                BBox::new(56.0, 24.0, 72.0, 56.0),
                "{kind:?}"
            );
        }
    }
    // A head of the wrong layout is refused with the reason.
    let mut wrong = PersonModel::open(
        &env,
        config(PersonModelKind::Yolov8, dir.join("yolov5_tiny.onnx")),
        &SessionOptions::default(),
    )
    .unwrap();
    let err = wrong.detect(&[(frame, crop)], &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("YOLOv8 head"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
