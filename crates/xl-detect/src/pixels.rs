//! Where a detector's input pixels come from: a decoded I420 frame (the hub's own path) or a
//! packed RGB image (photos in tests and tools). Pre-processing is generic over both, so the
//! sampling arithmetic that is checked against the Python references on photos is the same code
//! that runs on frames.

/// An image that can be sampled pixel by pixel as RGB.
pub trait Pixels {
    fn width(&self) -> u32;
    fn height(&self) -> u32;
    /// The pixel at `(x, y)`; both in range.
    fn rgb(&self, x: u32, y: u32) -> [u8; 3];

    /// Calls `f(i, pixel)` for `i` in `0..n`, with the pixel at column `x_of(i)` of row `y`:
    /// the hot loop of every resize, with the row found once.
    #[inline]
    fn for_row(
        &self,
        y: u32,
        n: usize,
        x_of: impl Fn(usize) -> u32,
        mut f: impl FnMut(usize, [u8; 3]),
    ) {
        for i in 0..n {
            f(i, self.rgb(x_of(i), y));
        }
    }
}

/// Packed 8-bit RGB, `width * 3` bytes a row.
#[derive(Debug, Clone, Copy)]
pub struct RgbView<'a> {
    pub width: u32,
    pub height: u32,
    pub data: &'a [u8],
}

impl<'a> RgbView<'a> {
    /// Checks that `data` holds `width * height` pixels.
    pub fn new(width: u32, height: u32, data: &'a [u8]) -> Option<RgbView<'a>> {
        (data.len() == width as usize * height as usize * 3).then_some(RgbView {
            width,
            height,
            data,
        })
    }
}

impl Pixels for RgbView<'_> {
    fn width(&self) -> u32 {
        self.width
    }
    fn height(&self) -> u32 {
        self.height
    }
    #[inline]
    fn rgb(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}

/// Planar I420 (the decoder's output, `xl_core::frame::Frame`), converted per sampled pixel with
/// BT.601 limited-range coefficients (what FFmpeg assumes for untagged SD and HD camera video).
#[derive(Debug, Clone, Copy)]
pub struct I420View<'a> {
    pub width: u32,
    pub height: u32,
    pub y: &'a [u8],
    pub u: &'a [u8],
    pub v: &'a [u8],
}

impl<'a> I420View<'a> {
    pub fn of(frame: &'a xl_core::frame::Frame) -> I420View<'a> {
        let (y, u, v) = frame.planes();
        I420View {
            width: frame.width,
            height: frame.height,
            y,
            u,
            v,
        }
    }
}

impl Pixels for I420View<'_> {
    fn width(&self) -> u32 {
        self.width
    }
    fn height(&self) -> u32 {
        self.height
    }
    #[inline]
    fn rgb(&self, x: u32, y: u32) -> [u8; 3] {
        let (x, y) = (x as usize, y as usize);
        let w = self.width as usize;
        let luma = self.y[y * w + x] as i32;
        let ci = (y / 2) * (w / 2) + x / 2;
        yuv_to_rgb(luma, self.u[ci] as i32, self.v[ci] as i32)
    }

    #[inline]
    fn for_row(
        &self,
        y: u32,
        n: usize,
        x_of: impl Fn(usize) -> u32,
        mut f: impl FnMut(usize, [u8; 3]),
    ) {
        let (w, y) = (self.width as usize, y as usize);
        let luma = &self.y[y * w..(y + 1) * w];
        let c0 = (y / 2) * (w / 2);
        let (u, v) = (&self.u[c0..c0 + w / 2], &self.v[c0..c0 + w / 2]);
        for i in 0..n {
            let x = x_of(i) as usize;
            f(
                i,
                yuv_to_rgb(luma[x] as i32, u[x / 2] as i32, v[x / 2] as i32),
            );
        }
    }
}

/// BT.601 limited range, 8-bit fixed point (the classic 298/409/100/208/516 coefficients).
#[inline]
pub fn yuv_to_rgb(y: i32, u: i32, v: i32) -> [u8; 3] {
    let c = 298 * (y - 16) + 128;
    let (d, e) = (u - 128, v - 128);
    let clip = |x: i32| (x >> 8).clamp(0, 255) as u8;
    [
        clip(c + 409 * e),
        clip(c - 100 * d - 208 * e),
        clip(c + 516 * d),
    ]
}

/// Packed RGB to I420 (BT.601 limited range, chroma averaged over each 2x2 block), the inverse
/// of `yuv_to_rgb` up to rounding. For tools and tests that feed photos to the frame path.
/// Width and height must be even.
pub fn rgb_to_i420(src: &RgbView<'_>) -> Vec<u8> {
    let (w, h) = (src.width as usize, src.height as usize);
    assert!(w % 2 == 0 && h % 2 == 0, "I420 needs even sides");
    let mut out = vec![0u8; w * h + 2 * (w / 2) * (h / 2)];
    let (y_plane, uv) = out.split_at_mut(w * h);
    let (u_plane, v_plane) = uv.split_at_mut((w / 2) * (h / 2));
    for y in 0..h {
        for x in 0..w {
            let [r, g, b] = src.rgb(x as u32, y as u32).map(i32::from);
            y_plane[y * w + x] = (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8;
        }
    }
    for y in 0..h / 2 {
        for x in 0..w / 2 {
            let (mut r, mut g, mut b) = (0, 0, 0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = src
                    .rgb((2 * x + dx) as u32, (2 * y + dy) as u32)
                    .map(i32::from);
                (r, g, b) = (r + p[0], g + p[1], b + p[2]);
            }
            let (r, g, b) = ((r + 2) / 4, (g + 2) / 4, (b + 2) / 4);
            u_plane[y * (w / 2) + x] = (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128) as u8;
            v_plane[y * (w / 2) + x] = (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_range_black_white_and_primaries() {
        assert_eq!(yuv_to_rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(yuv_to_rgb(235, 128, 128), [255, 255, 255]);
        // BT.601 red: Y 81, U 90, V 240
        let [r, g, b] = yuv_to_rgb(81, 90, 240);
        assert!(r >= 253 && g <= 2 && b <= 2, "{r} {g} {b}");
    }

    #[test]
    fn i420_view_samples_the_shared_chroma_of_each_2x2_block() {
        // 4x2 frame: chroma 2x1
        let y = [16, 16, 235, 235, 16, 16, 235, 235];
        let u = [128, 128];
        let v = [128, 240];
        let f = I420View {
            width: 4,
            height: 2,
            y: &y,
            u: &u,
            v: &v,
        };
        assert_eq!(f.rgb(0, 1), [0, 0, 0]);
        let [r, _, _] = f.rgb(3, 1);
        assert_eq!(r, 255);
        assert!(f.rgb(2, 0)[1] < 200, "V 240 takes green down");
    }
}
