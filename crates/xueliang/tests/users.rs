//! Dashboard users from the command line (`xueliang user add`, password on stdin) and from
//! `[admin]` in the config, logging in through the real listening API.

use std::io::Write;
use std::process::{Command, Stdio};

use xueliang::config::Config;
use xueliang::hub::Hub;

mod common;
use common::temp_dir;

async fn login(base: &str, user: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({ "username": user, "password": password }))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_added_by_the_cli_and_the_config_admin_can_log_in() {
    let data = temp_dir("users");
    let hash = xl_api::hash_password("admin-password-1").unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[detect]\nenabled = false\n\
         [admin]\nusername = \"root\"\npassword_hash = \"{hash}\"\n",
        data.display()
    );
    let config_path = data.join("hub.toml");
    std::fs::write(&config_path, &text).unwrap();

    let add = |args: &[&str], password: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xueliang"))
            .args(["user", "add", "--config"])
            .arg(&config_path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let ok = add(
        &["--role", "property", "--communities", "xingfu", "wang"],
        "property-password",
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let short = add(&["--role", "duty", "li"], "short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10"));
    let no_community = add(&["--role", "property", "zhao"], "property-password");
    assert!(!no_community.status.success());
    assert!(String::from_utf8_lossy(&no_community.stderr).contains("--communities"));
    let reserved = add(&["--role", "admin", "system"], "admin-password-2");
    assert!(!reserved.status.success());
    assert!(String::from_utf8_lossy(&reserved.stderr).contains("reserved name"));

    let hub = Hub::start(Config::parse(&text).unwrap()).await.unwrap();
    let base = format!("http://{}", hub.addr);
    let resp = login(&base, "wang", "property-password").await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["role"], "property");
    assert_eq!(body["user"]["communities"], serde_json::json!(["xingfu"]));
    let resp = login(&base, "root", "admin-password-1").await;
    assert_eq!(resp.status(), 200);
    let token = resp.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The admin sees the audit log, which has both logins; the password is nowhere in it.
    let audit: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/audit"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = audit.to_string();
    assert_eq!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "login")
            .count(),
        2,
        "{text}"
    );
    assert!(!text.contains("property-password") && !text.contains("admin-password-1"));
    // So are the two accounts made outside the API.
    let added: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "user.add")
        .map(|e| {
            (
                e["target"].as_str().unwrap(),
                e["detail"]["via"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(added.contains(&("wang", "xueliang user add")), "{text}");
    assert!(added.contains(&("root", "[admin] in the config")), "{text}");
    assert_eq!(added.len(), 2, "{text}");
    assert_eq!(login(&base, "li", "short").await.status(), 401);
    hub.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}
