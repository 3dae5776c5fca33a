//! Packages written, verified, and altered in every way a case file could be: one byte of any
//! entry, a file removed or added, another signer, a zip that is not a package.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};
use xl_core::ErrorKind;
use xl_evidence::{EvidenceError, ExportBuilder, HubKey, Problem, verify};

/// The evidence files of the test package, in order; the clip comes from a file.
const CLIP: &str = "files/clips/gate-3-main.mp4";
const CLIP_BYTES: usize = 6 << 20;

#[test]
fn a_package_of_several_files_verifies() -> anyhow::Result<()> {
    let dir = TempDir::new("ok")?;
    let key = HubKey::load_or_create(&dir.path.join("hub"))?;
    let package = Package::write(&dir, &key)?;

    for trusted in [None, Some(key.public_key())] {
        let report = verify(&package.path, trusted)?;
        assert!(report.is_ok(), "{:?}", report.problems);
        assert_eq!(report.files(), package.files.len());
        assert_eq!(report.key_id(), Some(key.key_id().as_str()));
        assert_eq!(report.manifest.as_ref(), Some(&package.manifest));
    }

    // The zip holds the files as given, then the manifest and its signature.
    let entries = read_entries(&package.path)?;
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    let mut expected: Vec<&str> = package.files.iter().map(|(n, _)| n.as_str()).collect();
    expected.extend(["manifest.json", "manifest.sig"]);
    assert_eq!(names, expected);
    for ((name, bytes), (listed, given)) in entries.iter().zip(&package.files) {
        assert_eq!(name, listed);
        assert!(bytes == given, "{name} differs from what was added");
    }
    let manifest = &package.manifest;
    assert_eq!(manifest.format, "xueliang-evidence");
    assert_eq!(manifest.version, 1);
    assert_eq!(manifest.key.public_key, key.public_key_base64());
    assert_eq!(manifest.subject["alert"], "a-1024");
    for (file, (name, given)) in manifest.files.iter().zip(&package.files) {
        assert_eq!(&file.name, name);
        assert_eq!(file.bytes, given.len() as u64);
        assert_eq!(file.sha256, hex(&Sha256::digest(given)));
    }
    let manifest_json: serde_json::Value = serde_json::from_slice(&entries[entries.len() - 2].1)?;
    assert_eq!(manifest_json["files"][4]["name"], CLIP);
    assert_eq!(entries[entries.len() - 1].1.len(), 88, "base64 of 64 bytes");

    // Stored, not compressed; private to the hub; no temporary file left beside it.
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&package.path)?)?;
    for i in 0..zip.len() {
        let entry = zip.by_index(i)?;
        assert_eq!(entry.compression(), zip::CompressionMethod::Stored);
    }
    let mode = std::fs::metadata(&package.path)?.permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let left: Vec<_> = std::fs::read_dir(package.path.parent().unwrap())?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    assert_eq!(left, ["e-7.zip"]);
    Ok(())
}

#[test]
fn one_changed_byte_in_any_entry_is_named() -> anyhow::Result<()> {
    let dir = TempDir::new("changed")?;
    let key = HubKey::load_or_create(&dir.path.join("hub"))?;
    let package = Package::write(&dir, &key)?;
    let entries = read_entries(&package.path)?;
    let altered = dir.path.join("altered.zip");
    for (i, (name, bytes)) in entries.iter().enumerate() {
        for at in [0, bytes.len() / 2, bytes.len() - 1] {
            let mut changed = entries.clone();
            changed[i].1[at] ^= 0x01;
            write_entries(&altered, &changed, zip::CompressionMethod::Stored)?;
            for trusted in [None, Some(key.public_key())] {
                let report = verify(&altered, trusted)?;
                let what = format!("{name} byte {at}, trusted key {}", trusted.is_some());
                assert!(!report.is_ok(), "{what}: verified");
                assert!(report.names(name), "{what}: {:?}", report.problems);
                if name.starts_with("files/") {
                    // An evidence file: exactly that file is named, as altered.
                    assert!(
                        matches!(
                            report.problems.as_slice(),
                            [Problem::HashMismatch { file, .. }] if file == name
                        ),
                        "{what}: {:?}",
                        report.problems
                    );
                }
            }
        }
    }
    Ok(())
}

