//! A one-node district (the hub in this process, a real nats-server and a fresh PostgreSQL
//! database), its notify lease's holder publishing the stored events on JetStream:
//! - a gate event pushed over HTTP twice (the device retrying) is stored once and is once on
//!   `xl.gate.<community>.<kind>` in `xl-gate-events`, as `GET /api/v1/events/gates` shows it;
//! - a stored vision event is once on `xl.vision.<community>.<kind>` in `xl-vision-events`,
//!   as `GET /api/v1/events/vision` shows it;
//! - their cursors are `feed.jetstream.*` in the store, never `outbox.*` ones (outbox
//!   retention waits for those);
//! - a camera the node pulls from the real RTSP server going online is on
//!   `xl.camera.<community>.status` in `xl-camera-status` with the node's id, each message a
//!   change (the board's 10-s reposts are not in the stream).

use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::Value;
use xl_testkit::{H264_360P, NatsServer, RtspServer, test_clip};
use xueliang::config::Config;
use xueliang::hub::Hub;

mod common;
use common::{TestPg, district_node_toml, forced_open, free_port, metrics_text, temp_dir};

const TOKEN: &str = "feeds-test-token";
/// Generous: the machine may be loaded. Nothing waits this long when things work.
const WAIT: Duration = Duration::from_secs(60);

