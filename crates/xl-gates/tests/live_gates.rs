//! Gates added, changed and removed while the transports run (`Gates::set_gates`, issue 16):
//! through a real Mosquitto and through the embedded broker, with HTTP push beside them. The
//! MQTT connections in use stay up throughout: the counters of connections made do not move,
//! and the same client gets every PUBACK.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use common::*;
use tower::ServiceExt;
use xl_core::GateId;
use xl_core::gate_status::GateRegistry;
use xl_gates::GateConfig;

const WAIT: Duration = Duration::from_secs(30);
const SECRET: &str = "first-push-secret-0123456789";
const NEW_SECRET: &str = "second-push-secret-0123456789";

/// `[[gates]]` entries parsed as the hub's config would be.
fn gate_list(text: &str) -> Vec<GateConfig> {
    parse_config(text).gates
}

fn gate(id: &str, extra: &str) -> String {
    format!(
        "[[gates]]\nid = \"{id}\"\ncommunity = \"xingfu\"\nfirmware = \"hikvision-isapi\"\n{extra}\n"
    )
}

fn push_gate(id: &str, secret: &str, transport: &str) -> String {
    gate(
        id,
        &format!("push_secret = \"{secret}\"\ntransport = \"{transport}\""),
    )
}

fn gid(id: &str) -> GateId {
    GateId::new(id).unwrap()
}

