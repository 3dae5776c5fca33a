//! Criterion benches of the detection hot path's pure parts: filling model input from a decoded
//! frame (the SSD's 300x300 RGB, YuNet's padded BGR, an aligned SFace face), SSD box decoding
//! and YuNet decoding with NMS. Each figure is per frame or per crop; compare with the model
//! times `xueliang bench` prints (tens of milliseconds) to see what pre/post-processing costs.
//!
//!     cargo bench -p xl-benches --bench vision

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use xl_detect::geom::{BBox, Crop, Scored, nms};
use xl_detect::pixels::I420View;
use xl_detect::{face, ssd, yunet};

/// A 640x480 I420 frame with some texture.
fn frame() -> (Vec<u8>, u32, u32) {
    let (w, h) = (640u32, 480u32);
    let mut buf = vec![0u8; (w * h * 3 / 2) as usize];
    for (i, v) in buf.iter_mut().enumerate() {
        *v = ((i * 7919) % 251) as u8;
    }
    (buf, w, h)
}

fn view(buf: &[u8], w: u32, h: u32) -> I420View<'_> {
    let (y, uv) = buf.split_at((w * h) as usize);
    let (u, v) = uv.split_at((w * h / 4) as usize);
    I420View {
        width: w,
        height: h,
        y,
        u,
        v,
    }
}

fn preprocess(c: &mut Criterion) {
    let (buf, w, h) = frame();
    let src = view(&buf, w, h);
    let mut g = c.benchmark_group("preprocess");
    let mut ssd_in = vec![0.0f32; ssd::INPUT_LEN];
    g.bench_function("ssd 300x300 from whole 640x480 frame", |b| {
        b.iter(|| ssd::fill_input(&src, Crop::whole(w, h), black_box(&mut ssd_in)))
    });
    g.bench_function("ssd 300x300 from 200x200 crop", |b| {
        let crop = Crop {
            x: 100,
            y: 100,
            w: 200,
            h: 200,
        };
        b.iter(|| ssd::fill_input(&src, crop, black_box(&mut ssd_in)))
    });
    let mut yu = vec![0.0f32; 3 * 640 * 480];
    g.bench_function("yunet 640x480 whole frame", |b| {
        b.iter(|| yunet::fill_input(&src, Crop::whole(w, h), 1.0, (640, 480), black_box(&mut yu)))
    });
    let mut fa = vec![0.0f32; face::INPUT_LEN];
    let lm = [
        [300.0, 200.0],
        [340.0, 201.0],
        [320.0, 225.0],
        [303.0, 245.0],
        [337.0, 246.0],
    ];
    g.bench_function("sface aligned 112x112 face", |b| {
        b.iter(|| face::fill_aligned(&src, black_box(&lm), &mut fa))
    });
    g.finish();
}

/// YuNet outputs of one stride: cls, obj, bbox, kps.
type StrideData = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

/// SSD outputs with `hits` anchors above threshold around a few places, like a busy frame.
fn ssd_outputs(hits: usize) -> (Vec<f32>, Vec<f32>) {
    let mut boxes = vec![0.0f32; ssd::ANCHORS * 4];
    let mut logits = vec![-8.0f32; ssd::ANCHORS * ssd::CLASSES];
    for (i, b) in boxes.chunks_exact_mut(4).enumerate() {
        b.copy_from_slice(&[(i % 7) as f32 * 0.1, (i % 5) as f32 * 0.1, 0.2, -0.1]);
    }
    for k in 0..hits {
        let a = (k * 37) % ssd::ANCHORS;
        logits[a * ssd::CLASSES + ssd::PERSON] = 1.0 + (k % 5) as f32;
    }
    (boxes, logits)
}

fn postprocess(c: &mut Criterion) {
    let anchors = ssd::anchors();
    let mut g = c.benchmark_group("postprocess");
    for hits in [10usize, 100] {
        let (boxes, logits) = ssd_outputs(hits);
        let mut out = Vec::with_capacity(256);
        g.bench_with_input(
            BenchmarkId::new("ssd decode + nms, anchors over threshold", hits),
            &hits,
            |b, _| {
                b.iter(|| {
                    ssd::decode(
                        &anchors,
                        black_box(&boxes),
                        black_box(&logits),
                        ssd::PERSON,
                        0.5,
                        0.6,
                        &mut out,
                    )
                })
            },
        );
    }
    // YuNet at 640x480: 4800 + 1200 + 300 cells; 40 over threshold
    let strides: Vec<(u32, usize)> = yunet::STRIDES
        .iter()
        .map(|&s| (s, ((640 / s) * (480 / s)) as usize))
        .collect();
    let data: Vec<StrideData> = strides
        .iter()
        .map(|&(_, n)| {
            let mut cls = vec![0.01f32; n];
            for k in 0..n / 150 {
                cls[(k * 149) % n] = 0.95;
            }
            (
                cls,
                vec![0.9f32; n],
                vec![0.3f32; n * 4],
                vec![0.5f32; n * 10],
            )
        })
        .collect();
    let outs: Vec<yunet::StrideOutputs<'_>> = strides
        .iter()
        .zip(&data)
        .map(
            |(&(stride, _), (cls, obj, bbox, kps))| yunet::StrideOutputs {
                stride,
                cls,
                obj,
                bbox,
                kps,
            },
        )
        .collect();
    let mut faces = Vec::with_capacity(64);
    g.bench_function("yunet decode + nms 640x480", |b| {
        b.iter(|| yunet::decode(black_box(&outs), 640, 0.6, 0.3, &mut faces))
    });
    g.finish();
}

#[derive(Clone, Copy)]
struct Cand(BBox, f32, u32);
impl Scored for Cand {
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

fn nms_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("nms");
    for n in [20usize, 200] {
        let cands: Vec<Cand> = (0..n)
            .map(|i| {
                let (x, y) = (
                    (i % 10) as f32 * 50.0 + (i / 10) as f32,
                    (i % 7) as f32 * 40.0,
                );
                Cand(
                    BBox::new(x, y, x + 60.0, y + 120.0),
                    0.5 + (i % 50) as f32 / 100.0,
                    i as u32,
                )
            })
            .collect();
        let mut work = Vec::with_capacity(n);
        g.bench_with_input(BenchmarkId::new("greedy nms, candidates", n), &n, |b, _| {
            b.iter(|| {
                work.clear();
                work.extend_from_slice(&cands);
                nms(&mut work, 0.5);
                black_box(work.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, preprocess, postprocess, nms_bench);
criterion_main!(benches);
