//! A recording made on two nodes of a district, because its camera moved, plays as one
//! timeline from either node. Two hub processes share a real nats-server, a fresh PostgreSQL
//! database and the real RTSP server; each records onto its own data directory:
//! - the camera records on n1 (pinned there), is pinned to n2 and records there;
//! - a police user's playback of the whole range, asked of either node, is one MP4 that
//!   ffprobe reads whole, holding both nodes' video (the other node's segments fetched with
//!   the user's own session, which that node audits as `recording.segment`);
//! - n1 killed with SIGKILL and started again repairs only its own segments: n2's segment
//!   being written is left to n2;
//! - with the recording node stopped, a part never fetched from it answers 502 naming the
//!   node (not a torn clip); a part fetched before plays from the copy kept;
//! - a live node's recordings are never forgotten; once it left for good, an admin forgets
//!   them (`DELETE /api/v1/cluster/nodes/{node}/recordings`), audited, and the other's stay.
//! - a segment being written on n2, played again and again on n1, is fetched once, then only
//!   what n2 wrote since (n1's `xueliang_peer_segment_bytes_total` adds up to its one copy);
//!   each clip is a whole MP4, the later ones with the newer frames.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::{Value, json};
use xl_store::{SegmentRow, SegmentState, Store};
use xl_testkit::{H264_360P, NatsServer, RtspServer, test_clip};
use xueliang::config::Config;

mod common;
use common::{
    HubProcess, TestPg, district_node_toml, ffprobe_duration, free_port, metrics_text, temp_dir,
};

const TOKEN: &str = "cluster-recording-token";
const CAMERA: &str = "cam";
const POLICE: &str = "police1";
const PASSWORD: &str = "correct horse battery staple";

struct Node {
    name: &'static str,
    base: String,
    config: PathBuf,
    log: PathBuf,
    process: HubProcess,
}

impl Node {
    fn start(name: &'static str, dir: &Path, pg: &TestPg, nats: &str, rtsp: &RtspServer) -> Node {
        Node::start_as(name, dir, pg, Some(nats), rtsp, 10)
    }

    /// `name`'s hub, a node of the district on `nats`, or a single hub on the same store and
    /// data directory without; it cuts its segments at `segment_secs`.
    fn start_as(
        name: &'static str,
        dir: &Path,
        pg: &TestPg,
        nats: Option<&str>,
        rtsp: &RtspServer,
        segment_secs: u32,
    ) -> Node {
        let port = free_port();
        let mut text = district_node_toml(
            name,
            port,
            TOKEN,
            &dir.join(name),
            &pg.url,
            nats.unwrap_or("nats://127.0.0.1:1"),
        );
        if nats.is_none() {
            let from = text.find("[cluster]").expect("a [cluster] section");
            let to = from + text[from..].find("\n\n").expect("a blank line after it");
            text.replace_range(from..to, "");
        }
        text.push_str(&format!(
            r#"
[recording]
mode = "continuous"
stream = "sub"
segment_secs = {segment_secs}

[[cameras]]
id = "{CAMERA}"
community = "c1"
url = "{url}"
"#,
            url = rtsp.url(CAMERA),
        ));
        Config::parse(&text).expect("the config is valid");
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, text).unwrap();
        let log = dir.join(format!("{name}.log"));
        Node {
            name,
            base: format!("http://127.0.0.1:{port}"),
            process: HubProcess::spawn(&config, log.clone()),
            config,
            log,
        }
    }

    fn kill(&mut self) {
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
    }

    fn restart(&mut self) {
        let old = std::fs::read_to_string(&self.log).unwrap_or_default();
        std::fs::write(self.log.with_extension("log.1"), old).unwrap();
        self.process = HubProcess::spawn(&self.config, self.log.clone());
    }
}

