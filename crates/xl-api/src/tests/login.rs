//! The login under attack: concurrent bursts, long names, and clients behind a reverse proxy.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use jiff::Timestamp;
use serde_json::json;
use tower::ServiceExt;
use xl_core::Role;
use xl_core::camera::CameraRegistry;
use xl_core::gate_status::GateRegistry;

use super::fake::{Data, Fake};
use crate::auth::limit_key;
use crate::backend::{User, UserRecord};
use crate::{ApiSettings, ApiState, ApiToken, LoginLimiter, TrustedProxies, hash_password};

const PASSWORD: &str = "correct horse battery";
const PROXY: &str = "10.9.9.9";

fn password_hash() -> String {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| hash_password(PASSWORD).unwrap()).clone()
}

fn user(name: &str, role: Role) -> UserRecord {
    UserRecord {
        user: User {
            username: name.into(),
            role,
            communities: vec![],
            stations: vec![],
        },
        password_hash: password_hash(),
        disabled: false,
        created_at: Timestamp::from_second(1_800_000_000).unwrap(),
    }
}

fn state_with(limiter: LoginLimiter, trusted: &[&str]) -> (ApiState, Arc<Fake>) {
    let fake = Arc::new(Fake::new(Data {
        users: vec![user("admin1", Role::Admin), user("duty1", Role::Duty)],
        ..Data::default()
    }));
    let state = ApiState {
        cameras: Arc::new(CameraRegistry::default()),
        gates: Arc::new(GateRegistry::default()),
        token: Arc::new(ApiToken::new("s3cret-token".into())),
        ready: Arc::new(AtomicBool::new(true)),
        extra_metrics: vec![],
        backend: fake.clone(),
        settings: ApiSettings {
            trusted_proxies: TrustedProxies::parse(trusted).unwrap(),
            ..ApiSettings::default()
        },
        login_limiter: Arc::new(limiter),
        looks: Arc::default(),
    };
    (state, fake)
}

fn state() -> ApiState {
    state_with(LoginLimiter::default(), &[]).0
}

/// Logs in from socket address `peer`, with `X-Forwarded-For: forwarded` when given.
async fn login_via(
    state: &ApiState,
    name: &str,
    password: &str,
    peer: &str,
    forwarded: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap) {
    let body = json!({"username": name, "password": password}).to_string();
    let mut req =
        Request::post("/api/v1/auth/login").header(header::CONTENT_TYPE, "application/json");
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    let mut req = req.body(Body::from(body)).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    let resp = crate::router(state.clone()).oneshot(req).await.unwrap();
    (resp.status(), resp.headers().clone())
}

async fn login(state: &ApiState, name: &str, password: &str, peer: &str) -> StatusCode {
    login_via(state, name, password, peer, None).await.0
}

/// Finding 1: the limit was checked before verifying and the failure recorded after, so 250
/// concurrent wrong passwords got 190 argon2 runs (19 MiB each) through a limit of 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_wrong_logins_verifies_at_most_the_limit() {
    let state = state();
    let limit = state.settings.login_max_failures;
    let tries = (0..200).map(|_| {
        let state = state.clone();
        tokio::spawn(
            async move { login(&state, "duty1", "wrong password!", "10.1.0.1:1000").await },
        )
    });
    let mut statuses = Vec::new();
    for t in tries.collect::<Vec<_>>() {
        statuses.push(t.await.unwrap());
    }
    let verifications = state.login_limiter.verifications();
    let unauthorized = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert!(
        verifications <= u64::from(limit),
        "{verifications} argon2 verifications for a limit of {limit}"
    );
    assert!(unauthorized <= limit as usize, "{unauthorized} answers 401");
    assert!(
        statuses.iter().all(|s| matches!(
            *s,
            StatusCode::UNAUTHORIZED
                | StatusCode::TOO_MANY_REQUESTS
                | StatusCode::SERVICE_UNAVAILABLE
        )),
        "{statuses:?}"
    );
    // Each 401 was counted; the 503s (verifications already at their bound) were not, so on
    // a machine with few cores the burst may stop short of the limit. At the limit, the burst
    // locked that address out of that account; short of it, the right password still works.
    let after = if unauthorized == limit as usize {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::OK
    };
    assert_eq!(
        login(&state, "duty1", PASSWORD, "10.1.0.1:1001").await,
        after,
        "{unauthorized} answers 401"
    );
    // Never another address.
    assert_eq!(
        login(&state, "duty1", PASSWORD, "10.1.0.2:1000").await,
        StatusCode::OK
    );
}

