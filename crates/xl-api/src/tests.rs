//! Router tests without a server (`oneshot`), on an in-memory [`fake::Fake`] backend, and one
//! test against a listening server.

mod dashboard;
mod fake;
mod login;
mod recordings;
mod schemas;
mod scope;
mod topology;
mod trace;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use std::sync::atomic::Ordering::Relaxed;
use tower::ServiceExt;
use xl_core::camera::{
    CameraInfo, CameraNetwork, CameraRegistry, CameraStats, CameraStatus, DecodePolicy, DropReason,
};
use xl_core::gate_status::{GateInfo, GateRegistry};
use xl_core::{CameraId, CommunityId, GateId};

use super::*;

const TOKEN: &str = "s3cret-token";

fn state() -> ApiState {
    let cameras = Arc::new(CameraRegistry::default());
    for (id, status) in [
        ("cam-a", CameraStatus::Online),
        (
            "cam-b",
            CameraStatus::Offline {
                reason: "stream path not found on the camera (404 Not Found)".into(),
            },
        ),
    ] {
        let id = CameraId::new(id).unwrap();
        let stats = Arc::new(CameraStats::new(id.clone(), DecodePolicy::KeyFrames));
        stats.set_status(status);
        stats.record_frame_in(1200, jiff::Timestamp::from_second(1_800_000_000).unwrap());
        stats.record_drop(DropReason::QueueFull);
        cameras.insert(
            CameraInfo {
                id,
                name: "东门".into(),
                community: CommunityId::new("xingfu").unwrap(),
                network: CameraNetwork::Community,
            },
            stats,
        );
    }
    let gates = Arc::new(GateRegistry::default());
    let stats = gates.insert(GateInfo {
        id: GateId::new("east-door").unwrap(),
        community: CommunityId::new("xingfu").unwrap(),
        firmware: "hikvision-isapi".into(),
        camera: Some(CameraId::new("cam-a").unwrap()),
        offline_after_secs: 300,
    });
    stats.record_seen(jiff::Timestamp::from_second(1_800_000_000).unwrap());
    stats.events.fetch_add(3, Relaxed);
    stats.duplicates.fetch_add(1, Relaxed);
    stats.latency.record(std::time::Duration::from_millis(3));
    let mut tamper = xl_core::GateEvent::new(
        xl_core::GateEventKind::Tamper,
        "1/0x406",
        jiff::Timestamp::from_second(1_800_000_000).unwrap(),
        bytes::Bytes::new(),
    );
    tamper.detail = Some("card_reader_tamper".into());
    stats.record_exception(&tamper);
    gates.insert(GateInfo {
        id: GateId::new("west-door").unwrap(),
        community: CommunityId::new("xingfu").unwrap(),
        firmware: "zkteco-adms".into(),
        camera: None,
        offline_after_secs: 60,
    });
    gates
        .unattributed("dahua")
        .dead_letters
        .fetch_add(2, Relaxed);
    ApiState {
        cameras,
        gates,
        token: Arc::new(ApiToken::new(TOKEN.into())),
        ready: Arc::new(AtomicBool::new(true)),
        extra_metrics: vec![Arc::new(Extra)],
        backend: Arc::new(fake::Fake::new(fake::Data::default())),
        settings: ApiSettings::default(),
        login_limiter: Arc::new(LoginLimiter::default()),
        looks: Arc::default(),
    }
}

/// Another stage's figures, as detection publishes them.
struct Extra;

impl xl_core::metrics::MetricsSource for Extra {
    fn render_prometheus(&self, out: &mut String) {
        out.push_str("# TYPE xueliang_test_extra_total counter\nxueliang_test_extra_total 7\n");
    }
}

async fn get(uri: &str, token: Option<&str>) -> (StatusCode, String) {
    send(&state(), Request::get(uri), token, Body::empty()).await
}

