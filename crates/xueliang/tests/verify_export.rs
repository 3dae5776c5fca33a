//! `xueliang verify-export`: exit codes and output on a good package, an altered one, another
//! signer, and files that are not packages; a district's keys (`--key` several times, `--keys`
//! with the file `GET /api/v1/evidence/keys` answers, taken from two real hubs on one store).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::json;
use xl_evidence::{ExportBuilder, HubKey};

mod common;
use common::{HubProcess, TestPg, free_port, temp_dir};

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

#[test]
fn a_package_verifies_against_several_keys_and_a_keys_file() -> anyhow::Result<()> {
    let dir = temp_dir("verify-export-keys");
    let [a, b, c] = ["a", "b", "c"].map(|n| HubKey::load_or_create(&dir.join(n)).unwrap());
    let (a_b, a_c) = (dir.join("a-b.json"), dir.join("a-c.json"));
    std::fs::write(
        &a_b,
        json!([key_entry(&a, "node-a"), key_entry(&b, "node-b")]).to_string(),
    )?;
    std::fs::write(
        &a_c,
        json!([key_entry(&a, "node-a"), key_entry(&c, "node-c")]).to_string(),
    )?;
    // Made on node b.
    let made = package(&dir, &b, "e-b")?;
    let path = |p: &Path| p.display().to_string();

    let ok = format!("ok: 1 files, signed by key {}\n", b.key_id());
    let (ka, kb, kc) = (
        a.public_key_base64(),
        b.public_key_base64(),
        c.public_key_base64(),
    );
    let out = verify_export_with(&made, &["--key", &ka, "--key", &kb])?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(stdout(&out), ok);
    // The file names the node.
    let out = verify_export_with(&made, &["--keys", &path(&a_b)])?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        stdout(&out),
        format!("ok: 1 files, signed by key {} (node node-b)\n", b.key_id())
    );
    // --key and --keys together; one key as `GET /api/v1/evidence/key` answers.
    let only_a = dir.join("a.json");
    std::fs::write(&only_a, json!([key_entry(&a, "node-a")]).to_string())?;
    let out = verify_export_with(&made, &["--keys", &path(&only_a), "--key", &kb])?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let one_b = dir.join("b.json");
    let mut entry = key_entry(&b, "");
    for field in ["node", "since"] {
        entry.as_object_mut().unwrap().remove(field);
    }
    std::fs::write(&one_b, entry.to_string())?;
    let out = verify_export_with(&made, &["--keys", &path(&one_b)])?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(stdout(&out), ok);

    // None of the trusted keys signed it.
    let not_trusted = format!(
        "manifest.sig: signed by key {}, not by any of the 2 trusted keys ({}, {})",
        b.key_id(),
        a.key_id(),
        c.key_id()
    );
    for args in [
        vec!["--key", ka.as_str(), "--key", kc.as_str()],
        vec!["--keys", &path(&a_c)],
    ] {
        let out = verify_export_with(&made, &args)?;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), 2, "{args:?}: {}", text(&out));
        assert_eq!(lines[0], not_trusted);
        assert!(lines[1].ends_with("not verified (1 problem)"), "{lines:?}");
    }
    // One key, the same key twice: the one-key check.
    let out = verify_export_with(&made, &["--keys", &path(&only_a), "--key", &ka])?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!(
            "signed by key {}, not by the trusted key {}",
            b.key_id(),
            a.key_id()
        )),
        "{}",
        text(&out)
    );
    // Any key of the district, altered evidence is still altered.
    let mut bytes = std::fs::read(&made)?;
    let at = bytes
        .windows(9)
        .position(|w| w == b"gate east")
        .expect("alert.json is stored as is");
    bytes[at] = b'G';
    let altered = dir.join("e-b-altered.zip");
    std::fs::write(&altered, &bytes)?;
    let out = verify_export_with(&altered, &["--keys", &path(&a_b)])?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).starts_with("files/alert.json: altered"),
        "{}",
        text(&out)
    );

    // Key files that cannot be trusted: exit 2 naming --keys and what is wrong.
    let mut forged = key_entry(&b, "node-b");
    forged["fingerprint"] = json!(a.key_id());
    let mut rsa = key_entry(&b, "node-b");
    rsa["algorithm"] = json!("rsa");
    let bad = [
        (
            "not json",
            "not the JSON of GET /api/v1/evidence/keys".to_owned(),
        ),
        ("[]", "lists no key".to_owned()),
        (
            &json!([key_entry(&a, "node-a"), forged]).to_string(),
            format!(
                "key 2: fingerprint \"{}\" is not its public key's",
                a.key_id()
            ),
        ),
        (
            &json!([rsa]).to_string(),
            "key 1: algorithm \"rsa\"".to_owned(),
        ),
        (
            &json!([{"public_key": "not-a-key"}]).to_string(),
            "key 1: ".to_owned(),
        ),
    ];
    for (content, says) in bad {
        let file = dir.join("bad.json");
        std::fs::write(&file, content)?;
        let out = verify_export_with(&made, &["--keys", &path(&file)])?;
        assert_eq!(out.status.code(), Some(2), "{content}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--keys") && err.contains(&says),
            "{content}: {err}"
        );
        assert!(stdout(&out).is_empty(), "{content}: {}", text(&out));
    }
    let out = verify_export_with(&made, &["--keys", &path(&dir.join("absent.json"))])?;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Two hubs on one PostgreSQL store (as a district's nodes share one), each with its own key:
/// either hub's `GET /api/v1/evidence/keys` lists both keys, and with that answer saved as a
/// file a package signed with either hub's key verifies, while one hub's key alone
/// (`/evidence/key`) does not verify the other hub's package.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_of_two_hubs_on_one_store_verify_against_the_keys_either_serves()
-> anyhow::Result<()> {
    let pg = TestPg::create().await;
    let hash = xl_api::hash_password("admin-password-1").expect("a password hash");
    let http = reqwest::Client::new();
    let mut hubs = Vec::new();
    for name in ["a", "b"] {
        let data = temp_dir(&format!("verify-export-hub-{name}"));
        let port = free_port();
        let config = data.join("hub.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n\
                 [store]\ndatabase_url = \"{}\"\n[detect]\nenabled = false\n\
                 [admin]\nusername = \"root\"\npassword_hash = \"{hash}\"\n",
                data.display(),
                pg.url
            ),
        )?;
        // One after the other: the second finds the store migrated and the admin made.
        let mut hub = HubProcess::spawn(&config, data.join("hub.log"));
        let base = format!("http://127.0.0.1:{port}");
        let t0 = Instant::now();
        while !http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            hub.assert_running();
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "hub {name} not ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        hubs.push((hub, base, data));
    }
    let login: serde_json::Value = http
        .post(format!("{}/api/v1/auth/login", hubs[0].1))
        .json(&json!({"username": "root", "password": "admin-password-1"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = login["token"].as_str().expect("a token").to_owned();
    let get = async |base: &str, path: &str| -> anyhow::Result<serde_json::Value> {
        Ok(http
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    };

    // The keys the hubs sign with, as they loaded them from their data directories.
    let keys: Vec<HubKey> = hubs
        .iter()
        .map(|(_, _, data)| HubKey::load_or_create(data))
        .collect::<Result<_, _>>()?;
    assert_ne!(keys[0].key_id(), keys[1].key_id());
    let listed = get(&hubs[1].1, "/api/v1/evidence/keys").await?;
    assert_eq!(get(&hubs[0].1, "/api/v1/evidence/keys").await?, listed);
    let listed_keys: Vec<(&str, &str, &str)> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|k| {
            (
                k["public_key"].as_str().unwrap_or_default(),
                k["fingerprint"].as_str().unwrap_or_default(),
                k["node"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    let want: Vec<(String, String)> = keys
        .iter()
        .map(|k| (k.public_key_base64(), k.key_id()))
        .collect();
    assert_eq!(
        listed_keys,
        want.iter()
            .map(|(p, f)| (p.as_str(), f.as_str(), ""))
            .collect::<Vec<_>>(),
        "{listed}"
    );
    assert!(listed[0]["since"].is_string(), "{listed}");
    let own_a = get(&hubs[0].1, "/api/v1/evidence/key").await?;
    assert_eq!(own_a["public_key"], keys[0].public_key_base64());

    let dir = temp_dir("verify-export-district");
    let saved = dir.join("keys.json");
    std::fs::write(&saved, listed.to_string())?;
    let saved = saved.display().to_string();
    for (i, key) in keys.iter().enumerate() {
        let made = package(&dir, key, &format!("e-{i}"))?;
        let out = verify_export_with(&made, &["--keys", &saved])?;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_eq!(
            stdout(&out),
            format!("ok: 1 files, signed by key {}\n", key.key_id())
        );
    }
    // Hub a's key alone, what a single hub's officer checks with: hub b's package fails.
    let made_b = dir.join("e-1.zip");
    let a_alone = own_a["public_key"].as_str().unwrap_or_default();
    let out = verify_export_with(&made_b, &["--key", a_alone])?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    for (hub, _, data) in &mut hubs {
        hub.terminate();
        let _ = std::fs::remove_dir_all(data);
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A key id the store holds with another public key (ids are 64 bits of the key's SHA-256):
/// the hub does not start, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_whose_key_id_is_registered_with_another_key_does_not_start() -> anyhow::Result<()> {
    let data = temp_dir("verify-export-clash");
    let key = HubKey::load_or_create(&data)?;
    let other = HubKey::load_or_create(&data.join("other"))?;
    let url = format!("sqlite://{}/clash.db", data.display());
    let store = xl_store::Store::open(&url).await?;
    store
        .register_evidence_key(
            &key.key_id(),
            &other.public_key_base64(),
            "node-x",
            jiff::Timestamp::now(),
        )
        .await?;
    store.close().await;
    let config = data.join("hub.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\ndata_dir = \"{}\"\n\
             [store]\ndatabase_url = \"{url}\"\n[detect]\nenabled = false\n",
            free_port(),
            data.display()
        ),
    )?;
    let mut hub = HubProcess::spawn(&config, data.join("hub.log"));
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = hub.child.try_wait()? {
            break status;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the hub started: {}",
            hub.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success());
    let log = std::fs::read_to_string(data.join("hub.log"))?;
    for says in [
        "cannot register this node's evidence signing key",
        &key.key_id(),
        "already registered with another public key",
    ] {
        assert!(log.contains(says), "{says:?} in {log}");
    }
    std::fs::remove_dir_all(&data)?;
    Ok(())
}

fn verify_export(file: &Path, key: Option<&str>) -> anyhow::Result<Output> {
    match key {
        Some(key) => verify_export_with(file, &["--key", key]),
        None => verify_export_with(file, &[]),
    }
}

fn verify_export_with(file: &Path, args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_xueliang"))
        .arg("verify-export")
        .arg(file)
        .args(args)
        .output()?)
}

/// A package of one file, signed with `key`.
fn package(dir: &Path, key: &HubKey, name: &str) -> anyhow::Result<PathBuf> {
    let mut export = ExportBuilder::new(json!({"alert": name}));
    export.add_file(
        "alert.json",
        format!("{{\"id\":\"{name}\",\"at\":\"gate east\"}}").into_bytes(),
    )?;
    let path = dir.join(format!("{name}.zip"));
    export.write_to(key, "2026-05-04T08:15:30Z".parse()?, &path)?;
    Ok(path)
}

/// An entry of `GET /api/v1/evidence/keys`.
fn key_entry(key: &HubKey, node: &str) -> serde_json::Value {
    json!({
        "algorithm": "ed25519",
        "public_key": key.public_key_base64(),
        "fingerprint": key.key_id(),
        "node": node,
        "since": "2026-05-01T00:00:00Z",
    })
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
