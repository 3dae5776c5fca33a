//! The Mosquitto that deploy/ ships, run for real: deploy/mosquitto.conf (its listener moved to
//! a free loopback port and its paths into a temporary directory) with deploy/mosquitto.acl and
//! a password file made with `mosquitto_passwd -b`, as deploy/README.md says. What an external
//! broker must hold, as the embedded broker does (tests/broker_access.rs): no anonymous client,
//! a gate writes only its own topics and reads nothing of the hub's, the hub's topics are the
//! hub's, a property account reads its community's alerts only, nobody takes another's id.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use common::*;

const USERS: [&str; 6] = [
    "hub",
    "hub-out",
    "gate-a",
    "gate-b",
    "zigbee2mqtt",
    "property-xingfu",
];

fn password(user: &str) -> String {
    format!("{user}-deploy-test-password")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// deploy/mosquitto.conf with the listener on `port` (loopback) and the files in `dir`.
fn shipped_conf(port: u16, dir: &Path) -> String {
    let conf = std::fs::read_to_string(repo().join("deploy/mosquitto.conf")).unwrap();
    let mut out = String::new();
    let mut replaced = 0;
    for line in conf.lines() {
        let key = line.split_whitespace().next().unwrap_or("");
        let line = match key {
            "listener" => format!("listener {port} 127.0.0.1"),
            "persistence_location" => format!("persistence_location {}/", dir.display()),
            "password_file" => format!("password_file {}/passwd", dir.display()),
            "acl_file" => format!("acl_file {}/mosquitto.acl", dir.display()),
            "log_dest" => format!("log_dest file {}/mosquitto.log", dir.display()),
            _ => line.to_owned(),
        };
        if line.starts_with(key) && matches!(key, "listener" | "password_file" | "acl_file") {
            replaced += 1;
        }
        out.push_str(&line);
        out.push('\n');
    }
    assert_eq!(
        replaced, 3,
        "deploy/mosquitto.conf lost its listener, password or ACL file"
    );
    out
}

struct Broker {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl Broker {
    fn start() -> Broker {
        let dir = temp_dir("deploy-mosquitto");
        // Mosquitto started as root drops to the `mosquitto` user, which must read these.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::copy(
            repo().join("deploy/mosquitto.acl"),
            dir.join("mosquitto.acl"),
        )
        .unwrap();
        let passwd = dir.join("passwd");
        std::fs::write(&passwd, "").unwrap();
        for user in USERS {
            let ok = Command::new("mosquitto_passwd")
                .arg("-b")
                .arg(&passwd)
                .args([user, &password(user)])
                .status()
                .expect("mosquitto_passwd is not installed (scripts/setup installs mosquitto)");
            assert!(ok.success(), "mosquitto_passwd -b for {user}");
        }
        for f in ["passwd", "mosquitto.acl"] {
            std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let port = free_port();
        std::fs::write(dir.join("mosquitto.conf"), shipped_conf(port, &dir)).unwrap();
        let child = spawn_mosquitto(&dir.join("mosquitto.conf"));
        let b = Broker { port, dir, child };
        assert!(
            wait_listening(
                std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_secs(10)
            ),
            "mosquitto did not start with the shipped config: {}",
            std::fs::read_to_string(b.dir.join("mosquitto.log")).unwrap_or_default()
        );
        b
    }

    async fn login(&self, user: &str, client_id: &str) -> MqttClient {
        MqttClient::connect(self.port, client_id, Some((user, &password(user))), true)
            .await
            .unwrap_or_else(|code| panic!("{user} refused with {code}"))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Whether the SUBACK grants `filter`.
async fn granted(c: &mut MqttClient, filter: &str) -> bool {
    c.subscribe(&[filter]).await.iter().all(Option::is_some)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_mosquitto_acl_keeps_each_account_to_its_own_topics() {
    init_logs();
    let b = Broker::start();
    // Nobody gets in without a login, or with a wrong one.
    assert_eq!(
        MqttClient::connect(b.port, "anon", None, true).await.err(),
        Some(5)
    );
    // (Mosquitto says 5 "not authorised" to a wrong password; the embedded broker says 4.)
    assert!(matches!(
        MqttClient::connect(b.port, "x", Some(("gate-a", "wrong")), true)
            .await
            .err(),
        Some(4 | 5)
    ));

    let mut hub = b.login("hub", "xueliang-hub").await;
    assert!(granted(&mut hub, "gates/#").await);
    assert!(granted(&mut hub, "zigbee2mqtt/#").await);
    let mut hub_out = b.login("hub-out", "xueliang-hub-out").await;
    assert!(granted(&mut hub_out, "xueliang/#").await);
    let mut property = b.login("property-xingfu", "property-app").await;
    assert!(granted(&mut property, "xueliang/alerts/xingfu/#").await);

    // A gate writes under its own name only; the hub receives that and not the rest.
    let mut gate_a = b.login("gate-a", "gate-a").await;
    gate_a
        .publish_acked("gates/gate-b/event", false, "forged")
        .await;
    gate_a
        .publish_acked("zigbee2mqtt/bike_shed_door", false, "forged")
        .await;
    gate_a
        .publish_acked("gates/gate-a/event", false, "own")
        .await;
    assert_eq!(
        hub.topics_until("gates/gate-a/event").await,
        ["gates/gate-a/event"]
    );

    // It may not write the hub's topics (alerts, retained status), nor read them or anything.
    gate_a
        .publish_acked("xueliang/status", false, "offline")
        .await;
    gate_a
        .publish_acked("xueliang/alerts/xingfu/gate.forced_open", false, "forged")
        .await;
    let everything = granted(&mut gate_a, "#").await;
    let alerts = granted(&mut gate_a, "xueliang/alerts/#").await;
    hub_out
        .publish_acked("xueliang/alerts/hexie/gate.forced_open", false, "hexie")
        .await;
    hub_out
        .publish_acked("xueliang/alerts/xingfu/gate.forced_open", false, "xingfu")
        .await;
    assert_eq!(
        hub_out
            .topics_until("xueliang/alerts/xingfu/gate.forced_open")
            .await,
        [
            "xueliang/alerts/hexie/gate.forced_open",
            "xueliang/alerts/xingfu/gate.forced_open"
        ],
        "the gate's forged status or alert got through"
    );
    // The property account reads its community's alerts only.
    assert_eq!(
        property
            .topics_until("xueliang/alerts/xingfu/gate.forced_open")
            .await,
        ["xueliang/alerts/xingfu/gate.forced_open"]
    );
    // Mosquitto 2.0 may grant the SUBSCRIBE and deliver nothing under it: either way the gate
    // read nothing.
    assert!(
        gate_a.drain_publishes().is_empty(),
        "the gate read the alerts (SUBACK granted: # {everything}, alerts {alerts})"
    );

    // The client id is the username: a gate naming itself after the hub takes nothing.
    let mut impostor = b.login("gate-b", "xueliang-hub").await;
    impostor
        .publish_acked("gates/gate-b/event", false, "own")
        .await;
    assert_eq!(
        hub.topics_until("gates/gate-b/event").await,
        ["gates/gate-b/event"]
    );

    // A bridge writes its own topics.
    let mut z2m = b.login("zigbee2mqtt", "zigbee2mqtt").await;
    z2m.publish_acked("gates/gate-a/event", false, "forged")
        .await;
    z2m.publish_acked("zigbee2mqtt/bike_shed_door", false, "{\"contact\":false}")
        .await;
    assert_eq!(
        hub.topics_until("zigbee2mqtt/bike_shed_door").await,
        ["zigbee2mqtt/bike_shed_door"]
    );
    drop((hub, hub_out, property, gate_a, impostor, z2m));
}
