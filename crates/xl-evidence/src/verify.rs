//! Checking a package.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signature;
use sha2::{Digest, Sha256};
use zip::ZipArchive;
use zip::read::ZipReadOptions;
use zip::result::ZipError;

use crate::manifest::{
    ALGORITHM, FILES_DIR, FORMAT, FORMAT_VERSION, MANIFEST_NAME, Manifest, SIGNATURE_NAME,
    check_name, clash, is_sha256_hex,
};
use crate::{EvidenceError, PublicKey};

/// Largest `manifest.json` read (a manifest lists about 150 bytes a file).
const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// Largest `manifest.sig` read (the signature is 88 characters).
const MAX_SIGNATURE_BYTES: u64 = 1024;

/// What [`verify`] found. The package is good when there is no problem.
#[derive(Debug, Clone)]
pub struct Report {
    /// The manifest, when it could be read (even if its signature does not verify).
    pub manifest: Option<Manifest>,
    /// Every problem found, each naming its file.
    pub problems: Vec<Problem>,
}

impl Report {
    /// No problem: the signature verifies and every listed file is there, whole, alone.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Evidence files the manifest lists.
    pub fn files(&self) -> usize {
        self.manifest.as_ref().map_or(0, |m| m.files.len())
    }

    /// The id of the key the manifest names.
    pub fn key_id(&self) -> Option<&str> {
        self.manifest.as_ref().map(|m| m.key.id.as_str())
    }

    /// Whether a problem names `file` (a name in the zip).
    pub fn names(&self, file: &str) -> bool {
        self.problems.iter().any(|p| p.files().contains(&file))
    }
}

/// One thing wrong with a package, by file. Its `Display` is `FILE: what`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `manifest.json` could not be read, is not JSON of the manifest's shape, or is of a
    /// format or version this verifier does not know. Its files could not be checked.
    ManifestInvalid { reason: String },
    /// The manifest names a key whose id is not the id of its public key.
    KeyIdMismatch { listed: String, expected: String },
    /// The zip holds no `manifest.sig`.
    SignatureMissing,
    /// `manifest.sig` is not the base64 of a 64-byte Ed25519 signature.
    SignatureMalformed { reason: String },
    /// `manifest.sig` does not verify `manifest.json` with the key: one of the two was
    /// altered (which one cannot be told).
    SignatureMismatch { key_id: String },
    /// The package verifies with the key its manifest names, but that is not the trusted
    /// key: it was made, or remade, by someone else.
    SignedByOtherKey {
        key_id: String,
        trusted_key_id: String,
    },
    /// The manifest names another key than the trusted one it is signed with.
    ManifestNamesOtherKey {
        listed_key_id: String,
        trusted_key_id: String,
    },
    /// The manifest lists a name that is not under `files/` or could escape the package's
    /// folder when extracted.
    BadName { file: String, reason: &'static str },
    /// The manifest lists a name twice (or twice but for letter case, or as a file and a
    /// folder).
    DuplicateListing { file: String, existing: String },
    /// The zip holds two entries with one name: which is the evidence depends on the tool
    /// that reads it.
    DuplicateEntries,
    /// A listed file is not in the zip.
    Missing { file: String },
    /// A file in the zip that the manifest does not list.
    Unlisted { file: String },
    /// A listed file could not be read from the zip (damaged, encrypted, an unknown
    /// compression, a link).
    Unreadable { file: String, reason: String },
    /// A listed file of another size than listed.
    SizeMismatch {
        file: String,
        listed_bytes: u64,
        found_bytes: u64,
    },
    /// A listed file of the listed size whose SHA-256 is not the listed one: altered.
    HashMismatch {
        file: String,
        listed_sha256: String,
        found_sha256: String,
    },
}

