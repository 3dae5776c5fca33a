//! The motion gate: decides, on every frame of every camera, whether and where anything moves,
//! so that detection runs only on frames (and the parts of frames) that need it.
//!
//! Per frame: the Y plane is area-averaged down to a small grey image (160 pixels wide by
//! default), compared with a running background (an exponential moving average), and each pixel
//! further from the background than a threshold counts as moving. The grey image is divided into
//! cells (8x8 by default); a cell moves when enough of its pixels do, which also cleans up
//! isolated noisy pixels. Moving cells are grouped into connected regions (cells up to
//! `merge_gap_cells` apart join), overlapping or near region boxes merge, and boxes smaller than
//! `min_region_area` are dropped. When most cells change at once (lights switched, the camera's
//! IR cut filter flipped, the camera moved) the background is re-seeded and no region is
//! reported.
//!
//! The first frame, and the first frame after the size changed, only seeds the background.
//! All buffers are sized when the gate sees a frame size; the steady state allocates nothing.
//!
//! [`CropPlanner`] turns the regions into pixel rectangles to run a detector on.

use serde::Deserialize;
use xl_core::frame::Frame;

use crate::error::VisionError;
use crate::geom::{NormRect, PixelRect};

/// Motion gate settings (`[cameras.motion]` or `[motion]` in the hub's config).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MotionConfig {
    /// Width in pixels of the grey image the gate works on; its height keeps the frame's
    /// aspect. Frames narrower than this are used at their own width. Default 160.
    pub analysis_width: u32,
    /// Side of a voting cell, in grey-image pixels. Default 8 (a 160x120 image has 20x15 cells).
    pub cell_px: u32,
    /// How far the background moves towards the current frame, per frame, in (0, 1]. With 0.05
    /// a sudden change is half absorbed after about 14 frames and a slow drift lags by about 19
    /// grey levels. Default 0.05.
    pub learning_rate: f32,
    /// Difference from the background, in grey levels (0 to 255), above which a pixel is moving.
    /// Default 25.
    pub pixel_threshold: u8,
    /// Fraction of a cell's pixels that must be moving for the cell to move, in (0, 1]; sensor
    /// noise and single flickering pixels stay below it. Default 0.15.
    pub cell_fraction: f32,
    /// Moving cells at most this many cells apart belong to the same region, and region boxes
    /// at most this far apart merge. Default 1.
    pub merge_gap_cells: u32,
    /// Regions whose box covers less than this fraction of the image are dropped, in [0, 1].
    /// Default 0.004 (two cells at the default sizes).
    pub min_region_area: f32,
    /// When more than this fraction of cells moves at once, it is a lighting change or a moved
    /// camera, not motion: the background is re-seeded and no region reported. In (0, 1].
    /// Default 0.7.
    pub global_change_fraction: f32,
}

impl Default for MotionConfig {
    fn default() -> Self {
        MotionConfig {
            analysis_width: 160,
            cell_px: 8,
            learning_rate: 0.05,
            pixel_threshold: 25,
            cell_fraction: 0.15,
            merge_gap_cells: 1,
            min_region_area: 0.004,
            global_change_fraction: 0.7,
        }
    }
}

impl MotionConfig {
    pub fn validate(&self) -> Result<(), VisionError> {
        let bad = |field, reason: &str| {
            Err(VisionError::InvalidMotionConfig {
                field,
                reason: reason.to_owned(),
            })
        };
        let in_unit =
            |v: f32, zero_ok: bool| v.is_finite() && v <= 1.0 && (v > 0.0 || zero_ok && v == 0.0);
        if self.cell_px == 0 {
            return bad("cell_px", "must be at least 1");
        }
        if self.analysis_width < self.cell_px {
            return bad("analysis_width", "must be at least cell_px");
        }
        if !in_unit(self.learning_rate, false) {
            return bad("learning_rate", "must be in (0, 1]");
        }
        if !in_unit(self.cell_fraction, false) {
            return bad("cell_fraction", "must be in (0, 1]");
        }
        if !in_unit(self.min_region_area, true) {
            return bad("min_region_area", "must be in [0, 1]");
        }
        if !in_unit(self.global_change_fraction, false) {
            return bad("global_change_fraction", "must be in (0, 1]");
        }
        Ok(())
    }
}

/// What the gate made of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MotionStatus {
    /// The first frame, or the first at a new size: it only seeded the background.
    Seeded,
    /// Most of the image changed at once (lighting, IR switch, camera moved): the background
    /// was re-seeded from this frame and no region is reported.
    GlobalChange,
    /// Compared with the background; the regions are the motion found.
    Compared,
}

/// The gate's answer for one frame; borrows the gate's buffers until the next frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotionOutcome<'a> {
    pub status: MotionStatus,
    /// Where things move, in normalised image coordinates, at cell granularity.
    pub regions: &'a [NormRect],
    /// Fraction of the grey image's pixels that differ from the background, in [0, 1]
    /// (measured also on a global change).
    pub moving_fraction: f32,
}

impl MotionOutcome<'_> {
    pub fn has_motion(&self) -> bool {
        !self.regions.is_empty()
    }
}

/// A cell-grid box, inclusive, in cell coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CellBox {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
}

impl CellBox {
    /// Empty cells between the two boxes along the axis where they are furthest apart; 0 when
    /// they touch or overlap.
    fn gap(&self, other: &CellBox) -> u32 {
        let gap_1d = |a0: u32, a1: u32, b0: u32, b1: u32| {
            if b0 > a1 {
                b0 - a1 - 1
            } else if a0 > b1 {
                a0 - b1 - 1
            } else {
                0
            }
        };
        gap_1d(self.x0, self.x1, other.x0, other.x1)
            .max(gap_1d(self.y0, self.y1, other.y0, other.y1))
    }

