use std::io;
use std::path::PathBuf;

use jiff::Timestamp;
use xl_core::ErrorKind;
use xl_core::ids::CameraId;

/// Why recording a stream or repairing a segment failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A file or directory operation failed: the disk is full or read-only, a permission is
    /// missing, a path is taken by something else.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done: "creating directory", "writing", "syncing", ...
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file given to [`crate::repair`] does not start as a fragmented MP4 does (`ftyp`,
    /// then a `moov` with `mvex`): it is not a segment, so it is left as it is. Also a segment
    /// that a [`crate::Clip`] cannot use: a fragment it cannot move, or a file changed since
    /// the clip was planned.
    #[error("{path} is not a fragmented MP4 segment: {reason} (byte {offset})")]
    NotSegment {
        path: PathBuf,
        offset: u64,
        reason: &'static str,
    },
    /// A camera id that cannot name a directory (`.` or `..`).
    #[error("camera id {camera} cannot name a recording directory")]
    BadCameraId { camera: CameraId },
    /// No recorded fragment overlaps the time range asked of [`crate::Clip::plan`] (or the
    /// range is empty): nothing was recorded then, or what was is gone.
    #[error("no recording between {from} and {to}")]
    NoRecording { from: Timestamp, to: Timestamp },
    /// A byte range outside a [`crate::Clip`] was asked of [`crate::Clip::write_range`].
    #[error("bytes {start}..{end} are not within the clip's {len} bytes")]
    ClipRange { start: u64, end: u64, len: u64 },
    /// Writing a clip's bytes to its destination failed (the client went away).
    #[error("writing a clip: {source}")]
    ClipWrite {
        #[source]
        source: io::Error,
    },
    /// The writer thread could not be started.
    #[error("starting the recording thread of camera {camera}: {source}")]
    Thread {
        camera: CameraId,
        #[source]
        source: io::Error,
    },
}

impl RecordError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RecordError::Io { source, .. } => match source.kind() {
                io::ErrorKind::NotFound => ErrorKind::NotFound,
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                    ErrorKind::PermissionDenied
                }
                _ => ErrorKind::Unavailable,
            },
            RecordError::NotSegment { .. }
            | RecordError::BadCameraId { .. }
            | RecordError::ClipRange { .. } => ErrorKind::InvalidInput,
            RecordError::NoRecording { .. } => ErrorKind::NotFound,
            RecordError::ClipWrite { .. } => ErrorKind::Unavailable,
            RecordError::Thread { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        RecordError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
