//! Evidence: a short ring of recent frames per camera, and snapshots (JPEG, boxes drawn) taken
//! from it when an alert is raised.
//!
//! Which cameras keep a ring: those a gate names (`[[gates]] camera`) and those with detection
//! on. Frames enter a ring at most `ring_fps` a second, copied from the decode pool's frames
//! (gate cameras) or taken with their person boxes from detection results (analysed cameras).
//! Memory: `ring_secs * ring_fps` frames at the analysis size per such camera (640x360 I420 is
//! 346 kB; the defaults keep 8, 2.8 MB a camera).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use image::codecs::jpeg::JpegEncoder;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use xl_core::CameraId;
use xl_core::frame::{Frame, FrameSink, PooledBuf};
use xl_vision::NormRect;

/// `[evidence]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceConfig {
    /// Seconds of frames kept per camera. Default 4: a gate event reaches the hub well within
    /// that, after its device clock is corrected.
    pub ring_secs: f64,
    /// Frames kept per second. Default 2.
    pub ring_fps: f64,
    /// JPEG quality, 1 to 100. Default 80.
    pub jpeg_quality: u8,
    /// A snapshot is taken only from a frame at most this many seconds from the event.
    /// Default 2.
    pub max_gap_secs: f64,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            ring_secs: 4.0,
            ring_fps: 2.0,
            jpeg_quality: 80,
            max_gap_secs: 2.0,
        }
    }
}

impl EvidenceConfig {
    /// Says which key is wrong and what it should be.
    pub fn validate(&self) -> Result<(), String> {
        let ok = |x: f64| x.is_finite() && x > 0.0;
        if !ok(self.ring_secs) || !ok(self.ring_fps) || !ok(self.max_gap_secs) {
            return Err(
                "[evidence] ring_secs, ring_fps and max_gap_secs must be positive numbers".into(),
            );
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return Err(format!(
                "[evidence] jpeg_quality must be 1 to 100, not {}",
                self.jpeg_quality
            ));
        }
        Ok(())
    }

    fn len(&self) -> usize {
        ((self.ring_secs * self.ring_fps).ceil() as usize).clamp(1, 256)
    }
}

/// One kept frame.
#[derive(Clone)]
pub struct Still {
    /// The frame's receipt time (the hub's clock).
    pub at: Timestamp,
    pub frame: Arc<Frame>,
    /// Persons detected in it, when it came from detection.
    pub boxes: Option<Vec<NormRect>>,
}

#[derive(Default)]
struct Ring {
    stills: VecDeque<Still>,
    /// When a copied (not detected) frame last entered.
    last_copy: Option<Timestamp>,
}

/// One camera's ring.
struct CameraRing {
    /// Decoded frames are copied in (a gate's camera); otherwise only the frames detection
    /// looked at.
    copied: bool,
    ring: Mutex<Ring>,
}

/// The rings of every camera that keeps one. Cameras come and go while the hub runs
/// ([`Rings::set_camera`]).
pub struct Rings {
    cameras: RwLock<HashMap<CameraId, Arc<CameraRing>>>,
    len: usize,
    spacing: SignedDuration,
    max_gap: SignedDuration,
}

impl Rings {
    /// Rings for no camera yet.
    pub fn new(cfg: &EvidenceConfig) -> Rings {
        Rings {
            cameras: RwLock::default(),
            len: cfg.len(),
            spacing: SignedDuration::from_secs_f64(1.0 / cfg.ring_fps),
            max_gap: SignedDuration::from_secs_f64(cfg.max_gap_secs),
        }
    }

    /// Keeps a ring for `camera` when its decoded frames are `copied` in (a gate names it) or
    /// when it is `detected` (analysed frames with their boxes), and none otherwise. A ring
    /// that stays keeps its frames.
    pub fn set_camera(&self, camera: &CameraId, copied: bool, detected: bool) {
        let mut cameras = self.cameras.write().unwrap_or_else(|e| e.into_inner());
        if !copied && !detected {
            cameras.remove(camera);
            return;
        }
        match cameras.get(camera) {
            Some(r) if r.copied == copied => {}
            Some(r) => {
                let ring = std::mem::take(&mut *r.ring.lock().unwrap_or_else(|e| e.into_inner()));
                cameras.insert(
                    camera.clone(),
                    Arc::new(CameraRing {
                        copied,
                        ring: Mutex::new(ring),
                    }),
                );
            }
            None => {
                cameras.insert(
                    camera.clone(),
                    Arc::new(CameraRing {
                        copied,
                        ring: Mutex::default(),
                    }),
                );
            }
        }
    }

