//! Evidence exports: a package anyone can check, and its check.
//!
//! A package is a zip:
//! - `files/...`: the evidence as given (MP4 clips, snapshot JPEGs, `alert.json`,
//!   `gate_events.json`, ...), stored uncompressed;
//! - `manifest.json`: the [`Manifest`]: format and version, when, the hub's key (id and public
//!   key), the subject (free JSON from the caller) and each file's name, size and SHA-256;
//! - `manifest.sig`: the Ed25519 signature of the exact bytes of `manifest.json`, in base64.
//!
//! [`HubKey`] is the hub's signing key (`<data_dir>/keys/evidence.ed25519`, made at first
//! use), [`ExportBuilder`] writes a package, [`verify`] checks one and names every problem
//! by file (`xueliang verify-export`).
//!
//! Files and bytes only: no tokio, no store. Time comes from the caller.

mod error;
mod export;
mod key;
mod manifest;
mod verify;

pub use error::EvidenceError;
pub use export::{ExportBuilder, Source};
pub use key::{HubKey, KEY_FILE, PublicKey};
pub use manifest::{
    FILES_DIR, FORMAT, FORMAT_VERSION, MANIFEST_NAME, Manifest, ManifestFile, ManifestKey,
    SIGNATURE_NAME,
};
pub use verify::{Problem, Report, verify};

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
