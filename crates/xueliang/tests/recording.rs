//! Recording through the real hub, against the real RTSP server (gst-rtsp-server on loopback),
//! with FFmpeg's ffprobe reading what it wrote:
//! - eight cameras recorded for two minutes: every segment reads without error, the index and
//!   the files agree, the recorded time plus the gap is the wall time within 1%, and the RTSP
//!   server stopped for 20 s shows as one gap of about 20 s;
//! - the hub binary killed with SIGKILL mid-segment and started again: the segment left open
//!   is repaired (at most the fragment being gathered is lost), no file is unindexed or
//!   unreadable, and each row's size is its file's;
//! - on a small filesystem (a tmpfs the test mounts) the disk guard deletes the oldest unheld
//!   segments first, keeps a held one, and recording never fails for want of space;
//! - retention deletes `events-only` video past its keep, oldest first, sparing a held clip;
//! - a write error stops one camera's recording with `recording.failed`, and playback's
//!   errors (nothing recorded, a range over the limit, a deleted segment) say what is wrong.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use xl_core::CameraId;
use xl_core::live::StreamKind;
use xl_store::{NewHold, SegmentRow, SegmentState, Store};
use xl_testkit::{H264_360P, H264_720P, RtspServer, test_clip};
use xueliang::config::Config;
use xueliang::hub::Hub;

mod common;
use common::{HubProcess, ffprobe_duration, temp_dir};

/// The test clips' group of pictures: a key frame every 20 pictures at 10 fps.
const GOP: SignedDuration = SignedDuration::from_secs(2);

fn camera(id: &str) -> CameraId {
    CameraId::new(id).unwrap()
}

async fn wait_online(hub: &Hub, id: &str) {
    let id = camera(id);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = hub.cameras.get(&id).map(|(_, s)| s.status());
        if matches!(status, Some(xl_core::camera::CameraStatus::Online)) {
            return;
        }
        assert!(Instant::now() < deadline, "{id} not online: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn secs(d: SignedDuration) -> f64 {
    d.as_secs_f64()
}

/// Every `.mp4` under `dir`, relative to `base`.
fn mp4_files(dir: &Path, base: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            mp4_files(&p, base, out);
        } else if p.extension().is_some_and(|x| x == "mp4") {
            out.push(p.strip_prefix(base).unwrap().display().to_string());
        }
    }
}

/// The index agrees with the disk: no open row, every file indexed and every row's file there
/// with its size, and every file read by ffprobe. Returns the rows by camera.
async fn check_index_and_files(
    store: &Store,
    data: &Path,
    cameras: &[&str],
    stream: StreamKind,
) -> Vec<Vec<SegmentRow>> {
    assert!(
        store.open_segments("").await.unwrap().is_empty(),
        "segments left open"
    );
    let far = Timestamp::now() + SignedDuration::from_hours(1);
    let mut all = Vec::new();
    let mut indexed = Vec::new();
    for c in cameras {
        let rows = store
            .segments(&camera(c), stream, Timestamp::UNIX_EPOCH, far)
            .await
            .unwrap();
        for r in &rows {
            let path = data.join(&r.path);
            let len = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", r.path))
                .len();
            assert_eq!(len, r.bytes, "{}: the row's size is not the file's", r.path);
            assert_ne!(r.state, SegmentState::Open);
            indexed.push(r.path.clone());
        }
        all.push(rows);
    }
    let mut files = Vec::new();
    mp4_files(&data.join("recordings"), data, &mut files);
    files.sort();
    indexed.sort();
    assert_eq!(files, indexed, "files on disk and rows in the index differ");
    all
}

