use std::time::Duration;

use xl_core::ErrorKind;

/// Why an RTSP session failed. Messages are one line an operator can act on; the full retina
/// context (connection and packet positions, for Wireshark) is kept in `detail`.
#[derive(Debug, thiserror::Error)]
pub enum RtspError {
    #[error("wrong username or password (401 Unauthorized)")]
    Unauthorized { detail: String },
    #[error("stream path not found on the camera (404 Not Found)")]
    NotFound { detail: String },
    #[error("{stage} failed: {summary}")]
    Protocol {
        stage: &'static str,
        summary: String,
        detail: String,
    },
    #[error("no response within {}s during {stage}", timeout.as_secs())]
    Timeout {
        stage: &'static str,
        timeout: Duration,
    },
    #[error("no H.264 or H.265 video stream (streams: {found})")]
    NoSupportedVideo { found: String },
    #[error("camera ended the stream")]
    Ended,
}

impl RtspError {
    pub(crate) fn from_retina(stage: &'static str, e: retina::Error) -> Self {
        let detail = e.to_string();
        match e.status_code() {
            Some(401) => RtspError::Unauthorized { detail },
            Some(404) => RtspError::NotFound { detail },
            _ => RtspError::Protocol {
                stage,
                summary: detail.lines().next().unwrap_or_default().to_owned(),
                detail,
            },
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            RtspError::Unauthorized { .. } => ErrorKind::Unauthenticated,
            RtspError::NotFound { .. } => ErrorKind::NotFound,
            RtspError::NoSupportedVideo { .. } => ErrorKind::InvalidInput,
            RtspError::Protocol { .. } | RtspError::Timeout { .. } | RtspError::Ended => {
                ErrorKind::Unavailable
            }
        }
    }

    /// The full retina context, where there is one.
    pub fn detail(&self) -> Option<&str> {
        match self {
            RtspError::Unauthorized { detail }
            | RtspError::NotFound { detail }
            | RtspError::Protocol { detail, .. } => Some(detail),
            _ => None,
        }
    }
}
