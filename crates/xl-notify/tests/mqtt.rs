//! MQTT out against the real Mosquitto (`XUELIANG_TEST_MQTT`, default 127.0.0.1:1883), and
//! against a scripted broker for what Mosquitto cannot be made to do (hold PUBACKs back).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use xl_core::alert::AlertChange;
use xl_core::{AlertKind, CameraId, OutboxEntry, Severity};
use xl_notify::{MqttOut, MqttOutConfig};

use common::*;

const WAIT: Duration = Duration::from_secs(10);

/// A config for `broker` with a random client id and topic prefix, and fast reconnects.
fn config(broker: SocketAddr) -> MqttOutConfig {
    toml::from_str(&format!(
        "url = \"mqtt://{broker}\"\nclient_id = \"{}\"\ntopic_prefix = \"{}\"\n\
         backoff_initial_secs = 0.05\nbackoff_max_secs = 0.2\npoll_interval_secs = 0.5\n",
        rand_id("xl-notify-test"),
        rand_id("xl-test"),
    ))
    .unwrap()
}

/// A message a subscriber got.
#[derive(Debug)]
struct Got {
    topic: String,
    retain: bool,
    payload: Vec<u8>,
}

impl Got {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap()
    }
}

/// A subscriber on the real broker, subscribed (SUBACK received) to `filter`.
struct Subscriber {
    rx: mpsc::UnboundedReceiver<Got>,
    /// Kept: dropping it closes the event loop's request channel.
    _client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    async fn start(broker: SocketAddr, filter: &str) -> Subscriber {
        let mut o = MqttOptions::new(rand_id("sub"), broker.ip().to_string(), broker.port());
        o.set_keep_alive(Duration::from_secs(5));
        let (client, mut el) = AsyncClient::new(o, 100);
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut subscribed = Some(subscribed_tx);
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(s) = subscribed.take() {
                            let _ = s.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(Got {
                            topic: p.topic.clone(),
                            retain: p.retain,
                            payload: p.payload.to_vec(),
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(WAIT, subscribed_rx)
            .await
            .expect("no SUBACK in time")
            .unwrap();
        Subscriber {
            rx,
            _client: client,
            task,
        }
    }

    async fn next(&mut self) -> Got {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("no message in time")
            .unwrap()
    }

    /// The next message whose JSON `state` is `state`.
    async fn next_state(&mut self, state: &str) -> Got {
        loop {
            let g = self.next().await;
            if g.json()["state"] == state {
                return g;
            }
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Removes retained messages a test left on the shared broker.
async fn clear_retained(broker: SocketAddr, topics: &[String]) {
    let mut o = MqttOptions::new(rand_id("clear"), broker.ip().to_string(), broker.port());
    o.set_keep_alive(Duration::from_secs(5));
    let (client, mut el) = AsyncClient::new(o, 100);
    for t in topics {
        client
            .publish(t, QoS::AtLeastOnce, true, Vec::new())
            .await
            .unwrap();
    }
    let mut acked = 0;
    let _ = tokio::time::timeout(WAIT, async {
        while acked < topics.len() {
            if let Ok(Event::Incoming(Packet::PubAck(_))) = el.poll().await {
                acked += 1;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn alerts_arrive_on_their_topics_and_the_cursor_follows_the_acks() {
    init_logs();
    let broker = test_broker();
    let cfg = config(broker);
    let prefix = cfg.topic_prefix.clone();
    let community = rand_id("cmty");
    let mut sub = Subscriber::start(broker, &format!("{prefix}/alerts/#")).await;
    let outbox = MemOutbox::new();
    let shutdown = CancellationToken::new();
    let (out, task) = MqttOut::start(
        cfg.clone(),
        Arc::clone(&outbox),
        outbox.watch(),
        shutdown.clone(),
    )
    .unwrap();
    let kinds = [
        AlertKind::GateForcedOpen,
        AlertKind::CameraOffline,
        AlertKind::CrowdGathering,
    ];
    for (n, kind) in kinds.iter().enumerate() {
        outbox.push(
            AlertChange::Raised,
            alert(&community, *kind, Severity::Major, n as u64),
        );
    }
    for (i, kind) in kinds.iter().enumerate() {
        let g = sub.next().await;
        assert_eq!(
            g.topic,
            format!("{prefix}/alerts/{community}/{}", kind.as_str())
        );
        assert!(!g.retain);
        let entry: OutboxEntry = serde_json::from_slice(&g.payload).unwrap();
        assert_eq!(entry, outbox.entry(i as i64 + 1));
    }
    assert_eq!(outbox.wait_cursor("mqtt", 3, WAIT).await, 3);
    let s = out.stats();
    assert!(s.connected);
    assert_eq!((s.alerts_acked, s.cursor), (3, 3));
    // Every cursor written was acknowledged, so never beyond what the subscriber got.
    let writes = outbox.cursor_writes.lock().unwrap().clone();
    assert!(
        writes
            .iter()
            .all(|(n, s)| n == "mqtt" && (1..=3).contains(s)),
        "{writes:?}"
    );

    shutdown.cancel();
    task.await.unwrap();
    clear_retained(broker, &[cfg.status_topic()]).await;
}

#[tokio::test]
async fn camera_status_is_retained_and_hub_status_goes_online_then_offline() {
    init_logs();
    let broker = test_broker();
    let cfg = config(broker);
    let mut status_sub = Subscriber::start(broker, &cfg.status_topic()).await;
    let outbox = MemOutbox::new();
    let shutdown = CancellationToken::new();
    let (out, task) = MqttOut::start(
        cfg.clone(),
        Arc::clone(&outbox),
        outbox.watch(),
        shutdown.clone(),
    )
    .unwrap();
    let online = status_sub.next_state("online").await;
    assert_eq!(online.json()["client_id"], cfg.client_id.as_str());

    let cam = CameraId::new("cam-7").unwrap();
    out.publish_camera_status(
        &cam,
        &serde_json::json!({"state": "streaming", "fps": 12.5}),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while out.stats().camera_statuses_acked < 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(out.stats().camera_statuses_acked, 1);
    // A subscriber arriving later gets it, flagged retained.
    let mut late =
        Subscriber::start(broker, &format!("{}/cameras/+/status", cfg.topic_prefix)).await;
    let g = late.next().await;
    assert_eq!(g.topic, cfg.camera_topic(&cam));
    assert!(g.retain);
    assert_eq!(
        g.json(),
        serde_json::json!({"state": "streaming", "fps": 12.5})
    );

    // A clean shutdown says offline itself.
    shutdown.cancel();
    task.await.unwrap();
    let offline = status_sub.next_state("offline").await;
    assert!(
        offline.json()["at"].is_string(),
        "not the will: {:?}",
        offline.json()
    );
    clear_retained(broker, &[cfg.status_topic(), cfg.camera_topic(&cam)]).await;
}

#[tokio::test]
async fn the_last_will_says_offline_when_the_publisher_dies() {
    init_logs();
    let broker = test_broker();
    let cfg = config(broker);
    let mut status_sub = Subscriber::start(broker, &cfg.status_topic()).await;
    let outbox = MemOutbox::new();
    let (_out, task) = MqttOut::start(
        cfg.clone(),
        Arc::clone(&outbox),
        outbox.watch(),
        CancellationToken::new(),
    )
    .unwrap();
    status_sub.next_state("online").await;
    // A crash: the connection drops without DISCONNECT.
    task.abort();
    let _ = task.await;
    let will = status_sub.next_state("offline").await;
    assert_eq!(will.json(), serde_json::json!({"state": "offline"}));
    // And it is retained: a new subscriber sees offline.
    let mut late = Subscriber::start(broker, &cfg.status_topic()).await;
    let g = late.next().await;
    assert!(g.retain);
    assert_eq!(g.json()["state"], "offline");
    clear_retained(broker, &[cfg.status_topic()]).await;
}

#[tokio::test]
async fn the_cursor_waits_for_puback_and_a_reconnect_republishes_from_it() {
    init_logs();
    let mut broker = ScriptedBroker::start().await;
    let mut cfg = config(broker.addr);
    cfg.max_inflight = 10;
    let outbox = MemOutbox::new();
    let shutdown = CancellationToken::new();
    let (out, task) =
        MqttOut::start(cfg, Arc::clone(&outbox), outbox.watch(), shutdown.clone()).unwrap();
    assert!(matches!(broker.next(WAIT).await, BrokerEvent::Connected));
    for n in 1..=3 {
        outbox.push(
            AlertChange::Raised,
            alert("xingfu", AlertKind::GateTamper, Severity::Critical, n),
        );
    }
    let mut pkids = Vec::new();
    for seq in 1..=3 {
        let (pkid, body) = broker.next_alert(WAIT).await;
        assert_eq!(body["seq"], seq);
        pkids.push(pkid);
    }
    // Published, not acknowledged: the cursor stays.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(outbox.stored_cursor("mqtt"), 0);
    assert_eq!(out.stats().cursor, 0);

    broker.send(BrokerCommand::PubAck(pkids[0]));
    broker.send(BrokerCommand::PubAck(pkids[1]));
    assert_eq!(outbox.wait_cursor("mqtt", 2, WAIT).await, 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        outbox.stored_cursor("mqtt"),
        2,
        "seq 3 was never acknowledged"
    );

    // The connection drops with seq 3 unacknowledged: it comes again, and only it.
    broker.send(BrokerCommand::Drop);
    loop {
        if let BrokerEvent::Connected = broker.next(WAIT).await {
            break;
        }
    }
    let (pkid, body) = broker.next_alert(WAIT).await;
    assert_eq!(body["seq"], 3);
    broker.send(BrokerCommand::PubAck(pkid));
    assert_eq!(outbox.wait_cursor("mqtt", 3, WAIT).await, 3);
    assert_eq!(out.stats().connections, 2);
    shutdown.cancel();
    task.await.unwrap();
}