/// The one message of `stream` once the store's `cursor` says it is published: (subject,
/// message id, payload). Panics if there is any other.
async fn the_one_message(
    js: &jetstream::Context,
    store: &xl_store::Store,
    cursor: &str,
    stream: &str,
) -> (String, Option<String>, Value) {
    let deadline = Instant::now() + WAIT;
    while store.cursor(cursor).await.unwrap() < 1 {
        assert!(Instant::now() < deadline, "{cursor} still 0 after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let messages = xl_testkit::stream_messages(js, stream, None).await.unwrap();
    let [m] = messages.as_slice() else {
        panic!("not one message in {stream}: {messages:?}")
    };
    (
        m.subject.clone(),
        m.msg_id.clone(),
        serde_json::from_slice(&m.payload).unwrap(),
    )
}

/// The rows `GET {path}` answers.
async fn api_rows(http: &reqwest::Client, base: &str, path: &str) -> Vec<Value> {
    let r = http.get(format!("{base}{path}")).bearer_auth(TOKEN);
    r.send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_gate_and_vision_events_are_each_once_on_their_subjects() {
    let nats = NatsServer::start().expect("start nats-server (scripts/ensure-nats)");
    let pg = TestPg::create().await;
    let data = temp_dir("cluster-feeds");
    let mut text = district_node_toml("n1", free_port(), TOKEN, &data, &pg.url, &nats.url());
    text.push_str(
        "\n[[gates]]\nid = \"east\"\ncommunity = \"feeds-1\"\nfirmware = \"hikvision-isapi\"\n\
         push_allow_from = [\"127.0.0.1\"]\n",
    );
    let hub = Hub::start(Config::parse(&text).expect("the config is valid"))
        .await
        .unwrap();
    let base = format!("http://{}", hub.addr);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let store = xl_store::Store::open(&pg.url).await.unwrap();

    let event = forced_open(4242);
    for _ in 0..2 {
        let r = http
            .post(format!("{base}/gates/push/hikvision/east"))
            .header("content-type", "application/json")
            .body(event.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // A push is answered once its events are committed: the store holds its final state.
    let rows = api_rows(&http, &base, "/api/v1/events/gates").await;
    assert_eq!(rows.len(), 1, "stored once: {rows:?}");
    assert_eq!(rows[0]["event"]["kind"], "door_forced_open", "{rows:?}");
    let (subject, id, payload) =
        the_one_message(&js, &store, "feed.jetstream.gate", "xl-gate-events").await;
    assert_eq!(subject, "xl.gate.feeds-1.door_forced_open");
    assert_eq!(id.as_deref(), Some("xl-gate-1"));
    assert_eq!(payload, rows[0], "the gate event as the API shows it");

    // As the alert processor stores a zone entry (no camera needed for the feed).
    let at = jiff::Timestamp::now();
    let body = serde_json::json!({
        "kind": "entered_zone", "camera": "cam-9", "track": 3, "zone": "lobby",
        "class": "person", "at": at.to_string(),
    });
    store
        .insert_vision_events(&[xl_store::NewVisionEvent {
            id: "feeds-vision-1".into(),
            camera: "cam-9".parse().unwrap(),
            community: "feeds-1".parse().unwrap(),
            kind: "entered_zone".into(),
            zone: Some("lobby".into()),
            at,
            body,
        }])
        .await
        .unwrap();
    let rows = api_rows(&http, &base, "/api/v1/events/vision").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (subject, id, payload) =
        the_one_message(&js, &store, "feed.jetstream.vision", "xl-vision-events").await;
    assert_eq!(subject, "xl.vision.feeds-1.entered_zone");
    assert_eq!(id.as_deref(), Some("xl-vision-1"));
    assert_eq!(payload, rows[0], "the vision event as the API shows it");

    let db = sqlx::PgPool::connect(&pg.url).await.unwrap();
    let names: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM cursors WHERE name LIKE '%jetstream%' ORDER BY name")
            .fetch_all(&db)
            .await
            .unwrap();
    let names: Vec<&str> = names.iter().map(|(n,)| n.as_str()).collect();
    assert!(
        names.starts_with(&["feed.jetstream.gate", "feed.jetstream.vision"])
            && names[2..].iter().all(|n| *n == "outbox.jetstream"),
        "{names:?}"
    );
    db.close().await;

    // The lease holder's /metrics shows each feed: one gate event and one vision event
    // published (the gate event was pushed twice: stored once, so published once), none
    // left to publish, connected.
    let metrics = metrics_text(&http, &base, TOKEN).await;
    for line in [
        "xueliang_jetstream_published_total{stream=\"xl-gate-events\"} 1",
        "xueliang_jetstream_published_total{stream=\"xl-vision-events\"} 1",
        "xueliang_jetstream_lag{stream=\"xl-gate-events\"} 0",
        "xueliang_jetstream_lag{stream=\"xl-vision-events\"} 0",
        "xueliang_jetstream_connected{stream=\"xl-alerts\"} 1",
        "xueliang_jetstream_failures_total{stream=\"xl-gate-events\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in /metrics:\n{}",
            metrics
                .lines()
                .filter(|l| l.starts_with("xueliang_jetstream"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    hub.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// Every message of `xl-camera-status` on `subject`: (`Nats-Msg-Id`, payload).
async fn camera_status_messages(js: &jetstream::Context, subject: &str) -> Vec<(String, Value)> {
    let messages = xl_testkit::stream_messages(js, "xl-camera-status", Some(subject))
        .await
        .unwrap();
    messages
        .into_iter()
        .map(|m| {
            assert_eq!(m.subject, subject);
            (
                m.msg_id.unwrap_or_default(),
                serde_json::from_slice(&m.payload).unwrap(),
            )
        })
        .collect()
}

/// The `at_ms` of the camera's last post on the board (`xl-board`, `camera.<id>`).
async fn board_post_ms(js: &jetstream::Context, camera: &str) -> Option<i64> {
    let board = js.get_key_value("xl-board").await.unwrap();
    let value = board.get(format!("camera.{camera}")).await.unwrap()?;
    serde_json::from_slice::<Value>(&value).unwrap()["at_ms"].as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_going_online_is_on_its_communitys_camera_status_subject() {
    let clip = test_clip(H264_360P).expect("the test clips: run scripts/setup");
    let rtsp = RtspServer::start(&[("door", clip)]).expect("start the RTSP server");
    let nats = NatsServer::start().expect("start nats-server (scripts/ensure-nats)");
    let pg = TestPg::create().await;
    let data = temp_dir("cluster-camera-status");
    let mut text = district_node_toml("n1", free_port(), TOKEN, &data, &pg.url, &nats.url());
    text.push_str(&format!(
        "\n[[cameras]]\nid = \"door\"\ncommunity = \"feeds.2\"\nurl = \"{}\"\n",
        rtsp.url("door")
    ));
    let hub = Hub::start(Config::parse(&text).expect("the config is valid"))
        .await
        .unwrap();
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    // `.` cannot be in a subject token.
    let subject = "xl.camera.feeds_2.status";

    let deadline = Instant::now() + WAIT;
    let messages = loop {
        let messages = camera_status_messages(&js, subject).await;
        if messages
            .last()
            .is_some_and(|(_, m)| m["camera"]["status"] == "online")
        {
            break messages;
        }
        assert!(
            Instant::now() < deadline,
            "not online on {subject} after {WAIT:?}: {messages:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (id, m) in &messages {
        let camera = &m["camera"];
        assert_eq!(camera["id"], "door", "{m}");
        assert_eq!(camera["community"], "feeds.2", "{m}");
        assert_eq!(camera["node"], "n1", "{m}");
        let at_ms = m["at_ms"].as_i64().expect("at_ms");
        assert_eq!(id, &format!("xl-camera-door-n1-{at_ms}"));
    }
    let statuses: Vec<&str> = messages
        .iter()
        .map(|(_, m)| m["camera"]["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.windows(2).all(|w| w[0] != w[1]),
        "each message a change: {statuses:?}"
    );
    let online_ms = messages.last().unwrap().1["at_ms"].as_i64().unwrap();

    // The board reposts the unchanged status (every 10 s); the stream does not take it.
    let deadline = Instant::now() + WAIT;
    while board_post_ms(&js, "door").await.unwrap_or(0) <= online_ms {
        assert!(
            Instant::now() < deadline,
            "no repost on the board after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let after = camera_status_messages(&js, subject).await;
    assert_eq!(
        after.len(),
        messages.len(),
        "a repost is no change: {after:?}"
    );

    hub.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}