async fn send(
    state: &ApiState,
    mut req: axum::http::request::Builder,
    token: Option<&str>,
    body: Body,
) -> (StatusCode, String) {
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    req = req.header(header::CONTENT_TYPE, "application/json");
    let resp = router(state.clone())
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn health_checks_need_no_token() {
    assert_eq!(get("/healthz", None).await.0, StatusCode::OK);
    assert_eq!(get("/readyz", None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn everything_else_needs_the_token() {
    for uri in [
        "/metrics",
        "/api/v1/cameras",
        "/api/v1/cameras/cam-a",
        "/api/v1/gates",
        "/api/v1/gates/east-door",
    ] {
        let (status, body) = get(uri, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(body.contains("\"code\":\"unauthenticated\""), "{body}");
        assert_eq!(
            get(uri, Some("wrong")).await.0,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
        assert_eq!(get(uri, Some(TOKEN)).await.0, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn camera_list_shows_status_reason_and_stream() {
    let (status, body) = get("/api/v1/cameras", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], "cam-a");
    assert_eq!(list[0]["status"], "online");
    assert_eq!(list[0]["community"], "xingfu");
    assert_eq!(list[0]["decode_policy"], "key-frames");
    assert_eq!(list[0]["last_frame_at"], "2027-01-15T08:00:00Z");
    assert_eq!(list[1]["status"], "offline");
    assert!(list[1]["status_reason"].as_str().unwrap().contains("404"));
    for key in ["fps", "codec", "width", "height", "name"] {
        assert!(list[0].get(key).is_some(), "missing {key}");
    }
}

#[tokio::test]
async fn unknown_and_malformed_camera_ids_get_clear_errors() {
    let (status, body) = get("/api/v1/cameras/nope", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("no camera nope"), "{body}");
    let (status, body) = get("/api/v1/cameras/bad%20id", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("invalid_input"), "{body}");
}

#[tokio::test]
async fn metrics_carry_per_camera_counters_and_drop_reasons() {
    let (status, body) = get("/metrics", Some(TOKEN)).await;
    assert!(
        body.contains("xueliang_test_extra_total 7\n"),
        "other stages' figures are rendered"
    );
    assert_eq!(status, StatusCode::OK);
    for line in [
        "xueliang_camera_frames_in_total{camera=\"cam-a\"} 1",
        "xueliang_camera_bytes_in_total{camera=\"cam-a\"} 1200",
        "xueliang_camera_frames_dropped_total{camera=\"cam-b\",reason=\"queue_full\"} 1",
        "xueliang_camera_frames_dropped_total{camera=\"cam-b\",reason=\"decode_error\"} 0",
        "xueliang_camera_status{camera=\"cam-b\",status=\"offline\"} 1",
        "xueliang_cameras{status=\"online\"} 1",
        "# TYPE xueliang_camera_reconnects_total counter",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in\n{body}"
        );
    }
}

#[tokio::test]
async fn decode_policy_switches_through_the_api() {
    let state = state();
    let put = |_: &str| Request::put("/api/v1/cameras/cam-a/decode-policy");
    let (status, _) = send(
        &state,
        put(""),
        None,
        Body::from(r#"{"decode_policy":"all"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) = send(
        &state,
        put(""),
        Some(TOKEN),
        Body::from(r#"{"decode_policy":"all"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"decode_policy\":\"all\""), "{body}");
    let (_, stats) = state.cameras.get(&CameraId::new("cam-a").unwrap()).unwrap();
    assert_eq!(stats.decode_policy(), DecodePolicy::All);

    let (status, body) = send(
        &state,
        put(""),
        Some(TOKEN),
        Body::from(r#"{"decode_policy":"keyframes"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("key-frames"),
        "the error names the valid values: {body}"
    );
    let (status, body) = send(
        &state,
        put(""),
        Some(TOKEN),
        Body::from(r#"{"policy":"all"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("decode_policy"), "{body}");
    assert_eq!(
        stats.decode_policy(),
        DecodePolicy::All,
        "bad requests change nothing"
    );
}

#[tokio::test]
async fn gate_list_shows_health_exception_and_counters() {
    let (status, body) = get("/api/v1/gates", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], "east-door");
    assert_eq!(list[0]["status"], "online");
    assert_eq!(list[0]["camera"], "cam-a");
    assert_eq!(list[0]["events"], 3);
    assert_eq!(list[0]["duplicates"], 1);
    assert_eq!(list[0]["exception"]["kind"], "tamper");
    assert_eq!(list[0]["exception"]["detail"], "card_reader_tamper");
    assert_eq!(list[1]["status"], "unknown");
    assert!(list[1]["last_seen"].is_null());
    let (status, body) = get("/api/v1/gates/west-door", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"firmware\":\"zkteco-adms\""), "{body}");
    let (status, body) = get("/api/v1/gates/nope", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("no gate nope"), "{body}");
}

#[tokio::test]
async fn metrics_carry_per_gate_and_firmware_counters() {
    let (_, body) = get("/metrics", Some(TOKEN)).await;
    for line in [
        "xueliang_gate_events_total{gate=\"east-door\",firmware=\"hikvision-isapi\"} 3",
        "xueliang_gate_duplicates_total{gate=\"east-door\",firmware=\"hikvision-isapi\"} 1",
        "xueliang_gate_dead_letters_total{gate=\"\",firmware=\"dahua\"} 2",
        "xueliang_gate_event_latency_seconds_bucket{gate=\"east-door\",firmware=\"hikvision-isapi\",le=\"0.005\"} 1",
        "xueliang_gate_event_latency_seconds_count{gate=\"east-door\",firmware=\"hikvision-isapi\"} 1",
        "xueliang_gate_online{gate=\"west-door\",firmware=\"zkteco-adms\"} 0",
        "xueliang_gate_last_seen_seconds{gate=\"east-door\",firmware=\"hikvision-isapi\"} 1800000000",
        "# TYPE xueliang_gate_event_latency_seconds histogram",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in\n{body}"
        );
    }
}

#[tokio::test]
async fn device_routes_are_open_and_the_rest_stays_protected() {
    let devices = Router::new().route("/iclock/getrequest", axum::routing::get(|| async { "OK" }));
    let app = router_with_devices(state(), devices);
    let call = |uri: &'static str| {
        let app = app.clone();
        async move {
            app.oneshot(Request::get(uri).body(Body::empty()).unwrap())
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(call("/iclock/getrequest").await, StatusCode::OK);
    assert_eq!(call("/api/v1/gates").await, StatusCode::UNAUTHORIZED);
    assert_eq!(call("/metrics").await, StatusCode::UNAUTHORIZED);
}
