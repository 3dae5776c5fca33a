//! YOLO-family detectors a user exports to ONNX (Ultralytics YOLOv5/v7 and YOLOv8/v11 heads):
//! letterboxed input and decoding of both output layouts.
//!
//! - `yolov5`: one output `[N, boxes, 5 + C]`: cx, cy, w, h (input pixels), objectness, then C
//!   class scores (already sigmoid); score = objectness * class score.
//! - `yolov8`: one output `[N, 4 + C, boxes]`: cx, cy, w, h, then C class scores; no objectness.
//!
//! Input: `[N, 3, S, S]` RGB scaled to 0..1, the crop letterboxed (aspect kept, centred, grey 114
//! padding) as Ultralytics does.

use crate::geom::{BBox, Crop, Scored};
use crate::pixels::Pixels;

/// Which head the model has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    V5,
    V8,
}

/// How a crop sits in the square model input: input pixel = crop pixel * scale + pad.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub scale: f32,
    pub pad_x: f32,
    pub pad_y: f32,
}

impl Letterbox {
    pub fn new(crop: Crop, side: u32) -> Letterbox {
        let scale = (side as f32 / crop.w as f32).min(side as f32 / crop.h as f32);
        Letterbox {
            scale,
            pad_x: ((side as f32 - crop.w as f32 * scale) / 2.0).floor(),
            pad_y: ((side as f32 - crop.h as f32 * scale) / 2.0).floor(),
        }
    }

    /// Maps a box in model input pixels back to crop pixels.
    pub fn unmap(&self, b: &BBox) -> BBox {
        let s = 1.0 / self.scale;
        b.map(s, s, -self.pad_x * s, -self.pad_y * s)
    }
}

/// Fills one `[3, side, side]` image of input from `crop` of `src` (nearest neighbour at pixel
/// centres inside the letterbox, 114/255 outside). Returns the letterbox to map boxes back with.
pub fn fill_input(src: &impl Pixels, crop: Crop, side: u32, out: &mut [f32]) -> Letterbox {
    let n = side as usize;
    assert_eq!(out.len(), 3 * n * n, "one [3, side, side] image");
    let lb = Letterbox::new(crop, side);
    let plane = n * n;
    out.fill(114.0 / 255.0);
    let (cw, ch) = (
        (crop.w as f32 * lb.scale).round() as usize,
        (crop.h as f32 * lb.scale).round() as usize,
    );
    let (px, py) = (lb.pad_x as usize, lb.pad_y as usize);
    for y in 0..ch.min(n - py) {
        let sy = crop.y + (((y as f32 + 0.5) / lb.scale) as u32).min(crop.h - 1);
        for x in 0..cw.min(n - px) {
            let sx = crop.x + (((x as f32 + 0.5) / lb.scale) as u32).min(crop.w - 1);
            let rgb = src.rgb(sx, sy);
            let i = (y + py) * n + x + px;
            for c in 0..3 {
                out[c * plane + i] = rgb[c] as f32 / 255.0;
            }
        }
    }
    lb
}

/// A detection in model input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub index: u32,
    pub class: u32,
    pub score: f32,
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
        self.index
    }
}

/// The layout and class count of an output of `shape` (`[N, a, b]`), or why it is not a YOLO
/// head of that layout (at least one class).
pub fn layout_of(shape: &[i64], layout: Layout) -> Result<(usize, usize), String> {
    let [_, a, b] = shape else {
        return Err(format!(
            "expected a 3-dimensional output [N, ., .], got {shape:?}"
        ));
    };
    let (a, b) = (*a as usize, *b as usize);
    match layout {
        Layout::V8 if a > 4 => Ok((b, a - 4)),
        Layout::V5 if b > 5 => Ok((a, b - 5)),
        Layout::V8 => Err(format!(
            "a YOLOv8 head is [N, 4 + classes, boxes]; got {shape:?}"
        )),
        Layout::V5 => Err(format!(
            "a YOLOv5 head is [N, boxes, 5 + classes]; got {shape:?}"
        )),
    }
}

/// Decodes one image's output (`boxes` candidates of `classes` classes, laid out as `layout`)
/// into `out` (cleared first): candidates of class `class` above `threshold`, then NMS.
#[allow(clippy::too_many_arguments)]
pub fn decode(
    output: &[f32],
    layout: Layout,
    boxes: usize,
    classes: usize,
    class: usize,
    threshold: f32,
    nms_iou: f32,
    out: &mut Vec<Candidate>,
) {
    out.clear();
    if class >= classes {
        return;
    }
    for i in 0..boxes {
        let (cx, cy, w, h, score) = match layout {
            Layout::V5 => {
                let r = &output[i * (5 + classes)..(i + 1) * (5 + classes)];
                (r[0], r[1], r[2], r[3], r[4] * r[5 + class])
            }
            Layout::V8 => {
                let at = |row: usize| output[row * boxes + i];
                (at(0), at(1), at(2), at(3), at(4 + class))
            }
        };
        if score > threshold {
            out.push(Candidate {
                index: i as u32,
                class: class as u32,
                score,
                bbox: BBox::from_centre(cx, cy, w, h),
            });
        }
    }
    crate::geom::nms(out, nms_iou);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_centres_a_wide_crop_and_maps_back() {
        let lb = Letterbox::new(Crop::whole(640, 320), 320);
        assert_eq!(
            lb,
            Letterbox {
                scale: 0.5,
                pad_x: 0.0,
                pad_y: 80.0
            }
        );
        let b = lb.unmap(&BBox::new(10.0, 90.0, 20.0, 100.0));
        assert_eq!(b, BBox::new(20.0, 20.0, 40.0, 40.0));
    }

    #[test]
    fn layouts_are_told_apart_by_shape() {
        assert_eq!(layout_of(&[1, 84, 8400], Layout::V8), Ok((8400, 80)));
        assert_eq!(layout_of(&[1, 25200, 85], Layout::V5), Ok((25200, 80)));
        assert!(layout_of(&[1, 4, 8400], Layout::V8).is_err());
        assert!(layout_of(&[1, 84, 5], Layout::V5).is_err());
        assert!(layout_of(&[1, 84], Layout::V8).is_err());
    }

    #[test]
    fn v8_decode_reads_columns() {
        // 3 boxes, 2 classes: rows cx, cy, w, h, c0, c1
        #[rustfmt::skip]
        let out = [
            10.0, 50.0, 11.0,
            10.0, 50.0, 10.0,
            4.0, 4.0, 4.0,
            4.0, 4.0, 4.0,
            0.9, 0.1, 0.8,
            0.0, 0.7, 0.0,
        ];
        let mut v = Vec::new();
        decode(&out, Layout::V8, 3, 2, 0, 0.5, 0.5, &mut v);
        // box 2 overlaps box 0 (IoU 0.6) and is suppressed
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].index, 0);
        assert_eq!(v[0].bbox, BBox::new(8.0, 8.0, 12.0, 12.0));
        decode(&out, Layout::V8, 3, 2, 1, 0.5, 0.5, &mut v);
        assert_eq!(v.iter().map(|c| c.index).collect::<Vec<_>>(), vec![1]);
    }
}