    fn union(&self, other: &CellBox) -> CellBox {
        CellBox {
            x0: self.x0.min(other.x0),
            y0: self.y0.min(other.y0),
            x1: self.x1.max(other.x1),
            y1: self.y1.max(other.y1),
        }
    }
}

/// One camera's motion gate. Cheap to keep one per camera: about 100 KiB at the defaults.
#[derive(Debug)]
pub struct MotionGate {
    config: MotionConfig,
    /// Frame size the buffers are built for; (0, 0) before the first frame.
    frame_size: (u32, u32),
    grey_width: usize,
    grey_height: usize,
    cells_x: usize,
    cells_y: usize,
    /// Source column ranges of each grey column: `col_edges[i]..col_edges[i + 1]`.
    col_edges: Vec<usize>,
    /// Source row ranges of each grey row.
    row_edges: Vec<usize>,
    /// 1 / the number of source columns of each grey column.
    col_scale: Vec<f32>,
    /// Per source column, the sum over the source rows of the grey row being built.
    column_sums: Vec<u16>,
    grey: Vec<u8>,
    background: Vec<f32>,
    seeded: bool,
    /// Moving pixels per cell this frame.
    cell_counts: Vec<u16>,
    /// Moving pixels a cell needs to move (edge cells are smaller).
    cell_needs: Vec<u16>,
    /// Component label per cell, 0 = not yet labelled or not moving.
    labels: Vec<u32>,
    stack: Vec<usize>,
    boxes: Vec<CellBox>,
    regions: Vec<NormRect>,
}

impl MotionGate {
    pub fn new(config: MotionConfig) -> Result<Self, VisionError> {
        config.validate()?;
        Ok(MotionGate {
            config,
            frame_size: (0, 0),
            grey_width: 0,
            grey_height: 0,
            cells_x: 0,
            cells_y: 0,
            col_edges: Vec::new(),
            row_edges: Vec::new(),
            col_scale: Vec::new(),
            column_sums: Vec::new(),
            grey: Vec::new(),
            background: Vec::new(),
            seeded: false,
            cell_counts: Vec::new(),
            cell_needs: Vec::new(),
            labels: Vec::new(),
            stack: Vec::new(),
            boxes: Vec::new(),
            regions: Vec::new(),
        })
    }

    pub fn config(&self) -> &MotionConfig {
        &self.config
    }

    /// Size of the grey image the gate works on (0, 0 before the first frame).
    pub fn analysis_size(&self) -> (usize, usize) {
        (self.grey_width, self.grey_height)
    }

    /// Forgets the background: the next frame seeds it again (after a reconnect, say).
    pub fn reset(&mut self) {
        self.seeded = false;
    }

