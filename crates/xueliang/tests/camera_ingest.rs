//! Camera ingest against a real RTSP server (gst-rtsp-server on loopback) serving real video
//! transcoded from vtest.avi, H.264 and H.265, through the whole hub: retina sessions, the decode
//! pool, the camera registry and the HTTP API.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xl_core::camera::{CameraStatus, DecodePolicy, DropReason};
use xl_core::frame::{Frame, FrameSink};
use xl_core::{AlertKind, AlertState};
use xl_store::AlertFilter;
use xl_testkit::{H264_360P, H264_720P, H265_360P, H265_720P, RtspServer, test_clip};
use xueliang::config::Config;
use xueliang::hub::Hub;

/// Records, per camera, how many frames arrived and at what size.
#[derive(Default)]
struct Frames(Mutex<HashMap<String, (u64, u32, u32)>>);

impl FrameSink for Frames {
    fn on_frame(&self, f: Frame) {
        assert_eq!(f.i420.len(), Frame::i420_len(f.width, f.height));
        let mut m = self.0.lock().unwrap();
        let e = m.entry(f.camera.to_string()).or_default();
        *e = (e.0 + 1, f.width, f.height);
    }
}

impl Frames {
    fn get(&self, camera: &str) -> (u64, u32, u32) {
        self.0
            .lock()
            .unwrap()
            .get(camera)
            .copied()
            .unwrap_or_default()
    }
}

/// A hub config with quick timeouts, so that failures show within seconds.
fn config(cameras: &[(String, String)]) -> Config {
    let data = std::env::temp_dir().join(format!("xl-cameras-{:x}", rand::random::<u64>()));
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\napi_token = \"test-token\"\ndata_dir = \"{}\"\n\
         [rtsp]\nrequest_timeout_secs = 3\nframe_timeout_secs = 3\n\
         backoff_initial_secs = 0.2\nbackoff_max_secs = 1.0\n\
         [[rules]]\nkind = \"camera.offline\"\ndebounce_secs = 1\n",
        data.display()
    );
    for (id, url) in cameras {
        text.push_str(&format!(
            "[[cameras]]\nid = \"{id}\"\ncommunity = \"test\"\nurl = \"{url}\"\n"
        ));
    }
    Config::parse(&text).unwrap()
}

/// Polls `cond` every 100 ms until it holds or `secs` pass; panics with `what` and `detail()`.
async fn wait_for(
    secs: u64,
    what: &str,
    mut cond: impl FnMut() -> bool,
    detail: impl Fn() -> String,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}\n{}",
            detail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn statuses(hub: &Hub) -> String {
    hub.cameras
        .snapshot()
        .iter()
        .map(|(i, s)| {
            format!(
                "{}: {:?} in={} decoded={}\n",
                i.id,
                s.status(),
                s.frames_in.load(Relaxed),
                s.frames_decoded.load(Relaxed)
            )
        })
        .collect()
}

