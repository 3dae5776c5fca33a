//! The bounded, drop-oldest input queue of one camera, and the signal that wakes its decode
//! thread.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use bytes::Bytes;
use jiff::Timestamp;
use xl_core::camera::{CameraStats, DropReason, VideoCodec};

/// What a new stream needs to build its decoder.
pub(crate) enum StreamSpec {
    /// Annex B H.264 or H.265 from an RTSP session.
    AnnexB(VideoCodec),
    /// A stream FFmpeg demuxed from a file, with its codec parameters (extradata included).
    Demuxed {
        params: ffmpeg_next::codec::Parameters,
        /// Which H.26x codec it is, if any, for decode policies that parse NAL units.
        codec: Option<VideoCodec>,
    },
}

/// One encoded picture waiting to be decoded.
pub(crate) struct Unit {
    pub data: Bytes,
    pub pts_90k: i64,
    pub is_key: bool,
    pub received_at: Timestamp,
}

#[derive(Default)]
struct State {
    units: VecDeque<Unit>,
    /// A new stream started; decoder to be rebuilt before the next unit.
    start: Option<StreamSpec>,
    /// Units were dropped since the last pop: the chain of references is broken.
    gap: bool,
    /// The producer is gone: the decode thread forgets this camera.
    closed: bool,
}

/// What the decode thread takes from a queue in one go.
pub(crate) struct Popped {
    pub start: Option<StreamSpec>,
    pub gap: bool,
    pub unit: Option<Unit>,
    pub closed: bool,
}

pub(crate) struct CameraQueue {
    state: Mutex<State>,
    capacity: usize,
    pub stats: Arc<CameraStats>,
    signal: Arc<WorkerSignal>,
}

impl CameraQueue {
    pub fn new(capacity: usize, stats: Arc<CameraStats>, signal: Arc<WorkerSignal>) -> Self {
        CameraQueue {
            state: Mutex::new(State::default()),
            capacity: capacity.max(1),
            stats,
            signal,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new stream begins: what is queued belongs to the old one and is discarded.
    pub fn start(&self, spec: StreamSpec) {
        {
            let mut s = self.lock();
            for _ in s.units.drain(..) {
                self.stats.record_drop(DropReason::AwaitingKeyFrame);
            }
            s.start = Some(spec);
            s.gap = false;
        }
        self.signal.wake();
    }

    /// Queues a unit, dropping the oldest if full. Never blocks beyond a short lock.
    pub fn push(&self, unit: Unit) {
        {
            let mut s = self.lock();
            if s.units.len() >= self.capacity {
                s.units.pop_front();
                s.gap = true;
                self.stats.record_drop(DropReason::QueueFull);
            }
            s.units.push_back(unit);
        }
        self.signal.wake();
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.signal.wake();
    }

    pub fn pop(&self) -> Popped {
        let mut s = self.lock();
        Popped {
            start: s.start.take(),
            gap: std::mem::take(&mut s.gap),
            unit: s.units.pop_front(),
            closed: s.closed,
        }
    }

    pub fn queued(&self) -> usize {
        self.lock().units.len()
    }
}

/// Wakes a decode thread when any of its cameras has work, or it has new cameras or must stop.
#[derive(Default)]
pub(crate) struct WorkerSignal {
    state: Mutex<SignalState>,
    cv: Condvar,
}

#[derive(Default)]
pub(crate) struct SignalState {
    pub dirty: bool,
    pub added: Vec<Arc<CameraQueue>>,
    pub shutdown: bool,
}

impl WorkerSignal {
    pub fn wake(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !s.dirty {
            s.dirty = true;
            self.cv.notify_one();
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut SignalState) -> R) -> R {
        let r = f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
        self.cv.notify_one();
        r
    }

    /// Waits until woken (returns at once if woken since the last wait), then hands over what
    /// was signalled.
    pub fn wait(&self) -> (Vec<Arc<CameraQueue>>, bool) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while !s.dirty && !s.shutdown && s.added.is_empty() {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.dirty = false;
        (std::mem::take(&mut s.added), s.shutdown)
    }

    /// Like `wait`, but never sleeps.
    pub fn poll(&self) -> (Vec<Arc<CameraQueue>>, bool) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (std::mem::take(&mut s.added), s.shutdown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xl_core::CameraId;
    use xl_core::camera::DecodePolicy;

    fn unit(pts: i64, is_key: bool) -> Unit {
        Unit {
            data: Bytes::new(),
            pts_90k: pts,
            is_key,
            received_at: Timestamp::UNIX_EPOCH,
        }
    }

    fn queue(cap: usize) -> CameraQueue {
        let stats = Arc::new(CameraStats::new(
            CameraId::new("q").unwrap(),
            DecodePolicy::All,
        ));
        CameraQueue::new(cap, stats, Arc::default())
    }

    #[test]
    fn a_full_queue_drops_the_oldest_counts_it_and_flags_the_gap() {
        let q = queue(3);
        for pts in 0..5 {
            q.push(unit(pts, pts == 0));
        }
        assert_eq!(q.queued(), 3);
        assert_eq!(q.stats.dropped(DropReason::QueueFull), 2);
        let p = q.pop();
        assert!(p.gap, "the decoder must learn that units went missing");
        assert_eq!(p.unit.unwrap().pts_90k, 2, "oldest dropped, newest kept");
        assert!(!q.pop().gap, "the gap is reported once");
    }

    #[test]
    fn a_new_stream_discards_what_the_old_one_left_queued() {
        let q = queue(8);
        q.push(unit(0, true));
        q.push(unit(1, false));
        q.start(StreamSpec::AnnexB(VideoCodec::H265));
        q.push(unit(100, true));
        let p = q.pop();
        assert!(matches!(
            p.start,
            Some(StreamSpec::AnnexB(VideoCodec::H265))
        ));
        assert_eq!(p.unit.unwrap().pts_90k, 100);
        assert_eq!(q.stats.dropped(DropReason::AwaitingKeyFrame), 2);
    }

    #[test]
    fn wait_returns_at_once_when_woken_before_it_was_called() {
        let s = WorkerSignal::default();
        s.wake();
        let (added, shutdown) = s.wait();
        assert!(added.is_empty() && !shutdown);
    }
}