    /// Runs the gate on a decoded frame's Y plane.
    pub fn process_frame(&mut self, frame: &Frame) -> Result<MotionOutcome<'_>, VisionError> {
        self.process(&frame.i420, frame.width, frame.height)
    }

    /// Runs the gate on a Y plane of `width * height` bytes, `width` bytes a row (only that
    /// many leading bytes are read, so a whole I420 buffer may be passed).
    pub fn process(
        &mut self,
        y_plane: &[u8],
        width: u32,
        height: u32,
    ) -> Result<MotionOutcome<'_>, VisionError> {
        let expected = width as usize * height as usize;
        if expected == 0 || y_plane.len() < expected {
            return Err(VisionError::BadFrame {
                width,
                height,
                expected,
                actual: y_plane.len(),
            });
        }
        if self.frame_size != (width, height) {
            self.resize(width, height);
        }
        self.downscale(&y_plane[..expected]);
        self.regions.clear();
        if !self.seeded {
            self.reseed();
            return Ok(self.outcome(MotionStatus::Seeded, 0.0));
        }

        let moving_pixels = self.compare_and_learn();
        let moving_fraction = moving_pixels as f32 / self.grey.len() as f32;
        let moving_cells = self
            .cell_counts
            .iter()
            .zip(&self.cell_needs)
            .filter(|(count, need)| count >= need)
            .count();
        let cells = self.cell_counts.len();
        if moving_cells as f32 > self.config.global_change_fraction * cells as f32 {
            self.reseed();
            return Ok(self.outcome(MotionStatus::GlobalChange, moving_fraction));
        }
        if moving_cells > 0 {
            self.find_regions();
        }
        Ok(self.outcome(MotionStatus::Compared, moving_fraction))
    }

    fn outcome(&self, status: MotionStatus, moving_fraction: f32) -> MotionOutcome<'_> {
        MotionOutcome {
            status,
            regions: &self.regions,
            moving_fraction,
        }
    }

    /// Sizes every buffer for a new frame size. The only place that allocates.
    fn resize(&mut self, width: u32, height: u32) {
        let (w, h) = (width as usize, height as usize);
        // At most 256 source rows or columns to a grey pixel, so sums of a column fit a u16.
        let gw = (self.config.analysis_width as usize)
            .min(w)
            .max(w.div_ceil(256));
        let gh = ((h * gw + w / 2) / w).clamp(h.div_ceil(256), h);
        self.frame_size = (width, height);
        self.grey_width = gw;
        self.grey_height = gh;
        self.col_edges = (0..=gw).map(|i| i * w / gw).collect();
        self.row_edges = (0..=gh).map(|j| j * h / gh).collect();
        self.col_scale = (0..gw)
            .map(|i| 1.0 / (self.col_edges[i + 1] - self.col_edges[i]) as f32)
            .collect();
        self.column_sums = vec![0; w];
        self.grey = vec![0; gw * gh];
        self.background = vec![0.0; gw * gh];
        self.seeded = false;

        let cell = self.config.cell_px as usize;
        self.cells_x = gw.div_ceil(cell);
        self.cells_y = gh.div_ceil(cell);
        let cells = self.cells_x * self.cells_y;
        self.cell_counts = vec![0; cells];
        self.cell_needs = (0..cells)
            .map(|c| {
                let (cx, cy) = (c % self.cells_x, c / self.cells_x);
                let pixels =
                    (gw.min((cx + 1) * cell) - cx * cell) * (gh.min((cy + 1) * cell) - cy * cell);
                let need = (self.config.cell_fraction * pixels as f32).ceil().max(1.0);
                need as u16
            })
            .collect();
        self.labels = vec![0; cells];
        self.stack = Vec::with_capacity(cells);
        // Each component and each region holds at least one cell.
        self.boxes = Vec::with_capacity(cells);
        self.regions = Vec::with_capacity(cells);
    }

    /// Area-averages the Y plane into `grey`: for each grey row, its source rows are summed
    /// column by column (a straight pass over every source byte, which the compiler
    /// vectorises; `resize` keeps it to at most 256 rows, so a `u16` cannot overflow), then
    /// each grey pixel adds up its span of those column sums.
    fn downscale(&mut self, y_plane: &[u8]) {
        let width = self.frame_size.0 as usize;
        for gy in 0..self.grey_height {
            let (r0, r1) = (self.row_edges[gy], self.row_edges[gy + 1]);
            self.column_sums.fill(0);
            for row in y_plane[r0 * width..r1 * width].chunks_exact(width) {
                for (sum, &p) in self.column_sums.iter_mut().zip(row) {
                    *sum += u16::from(p);
                }
            }
            let per_row = 1.0 / (r1 - r0) as f32;
            let grey_row = &mut self.grey[gy * self.grey_width..(gy + 1) * self.grey_width];
            for (gx, out) in grey_row.iter_mut().enumerate() {
                let (c0, c1) = (self.col_edges[gx], self.col_edges[gx + 1]);
                let sum: u32 = self.column_sums[c0..c1].iter().map(|&s| u32::from(s)).sum();
                *out = (sum as f32 * per_row * self.col_scale[gx] + 0.5) as u8;
            }
        }
    }

    fn reseed(&mut self) {
        for (bg, &g) in self.background.iter_mut().zip(&self.grey) {
            *bg = f32::from(g);
        }
        self.seeded = true;
    }

    /// Counts moving pixels per cell and moves the background towards this frame. Returns the
    /// number of moving pixels.
    fn compare_and_learn(&mut self) -> usize {
        self.cell_counts.fill(0);
        let threshold = f32::from(self.config.pixel_threshold);
        let rate = self.config.learning_rate;
        let cell = self.config.cell_px as usize;
        let mut moving = 0;
        let rows = self
            .background
            .chunks_exact_mut(self.grey_width)
            .zip(self.grey.chunks_exact(self.grey_width));
        for (gy, (bg_row, grey_row)) in rows.enumerate() {
            let counts = &mut self.cell_counts[(gy / cell) * self.cells_x..][..self.cells_x];
            // One cell's width of the row at a time.
            for ((bg, grey), count) in bg_row
                .chunks_mut(cell)
                .zip(grey_row.chunks(cell))
                .zip(counts)
            {
                let mut n = 0u16;
                for (bg, &g) in bg.iter_mut().zip(grey) {
                    let g = f32::from(g);
                    n += u16::from((g - *bg).abs() > threshold);
                    *bg += rate * (g - *bg);
                }
                *count += n;
                moving += usize::from(n);
            }
        }
        moving
    }

    /// Groups moving cells into regions: connected components (cells up to the merge gap
    /// apart are neighbours), then merging of near boxes, then the area filter.
    fn find_regions(&mut self) {
        let (cx, cy) = (self.cells_x, self.cells_y);
        let reach = 1 + self.config.merge_gap_cells as usize;
        self.labels.fill(0);
        self.boxes.clear();
        for start in 0..self.labels.len() {
            if self.labels[start] != 0 || self.cell_counts[start] < self.cell_needs[start] {
                continue;
            }
            let label = self.boxes.len() as u32 + 1;
            let (x, y) = ((start % cx) as u32, (start / cx) as u32);
            let mut bbox = CellBox {
                x0: x,
                y0: y,
                x1: x,
                y1: y,
            };
            self.labels[start] = label;
            self.stack.push(start);
            while let Some(c) = self.stack.pop() {
                let (x, y) = (c % cx, c / cx);
                bbox = bbox.union(&CellBox {
                    x0: x as u32,
                    y0: y as u32,
                    x1: x as u32,
                    y1: y as u32,
                });
                for ny in y.saturating_sub(reach)..(y + reach + 1).min(cy) {
                    for nx in x.saturating_sub(reach)..(x + reach + 1).min(cx) {
                        let n = ny * cx + nx;
                        if self.labels[n] == 0 && self.cell_counts[n] >= self.cell_needs[n] {
                            self.labels[n] = label;
                            self.stack.push(n);
                        }
                    }
                }
            }
            self.boxes.push(bbox);
        }

        // Boxes of separate components can still overlap or sit close (an L shape beside a
        // blob): merge until no two are within the gap.
        let gap = self.config.merge_gap_cells;
        let mut merged = true;
        while merged {
            merged = false;
            'pairs: for i in 0..self.boxes.len() {
                for j in i + 1..self.boxes.len() {
                    if self.boxes[i].gap(&self.boxes[j]) <= gap {
                        self.boxes[i] = self.boxes[i].union(&self.boxes[j]);
                        self.boxes.swap_remove(j);
                        merged = true;
                        break 'pairs;
                    }
                }
            }
        }

        let cell = self.config.cell_px as f32;
        let (gw, gh) = (self.grey_width as f32, self.grey_height as f32);
        for b in &self.boxes {
            let region = NormRect {
                x0: b.x0 as f32 * cell / gw,
                y0: b.y0 as f32 * cell / gh,
                x1: ((b.x1 + 1) as f32 * cell).min(gw) / gw,
                y1: ((b.y1 + 1) as f32 * cell).min(gh) / gh,
            };
            if region.area() >= self.config.min_region_area {
                self.regions.push(region);
            }
        }
    }
}

