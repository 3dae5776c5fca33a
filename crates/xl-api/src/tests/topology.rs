//! The topology routes on the fake backend: create, read, update, disable, enable and delete
//! for every kind with their ETags and `If-Match` (428, 409), config entries read-only (403),
//! secrets never answered, errors naming the field and entry, scope for a property user and
//! a station-scoped police user, the probe's body and answer, and the CSV import (all or
//! nothing, rows and columns named).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use jiff::Timestamp;
use serde_json::{Value, json};
use tower::ServiceExt;
use xl_core::camera::{CameraNetwork, CameraRegistry};
use xl_core::gate_status::GateRegistry;
use xl_core::topology::{
    Camera, Community, Entry, EntryMeta, Grid, Origin, Secret, Station, StreamSource, Topology,
};
use xl_core::{CameraId, CommunityId, GridId, Role, StationId};

use super::fake::{Data, Fake};
use crate::backend::{SessionRecord, TopologyItem, User, UserRecord};
use crate::{ApiSettings, ApiState, ApiToken, LoginLimiter, router};

const TOKEN: &str = "topology-test-token";
const PASSWORD: &str = "cam-pass-7f3a9c";

fn at() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn sid(s: &str) -> StationId {
    StationId::new(s).unwrap()
}

fn cid(s: &str) -> CommunityId {
    CommunityId::new(s).unwrap()
}

fn rtsp(url: &str) -> Option<StreamSource> {
    Some(StreamSource::Rtsp { url: url.into() })
}

fn camera(id: &str, community: &str, network: CameraNetwork) -> Camera {
    Camera {
        id: CameraId::new(id).unwrap(),
        name: "东门".into(),
        community: cid(community),
        grid: None,
        network,
        main: None,
        sub: rtsp("rtsp://10.0.0.5/sub"),
        username: None,
        password: None,
        transport: None,
        decode: Default::default(),
        detect: Default::default(),
        zones: vec![],
        recording: Default::default(),
        disabled: false,
    }
}

fn item(entry: Entry, origin: Origin) -> TopologyItem {
    TopologyItem {
        meta: EntryMeta {
            origin,
            revision: 1,
            created_at: at(),
            updated_at: at(),
            secret_set: entry.secret().is_some(),
        },
        entry,
    }
}

