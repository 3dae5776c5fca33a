//! The config file's topology through the store and back: applied at start
//! (`Store::apply_config`), exported (`xueliang export`) as TOML that `check-config` and `run`
//! accept, read back as the same topology (secrets aside: they are never exported), on SQLite
//! and on PostgreSQL. Disabled entries travel as `disabled = true` and do not run.

use std::path::Path;
use std::process::Command;

use jiff::Timestamp;
use xl_core::topology::{Entry, EntryId, Grid, Secret, Topology};
use xl_core::{CameraId, CommunityId, GridId};
use xl_store::{Author, Store};
use xueliang::config::Config;

mod common;
use common::{TestPg, temp_dir};

async fn temp_store(name: &str) -> Store {
    let dir = temp_dir(name);
    Store::open(&format!("sqlite://{}", dir.join("xueliang.db").display()))
        .await
        .unwrap()
}

fn without_secrets(mut t: Topology) -> Topology {
    t.cameras.values_mut().for_each(|c| c.password = None);
    t.gates.values_mut().for_each(|g| g.push_secret = None);
    t
}

/// Applies `config`'s topology to `store`, exports the store, and parses the export.
async fn round_trip(store: &Store, config: &Config) -> (String, anyhow::Result<Config>) {
    let report = xueliang::topology::apply(store, config, Timestamp::now())
        .await
        .unwrap();
    assert!(report.removed.is_empty() && report.claimed.is_empty());
    let again = xueliang::topology::apply(store, config, Timestamp::now())
        .await
        .unwrap();
    assert!(again.is_noop(), "a second start changes nothing: {again:?}");
    let text = xueliang::topology::to_toml(&store.topology().await.unwrap()).unwrap();
    let back = Config::parse(&text);
    (text, back)
}

#[tokio::test]
async fn the_demo_config_round_trips_through_the_store() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let config = Config::load(&root.join("demo.toml")).unwrap();
    let store = temp_store("topology-demo").await;
    let (text, back) = round_trip(&store, &config).await;
    let back = back.unwrap_or_else(|e| panic!("{e:#}\n{text}"));
    assert_eq!(
        back.topology().unwrap(),
        config.topology().unwrap(),
        "{text}"
    );
    assert!(text.contains("幸福小区"), "{text}");
}

const EVERY_KIND: &str = r#"
[[stations]]
id = "chengguan"
name = "城关派出所"

[[communities]]
id = "xingfu"
name = "幸福小区"
station = "chengguan"

[[communities]]
id = "hexie"
name = "和谐社区"

[[grids]]
id = "xingfu-1"
community = "xingfu"
name = "第一网格"

[[cameras]]
id = "east"
name = "东门"
community = "xingfu"
grid = "xingfu-1"
network = "community"
url = "rtsp://admin:s3cret%21@10.0.0.2:554/Streaming/Channels/102"
main_url = "rtsp://10.0.0.2:554/Streaming/Channels/101"
transport = "udp"
decode = "skip-non-reference"
[cameras.recording]
mode = "motion-and-events"
stream = "sub"
retain_days = 14
[cameras.detect]
rate = 3.5
motion = false
faces = "frame"
[[cameras.zones]]
id = "lawn"
name = " 北门广场 "
polygon = [[0.0, 0.55], [1.0, 0.55], [1.0, 1.0], [0.0, 1.0]]
dwell_limit_secs = 20
schedule = [{ days = ["mon", "tue"], start = "22:00", end = "06:00" }]
[[cameras.zones]]
id = "path"
polygon = [[0.1, 0.1], [0.4, 0.1], [0.25, 0.5]]
schedule = [
    { days = ["sat", "sun"], start = "00:00", end = "00:00" },
    { days = ["fri"], start = "18:30", end = "23:59:30" },
]

[[cameras]]
id = "road"
community = "implied-one"
network = "skynet"
main_file = "/srv/video/road.mp4"
disabled = true

