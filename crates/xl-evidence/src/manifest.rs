//! The manifest: what a package holds, signed.

use serde::{Deserialize, Serialize};

/// The manifest's `format`.
pub const FORMAT: &str = "xueliang-evidence";
/// The manifest's `version`: the layout this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's name in the zip.
pub const MANIFEST_NAME: &str = "manifest.json";
/// The signature's name in the zip: the standard base64 of the Ed25519 signature of the exact
/// bytes of `manifest.json`, nothing else (no newline).
pub const SIGNATURE_NAME: &str = "manifest.sig";
/// The folder of the evidence files in the zip.
pub const FILES_DIR: &str = "files/";
/// The only signature algorithm.
pub const ALGORITHM: &str = "ed25519";

/// `manifest.json`. Written pretty-printed; the signature covers its exact bytes.
///
/// ```json
/// {
///   "format": "xueliang-evidence",
///   "version": 1,
///   "created_at": "2026-05-04T08:15:30Z",
///   "key": {
///     "algorithm": "ed25519",
///     "id": "1732f97c7f1aa7d5",
///     "public_key": "MuFm7MMSMBFk4znmlEYO3AGcmeuS2tfCKhfwaUZHdFw="
///   },
///   "subject": {
///     "alert": "a-1024",
///     "exported_by": "wang.police"
///   },
///   "files": [
///     {
///       "name": "files/alert.json",
///       "bytes": 15,
///       "sha256": "4a3f923a23d309ab0a02099cdc24a7e178c5d6754ea03b892aea0a81d1d73999"
///     },
///     {
///       "name": "files/clips/gate-3-main.mp4",
///       "bytes": 1048576,
///       "sha256": "ee78cd29d3a534713b36e6ff6fa3668c8a8f851a542d5eb2401c25ca4e057d02"
///     }
///   ]
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// When the package was made (RFC 3339, UTC).
    pub created_at: jiff::Timestamp,
    /// The key that signed it.
    pub key: ManifestKey,
    /// What the package is about, as the caller gave it: an alert id, or a camera and a time
    /// range; who exported it.
    pub subject: serde_json::Value,
    /// Every evidence file, in the order they were added.
    pub files: Vec<ManifestFile>,
}

/// The signing key named in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestKey {
    /// [`ALGORITHM`].
    pub algorithm: String,
    /// The first 16 hex digits of the SHA-256 of the public key.
    pub id: String,
    /// The public key, standard base64.
    pub public_key: String,
}

/// One evidence file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Its name in the zip, under [`FILES_DIR`].
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// The SHA-256 of its bytes, 64 lowercase hex digits.
    pub sha256: String,
}

/// Why `name` (a name under `files/`, without that prefix) cannot name an evidence file: it
/// could leave the package's folder when extracted, or could not be extracted on every
/// system a case file is opened on.
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.len() > 255 {
        return Err("is longer than 255 bytes");
    }
    if name.starts_with('/') {
        return Err("is absolute");
    }
    if name.contains('\\') {
        return Err("contains a backslash (use / between folders)");
    }
    if name.chars().any(char::is_control) {
        return Err("contains a control character");
    }
    if name.contains(['<', '>', ':', '"', '|', '?', '*']) {
        return Err("contains one of < > : \" | ? * (not allowed in Windows file names)");
    }
    for part in name.split('/') {
        match part {
            "" => return Err("has an empty folder or file name (// or a trailing /)"),
            "." | ".." => return Err("has a . or .. component"),
            _ => {}
        }
    }
    Ok(())
}

/// The name of `names` that `name` would land on when extracted: the same name but for
/// letter case, or a file where the other needs a folder.
pub(crate) fn clash<'a>(names: impl IntoIterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    let lower = name.to_lowercase();
    names.into_iter().find(|existing| {
        let other = existing.to_lowercase();
        other == lower
            || other
                .strip_prefix(&lower)
                .is_some_and(|r| r.starts_with('/'))
            || lower
                .strip_prefix(&other)
                .is_some_and(|r| r.starts_with('/'))
    })
}

/// Whether `text` is a SHA-256 as a manifest writes it.
pub(crate) fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_or_not_extract_are_refused() {
        for (name, why) in [
            ("", "is empty"),
            ("../etc/passwd", ". or .."),
            ("clips/../../x", ". or .."),
            ("./a", ". or .."),
            ("/etc/passwd", "absolute"),
            ("a//b", "empty"),
            ("clips/", "empty"),
            ("a\\b", "backslash"),
            ("C:x.mp4", "Windows"),
            ("clip?.mp4", "Windows"),
            ("a\nb", "control"),
            (&"x".repeat(256), "255"),
        ] {
            let reason = check_name(name).unwrap_err();
            assert!(reason.contains(why), "{name:?}: {reason}");
        }
        for name in [
            "alert.json",
            "clips/gate-3 main 2026-05-04T08.15.30Z.mp4",
            "快照/1.jpg",
            "a.b..c",
        ] {
            assert_eq!(check_name(name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn names_clash_by_case_and_by_file_against_folder() {
        let names = ["clips/main.mp4", "alert.json", "snap"];
        assert_eq!(clash(names, "Alert.JSON"), Some("alert.json"));
        assert_eq!(clash(names, "clips"), Some("clips/main.mp4"));
        assert_eq!(clash(names, "snap/1.jpg"), Some("snap"));
        assert_eq!(clash(names, "clips/sub.mp4"), None);
        assert_eq!(clash(names, "alert.json.bak"), None);
        assert_eq!(clash(names, "snapshot.jpg"), None);
    }

    #[test]
    fn sha256_is_64_lowercase_hex_digits() {
        assert!(is_sha256_hex(&"0a".repeat(32)));
        assert!(!is_sha256_hex(&"0A".repeat(32)));
        assert!(!is_sha256_hex(&"0a".repeat(31)));
        assert!(!is_sha256_hex(&"0g".repeat(32)));
    }
}
