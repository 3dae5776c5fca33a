//! One stream's access units handed to every consumer, with the last group of pictures kept so
//! that a consumer joining late starts at once, at a key frame.
//!
//! The tee is the stream's [`AccessUnitSink`]: the RTSP session pushes into it and it pushes
//! into each consumer. Consumers never block (each has its own bounded queue with its own drop
//! policy), so one slow consumer never slows the camera or the others. A consumer joins with
//! [`Tee::subscribe`] and leaves when its [`Subscription`] is dropped.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use xl_core::camera::VideoCodec;
use xl_core::frame::{AccessUnit, AccessUnitSink};

/// Bounds of the group-of-pictures cache: a camera with a very long GOP keeps only its most
/// recent pictures up to these (a late viewer then waits for the next key frame instead).
const GOP_MAX_UNITS: usize = 512;
const GOP_MAX_BYTES: usize = 16 << 20;

#[derive(Default)]
struct Inner {
    codec: Option<VideoCodec>,
    /// Access units from the last key frame on; empty before the first key frame or after the
    /// cache overflowed.
    gop: Vec<AccessUnit>,
    gop_bytes: usize,
    consumers: Vec<(u64, Arc<dyn AccessUnitSink>)>,
    next_id: u64,
}

/// See the module documentation.
pub struct Tee {
    inner: Mutex<Inner>,
    /// The number of subscriptions, for whoever starts and stops the pull on demand.
    subscribers: watch::Sender<usize>,
    /// The codec of the stream now flowing, once one has started.
    codec: watch::Sender<Option<VideoCodec>>,
}

impl Default for Tee {
    fn default() -> Self {
        Tee::new()
    }
}