[[gates]]
id = "east-door"
name = "东门门禁"
community = "xingfu"
grid = "xingfu-1"
firmware = "hikvision-isapi"
camera = "east"
push_allow_from = ["10.0.0.0/24", "10.1.0.5"]
timezone = "Asia/Shanghai"
offline_after_secs = 900

[[gates]]
id = "push-door"
community = "hexie"
firmware = "zkteco-adms"
device = "CJDE193560303"
push_secret = "0123456789abcdef-long"
"#;

/// Every kind, a store-made entry, a disabled one from the file and one disabled through the
/// API, zones with names and schedules, a camera with both streams and a login; secrets named
/// in comments, never written, and the export refused until a push gate's secret is added back.
async fn every_kind_round_trips_and_secrets_stay_in_the_store(store: &Store) {
    let config = Config::parse(EVERY_KIND).unwrap();
    xueliang::topology::apply(store, &config, Timestamp::now())
        .await
        .unwrap();
    // Made through the API: a grid, and a camera that is then disabled.
    let admin = Author {
        actor: "admin".into(),
        peer: None,
    };
    let grid = Grid {
        id: GridId::new("hexie-1").unwrap(),
        community: CommunityId::new("hexie").unwrap(),
        name: "和谐一网格".into(),
        disabled: false,
    };
    store
        .create_entry(Entry::Grid(grid.clone()), &admin, Timestamp::now())
        .await
        .unwrap();
    let mut spare = config.topology().unwrap().cameras[&CameraId::new("road").unwrap()].clone();
    spare.id = CameraId::new("spare").unwrap();
    spare.community = CommunityId::new("hexie").unwrap();
    spare.disabled = false;
    store
        .create_entry(Entry::Camera(spare.clone()), &admin, Timestamp::now())
        .await
        .unwrap();
    store
        .set_entry_disabled(
            &EntryId::Camera(spare.id.clone()),
            true,
            1,
            &admin,
            Timestamp::now(),
        )
        .await
        .unwrap();
    // The file's disabled camera is stored disabled.
    let stored = store.topology().await.unwrap().topology;
    assert!(stored.cameras[&CameraId::new("road").unwrap()].disabled);
    assert!(!stored.cameras[&CameraId::new("east").unwrap()].disabled);
    let lawn = &stored.cameras[&CameraId::new("east").unwrap()].zones[0];
    assert_eq!(lawn.name.as_deref(), Some("北门广场"), "trimmed, and kept");

    let (text, back) = round_trip(store, &config).await;
    assert!(
        !text.contains("s3cret") && !text.contains("0123456789abcdef"),
        "{text}"
    );
    assert!(
        !text.contains("admin:"),
        "credentials left in a URL: {text}"
    );
    assert!(
        text.contains("camera \"east\": a password is set")
            && text.contains("gate \"push-door\": a push_secret is set"),
        "{text}"
    );
    assert_eq!(
        text.matches("disabled = true").count(),
        2,
        "the file's disabled camera and the API's, declared disabled\n{text}"
    );
    assert!(!text.contains("\n# id = "), "nothing commented out\n{text}");
    // The push gate took HTTP push on its secret alone: without it the file is refused,
    // naming the gate, rather than quietly turning it into an MQTT gate.
    let e = format!("{:#}", back.unwrap_err());
    assert!(e.contains("push-door") && e.contains("push_secret"), "{e}");

    // With the secrets added back from the operator's secret store, the same topology.
    let text = text
        .replace("id = \"east\"\n", "id = \"east\"\npassword = \"s3cret!\"\n")
        .replace(
            "id = \"push-door\"\n",
            "id = \"push-door\"\npush_secret = \"0123456789abcdef-long\"\n",
        );
    let back = Config::parse(&text)
        .unwrap_or_else(|e| panic!("{e:#}\n{text}"))
        .topology()
        .unwrap();
    let mut want = config.topology().unwrap();
    want.grids.insert(grid.id.clone(), grid);
    spare.disabled = true;
    want.cameras.insert(spare.id.clone(), spare);
    let push = want
        .gates
        .get_mut(&xl_core::GateId::new("push-door").unwrap())
        .unwrap();
    push.transport = Some(push.transport()); // spelt out by the export
    assert_eq!(back, want, "{text}");
    let east = &back.cameras[&CameraId::new("east").unwrap()];
    assert_eq!(east.password.as_ref().map(Secret::expose), Some("s3cret!"));
    assert_eq!(east.username.as_deref(), Some("admin"));
    assert!(east.main.is_some() && east.sub.is_some(), "{east:?}");
    assert_eq!(east.zones.len(), 2);
    assert_eq!(east.zones[1].schedule.len(), 2);
    assert_eq!(
        east.recording.mode,
        Some(xl_core::recording::RecordingMode::MotionAndEvents)
    );
    assert_eq!(east.recording.retain_days, Some(14));
    assert!(back.cameras[&CameraId::new("spare").unwrap()].disabled);
}

