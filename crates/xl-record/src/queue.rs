//! A recorder's bounded queue: the tee pushes without waiting, the writer thread waits for the
//! next item.
//!
//! Drop policy: when the queue is full (units or bytes), the oldest access unit is dropped and
//! so is every unit after it up to the next key frame, so that what the writer takes next still
//! decodes; this repeats until the new unit fits. When no key frame is left in the queue, units
//! are dropped until the next one comes. The newest video is kept: the writer, behind, loses
//! the oldest group of pictures first (and ends its segment once the pause in arrival times
//! exceeds [`crate::MAX_ARRIVAL_GAP`]). Drops are counted by reason in [`RecordStats`].

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use xl_core::camera::VideoCodec;
use xl_core::frame::AccessUnit;

use crate::stats::RecordStats;

/// What the writer takes from the queue.
#[derive(Debug)]
pub(crate) enum Item {
    /// A new stream (first, or after the camera reconnected), possibly in another codec.
    Started(VideoCodec),
    Unit(AccessUnit),
}

#[derive(Default)]
struct State {
    items: VecDeque<Item>,
    units: usize,
    bytes: usize,
    /// Units are dropped until the next key frame.
    awaiting_key: bool,
    closed: bool,
}

/// See the module documentation.
pub(crate) struct RecordQueue {
    state: Mutex<State>,
    ready: Condvar,
    max_units: usize,
    max_bytes: usize,
    stats: Arc<RecordStats>,
}

