use std::io;
use std::path::PathBuf;

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
    /// then a `moov` with `mvex`): it is not a segment, so it is left as it is.
    #[error("{path} is not a fragmented MP4 segment: {reason} (byte {offset})")]
    NotSegment {
        path: PathBuf,
        offset: u64,
        reason: &'static str,
    },
    /// A camera id that cannot name a directory (`.` or `..`).
    #[error("camera id {camera} cannot name a recording directory")]
    BadCameraId { camera: CameraId },
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
            RecordError::NotSegment { .. } | RecordError::BadCameraId { .. } => {
                ErrorKind::InvalidInput
            }
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
