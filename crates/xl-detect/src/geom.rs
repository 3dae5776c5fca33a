//! Boxes, intersection over union and greedy non-maximum suppression.

/// An axis-aligned box, corners `(x0, y0)` top-left and `(x1, y1)` bottom-right, in pixels of
/// the image it was found in (or normalised to 0..1 where a type says so).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct BBox {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl BBox {
    pub fn new(x0: f32, y0: f32, x1: f32, y1: f32) -> BBox {
        BBox { x0, y0, x1, y1 }
    }

    pub fn from_centre(cx: f32, cy: f32, w: f32, h: f32) -> BBox {
        BBox::new(cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)
    }

    pub fn width(&self) -> f32 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> f32 {
        self.y1 - self.y0
    }

    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }

    /// Intersection over union; 0 when either box is empty.
    pub fn iou(&self, other: &BBox) -> f32 {
        let ix = (self.x1.min(other.x1) - self.x0.max(other.x0)).max(0.0);
        let iy = (self.y1.min(other.y1) - self.y0.max(other.y0)).max(0.0);
        let inter = ix * iy;
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }

    /// This box scaled by `(sx, sy)` and moved by `(dx, dy)`: maps a box found in a resized crop
    /// back to the frame the crop came from.
    pub fn map(&self, sx: f32, sy: f32, dx: f32, dy: f32) -> BBox {
        BBox::new(
            self.x0 * sx + dx,
            self.y0 * sy + dy,
            self.x1 * sx + dx,
            self.y1 * sy + dy,
        )
    }
}

/// Something NMS can rank and compare.
pub trait Scored {
    fn bbox(&self) -> &BBox;
    fn score(&self) -> f32;
    /// Breaks score ties (the anchor or cell index), so the result does not depend on the order
    /// candidates were found in.
    fn rank(&self) -> u32;
}

/// Greedy non-maximum suppression in place: sorts `items` by descending score (ties by rank) and
/// keeps each one whose IoU with every kept one is at most `iou_threshold`, as
/// `cv2.dnn.NMSBoxes` does. Allocation-free: survivors are compacted to the front and the rest
/// truncated.
pub fn nms<T: Scored>(items: &mut Vec<T>, iou_threshold: f32) {
    items.sort_unstable_by(|a, b| {
        b.score()
            .total_cmp(&a.score())
            .then(a.rank().cmp(&b.rank()))
    });
    let mut kept = 0;
    for i in 0..items.len() {
        let suppressed = items[..kept]
            .iter()
            .any(|k| k.bbox().iou(items[i].bbox()) > iou_threshold);
        if !suppressed {
            items.swap(kept, i);
            kept += 1;
        }
    }
    items.truncate(kept);
}

/// A pixel rectangle of a frame: the part of it a detector looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Crop {
    pub fn whole(width: u32, height: u32) -> Crop {
        Crop {
            x: 0,
            y: 0,
            w: width,
            h: height,
        }
    }

    /// The pixel rectangle covering `b`, clamped to a `width` x `height` image; at least 1x1.
    pub fn covering(b: &BBox, width: u32, height: u32) -> Crop {
        let x0 = (b.x0.floor().max(0.0) as u32).min(width.saturating_sub(1));
        let y0 = (b.y0.floor().max(0.0) as u32).min(height.saturating_sub(1));
        let x1 = (b.x1.ceil().max(0.0) as u32).clamp(x0 + 1, width.max(x0 + 1));
        let y1 = (b.y1.ceil().max(0.0) as u32).clamp(y0 + 1, height.max(y0 + 1));
        Crop {
            x: x0,
            y: y0,
            w: x1 - x0,
            h: y1 - y0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct D(BBox, f32, u32);
    impl Scored for D {
        fn bbox(&self) -> &BBox {
            &self.0
        }
        fn score(&self) -> f32 {
            self.1
        }
        fn rank(&self) -> u32 {
            self.2
        }
    }

    #[test]
    fn iou_of_known_boxes() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&BBox::new(20.0, 20.0, 30.0, 30.0)), 0.0);
        // half overlap: 50 / 150
        let b = BBox::new(5.0, 0.0, 15.0, 10.0);
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(a.iou(&BBox::new(3.0, 3.0, 3.0, 9.0)), 0.0, "empty box");
    }

    #[test]
    fn nms_keeps_the_best_of_each_cluster_in_score_order() {
        let mut v = vec![
            D(BBox::new(0.0, 0.0, 10.0, 10.0), 0.8, 0),
            D(BBox::new(1.0, 1.0, 11.0, 11.0), 0.9, 1),
            D(BBox::new(50.0, 50.0, 60.0, 60.0), 0.7, 2),
            D(BBox::new(5.0, 0.0, 15.0, 10.0), 0.6, 3), // IoU 1/3 with #0, 0.28 with #1
        ];
        nms(&mut v, 0.5);
        let ranks: Vec<u32> = v.iter().map(|d| d.2).collect();
        assert_eq!(ranks, vec![1, 2, 3]);
        let mut v2 = v.clone();
        nms(&mut v2, 0.25);
        assert_eq!(v2.iter().map(|d| d.2).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn nms_breaks_ties_by_rank() {
        let b = BBox::new(0.0, 0.0, 10.0, 10.0);
        let mut v = vec![D(b, 0.5, 7), D(b, 0.5, 3), D(b, 0.5, 5)];
        nms(&mut v, 0.5);
        assert_eq!(v, vec![D(b, 0.5, 3)]);
    }

    #[test]
    fn crop_covering_clamps_to_the_image() {
        let c = Crop::covering(&BBox::new(-5.0, 10.2, 700.0, 20.0), 640, 360);
        assert_eq!(
            c,
            Crop {
                x: 0,
                y: 10,
                w: 640,
                h: 10
            }
        );
        let c = Crop::covering(&BBox::new(639.5, 359.5, 650.0, 400.0), 640, 360);
        assert_eq!(
            c,
            Crop {
                x: 639,
                y: 359,
                w: 1,
                h: 1
            }
        );
    }
}