/// How motion regions become detector crops.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CropConfig {
    /// Context added around a region on each side, as a fraction of the region's width (left
    /// and right) and height (top and bottom): motion often covers only the moving part of a
    /// person. Default 0.25.
    pub margin: f32,
    /// Width over height of the detector's input; crops take this shape so that scaling to the
    /// input does not distort. Default 1.0 (SSD-MobileNet's 300x300).
    pub aspect: f32,
    /// Shortest side of a crop, in frame pixels, so that a tiny region still carries enough
    /// context for the detector. Default 96.
    pub min_side_px: u32,
    /// When the crops together would cover more than this fraction of the frame, one
    /// whole-frame crop is cheaper and sees more. Default 0.5.
    pub whole_frame_fraction: f32,
}

impl Default for CropConfig {
    fn default() -> Self {
        CropConfig {
            margin: 0.25,
            aspect: 1.0,
            min_side_px: 96,
            whole_frame_fraction: 0.5,
        }
    }
}

impl CropConfig {
    pub fn validate(&self) -> Result<(), VisionError> {
        let bad = |field, reason: &str| {
            Err(VisionError::InvalidMotionConfig {
                field,
                reason: reason.to_owned(),
            })
        };
        if !(self.margin.is_finite() && (0.0..=10.0).contains(&self.margin)) {
            return bad("crop.margin", "must be between 0 and 10");
        }
        if !(self.aspect.is_finite() && (0.1..=10.0).contains(&self.aspect)) {
            return bad("crop.aspect", "must be between 0.1 and 10");
        }
        if !(self.whole_frame_fraction > 0.0 && self.whole_frame_fraction <= 1.0) {
            return bad("crop.whole_frame_fraction", "must be in (0, 1]");
        }
        Ok(())
    }
}

/// The pixel rectangle to run a detector on for one motion region: the region grown by the
/// margin, widened or heightened to the detector's aspect, at least `min_side_px` on its short
/// side, and inside the frame. The crop is centred on the region and slid, not cut, to fit;
/// when the frame is too small for the aspect, the crop keeps the aspect as far as it can
/// while still holding the whole region (the detector's letterbox handles the rest).
pub fn crop_for_region(
    region: &NormRect,
    frame_width: u32,
    frame_height: u32,
    config: &CropConfig,
) -> PixelRect {
    let (fw, fh) = (frame_width as f32, frame_height as f32);
    let clamp01 = |v: f32| if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    let (x0, x1) = (clamp01(region.x0) * fw, clamp01(region.x1) * fw);
    let (y0, y1) = (clamp01(region.y0) * fh, clamp01(region.y1) * fh);
    let (rw, rh) = ((x1 - x0).max(0.0), (y1 - y0).max(0.0));
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let aspect = if config.aspect.is_finite() && config.aspect > 0.0 {
        config.aspect
    } else {
        1.0
    };

    let mut w = rw * (1.0 + 2.0 * config.margin.max(0.0));
    let mut h = rh * (1.0 + 2.0 * config.margin.max(0.0));
    if w < h * aspect {
        w = h * aspect;
    } else {
        h = w / aspect;
    }
    let min_side = config.min_side_px as f32;
    let (min_w, min_h) = if aspect >= 1.0 {
        (min_side * aspect, min_side)
    } else {
        (min_side, min_side / aspect)
    };
    if w < min_w {
        (w, h) = (min_w, min_h);
    }
    let shrink = (fw / w).min(fh / h).min(1.0);
    w = (w * shrink).max(rw).min(fw);
    h = (h * shrink).max(rh).min(fh);

    let left = (cx - w / 2.0).clamp(0.0, fw - w);
    let top = (cy - h / 2.0).clamp(0.0, fh - h);
    let x = (left.floor() as u32).min(frame_width.saturating_sub(1));
    let y = (top.floor() as u32).min(frame_height.saturating_sub(1));
    let right = ((left + w).ceil() as u32).clamp(x + 1, frame_width.max(x + 1));
    let bottom = ((top + h).ceil() as u32).clamp(y + 1, frame_height.max(y + 1));
    PixelRect {
        x,
        y,
        width: right - x,
        height: bottom - y,
    }
}

fn overlaps(a: &PixelRect, b: &PixelRect) -> bool {
    a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height
}

/// Turns a frame's motion regions into as few detector crops as sensible: regions whose crops
/// overlap share one crop, and when the crops would cover more than `whole_frame_fraction` of
/// the frame the answer is the whole frame. Keeps its buffers between frames.
#[derive(Debug, Default)]
pub struct CropPlanner {
    config: CropConfig,
    groups: Vec<NormRect>,
    crops: Vec<PixelRect>,
}

impl CropPlanner {
    pub fn new(config: CropConfig) -> Result<Self, VisionError> {
        config.validate()?;
        Ok(CropPlanner {
            config,
            groups: Vec::new(),
            crops: Vec::new(),
        })
    }

