//! The dashboard API: login, sessions, CSRF, roles, scope, alerts, SSE, OpenAPI, headers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use futures::StreamExt;
use jiff::Timestamp;
use serde_json::{Value, json};
use tower::ServiceExt;
use xl_core::alert::AlertAction;
use xl_core::camera::{
    CameraInfo, CameraNetwork, CameraRegistry, CameraStats, CameraStatus, DecodePolicy,
};
use xl_core::gate_status::{GateInfo, GateRegistry};
use xl_core::{
    Alert, AlertId, AlertKind, AlertState, CameraId, CommunityId, GateId, Role, Severity,
};

use super::fake::{Data, Fake};
use crate::backend::*;
use crate::{ApiSettings, ApiState, ApiToken, LoginLimiter, hash_password, router};

const TOKEN: &str = "s3cret-token";
const PASSWORD: &str = "correct horse battery";
/// Community A and community B.
const A: &str = "xingfu";
const B: &str = "heping";

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn cid(s: &str) -> CommunityId {
    CommunityId::new(s).unwrap()
}

fn password_hash() -> String {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| hash_password(PASSWORD).unwrap()).clone()
}

fn user(name: &str, role: Role, communities: &[&str], disabled: bool) -> UserRecord {
    UserRecord {
        user: User {
            username: name.into(),
            role,
            communities: communities.iter().map(|c| cid(c)).collect(),
            stations: vec![],
        },
        password_hash: password_hash(),
        disabled,
        created_at: t(0),
    }
}

pub(crate) fn alert(
    id: &str,
    community: &str,
    roles: &[Role],
    state: AlertState,
    at: i64,
) -> Alert {
    Alert {
        id: AlertId(id.into()),
        kind: if community == A {
            AlertKind::GateForcedOpen
        } else {
            AlertKind::PersonIntrusion
        },
        severity: Severity::Major,
        state,
        community: cid(community),
        camera: None,
        gate: None,
        zone: None,
        title: format!("alert {id}"),
        raised_at: t(at),
        last_seen_at: t(at),
        count: 1,
        ack_deadline: None,
        acknowledged_at: None,
        escalated_at: None,
        resolved_at: None,
        roles: roles.to_vec(),
        source_event: None,
        snapshot: None,
    }
}

fn view(a: Alert) -> AlertView {
    AlertView {
        alert: a,
        history: vec![],
        snapshots: vec![],
    }
}

/// A JPEG-looking file in a fresh directory.
fn jpeg_file(name: &str) -> PathBuf {
    // A directory per call: tests run in parallel and must not rewrite each other's files.
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("xl-api-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.jpg"));
    std::fs::write(&path, [0xFF, 0xD8, 0xFF, 0xE0, b'x', 0xFF, 0xD9]).unwrap();
    path
}

fn snap(id: &str, camera: &str, alert: Option<&str>, at: i64) -> (SnapshotInfo, PathBuf) {
    (
        SnapshotInfo {
            id: id.into(),
            camera: Some(CameraId::new(camera).unwrap()),
            alert: alert.map(|a| AlertId(a.into())),
            taken_at: t(at),
            width: 640,
            height: 360,
            boxes: json!([]),
        },
        jpeg_file(id),
    )
}

struct World {
    state: ApiState,
    fake: Arc<Fake>,
}

impl World {
    /// Changes a stored user, as an admin or another hub process would.
    fn edit_user(&self, name: &str, edit: impl FnOnce(&mut UserRecord)) {
        let mut data = self.fake.lock();
        edit(
            data.users
                .iter_mut()
                .find(|u| u.user.username == name)
                .unwrap(),
        );
    }
}

