//! Station scope: a duty or police user limited to stations sees the communities of those
//! stations in the running topology (`Backend::topology_view`), on every route and the alert
//! stream, and nothing else; out of scope is "not found", as for property users
//! (`dashboard.rs`). Unlimited users still see everything, and the users API keeps stations
//! to duty and police users and to stations that exist.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use futures::StreamExt;
use jiff::Timestamp;
use serde_json::{Value, json};
use tower::ServiceExt;
use xl_core::alert::AlertAction;
use xl_core::camera::{
    CameraInfo, CameraNetwork, CameraRegistry, CameraStats, CameraStatus, DecodePolicy,
};
use xl_core::gate_status::{GateInfo, GateRegistry};
use xl_core::topology::{Community, Station, Topology};
use xl_core::{AlertState, CameraId, CommunityId, GateId, Role, StationId};

use super::dashboard::alert;
use super::fake::{Data, Fake};
use crate::backend::*;
use crate::{ApiSettings, ApiState, ApiToken, LoginLimiter, hash_password, router};

const TOKEN: &str = "scope-test-token";
const PASSWORD: &str = "correct horse battery";
/// Station S1 (城关) has community A; station S2 (新城) has community B; community C has no
/// station.
const S1: &str = "chengguan";
const S2: &str = "xincheng";
const A: &str = "xingfu";
const B: &str = "heping";
const C: &str = "hexie";

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn cid(s: &str) -> CommunityId {
    CommunityId::new(s).unwrap()
}

fn sid(s: &str) -> StationId {
    StationId::new(s).unwrap()
}

fn topology(communities: &[(&str, Option<&str>)]) -> Topology {
    let mut t = Topology::default();
    for (id, name) in [(S1, "城关派出所"), (S2, "新城派出所")] {
        t.stations.insert(
            sid(id),
            Station {
                id: sid(id),
                name: name.into(),
                disabled: false,
            },
        );
    }
    for (id, station) in communities {
        t.communities.insert(
            cid(id),
            Community {
                id: cid(id),
                name: format!("{id} 小区"),
                station: station.map(sid),
                disabled: false,
            },
        );
    }
    t
}

fn user(name: &str, role: Role, communities: &[&str], stations: &[&str]) -> UserRecord {
    static HASH: OnceLock<String> = OnceLock::new();
    UserRecord {
        user: User {
            username: name.into(),
            role,
            communities: communities.iter().map(|c| cid(c)).collect(),
            stations: stations.iter().map(|s| sid(s)).collect(),
        },
        password_hash: HASH
            .get_or_init(|| hash_password(PASSWORD).unwrap())
            .clone(),
        disabled: false,
        created_at: t(0),
    }
}

fn snap(id: &str, camera: Option<&str>, alert: Option<&str>) -> (SnapshotInfo, std::path::PathBuf) {
    // A directory per snapshot: tests run in parallel and must not rewrite each other's files.
    let dir = std::env::temp_dir().join(format!(
        "xl-api-scope-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{id}.jpg"));
    std::fs::write(&path, [0xFF, 0xD8, 0xFF, 0xE0, b'x', 0xFF, 0xD9]).unwrap();
    let info = SnapshotInfo {
        id: id.into(),
        camera: camera.map(|c| CameraId::new(c).unwrap()),
        alert: alert.map(|a| xl_core::AlertId(a.into())),
        taken_at: t(1),
        width: 640,
        height: 360,
        boxes: json!([]),
    };
    (info, path)
}

fn times(community: &str) -> ResponseTimes {
    let none = DurationFigures {
        count: 0,
        mean_secs: None,
        p50_secs: None,
        p90_secs: None,
    };
    ResponseTimes {
        community: cid(community),
        kind: xl_core::AlertKind::GateForcedOpen,
        raised: 1,
        to_acknowledge: none.clone(),
        to_resolve: none,
    }
}

struct World {
    state: ApiState,
    fake: Arc<Fake>,
}

