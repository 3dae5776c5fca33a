use xl_core::ErrorKind;

/// Why a vision configuration or input was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VisionError {
    /// A zone's configuration is unusable; `zone` is its id as written in config.
    #[error("zone {zone:?}: {reason}")]
    InvalidZone { zone: String, reason: String },
    /// A motion gate setting is out of range.
    #[error("motion.{field}: {reason}")]
    InvalidMotionConfig { field: &'static str, reason: String },
    /// A tracker setting is out of range.
    #[error("tracker.{field}: {reason}")]
    InvalidTrackerConfig { field: &'static str, reason: String },
    /// A frame's Y plane does not match the size it claims.
    #[error("frame of {width}x{height} needs a Y plane of {expected} bytes, got {actual}")]
    BadFrame {
        width: u32,
        height: u32,
        expected: usize,
        actual: usize,
    },
}

impl VisionError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}
