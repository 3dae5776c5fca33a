//! Playback and evidence: the timeline, recorded video in byte ranges, alert clips, exports and
//! the evidence keys, on the fake backend: scope, parameters, `Range`, headers, bytes, audit.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use jiff::Timestamp;
use serde_json::{Value, json};
use tower::ServiceExt;
use xl_core::camera::{
    CameraInfo, CameraNetwork, CameraRegistry, CameraStats, CameraStatus, DecodePolicy,
};
use xl_core::gate_status::GateRegistry;
use xl_core::topology::{Community, Station, Topology};
use xl_core::{AlertId, AlertState, CameraId, CommunityId, Role, StationId};

use super::dashboard::alert;
use super::fake::{Data, Fake, FakeRecording, MemVideo, export_file};
use crate::backend::*;
use crate::recordings::CHUNK_BYTES;
use crate::{ApiSettings, ApiState, ApiToken, LoginLimiter, hash_password, router};

const TOKEN: &str = "recordings-test-token";
const PASSWORD: &str = "correct horse battery";
/// Community A (station S1) and community B (station S2).
const A: &str = "xingfu";
const B: &str = "heping";
const VIDEO_BYTES: usize = 1_000_000;
const ZIP: &[u8] = b"PK\x03\x04 an evidence package, as far as these tests care";

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn cid(s: &str) -> CommunityId {
    CommunityId::new(s).unwrap()
}

/// The recording's bytes: a pattern whose every slice is told apart from its neighbours'.
fn pattern() -> Vec<u8> {
    (0..VIDEO_BYTES).map(|i| (i % 251) as u8).collect()
}

fn user(name: &str, role: Role, communities: &[&str], stations: &[&str]) -> UserRecord {
    static HASH: OnceLock<String> = OnceLock::new();
    UserRecord {
        user: User {
            username: name.into(),
            role,
            communities: communities.iter().map(|c| cid(c)).collect(),
            stations: stations
                .iter()
                .map(|s| StationId::new(*s).unwrap())
                .collect(),
        },
        password_hash: HASH
            .get_or_init(|| hash_password(PASSWORD).unwrap())
            .clone(),
        disabled: false,
        created_at: t(0),
    }
}

struct World {
    state: ApiState,
    fake: Arc<Fake>,
    /// The reads of cam-a's recording.
    video: MemVideo,
}