impl Problem {
    /// The files of the zip the problem is about.
    pub fn files(&self) -> Vec<&str> {
        match self {
            Problem::ManifestInvalid { .. }
            | Problem::KeyIdMismatch { .. }
            | Problem::ManifestNamesOtherKey { .. } => vec![MANIFEST_NAME],
            Problem::SignatureMissing
            | Problem::SignatureMalformed { .. }
            | Problem::SignedByOtherKey { .. } => vec![SIGNATURE_NAME],
            Problem::SignatureMismatch { .. } => vec![MANIFEST_NAME, SIGNATURE_NAME],
            Problem::DuplicateEntries => vec![],
            Problem::BadName { file, .. }
            | Problem::DuplicateListing { file, .. }
            | Problem::Missing { file }
            | Problem::Unlisted { file }
            | Problem::Unreadable { file, .. }
            | Problem::SizeMismatch { file, .. }
            | Problem::HashMismatch { file, .. } => vec![file.as_str()],
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files = self.files();
        if files.is_empty() {
            f.write_str("(the zip): ")?;
        } else {
            write!(f, "{}: ", files.join(", "))?;
        }
        match self {
            Problem::ManifestInvalid { reason } => write!(f, "not a valid manifest: {reason}"),
            Problem::KeyIdMismatch { listed, expected } => write!(
                f,
                "names key id {listed}, but its public key's id is {expected}"
            ),
            Problem::SignatureMissing => f.write_str("missing: the package is not signed"),
            Problem::SignatureMalformed { reason } => {
                write!(f, "not an Ed25519 signature: {reason}")
            }
            Problem::SignatureMismatch { key_id } => write!(
                f,
                "the signature does not verify the manifest with key {key_id}: one of the two \
                 was altered"
            ),
            Problem::SignedByOtherKey {
                key_id,
                trusted_key_id,
            } => write!(
                f,
                "signed by key {key_id}, not by the trusted key {trusted_key_id}"
            ),
            Problem::ManifestNamesOtherKey {
                listed_key_id,
                trusted_key_id,
            } => write!(
                f,
                "names key {listed_key_id}, but is signed by the trusted key {trusted_key_id}"
            ),
            Problem::BadName { reason, .. } => write!(f, "listed under a name that {reason}"),
            Problem::DuplicateListing { existing, .. } => {
                write!(f, "listed again (it clashes with {existing})")
            }
            Problem::DuplicateEntries => {
                f.write_str("several entries have one name; which one is read depends on the tool")
            }
            Problem::Missing { .. } => f.write_str("listed in the manifest, missing from the zip"),
            Problem::Unlisted { .. } => f.write_str("in the zip, not listed in the manifest"),
            Problem::Unreadable { reason, .. } => write!(f, "cannot be read: {reason}"),
            Problem::SizeMismatch {
                listed_bytes,
                found_bytes,
                ..
            } => {
                if found_bytes > listed_bytes {
                    write!(f, "more than the {listed_bytes} bytes listed: altered")
                } else {
                    write!(f, "{found_bytes} bytes, listed as {listed_bytes}: altered")
                }
            }
            Problem::HashMismatch {
                listed_sha256,
                found_sha256,
                ..
            } => write!(
                f,
                "altered: its SHA-256 is {found_sha256}, the manifest lists {listed_sha256}"
            ),
        }
    }
}

/// Checks the package at `zip_path`: the signature of `manifest.json` (with the key the
/// manifest names, and with `trusted_key` when given: a package signed by another key is
/// [`Problem::SignedByOtherKey`]), the size and SHA-256 of every listed file, listed files
/// missing from the zip, and files in the zip the manifest does not list.
///
/// A file that cannot be read, is not a zip or has no `manifest.json` is an error, not a
/// report. Nothing is extracted; each file is hashed as it is read (at most its listed size
/// plus one byte is read), so a large clip takes no memory and a hostile zip cannot make it
/// read more than it claims. Zip CRCs are not relied on: the SHA-256 and the signature are
/// the check.
pub fn verify(zip_path: &Path, trusted_key: Option<&PublicKey>) -> Result<Report, EvidenceError> {
    let file = File::open(zip_path).map_err(|source| EvidenceError::Io {
        op: "opening",
        path: zip_path.to_owned(),
        source,
    })?;
    let mut zip = ZipArchive::new(BufReader::new(file)).map_err(|e| match e {
        ZipError::Io(source) if source.kind() != std::io::ErrorKind::UnexpectedEof => {
            EvidenceError::Io {
                op: "reading",
                path: zip_path.to_owned(),
                source,
            }
        }
        other => EvidenceError::NotZip {
            path: zip_path.to_owned(),
            reason: other.to_string(),
        },
    })?;
    let Some(manifest_index) = zip.index_for_name(MANIFEST_NAME) else {
        return Err(EvidenceError::NoManifest {
            path: zip_path.to_owned(),
        });
    };

    let mut problems = Vec::new();
    if zip.has_duplicate_names() {
        problems.push(Problem::DuplicateEntries);
    }

    let manifest_bytes = match read_small(&mut zip, manifest_index, MAX_MANIFEST_BYTES) {
        Ok(bytes) => Some(bytes),
        Err(reason) => {
            problems.push(Problem::ManifestInvalid { reason });
            None
        }
    };
    let signature = match zip.index_for_name(SIGNATURE_NAME) {
        None => {
            problems.push(Problem::SignatureMissing);
            None
        }
        Some(index) => match read_small(&mut zip, index, MAX_SIGNATURE_BYTES)
            .and_then(|bytes| parse_signature(&bytes))
        {
            Ok(signature) => Some(signature),
            Err(reason) => {
                problems.push(Problem::SignatureMalformed { reason });
                None
            }
        },
    };
    let manifest = manifest_bytes
        .as_deref()
        .and_then(|bytes| match parse_manifest(bytes) {
            Ok(manifest) => Some(manifest),
            Err(reason) => {
                problems.push(Problem::ManifestInvalid { reason });
                None
            }
        });
    let listed_key =
        manifest
            .as_ref()
            .and_then(|m| match PublicKey::from_base64(&m.key.public_key) {
                Ok(key) => {
                    if m.key.id != key.key_id() {
                        problems.push(Problem::KeyIdMismatch {
                            listed: m.key.id.clone(),
                            expected: key.key_id(),
                        });
                    }
                    Some(key)
                }
                Err(e) => {
                    problems.push(Problem::ManifestInvalid {
                        reason: format!("key.public_key: {e}"),
                    });
                    None
                }
            });

    if let (Some(bytes), Some(signature)) = (&manifest_bytes, &signature) {
        match (trusted_key, listed_key) {
            (Some(trusted), listed) => {
                if trusted.verifies(bytes, signature) {
                    if let Some(listed) = listed.filter(|k| k != trusted) {
                        problems.push(Problem::ManifestNamesOtherKey {
                            listed_key_id: listed.key_id(),
                            trusted_key_id: trusted.key_id(),
                        });
                    }
                } else if let Some(listed) = listed.filter(|k| k.verifies(bytes, signature)) {
                    problems.push(Problem::SignedByOtherKey {
                        key_id: listed.key_id(),
                        trusted_key_id: trusted.key_id(),
                    });
                } else {
                    problems.push(Problem::SignatureMismatch {
                        key_id: trusted.key_id(),
                    });
                }
            }
            (None, Some(listed)) => {
                if !listed.verifies(bytes, signature) {
                    problems.push(Problem::SignatureMismatch {
                        key_id: listed.key_id(),
                    });
                }
            }
            // No key to check with: the manifest's problem is reported already.
            (None, None) => {}
        }
    }

    if let Some(manifest) = &manifest {
        check_files(&mut zip, manifest, &mut problems);
    }
    Ok(Report { manifest, problems })
}

fn check_files<R: Read + std::io::Seek>(
    zip: &mut ZipArchive<R>,
    manifest: &Manifest,
    problems: &mut Vec<Problem>,
) {
    let mut listed: Vec<&str> = Vec::with_capacity(manifest.files.len());
    for file in &manifest.files {
        let name = file.name.as_str();
        if let Err(reason) = name
            .strip_prefix(FILES_DIR)
            .ok_or("is not under files/")
            .and_then(check_name)
        {
            problems.push(Problem::BadName {
                file: name.to_owned(),
                reason,
            });
            continue;
        }
        if let Some(existing) = clash(listed.iter().copied(), name) {
            problems.push(Problem::DuplicateListing {
                file: name.to_owned(),
                existing: existing.to_owned(),
            });
            continue;
        }
        listed.push(name);
        if !is_sha256_hex(&file.sha256) {
            problems.push(Problem::ManifestInvalid {
                reason: format!(
                    "{name}: the sha256 {:?} is not 64 lowercase hex digits",
                    file.sha256
                ),
            });
            continue;
        }
        let Some(index) = zip.index_for_name(name) else {
            problems.push(Problem::Missing {
                file: name.to_owned(),
            });
            continue;
        };
        if let Some(problem) = check_entry(zip, index, name, file.bytes, &file.sha256) {
            problems.push(problem);
        }
    }

    let listed: HashSet<&str> = listed.into_iter().collect();
    for raw in zip.file_names_raw() {
        let name = String::from_utf8_lossy(raw);
        if name == MANIFEST_NAME || name == SIGNATURE_NAME || name.ends_with('/') {
            continue;
        }
        if !listed.contains(name.as_ref()) {
            problems.push(Problem::Unlisted {
                file: name.into_owned(),
            });
        }
    }
}

fn check_entry<R: Read + std::io::Seek>(
    zip: &mut ZipArchive<R>,
    index: usize,
    name: &str,
    listed_bytes: u64,
    listed_sha256: &str,
) -> Option<Problem> {
    let unreadable = |reason: String| {
        Some(Problem::Unreadable {
            file: name.to_owned(),
            reason,
        })
    };
    let entry = match zip.by_index_with_options(index, read_options()) {
        Ok(entry) => entry,
        Err(e) => return unreadable(e.to_string()),
    };
    if entry.is_symlink() {
        return unreadable("it is a symbolic link, not a file".into());
    }
    let mut hasher = Sha256::new();
    let mut found_bytes = 0u64;
    let mut limited = entry.take(listed_bytes.saturating_add(1));
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                found_bytes += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return unreadable(e.to_string()),
        }
    }
    if found_bytes != listed_bytes {
        return Some(Problem::SizeMismatch {
            file: name.to_owned(),
            listed_bytes,
            found_bytes,
        });
    }
    let found_sha256 = crate::hex(&hasher.finalize());
    (found_sha256 != listed_sha256).then(|| Problem::HashMismatch {
        file: name.to_owned(),
        listed_sha256: listed_sha256.to_owned(),
        found_sha256,
    })
}

