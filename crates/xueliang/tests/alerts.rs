//! Alerts through the whole hub, against the real Mosquitto (`XUELIANG_TEST_MQTT`, default
//! 127.0.0.1:1883):
//! - a door-forced payload becomes a gate.forced_open alert carrying the gate camera's
//!   snapshot, in the store and on MQTT out;
//! - the hub process killed with SIGKILL while gates keep publishing loses no event and raises
//!   no alert twice, with the gates on Mosquitto and with the gates on the hub's own embedded
//!   broker (which dies with it);
//! - on simulated clocks (no broker needed): a forced door pushed over HTTP raises an alert at
//!   the simulated receipt time, and the alert nobody acknowledged escalates at its deadline
//!   once the clocks are advanced past it, while the one a guard acknowledged does not.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use xl_core::alert::AlertAction;
use xl_core::clock::{Clocks, SimulatedClocks};
use xl_core::{Alert, AlertKind, AlertState, CameraId};
use xl_store::{AlertFilter, Store};
use xueliang::config::Config;
use xueliang::hub::Hub;

mod common;
use common::{broker, forced_open, temp_dir, vtest};

/// A test MQTT client whose event loop runs in the background; returns the client and a
/// channel of (topic, payload) for what it receives.
async fn client(
    id: &str,
    subscribe: Option<&str>,
) -> (
    AsyncClient,
    tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
) {
    let (host, port) = broker();
    let mut opts = MqttOptions::new(format!("{id}-{:x}", rand::random::<u32>()), host, port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (c, mut el) = AsyncClient::new(opts, 1000);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (sub_tx, sub_rx) = tokio::sync::oneshot::channel();
    let mut sub_tx = Some(sub_tx);
    if let Some(filter) = subscribe {
        c.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    } else if let Some(t) = sub_tx.take() {
        let _ = t.send(());
    }
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(t) = sub_tx.take() {
                        let _ = t.send(());
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), sub_rx)
        .await
        .expect("broker did not answer: is Mosquitto running (XUELIANG_TEST_MQTT)?")
        .unwrap();
    (c, rx)
}

fn hub_config(data: &Path, prefix: &str, community: &str, extra: &str) -> String {
    let (host, port) = broker();
    hub_config_on(
        data,
        prefix,
        community,
        &format!("url = \"mqtt://{host}:{port}\""),
        extra,
    )
}