/// Station chengguan (城关) has community xingfu; station xincheng has heping. xingfu has a
/// grid, a community camera and a Skynet camera; heping a camera. Station chengguan comes
/// from the config file. Users (sessions by token = their name): prop-xingfu, police-cg
/// (limited to chengguan), duty-all.
fn world() -> (ApiState, Arc<Fake>) {
    let entries = vec![
        item(
            Entry::Station(Station {
                id: sid("chengguan"),
                name: "城关派出所".into(),
                disabled: false,
            }),
            Origin::Config,
        ),
        item(
            Entry::Station(Station {
                id: sid("xincheng"),
                name: "新城派出所".into(),
                disabled: false,
            }),
            Origin::Store,
        ),
        item(
            Entry::Community(Community {
                id: cid("xingfu"),
                name: "幸福小区".into(),
                station: Some(sid("chengguan")),
                disabled: false,
            }),
            Origin::Store,
        ),
        item(
            Entry::Community(Community {
                id: cid("heping"),
                name: "和平小区".into(),
                station: Some(sid("xincheng")),
                disabled: false,
            }),
            Origin::Store,
        ),
        item(
            Entry::Grid(Grid {
                id: GridId::new("xingfu-1").unwrap(),
                community: cid("xingfu"),
                name: "第一网格".into(),
                disabled: false,
            }),
            Origin::Store,
        ),
        item(
            Entry::Camera(camera("xingfu-east", "xingfu", CameraNetwork::Community)),
            Origin::Store,
        ),
        item(
            Entry::Camera(camera("xingfu-sky", "xingfu", CameraNetwork::Skynet)),
            Origin::Store,
        ),
        item(
            Entry::Camera(camera("heping-east", "heping", CameraNetwork::Community)),
            Origin::Store,
        ),
    ];
    let user = |name: &str, role, communities: &[&str], stations: &[&str]| UserRecord {
        user: User {
            username: name.into(),
            role,
            communities: communities.iter().map(|c| cid(c)).collect(),
            stations: stations.iter().map(|s| sid(s)).collect(),
        },
        password_hash: "not used: sessions are made directly".into(),
        disabled: false,
        created_at: at(),
    };
    let users = vec![
        user("prop-xingfu", Role::Property, &["xingfu"], &[]),
        user("police-cg", Role::Police, &[], &["chengguan"]),
        user("duty-all", Role::Duty, &[], &[]),
    ];
    let sessions = users
        .iter()
        .map(|u| SessionRecord {
            token_hash: crate::auth::token_hash(&u.user.username),
            username: u.user.username.clone(),
            created_at: at(),
            expires_at: Timestamp::now() + jiff::SignedDuration::from_hours(1),
        })
        .collect();
    let data = Data {
        users,
        sessions,
        topology: Topology::from_entries(entries.iter().map(|i| i.entry.clone())),
        stored: entries,
        ..Data::default()
    };
    let fake = Arc::new(Fake::new(data));
    let state = ApiState {
        cameras: Arc::new(CameraRegistry::default()),
        gates: Arc::new(GateRegistry::default()),
        token: Arc::new(ApiToken::new(TOKEN.into())),
        ready: Arc::new(AtomicBool::new(true)),
        extra_metrics: vec![],
        backend: fake.clone(),
        settings: ApiSettings::default(),
        login_limiter: Arc::new(LoginLimiter::default()),
        looks: Arc::default(),
    };
    (state, fake)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

/// One request as `token` (the API token is the admin), with `If-Match` when given.
async fn call(
    state: &ApiState,
    method: Method,
    uri: &str,
    token: &str,
    if_match: Option<&str>,
    body: Option<(&str, String)>,
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(v) = if_match {
        req = req.header(header::IF_MATCH, v);
    }
    let body = match body {
        Some((content_type, text)) => {
            req = req.header(header::CONTENT_TYPE, content_type);
            Body::from(text)
        }
        None => Body::empty(),
    };
    let mut req = req.body(body).unwrap();
    let peer: SocketAddr = "10.0.0.9:5000".parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}

async fn json_call(
    state: &ApiState,
    method: Method,
    uri: &str,
    if_match: Option<&str>,
    body: Value,
) -> Answer {
    let body = Some(("application/json", body.to_string()));
    call(state, method, uri, TOKEN, if_match, body).await
}

fn etag(a: &Answer) -> &str {
    a.headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no ETag: {}", a.text))
}

/// A body for each kind, new in the world, and a changed version of it.
fn new_entries() -> Vec<(&'static str, &'static str, Value, Value)> {
    vec![
        (
            "stations",
            "xinqu",
            json!({"id": "xinqu", "name": "新区派出所"}),
            json!({"name": "新区所"}),
        ),
        (
            "communities",
            "hexie",
            json!({"id": "hexie", "name": "和谐社区", "station": "xincheng"}),
            json!({"name": "和谐社区", "station": null}),
        ),
        (
            "grids",
            "hexie-2",
            json!({"id": "hexie-2", "community": "heping", "name": "第二网格"}),
            json!({"community": "heping", "name": "第三网格"}),
        ),
        (
            "cameras",
            "heping-west",
            json!({
                "id": "heping-west", "name": "西门", "community": "heping",
                "sub": {"kind": "rtsp", "url": "rtsp://10.0.0.7/sub"},
                "username": "admin", "password": PASSWORD,
            }),
            json!({
                "name": "西门", "community": "heping", "username": "admin",
                "main": {"kind": "rtsp", "url": "rtsp://10.0.0.7/main"},
                "sub": {"kind": "rtsp", "url": "rtsp://10.0.0.7/sub"},
            }),
        ),
        (
            "gates",
            "heping-door",
            json!({
                "id": "heping-door", "name": "和平东门门禁", "community": "heping",
                "firmware": "hikvision-isapi", "camera": "heping-east",
                "push_secret": "push-secret-5e1d2b8c4a",
            }),
            json!({
                "name": "和平东门", "community": "heping", "firmware": "hikvision-isapi",
            }),
        ),
    ]
}

#[tokio::test]
async fn every_kind_is_created_read_updated_disabled_and_deleted_with_etags() {
    let (state, _) = world();
    for (kind, id, body, changed) in new_entries() {
        let list = format!("/api/v1/topology/{kind}");
        let one = format!("{list}/{id}");
        let a = json_call(&state, Method::POST, &list, None, body.clone()).await;
        assert_eq!(a.status, StatusCode::CREATED, "{kind}: {}", a.text);
        assert_eq!(etag(&a), "\"1\"", "{kind}");
        assert_eq!(a.body["entry"]["id"], id, "{kind}");
        assert_eq!(a.body["meta"]["origin"], "store");
        assert_eq!(a.body["meta"]["revision"], 1);
        assert_eq!(
            a.body["kind"],
            kind.trim_end_matches('s')
                .replace("communitie", "community")
        );

        // The same id again is refused, naming the field.
        let again = json_call(&state, Method::POST, &list, None, body).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST, "{kind}");
        assert_eq!(again.body["error"]["field"], "id", "{kind}: {}", again.text);

        let read = call(&state, Method::GET, &one, TOKEN, None, None).await;
        assert_eq!(read.status, StatusCode::OK, "{kind}: {}", read.text);
        assert_eq!(etag(&read), "\"1\"");

        // A change without If-Match is 428; with a stale one 409; with the read's 200.
        let put = |if_match| json_call(&state, Method::PUT, &one, if_match, changed.clone());
        let a = put(None).await;
        assert_eq!(a.status, StatusCode::PRECONDITION_REQUIRED, "{kind}");
        assert_eq!(a.body["error"]["code"], "precondition_required");
        assert_eq!(a.body["error"]["field"], "If-Match");
        assert_eq!(
            put(Some("\"7\"")).await.status,
            StatusCode::CONFLICT,
            "{kind}"
        );
        assert_eq!(
            put(Some("7")).await.status,
            StatusCode::BAD_REQUEST,
            "{kind}"
        );
        let a = put(Some(etag(&read))).await;
        assert_eq!(a.status, StatusCode::OK, "{kind}: {}", a.text);
        assert_eq!(etag(&a), "\"2\"");
        assert_eq!(a.body["entry"]["id"], id, "the path's id is the entry's");
        assert_eq!(a.body["entry"]["name"], changed["name"]);
        // The old ETag is stale now.
        assert_eq!(put(Some("\"1\"")).await.status, StatusCode::CONFLICT);

        // The id in the body must be the path's.
        let mut other = changed.clone();
        other["id"] = json!("someone-else");
        let a = json_call(&state, Method::PUT, &one, Some("\"2\""), other).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{kind}");
        assert_eq!(a.body["error"]["field"], "id");

        let post = |what: &str, if_match| {
            let uri = format!("{one}/{what}");
            let state = state.clone();
            async move { call(&state, Method::POST, &uri, TOKEN, if_match, None).await }
        };
        assert_eq!(
            post("disable", None).await.status,
            StatusCode::PRECONDITION_REQUIRED
        );
        let a = post("disable", Some("\"2\"")).await;
        assert_eq!(a.status, StatusCode::OK, "{kind}: {}", a.text);
        assert_eq!(a.body["entry"]["disabled"], true);
        assert_eq!(etag(&a), "\"3\"");
        let a = post("enable", Some("\"3\"")).await;
        assert_eq!(a.body["entry"]["disabled"], false, "{kind}: {}", a.text);

        let del = |if_match| call(&state, Method::DELETE, &one, TOKEN, if_match, None);
        assert_eq!(del(None).await.status, StatusCode::PRECONDITION_REQUIRED);
        assert_eq!(del(Some("\"3\"")).await.status, StatusCode::CONFLICT);
        let a = del(Some("\"4\"")).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{kind}: {}", a.text);
        let gone = call(&state, Method::GET, &one, TOKEN, None, None).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND, "{kind}");
    }
}

