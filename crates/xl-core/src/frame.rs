//! Encoded access units coming from a camera, decoded frames going to analysis, and the ports
//! between the stages. Both ports are called from hot paths and must never block.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use jiff::Timestamp;

use crate::camera::VideoCodec;
use crate::ids::CameraId;

/// One encoded picture as received: Annex B NAL units (start codes), with parameter sets
/// repeated in front of key frames.
#[derive(Debug, Clone)]
pub struct AccessUnit {
    pub data: Bytes,
    /// Presentation time on the 90 kHz RTP clock, monotonic within one session.
    pub pts_90k: i64,
    /// A random access point: decoding can start here.
    pub is_key: bool,
    /// Wall-clock time the hub received it.
    pub received_at: Timestamp,
}

/// Where an RTSP session hands its access units. Implemented by the decode stage.
pub trait AccessUnitSink: Send + Sync {
    /// A new session started (first connect or a reconnect): the next access unit belongs to a
    /// new stream, possibly with another codec or resolution.
    fn stream_started(&self, codec: VideoCodec);
    /// Hands over one access unit. Never blocks: a full queue drops its oldest entry.
    fn push(&self, au: AccessUnit);
}

/// A decoded frame at the analysis size, planar I420 (YUV 4:2:0): the Y plane (`width` bytes a
/// row), then U and V (`width / 2` bytes a row, `height / 2` rows each). Width and height are
/// even. I420 rather than RGB because the motion gate reads the Y plane as is, and colour
/// conversion is only worth paying for on the crops that reach a detector.
#[derive(Debug)]
pub struct Frame {
    pub camera: CameraId,
    /// Position in the camera's own stream, 90 kHz.
    pub pts_90k: i64,
    /// Wall-clock time the encoded frame was received; the hub's clock for joining with gate
    /// events.
    pub received_at: Timestamp,
    pub width: u32,
    pub height: u32,
    pub i420: PooledBuf,
}

impl Frame {
    /// Bytes an I420 frame of this size takes.
    pub fn i420_len(width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        w * h + 2 * (w / 2) * (h / 2)
    }

    /// The Y, U and V planes.
    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        let (w, h) = (self.width as usize, self.height as usize);
        let (y, uv) = self.i420.split_at(w * h);
        let (u, v) = uv.split_at((w / 2) * (h / 2));
        (y, u, v)
    }
}

/// One pixel of a [`Frame`] to RGB: BT.601 limited range, 8-bit fixed point (the classic
/// 298/409/100/208/516 coefficients), as the detectors and snapshots see it.
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

/// Where decoded frames go (motion gate, detection scheduler, evidence ring). Called on a decode
/// thread; must not block.
pub trait FrameSink: Send + Sync {
    fn on_frame(&self, frame: Frame);
}

/// A sink that discards frames: for benchmarks of the decode path alone and for `probe`.
pub struct DiscardFrames;

impl FrameSink for DiscardFrames {
    fn on_frame(&self, _frame: Frame) {}
}

/// A pool of byte buffers, so that the steady state allocates no frame memory: a buffer returns
/// to its pool when the last user drops it.
#[derive(Debug, Default, Clone)]
pub struct BufferPool {
    free: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// Free buffers kept per pool at most; more are released to the allocator.
const MAX_POOLED: usize = 64;

impl BufferPool {
    pub fn new() -> Self {
        Self::default()
    }

    /// A buffer of exactly `len` bytes; its contents are unspecified (whatever it last held).
    pub fn get(&self, len: usize) -> PooledBuf {
        let mut buf = self
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        buf.resize(len, 0);
        PooledBuf {
            buf,
            pool: Arc::downgrade(&self.free),
        }
    }

    /// Buffers waiting for reuse.
    pub fn idle(&self) -> usize {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// A buffer that goes back to its [`BufferPool`] when dropped.
#[derive(Debug)]
pub struct PooledBuf {
    buf: Vec<u8>,
    pool: Weak<Mutex<Vec<Vec<u8>>>>,
}

impl PooledBuf {
    /// A buffer that belongs to no pool (tests, one-off frames).
    pub fn unpooled(buf: Vec<u8>) -> Self {
        PooledBuf {
            buf,
            pool: Weak::new(),
        }
    }
}

impl Deref for PooledBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            let mut free = pool.lock().unwrap_or_else(|e| e.into_inner());
            if free.len() < MAX_POOLED {
                free.push(std::mem::take(&mut self.buf));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_buffers_are_reused_after_drop() {
        let pool = BufferPool::new();
        let a = pool.get(100);
        let ptr = a.as_ptr();
        assert_eq!(pool.idle(), 0);
        drop(a);
        assert_eq!(pool.idle(), 1);
        let b = pool.get(100);
        assert_eq!(b.as_ptr(), ptr, "the freed buffer is handed out again");
        assert_eq!(b.len(), 100);
    }

    #[test]
    fn buffers_outliving_their_pool_are_simply_freed() {
        let pool = BufferPool::new();
        let a = pool.get(10);
        drop(pool);
        drop(a);
    }
}