/// The hub's config with `mqtt` saying where the broker is; MQTT out uses that broker too
/// (client id `{prefix}-hub-out`).
fn hub_config_on(data: &Path, prefix: &str, community: &str, mqtt: &str, extra: &str) -> String {
    format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        api_token = "test-token"
        data_dir = "{data}"
        [log]
        filter = "info"
        [detect]
        enabled = false
        [mqtt]
        {mqtt}
        client_id = "{prefix}-hub"
        [[mqtt.subscriptions]]
        filter = "{prefix}/+/event"
        firmware = "hikvision-isapi"
        gate_from = {{ topic_segment = 1 }}
        [[cameras]]
        id = "lobby-cam"
        community = "{community}"
        file = "{video}"
        {extra}
        "#,
        data = data.display(),
        video = vtest(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_door_raises_an_alert_with_the_gate_cameras_snapshot_in_the_store_and_on_mqtt() {
    let data = temp_dir("alerts-e2e");
    let prefix = format!("xl-e2e-{:x}", rand::random::<u32>());
    let community = format!("c{:x}", rand::random::<u32>());
    let text = hub_config(
        &data,
        &prefix,
        &community,
        &format!(
            r#"
        [[gates]]
        id = "lobby"
        community = "{community}"
        firmware = "hikvision-isapi"
        camera = "lobby-cam"
        "#
        ),
    );
    let hub = Hub::start(Config::parse(&text).unwrap()).await.unwrap();
    let (_sub, mut alerts) = client(
        "e2e-sub",
        Some(&format!("xueliang/alerts/{community}/gate.forced_open")),
    )
    .await;
    let (gate, _) = client("e2e-gate", None).await;
    // The gate camera's ring needs a frame or two first.
    let cam = CameraId::new("lobby-cam").unwrap();
    let t0 = Instant::now();
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
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "camera delivers no frames"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let sent = Instant::now();
    gate.publish(
        format!("{prefix}/lobby/event"),
        QoS::AtLeastOnce,
        false,
        forced_open(7001),
    )
    .await
    .unwrap();
    let (topic, payload) = tokio::time::timeout(Duration::from_secs(10), alerts.recv())
        .await
        .expect("no alert on MQTT within 10 s")
        .unwrap();
    let latency = sent.elapsed();
    println!(
        "door forced -> alert on MQTT: {:.0} ms",
        latency.as_secs_f64() * 1e3
    );
    assert_eq!(
        topic,
        format!("xueliang/alerts/{community}/gate.forced_open")
    );
    let entry: xl_core::OutboxEntry = serde_json::from_slice(&payload).unwrap();
    assert_eq!(entry.alert.kind, AlertKind::GateForcedOpen);
    assert_eq!(entry.alert.state, AlertState::Open);
    assert_eq!(entry.alert.gate.as_ref().map(|g| g.as_str()), Some("lobby"));
    let snap = entry
        .alert
        .snapshot
        .clone()
        .expect("the alert carries a snapshot");

    // The store has the alert, its history and the snapshot, whose file is a JPEG of the
    // camera's frame.
    let detail = hub.store.alert(&entry.alert.id).await.unwrap().unwrap();
    assert_eq!(detail.alert.snapshot.as_deref(), Some(snap.as_str()));
    let row = hub.store.snapshot(&snap).await.unwrap().unwrap();
    assert_eq!(row.camera.as_ref(), Some(&cam));
    let jpeg = std::fs::read(data.join("snapshots").join(&row.path)).unwrap();
    let img = image::load_from_memory(&jpeg).unwrap();
    assert_eq!((img.width(), img.height()), (row.width, row.height));
    assert!(
        img.width() >= 320,
        "a real frame, not a stub: {}",
        img.width()
    );

    // The alert holds its clip of the gate's camera from 10 s before it was raised to 20 s
    // after (the rule's defaults), with no end while it is open; resolving it ends the hold
    // `[recording] evidence_days` (30) later.
    let a = &detail.alert;
    let holder = xl_store::alert_holder(&a.id);
    let clip_hold = || async {
        hub.store
            .holds_overlapping(&cam, a.raised_at, a.raised_at)
            .await
            .unwrap()
            .into_iter()
            .find(|h| h.holder == holder)
            .expect("the alert holds its clip")
    };
    let hold = clip_hold().await;
    assert_eq!(hold.from, a.raised_at - jiff::SignedDuration::from_secs(10));
    assert_eq!(hold.to, a.raised_at + jiff::SignedDuration::from_secs(20));
    assert_eq!(hold.until, None);
    let resolved = hub
        .store
        .act(
            &a.id,
            xl_core::alert::AlertAction::Resolved,
            "wang",
            Some("checked on camera"),
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();
    let resolved_at = resolved.alert.resolved_at.expect("resolved");
    // (The store keeps milliseconds.)
    assert_eq!(
        clip_hold().await.until.map(|t| t.as_millisecond()),
        Some((resolved_at + jiff::SignedDuration::from_hours(24 * 30)).as_millisecond())
    );
    hub.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// The hub binary with `config`, logs to a file in `dir`; killed when dropped (a failing
/// test leaves no hub behind).
fn spawn_hub(config: &Path, dir: &Path, n: u32) -> HubProcess {
    let log = std::fs::File::create(dir.join(format!("hub-{n}.log"))).unwrap();
    HubProcess(
        Command::new(env!("CARGO_BIN_EXE_xueliang"))
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the hub binary"),
    )
}

struct HubProcess(Child);

impl HubProcess {
    /// SIGKILL, and wait for it to be gone.
    fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_mid_stream_loses_no_event_and_raises_no_alert_twice() {
    let (host, port) = broker();
    crash_test(
        &format!("url = \"mqtt://{host}:{port}\""),
        "",
        (host, port),
        None,
    )
    .await;
}

/// The gates publish to the hub's embedded broker: killing the hub kills their broker too. It
/// must have stored what it acknowledged, and tell the returning gates their session is still
/// there so that they send again what it had not acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_with_the_embedded_broker_killed_mid_stream_loses_no_event() {
    let port = common::free_port();
    let mqtt = format!("embedded = true\nlisten = \"127.0.0.1:{port}\"");
    // The gates log in as a bridge that reports for all of them.
    let account = "[[mqtt.accounts]]\nusername = \"door-bridge\"\n\
                   password = \"door-bridge-test-password\"\ngates = [\"*\"]\n";
    let login = ("door-bridge", "door-bridge-test-password");
    crash_test(&mqtt, account, ("127.0.0.1".into(), port), Some(login)).await;
}

/// Kills the hub (configured with `mqtt`, and `accounts` for its embedded broker) with SIGKILL
/// a third of the way through 400 events published to `gates_to` (as `login`), and starts it
/// again at two thirds.
async fn crash_test(
    mqtt: &str,
    accounts: &str,
    gates_to: (String, u16),
    login: Option<(&str, &str)>,
) {
    const GATES: u64 = 4;
    const EVENTS: u64 = 400;
    let data = temp_dir("alerts-crash");
    let prefix = format!("xl-crash-{:x}", rand::random::<u32>());
    let community = format!("c{:x}", rand::random::<u32>());
    let gates: String = (0..GATES)
        .map(|i| {
            format!(
                "[[gates]]\nid = \"door-{i}\"\ncommunity = \"{community}\"\nfirmware = \"hikvision-isapi\"\n"
            )
        })
        .collect();
    // One forced_open alert per gate for the whole run: every event repeats it.
    let rules =
        "[[rules]]\nkind = \"gate.forced_open\"\ncooldown_secs = 86400\nack_deadline_secs = 0\n";
    let text = hub_config_on(
        &data,
        &prefix,
        &community,
        mqtt,
        &format!("{gates}\n{rules}\n{accounts}"),
    );
    Config::parse(&text).unwrap();
    let config = data.join("hub.toml");
    std::fs::write(&config, &text).unwrap();

    let mut hub = spawn_hub(&config, &data, 1);
    // Let the hub subscribe (its persistent session then keeps what arrives while it is down).
    let db = data.join("xueliang.db");
    let t0 = Instant::now();
    while !db.exists() {
        assert!(t0.elapsed() < Duration::from_secs(30), "hub did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The gates publish at a steady 100 events/s; the broker acknowledges each (QoS 1). Like
    // a gate that cares about its events, they keep their session (clean_session = false).
    let mut opts = MqttOptions::new(format!("{prefix}-gates"), gates_to.0, gates_to.1);
    opts.set_keep_alive(Duration::from_secs(5))
        .set_clean_session(false);
    if let Some((user, password)) = login {
        opts.set_credentials(user, password);
    }
    let (gate, mut el) = AsyncClient::new(opts, 1000);
    let acks = tokio::spawn(async move {
        let mut acked = 0u64;
        while acked < EVENTS {
            match el.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        acked
    });
    let mut killed_at = None;
    let mut restarted = false;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for serial in 0..EVENTS {
        tick.tick().await;
        let door = serial % GATES;
        gate.publish(
            format!("{prefix}/door-{door}/event"),
            QoS::AtLeastOnce,
            false,
            forced_open(10_000 + serial),
        )
        .await
        .unwrap();
        if serial == EVENTS / 3 {
            hub.kill(); // SIGKILL
            killed_at = Some(serial);
        }
        if serial == EVENTS * 2 / 3 {
            hub = spawn_hub(&config, &data, 2);
            restarted = true;
        }
    }
    assert!(killed_at.is_some() && restarted);
    let acked = tokio::time::timeout(Duration::from_secs(30), acks)
        .await
        .expect("broker acknowledged every publish")
        .unwrap();
    assert_eq!(acked, EVENTS);

    // Every acknowledged event reaches the store, and each gate has exactly one alert whose
    // count is its number of events: none lost, none counted twice.
    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let t0 = Instant::now();
    let per_gate = EVENTS / GATES;
    loop {
        let events = store.gate_events_after(0, 10_000).await.unwrap();
        let alerts = store
            .list_alerts(&AlertFilter {
                limit: 100,
                ..AlertFilter::default()
            })
            .await
            .unwrap();
        let counted: u64 = alerts.iter().map(|a| u64::from(a.count)).sum();
        if events.len() as u64 == EVENTS && counted == EVENTS {
            let mut serials: Vec<_> = events
                .iter()
                .map(|e| {
                    e.body["event"]["event_id"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned()
                })
                .collect();
            serials.sort();
            serials.dedup();
            assert_eq!(serials.len() as u64, EVENTS, "no event stored twice");
            assert_eq!(
                alerts.len() as u64,
                GATES,
                "one alert per gate: {alerts:#?}"
            );
            for a in &alerts {
                assert_eq!(a.kind, AlertKind::GateForcedOpen);
                assert_eq!(u64::from(a.count), per_gate, "{a:#?}");
            }
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "after 60 s: {} of {EVENTS} events stored, {} alerts counting {counted}; logs in {}",
            events.len(),
            alerts.len(),
            data.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    hub.kill();
    // The second process took over from what the first had committed.
    let log = std::fs::read_to_string(data.join("hub-2.log")).unwrap();
    assert!(log.contains("alert engine restored"), "{log}");
    let _ = std::fs::remove_dir_all(&data);
}

const PUSH_SECRET: &str = "sim-clock-push-secret";

/// A door-forced push for `gate` (the Hikvision fixture as [`forced_open`] makes it), with the
/// device's time set to `at`.
fn forced_open_at(serial: u64, at: jiff::Timestamp) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&forced_open(serial)).unwrap();
    v["dateTime"] = at.to_string().into();
    v.to_string()
}

/// Every alert in the store, by gate.
async fn alerts_by_gate(store: &Store) -> std::collections::BTreeMap<String, Alert> {
    store
        .list_alerts(&AlertFilter {
            limit: 100,
            ..AlertFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|a| {
            (
                a.gate.as_ref().map(|g| g.to_string()).unwrap_or_default(),
                a,
            )
        })
        .collect()
}

/// Polls the store every 50 ms (real time: the pipeline's I/O) until `done` holds, for at
/// most 10 s.
async fn wait_for_alerts(
    store: &Store,
    what: &str,
    done: impl Fn(&std::collections::BTreeMap<String, Alert>) -> bool,
) -> std::collections::BTreeMap<String, Alert> {
    let t0 = Instant::now();
    loop {
        let alerts = alerts_by_gate(store).await;
        if done(&alerts) {
            return alerts;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{what}: not within 10 s: {alerts:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Gate ingest (HTTP push into the SQL store) and the alert processor on one simulated clock:
/// the alerts are raised at the simulated receipt time, a guard's acknowledgement is stamped
/// with it, and the unacknowledged alert escalates at `ack_deadline_secs` after it was raised
/// as soon as the clock passes that point, without waiting two minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_alert_escalates_at_its_deadline_on_simulated_time() {
    use jiff::SignedDuration;
    let data = temp_dir("alerts-sim-clock");
    let t0: jiff::Timestamp = "2026-03-01T08:00:00Z".parse().unwrap();
    let clocks = SimulatedClocks::new(t0);
    let config = Config::parse(&format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        api_token = "test-token"
        data_dir = "{data}"
        [detect]
        enabled = false
        [[gates]]
        id = "lobby"
        community = "xingfu"
        firmware = "hikvision-isapi"
        push_secret = "{PUSH_SECRET}"
        [[gates]]
        id = "garage"
        community = "xingfu"
        firmware = "hikvision-isapi"
        push_secret = "{PUSH_SECRET}"
        [[rules]]
        kind = "gate.forced_open"
        ack_deadline_secs = 120
        "#,
        data = data.display(),
    ))
    .unwrap();
    let sim = SimGates::start(&config, &data, &clocks).await;
    let (store, addr) = (sim.store.clone(), sim.addr);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (alerts, task) = sim
        .processor(&config, &data, &clocks, shutdown.child_token())
        .await;
    let http = reqwest::Client::new();
    for (gate, serial) in [("lobby", 9001), ("garage", 9002)] {
        let r = http
            .post(format!(
                "http://{addr}/gates/push/hikvision/{gate}?secret={PUSH_SECRET}"
            ))
            .header("content-type", "application/json")
            .body(forced_open_at(serial, t0))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK, "{gate}");
    }
    let raised = wait_for_alerts(&store, "two alerts raised", |a| a.len() == 2).await;
    for (gate, a) in &raised {
        assert_eq!(a.kind, AlertKind::GateForcedOpen, "{gate}");
        assert_eq!(a.state, AlertState::Open, "{gate}");
        assert_eq!(
            a.raised_at, t0,
            "{gate}: raised at the simulated receipt time"
        );
        assert_eq!(
            a.ack_deadline,
            Some(t0 + SignedDuration::from_secs(120)),
            "{gate}"
        );
    }

    // A guard acknowledges the garage's alert 30 s in: stamped with the simulated time.
    clocks.advance(Duration::from_secs(30));
    let garage = raised["garage"].id.clone();
    let audit = xl_store::NewAudit {
        at: clocks.realtime(),
        actor: "guard".into(),
        action: "alert.acknowledge".into(),
        target: Some(garage.to_string()),
        detail: serde_json::Value::Null,
        peer: None,
    };
    let acked = alerts
        .act(&garage, AlertAction::Acknowledged, "guard", None, &audit)
        .await
        .unwrap();
    assert_eq!(acked.at, t0 + SignedDuration::from_secs(30));
    assert_eq!(acked.alert.state, AlertState::Acknowledged);

    // Just before the deadline nothing escalates. The processor ticks every 500 ms of real
    // time; three ticks pass here.
    clocks.advance(Duration::from_secs(89));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = alerts_by_gate(&store).await;
    assert_eq!(before["lobby"].state, AlertState::Open);

    // Past it, the lobby's alert escalates on the next tick, at its deadline; the garage's,
    // acknowledged, does not.
    clocks.advance(Duration::from_secs(2));
    let after = wait_for_alerts(&store, "the lobby's alert escalated", |a| {
        a["lobby"].state == AlertState::Escalated
    })
    .await;
    assert_eq!(after["garage"].state, AlertState::Acknowledged);
    let detail = store.alert(&after["lobby"].id).await.unwrap().unwrap();
    let escalation = detail
        .history
        .iter()
        .find(|h| h.action == AlertAction::Escalated)
        .expect("an escalation in the history");
    assert_eq!(escalation.at, t0 + SignedDuration::from_secs(120));
    assert_eq!(escalation.actor, "system");

    shutdown.cancel();
    let _ = task.await;
    sim.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// Gate ingest into the hub's SQLite store on simulated clocks, its device routes on a real
/// socket (they need the peer's address), for alert processors started on it.
struct SimGates {
    store: Store,
    gates: xl_gates::Gates,
    registry: std::sync::Arc<xl_core::gate_status::GateRegistry>,
    addr: std::net::SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl SimGates {
    async fn start(config: &Config, data: &Path, clocks: &SimulatedClocks) -> SimGates {
        let store = Store::open(&format!("sqlite://{}", data.join("xueliang.db").display()))
            .await
            .unwrap();
        let registry = std::sync::Arc::new(xl_core::gate_status::GateRegistry::default());
        let dir = xl_gates::Gates::journal_dir(data);
        let sink = xueliang::gate_store::StoreSink::open(
            store.clone(),
            dir.clone(),
            Duration::from_secs(config.gate_ingest.dedup_window_secs),
            clocks.realtime(),
        )
        .await
        .unwrap();
        let gates = xl_gates::Gates::start_with_sink(
            config.gates_config(),
            Box::new(sink),
            dir,
            std::sync::Arc::clone(&registry),
            clocks.shared(),
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = gates.push_router();
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
            .unwrap();
        });
        SimGates {
            store,
            gates,
            registry,
            addr,
            server,
        }
    }

    /// An alert processor (a single hub's: no shard) fed by these gates.
    async fn processor(
        &self,
        config: &Config,
        data: &Path,
        clocks: &SimulatedClocks,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> (xl_alerts::Alerts, tokio::task::JoinHandle<()>) {
        xl_alerts::start(
            xl_alerts::Setup {
                store: self.store.clone(),
                rules: config.rules.clone(),
                evidence: config.evidence.clone(),
                rings: None,
                snapshot_dir: data.join("snapshots"),
                topology: tokio::sync::watch::channel(std::sync::Arc::default()).1,
                clocks: clocks.shared(),
                clip_kept_after: config.recording.evidence_keep(),
            },
            xl_alerts::Sources {
                gate_events: Some(self.gates.subscribe()),
                vision: None,
                cameras: std::sync::Arc::default(),
                gates: std::sync::Arc::clone(&self.registry),
                inputs: None,
                shard: None,
            },
            shutdown,
        )
        .await
        .unwrap()
    }

    async fn stop(self) {
        self.server.abort();
        self.gates.stop().await;
    }
}

/// A Hikvision "access denied (timeout)" push at `at`.
fn denied_at(serial: u64, at: jiff::Timestamp) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&forced_open_at(serial, at)).unwrap();
    let ev = &mut v["AccessControllerEvent"];
    ev["majorEventType"] = 5.into();
    ev["subEventType"] = 0x04.into();
    v.to_string()
}

/// Four denials at a gate, then the alert processor restarts (as on a hub restart, or when the
/// gate's shard of a district's gate work moves to another node: the same restore), then the
/// fifth denial within the minute: the burst is raised, because the processor gave its engine
/// back the denials it had read. Before, the window started afresh and the burst was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_burst_being_counted_survives_a_processor_restart() {
    let data = temp_dir("alerts-denials");
    let t0: jiff::Timestamp = "2026-03-01T08:00:00Z".parse().unwrap();
    let clocks = SimulatedClocks::new(t0);
    let config = Config::parse(&format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        api_token = "test-token"
        data_dir = "{data}"
        [detect]
        enabled = false
        [[gates]]
        id = "lobby"
        community = "xingfu"
        firmware = "hikvision-isapi"
        push_secret = "{PUSH_SECRET}"
        "#,
        data = data.display(),
    ))
    .unwrap();
    let sim = SimGates::start(&config, &data, &clocks).await;
    let (store, addr) = (sim.store.clone(), sim.addr);
    let http = reqwest::Client::new();
    let push = |serial: u64| {
        let (http, at) = (http.clone(), clocks.realtime());
        async move {
            let r = http
                .post(format!(
                    "http://{addr}/gates/push/hikvision/lobby?secret={PUSH_SECRET}"
                ))
                .header("content-type", "application/json")
                .body(denied_at(serial, at))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::OK);
        }
    };

    let first = tokio_util::sync::CancellationToken::new();
    let (_, task) = sim.processor(&config, &data, &clocks, first.clone()).await;
    for serial in 1..=4 {
        push(serial).await;
        clocks.advance(Duration::from_secs(5));
    }
    // The processor read all four (its cursor is past them) and raised nothing: four of five.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.cursor(xl_alerts::GATE_CURSOR).await.unwrap() < 4 {
        assert!(Instant::now() < deadline, "the denials were not read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(alerts_by_gate(&store).await.is_empty());
    first.cancel();
    task.await.unwrap();

    let second = tokio_util::sync::CancellationToken::new();
    let (_, task) = sim.processor(&config, &data, &clocks, second.clone()).await;
    push(5).await;
    let raised = wait_for_alerts(&store, "the burst raised after the restart", |a| {
        a.contains_key("lobby")
    })
    .await;
    assert_eq!(raised["lobby"].kind, AlertKind::GateDeniedBurst);
    assert_eq!(
        raised["lobby"].raised_at,
        t0 + jiff::SignedDuration::from_secs(20)
    );

    second.cancel();
    let _ = task.await;
    sim.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}
