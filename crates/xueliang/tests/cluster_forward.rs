//! A camera's node-local routes asked of a node that does not run it: two hub nodes (each the
//! `xueliang` binary as its own process) sharing a real nats-server, a fresh PostgreSQL
//! database and the real RTSP server. A camera pinned to n2, asked for through n1:
//! - its thumbnail is n2's JPEG, its snapshot answer is n2's;
//! - its live WebSocket delivers the init message, the init segment and media segments;
//! - a decode-policy change made through n1 takes effect on n2;
//! - the live session is audited once, by n2, with the client's address passed along
//!   (both nodes list loopback in `trusted_proxies`, as a district lists its nodes);
//! - a request marked as forwarded already is answered by n1 itself, never forwarded again.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use xl_testkit::{H264_360P, NatsServer, RtspServer, test_clip};
use xueliang::config::Config;

mod common;
use common::{HubProcess, TestPg, district_node_toml, free_port, temp_dir};

const TOKEN: &str = "forward-test-token";
const CAMERAS: [&str; 3] = ["c0", "c1", "c2"];
/// The camera asked of n1, pinned to n2.
const CAMERA: &str = "c0";
/// The client's address as the test claims it to n1 (which trusts loopback).
const CLIENT: &str = "10.9.8.7";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One node's config: the same cameras on every node, loopback trusted as a proxy.
fn node_config(
    node: &str,
    port: u16,
    data: &Path,
    database_url: &str,
    nats: &str,
    rtsp: &RtspServer,
) -> String {
    let mut text = district_node_toml(node, port, TOKEN, data, database_url, nats);
    for id in CAMERAS {
        text.push_str(&format!(
            "\n[[cameras]]\nid = \"{id}\"\ncommunity = \"fwd\"\nurl = \"{url}\"\ndecode = \"key-frames\"\n",
            url = rtsp.url(id),
        ));
    }
    text
}

struct Node {
    base: String,
    process: HubProcess,
}

fn spawn(name: &str, dir: &Path, database_url: &str, nats: &str, rtsp: &RtspServer) -> Node {
    let port = free_port();
    let text = node_config(name, port, &dir.join(name), database_url, nats, rtsp);
    Config::parse(&text).expect("the config is valid");
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, &text).unwrap();
    Node {
        base: format!("http://127.0.0.1:{port}"),
        process: HubProcess::spawn(&config, dir.join(format!("{name}.log"))),
    }
}

/// The JSON at `url`, `None` unless 200.
async fn try_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    let resp = http.get(url).bearer_auth(TOKEN).send().await.ok()?;
    if resp.status() != 200 {
        return None;
    }
    resp.json().await.ok()
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let resp = http.get(url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.json().await.unwrap()
}

