//! The three model roles, each one ONNX Runtime session with its reusable input buffer:
//! persons (SSD-MobileNet-v2 by default, or a user's YOLO export), faces (YuNet), face
//! embeddings (SFace). Each call takes a batch of crops and fills caller-owned outputs.

use std::path::{Path, PathBuf};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;
use serde::{Deserialize, Serialize};

use crate::geom::{BBox, Crop};
use crate::pixels::Pixels;
use crate::runtime::{self, SessionOptions};
use crate::yunet::Face;
use crate::{DetectError, face, ssd, yolo, yunet};

/// Which person detector the model file is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PersonModelKind {
    /// The default SSD-MobileNet-v2 COCO export with its TF anchors.
    #[default]
    SsdMobilenet,
    /// An Ultralytics YOLOv5/v7-style head `[N, boxes, 5 + C]`.
    Yolov5,
    /// An Ultralytics YOLOv8/v11-style head `[N, 4 + C, boxes]`.
    Yolov8,
}

/// A person found in a frame, in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Person {
    pub bbox: BBox,
    pub score: f32,
}

/// Person detector settings.
#[derive(Debug, Clone)]
pub struct PersonModelConfig {
    pub kind: PersonModelKind,
    pub path: PathBuf,
    /// Class index of a person in the model's classes (1 for the TF COCO SSD, 0 for YOLO COCO).
    pub class: usize,
    /// Square input side for YOLO models (ignored for the SSD, which is 300).
    pub input_side: u32,
    pub threshold: f32,
    pub nms_iou: f32,
}

impl PersonModelConfig {
    /// The default SSD from the models directory.
    pub fn ssd(models: &Path) -> PersonModelConfig {
        PersonModelConfig {
            kind: PersonModelKind::SsdMobilenet,
            path: models.join("ssd_mobilenet_v2_coco_raw.onnx"),
            class: ssd::PERSON,
            input_side: 300,
            threshold: 0.5,
            nms_iou: 0.6,
        }
    }
}

enum Head {
    Ssd(Vec<ssd::Anchor>, Vec<ssd::Candidate>),
    Yolo(yolo::Layout, Vec<yolo::Candidate>, Vec<yolo::Letterbox>),
}

pub struct PersonModel {
    session: Session,
    cfg: PersonModelConfig,
    head: Head,
    input: Vec<f32>,
}

impl PersonModel {
    pub fn open(
        env: &Environment,
        cfg: PersonModelConfig,
        opts: &SessionOptions,
    ) -> Result<PersonModel, DetectError> {
        let session = runtime::open(env, &cfg.path, opts)?;
        match cfg.kind {
            PersonModelKind::SsdMobilenet => require_outputs(
                &session,
                &cfg.path,
                &[ssd::BOXES_OUTPUT, ssd::LOGITS_OUTPUT],
                "the SSD-MobileNet-v2 export of models/",
            )?,
            PersonModelKind::Yolov5 | PersonModelKind::Yolov8 => {
                require_outputs(&session, &cfg.path, &[], "a YOLO export")?
            }
        }
        let head = match cfg.kind {
            PersonModelKind::SsdMobilenet => Head::Ssd(ssd::anchors(), Vec::new()),
            PersonModelKind::Yolov5 => Head::Yolo(yolo::Layout::V5, Vec::new(), Vec::new()),
            PersonModelKind::Yolov8 => Head::Yolo(yolo::Layout::V8, Vec::new(), Vec::new()),
        };
        Ok(PersonModel {
            session,
            cfg,
            head,
            input: Vec::new(),
        })
    }

    fn image_len(&self) -> usize {
        match self.head {
            Head::Ssd(..) => ssd::INPUT_LEN,
            Head::Yolo(..) => 3 * (self.cfg.input_side as usize).pow(2),
        }
    }

    /// Runs the bare session on `n` images of constant input, no pre- or post-processing: what
    /// ONNX Runtime alone costs, the ceiling the pipeline is measured against.
    pub fn run_bare(&mut self, n: usize) -> Result<(), DetectError> {
        let len = self.image_len();
        self.input.resize(n * len, 0.25);
        let side = self.cfg.input_side as usize;
        let shape = match self.head {
            Head::Ssd(..) => [n, ssd::SIDE, ssd::SIDE, 3],
            Head::Yolo(..) => [n, 3, side, side],
        };
        let tensor = TensorRef::from_array_view((shape, &self.input[..n * len]))
            .map_err(DetectError::run)?;
        self.session
            .run(ort::inputs![tensor])
            .map_err(DetectError::run)?;
        Ok(())
    }

