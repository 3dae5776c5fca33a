use std::path::PathBuf;

use xl_core::ErrorKind;

/// Why a key could not be loaded, an export could not be written, or a file could not be
/// verified at all. Problems found *inside* a package (an altered file, a bad signature) are
/// not errors: they are the [`crate::Problem`]s of a [`crate::Report`].
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// A file system operation on the hub's own files (the key, the package being written)
    /// failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done: "reading", "creating", "renaming to", ...
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The key file exists but does not hold a key. It is never replaced silently: packages
    /// signed with it would no longer verify against the key the hub shows.
    #[error(
        "the evidence key file {path} is corrupt ({reason}); it was left as it is: restore it \
         from a backup, or move it away to make a new key (exports signed before then verify \
         only against the old public key)"
    )]
    CorruptKey { path: PathBuf, reason: String },
    /// A public key given by a person (`--key`) that is not a base64 Ed25519 public key.
    #[error("not an Ed25519 public key: {reason}")]
    BadPublicKey { reason: String },
    /// A file name given to [`crate::ExportBuilder::add_file`] that could escape the
    /// package's folder or not be extracted everywhere.
    #[error("evidence file name {name:?} {reason}")]
    BadName { name: String, reason: &'static str },
    /// Two file names of one export that would land on the same file when extracted.
    #[error(
        "evidence file name {name:?} clashes with {existing:?} (names must differ in more than \
         letter case, and a file cannot also be a folder)"
    )]
    DuplicateName { name: String, existing: String },
    /// An evidence file given by path could not be read, e.g. a recording segment that
    /// retention deleted before the export was written.
    #[error("evidence file {name:?}: reading {path}: {source}")]
    Source {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing the zip failed.
    #[error("writing the export {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    /// The file to verify is not a zip (or is cut short: a zip's directory is at its end).
    #[error("{path} is not a zip file (or is truncated): {reason}")]
    NotZip { path: PathBuf, reason: String },
    /// The file is a zip but holds no `manifest.json`: not an evidence export.
    #[error("{path} has no manifest.json: it is not an evidence export")]
    NoManifest { path: PathBuf },
}

impl EvidenceError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            EvidenceError::Source { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                ErrorKind::NotFound
            }
            EvidenceError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            EvidenceError::BadPublicKey { .. }
            | EvidenceError::BadName { .. }
            | EvidenceError::DuplicateName { .. }
            | EvidenceError::NotZip { .. }
            | EvidenceError::NoManifest { .. } => ErrorKind::InvalidInput,
            EvidenceError::Io { .. }
            | EvidenceError::CorruptKey { .. }
            | EvidenceError::Source { .. }
            | EvidenceError::Write { .. } => ErrorKind::Internal,
        }
    }
}
