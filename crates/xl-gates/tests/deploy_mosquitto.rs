//! The Mosquitto that deploy/ ships, run for real: deploy/mosquitto.conf (its listener moved to
//! a free loopback port and its paths into a temporary directory) with deploy/mosquitto.acl and
//! a password file made with `mosquitto_passwd -b`, as deploy/README.md says. What an external
//! broker must hold, as the embedded broker does (tests/broker_access.rs): no anonymous client,
//! a gate writes only its own topics and reads nothing of the hub's, the hub's topics are the
//! hub's, a property account reads its community's alerts only, nobody takes another's id.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);
/// Long enough for a message in flight on loopback; waited only after a later message on the
/// same path arrived.
const GRACE: Duration = Duration::from_millis(300);

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
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mosquitto");
        let child = Command::new(bin)
            .arg("-c")
            .arg(dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is not installed");
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

    async fn login(&self, user: &str, client_id: &str) -> Client {
        Client::connect(self.port, client_id, Some((user, &password(user))))
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

struct Client {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Packet>,
    held: std::collections::VecDeque<Packet>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    async fn connect(
        port: u16,
        client_id: &str,
        login: Option<(&str, &str)>,
    ) -> Result<Client, u8> {
        let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        if let Some((u, p)) = login {
            o.set_credentials(u, p);
        }
        let (client, mut el) = AsyncClient::new(o, 100);
        loop {
            match tokio::time::timeout(WAIT, el.poll())
                .await
                .expect("no CONNACK")
            {
                Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => return Err(code as u8),
                Err(e) => panic!("connect: {e}"),
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok(ev) = el.poll().await {
                if let Event::Incoming(p) = ev
                    && tx.send(p).is_err()
                {
                    return;
                }
            }
        });
        Ok(Client {
            client,
            rx,
            held: Default::default(),
            task,
        })
    }

    async fn next<T>(&mut self, mut pick: impl FnMut(&Packet) -> Option<T>) -> Option<T> {
        // Packets passed over (a PUBLISH that came before the PUBACK awaited) wait for a
        // later look.
        if let Some(i) = self.held.iter().position(|p| pick(p).is_some()) {
            let p = self.held.remove(i).unwrap();
            return pick(&p);
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(p)) => match pick(&p) {
                    Some(t) => return Some(t),
                    None => self.held.push_back(p),
                },
                _ => return None,
            }
        }
    }

    /// Publishes QoS 1; Mosquitto acknowledges a publish its ACL denies too (and drops it).
    async fn publish(&mut self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .unwrap();
        assert!(
            self.next(|p| matches!(p, Packet::PubAck(_)).then_some(()))
                .await
                .is_some(),
            "no PUBACK for {topic}"
        );
    }

    /// Subscribes to one filter; whether the SUBACK grants it.
    async fn subscribe(&mut self, filter: &str) -> bool {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        self.next(|p| match p {
            Packet::SubAck(a) => Some(
                a.return_codes
                    .iter()
                    .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_))),
            ),
            _ => None,
        })
        .await
        .expect("no SUBACK")
    }

    /// The topics of the PUBLISHes received until one on `marker` (included), and any that
    /// follow within [`GRACE`].
    async fn topics_until(&mut self, marker: &str) -> Vec<String> {
        let mut got = Vec::new();
        loop {
            let t = self
                .next(|p| match p {
                    Packet::Publish(p) => Some(p.topic.clone()),
                    _ => None,
                })
                .await
                .unwrap_or_else(|| panic!("never received {marker}; got {got:?}"));
            got.push(t.clone());
            if t == marker {
                tokio::time::sleep(GRACE).await;
                got.extend(self.drain_publishes());
                return got;
            }
        }
    }

    /// The topics of the PUBLISHes received and not looked at yet.
    fn drain_publishes(&mut self) -> Vec<String> {
        let mut all: Vec<Packet> = self.held.drain(..).collect();
        all.extend(std::iter::from_fn(|| self.rx.try_recv().ok()));
        all.into_iter()
            .filter_map(|p| match p {
                Packet::Publish(p) => Some(p.topic),
                _ => None,
            })
            .collect()
    }

    /// Whether nothing was published to it that was not looked at yet.
    fn received_nothing(&mut self) -> bool {
        self.drain_publishes().is_empty()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_mosquitto_acl_keeps_each_account_to_its_own_topics() {
    init_logs();
    let b = Broker::start();
    // Nobody gets in without a login, or with a wrong one.
    assert_eq!(Client::connect(b.port, "anon", None).await.err(), Some(5));
    // (Mosquitto says 5 "not authorised" to a wrong password; the embedded broker says 4.)
    assert!(matches!(
        Client::connect(b.port, "x", Some(("gate-a", "wrong")))
            .await
            .err(),
        Some(4 | 5)
    ));

    let mut hub = b.login("hub", "xueliang-hub").await;
    assert!(hub.subscribe("gates/#").await);
    assert!(hub.subscribe("zigbee2mqtt/#").await);
    let mut hub_out = b.login("hub-out", "xueliang-hub-out").await;
    assert!(hub_out.subscribe("xueliang/#").await);
    let mut property = b.login("property-xingfu", "property-app").await;
    assert!(property.subscribe("xueliang/alerts/xingfu/#").await);

    // A gate writes under its own name only; the hub receives that and not the rest.
    let mut gate_a = b.login("gate-a", "gate-a").await;
    gate_a.publish("gates/gate-b/event", "forged").await;
    gate_a.publish("zigbee2mqtt/bike_shed_door", "forged").await;
    gate_a.publish("gates/gate-a/event", "own").await;
    assert_eq!(
        hub.topics_until("gates/gate-a/event").await,
        ["gates/gate-a/event"]
    );

    // It may not write the hub's topics (alerts, retained status), nor read them or anything.
    gate_a.publish("xueliang/status", "offline").await;
    gate_a
        .publish("xueliang/alerts/xingfu/gate.forced_open", "forged")
        .await;
    let everything = gate_a.subscribe("#").await;
    let alerts = gate_a.subscribe("xueliang/alerts/#").await;
    hub_out
        .publish("xueliang/alerts/hexie/gate.forced_open", "hexie")
        .await;
    hub_out
        .publish("xueliang/alerts/xingfu/gate.forced_open", "xingfu")
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
        gate_a.received_nothing(),
        "the gate read the alerts (SUBACK granted: # {everything}, alerts {alerts})"
    );

    // The client id is the username: a gate naming itself after the hub takes nothing.
    let mut impostor = b.login("gate-b", "xueliang-hub").await;
    impostor.publish("gates/gate-b/event", "own").await;
    assert_eq!(
        hub.topics_until("gates/gate-b/event").await,
        ["gates/gate-b/event"]
    );

    // A bridge writes its own topics.
    let mut z2m = b.login("zigbee2mqtt", "zigbee2mqtt").await;
    z2m.publish("gates/gate-a/event", "forged").await;
    z2m.publish("zigbee2mqtt/bike_shed_door", "{\"contact\":false}")
        .await;
    assert_eq!(
        hub.topics_until("zigbee2mqtt/bike_shed_door").await,
        ["zigbee2mqtt/bike_shed_door"]
    );
    drop((hub, hub_out, property, gate_a, impostor, z2m));
}
