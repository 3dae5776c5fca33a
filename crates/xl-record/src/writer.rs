//! The writer thread of one recorder: items from its queue in, segment files and events out.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tracing::{debug, trace, warn};
use xl_core::camera::VideoCodec;
use xl_core::frame::AccessUnit;
use xl_core::ids::CameraId;
use xl_core::live::StreamKind;
use xl_media::Fmp4Error;
use xl_media::fmp4::{FragmentPolicy, Fragmenter, VideoTrack, init_segment};

use crate::RecordError;
use crate::queue::{Item, RecordQueue};
use crate::recorder::EventSink;
use crate::segment::{self, MAX_ARRIVAL_GAP, Segment, SegmentEvent};
use crate::stats::RecordStats;

/// How many `-N` suffixes are tried when a segment's file name is taken.
const MAX_NAME_TRIES: u32 = 100;

pub(crate) struct Writer {
    pub(crate) camera: CameraId,
    pub(crate) stream: StreamKind,
    pub(crate) data_dir: PathBuf,
    pub(crate) segment_duration: SignedDuration,
    pub(crate) events: EventSink,
    pub(crate) stats: Arc<RecordStats>,
    /// The codec of the stream now flowing; `None` before the first `stream_started`.
    pub(crate) codec: Option<VideoCodec>,
    /// The session being written: from a key frame to the next restart or gap.
    pub(crate) session: Option<Session>,
}

/// One continuous stretch of the stream: one track, one decode timeline from 0, cut into
/// segments at key frames.
pub(crate) struct Session {
    track: VideoTrack,
    /// One fragmenter for the whole session: each fragment's last sample gets its real
    /// duration (the step to the next key frame), and the segments continue its timeline.
    fragmenter: Fragmenter,
    segment: Option<OpenSegment>,
    /// Receipt time and decode time of the last access unit accepted.
    last: Option<(Timestamp, u64)>,
}

struct OpenSegment {
    file: File,
    full_path: PathBuf,
    segment: Segment,
}

impl Writer {
    /// Writes what the queue hands out until it is closed and drained, then closes the open
    /// segment. A write error stops it: the queue is abandoned and `Failed` reported.
    pub(crate) fn run(mut self, queue: &RecordQueue) {
        while let Some(item) = queue.pop() {
            let done = match item {
                Item::Started(codec) => self.end_session().map(|()| self.codec = Some(codec)),
                Item::Unit(au) => self.unit(au),
            };
            if let Err(error) = done {
                return self.fail(error, queue);
            }
        }
        if let Err(error) = self.end_session() {
            self.fail(error, queue);
        }
    }

    fn fail(mut self, error: RecordError, queue: &RecordQueue) {
        queue.abandon();
        RecordStats::add(&self.stats.write_errors, 1);
        warn!(error = %error, "recording stopped by a write error");
        let open = self
            .session
            .take()
            .and_then(|s| s.segment)
            .map(|s| s.segment);
        (self.events)(SegmentEvent::Failed {
            camera: self.camera.clone(),
            stream: self.stream,
            error,
            open,
        });
    }

    fn unit(&mut self, au: AccessUnit) -> Result<(), RecordError> {
        let Some(codec) = self.codec else {
            RecordStats::add(&self.stats.dropped_unusable, 1);
            return Ok(());
        };
        let gap = self
            .session
            .as_ref()
            .and_then(|s| s.last)
            .map(|(last_at, _)| au.received_at.duration_since(last_at))
            .filter(|step| step.is_negative() || *step > MAX_ARRIVAL_GAP);
        if let Some(step) = gap {
            debug!(
                step_ms = step.as_millis(),
                "recording: pause in arrival, segment cut"
            );
            self.end_session()?;
        }
        // A key frame with other parameter sets is tried once more on a new session.
        for _ in 0..2 {
            // Until a key frame opened a segment, nothing else can start one.
            let waiting = self.session.as_ref().is_none_or(|s| s.segment.is_none());
            if waiting && !au.is_key {
                RecordStats::add(&self.stats.dropped_awaiting_key, 1);
                return Ok(());
            }
            if self.session.is_none() {
                match track_of(codec, &au) {
                    Ok(track) => self.session = Some(Session::new(track)),
                    Err(e) => {
                        debug!(error = %e, "recording: key frame without usable parameter sets");
                        RecordStats::add(&self.stats.dropped_unusable, 1);
                        return Ok(());
                    }
                }
            }
            match self.mux(&au) {
                Err(Fmp4Error::ParametersChanged { .. }) if au.is_key => {
                    debug!(
                        pts_90k = au.pts_90k,
                        "recording: new parameter sets, segment cut"
                    );
                    self.end_session()?;
                }
                Err(e) => {
                    trace!(error = %e, "recording: access unit dropped");
                    RecordStats::add(&self.stats.dropped_unusable, 1);
                    return Ok(());
                }
                Ok(written) => return written,
            }
        }
        RecordStats::add(&self.stats.dropped_unusable, 1);
        Ok(())
    }