/// Cameras cam-a (community network) and cam-a-sky (Skynet) in A, cam-b in B, cam-c in C;
/// gates east-door (A) and south-gate (B); one alert per community (al-a1 routed to duty and
/// police only, so a station-scoped user's alerts are not filtered by routing the way a
/// property user's are); snapshots of each; users limited to S1 (police-s1), to S2
/// (duty-s2), to a station the topology does not have (police-gone), and unlimited ones.
fn world() -> World {
    let cameras = Arc::new(CameraRegistry::default());
    for (id, community, network) in [
        ("cam-a", A, CameraNetwork::Community),
        ("cam-a-sky", A, CameraNetwork::Skynet),
        ("cam-b", B, CameraNetwork::Community),
        ("cam-c", C, CameraNetwork::Community),
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
    let gates = Arc::new(GateRegistry::default());
    for (id, community) in [("east-door", A), ("south-gate", B)] {
        gates.insert(GateInfo {
            id: GateId::new(id).unwrap(),
            community: cid(community),
            firmware: "zkteco-adms".into(),
            camera: None,
            offline_after_secs: 60,
        });
    }
    let view = |a| AlertView {
        alert: a,
        history: vec![],
        snapshots: vec![],
    };
    let all = [Role::Duty, Role::Police, Role::Property];
    let data = Data {
        users: vec![
            user("admin1", Role::Admin, &[], &[]),
            user("police-all", Role::Police, &[], &[]),
            user("duty-all", Role::Duty, &[], &[]),
            user("police-s1", Role::Police, &[], &[S1]),
            user("duty-s2", Role::Duty, &[], &[S2]),
            user("police-gone", Role::Police, &[], &["closed-station"]),
            user("prop-a", Role::Property, &[A], &[]),
        ],
        alerts: vec![
            view(alert(
                "al-a1",
                A,
                &[Role::Duty, Role::Police],
                AlertState::Open,
                10,
            )),
            view(alert("al-b1", B, &all, AlertState::Open, 20)),
            view(alert("al-c1", C, &all, AlertState::Open, 30)),
        ],
        snapshots: vec![
            snap("snap-a", Some("cam-a"), Some("al-a1")),
            snap("snap-a-live", Some("cam-a-sky"), None),
            snap("snap-b", Some("cam-b"), Some("al-b1")),
            snap("snap-b-live", Some("cam-b"), None),
            snap("snap-c-live", Some("cam-c"), None),
            snap("snap-nowhere", None, None),
        ],
        gate_events: [("ge-a", "east-door", A), ("ge-b", "south-gate", B)]
            .into_iter()
            .map(|(id, gate, c)| json!({"id": id, "gate": gate, "community": c, "received_at": t(5).to_string(), "event": {"kind": "granted"}}))
            .collect(),
        vision_events: [("cam-a", A), ("cam-a-sky", A), ("cam-b", B), ("cam-c", C)]
            .into_iter()
            .map(|(cam, c)| json!({"kind": "person", "camera": cam, "community": c, "at": t(7).to_string()}))
            .collect(),
        times: [A, B, C].into_iter().map(times).collect(),
        topology: topology(&[(A, Some(S1)), (B, Some(S2)), (C, None)]),
        ..Data::default()
    };
    let fake = Arc::new(Fake::new(data));
    let state = ApiState {
        cameras,
        gates,
        token: Arc::new(ApiToken::new(TOKEN.into())),
        ready: Arc::new(AtomicBool::new(true)),
        extra_metrics: vec![],
        backend: fake.clone(),
        settings: ApiSettings {
            camera_poll: Duration::from_millis(20),
            session_recheck: Duration::from_millis(20),
            ..ApiSettings::default()
        },
        login_limiter: Arc::new(LoginLimiter::default()),
        looks: Arc::default(),
    };
    World { state, fake }
}

fn request(method: Method, uri: &str, token: &str, body: Option<Value>) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    let body = match body {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let mut req = req.body(body).unwrap();
    let peer: SocketAddr = "10.0.0.9:5000".parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

/// The status and body (JSON, or the text as a JSON string) of one request as `token`.
async fn call(
    s: &ApiState,
    method: Method,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let resp = router(s.clone())
        .oneshot(request(method, uri, token, body))
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

async fn get(s: &ApiState, uri: &str, token: &str) -> (StatusCode, Value) {
    call(s, Method::GET, uri, token, None).await
}

async fn login(s: &ApiState, username: &str) -> String {
    let req = Request::post("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"username": username, "password": PASSWORD}).to_string(),
        ))
        .unwrap();
    let mut req = req;
    let peer: SocketAddr = "10.0.0.9:5000".parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    let resp = router(s.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "login of {username}");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["token"].as_str().unwrap().to_owned()
}

/// The sorted `key` of each item of the list at `uri` (asserting 200).
async fn list(s: &ApiState, uri: &str, token: &str, key: &str) -> Vec<String> {
    let (status, v) = get(s, uri, token).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {v}");
    let mut ids: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("{uri}: not a list: {v}"))
        .iter()
        .map(|x| x[key].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_station_scoped_police_user_sees_only_its_stations_communities() {
    let w = world();
    let s = &w.state;
    let p = login(s, "police-s1").await;

    // Lists hold A's things only: every network's cameras (the community-network limit is
    // property's), and A's alerts whatever they are routed to.
    assert_eq!(
        list(s, "/api/v1/cameras", &p, "id").await,
        ["cam-a", "cam-a-sky"]
    );
    assert_eq!(list(s, "/api/v1/gates", &p, "id").await, ["east-door"]);
    assert_eq!(list(s, "/api/v1/alerts", &p, "id").await, ["al-a1"]);
    let asked = format!("/api/v1/alerts?community={B},{C}");
    assert!(list(s, &asked, &p, "id").await.is_empty());
    assert_eq!(list(s, "/api/v1/events/gates", &p, "id").await, ["ge-a"]);
    let asked = "/api/v1/events/gates?gate=south-gate";
    assert!(list(s, asked, &p, "id").await.is_empty());
    assert_eq!(
        list(s, "/api/v1/events/vision", &p, "camera").await,
        ["cam-a", "cam-a-sky"]
    );
    let asked = "/api/v1/events/vision?camera=cam-b,cam-c";
    assert!(list(s, asked, &p, "camera").await.is_empty());
    assert_eq!(
        list(s, "/api/v1/figures/response-times", &p, "community").await,
        [A]
    );

    // Everything of B and C is "not found", so that its existence does not leak...
    for uri in [
        "/api/v1/cameras/cam-b",
        "/api/v1/cameras/cam-c",
        "/api/v1/cameras/cam-b/snapshot",
        "/api/v1/cameras/cam-c/snapshot",
        "/api/v1/gates/south-gate",
        "/api/v1/gates/south-gate/events",
        "/api/v1/alerts/al-b1",
        "/api/v1/alerts/al-c1",
        "/api/v1/snapshots/snap-b",
        "/api/v1/snapshots/snap-b-live",
        "/api/v1/snapshots/snap-c-live",
        // A snapshot of no camera and no alert is only for those who see everything.
        "/api/v1/snapshots/snap-nowhere",
    ] {
        let (status, body) = get(s, uri, &p).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
    }
    for action in ["acknowledge", "escalate", "resolve", "note"] {
        let uri = format!("/api/v1/alerts/al-b1/{action}");
        let (status, _) = call(s, Method::POST, &uri, &p, Some(json!({"note": "x"}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}");
    }
    assert!(w.fake.lock().outbox.is_empty(), "nothing acted on");
    // ...and admin routes stay admin's.
    for uri in ["/api/v1/users", "/api/v1/audit"] {
        assert_eq!(get(s, uri, &p).await.0, StatusCode::FORBIDDEN, "{uri}");
    }

    // A's things answer, snapshots included (their views audited).
    for uri in [
        "/api/v1/cameras/cam-a",
        "/api/v1/cameras/cam-a-sky",
        "/api/v1/cameras/cam-a/snapshot",
        "/api/v1/gates/east-door",
        "/api/v1/gates/east-door/events",
        "/api/v1/alerts/al-a1",
        "/api/v1/snapshots/snap-a",
        "/api/v1/snapshots/snap-a-live",
    ] {
        let (status, body) = get(s, uri, &p).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    }
    let uri = "/api/v1/alerts/al-a1/acknowledge";
    let (status, body) = call(s, Method::POST, uri, &p, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let views = w
        .fake
        .lock()
        .audit
        .iter()
        .filter(|e| e.action == "snapshot.view" && e.actor == "police-s1")
        .count();
    assert_eq!(views, 3);

    // The other station's user sees the other station's community, and only it.
    let d = login(s, "duty-s2").await;
    assert_eq!(list(s, "/api/v1/cameras", &d, "id").await, ["cam-b"]);
    assert_eq!(list(s, "/api/v1/alerts", &d, "id").await, ["al-b1"]);
    assert_eq!(
        get(s, "/api/v1/alerts/al-a1", &d).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn users_without_stations_see_everything_and_an_unknown_station_shows_nothing() {
    let w = world();
    let s = &w.state;
    for name in ["police-all", "duty-all", "admin1"] {
        let u = login(s, name).await;
        assert_eq!(
            list(s, "/api/v1/cameras", &u, "id").await,
            ["cam-a", "cam-a-sky", "cam-b", "cam-c"],
            "{name}"
        );
        assert_eq!(
            list(s, "/api/v1/alerts", &u, "id").await,
            ["al-a1", "al-b1", "al-c1"],
            "{name}"
        );
        let (status, _) = get(s, "/api/v1/snapshots/snap-nowhere", &u).await;
        assert_eq!(status, StatusCode::OK, "{name}");
    }
    // The API token is an admin: never limited.
    assert_eq!(list(s, "/api/v1/gates", TOKEN, "id").await.len(), 2);

    // Stations the topology does not have give no community: the scope fails closed.
    let g = login(s, "police-gone").await;
    assert!(list(s, "/api/v1/cameras", &g, "id").await.is_empty());
    assert!(list(s, "/api/v1/alerts", &g, "id").await.is_empty());
    assert!(list(s, "/api/v1/events/gates", &g, "id").await.is_empty());
    let (status, _) = get(s, "/api/v1/snapshots/snap-nowhere", &g).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A station's communities are looked up in the running topology at each request: a
/// community moved into or out of the station applies without logging in again.
#[tokio::test]
async fn a_community_moved_between_stations_changes_the_scope_at_once() {
    let w = world();
    let s = &w.state;
    let p = login(s, "police-s1").await;
    assert_eq!(list(s, "/api/v1/alerts", &p, "id").await, ["al-a1"]);
    w.fake.lock().topology = topology(&[(A, Some(S2)), (B, Some(S2)), (C, Some(S1))]);
    assert_eq!(list(s, "/api/v1/alerts", &p, "id").await, ["al-c1"]);
    assert_eq!(list(s, "/api/v1/cameras", &p, "id").await, ["cam-c"]);
    assert_eq!(
        get(s, "/api/v1/cameras/cam-a", &p).await.0,
        StatusCode::NOT_FOUND
    );
}

/// Reads `alert` events off an SSE body.
struct Alerts {
    body: futures::stream::BoxStream<'static, Result<bytes::Bytes, axum::Error>>,
    buf: String,
}

impl Alerts {
    async fn open(s: &ApiState, token: &str) -> Alerts {
        let req = request(Method::GET, "/api/v1/alerts/stream", token, None);
        let resp = router(s.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        Alerts {
            body: resp.into_body().into_data_stream().boxed(),
            buf: String::new(),
        }
    }

    /// The id of the next alert event's alert.
    async fn next(&mut self) -> String {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                if !frame.lines().any(|l| l == "event: alert") {
                    continue;
                }
                let data: String = frame
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                let v: Value = serde_json::from_str(&data).unwrap();
                return v["alert"]["id"].as_str().unwrap().to_owned();
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("an SSE event within 10 s")
                .expect("the stream ended")
                .unwrap();
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

/// The stream carries the station's alerts only, and follows both a change of the user's
/// stations and a change of the topology while it is open (at its session re-check).
#[tokio::test]
async fn the_alert_stream_follows_the_station_scope() {
    let w = world();
    let s = &w.state;
    let p = login(s, "police-s1").await;
    let raise = |id: &str, community: &str, at| {
        let a = alert(id, community, &[Role::Duty], AlertState::Open, at);
        w.fake.commit(a, AlertAction::Raised);
    };

    let mut stream = Alerts::open(s, &p).await;
    raise("al-b2", B, 40);
    raise("al-c2", C, 41);
    raise("al-a2", A, 42);
    assert_eq!(stream.next().await, "al-a2");

    // The user is moved to station S2.
    {
        let mut data = w.fake.lock();
        let u = data
            .users
            .iter_mut()
            .find(|u| u.user.username == "police-s1")
            .unwrap();
        u.user.stations = vec![sid(S2)];
    }
    // A few re-checks (every 20 ms here) pick it up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    raise("al-a3", A, 43);
    raise("al-b3", B, 44);
    assert_eq!(stream.next().await, "al-b3");

    // Community C joins station S2 in the running topology.
    w.fake.lock().topology = topology(&[(A, Some(S1)), (B, Some(S2)), (C, Some(S2))]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    raise("al-a4", A, 45);
    raise("al-c4", C, 46);
    assert_eq!(stream.next().await, "al-c4");
}

#[tokio::test]
async fn the_users_api_keeps_stations_to_duty_and_police_and_to_known_stations() {
    let w = world();
    let s = &w.state;
    let add = |body: Value| call(s, Method::POST, "/api/v1/users", TOKEN, Some(body));
    let pw = PASSWORD;

    let (status, body) = add(
        json!({"username": "police-new", "password": pw, "role": "police", "stations": [S1, S1]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["stations"], json!([S1]), "duplicates dropped");
    // The new user logs in, is shown with the station, and is limited to it.
    let p = login(s, "police-new").await;
    let (_, me) = get(s, "/api/v1/auth/me", &p).await;
    assert_eq!(me["user"]["stations"], json!([S1]), "{me}");
    assert_eq!(list(s, "/api/v1/gates", &p, "id").await, ["east-door"]);
    let audit = w.fake.lock().audit.clone();
    let added = audit.iter().find(|e| e.action == "user.add").unwrap();
    assert_eq!(added.detail["stations"], json!([S1]), "{:?}", added.detail);

    // Refused, naming the field: stations for admin or property users, unknown stations.
    for (body, says) in [
        (
            json!({"username": "a9", "password": pw, "role": "admin", "stations": [S1]}),
            "not admin",
        ),
        (
            json!({"username": "p9", "password": pw, "role": "property", "communities": [A], "stations": [S1]}),
            "not property",
        ),
        (
            json!({"username": "d9", "password": pw, "role": "duty", "stations": [S1, "nowhere"]}),
            "\"nowhere\"",
        ),
    ] {
        let (status, v) = add(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("`stations`") && message.contains(says),
            "{message}"
        );
    }
    assert!(
        w.fake
            .lock()
            .users
            .iter()
            .all(|u| !u.user.username.ends_with('9'))
    );

    // PATCH: stations set, and in the listing.
    let patch = |name: &str, body: Value| {
        let uri = format!("/api/v1/users/{name}");
        async move { call(s, Method::PATCH, &uri, TOKEN, Some(body)).await }
    };
    let (status, v) = patch("police-all", json!({"stations": [S2]})).await;
    assert_eq!(
        (status, &v["stations"]),
        (StatusCode::OK, &json!([S2])),
        "{v}"
    );
    let (_, users) = get(s, "/api/v1/users", TOKEN).await;
    let listed = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "police-all")
        .unwrap();
    assert_eq!(listed["stations"], json!([S2]));
    // A station-scoped user made admin must drop the stations with it; then it may.
    let (status, v) = patch("police-all", json!({"role": "admin"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`stations`")
    );
    let (status, v) = patch("police-all", json!({"role": "admin", "stations": []})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["stations"], json!([]));
    let (status, v) = patch("duty-all", json!({"stations": ["nowhere"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let stored = w.fake.lock().users.clone();
    let duty = stored
        .iter()
        .find(|u| u.user.username == "duty-all")
        .unwrap();
    assert!(duty.user.stations.is_empty(), "nothing stored on a refusal");
}