    /// The crops for `regions` (normalised) in a `frame_width` x `frame_height` frame; empty
    /// when there are no regions.
    pub fn plan(
        &mut self,
        regions: &[NormRect],
        frame_width: u32,
        frame_height: u32,
    ) -> &[PixelRect] {
        self.crops.clear();
        self.groups.clear();
        let Some(first) = regions.first() else {
            return &self.crops;
        };
        let whole_frame = PixelRect {
            x: 0,
            y: 0,
            width: frame_width,
            height: frame_height,
        };
        let union = regions.iter().fold(*first, |u, r| u.union(r));
        if union.area() > self.config.whole_frame_fraction {
            self.crops.push(whole_frame);
            return &self.crops;
        }

        let crop = |r: &NormRect| crop_for_region(r, frame_width, frame_height, &self.config);
        self.groups.extend_from_slice(regions);
        let mut merged = true;
        while merged {
            merged = false;
            'pairs: for i in 0..self.groups.len() {
                for j in i + 1..self.groups.len() {
                    if overlaps(&crop(&self.groups[i]), &crop(&self.groups[j])) {
                        self.groups[i] = self.groups[i].union(&self.groups[j]);
                        self.groups.swap_remove(j);
                        merged = true;
                        break 'pairs;
                    }
                }
            }
        }
        self.crops.extend(self.groups.iter().map(crop));
        let covered: u64 = self
            .crops
            .iter()
            .map(|c| u64::from(c.width) * u64::from(c.height))
            .sum();
        let frame_area = u64::from(frame_width) * u64::from(frame_height);
        if covered as f64 > f64::from(self.config.whole_frame_fraction) * frame_area as f64 {
            self.crops.clear();
            self.crops.push(whole_frame);
        }
        &self.crops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc_count::allocations_in;

    const W: u32 = 640;
    const H: u32 = 480;

    /// A deterministic synthetic scene: a textured background (so differences are not trivially
    /// flat), bright blocks painted on it, optional sensor noise.
    struct Scene {
        width: u32,
        background: Vec<u8>,
        rng: u64,
    }

    impl Scene {
        fn new(width: u32, height: u32) -> Self {
            let background = (0..height)
                .flat_map(|y| {
                    (0..width).map(move |x| (60 + (x / 7 + y / 5) % 40 + (x * y) % 13) as u8)
                })
                .collect();
            Scene {
                width,
                background,
                rng: 0x9E37_79B9_7F4A_7C15,
            }
        }

        fn next_random(&mut self) -> u64 {
            // xorshift64: reproducible noise without a dependency.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            self.rng
        }

        /// The background plus `offset`, with blocks `(x, y, w, h)` painted at grey 230 and
        /// uniform noise of +-`noise` on every pixel.
        fn frame(&mut self, blocks: &[(u32, u32, u32, u32)], offset: i16, noise: i16) -> Vec<u8> {
            let mut out = self.background.clone();
            for &(bx, by, bw, bh) in blocks {
                for y in by..by + bh {
                    let row = (y * self.width) as usize;
                    out[row + bx as usize..row + (bx + bw) as usize].fill(230);
                }
            }
            for pixel in &mut out {
                let n = if noise > 0 {
                    (self.next_random() % (2 * noise as u64 + 1)) as i16 - noise
                } else {
                    0
                };
                *pixel = (i16::from(*pixel) + offset + n).clamp(0, 255) as u8;
            }
            out
        }
    }

    fn gate() -> MotionGate {
        MotionGate::new(MotionConfig::default()).unwrap()
    }

    fn norm(x: u32, y: u32, w: u32, h: u32) -> NormRect {
        NormRect::new(
            x as f32 / W as f32,
            y as f32 / H as f32,
            (x + w) as f32 / W as f32,
            (y + h) as f32 / H as f32,
        )
    }

    /// `outer` holds `inner`, and is no more than `slack` bigger on any side. Cell voting may
    /// miss an object's edge that covers under `cell_fraction` of a cell (0.15 * 1/15 of the
    /// height at the defaults), hence the small `eps`.
    fn assert_tight(outer: &NormRect, inner: &NormRect, slack: f32) {
        let eps = 0.011;
        assert!(
            outer.x0 <= inner.x0 + eps
                && outer.y0 <= inner.y0 + eps
                && outer.x1 >= inner.x1 - eps
                && outer.y1 >= inner.y1 - eps,
            "{outer:?} does not hold {inner:?}"
        );
        assert!(
            inner.x0 - outer.x0 <= slack
                && inner.y0 - outer.y0 <= slack
                && outer.x1 - inner.x1 <= slack
                && outer.y1 - inner.y1 <= slack,
            "{outer:?} is much bigger than {inner:?}"
        );
    }

    #[test]
    fn the_first_frame_only_seeds_the_background() {
        let mut scene = Scene::new(W, H);
        let mut gate = gate();
        let frame = scene.frame(&[(100, 100, 80, 160)], 0, 0);
        let out = gate.process(&frame, W, H).unwrap();
        assert_eq!(out.status, MotionStatus::Seeded);
        assert!(out.regions.is_empty());
        // The block is part of the background now: the same frame again shows no motion.
        let out = gate.process(&frame, W, H).unwrap();
        assert_eq!(out.status, MotionStatus::Compared);
        assert!(!out.has_motion());
        assert_eq!(out.moving_fraction, 0.0);
    }

    #[test]
    fn a_moving_bright_block_is_found_where_it_is() {
        let mut scene = Scene::new(W, H);
        let mut gate = gate();
        gate.process(&scene.frame(&[], 0, 3), W, H).unwrap();
        // One cell is 8 grey pixels = 32 frame pixels = 0.05 of the width, 1/15 of the height.
        let slack = 0.07;
        for step in 0..10 {
            let (x, y) = (64 + step * 40, 200);
            let frame = scene.frame(&[(x, y, 64, 128)], 0, 3);
            let out = gate.process(&frame, W, H).unwrap();
            assert_eq!(out.status, MotionStatus::Compared);
            assert_eq!(out.regions.len(), 1, "step {step}: {:?}", out.regions);
            assert_tight(&out.regions[0], &norm(x, y, 64, 128), slack);
            let block_fraction = (64.0 * 128.0) / (W * H) as f32;
            assert!(
                out.moving_fraction > 0.5 * block_fraction
                    && out.moving_fraction < 2.0 * block_fraction,
                "{}",
                out.moving_fraction
            );
        }
    }