    fn ring(&self, camera: &CameraId) -> Option<Arc<CameraRing>> {
        let cameras = self.cameras.read().unwrap_or_else(|e| e.into_inner());
        cameras.get(camera).cloned()
    }

    pub fn keeps(&self, camera: &CameraId) -> bool {
        self.ring(camera).is_some()
    }

    /// A decoded frame: copied into the ring when the last copy is older than the spacing.
    pub fn offer(&self, frame: &Frame) {
        let Some(r) = self.ring(&frame.camera).filter(|r| r.copied) else {
            return;
        };
        let mut ring = r.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring
            .last_copy
            .is_some_and(|t| frame.received_at.duration_since(t) < self.spacing)
        {
            return;
        }
        ring.last_copy = Some(frame.received_at);
        let copy = Frame {
            camera: frame.camera.clone(),
            pts_90k: frame.pts_90k,
            received_at: frame.received_at,
            width: frame.width,
            height: frame.height,
            i420: PooledBuf::unpooled(frame.i420.to_vec()),
        };
        self.push(
            &mut ring,
            Still {
                at: frame.received_at,
                frame: Arc::new(copy),
                boxes: None,
            },
        );
    }

    /// A frame detection looked at, with the persons found (no copy: the frame is shared).
    pub fn record_detections(&self, at: Timestamp, frame: Arc<Frame>, boxes: Vec<NormRect>) {
        let Some(r) = self.ring(&frame.camera) else {
            return;
        };
        let mut ring = r.ring.lock().unwrap_or_else(|e| e.into_inner());
        self.push(
            &mut ring,
            Still {
                at,
                frame,
                boxes: Some(boxes),
            },
        );
    }

    fn push(&self, ring: &mut Ring, still: Still) {
        // Detection results and copies interleave: keep the ring in time order.
        let pos = ring.stills.partition_point(|s| s.at <= still.at);
        ring.stills.insert(pos, still);
        while ring.stills.len() > self.len {
            ring.stills.pop_front();
        }
    }

    /// The kept frame closest to `at`, within the configured gap; with `boxes`, only frames
    /// detection looked at (a camera alert shows the persons).
    pub fn nearest(&self, camera: &CameraId, at: Timestamp, boxes: bool) -> Option<Still> {
        let r = self.ring(camera)?;
        let ring = r.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.stills
            .iter()
            .filter(|s| !boxes || s.boxes.is_some())
            .map(|s| (s.at.duration_since(at).abs(), s))
            .filter(|(gap, _)| *gap <= self.max_gap)
            .min_by_key(|(gap, _)| *gap)
            .map(|(_, s)| s.clone())
    }
}

/// The decode pool's sink when rings are kept: feeds the rings, then the real sink.
pub struct EvidenceSink {
    pub rings: Arc<Rings>,
    pub inner: Arc<dyn FrameSink>,
}

impl FrameSink for EvidenceSink {
    fn on_frame(&self, frame: Frame) {
        self.rings.offer(&frame);
        self.inner.on_frame(frame);
    }
}

