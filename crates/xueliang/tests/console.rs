//! The duty console in a real browser (Debian's chromium, headless, driven by playwright-core
//! from `tests/browser/console.test.mjs`) against the real hub: log in as duty, a door-forced
//! payload is published to the real Mosquitto, the alert appears without a reload, it is opened
//! (snapshot loaded) and acknowledged with a note. Screenshots go to
//! `target/browser-artifacts/`. Needs `scripts/setup` (it runs `scripts/setup-browser`).
//!
//! Also the admin pages (`tests/browser/admin.test.mjs`): a camera added, tested, given a zone
//! with a display name and raising person.intrusion (shown by that name) while the hub runs;
//! and the console's strings in both languages.
//! And alerts as the console words them (`tests/browser/alert-text.test.mjs`): titles in the
//! chosen language with display names, repeats folded, 24-hour schedule times.
//! And the live camera wall (`tests/browser/wall.test.mjs`): real RTSP cameras playing in the
//! browser through the hub's WebSocket, H.265 through its H.264 fallback, scope enforced.
//! And playback (`tests/browser/playback-e2e.test.mjs`): a recording camera's alert clip and
//! timeline played, the frame shown compared with the recording, a police export verified.

use std::path::{Path, PathBuf};
use std::process::Command;

use xl_core::{AlertKind, AlertState, CameraId, CommunityId, GateId, GridId, Role, StationId};
use xl_store::AlertFilter;
use xueliang::config::Config;
use xueliang::hub::Hub;

mod common;
use common::{broker, forced_open, temp_dir, vtest};

/// The repository root, once the browser test's packages are known to be installed.
fn browser_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .is_dir(),
        "tests/browser has no node_modules: run scripts/setup (scripts/setup-browser)"
    );
    root
}