/// A Hikvision push of event `serial` for `gate` with `secret`, from 192.0.2.7: its status.
async fn push(router: &axum::Router, gate: &str, secret: &str, serial: u64) -> StatusCode {
    let peer: SocketAddr = "192.0.2.7:5000".parse().unwrap();
    let req = Request::post(format!("/gates/push/hikvision/{gate}?secret={secret}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(hik_payload(serial)))
        .unwrap();
    router
        .clone()
        .layer(MockConnectInfo(peer))
        .oneshot(req)
        .await
        .unwrap()
        .status()
}

/// (gate, serial) of the stored events, in the order stored.
fn stored(data: &Path) -> Vec<(String, u64)> {
    journal_events(data)
        .iter()
        .map(|e| {
            let serial = e.event.event_id.as_deref().unwrap().parse().unwrap();
            (e.gate.to_string(), serial)
        })
        .collect()
}

/// Waits until event `serial` of `gate` is stored.
async fn wait_stored(data: &Path, gate: &str, serial: u64) {
    let deadline = Instant::now() + WAIT;
    while !stored(data).contains(&(gate.to_owned(), serial)) {
        assert!(
            Instant::now() < deadline,
            "event {serial} of {gate} never stored; stored: {:?}",
            stored(data)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `n` dead letters are stored and returns their errors.
async fn wait_dead_letters(data: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let dead: Vec<String> = journal_dead_letters(data)
            .into_iter()
            .map(|d| d.error)
            .collect();
        if dead.len() >= n {
            return dead;
        }
        assert!(
            Instant::now() < deadline,
            "{n} dead letters expected: {dead:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn registered(registry: &GateRegistry) -> Vec<String> {
    registry
        .snapshot()
        .into_iter()
        .map(|(info, _)| info.id.to_string())
        .collect()
}

/// Through Mosquitto (the hub's persistent ingest session) and HTTP push: a gate added takes
/// both from its next payload, one removed is an unknown gate from then on while another
/// gate's events go on over the same connection, a new push secret refuses the old one, and
/// a gate that no longer takes MQTT is refused there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_and_push_follow_the_gates_without_reconnecting() {
    init_logs();
    let (broker, _own) = test_broker();
    let prefix = rand_id("xl-live");
    let data = temp_dir("live-mosquitto");
    let mut cfg = hik_config(broker, &prefix);
    cfg.gates
        .extend(gate_list(&gate("leaving", "offline_after_secs = 60")));
    let (gates, registry) = start_gates(cfg.clone(), &data).await;
    let router = gates.push_router();
    let status = Arc::clone(gates.mqtt_status().unwrap());
    let publisher = Publisher::start(broker);
    let topic = |gate: &str| format!("{prefix}/gates/{gate}/hik");
    // Give the hub's subscription time to reach the broker (it is QoS 1 from then on).
    tokio::time::sleep(Duration::from_millis(500)).await;

    publisher.publish(&topic("gate-1"), hik_payload(1)).await;
    wait_stored(&data, "gate-1", 1).await;
    // Not a gate yet: a dead letter over MQTT, refused over HTTP push.
    publisher.publish(&topic("newcomer"), hik_payload(2)).await;
    let dead = wait_dead_letters(&data, 1).await;
    assert!(dead[0].contains("\"newcomer\""), "{dead:?}");
    assert_eq!(
        push(&router, "newcomer", SECRET, 3).await,
        StatusCode::FORBIDDEN
    );
    let (_, gate1) = registry.get(&gid("gate-1")).unwrap();
    let seen = gate1.last_seen();
    assert!(gate1.is_online() && seen.is_some());

    // newcomer added (MQTT and HTTP push), leaving removed, gate-1 as it was.
    let mut now = cfg.gates.clone();
    now.retain(|g| g.id.as_str() != "leaving");
    now.extend(gate_list(&push_gate("newcomer", SECRET, "both")));
    gates.set_gates(now.clone()).unwrap();
    assert_eq!(registered(&registry), ["gate-1", "newcomer"]);
    assert_eq!(gates.ingest().gate_ids(), [gid("gate-1"), gid("newcomer")]);
    // gate-1 kept its health and figures.
    let (_, kept) = registry.get(&gid("gate-1")).unwrap();
    assert!(Arc::ptr_eq(&gate1, &kept));
    assert!(kept.is_online() && kept.last_seen() == seen);

    publisher.publish(&topic("newcomer"), hik_payload(4)).await;
    wait_stored(&data, "newcomer", 4).await;
    assert_eq!(push(&router, "newcomer", SECRET, 5).await, StatusCode::OK);
    wait_stored(&data, "newcomer", 5).await;
    // The removed gate's next payload is an unknown gate's; gate-1's go on.
    publisher.publish(&topic("leaving"), hik_payload(6)).await;
    publisher.publish(&topic("gate-1"), hik_payload(7)).await;
    wait_stored(&data, "gate-1", 7).await;
    let dead = wait_dead_letters(&data, 2).await;
    assert!(
        dead[1].contains("no [[gates]] entry") && dead[1].contains("\"leaving\""),
        "{dead:?}"
    );
    // Remembered keys stay: gate-1's first event again is a duplicate.
    publisher.publish(&topic("gate-1"), hik_payload(1)).await;
    publisher.publish(&topic("gate-1"), hik_payload(8)).await;
    wait_stored(&data, "gate-1", 8).await;
    assert_eq!(kept.duplicates.load(Relaxed), 1);

    // A new push secret: the old one is refused from now on.
    let with_secret = |secret: &str, transport: &str| {
        let mut v = cfg.gates.clone();
        v.retain(|g| g.id.as_str() != "leaving");
        v.extend(gate_list(&push_gate("newcomer", secret, transport)));
        v
    };
    gates.set_gates(with_secret(NEW_SECRET, "both")).unwrap();
    assert_eq!(
        push(&router, "newcomer", SECRET, 9).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        push(&router, "newcomer", NEW_SECRET, 10).await,
        StatusCode::OK
    );
    // HTTP push only now: its MQTT payloads are refused (not stored, no dead letter).
    gates
        .set_gates(with_secret(NEW_SECRET, "http-push"))
        .unwrap();
    let refused_before = status.refused_publishes.load(Relaxed);
    publisher.publish(&topic("newcomer"), hik_payload(11)).await;
    publisher.publish(&topic("gate-1"), hik_payload(12)).await;
    wait_stored(&data, "gate-1", 12).await;
    let deadline = Instant::now() + WAIT;
    while status.refused_publishes.load(Relaxed) == refused_before {
        assert!(
            Instant::now() < deadline,
            "the MQTT payload was not refused"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        push(&router, "newcomer", NEW_SECRET, 13).await,
        StatusCode::OK
    );

    assert!(
        publisher.wait_acked(9, WAIT).await,
        "the broker did not ack"
    );
    assert_eq!(
        stored(&data),
        [
            ("gate-1", 1),
            ("newcomer", 4),
            ("newcomer", 5),
            ("gate-1", 7),
            ("gate-1", 8),
            ("newcomer", 10),
            ("gate-1", 12),
            ("newcomer", 13),
        ]
        .map(|(g, s)| (g.to_owned(), s))
    );
    assert_eq!(journal_dead_letters(&data).len(), 2);
    // One connection to the broker all along.
    assert_eq!(status.connections.load(Relaxed), 1);
    assert!(status.connected.load(Relaxed));
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

#[cfg(feature = "embedded-broker")]
fn password(user: &str) -> String {
    format!("{user}-test-password-0123456789")
}

#[cfg(feature = "embedded-broker")]
/// The embedded broker: a bridge account for every gate and one for `gate-1` alone.
fn embedded_config(port: u16, prefix: &str) -> xl_gates::GatesConfig {
    let account = |user: &str, gates: &str| {
        format!(
            "[[mqtt.accounts]]\nusername = \"{user}\"\npassword = \"{}\"\ngates = {gates}\n",
            password(user)
        )
    };
    parse_config(&format!(
        "[mqtt]\nembedded = true\nlisten = \"127.0.0.1:{port}\"\nclient_id = \"{hub}\"\n\
         [[mqtt.subscriptions]]\nfilter = \"{prefix}/gates/+/hik\"\nfirmware = \"hikvision-isapi\"\n\
         gate_from = {{ topic_segment = 2 }}\n{bridge}{own}{g1}{g2}",
        hub = rand_id("hub"),
        bridge = account("bridge", "[\"*\"]"),
        own = account("gate-1", "[\"gate-1\"]"),
        g1 = gate("gate-1", ""),
        g2 = push_gate("gate-2", SECRET, "both"),
    ))
}

/// Through the embedded broker's front: the same, on one bridge connection that gets every
/// PUBACK; the front's access decisions follow the gates (a gate that no longer takes MQTT
/// is refused), and a list that fails is refused whole.
#[cfg(feature = "embedded-broker")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_follows_the_gates_without_reconnecting() {
    init_logs();
    let port = free_port();
    let prefix = rand_id("xl-live");
    let data = temp_dir("live-embedded");
    let cfg = embedded_config(port, &prefix);
    let (gates, registry) = start_gates(cfg.clone(), &data).await;
    let status = Arc::clone(gates.mqtt_status().unwrap());
    let topic = |gate: &str| format!("{prefix}/gates/{gate}/hik");
    let mut bridge = MqttClient::connect(
        port,
        &rand_id("bridge"),
        Some(("bridge", &password("bridge"))),
        true,
    )
    .await
    .unwrap();
    let connections = status.connections.load(Relaxed);

    // Not a gate yet: a dead letter.
    bridge
        .publish_acked(&topic("gate-3"), false, hik_payload(1))
        .await;
    let dead = wait_dead_letters(&data, 1).await;
    assert!(dead[0].contains("\"gate-3\""), "{dead:?}");
    bridge
        .publish_acked(&topic("gate-2"), false, hik_payload(2))
        .await;
    wait_stored(&data, "gate-2", 2).await;

    // A list that fails is refused whole, naming the gate and the field; nothing changes.
    let mut bad = cfg.gates.clone();
    bad.extend(gate_list(&gate("gate-3", "")));
    bad.extend(gate_list(
        &gate("gate-4", "").replace("hikvision-isapi", "hikvision-isap"),
    ));
    let e = gates.set_gates(bad.clone()).unwrap_err().to_string();
    assert!(
        e.contains("gates[3] (id \"gate-4\")") && e.contains("unknown firmware"),
        "{e}"
    );
    assert_eq!(gates.check_gates(&bad).unwrap_err().to_string(), e);
    // gate-1 is still an account's gate: it cannot go while the account names it.
    let without_gate1: Vec<GateConfig> = cfg
        .gates
        .iter()
        .filter(|g| g.id.as_str() != "gate-1")
        .cloned()
        .collect();
    let e = gates.set_gates(without_gate1).unwrap_err().to_string();
    assert!(
        e.contains("mqtt.accounts[1] (username \"gate-1\")") && e.contains("\"gate-1\""),
        "{e}"
    );
    assert_eq!(gates.ingest().gate_ids(), [gid("gate-1"), gid("gate-2")]);
    assert_eq!(registered(&registry), ["gate-1", "gate-2"]);
    bridge
        .publish_acked(&topic("gate-3"), false, hik_payload(3))
        .await;
    let dead = wait_dead_letters(&data, 2).await;
    assert!(dead[1].contains("\"gate-3\""), "{dead:?}");

    // gate-3 added: stored from its next payload.
    let mut with3 = cfg.gates.clone();
    with3.extend(gate_list(&gate("gate-3", "")));
    gates.set_gates(with3.clone()).unwrap();
    assert_eq!(registered(&registry), ["gate-1", "gate-2", "gate-3"]);
    bridge
        .publish_acked(&topic("gate-3"), false, hik_payload(4))
        .await;
    wait_stored(&data, "gate-3", 4).await;

    // gate-3 removed again: an unknown gate's payload; gate-1's go on on the same connection.
    gates.set_gates(cfg.gates.clone()).unwrap();
    assert_eq!(registered(&registry), ["gate-1", "gate-2"]);
    bridge
        .publish_acked(&topic("gate-3"), false, hik_payload(5))
        .await;
    bridge
        .publish_acked(&topic("gate-1"), false, hik_payload(6))
        .await;
    wait_stored(&data, "gate-1", 6).await;
    let dead = wait_dead_letters(&data, 3).await;
    assert!(dead[2].contains("\"gate-3\""), "{dead:?}");

    // gate-2 from both to HTTP push only: the front refuses its MQTT payloads from now on.
    let mut push_only = cfg.gates.clone();
    push_only.retain(|g| g.id.as_str() != "gate-2");
    push_only.extend(gate_list(&push_gate("gate-2", SECRET, "http-push")));
    let refused_before = status.refused_publishes.load(Relaxed);
    gates.set_gates(push_only).unwrap();
    bridge
        .publish_acked(&topic("gate-2"), false, hik_payload(7))
        .await;
    bridge
        .publish_acked(&topic("gate-1"), false, hik_payload(8))
        .await;
    wait_stored(&data, "gate-1", 8).await;
    assert_eq!(status.refused_publishes.load(Relaxed), refused_before + 1);
    let router = gates.push_router();
    assert_eq!(push(&router, "gate-2", SECRET, 9).await, StatusCode::OK);

    assert_eq!(
        stored(&data),
        [
            ("gate-2", 2),
            ("gate-3", 4),
            ("gate-1", 6),
            ("gate-1", 8),
            ("gate-2", 9),
        ]
        .map(|(g, s)| (g.to_owned(), s))
    );
    assert_eq!(journal_dead_letters(&data).len(), 3);
    // The bridge's one connection carried it all; the broker never restarted.
    assert_eq!(status.connections.load(Relaxed), connections);
    assert!(status.connected.load(Relaxed));
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// A new list is checked as the config is at start: each mistake is refused with the gate and
/// the field named (no secret), and the gates stay as they were.
#[tokio::test]
async fn a_new_list_is_checked_as_at_start() {
    let data = temp_dir("live-checks");
    let cfg = parse_config(&gate("lobby", ""));
    let (gates, _registry) = start_gates(cfg, &data).await;
    for (list, want) in [
        (
            gate("lobby", "") + &gate("lobby", ""),
            "gates[1] (id \"lobby\"): duplicate gate id",
        ),
        (
            gate("lobby", "") + &gate("b", "timezone = \"Mars/Base\""),
            "gates[1] (id \"b\"): timezone \"Mars/Base\"",
        ),
        (
            gate("lobby", "transport = \"http-push\""),
            "gates[0] (id \"lobby\"): transport takes HTTP push",
        ),
        (
            gate("lobby", "push_secret = \"short\""),
            "push_secret is shorter than 16",
        ),
    ] {
        let e = gates.set_gates(gate_list(&list)).unwrap_err();
        assert_eq!(e.kind(), xl_core::ErrorKind::InvalidInput);
        assert!(e.to_string().contains(want), "{want:?} not in {e}");
        assert!(!e.to_string().contains("short\""), "a secret in {e}");
    }
    assert_eq!(gates.ingest().gate_ids(), [gid("lobby")]);
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}