/// CRCs are left to the SHA-256 (a damaged entry is named by its hash, not cut short by a
/// CRC error); the local header must agree with the central directory, so no tool reads
/// other bytes under a name than this one.
fn read_options() -> ZipReadOptions<'static> {
    ZipReadOptions::new()
        .ignore_crc32(true)
        .enforce_header_consistency(true)
}

fn read_small<R: Read + std::io::Seek>(
    zip: &mut ZipArchive<R>,
    index: usize,
    max_bytes: u64,
) -> Result<Vec<u8>, String> {
    let entry = zip
        .by_index_with_options(index, read_options())
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    entry
        .take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max_bytes {
        return Err(format!("larger than {max_bytes} bytes"));
    }
    Ok(bytes)
}

fn parse_signature(bytes: &[u8]) -> Result<Signature, String> {
    let decoded = BASE64
        .decode(bytes)
        .map_err(|e| format!("not base64: {e}"))?;
    let bytes: [u8; 64] = decoded
        .as_slice()
        .try_into()
        .map_err(|_| format!("{} bytes, an Ed25519 signature has 64", decoded.len()))?;
    Ok(Signature::from_bytes(&bytes))
}

fn parse_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if manifest.format != FORMAT {
        return Err(format!(
            "its format is {:?}, not {FORMAT:?}",
            manifest.format
        ));
    }
    if manifest.version != FORMAT_VERSION {
        return Err(format!(
            "version {}; this verifier reads version {FORMAT_VERSION}",
            manifest.version
        ));
    }
    if manifest.key.algorithm != ALGORITHM {
        return Err(format!(
            "key algorithm {:?}; this verifier knows {ALGORITHM:?}",
            manifest.key.algorithm
        ));
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;
    use crate::ManifestFile;

    /// A manifest (as a hostile or buggy signer could write it) checked against a zip.
    fn check(listed: &[(&str, &[u8], Option<&str>)], in_zip: &[(&str, &[u8])]) -> Vec<Problem> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in in_zip {
            writer
                .start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            writer.write_all(bytes).unwrap();
        }
        let mut zip = ZipArchive::new(writer.finish().unwrap()).unwrap();
        let manifest = Manifest {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            key: crate::ManifestKey {
                algorithm: ALGORITHM.into(),
                id: String::new(),
                public_key: String::new(),
            },
            subject: serde_json::Value::Null,
            files: listed
                .iter()
                .map(|(name, bytes, sha256)| ManifestFile {
                    name: (*name).into(),
                    bytes: bytes.len() as u64,
                    sha256: sha256.map_or_else(|| crate::hex(&Sha256::digest(bytes)), Into::into),
                })
                .collect(),
        };
        let mut problems = Vec::new();
        check_files(&mut zip, &manifest, &mut problems);
        problems
    }

    #[test]
    fn listed_names_that_could_escape_or_clash_are_problems() {
        let problems = check(
            &[
                ("files/a.txt", b"a", None),
                ("files/../../etc/passwd", b"x", None),
                ("manifest.json", b"x", None),
                ("files/A.TXT", b"a", None),
                ("files/b.txt", b"b", Some("B0")),
            ],
            &[("files/a.txt", b"a"), ("files/b.txt", b"b")],
        );
        assert_eq!(
            problems,
            [
                Problem::BadName {
                    file: "files/../../etc/passwd".into(),
                    reason: "has a . or .. component"
                },
                Problem::BadName {
                    file: "manifest.json".into(),
                    reason: "is not under files/"
                },
                Problem::DuplicateListing {
                    file: "files/A.TXT".into(),
                    existing: "files/a.txt".into()
                },
                Problem::ManifestInvalid {
                    reason: "files/b.txt: the sha256 \"B0\" is not 64 lowercase hex digits".into()
                },
            ]
        );
    }

    #[test]
    fn sizes_are_read_no_further_than_listed() {
        let problems = check(
            &[("files/short", b"abc", None), ("files/long", b"abc", None)],
            &[("files/short", b"ab"), ("files/long", &[b'x'; 100_000])],
        );
        assert_eq!(
            problems,
            [
                Problem::SizeMismatch {
                    file: "files/short".into(),
                    listed_bytes: 3,
                    found_bytes: 2
                },
                // One byte past the listed size is where reading stops.
                Problem::SizeMismatch {
                    file: "files/long".into(),
                    listed_bytes: 3,
                    found_bytes: 4
                },
            ]
        );
        assert_eq!(
            problems[1].to_string(),
            "files/long: more than the 3 bytes listed: altered"
        );
        assert_eq!(
            problems[0].to_string(),
            "files/short: 2 bytes, listed as 3: altered"
        );
    }
}