    #[test]
    fn sensor_noise_on_a_static_scene_raises_no_regions() {
        let mut scene = Scene::new(W, H);
        let mut gate = gate();
        for _ in 0..50 {
            let frame = scene.frame(&[], 0, 20);
            let out = gate.process(&frame, W, H).unwrap();
            assert!(out.regions.is_empty(), "{:?}", out.regions);
            assert!(out.moving_fraction < 0.01);
        }
    }

    #[test]
    fn scattered_flickering_pixels_raise_no_regions() {
        let mut scene = Scene::new(W, H);
        let mut gate = gate();
        gate.process(&scene.frame(&[], 0, 0), W, H).unwrap();
        for _ in 0..20 {
            // A saturated 4x4 speck (one grey pixel's worth) somewhere in every 32x32 block:
            // 300 specks a frame, each far above the threshold, like rain or compression junk.
            let mut frame = scene.frame(&[], 0, 0);
            for by in (0..H).step_by(32) {
                for bx in (0..W).step_by(32) {
                    let r = scene.next_random();
                    let (x, y) = (bx + (r % 28) as u32, by + ((r >> 8) % 28) as u32);
                    for dy in 0..4 {
                        let at = ((y + dy) * W + x) as usize;
                        frame[at..at + 4].fill(255);
                    }
                }
            }
            let out = gate.process(&frame, W, H).unwrap();
            assert!(out.moving_fraction > 0.01, "the specks are moving pixels");
            assert!(out.regions.is_empty(), "{:?}", out.regions);
        }
    }

    #[test]
    fn a_global_brightness_step_reseeds_instead_of_raising_regions() {
        let mut scene = Scene::new(W, H);
        let mut gate = gate();
        gate.process(&scene.frame(&[], 0, 2), W, H).unwrap();
        let out = gate.process(&scene.frame(&[], 60, 2), W, H).unwrap();
        assert_eq!(out.status, MotionStatus::GlobalChange);
        assert!(out.regions.is_empty());
        assert!(out.moving_fraction > 0.9);
        // The new lighting is the background now, and motion in it is found again.
        let out = gate.process(&scene.frame(&[], 60, 2), W, H).unwrap();
        assert_eq!(out.status, MotionStatus::Compared);
        assert!(out.regions.is_empty());
        let out = gate
            .process(&scene.frame(&[(300, 100, 64, 64)], 60, 2), W, H)
            .unwrap();
        assert_eq!(out.regions.len(), 1);
        assert_tight(&out.regions[0], &norm(300, 100, 64, 64), 0.07);
    }

    #[test]
    fn a_slow_lighting_drift_is_absorbed_by_the_background() {
        let mut scene = Scene::new(W, H);
        let mut gate = gate();
        // Dusk: one grey level darker every frame, 100 levels in all.
        for step in 0..100 {
            let out = gate.process(&scene.frame(&[], -step, 2), W, H).unwrap();
            assert_ne!(out.status, MotionStatus::GlobalChange, "step {step}");
            assert!(out.regions.is_empty(), "step {step}: {:?}", out.regions);
        }
    }

    #[test]
    fn far_apart_blocks_are_separate_regions_and_near_ones_merge() {
        let mut scene = Scene::new(W, H);
        let mut gate = gate();
        gate.process(&scene.frame(&[], 0, 0), W, H).unwrap();
        let out = gate
            .process(
                &scene.frame(&[(32, 32, 64, 96), (480, 320, 96, 96)], 0, 0),
                W,
                H,
            )
            .unwrap();
        assert_eq!(out.regions.len(), 2, "{:?}", out.regions);
        let mut regions = out.regions.to_vec();
        regions.sort_by(|a, b| a.x0.total_cmp(&b.x0));
        assert_tight(&regions[0], &norm(32, 32, 64, 96), 0.07);
        assert_tight(&regions[1], &norm(480, 320, 96, 96), 0.07);

        // Two parts of one person (head and legs, torso hidden) one cell apart: one region.
        let mut gate = self::gate();
        gate.process(&scene.frame(&[], 0, 0), W, H).unwrap();
        let out = gate
            .process(
                &scene.frame(&[(320, 64, 64, 64), (320, 160, 64, 96)], 0, 0),
                W,
                H,
            )
            .unwrap();
        assert_eq!(out.regions.len(), 1, "{:?}", out.regions);
        assert_tight(&out.regions[0], &norm(320, 64, 64, 192), 0.07);
    }

    #[test]
    fn regions_below_the_minimum_area_are_dropped() {
        let mut scene = Scene::new(W, H);
        // 12x8 grey pixels: two cells, 1/150 of the image.
        let small = [(320, 224, 48, 32)];
        let mut default_gate = gate();
        default_gate.process(&scene.frame(&[], 0, 0), W, H).unwrap();
        let out = default_gate
            .process(&scene.frame(&small, 0, 0), W, H)
            .unwrap();
        assert_eq!(out.regions.len(), 1, "kept at the default minimum (0.004)");

        let mut strict = MotionGate::new(MotionConfig {
            min_region_area: 0.05,
            ..MotionConfig::default()
        })
        .unwrap();
        strict.process(&scene.frame(&[], 0, 0), W, H).unwrap();
        let out = strict.process(&scene.frame(&small, 0, 0), W, H).unwrap();
        assert!(out.regions.is_empty(), "{:?}", out.regions);
        assert!(
            out.moving_fraction > 0.0,
            "the pixels still count as moving"
        );
    }

