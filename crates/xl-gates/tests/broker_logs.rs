//! What the embedded broker writes to the log when gates come and go normally: rumqttd reports
//! ordinary disconnects at ERROR, and the hub's log filter (`is_rumqttd_disconnect_noise`) must
//! recognise exactly those lines, so a real rumqttd error still reaches the operator. A test
//! binary of its own: it installs the process-wide subscriber that captures the events.

#![cfg(feature = "embedded-broker")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use xl_gates::is_rumqttd_disconnect_noise;

#[derive(Clone)]
struct Captured {
    noise: bool,
    site: String,
    message: String,
}

struct Capture(Arc<Mutex<Vec<Captured>>>);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        if !meta.target().starts_with("rumqttd") || *meta.level() > tracing::Level::WARN {
            return;
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        self.0.lock().unwrap().push(Captured {
            noise: is_rumqttd_disconnect_noise(meta),
            site: format!(
                "{} {}:{}",
                meta.level(),
                meta.file().unwrap_or("?"),
                meta.line().unwrap_or(0)
            ),
            message: m.0,
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_that_disconnect_normally_leave_only_recognised_rumqttd_errors() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(Capture(Arc::clone(&seen))),
    )
    .unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let prefix = rand_id("xl-test");
    let data = temp_dir("broker-logs");
    let (gates, _) = start_gates(hik_config_embedded(addr, &prefix), &data).await;
    // Three gates: one publishes and says DISCONNECT, one publishes and drops its socket, one
    // keeps a persistent session and says DISCONNECT.
    for (i, clean) in [(1, true), (2, true), (3, false)] {
        let mut o = rumqttc::MqttOptions::new(rand_id("hik"), "127.0.0.1", addr.port());
        o.set_clean_session(clean)
            .set_credentials(GATE_USER, GATE_PASSWORD);
        let (client, mut el) = rumqttc::AsyncClient::new(o, 10);
        let topic = format!("{prefix}/gates/gate-1/hik");
        client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, hik_payload(i))
            .await
            .unwrap();
        // until the PUBACK
        loop {
            match el.poll().await.unwrap() {
                rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) => break,
                _ => continue,
            }
        }
        if i != 2 {
            client.disconnect().await.unwrap();
            while el.poll().await.is_ok() {}
        }
        drop(el);
    }
    let events = wait_for_events(&data, 3, Duration::from_secs(30)).await;
    assert_eq!(unique_serials(&events).len(), 3);
    tokio::time::sleep(Duration::from_secs(1)).await;
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);

    let seen = seen.lock().unwrap().clone();
    let unrecognised: Vec<String> = seen
        .iter()
        .filter(|c| !c.noise)
        .map(|c| format!("{}: {}", c.site, c.message))
        .collect();
    assert!(
        unrecognised.is_empty(),
        "rumqttd warned or erred where no filter expects it (a new rumqttd version moves its \
         lines: update is_rumqttd_disconnect_noise): {unrecognised:#?}"
    );
    // the filter is not vacuous: ordinary disconnects do produce the lines it drops
    assert!(
        !seen.is_empty(),
        "rumqttd logged nothing at WARN or ERROR: is the filter still needed?"
    );
}