async fn wait_ready(http: &reqwest::Client, node: &mut Node) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        node.process.assert_running();
        let ok = http
            .get(format!("{}/readyz", node.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "node {} not ready", node.name);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The camera's segments in the shared index, in time order.
async fn segments(store: &Store) -> Vec<SegmentRow> {
    store
        .segments(
            &xl_core::CameraId::new(CAMERA).unwrap(),
            xl_core::live::StreamKind::Sub,
            Timestamp::UNIX_EPOCH,
            Timestamp::now() + jiff::SignedDuration::from_hours(1),
        )
        .await
        .unwrap()
}

/// Waits until `what` holds of the camera's segments.
async fn wait_segments(
    store: &Store,
    what: &str,
    nodes: &mut [&mut Node],
    ok: impl Fn(&[SegmentRow]) -> bool,
) -> Vec<SegmentRow> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for n in nodes.iter_mut() {
            n.process.assert_running();
        }
        let rows = segments(store).await;
        if ok(&rows) {
            return rows;
        }
        assert!(Instant::now() < deadline, "{what}: segments {rows:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn closed_on(rows: &[SegmentRow], node: &str) -> Vec<SegmentRow> {
    rows.iter()
        .filter(|s| s.node == node && s.state != SegmentState::Open)
        .cloned()
        .collect()
}

/// The holder of the camera's lease, as `node` reads the district.
async fn holder(http: &reqwest::Client, node: &Node) -> Option<String> {
    let view: Value = http
        .get(format!("{}/api/v1/cluster", node.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    view["leases"]
        .as_array()?
        .iter()
        .find(|l| l["key"] == format!("camera.{CAMERA}"))
        .and_then(|l| l["node"].as_str().map(str::to_owned))
}

/// Pins the camera to `to`, asked of `node`.
async fn pin(http: &reqwest::Client, node: &Node, to: &str) {
    let r = http
        .put(format!("{}/api/v1/cluster/pins/{CAMERA}", node.base))
        .bearer_auth(TOKEN)
        .json(&json!({ "node": to }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "pinning to {to}");
}

/// Plays `[from, to)` through `node` as `token`'s user.
async fn play(
    http: &reqwest::Client,
    node: &Node,
    token: &str,
    from: Timestamp,
    to: Timestamp,
) -> reqwest::Response {
    http.get(format!(
        "{}/api/v1/cameras/{CAMERA}/recording.mp4?from={from}&to={to}",
        node.base
    ))
    .bearer_auth(token)
    .send()
    .await
    .unwrap()
}

fn header_time(r: &reqwest::Response, name: &str) -> Timestamp {
    r.headers()[name].to_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_made_on_two_nodes_plays_as_one_timeline_from_either() {
    let clip = test_clip(H264_360P).expect("the test clips: run scripts/setup");
    let rtsp = RtspServer::start(&[(CAMERA, clip)]).expect("start the RTSP server");
    let nats = NatsServer::start().expect("start nats-server (scripts/ensure-nats)");
    let pg = TestPg::create().await;
    let dir = temp_dir("cluster-recording");
    let http = reqwest::Client::new();

    let mut n1 = Node::start("n1", &dir, &pg, &nats.url(), &rtsp);
    let mut n2 = Node::start("n2", &dir, &pg, &nats.url(), &rtsp);
    wait_ready(&http, &mut n1).await;
    wait_ready(&http, &mut n2).await;
    let store = Store::open(&pg.url).await.unwrap();

    // A police user, who plays through their own session.
    let r = http
        .post(format!("{}/api/v1/users", n1.base))
        .bearer_auth(TOKEN)
        .json(&json!({"username": POLICE, "password": PASSWORD, "role": "police"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let login: Value = http
        .post(format!("{}/api/v1/auth/login", n2.base))
        .json(&json!({"username": POLICE, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = login["token"].as_str().expect("a session token").to_owned();

    // The camera records on n1 (pinned there), then is pinned to n2 and records there.
    let (a, b) = ("n1", "n2");
    pin(&http, &n1, a).await;
    let rows = wait_segments(
        &store,
        "a closed segment on n1",
        &mut [&mut n1, &mut n2],
        |r| !closed_on(r, a).is_empty(),
    )
    .await;
    let from = closed_on(&rows, a).last().unwrap().start_at;
    pin(&http, &n2, b).await;
    let rows = wait_segments(
        &store,
        "a closed segment on n2",
        &mut [&mut n1, &mut n2],
        |r| closed_on(r, b).iter().any(|s| s.start_at > from),
    )
    .await;
    let first_b = closed_on(&rows, b)
        .into_iter()
        .find(|s| s.start_at > from)
        .unwrap();
    let to = first_b.end_at.unwrap();
    assert_eq!(holder(&http, &n1).await.as_deref(), Some(b));
    // What the two nodes recorded in [from, to), in seconds; one node at a time.
    let inside: Vec<&SegmentRow> = rows
        .iter()
        .filter(|s| s.start_at >= from && s.end_at.is_some_and(|e| e <= to))
        .collect();
    assert!(
        inside.iter().any(|s| s.node == a) && inside.iter().any(|s| s.node == b),
        "{inside:#?}"
    );
    assert!(
        // (one node's consecutive segments may overlap by a few ms: an end is the last
        // sample's time plus its duration, the next start the next key frame's arrival)
        inside
            .windows(2)
            .filter(|w| w[0].node != w[1].node)
            .all(|w| w[0].end_at.unwrap() <= w[1].start_at),
        "the camera was recorded by one node at a time: {inside:#?}"
    );
    let recorded: f64 = inside
        .iter()
        .map(|s| s.end_at.unwrap().duration_since(s.start_at).as_secs_f64())
        .sum();

    // The timeline, asked of either node, covers both nodes' video.
    for node in [&n1, &n2] {
        let t: Value = http
            .get(format!(
                "{}/api/v1/cameras/{CAMERA}/recordings?from={from}&to={to}",
                node.base
            ))
            .bearer_auth(&session)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let covered: f64 = t["ranges"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: {t}", node.name))
            .iter()
            .map(|r| {
                let f: Timestamp = r["from"].as_str().unwrap().parse().unwrap();
                let e: Timestamp = r["to"].as_str().unwrap().parse().unwrap();
                e.duration_since(f).as_secs_f64()
            })
            .sum();
        assert!(
            covered >= recorded - 0.5,
            "{}: {t} against {recorded} s",
            node.name
        );
    }

    // Played through either node: one MP4 with both nodes' video, the same bytes.
    let mut lengths = Vec::new();
    for node in [&n1, &n2] {
        let r = play(&http, node, &session, from, to).await;
        assert_eq!(r.status(), 200, "{}", node.name);
        let (start, end) = (
            header_time(&r, "x-clip-start"),
            header_time(&r, "x-clip-end"),
        );
        assert!(
            start <= from,
            "{}: clip starts at {start}, after {from}",
            node.name
        );
        assert!(
            end > first_b.start_at,
            "{}: the clip ends at {end}, before n2's part ({})",
            node.name,
            first_b.start_at
        );
        let bytes = r.bytes().await.unwrap();
        let file = dir.join(format!("played-on-{}.mp4", node.name));
        std::fs::write(&file, &bytes).unwrap();
        let seconds = ffprobe_duration(&file);
        assert!(
            seconds >= recorded - 2.0,
            "{}: {seconds} s played of the {recorded} s recorded on {a} and {b}",
            node.name
        );
        lengths.push(bytes.len());
    }
    assert_eq!(lengths[0], lengths[1], "the same clip from either node");

    // The node that sent its segments audited them, as the police user's looks.
    let segment_looks: Vec<Value> = audit(&http, &n1)
        .await
        .into_iter()
        .filter(|e| e["action"] == "recording.segment")
        .collect();
    assert!(
        !segment_looks.is_empty() && segment_looks.iter().all(|e| e["actor"] == POLICE),
        "{segment_looks:?}"
    );

    // The first node dies and comes back: it repairs its own segments only; the other node's
    // segment being written stays open and grows.
    let (node_a, node_b) = (&mut n1, &mut n2);
    let open_b = segments(&store)
        .await
        .into_iter()
        .find(|s| s.node == b && s.state == SegmentState::Open)
        .expect("the pinned node is writing a segment");
    node_a.kill();
    node_a.restart();
    wait_ready(&http, node_a).await;
    let row = store.segment(open_b.id).await.unwrap();
    let row = row.expect("the other node's open segment is still indexed");
    assert!(
        row.state == SegmentState::Open || row.end_at.is_some_and(|e| e > open_b.start_at),
        "{row:?}"
    );
    assert_eq!(row.node, b);

    // A live node's recordings, or the answering node's, are never forgotten.
    for (asked, node) in [(&*node_a, b), (&*node_a, a)] {
        let r = forget(&http, asked, node).await;
        assert_eq!(
            r.status(),
            409,
            "forgetting {node}: {}",
            r.text().await.unwrap()
        );
    }

    // The recording node stopped: a part of its never fetched before is 502 naming it, from
    // the node left; the part fetched before still plays from the copy kept here.
    node_b.process.terminate();
    let (start, end) = (
        open_b.start_at,
        open_b.start_at + jiff::SignedDuration::from_secs(2),
    );
    let r = play(&http, node_a, &session, start, end).await;
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("node {b}")), "{message}");
    assert!(!message.contains("127.0.0.1"), "no addresses: {message}");
    let two_secs = jiff::SignedDuration::from_secs(2);
    let r = play(
        &http,
        node_a,
        &session,
        first_b.start_at,
        first_b.start_at + two_secs,
    )
    .await;
    assert_eq!(r.status(), 200, "the copy of n2's first segment");

    // n2 left the district for good: an admin forgets its recordings, which leaves n1's.
    let (n1_rows, n2_rows) = {
        let rows = segments(&store).await;
        let on = |n: &str| rows.iter().filter(|s| s.node == n).count();
        (on(a), on(b))
    };
    assert!(n2_rows > 0);
    // n2 deleted its heartbeat as it stopped (it was stopped, not killed), so it is gone
    // from the district at once, not when its entry would have expired.
    let r = forget(&http, node_a, b).await;
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let forgotten: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(forgotten, json!({ "node": b, "segments": n2_rows }));
    let rows = segments(&store).await;
    assert!(rows.iter().all(|s| s.node == a), "{rows:#?}");
    assert_eq!(rows.len(), n1_rows);
    let r = play(
        &http,
        node_a,
        &session,
        first_b.start_at,
        first_b.start_at + two_secs,
    )
    .await;
    assert_eq!(r.status(), 404, "n2's part is no longer indexed");
    let entry = audit(&http, node_a)
        .await
        .into_iter()
        .find(|e| e["action"] == "cluster.forget-node")
        .expect("the forgetting is audited");
    assert_eq!(entry["target"], b, "{entry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_hub_recorded_before_it_joined_the_district_plays_from_every_node() {
    let clip = test_clip(H264_360P).expect("the test clips: run scripts/setup");
    let rtsp = RtspServer::start(&[(CAMERA, clip)]).expect("start the RTSP server");
    let nats = NatsServer::start().expect("start nats-server (scripts/ensure-nats)");
    let pg = TestPg::create().await;
    let dir = temp_dir("cluster-joined");
    let http = reqwest::Client::new();
    let store = Store::open(&pg.url).await.unwrap();

    // n1 records as a single hub first (its segments name no node)...
    let mut single = Node::start_as("n1", &dir, &pg, None, &rtsp, 10);
    wait_ready(&http, &mut single).await;
    let before = wait_segments(
        &store,
        "a single hub's closed segment",
        &mut [&mut single],
        |rows| !closed_on(rows, "").is_empty(),
    )
    .await;
    let first = closed_on(&before, "")[0].clone();
    assert_eq!(single.process.terminate().map(|s| s.success()), Some(true));

    // ...then joins a district as n1 beside n2: they are n1's now, and n2 plays them.
    let mut n1 = Node::start("n1", &dir, &pg, &nats.url(), &rtsp);
    let mut n2 = Node::start("n2", &dir, &pg, &nats.url(), &rtsp);
    wait_ready(&http, &mut n1).await;
    wait_ready(&http, &mut n2).await;
    let rows = segments(&store).await;
    assert!(rows.iter().all(|s| !s.node.is_empty()), "{rows:#?}");
    let taken = rows
        .iter()
        .find(|s| s.id == first.id)
        .expect("still indexed");
    assert_eq!(taken.node, "n1");
    let r = play(
        &http,
        &n2,
        TOKEN,
        first.start_at,
        first.end_at.expect("closed"),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let mp4 = r.bytes().await.unwrap();
    let path = dir.join("joined-on-n2.mp4");
    std::fs::write(&path, &mp4).unwrap();
    let played = ffprobe_duration(&path);
    assert!(
        played > 1.0,
        "n2 played {played} s of n1's pre-district segment"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_being_written_on_another_node_is_fetched_once_then_only_its_tail() {
    let clip = test_clip(H264_360P).expect("the test clips: run scripts/setup");
    let rtsp = RtspServer::start(&[(CAMERA, clip)]).expect("start the RTSP server");
    let nats = NatsServer::start().expect("start nats-server (scripts/ensure-nats)");
    let pg = TestPg::create().await;
    let dir = temp_dir("cluster-open-tail");
    let http = reqwest::Client::new();
    let store = Store::open(&pg.url).await.unwrap();

    // Segments long enough that the one n2 opens stays open while n1 plays it.
    let mut n1 = Node::start_as("n1", &dir, &pg, Some(&nats.url()), &rtsp, 300);
    let mut n2 = Node::start_as("n2", &dir, &pg, Some(&nats.url()), &rtsp, 300);
    wait_ready(&http, &mut n1).await;
    wait_ready(&http, &mut n2).await;
    pin(&http, &n1, "n2").await;
    let rows = wait_segments(
        &store,
        "a segment being written on n2",
        &mut [&mut n1, &mut n2],
        |rows| {
            rows.iter()
                .any(|s| s.node == "n2" && s.state == SegmentState::Open)
        },
    )
    .await;
    let open = rows
        .into_iter()
        .find(|s| s.node == "n2" && s.state == SegmentState::Open)
        .unwrap();
    let on_n2 = dir.join("n2").join(&open.path);
    let copy = dir
        .join("n1")
        .join(format!("cache/segments/{}.open.mp4", open.id));
    let (from, to) = (
        open.start_at,
        open.start_at + jiff::SignedDuration::from_secs(250),
    );
    let before = peer_bytes(&http, &n1, "n2").await;

    // A player on n1 asks for the segment again and again: the first clip holds what n2 had
    // written, a later one the frames written since.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut clips: Vec<(Timestamp, Vec<u8>)> = Vec::new();
    while clips.len() < 2 || clips[clips.len() - 1].0 <= clips[0].0 {
        assert!(
            Instant::now() < deadline,
            "no clip of n2's open segment with newer frames: {:?}",
            clips.iter().map(|c| c.0).collect::<Vec<_>>()
        );
        n1.process.assert_running();
        n2.process.assert_running();
        let r = play(&http, &n1, TOKEN, from, to).await;
        if r.status() == 404 {
            // No whole fragment written yet.
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let end = header_time(&r, "x-clip-end");
        clips.push((end, r.bytes().await.unwrap().to_vec()));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let row = store
        .segment(open.id)
        .await
        .unwrap()
        .expect("still indexed");
    assert_eq!(
        row.state,
        SegmentState::Open,
        "n2 closed the segment while n1 played it: the test needs longer segments"
    );

    // n1 kept one copy of it, the first bytes of n2's file, and fetched each byte of it once.
    let fetched = peer_bytes(&http, &n1, "n2").await - before;
    let kept = std::fs::read(&copy).expect("n1 keeps one copy of n2's open segment");
    let written = std::fs::read(&on_n2).unwrap();
    assert!(
        written.starts_with(&kept),
        "n1's copy ({} bytes) is not the start of n2's file ({} bytes)",
        kept.len(),
        written.len()
    );
    assert_eq!(
        fetched,
        kept.len() as u64,
        "{} plays of n2's open segment fetched {fetched} bytes for a copy of {}",
        clips.len(),
        kept.len()
    );

    // Each clip is a whole MP4; the last has the newer frames.
    let mut seconds = Vec::new();
    for (i, (_, bytes)) in [&clips[0], &clips[clips.len() - 1]].into_iter().enumerate() {
        let file = dir.join(format!("open-tail-{i}.mp4"));
        std::fs::write(&file, bytes).unwrap();
        seconds.push(ffprobe_duration(&file));
    }
    assert!(
        seconds[1] > seconds[0],
        "the later clip plays {} s, the first {} s",
        seconds[1],
        seconds[0]
    );
}

/// The bytes `node` fetched of `from`'s segments, from its `/metrics`.
async fn peer_bytes(http: &reqwest::Client, node: &Node, from: &str) -> u64 {
    let metrics = metrics_text(http, &node.base, TOKEN).await;
    let name = format!("xueliang_peer_segment_bytes_total{{recorded_by=\"{from}\"}} ");
    assert!(
        metrics.contains("# TYPE xueliang_peer_segment_bytes_total counter"),
        "no xueliang_peer_segment_bytes_total on {}'s /metrics",
        node.name
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&name))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// `node`'s audit log (its last 1,000 entries), as the admin reads it.
async fn audit(http: &reqwest::Client, node: &Node) -> Vec<Value> {
    http.get(format!("{}/api/v1/audit?limit=1000", node.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Asks `node` to forget the recordings of node `forgotten`, as the admin.
async fn forget(http: &reqwest::Client, node: &Node, forgotten: &str) -> reqwest::Response {
    http.delete(format!(
        "{}/api/v1/cluster/nodes/{forgotten}/recordings",
        node.base
    ))
    .bearer_auth(TOKEN)
    .send()
    .await
    .unwrap()
}