    /// Runs the model once on `crops` (one batch) and appends each crop's persons, in frame
    /// pixels, to the matching entry of `out` (resized to `crops.len()`, entries cleared).
    pub fn detect<P: Pixels>(
        &mut self,
        crops: &[(P, Crop)],
        out: &mut Vec<Vec<Person>>,
    ) -> Result<(), DetectError> {
        out.resize_with(crops.len(), Vec::new);
        out.iter_mut().for_each(Vec::clear);
        if crops.is_empty() {
            return Ok(());
        }
        let (n, len) = (crops.len(), self.image_len());
        self.input.resize(n * len, 0.0);
        let side = self.cfg.input_side;
        if let Head::Yolo(_, _, boxes) = &mut self.head {
            boxes.clear();
        }
        for ((src, crop), buf) in crops.iter().zip(self.input.chunks_exact_mut(len)) {
            match &mut self.head {
                Head::Ssd(..) => ssd::fill_input(src, *crop, buf),
                Head::Yolo(_, _, boxes) => boxes.push(yolo::fill_input(src, *crop, side, buf)),
            }
        }
        let c = &self.cfg;
        let shape = match self.head {
            Head::Ssd(..) => [n, ssd::SIDE, ssd::SIDE, 3],
            Head::Yolo(..) => [n, 3, side as usize, side as usize],
        };
        let tensor =
            TensorRef::from_array_view((shape, &self.input[..])).map_err(DetectError::run)?;
        let outputs = self
            .session
            .run(ort::inputs![tensor])
            .map_err(DetectError::run)?;
        match &mut self.head {
            Head::Ssd(anchors, cands) => {
                let (bl, ll) = (ssd::ANCHORS * 4, ssd::ANCHORS * ssd::CLASSES);
                let boxes = output(&outputs, &c.path, ssd::BOXES_OUTPUT, n * bl)?;
                let logits = output(&outputs, &c.path, ssd::LOGITS_OUTPUT, n * ll)?;
                for (i, (_, crop)) in crops.iter().enumerate() {
                    let (b, l) = (&boxes[i * bl..(i + 1) * bl], &logits[i * ll..(i + 1) * ll]);
                    ssd::decode(anchors, b, l, c.class, c.threshold, c.nms_iou, cands);
                    let (sx, sy) = (crop.w as f32, crop.h as f32);
                    out[i].extend(cands.iter().map(|k| Person {
                        bbox: k.bbox.map(sx, sy, crop.x as f32, crop.y as f32),
                        score: k.score,
                    }));
                }
            }
            Head::Yolo(layout, cands, boxes) => {
                let (shape, data) = outputs[0]
                    .try_extract_tensor::<f32>()
                    .map_err(DetectError::run)?;
                let (count, classes) =
                    yolo::layout_of(shape, *layout).map_err(|reason| DetectError::Model {
                        path: c.path.clone(),
                        reason,
                    })?;
                if c.class >= classes {
                    return Err(DetectError::Model {
                        path: c.path.clone(),
                        reason: format!(
                            "class {} is configured, but the model has {classes} classes",
                            c.class
                        ),
                    });
                }
                let per = data.len() / n;
                for (i, (_, crop)) in crops.iter().enumerate() {
                    yolo::decode(
                        &data[i * per..(i + 1) * per],
                        *layout,
                        count,
                        classes,
                        c.class,
                        c.threshold,
                        c.nms_iou,
                        cands,
                    );
                    out[i].extend(cands.iter().map(|k| {
                        Person {
                            bbox: boxes[i].unmap(&k.bbox).map(
                                1.0,
                                1.0,
                                crop.x as f32,
                                crop.y as f32,
                            ),
                            score: k.score,
                        }
                    }));
                }
            }
        }
        Ok(())
    }
}

/// Face detector settings.
#[derive(Debug, Clone)]
pub struct FaceModelConfig {
    pub path: PathBuf,
    pub threshold: f32,
    pub nms_iou: f32,
}

impl FaceModelConfig {
    pub fn yunet(models: &Path) -> FaceModelConfig {
        FaceModelConfig {
            path: models.join("yunet_2023mar_fp32_dyn.onnx"),
            threshold: 0.6,
            nms_iou: 0.3,
        }
    }
}