/// A snapshot ready to store.
pub struct Jpeg {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Red, for person boxes; yellow for the zone outline.
const BOX: [u8; 3] = [230, 30, 30];
const ZONE: [u8; 3] = [250, 210, 20];

/// Converts the frame to RGB (BT.601 limited range, as the detectors see it), draws the person
/// boxes and the zone outline, and encodes a JPEG. CPU work: call it off the async threads.
pub fn encode(
    still: &Still,
    zone: Option<&[[f32; 2]]>,
    quality: u8,
) -> Result<Jpeg, image::ImageError> {
    let f = &still.frame;
    let (w, h) = (f.width as usize, f.height as usize);
    let (yp, up, vp) = f.planes();
    let cw = w / 2;
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let c = (y / 2) * cw + (x / 2).min(cw.saturating_sub(1));
            let px = xl_core::frame::yuv_to_rgb(
                i32::from(yp[y * w + x]),
                i32::from(up.get(c).copied().unwrap_or(128)),
                i32::from(vp.get(c).copied().unwrap_or(128)),
            );
            rgb[(y * w + x) * 3..][..3].copy_from_slice(&px);
        }
    }
    let mut canvas = Canvas {
        rgb: &mut rgb,
        w,
        h,
    };
    let thick = (w.max(h) / 320).max(2);
    if let Some(poly) = zone {
        for (i, a) in poly.iter().enumerate() {
            let b = poly[(i + 1) % poly.len()];
            canvas.line(a[0], a[1], b[0], b[1], thick, ZONE);
        }
    }
    for b in still.boxes.iter().flatten() {
        canvas.line(b.x0, b.y0, b.x1, b.y0, thick, BOX);
        canvas.line(b.x1, b.y0, b.x1, b.y1, thick, BOX);
        canvas.line(b.x1, b.y1, b.x0, b.y1, thick, BOX);
        canvas.line(b.x0, b.y1, b.x0, b.y0, thick, BOX);
    }
    let mut bytes = Vec::with_capacity(w * h / 4);
    JpegEncoder::new_with_quality(&mut bytes, quality).encode(
        &rgb,
        f.width,
        f.height,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(Jpeg {
        bytes,
        width: f.width,
        height: f.height,
    })
}

struct Canvas<'a> {
    rgb: &'a mut [u8],
    w: usize,
    h: usize,
}