impl RecordQueue {
    pub(crate) fn new(max_units: usize, max_bytes: usize, stats: Arc<RecordStats>) -> Self {
        RecordQueue {
            state: Mutex::default(),
            ready: Condvar::new(),
            max_units: max_units.max(1),
            max_bytes: max_bytes.max(1),
            stats,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn started(&self, codec: VideoCodec) {
        let mut s = self.lock();
        if s.closed {
            return;
        }
        // The writer waits for the new stream's key frame itself.
        s.awaiting_key = false;
        s.items.push_back(Item::Started(codec));
        drop(s);
        self.ready.notify_one();
    }

    pub(crate) fn push(&self, au: AccessUnit) {
        RecordStats::add(&self.stats.units_in, 1);
        let mut s = self.lock();
        if s.closed {
            RecordStats::add(&self.stats.dropped_stopped, 1);
            return;
        }
        while s.units > 0 && (s.units >= self.max_units || s.bytes + au.data.len() > self.max_bytes)
        {
            let dropped = shed_oldest_group(&mut s);
            RecordStats::add(&self.stats.dropped_queue_full, dropped);
        }
        if s.awaiting_key && !au.is_key {
            RecordStats::add(&self.stats.dropped_awaiting_key, 1);
            return;
        }
        s.awaiting_key = false;
        s.units += 1;
        s.bytes += au.data.len();
        s.items.push_back(Item::Unit(au));
        drop(s);
        self.ready.notify_one();
    }

    /// The next item, waiting for one; `None` once closed and drained.
    pub(crate) fn pop(&self) -> Option<Item> {
        let mut s = self.lock();
        loop {
            if let Some(item) = s.items.pop_front() {
                if let Item::Unit(au) = &item {
                    s.units -= 1;
                    s.bytes -= au.data.len();
                }
                return Some(item);
            }
            if s.closed {
                return None;
            }
            s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Nothing more is taken; what is queued is still handed out, then `pop` answers `None`.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Closes the queue and drops what it holds (the writer failed), counted as stopped.
    pub(crate) fn abandon(&self) {
        let mut s = self.lock();
        s.closed = true;
        RecordStats::add(&self.stats.dropped_stopped, s.units as u64);
        s.items.clear();
        s.units = 0;
        s.bytes = 0;
        drop(s);
        self.ready.notify_all();
    }

    #[cfg(test)]
    fn snapshot(&self) -> Vec<String> {
        self.lock()
            .items
            .iter()
            .map(|i| match i {
                Item::Started(c) => format!("start {c}"),
                Item::Unit(u) => format!("{}{}", if u.is_key { "K" } else { "p" }, u.pts_90k),
            })
            .collect()
    }
}

/// Drops the oldest unit and every unit after it up to the next key frame (stream starts are
/// kept: the writer must see them); returns how many were dropped. Sets `awaiting_key` when
/// no key frame was left.
fn shed_oldest_group(s: &mut State) -> u64 {
    let mut dropped = 0;
    let mut i = 0;
    while i < s.items.len() {
        match &s.items[i] {
            Item::Started(_) => i += 1,
            Item::Unit(au) if au.is_key && dropped > 0 => return dropped,
            Item::Unit(_) => {
                if let Some(Item::Unit(au)) = s.items.remove(i) {
                    s.units -= 1;
                    s.bytes -= au.data.len();
                }
                dropped += 1;
            }
        }
    }
    s.awaiting_key = true;
    dropped
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use bytes::Bytes;
    use jiff::Timestamp;

    use super::*;

    fn au(pts_90k: i64, is_key: bool, len: usize) -> AccessUnit {
        AccessUnit {
            data: Bytes::from(vec![0u8; len]),
            pts_90k,
            is_key,
            received_at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_full_queue_drops_its_oldest_group_of_pictures_and_keeps_the_newest() {
        let stats = Arc::new(RecordStats::default());
        let q = RecordQueue::new(5, 1 << 20, Arc::clone(&stats));
        q.started(VideoCodec::H264);
        for (pts, key) in [(0, true), (1, false), (2, false), (3, true), (4, false)] {
            q.push(au(pts, key, 10));
        }
        // Full: K0 p1 p2 go, K3 stays.
        q.push(au(5, false, 10));
        assert_eq!(q.snapshot(), ["start h264", "K3", "p4", "p5"]);
        assert_eq!(stats.dropped_queue_full.load(Ordering::Relaxed), 3);
        for pts in 6..8 {
            q.push(au(pts, false, 10));
        }
        // Full again with no other key frame: everything goes, and units wait for one.
        q.push(au(8, false, 10));
        q.push(au(9, true, 10));
        q.push(au(10, false, 10));
        assert_eq!(q.snapshot(), ["start h264", "K9", "p10"]);
        assert_eq!(stats.dropped_queue_full.load(Ordering::Relaxed), 3 + 5);
        assert_eq!(stats.dropped_awaiting_key.load(Ordering::Relaxed), 1);
        assert_eq!(stats.units_in.load(Ordering::Relaxed), 11);
    }

    #[test]
    fn the_byte_bound_holds_too_and_a_stream_start_survives_a_drop() {
        let stats = Arc::new(RecordStats::default());
        let q = RecordQueue::new(100, 35, Arc::clone(&stats));
        q.push(au(0, true, 10));
        q.push(au(1, false, 10));
        q.started(VideoCodec::H265);
        q.push(au(0, true, 10));
        q.push(au(1, false, 10)); // 40 bytes > 35: the first stream's group goes
        assert_eq!(q.snapshot(), ["start h265", "K0", "p1"]);
        assert_eq!(stats.dropped_queue_full.load(Ordering::Relaxed), 2);
        // A unit over the whole bound is still taken, alone.
        q.push(au(2, true, 100));
        assert_eq!(q.snapshot(), ["start h265", "K2"]);
    }

    #[test]
    fn pop_waits_for_a_push_and_ends_after_close_once_drained() {
        let q = Arc::new(RecordQueue::new(8, 1 << 20, Arc::default()));
        let reader = std::thread::spawn({
            let q = Arc::clone(&q);
            move || {
                let mut got = Vec::new();
                while let Some(item) = q.pop() {
                    got.push(format!("{item:?}").chars().take(4).collect::<String>());
                }
                got
            }
        });
        q.started(VideoCodec::H264);
        q.push(au(7, true, 1));
        q.close();
        q.push(au(8, false, 1)); // after close: dropped
        assert_eq!(reader.join().unwrap(), ["Star", "Unit"]);
        assert_eq!(q.stats.dropped_stopped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn abandoning_drops_and_counts_what_waits() {
        let stats = Arc::new(RecordStats::default());
        let q = RecordQueue::new(8, 1 << 20, Arc::clone(&stats));
        q.push(au(0, true, 1));
        q.push(au(1, false, 1));
        q.abandon();
        q.push(au(2, false, 1));
        assert!(q.pop().is_none());
        assert_eq!(stats.dropped_stopped.load(Ordering::Relaxed), 3);
    }
}
