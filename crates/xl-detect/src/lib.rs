//! Person and face detection on ONNX Runtime.
//!
//! Pre- and post-processing (`ssd`, `yunet`, `yolo`, `face`, `geom`) are pure, allocation-free
//! once their buffers have grown, and checked against the Python reference decoders in
//! `tests/reference.rs`. `runtime` loads ONNX Runtime and builds sessions on the configured
//! execution provider; `models` wraps one session per model role.

pub mod ceiling;
pub mod engine;
pub mod face;
pub mod geom;
pub mod models;
pub mod pixels;
pub mod runtime;
pub mod ssd;
pub mod stats;
pub mod yolo;
pub mod yunet;

use std::path::PathBuf;

/// Why detection could not start or a run failed.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("{0}")]
    Runtime(String),
    #[error("execution provider {provider} is not available: {reason}")]
    Provider {
        provider: &'static str,
        reason: String,
    },
    #[error("model {path}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("inference failed: {0}")]
    Run(String),
}

impl DetectError {
    fn run(e: impl std::fmt::Display) -> DetectError {
        DetectError::Run(e.to_string())
    }
}

/// The asset cache: `$XUELIANG_CACHE`, else `~/.cache/xueliang` (what `scripts/setup-assets`
/// fills).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XUELIANG_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".cache/xueliang")
}

/// The default models directory: `$XUELIANG_MODELS`, else the cache's `models/`.
pub fn models_dir() -> PathBuf {
    match std::env::var_os("XUELIANG_MODELS").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => cache_dir().join("models"),
    }
}