#[tokio::test]
async fn secrets_are_written_never_answered_kept_when_left_out_and_removed_by_null() {
    let (state, fake) = world();
    let (_, _, body, changed) = new_entries().remove(3);
    let a = json_call(&state, Method::POST, "/api/v1/topology/cameras", None, body).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert!(
        !a.text.contains(PASSWORD) && !a.text.contains("password"),
        "{}",
        a.text
    );
    assert_eq!(a.body["meta"]["secret_set"], true);
    // An edit that leaves the password out keeps it.
    let one = "/api/v1/topology/cameras/heping-west";
    let a = json_call(&state, Method::PUT, one, Some("\"1\""), changed.clone()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["meta"]["secret_set"], true);
    let stored = fake
        .lock()
        .stored
        .iter()
        .find(|i| i.entry.id().as_str() == "heping-west")
        .cloned();
    assert_eq!(
        stored.unwrap().entry.secret(),
        Some(&Secret::new(PASSWORD)),
        "kept in the store"
    );
    // `null` removes it, a string sets it again.
    let secret_of = || {
        fake.lock()
            .stored
            .iter()
            .find(|i| i.entry.id().as_str() == "heping-west")
            .and_then(|i| i.entry.secret().cloned())
    };
    let mut cleared = changed.clone();
    cleared["password"] = Value::Null;
    let a = json_call(&state, Method::PUT, one, Some("\"2\""), cleared).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["meta"]["secret_set"], false);
    assert_eq!(secret_of(), None, "removed from the store");
    let mut set = changed.clone();
    set["password"] = json!(PASSWORD);
    let a = json_call(&state, Method::PUT, one, Some("\"3\""), set).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["meta"]["secret_set"], true);
    assert_eq!(secret_of(), Some(Secret::new(PASSWORD)));
    for uri in [one, "/api/v1/topology/cameras", "/api/v1/topology"] {
        let a = call(&state, Method::GET, uri, TOKEN, None, None).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(
            !a.text.contains(PASSWORD) && !a.text.contains("\"password\""),
            "{uri}: {}",
            a.text
        );
        assert!(a.text.contains("\"secret_set\":true"), "{uri}");
    }
}

