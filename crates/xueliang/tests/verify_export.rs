//! `xueliang verify-export`: exit codes and output on a good package, an altered one, another
//! signer, and files that are not packages.

use std::path::Path;
use std::process::{Command, Output};

use xl_evidence::{ExportBuilder, HubKey};

/// Bytes found once in the package (stored, not compressed), to alter in place.
const MARKER: &[u8] = b"\"rule\":\"tailgating\"";

#[test]
fn verify_export_exits_0_when_whole_1_naming_problems_2_when_not_a_package() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("xl-verify-export-{:x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir)?;
    let hub = HubKey::load_or_create(&dir.join("hub"))?;
    let other = HubKey::load_or_create(&dir.join("other"))?;
    let clip = dir.join("clip.mp4");
    std::fs::write(&clip, vec![0x5Au8; 3 << 20])?;
    let mut export = ExportBuilder::new(serde_json::json!({"alert": "a-1024"}));
    export.add_file(
        "alert.json",
        [b"{\"id\":\"a-1024\",", MARKER, b"}"].concat(),
    )?;
    export.add_file(
        "snapshots/1.jpg",
        b"\xFF\xD8 not much of a picture \xFF\xD9".as_slice(),
    )?;
    export.add_file("clips/main.mp4", clip.as_path())?;
    let good = dir.join("e-1.zip");
    export.write_to(&hub, "2026-05-04T08:15:30Z".parse()?, &good)?;

    let out = verify_export(&good, None)?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8(out.stdout)?,
        format!("ok: 3 files, signed by key {}\n", hub.key_id())
    );
    let out = verify_export(&good, Some(&hub.public_key_base64()))?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Signed, but not by the key the person trusts.
    let out = verify_export(&good, Some(&other.public_key_base64()))?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout)?;
    assert!(
        stdout.contains(&format!(
            "manifest.sig: signed by key {}, not by the trusted key {}",
            hub.key_id(),
            other.key_id()
        )),
        "{stdout}"
    );

    // One byte of alert.json changed inside the zip.
    let mut bytes = std::fs::read(&good)?;
    let at = bytes
        .windows(MARKER.len())
        .position(|w| w == MARKER)
        .expect("the marker is stored as is");
    bytes[at + 2] = b'R';
    let altered = dir.join("e-1-altered.zip");
    std::fs::write(&altered, &bytes)?;
    let out = verify_export(&altered, None)?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout)?;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("files/alert.json: altered: its SHA-256 is "),
        "{stdout}"
    );
    assert!(lines[1].ends_with("not verified (1 problem)"), "{stdout}");

    // Not a zip, no manifest, a key that is not one: exit 2 with a reason.
    let text_file = dir.join("notes.txt");
    std::fs::write(&text_file, "not a zip\n")?;
    let out = verify_export(&text_file, None)?;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is not a zip file"), "{}", text(&out));
    let out = verify_export(&clip, None)?;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = verify_export(&good, Some("not-a-key"))?;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--key"), "{}", text(&out));
    let out = verify_export(&dir.join("absent.zip"), None)?;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn verify_export(file: &Path, key: Option<&str>) -> anyhow::Result<Output> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xueliang"));
    command.arg("verify-export").arg(file);
    if let Some(key) = key {
        command.args(["--key", key]);
    }
    Ok(command.output()?)
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
