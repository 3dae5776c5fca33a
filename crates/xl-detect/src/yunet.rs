//! YuNet 2023mar (the default face detector): input filling and decoding of its three strides.
//! The arithmetic is that of `models/verify.py`, checked in `tests/reference.rs`.

use crate::geom::{BBox, Crop, Scored};
use crate::pixels::Pixels;

pub const STRIDES: [u32; 3] = [8, 16, 32];
pub const INPUT_NAME: &str = "input";

/// A face: box, score and five landmarks (right eye, left eye, nose tip, right and left mouth
/// corner), in pixels of the image it was found in.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Face {
    pub score: f32,
    pub bbox: BBox,
    pub landmarks: [[f32; 2]; 5],
    /// Stride and cell it came from: breaks NMS ties deterministically.
    #[serde(skip)]
    pub cell: u32,
}

impl Scored for Face {
    fn bbox(&self) -> &BBox {
        &self.bbox
    }
    fn score(&self) -> f32 {
        self.score
    }
    fn rank(&self) -> u32 {
        self.cell
    }
}

impl Face {
    /// Maps a face found in a resized crop back to frame pixels.
    pub fn map(&self, s: f32, dx: f32, dy: f32) -> Face {
        let mut f = *self;
        f.bbox = self.bbox.map(s, s, dx, dy);
        for p in &mut f.landmarks {
            *p = [p[0] * s + dx, p[1] * s + dy];
        }
        f
    }
}

/// The input size for content of `w` x `h`: each side rounded up to a multiple of 32.
pub fn padded_size(w: u32, h: u32) -> (u32, u32) {
    (w.div_ceil(32) * 32, h.div_ceil(32) * 32)
}

/// Fills one `[3, H, W]` BGR 0..255 image of input: `crop` of `src` resized by nearest neighbour
/// with `scale` (1.0 = native size) at the top-left, zeros to the right and below. `(W, H)` must
/// be multiples of 32 and hold the scaled crop.
pub fn fill_input(src: &impl Pixels, crop: Crop, scale: f32, size: (u32, u32), out: &mut [f32]) {
    let (w, h) = (size.0 as usize, size.1 as usize);
    assert!(
        w % 32 == 0 && h % 32 == 0,
        "YuNet input sides are multiples of 32"
    );
    assert_eq!(out.len(), 3 * w * h, "one [3, H, W] image");
    let cw = ((crop.w as f32 * scale).round() as usize).min(w);
    let ch = ((crop.h as f32 * scale).round() as usize).min(h);
    let inv = 1.0 / scale;
    let (b_plane, rest) = out.split_at_mut(w * h);
    let (g_plane, r_plane) = rest.split_at_mut(w * h);
    for y in 0..h {
        let (b, g, r) = (
            &mut b_plane[y * w..(y + 1) * w],
            &mut g_plane[y * w..(y + 1) * w],
            &mut r_plane[y * w..(y + 1) * w],
        );
        if y >= ch {
            b.fill(0.0);
            g.fill(0.0);
            r.fill(0.0);
            continue;
        }
        let sy = crop.y + (((y as f32 + 0.5) * inv) as u32).min(crop.h - 1);
        if scale == 1.0 {
            src.row_planar(sy, crop.x, &mut b[..cw], &mut g[..cw], &mut r[..cw]);
        } else {
            let x_of = |x: usize| crop.x + (((x as f32 + 0.5) * inv) as u32).min(crop.w - 1);
            src.for_row(sy, cw, x_of, |x, [pr, pg, pb]| {
                b[x] = pb as f32;
                g[x] = pg as f32;
                r[x] = pr as f32;
            });
        }
        b[cw..].fill(0.0);
        g[cw..].fill(0.0);
        r[cw..].fill(0.0);
    }
}

/// One stride's outputs for one image: `cls` and `obj` one value a cell, `bbox` four, `kps` ten.
#[derive(Debug, Clone, Copy)]
pub struct StrideOutputs<'a> {
    pub stride: u32,
    pub cls: &'a [f32],
    pub obj: &'a [f32],
    pub bbox: &'a [f32],
    pub kps: &'a [f32],
}