    #[test]
    fn frames_of_any_size_are_averaged_down_and_a_size_change_reseeds() {
        let mut gate = gate();
        for (w, h, grey) in [
            (1920, 1080, (160, 90)),
            (704, 576, (160, 131)),
            (100, 50, (100, 50)),
            (2, 2, (2, 2)),
        ] {
            let mut scene = Scene::new(w, h);
            let out = gate.process(&scene.frame(&[], 0, 0), w, h).unwrap();
            assert_eq!(out.status, MotionStatus::Seeded, "{w}x{h}");
            assert_eq!(gate.analysis_size(), grey, "{w}x{h}");
            let out = gate.process(&scene.frame(&[], 0, 0), w, h).unwrap();
            assert_eq!(out.status, MotionStatus::Compared, "{w}x{h}");
        }
        // A 1080p block lands at the same normalised place.
        let mut scene = Scene::new(1920, 1080);
        gate.process(&scene.frame(&[], 0, 0), 1920, 1080).unwrap();
        let out = gate
            .process(&scene.frame(&[(960, 540, 192, 270)], 0, 0), 1920, 1080)
            .unwrap();
        assert_eq!(out.regions.len(), 1);
        assert_tight(&out.regions[0], &NormRect::new(0.5, 0.5, 0.6, 0.75), 0.1);
    }

    #[test]
    fn the_area_average_is_exact_on_whole_blocks() {
        let mut gate = MotionGate::new(MotionConfig {
            analysis_width: 2,
            cell_px: 1,
            ..MotionConfig::default()
        })
        .unwrap();
        // 4x2 frame -> 2x1 grey: each grey pixel averages a 2x2 block.
        let y = [0, 10, 100, 101, 20, 30, 102, 103];
        gate.process(&y, 4, 2).unwrap();
        assert_eq!(gate.grey, [15, 102]);
    }

    #[test]
    fn a_y_plane_shorter_than_the_frame_is_an_error_not_a_panic() {
        let mut gate = gate();
        let err = gate.process(&[0; 100], 640, 480).unwrap_err();
        assert_eq!(
            err,
            VisionError::BadFrame {
                width: 640,
                height: 480,
                expected: 307_200,
                actual: 100
            }
        );
        assert!(gate.process(&[], 0, 0).is_err());
    }

    #[test]
    fn a_whole_i420_frame_is_read_through_its_y_plane() {
        use xl_core::frame::PooledBuf;
        let mut scene = Scene::new(W, H);
        let frame_with = |y: Vec<u8>| {
            let mut i420 = y;
            i420.resize(Frame::i420_len(W, H), 128);
            Frame {
                camera: xl_core::CameraId::new("cam-1").unwrap(),
                pts_90k: 0,
                received_at: jiff::Timestamp::UNIX_EPOCH,
                width: W,
                height: H,
                i420: PooledBuf::unpooled(i420),
            }
        };
        let mut gate = gate();
        gate.process_frame(&frame_with(scene.frame(&[], 0, 0)))
            .unwrap();
        let out = gate
            .process_frame(&frame_with(scene.frame(&[(0, 0, 128, 128)], 0, 0)))
            .unwrap();
        assert_eq!(out.regions.len(), 1);
        assert_tight(&out.regions[0], &norm(0, 0, 128, 128), 0.07);
    }

    #[test]
    fn the_steady_state_allocates_nothing() {
        let mut scene = Scene::new(W, H);
        let frames: Vec<Vec<u8>> = (0..8)
            .map(|i| scene.frame(&[(40 * i, 100, 64, 128), (500, 40 * i, 64, 64)], 0, 5))
            .collect();
        let mut gate = gate();
        gate.process(&frames[0], W, H).unwrap();
        let mut found = 0;
        let allocations = allocations_in(|| {
            for frame in &frames[1..] {
                found += gate.process(frame, W, H).unwrap().regions.len();
            }
        });
        assert!(found >= 7, "motion was found ({found} regions)");
        assert_eq!(allocations, 0);
    }

