//! SSD-MobileNet-v2 COCO (the default person detector): input filling, the anchor grid and box
//! decoding. The arithmetic is that of `models/verify.py`, checked against its recorded outputs
//! in `tests/reference.rs`.

use crate::geom::{BBox, Crop, Scored};
use crate::pixels::Pixels;

/// Input side: the model takes `[N, 300, 300, 3]`.
pub const SIDE: usize = 300;
/// Floats in one image of input.
pub const INPUT_LEN: usize = SIDE * SIDE * 3;
pub const ANCHORS: usize = 1917;
pub const CLASSES: usize = 91;
/// COCO class index of a person.
pub const PERSON: usize = 1;
pub const INPUT_NAME: &str = "Preprocessor/sub:0";
pub const BOXES_OUTPUT: &str = "Squeeze:0";
pub const LOGITS_OUTPUT: &str = "concat_1:0";

/// Fills one image of model input from `crop` of `src`: nearest-neighbour resize to 300x300 with
/// integer source indices `((2i + 1) * size) / 600` (pixel centres), RGB, `v / 127.5 - 1`, NHWC.
pub fn fill_input(src: &impl Pixels, crop: Crop, out: &mut [f32]) {
    assert_eq!(out.len(), INPUT_LEN, "one 300x300x3 image");
    let side = SIDE as u64;
    let at = |i: usize, size: u32| (((2 * i as u64 + 1) * size as u64) / (2 * side)) as u32;
    let xs: [u32; SIDE] = std::array::from_fn(|i| crop.x + at(i, crop.w));
    // v / 127.5 - 1 exactly as the reference computes it in f32, looked up
    let norm: [f32; 256] = std::array::from_fn(|v| v as f32 / 127.5 - 1.0);
    for (y, row) in out.chunks_exact_mut(SIDE * 3).enumerate() {
        let sy = crop.y + at(y, crop.h);
        src.for_row(
            sy,
            SIDE,
            |i| xs[i],
            |i, rgb| {
                let px = &mut row[i * 3..i * 3 + 3];
                px[0] = norm[rgb[0] as usize];
                px[1] = norm[rgb[1] as usize];
                px[2] = norm[rgb[2] as usize];
            },
        );
    }
}

/// An anchor: centre and size, normalised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    pub yc: f32,
    pub xc: f32,
    pub h: f32,
    pub w: f32,
}

impl Anchor {
    /// From `ymin, xmin, ymax, xmax` as TF stores them.
    pub fn from_corners(c: [f32; 4]) -> Anchor {
        Anchor {
            yc: (c[0] + c[2]) / 2.0,
            xc: (c[1] + c[3]) / 2.0,
            h: c[2] - c[0],
            w: c[3] - c[1],
        }
    }
}

/// The TF Object Detection API multiscale anchor grid of `ssd_mobilenet_v2_coco` as
/// `ymin, xmin, ymax, xmax`: feature maps 19, 10, 5, 3, 2, 1; scales 0.2..0.95 linear; the
/// lowest layer has (0.1, ratio 1), (0.2, 2), (0.2, 1/2); the others ratios 1, 2, 1/2, 3, 1/3 and
/// ratio 1 at the geometric mean of this and the next scale. Computed in f64 as TF does.
pub fn anchor_corners() -> Vec<[f32; 4]> {
    const MAPS: [usize; 6] = [19, 10, 5, 3, 2, 1];
    const RATIOS: [f64; 5] = [1.0, 2.0, 0.5, 3.0, 0.3333];
    let n = MAPS.len();
    let mut scales: Vec<f64> = (0..n)
        .map(|i| 0.2 + (0.95 - 0.2) * i as f64 / (n - 1) as f64)
        .collect();
    scales.push(1.0);
    let mut out = Vec::with_capacity(ANCHORS);
    for (layer, &g) in MAPS.iter().enumerate() {
        let (s, s_next) = (scales[layer], scales[layer + 1]);
        let specs: Vec<(f64, f64)> = if layer == 0 {
            vec![(0.1, 1.0), (s, 2.0), (s, 0.5)]
        } else {
            RATIOS
                .iter()
                .map(|&a| (s, a))
                .chain([((s * s_next).sqrt(), 1.0)])
                .collect()
        };
        for y in 0..g {
            for x in 0..g {
                let (yc, xc) = ((y as f64 + 0.5) / g as f64, (x as f64 + 0.5) / g as f64);
                for &(sc, ar) in &specs {
                    let (h, w) = (sc / ar.sqrt(), sc * ar.sqrt());
                    out.push([
                        (yc - h / 2.0) as f32,
                        (xc - w / 2.0) as f32,
                        (yc + h / 2.0) as f32,
                        (xc + w / 2.0) as f32,
                    ]);
                }
            }
        }
    }
    out
}

/// The anchors in decoding form.
pub fn anchors() -> Vec<Anchor> {
    anchor_corners()
        .into_iter()
        .map(Anchor::from_corners)
        .collect()
}

/// A person (or other COCO class) found by the SSD, normalised to the crop it was run on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub anchor: u32,
    pub score: f32,
    /// Normalised `x0, y0, x1, y1` in the model input (0..1, may overshoot slightly).
    pub bbox: BBox,
}

