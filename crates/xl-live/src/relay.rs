//! One viewer's session: access units from its queue remuxed into fragmented MP4, one picture
//! a fragment, sent the moment it arrives.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;
use tracing::debug;
use xl_core::camera::VideoCodec;
use xl_core::frame::AccessUnit;
use xl_core::live::{LiveEnd, LiveFeed, LiveMessage};
use xl_media::fmp4::{FragmentPolicy, Fragmenter, VideoTrack, init_segment};

use crate::queue::{Item, ViewerQueue};
use crate::stats::LiveStats;
use crate::tee::Subscription;

/// See the module documentation. Dropping it leaves the stream (its tee subscription).
pub struct Relay {
    queue: Arc<ViewerQueue>,
    _subscription: Subscription,
    ended: watch::Receiver<Option<LiveEnd>>,
    transcoded: bool,
    stats: Arc<LiveStats>,
    codec: Option<VideoCodec>,
    /// The track and fragmenter of the stream now sent; `None` until its first key frame.
    muxer: Option<(VideoTrack, Fragmenter)>,
    /// The key frame whose init segment was just sent: its fragment goes next.
    pending_key: Option<AccessUnit>,
    /// Units that arrived before this are replays from the GOP cache (not timed).
    opened_at: jiff::Timestamp,
}

impl Relay {
    /// A session reading `queue` (subscribed to the stream by `subscription`) until `ended`
    /// says why the stream ended. `transcoded`: the stream is an H.264 copy of an H.265 one.
    pub fn new(
        queue: Arc<ViewerQueue>,
        subscription: Subscription,
        ended: watch::Receiver<Option<LiveEnd>>,
        transcoded: bool,
        stats: Arc<LiveStats>,
    ) -> Relay {
        stats.sessions_started.fetch_add(1, Ordering::Relaxed);
        stats.sessions_open.fetch_add(1, Ordering::Relaxed);
        Relay {
            queue,
            _subscription: subscription,
            ended,
            transcoded,
            stats,
            codec: None,
            muxer: None,
            pending_key: None,
            opened_at: jiff::Timestamp::now(),
        }
    }

    /// The next message to send.
    pub async fn next_message(&mut self) -> Result<LiveMessage, LiveEnd> {
        loop {
            if let Some(key) = self.pending_key.take() {
                if let Some(message) = self.mux(&key) {
                    return Ok(message);
                }
                continue;
            }
            let item = tokio::select! {
                biased;
                why = self.ended.wait_for(Option::is_some) => {
                    return Err(why.ok().and_then(|w| w.clone()).unwrap_or(LiveEnd::CameraGone));
                }
                item = self.queue.next() => item.ok_or(LiveEnd::CameraGone)?,
            };
            match item {
                Item::Started(codec) => {
                    self.codec = Some(codec);
                    self.muxer = None;
                }
                Item::Unit(au) => {
                    if let Some(message) = self.mux(&au) {
                        return Ok(message);
                    }
                }
            }
        }
    }

    /// The message `au` makes, if any: the init segment at the first key frame of a stream
    /// (the key frame's fragment follows at once from the queue's next read), or its fragment.
    fn mux(&mut self, au: &AccessUnit) -> Option<LiveMessage> {
        let codec = self.codec?;
        if self.muxer.is_none() {
            if !au.is_key {
                return None;
            }
            let track = match track_of(codec, au) {
                Ok(t) => t,
                Err(e) => {
                    debug!(error = %e, "live: key frame without usable parameter sets");
                    return None;
                }
            };
            let fragmenter = Fragmenter::new(&track, FragmentPolicy::Immediate);
            let init = LiveMessage::Init {
                codec: track.codec_string().to_owned(),
                width: track.width(),
                height: track.height(),
                transcoded: self.transcoded,
                data: init_segment(&track),
            };
            self.muxer = Some((track, fragmenter));
            // The key frame itself goes out right after the init segment.
            self.pending_key = Some(au.clone());
            return Some(init);
        }
        let (_, fragmenter) = self.muxer.as_mut()?;
        match fragmenter.push(au) {
            Ok(Some(fragment)) => {
                if au.received_at >= self.opened_at {
                    let latency = jiff::Timestamp::now().duration_since(au.received_at);
                    self.stats.fragment_latency.record(latency.unsigned_abs());
                }
                self.stats.fragments_sent.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .bytes_sent
                    .fetch_add(fragment.len() as u64, Ordering::Relaxed);
                Some(LiveMessage::Fragment(fragment))
            }
            Ok(None) => None,
            Err(xl_media::Fmp4Error::ParametersChanged { .. }) if au.is_key => {
                // New parameter sets (a new size): a new init segment from this key frame.
                self.muxer = None;
                self.mux(au)
            }
            Err(e) => {
                debug!(error = %e, "live: access unit dropped");
                None
            }
        }
    }
}

/// The track a key frame describes: its parameter sets, and the picture size its SPS declares.
fn track_of(codec: VideoCodec, key: &AccessUnit) -> Result<VideoTrack, xl_media::Fmp4Error> {
    let (width, height) = xl_media::sps::picture_size(codec, &key.data).unwrap_or((0, 0));
    VideoTrack::from_key_frame(codec, &key.data, width, height)
}

impl LiveFeed for Relay {
    fn next(&mut self) -> Pin<Box<dyn Future<Output = Result<LiveMessage, LiveEnd>> + Send + '_>> {
        Box::pin(self.next_message())
    }

    fn cut_off(&mut self) {
        self.stats.viewers_cut_off.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stats.sessions_open.fetch_sub(1, Ordering::Relaxed);
    }
}