/// Runs `tests/browser/{script}` against the hub at `url` with `args`, logged in as `user`
/// with `password`, screenshots under `target/browser-artifacts/{artifacts}`. Prints its
/// output; returns whether it passed and its stderr.
async fn run_browser(
    root: &Path,
    script: &str,
    url: &str,
    user: &str,
    password: &str,
    args: &[&str],
    artifacts: &str,
) -> (bool, String) {
    let mut command = Command::new("node");
    command
        .arg(root.join("tests/browser").join(script))
        .args(["--url", url, "--user", user])
        .args(args)
        .arg("--artifacts")
        .arg(root.join("target/browser-artifacts").join(artifacts))
        .env("XL_CONSOLE_PASSWORD", password);
    let out = tokio::task::spawn_blocking(move || {
        command
            .output()
            .expect("run node (scripts/setup installs it)")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
    (out.status.success(), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duty_sees_a_forced_door_live_in_the_console_and_acknowledges_it() {
    let root = browser_root();
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
    let url = format!("http://{}", hub.addr);
    let (passed, stderr) = run_browser(
        &root,
        "console.test.mjs",
        &url,
        "duty",
        password,
        &["--publish-cmd", &publish],
        "",
    )
    .await;
    assert!(passed, "browser test failed: {stderr}");

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

/// The admin pages in the browser (`tests/browser/admin.test.mjs`) against the real hub and
/// the real RTSP test server: an admin adds a camera whose sub stream shows people walking,
/// tests the connection (codec, resolution and a preview from the stream), saves it, draws a
/// zone over most of its frame with an all-week schedule and saves that; then, with no restart,
/// the camera comes online on the camera wall and a person.intrusion alert of it appears in
/// the live list. The store holds what the browser made. Needs `scripts/setup` (the browser,
/// the test clips, the detection models).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_adds_a_camera_and_a_zone_and_it_raises_an_intrusion_live() {
    use xl_core::topology::StreamSource;
    use xl_core::zone::{Day, ScheduleWindow};

    let root = browser_root();
    // vtest.avi's people walking, as H.264 from a real RTSP server.
    let server = tokio::task::spawn_blocking(|| {
        let clip = xl_testkit::test_clip(xl_testkit::H264_720P)?;
        xl_testkit::RtspServer::start(&[("walk", clip)])
    })
    .await
    .unwrap()
    .expect("the RTSP test server (scripts/setup installs gst-rtsp-server and the clips)");
    let sub_url = server.url("walk");

    let data = temp_dir("console-admin");
    let community = format!("c{:x}", rand::random::<u32>());
    let text = format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        data_dir = "{data}"
        [detect]
        workers = 1
        rate = 4
        [[stations]]
        id = "chengguan"
        name = "城关派出所"
        [[communities]]
        id = "{community}"
        name = "幸福小区"
        station = "chengguan"
        [[cameras]]
        id = "lobby-cam"
        name = "大堂门口"
        community = "{community}"
        file = "{video}"
        [cameras.detect]
        enabled = false
        "#,
        data = data.display(),
        video = vtest(),
    );
    let hub = Hub::start(Config::parse(&text).unwrap()).await.unwrap();
    let password = "admin-password-2026";
    xueliang::users::add(&hub.store, "admin", password, Role::Admin, vec![], "test")
        .await
        .unwrap();

    let camera = "walk-cam";
    let url = format!("http://{}", hub.addr);
    let args = [
        "--camera-id",
        camera,
        "--camera-name",
        "东门步道",
        "--community",
        community.as_str(),
        "--sub-url",
        sub_url.as_str(),
        "--zone-id",
        "yard",
        "--zone-name",
        "北门广场",
        "--config-camera",
        "lobby-cam",
    ];
    let (passed, stderr) = run_browser(
        &root,
        "admin.test.mjs",
        &url,
        "admin",
        password,
        &args,
        "admin",
    )
    .await;
    assert!(
        passed,
        "browser test failed: {stderr}\nRTSP server log:\n{}",
        server.log_tail()
    );

    // What the browser made is in the store: the camera, its sub stream and its zone.
    let stored = hub.store.topology().await.unwrap();
    let cam = stored
        .topology
        .cameras
        .get(&CameraId::new(camera).unwrap())
        .expect("the camera the console added");
    assert_eq!(cam.name, "东门步道");
    assert_eq!(cam.community.as_str(), community);
    assert_eq!(cam.sub, Some(StreamSource::Rtsp { url: sub_url }));
    assert_eq!(cam.zones.len(), 1, "{:?}", cam.zones);
    let zone = &cam.zones[0];
    assert_eq!(zone.id.as_str(), "yard");
    assert_eq!(zone.name.as_deref(), Some("北门广场"), "trimmed");
    assert_eq!(zone.polygon.len(), 4);
    assert!(xl_core::zone::polygon_area(&zone.polygon) > 0.8, "{zone:?}");
    let midnight = jiff::civil::time(0, 0, 0, 0);
    assert_eq!(
        zone.schedule,
        vec![ScheduleWindow {
            days: vec![
                Day::Mon,
                Day::Tue,
                Day::Wed,
                Day::Thu,
                Day::Fri,
                Day::Sat,
                Day::Sun
            ],
            start: midnight,
            end: midnight,
        }]
    );
    // And the alert the browser saw is the camera's, in that zone.
    let alerts = hub
        .store
        .list_alerts(&AlertFilter {
            kinds: Some(vec![AlertKind::PersonIntrusion]),
            limit: 10,
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    assert!(
        alerts
            .iter()
            .any(|a| a.camera.as_ref().is_some_and(|c| c.as_str() == camera)
                && a.zone.as_deref() == Some("yard")),
        "{alerts:#?}"
    );
    hub.stop().await;
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

/// The other admin pages in the browser (`tests/browser/admin-pages.test.mjs`) against the
/// real hub and its real API: a station, a community of it, a grid, a camera (write-only
/// password), a gate watched by it (write-only push secret), a police user limited to the
/// station and a property user, each made through its form; a rename, disable and enable; the
/// API's refusals (a gate without push settings, a grid still in use, a stale edit, a CSV
/// with a bad row) shown where they belong; a good CSV imported; the cluster page says that
/// this hub runs alone. The store holds the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_manages_the_topology_and_users_in_the_console() {
    let root = browser_root();
    let data = temp_dir("console-pages");
    let text = format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        data_dir = "{data}"
        [detect]
        enabled = false
        [[communities]]
        id = "xingfu"
        name = "幸福小区"
        "#,
        data = data.display(),
    );
    let hub = Hub::start(Config::parse(&text).unwrap()).await.unwrap();
    let password = "admin-password-2026";
    xueliang::users::add(&hub.store, "admin", password, Role::Admin, vec![], "test")
        .await
        .unwrap();
    let url = format!("http://{}", hub.addr);
    let (passed, stderr) = run_browser(
        &root,
        "admin-pages.test.mjs",
        &url,
        "admin",
        password,
        &["--prefix", "t"],
        "admin-pages",
    )
    .await;
    assert!(passed, "browser test failed: {stderr}");

    // What the forms made is in the store, secrets included (they are write-only, not lost).
    let stored = hub.store.topology_for_runtime().await.unwrap().topology;
    let community = &stored.communities[&CommunityId::new("t-community").unwrap()];
    assert_eq!(community.name, "安乐家园");
    assert_eq!(
        community.station.as_ref().map(|s| s.as_str()),
        Some("t-station")
    );
    assert!(!stored.stations[&StationId::new("t-station").unwrap()].disabled);
    assert_eq!(
        stored.grids[&GridId::new("t-grid").unwrap()]
            .community
            .as_str(),
        "t-community"
    );
    let camera = &stored.cameras[&CameraId::new("t-cam").unwrap()];
    assert_eq!(camera.grid.as_ref().map(|g| g.as_str()), Some("t-grid"));
    assert_eq!(camera.username.as_deref(), Some("viewer"));
    assert_eq!(
        camera.password.as_ref().map(|p| p.expose()),
        Some("camera-secret-1")
    );
    assert!(!camera.detect.enabled);
    assert!(camera.disabled, "disabled by the other admin, then left so");
    let gate = &stored.gates[&GateId::new("t-gate").unwrap()];
    assert_eq!(gate.camera.as_ref().map(|c| c.as_str()), Some("t-cam"));
    assert_eq!(
        gate.push_secret.as_ref().map(|p| p.expose()),
        Some("gate-push-secret-0123456789")
    );
    assert_eq!(gate.offline_after_secs, 120);
    assert!(
        !stored
            .gates
            .contains_key(&GateId::new("t-gate-bad").unwrap())
    );
    for id in ["t-csv-1", "t-csv-2"] {
        assert!(
            stored.cameras.contains_key(&CameraId::new(id).unwrap()),
            "{id}"
        );
    }
    let police = hub.store.user("t-police").await.unwrap().expect("t-police");
    assert_eq!(police.role, Role::Police);
    assert_eq!(police.stations, vec![StationId::new("t-station").unwrap()]);
    let property = hub
        .store
        .user("t-property")
        .await
        .unwrap()
        .expect("t-property");
    assert_eq!(
        property.communities,
        vec![CommunityId::new("t-community").unwrap()]
    );
    hub.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// Alerts read in the duty officer's language (`tests/browser/alert-text.test.mjs`, in a
/// browser with an English locale): the real rules engine makes a person.intrusion alert (its
/// English title names the camera and zone by id) that repeats 23 times, is noted by a person
/// and repeats twice more, and a forced door; they are committed to the hub's store. The
/// console titles them in Chinese, then in English, naming the camera, its zone and the gate by
/// their names; the history shows each run of repeats as one line with its count and time
/// span; the zone's schedule shows 24-hour times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_titles_and_repeats_read_in_the_chosen_language() {
    use jiff::{SignedDuration, Timestamp};
    use xl_core::alert::AlertAction;
    use xl_core::{Alert, AlertId, GateEventKind};
    use xl_rules::{Decision, Engine, GateInput, Input, RulesConfig, ZoneInput, ZoneWhat};
    use xl_store::{Change, Commit};

    let root = browser_root();
    let data = temp_dir("console-text");
    let community = format!("c{:x}", rand::random::<u32>());
    let text = format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        data_dir = "{data}"
        [detect]
        enabled = false
        [[communities]]
        id = "{community}"
        name = "幸福小区"
        [[cameras]]
        id = "square-cam"
        name = "幸福广场东门"
        community = "{community}"
        file = "{video}"
        [[cameras.zones]]
        id = "lawn"
        name = "中心草坪"
        polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
        schedule = [{{ days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start = "22:00", end = "06:00" }}]
        [[gates]]
        id = "north-gate"
        name = "北门门禁"
        community = "{community}"
        firmware = "hikvision-isapi"
        "#,
        data = data.display(),
        video = vtest(),
    );
    let hub = Hub::start(Config::parse(&text).unwrap()).await.unwrap();
    let password = "admin-password-2026";
    xueliang::users::add(&hub.store, "admin", password, Role::Admin, vec![], "test")
        .await
        .unwrap();

    // The alerts as the hub's alert processor would commit them: the engine's decisions, in
    // order, each a change of the alert as the engine sees it.
    let mut engine = Engine::new(&RulesConfig::default()).unwrap();
    let mut ids = |at: Timestamp| AlertId::new(at, rand::random());
    let community = CommunityId::new(community).unwrap();
    let camera = CameraId::new("square-cam").unwrap();
    let t0 = Timestamp::now() - SignedDuration::from_mins(5);
    let at = |secs: i64| t0 + SignedDuration::from_secs(secs);
    let entered = |secs: i64| {
        Input::Zone(ZoneInput {
            event_id: format!("v-{secs}"),
            camera: camera.clone(),
            community: community.clone(),
            zone: "lawn".into(),
            what: ZoneWhat::Entered { track: secs as u64 },
            at: at(secs),
        })
    };
    let mut raised: Vec<Alert> = Vec::new();
    let mut commit = |inputs: Vec<Input>, engine: &mut Engine| {
        let mut changes = Vec::new();
        for input in &inputs {
            for decision in engine.handle(input, &mut ids) {
                changes.push(match decision {
                    Decision::Raise(alert) => {
                        raised.push(alert.clone());
                        Change {
                            at: alert.raised_at,
                            alert,
                            action: AlertAction::Raised,
                            actor: "system".into(),
                            note: None,
                        }
                    }
                    Decision::Repeat {
                        id, last_seen_at, ..
                    } => Change {
                        alert: raised.iter().find(|a| a.id == id).unwrap().clone(),
                        action: AlertAction::Repeated,
                        actor: "system".into(),
                        note: None,
                        at: last_seen_at,
                    },
                    other => panic!("unexpected decision {other:?}"),
                });
            }
        }
        Commit {
            changes,
            ..Commit::default()
        }
    };
    // Raised at t0, repeated every 2 s 23 times.
    let first = commit((0..24).map(|i| entered(i * 2)).collect(), &mut engine);
    assert_eq!(first.changes.len(), 24);
    hub.store.commit(&first).await.unwrap();
    let intrusion = first.changes[0].alert.clone();
    assert_eq!(intrusion.kind, AlertKind::PersonIntrusion);
    assert!(
        intrusion.title.contains("square-cam") && intrusion.title.contains("lawn"),
        "the server's title names ids: {}",
        intrusion.title
    );
    // A person's note, then two more repeats; and a forced door.
    hub.store
        .act(
            &intrusion.id,
            AlertAction::Noted,
            "admin",
            Some("已通知保安到场"),
            at(50),
        )
        .await
        .unwrap();
    engine.acted(&intrusion.id, AlertAction::Noted, at(50));
    let mut inputs = vec![entered(52), entered(54)];
    inputs.push(Input::Gate(GateInput {
        event_id: "g-1".into(),
        gate: GateId::new("north-gate").unwrap(),
        community: community.clone(),
        camera: None,
        kind: GateEventKind::DoorForcedOpen,
        deny_reason: None,
        phase: None,
        door: Some(1),
        at: at(60),
    }));
    let second = commit(inputs, &mut engine);
    assert_eq!(second.changes.len(), 3);
    hub.store.commit(&second).await.unwrap();
    let gate_alert = second.changes[2].alert.clone();
    assert_eq!(gate_alert.kind, AlertKind::GateForcedOpen);
    let stored = hub.store.alert(&intrusion.id).await.unwrap().unwrap();
    assert_eq!(stored.alert.count, 26);

    let url = format!("http://{}", hub.addr);
    let args = [
        "--intrusion",
        intrusion.id.as_str(),
        "--camera-id",
        "square-cam",
        "--camera-name",
        "幸福广场东门",
        "--zone",
        "中心草坪",
        "--server-title",
        intrusion.title.as_str(),
        "--history",
        "raised,23,noted,2",
        "--gate-alert",
        gate_alert.id.as_str(),
        "--gate-name",
        "北门门禁",
        "--schedule",
        "22:00-06:00",
    ];
    let (passed, stderr) = run_browser(
        &root,
        "alert-text.test.mjs",
        &url,
        "admin",
        password,
        &args,
        "alert-text",
    )
    .await;
    assert!(passed, "browser test failed: {stderr}");
    hub.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// Every string of the console is in both languages, and every key its files use exists
/// (`tests/browser/i18n.test.mjs`; node only, no browser).
#[test]
fn console_strings_exist_in_both_languages() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("node")
        .arg(root.join("tests/browser/i18n.test.mjs"))
        .output()
        .expect("run node (scripts/setup installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs one of the console's pure tests (node:test) under node.
fn node_test(file: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("node")
        .arg(root.join("tests/browser").join(file))
        .output()
        .expect("run node (scripts/setup installs it)");
    assert!(
        out.status.success(),
        "{file}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The playback page's pure parts (`tests/browser/playback.test.mjs`, node:test): the day's
/// bounds (also on daylight-saving days), time <-> x on the timeline, which recorded range a
/// click falls in and the clip it asks for, the next clip when one ends, the download range.
#[test]
fn playback_timeline_arithmetic() {
    node_test("playback.test.mjs");
}

/// The cluster page's pure parts (`tests/browser/cluster.test.mjs`, node:test): a district of
/// three nodes turned into rows (leases grouped by node, shares of the cameras and by weight,
/// late heartbeats, task names in both languages, camera names, search and pages).
#[test]
fn cluster_page_rows() {
    node_test("cluster.test.mjs");
}

/// The live camera wall in the browser (`tests/browser/wall.test.mjs`) against the real hub
/// and the real RTSP test server: four H.264 cameras (a 640x360 sub stream, a 1280x720 main
/// stream) of a community's own network play on a 4-tile page; one enlarged plays its main
/// stream; an H.265 camera plays through the hub's H.264 fallback, marked transcoded; an
/// alert's live button opens its camera; a property user of the community sees only its
/// community-network cameras, and its WebSocket to another community's camera is closed
/// without a picture. Needs `scripts/setup` (the browser, gst-rtsp-server, the test clips).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duty_watches_the_camera_wall_live_and_property_cannot_watch_another_community() {
    use jiff::Timestamp;
    use xl_core::AlertId;
    use xl_core::alert::AlertAction;
    use xl_rules::{Decision, Engine, Input, RulesConfig, ZoneInput, ZoneWhat};
    use xl_store::{Change, Commit};

    let root = browser_root();
    let server = tokio::task::spawn_blocking(|| {
        xl_testkit::RtspServer::start(&[
            ("sub264", xl_testkit::test_clip(xl_testkit::H264_360P)?),
            ("main264", xl_testkit::test_clip(xl_testkit::H264_720P)?),
            ("sub265", xl_testkit::test_clip(xl_testkit::H265_360P)?),
            ("main265", xl_testkit::test_clip(xl_testkit::H265_720P)?),
        ])
    })
    .await
    .unwrap()
    .expect("the RTSP test server (scripts/setup installs gst-rtsp-server and the clips)");

    let data = temp_dir("console-wall");
    let a = format!("c{:x}", rand::random::<u32>());
    let b = format!("c{:x}", rand::random::<u32>());
    let h264 = |id: &str, name: &str, grid: &str| {
        format!(
            r#"
            [[cameras]]
            id = "{id}"
            name = "{name}"
            community = "{a}"
            grid = "{grid}"
            url = "{sub}"
            main_url = "{main}"
            "#,
            sub = server.url("sub264"),
            main = server.url("main264"),
        )
    };
    let text = format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        data_dir = "{data}"
        [detect]
        enabled = false
        [[stations]]
        id = "chengguan"
        name = "城关派出所"
        [[communities]]
        id = "{a}"
        name = "幸福小区"
        station = "chengguan"
        [[communities]]
        id = "{b}"
        name = "安乐家园"
        station = "chengguan"
        [[grids]]
        id = "{a}-1"
        community = "{a}"
        name = "第一网格"
        [[grids]]
        id = "{a}-2"
        community = "{a}"
        name = "第二网格"
        {cam1}{cam2}{cam3}{cam4}
        [[cameras]]
        id = "wall-h265"
        name = "天网 广场"
        community = "{a}"
        network = "skynet"
        url = "{sub265}"
        main_url = "{main265}"
        [[cameras]]
        id = "other-1"
        name = "安乐家园 南门"
        community = "{b}"
        url = "{sub264}"
        "#,
        data = data.display(),
        cam1 = h264("wall-1", "东门", &format!("{a}-1")),
        cam2 = h264("wall-2", "北门", &format!("{a}-1")),
        cam3 = h264("wall-3", "车库入口", &format!("{a}-2")),
        cam4 = h264("wall-4", "中心花园", &format!("{a}-2")),
        sub265 = server.url("sub265"),
        main265 = server.url("main265"),
        sub264 = server.url("sub264"),
    );
    let hub = Hub::start(Config::parse(&text).unwrap()).await.unwrap();
    let password = "duty-password-2026";
    xueliang::users::add(&hub.store, "duty", password, Role::Duty, vec![], "test")
        .await
        .unwrap();
    let property_password = "property-password-2026";
    xueliang::users::add(
        &hub.store,
        "prop",
        property_password,
        Role::Property,
        vec![CommunityId::new(a.clone()).unwrap()],
        "test",
    )
    .await
    .unwrap();

    // An alert of wall-2, as the rules engine raises it, for the detail's live button.
    let mut engine = Engine::new(&RulesConfig::default()).unwrap();
    let entered = Input::Zone(ZoneInput {
        event_id: "v-1".into(),
        camera: CameraId::new("wall-2").unwrap(),
        community: CommunityId::new(a.clone()).unwrap(),
        zone: "yard".into(),
        what: ZoneWhat::Entered { track: 1 },
        at: Timestamp::now(),
    });
    let alert = engine
        .handle(&entered, &mut |at| AlertId::new(at, rand::random()))
        .into_iter()
        .find_map(|d| match d {
            Decision::Raise(alert) => Some(alert),
            _ => None,
        })
        .expect("the engine raises person.intrusion");
    hub.store
        .commit(&Commit {
            changes: vec![Change {
                at: alert.raised_at,
                alert: alert.clone(),
                action: AlertAction::Raised,
                actor: "system".into(),
                note: None,
            }],
            ..Commit::default()
        })
        .await
        .unwrap();

    // Every camera streams before the browser looks.
    let t0 = std::time::Instant::now();
    for id in [
        "wall-1",
        "wall-2",
        "wall-3",
        "wall-4",
        "wall-h265",
        "other-1",
    ] {
        let id = CameraId::new(id).unwrap();
        while hub
            .cameras
            .get(&id)
            .is_none_or(|c| c.1.status().label() != "online")
        {
            assert!(
                t0.elapsed().as_secs() < 30,
                "{id} is not online: {}",
                server.log_tail()
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    let url = format!("http://{}", hub.addr);
    let args = [
        "--community",
        a.as_str(),
        "--cameras",
        "wall-1,wall-2,wall-3,wall-4",
        "--sub-width",
        "640",
        "--main-width",
        "1280",
        "--h265-camera",
        "wall-h265",
        "--alert",
        alert.id.as_str(),
        "--alert-camera",
        "wall-2",
        "--property-user",
        "prop",
        "--property-password",
        property_password,
        "--other-camera",
        "other-1",
    ];
    let (passed, stderr) = run_browser(
        &root,
        "wall.test.mjs",
        &url,
        "duty",
        password,
        &args,
        "wall",
    )
    .await;
    assert!(
        passed,
        "browser test failed: {stderr}\nRTSP server log:\n{}",
        server.log_tail()
    );

    // What the browser watched is audited: duty's sessions of wall-1, sub and main; prop's of
    // its own wall-2, and none of other-1 (refused before the upgrade).
    let audit = hub
        .store
        .list_audit(&xl_store::AuditFilter {
            limit: 1000,
            ..xl_store::AuditFilter::default()
        })
        .await
        .unwrap();
    let started = |actor: &str, camera: &str, stream: &str| {
        audit.iter().any(|e| {
            e.actor == actor
                && e.action == "live.start"
                && e.target.as_deref() == Some(camera)
                && e.detail["stream"] == stream
        })
    };
    assert!(started("duty", "wall-1", "sub"), "{audit:#?}");
    assert!(started("duty", "wall-1", "main"), "{audit:#?}");
    assert!(started("prop", "wall-2", "sub"), "{audit:#?}");
    assert!(
        !audit
            .iter()
            .any(|e| e.actor == "prop" && e.target.as_deref() == Some("other-1")),
        "{audit:#?}"
    );
    hub.stop().await;
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

/// Playback in the browser (`tests/browser/playback-e2e.test.mjs`) against the real hub
/// recording the real RTSP test server (issue 18): an alert's clip plays in its detail;
/// clicking the playback timeline plays the recording from that instant; the frame shown after
/// "go to" a time is the hub's recorded frame of that time (compared with FFmpeg's decoding of
/// the hub's own MP4); 2x sets the playback rate; a police user exports the alert and sees the
/// evidence key. Then the audit log holds each look and the export, and the file the browser
/// saved verifies (`xueliang verify-export`) against the hub's key, which the panel showed.
/// Needs `scripts/setup` (the browser, gst-rtsp-server, the test clips, FFmpeg).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_clip_and_the_timeline_play_the_recorded_frames_and_police_export_them() {
    use jiff::{SignedDuration, Timestamp};
    use sha2::Digest;
    use xl_core::AlertId;
    use xl_core::alert::AlertAction;
    use xl_core::live::StreamKind;
    use xl_rules::{Decision, Engine, Input, RulesConfig, ZoneInput, ZoneWhat};
    use xl_store::{Change, Commit};

    let root = browser_root();
    let server = tokio::task::spawn_blocking(|| {
        xl_testkit::RtspServer::start(&[("sub264", xl_testkit::test_clip(xl_testkit::H264_360P)?)])
    })
    .await
    .unwrap()
    .expect("the RTSP test server (scripts/setup installs gst-rtsp-server and the clips)");

    let data = temp_dir("console-playback");
    let community = format!("c{:x}", rand::random::<u32>());
    let text = format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        data_dir = "{data}"
        [detect]
        enabled = false
        [recording]
        mode = "continuous"
        stream = "sub"
        segment_secs = 10
        min_free_mib = 1
        [[communities]]
        id = "{community}"
        name = "幸福小区"
        [[cameras]]
        id = "pb-east"
        name = "东门"
        community = "{community}"
        url = "{url}"
        decode = "key-frames"
        [[cameras]]
        id = "pb-north"
        name = "北门"
        community = "{community}"
        url = "{url}"
        decode = "key-frames"
        "#,
        data = data.display(),
        url = server.url("sub264"),
    );
    let hub = Hub::start(Config::parse(&text).unwrap()).await.unwrap();
    let password = "duty-password-2026";
    xueliang::users::add(&hub.store, "duty", password, Role::Duty, vec![], "test")
        .await
        .unwrap();
    let police_password = "police-password-2026";
    xueliang::users::add(
        &hub.store,
        "police",
        police_password,
        Role::Police,
        vec![],
        "test",
    )
    .await
    .unwrap();

    // Recording begins with the camera's first segment.
    let camera = CameraId::new("pb-east").unwrap();
    let t0 = std::time::Instant::now();
    let began = loop {
        let far = Timestamp::now() + SignedDuration::from_hours(1);
        let rows = hub
            .store
            .segments(&camera, StreamKind::Sub, Timestamp::UNIX_EPOCH, far)
            .await
            .unwrap();
        if let Some(first) = rows.first() {
            break first.start_at;
        }
        assert!(
            t0.elapsed().as_secs() < 30,
            "pb-east records nothing: {:?}\n{}",
            hub.cameras.get(&camera).map(|c| c.1.status()),
            server.log_tail()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };

    // About 35 s recorded; an alert of the camera raised 15 s in, committed as the alert
    // processor would (it holds no clip: the clip route takes 10 s before to 20 s after).
    let ready = began + SignedDuration::from_secs(35);
    if let Ok(wait) = std::time::Duration::try_from(ready.duration_since(Timestamp::now())) {
        tokio::time::sleep(wait).await;
    }
    let mut engine = Engine::new(&RulesConfig::default()).unwrap();
    let entered = Input::Zone(ZoneInput {
        event_id: "v-1".into(),
        camera: camera.clone(),
        community: CommunityId::new(community.clone()).unwrap(),
        zone: "yard".into(),
        what: ZoneWhat::Entered { track: 1 },
        at: began + SignedDuration::from_secs(15),
    });
    let alert = engine
        .handle(&entered, &mut |at| AlertId::new(at, rand::random()))
        .into_iter()
        .find_map(|d| match d {
            Decision::Raise(alert) => Some(alert),
            _ => None,
        })
        .expect("the engine raises person.intrusion");
    hub.store
        .commit(&Commit {
            changes: vec![Change {
                at: alert.raised_at,
                alert: alert.clone(),
                action: AlertAction::Raised,
                actor: "system".into(),
                note: None,
            }],
            ..Commit::default()
        })
        .await
        .unwrap();

    // What the script leaves for the checks below is its own, not an earlier run's.
    let artifacts = root.join("target/browser-artifacts/playback");
    for file in ["export.zip", "evidence-key.txt"] {
        let _ = std::fs::remove_file(artifacts.join(file));
    }
    let url = format!("http://{}", hub.addr);
    let args = [
        "--camera",
        "pb-east",
        "--camera-search",
        "东门",
        "--alert",
        alert.id.as_str(),
        "--width",
        "640",
        "--police-user",
        "police",
        "--police-password",
        police_password,
    ];
    let (passed, stderr) = run_browser(
        &root,
        "playback-e2e.test.mjs",
        &url,
        "duty",
        password,
        &args,
        "playback",
    )
    .await;
    assert!(
        passed,
        "browser test failed: {stderr}\nRTSP server log:\n{}",
        server.log_tail()
    );

    // Each look is audited by who looked, and the export with the SHA-256 of the file saved.
    let audit = hub
        .store
        .list_audit(&xl_store::AuditFilter {
            limit: 1000,
            ..xl_store::AuditFilter::default()
        })
        .await
        .unwrap();
    let by = |actor: &str, action: &str, target: &str| {
        audit
            .iter()
            .any(|e| e.actor == actor && e.action == action && e.target.as_deref() == Some(target))
    };
    assert!(by("duty", "alert.clip", alert.id.as_str()), "{audit:#?}");
    assert!(by("duty", "recording.play", "pb-east"), "{audit:#?}");
    assert!(by("police", "alert.clip", alert.id.as_str()), "{audit:#?}");
    let zip = artifacts.join("export.zip");
    let sha256: String = sha2::Sha256::digest(std::fs::read(&zip).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let exports: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "export.create")
        .collect();
    assert_eq!(exports.len(), 1, "{audit:#?}");
    assert_eq!(exports[0].actor, "police");
    assert_eq!(exports[0].detail["subject"]["alert"], alert.id.as_str());
    assert_eq!(exports[0].detail["sha256"], sha256.as_str());

    // The key the panel showed is the hub's, and the package verifies against it.
    let key = xl_evidence::HubKey::load_or_create(&data)
        .unwrap()
        .public_key_base64();
    let shown = std::fs::read_to_string(artifacts.join("evidence-key.txt")).unwrap();
    assert_eq!(shown.trim(), key);
    let verified = Command::new(env!("CARGO_BIN_EXE_xueliang"))
        .arg("verify-export")
        .arg(&zip)
        .args(["--key", &key])
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "verify-export: {}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    hub.stop().await;
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}