impl Scored for Candidate {
    fn bbox(&self) -> &BBox {
        &self.bbox
    }
    fn score(&self) -> f32 {
        self.score
    }
    fn rank(&self) -> u32 {
        self.anchor
    }
}

/// Decodes one image's outputs (`boxes`: `[1917, 4]` ty, tx, th, tw; `logits`: `[1917, 91]`)
/// into `out` (cleared first): every anchor whose `class` score is above `threshold`, then NMS at
/// `nms_iou`. Allocation-free once `out` has grown.
pub fn decode(
    anchors: &[Anchor],
    boxes: &[f32],
    logits: &[f32],
    class: usize,
    threshold: f32,
    nms_iou: f32,
    out: &mut Vec<Candidate>,
) {
    assert_eq!(boxes.len(), anchors.len() * 4, "box encodings per anchor");
    assert_eq!(
        logits.len(),
        anchors.len() * CLASSES,
        "class logits per anchor"
    );
    out.clear();
    // sigmoid(l) > t  <=>  l > ln(t / (1 - t)): skip the exp for the thousands of misses.
    let logit_threshold = (threshold / (1.0 - threshold)).ln();
    for (i, a) in anchors.iter().enumerate() {
        let logit = logits[i * CLASSES + class];
        if logit <= logit_threshold {
            continue;
        }
        let score = 1.0 / (1.0 + (-logit).exp());
        if score <= threshold {
            continue;
        }
        let t = &boxes[i * 4..i * 4 + 4];
        let yc = t[0] / 10.0 * a.h + a.yc;
        let xc = t[1] / 10.0 * a.w + a.xc;
        let h = (t[2] / 5.0).exp() * a.h;
        let w = (t[3] / 5.0).exp() * a.w;
        out.push(Candidate {
            anchor: i as u32,
            score,
            bbox: BBox::from_centre(xc, yc, w, h),
        });
    }
    crate::geom::nms(out, nms_iou);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_has_1917_anchors_in_tf_order() {
        let a = anchor_corners();
        assert_eq!(a.len(), ANCHORS);
        // first anchor: lowest layer, cell (0, 0), scale 0.1 ratio 1, centre 0.5/19
        let c = 0.5f32 / 19.0;
        assert!((a[0][0] - (c - 0.05)).abs() < 1e-7 && (a[0][3] - (c + 0.05)).abs() < 1e-7);
        // last anchor: 1x1 map, ratio 1 at sqrt(0.95 * 1.0), centred
        let s = (0.95f64).sqrt() as f32;
        let last = a[ANCHORS - 1];
        assert!((last[2] - last[0] - s).abs() < 1e-6);
        assert!(((last[0] + last[2]) / 2.0 - 0.5).abs() < 1e-7);
    }

    #[test]
    fn decode_applies_the_scale_factors_and_the_threshold() {
        let anchors = vec![
            Anchor {
                yc: 0.5,
                xc: 0.5,
                h: 0.2,
                w: 0.1,
            },
            Anchor {
                yc: 0.2,
                xc: 0.2,
                h: 0.1,
                w: 0.1,
            },
        ];
        let mut boxes = vec![0.0; 8];
        boxes[..4].copy_from_slice(&[1.0, -1.0, 0.0, 5.0 * 2f32.ln()]);
        let mut logits = vec![-10.0; 2 * CLASSES];
        logits[PERSON] = 2.0; // anchor 0: score 0.881
        logits[CLASSES + PERSON] = -0.5; // anchor 1: 0.378, below 0.5
        let mut out = Vec::new();
        decode(&anchors, &boxes, &logits, PERSON, 0.5, 0.6, &mut out);
        assert_eq!(out.len(), 1);
        let c = out[0];
        assert_eq!(c.anchor, 0);
        assert!((c.score - 0.880797).abs() < 1e-5);
        // yc = 1/10 * 0.2 + 0.5 = 0.52; xc = -1/10 * 0.1 + 0.5 = 0.49; h = 0.2; w = 2 * 0.1
        let want = BBox::from_centre(0.49, 0.52, 0.2, 0.2);
        for (g, w) in [
            (c.bbox.x0, want.x0),
            (c.bbox.y0, want.y0),
            (c.bbox.x1, want.x1),
            (c.bbox.y1, want.y1),
        ] {
            assert!((g - w).abs() < 1e-6, "{:?} vs {:?}", c.bbox, want);
        }
    }

    #[test]
    fn fill_input_samples_pixel_centres_and_scales_to_minus_one_one() {
        // a 600x2 image: column x has red = x / 3 (0..199), so output column i samples x = 2i+1
        let (w, h) = (600u32, 2u32);
        let data: Vec<u8> = (0..h)
            .flat_map(|_| (0..w).flat_map(|x| [(x / 3) as u8, 255, 0]))
            .collect();
        let img = crate::pixels::RgbView::new(w, h, &data).unwrap();
        let mut out = vec![0.0; INPUT_LEN];
        fill_input(&img, Crop::whole(w, h), &mut out);
        for i in [0usize, 1, 150, 299] {
            let want = ((2 * i + 1) / 3) as f32 / 127.5 - 1.0;
            assert_eq!(out[i * 3], want, "column {i}");
            assert_eq!(out[i * 3 + 1], 1.0);
            assert_eq!(out[i * 3 + 2], -1.0);
        }
    }
}