/// The zip itself edited in place (no rewrite: its CRCs no longer match either): a byte in
/// the middle of each entry's data.
#[test]
fn one_flipped_byte_inside_any_entry_of_the_zip_file_is_named() -> anyhow::Result<()> {
    let dir = TempDir::new("flipped")?;
    let key = HubKey::load_or_create(&dir.path.join("hub"))?;
    let package = Package::write(&dir, &key)?;
    let original = std::fs::read(&package.path)?;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&original))?;
    let mut spans = Vec::new();
    for i in 0..zip.len() {
        let entry = zip.by_index(i)?;
        let start = entry.data_start().context("data start")?;
        spans.push((entry.name()?.into_owned(), start, entry.compressed_size()));
    }
    assert_eq!(spans.len(), package.files.len() + 2);
    let altered = dir.path.join("altered.zip");
    for (name, start, len) in spans {
        let mut bytes = original.clone();
        bytes[usize::try_from(start + len / 2)?] ^= 0x20;
        std::fs::write(&altered, &bytes)?;
        let report = verify(&altered, None)?;
        assert!(report.names(&name), "{name}: {:?}", report.problems);
    }
    Ok(())
}

#[test]
fn removed_and_added_files_are_named() -> anyhow::Result<()> {
    let dir = TempDir::new("removed")?;
    let key = HubKey::load_or_create(&dir.path.join("hub"))?;
    let package = Package::write(&dir, &key)?;
    let mut entries = read_entries(&package.path)?;
    entries.retain(|(name, _)| name != "files/snapshots/2.jpg");
    entries.insert(0, ("files/notes.txt".into(), b"added later".to_vec()));
    entries.push(("readme.txt".into(), b"not evidence".to_vec()));
    let altered = dir.path.join("altered.zip");
    write_entries(&altered, &entries, zip::CompressionMethod::Stored)?;
    let report = verify(&altered, Some(key.public_key()))?;
    assert_eq!(
        report.problems,
        [
            Problem::Missing {
                file: "files/snapshots/2.jpg".into()
            },
            Problem::Unlisted {
                file: "files/notes.txt".into()
            },
            Problem::Unlisted {
                file: "readme.txt".into()
            },
        ]
    );
    assert_eq!(
        report.problems[0].to_string(),
        "files/snapshots/2.jpg: listed in the manifest, missing from the zip"
    );

    // Without its signature the package is unsigned, which is named too.
    let mut entries = read_entries(&package.path)?;
    entries.retain(|(name, _)| name != "manifest.sig");
    write_entries(&altered, &entries, zip::CompressionMethod::Stored)?;
    let report = verify(&altered, None)?;
    assert_eq!(report.problems, [Problem::SignatureMissing]);
    assert!(report.names("manifest.sig"));
    Ok(())
}

#[test]
fn a_package_signed_by_another_key_is_reported_against_the_trusted_key() -> anyhow::Result<()> {
    let dir = TempDir::new("other-key")?;
    let hub = HubKey::load_or_create(&dir.path.join("hub"))?;
    let other = HubKey::load_or_create(&dir.path.join("other"))?;
    assert_ne!(hub.key_id(), other.key_id());
    let package = Package::write(&dir, &hub)?;

    let report = verify(&package.path, Some(other.public_key()))?;
    assert_eq!(
        report.problems,
        [Problem::SignedByOtherKey {
            key_id: hub.key_id(),
            trusted_key_id: other.key_id(),
        }]
    );
    assert!(report.names("manifest.sig"));

    // Someone who alters a clip and remakes the whole package with a key of their own makes
    // a package that is consistent in itself: only the trusted key tells.
    let forged = dir.path.join("forged.zip");
    let mut export = ExportBuilder::new(serde_json::json!({"alert": "a-1024"}));
    export.add_file("clips/gate-3-main.mp4", b"another video".as_slice())?;
    export.write_to(&other, jiff::Timestamp::UNIX_EPOCH, &forged)?;
    assert!(verify(&forged, None)?.is_ok());
    let report = verify(&forged, Some(hub.public_key()))?;
    assert_eq!(
        report.problems,
        [Problem::SignedByOtherKey {
            key_id: other.key_id(),
            trusted_key_id: hub.key_id(),
        }]
    );

    // The manifest of one key with the signature of another.
    let mut entries = read_entries(&package.path)?;
    let forged_sig = read_entries(&forged)?.pop().context("signature")?;
    *entries.last_mut().context("signature")? = forged_sig;
    write_entries(&forged, &entries, zip::CompressionMethod::Stored)?;
    let report = verify(&forged, None)?;
    assert_eq!(
        report.problems,
        [Problem::SignatureMismatch {
            key_id: hub.key_id()
        }]
    );
    assert!(report.names("manifest.json") && report.names("manifest.sig"));
    Ok(())
}

