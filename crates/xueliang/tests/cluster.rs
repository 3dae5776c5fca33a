//! A district on three hub nodes, each the `xueliang` binary as its own process, sharing a
//! real nats-server (JetStream on a temporary directory, `XUELIANG_NATS_SERVER`, installed by
//! scripts/ensure-nats), a fresh PostgreSQL database, the real RTSP server and Mosquitto:
//! - 24 cameras, each pulled by exactly one node (the RTSP server's own session count, never
//!   two at once for any camera, also while the nodes join one after another);
//! - four gates publishing door-forced events on Mosquitto through the whole test;
//! - the gate work cut into shards spread over the nodes;
//! - one node SIGKILLed (one doing the gate work of a publishing gate): its cameras are pulled
//!   by the others within 30 s, its gate shards go on elsewhere from the alerts it committed;
//!   every gate event published is stored exactly once, and each gate's alert is raised once
//!   and counts every event (none processed twice, none lost);
//! - a camera added through node A's API, owned by node B by the leases, raises
//!   camera.offline on B and A's SSE stream shows it;
//! - a node cut from NATS (through a proxy the test controls) stops its cameras before the
//!   other node pulls them, and takes its share back when the link heals: no camera is ever
//!   pulled twice at once;
//! - nats-server restarted while gates publish: every event stored and counted once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::QoS;
use serde_json::Value;
use xl_core::{AlertKind, OutboxEntry};
use xl_testkit::{H264_360P, NatsServer, RtspServer, TcpProxy, test_clip};
use xueliang::config::Config;

mod common;
use common::{
    HubProcess, TestPg, broker, district_node_toml, forced_open, free_port, gate_client,
    metrics_text, sse, temp_dir,
};

const GATES: usize = 4;
const NODES: [&str; 3] = ["n1", "n2", "n3"];
const TOKEN: &str = "cluster-test-token";

fn camera_id(i: usize) -> String {
    format!("c{i:02}")
}

fn gate_id(i: usize) -> String {
    format!("g{i}")
}

/// Where a node finds the district's servers.
struct Servers<'a> {
    database_url: &'a str,
    nats: &'a str,
    rtsp: &'a RtspServer,
}

