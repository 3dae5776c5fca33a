//! A viewer's bounded queue of access units: the tee pushes without waiting, the viewer's
//! task awaits the next one.
//!
//! Drop policy: when the queue is full (units or bytes), everything queued is dropped and the
//! viewer skips to the next key frame, as the decode queue does: a viewer that cannot keep up
//! sees a jump, never a broken picture, and never holds the camera back. Drops are counted by
//! reason in [`LiveStats`].

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use xl_core::camera::VideoCodec;
use xl_core::frame::{AccessUnit, AccessUnitSink};

use crate::stats::LiveStats;

/// What a viewer takes from its queue.
#[derive(Debug, Clone)]
pub enum Item {
    /// A new stream (first, or after the camera reconnected): the next unit is a key frame of
    /// it, possibly in another codec or size.
    Started(VideoCodec),
    Unit(AccessUnit),
}

#[derive(Default)]
struct State {
    items: VecDeque<Item>,
    bytes: usize,
    /// Units are dropped until the next key frame.
    awaiting_key: bool,
    closed: bool,
}

/// See the module documentation.
pub struct ViewerQueue {
    state: Mutex<State>,
    notify: Notify,
    max_units: usize,
    max_bytes: usize,
    stats: Arc<LiveStats>,
}

impl ViewerQueue {
    pub fn new(max_units: usize, max_bytes: usize, stats: Arc<LiveStats>) -> Self {
        ViewerQueue {
            state: Mutex::new(State {
                awaiting_key: true,
                ..State::default()
            }),
            notify: Notify::new(),
            max_units: max_units.max(1),
            max_bytes: max_bytes.max(1),
            stats,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next item; `None` once closed and drained.
    pub async fn next(&self) -> Option<Item> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if let Some(item) = s.items.pop_front() {
                    if let Item::Unit(au) = &item {
                        s.bytes -= au.data.len();
                    }
                    return Some(item);
                }
                if s.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// No more items will come (the stream is gone); `next` answers `None` once drained.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_one();
    }

    /// Units queued now (for tests and figures).
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl AccessUnitSink for ViewerQueue {
    fn stream_started(&self, codec: VideoCodec) {
        let mut s = self.lock();
        let dropped = s
            .items
            .iter()
            .filter(|i| matches!(i, Item::Unit(_)))
            .count();
        self.stats
            .dropped_new_stream
            .fetch_add(dropped as u64, Ordering::Relaxed);
        s.items.clear();
        s.bytes = 0;
        s.awaiting_key = true;
        s.items.push_back(Item::Started(codec));
        drop(s);
        self.notify.notify_one();
    }

    fn push(&self, au: AccessUnit) {
        let mut s = self.lock();
        if s.closed {
            return;
        }
        let full = s.items.len() >= self.max_units || s.bytes + au.data.len() > self.max_bytes;
        if full {
            // Keep a pending stream start: the viewer needs it to rebuild its decoder.
            let dropped = s
                .items
                .iter()
                .filter(|i| matches!(i, Item::Unit(_)))
                .count();
            s.items.retain(|i| matches!(i, Item::Started(_)));
            s.bytes = 0;
            s.awaiting_key = true;
            self.stats
                .dropped_slow_viewer
                .fetch_add(dropped as u64, Ordering::Relaxed);
        }
        if s.awaiting_key && !au.is_key {
            self.stats
                .dropped_awaiting_key
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        s.awaiting_key = false;
        s.bytes += au.data.len();
        s.items.push_back(Item::Unit(au));
        drop(s);
        self.notify.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use jiff::Timestamp;

    fn au(pts_90k: i64, is_key: bool, len: usize) -> AccessUnit {
        AccessUnit {
            data: Bytes::from(vec![0u8; len]),
            pts_90k,
            is_key,
            received_at: Timestamp::UNIX_EPOCH,
        }
    }

    fn pts(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Item::Started(c) => format!("start {c}"),
                Item::Unit(u) => format!("{}{}", if u.is_key { "K" } else { "p" }, u.pts_90k),
            })
            .collect()
    }

    async fn drain(q: &ViewerQueue) -> Vec<Item> {
        let mut out = Vec::new();
        while !q.is_empty() {
            out.push(q.next().await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_full_queue_drops_what_it_holds_and_resumes_at_a_key_frame() {
        let stats = Arc::new(LiveStats::default());
        let q = ViewerQueue::new(3, 1 << 20, Arc::clone(&stats));
        q.stream_started(VideoCodec::H264);
        q.push(au(0, false, 10)); // before any key frame
        q.push(au(1, true, 10));
        q.push(au(2, false, 10));
        q.push(au(3, false, 10)); // full: start + 2 units = 3 items
        q.push(au(4, false, 10));
        q.push(au(5, true, 10));
        q.push(au(6, false, 10));
        assert_eq!(pts(&drain(&q).await), ["start h264", "K5", "p6"]);
        assert_eq!(stats.dropped_awaiting_key.load(Ordering::Relaxed), 3);
        assert_eq!(stats.dropped_slow_viewer.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn the_byte_bound_holds_too() {
        let stats = Arc::new(LiveStats::default());
        let q = ViewerQueue::new(100, 25, Arc::clone(&stats));
        q.push(au(0, true, 10));
        q.push(au(1, false, 10));
        q.push(au(2, false, 10)); // 30 bytes > 25: drop both, wait for a key frame
        q.push(au(3, true, 10));
        assert_eq!(pts(&drain(&q).await), ["K3"]);
        assert_eq!(stats.dropped_slow_viewer.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn next_waits_for_a_push_and_ends_after_close() {
        let q = Arc::new(ViewerQueue::new(8, 1 << 20, Arc::default()));
        let reader = tokio::spawn({
            let q = Arc::clone(&q);
            async move {
                let mut got = Vec::new();
                while let Some(i) = q.next().await {
                    got.push(i);
                }
                got
            }
        });
        tokio::task::yield_now().await;
        q.push(au(7, true, 1));
        q.close();
        q.push(au(8, false, 1)); // after close: ignored
        assert_eq!(pts(&reader.await.unwrap()), ["K7"]);
    }
}
