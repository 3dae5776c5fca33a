//! Detection in the running hub: a camera replaying vtest.avi (people walking across a square)
//! through decode, the motion gate, the person detector, the tracker and a zone, with the vision
//! events arriving on the hub's subscription.

use std::time::Duration;

use xl_vision::VisionEvent;
use xueliang::config::Config;
use xueliang::hub::Hub;

fn vtest() -> String {
    let media = std::env::var("XUELIANG_MEDIA")
        .ok()
        .filter(|m| !m.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| xl_detect::cache_dir().join("media"));
    let path = media.join("vtest.avi");
    assert!(
        path.is_file(),
        "{} missing: run scripts/setup-assets",
        path.display()
    );
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_in_a_replayed_video_become_tracks_and_zone_entries() {
    let data = std::env::temp_dir().join(format!("xl-detection-{:x}", rand::random::<u64>()));
    let text = format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        api_token = "test-token"
        data_dir = "{data}"
        [detect]
        workers = 1
        rate = 4
        [[cameras]]
        id = "square"
        community = "test"
        file = "{video}"
        [cameras.detect]
        faces = "off"
        [[cameras.zones]]
        id = "lower-half"
        polygon = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
        "#,
        video = vtest(),
        data = data.display(),
    );
    let hub = Hub::start(Config::parse(&text).unwrap()).await.unwrap();
    let vision = hub.vision().expect("detection is on by default");
    let mut events = vision.subscribe();
    let (mut started, mut entered) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while (started < 2 || entered < 1) && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
            Ok(Ok(VisionEvent::TrackStarted { camera, .. })) => {
                assert_eq!(camera.as_str(), "square");
                started += 1;
            }
            Ok(Ok(VisionEvent::EnteredZone { zone, .. })) => {
                assert_eq!(zone.as_str(), "lower-half");
                entered += 1;
            }
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => panic!("event stream: {e}"),
        }
    }
    let stats = vision.engine().stats();
    assert!(
        started >= 2 && entered >= 1,
        "within 30 s: {started} tracks started, {entered} zone entries; {} frames detected, {} person crops",
        stats.frames.items(),
        stats.person.items()
    );
    assert!(
        vision.stats().motion.items() > 0,
        "frames went through the motion gate"
    );
    // The figures are on /metrics.
    let body = reqwest::Client::new()
        .get(format!("http://{}/metrics", hub.addr))
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        let line = body
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{body}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("xueliang_detection_frames_total ") >= 1.0);
    assert!(value("xueliang_detection_camera_frames_total{camera=\"square\"}") >= 1.0);
    assert!(value("xueliang_tracks_started_total ") >= 2.0);
    assert!(value("xueliang_detection_model_items_total{model=\"person\"}") >= 1.0);
    assert!(value("xueliang_detection_latency_seconds{quantile=\"0.99\"}") > 0.0);

    // A person entering the zone raised a person.intrusion alert (the default rule watches
    // every zone), with a snapshot of an analysed frame: a JPEG with the boxes recorded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let alert = loop {
        let alerts = hub
            .store
            .list_alerts(&xl_store::AlertFilter {
                kinds: Some(vec![xl_core::AlertKind::PersonIntrusion]),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        if let Some(a) = alerts.into_iter().next() {
            break a;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no person.intrusion alert"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(alert.camera.as_ref().map(|c| c.as_str()), Some("square"));
    assert_eq!(alert.zone.as_deref(), Some("lower-half"));
    let snap = hub
        .store
        .snapshot(alert.snapshot.as_deref().expect("a snapshot"))
        .await
        .unwrap()
        .unwrap();
    let boxes = snap.boxes.as_array().expect("boxes");
    assert!(
        !boxes.is_empty(),
        "the persons detected are on the snapshot"
    );
    let jpeg = std::fs::read(data.join("snapshots").join(&snap.path)).unwrap();
    assert!(jpeg.starts_with(&[0xff, 0xd8]), "a JPEG");
    hub.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn detection_settings_are_checked_with_clear_errors() {
    let err = |extra: &str| {
        let text =
            format!("[[cameras]]\nid = \"a\"\ncommunity = \"c\"\nfile = \"x.avi\"\n{extra}\n");
        format!("{:#}", Config::parse(&text).unwrap_err())
    };
    assert!(err("[cameras.detect]\nfaces = \"face\"").contains("persons"));
    assert!(err("[cameras.detect]\nrat = 3").contains("rat"));
    let e = err("[[cameras.zones]]\nid = \"door\"\npolygon = [[0.1, 0.1], [0.2, 0.2]]");
    assert!(e.contains("door"), "{e}");
    let e = err(
        "[[cameras.zones]]\nid = \"z\"\npolygon = [[0,0],[1,0],[1,1]]\n[[cameras.zones]]\nid = \"z\"\npolygon = [[0,0],[1,0],[1,1]]",
    );
    assert!(e.contains("twice") || e.contains("duplicate"), "{e}");
    let top = |t: &str| format!("{:#}", Config::parse(t).unwrap_err());
    assert!(top("[detect]\nperson = { kind = \"yolov8\" }").contains("detect.person.path"));
    assert!(top("[detect]\nprovider = \"tpu\"").contains("cuda"));
    assert!(top("[detect]\ntime_zone = \"Mars/Olympus\"").contains("Mars/Olympus"));
    assert!(top("[detect]\nbatch = 0").contains("detect.batch"));
    assert!(top("[detect.face]\nperson_crop_side = 100").contains("multiple of 32"));
    assert!(top("[detect.face]\nembed_min_widht = 3").contains("embed_min_widht"));
}
