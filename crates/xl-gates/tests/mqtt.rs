//! MQTT ingest against real brokers: Mosquitto (`XUELIANG_TEST_MQTT`, default
//! 127.0.0.1:1883, else one started here) and the hub's embedded broker.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::*;
use xl_core::GateId;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_events_arrive_once_and_garbage_goes_to_dead_letters() {
    init_logs();
    let (broker, _own) = test_broker();
    let prefix = rand_id("xl-test");
    let data = temp_dir("once");
    let (gates, registry) = start_gates(hik_config(broker, &prefix), &data).await;
    let mut rx = gates.subscribe();
    let publisher = Publisher::start(broker);
    let topic = format!("{prefix}/gates/gate-1/hik");
    // Give the hub's subscription time to reach the broker (it is QoS 1 from then on).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for seq in 0..50 {
        publisher.publish(&topic, hik_payload(seq)).await;
    }
    // The device resends ten records (same serial numbers), then sends junk, then more.
    for seq in 0..10 {
        publisher.publish(&topic, hik_payload(seq)).await;
    }
    publisher
        .publish(&topic, b"\x00\x01 not json {".to_vec())
        .await;
    publisher
        .publish(
            &format!("{prefix}/gates/no-such-gate/hik"),
            hik_payload(999),
        )
        .await;
    for seq in 50..60 {
        publisher.publish(&topic, hik_payload(seq)).await;
    }
    assert!(publisher.wait_acked(72, WAIT).await, "broker did not ack");
    let events = wait_for_events(&data, 60, WAIT).await;
    // Let any stray duplicate land before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events_after = journal_events(&data);
    assert_eq!(events_after.len(), events.len());
    let serials = unique_serials(&events);
    assert_eq!(serials, (0..60).collect());
    let e = &events[0];
    assert_eq!(e.gate.as_str(), "gate-1");
    assert_eq!(e.camera.as_ref().map(|c| c.as_str()), Some("cam-1"));
    assert_eq!(e.event.kind.as_str(), "access_granted");
    assert_eq!(e.source, topic);

    let dead = journal_dead_letters(&data);
    assert_eq!(dead.len(), 2, "{dead:#?}");
    let junk = dead
        .iter()
        .find(|d| d.topic.as_deref() == Some(topic.as_str()))
        .unwrap();
    assert_eq!(junk.raw().unwrap(), b"\x00\x01 not json {");
    assert!(
        junk.error.contains("hikvision-isapi payload"),
        "{}",
        junk.error
    );
    let stray = dead
        .iter()
        .find(|d| d.topic.as_deref() != Some(topic.as_str()))
        .unwrap();
    assert!(stray.error.contains("no-such-gate"), "{}", stray.error);

    let (_, stats) = registry.get(&GateId::new("gate-1").unwrap()).unwrap();
    // the figures follow the journal's commit on the writer's callback: a loaded machine may
    // lag them behind what is already readable in the journal
    let t0 = std::time::Instant::now();
    while stats.events.load(Relaxed) < 60 && t0.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stats.events.load(Relaxed), 60);
    assert_eq!(stats.duplicates.load(Relaxed), 10);
    assert!(stats.is_online());
    assert_eq!(stats.latency.count(), 60);
    assert_eq!(
        registry
            .unattributed("hikvision-isapi")
            .dead_letters
            .load(Relaxed),
        2
    );
    // Subscribers saw each stored event once.
    let mut seen = 0;
    while let Ok(ev) = rx.try_recv() {
        assert_eq!(ev.gate.as_str(), "gate-1");
        seen += 1;
    }
    assert_eq!(seen, 60);
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// Publishes `n` events at about `per_sec`, calling `between(i)` before each.
async fn publish_paced(p: &Publisher, topic: &str, range: std::ops::Range<u64>, per_sec: u64) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = (per_sec / 100).max(1);
    let mut seq = range.start;
    while seq < range.end {
        tick.tick().await;
        for _ in 0..per_tick {
            if seq >= range.end {
                break;
            }
            p.publish(topic, hik_payload(seq)).await;
            seq += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_restarted_mid_stream_loses_nothing() {
    init_logs();
    let mut mosq = Mosquitto::start();
    let broker = mosq.addr();
    let prefix = rand_id("xl-test");
    let data = temp_dir("broker-restart");
    let (gates, registry) = start_gates(hik_config(broker, &prefix), &data).await;
    let publisher = Publisher::start(broker);
    let topic = format!("{prefix}/gates/gate-1/hik");
    tokio::time::sleep(Duration::from_millis(500)).await;
    const N: u64 = 600;
    publish_paced(&publisher, &topic, 0..200, 200).await;
    // The broker goes away mid-stream; the gates keep publishing (their client queues).
    let restart = tokio::task::spawn_blocking(move || {
        mosq.restart(Duration::from_millis(1500));
        mosq
    });
    publish_paced(&publisher, &topic, 200..N, 200).await;
    let _mosq = restart.await.unwrap();
    let all_acked = publisher.wait_acked(N, WAIT).await;
    let events = wait_for_events(&data, N as usize, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let serials = unique_serials(&journal_events(&data));
    let missing: Vec<u64> = (0..N).filter(|s| !serials.contains(s)).collect();
    eprintln!(
        "acked {} of {N}; stored {}; missing {missing:?}",
        publisher.acked(),
        serials.len()
    );
    assert!(
        all_acked,
        "the broker acked only {} of {N}",
        publisher.acked()
    );
    assert_eq!(serials, (0..N).collect(), "{} of {N} stored", events.len());
    let status = gates.mqtt_status().unwrap();
    assert!(status.connections.load(Relaxed) >= 2, "no reconnect seen");
    let (_, stats) = registry.get(&GateId::new("gate-1").unwrap()).unwrap();
    assert_eq!(stats.events.load(Relaxed), N);
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_forgot_the_session_gets_the_subscriptions_again() {
    init_logs();
    let mut mosq = Mosquitto::start_with(false);
    let broker = mosq.addr();
    let prefix = rand_id("xl-test");
    let data = temp_dir("resubscribe");
    let (gates, _) = start_gates(hik_config(broker, &prefix), &data).await;
    let topic = format!("{prefix}/gates/gate-1/hik");
    let publisher = Publisher::start(broker);
    tokio::time::sleep(Duration::from_millis(500)).await;
    publish_paced(&publisher, &topic, 0..20, 200).await;
    assert_eq!(wait_for_events(&data, 20, WAIT).await.len(), 20);
    let mosq = tokio::task::spawn_blocking(move || {
        mosq.restart(Duration::from_millis(500));
        mosq
    })
    .await
    .unwrap();
    // Wait for the hub to be back (a new session: it must subscribe again).
    let status = std::sync::Arc::clone(gates.mqtt_status().unwrap());
    let deadline = std::time::Instant::now() + WAIT;
    while !(status.connections.load(Relaxed) >= 2 && status.connected.load(Relaxed)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the hub did not reconnect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let publisher = Publisher::start(broker);
    publish_paced(&publisher, &topic, 20..40, 200).await;
    let serials = unique_serials(&wait_for_events(&data, 40, WAIT).await);
    assert_eq!(serials, (0..40).collect());
    gates.stop().await;
    drop(mosq);
    let _ = std::fs::remove_dir_all(&data);
}

/// The hub crashes (tasks aborted, no DISCONNECT) and restarts with the same data directory
/// while the gate keeps publishing to `broker` (the hub's own, with the embedded broker).
/// `acks_mean_stored`: the broker is the hub's, so every message acknowledged before the
/// crash must be stored by then.
async fn hub_restart_loses_nothing(
    broker: std::net::SocketAddr,
    cfg: impl Fn(&str) -> xl_gates::GatesConfig,
    acks_mean_stored: bool,
) {
    let prefix = rand_id("xl-test");
    let data = temp_dir("hub-restart");
    let cfg = cfg(&prefix);
    let (gates, _) = start_gates(cfg.clone(), &data).await;
    let publisher = Publisher::start(broker);
    let topic = format!("{prefix}/gates/gate-1/hik");
    tokio::time::sleep(Duration::from_millis(500)).await;
    const N: u64 = 600;
    publish_paced(&publisher, &topic, 0..200, 200).await;
    gates.abort().await;
    if acks_mean_stored {
        // One connection, acknowledged in order: the first `acked` serials.
        let acked = publisher.acked();
        let stored = unique_serials(&journal_events(&data));
        let lost: Vec<u64> = (0..acked).filter(|s| !stored.contains(s)).collect();
        assert!(acked > 100, "only {acked} acknowledged before the crash");
        assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    }
    publish_paced(&publisher, &topic, 200..400, 200).await;
    let (gates, registry) = start_gates(cfg, &data).await;
    publish_paced(&publisher, &topic, 400..N, 200).await;
    assert!(
        publisher.wait_acked(N, WAIT).await,
        "broker acked {}",
        publisher.acked()
    );
    wait_for_events(&data, N as usize, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let serials = unique_serials(&journal_events(&data));
    assert_eq!(serials, (0..N).collect(), "{} of {N} stored", serials.len());
    let (_, stats) = registry.get(&GateId::new("gate-1").unwrap()).unwrap();
    assert!(
        stats.events.load(Relaxed) >= 200,
        "the restarted hub stored too little"
    );
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_restarted_while_gates_publish_loses_nothing_mosquitto() {
    init_logs();
    let (broker, _own) = test_broker();
    hub_restart_loses_nothing(broker, |prefix| hik_config(broker, prefix), false).await;
}

/// With the embedded broker the gates lose their broker too when the hub crashes: what it
/// acknowledged must already be stored, and what it had not must come again (the gate is
/// told its session is still there, so it sends its unacknowledged messages again).
#[cfg(feature = "embedded-broker")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_restarted_while_gates_publish_loses_nothing_embedded_broker() {
    init_logs();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    hub_restart_loses_nothing(addr, |prefix| hik_config_embedded(addr, prefix), true).await;
}

#[cfg(feature = "embedded-broker")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_started_by_the_config_delivers() {
    init_logs();
    let port = free_port();
    let prefix = rand_id("xl-test");
    let data = temp_dir("embedded");
    let cfg = parse_config(&format!(
        r#"
        [mqtt]
        embedded = true
        listen = "127.0.0.1:{port}"
        [[mqtt.subscriptions]]
        filter = "{prefix}/+/rfid"
        firmware = "esp-rfid"
        gate_from = {{ topic_segment = 1 }}
        [[mqtt.accounts]]
        username = "esp-door-7"
        password = "pw-for-the-test-door-7"
        gates = ["door-7"]
        [[gates]]
        id = "door-7"
        community = "xingfu"
        firmware = "esp-rfid"
        "#
    ));
    let (gates, _) = start_gates(cfg, &data).await;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut o = rumqttc::MqttOptions::new(rand_id("esp"), "127.0.0.1", port);
    o.set_credentials("esp-door-7", "pw-for-the-test-door-7");
    let (client, mut el) = rumqttc::AsyncClient::new(o, 10);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    let fixture = include_bytes!(
        "../../../firmware-adapters/esp-rfid/testdata/esp-rfid_access_known-user.json"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    client
        .publish(
            format!("{prefix}/door-7/rfid"),
            rumqttc::QoS::AtLeastOnce,
            false,
            fixture.to_vec(),
        )
        .await
        .unwrap();
    let events = wait_for_events(&data, 1, WAIT).await;
    assert_eq!(events.len(), 1, "{addr}");
    assert_eq!(events[0].gate.as_str(), "door-7");
    assert_eq!(events[0].event.kind.as_str(), "access_granted");

    // A wrong password with a PUBLISH right behind the CONNECT (MQTT lets a client send before
    // its CONNACK): refused, and nothing of it stored.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let login = Some(("esp-door-7", "not-the-password"));
    let bytes = [
        connect_packet("intruder", true, 30, login, None),
        raw_publish(&format!("{prefix}/door-7/rfid"), 1, fixture),
    ]
    .concat();
    s.write_all(&bytes).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut reply)).await;
    assert!(
        reply.is_empty() || (reply[0] == 0x20 && reply[3] != 0),
        "not refused: {reply:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        journal_events(&data).len(),
        1,
        "the refused client's event was stored"
    );
    assert!(journal_dead_letters(&data).is_empty());
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// Every MQTT-carried fixture of ../shared/fixtures/gates on its real topic, through a real
/// Mosquitto (our own: real topic names, no collisions), into stored events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mqtt_fixture_arrives_through_mosquitto() {
    init_logs();
    let mosq = Mosquitto::start();
    let broker = mosq.addr();
    let data = temp_dir("fixtures");
    let cfg = parse_config(&format!(
        r#"
        [mqtt]
        url = "mqtt://{broker}"
        client_id = "{client}"
        [[mqtt.subscriptions]]
        filter = "DahuaVTO/+/Event"
        firmware = "dahua"
        gate_from = {{ gate = "vto" }}
        [[mqtt.subscriptions]]
        filter = "esprfid/+/send"
        firmware = "esp-rfid"
        gate_from = {{ topic_segment = 1 }}
        [[mqtt.subscriptions]]
        filter = "zigbee2mqtt/+"
        firmware = "zigbee2mqtt"
        [[mqtt.subscriptions]]
        filter = "hik/+/event"
        firmware = "hikvision-isapi"
        gate_from = {{ topic_segment = 1 }}
        [[gates]]
        id = "vto"
        community = "xingfu"
        firmware = "dahua"
        [[gates]]
        id = "bike-shed"
        community = "xingfu"
        firmware = "esp-rfid"
        [[gates]]
        id = "front"
        community = "xingfu"
        firmware = "zigbee2mqtt"
        device = "front_door"
        [[gates]]
        id = "lobby"
        community = "xingfu"
        firmware = "hikvision-isapi"
        "#,
        client = rand_id("hub")
    ));
    let (gates, _) = start_gates(cfg, &data).await;
    let publisher = Publisher::start(broker);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fixtures: [(&str, &[u8], &str, &str); 4] = [
        (
            "DahuaVTO/AccessControl/Event",
            include_bytes!(
                "../../../firmware-adapters/dahua/testdata/dahua_vto2mqtt_remote-open.json"
            ),
            "vto",
            "access_granted",
        ),
        (
            "esprfid/bike-shed/send",
            include_bytes!(
                "../../../firmware-adapters/esp-rfid/testdata/esp-rfid_access_known-user.json"
            ),
            "bike-shed",
            "access_granted",
        ),
        (
            "zigbee2mqtt/front_door",
            include_bytes!(
                "../../../firmware-adapters/zigbee2mqtt/testdata/zigbee2mqtt_contact-sensor_door-open.json"
            ),
            "front",
            "door_opened",
        ),
        (
            "hik/lobby/event",
            include_bytes!(
                "../../../firmware-adapters/hikvision-isapi/testdata/hikvision_acs-event_poll-record_door-unlocked.json"
            ),
            "lobby",
            "door_unlocked",
        ),
    ];
    for (topic, payload, _, _) in fixtures {
        publisher.publish(topic, payload.to_vec()).await;
    }
    let events = wait_for_events(&data, fixtures.len(), WAIT).await;
    assert!(
        journal_dead_letters(&data).is_empty(),
        "{:#?}",
        journal_dead_letters(&data)
    );
    for (topic, _, gate, kind) in fixtures {
        let e = events
            .iter()
            .find(|e| e.source == topic)
            .unwrap_or_else(|| panic!("nothing stored from {topic}: {events:#?}"));
        assert_eq!(
            (e.gate.as_str(), e.event.kind.as_str()),
            (gate, kind),
            "{topic}"
        );
    }
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// A hub config for a TLS broker (`mqtts://localhost:{port}`), with `ca_file` if given.
fn hik_tls_config(
    port: u16,
    prefix: &str,
    ca_file: Option<&std::path::Path>,
) -> xl_gates::GatesConfig {
    let ca = ca_file
        .map(|p| format!("ca_file = {:?}", p.display().to_string()))
        .unwrap_or_default();
    hik_config_at(&format!("mqtts://localhost:{port}"), &ca, prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_ca_file_delivers_and_without_it_the_certificate_is_refused() {
    init_logs();
    let mosq = Mosquitto::start_tls();
    let ca = mosq.tls_ca();
    let prefix = rand_id("xl-test");
    let data = temp_dir("tls");
    let data_untrusted = temp_dir("tls-untrusted");
    let (gates, registry) = start_gates(hik_tls_config(mosq.port, &prefix, Some(&ca)), &data).await;
    // The same broker with the system's CA certificates only: the throwaway CA is not among
    // them, so the handshake must fail.
    let (untrusted, _) =
        start_gates(hik_tls_config(mosq.port, &prefix, None), &data_untrusted).await;
    let status = std::sync::Arc::clone(gates.mqtt_status().unwrap());
    let deadline = std::time::Instant::now() + WAIT;
    while !status.connected.load(Relaxed) {
        assert!(
            std::time::Instant::now() < deadline,
            "no TLS connection with ca_file"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A different TLS client (libmosquitto/OpenSSL) publishes, verifying the broker too.
    let topic = format!("{prefix}/gates/gate-1/hik");
    const N: u64 = 5;
    for seq in 0..N {
        let f = data.join(format!("payload-{seq}.json"));
        std::fs::write(&f, hik_payload(seq)).unwrap();
        let out = tokio::process::Command::new("mosquitto_pub")
            .args(["-h", "localhost", "-p", &mosq.port.to_string(), "--cafile"])
            .arg(&ca)
            .args(["-q", "1", "-t", &topic, "-f"])
            .arg(&f)
            .output()
            .await
            .expect("mosquitto_pub is not installed (scripts/setup installs it)");
        assert!(
            out.status.success(),
            "mosquitto_pub: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let events = wait_for_events(&data, N as usize, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(journal_events(&data).len(), events.len());
    assert_eq!(unique_serials(&events), (0..N).collect());
    assert!(events.iter().all(|e| e.gate.as_str() == "gate-1"));
    let (_, stats) = registry.get(&GateId::new("gate-1").unwrap()).unwrap();
    assert_eq!(stats.events.load(Relaxed), N);
    assert_eq!(status.connections.load(Relaxed), 1);

    // Without ca_file: never connected (it kept retrying for the whole test), nothing stored.
    let bad = untrusted.mqtt_status().unwrap();
    assert_eq!(bad.connections.load(Relaxed), 0);
    assert!(!bad.connected.load(Relaxed));
    assert_eq!(bad.messages.load(Relaxed), 0);
    assert!(journal_events(&data_untrusted).is_empty());

    untrusted.stop().await;
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&data_untrusted);
}