fn four_mounts() -> RtspServer {
    let mounts = [
        ("h264-360", test_clip(H264_360P).unwrap()),
        ("h264-720", test_clip(H264_720P).unwrap()),
        ("h265-360", test_clip(H265_360P).unwrap()),
        ("h265-720", test_clip(H265_720P).unwrap()),
    ];
    let mounts: Vec<(&str, _)> = mounts.iter().map(|(n, p)| (*n, p.clone())).collect();
    RtspServer::start(&mounts).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_cameras_come_online_deliver_frames_and_recover_from_a_server_restart() {
    let mut server = four_mounts();
    let mounts = ["h264-360", "h264-720", "h265-360", "h265-720"];
    let cameras: Vec<(String, String)> = (0..16)
        .map(|i| (format!("cam-{i:02}"), server.url(mounts[i % 4])))
        .collect();
    let frames = Arc::new(Frames::default());
    let hub = Hub::start_with_sink(config(&cameras), frames.clone())
        .await
        .unwrap();

    let all_delivering = |min: u64| {
        let hub = &hub;
        let frames = &frames;
        move || {
            hub.cameras.snapshot().iter().all(|(i, s)| {
                s.status() == CameraStatus::Online && frames.get(i.id.as_str()).0 >= min
            })
        }
    };
    wait_for(
        60,
        "16 cameras online with 20 frames each",
        all_delivering(20),
        || statuses(&hub),
    )
    .await;

    // Every stream, whatever its size, arrives at the analysis size (640 wide, aspect kept).
    for (id, _) in &cameras {
        let (_, w, h) = frames.get(id);
        assert_eq!((w, h), (640, 360), "{id}");
    }

    // The real listening server reports the same through the API.
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{}/api/v1/cameras", hub.addr))
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = body.as_array().unwrap();
    assert_eq!(list.len(), 16);
    for cam in list {
        assert_eq!(cam["status"], "online", "{cam}");
        let id = cam["id"].as_str().unwrap();
        let n: usize = id[4..].parse().unwrap();
        let (codec, width) = [("h264", 640), ("h264", 1280), ("h265", 640), ("h265", 1280)][n % 4];
        assert_eq!(cam["codec"], codec, "{cam}");
        assert_eq!(cam["width"], width, "{cam}");
        assert!(cam["last_frame_at"].is_string(), "{cam}");
    }

    // Kill the server: every camera goes offline with a reason...
    server.stop();
    wait_for(
        30,
        "all cameras offline",
        || {
            hub.cameras
                .snapshot()
                .iter()
                .all(|(_, s)| matches!(s.status(), CameraStatus::Offline { .. }))
        },
        || statuses(&hub),
    )
    .await;
    let before: HashMap<String, u64> = cameras
        .iter()
        .map(|(id, _)| (id.clone(), frames.get(id).0))
        .collect();
    // A camera still offline after the debounce raises camera.offline, one per camera.
    let offline = |state: AlertState| {
        let store = hub.store.clone();
        async move {
            store
                .list_alerts(&AlertFilter {
                    kinds: Some(vec![AlertKind::CameraOffline]),
                    states: Some(vec![state]),
                    limit: 100,
                    ..AlertFilter::default()
                })
                .await
                .unwrap()
                .len()
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while offline(AlertState::Open).await < 16 {
        assert!(
            std::time::Instant::now() < deadline,
            "16 camera.offline alerts, got {}",
            offline(AlertState::Open).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // ...and comes back by itself once the server is back on the same port.
    server.restart().unwrap();
    wait_for(
        60,
        "all cameras back online and delivering new frames",
        || {
            hub.cameras.snapshot().iter().all(|(i, s)| {
                s.status() == CameraStatus::Online
                    && frames.get(i.id.as_str()).0 >= before[i.id.as_str()] + 10
            })
        },
        || statuses(&hub),
    )
    .await;
    for (info, stats) in hub.cameras.snapshot() {
        assert!(
            stats.reconnects.load(Relaxed) >= 1,
            "{} never reconnected",
            info.id
        );
    }
    // Back online: the health alerts resolve themselves.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while offline(AlertState::Resolved).await < 16 {
        assert!(
            std::time::Instant::now() < deadline,
            "16 camera.offline alerts resolved, got {}",
            offline(AlertState::Resolved).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(offline(AlertState::Open).await, 0);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_cameras_show_offline_with_a_reason_and_the_others_keep_running() {
    let server = RtspServer::start(&[("good", test_clip(H264_360P).unwrap())]).unwrap();
    let (garbage, _g) = xl_testkit::garbage_rtsp_server().await;
    let (silent, _s) = xl_testkit::silent_rtsp_server().await;
    // A port nothing listens on: bind one, note it, let it go.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cameras = vec![
        ("good-1".to_string(), server.url("good")),
        ("good-2".to_string(), server.url("good")),
        ("wrong-path".to_string(), server.url("no-such-stream")),
        ("garbage".to_string(), format!("rtsp://{garbage}/stream")),
        ("silent".to_string(), format!("rtsp://{silent}/stream")),
        ("refused".to_string(), format!("rtsp://{refused}/stream")),
    ];
    let frames = Arc::new(Frames::default());
    let hub = Hub::start_with_sink(config(&cameras), frames.clone())
        .await
        .unwrap();

    let reason = |id: &str| match hub
        .cameras
        .snapshot()
        .iter()
        .find(|(i, _)| i.id.as_str() == id)
        .unwrap()
        .1
        .status()
    {
        CameraStatus::Offline { reason } => Some(reason),
        _ => None,
    };
    wait_for(
        30,
        "every broken camera offline with a reason",
        || {
            ["wrong-path", "garbage", "silent", "refused"]
                .iter()
                .all(|id| reason(id).is_some())
        },
        || statuses(&hub),
    )
    .await;
    assert!(
        reason("wrong-path").unwrap().contains("404"),
        "{:?}",
        reason("wrong-path")
    );
    assert!(
        reason("silent").unwrap().contains("no response within 3s"),
        "{:?}",
        reason("silent")
    );
    assert!(
        reason("refused")
            .unwrap()
            .to_lowercase()
            .contains("refused"),
        "{:?}",
        reason("refused")
    );
    assert!(!reason("garbage").unwrap().is_empty());

    // The good cameras are untouched: online and still receiving while the others keep failing.
    let n1 = frames.get("good-1").0;
    wait_for(
        30,
        "good cameras to keep delivering",
        || frames.get("good-1").0 >= n1 + 30 && frames.get("good-2").0 >= 30,
        || statuses(&hub),
    )
    .await;
    for id in ["good-1", "good-2"] {
        assert!(reason(id).is_none(), "{id} went offline: {:?}", reason(id));
    }
    // The broken ones keep being retried.
    let (_, refused_stats) = hub
        .cameras
        .snapshot()
        .into_iter()
        .find(|(i, _)| i.id.as_str() == "refused")
        .unwrap();
    assert!(refused_stats.reconnects.load(Relaxed) >= 2);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decode_policy_switches_while_running() {
    let server = RtspServer::start(&[("cam", test_clip(H264_360P).unwrap())]).unwrap();
    let frames = Arc::new(Frames::default());
    let hub = Hub::start_with_sink(config(&[("cam".into(), server.url("cam"))]), frames.clone())
        .await
        .unwrap();
    let (_, stats) = hub.cameras.snapshot().pop().unwrap();
    wait_for(
        30,
        "frames",
        || frames.get("cam").0 >= 10,
        || statuses(&hub),
    )
    .await;

    // Key frames only: one decoded frame per 20-frame GOP, the rest skipped by policy.
    stats.set_decode_policy(DecodePolicy::KeyFrames);
    let (in0, dec0) = (
        stats.frames_in.load(Relaxed),
        stats.frames_decoded.load(Relaxed),
    );
    wait_for(
        30,
        "80 more frames received",
        || stats.frames_in.load(Relaxed) >= in0 + 80,
        || statuses(&hub),
    )
    .await;
    let (in1, dec1) = (
        stats.frames_in.load(Relaxed),
        stats.frames_decoded.load(Relaxed),
    );
    let decoded = dec1 - dec0;
    assert!(
        decoded <= (in1 - in0) / 20 + 2,
        "decoded {decoded} of {} under key-frames",
        in1 - in0
    );
    assert!(decoded >= 2, "key frames still decode");
    assert!(stats.dropped(DropReason::Policy) >= 60);

    // Back to every frame: decoding resumes at the next key frame, then keeps up with input.
    stats.set_decode_policy(DecodePolicy::All);
    wait_for(
        30,
        "full-rate decoding again",
        || stats.frames_decoded.load(Relaxed) >= dec1 + 40,
        || statuses(&hub),
    )
    .await;
    assert_eq!(stats.dropped(DropReason::DecodeError), 0);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_over_udp_delivers_frames() {
    let server = RtspServer::start(&[("cam", test_clip(H265_360P).unwrap())]).unwrap();
    let mut config = config(&[("udp-cam".into(), server.url("cam"))]);
    config.cameras[0].transport = Some(xl_rtsp::TransportKind::Udp);
    let frames = Arc::new(Frames::default());
    let hub = Hub::start_with_sink(config, frames.clone()).await.unwrap();
    wait_for(
        30,
        "frames over UDP",
        || frames.get("udp-cam").0 >= 30,
        || statuses(&hub),
    )
    .await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_comes_back_with_another_codec_and_size_is_decoded_afresh() {
    // The camera is replaced behind the same URL (a firmware upgrade, a new unit): H.264 360p
    // before, H.265 720p after.
    let mut server = RtspServer::start(&[("cam", test_clip(H264_360P).unwrap())]).unwrap();
    let port = server.port();
    let frames = Arc::new(Frames::default());
    let hub = Hub::start_with_sink(config(&[("cam".into(), server.url("cam"))]), frames.clone())
        .await
        .unwrap();
    let (_, stats) = hub.cameras.snapshot().pop().unwrap();
    wait_for(
        30,
        "H.264 frames",
        || frames.get("cam").0 >= 10,
        || statuses(&hub),
    )
    .await;
    assert_eq!(
        (stats.stream().codec.as_deref(), stats.stream().width),
        (Some("h264"), Some(640))
    );

    server.stop();
    let _server = RtspServer::start_with(
        port,
        xl_testkit::CLIP_FPS,
        &[("cam", test_clip(H265_720P).unwrap())],
    )
    .unwrap();
    wait_for(
        60,
        "H.265 720p after the swap",
        || {
            stats.stream().codec.as_deref() == Some("h265")
                && stats.status() == CameraStatus::Online
        },
        || statuses(&hub),
    )
    .await;
    let n = frames.get("cam").0;
    wait_for(
        30,
        "frames from the new stream",
        || frames.get("cam").0 >= n + 20,
        || statuses(&hub),
    )
    .await;
    assert_eq!(stats.stream().width, Some(1280));
    let (_, w, h) = frames.get("cam");
    assert_eq!((w, h), (640, 360), "still the analysis size");
    assert_eq!(stats.dropped(DropReason::DecodeError), 0);
    hub.stop().await;
}
