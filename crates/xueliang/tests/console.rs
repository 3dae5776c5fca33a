//! The duty console in a real browser (Debian's chromium, headless, driven by playwright-core
//! from `tests/browser/console.test.mjs`) against the real hub: log in as duty, a door-forced
//! payload is published to the real Mosquitto, the alert appears without a reload, it is opened
//! (snapshot loaded) and acknowledged with a note. Screenshots go to
//! `target/browser-artifacts/`. Needs `scripts/setup` (it runs `scripts/setup-browser`).

use std::path::Path;
use std::process::Command;

use xl_core::{AlertKind, AlertState, CameraId, Role};
use xl_store::AlertFilter;
use xueliang::config::Config;
use xueliang::hub::Hub;

mod common;
use common::{broker, forced_open, temp_dir, vtest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duty_sees_a_forced_door_live_in_the_console_and_acknowledges_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let browser = root.join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").is_dir(),
        "{} has no node_modules: run scripts/setup (scripts/setup-browser)",
        browser.display()
    );
    let data = temp_dir("console");
    let prefix = format!("xl-console-{:x}", rand::random::<u32>());
    let community = format!("c{:x}", rand::random::<u32>());
    let (host, port) = broker();
    let text = format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        data_dir = "{data}"
        [detect]
        enabled = false
        [mqtt]
        url = "mqtt://{host}:{port}"
        client_id = "{prefix}-hub"
        [[mqtt.subscriptions]]
        filter = "{prefix}/+/event"
        firmware = "hikvision-isapi"
        gate_from = {{ topic_segment = 1 }}
        [mqtt_out]
        url = "mqtt://{host}:{port}"
        client_id = "{prefix}-out"
        topic_prefix = "{prefix}-out"
        [[cameras]]
        id = "lobby-cam"
        name = "大堂门口"
        community = "{community}"
        file = "{video}"
        [[gates]]
        id = "lobby"
        community = "{community}"
        firmware = "hikvision-isapi"
        camera = "lobby-cam"
        "#,
        data = data.display(),
        video = vtest(),
    );
    let hub = Hub::start(Config::parse(&text).unwrap()).await.unwrap();
    let password = "duty-password-2026";
    xueliang::users::add(&hub.store, "duty", password, Role::Duty, vec![], "test")
        .await
        .unwrap();
    // The gate camera's frame ring must have frames before the door is forced.
    let cam = CameraId::new("lobby-cam").unwrap();
    let t0 = std::time::Instant::now();
    while hub
        .cameras
        .get(&cam)
        .map(|c| {
            c.1.frames_decoded
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .unwrap_or(0)
        < 10
    {
        assert!(t0.elapsed().as_secs() < 20, "camera delivers no frames");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let payload = data.join("door-forced.json");
    std::fs::write(&payload, forced_open(4242)).unwrap();
    let publish = format!(
        "mosquitto_pub -h {host} -p {port} -q 1 -t {prefix}/lobby/event -f {}",
        payload.display()
    );
    let artifacts = root.join("target/browser-artifacts");
    let url = format!("http://{}", hub.addr);
    let test = root.join("tests/browser/console.test.mjs");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(test)
            .args(["--url", &url, "--user", "duty", "--publish-cmd", &publish])
            .arg("--artifacts")
            .arg(&artifacts)
            .env("XL_CONSOLE_PASSWORD", password)
            .output()
            .expect("run node (scripts/setup installs it)")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "browser test failed: {stderr}");

    // What the browser did is in the store: the alert acknowledged by duty, with the note.
    let alerts = hub
        .store
        .list_alerts(&AlertFilter {
            kinds: Some(vec![AlertKind::GateForcedOpen]),
            limit: 10,
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].state, AlertState::Acknowledged);
    let detail = hub.store.alert(&alerts[0].id).await.unwrap().unwrap();
    let ack = detail
        .history
        .iter()
        .find(|h| h.action == xl_core::alert::AlertAction::Acknowledged)
        .expect("an acknowledge step");
    assert_eq!(ack.actor, "duty");
    assert!(
        ack.note.as_deref().is_some_and(|n| !n.is_empty()),
        "{ack:?}"
    );
    hub.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}
