//! Recording: each recorded stream of a camera is written as a sequence of segment files, and
//! a segment left open by a crash is repaired at the next start.
//!
//! - [`Recorder`]: an [`xl_core::frame::AccessUnitSink`] (subscribed to the stream's tee) whose
//!   `push` never blocks: a bounded queue (drop the oldest, then skip to the next key frame,
//!   counted) feeds one writer thread that does the blocking file I/O. The writer cuts the
//!   stream into segments and reports each one's index fields to the hub as
//!   [`SegmentEvent`]s.
//! - [`repair`]: truncates a segment after its last complete fragment, after a crash.
//! - [`Clip`]: the recording of a time range as one MP4 for playback and download, planned
//!   from the segments' index rows ([`SegmentRef`]) and read in byte ranges from their files.
//! - [`RecordStats`]: the figures of every recorder, for `/metrics`.
//!
//! **Segments.** One self-contained fragmented MP4 file: the init segment, then one fragment
//! (`moof` + `mdat`) per group of pictures, so every fragment starts at a key frame. Files live
//! at `<data_dir>/recordings/<camera>/<stream>/<YYYY-MM-DD>/<start unix ms>.mp4` (the UTC date
//! of the segment's start; `-1`, `-2`, ... before `.mp4` if that name is taken, so a file is
//! never overwritten). A segment is cut at the first key frame at least the target duration
//! after its start, when the stream starts again (`stream_started`: reconnect, new codec),
//! when a key frame brings other parameter sets (a new size), when access units stop arriving
//! for more than [`MAX_ARRIVAL_GAP`] (the camera stalled, or the queue dropped that much), and
//! when recording stops.
//!
//! **Time.** A segment's `start_at` is its first key frame's `received_at`; its `end_at` is its
//! last sample's `received_at` plus that sample's duration. `media_start_90k` is the decode
//! time of its first sample inside the file. Within one session (no restart, no gap) the
//! segments continue one decode timeline, so the fragments of consecutive segments appended
//! after the first one's init segment make one playable MP4; after a restart or a gap the
//! timeline starts again at 0.
//!
//! **Crash safety.** Fragments are appended with plain writes as each group of pictures
//! completes (a SIGKILL loses at most the fragment being gathered); a segment's file and its
//! directory are fsynced when it closes. A segment still open after a crash is repaired with
//! [`repair`] before anything serves it.

mod clip;
mod error;
mod queue;
mod recorder;
mod repair;
mod segment;
mod stats;
mod writer;

pub use clip::{Clip, SegmentRef};
pub use error::RecordError;
pub use recorder::{
    DEFAULT_QUEUE_MAX_BYTES, DEFAULT_QUEUE_MAX_UNITS, DEFAULT_SEGMENT_DURATION, EventSink,
    Recorder, RecorderConfig,
};
pub use repair::{Repaired, repair};
pub use segment::{MAX_ARRIVAL_GAP, RECORDINGS_DIR, Segment, SegmentEvent};
pub use stats::RecordStats;