/// One node's config: the same district (cameras, gates, rules) on every node.
fn node_config(
    node: &str,
    port: u16,
    data: &Path,
    servers: Servers<'_>,
    cameras: usize,
    prefix: &str,
) -> String {
    let Servers {
        database_url,
        nats,
        rtsp,
    } = servers;
    let (host, mqtt_port) = broker();
    let mut text = district_node_toml(node, port, TOKEN, data, database_url, nats);
    text.push_str(&format!(
        r#"
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
"#
    ));
    for i in 0..cameras {
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

/// The servers a district's nodes share, and the nodes.
struct District {
    cameras: usize,
    rtsp: RtspServer,
    nats: NatsServer,
    pg: TestPg,
    dir: PathBuf,
    prefix: String,
    nodes: Vec<Node>,
}

impl District {
    async fn start(cameras: usize) -> District {
        let clip = test_clip(H264_360P).expect("the test clips: run scripts/setup");
        let mounts: Vec<(String, PathBuf)> =
            (0..cameras).map(|i| (camera_id(i), clip.clone())).collect();
        let mounts: Vec<(&str, PathBuf)> = mounts
            .iter()
            .map(|(m, p)| (m.as_str(), p.clone()))
            .collect();
        District {
            cameras,
            rtsp: RtspServer::start(&mounts).expect("start the RTSP server"),
            nats: NatsServer::start().expect("start nats-server (scripts/ensure-nats)"),
            pg: TestPg::create().await,
            dir: temp_dir("cluster"),
            prefix: format!("xl-cluster-{:x}", rand::random::<u32>()),
            nodes: Vec::new(),
        }
    }

    /// Starts a node reaching NATS at `nats`.
    fn spawn(&mut self, name: &'static str, nats: &str) {
        let port = free_port();
        let text = node_config(
            name,
            port,
            &self.dir.join(name),
            Servers {
                database_url: &self.pg.url,
                nats,
                rtsp: &self.rtsp,
            },
            self.cameras,
            &self.prefix,
        );
        Config::parse(&text).expect("the config is valid");
        let config = self.dir.join(format!("{name}.toml"));
        std::fs::write(&config, &text).unwrap();
        self.nodes.push(Node {
            name,
            base: format!("http://127.0.0.1:{port}"),
            process: HubProcess::spawn(&config, self.dir.join(format!("{name}.log"))),
        });
    }

    fn camera_ids(&self) -> Vec<String> {
        (0..self.cameras).map(camera_id).collect()
    }

    /// The RTSP server's playing sessions of each camera.
    fn sessions(&self) -> BTreeMap<String, usize> {
        self.camera_ids()
            .into_iter()
            .map(|c| {
                let n = self.rtsp.sessions(&c);
                (c, n)
            })
            .collect()
    }

    /// The most sessions any camera had at once since the last reset.
    fn max_sessions(&self) -> usize {
        self.camera_ids()
            .iter()
            .map(|c| self.rtsp.max_sessions(c))
            .max()
            .unwrap_or(0)
    }

    /// Sessions opened so far for each of `cameras`.
    fn opened(&self, cameras: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
        cameras
            .into_iter()
            .map(|c| {
                let n = self.rtsp.opened_sessions(&c);
                (c, n)
            })
            .collect()
    }

    /// Waits until every camera is pulled by exactly one session, the cameras of `reopen` by
    /// a session opened after the counts it gives; panics with the counts after `secs`.
    /// Returns how long it took.
    async fn every_camera_pulled_once(
        &mut self,
        reopen: &BTreeMap<String, usize>,
        secs: u64,
    ) -> Duration {
        let started = Instant::now();
        loop {
            for n in self.nodes.iter_mut() {
                n.process.assert_running();
            }
            let now = self.sessions();
            let reopened = reopen
                .iter()
                .all(|(camera, &before)| self.rtsp.opened_sessions(camera) > before);
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

    /// Waits until the leases give every camera a holder and `holders` nodes hold cameras;
    /// returns camera -> node, as `node` sees it.
    async fn owners(
        &self,
        http: &reqwest::Client,
        node: usize,
        holders: usize,
    ) -> BTreeMap<String, String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let owners = camera_owners(http, &self.nodes[node]).await;
            let nodes: BTreeSet<&String> = owners.values().collect();
            let all = self.camera_ids().iter().all(|c| owners.contains_key(c));
            if all && nodes.len() == holders {
                return owners;
            }
            assert!(Instant::now() < deadline, "leases: {owners:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let resp = http.get(url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.json().await.unwrap()
}

/// Camera -> the node holding its lease, from a node's `GET /api/v1/cluster`.
async fn camera_owners(http: &reqwest::Client, node: &Node) -> BTreeMap<String, String> {
    holders(http, node, "camera").await
}

/// `<id>` -> the node holding lease `<kind>.<id>`, from a node's `GET /api/v1/cluster`.
async fn holders(http: &reqwest::Client, node: &Node, kind: &str) -> BTreeMap<String, String> {
    let view = get_json(http, &format!("{}/api/v1/cluster", node.base)).await;
    view["leases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| {
            let id = l["key"].as_str()?.strip_prefix(kind)?.strip_prefix('.')?;
            Some((id.to_owned(), l["node"].as_str()?.to_owned()))
        })
        .collect()
}

/// Gate -> the node doing its shard of the gate work, for the publishing gates.
async fn gate_workers(http: &reqwest::Client, node: &Node) -> BTreeMap<String, String> {
    let tasks = holders(http, node, "task").await;
    let shards = tasks
        .keys()
        .filter(|t| t.starts_with("gate-alerts-"))
        .count();
    assert_eq!(shards, xl_alerts::GATE_SHARDS as usize, "{tasks:?}");
    (0..GATES)
        .map(|g| {
            let shard = xl_alerts::gate_shard(&xl_core::GateId::new(gate_id(g)).unwrap());
            (gate_id(g), tasks[&format!("gate-alerts-{shard}")].clone())
        })
        .collect()
}

/// Door-forced events from every gate, published on Mosquitto every 300 ms until stopped.
struct Publisher {
    published: Arc<Mutex<Vec<(usize, u64)>>>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    async fn start(prefix: &str, first_serial: u64) -> Publisher {
        let client = gate_client(&format!("{prefix}-{first_serial}")).await;
        let published: Arc<Mutex<Vec<(usize, u64)>>> = Arc::default();
        let stop = tokio_util::sync::CancellationToken::new();
        let task = {
            let (published, stop, prefix) = (published.clone(), stop.clone(), prefix.to_owned());
            tokio::spawn(async move {
                let mut serial = first_serial;
                while !stop.is_cancelled() {
                    for g in 0..GATES {
                        serial += 1;
                        client
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
        Publisher {
            published,
            stop,
            task,
        }
    }

    /// Stops publishing; returns every (gate, serial) published.
    async fn stop(self) -> Vec<(usize, u64)> {
        self.stop.cancel();
        self.task.await.unwrap();
        self.published.lock().unwrap().clone()
    }
}

/// Waits until every published event is stored, each exactly once, and each gate's one
/// gate.forced_open alert counts all of its events (`earlier` were published before, by
/// another publisher, into the same alerts).
async fn events_stored_and_counted_once(db: &sqlx::PgPool, published: &[(usize, u64)]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stored: Vec<(String, i64)> =
            sqlx::query_as("SELECT dedup_key, COUNT(*) FROM gate_events GROUP BY dedup_key")
                .fetch_all(db)
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
    let want: Vec<(String, i64)> = (0..GATES)
        .map(|g| {
            let n = published.iter().filter(|(pg, _)| *pg == g).count();
            (gate_id(g), n as i64)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alerts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT gate, repeat_count FROM alerts WHERE kind = 'gate.forced_open' ORDER BY gate",
        )
        .fetch_all(db)
        .await
        .unwrap();
        if alerts == want {
            return;
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
}

/// Waits until the district's alert stream on JetStream (`xl-alerts`, published by the node
/// holding the notify lease) holds every outbox entry of the store exactly once, in seq
/// order, each on `xl.alerts.<community>.<kind with _ for .>`.
async fn alert_stream_holds_the_outbox_once(nats: &NatsServer, db: &sqlx::PgPool) {
    use async_nats::jetstream;
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (last,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM outbox")
            .fetch_one(db)
            .await
            .unwrap();
        let got = match js.get_stream("xl-alerts").await {
            Ok(mut stream) => stream.info().await.unwrap().state.messages,
            Err(_) => 0,
        };
        if last > 0 && got >= last as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the alert stream holds {got} messages, the outbox {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut seqs = Vec::new();
    for m in xl_testkit::stream_messages(&js, "xl-alerts", None)
        .await
        .unwrap()
    {
        let entry: OutboxEntry = serde_json::from_slice(&m.payload).unwrap();
        let kind = entry.alert.kind.to_string().replace('.', "_");
        assert_eq!(
            m.subject,
            format!("xl.alerts.{}.{kind}", entry.alert.community),
            "seq {}",
            entry.seq
        );
        seqs.push(entry.seq);
    }
    let (last,): (i64,) = sqlx::query_as("SELECT MAX(seq) FROM outbox")
        .fetch_one(db)
        .await
        .unwrap();
    let want: Vec<i64> = (1..=last).collect();
    assert_eq!(
        &seqs[..want.len().min(seqs.len())],
        &want[..want.len().min(seqs.len())],
        "the alert stream is the outbox in seq order"
    );
    assert!(
        seqs.len() >= want.len(),
        "{} of {} outbox entries",
        seqs.len(),
        want.len()
    );
    let distinct: BTreeSet<i64> = seqs.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        seqs.len(),
        "an outbox entry published twice"
    );
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_pull_each_camera_once_and_a_killed_nodes_share_moves_without_losing_an_event()
{
    let mut d = District::start(24).await;
    let nats = d.nats.url();
    for name in NODES {
        d.spawn(name, &nats);
        // One after another: the later ones take their share from the first.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let http = http();

    // Every camera pulled once, by the node holding its lease, and never twice at once
    // while the shares moved to the nodes that joined.
    d.every_camera_pulled_once(&BTreeMap::new(), 60).await;
    let owners = d.owners(&http, 0, NODES.len()).await;
    assert_eq!(
        d.max_sessions(),
        1,
        "a camera was pulled by two nodes at once"
    );
    for n in &d.nodes {
        let view = get_json(&http, &format!("{}/api/v1/cluster", n.base)).await;
        assert_eq!(view["clustered"], true);
        assert_eq!(view["node"], n.name);
        assert_eq!(
            view["nodes"].as_array().unwrap().len(),
            NODES.len(),
            "{view}"
        );
        // Ready two lease rounds (4 s) after it asked for its share, which it may have
        // pulled by the first: it is ready within a few rounds, not necessarily yet.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{}/readyz", n.base)).send().await.unwrap();
            if ready.status() == 200 {
                break;
            }
            assert_eq!(ready.status(), 503, "node {} readyz", n.name);
            assert!(Instant::now() < deadline, "node {} not ready", n.name);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let metrics = metrics_text(&http, &n.base, TOKEN).await;
        let mine = owners.values().filter(|o| *o == n.name).count();
        let line = format!(
            "xueliang_cluster_leases_held{{node=\"{}\",kind=\"camera\"}} {mine}",
            n.name
        );
        assert!(metrics.contains(&line), "{line} not in /metrics");
    }

    // Every node's API lists the whole district's cameras, online, each with the node that
    // runs it (none for its own).
    for n in &d.nodes {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let list = get_json(&http, &format!("{}/api/v1/cameras", n.base)).await;
            let seen: BTreeMap<String, (String, String)> = list
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let id = c["id"].as_str().unwrap().to_owned();
                    let node = c["node"].as_str().unwrap_or(n.name).to_owned();
                    (id, (c["status"].as_str().unwrap().to_owned(), node))
                })
                .collect();
            let want: BTreeMap<String, (String, String)> = owners
                .iter()
                .map(|(c, o)| (c.clone(), ("online".to_owned(), o.clone())))
                .collect();
            if seen == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {} lists {seen:?}, not {want:?}",
                n.name
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // Gates publish door-forced events through everything that follows.
    let publisher = Publisher::start(&d.prefix, 1000).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The SSE stream on the first node, which stays. (The SSE client has no timeout: it is
    // meant to stay open.)
    let (mut events, _reader) = sse(
        &reqwest::Client::new(),
        &format!("{}/api/v1/alerts/stream", d.nodes[0].base),
        TOKEN,
    )
    .await;

    // The gate work is sharded over the nodes (16 shards, 3 nodes of one weight).
    let tasks = holders(&http, &d.nodes[0], "task").await;
    let doing: BTreeSet<&String> = tasks
        .iter()
        .filter(|(t, _)| t.starts_with("gate-alerts-"))
        .map(|(_, n)| n)
        .collect();
    assert!(
        doing.len() > 1,
        "one node does all the gate work: {tasks:?}"
    );
    let workers = gate_workers(&http, &d.nodes[0]).await;

    // SIGKILL a node doing the gate work of a publishing gate, the one with the most cameras
    // among them (never the first: its stream is watched). The shards are placed by the
    // node names, so this is the same node on every run.
    let victim = (1..NODES.len())
        .filter(|&i| workers.values().any(|n| n == NODES[i]))
        .max_by_key(|&i| owners.values().filter(|n| *n == NODES[i]).count())
        .unwrap_or_else(|| {
            panic!("no node but the first does a publishing gate's work: {workers:?}")
        });
    let moved = d.opened(
        owners
            .iter()
            .filter(|(_, n)| *n == NODES[victim])
            .map(|(c, _)| c.clone()),
    );
    assert!(!moved.is_empty(), "{owners:?}");
    let mut dead = d.nodes.remove(victim);
    dead.process.child.kill().unwrap();
    dead.process.child.wait().unwrap();
    let took = d.every_camera_pulled_once(&moved, 30).await;
    eprintln!(
        "node {} killed: its {} cameras pulled by the others {:.1} s later",
        dead.name,
        moved.len(),
        took.as_secs_f64()
    );
    let owners = d.owners(&http, 0, NODES.len() - 1).await;
    assert!(
        owners.values().all(|n| n != dead.name),
        "a dead node still holds leases: {owners:?}"
    );
    // Its gate shards were taken over too.
    let deadline = Instant::now() + Duration::from_secs(30);
    let moved_gates = loop {
        let now = holders(&http, &d.nodes[0], "task").await;
        let shards = now.keys().filter(|t| t.starts_with("gate-alerts-")).count();
        if shards == xl_alerts::GATE_SHARDS as usize && now.values().all(|n| n != dead.name) {
            break workers.iter().filter(|(_, n)| **n == dead.name).count();
        }
        assert!(
            Instant::now() < deadline,
            "the gate work is not all taken over from {}: {now:?}",
            dead.name
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!(
        "node {} killed: the work of {moved_gates} publishing gates moved",
        dead.name
    );

    // Events published through the failover: each stored once; each gate's alert raised once
    // and counting every event.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let published = publisher.stop().await;
    let db = sqlx::PgPool::connect(&d.pg.url).await.unwrap();
    events_stored_and_counted_once(&db, &published).await;
    // Every alert change, also those of the failover, on JetStream once.
    alert_stream_holds_the_outbox_once(&d.nats, &db).await;

    // A camera added on node A that the leases give to node B: B pulls it (and fails), A's
    // SSE client sees B's camera.offline.
    let (a, b) = (&d.nodes[0], d.nodes[1].name);
    let live: Vec<(String, u32)> = d.nodes.iter().map(|n| (n.name.to_owned(), 100)).collect();
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
            "community": d.prefix,
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

    for n in &mut d.nodes {
        assert!(
            n.process.terminate().is_some_and(|s| s.success()),
            "node {} did not stop cleanly",
            n.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_from_nats_stops_its_cameras_before_another_pulls_them_and_a_nats_restart_loses_nothing()
 {
    let mut d = District::start(8).await;
    let proxy = TcpProxy::start(d.nats.addr()).expect("start the proxy to NATS");
    d.spawn("cut", &proxy.nats_url());
    let nats = d.nats.url();
    d.spawn("kept", &nats);
    let http = http();
    d.every_camera_pulled_once(&BTreeMap::new(), 60).await;
    let owners = d.owners(&http, 1, 2).await;
    assert_eq!(
        d.max_sessions(),
        1,
        "a camera was pulled by two nodes at once"
    );

    // The partition: "cut" fences its leases and stops its cameras; "kept" takes them once
    // they expire. At no moment do two sessions pull one camera.
    let cut: Vec<String> = owners
        .iter()
        .filter(|(_, n)| *n == "cut")
        .map(|(c, _)| c.clone())
        .collect();
    assert!(!cut.is_empty(), "{owners:?}");
    let before = d.opened(cut.clone());
    proxy.cut();
    let took = d.every_camera_pulled_once(&before, 40).await;
    eprintln!(
        "partition: the cut node's {} cameras pulled by the other {:.1} s after the cut",
        cut.len(),
        took.as_secs_f64()
    );
    assert_eq!(
        d.max_sessions(),
        1,
        "a camera was pulled by both sides of the partition"
    );
    let owners = d.owners(&http, 1, 1).await;
    assert!(owners.values().all(|n| n == "kept"), "{owners:?}");

    // Healed: the cut node takes its share back, still never two pulls at once.
    let before = d.opened(d.camera_ids());
    proxy.heal();
    let owners = d.owners(&http, 1, 2).await;
    let back: BTreeMap<String, usize> = owners
        .iter()
        .filter(|(_, n)| *n == "cut")
        .map(|(c, _)| (c.clone(), before[c]))
        .collect();
    d.every_camera_pulled_once(&back, 40).await;
    assert_eq!(
        d.max_sessions(),
        1,
        "a camera was pulled twice after the partition healed"
    );

    // An admin pins one of "kept"'s cameras to "cut": it moves (and only it), still never
    // pulled twice; removing the pin gives it back.
    let owners = d.owners(&http, 1, 2).await;
    let moving = owners.iter().find(|(_, n)| *n == "kept").unwrap().0.clone();
    let pin_url = format!("{}/api/v1/cluster/pins/{moving}", d.nodes[1].base);
    for (body, status) in [
        (serde_json::json!({ "node": "no spaces" }), 400),
        (serde_json::json!({ "nod": "cut" }), 400),
    ] {
        let r = http
            .put(&pin_url)
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{body}");
    }
    let r = http
        .put(format!(
            "{}/api/v1/cluster/pins/no-such-camera",
            d.nodes[1].base
        ))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "node": "cut" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let before = d.opened([moving.clone()]);
    let r = http
        .put(&pin_url)
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "node": "cut" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    d.every_camera_pulled_once(&before, 30).await;
    let pinned = camera_owners(&http, &d.nodes[0]).await;
    assert_eq!(pinned[&moving], "cut");
    for (c, n) in &owners {
        if *c != moving {
            assert_eq!(&pinned[c], n, "only the pinned camera moves");
        }
    }
    let view = get_json(&http, &format!("{}/api/v1/cluster", d.nodes[0].base)).await;
    assert_eq!(
        view["pins"],
        serde_json::json!([{ "camera": moving, "node": "cut" }])
    );
    let before = d.opened([moving.clone()]);
    let r = http
        .delete(&pin_url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    d.every_camera_pulled_once(&before, 30).await;
    assert_eq!(camera_owners(&http, &d.nodes[0]).await[&moving], "kept");
    assert_eq!(
        d.max_sessions(),
        1,
        "a camera was pulled twice while pinned or unpinned"
    );

    // nats-server restarted while the gates publish: nothing acknowledged is lost, nothing
    // is counted twice, and the cameras stay pulled once.
    let publisher = Publisher::start(&d.prefix, 5000).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    d.nats.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    d.nats.restart().expect("restart nats-server");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let published = publisher.stop().await;
    let db = sqlx::PgPool::connect(&d.pg.url).await.unwrap();
    events_stored_and_counted_once(&db, &published).await;
    d.every_camera_pulled_once(&BTreeMap::new(), 30).await;
    assert_eq!(
        d.max_sessions(),
        1,
        "a camera was pulled twice around the NATS restart"
    );

    for n in &mut d.nodes {
        assert!(
            n.process.terminate().is_some_and(|s| s.success()),
            "node {} did not stop cleanly",
            n.name
        );
    }
}