    #[test]
    fn bad_settings_are_refused_with_the_field_named() {
        let cases = [
            (
                MotionConfig {
                    learning_rate: 0.0,
                    ..Default::default()
                },
                "learning_rate",
            ),
            (
                MotionConfig {
                    learning_rate: f32::NAN,
                    ..Default::default()
                },
                "learning_rate",
            ),
            (
                MotionConfig {
                    cell_px: 0,
                    ..Default::default()
                },
                "cell_px",
            ),
            (
                MotionConfig {
                    analysis_width: 4,
                    ..Default::default()
                },
                "analysis_width",
            ),
            (
                MotionConfig {
                    cell_fraction: 1.5,
                    ..Default::default()
                },
                "cell_fraction",
            ),
            (
                MotionConfig {
                    min_region_area: -0.1,
                    ..Default::default()
                },
                "min_region_area",
            ),
            (
                MotionConfig {
                    global_change_fraction: 0.0,
                    ..Default::default()
                },
                "global_change_fraction",
            ),
        ];
        for (config, field) in cases {
            let err = MotionGate::new(config).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("motion.{field}:")),
                "{err}"
            );
        }
        let crops = [
            (
                CropConfig {
                    aspect: 0.0,
                    ..Default::default()
                },
                "crop.aspect",
            ),
            (
                CropConfig {
                    margin: f32::INFINITY,
                    ..Default::default()
                },
                "crop.margin",
            ),
            (
                CropConfig {
                    whole_frame_fraction: 0.0,
                    ..Default::default()
                },
                "crop.whole_frame_fraction",
            ),
        ];
        for (config, field) in crops {
            let err = CropPlanner::new(config).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("motion.{field}:")),
                "{err}"
            );
        }
    }

    #[test]
    fn config_takes_defaults_and_refuses_unknown_keys() {
        let config: MotionConfig = toml::from_str("pixel_threshold = 30").unwrap();
        assert_eq!(config.pixel_threshold, 30);
        assert_eq!(config.analysis_width, 160);
        let err = toml::from_str::<MotionConfig>("pixel_treshold = 30").unwrap_err();
        assert!(err.to_string().contains("pixel_treshold"), "{err}");
        let crop: CropConfig = toml::from_str("aspect = 1.5").unwrap();
        assert_eq!(
            crop,
            CropConfig {
                aspect: 1.5,
                ..CropConfig::default()
            }
        );
    }

    // --- crops ---

    fn crop(region: NormRect) -> PixelRect {
        crop_for_region(&region, W, H, &CropConfig::default())
    }

    #[test]
    fn a_region_becomes_a_square_crop_with_margin_around_it() {
        // A standing person, 64x128 pixels at (288, 176): grown by a quarter on each side to
        // 96x192, then widened to a 192x192 square centred on it.
        let c = crop(norm(288, 176, 64, 128));
        assert_eq!(
            c,
            PixelRect {
                x: 224,
                y: 144,
                width: 192,
                height: 192
            }
        );
    }

    #[test]
    fn a_tiny_region_gets_the_minimum_crop() {
        let c = crop(norm(400, 300, 8, 8));
        assert_eq!((c.width, c.height), (96, 96));
        assert_eq!(
            (c.x + c.width / 2, c.y + c.height / 2),
            (404, 304),
            "centred on the region"
        );
    }

    #[test]
    fn a_crop_at_the_edge_slides_into_the_frame_without_shrinking() {
        let c = crop(norm(600, 440, 40, 40));
        assert_eq!(
            c,
            PixelRect {
                x: 640 - 96,
                y: 480 - 96,
                width: 96,
                height: 96
            }
        );
        let c = crop(norm(0, 0, 20, 60));
        assert_eq!((c.x, c.y, c.width, c.height), (0, 0, 96, 96));
    }

    #[test]
    fn a_region_too_big_for_a_square_keeps_the_region_whole() {
        // A person filling the frame's height: no 480+ square fits, so the crop is the largest
        // square (480x480) and still holds the whole region.
        let c = crop(norm(200, 0, 200, 480));
        assert_eq!((c.width, c.height), (480, 480));
        assert!(c.x <= 200 && c.x + c.width >= 400);
        // Wider than the frame is tall: the aspect gives way to the region.
        let c = crop(norm(0, 100, 600, 200));
        assert!(
            c.x == 0 && c.width >= 600 && c.width <= 640 && c.height == 480,
            "{c:?}"
        );
    }

    #[test]
    fn crops_follow_the_detectors_aspect() {
        let config = CropConfig {
            aspect: 16.0 / 9.0,
            min_side_px: 90,
            ..CropConfig::default()
        };
        let c = crop_for_region(&norm(300, 200, 10, 10), W, H, &config);
        assert_eq!((c.width, c.height), (160, 90));
    }

    #[test]
    fn regions_whose_crops_overlap_share_one_crop_and_far_ones_do_not() {
        let mut planner = CropPlanner::new(CropConfig::default()).unwrap();
        let near = [norm(100, 100, 20, 40), norm(140, 110, 20, 40)];
        let crops = planner.plan(&near, W, H);
        assert_eq!(crops.len(), 1);
        assert!(crops[0].x <= 100 && crops[0].x + crops[0].width >= 160);

        let far = [norm(40, 200, 20, 40), norm(560, 200, 20, 40)];
        assert_eq!(planner.plan(&far, W, H).len(), 2);
        assert!(planner.plan(&[], W, H).is_empty());
    }

    #[test]
    fn regions_spread_over_most_of_the_frame_give_one_whole_frame_crop() {
        let mut planner = CropPlanner::new(CropConfig::default()).unwrap();
        let whole = PixelRect {
            x: 0,
            y: 0,
            width: W,
            height: H,
        };
        // Union bigger than half the frame.
        let spread = [norm(0, 0, 40, 40), norm(560, 400, 80, 80)];
        assert_eq!(planner.plan(&spread, W, H), [whole]);
        // Union small enough, but the crops together would cover over half the frame.
        let big = [norm(100, 40, 160, 280), norm(330, 40, 160, 280)];
        assert_eq!(planner.plan(&big, W, H), [whole]);
    }

    proptest::proptest! {
        #[test]
        fn every_crop_lies_in_the_frame_and_holds_its_region(
            x0 in 0.0f32..1.0, y0 in 0.0f32..1.0, w in 0.0f32..1.0, h in 0.0f32..1.0,
            fw in 16u32..2000, fh in 16u32..2000, aspect in 0.3f32..3.0, min_side in 0u32..400,
        ) {
            let region = NormRect::new(x0, y0, (x0 + w).min(1.0), (y0 + h).min(1.0));
            let config = CropConfig { aspect, min_side_px: min_side, ..CropConfig::default() };
            let c = crop_for_region(&region, fw, fh, &config);
            proptest::prop_assert!(c.width >= 1 && c.height >= 1);
            proptest::prop_assert!(c.x + c.width <= fw && c.y + c.height <= fh, "{:?}", c);
            let (fw, fh) = (fw as f32, fh as f32);
            proptest::prop_assert!(c.x as f32 <= region.x0 * fw + 1.0 && (c.x + c.width) as f32 >= region.x1 * fw - 1.0, "{:?}", c);
            proptest::prop_assert!(c.y as f32 <= region.y0 * fh + 1.0 && (c.y + c.height) as f32 >= region.y1 * fh - 1.0, "{:?}", c);
        }
    }
}
