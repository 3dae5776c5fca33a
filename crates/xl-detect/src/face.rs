//! Face alignment for SFace and embedding arithmetic: the 5-point similarity transform onto the
//! 112x112 template, the bilinear warp into model input, L2 normalisation and cosine.

use crate::pixels::Pixels;

/// SFace input side.
pub const SIDE: usize = 112;
pub const INPUT_LEN: usize = 3 * SIDE * SIDE;
pub const INPUT_NAME: &str = "data";
pub const EMBEDDING_DIM: usize = 128;
/// The usual SFace match threshold on cosine similarity.
pub const MATCH_COSINE: f32 = 0.363;

/// Where the five landmarks go in the aligned 112x112 face (ArcFace template).
pub const TEMPLATE_112: [[f64; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// A similarity transform `[[a, -b, tx], [b, a, ty]]`: rotation, uniform scale, translation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f64,
    pub b: f64,
    pub tx: f64,
    pub ty: f64,
}

impl Similarity {
    /// The least-squares similarity taking `src` points to `dst` (closed form, no RANSAC).
    pub fn fit(src: &[[f64; 2]; 5], dst: &[[f64; 2]; 5]) -> Similarity {
        let mean = |p: &[[f64; 2]; 5]| {
            let n = p.len() as f64;
            [
                p.iter().map(|q| q[0]).sum::<f64>() / n,
                p.iter().map(|q| q[1]).sum::<f64>() / n,
            ]
        };
        let (ms, md) = (mean(src), mean(dst));
        let (mut n, mut a, mut b) = (0.0, 0.0, 0.0);
        for (s, d) in src.iter().zip(dst) {
            let (sx, sy) = (s[0] - ms[0], s[1] - ms[1]);
            let (dx, dy) = (d[0] - md[0], d[1] - md[1]);
            n += sx * sx + sy * sy;
            a += sx * dx + sy * dy;
            b += sx * dy - sy * dx;
        }
        let (a, b) = if n > 0.0 { (a / n, b / n) } else { (1.0, 0.0) };
        Similarity {
            a,
            b,
            tx: md[0] - (a * ms[0] - b * ms[1]),
            ty: md[1] - (b * ms[0] + a * ms[1]),
        }
    }

    pub fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        [
            self.a * p[0] - self.b * p[1] + self.tx,
            self.b * p[0] + self.a * p[1] + self.ty,
        ]
    }
}

/// Fills one `[3, 112, 112]` RGB 0..255 image of SFace input: the face whose `landmarks` (in
/// `src` pixels) are given, aligned onto the template. Each output pixel samples `src` at the
/// inverse transform bilinearly, neighbours outside the image count as 0, and the value is
/// rounded with `floor(v + 0.5)` as the reference does.
pub fn fill_aligned(src: &impl Pixels, landmarks: &[[f32; 2]; 5], out: &mut [f32]) {
    assert_eq!(out.len(), INPUT_LEN, "one [3, 112, 112] image");
    let pts = landmarks.map(|p| [p[0] as f64, p[1] as f64]);
    let m = Similarity::fit(&pts, &TEMPLATE_112);
    let k = 1.0 / (m.a * m.a + m.b * m.b);
    let (w, h) = (src.width() as i64, src.height() as i64);
    let px = |x: i64, y: i64| -> [f64; 3] {
        if x >= 0 && x < w && y >= 0 && y < h {
            src.rgb(x as u32, y as u32).map(f64::from)
        } else {
            [0.0; 3]
        }
    };
    let plane = SIDE * SIDE;
    for y in 0..SIDE {
        for x in 0..SIDE {
            let (u, v) = (x as f64 - m.tx, y as f64 - m.ty);
            let sx = k * (m.a * u + m.b * v);
            let sy = k * (-m.b * u + m.a * v);
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let (p00, p10, p01, p11) = (
                px(x0, y0),
                px(x0 + 1, y0),
                px(x0, y0 + 1),
                px(x0 + 1, y0 + 1),
            );
            for c in 0..3 {
                let val = (1.0 - fx) * (1.0 - fy) * p00[c]
                    + fx * (1.0 - fy) * p10[c]
                    + (1.0 - fx) * fy * p01[c]
                    + fx * fy * p11[c];
                out[c * plane + y * SIDE + x] = (val + 0.5).floor().clamp(0.0, 255.0) as f32;
            }
        }
    }
}

/// L2-normalises an embedding in place (a zero vector stays zero).
pub fn normalize(e: &mut [f32]) {
    let n = e.iter().map(|v| v * v).sum::<f32>().sqrt();
    if n > 0.0 {
        e.iter_mut().for_each(|v| *v /= n);
    }
}

/// Cosine similarity of two normalised embeddings.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_recovers_a_known_similarity() {
        let m = Similarity {
            a: 0.8,
            b: 0.3,
            tx: 5.0,
            ty: -7.0,
        };
        let src = [
            [10.0, 20.0],
            [40.0, 22.0],
            [25.0, 35.0],
            [12.0, 50.0],
            [38.0, 52.0],
        ];
        let dst = src.map(|p| m.apply(p));
        let got = Similarity::fit(&src, &dst);
        for (g, w) in [(got.a, m.a), (got.b, m.b), (got.tx, m.tx), (got.ty, m.ty)] {
            assert!((g - w).abs() < 1e-9, "{got:?}");
        }
    }

    #[test]
    fn aligning_the_template_itself_is_the_identity_warp() {
        // a 112x112 gradient image whose landmarks are exactly the template: output == input
        let data: Vec<u8> = (0..SIDE * SIDE)
            .flat_map(|i| [(i % SIDE) as u8, (i / SIDE) as u8, 7])
            .collect();
        let img = crate::pixels::RgbView::new(112, 112, &data).unwrap();
        let lm = TEMPLATE_112.map(|p| [p[0] as f32, p[1] as f32]);
        let mut out = vec![0.0; INPUT_LEN];
        fill_aligned(&img, &lm, &mut out);
        let plane = SIDE * SIDE;
        for (x, y) in [(0, 0), (50, 60), (111, 111)] {
            assert_eq!(out[y * SIDE + x], x as f32);
            assert_eq!(out[plane + y * SIDE + x], y as f32);
            assert_eq!(out[2 * plane + y * SIDE + x], 7.0);
        }
    }

    #[test]
    fn cosine_of_normalised_vectors() {
        let mut a = vec![3.0, 4.0];
        let mut b = vec![4.0, 3.0];
        normalize(&mut a);
        normalize(&mut b);
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-6);
        assert!((cosine(&a, &b) - 0.96).abs() < 1e-6);
        let mut z = vec![0.0; 3];
        normalize(&mut z);
        assert_eq!(z, vec![0.0; 3]);
    }
}
