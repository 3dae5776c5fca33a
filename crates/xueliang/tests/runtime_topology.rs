//! The topology changed while the hub runs, against the real RTSP server (gst-rtsp-server on
//! loopback): 32 cameras streaming, one added, one edited (a new URL) and one removed, and the
//! other 30 keep their sessions (same stats, no reconnect) and their frame counters keep
//! rising throughout; a removed camera's open alert is resolved with a note; a disabled camera
//! stops and starts again when enabled.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use xl_core::camera::{CameraStats, CameraStatus};
use xl_core::frame::{Frame, FrameSink};
use xl_core::topology::{Camera, Entry, EntryId};
use xl_core::{AlertKind, AlertState, CameraId};
use xl_store::{AlertFilter, Author};
use xl_testkit::{H264_360P, H264_720P, RtspServer, test_clip};
use xueliang::config::Config;
use xueliang::hub::Hub;

/// Per camera: frames decoded.
#[derive(Default)]
struct Frames(Mutex<HashMap<String, u64>>);

impl FrameSink for Frames {
    fn on_frame(&self, f: Frame) {
        *self
            .0
            .lock()
            .unwrap()
            .entry(f.camera.to_string())
            .or_default() += 1;
    }
}

impl Frames {
    fn get(&self, camera: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(camera)
            .copied()
            .unwrap_or_default()
    }
}

fn config(cameras: &[(String, String)], extra: &str) -> Config {
    let data = std::env::temp_dir().join(format!("xl-runtime-{:x}", rand::random::<u64>()));
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\napi_token = \"test-token\"\ndata_dir = \"{}\"\n\
         [detect]\nenabled = false\n\
         [rtsp]\nrequest_timeout_secs = 3\nframe_timeout_secs = 3\n\
         backoff_initial_secs = 0.2\nbackoff_max_secs = 1.0\n{extra}",
        data.display()
    );
    for (id, url) in cameras {
        // Key frames only: 32 decoders at full rate would not fit 2 cores; frames received
        // (the counters asserted) are every frame either way.
        text.push_str(&format!(
            "[[cameras]]\nid = \"{id}\"\ncommunity = \"test\"\nurl = \"{url}\"\n\
             decode = \"key-frames\"\n"
        ));
    }
    Config::parse(&text).unwrap()
}

fn camera(id: &str, url: &str) -> Camera {
    serde_json::from_value(json!({
        "id": id,
        "name": format!("摄像机 {id}"),
        "community": "test",
        "sub": { "kind": "rtsp", "url": url },
        "decode": "key-frames",
    }))
    .unwrap()
}

fn admin() -> Author {
    Author {
        actor: "admin".into(),
        peer: None,
    }
}

fn id(s: &str) -> CameraId {
    CameraId::new(s).unwrap()
}

/// The revision a write names, as the API reads it first.
async fn revision_of(store: &xl_store::Store, camera: &str) -> u64 {
    let (_, meta) = store
        .topology_entry(&EntryId::Camera(id(camera)))
        .await
        .unwrap()
        .unwrap();
    meta.revision
}

fn stats(hub: &Hub, camera: &str) -> Option<Arc<CameraStats>> {
    hub.cameras.get(&id(camera)).map(|(_, s)| s)
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
    let mut v: Vec<String> = hub
        .cameras
        .snapshot()
        .iter()
        .map(|(i, s)| {
            format!(
                "{}: {:?} in={} reconnects={}",
                i.id,
                s.status(),
                s.frames_in.load(Relaxed),
                s.reconnects.load(Relaxed)
            )
        })
        .collect();
    v.sort();
    v.join("\n")
}