/// Verifications at once are bounded: one beyond the bound is answered 503 with Retry-After
/// instead of queueing, and is not counted as a failure.
#[tokio::test]
async fn a_login_beyond_the_verification_bound_is_answered_503_and_not_counted() {
    let (state, _) = state_with(LoginLimiter::new(10_000, 1), &[]);
    let held = state.login_limiter.try_verify().expect("the only permit");
    for _ in 0..10 {
        let (status, headers) = login_via(&state, "duty1", PASSWORD, "10.1.0.1:1000", None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.get(header::RETRY_AFTER).is_some());
    }
    assert_eq!(state.login_limiter.verifications(), 0);
    drop(held);
    assert_eq!(
        login(&state, "duty1", PASSWORD, "10.1.0.1:1000").await,
        StatusCode::OK,
        "ten refusals are not ten failures"
    );
}

/// Finding 6: keys were the raw username (up to the 2 MB body limit): 20 logins with 2 MB
/// names kept 99 MiB. Names that cannot exist now count only against the address.
#[tokio::test]
async fn logins_with_huge_usernames_do_not_grow_the_limiter_and_count_per_address() {
    let state = state();
    let huge = "a".repeat(2_000_000);
    let per_address = state.settings.login_max_failures * 4;
    for i in 0..per_address {
        let name = format!("{huge}{i}");
        assert_eq!(
            login(&state, &name, "wrong password!", "10.4.0.1:1").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(state.login_limiter.len(), 1, "one key: the address");
    assert_eq!(state.login_limiter.verifications(), 0, "no argon2 for them");
    // They counted against the address...
    assert_eq!(
        login(&state, "admin1", PASSWORD, "10.4.0.1:2").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...and nowhere else.
    assert_eq!(
        login(&state, "admin1", PASSWORD, "10.4.0.2:1").await,
        StatusCode::OK
    );
    // Names the users API refuses (a space, a reserved name) are not per-name keys either.
    for name in ["no such user", "api-token"] {
        assert_eq!(
            login(&state, name, "wrong password!", "10.4.0.3:1").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(state.login_limiter.len(), 2);
}

#[test]
fn the_limiter_stays_bounded() {
    let l = LoginLimiter::with_capacity(3);
    let window = Duration::from_secs(300);
    for i in 0..10 {
        let key = limit_key("ip", &[&i.to_string()]);
        let _ = l.reserve(&[(key, 1)], window).unwrap();
    }
    assert_eq!(l.len(), 3);
    assert!(l.reserve(&[(limit_key("ip", &["9"]), 1)], window).is_err());
}

/// Finding 5: behind the reverse proxy every user shared its address, so a few wrong logins
/// for made-up names locked everyone out.
#[tokio::test]
async fn through_a_trusted_proxy_clients_are_told_apart() {
    let (state, fake) = state_with(LoginLimiter::default(), &[PROXY]);
    let proxy = format!("{PROXY}:40000");
    // Made-up names from one client lock that client out...
    for i in 0..20 {
        let (status, _) = login_via(
            &state,
            &format!("nobody{i}"),
            "wrong password!",
            &proxy,
            Some("192.168.1.20"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "try {i}");
    }
    let (status, _) = login_via(&state, "admin1", PASSWORD, &proxy, Some("192.168.1.20")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // ...and only that client: the others come through the same proxy.
    let (status, _) = login_via(
        &state,
        "admin1",
        PASSWORD,
        &proxy,
        Some("6.6.6.6, 192.168.1.21"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Wrong passwords for a real user from one client do not lock that user out elsewhere.
    for _ in 0..5 {
        let (status, _) = login_via(
            &state,
            "duty1",
            "wrong password!",
            &proxy,
            Some("192.168.1.20"),
        )
        .await;
        assert!(matches!(
            status,
            StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS
        ));
    }
    let (status, _) = login_via(&state, "duty1", PASSWORD, &proxy, Some("192.168.1.22")).await;
    assert_eq!(status, StatusCode::OK);
    // The audit log names the client, not the proxy.
    let peers: Vec<_> = fake
        .lock()
        .audit
        .iter()
        .filter(|e| e.action == "login")
        .map(|e| e.peer.clone().unwrap_or_default())
        .collect();
    assert_eq!(peers, ["192.168.1.21", "192.168.1.22"]);
}

/// A client that is not a trusted proxy cannot pick its address with the header.
#[tokio::test]
async fn a_forged_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let (state, fake) = state_with(LoginLimiter::default(), &[PROXY]);
    for i in 0..5 {
        let (status, _) = login_via(
            &state,
            "duty1",
            "wrong password!",
            "10.1.1.1:1000",
            Some(&format!("1.1.1.{i}")),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = login_via(&state, "duty1", PASSWORD, "10.1.1.1:1000", Some("1.1.1.99")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let peers: Vec<_> = fake
        .lock()
        .audit
        .iter()
        .map(|e| e.peer.clone().unwrap_or_default())
        .collect();
    assert!(peers.iter().all(|p| p == "10.1.1.1"), "{peers:?}");
}