/// Cameras cam-a (A, community network, recorded from t(0) to t(600) and t(900) to t(1200)),
/// cam-a-sky (A, Skynet) and cam-b (B); alerts al-a1 (A, routed to property, with a clip) and
/// al-b1 (B); users of every role, a property user of each community and a police user
/// limited to station S1.
fn world() -> World {
    let cameras = Arc::new(CameraRegistry::default());
    for (id, community, network) in [
        ("cam-a", A, CameraNetwork::Community),
        ("cam-a-sky", A, CameraNetwork::Skynet),
        ("cam-b", B, CameraNetwork::Community),
    ] {
        let id = CameraId::new(id).unwrap();
        let stats = Arc::new(CameraStats::new(id.clone(), DecodePolicy::KeyFrames));
        stats.set_status(CameraStatus::Online);
        let info = CameraInfo {
            id,
            name: "门".into(),
            community: cid(community),
            network,
        };
        cameras.insert(info, stats);
    }
    let mut topology = Topology::default();
    for (station, community) in [("s1", A), ("s2", B)] {
        let sid = StationId::new(station).unwrap();
        topology.stations.insert(
            sid.clone(),
            Station {
                id: sid.clone(),
                name: station.into(),
                disabled: false,
            },
        );
        topology.communities.insert(
            cid(community),
            Community {
                id: cid(community),
                name: community.into(),
                station: Some(sid),
                disabled: false,
            },
        );
    }
    let video = MemVideo::new(pattern(), t(-2), t(600));
    let view = |a| AlertView {
        alert: a,
        history: vec![],
        snapshots: vec![],
    };
    let all = [Role::Duty, Role::Police, Role::Property];
    let mut al_a1 = alert("al-a1", A, &all, AlertState::Open, 10);
    al_a1.camera = Some(CameraId::new("cam-a").unwrap());
    let data = Data {
        users: vec![
            user("admin1", Role::Admin, &[], &[]),
            user("duty1", Role::Duty, &[], &[]),
            user("police1", Role::Police, &[], &[]),
            user("police-s1", Role::Police, &[], &["s1"]),
            user("prop-a", Role::Property, &[A], &[]),
            user("prop-b", Role::Property, &[B], &[]),
        ],
        alerts: vec![
            view(al_a1),
            view(alert("al-b1", B, &all, AlertState::Open, 20)),
        ],
        topology,
        recordings: vec![FakeRecording {
            camera: CameraId::new("cam-a").unwrap(),
            ranges: vec![
                Span {
                    from: t(0),
                    to: t(600),
                },
                Span {
                    from: t(900),
                    to: t(1200),
                },
            ],
            video: video.clone(),
        }],
        clips: vec![(
            AlertId("al-a1".into()),
            MemVideo::new(pattern()[..5000].to_vec(), t(0), t(40)),
        )],
        export: Some(export_file(ZIP)),
        evidence_key: Some(EvidenceKey {
            algorithm: "ed25519".into(),
            public_key: "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=".into(),
            fingerprint: "4f1c".repeat(16),
        }),
        ..Data::default()
    };
    let fake = Arc::new(Fake::new(data));
    let state = ApiState {
        cameras,
        gates: Arc::new(GateRegistry::default()),
        token: Arc::new(ApiToken::new(TOKEN.into())),
        ready: Arc::new(AtomicBool::new(true)),
        extra_metrics: vec![],
        backend: fake.clone(),
        settings: ApiSettings::default(),
        login_limiter: Arc::new(LoginLimiter::default()),
        looks: Arc::default(),
    };
    World { state, fake, video }
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    /// `None` when the body ended with an error.
    body: Option<Vec<u8>>,
}

