//! Live view through the real hub, against the real RTSP server (gst-rtsp-server on loopback)
//! and a real WebSocket client:
//! - several viewers of one stream share its one pull (the decoder and the viewers on one
//!   tee), each gets an init segment and then fragments from a key frame, and what they get
//!   decodes with FFmpeg to the stream's size and frame count;
//! - the main stream is pulled only once someone watches it, once for several viewers;
//! - an H.265 camera reaches a browser that cannot play H.265 as H.264 (transcoded);
//! - a viewer that stops reading does not delay the others, and is cut off;
//! - a viewer of a camera that goes offline is told, and its video resumes by itself (a new
//!   init segment) when the camera is back;
//! - scope: no session, another site's page, or a property user asking for another
//!   community's camera are refused before any video; a removed camera closes its viewers'
//!   sockets with 4404 (an edited one with 1012: open again), and one whose user's scope no longer covers it with 4403; every
//!   session is audited with its start and end.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use xl_testkit::{H264_360P, H264_720P, H265_360P, RtspServer, test_clip};
use xueliang::config::Config;
use xueliang::hub::Hub;

mod common;
use common::temp_dir;

const TOKEN: &str = "test-token";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct World {
    _server: RtspServer,
    hub: Hub,
}

impl World {
    async fn start() -> World {
        let server = RtspServer::start(&[
            ("sub", test_clip(H264_360P).unwrap()),
            ("main", test_clip(H264_720P).unwrap()),
            ("hevc", test_clip(H265_360P).unwrap()),
        ])
        .unwrap();
        let data = temp_dir("live");
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\napi_token = \"{TOKEN}\"\ndata_dir = \"{}\"\n\
             [detect]\nenabled = false\n\
             [rtsp]\nrequest_timeout_secs = 3\nframe_timeout_secs = 3\n\
             backoff_initial_secs = 0.2\nbackoff_max_secs = 1.0\n\
             [[cameras]]\nid = \"gate-cam\"\ncommunity = \"xingfu\"\nurl = \"{}\"\n\
             main_url = \"{}\"\ndecode = \"key-frames\"\n\
             [[cameras]]\nid = \"hevc-cam\"\ncommunity = \"xingfu\"\nurl = \"{}\"\n\
             decode = \"key-frames\"\n\
             [[cameras]]\nid = \"other-cam\"\ncommunity = \"wang\"\nurl = \"{}\"\n\
             decode = \"key-frames\"\n",
            data.display(),
            server.url("sub"),
            server.url("main"),
            server.url("hevc"),
            server.url("sub"),
        );
        let hub = Hub::start(Config::parse(&text).unwrap()).await.unwrap();
        let world = World {
            _server: server,
            hub,
        };
        for camera in ["gate-cam", "hevc-cam", "other-cam"] {
            world.wait_online(camera).await;
        }
        world
    }

    fn base(&self) -> String {
        format!("http://{}", self.hub.addr)
    }

    async fn wait_online(&self, camera: &str) {
        let id = xl_core::CameraId::new(camera).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.hub.cameras.get(&id).map(|(_, s)| s.status());
            if matches!(status, Some(xl_core::camera::CameraStatus::Online)) {
                return;
            }
            assert!(Instant::now() < deadline, "{camera} not online: {status:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A WebSocket to `path_and_query`, with `bearer` (or none) and extra headers.
    async fn connect(
        &self,
        path_and_query: &str,
        bearer: Option<&str>,
        headers: &[(&'static str, &str)],
    ) -> Result<Socket, WsError> {
        let mut request = format!("ws://{}{path_and_query}", self.hub.addr)
            .into_client_request()
            .unwrap();
        if let Some(token) = bearer {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        tokio_tungstenite::connect_async(request)
            .await
            .map(|(socket, _)| socket)
    }

    async fn live(&self, camera: &str, query: &str) -> Socket {
        self.connect(
            &format!("/api/v1/cameras/{camera}/live?{query}"),
            Some(TOKEN),
            &[],
        )
        .await
        .unwrap()
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::Client::new()
            .get(format!("{}/metrics", self.base()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    }

    async fn audit_actions(&self) -> Vec<(String, String, Value)> {
        let audit: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/audit?limit=200", self.base()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        audit
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap_or_default().to_owned(),
                    e["target"].as_str().unwrap_or_default().to_owned(),
                    e["detail"].clone(),
                )
            })
            .collect()
    }
}

/// What a viewer received: the `init` message, the init segment, and `fragments` media
/// segments after it.
struct Received {
    init: Value,
    init_segment: Vec<u8>,
    fragments: Vec<Vec<u8>>,
}

impl Received {
    /// Writes the init segment and the fragments to one file and asks ffprobe what it holds:
    /// (codec, width, height, frames decoded).
    fn probe(&self, name: &str) -> (String, u64, u64, u64) {
        let path = temp_dir("live-probe").join(format!("{name}.mp4"));
        let mut bytes = self.init_segment.clone();
        for f in &self.fragments {
            bytes.extend_from_slice(f);
        }
        std::fs::write(&path, bytes).unwrap();
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
            .args([
                "-show_entries",
                "stream=codec_name,width,height,nb_read_frames",
            ])
            .args(["-of", "json"])
            .arg(&path)
            .output()
            .expect("ffprobe (installed by scripts/setup)");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "ffprobe on {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let s = &v["streams"][0];
        let num = |k: &str| {
            s[k].as_u64()
                .or_else(|| s[k].as_str().and_then(|x| x.parse().ok()))
                .unwrap()
        };
        (
            s["codec_name"].as_str().unwrap().to_owned(),
            num("width"),
            num("height"),
            num("nb_read_frames"),
        )
    }
}

/// Reads `socket` until its close frame; panics if it ends without one.
async fn close_frame(socket: &mut Socket) -> tokio_tungstenite::tungstenite::protocol::CloseFrame {
    loop {
        match socket.next().await {
            Some(Ok(Message::Close(Some(frame)))) => return frame,
            Some(Ok(_)) => {}
            other => panic!("socket ended without a close frame: {other:?}"),
        }
    }
}

/// Reads `socket` until the `init` text, its init segment and `fragments` media segments
/// have come (within 30 s); status messages are skipped.
async fn receive(socket: &mut Socket, fragments: usize) -> Received {
    let read = async {
        let mut init = None;
        let mut init_segment = None;
        let mut got = Vec::new();
        while got.len() < fragments {
            match socket.next().await.expect("socket open").expect("no error") {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "init" {
                        assert!(init.is_none(), "one init for one stream: {v}");
                        init = Some(v);
                    }
                }
                Message::Binary(b) => {
                    assert!(init.is_some(), "a binary message before the init text");
                    if init_segment.is_none() {
                        assert_eq!(&b[4..8], b"ftyp", "the init segment first");
                        init_segment = Some(b.to_vec());
                    } else {
                        assert_eq!(&b[4..8], b"moof", "then media segments");
                        got.push(b.to_vec());
                    }
                }
                other => panic!("unexpected message {other:?}"),
            }
        }
        Received {
            init: init.unwrap(),
            init_segment: init_segment.unwrap(),
            fragments: got,
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("video within 30 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_share_one_pull_and_the_main_stream_is_pulled_only_while_watched() {
    let world = World::start().await;
    let stats = world
        .hub
        .cameras
        .get(&xl_core::CameraId::new("gate-cam").unwrap())
        .unwrap()
        .1;
    let reconnects = stats.reconnects.load(Relaxed);

    // Three viewers of the sub stream: the decoder's pull serves them all.
    let mut viewers = Vec::new();
    for _ in 0..3 {
        viewers.push(world.live("gate-cam", "stream=sub").await);
    }
    for (i, v) in viewers.iter_mut().enumerate() {
        let r = receive(v, 25).await;
        assert_eq!(r.init["codec"].as_str().unwrap().get(..5), Some("avc1."));
        assert_eq!(
            (&r.init["width"], &r.init["height"]),
            (&json!(640), &json!(360))
        );
        assert_eq!(r.init["stream"], "sub");
        assert_eq!(r.init["transcoded"], false);
        // The first fragment is a key frame: FFmpeg decodes every one of them.
        assert_eq!(r.probe(&format!("sub-{i}")), ("h264".into(), 640, 360, 25));
    }
    assert_eq!(world.metric("xueliang_live_sessions").await, 3.0);
    assert_eq!(world.metric("xueliang_live_pulls_started_total").await, 0.0);
    assert_eq!(
        stats.reconnects.load(Relaxed),
        reconnects,
        "the decoder's pull went on"
    );

    // The main stream: not pulled until watched, then one pull for two viewers.
    let mut a = world.live("gate-cam", "stream=main").await;
    let mut b = world.live("gate-cam", "stream=main").await;
    let ra = receive(&mut a, 15).await;
    let rb = receive(&mut b, 15).await;
    for (r, name) in [(&ra, "main-a"), (&rb, "main-b")] {
        assert_eq!(r.init["stream"], "main");
        assert_eq!(
            (&r.init["width"], &r.init["height"]),
            (&json!(1280), &json!(720))
        );
        assert_eq!(r.probe(name), ("h264".into(), 1280, 720, 15));
    }
    assert_eq!(world.metric("xueliang_live_pulls_started_total").await, 1.0);
    assert_eq!(world.metric("xueliang_live_sessions").await, 5.0);

    // Leaving closes the sessions; their ends are audited.
    for mut v in viewers.into_iter().chain([a, b]) {
        v.close(None).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while world.metric("xueliang_live_sessions").await > 0.0 {
        assert!(Instant::now() < deadline, "sessions not closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let audit = world.audit_actions().await;
    let count = |action: &str| {
        audit
            .iter()
            .filter(|(a, t, _)| a == action && t == "gate-cam")
            .count()
    };
    assert_eq!(
        (count("live.start"), count("live.end")),
        (5, 5),
        "{audit:?}"
    );
    assert!(audit.iter().any(|(a, _, d)| a == "live.end"
        && d["stream"] == "main"
        && d["reason"] == "viewer_left"
        && d["bytes"].as_u64().unwrap() > 0));
    world.hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h265_camera_reaches_a_browser_without_h265_as_h264() {
    let world = World::start().await;
    let mut plain = world.live("hevc-cam", "stream=sub&h265=false").await;
    let r = receive(&mut plain, 20).await;
    assert_eq!(r.init["codec"].as_str().unwrap().get(..5), Some("avc1."));
    assert_eq!(r.init["transcoded"], true);
    assert_eq!(r.probe("transcoded"), ("h264".into(), 640, 360, 20));
    assert_eq!(
        world
            .metric("xueliang_live_transcoders_started_total")
            .await,
        1.0
    );

    // A second such viewer shares the copy; one that plays H.265 gets the stream as it is.
    let mut second = world.live("hevc-cam", "h265=false").await;
    assert_eq!(receive(&mut second, 5).await.init["transcoded"], true);
    assert_eq!(
        world
            .metric("xueliang_live_transcoders_started_total")
            .await,
        1.0
    );
    let mut native = world.live("hevc-cam", "h265=true").await;
    let r = receive(&mut native, 20).await;
    assert_eq!(r.init["codec"].as_str().unwrap().get(..5), Some("hvc1."));
    assert_eq!(r.init["transcoded"], false);
    assert_eq!(r.probe("native"), ("hevc".into(), 640, 360, 20));
    world.hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_stops_reading_does_not_delay_the_others_and_is_cut_off() {
    let world = World::start().await;
    // The stalled viewer: a small receive buffer, and nothing read after the handshake.
    let connected = Instant::now();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(world.hub.addr).await.unwrap();
    let mut request = format!(
        "ws://{}/api/v1/cameras/gate-cam/live?stream=main",
        world.hub.addr
    )
    .into_client_request()
    .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (stalled, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();

    // Another viewer of the same stream keeps getting every picture in time while the
    // stalled one's backlog fills, and the camera's own pull never waits.
    let mut reader = world.live("gate-cam", "stream=main").await;
    let first = receive(&mut reader, 5).await;
    assert_eq!(first.init["stream"], "main");
    let started = Instant::now();
    let mut last = Instant::now();
    let mut longest_gap = Duration::ZERO;
    let mut pictures = 0u64;
    let cut_off = loop {
        let message = tokio::time::timeout(xl_api::live::SEND_TIMEOUT, reader.next())
            .await
            .expect("the reading viewer was held back as long as the stalled one")
            .unwrap()
            .unwrap();
        if let Message::Binary(_) = message {
            pictures += 1;
            longest_gap = longest_gap.max(last.elapsed());
            last = Instant::now();
        }
        if world.metric("xueliang_live_viewers_cut_off_total").await >= 1.0 {
            break connected.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the stalled viewer was never cut off"
        );
    };
    // Had the stall held the stream back, the reader would have waited for the cut-off
    // (the send timeout) with nothing; its queue never overflowed either.
    assert!(
        longest_gap < xl_api::live::SEND_TIMEOUT,
        "the reading viewer waited {longest_gap:?} for a picture ({pictures} in {cut_off:?})"
    );
    assert_eq!(
        world
            .metric("xueliang_live_dropped_total{reason=\"slow_viewer\"}")
            .await,
        0.0
    );
    // Cut off after the send timeout: its socket took nothing for that long.
    assert!(cut_off >= xl_api::live::SEND_TIMEOUT, "{cut_off:?}");
    drop(stalled);
    world.hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_is_told_when_the_camera_goes_offline_and_resumes_by_itself() {
    let mut world = World::start().await;
    let mut viewer = world.live("gate-cam", "stream=sub").await;
    receive(&mut viewer, 3).await;
    world._server.stop();
    // Read on: a status message saying the camera is offline (or reconnecting), then, once
    // the server is back, a new init segment and pictures on the same socket.
    let mut seen = Vec::new();
    let mut restarted = false;
    let mut pictures_after_init = 0;
    let read = async {
        loop {
            let message = viewer.next().await.expect("socket open").expect("no error");
            match message {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "status" {
                        seen.push(v["status"].as_str().unwrap_or_default().to_owned());
                        if !restarted && v["status"] != "online" {
                            world._server.restart().unwrap();
                            restarted = true;
                        }
                    } else if v["type"] == "init" && restarted {
                        seen.push("init".into());
                    }
                }
                Message::Binary(b)
                    if seen.last().is_some_and(|s| s == "init") && &b[4..8] == b"moof" =>
                {
                    pictures_after_init += 1;
                    if pictures_after_init == 3 {
                        return;
                    }
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .unwrap_or_else(|_| panic!("no resumed video within 60 s; saw {seen:?}"));
    assert!(
        seen.iter().any(|s| s == "offline" || s == "connecting"),
        "{seen:?}"
    );
    world.hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_sockets_are_refused_before_any_video_and_closed_when_the_camera_goes() {
    let world = World::start().await;
    let status = |r: Result<Socket, WsError>| match r {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("{e}"),
        Ok(_) => 101,
    };
    let path = "/api/v1/cameras/gate-cam/live";
    assert_eq!(status(world.connect(path, None, &[]).await), 401);
    let evil = [("origin", "http://evil.example")];
    assert_eq!(status(world.connect(path, Some(TOKEN), &evil).await), 403);
    let host = world.hub.addr.to_string();
    let own = [("origin", &*format!("http://{host}"))];
    assert_eq!(status(world.connect(path, Some(TOKEN), &own).await), 101);
    let bad = "/api/v1/cameras/gate-cam/live?stream=fisheye";
    assert_eq!(status(world.connect(bad, Some(TOKEN), &[]).await), 400);

    // A property user of xingfu: its cameras yes, wang's no (as if it did not exist).
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/api/v1/users", world.base()))
        .bearer_auth(TOKEN)
        .json(&json!({
            "username": "wuye", "password": "property-password",
            "role": "property", "communities": ["xingfu"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let login: Value = client
        .post(format!("{}/api/v1/auth/login", world.base()))
        .json(&json!({ "username": "wuye", "password": "property-password" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wuye = login["token"].as_str().unwrap();
    let other = "/api/v1/cameras/other-cam/live";
    assert_eq!(status(world.connect(other, Some(wuye), &[]).await), 404);
    let mut own = world.connect(path, Some(wuye), &[]).await.unwrap();
    assert!(receive(&mut own, 2).await.init["codec"].is_string());
    drop(own);

    // A camera added through the API, watched, then deleted: its viewer's socket closes
    // with 4404 and a reason a person can read.
    let topology = format!("{}/api/v1/topology/cameras", world.base());
    let created = client
        .post(&topology)
        .bearer_auth(TOKEN)
        .json(&json!({
            "id": "temp-cam", "name": "临时摄像机", "community": "xingfu",
            "sub": {"kind": "rtsp", "url": world._server.url("sub")},
            "decode": "key-frames",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let etag = created.headers()["etag"].to_str().unwrap().to_owned();
    world.wait_online("temp-cam").await;
    let mut watched = world
        .connect("/api/v1/cameras/temp-cam/live", Some(wuye), &[])
        .await
        .unwrap();
    receive(&mut watched, 2).await;

    // Its stream edited (a new URL): the viewer is told to open again (1012), not that the
    // camera went away, and the new stream plays.
    let edited = client
        .put(format!("{topology}/temp-cam"))
        .bearer_auth(TOKEN)
        .header("if-match", etag)
        .json(&json!({
            "id": "temp-cam", "name": "临时摄像机", "community": "xingfu",
            "sub": {"kind": "rtsp", "url": world._server.url("main")},
            "decode": "key-frames",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), 200);
    let etag = edited.headers()["etag"].to_str().unwrap().to_owned();
    let frame = tokio::time::timeout(Duration::from_secs(10), close_frame(&mut watched))
        .await
        .expect("closed within 10 s");
    assert_eq!(frame.code, CloseCode::Restart, "{}", frame.reason);
    world.wait_online("temp-cam").await;
    let mut watched = world
        .connect("/api/v1/cameras/temp-cam/live", Some(wuye), &[])
        .await
        .unwrap();
    let again = receive(&mut watched, 2).await;
    assert_eq!(again.init["width"], 1280, "the edited stream");

    let deleted = client
        .delete(format!("{topology}/temp-cam"))
        .bearer_auth(TOKEN)
        .header("if-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let close = close_frame(&mut watched);
    let frame = tokio::time::timeout(Duration::from_secs(10), close)
        .await
        .expect("closed within 10 s");
    assert_eq!(frame.code, CloseCode::Library(4404));
    assert!(frame.reason.contains("removed"), "{}", frame.reason);

    // The user's scope changes while watching: the session's next re-check closes it, 4403.
    let mut watching = world.connect(path, Some(wuye), &[]).await.unwrap();
    receive(&mut watching, 2).await;
    let moved = client
        .patch(format!("{}/api/v1/users/wuye", world.base()))
        .bearer_auth(TOKEN)
        .json(&json!({ "communities": ["wang"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);
    let close = close_frame(&mut watching);
    let frame = tokio::time::timeout(Duration::from_secs(30), close)
        .await
        .expect("closed within two re-checks");
    assert_eq!(frame.code, CloseCode::Library(4403));
    world.hub.stop().await;
}