pub struct FaceModel {
    session: Session,
    cfg: FaceModelConfig,
    input: Vec<f32>,
    found: Vec<Face>,
}

impl FaceModel {
    pub fn open(
        env: &Environment,
        cfg: FaceModelConfig,
        opts: &SessionOptions,
    ) -> Result<FaceModel, DetectError> {
        let session = runtime::open(env, &cfg.path, opts)?;
        let names: Vec<String> = yunet::STRIDES
            .iter()
            .flat_map(|s| ["cls", "obj", "bbox", "kps"].map(|o| format!("{o}_{s}")))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        require_outputs(&session, &cfg.path, &names, "a YuNet model")?;
        Ok(FaceModel {
            session,
            cfg,
            input: Vec::new(),
            found: Vec::new(),
        })
    }

    /// Runs the bare session on one mid-grey `w` x `h` image (multiples of 32), no pre- or
    /// post-processing: the face model's part of the every-frame ceiling.
    pub fn run_bare(&mut self, w: u32, h: u32) -> Result<(), DetectError> {
        let len = 3 * w as usize * h as usize;
        self.input.resize(len, 128.0);
        let tensor =
            TensorRef::from_array_view(([1, 3, h as usize, w as usize], &self.input[..len]))
                .map_err(DetectError::run)?;
        self.session
            .run(ort::inputs![tensor])
            .map_err(DetectError::run)?;
        Ok(())
    }

    /// Runs YuNet once on `crops`, each resized to fit `size` (multiples of 32; `None`: each
    /// crop's own size padded, which needs all crops the same size) and appends each crop's
    /// faces in frame pixels to the matching entry of `out`. Returns the best score seen.
    pub fn detect<P: Pixels>(
        &mut self,
        crops: &[(P, Crop)],
        size: Option<(u32, u32)>,
        out: &mut Vec<Vec<Face>>,
    ) -> Result<f32, DetectError> {
        out.resize_with(crops.len(), Vec::new);
        out.iter_mut().for_each(Vec::clear);
        let Some((_, first)) = crops.first() else {
            return Ok(0.0);
        };
        let (w, h) = size.unwrap_or_else(|| yunet::padded_size(first.w, first.h));
        let (n, len) = (crops.len(), 3 * w as usize * h as usize);
        self.input.resize(n * len, 0.0);
        let mut scales = Vec::with_capacity(n);
        for ((src, crop), buf) in crops.iter().zip(self.input.chunks_exact_mut(len)) {
            let s = match size {
                None => 1.0,
                Some(_) => (w as f32 / crop.w as f32).min(h as f32 / crop.h as f32),
            };
            yunet::fill_input(src, *crop, s, (w, h), buf);
            scales.push(s);
        }
        let tensor = TensorRef::from_array_view(([n, 3, h as usize, w as usize], &self.input[..]))
            .map_err(DetectError::run)?;
        let outputs = self
            .session
            .run(ort::inputs![tensor])
            .map_err(DetectError::run)?;
        let mut best = 0.0f32;
        let path = &self.cfg.path;
        let mut all = Vec::with_capacity(3);
        for s in yunet::STRIDES {
            // One cell per `stride` x `stride` square of each padded image.
            let cells = n * (w / s) as usize * (h / s) as usize;
            all.push((
                s,
                output(&outputs, path, &format!("cls_{s}"), cells)?,
                output(&outputs, path, &format!("obj_{s}"), cells)?,
                output(&outputs, path, &format!("bbox_{s}"), cells * 4)?,
                output(&outputs, path, &format!("kps_{s}"), cells * 10)?,
            ));
        }
        for (i, (_, crop)) in crops.iter().enumerate() {
            let strides: Vec<yunet::StrideOutputs<'_>> = all
                .iter()
                .map(|&(stride, cls, obj, bbox, kps)| {
                    let cells = cls.len() / n;
                    yunet::StrideOutputs {
                        stride,
                        cls: &cls[i * cells..(i + 1) * cells],
                        obj: &obj[i * cells..(i + 1) * cells],
                        bbox: &bbox[i * cells * 4..(i + 1) * cells * 4],
                        kps: &kps[i * cells * 10..(i + 1) * cells * 10],
                    }
                })
                .collect();
            best = best.max(yunet::decode(
                &strides,
                w,
                self.cfg.threshold,
                self.cfg.nms_iou,
                &mut self.found,
            ));
            let inv = 1.0 / scales[i];
            out[i].extend(
                self.found
                    .iter()
                    .map(|f| f.map(inv, crop.x as f32, crop.y as f32)),
            );
        }
        Ok(best)
    }
}