/// Decodes the three strides of one image of input width `input_w` into `out` (cleared first):
/// `score = sqrt(clip(cls) * clip(obj))` above `threshold`, boxes and landmarks in input pixels,
/// then NMS at `nms_iou`. The highest score seen (above threshold or not) is returned.
pub fn decode(
    strides: &[StrideOutputs<'_>],
    input_w: u32,
    threshold: f32,
    nms_iou: f32,
    out: &mut Vec<Face>,
) -> f32 {
    out.clear();
    let mut best = 0.0f32;
    let mut base = 0u32;
    for so in strides {
        let s = so.stride as f32;
        let cols = (input_w / so.stride) as usize;
        let cells = so.cls.len();
        assert!(
            so.obj.len() == cells && so.bbox.len() == cells * 4 && so.kps.len() == cells * 10,
            "stride {} outputs disagree on the number of cells",
            so.stride
        );
        for i in 0..cells {
            let score = (so.cls[i].clamp(0.0, 1.0) * so.obj[i].clamp(0.0, 1.0)).sqrt();
            best = best.max(score);
            if score <= threshold {
                continue;
            }
            let (r, c) = ((i / cols) as f32, (i % cols) as f32);
            let b = &so.bbox[i * 4..i * 4 + 4];
            let (cx, cy) = ((c + b[0]) * s, (r + b[1]) * s);
            let (w, h) = (b[2].exp() * s, b[3].exp() * s);
            let k = &so.kps[i * 10..i * 10 + 10];
            let mut landmarks = [[0.0; 2]; 5];
            for (j, p) in landmarks.iter_mut().enumerate() {
                *p = [(k[2 * j] + c) * s, (k[2 * j + 1] + r) * s];
            }
            out.push(Face {
                score,
                bbox: BBox::from_centre(cx, cy, w, h),
                landmarks,
                cell: base + i as u32,
            });
        }
        base += cells as u32;
    }
    crate::geom::nms(out, nms_iou);
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_size_rounds_up_to_32() {
        assert_eq!(padded_size(640, 360), (640, 384));
        assert_eq!(padded_size(768, 576), (768, 576));
        assert_eq!(padded_size(1, 33), (32, 64));
    }

    #[test]
    fn decode_places_a_cell_and_its_landmarks() {
        // input 64x32: stride 8 has 8x4 cells; a face in cell (row 2, col 3)
        let cells = 32;
        let (mut cls, mut obj) = (vec![0.0; cells], vec![0.0; cells]);
        let (mut bbox, mut kps) = (vec![0.0; cells * 4], vec![0.0; cells * 10]);
        let i = 2 * 8 + 3;
        cls[i] = 0.81;
        obj[i] = 1.2; // clipped to 1
        bbox[i * 4..i * 4 + 4].copy_from_slice(&[0.5, 0.25, 2f32.ln(), 0.0]);
        kps[i * 10] = 1.0; // first landmark x = (1 + 3) * 8
        let strides = [StrideOutputs {
            stride: 8,
            cls: &cls,
            obj: &obj,
            bbox: &bbox,
            kps: &kps,
        }];
        let mut out = Vec::new();
        let best = decode(&strides, 64, 0.6, 0.3, &mut out);
        assert!((best - 0.9).abs() < 1e-6);
        assert_eq!(out.len(), 1);
        let f = out[0];
        // centre ((3 + 0.5) * 8, (2 + 0.25) * 8) = (28, 18); size 16 x 8
        assert_eq!(f.bbox, BBox::new(20.0, 14.0, 36.0, 22.0));
        assert_eq!(f.landmarks[0], [32.0, 16.0]);
        assert_eq!(f.landmarks[4], [24.0, 16.0]);
    }

    #[test]
    fn fill_input_is_bgr_planar_with_zero_padding() {
        let data = [10u8, 20, 30, 40, 50, 60]; // 2x1 RGB
        let img = crate::pixels::RgbView::new(2, 1, &data).unwrap();
        let mut out = vec![-1.0; 3 * 32 * 32];
        fill_input(&img, Crop::whole(2, 1), 1.0, (32, 32), &mut out);
        let plane = 32 * 32;
        assert_eq!([out[0], out[plane], out[2 * plane]], [30.0, 20.0, 10.0]);
        assert_eq!(
            [out[1], out[plane + 1], out[2 * plane + 1]],
            [60.0, 50.0, 40.0]
        );
        assert_eq!(out[2], 0.0);
        assert_eq!(out[32], 0.0);
    }
}
