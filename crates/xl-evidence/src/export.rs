//! Writing a package.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::manifest::{
    ALGORITHM, FILES_DIR, FORMAT, FORMAT_VERSION, MANIFEST_NAME, Manifest, ManifestFile,
    ManifestKey, SIGNATURE_NAME, check_name, clash,
};
use crate::{EvidenceError, HubKey};

/// Size of the copy buffer for evidence files given by path.
const COPY_BUFFER_BYTES: usize = 256 * 1024;

/// An evidence file's content: bytes held by the caller, or a file copied (and hashed) in
/// pieces when the package is written, so a long clip is never loaded whole.
#[derive(Debug, Clone)]
pub enum Source {
    Bytes(Vec<u8>),
    Path(PathBuf),
}

impl From<Vec<u8>> for Source {
    fn from(bytes: Vec<u8>) -> Source {
        Source::Bytes(bytes)
    }
}

impl From<&[u8]> for Source {
    fn from(bytes: &[u8]) -> Source {
        Source::Bytes(bytes.to_vec())
    }
}

impl From<PathBuf> for Source {
    fn from(path: PathBuf) -> Source {
        Source::Path(path)
    }
}

impl From<&Path> for Source {
    fn from(path: &Path) -> Source {
        Source::Path(path.to_owned())
    }
}

/// Collects the files of one export, then writes the package.
///
/// ```no_run
/// # fn main() -> Result<(), xl_evidence::EvidenceError> {
/// # let data_dir = std::path::Path::new("/var/lib/xueliang");
/// let key = xl_evidence::HubKey::load_or_create(data_dir)?;
/// let mut export = xl_evidence::ExportBuilder::new(serde_json::json!({
///     "alert": "a-1024",
///     "exported_by": "wang.police",
/// }));
/// export.add_file("alert.json", br#"{"id":"a-1024"}"#.as_slice())?;
/// export.add_file("clips/gate-3-main.mp4", data_dir.join("clips/a-1024.mp4"))?;
/// let manifest = export.write_to(&key, jiff::Timestamp::now(), &data_dir.join("exports/e-7.zip"))?;
/// # let _ = manifest;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ExportBuilder {
    subject: serde_json::Value,
    /// (name under `files/`, content), in the order added.
    files: Vec<(String, Source)>,
}

impl ExportBuilder {
    /// An export about `subject` (free JSON: an alert id, or a camera and a time range, and
    /// who exported it), written into the manifest as given.
    pub fn new(subject: serde_json::Value) -> ExportBuilder {
        ExportBuilder {
            subject,
            files: Vec::new(),
        }
    }

    /// Adds an evidence file under `files/<name>`. `name` may have folders (`clips/main.mp4`)
    /// but no `.` or `..` part, no leading `/`, no backslash, no character Windows refuses,
    /// and must not clash with a name already added (letter case aside, or a file where
    /// another name needs a folder).
    pub fn add_file(
        &mut self,
        name: &str,
        content: impl Into<Source>,
    ) -> Result<&mut ExportBuilder, EvidenceError> {
        check_name(name).map_err(|reason| EvidenceError::BadName {
            name: name.to_owned(),
            reason,
        })?;
        if let Some(existing) = clash(self.files.iter().map(|(n, _)| n.as_str()), name) {
            return Err(EvidenceError::DuplicateName {
                name: name.to_owned(),
                existing: existing.to_owned(),
            });
        }
        self.files.push((name.to_owned(), content.into()));
        Ok(self)
    }