impl Tee {
    pub fn new() -> Self {
        Tee {
            inner: Mutex::default(),
            subscribers: watch::channel(0).0,
            codec: watch::channel(None).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a consumer. It is first told the current stream's codec and given the cached group
    /// of pictures (from its key frame), then every access unit as it arrives: nothing missed
    /// and nothing twice, since both happen under the tee's lock.
    pub fn subscribe(self: &Arc<Self>, consumer: Arc<dyn AccessUnitSink>) -> Subscription {
        let id = {
            let mut inner = self.lock();
            if let Some(codec) = inner.codec {
                consumer.stream_started(codec);
                for au in &inner.gop {
                    consumer.push(au.clone());
                }
            }
            inner.next_id += 1;
            let id = inner.next_id;
            inner.consumers.push((id, consumer));
            id
        };
        self.subscribers.send_modify(|n| *n += 1);
        Subscription {
            tee: Arc::clone(self),
            id,
        }
    }

    /// The number of subscriptions now, and its changes.
    pub fn subscribers(&self) -> watch::Receiver<usize> {
        self.subscribers.subscribe()
    }

    /// The codec of the stream now flowing, if one has started, and its changes.
    pub fn codec(&self) -> watch::Receiver<Option<VideoCodec>> {
        self.codec.subscribe()
    }

    /// The cached key frame that starts the current group of pictures, if any.
    pub fn last_key_frame(&self) -> Option<(VideoCodec, AccessUnit)> {
        let inner = self.lock();
        Some((inner.codec?, inner.gop.first()?.clone()))
    }

    fn unsubscribe(&self, id: u64) {
        let removed = {
            let mut inner = self.lock();
            let before = inner.consumers.len();
            inner.consumers.retain(|(i, _)| *i != id);
            before != inner.consumers.len()
        };
        if removed {
            self.subscribers.send_modify(|n| *n = n.saturating_sub(1));
        }
    }
}

impl AccessUnitSink for Tee {
    fn stream_started(&self, codec: VideoCodec) {
        let mut inner = self.lock();
        inner.codec = Some(codec);
        inner.gop.clear();
        inner.gop_bytes = 0;
        for (_, c) in &inner.consumers {
            c.stream_started(codec);
        }
        self.codec.send_replace(Some(codec));
    }

    fn push(&self, au: AccessUnit) {
        let mut inner = self.lock();
        if au.is_key {
            inner.gop.clear();
            inner.gop_bytes = 0;
        }
        // Only a cache that starts at a key frame is worth keeping.
        let starts_at_key = inner.gop.first().is_some_and(|k| k.is_key) || au.is_key;
        if starts_at_key
            && inner.gop.len() < GOP_MAX_UNITS
            && inner.gop_bytes + au.data.len() <= GOP_MAX_BYTES
        {
            inner.gop_bytes += au.data.len();
            inner.gop.push(au.clone());
        } else if !inner.gop.is_empty() {
            inner.gop.clear();
            inner.gop_bytes = 0;
        }
        for (_, c) in &inner.consumers {
            c.push(au.clone());
        }
    }
}

/// A consumer's place on a [`Tee`]; dropping it removes the consumer.
pub struct Subscription {
    tee: Arc<Tee>,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.tee.unsubscribe(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use jiff::Timestamp;

    #[derive(Default)]
    struct Collect(Mutex<Vec<String>>);

    impl AccessUnitSink for Collect {
        fn stream_started(&self, codec: VideoCodec) {
            self.0.lock().unwrap().push(format!("start {codec}"));
        }
        fn push(&self, au: AccessUnit) {
            let k = if au.is_key { "K" } else { "p" };
            self.0.lock().unwrap().push(format!("{k}{}", au.pts_90k));
        }
    }

    fn au(pts_90k: i64, is_key: bool) -> AccessUnit {
        AccessUnit {
            data: Bytes::from_static(b"\0\0\0\x01\x65"),
            pts_90k,
            is_key,
            received_at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_late_consumer_starts_at_the_last_key_frame_and_misses_nothing_after() {
        let tee = Arc::new(Tee::new());
        let early = Arc::new(Collect::default());
        let _e = tee.subscribe(early.clone());
        tee.stream_started(VideoCodec::H264);
        for (pts, key) in [(0, true), (1, false), (2, true), (3, false)] {
            tee.push(au(pts, key));
        }
        let late = Arc::new(Collect::default());
        let _l = tee.subscribe(late.clone());
        tee.push(au(4, false));
        assert_eq!(
            *early.0.lock().unwrap(),
            ["start h264", "K0", "p1", "K2", "p3", "p4"]
        );
        assert_eq!(*late.0.lock().unwrap(), ["start h264", "K2", "p3", "p4"]);
    }

    #[test]
    fn nothing_is_replayed_before_a_key_frame_or_after_a_new_stream() {
        let tee = Arc::new(Tee::new());
        tee.stream_started(VideoCodec::H264);
        tee.push(au(0, false));
        let c = Arc::new(Collect::default());
        drop(tee.subscribe(c.clone()));
        assert_eq!(*c.0.lock().unwrap(), ["start h264"]);
        tee.push(au(1, true));
        tee.stream_started(VideoCodec::H265);
        let c = Arc::new(Collect::default());
        let _s = tee.subscribe(c.clone());
        assert_eq!(*c.0.lock().unwrap(), ["start h265"]);
    }

    #[test]
    fn a_stalled_consumer_holds_no_one_back() {
        let tee = Arc::new(Tee::new());
        let stats = Arc::new(crate::LiveStats::default());
        let stalled = Arc::new(crate::ViewerQueue::new(8, 1 << 20, Arc::clone(&stats)));
        let _s = tee.subscribe(stalled.clone());
        let reader = Arc::new(Collect::default());
        let _r = tee.subscribe(reader.clone());
        tee.stream_started(VideoCodec::H264);
        for i in 0..1000 {
            tee.push(au(i, i % 20 == 0));
        }
        // Every unit reached the other consumer, at once; the stalled one holds at most its
        // bound and counts what it dropped.
        assert_eq!(reader.0.lock().unwrap().len(), 1 + 1000);
        assert!(stalled.len() <= 8);
        assert!(
            stats
                .dropped_slow_viewer
                .load(std::sync::atomic::Ordering::Relaxed)
                > 900 / 8
        );
    }

    #[test]
    fn dropping_a_subscription_removes_the_consumer_and_counts() {
        let tee = Arc::new(Tee::new());
        let count = tee.subscribers();
        let c = Arc::new(Collect::default());
        let s = tee.subscribe(c.clone());
        assert_eq!(*count.borrow(), 1);
        drop(s);
        assert_eq!(*count.borrow(), 0);
        tee.stream_started(VideoCodec::H264);
        tee.push(au(0, true));
        assert!(c.0.lock().unwrap().is_empty());
    }

    #[test]
    fn an_overlong_group_of_pictures_is_not_cached() {
        let tee = Arc::new(Tee::new());
        tee.stream_started(VideoCodec::H264);
        tee.push(au(0, true));
        for i in 1..=GOP_MAX_UNITS as i64 {
            tee.push(au(i, false));
        }
        assert!(tee.last_key_frame().is_none());
        let c = Arc::new(Collect::default());
        let _s = tee.subscribe(c.clone());
        assert_eq!(*c.0.lock().unwrap(), ["start h264"]);
        tee.push(au(1000, true));
        assert_eq!(tee.last_key_frame().map(|(_, k)| k.pts_90k), Some(1000));
    }
}