/// A hub's config: `data_dir`, the `[recording]` table's lines, and `cameras` as (id, the key
/// of their stream: `url` or `main_url`, its URL), key frames decoded, detection off, quick
/// RTSP timeouts and reconnects.
fn hub_config(data: &Path, recording: &str, cameras: &[(String, &str, String)]) -> String {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\napi_token = \"t\"\ndata_dir = \"{}\"\n\
         [detect]\nenabled = false\n\
         [rtsp]\nrequest_timeout_secs = 3\nframe_timeout_secs = 3\n\
         backoff_initial_secs = 0.2\nbackoff_max_secs = 1.0\n\
         [recording]\n{recording}\n",
        data.display()
    );
    for (id, key, url) in cameras {
        text += &format!(
            "[[cameras]]\nid = \"{id}\"\ncommunity = \"xingfu\"\n{key} = \"{url}\"\n\
             decode = \"key-frames\"\n"
        );
    }
    text
}

/// Every segment of `cameras`' `stream` in the index now.
async fn all_segments(store: &Store, cameras: &[&str], stream: StreamKind) -> Vec<SegmentRow> {
    let far = Timestamp::now() + SignedDuration::from_hours(1);
    let mut rows = Vec::new();
    for c in cameras {
        rows.extend(
            store
                .segments(&camera(c), stream, Timestamp::UNIX_EPOCH, far)
                .await
                .unwrap(),
        );
    }
    rows
}

/// Watches the index until at least `n` of the segments seen in it are gone (deleted by
/// `who`), for at most `secs`: returns those, the segments left, and when they were missed.
async fn wait_for_deletions(
    store: &Store,
    cameras: &[&str],
    stream: StreamKind,
    n: usize,
    secs: u64,
    who: &str,
) -> (Vec<SegmentRow>, Vec<SegmentRow>, Timestamp) {
    let mut seen: std::collections::BTreeMap<i64, SegmentRow> = Default::default();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let now = all_segments(store, cameras, stream).await;
        let present: std::collections::HashSet<i64> = now.iter().map(|r| r.id).collect();
        for r in &now {
            seen.insert(r.id, r.clone());
        }
        let deleted: Vec<SegmentRow> = seen
            .values()
            .filter(|r| !present.contains(&r.id))
            .cloned()
            .collect();
        if deleted.len() >= n {
            return (deleted, now, Timestamp::now());
        }
        assert!(
            Instant::now() < deadline,
            "{who} deleted {} segments in {secs} s",
            deleted.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_cameras_are_recorded_and_an_outage_is_a_gap() {
    const CAMERAS: usize = 8;
    let mounts: Vec<(String, PathBuf)> = (0..CAMERAS)
        .map(|i| (format!("c{i}"), test_clip(H264_360P).unwrap()))
        .collect();
    let refs: Vec<(&str, PathBuf)> = mounts
        .iter()
        .map(|(m, p)| (m.as_str(), p.clone()))
        .collect();
    let mut server = RtspServer::start(&refs).unwrap();
    let data = temp_dir("recording-eight");
    let ids: Vec<String> = (0..CAMERAS).map(|i| format!("cam-{i}")).collect();
    let cameras: Vec<(String, &str, String)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), "url", server.url(&format!("c{i}"))))
        .collect();
    let text = hub_config(
        &data,
        "mode = \"continuous\"\nstream = \"sub\"\nsegment_secs = 20\nmin_free_mib = 1",
        &cameras,
    );
    let hub = Hub::start(Config::parse(&text).unwrap()).await.unwrap();
    for id in &ids {
        wait_online(&hub, id).await;
    }
    tokio::time::sleep(Duration::from_secs(40)).await;
    let down_at = Timestamp::now();
    server.stop();
    tokio::time::sleep(Duration::from_secs(20)).await;
    server.restart().unwrap();
    let up_at = Timestamp::now();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let stop_at = Timestamp::now();
    let store = hub.store.clone();
    hub.stop().await;

    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let rows = check_index_and_files(&store, &data, &id_refs, StreamKind::Sub).await;
    for (id, rows) in ids.iter().zip(&rows) {
        // 40 s, the outage, 60 s: segments of 20 s on either side.
        assert!(rows.len() >= 4, "{id}: {} segments", rows.len());
        let first = rows[0].start_at;
        let media: f64 = rows
            .iter()
            .map(|r| ffprobe_duration(&data.join(&r.path)))
            .sum();
        let indexed: f64 = rows
            .iter()
            .map(|r| secs(r.end_at.unwrap().duration_since(r.start_at)))
            .sum();
        assert!(
            (media - indexed).abs() <= 0.01 * media,
            "{id}: the files hold {media:.2} s, the index says {indexed:.2} s"
        );
        // One gap inside the recording, where the server was down.
        let ranges = store
            .recorded_ranges(
                &camera(id),
                StreamKind::Sub,
                first,
                stop_at,
                xl_store::RECORDING_GAP_SECS,
            )
            .await
            .unwrap();
        let inner: Vec<_> = ranges
            .gaps
            .iter()
            .filter(|g| g.start > first && g.end < stop_at - SignedDuration::from_secs(5))
            .collect();
        assert_eq!(inner.len(), 1, "{id}: gaps {:?}", ranges.gaps);
        let gap = secs(inner[0].end.duration_since(inner[0].start));
        assert!(
            (18.0..=26.0).contains(&gap),
            "{id}: a gap of {gap:.1} s for a 20 s outage ({down_at} to {up_at})"
        );
        assert!(inner[0].start <= up_at && inner[0].end >= down_at);
        // Recorded time and the gap make the wall time, within 1%.
        let wall = secs(stop_at.duration_since(first));
        assert!(
            (media + gap - wall).abs() <= 0.01 * wall,
            "{id}: {media:.2} s recorded + {gap:.2} s gap against {wall:.2} s of wall time"
        );
    }
    let _ = std::fs::remove_dir_all(&data);
}