pub struct EmbedModel {
    session: Session,
    input: Vec<f32>,
    path: PathBuf,
    /// The name of the embedding output (the model's first).
    output: String,
}

impl EmbedModel {
    pub fn sface_path(models: &Path) -> PathBuf {
        models.join("sface_2021dec_fp32_dynbatch.onnx")
    }

    pub fn open(
        env: &Environment,
        path: &Path,
        opts: &SessionOptions,
    ) -> Result<EmbedModel, DetectError> {
        let session = runtime::open(env, path, opts)?;
        require_outputs(&session, path, &[], "an SFace model")?;
        let output = session.outputs()[0].name().to_owned();
        Ok(EmbedModel {
            session,
            input: Vec::new(),
            path: path.to_owned(),
            output,
        })
    }

    /// Runs the bare session on `n` mid-grey faces, no alignment or normalisation: the
    /// embedding model's part of the every-frame ceiling.
    pub fn run_bare(&mut self, n: usize) -> Result<(), DetectError> {
        let len = n * face::INPUT_LEN;
        self.input.resize(len, 128.0);
        let tensor =
            TensorRef::from_array_view(([n, 3, face::SIDE, face::SIDE], &self.input[..len]))
                .map_err(DetectError::run)?;
        self.session
            .run(ort::inputs![tensor])
            .map_err(DetectError::run)?;
        Ok(())
    }

    /// Embeds each face (landmarks in its source's pixels), L2-normalised, into `out`
    /// (`faces.len() * 128` values).
    pub fn embed<P: Pixels>(
        &mut self,
        faces: &[(P, [[f32; 2]; 5])],
        out: &mut Vec<f32>,
    ) -> Result<(), DetectError> {
        out.clear();
        if faces.is_empty() {
            return Ok(());
        }
        let n = faces.len();
        self.input.resize(n * face::INPUT_LEN, 0.0);
        for ((src, lm), buf) in faces
            .iter()
            .zip(self.input.chunks_exact_mut(face::INPUT_LEN))
        {
            face::fill_aligned(src, lm, buf);
        }
        let tensor = TensorRef::from_array_view(([n, 3, face::SIDE, face::SIDE], &self.input[..]))
            .map_err(DetectError::run)?;
        let outputs = self
            .session
            .run(ort::inputs![tensor])
            .map_err(DetectError::run)?;
        let e = output(&outputs, &self.path, &self.output, n * face::EMBEDDING_DIM)?;
        out.extend_from_slice(e);
        for v in out.chunks_exact_mut(face::EMBEDDING_DIM) {
            face::normalize(v);
        }
        Ok(())
    }
}

/// Fails unless the session has outputs, among them `names`: a model file of another kind
/// than the config says fails when opened, naming what it lacks.
fn require_outputs(
    session: &Session,
    path: &Path,
    names: &[&str],
    what: &str,
) -> Result<(), DetectError> {
    let have: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
    let missing: Vec<&str> = names
        .iter()
        .filter(|n| !have.contains(n))
        .copied()
        .collect();
    if !have.is_empty() && missing.is_empty() {
        return Ok(());
    }
    Err(DetectError::Model {
        path: path.to_owned(),
        reason: format!(
            "not {what}: it lacks the output(s) {} (it has: {})",
            if missing.is_empty() {
                "(any)".to_owned()
            } else {
                missing.join(", ")
            },
            have.join(", ")
        ),
    })
}

/// The f32 values of output `name`, which must hold `len` of them (a model with other shapes
/// than its kind's gives an error, not a wrong slice).
fn output<'a>(
    outputs: &'a ort::session::SessionOutputs<'_>,
    path: &Path,
    name: &str,
    len: usize,
) -> Result<&'a [f32], DetectError> {
    let model = |reason: String| DetectError::Model {
        path: path.to_owned(),
        reason,
    };
    let v = outputs
        .get(name)
        .ok_or_else(|| model(format!("no output {name}")))?;
    let (_, data) = v.try_extract_tensor::<f32>().map_err(DetectError::run)?;
    if data.len() != len {
        return Err(model(format!(
            "output {name} has {} values where {len} were expected",
            data.len()
        )));
    }
    Ok(data)
}
