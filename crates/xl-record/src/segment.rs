//! What the recorder tells the hub about its segments, and where their files go.

use jiff::{SignedDuration, Timestamp};
use xl_core::camera::VideoCodec;
use xl_core::ids::CameraId;
use xl_core::live::StreamKind;

use crate::RecordError;

/// The directory under the data directory that holds every recording.
pub const RECORDINGS_DIR: &str = "recordings";

/// The longest pause between two access units that stays inside one segment: a longer one
/// (the camera stalled, or the recorder's queue dropped that much) ends the segment, and the
/// next key frame starts a new one on a new timeline, so the index shows the gap.
pub const MAX_ARRIVAL_GAP: SignedDuration = SignedDuration::from_secs(2);

/// One segment file of a recording: the fields of its row in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub camera: CameraId,
    pub stream: StreamKind,
    /// Its first key frame's `received_at`.
    pub start_at: Timestamp,
    /// Its last sample's `received_at` plus that sample's duration; `None` while open.
    pub end_at: Option<Timestamp>,
    /// The file's length: the init segment and the fragments written so far.
    pub bytes: u64,
    pub codec: VideoCodec,
    /// Picture size from the sequence parameter set.
    pub width: u32,
    pub height: u32,
    /// Decode time (90 kHz) of its first sample in the file's media timeline.
    pub media_start_90k: u64,
    /// Decode time (90 kHz) at which its last sample ends; `None` while open. The next segment
    /// of the same session starts at exactly this decode time.
    pub media_end_90k: Option<u64>,
    /// Fragments (`moof` + `mdat`, one a group of pictures) written so far.
    pub fragments: u64,
    /// The file, relative to the data directory, `/`-separated:
    /// `recordings/<camera>/<stream>/<YYYY-MM-DD>/<start unix ms>.mp4`.
    pub path: String,
}

/// What a recorder reports, in order, on its writer thread.
#[derive(Debug)]
pub enum SegmentEvent {
    /// A segment file was created and its init segment written (`end_at` and
    /// `media_end_90k` are `None`): its row is `open`.
    Opened { segment: Segment },
    /// A segment was completed, fsynced with its directory: its row is `closed`, with every
    /// field as given here.
    Closed { segment: Segment },
    /// Writing failed: the recorder stopped (it drops what it is given from now on) and reports
    /// nothing more. `open` is the segment that was being written, left as a crash leaves it:
    /// run [`crate::repair`] on it and update or remove its row as after a crash. Raise
    /// `recording.failed`.
    Failed {
        camera: CameraId,
        stream: StreamKind,
        error: RecordError,
        open: Option<Segment>,
    },
}

/// The directory of the segments of `camera`'s `stream` that start on `start_at`'s UTC date,
/// relative to the data directory.
pub(crate) fn segment_dir(camera: &CameraId, stream: StreamKind, start_at: Timestamp) -> String {
    format!(
        "{RECORDINGS_DIR}/{camera}/{stream}/{}",
        start_at.strftime("%Y-%m-%d")
    )
}

/// The `n`th choice of file name for a segment starting at `start_at` (0: `<ms>.mp4`, then
/// `<ms>-1.mp4`, ...).
pub(crate) fn segment_file_name(start_at: Timestamp, n: u32) -> String {
    let ms = start_at.as_millisecond();
    if n == 0 {
        format!("{ms}.mp4")
    } else {
        format!("{ms}-{n}.mp4")
    }
}

/// 90 kHz ticks as a duration (rounded down to the nanosecond).
pub(crate) fn ticks_90k(ticks: u64) -> SignedDuration {
    // 1 tick = 100_000 / 9 ns; saturates far beyond any segment's length.
    let ticks = i64::try_from(ticks)
        .unwrap_or(i64::MAX)
        .min(i64::MAX / 100_000);
    SignedDuration::from_nanos(ticks * 100_000 / 9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_paths_follow_the_utc_date_and_start_millisecond() {
        let camera = CameraId::new("gate-cam.2").unwrap();
        // 2024-03-01T23:59:59.123+08:00 is still 2024-03-01 in UTC (15:59:59.123).
        let at: Timestamp = "2024-03-01T23:59:59.123+08:00".parse().unwrap();
        assert_eq!(
            segment_dir(&camera, StreamKind::Main, at),
            "recordings/gate-cam.2/main/2024-03-01"
        );
        let at: Timestamp = "2024-03-02T00:00:00.5Z".parse().unwrap();
        assert_eq!(
            segment_dir(&camera, StreamKind::Sub, at),
            "recordings/gate-cam.2/sub/2024-03-02"
        );
        assert_eq!(segment_file_name(at, 0), "1709337600500.mp4");
        assert_eq!(segment_file_name(at, 2), "1709337600500-2.mp4");
    }

    #[test]
    fn ticks_convert_to_wall_time() {
        assert_eq!(ticks_90k(90_000), SignedDuration::from_secs(1));
        assert_eq!(ticks_90k(9_000), SignedDuration::from_millis(100));
        assert_eq!(ticks_90k(1), SignedDuration::from_nanos(11_111));
        assert!(ticks_90k(u64::MAX) > SignedDuration::from_hours(24 * 365));
    }
}
