//! The embedded broker's access rules, from the outside (finding 2 of the security probe:
//! any MQTT client could speak for any gate, read every community's alerts, overwrite the
//! hub's retained status and take the hub's client ids). Real MQTT over TCP against the
//! front and rumqttd started in-process; raw packets where rumqttc cannot express the case.

#![cfg(feature = "embedded-broker")]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::*;
use rumqttc::QoS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xl_core::GateId;

const WAIT: Duration = Duration::from_secs(20);
/// Long enough for a message in flight to arrive on loopback; used only after a later
/// message on the same path has arrived, to show an earlier one did not.
const GRACE: Duration = Duration::from_millis(300);

fn password(user: &str) -> String {
    format!("{user}-test-password-0123456789")
}

/// Two communities' gates over MQTT, one that takes HTTP push only, and the accounts of a
/// serious site: one per gate, a bridge for every MQTT gate, a property reader of one
/// community's alerts, a reader of everything.
fn access_config(port: u16, prefix: &str, hub: &str) -> xl_gates::GatesConfig {
    let account = |user: &str, extra: &str| {
        format!(
            "[[mqtt.accounts]]\nusername = \"{user}\"\npassword = \"{}\"\n{extra}\n",
            password(user)
        )
    };
    let accounts = [
        account("gate-1", "gates = [\"gate-1\"]"),
        account("gate-2", "gates = [\"gate-2\"]"),
        account("bridge", "gates = [\"*\"]\npublish = [\"#\"]"),
        account(
            "property-xingfu",
            "subscribe = [\"xueliang/alerts/xingfu/#\"]",
        ),
        account("reader", "subscribe = [\"#\"]"),
    ]
    .concat();
    parse_config(&format!(
        r#"
        [mqtt]
        embedded = true
        listen = "127.0.0.1:{port}"
        client_id = "{hub}"
        [[mqtt.subscriptions]]
        filter = "{prefix}/gates/+/hik"
        firmware = "hikvision-isapi"
        gate_from = {{ topic_segment = 2 }}
        [[gates]]
        id = "gate-1"
        community = "xingfu"
        firmware = "hikvision-isapi"
        [[gates]]
        id = "gate-2"
        community = "hexie"
        firmware = "hikvision-isapi"
        [[gates]]
        id = "push-gate"
        community = "hexie"
        firmware = "hikvision-isapi"
        push_secret = "a-long-push-secret-0123456789"
        {accounts}
        "#
    ))
}

struct Broker {
    gates: xl_gates::Gates,
    registry: std::sync::Arc<xl_core::gate_status::GateRegistry>,
    cfg: xl_gates::GatesConfig,
    data: std::path::PathBuf,
    port: u16,
    prefix: String,
    hub: String,
}

impl Broker {
    async fn start() -> Broker {
        init_logs();
        let port = free_port();
        let prefix = rand_id("xl-access");
        let hub = rand_id("hub");
        let cfg = access_config(port, &prefix, &hub);
        let data = temp_dir("access");
        let (gates, registry) = start_gates(cfg.clone(), &data).await;
        Broker {
            gates,
            registry,
            cfg,
            data,
            port,
            prefix,
            hub,
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn hub_password(&self) -> String {
        self.cfg.mqtt.as_ref().unwrap().hub_password.clone()
    }

    fn gate_topic(&self, gate: &str) -> String {
        format!("{}/gates/{gate}/hik", self.prefix)
    }

    async fn login(&self, user: &str, client_id: &str) -> MqttClient {
        MqttClient::connect(self.port, client_id, Some((user, &password(user))), true)
            .await
            .unwrap_or_else(|code| panic!("{user} refused with {code}"))
    }

    async fn hub_login(&self, client_id: &str) -> MqttClient {
        MqttClient::connect(
            self.port,
            client_id,
            Some((xl_gates::config::HUB_USERNAME, &self.hub_password())),
            true,
        )
        .await
        .unwrap_or_else(|code| panic!("the hub's account refused with {code}"))
    }

    fn refused(&self) -> (u64, u64, u64) {
        let s = self.gates.mqtt_status().unwrap();
        (
            s.refused_connects.load(Relaxed),
            s.refused_publishes.load(Relaxed),
            s.refused_subscriptions.load(Relaxed),
        )
    }

    async fn stop(self) {
        self.gates.stop().await;
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// The `serialNo` of a [`hik_payload`].
fn serial_of(payload: &[u8]) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
    v["AccessControllerEvent"]["serialNo"].as_u64().unwrap()
}

/// A raw MQTT 3.1.1 CONNECT (clean session, keep-alive 30) with an optional login and will
/// (QoS 1, retained).
fn raw_connect(
    client_id: &str,
    login: Option<(&str, &str)>,
    will: Option<(&str, &str)>,
) -> Vec<u8> {
    let will = will.map(|(topic, msg)| (topic, msg.as_bytes(), 1, true));
    connect_packet(client_id, true, 30, login, will)
}

/// Sends `bytes` on a new connection and returns all the front answers until it closes.
async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut reply))
        .await
        .expect("the front kept a refused connection open")
        .unwrap();
    reply
}

