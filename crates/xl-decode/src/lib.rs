//! FFmpeg decoding for the hub: a fixed pool of decode threads, each camera pinned to one thread
//! with one single-threaded decoder, per-camera decode policies switchable while running, output
//! scaled to the analysis size as pooled I420 frames. File sources (any video FFmpeg reads,
//! looped, paced in real time) stand in for cameras. A [`Transcoder`] makes an H.264 copy of a
//! stream (H.265 for browsers that cannot play it) on its own thread.
//!
//! Invariants: this is the only crate that touches FFmpeg. Nothing here blocks the producer: each
//! camera's input queue is bounded and drops its oldest access unit when full, counting the drop;
//! after a drop the camera waits for the next key frame instead of decoding garbage.

mod error;
mod file;
mod nal;
mod pool;
mod queue;
mod scale;
mod still;
mod transcode;
mod worker;

pub use error::DecodeError;
pub use file::{FileSource, Pacing, spawn_file_source};
pub use nal::is_reference;
pub use pool::{CameraInput, DecodeConfig, DecodePool};
pub use still::decode_key_frame;
pub use transcode::{TranscodeStats, Transcoder};

/// Initialises FFmpeg once per process (idempotent) and quiets its logging to errors.
pub fn init() -> Result<(), DecodeError> {
    static INIT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INIT.get_or_init(|| {
        ffmpeg_next::init().map_err(|e| e.to_string())?;
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Fatal);
        Ok(())
    })
    .clone()
    .map_err(DecodeError::Init)
}