/// The open segment files under `dir` (relative names) and their sizes.
fn sizes(data: &Path) -> Vec<(String, u64)> {
    let mut files = Vec::new();
    mp4_files(&data.join("recordings"), data, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let len = std::fs::metadata(data.join(&f)).map_or(0, |m| m.len());
            (f, len)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_segment_loses_at_most_the_fragment_being_gathered() {
    let server = RtspServer::start(&[
        ("a", test_clip(H264_360P).unwrap()),
        ("b", test_clip(H264_360P).unwrap()),
    ])
    .unwrap();
    let data = temp_dir("recording-kill");
    let config = data.join("hub.toml");
    std::fs::write(
        &config,
        hub_config(
            &data.join("data"),
            "mode = \"continuous\"\nstream = \"sub\"\nsegment_secs = 600\nmin_free_mib = 1",
            &[
                ("cam-a".into(), "url", server.url("a")),
                ("cam-b".into(), "url", server.url("b")),
            ],
        ),
    )
    .unwrap();
    let data = data.join("data");
    let mut hub = HubProcess::spawn(&config, data.with_file_name("hub-1.log"));
    // Wait until both cameras' segments hold several fragments (one a group of pictures).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = sizes(&data);
        if s.len() == 2 && s.iter().all(|(_, len)| *len > 150_000) {
            break;
        }
        assert!(Instant::now() < deadline, "no recording after 60 s: {s:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Mid-fragment, not at a boundary.
    std::thread::sleep(Duration::from_millis(700));
    hub.child.kill().unwrap();
    let killed_at = Timestamp::now();
    hub.child.wait().unwrap();
    let before = sizes(&data);

    // Started again: the open segments are repaired before anything records, then it records
    // on (new segments) until stopped cleanly.
    let mut hub = HubProcess::spawn(&config, data.with_file_name("hub-2.log"));
    std::thread::sleep(Duration::from_secs(8));
    let stopped = hub.terminate();
    assert!(
        stopped.is_some_and(|s| s.success()),
        "the hub did not stop cleanly within 20 s of SIGTERM: {stopped:?}"
    );

    let store = Store::open(&format!("sqlite://{}", data.join("xueliang.db").display()))
        .await
        .unwrap();
    let rows = check_index_and_files(&store, &data, &["cam-a", "cam-b"], StreamKind::Sub).await;
    for (rows, (path, size_at_kill)) in rows.iter().zip(&before) {
        let killed = rows
            .iter()
            .find(|r| &r.path == path)
            .unwrap_or_else(|| panic!("{path} (open at the kill) is gone from the index"));
        assert_eq!(killed.state, SegmentState::Repaired, "{path}");
        assert!(killed.bytes <= *size_at_kill);
        ffprobe_duration(&data.join(path));
        // At most the group of pictures being gathered (and the one being written) is lost.
        let lost = killed_at.duration_since(killed.end_at.unwrap());
        assert!(
            lost <= GOP * 2 + SignedDuration::from_millis(500),
            "{path}: the repaired segment ends {lost:?} before the kill"
        );
        // Recording went on after the restart.
        assert!(
            rows.len() >= 2,
            "{path}: nothing recorded after the restart"
        );
    }
    let _ = std::fs::remove_dir_all(data.parent().unwrap());
}

/// A tmpfs of `mib` MiB mounted at a fresh directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(mib: u32) -> Tmpfs {
        let dir = temp_dir("recording-tmpfs");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs at {} (the disk guard test needs root, as scripts/setup does)",
            dir.display()
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_guard_deletes_the_oldest_unheld_segments_first() {
    const CAMERAS: usize = 4;
    let fs = Tmpfs::mount(48);
    let data = fs.0.join("data");
    let mounts: Vec<(String, PathBuf)> = (0..CAMERAS)
        .map(|i| (format!("m{i}"), test_clip(H264_720P).unwrap()))
        .collect();
    let refs: Vec<(&str, PathBuf)> = mounts
        .iter()
        .map(|(m, p)| (m.as_str(), p.clone()))
        .collect();
    let server = RtspServer::start(&refs).unwrap();
    let ids: Vec<String> = (0..CAMERAS).map(|i| format!("cam-{i}")).collect();
    // The 720p clip as the main stream: the one recorded by default.
    let cameras: Vec<(String, &str, String)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), "main_url", server.url(&format!("m{i}"))))
        .collect();
    let text = hub_config(
        &data,
        "mode = \"continuous\"\nsegment_secs = 10\nmin_free_mib = 24",
        &cameras,
    );
    let hub = Hub::start(Config::parse(&text).unwrap()).await.unwrap();
    for id in &ids {
        wait_online(&hub, id).await;
    }
    let store = hub.store.clone();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    // Hold five seconds of cam-0, as an alert's clip would.
    let held_from = Timestamp::now();
    store
        .add_hold(&NewHold {
            camera: camera("cam-0"),
            from: held_from,
            to: held_from + SignedDuration::from_secs(5),
            until: None,
            reason: "test".into(),
            holder: "alert:test".into(),
            keep_after: SignedDuration::ZERO,
        })
        .await
        .unwrap();
    // Record until the guard has deleted a good number of segments.
    let (deleted, remaining, _) =
        wait_for_deletions(&store, &id_refs, StreamKind::Main, 8, 150, "the disk guard").await;
    hub.stop().await;

    let overlaps_hold = |r: &SegmentRow| {
        r.camera.as_str() == "cam-0"
            && r.start_at <= held_from + SignedDuration::from_secs(5)
            && r.end_at.is_none_or(|e| e >= held_from)
    };
    // The held segment stays, however full the disk.
    assert!(
        remaining.iter().any(overlaps_hold),
        "the held segment was deleted"
    );
    assert!(!deleted.iter().any(overlaps_hold));
    // Oldest first: no unheld segment is left that started before a deleted one and was
    // already closed when that one closed (so it was there to be deleted first).
    for d in &deleted {
        let older_left = remaining.iter().find(|r| {
            !overlaps_hold(r)
                && r.start_at < d.start_at
                && r.end_at.is_some_and(|e| e <= d.end_at.unwrap())
        });
        assert!(
            older_left.is_none(),
            "{} ({}) was deleted before the older {:?}",
            d.path,
            d.start_at,
            older_left.map(|r| (&r.path, r.start_at))
        );
    }
    // Never out of space: no write failed.
    let alerts = store
        .list_alerts(&xl_store::AlertFilter {
            kinds: Some(vec![xl_core::AlertKind::RecordingFailed]),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(alerts.is_empty(), "recording failed: {alerts:?}");
    drop(server);
}

/// A camera's recording that cannot be written (its directory is taken by a file) raises
/// `recording.failed` for that camera only, while the other camera records on; once the way
/// is clear, the recorder's retry records again and the alert resolves itself. Playback
/// answers a range with nothing recorded with 404 and the gaps, a range over the limit with 400
/// naming it, and an export whose segment file was deleted fails saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_error_stops_one_camera_with_an_alert_and_playback_errors_are_clear() {
    use xl_core::{AlertKind, AlertState};
    let server = RtspServer::start(&[
        ("a", test_clip(H264_360P).unwrap()),
        ("b", test_clip(H264_360P).unwrap()),
    ])
    .unwrap();
    let data = temp_dir("recording-fail");
    // cam-bad's recordings directory is a file: creating its segment directory fails.
    std::fs::create_dir_all(data.join("recordings")).unwrap();
    std::fs::write(data.join("recordings/cam-bad"), b"in the way").unwrap();
    let text = hub_config(
        &data,
        "mode = \"continuous\"\nstream = \"sub\"\nsegment_secs = 10\nmin_free_mib = 1\n\
         max_clip_minutes = 5",
        &[
            ("cam-good".into(), "url", server.url("a")),
            ("cam-bad".into(), "url", server.url("b")),
        ],
    );
    let hub = Hub::start(Config::parse(&text).unwrap()).await.unwrap();
    let store = hub.store.clone();
    let alerts_of = |state: AlertState| {
        let store = store.clone();
        async move {
            store
                .list_alerts(&xl_store::AlertFilter {
                    kinds: Some(vec![AlertKind::RecordingFailed]),
                    states: Some(vec![state]),
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let raised = loop {
        let open = alerts_of(AlertState::Open).await;
        if let Some(a) = open.first() {
            break a.clone();
        }
        assert!(Instant::now() < deadline, "no recording.failed within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(raised.camera.as_ref().map(|c| c.as_str()), Some("cam-bad"));
    assert!(
        raised.title.contains("cam-bad") && !raised.title.contains('/'),
        "{}",
        raised.title
    );
    // The way is cleared; the retry (every 30 s) records again and resolves the alert.
    std::fs::remove_file(data.join("recordings/cam-bad")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(75);
    loop {
        if !alerts_of(AlertState::Resolved).await.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "recording.failed not resolved within 75 s of the way being cleared"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let far = Timestamp::now() + SignedDuration::from_hours(1);
    let good = store
        .segments(
            &camera("cam-good"),
            StreamKind::Sub,
            Timestamp::UNIX_EPOCH,
            far,
        )
        .await
        .unwrap();
    assert!(good.len() >= 2, "cam-good stopped recording: {good:?}");
    assert!(
        !store
            .segments(
                &camera("cam-bad"),
                StreamKind::Sub,
                Timestamp::UNIX_EPOCH,
                far
            )
            .await
            .unwrap()
            .is_empty()
    );

    // Playback's errors, through the API.
    let client = reqwest::Client::new();
    let base = format!("http://{}/api/v1", hub.addr);
    let get = |path: String| {
        let client = client.clone();
        async move {
            let r = client.get(path).bearer_auth("t").send().await.unwrap();
            let status = r.status().as_u16();
            (
                status,
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let (first, closed) = (good[0].start_at, good[0].end_at.unwrap());
    let before = first - SignedDuration::from_mins(3);
    let (status, body) = get(format!(
        "{base}/cameras/cam-good/recording.mp4?from={before}&to={}",
        first - SignedDuration::from_mins(1)
    ))
    .await;
    assert_eq!(status, 404, "{body}");
    let gaps = body["gaps"].as_array().expect("gaps listed");
    assert_eq!(gaps.len(), 1, "{body}");
    assert_eq!(gaps[0]["from"], before.to_string());
    let (status, body) = get(format!(
        "{base}/cameras/cam-good/recording.mp4?from={first}&to={}",
        first + SignedDuration::from_mins(6)
    ))
    .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_clip_minutes"), "{message}");
    // The first segment's file is deleted behind the index's back: an export of it fails and
    // says why.
    std::fs::remove_file(data.join(&good[0].path)).unwrap();
    let r = client
        .post(format!("{base}/exports"))
        .bearer_auth("t")
        .json(&serde_json::json!({"range": {"camera": "cam-good", "from": first, "to": closed}}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 404, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("gone from the disk"), "{message}");
    hub.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// Retention in the running hub: `events-only` cameras keep unheld video `buffer_minutes` (1
/// here), oldest first, while an alert's clip hold keeps what it covers; the files go with
/// their rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_unheld_video_past_its_keep_oldest_first() {
    let server = RtspServer::start(&[
        ("a", test_clip(H264_360P).unwrap()),
        ("b", test_clip(H264_360P).unwrap()),
    ])
    .unwrap();
    let data = temp_dir("recording-retention");
    let text = hub_config(
        &data,
        "mode = \"events-only\"\nstream = \"sub\"\nsegment_secs = 10\nbuffer_minutes = 1\n\
         min_free_mib = 1",
        &[
            ("cam-a".into(), "url", server.url("a")),
            ("cam-b".into(), "url", server.url("b")),
        ],
    );
    let hub = Hub::start(Config::parse(&text).unwrap()).await.unwrap();
    for id in ["cam-a", "cam-b"] {
        wait_online(&hub, id).await;
    }
    let store = hub.store.clone();
    // An alert's clip on cam-a's first seconds.
    let held_from = Timestamp::now();
    store
        .add_hold(&NewHold {
            camera: camera("cam-a"),
            from: held_from,
            to: held_from + SignedDuration::from_secs(3),
            until: None,
            reason: "test".into(),
            holder: "alert:test".into(),
            keep_after: SignedDuration::ZERO,
        })
        .await
        .unwrap();
    // Retention runs every minute; video older than a minute goes at its next pass.
    let (deleted, remaining, deleted_by) = wait_for_deletions(
        &store,
        &["cam-a", "cam-b"],
        StreamKind::Sub,
        4,
        200,
        "retention",
    )
    .await;
    hub.stop().await;

    let held = |r: &SegmentRow| {
        r.camera.as_str() == "cam-a"
            && r.start_at <= held_from + SignedDuration::from_secs(3)
            && r.end_at.is_none_or(|e| e >= held_from)
    };
    assert!(remaining.iter().any(held), "the held segment was deleted");
    for d in &deleted {
        assert!(!held(d), "{} was held", d.path);
        // Only what ended more than the keep (a minute) before it went.
        let age = deleted_by.duration_since(d.end_at.unwrap());
        assert!(
            age > SignedDuration::from_mins(1),
            "{} deleted {age:?} after it ended",
            d.path
        );
        assert!(
            !data.join(&d.path).exists(),
            "{}'s file is still there",
            d.path
        );
        // Oldest first, per camera: nothing of that camera older than it is left unheld.
        let older_left = remaining
            .iter()
            .find(|r| r.camera == d.camera && !held(r) && r.start_at < d.start_at);
        assert!(
            older_left.is_none(),
            "{} deleted before the older {:?}",
            d.path,
            older_left.map(|r| &r.path)
        );
    }
    let _ = std::fs::remove_dir_all(&data);
}