/// Unzipped and zipped again (deflated, as `zip -r` does): the same evidence, still verified.
#[test]
fn a_package_zipped_again_with_deflate_still_verifies() -> anyhow::Result<()> {
    let dir = TempDir::new("deflate")?;
    let key = HubKey::load_or_create(&dir.path.join("hub"))?;
    let package = Package::write(&dir, &key)?;
    let entries = read_entries(&package.path)?;
    let again = dir.path.join("again.zip");
    write_entries(&again, &entries, zip::CompressionMethod::Deflated)?;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&again)?)?;
    assert_eq!(
        zip.by_name("manifest.json")?.compression(),
        zip::CompressionMethod::Deflated
    );
    let report = verify(&again, Some(key.public_key()))?;
    assert!(report.is_ok(), "{:?}", report.problems);
    Ok(())
}

#[test]
fn a_file_that_is_not_a_package_is_an_error() -> anyhow::Result<()> {
    let dir = TempDir::new("not-a-package")?;
    let text = dir.path.join("notes.txt");
    std::fs::write(&text, "just text\n")?;
    let e = verify(&text, None).unwrap_err();
    assert!(matches!(e, EvidenceError::NotZip { .. }), "{e}");
    assert!(e.to_string().contains("notes.txt is not a zip file"), "{e}");

    // A package cut short (a download that stopped): its directory is at its end.
    let key = HubKey::load_or_create(&dir.path.join("hub"))?;
    let package = Package::write(&dir, &key)?;
    let bytes = std::fs::read(&package.path)?;
    let cut = dir.path.join("cut.zip");
    std::fs::write(&cut, &bytes[..bytes.len() / 2])?;
    let e = verify(&cut, None).unwrap_err();
    assert!(matches!(e, EvidenceError::NotZip { .. }), "{e}");

    let plain = dir.path.join("plain.zip");
    write_entries(
        &plain,
        &[("photo.jpg".into(), jpeg(1))],
        zip::CompressionMethod::Stored,
    )?;
    let e = verify(&plain, None).unwrap_err();
    assert!(matches!(e, EvidenceError::NoManifest { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);

    let e = verify(&dir.path.join("absent.zip"), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    Ok(())
}

/// An export whose source (a recording segment) was deleted before it was written fails
/// naming the file, and leaves nothing behind.
#[test]
fn an_export_of_a_deleted_file_fails_clearly_and_leaves_nothing() -> anyhow::Result<()> {
    let dir = TempDir::new("deleted")?;
    let key = HubKey::load_or_create(&dir.path.join("hub"))?;
    let out_dir = dir.path.join("exports");
    std::fs::create_dir_all(&out_dir)?;
    let gone = dir
        .path
        .join("recordings/cam-1/main/2026-05-04/1777882530000.mp4");
    let mut export = ExportBuilder::new(serde_json::json!({"camera": "cam-1"}));
    export.add_file("alert.json", b"{}".as_slice())?;
    export.add_file("clips/cam-1.mp4", gone.as_path())?;
    let e = export
        .write_to(&key, jiff::Timestamp::UNIX_EPOCH, &out_dir.join("e-1.zip"))
        .unwrap_err();
    assert!(matches!(e, EvidenceError::Source { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let message = e.to_string();
    assert!(message.contains("clips/cam-1.mp4"), "{message}");
    assert!(message.contains(&gone.display().to_string()), "{message}");
    assert_eq!(std::fs::read_dir(&out_dir)?.count(), 0);
    Ok(())
}

#[test]
fn names_that_could_escape_or_clash_are_refused_when_added() -> anyhow::Result<()> {
    let mut export = ExportBuilder::new(serde_json::Value::Null);
    export.add_file("alert.json", b"{}".as_slice())?;
    export.add_file("clips/main.mp4", b"".as_slice())?;
    for bad in ["../alert.json", "/etc/passwd", "clips/../../x", "a\\b", ""] {
        let e = export.add_file(bad, b"x".as_slice()).unwrap_err();
        assert!(matches!(e, EvidenceError::BadName { .. }), "{bad:?}: {e}");
    }
    for clash in ["alert.json", "Alert.JSON", "clips", "alert.json/x"] {
        let e = export.add_file(clash, b"x".as_slice()).unwrap_err();
        assert!(
            matches!(e, EvidenceError::DuplicateName { .. }),
            "{clash:?}: {e}"
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
    Ok(())
}

/// The package the tests alter, and what went into it.
struct Package {
    path: PathBuf,
    manifest: xl_evidence::Manifest,
    /// (name in the zip, bytes), in order.
    files: Vec<(String, Vec<u8>)>,
}

impl Package {
    fn write(dir: &TempDir, key: &HubKey) -> anyhow::Result<Package> {
        let clip = pseudo_random(CLIP_BYTES);
        let clip_path = dir.path.join("clip.mp4");
        std::fs::write(&clip_path, &clip)?;
        let files = vec![
            (
                "files/alert.json".to_owned(),
                br#"{"id":"a-1024","rule":"tailgating","state":"open"}"#.to_vec(),
            ),
            (
                "files/gate_events.json".to_owned(),
                br#"[{"gate":"g-3","kind":"door_opened"}]"#.to_vec(),
            ),
            ("files/snapshots/1.jpg".to_owned(), jpeg(1)),
            ("files/snapshots/2.jpg".to_owned(), jpeg(2)),
            (CLIP.to_owned(), clip),
        ];
        let mut export = ExportBuilder::new(serde_json::json!({
            "alert": "a-1024",
            "exported_by": "wang.police",
        }));
        for (name, bytes) in &files[..4] {
            export.add_file(name.trim_start_matches("files/"), bytes.clone())?;
        }
        export.add_file(CLIP.trim_start_matches("files/"), clip_path)?;
        let out_dir = dir.path.join("exports");
        std::fs::create_dir_all(&out_dir)?;
        let path = out_dir.join("e-7.zip");
        let created_at: jiff::Timestamp = "2026-05-04T08:15:30Z".parse()?;
        let manifest = export.write_to(key, created_at, &path)?;
        Ok(Package {
            path,
            manifest,
            files,
        })
    }
}

/// Every entry of a zip, in order, read whole.
fn read_entries(path: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path)?)?;
    let mut entries = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i)?;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        let name = entry.name()?.into_owned();
        entries.push((name, bytes));
    }
    Ok(entries)
}

/// A zip of `entries`, in order (what someone editing a package with a zip tool makes).
fn write_entries(
    path: &Path,
    entries: &[(String, Vec<u8>)],
    method: zip::CompressionMethod,
) -> anyhow::Result<()> {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path)?);
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in entries {
        zip.start_file(name, options)?;
        zip.write_all(bytes)?;
    }
    zip.finish()?;
    Ok(())
}

/// Bytes that look like a JPEG (start and end markers) and differ by `seed`.
fn jpeg(seed: u8) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..4000u32).map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed)));
    bytes.extend([0xFF, 0xD9]);
    bytes
}

/// `len` bytes of xorshift: incompressible, like video.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A scratch directory, removed when the test passes (kept for a look when it fails).
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(what: &str) -> anyhow::Result<TempDir> {
        let path = std::env::temp_dir().join(format!(
            "xl-evidence-{what}-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