/// One look at the cameras that must not notice the changes.
fn sample(hub: &Hub, ids: &[String]) -> Vec<(u64, u64, CameraStatus)> {
    ids.iter()
        .map(|c| {
            let s = stats(hub, c).unwrap_or_else(|| panic!("{c} left the registry"));
            (
                s.frames_in.load(Relaxed),
                s.reconnects.load(Relaxed),
                s.status(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_camera_added_edited_and_removed_among_32_leaves_the_other_29_streaming() {
    let server = RtspServer::start(&[
        ("sd", test_clip(H264_360P).unwrap()),
        ("hd", test_clip(H264_720P).unwrap()),
    ])
    .unwrap();
    // 30 from the config file (read-only) and, below, 2 made in the store (editable).
    let cameras: Vec<(String, String)> = (0..30)
        .map(|i| (format!("cam-{i:02}"), server.url("sd")))
        .collect();
    let frames = Arc::new(Frames::default());
    let hub = Hub::start_with_sink(config(&cameras, ""), frames.clone())
        .await
        .unwrap();
    wait_for(
        90,
        "30 cameras online, receiving",
        || {
            hub.cameras.len() == 30
                && hub.cameras.snapshot().iter().all(|(_, s)| {
                    s.status() == CameraStatus::Online && s.frames_in.load(Relaxed) > 10
                })
        },
        || statuses(&hub),
    )
    .await;

    // The camera to edit and the one to remove are entries of the store, as the API makes them.
    let store = &hub.store;
    let at = jiff::Timestamp::now();
    for c in ["edit-me", "remove-me"] {
        store
            .create_entry(Entry::Camera(camera(c, &server.url("sd"))), &admin(), at)
            .await
            .unwrap();
    }
    hub.topology.changed.notify_one();
    wait_for(
        30,
        "the two store cameras online",
        || {
            ["edit-me", "remove-me"].iter().all(|c| {
                stats(&hub, c).is_some_and(|s| {
                    s.status() == CameraStatus::Online && s.frames_in.load(Relaxed) > 10
                })
            })
        },
        || statuses(&hub),
    )
    .await;

    let others: Vec<String> = (0..30).map(|i| format!("cam-{i:02}")).collect();
    let before: Vec<Arc<CameraStats>> = others.iter().map(|c| stats(&hub, c).unwrap()).collect();
    let edited_before = stats(&hub, "edit-me").unwrap();
    let mut samples = vec![sample(&hub, &others)];

    // The three changes, each as the API makes it: a store write, then the runtime's wake-up.
    store
        .create_entry(
            Entry::Camera(camera("cam-new", &server.url("sd"))),
            &admin(),
            at,
        )
        .await
        .unwrap();
    hub.topology.changed.notify_one();
    let revision = revision_of(store, "edit-me").await;
    store
        .update_entry(
            Entry::Camera(camera("edit-me", &server.url("hd"))),
            revision,
            xl_store::SecretUpdate::KeepUnlessGiven,
            &admin(),
            at,
        )
        .await
        .unwrap();
    hub.topology.changed.notify_one();
    let revision = revision_of(store, "remove-me").await;
    store
        .delete_entry(&EntryId::Camera(id("remove-me")), revision, &admin(), at)
        .await
        .unwrap();
    hub.topology.changed.notify_one();

    // Every 2 s for 12 s: the others stay online, never reconnect, and receive frames.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        samples.push(sample(&hub, &others));
    }
    for (i, c) in others.iter().enumerate() {
        let now = stats(&hub, c).unwrap();
        assert!(
            Arc::ptr_eq(&now, &before[i]),
            "{c}: its session was replaced (new stats)"
        );
        for w in samples.windows(2) {
            let (a, b) = (&w[0][i], &w[1][i]);
            assert!(b.0 > a.0, "{c}: no frame within 2 s ({} -> {})", a.0, b.0);
            assert_eq!(b.1, a.1, "{c}: reconnected");
            assert_eq!(b.2, CameraStatus::Online, "{c}: not online");
        }
    }

    // The added camera streams; the edited one restarted on the new URL (720p frames); the
    // removed one is gone and its frames stopped.
    wait_for(
        30,
        "cam-new online and edit-me receiving the 1280-wide stream",
        || {
            stats(&hub, "cam-new").is_some_and(|s| s.status() == CameraStatus::Online)
                && stats(&hub, "edit-me").is_some_and(|s| {
                    s.status() == CameraStatus::Online && s.stream().width == Some(1280)
                })
        },
        || statuses(&hub),
    )
    .await;
    let edited = stats(&hub, "edit-me").unwrap();
    assert!(
        !Arc::ptr_eq(&edited, &edited_before),
        "edit-me kept its old session"
    );
    assert!(
        stats(&hub, "remove-me").is_none(),
        "remove-me still registered"
    );
    let removed_frames = frames.get("remove-me");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        frames.get("remove-me"),
        removed_frames,
        "remove-me still decoding"
    );
    assert_eq!(hub.cameras.len(), 32);

    // The API shows what runs: the added camera, and not the removed one.
    let applied = hub.topology.applied.borrow().clone();
    assert!(applied.cameras.contains_key(&id("cam-new")));
    assert!(!applied.cameras.contains_key(&id("remove-me")));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_cameras_open_alert_is_resolved_and_a_disabled_camera_stops_until_enabled() {
    let server = RtspServer::start(&[("sd", test_clip(H264_360P).unwrap())]).unwrap();
    let rules = "[[rules]]\nkind = \"camera.offline\"\ndebounce_secs = 1\n";
    let frames = Arc::new(Frames::default());
    let hub = Hub::start_with_sink(config(&[], rules), frames.clone())
        .await
        .unwrap();
    let store = &hub.store;
    let at = jiff::Timestamp::now();
    let community = serde_json::from_value(json!({ "id": "test", "name": "测试小区" })).unwrap();
    store
        .create_entry(Entry::Community(community), &admin(), at)
        .await
        .unwrap();
    // Nothing listens on port 1: the camera goes offline and raises camera.offline.
    store
        .create_entry(
            Entry::Camera(camera("dead", "rtsp://127.0.0.1:1/none")),
            &admin(),
            at,
        )
        .await
        .unwrap();
    store
        .create_entry(
            Entry::Camera(camera("live", &server.url("sd"))),
            &admin(),
            at,
        )
        .await
        .unwrap();
    hub.topology.changed.notify_one();
    let offline_alert = || async {
        let alerts = store
            .list_alerts(&AlertFilter {
                kinds: Some(vec![AlertKind::CameraOffline]),
                limit: 100,
                ..AlertFilter::default()
            })
            .await
            .unwrap();
        alerts
            .into_iter()
            .filter(|a| a.camera == Some(id("dead")))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let alert = loop {
        if let Some(a) = offline_alert().await.into_iter().next() {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "no camera.offline alert for dead"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(alert.state, AlertState::Open);

    let revision = revision_of(store, "dead").await;
    store
        .delete_entry(&EntryId::Camera(id("dead")), revision, &admin(), at)
        .await
        .unwrap();
    hub.topology.changed.notify_one();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let detail = store.alert(&alert.id).await.unwrap().unwrap();
        if detail.alert.state == AlertState::Resolved {
            let notes: Vec<String> = detail
                .history
                .iter()
                .filter_map(|h| h.note.clone())
                .collect();
            assert!(
                notes.iter().any(|n| n.contains("camera dead was removed")),
                "no note saying why: {notes:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alert of the removed camera still open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Disabled: stopped and out of the registry; enabled again: streaming again.
    wait_for(
        30,
        "live online",
        || stats(&hub, "live").is_some_and(|s| s.status() == CameraStatus::Online),
        || statuses(&hub),
    )
    .await;
    let live = EntryId::Camera(id("live"));
    let meta = store
        .set_entry_disabled(&live, true, revision_of(store, "live").await, &admin(), at)
        .await
        .unwrap();
    hub.topology.changed.notify_one();
    wait_for(
        10,
        "live stopped",
        || stats(&hub, "live").is_none(),
        || statuses(&hub),
    )
    .await;
    let stopped_at = frames.get("live");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        frames.get("live"),
        stopped_at,
        "a disabled camera still decodes"
    );
    store
        .set_entry_disabled(&live, false, meta.revision, &admin(), at)
        .await
        .unwrap();
    hub.topology.changed.notify_one();
    wait_for(
        30,
        "live streaming again",
        || frames.get("live") > stopped_at,
        || statuses(&hub),
    )
    .await;
    hub.stop().await;
}