    /// Pushes `au` into the session's fragmenter and writes what comes out: the muxing error
    /// (nothing changed), or the result of writing.
    fn mux(&mut self, au: &AccessUnit) -> Result<Result<(), RecordError>, Fmp4Error> {
        let Some(session) = self.session.as_mut() else {
            return Ok(Ok(()));
        };
        let cut = au.is_key
            && session.segment.as_ref().is_some_and(|s| {
                au.received_at.duration_since(s.segment.start_at) >= self.segment_duration
            });
        let fragment = session.fragmenter.push(au)?;
        Ok(self.after_push(au, fragment.as_deref(), cut))
    }

    fn after_push(
        &mut self,
        au: &AccessUnit,
        fragment: Option<&[u8]>,
        cut: bool,
    ) -> Result<(), RecordError> {
        if let Some(fragment) = fragment {
            self.write_fragment(fragment)?;
        }
        if cut {
            self.close_segment()?;
        }
        // Only a key frame gets here without a segment (see `unit`).
        let needs_segment = au.is_key && self.session.as_ref().is_some_and(|s| s.segment.is_none());
        if needs_segment {
            self.open_segment(au)?;
        }
        if let Some(session) = self.session.as_mut()
            && let Some(decode_90k) = session.fragmenter.last_sample_decode_time()
        {
            session.last = Some((au.received_at, decode_90k));
        }
        Ok(())
    }

    /// Creates the segment that starts with `key` (the fragmenter's only waiting sample) and
    /// writes its init segment.
    fn open_segment(&mut self, key: &AccessUnit) -> Result<(), RecordError> {
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        let start_at = key.received_at;
        let dir = segment::segment_dir(&self.camera, self.stream, start_at);
        let full_dir = self.data_dir.join(&dir);
        fs::create_dir_all(&full_dir)
            .map_err(|e| RecordError::io("creating directory", &full_dir, e))?;
        let (mut file, name) = create_new(&full_dir, start_at)?;
        let full_path = full_dir.join(&name);
        let init = init_segment(&session.track);
        if let Err(e) = file.write_all(&init) {
            // Never reported as opened: leave no file behind for the index to miss.
            let _ = fs::remove_file(&full_path);
            return Err(RecordError::io("writing", full_path, e));
        }
        let segment = Segment {
            camera: self.camera.clone(),
            stream: self.stream,
            start_at,
            end_at: None,
            bytes: init.len() as u64,
            codec: session.track.codec(),
            width: session.track.width(),
            height: session.track.height(),
            media_start_90k: session.fragmenter.next_decode_time(),
            media_end_90k: None,
            fragments: 0,
            path: format!("{dir}/{name}"),
        };
        RecordStats::add(&self.stats.segments_opened, 1);
        RecordStats::add(&self.stats.bytes_written, init.len() as u64);
        debug!(path = %segment.path, "recording: segment opened");
        let opened = segment.clone();
        session.segment = Some(OpenSegment {
            file,
            full_path,
            segment,
        });
        (self.events)(SegmentEvent::Opened { segment: opened });
        Ok(())
    }

    fn write_fragment(&mut self, fragment: &[u8]) -> Result<(), RecordError> {
        let Some(open) = self.session.as_mut().and_then(|s| s.segment.as_mut()) else {
            return Ok(());
        };
        open.file
            .write_all(fragment)
            .map_err(|e| RecordError::io("writing", &open.full_path, e))?;
        open.segment.bytes += fragment.len() as u64;
        open.segment.fragments += 1;
        RecordStats::add(&self.stats.fragments_written, 1);
        RecordStats::add(&self.stats.bytes_written, fragment.len() as u64);
        Ok(())
    }

    /// Completes the open segment: its file and directory fsynced, its end times set, `Closed`
    /// reported. Its last sample ends at the fragmenter's next decode time.
    fn close_segment(&mut self) -> Result<(), RecordError> {
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        let Some(open) = session.segment.as_ref() else {
            return Ok(());
        };
        open.file
            .sync_all()
            .map_err(|e| RecordError::io("syncing", &open.full_path, e))?;
        if let Some(dir) = open.full_path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| RecordError::io("syncing directory", dir, e))?;
        }
        let Some(open) = session.segment.take() else {
            return Ok(());
        };
        let mut segment = open.segment;
        let media_end_90k = session.fragmenter.next_decode_time();
        let (last_at, last_decode_90k) = session
            .last
            .unwrap_or((segment.start_at, segment.media_start_90k));
        let last_duration = segment::ticks_90k(media_end_90k.saturating_sub(last_decode_90k));
        segment.end_at = Some(last_at.checked_add(last_duration).unwrap_or(last_at));
        segment.media_end_90k = Some(media_end_90k);
        RecordStats::add(&self.stats.segments_closed, 1);
        debug!(path = %segment.path, bytes = segment.bytes, "recording: segment closed");
        (self.events)(SegmentEvent::Closed { segment });
        Ok(())
    }

    /// Ends the session: its waiting samples written as a last fragment (the last one given
    /// the last good duration), its segment closed.
    fn end_session(&mut self) -> Result<(), RecordError> {
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        if let Some(fragment) = session.fragmenter.flush() {
            self.write_fragment(&fragment)?;
        }
        self.close_segment()?;
        self.session = None;
        Ok(())
    }
}