    /// Writes the package to `path` and returns its manifest: every file under `files/`
    /// (stored, not compressed: clips and snapshots are compressed already), then
    /// `manifest.json`, then `manifest.sig`.
    ///
    /// The zip is written to a temporary file beside `path` (mode 0600: evidence holds
    /// personal data), fsynced and renamed, so `path` is either absent or whole. On an error
    /// (an evidence file that cannot be read, a full disk) nothing is left behind.
    /// `created_at` is the caller's clock.
    pub fn write_to(
        self,
        key: &HubKey,
        created_at: jiff::Timestamp,
        path: &Path,
    ) -> Result<Manifest, EvidenceError> {
        let file_name = path
            .file_name()
            .ok_or_else(|| EvidenceError::Io {
                op: "writing",
                path: path.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the path names no file",
                ),
            })?
            .to_string_lossy();
        // Unique per process and write, so two exports to one path never share a temporary.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let tmp = path.with_file_name(format!(
            ".{file_name}.partial-{}-{}",
            std::process::id(),
            WRITES.fetch_add(1, Ordering::Relaxed)
        ));
        let result = self.write_tmp(key, created_at, &tmp).and_then(|manifest| {
            std::fs::rename(&tmp, path).map_err(|source| EvidenceError::Io {
                op: "renaming to",
                path: path.to_owned(),
                source,
            })?;
            Ok(manifest)
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return result;
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| EvidenceError::Io {
                op: "syncing",
                path: dir.to_owned(),
                source,
            })?;
        result
    }

    fn write_tmp(
        self,
        key: &HubKey,
        created_at: jiff::Timestamp,
        tmp: &Path,
    ) -> Result<Manifest, EvidenceError> {
        let zip_err = |source| EvidenceError::Write {
            path: tmp.to_owned(),
            source,
        };
        let io_err = |source: std::io::Error| zip_err(zip::result::ZipError::Io(source));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(tmp)
            .map_err(|source| EvidenceError::Io {
                op: "creating",
                path: tmp.to_owned(),
                source,
            })?;
        let mut zip = ZipWriter::new(BufWriter::with_capacity(COPY_BUFFER_BYTES, file));
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .last_modified_time(zip_time(created_at))
            .unix_permissions(0o644);

        let mut listed = Vec::with_capacity(self.files.len());
        let mut buf = vec![0u8; COPY_BUFFER_BYTES];
        for (name, content) in self.files {
            let entry = format!("{FILES_DIR}{name}");
            let (bytes, sha256) = match content {
                Source::Bytes(bytes) => {
                    zip.start_file(
                        &entry,
                        options.large_file(bytes.len() as u64 >= u64::from(u32::MAX)),
                    )
                    .map_err(zip_err)?;
                    zip.write_all(&bytes).map_err(io_err)?;
                    (bytes.len() as u64, crate::hex(&Sha256::digest(&bytes)))
                }
                Source::Path(path) => {
                    let source_err = |source| EvidenceError::Source {
                        name: name.clone(),
                        path: path.clone(),
                        source,
                    };
                    let mut from = File::open(&path).map_err(source_err)?;
                    let size = from.metadata().map_err(source_err)?.len();
                    zip.start_file(&entry, options.large_file(size >= u64::from(u32::MAX)))
                        .map_err(zip_err)?;
                    let mut hasher = Sha256::new();
                    let mut copied = 0u64;
                    loop {
                        let n = match from.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            Err(e) => return Err(source_err(e)),
                        };
                        hasher.update(&buf[..n]);
                        zip.write_all(&buf[..n]).map_err(io_err)?;
                        copied += n as u64;
                    }
                    (copied, crate::hex(&hasher.finalize()))
                }
            };
            listed.push(ManifestFile {
                name: entry,
                bytes,
                sha256,
            });
        }

        let manifest = Manifest {
            format: FORMAT.to_owned(),
            version: FORMAT_VERSION,
            created_at,
            key: ManifestKey {
                algorithm: ALGORITHM.to_owned(),
                id: key.key_id(),
                public_key: key.public_key_base64(),
            },
            subject: self.subject,
            files: listed,
        };
        let mut manifest_bytes = serde_json::to_vec_pretty(&manifest)
            .expect("a manifest serializes: its map keys are strings");
        manifest_bytes.push(b'\n');
        let signature = BASE64.encode(key.sign(&manifest_bytes).to_bytes());
        zip.start_file(MANIFEST_NAME, options).map_err(zip_err)?;
        zip.write_all(&manifest_bytes).map_err(io_err)?;
        zip.start_file(SIGNATURE_NAME, options).map_err(zip_err)?;
        zip.write_all(signature.as_bytes()).map_err(io_err)?;
        let file = zip
            .finish()
            .map_err(zip_err)?
            .into_inner()
            .map_err(|e| io_err(e.into_error()))?;
        file.sync_all().map_err(io_err)?;
        Ok(manifest)
    }
}

/// A zip entry's time (local fields, here UTC) from the package's creation time; zip times
/// run from 1980 to 2107.
fn zip_time(at: jiff::Timestamp) -> zip::DateTime {
    let t = at.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    u16::try_from(t.year())
        .ok()
        .and_then(|year| {
            let [month, day, hour, minute, second] =
                [t.month(), t.day(), t.hour(), t.minute(), t.second()].map(|v| v as u8);
            zip::DateTime::from_date_and_time(year, month, day, hour, minute, second).ok()
        })
        .unwrap_or_default()
}