impl Resp {
    fn bytes(&self) -> &[u8] {
        self.body.as_deref().expect("the body ended with an error")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(self.bytes())
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(self.bytes())))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn call(
    state: &ApiState,
    method: Method,
    uri: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Resp {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = match body {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let mut req = req.body(body).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo("10.0.0.1:5000".parse::<SocketAddr>().unwrap()));
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .ok()
        .map(|b| b.to_vec());
    Resp {
        status,
        headers,
        body,
    }
}

async fn get(state: &ApiState, uri: &str, token: &str, headers: &[(&str, &str)]) -> Resp {
    call(state, Method::GET, uri, token, headers, None).await
}

/// A session token of `username`.
async fn login(state: &ApiState, username: &str) -> String {
    let r = call(
        state,
        Method::POST,
        "/api/v1/auth/login",
        "none",
        &[],
        Some(json!({"username": username, "password": PASSWORD})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    r.json()["token"].as_str().unwrap().to_owned()
}

/// `?from&to` of `[t(from), t(to))`.
fn span(from: i64, to: i64) -> String {
    format!("from={}&to={}", t(from), t(to))
}

fn audits(w: &World, action: &str) -> Vec<AuditEntry> {
    w.fake
        .lock()
        .audit
        .iter()
        .filter(|e| e.action == action)
        .cloned()
        .collect()
}

fn message(r: &Resp) -> String {
    r.json()["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_timeline_lists_ranges_and_gaps_of_cameras_in_scope() {
    let w = world();
    let prop_a = login(&w.state, "prop-a").await;
    let uri = format!("/api/v1/cameras/cam-a/recordings?{}", span(-100, 1000));
    let r = get(&w.state, &uri, &prop_a, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let spans = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["from"].as_str().unwrap().into(),
                    s["to"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let s = |a: i64, b: i64| (t(a).to_string(), t(b).to_string());
    let body = r.json();
    assert_eq!(body["camera"], "cam-a");
    assert_eq!(body["stream"], "main");
    assert_eq!(spans(&body["ranges"]), [s(0, 600), s(900, 1000)]);
    assert_eq!(spans(&body["gaps"]), [s(-100, 0), s(600, 900)]);
    let r = get(&w.state, &format!("{uri}&stream=sub"), &prop_a, &[]).await;
    assert_eq!(r.json()["stream"], "sub");

    // Another community's camera, a Skynet camera for property, an unknown camera: not found.
    let prop_b = login(&w.state, "prop-b").await;
    for (token, camera) in [
        (&prop_b, "cam-a"),
        (&prop_a, "cam-a-sky"),
        (&prop_a, "cam-b"),
        (&prop_a, "nope"),
    ] {
        let uri = format!("/api/v1/cameras/{camera}/recordings?{}", span(0, 60));
        let r = get(&w.state, &uri, token, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{camera}");
        assert_eq!(r.json()["error"]["code"], "not_found");
    }
    // The timeline shows no video: nothing audited but the logins.
    let actions: Vec<String> = w.fake.audit_actions().into_iter().map(|(_, a)| a).collect();
    assert!(actions.iter().all(|a| a == "login"), "{actions:?}");
}

#[tokio::test]
async fn bad_times_and_streams_are_400_naming_the_parameter() {
    let w = world();
    for path in ["recordings", "recording.mp4"] {
        let base = format!("/api/v1/cameras/cam-a/{path}");
        let eight_days = format!("from={}&to={}", t(0), t(8 * 24 * 3600));
        let week = format!("from={}&to={}", t(0), t(7 * 24 * 3600));
        for (query, named) in [
            (format!("to={}", t(60)), "`from`"),
            (format!("from={}", t(0)), "`to`"),
            (format!("from=yesterday&to={}", t(60)), "`from`"),
            (format!("from={}&to=2027-13-01", t(0)), "`to`"),
            (span(60, 0), "`to`"),
            (span(60, 60), "`to`"),
            (eight_days, "`to`"),
            (format!("{}&stream=side", span(0, 60)), "`stream`"),
            (format!("{}&speed=2", span(0, 60)), "`speed`"),
        ] {
            let r = get(&w.state, &format!("{base}?{query}"), TOKEN, &[]).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}?{query}");
            assert!(
                message(&r).contains(named),
                "{path}?{query}: {}",
                message(&r)
            );
        }
        // Seven days exactly is allowed.
        let r = get(&w.state, &format!("{base}?{week}"), TOKEN, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
    }
    let r = get(
        &w.state,
        &format!(
            "/api/v1/cameras/cam-a/recording.mp4?{}&download=yes",
            span(0, 60)
        ),
        TOKEN,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(message(&r).contains("`download`"), "{}", message(&r));
}

#[tokio::test]
async fn nothing_recorded_is_404_listing_the_gaps() {
    let w = world();
    let uri = format!("/api/v1/cameras/cam-a/recording.mp4?{}", span(650, 850));
    let r = get(&w.state, &uri, TOKEN, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let body = r.json();
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(
        body["gaps"],
        json!([{ "from": t(650).to_string(), "to": t(850).to_string() }])
    );
    assert!(
        audits(&w, "recording.play").is_empty(),
        "no video, no audit"
    );
}

#[tokio::test]
async fn recorded_video_is_served_in_byte_ranges() {
    let w = world();
    let whole = pattern();
    let len = whole.len();
    let uri = format!("/api/v1/cameras/cam-a/recording.mp4?{}", span(10, 70));
    // (Range, status, the bytes it answers)
    for (range, status, want) in [
        (None, StatusCode::OK, 0..len),
        (Some("bytes=0-99"), StatusCode::PARTIAL_CONTENT, 0..100),
        (
            Some("bytes=400000-400999"),
            StatusCode::PARTIAL_CONTENT,
            400_000..401_000,
        ),
        (
            Some("bytes=-500"),
            StatusCode::PARTIAL_CONTENT,
            len - 500..len,
        ),
        (
            Some("bytes=999000-"),
            StatusCode::PARTIAL_CONTENT,
            999_000..len,
        ),
        (
            Some("bytes=999990-2000000"),
            StatusCode::PARTIAL_CONTENT,
            999_990..len,
        ),
        // A header that cannot be read, and several ranges: the whole body.
        (Some("bytes=abc"), StatusCode::OK, 0..len),
        (Some("bytes=0-9,100-109"), StatusCode::OK, 0..len),
    ] {
        let headers: Vec<(&str, &str)> = range.iter().map(|r| ("range", *r)).collect();
        let r = get(&w.state, &uri, TOKEN, &headers).await;
        assert_eq!(r.status, status, "{range:?}");
        assert_eq!(r.bytes(), &whole[want.clone()], "{range:?}");
        assert_eq!(r.header("content-type"), Some("video/mp4"));
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        assert_eq!(
            r.header("content-length"),
            Some(want.len().to_string().as_str())
        );
        let content_range = format!("bytes {}-{}/{len}", want.start, want.end - 1);
        let expected = (status == StatusCode::PARTIAL_CONTENT).then_some(content_range.as_str());
        assert_eq!(r.header("content-range"), expected, "{range:?}");
        assert_eq!(r.header("x-clip-start"), Some(t(-2).to_string().as_str()));
        assert_eq!(r.header("x-clip-end"), Some(t(600).to_string().as_str()));
        assert_eq!(r.header("content-disposition"), None);
    }
    // Past the end: 416 naming the length.
    let r = get(&w.state, &uri, TOKEN, &[("range", "bytes=1000000-")]).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), Some("bytes */1000000"));
    assert_eq!(r.json()["error"]["code"], "range_not_satisfiable");
}

#[tokio::test]
async fn a_long_body_is_read_a_chunk_at_a_time() {
    let w = world();
    let uri = format!("/api/v1/cameras/cam-a/recording.mp4?{}", span(10, 70));
    w.video.reads.lock().unwrap().clear();
    let r = get(&w.state, &uri, TOKEN, &[]).await;
    assert_eq!(r.bytes().len(), VIDEO_BYTES);
    let reads = w.video.reads.lock().unwrap().clone();
    assert!(reads.len() >= 4, "{reads:?}");
    assert!(reads.iter().all(|(a, b)| b - a <= CHUNK_BYTES), "{reads:?}");
    // In order, each where the one before stopped.
    assert_eq!(reads[0].0, 0);
    assert!(reads.windows(2).all(|p| p[0].1 == p[1].0), "{reads:?}");
    assert_eq!(reads.last().unwrap().1, VIDEO_BYTES as u64);
}

#[tokio::test]
async fn a_read_failing_mid_body_cuts_the_answer_short() {
    let w = world();
    w.fake.lock().recordings[0].video.fail_from = Some(600_000);
    let uri = format!("/api/v1/cameras/cam-a/recording.mp4?{}", span(10, 70));
    let r = get(&w.state, &uri, TOKEN, &[]).await;
    // The headers went out before the failure; the body ends with an error, not short.
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_none(), "the body must not end as if complete");
    // A range before the missing part is served whole.
    let r = get(&w.state, &uri, TOKEN, &[("range", "bytes=0-99999")]).await;
    assert_eq!(r.bytes(), &pattern()[..100_000]);
}

#[tokio::test]
async fn many_range_requests_are_audited_once_per_user_camera_and_kind() {
    let w = world();
    let duty = login(&w.state, "duty1").await;
    let police = login(&w.state, "police1").await;
    let uri = format!("/api/v1/cameras/cam-a/recording.mp4?{}", span(10, 70));
    for i in 0..10u64 {
        let range = format!("bytes={}-{}", i * 1000, i * 1000 + 999);
        let r = get(&w.state, &uri, &duty, &[("range", range.as_str())]).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    }
    let plays = audits(&w, "recording.play");
    assert_eq!(plays.len(), 1, "{plays:?}");
    assert_eq!(plays[0].actor, "duty1");
    assert_eq!(plays[0].target.as_deref(), Some("cam-a"));
    assert_eq!(plays[0].detail["camera"], "cam-a");
    assert_eq!(plays[0].detail["from"], t(10).to_string());
    assert_eq!(plays[0].detail["to"], t(70).to_string());
    assert_eq!(plays[0].peer.as_deref(), Some("10.0.0.1"));

    // Another user is audited too; a download is another kind, with its file name.
    get(&w.state, &uri, &police, &[("range", "bytes=0-9")]).await;
    let download = format!("{uri}&download=true");
    for _ in 0..3 {
        let r = get(&w.state, &download, &duty, &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.header("content-disposition"),
            Some("attachment; filename=\"cam-a-20270115T075958Z.mp4\"")
        );
    }
    let actors =
        |action| -> Vec<String> { audits(&w, action).into_iter().map(|e| e.actor).collect() };
    assert_eq!(actors("recording.play"), ["duty1", "police1"]);
    assert_eq!(actors("recording.download"), ["duty1"]);
    // A range past the end shows no video and is not audited.
    let r = get(&w.state, &uri, TOKEN, &[("range", "bytes=2000000-")]).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(actors("recording.play"), ["duty1", "police1"]);
}

#[tokio::test]
async fn head_answers_the_headers_without_the_video() {
    let w = world();
    let uri = format!("/api/v1/cameras/cam-a/recording.mp4?{}", span(10, 70));
    let r = call(&w.state, Method::HEAD, &uri, TOKEN, &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), Some("1000000"));
    assert_eq!(r.header("x-clip-start"), Some(t(-2).to_string().as_str()));
    assert!(r.bytes().is_empty());
}

#[tokio::test]
async fn an_alerts_clip_is_scoped_ranged_and_audited() {
    let w = world();
    let prop_a = login(&w.state, "prop-a").await;
    let prop_b = login(&w.state, "prop-b").await;
    let police_s1 = login(&w.state, "police-s1").await;
    let r = get(&w.state, "/api/v1/alerts/al-a1/clip.mp4", &prop_b, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = get(&w.state, "/api/v1/alerts/al-b1/clip.mp4", &police_s1, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    for _ in 0..3 {
        let r = get(
            &w.state,
            "/api/v1/alerts/al-a1/clip.mp4",
            &prop_a,
            &[("range", "bytes=1000-1999")],
        )
        .await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(r.bytes(), &pattern()[1000..2000]);
        assert_eq!(r.header("content-range"), Some("bytes 1000-1999/5000"));
        assert_eq!(r.header("x-clip-end"), Some(t(40).to_string().as_str()));
    }
    let r = get(&w.state, "/api/v1/alerts/al-a1/clip.mp4", TOKEN, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.bytes(), &pattern()[..5000]);
    let r = get(
        &w.state,
        "/api/v1/alerts/al-a1/clip.mp4",
        TOKEN,
        &[("range", "bytes=5000-")],
    )
    .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), Some("bytes */5000"));
    // An alert in scope without a clip is the backend's 404.
    let r = get(&w.state, "/api/v1/alerts/al-b1/clip.mp4", TOKEN, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let clips = audits(&w, "alert.clip");
    let who: Vec<&str> = clips.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(who, ["prop-a", "api-token"]);
    assert_eq!(clips[0].target.as_deref(), Some("al-a1"));
    assert_eq!(clips[0].detail["camera"], "cam-a");
}

#[tokio::test]
async fn only_police_and_admins_export_and_each_export_is_audited() {
    let w = world();
    let body = json!({"alert": "al-a1"});
    for name in ["duty1", "prop-a"] {
        let token = login(&w.state, name).await;
        let r = call(
            &w.state,
            Method::POST,
            "/api/v1/exports",
            &token,
            &[],
            Some(body.clone()),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{name}");
    }
    assert!(w.fake.lock().exports.is_empty());

    let police = login(&w.state, "police1").await;
    let file = w.fake.lock().export.clone().unwrap();
    let range = json!({"range": {"camera": "cam-a", "stream": "main", "from": t(0).to_string(), "to": t(60).to_string()}});
    for body in [body.clone(), range] {
        let r = call(
            &w.state,
            Method::POST,
            "/api/v1/exports",
            &police,
            &[],
            Some(body),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.bytes(), ZIP);
        assert_eq!(r.header("content-type"), Some("application/zip"));
        assert_eq!(
            r.header("content-length"),
            Some(ZIP.len().to_string().as_str())
        );
        assert_eq!(
            r.header("content-disposition"),
            Some("attachment; filename=\"export-0192f3a4.zip\"")
        );
        assert_eq!(r.header("x-export-sha256"), Some(file.sha256.as_str()));
    }
    let made = w.fake.lock().exports.clone();
    assert_eq!(made.len(), 2);
    assert_eq!(
        made[0],
        (
            ExportSubject::Alert(AlertId("al-a1".into())),
            "police1".into()
        )
    );
    assert_eq!(
        made[1].0,
        ExportSubject::Range {
            camera: CameraId::new("cam-a").unwrap(),
            stream: Some(xl_core::live::StreamKind::Main),
            from: t(0),
            to: t(60),
        }
    );
    let audited = audits(&w, "export.create");
    assert_eq!(audited.len(), 2, "every export");
    assert_eq!(audited[0].actor, "police1");
    assert_eq!(audited[0].target.as_deref(), Some("export-0192f3a4.zip"));
    assert_eq!(audited[0].detail["subject"], json!({"alert": "al-a1"}));
    assert_eq!(audited[0].detail["sha256"], file.sha256);
    assert_eq!(audited[0].detail["bytes"], ZIP.len());
    assert_eq!(audited[0].detail["file"], "export-0192f3a4.zip");
    assert_eq!(audited[1].detail["subject"]["range"]["camera"], "cam-a");
    assert_eq!(
        audited[1].detail["subject"]["range"]["from"],
        t(0).to_string()
    );
}

#[tokio::test]
async fn exports_are_scoped_and_bad_bodies_named() {
    let w = world();
    let police_s1 = login(&w.state, "police-s1").await;
    let range = |camera: &str, from: i64, to: i64| json!({"range": {"camera": camera, "from": t(from).to_string(), "to": t(to).to_string()}});
    let post = |token: String, body: Value| {
        let state = w.state.clone();
        async move {
            call(
                &state,
                Method::POST,
                "/api/v1/exports",
                &token,
                &[],
                Some(body),
            )
            .await
        }
    };
    // Out of the station's scope, or unknown: not found.
    for body in [
        json!({"alert": "al-b1"}),
        json!({"alert": "al-zz"}),
        range("cam-b", 0, 60),
        range("nope", 0, 60),
    ] {
        let r = post(police_s1.clone(), body.clone()).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{body}");
    }
    let r = post(police_s1.clone(), range("cam-a", 0, 60)).await;
    assert_eq!(r.status, StatusCode::OK);

    for (body, named) in [
        (json!({}), "expected"),
        (
            json!({"alert": "al-a1", "range": range("cam-a", 0, 60)["range"]}),
            "expected",
        ),
        (json!({"camera": "cam-a"}), "camera"),
        (
            json!({"range": {"camera": "cam-a", "from": t(0).to_string()}}),
            "missing field `to`",
        ),
        (
            json!({"range": {"camera": "cam-a", "from": "noon", "to": t(0).to_string()}}),
            "`range.from`",
        ),
        (
            json!({"range": {"camera": "cam-a", "stream": "side", "from": t(0).to_string(), "to": t(9).to_string()}}),
            "side",
        ),
        (range("bad id", 0, 60), "`range.camera`"),
        (json!({"alert": "bad id"}), "bad id"),
        (range("cam-a", 60, 0), "range.to"),
        (range("cam-a", 0, 8 * 24 * 3600), "range.to"),
    ] {
        let r = post(TOKEN.to_owned(), body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(message(&r).contains(named), "{body}: {}", message(&r));
    }
    let r = post(TOKEN.to_owned(), range("cam-a", 60, 0)).await;
    assert_eq!(r.json()["error"]["field"], "range.to");
    // Only the good export was made and audited.
    assert_eq!(w.fake.lock().exports.len(), 1);
    assert_eq!(audits(&w, "export.create").len(), 1);
}

#[tokio::test]
async fn the_evidence_key_is_served_to_any_user() {
    let w = world();
    let prop_a = login(&w.state, "prop-a").await;
    let r = get(&w.state, "/api/v1/evidence/key", &prop_a, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let key = r.json();
    assert_eq!(key["algorithm"], "ed25519");
    assert!(key["public_key"].as_str().unwrap().starts_with("MCow"));
    assert_eq!(key["fingerprint"].as_str().unwrap().len(), 64);
    let r = get(&w.state, "/api/v1/evidence/key", "wrong", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_districts_evidence_keys_are_served_to_any_user() {
    let w = world();
    let prop_a = login(&w.state, "prop-a").await;
    // A backend that keeps no district's keys answers its own key alone.
    let r = get(&w.state, "/api/v1/evidence/keys", &prop_a, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let own = w.fake.lock().evidence_key.clone().unwrap();
    assert_eq!(
        r.json(),
        json!([{
            "algorithm": "ed25519",
            "public_key": own.public_key,
            "fingerprint": own.fingerprint,
            "node": "",
            "since": null,
        }])
    );
    // A district: every node's key, as the backend lists them.
    let key = |node: &str, fingerprint: &str, at: i64| DistrictEvidenceKey {
        algorithm: "ed25519".into(),
        public_key: format!("{node}-public-key"),
        fingerprint: fingerprint.into(),
        node: node.into(),
        since: Some(t(at)),
    };
    w.fake.lock().evidence_keys = Some(vec![
        key("node-a", "3f8a1c22d0e4b7a1", 0),
        key("node-b", "91d0e55a7c3b2f08", 60),
    ]);
    let r = get(&w.state, "/api/v1/evidence/keys", &prop_a, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let keys = r.json();
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
    assert_eq!(keys[1]["node"], "node-b");
    assert_eq!(keys[1]["fingerprint"], "91d0e55a7c3b2f08");
    assert_eq!(keys[1]["public_key"], "node-b-public-key");
    assert_eq!(keys[1]["since"], t(60).to_string());
    // This node's key alone stays where it was.
    let r = get(&w.state, "/api/v1/evidence/key", &prop_a, &[]).await;
    assert_eq!(r.json()["public_key"], own.public_key.as_str());
    let r = get(&w.state, "/api/v1/evidence/keys", "wrong", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn the_document_describes_the_playback_routes() {
    let doc = crate::openapi::document();
    let mp4 = &doc["paths"]["/api/v1/cameras/{id}/recording.mp4"]["get"];
    for status in ["200", "206", "400", "403", "404", "416"] {
        assert!(mp4["responses"][status].is_object(), "{status}");
    }
    assert_eq!(
        mp4["responses"]["206"]["content"]["video/mp4"]["schema"]["format"],
        "binary"
    );
    assert!(mp4["responses"]["200"]["headers"]["X-Clip-Start"].is_object());
    let params: Vec<(&str, bool)> = mp4["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["required"].as_bool().unwrap(),
            )
        })
        .collect();
    for p in [
        ("id", true),
        ("from", true),
        ("to", true),
        ("stream", false),
        ("download", false),
        ("Range", false),
    ] {
        assert!(params.contains(&p), "{p:?} in {params:?}");
    }
    let clip = &doc["paths"]["/api/v1/alerts/{id}/clip.mp4"]["get"];
    assert!(clip["responses"]["416"].is_object());
    let export = &doc["paths"]["/api/v1/exports"]["post"];
    for status in ["200", "400", "403", "404"] {
        assert!(export["responses"][status].is_object(), "{status}");
    }
    assert_eq!(
        export["responses"]["200"]["content"]["application/zip"]["schema"]["format"],
        "binary"
    );
    assert!(export["responses"]["200"]["headers"]["X-Export-Sha256"].is_object());
    let timeline = &doc["paths"]["/api/v1/cameras/{id}/recordings"]["get"];
    assert_eq!(
        timeline["responses"]["200"]["content"]["application/json"]["schema"]["required"],
        json!(["camera", "stream", "ranges", "gaps"])
    );
    assert!(doc["paths"]["/api/v1/evidence/key"]["get"]["responses"]["200"].is_object());
    let keys = &doc["paths"]["/api/v1/evidence/keys"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    assert_eq!(keys["type"], "array");
    assert_eq!(
        keys["items"]["required"],
        json!(["algorithm", "public_key", "fingerprint", "node", "since"])
    );
    // A 404 of a range with nothing recorded lists the gaps.
    assert!(crate::schema::error()["properties"]["gaps"].is_object());
}

#[tokio::test]
async fn another_node_gets_this_nodes_segments_in_scope_and_audited() {
    let w = world();
    let dir = std::env::temp_dir().join(format!("xl-api-segments-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("seg.mp4");
    std::fs::write(&path, pattern()).unwrap();
    w.fake.lock().segments = vec![(
        7,
        SegmentFile {
            camera: CameraId::new("cam-a").unwrap(),
            path: path.clone(),
            start_at: t(0),
            end_at: Some(t(60)),
        },
    )];
    let prop_a = login(&w.state, "prop-a").await;
    let r = get(
        &w.state,
        "/api/v1/recordings/segments/7",
        &prop_a,
        &[("range", "bytes=1000-1999")],
    )
    .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes(), &pattern()[1000..2000]);
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    let whole = get(&w.state, "/api/v1/recordings/segments/7", &prop_a, &[]).await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.bytes(), pattern().as_slice());
    // Audited once for the user and camera, however many ranges the node asks for.
    let looks = audits(&w, "recording.segment");
    assert_eq!(looks.len(), 1, "{looks:?}");
    assert_eq!(looks[0].target.as_deref(), Some("cam-a"));
    assert_eq!(looks[0].detail["segment"], 7);

    // Out of scope, unknown, not a number: all "not found", nothing said of the file.
    let prop_b = login(&w.state, "prop-b").await;
    for (token, uri) in [
        (&prop_b, "/api/v1/recordings/segments/7"),
        (&prop_a, "/api/v1/recordings/segments/8"),
        (&prop_a, "/api/v1/recordings/segments/x"),
    ] {
        let r = get(&w.state, uri, token, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(
            !message(&r).contains(&dir.display().to_string()),
            "{}",
            message(&r)
        );
    }
    // The file gone: 404 saying so, without its path.
    std::fs::remove_file(&path).unwrap();
    let r = get(&w.state, "/api/v1/recordings/segments/7", &prop_a, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        message(&r).contains("gone from the disk"),
        "{}",
        message(&r)
    );
    assert!(!message(&r).contains("seg.mp4"), "{}", message(&r));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn recordings_clips_and_exports_are_asked_with_the_callers_credentials_only() {
    let w = world();
    let police = login(&w.state, "police1").await;
    let uri = format!("/api/v1/cameras/cam-a/recording.mp4?{}", span(0, 60));
    let r = get(
        &w.state,
        &uri,
        &police,
        &[
            ("cookie", "xl_session=abc"),
            ("x-other", "not a credential"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let clip = get(&w.state, "/api/v1/alerts/al-a1/clip.mp4", &police, &[]).await;
    assert_eq!(clip.status, StatusCode::OK);
    let export = call(
        &w.state,
        Method::POST,
        "/api/v1/exports",
        &police,
        &[],
        Some(json!({"alert": "al-a1"})),
    )
    .await;
    assert_eq!(export.status, StatusCode::OK);
    let bearer = format!("authorization: Bearer {police}");
    let given = w.fake.lock().on_behalf.clone();
    assert_eq!(
        given,
        vec![
            vec![bearer.clone(), "cookie: xl_session=abc".to_owned()],
            vec![bearer.clone()],
            vec![bearer],
        ]
    );
}