fn connack(code: u8) -> Vec<u8> {
    vec![0x20, 2, 0, code]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_without_a_valid_login_are_refused_and_store_nothing() {
    let b = Broker::start().await;
    let event = hik_payload(1);
    let publish = raw_publish(&b.gate_topic("gate-1"), 1, &event);
    // Anonymous, with a PUBLISH right behind the CONNECT: 5 "not authorised", closed.
    let anon = [raw_connect(&rand_id("anon"), None, None), publish.clone()].concat();
    assert_eq!(raw_exchange(b.addr(), &anon).await, connack(5));
    // A wrong password, a made-up account, the hub's account with a guess: 4.
    for (user, pw) in [
        ("gate-1", "not-the-password"),
        ("made-up", "whatever-password"),
        (xl_gates::config::HUB_USERNAME, "a-guess"),
    ] {
        let bad = [
            raw_connect(&rand_id("bad"), Some((user, pw)), None),
            publish.clone(),
        ]
        .concat();
        assert_eq!(raw_exchange(b.addr(), &bad).await, connack(4), "{user}");
    }
    // MQTT 5: the front cannot check it: 1 "unacceptable protocol version".
    let mut v5 = mqtt_str(b"MQTT");
    v5.extend_from_slice(&[5, 0x02, 0, 30, 0]);
    v5.extend(mqtt_str(b"v5-client"));
    assert_eq!(
        raw_exchange(b.addr(), &mqtt_packet(0x10, &v5)).await,
        connack(1)
    );
    assert_eq!(b.refused().0, 5);
    // The gate's own login gets in, and its event (a later serial number) is stored alone.
    let mut gate = b.login("gate-1", &rand_id("gate-1")).await;
    gate.publish_acked(&b.gate_topic("gate-1"), false, hik_payload(2))
        .await;
    let events = wait_for_events(&b.data, 1, WAIT).await;
    tokio::time::sleep(GRACE).await;
    let serials = unique_serials(&journal_events(&b.data));
    assert_eq!(serials, [2].into(), "{events:?}");
    assert!(journal_dead_letters(&b.data).is_empty());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_reports_only_for_its_own_gates_that_take_mqtt() {
    let b = Broker::start().await;
    let mut reader = b.login("reader", &rand_id("reader")).await;
    let gates_filter = format!("{}/gates/#", b.prefix);
    assert_eq!(
        reader.subscribe(&[&gates_filter]).await,
        [Some(QoS::AtLeastOnce)]
    );
    let mut gate1 = b.login("gate-1", &rand_id("gate-1")).await;
    let mut bridge = b.login("bridge", &rand_id("bridge")).await;
    // Another account's gate, a gate that takes HTTP push only (from its own gate's account
    // and from a bridge for every gate): acknowledged, not stored, not passed on.
    gate1
        .publish_acked(&b.gate_topic("gate-2"), false, hik_payload(10))
        .await;
    gate1
        .publish_acked(&b.gate_topic("push-gate"), false, hik_payload(11))
        .await;
    bridge
        .publish_acked(&b.gate_topic("push-gate"), false, hik_payload(12))
        .await;
    // Its own gate: stored and passed on; the bridge's for gate-2 too.
    gate1
        .publish_acked(&b.gate_topic("gate-1"), false, hik_payload(13))
        .await;
    bridge
        .publish_acked(&b.gate_topic("gate-2"), false, hik_payload(14))
        .await;
    let events = wait_for_events(&b.data, 2, WAIT).await;
    tokio::time::sleep(GRACE).await;
    let events_now = journal_events(&b.data);
    let stored: Vec<(String, u64)> = events_now
        .iter()
        .map(|e| {
            (
                e.gate.to_string(),
                e.event.event_id.as_deref().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        stored,
        [("gate-1".to_owned(), 13), ("gate-2".to_owned(), 14)],
        "{events:?}"
    );
    assert!(journal_dead_letters(&b.data).is_empty());
    // The refused ones are no sign of life either.
    let (_, push) = b.registry.get(&GateId::new("push-gate").unwrap()).unwrap();
    assert!(push.last_seen().is_none());
    assert_eq!(b.refused().1, 3);
    // Subscribers got the stored ones only, each once.
    let mut got = Vec::new();
    while got.len() < 2 {
        let (topic, payload, _) = reader.next_message().await.expect("a stored event");
        got.push((topic, serial_of(&payload)));
    }
    tokio::time::sleep(GRACE).await;
    for (topic, payload) in reader.drain_publishes() {
        got.push((topic, serial_of(&payload)));
    }
    assert_eq!(
        got,
        [(b.gate_topic("gate-1"), 13), (b.gate_topic("gate-2"), 14)]
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_granted_only_where_the_account_may_read() {
    let b = Broker::start().await;
    let mut gate1 = b.login("gate-1", &rand_id("gate-1")).await;
    assert_eq!(
        gate1.subscribe(&["#", "xueliang/alerts/#"]).await,
        [None, None]
    );
    let mut bridge = b.login("bridge", &rand_id("bridge")).await;
    assert_eq!(bridge.subscribe(&["xueliang/#"]).await, [None]);
    let mut property = b.login("property-xingfu", &rand_id("property")).await;
    // One SUBSCRIBE, one filter granted and one refused: the codes in the client's order.
    assert_eq!(
        property
            .subscribe(&[
                "xueliang/alerts/#",
                "xueliang/alerts/xingfu/#",
                "$xueliang/#"
            ])
            .await,
        [None, Some(QoS::AtLeastOnce), None]
    );
    assert_eq!(b.refused().2, 5);
    let mut hub = b.hub_login(&format!("{}-out", b.hub)).await;
    hub.publish_acked(
        "xueliang/alerts/hexie/gate.forced_open",
        false,
        b"hexie".to_vec(),
    )
    .await;
    hub.publish_acked(
        "xueliang/alerts/xingfu/gate.forced_open",
        false,
        b"xingfu".to_vec(),
    )
    .await;
    let got = property
        .topics_until("xueliang/alerts/xingfu/gate.forced_open")
        .await;
    assert_eq!(
        got,
        ["xueliang/alerts/xingfu/gate.forced_open"],
        "another community's alert"
    );
    // Nothing reached the gate's account, which may read nothing; a refused PUBLISH's
    // stand-in reaches nobody.
    bridge
        .publish_acked("xueliang/alerts/xingfu/fake", false, b"forged".to_vec())
        .await;
    hub.publish_acked("xueliang/alerts/xingfu/marker", false, b"m".to_vec())
        .await;
    let got = property.topics_until("xueliang/alerts/xingfu/marker").await;
    assert_eq!(
        got,
        ["xueliang/alerts/xingfu/marker"],
        "a forged alert arrived"
    );
    assert_eq!(gate1.drain_publishes(), []);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hubs_retained_status_and_client_ids_are_the_hubs() {
    let b = Broker::start().await;
    let hub_id = format!("{}-out", b.hub);
    let mut hub = b.hub_login(&hub_id).await;
    assert_eq!(
        hub.subscribe(&["xueliang/#"]).await,
        [Some(QoS::AtLeastOnce)]
    );
    hub.publish_acked("xueliang/status", true, b"online".to_vec())
        .await;
    assert_eq!(
        hub.next_message().await.map(|m| m.1),
        Some(b"online".to_vec())
    );
    // An account that may publish on "#" still may not write the hub's topics: acknowledged
    // and dropped.
    let mut bridge = b.login("bridge", &rand_id("bridge")).await;
    bridge
        .publish_acked("xueliang/status", true, b"offline".to_vec())
        .await;
    bridge
        .publish_acked("xueliang/cameras/cam-1/status", true, b"{}".to_vec())
        .await;
    // Nor leave a will there, nor take the hub's client ids.
    let will = raw_connect(
        &rand_id("bridge"),
        Some(("bridge", &password("bridge"))),
        Some(("xueliang/status", "offline")),
    );
    assert_eq!(raw_exchange(b.addr(), &will).await, connack(5));
    for id in [hub_id.clone(), b.hub.clone(), format!("{}-anything", b.hub)] {
        let takeover = raw_connect(&id, Some(("bridge", &password("bridge"))), None);
        assert_eq!(raw_exchange(b.addr(), &takeover).await, connack(2), "{id}");
        assert_eq!(
            MqttClient::connect(b.port, &id, Some(("reader", &password("reader"))), true)
                .await
                .err(),
            Some(2)
        );
    }
    // The hub's connection is still the one under its id: its subscription still receives.
    hub.publish_acked("xueliang/marker", false, b"m".to_vec())
        .await;
    let got = hub.topics_until("xueliang/marker").await;
    assert_eq!(got, ["xueliang/marker"], "the hub received forged status");
    // A newcomer reads the hub's retained status, not the forged one.
    let mut reader = b.login("reader", &rand_id("reader")).await;
    assert_eq!(
        reader.subscribe(&["xueliang/status"]).await,
        [Some(QoS::AtLeastOnce)]
    );
    let (topic, payload, retain) = reader.next_message().await.expect("the retained status");
    assert_eq!(
        (topic.as_str(), payload.as_slice(), retain),
        ("xueliang/status", &b"online"[..], true)
    );
    assert_eq!(b.refused().1, 2);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_belongs_to_the_account_that_uses_it() {
    let b = Broker::start().await;
    let id = rand_id("door-gate-1");
    let gate1 = MqttClient::connect(b.port, &id, Some(("gate-1", &password("gate-1"))), false)
        .await
        .unwrap();
    assert!(!gate1.session_present);
    // While it is connected, another account cannot take its id.
    assert_eq!(
        MqttClient::connect(b.port, &id, Some(("gate-2", &password("gate-2"))), false)
            .await
            .err(),
        Some(2)
    );
    let mut gate1 = gate1;
    gate1
        .publish_acked(&b.gate_topic("gate-1"), false, hik_payload(20))
        .await;
    gate1.client.disconnect().await.unwrap();
    drop(gate1);
    tokio::time::sleep(GRACE).await;
    // Gone, its persistent session remembered: a clean-session CONNECT of another account
    // with its id is refused and forgets nothing.
    let clean = raw_connect(&id, Some(("gate-2", &password("gate-2"))), None);
    assert_eq!(raw_exchange(b.addr(), &clean).await, connack(2));
    // After a restart (rumqttd forgot everything; the front's sessions file did not), the
    // gate is told its session is still there.
    let Broker {
        gates,
        cfg,
        data,
        port,
        ..
    } = b;
    gates.stop().await;
    let (gates, _) = start_gates(cfg, &data).await;
    let again = MqttClient::connect(port, &id, Some(("gate-1", &password("gate-1"))), false)
        .await
        .unwrap();
    assert!(again.session_present, "the session was forgotten");
    drop(again);
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// Without accounts, a broker that the network reaches refuses to start unless
/// `allow_anonymous = true` says so; on loopback it starts and takes only the hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_without_accounts_is_open_only_when_the_config_says_so() {
    init_logs();
    let prefix = rand_id("xl-open");
    let text = |listen: &str, extra: &str| {
        format!(
            r#"
            [mqtt]
            embedded = true
            listen = "{listen}"
            {extra}
            [[mqtt.subscriptions]]
            filter = "{prefix}/gates/+/hik"
            firmware = "hikvision-isapi"
            gate_from = {{ topic_segment = 2 }}
            [[gates]]
            id = "gate-1"
            community = "xingfu"
            firmware = "hikvision-isapi"
            "#
        )
    };
    let port = free_port();
    let data = temp_dir("open");
    let registry = std::sync::Arc::new(xl_core::gate_status::GateRegistry::default());
    let open = parse_config(&text(&format!("0.0.0.0:{port}"), ""));
    let e = xl_gates::Gates::start(open, &data, std::sync::Arc::clone(&registry))
        .await
        .err()
        .expect("started open to the network without accounts");
    assert!(e.to_string().contains("allow_anonymous"), "{e}");

    // Loopback, no accounts: it starts, anonymous clients are refused, the hub gets in.
    let cfg = parse_config(&text(&format!("127.0.0.1:{port}"), ""));
    let hub_password = cfg.mqtt.as_ref().unwrap().hub_password.clone();
    let (gates, _) = start_gates(cfg, &data).await;
    assert_eq!(
        MqttClient::connect(port, &rand_id("anon"), None, true)
            .await
            .err(),
        Some(5)
    );
    let hub = MqttClient::connect(
        port,
        &rand_id("xueliang-hub"),
        Some((xl_gates::config::HUB_USERNAME, &hub_password)),
        true,
    )
    .await;
    assert!(hub.is_ok());
    drop(hub);
    gates.stop().await;

    // Said explicitly: anonymous clients may report for the gates, not write the hub's topics.
    let cfg = parse_config(&text(&format!("0.0.0.0:{port}"), "allow_anonymous = true"));
    let (gates, _) = start_gates(cfg, &data).await;
    let mut anon = MqttClient::connect(port, &rand_id("anon"), None, true)
        .await
        .unwrap();
    anon.publish_acked(
        &format!("{prefix}/gates/gate-1/hik"),
        false,
        hik_payload(30),
    )
    .await;
    anon.publish_acked("xueliang/status", true, b"offline".to_vec())
        .await;
    let events = wait_for_events(&data, 1, WAIT).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        gates.mqtt_status().unwrap().refused_publishes.load(Relaxed),
        1
    );
    drop(anon);
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}