/// Community A (`xingfu`): cameras cam-a (community network), cam-a-sky (Skynet), gate
/// east-door, alerts al-a1 (routed to property), al-a2 (not routed to property).
/// Community B (`heping`): camera cam-b, gate south-gate, alert al-b1 (routed to property).
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
        cameras.insert(
            CameraInfo {
                id,
                name: "门".into(),
                community: cid(community),
                network,
            },
            stats,
        );
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
    let duty_prop = [Role::Duty, Role::Property];
    let data = Data {
        users: vec![
            user("admin1", Role::Admin, &[], false),
            user("duty1", Role::Duty, &[], false),
            user("police1", Role::Police, &[], false),
            user("prop-a", Role::Property, &[A], false),
            user("prop-b", Role::Property, &[B], false),
            user("gone", Role::Duty, &[], true),
        ],
        alerts: vec![
            view(alert("al-a1", A, &duty_prop, AlertState::Open, 10)),
            view(alert(
                "al-a2",
                A,
                &[Role::Duty, Role::Police],
                AlertState::Open,
                20,
            )),
            view(alert("al-b1", B, &duty_prop, AlertState::Acknowledged, 30)),
        ],
        snapshots: vec![
            snap("snap-a", "cam-a", Some("al-a1"), 10),
            snap("snap-a2", "cam-a", Some("al-a2"), 20),
            snap("snap-b", "cam-b", Some("al-b1"), 30),
            snap("snap-b-live", "cam-b", None, 40),
        ],
        gate_events: vec![
            json!({"id": "ge-a", "gate": "east-door", "community": A, "received_at": t(5).to_string(), "event": {"kind": "granted"}}),
            json!({"id": "ge-b", "gate": "south-gate", "community": B, "received_at": t(6).to_string(), "event": {"kind": "granted"}}),
        ],
        vision_events: vec![
            json!({"kind": "person", "camera": "cam-a", "community": A, "at": t(7).to_string()}),
            json!({"kind": "person", "camera": "cam-a-sky", "community": A, "at": t(7).to_string()}),
            json!({"kind": "person", "camera": "cam-b", "community": B, "at": t(8).to_string()}),
        ],
        times: [A, B]
            .into_iter()
            .map(|c| ResponseTimes {
                community: cid(c),
                kind: AlertKind::GateForcedOpen,
                raised: 1,
                to_acknowledge: DurationFigures {
                    count: 1,
                    mean_secs: Some(5.0),
                    p50_secs: Some(5.0),
                    p90_secs: Some(5.0),
                },
                to_resolve: DurationFigures {
                    count: 0,
                    mean_secs: None,
                    p50_secs: None,
                    p90_secs: None,
                },
            })
            .collect(),
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

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// How a request authenticates.
#[derive(Clone)]
enum Cred {
    None,
    Bearer(String),
    /// Session cookie, CSRF cookie, and the header to send (if any).
    Cookie(String, String, Option<String>),
}

async fn call(
    state: &ApiState,
    method: Method,
    uri: &str,
    cred: &Cred,
    body: Option<Value>,
) -> Resp {
    call_from(state, method, uri, cred, body, "10.0.0.1:5000").await
}

async fn call_from(
    state: &ApiState,
    method: Method,
    uri: &str,
    cred: &Cred,
    body: Option<Value>,
    peer: &str,
) -> Resp {
    let mut req = Request::builder().method(method).uri(uri);
    match cred {
        Cred::None => {}
        Cred::Bearer(t) => req = req.header(header::AUTHORIZATION, format!("Bearer {t}")),
        Cred::Cookie(s, c, h) => {
            req = req.header(header::COOKIE, format!("xl_session={s}; xl_csrf={c}"));
            if let Some(h) = h {
                req = req.header("X-CSRF-Token", h);
            }
        }
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
        .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn get(state: &ApiState, uri: &str, cred: &Cred) -> Resp {
    call(state, Method::GET, uri, cred, None).await
}

struct Login {
    token: String,
    csrf: String,
    resp: Resp,
}

fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{name}=")))
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

async fn login(state: &ApiState, username: &str) -> Login {
    let resp = call(
        state,
        Method::POST,
        "/api/v1/auth/login",
        &Cred::None,
        Some(json!({"username": username, "password": PASSWORD})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let token = resp.json()["token"].as_str().unwrap().to_owned();
    let csrf = cookie_value(&set_cookie(&resp.headers, "xl_csrf").unwrap());
    Login { token, csrf, resp }
}

async fn bearer(state: &ApiState, username: &str) -> Cred {
    Cred::Bearer(login(state, username).await.token)
}

fn ids(v: &Value, key: &str) -> Vec<String> {
    let mut ids: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x[key].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn login_me_logout() {
    let w = world();
    let l = login(&w.state, "duty1").await;
    let body = l.resp.json();
    assert_eq!(body["user"]["username"], "duty1");
    assert_eq!(body["user"]["role"], "duty");
    assert!(body["expires_at"].as_str().unwrap() > Timestamp::now().to_string().as_str());
    assert_eq!(l.token.len(), 43, "32 bytes, base64url");
    assert!(!l.resp.body.contains("password"), "{}", l.resp.body);
    let session = set_cookie(&l.resp.headers, "xl_session").unwrap();
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Strict")
            && session.contains("Path=/"),
        "{session}"
    );
    let csrf = set_cookie(&l.resp.headers, "xl_csrf").unwrap();
    assert!(
        !csrf.contains("HttpOnly") && csrf.contains("SameSite=Strict"),
        "{csrf}"
    );
    assert_eq!(cookie_value(&session), l.token);
    // The store keeps only the token's hash.
    let stored = w.fake.lock().sessions[0].token_hash.clone();
    assert_eq!(stored, crate::auth::token_hash(&l.token));
    assert_ne!(stored, l.token);

    let cred = Cred::Bearer(l.token.clone());
    let me = get(&w.state, "/api/v1/auth/me", &cred).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["user"]["username"], "duty1");

    let out = call(&w.state, Method::POST, "/api/v1/auth/logout", &cred, None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(
        set_cookie(&out.headers, "xl_session")
            .unwrap()
            .contains("Max-Age=0")
    );
    assert!(w.fake.lock().sessions.is_empty());
    assert_eq!(
        get(&w.state, "/api/v1/auth/me", &cred).await.status,
        StatusCode::UNAUTHORIZED
    );
    let audit = w.fake.audit_actions();
    assert!(
        audit.contains(&("duty1".into(), "login".into())),
        "{audit:?}"
    );
    assert!(
        audit.contains(&("duty1".into(), "logout".into())),
        "{audit:?}"
    );
}

#[tokio::test]
async fn wrong_password_unknown_and_disabled_users_get_401_and_are_audited() {
    let w = world();
    for (name, password, actor) in [
        ("duty1", "wrong password!", "duty1"),
        ("nobody", PASSWORD, "anonymous"),
        ("gone", PASSWORD, "gone"),
    ] {
        let r = call(
            &w.state,
            Method::POST,
            "/api/v1/auth/login",
            &Cred::None,
            Some(json!({"username": name, "password": password})),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name}");
        assert!(
            r.body.contains("\"code\":\"unauthenticated\""),
            "{}",
            r.body
        );
        assert!(r.headers.get(header::SET_COOKIE).is_none());
        let last = w.fake.lock().audit.last().cloned().unwrap();
        assert_eq!(
            (last.actor.as_str(), last.action.as_str()),
            (actor, "login_failed")
        );
        assert!(
            !last.detail.to_string().contains(password),
            "no password in the audit log"
        );
    }
    assert!(w.fake.lock().sessions.is_empty());
    let bad = call(
        &w.state,
        Method::POST,
        "/api/v1/auth/login",
        &Cred::None,
        Some(json!({"user": "x"})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

async fn try_login(state: &ApiState, name: &str, password: &str, peer: &str) -> StatusCode {
    call_from(
        state,
        Method::POST,
        "/api/v1/auth/login",
        &Cred::None,
        Some(json!({"username": name, "password": password})),
        peer,
    )
    .await
    .status
}

/// A cross-site HTML form can post `text/plain` (no CORS preflight): such a login is refused,
/// so another site cannot log a duty browser into an account of its choosing.
#[tokio::test]
async fn a_login_must_be_json() {
    let w = world();
    let body = json!({"username": "duty1", "password": PASSWORD}).to_string();
    let mut req = Request::post("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(body))
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo("10.9.0.1:1".parse::<SocketAddr>().unwrap()));
    let resp = router(w.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_username_and_address() {
    let w = world();
    // One username from one address: 5 failures block it there, even the right password...
    for _ in 0..5 {
        assert_eq!(
            try_login(&w.state, "duty1", "wrong password!", "10.1.0.1:1000").await,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = call_from(
        &w.state,
        Method::POST,
        "/api/v1/auth/login",
        &Cred::None,
        Some(json!({"username": "duty1", "password": PASSWORD})),
        "10.1.0.1:1001",
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password, for the window"
    );
    assert!(r.body.contains("\"code\":\"rate_limited\""), "{}", r.body);
    assert!(r.headers.get(header::RETRY_AFTER).is_some());
    // ...but not from the duty desk's own address: someone else's wrong passwords do not
    // lock a duty officer out.
    assert_eq!(
        try_login(&w.state, "duty1", PASSWORD, "10.1.0.2:1000").await,
        StatusCode::OK
    );

    // One address, whatever the usernames: 20 failures.
    for i in 0..20 {
        assert_eq!(
            try_login(&w.state, &format!("u{i}"), "wrong password!", "10.2.0.1:1").await,
            StatusCode::UNAUTHORIZED,
            "try {i}"
        );
    }
    assert_eq!(
        try_login(&w.state, "admin1", PASSWORD, "10.2.0.1:2").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        try_login(&w.state, "admin1", PASSWORD, "10.2.0.2:2").await,
        StatusCode::OK
    );

    // One username, whatever the addresses (guessing spread over many): 50 failures.
    for i in 0..50 {
        let peer = format!("10.3.0.{i}:1000");
        assert_eq!(
            try_login(&w.state, "police1", "wrong password!", &peer).await,
            StatusCode::UNAUTHORIZED,
            "try {i}"
        );
    }
    assert_eq!(
        try_login(&w.state, "police1", PASSWORD, "10.3.1.1:1000").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn cookie_sessions_need_the_csrf_header_on_writes() {
    let w = world();
    let l = login(&w.state, "duty1").await;
    let uri = "/api/v1/alerts/al-a1/note";
    let note = || Some(json!({"note": "on my way"}));
    let no_header = Cred::Cookie(l.token.clone(), l.csrf.clone(), None);
    assert_eq!(
        get(&w.state, "/api/v1/alerts", &no_header).await.status,
        StatusCode::OK,
        "reads need no header"
    );
    let r = call(&w.state, Method::POST, uri, &no_header, note()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let wrong = Cred::Cookie(l.token.clone(), l.csrf.clone(), Some("nope".into()));
    assert_eq!(
        call(&w.state, Method::POST, uri, &wrong, note())
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert!(
        w.fake.lock().outbox.is_empty(),
        "refused writes change nothing"
    );
    let right = Cred::Cookie(l.token.clone(), l.csrf.clone(), Some(l.csrf.clone()));
    let r = call(&w.state, Method::POST, uri, &right, note()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = call(
        &w.state,
        Method::POST,
        uri,
        &Cred::Bearer(l.token.clone()),
        note(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "bearer needs no CSRF header: {}",
        r.body
    );
    let forged = Cred::Cookie("forged".into(), "x".into(), Some("x".into()));
    assert_eq!(
        get(&w.state, "/api/v1/alerts", &forged).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn only_admins_manage_users_and_read_the_audit_log_and_metrics() {
    let w = world();
    for name in ["duty1", "police1", "prop-a"] {
        let cred = bearer(&w.state, name).await;
        for uri in ["/api/v1/users", "/api/v1/audit", "/metrics"] {
            let r = get(&w.state, uri, &cred).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{name} {uri}");
        }
        let r = call(
            &w.state,
            Method::POST,
            "/api/v1/users",
            &cred,
            Some(json!({"username": "x", "password": "long enough pw", "role": "admin"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = call(
            &w.state,
            Method::PUT,
            "/api/v1/cameras/cam-a/decode-policy",
            &cred,
            Some(json!({"decode_policy": "all"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    assert!(w.fake.lock().users.iter().all(|u| u.user.username != "x"));
    for cred in [bearer(&w.state, "admin1").await, Cred::Bearer(TOKEN.into())] {
        let r = get(&w.state, "/api/v1/users", &cred).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            !r.body.contains("argon2") && !r.body.contains("password"),
            "{}",
            r.body
        );
        assert_eq!(
            get(&w.state, "/api/v1/audit?limit=5", &cred).await.status,
            StatusCode::OK
        );
        assert_eq!(
            get(&w.state, "/metrics", &cred).await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn admins_add_and_update_users() {
    let w = world();
    let admin = bearer(&w.state, "admin1").await;
    let add = |body: Value| call(&w.state, Method::POST, "/api/v1/users", &admin, Some(body));
    let r = add(
        json!({"username": "prop-c", "password": "short", "role": "property", "communities": [A]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("password"), "{}", r.body);
    let r = add(json!({"username": "prop-c", "password": "long enough pw", "role": "property", "communities": []})).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "property needs a community"
    );
    let r = add(json!({"username": "prop-c", "password": "long enough pw", "role": "property", "communities": [A]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(!r.body.contains("argon2"));
    assert_eq!(
        add(json!({"username": "prop-c", "password": "long enough pw", "role": "duty"}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        try_login(&w.state, "prop-c", "long enough pw", "10.3.0.1:1").await,
        StatusCode::OK
    );

    let patch = |body: Value| {
        call(
            &w.state,
            Method::PATCH,
            "/api/v1/users/prop-c",
            &admin,
            Some(body),
        )
    };
    let r = patch(json!({"disabled": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["disabled"], true);
    assert_eq!(
        try_login(&w.state, "prop-c", "long enough pw", "10.3.0.2:1").await,
        StatusCode::UNAUTHORIZED
    );
    let r = patch(json!({"disabled": false, "password": "another long one"})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        try_login(&w.state, "prop-c", "another long one", "10.3.0.3:1").await,
        StatusCode::OK
    );
    assert_eq!(
        patch(json!({"colour": "red"})).await.status,
        StatusCode::BAD_REQUEST
    );
    let r = call(
        &w.state,
        Method::PATCH,
        "/api/v1/users/nobody",
        &admin,
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let audit = w.fake.lock().audit.clone();
    let user_changes: Vec<_> = audit
        .iter()
        .filter(|e| e.action.starts_with("user."))
        .collect();
    assert_eq!(
        user_changes
            .iter()
            .map(|e| e.action.as_str())
            .collect::<Vec<_>>(),
        ["user.add", "user.update", "user.update"]
    );
    assert!(
        user_changes
            .iter()
            .all(|e| e.actor == "admin1" && e.target.as_deref() == Some("prop-c"))
    );
    assert!(
        !serde_json::to_string(&audit)
            .unwrap()
            .contains("another long one")
    );
}

#[tokio::test]
async fn a_disabled_or_re_passworded_users_sessions_stop_working() {
    let w = world();
    // A new password ends the sessions opened with the old one; other users' stay.
    let police = bearer(&w.state, "police1").await;
    let admin = bearer(&w.state, "admin1").await;
    let r = call(
        &w.state,
        Method::PATCH,
        "/api/v1/users/police1",
        &admin,
        Some(json!({"password": "a brand new one"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        get(&w.state, "/api/v1/auth/me", &police).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&w.state, "/api/v1/auth/me", &admin).await.status,
        StatusCode::OK
    );

    let cred = bearer(&w.state, "duty1").await;
    w.edit_user("duty1", |u| u.disabled = true);
    assert_eq!(
        get(&w.state, "/api/v1/auth/me", &cred).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_property_user_sees_nothing_of_another_community() {
    let w = world();
    let s = &w.state;
    let a = bearer(s, "prop-a").await;

    // Lists hold A's things only (and of A's cameras only the community network).
    assert_eq!(
        ids(&get(s, "/api/v1/cameras", &a).await.json(), "id"),
        ["cam-a"]
    );
    assert_eq!(
        ids(&get(s, "/api/v1/gates", &a).await.json(), "id"),
        ["east-door"]
    );
    assert_eq!(
        ids(&get(s, "/api/v1/alerts", &a).await.json(), "id"),
        ["al-a1"],
        "al-a2 is not routed to property"
    );
    assert_eq!(
        ids(
            &get(s, &format!("/api/v1/alerts?community={B}"), &a)
                .await
                .json(),
            "id"
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&get(s, "/api/v1/events/gates", &a).await.json(), "id"),
        ["ge-a"]
    );
    assert_eq!(
        ids(
            &get(
                s,
                &format!("/api/v1/events/gates?community={B}&gate=south-gate"),
                &a
            )
            .await
            .json(),
            "id"
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&get(s, "/api/v1/events/vision", &a).await.json(), "camera"),
        ["cam-a"]
    );
    assert_eq!(
        ids(
            &get(s, "/api/v1/events/vision?camera=cam-b", &a)
                .await
                .json(),
            "camera"
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(
            &get(s, "/api/v1/figures/response-times", &a).await.json(),
            "community"
        ),
        [A]
    );

    // Details of B's things (and of A's things property may not see) are "not found".
    for uri in [
        "/api/v1/cameras/cam-b",
        "/api/v1/cameras/cam-a-sky",
        "/api/v1/cameras/cam-b/snapshot",
        "/api/v1/gates/south-gate",
        "/api/v1/gates/south-gate/events",
        "/api/v1/alerts/al-b1",
        "/api/v1/alerts/al-a2",
        "/api/v1/snapshots/snap-b",
        "/api/v1/snapshots/snap-b-live",
    ] {
        let r = get(s, uri, &a).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}: {}", r.body);
    }
    for action in ["acknowledge", "escalate", "resolve", "note"] {
        let r = call(
            s,
            Method::POST,
            &format!("/api/v1/alerts/al-b1/{action}"),
            &a,
            Some(json!({"note": "x"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{action}");
    }
    assert!(w.fake.lock().outbox.is_empty(), "nothing acted on");
    for uri in ["/api/v1/users", "/api/v1/audit"] {
        assert_eq!(get(s, uri, &a).await.status, StatusCode::FORBIDDEN, "{uri}");
    }
    let snapshot_views = || {
        w.fake
            .lock()
            .audit
            .iter()
            .filter(|e| e.action == "snapshot.view")
            .count()
    };
    assert_eq!(snapshot_views(), 0);

    // ...while A's own things answer.
    for uri in [
        "/api/v1/cameras/cam-a",
        "/api/v1/gates/east-door",
        "/api/v1/gates/east-door/events",
        "/api/v1/alerts/al-a1",
    ] {
        assert_eq!(get(s, uri, &a).await.status, StatusCode::OK, "{uri}");
    }
    let r = get(s, "/api/v1/snapshots/snap-a", &a).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "image/jpeg");
    assert!(r.body.contains('x'), "the file's bytes");
    assert_eq!(snapshot_views(), 1, "viewing is audited");
    // cam-a's latest snapshot is evidence of al-a2, which is not routed to property.
    assert_eq!(
        get(s, "/api/v1/cameras/cam-a/snapshot", &a).await.status,
        StatusCode::NOT_FOUND
    );
    let duty = bearer(s, "duty1").await;
    assert_eq!(
        get(s, "/api/v1/cameras/cam-a/snapshot", &duty).await.status,
        StatusCode::OK
    );

    // B's own user does see B.
    let b = bearer(s, "prop-b").await;
    assert_eq!(
        get(s, "/api/v1/cameras/cam-b/snapshot", &b).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(s, "/api/v1/snapshots/snap-b-live", &b).await.status,
        StatusCode::OK
    );

    // The stream: A's user gets A's entries only.
    let mut stream = open_stream(s, &a, Some(0)).await;
    w.fake.commit(
        alert("al-b9", B, &[Role::Property], AlertState::Open, 50),
        AlertAction::Raised,
    );
    w.fake.commit(
        alert("al-a9", A, &[Role::Police], AlertState::Open, 51),
        AlertAction::Raised,
    );
    w.fake.commit(
        alert("al-a8", A, &[Role::Property], AlertState::Open, 52),
        AlertAction::Raised,
    );
    let events = stream.alerts(1).await;
    assert_eq!(events[0].0, "3");
    assert_eq!(events[0].1["alert"]["id"], "al-a8");
}

/// Reads an SSE body.
struct SseReader {
    body: futures::stream::BoxStream<'static, Result<bytes::Bytes, axum::Error>>,
    buf: String,
}

impl SseReader {
    /// The next event of `kind`: (id, data).
    async fn next(&mut self, kind: &str) -> (String, Value) {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let mut event = "message";
                let (mut id, mut data) = (String::new(), String::new());
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = if v == kind { kind } else { "other" }
                    }
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.into()
                    }
                    if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v)
                    }
                }
                if event == kind {
                    return (id, serde_json::from_str(&data).unwrap());
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("an SSE event within 10 s")
                .expect("the stream ended")
                .unwrap();
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Reads until the server ends the stream (at most 10 s).
    async fn ended(&mut self) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(chunk) = self.body.next().await {
                chunk.unwrap();
            }
        })
        .await
        .expect("the stream ends within 10 s");
    }

    async fn alerts(&mut self, n: usize) -> Vec<(String, Value)> {
        let mut out = vec![];
        for _ in 0..n {
            out.push(self.next("alert").await);
        }
        out
    }
}

async fn open_stream(state: &ApiState, cred: &Cred, last_event_id: Option<i64>) -> SseReader {
    let mut req = Request::get("/api/v1/alerts/stream");
    if let Cred::Bearer(t) = cred {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    let resp = router(state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    SseReader {
        body: resp.into_body().into_data_stream().boxed(),
        buf: String::new(),
    }
}

/// A console left open must not outlive its session: logout, or the user disabled, ends the
/// stream; a property user's new communities apply to the open stream.
#[tokio::test]
async fn an_open_stream_follows_its_session() {
    let w = world();
    let s = &w.state;
    let cred = bearer(s, "duty1").await;
    let mut stream = open_stream(s, &cred, None).await;
    let out = call(s, Method::POST, "/api/v1/auth/logout", &cred, None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    stream.ended().await;

    let cred = bearer(s, "police1").await;
    let mut stream = open_stream(s, &cred, None).await;
    w.edit_user("police1", |u| u.disabled = true);
    stream.ended().await;

    let a = bearer(s, "prop-a").await;
    let mut stream = open_stream(s, &a, None).await;
    w.edit_user("prop-a", |u| u.user.communities = vec![cid(B)]);
    // Give the stream a few re-checks to pick up the change, then raise one alert in each.
    tokio::time::sleep(Duration::from_millis(200)).await;
    w.fake.commit(
        alert("al-a7", A, &[Role::Property], AlertState::Open, 60),
        AlertAction::Raised,
    );
    w.fake.commit(
        alert("al-b7", B, &[Role::Property], AlertState::Open, 61),
        AlertAction::Raised,
    );
    let (_, data) = stream.next("alert").await;
    assert_eq!(data["alert"]["id"], "al-b7", "{data}");
}

/// A console that kept a position from another database (the hub's store was rebuilt) must
/// not wait for numbers that never come.
#[tokio::test]
async fn a_resume_point_past_the_end_starts_at_the_end() {
    let w = world();
    let cred = bearer(&w.state, "duty1").await;
    let mut stream = open_stream(&w.state, &cred, Some(1000)).await;
    w.fake.commit(
        alert("al-x", A, &[Role::Duty], AlertState::Open, 70),
        AlertAction::Raised,
    );
    let (id, data) = stream.next("alert").await;
    assert_eq!((id.as_str(), &data["alert"]["id"]), ("1", &json!("al-x")));
}

#[tokio::test]
async fn the_stream_resumes_after_last_event_id_with_nothing_missed() {
    let w = world();
    let cred = bearer(&w.state, "duty1").await;
    let raise = |id: &str, at| {
        w.fake.commit(
            alert(id, A, &[Role::Duty], AlertState::Open, at),
            AlertAction::Raised,
        )
    };
    let mut s = open_stream(&w.state, &cred, None).await;
    raise("al-1", 1);
    raise("al-2", 2);
    let got = s.alerts(2).await;
    assert_eq!(
        got.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert_eq!(got[1].1["alert"]["id"], "al-2");
    assert_eq!(got[1].1["change"], "raised");
    drop(s);
    raise("al-3", 3);
    raise("al-4", 4);
    let mut s = open_stream(&w.state, &cred, Some(2)).await;
    let got = s.alerts(2).await;
    assert_eq!(
        got.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["3", "4"]
    );
    assert_eq!(got[0].1["alert"]["id"], "al-3");

    // Without Last-Event-ID the stream starts at the current seq: a new entry comes first.
    let mut fresh = open_stream(&w.state, &cred, None).await;
    raise("al-5", 5);
    assert_eq!(fresh.alerts(1).await[0].0, "5");
    // The query parameter resumes too.
    let resp = router(w.state.clone())
        .oneshot(
            Request::get("/api/v1/alerts/stream?last_event_id=4")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut q = SseReader {
        body: resp.into_body().into_data_stream().boxed(),
        buf: String::new(),
    };
    assert_eq!(q.alerts(1).await[0].0, "5");

    // Camera status changes.
    let (_, stats) = w
        .state
        .cameras
        .get(&CameraId::new("cam-a").unwrap())
        .unwrap();
    stats.set_status(CameraStatus::Offline {
        reason: "gone".into(),
    });
    let (id, data) = fresh.next("camera").await;
    assert_eq!(id, "");
    assert_eq!(data, json!({"camera": "cam-a", "status": "offline"}));

    let req = Request::get("/api/v1/alerts/stream")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header("Last-Event-ID", "abc");
    let resp = router(w.state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn alert_list_filters_and_names_bad_parameters() {
    let w = world();
    let s = &w.state;
    let duty = bearer(s, "duty1").await;
    let list = |q: &'static str| {
        let duty = duty.clone();
        async move { get(s, &format!("/api/v1/alerts{q}"), &duty).await }
    };
    assert_eq!(
        ids(&list("").await.json(), "id"),
        ["al-a1", "al-a2", "al-b1"]
    );
    assert_eq!(
        ids(&list("?state=open").await.json(), "id"),
        ["al-a1", "al-a2"]
    );
    assert_eq!(
        ids(&list("?state=open,acknowledged").await.json(), "id"),
        ["al-a1", "al-a2", "al-b1"]
    );
    assert_eq!(
        ids(&list("?kind=person.intrusion").await.json(), "id"),
        ["al-b1"]
    );
    assert_eq!(
        ids(&list("?community=xingfu").await.json(), "id"),
        ["al-a1", "al-a2"]
    );
    let from_to = format!("?from={}&to={}", t(15), t(30));
    assert_eq!(
        ids(
            &get(s, &format!("/api/v1/alerts{from_to}"), &duty)
                .await
                .json(),
            "id"
        ),
        ["al-a2"]
    );
    let newest = list("?limit=1").await.json();
    assert_eq!(newest[0]["id"], "al-b1", "newest first");
    for (q, name) in [
        ("?state=opened", "state"),
        ("?kind=gate.forced", "kind"),
        ("?community=bad%20id", "community"),
        ("?from=yesterday", "from"),
        ("?to=2027-13-01", "to"),
        ("?limit=0", "limit"),
        ("?limit=100000", "limit"),
        ("?limit=-1", "limit"),
        ("?colour=red", "colour"),
    ] {
        let r = list(q).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("`{name}`")),
            "{q}: {}",
            r.body
        );
    }
    let r = get(
        s,
        &format!("/api/v1/alerts?from={}&to={}", t(30), t(15)),
        &duty,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn acting_on_alerts_is_returned_audited_and_checked() {
    let w = world();
    let s = &w.state;
    let police = bearer(s, "police1").await;
    let act = |action: &str, body: Option<Value>| {
        let uri = format!("/api/v1/alerts/al-a1/{action}");
        let police = police.clone();
        async move { call(s, Method::POST, &uri, &police, body).await }
    };
    let r = act("acknowledge", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["state"], "acknowledged");
    let r = act("acknowledge", Some(json!({"note": "again"}))).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "illegal transition: {}",
        r.body
    );
    assert_eq!(
        act("note", Some(json!({}))).await.status,
        StatusCode::BAD_REQUEST,
        "note needs a note"
    );
    assert_eq!(
        act("note", Some(json!({"note": "  "}))).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        act("resolve", Some(json!({"note": 5}))).await.status,
        StatusCode::BAD_REQUEST
    );
    let r = act("resolve", Some(json!({"note": "false alarm"}))).await;
    assert_eq!(r.json()["state"], "resolved");
    assert_eq!(
        get(s, "/api/v1/alerts/nope", &police).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(s, "/api/v1/alerts/bad%20id", &police).await.status,
        StatusCode::BAD_REQUEST
    );
    let detail = get(s, "/api/v1/alerts/al-a1", &police).await.json();
    assert_eq!(detail["history"].as_array().unwrap().len(), 2);
    assert_eq!(detail["history"][1]["note"], "false alarm");
    assert_eq!(detail["history"][1]["actor"], "police1");
    let audit = w.fake.audit_actions();
    let acts: Vec<_> = audit
        .iter()
        .filter(|(_, a)| a.starts_with("alert."))
        .collect();
    assert_eq!(
        acts,
        [
            &("police1".to_owned(), "alert.acknowledge".to_owned()),
            &("police1".to_owned(), "alert.resolve".to_owned())
        ]
    );

    // A property user may act on the alerts it sees.
    let a = bearer(s, "prop-a").await;
    w.fake.lock().alerts[0].alert.state = AlertState::Open;
    let r = call(
        s,
        Method::POST,
        "/api/v1/alerts/al-a1/acknowledge",
        &a,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

/// Escalating through the API routes the alert to the police desk, as the deadline's
/// escalation does (one state machine, `Alert::apply`, in the hub's backend and the fake).
#[tokio::test]
async fn a_persons_escalation_routes_the_alert_to_the_police_desk() {
    let w = world();
    let s = &w.state;
    let duty = bearer(s, "duty1").await;
    let police = bearer(s, "police1").await;
    let post = |action: &str, cred: &Cred| {
        let uri = format!("/api/v1/alerts/al-a1/{action}");
        let cred = cred.clone();
        async move { call(s, Method::POST, &uri, &cred, None).await }
    };
    let r = post("escalate", &duty).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let a = r.json();
    assert_eq!(a["state"], "escalated");
    assert_eq!(a["roles"], json!(["duty", "property", "police"]));
    assert!(a["escalated_at"].is_string(), "{a}");
    let published = w.fake.lock().outbox.last().cloned().unwrap();
    assert_eq!(published.change, AlertAction::Escalated);
    assert!(published.alert.roles.contains(&Role::Police));

    let r = post("escalate", &duty).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("escalated already"), "{}", r.body);

    // The desk takes it on: still routed to it.
    let r = post("acknowledge", &police).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["state"], "acknowledged");
    assert_eq!(r.json()["roles"], json!(["duty", "property", "police"]));
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let w = world();
    let duty = bearer(&w.state, "duty1").await;
    for (uri, cred, status) in [
        ("/healthz", Cred::None, StatusCode::OK),
        ("/api/v1/cameras", duty.clone(), StatusCode::OK),
        ("/api/v1/cameras", Cred::None, StatusCode::UNAUTHORIZED),
        ("/api/v1/nowhere", duty.clone(), StatusCode::NOT_FOUND),
    ] {
        let r = get(&w.state, uri, &cred).await;
        assert_eq!(r.status, status, "{uri}");
        let h = |n: &str| {
            r.headers
                .get(n)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(h("x-content-type-options"), "nosniff", "{uri}");
        assert_eq!(h("x-frame-options"), "DENY");
        assert_eq!(h("referrer-policy"), "no-referrer");
        assert_eq!(h("cache-control"), "no-store");
        let csp = h("content-security-policy");
        assert!(csp.starts_with("default-src 'self'"), "{csp}");
        assert!(
            csp.contains("img-src 'self' data: blob:")
                && csp.contains("media-src 'self' data: blob:"),
            "{csp}"
        );
    }
}

/// `{name}` path parameters replaced by ids that exist in [`world`].
fn concrete(path: &str) -> String {
    path.replace("/cameras/{id}", "/cameras/cam-a")
        .replace("/gates/{id}", "/gates/east-door")
        .replace("/alerts/{id}", "/alerts/al-a1")
        .replace("/snapshots/{id}", "/snapshots/snap-a")
        .replace("{username}", "duty1")
}

#[tokio::test]
async fn the_openapi_document_covers_every_route() {
    let w = world();
    let doc = get(&w.state, "/api/openapi.json", &Cred::Bearer(TOKEN.into())).await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.json();
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    let documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), p.clone()))
        })
        .collect();
    // What the dashboard needs must be there.
    for (m, p) in [
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/logout"),
        ("GET", "/api/v1/auth/me"),
        ("GET", "/api/v1/cameras"),
        ("GET", "/api/v1/cameras/{id}"),
        ("GET", "/api/v1/cameras/{id}/snapshot"),
        ("PUT", "/api/v1/cameras/{id}/decode-policy"),
        ("GET", "/api/v1/gates"),
        ("GET", "/api/v1/gates/{id}"),
        ("GET", "/api/v1/gates/{id}/events"),
        ("GET", "/api/v1/alerts"),
        ("GET", "/api/v1/alerts/{id}"),
        ("POST", "/api/v1/alerts/{id}/acknowledge"),
        ("POST", "/api/v1/alerts/{id}/escalate"),
        ("POST", "/api/v1/alerts/{id}/resolve"),
        ("POST", "/api/v1/alerts/{id}/note"),
        ("GET", "/api/v1/alerts/stream"),
        ("GET", "/api/v1/snapshots/{id}"),
        ("GET", "/api/v1/events/gates"),
        ("GET", "/api/v1/events/vision"),
        ("GET", "/api/v1/figures/response-times"),
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users"),
        ("PATCH", "/api/v1/users/{username}"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/openapi.json"),
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
    ] {
        assert!(
            documented.contains(&(m.to_owned(), p.to_owned())),
            "{m} {p} is not documented"
        );
    }
    assert_eq!(
        documented.len(),
        crate::routes::table().len(),
        "one operation per route"
    );
    let list = &paths["/api/v1/alerts"]["get"];
    let names: Vec<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["state", "kind", "community", "from", "to", "limit"]);
    assert_eq!(
        paths["/api/v1/alerts/{id}"]["get"]["parameters"][0]["in"],
        "path"
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["securitySchemes"]["cookie"].is_object());
    assert_eq!(paths["/api/v1/auth/login"]["post"]["security"], json!([]));

    // Every documented operation is served: no 404 from routing, no 405.
    for (m, p) in &documented {
        if p == "/api/v1/alerts/stream" || p == "/api/v1/auth/logout" {
            continue; // endless / ends the session; both exercised elsewhere
        }
        let method: Method = m.parse().unwrap();
        let body = (method != Method::GET).then(|| json!({"note": "x", "disabled": false, "decode_policy": "all", "username": "admin1", "password": PASSWORD}));
        let r = call(
            &w.state,
            method,
            &concrete(p),
            &Cred::Bearer(TOKEN.into()),
            body,
        )
        .await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m} {p}");
        // A handler's "not found" (a topology entry this world lacks, a camera without a
        // picture, an alert without a clip, a segment this node has not, a district node of
        // a single hub) is the API's JSON error; routing's is not.
        let handled = r.body.contains("\"code\":\"not_found\"")
            && (p.starts_with("/api/v1/topology/")
                || p.starts_with("/api/v1/recordings/segments/")
                || p.starts_with("/api/v1/cluster/nodes/")
                || p.ends_with("/thumbnail")
                || p.ends_with("/clip.mp4"));
        assert!(
            r.status != StatusCode::NOT_FOUND || handled,
            "{m} {p}: {}",
            r.body
        );
    }
    // ...and the check can fail: an undocumented method is refused.
    let r = call(
        &w.state,
        Method::DELETE,
        "/api/v1/alerts",
        &Cred::Bearer(TOKEN.into()),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_browser_session_over_a_real_server() {
    let w = world();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(w.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "duty1", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let csrf = cookies
        .iter()
        .find_map(|c| c.strip_prefix("xl_csrf="))
        .unwrap()
        .to_owned();
    let cookie_header = cookies.join("; ");
    let resp = client
        .get(format!("{base}/api/v1/alerts?state=open"))
        .header("cookie", &cookie_header)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    let alerts: Value = resp.json().await.unwrap();
    assert_eq!(alerts.as_array().unwrap().len(), 2);
    let ack = |with_csrf: bool| {
        let mut req = client
            .post(format!("{base}/api/v1/alerts/al-a1/acknowledge"))
            .header("cookie", &cookie_header);
        if with_csrf {
            req = req.header("x-csrf-token", &csrf);
        }
        req.send()
    };
    assert_eq!(ack(false).await.unwrap().status(), 403);
    let resp = ack(true).await.unwrap();
    assert_eq!(resp.status(), 200);
    let alert: Value = resp.json().await.unwrap();
    assert_eq!(alert["state"], "acknowledged");
    let login = w
        .fake
        .lock()
        .audit
        .iter()
        .find(|e| e.action == "login")
        .cloned()
        .unwrap();
    assert_eq!(
        login.peer.as_deref(),
        Some("127.0.0.1"),
        "the audit log has the client's address"
    );
    server.abort();
}
