//! RTSP camera sessions on retina: each camera runs in its own task, turns its stream into
//! [`AccessUnit`]s for the decode stage, reconnects forever with exponential backoff and jitter,
//! and keeps its [`CameraStats`] current.
//!
//! Invariants: every await on the network sits inside a timeout; access units are dropped until
//! the first key frame of each session; credentials never reach a log line or an error message
//! (URLs are stored without them).

mod camera;
mod error;
mod probe;

pub use camera::{CameraSource, Credentials, Timeouts, TransportKind, redact_url, run_camera};
pub use error::RtspError;
pub use probe::{ProbeReport, probe};
pub use xl_core::backoff::Backoff;
