//! Where a detector's input pixels come from: a decoded I420 frame (the hub's own path) or a
//! packed RGB image (photos in tests and tools). Pre-processing is generic over both, so the
//! sampling arithmetic that is checked against the Python references on photos is the same code
//! that runs on frames.

pub use xl_core::frame::yuv_to_rgb;

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

    /// Writes the pixels at columns `x0..x0 + b.len()` of row `y` into three planes as 0..255
    /// floats (`b`, `g`, `r` are equally long): YuNet's input at native size, the widest fill
    /// of the hot path.
    #[inline]
    fn row_planar(&self, y: u32, x0: u32, b: &mut [f32], g: &mut [f32], r: &mut [f32]) {
        self.for_row(
            y,
            b.len(),
            |i| x0 + i as u32,
            |i, [pr, pg, pb]| {
                b[i] = pb as f32;
                g[i] = pg as f32;
                r[i] = pr as f32;
            },
        );
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

    fn row_planar(&self, y: u32, x0: u32, b: &mut [f32], g: &mut [f32], r: &mut [f32]) {
        let n = b.len();
        assert!(g.len() == n && r.len() == n, "three planes of one length");
        if n == 0 {
            return;
        }
        let (w, y, mut x0) = (self.width as usize, y as usize, x0 as usize);
        assert!(x0 + n <= w, "columns {x0}..{} past width {w}", x0 + n);
        let (mut b, mut g, mut r) = (b, g, r);
        if x0 % 2 == 1 {
            // an odd start shares its chroma with the column before: one pixel on its own
            [r[0], g[0], b[0]] = self.rgb(x0 as u32, y as u32).map(f32::from);
            (b, g, r) = (&mut b[1..], &mut g[1..], &mut r[1..]);
            x0 += 1;
        }
        let luma = &self.y[y * w + x0..y * w + x0 + b.len()];
        let c0 = (y / 2) * (w / 2) + x0 / 2;
        let cn = b.len().div_ceil(2);
        let (u, v) = (&self.u[c0..c0 + cn], &self.v[c0..c0 + cn]);
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { i420_row_planar_avx2(luma, u, v, b, g, r) };
        }
        i420_row_planar(luma, u, v, b, g, r)
    }
}

/// Pixels per step of the row converter: the chroma of a step is widened once, and the fixed
/// trip counts let the compiler keep every step in vector registers.
const STEP: usize = 16;

/// One I420 row starting at an even column: `luma` holds the pixels, `u` and `v` their chroma
/// (one sample per two pixels), written to `b`, `g`, `r` with exactly `yuv_to_rgb`'s arithmetic.
#[inline(always)]
fn i420_row_planar(luma: &[u8], u: &[u8], v: &[u8], b: &mut [f32], g: &mut [f32], r: &mut [f32]) {
    let n = luma.len();
    let full = n / STEP * STEP;
    let planes = b[..full]
        .chunks_exact_mut(STEP)
        .zip(g[..full].chunks_exact_mut(STEP))
        .zip(r[..full].chunks_exact_mut(STEP));
    for (s, ((bo, go), ro)) in planes.enumerate() {
        let ys = &luma[s * STEP..(s + 1) * STEP];
        let (us, vs) = (
            &u[s * STEP / 2..(s + 1) * STEP / 2],
            &v[s * STEP / 2..(s + 1) * STEP / 2],
        );
        let (mut cr, mut cg, mut cb) = ([0i32; STEP], [0i32; STEP], [0i32; STEP]);
        for k in 0..STEP {
            let (d, e) = (us[k / 2] as i32 - 128, vs[k / 2] as i32 - 128);
            cr[k] = 409 * e;
            cg[k] = -100 * d - 208 * e;
            cb[k] = 516 * d;
        }
        for k in 0..STEP {
            let c = 298 * (ys[k] as i32 - 16) + 128;
            ro[k] = ((c + cr[k]) >> 8).clamp(0, 255) as f32;
            go[k] = ((c + cg[k]) >> 8).clamp(0, 255) as f32;
            bo[k] = ((c + cb[k]) >> 8).clamp(0, 255) as f32;
        }
    }
    for x in full..n {
        let [pr, pg, pb] = yuv_to_rgb(luma[x] as i32, u[x / 2] as i32, v[x / 2] as i32);
        (b[x], g[x], r[x]) = (pb as f32, pg as f32, pr as f32);
    }
}

/// `i420_row_planar` compiled for AVX2 (eight lanes), chosen at run time where the CPU has it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn i420_row_planar_avx2(
    luma: &[u8],
    u: &[u8],
    v: &[u8],
    b: &mut [f32],
    g: &mut [f32],
    r: &mut [f32],
) {
    i420_row_planar(luma, u, v, b, g, r)
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

    /// Every start column parity and length around the vector step, both compiled variants.
    #[test]
    fn row_planar_on_i420_equals_converting_each_pixel() {
        let (w, h) = (70usize, 4usize);
        let mut seed = 12345u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 24) as u8
        };
        let y: Vec<u8> = (0..w * h).map(|_| next()).collect();
        let u: Vec<u8> = (0..w * h / 4).map(|_| next()).collect();
        let v: Vec<u8> = (0..w * h / 4).map(|_| next()).collect();
        let f = I420View {
            width: w as u32,
            height: h as u32,
            y: &y,
            u: &u,
            v: &v,
        };
        for row in 0..h as u32 {
            for x0 in [0usize, 1, 2, 5, 16, 17] {
                for n in [0usize, 1, 2, 15, 16, 17, 33, w - x0] {
                    let (mut b, mut g, mut r) = (vec![-1.0; n], vec![-1.0; n], vec![-1.0; n]);
                    f.row_planar(row, x0 as u32, &mut b, &mut g, &mut r);
                    for i in 0..n {
                        let [pr, pg, pb] = f.rgb((x0 + i) as u32, row).map(f32::from);
                        assert_eq!(
                            [r[i], g[i], b[i]],
                            [pr, pg, pb],
                            "row {row} x0 {x0} n {n} i {i}"
                        );
                    }
                }
            }
            // the portable variant too, where the CPU would pick AVX2
            let at = row as usize * w;
            let c0 = (row as usize / 2) * (w / 2);
            let (mut b, mut g, mut r) = (vec![0.0; w], vec![0.0; w], vec![0.0; w]);
            i420_row_planar(&y[at..at + w], &u[c0..], &v[c0..], &mut b, &mut g, &mut r);
            for i in 0..w {
                let [pr, pg, pb] = f.rgb(i as u32, row).map(f32::from);
                assert_eq!([r[i], g[i], b[i]], [pr, pg, pb]);
            }
        }
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
