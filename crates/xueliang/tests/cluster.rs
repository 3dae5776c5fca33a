//! A district on three hub nodes, each the `xueliang` binary as its own process, sharing a
//! real nats-server (JetStream on a temporary directory, `XUELIANG_NATS_SERVER`, installed by
//! scripts/ensure-nats), a fresh PostgreSQL database, the real RTSP server and Mosquitto:
//! - 24 cameras, each pulled by exactly one node (the RTSP server's own session count, never
//!   two at once for any camera, also while the nodes join one after another);
//! - four gates publishing door-forced events on Mosquitto through the whole test;
//! - one node SIGKILLed: its cameras are pulled by the others within 30 s; every gate event
//!   published is stored exactly once, and each gate's alert is raised once and counts every
//!   event (none processed twice, none lost);
//! - a camera added through node A's API, owned by node B by the leases, raises
//!   camera.offline on B and A's SSE stream shows it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use rumqttc::QoS;
use serde_json::Value;
use xl_core::{AlertKind, OutboxEntry};
use xl_testkit::{H264_360P, NatsServer, RtspServer, test_clip};
use xueliang::config::Config;

mod common;
use common::{HubProcess, TestPg, broker, forced_open, free_port, gate_client, sse, temp_dir};

const CAMERAS: usize = 24;
const GATES: usize = 4;
const NODES: [&str; 3] = ["n1", "n2", "n3"];
const TOKEN: &str = "cluster-test-token";

fn camera_id(i: usize) -> String {
    format!("c{i:02}")
}

fn gate_id(i: usize) -> String {
    format!("g{i}")
}

/// One node's config: the same district (cameras, gates, rules) on every node.
fn node_config(
    node: &str,
    port: u16,
    data: &Path,
    database_url: &str,
    nats: &str,
    rtsp: &RtspServer,
    prefix: &str,
) -> String {
    let (host, mqtt_port) = broker();
    let mut text = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
api_token = "{TOKEN}"
data_dir = "{data}"

[log]
filter = "info"

[store]
database_url = "{database_url}"

[cluster]
nats = ["{nats}"]
node = "{node}"
advertise = "http://127.0.0.1:{port}"

[rtsp]
request_timeout_secs = 3
frame_timeout_secs = 3
backoff_initial_secs = 0.2
backoff_max_secs = 1.0

[detect]
enabled = false

[mqtt]
url = "mqtt://{host}:{mqtt_port}"
client_id = "{prefix}-{node}"

[[mqtt.subscriptions]]
filter = "{prefix}/+/event"
firmware = "hikvision-isapi"
gate_from = {{ topic_segment = 1 }}

[[rules]]
kind = "camera.offline"
debounce_secs = 2
"#,
        data = data.display(),
    );
    for i in 0..CAMERAS {
        let id = camera_id(i);
        text.push_str(&format!(
            "\n[[cameras]]\nid = \"{id}\"\ncommunity = \"{prefix}\"\nurl = \"{url}\"\n",
            url = rtsp.url(&id),
        ));
    }
    for i in 0..GATES {
        text.push_str(&format!(
            "\n[[gates]]\nid = \"{gate}\"\ncommunity = \"{prefix}\"\nfirmware = \"hikvision-isapi\"\ncamera = \"{camera}\"\n",
            gate = gate_id(i),
            camera = camera_id(i),
        ));
    }
    text
}

struct Node {
    name: &'static str,
    base: String,
    process: HubProcess,
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let resp = http.get(url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.json().await.unwrap()
}

/// Camera -> the node holding its lease, from a node's `GET /api/v1/cluster`.
async fn camera_owners(http: &reqwest::Client, node: &Node) -> BTreeMap<String, String> {
    let view = get_json(http, &format!("{}/api/v1/cluster", node.base)).await;
    view["leases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| {
            let camera = l["key"].as_str()?.strip_prefix("camera.")?;
            Some((camera.to_owned(), l["node"].as_str()?.to_owned()))
        })
        .collect()
}

/// The RTSP server's playing sessions of each camera.
fn sessions(rtsp: &RtspServer) -> BTreeMap<String, usize> {
    (0..CAMERAS)
        .map(|i| (camera_id(i), rtsp.sessions(&camera_id(i))))
        .collect()
}