/// Polls `check` every 250 ms until it gives `Some`; panics with `what` after `secs`.
async fn wait_for<T, F, Fut>(what: &str, secs: u64, nodes: &mut [&mut Node], mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        for n in nodes.iter_mut() {
            n.process.assert_running();
        }
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A WebSocket to `base`'s live view of `camera`, with the token, the client's address and
/// `extra` headers.
async fn live(base: &str, camera: &str, extra: &[(&'static str, &str)]) -> Result<Socket, WsError> {
    let url = format!(
        "{}/api/v1/cameras/{camera}/live?stream=sub",
        base.replace("http://", "ws://")
    );
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    headers.insert("x-forwarded-for", CLIENT.parse().unwrap());
    for (name, value) in extra {
        headers.insert(*name, value.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(s, _)| s)
}

/// `live.start`/`live.end` entries of `camera` in the shared audit log: (action, peer, detail).
async fn live_audit(
    http: &reqwest::Client,
    base: &str,
    camera: &str,
) -> Vec<(String, Value, Value)> {
    let audit = get_json(http, &format!("{base}/api/v1/audit?limit=200")).await;
    audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["target"] == camera && e["action"].as_str().is_some_and(|a| a.starts_with("live."))
        })
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["peer"].clone(),
                e["detail"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cameras_node_local_routes_are_answered_through_any_node() {
    let clip = test_clip(H264_360P).expect("the test clips: run scripts/setup");
    let mounts: Vec<(&str, std::path::PathBuf)> =
        CAMERAS.iter().map(|c| (*c, clip.clone())).collect();
    let rtsp = RtspServer::start(&mounts).expect("start the RTSP server");
    let nats = NatsServer::start().expect("start nats-server (scripts/ensure-nats)");
    let pg = TestPg::create().await;
    let dir = temp_dir("cluster-forward");
    let mut n1 = spawn("n1", &dir, &pg.url, &nats.url(), &rtsp);
    let mut n2 = spawn("n2", &dir, &pg.url, &nats.url(), &rtsp);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let (a, b) = (n1.base.clone(), n2.base.clone());
    let (a, b, http) = (a.as_str(), b.as_str(), &http);

    // The camera runs on n2 (pinned there through n1's API), and n1 knows.
    wait_for(
        "both nodes ready",
        40,
        &mut [&mut n1, &mut n2],
        move || async move {
            for base in [a, b] {
                let ready = http.get(format!("{base}/readyz")).send().await.ok()?;
                (ready.status() == 200).then_some(())?;
            }
            Some(())
        },
    )
    .await;
    let pinned = http
        .put(format!("{a}/api/v1/cluster/pins/{CAMERA}"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "node": "n2" }))
        .send()
        .await
        .unwrap();
    assert_eq!(pinned.status(), 204);
    wait_for(
        "the camera held by n2 and online there",
        30,
        &mut [&mut n1, &mut n2],
        move || async move {
            let view = try_json(http, &format!("{a}/api/v1/cluster")).await?;
            let held_by_n2 = view["leases"]
                .as_array()?
                .iter()
                .any(|l| l["key"] == format!("camera.{CAMERA}") && l["node"] == "n2");
            let camera = try_json(http, &format!("{b}/api/v1/cameras/{CAMERA}")).await?;
            (held_by_n2 && camera["status"] == "online").then_some(())
        },
    )
    .await;

    // The thumbnail through n1 is n2's picture (once n2 has a key frame).
    let jpeg = wait_for(
        "a thumbnail through n1",
        20,
        &mut [&mut n1, &mut n2],
        move || async move {
            let resp = http
                .get(format!("{a}/api/v1/cameras/{CAMERA}/thumbnail"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .ok()?;
            if resp.status() != 200 {
                return None;
            }
            assert_eq!(resp.headers()["content-type"], "image/jpeg");
            Some(resp.bytes().await.unwrap())
        },
    )
    .await;
    assert_eq!(&jpeg[..3], &[0xff, 0xd8, 0xff], "a JPEG");
    // The snapshot route's answer is n2's: n1 alone would not know the camera ("no camera").
    let resp = http
        .get(format!("{a}/api/v1/cameras/{CAMERA}/snapshot"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        format!("no snapshot of camera {CAMERA}")
    );

    // A request another node forwarded already is answered by n1 itself: not the video.
    let resp = http
        .get(format!("{a}/api/v1/cameras/{CAMERA}/thumbnail"))
        .bearer_auth(TOKEN)
        .header("x-xueliang-forwarded-by", "n2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["message"], format!("no camera {CAMERA}"));
    match live(a, CAMERA, &[("x-xueliang-forwarded-by", "n2")]).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 404),
        Err(e) => panic!("a marked live request: {e}"),
        Ok(_) => panic!("a request marked as forwarded was forwarded again"),
    }

    // Live video through n1: the init message, the init segment, then media segments.
    let mut socket = live(a, CAMERA, &[])
        .await
        .expect("the live socket through n1");
    let read = async {
        let mut init = None;
        let mut segments = 0;
        while segments < 3 {
            match socket.next().await.expect("socket open").expect("no error") {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "init" {
                        init = Some(v);
                    }
                }
                Message::Binary(b) => {
                    let init = init.as_ref().expect("the init text before any binary");
                    assert_eq!(init["width"], 640, "{init}");
                    let want: &[u8] = if segments == 0 { b"ftyp" } else { b"moof" };
                    assert_eq!(&b[4..8], want, "segment {segments}");
                    segments += 1;
                }
                other => panic!("unexpected message {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("video through n1 within 30 s");
    socket.send(Message::Close(None)).await.unwrap();
    drop(socket);

    // Audited once, by n2 (n1 audits nothing it forwards), with the client's address; the
    // end comes when the viewer's close has passed through n1.
    let entries = wait_for(
        "live.end in the audit log",
        15,
        &mut [&mut n1, &mut n2],
        move || async move {
            let entries = live_audit(http, b, CAMERA).await;
            entries
                .iter()
                .any(|(action, _, _)| action == "live.end")
                .then_some(entries)
        },
    )
    .await;
    let starts: Vec<_> = entries
        .iter()
        .filter(|(action, _, _)| action == "live.start")
        .collect();
    assert_eq!(starts.len(), 1, "{entries:?}");
    assert_eq!(starts[0].1, CLIENT, "{entries:?}");
    assert_eq!(entries.len(), 2, "{entries:?}");
    let end = &entries
        .iter()
        .find(|(action, _, _)| action == "live.end")
        .unwrap()
        .2;
    assert_eq!(end["reason"], "viewer_left", "{end}");

    // A decode-policy change through n1 takes effect on n2.
    let resp = http
        .put(format!("{a}/api/v1/cameras/{CAMERA}/decode-policy"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "decode_policy": "skip-non-reference" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["decode_policy"], "skip-non-reference", "{answer}");
    let on_n2 = get_json(http, &format!("{b}/api/v1/cameras/{CAMERA}")).await;
    assert_eq!(on_n2["decode_policy"], "skip-non-reference", "{on_n2}");
    assert_eq!(on_n2.get("node"), None, "n2 runs it: {on_n2}");

    n1.process.terminate();
    n2.process.terminate();
}