#[tokio::test]
async fn every_kind_round_trips_on_sqlite() {
    let store = temp_store("topology-every-kind").await;
    every_kind_round_trips_and_secrets_stay_in_the_store(&store).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_round_trips_on_postgres() {
    let pg = TestPg::create().await;
    let store = Store::open(&pg.url).await.unwrap();
    assert_eq!(store.backend(), xl_store::Backend::Postgres);
    every_kind_round_trips_and_secrets_stay_in_the_store(&store).await;
    store.close().await;
}

/// A config file in `dir`: `store` (the `[server]` and `[store]` sections naming the store),
/// then EVERY_KIND without the push-only gate (whose export needs its secret added back).
fn write_config(dir: &Path, store: &str) -> std::path::PathBuf {
    let path = dir.join("xueliang.toml");
    let topology = &EVERY_KIND[..EVERY_KIND.find("[[gates]]\nid = \"push-door\"").unwrap()];
    std::fs::write(&path, format!("{store}{topology}")).unwrap();
    path
}

/// `xueliang export` as a process, after a start wrote the store the config names: it writes
/// a file that `check-config` accepts and `Config::load` reads as the same topology, secrets
/// aside (never exported), the disabled camera declared `disabled = true`.
async fn export_through_the_binary(dir: &Path, config_path: &Path) {
    let xueliang = env!("CARGO_BIN_EXE_xueliang");
    // What `run` does to the store at start.
    let config = Config::load(config_path).unwrap();
    let store = xueliang::hub::open_store(&config).await.unwrap();
    xueliang::topology::apply(&store, &config, Timestamp::now())
        .await
        .unwrap();
    store.close().await;

    let exported = dir.join("exported.toml");
    let out = Command::new(xueliang)
        .args(["export", "--config"])
        .arg(config_path)
        .arg("-o")
        .arg(&exported)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(!text.contains("s3cret"), "{text}");
    assert!(
        text.contains("camera \"east\": a password is set"),
        "{text}"
    );

    let out = Command::new(xueliang)
        .arg("check-config")
        .arg(&exported)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ok (1 stations, 3 communities, 1 grids, 2 cameras, 1 gates)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("disabled (stored and listed, not run): camera \"road\""),
        "{stdout}"
    );
    let back = Config::load(&exported).unwrap().topology().unwrap();
    assert_eq!(
        without_secrets(back.clone()),
        without_secrets(config.topology().unwrap()),
        "{text}"
    );
    let east = &back.cameras[&CameraId::new("east").unwrap()];
    assert_eq!(
        (east.username.as_deref(), east.password.is_none()),
        (Some("admin"), true),
        "the login without its password"
    );
    assert_eq!(east.zones[0].name.as_deref(), Some("北门广场"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xueliang_export_writes_a_file_check_config_accepts() {
    let dir = temp_dir("topology-export");
    let config_path = write_config(
        &dir,
        &format!("[server]\ndata_dir = \"{}\"\n", dir.join("data").display()),
    );
    // Before any start there is no SQLite file: refused, naming it.
    let out = Command::new(env!("CARGO_BIN_EXE_xueliang"))
        .args(["export", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no store at"), "{stderr}");

    export_through_the_binary(&dir, &config_path).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xueliang_export_reads_a_postgresql_store() {
    let pg = TestPg::create().await;
    let dir = temp_dir("topology-export-pg");
    let config_path = write_config(
        &dir,
        &format!(
            "[server]\ndata_dir = \"{}\"\n[store]\ndatabase_url = \"{}\"\n",
            dir.join("data").display(),
            pg.url
        ),
    );
    export_through_the_binary(&dir, &config_path).await;
    let text = std::fs::read_to_string(dir.join("exported.toml")).unwrap();
    assert!(
        text.starts_with("# Exported by `xueliang export` from postgres://"),
        "{text}"
    );
}

/// `disabled = true` in the file: stored and shown disabled, and not run from the start (no
/// camera session, the gate not in the ingest's table); the rest runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_config_entries_are_stored_disabled_and_do_not_run() {
    let dir = temp_dir("topology-disabled");
    // Nothing listens on port 1: the cameras that run stay offline, which is enough here.
    let text = format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        api_token = "test-token"
        data_dir = "{data}"
        [detect]
        enabled = false
        [[stations]]
        id = "chengguan"
        name = "城关派出所"
        [[communities]]
        id = "xingfu"
        name = "幸福小区"
        station = "chengguan"
        [[communities]]
        id = "hexie"
        name = "和谐社区"
        disabled = true
        [[cameras]]
        id = "on"
        community = "xingfu"
        url = "rtsp://127.0.0.1:1/on"
        [[cameras]]
        id = "off"
        community = "xingfu"
        url = "rtsp://127.0.0.1:1/off"
        disabled = true
        [[cameras.zones]]
        id = "yard"
        name = "后院"
        polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]
        [[cameras]]
        id = "under-off"
        community = "hexie"
        url = "rtsp://127.0.0.1:1/under"
        [[gates]]
        id = "door-on"
        community = "xingfu"
        firmware = "dahua"
        [[gates]]
        id = "door-off"
        community = "xingfu"
        firmware = "dahua"
        disabled = true
        [[gates]]
        id = "door-under-off"
        community = "hexie"
        firmware = "dahua"
        "#,
        data = dir.join("data").display(),
    );
    let hub = xueliang::hub::Hub::start(Config::parse(&text).unwrap())
        .await
        .unwrap();
    let stored = hub.store.topology().await.unwrap();
    let t = &stored.topology;
    assert!(t.cameras[&CameraId::new("off").unwrap()].disabled);
    assert!(!t.cameras[&CameraId::new("on").unwrap()].disabled);
    assert!(t.communities[&CommunityId::new("hexie").unwrap()].disabled);
    let door_off = xl_core::GateId::new("door-off").unwrap();
    assert!(t.gates[&door_off].disabled);
    assert_eq!(
        stored.meta[&EntryId::Gate(door_off.clone())].origin,
        xl_core::topology::Origin::Config
    );
    // The runtime's first pass is done before `start` returns.
    let mut running: Vec<String> = hub
        .cameras
        .snapshot()
        .iter()
        .map(|(info, _)| info.id.to_string())
        .collect();
    running.sort();
    assert_eq!(
        running,
        ["on"],
        "neither the disabled camera nor one of a disabled community"
    );
    let gate = |id: &str| hub.gate_registry.get(&xl_core::GateId::new(id).unwrap());
    assert!(gate("door-on").is_some());
    assert!(
        gate("door-off").is_none(),
        "a disabled gate is not in the ingest's table"
    );
    assert!(
        gate("door-under-off").is_none(),
        "nor one of a disabled community"
    );
    hub.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