#[tokio::test]
async fn config_entries_are_read_only() {
    let (state, _) = world();
    let one = "/api/v1/topology/stations/chengguan";
    let read = call(&state, Method::GET, one, TOKEN, None, None).await;
    assert_eq!(read.body["meta"]["origin"], "config");
    let a = json_call(
        &state,
        Method::PUT,
        one,
        Some(etag(&read)),
        json!({"name": "x"}),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("config file"),
        "{}",
        a.text
    );
    let a = call(&state, Method::DELETE, one, TOKEN, Some("\"1\""), None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = call(
        &state,
        Method::POST,
        &format!("{one}/disable"),
        TOKEN,
        Some("\"1\""),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_entries_are_refused_naming_the_field_and_the_entry() {
    let (state, _) = world();
    let cams = "/api/v1/topology/cameras";
    let cases = [
        (
            json!({"id": "c1", "name": "x", "community": "heping", "sub": {"kind": "rtsp", "url": "http://cam/x"}}),
            "sub.url",
        ),
        (
            json!({"id": "c1", "name": "x", "community": "heping", "sub": {"kind": "rtsp", "url": "rtsp://u:p@cam/x"}}),
            "sub.url",
        ),
        (
            json!({"id": "c1", "name": "x", "community": "heping"}),
            "sub",
        ),
        (
            json!({"id": "c1", "name": "  ", "community": "heping", "sub": {"kind": "rtsp", "url": "rtsp://cam/x"}}),
            "name",
        ),
        (
            json!({"id": "c1", "name": "x", "community": "heping", "sub": {"kind": "rtsp", "url": "rtsp://cam/x"},
                   "zones": [{"id": "z", "polygon": [[0.1, 0.1], [0.9, 0.1]]}]}),
            "zones[0].polygon",
        ),
        (
            json!({"id": "c1", "name": "x", "community": "heping", "sub": {"kind": "rtsp", "url": "rtsp://cam/x"},
                   "zones": [{"id": "z", "name": " ", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]}]}),
            "zones[0].name",
        ),
        (
            json!({"id": "c1", "name": "x", "community": "heping", "sub": {"kind": "rtsp", "url": "rtsp://cam/x"}, "colour": 1}),
            "colour",
        ),
        (json!({"name": "x", "community": "heping"}), "id"),
        // the API would otherwise name any file the hub can read
        (
            json!({"id": "c1", "name": "x", "community": "heping", "main": {"kind": "file", "path": "/etc/shadow"}}),
            "main",
        ),
    ];
    for (body, field) in cases {
        let a = json_call(&state, Method::POST, cams, None, body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text);
        assert_eq!(a.body["error"]["field"], field, "{body}: {}", a.text);
    }
    // Entry checks name the entry too.
    let a = json_call(
        &state,
        Method::POST,
        cams,
        None,
        json!({"id": "c1", "name": "x", "community": "heping", "sub": {"kind": "rtsp", "url": "http://cam/x"}}),
    )
    .await;
    assert_eq!(
        a.body["error"]["entry"],
        json!({"kind": "camera", "id": "c1"})
    );
    // A bad id in the path.
    let a = call(
        &state,
        Method::GET,
        "/api/v1/topology/cameras/bad%20id",
        TOKEN,
        None,
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.body["error"]["field"], "id");
    // An entry still referred to: 409 naming the referrer.
    let a = call(
        &state,
        Method::DELETE,
        "/api/v1/topology/communities/heping",
        TOKEN,
        Some("\"1\""),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert!(a.text.contains("heping-east"), "{}", a.text);
}

/// A zone's display name is read trimmed and answered with the camera; a zone without one
/// answers `null`.
#[tokio::test]
async fn zone_names_are_trimmed_and_answered() {
    let (state, _) = world();
    let polygon = json!([[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]);
    let a = json_call(
        &state,
        Method::POST,
        "/api/v1/topology/cameras",
        None,
        json!({
            "id": "c-zones", "name": "北门", "community": "heping",
            "sub": {"kind": "rtsp", "url": "rtsp://cam/x"},
            "zones": [
                {"id": "plaza", "name": "  北门广场 ", "polygon": polygon},
                {"id": "path", "polygon": polygon},
            ],
        }),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let zones = &a.body["entry"]["zones"];
    assert_eq!(zones[0]["name"], "北门广场");
    assert_eq!(zones[1]["name"], Value::Null);
    let read = call(
        &state,
        Method::GET,
        "/api/v1/topology/cameras/c-zones",
        TOKEN,
        None,
        None,
    )
    .await;
    assert_eq!(read.body["entry"]["zones"][0]["name"], "北门广场");
}

#[tokio::test]
async fn writes_are_for_admins_only() {
    let (state, _) = world();
    let a = call(
        &state,
        Method::POST,
        "/api/v1/topology/stations",
        "duty-all",
        None,
        Some((
            "application/json",
            json!({"id": "s9", "name": "x"}).to_string(),
        )),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    for uri in ["/api/v1/cameras/probe", "/api/v1/cameras/import"] {
        let a = call(&state, Method::POST, uri, "police-cg", None, None).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{uri}");
    }
}

/// The ids of each kind a user's `GET /api/v1/topology` lists.
async fn visible(state: &ApiState, token: &str) -> Value {
    let a = call(state, Method::GET, "/api/v1/topology", token, None, None).await;
    assert_eq!(a.status, StatusCode::OK, "{token}: {}", a.text);
    let mut out = json!({});
    for (kind, items) in a.body.as_object().unwrap() {
        let ids: Vec<&str> = items
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["entry"]["id"].as_str().unwrap())
            .collect();
        out[kind] = json!(ids);
    }
    out
}

#[tokio::test]
async fn each_user_sees_the_topology_of_their_scope() {
    let (state, _) = world();
    let everything = json!({
        "stations": ["chengguan", "xincheng"],
        "communities": ["heping", "xingfu"],
        "grids": ["xingfu-1"],
        "cameras": ["heping-east", "xingfu-east", "xingfu-sky"],
        "gates": [],
    });
    assert_eq!(visible(&state, TOKEN).await, everything);
    assert_eq!(visible(&state, "duty-all").await, everything);
    // Station-scoped: the station, its communities and theirs.
    assert_eq!(
        visible(&state, "police-cg").await,
        json!({
            "stations": ["chengguan"],
            "communities": ["xingfu"],
            "grids": ["xingfu-1"],
            "cameras": ["xingfu-east", "xingfu-sky"],
            "gates": [],
        })
    );
    // Property: their community, its station and grids, and only community-network cameras.
    assert_eq!(
        visible(&state, "prop-xingfu").await,
        json!({
            "stations": ["chengguan"],
            "communities": ["xingfu"],
            "grids": ["xingfu-1"],
            "cameras": ["xingfu-east"],
            "gates": [],
        })
    );
    // Out of scope is "not found", by list and by id.
    for (token, uri) in [
        ("prop-xingfu", "/api/v1/topology/cameras/xingfu-sky"),
        ("prop-xingfu", "/api/v1/topology/communities/heping"),
        ("police-cg", "/api/v1/topology/stations/xincheng"),
        ("police-cg", "/api/v1/topology/cameras/heping-east"),
    ] {
        let a = call(&state, Method::GET, uri, token, None, None).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{token} {uri}");
    }
    let a = call(
        &state,
        Method::GET,
        "/api/v1/topology/cameras",
        "prop-xingfu",
        None,
        None,
    )
    .await;
    assert!(
        !a.text.contains("heping") && !a.text.contains("和平"),
        "{}",
        a.text
    );
    let a = call(
        &state,
        Method::GET,
        "/api/v1/topology/grids/xingfu-1",
        "police-cg",
        None,
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn the_probe_takes_credentials_beside_the_url_and_answers_a_snapshot() {
    let (state, fake) = world();
    let probe = "/api/v1/cameras/probe";
    let a = json_call(
        &state,
        Method::POST,
        probe,
        None,
        json!({"url": "rtsp://10.0.0.7/sub", "username": "admin", "password": PASSWORD}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["codec"], "h264");
    assert_eq!(
        (a.body["width"].as_u64(), a.body["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(a.body["gop_frames"], 20);
    assert_eq!(a.body["snapshot"], "data:image/jpeg;base64,/9j/2Q==");
    assert!(!a.text.contains(PASSWORD));
    {
        let d = fake.lock();
        let asked = &d.probes[0];
        assert_eq!(asked.url, "rtsp://10.0.0.7/sub");
        assert_eq!(asked.password.as_ref().map(Secret::expose), Some(PASSWORD));
        // Audited, without the password.
        let audit = d.audit.iter().find(|e| e.action == "camera.probe").unwrap();
        assert!(!serde_json::to_string(audit).unwrap().contains(PASSWORD));
    }
    for (body, field) in [
        (json!({"url": "http://10.0.0.7/sub"}), "url"),
        (json!({"url": "rtsp://admin:pw@10.0.0.7/sub"}), "url"),
        (
            json!({"url": "rtsp://10.0.0.7/sub", "password": "x"}),
            "password",
        ),
        (json!({"url": "rtsp://10.0.0.7/sub", "user": "x"}), "user"),
    ] {
        let a = json_call(&state, Method::POST, probe, None, body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text);
        assert_eq!(a.body["error"]["field"], field, "{body}: {}", a.text);
        assert!(!a.text.contains("pw@"), "{}", a.text);
    }
    assert_eq!(fake.lock().probes.len(), 1, "bad requests reach no camera");
    // A camera that cannot be reached: 502, saying why.
    let a = json_call(
        &state,
        Method::POST,
        probe,
        None,
        json!({"url": "rtsp://unreachable/x"}),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "upstream");
    assert!(a.text.contains("Connection refused"), "{}", a.text);
}

const HEADER: &str = "id,name,community,grid,network,main_url,sub_url,username,password";

async fn import(state: &ApiState, csv: String) -> Answer {
    call(
        state,
        Method::POST,
        "/api/v1/cameras/import",
        TOKEN,
        None,
        Some(("text/csv; charset=utf-8", csv)),
    )
    .await
}

#[tokio::test]
async fn a_good_csv_imports_every_row() {
    let (state, fake) = world();
    // A spreadsheet's: byte order mark, CRLF, a quoted name with a comma, a blank line.
    let csv = format!(
        "\u{feff}{HEADER}\r\n\
         imp-1,\"东门, 入口\",heping,,skynet,rtsp://10.1.0.1/main,rtsp://10.1.0.1/sub,admin,{PASSWORD}\r\n\
         \r\n\
         imp-2,西门,xingfu,xingfu-1,,,rtsp://10.1.0.2/sub,,\r\n"
    );
    let a = import(&state, csv).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.body, json!({"created": 2, "ids": ["imp-1", "imp-2"]}));
    let d = fake.lock();
    let get = |id: &str| {
        d.stored
            .iter()
            .find(|i| i.entry.id().as_str() == id)
            .unwrap()
            .entry
            .clone()
    };
    let Entry::Camera(c1) = get("imp-1") else {
        panic!()
    };
    assert_eq!(c1.name, "东门, 入口");
    assert_eq!(c1.network, CameraNetwork::Skynet);
    assert_eq!(c1.main, rtsp("rtsp://10.1.0.1/main"));
    assert_eq!(c1.password, Some(Secret::new(PASSWORD)));
    let Entry::Camera(c2) = get("imp-2") else {
        panic!()
    };
    assert_eq!(
        (c2.network, c2.main.clone()),
        (CameraNetwork::Community, None)
    );
    assert_eq!(c2.grid, Some(GridId::new("xingfu-1").unwrap()));
    assert_eq!(c2.username, None);
}

#[tokio::test]
async fn a_csv_with_bad_rows_stores_nothing_and_names_each_row_and_column() {
    let (state, fake) = world();
    let before = fake.lock().stored.len();
    let csv = format!(
        "{HEADER}\n\
         ok-1,东门,heping,,,,rtsp://10.1.0.1/sub,,\n\
         bad-url,西门,heping,,,http://10.1.0.2/main,,,\n\
         ok-2,南门,heping,,,,rtsp://10.1.0.3/sub,,\n\
         bad-net,北门,heping,,tianwang,,rtsp://10.1.0.4/sub,,\n\
         short,北门,heping\n\
         bad id,北门,heping,,,,rtsp://10.1.0.4/sub,,\n\
         no-stream,北门,heping,,,,,,\n"
    );
    let a = import(&state, csv).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was imported"),
        "{}",
        a.text
    );
    let rows: Vec<(u64, Option<&str>)> = a.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["row"].as_u64().unwrap(), r["field"].as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            (2, Some("main_url")),
            (4, Some("network")),
            (5, Some("grid")),
            (6, Some("id")),
            (7, Some("sub_url")),
        ],
        "{}",
        a.text
    );
    assert_eq!(fake.lock().stored.len(), before, "nothing stored");

    // What only the store can tell (an id taken) comes back by row too.
    let csv = format!(
        "{HEADER}\nnew-1,东门,heping,,,,rtsp://10.1.0.1/sub,,\nxingfu-east,x,xingfu,,,,rtsp://10.1.0.9/sub,,\n"
    );
    let a = import(&state, csv).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(
        a.body["rows"],
        json!([{"row": 2, "field": "id", "message": "camera \"xingfu-east\" already exists"}])
    );
    assert_eq!(fake.lock().stored.len(), before, "nothing stored");
}

#[tokio::test]
async fn an_import_refuses_what_is_not_a_camera_csv() {
    let (state, _) = world();
    let cases = [
        (String::new(), "empty file"),
        (format!("{HEADER}\n"), "no camera rows"),
        (
            "id,name,community,colour\nx,y,z,red\n".to_owned(),
            "unknown column",
        ),
        (
            "id,name,sub_url\nx,y,rtsp://a/b\n".to_owned(),
            "no column \"community\"",
        ),
        (format!("{HEADER}\n\"open,x\n"), "not closed"),
    ];
    for (csv, says) in cases {
        let a = import(&state, csv.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{csv:?}: {}", a.text);
        let message = a.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{csv:?}: {}", a.text);
    }
    let too_many: String = std::iter::once(HEADER.to_owned())
        .chain(
            (0..=crate::topology::MAX_IMPORT_ROWS)
                .map(|i| format!("c{i},门,heping,,,,rtsp://10.2.0.1/{i},,")),
        )
        .collect::<Vec<_>>()
        .join("\n");
    let a = import(&state, too_many).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.text.contains("at most 5000"), "{}", a.text);
    let a = call(
        &state,
        Method::POST,
        "/api/v1/cameras/import",
        TOKEN,
        None,
        Some(("application/json", "{}".into())),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.body["error"]["field"], "Content-Type");
}

#[tokio::test]
async fn five_thousand_rows_fit_the_body_limit() {
    let (state, _) = world();
    // Long URLs: about 550 bytes a row, more than axum's default limit of 2 MiB in all.
    let path = "x".repeat(450);
    let csv: String = std::iter::once(HEADER.to_owned())
        .chain((0..crate::topology::MAX_IMPORT_ROWS).map(|i| {
            format!(
                "cam-{i},门 {i},heping,,,,rtsp://10.2.{}.{}/{path}/{i},admin,{PASSWORD}",
                i / 250,
                i % 250
            )
        }))
        .collect::<Vec<_>>()
        .join("\r\n");
    assert!(csv.len() > 2 << 20, "{}", csv.len());
    let a = import(&state, csv).await;
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "{}",
        &a.text[..a.text.len().min(400)]
    );
    assert_eq!(a.body["created"], 5000);
}

#[test]
fn the_document_says_the_import_is_all_or_nothing_and_lists_the_conflict_statuses() {
    let doc = crate::openapi::document();
    let import = &doc["paths"]["/api/v1/cameras/import"]["post"];
    assert!(
        import["description"]
            .as_str()
            .unwrap()
            .contains("All or nothing")
    );
    assert!(import["requestBody"]["content"]["text/csv"].is_object());
    let put = &doc["paths"]["/api/v1/topology/cameras/{id}"]["put"];
    for status in ["409", "428", "403", "404"] {
        assert!(put["responses"][status].is_object(), "{status}");
    }
    let probe = &doc["paths"]["/api/v1/cameras/probe"]["post"];
    assert!(probe["responses"]["502"].is_object());
    // An answer's entry schema has no secret in it.
    let cam = &put["responses"]["200"]["content"]["application/json"]["schema"];
    assert!(
        cam["properties"]["entry"]["properties"]
            .get("password")
            .is_none()
    );
    // A secret in an update: left out keeps it, `null` removes it; the schema takes `null`.
    for (path, field) in [
        ("/api/v1/topology/cameras/{id}", "password"),
        ("/api/v1/topology/gates/{id}", "push_secret"),
    ] {
        let body = &doc["paths"][path]["put"]["requestBody"]["content"]["application/json"];
        let secret = &body["schema"]["properties"][field];
        assert_eq!(secret["nullable"], true, "{path}");
        assert!(
            secret["description"]
                .as_str()
                .unwrap()
                .contains("null removes it"),
            "{path}: {secret}"
        );
    }
    // Creating and importing are refused (409) when the hub's gate ingest would refuse the
    // gates that would run after them.
    assert!(import["responses"]["409"].is_object());
    let create = &doc["paths"]["/api/v1/topology/gates"]["post"];
    assert!(create["responses"]["409"].is_object());
}