/// Waits until every camera is pulled by exactly one session, the cameras of `reopen` by a
/// session opened after the counts it gives; panics with the counts after `secs`. Returns how
/// long it took.
async fn every_camera_pulled_once(
    rtsp: &RtspServer,
    nodes: &mut [Node],
    reopen: &BTreeMap<String, usize>,
    secs: u64,
) -> Duration {
    let started = Instant::now();
    loop {
        for n in nodes.iter_mut() {
            n.process.assert_running();
        }
        let now = sessions(rtsp);
        let reopened = reopen
            .iter()
            .all(|(camera, &before)| rtsp.opened_sessions(camera) > before);
        if reopened && now.values().all(|&s| s == 1) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "cameras not each pulled once within {secs} s: {now:?} (reopened: {reopened})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The most sessions any camera had at once since the server started.
fn max_sessions(rtsp: &RtspServer) -> BTreeMap<String, usize> {
    (0..CAMERAS)
        .map(|i| (camera_id(i), rtsp.max_sessions(&camera_id(i))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_pull_each_camera_once_and_a_killed_nodes_share_moves_without_losing_an_event()
{
    let clip = test_clip(H264_360P).expect("the test clips: run scripts/setup");
    let mounts: Vec<(String, std::path::PathBuf)> =
        (0..CAMERAS).map(|i| (camera_id(i), clip.clone())).collect();
    let mounts: Vec<(&str, std::path::PathBuf)> = mounts
        .iter()
        .map(|(m, p)| (m.as_str(), p.clone()))
        .collect();
    let rtsp = RtspServer::start(&mounts).expect("start the RTSP server");
    let nats = NatsServer::start().expect("start nats-server (scripts/ensure-nats)");
    let pg = TestPg::create().await;
    let dir = temp_dir("cluster");
    let prefix = format!("xl-cluster-{:x}", rand::random::<u32>());

    let mut nodes = Vec::new();
    for name in NODES {
        let port = free_port();
        let text = node_config(
            name,
            port,
            &dir.join(name),
            &pg.url,
            &nats.url(),
            &rtsp,
            &prefix,
        );
        Config::parse(&text).expect("the config is valid");
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, &text).unwrap();
        nodes.push(Node {
            name,
            base: format!("http://127.0.0.1:{port}"),
            process: HubProcess::spawn(&config, dir.join(format!("{name}.log"))),
        });
        // One after another: the later ones take their share from the first.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // Every camera pulled once, by the node holding its lease, and never twice at once
    // while the shares moved to the nodes that joined.
    let took = every_camera_pulled_once(&rtsp, &mut nodes, &BTreeMap::new(), 60).await;
    eprintln!(
        "24 cameras each pulled once {:.1} s after the last node started",
        took.as_secs_f64()
    );
    let owners = loop {
        let owners = camera_owners(&http, &nodes[0]).await;
        let holders: BTreeSet<&String> = owners.values().collect();
        if owners.len() == CAMERAS && holders.len() == NODES.len() {
            break owners;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        max_sessions(&rtsp).into_values().max(),
        Some(1),
        "a camera was pulled by two nodes at once: {:?}",
        max_sessions(&rtsp)
    );
    for n in &nodes {
        let view = get_json(&http, &format!("{}/api/v1/cluster", n.base)).await;
        assert_eq!(view["clustered"], true);
        assert_eq!(view["node"], n.name);
        assert_eq!(
            view["nodes"].as_array().unwrap().len(),
            NODES.len(),
            "{view}"
        );
    }

    // Gates publish door-forced events through everything that follows.
    let publisher = gate_client(&prefix).await;
    let published = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(usize, u64)>::new()));
    let stop_publishing = tokio_util::sync::CancellationToken::new();
    let publishing = {
        let (published, stop, prefix) =
            (published.clone(), stop_publishing.clone(), prefix.clone());
        tokio::spawn(async move {
            let mut serial = 1000;
            while !stop.is_cancelled() {
                for g in 0..GATES {
                    serial += 1;
                    publisher
                        .publish(
                            format!("{prefix}/{}/event", gate_id(g)),
                            QoS::AtLeastOnce,
                            false,
                            forced_open(serial),
                        )
                        .await
                        .unwrap();
                    published.lock().unwrap().push((g, serial));
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The SSE stream on the first node, which stays.
    // (The SSE client has no timeout: it is meant to stay open.)
    let (mut events, _reader) = sse(
        &reqwest::Client::new(),
        &format!("{}/api/v1/alerts/stream", nodes[0].base),
        TOKEN,
    )
    .await;

    // SIGKILL the node with the most cameras (never the first: its stream is watched).
    let victim = (1..NODES.len())
        .max_by_key(|&i| owners.values().filter(|n| *n == NODES[i]).count())
        .unwrap();
    let moved: BTreeMap<String, usize> = owners
        .iter()
        .filter(|(_, n)| *n == NODES[victim])
        .map(|(c, _)| (c.clone(), rtsp.opened_sessions(c)))
        .collect();
    assert!(!moved.is_empty(), "{owners:?}");
    nodes[victim].process.child.kill().unwrap();
    nodes[victim].process.child.wait().unwrap();
    let mut survivors: Vec<Node> = Vec::new();
    let mut dead = None;
    for (i, n) in nodes.into_iter().enumerate() {
        if i == victim {
            dead = Some(n);
        } else {
            survivors.push(n);
        }
    }
    let took = every_camera_pulled_once(&rtsp, &mut survivors, &moved, 30).await;
    eprintln!(
        "node {} killed: its {} cameras pulled by the others {:.1} s later",
        NODES[victim],
        moved.len(),
        took.as_secs_f64()
    );
    let owners = camera_owners(&http, &survivors[0]).await;
    assert!(
        owners.values().all(|n| n != NODES[victim]),
        "a dead node still holds leases: {owners:?}"
    );

    // Events published through the failover: each stored once; each gate's alert raised once
    // and counting every event.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_publishing.cancel();
    publishing.await.unwrap();
    let published = published.lock().unwrap().clone();
    let db = sqlx::PgPool::connect(&pg.url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stored: Vec<(String, i64)> =
            sqlx::query_as("SELECT dedup_key, COUNT(*) FROM gate_events GROUP BY dedup_key")
                .fetch_all(&db)
                .await
                .unwrap();
        assert!(
            stored.iter().all(|(_, n)| *n == 1),
            "gate events stored twice: {:?}",
            stored.iter().filter(|(_, n)| *n > 1).collect::<Vec<_>>()
        );
        if stored.len() == published.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} gate events stored of {} published",
            stored.len(),
            published.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alerts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT gate, repeat_count FROM alerts WHERE kind = 'gate.forced_open' ORDER BY gate",
        )
        .fetch_all(&db)
        .await
        .unwrap();
        let want: Vec<(String, i64)> = (0..GATES)
            .map(|g| {
                let n = published.iter().filter(|(pg, _)| *pg == g).count();
                (gate_id(g), n as i64)
            })
            .collect();
        if alerts == want {
            break;
        }
        let raised: BTreeSet<&String> = alerts.iter().map(|(g, _)| g).collect();
        assert_eq!(
            raised.len(),
            alerts.len(),
            "a gate's alert raised twice: {alerts:?}"
        );
        assert!(
            alerts.iter().zip(&want).all(|(a, w)| a.1 <= w.1),
            "an event counted twice: {alerts:?} for {want:?} published"
        );
        assert!(
            Instant::now() < deadline,
            "alerts {alerts:?}, events published {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A camera added on node A that the leases give to node B: B pulls it (and fails), A's
    // SSE client sees B's camera.offline.
    let a = &survivors[0];
    let b = survivors[1].name;
    let live: Vec<(String, u32)> = survivors.iter().map(|n| (n.name.to_owned(), 100)).collect();
    let camera = (0..)
        .map(|i| format!("dead-{i}"))
        .find(|id| xl_cluster::owner(&format!("camera.{id}"), &live, None) == Some(b))
        .unwrap();
    let resp = http
        .post(format!("{}/api/v1/topology/cameras", a.base))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({
            "id": camera,
            "name": camera,
            "community": prefix,
            "sub": { "kind": "rtsp", "url": "rtsp://127.0.0.1:1/nothing-listens" },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let entry = loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no camera.offline of {camera} on node A's SSE stream"))
            .expect("the SSE stream ended");
        if ev.event != "alert" {
            continue;
        }
        let entry: OutboxEntry = serde_json::from_str(&ev.data).unwrap();
        if entry.alert.kind == AlertKind::CameraOffline
            && entry.alert.camera.as_ref().map(|c| c.as_str()) == Some(camera.as_str())
        {
            break entry;
        }
    };
    assert_eq!(entry.change.as_str(), "raised");
    let owners = camera_owners(&http, a).await;
    assert_eq!(
        owners.get(&camera).map(String::as_str),
        Some(b),
        "{owners:?}"
    );

    for mut n in survivors {
        assert!(
            n.process.terminate().is_some_and(|s| s.success()),
            "node {} did not stop cleanly",
            n.name
        );
    }
    drop(dead);
}
