use xl_core::ErrorKind;

/// Decode-stage failures. Per-frame decode errors are counted, not returned; these are the ones
/// that stop a source.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("FFmpeg failed to initialise: {0}")]
    Init(String),
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        source: ffmpeg_next::Error,
    },
    #[error("{path} has no video stream")]
    NoVideo { path: String },
    #[error("no FFmpeg decoder for {codec}")]
    NoDecoder { codec: String },
    #[error("cannot open the {codec} decoder: {source}")]
    OpenDecoder {
        codec: String,
        source: ffmpeg_next::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: ffmpeg_next::Error,
    },
    #[error("no FFmpeg encoder {codec} (is FFmpeg built with it?)")]
    NoEncoder { codec: String },
    #[error("cannot open the {codec} encoder for {width}x{height}: {source}")]
    OpenEncoder {
        codec: String,
        width: u32,
        height: u32,
        source: ffmpeg_next::Error,
    },
    /// A single key frame (a camera probe's) that does not decode to a picture.
    #[error("the {codec} key frame does not decode: {source}")]
    KeyFrame {
        codec: String,
        source: ffmpeg_next::Error,
    },
}

impl DecodeError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            DecodeError::Init(_)
            | DecodeError::NoDecoder { .. }
            | DecodeError::NoEncoder { .. } => ErrorKind::Internal,
            DecodeError::Open { .. } | DecodeError::Read { .. } => ErrorKind::Unavailable,
            DecodeError::NoVideo { .. }
            | DecodeError::OpenDecoder { .. }
            | DecodeError::OpenEncoder { .. }
            | DecodeError::KeyFrame { .. } => ErrorKind::InvalidInput,
        }
    }
}