impl Canvas<'_> {
    /// A line between two points in normalised coordinates, `thick` pixels wide. Points are
    /// clamped to the image (a model's odd box, even an infinite one, costs one line's work).
    fn line(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, thick: usize, colour: [u8; 3]) {
        let (w, h) = (self.w as f32, self.h as f32);
        let at = |v: f32, side: f32| {
            if v.is_nan() {
                0.0
            } else {
                v.clamp(0.0, 1.0) * side
            }
        };
        let (ax, ay, bx, by) = (at(x0, w), at(y0, h), at(x1, w), at(y1, h));
        let steps = (bx - ax).abs().max((by - ay).abs()).ceil().max(1.0) as usize;
        let half = (thick / 2) as isize;
        for i in 0..=steps {
            let t = i as f32 / steps as f32;
            let (x, y) = (ax + (bx - ax) * t, ay + (by - ay) * t);
            for dy in -half..thick as isize - half {
                for dx in -half..thick as isize - half {
                    self.dot(x as isize + dx, y as isize + dy, colour);
                }
            }
        }
    }

    fn dot(&mut self, x: isize, y: isize, colour: [u8; 3]) {
        if x < 0 || y < 0 || x as usize >= self.w || y as usize >= self.h {
            return;
        }
        let i = (y as usize * self.w + x as usize) * 3;
        self.rgb[i..i + 3].copy_from_slice(&colour);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(camera: &str, at: Timestamp, luma: u8) -> Frame {
        let (w, h) = (64u32, 48u32);
        let mut i420 = vec![128u8; Frame::i420_len(w, h)];
        i420[..(w * h) as usize].fill(luma);
        Frame {
            camera: CameraId::new(camera).unwrap(),
            pts_90k: 0,
            received_at: at,
            width: w,
            height: h,
            i420: PooledBuf::unpooled(i420),
        }
    }

    fn ts(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_700_000_000_000 + ms).unwrap()
    }

    #[test]
    fn rings_keep_spaced_frames_and_find_the_nearest_within_the_gap() {
        let cfg = EvidenceConfig::default(); // 8 frames, 500 ms apart, 2 s gap
        let cam = CameraId::new("gate-cam").unwrap();
        let rings = Rings::new(&cfg);
        rings.set_camera(&cam, true, false);
        // 25 fps for 6 s: a frame is kept when 500 ms have passed since the last kept one (every
        // 520 ms at 40 ms a frame); the ring holds the last 8: 2080, 2600, ..., 5720 ms.
        for i in 0..150 {
            rings.offer(&frame("gate-cam", ts(i * 40), (i % 200) as u8));
        }
        rings.offer(&frame("other", ts(0), 0)); // not kept: no ring
        assert!(!rings.keeps(&CameraId::new("other").unwrap()));
        let near = rings.nearest(&cam, ts(5_010), false).unwrap();
        assert_eq!(near.at, ts(5_200));
        assert_eq!(rings.nearest(&cam, ts(1_000), false).unwrap().at, ts(2_080));
        assert!(rings.nearest(&cam, ts(0), false).is_none(), "fell out");
        assert!(rings.nearest(&cam, ts(9_000), false).is_none(), "too far");
        assert!(rings.nearest(&cam, ts(5_000), true).is_none(), "no boxes");
        rings.record_detections(ts(5_100), Arc::new(frame("gate-cam", ts(5_100), 9)), vec![]);
        assert_eq!(rings.nearest(&cam, ts(4_000), true).unwrap().at, ts(5_100));
        assert_eq!(rings.nearest(&cam, ts(4_000), false).unwrap().at, ts(4_160));
    }

    #[test]
    fn a_camera_changed_while_running_keeps_its_ring_and_a_removed_one_loses_it() {
        let rings = Rings::new(&EvidenceConfig::default());
        let cam = CameraId::new("cam").unwrap();
        rings.offer(&frame("cam", ts(0), 1));
        assert!(!rings.keeps(&cam), "no ring before set_camera");
        rings.set_camera(&cam, true, false);
        rings.offer(&frame("cam", ts(0), 1));
        // detection switched on as well: the ring stays, frames and all
        rings.set_camera(&cam, true, true);
        assert_eq!(rings.nearest(&cam, ts(0), false).unwrap().at, ts(0));
        // only detection now: decoded frames are no longer copied in
        rings.set_camera(&cam, false, true);
        rings.offer(&frame("cam", ts(1_000), 2));
        assert_eq!(rings.nearest(&cam, ts(1_000), false).unwrap().at, ts(0));
        rings.set_camera(&cam, false, false);
        assert!(!rings.keeps(&cam));
        assert!(rings.nearest(&cam, ts(0), false).is_none());
    }

    #[test]
    fn lines_from_odd_boxes_are_clamped_to_the_image() {
        let (w, h) = (8usize, 6usize);
        let mut rgb = vec![0u8; w * h * 3];
        let mut c = Canvas {
            rgb: &mut rgb,
            w,
            h,
        };
        // Infinite ends would have meant usize::MAX steps.
        c.line(f32::NEG_INFINITY, 0.5, f32::INFINITY, 0.5, 1, [255, 0, 0]);
        c.line(f32::NAN, 0.0, 0.5, f32::NAN, 1, [0, 255, 0]);
        let red: Vec<usize> = (0..w * h).filter(|i| rgb[i * 3] == 255).collect();
        assert_eq!(
            red,
            (3 * w..4 * w).collect::<Vec<_>>(),
            "the middle row, whole"
        );
        assert_eq!(
            rgb[1], 255,
            "NaN is taken as 0: the line starts at the top left"
        );
    }

    #[test]
    fn snapshots_are_jpegs_with_the_boxes_drawn() {
        let still = Still {
            at: ts(0),
            frame: Arc::new(frame("c", ts(0), 16)), // black
            boxes: Some(vec![NormRect::new(0.25, 0.25, 0.75, 0.75)]),
        };
        let jpeg = encode(&still, None, 90).unwrap();
        assert_eq!((jpeg.width, jpeg.height), (64, 48));
        let img = image::load_from_memory(&jpeg.bytes).unwrap().to_rgb8();
        let on_box = img.get_pixel(32, 12).0; // top edge of the box
        let inside = img.get_pixel(32, 24).0;
        assert!(on_box[0] > 150 && on_box[1] < 100, "{on_box:?}");
        assert!(inside.iter().all(|&c| c < 40), "{inside:?}");
    }
}
