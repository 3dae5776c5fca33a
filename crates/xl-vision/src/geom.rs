//! Rectangles in the two coordinate spaces the vision code uses.

use serde::{Deserialize, Serialize};

/// An axis-aligned box in normalised image coordinates: (0, 0) is the top-left corner of the
/// image and (1, 1) the bottom-right, whatever the frame's size. `x0 <= x1` and `y0 <= y1`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct NormRect {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl NormRect {
    /// The whole image.
    pub const FULL: NormRect = NormRect {
        x0: 0.0,
        y0: 0.0,
        x1: 1.0,
        y1: 1.0,
    };

    pub fn new(x0: f32, y0: f32, x1: f32, y1: f32) -> Self {
        NormRect { x0, y0, x1, y1 }
    }

    pub fn width(&self) -> f32 {
        (self.x1 - self.x0).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.y1 - self.y0).max(0.0)
    }

    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    /// The smallest box holding both.
    pub fn union(&self, other: &NormRect) -> NormRect {
        NormRect {
            x0: self.x0.min(other.x0),
            y0: self.y0.min(other.y0),
            x1: self.x1.max(other.x1),
            y1: self.y1.max(other.y1),
        }
    }

    /// Area of the overlap, 0 when they do not overlap.
    pub fn intersection_area(&self, other: &NormRect) -> f32 {
        let w = self.x1.min(other.x1) - self.x0.max(other.x0);
        let h = self.y1.min(other.y1) - self.y0.max(other.y0);
        if w <= 0.0 || h <= 0.0 { 0.0 } else { w * h }
    }

    /// Intersection over union, in [0, 1]; 0 when either box is empty.
    pub fn iou(&self, other: &NormRect) -> f32 {
        let inter = self.intersection_area(other);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// The middle of the bottom edge: where a standing person's feet are.
    pub fn bottom_centre(&self) -> (f32, f32) {
        ((self.x0 + self.x1) / 2.0, self.y1)
    }

    pub fn centre(&self) -> (f32, f32) {
        ((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0)
    }
}

/// A rectangle in a frame's pixels: `x + width <= frame width`, `y + height <= frame height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct PixelRect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = NormRect::new(0.0, 0.0, 0.2, 0.2);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&NormRect::new(0.5, 0.5, 0.6, 0.6)), 0.0);
        // Shifted by half its width: overlap 0.1*0.2, union 3 * that.
        let b = NormRect::new(0.1, 0.0, 0.3, 0.2);
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-6);
        // Touching edges do not overlap.
        assert_eq!(a.iou(&NormRect::new(0.2, 0.0, 0.4, 0.2)), 0.0);
    }

    #[test]
    fn an_empty_box_has_no_iou_with_anything() {
        let empty = NormRect::new(0.3, 0.3, 0.3, 0.3);
        assert_eq!(empty.iou(&empty), 0.0);
        assert_eq!(empty.iou(&NormRect::FULL), 0.0);
    }

    #[test]
    fn bottom_centre_is_the_feet() {
        let person = NormRect::new(0.4, 0.2, 0.6, 0.9);
        assert_eq!(person.bottom_centre(), (0.5, 0.9));
    }
}