impl Session {
    fn new(track: VideoTrack) -> Session {
        let fragmenter = Fragmenter::new(&track, FragmentPolicy::Gop);
        Session {
            track,
            fragmenter,
            segment: None,
            last: None,
        }
    }
}

/// Creates the segment file in `dir` under the first free name for `start_at`: never
/// overwrites (a restarted hub, or two segments starting in the same millisecond).
fn create_new(dir: &std::path::Path, start_at: Timestamp) -> Result<(File, String), RecordError> {
    let mut n = 0;
    loop {
        let name = segment::segment_file_name(start_at, n);
        let path = dir.join(&name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((file, name)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < MAX_NAME_TRIES => n += 1,
            Err(e) => return Err(RecordError::io("creating", path, e)),
        }
    }
}

/// The track a key frame describes: its parameter sets, and the picture size its SPS declares.
fn track_of(codec: VideoCodec, key: &AccessUnit) -> Result<VideoTrack, Fmp4Error> {
    let (width, height) = xl_media::sps::picture_size(codec, &key.data).unwrap_or((0, 0));
    VideoTrack::from_key_frame(codec, &key.data, width, height)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;

    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x2b];
    const P: &[u8] = &[0x41, 0x9a, 0x02, 0x10];

    fn au(nals: &[&[u8]], i: i32, is_key: bool) -> AccessUnit {
        let t0: Timestamp = "2025-06-01T08:00:00Z".parse().unwrap();
        AccessUnit {
            data: Bytes::from(
                nals.iter()
                    .flat_map(|n| [&[0, 0, 0, 1][..], n].concat())
                    .collect::<Vec<u8>>(),
            ),
            pts_90k: i64::from(i) * 9_000,
            is_key,
            received_at: t0 + SignedDuration::from_millis(100) * i,
        }
    }

    #[test]
    fn a_segment_starts_only_at_a_key_frame_that_could_be_muxed() {
        let dir = std::env::temp_dir().join(format!("xl-record-writer-{}", std::process::id()));
        let events = Arc::new(Mutex::new(Vec::new()));
        let stats = Arc::new(RecordStats::default());
        let mut writer = Writer {
            camera: CameraId::new("cam-w").unwrap(),
            stream: StreamKind::Sub,
            data_dir: dir.clone(),
            segment_duration: SignedDuration::from_secs(60),
            events: Arc::new({
                let events = Arc::clone(&events);
                move |e| events.lock().unwrap().push(e)
            }),
            stats: Arc::clone(&stats),
            codec: None,
            session: None,
        };
        // Before any stream started: nothing to mux with.
        writer.unit(au(&[SPS, PPS, IDR], 0, true)).unwrap();
        writer.codec = Some(VideoCodec::H264);
        // A key frame that is only parameter sets: a track, but no picture.
        writer.unit(au(&[SPS, PPS], 1, true)).unwrap();
        writer.unit(au(&[P], 2, false)).unwrap();
        assert!(events.lock().unwrap().is_empty());
        writer.unit(au(&[SPS, PPS, IDR], 3, true)).unwrap();
        writer.unit(au(&[P], 4, false)).unwrap();
        writer.end_session().unwrap();
        let events = events.lock().unwrap();
        let [
            SegmentEvent::Opened { segment: opened },
            SegmentEvent::Closed { segment: closed },
        ] = &events[..]
        else {
            panic!("{events:?}");
        };
        let t0: Timestamp = "2025-06-01T08:00:00Z".parse().unwrap();
        assert_eq!(opened.start_at, t0 + SignedDuration::from_millis(300));
        assert_eq!(closed.end_at, Some(t0 + SignedDuration::from_millis(500)));
        assert_eq!((closed.fragments, closed.media_end_90k), (1, Some(18_000)));
        assert_eq!(
            std::fs::metadata(dir.join(&closed.path)).unwrap().len(),
            closed.bytes
        );
        let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(get(&stats.dropped_unusable), 2);
        assert_eq!(get(&stats.dropped_awaiting_key), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
