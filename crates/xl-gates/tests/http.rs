//! HTTP push receivers: Hikvision "HTTP listening" and ZKTeco ADMS, through the router the hub
//! mounts (oneshot, with the source address set), and once over a real socket.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use common::*;
use tower::ServiceExt;
use xl_core::GateId;

const SECRET: &str = "0123456789abcdef-secret";

fn config() -> xl_gates::GatesConfig {
    parse_config(&format!(
        r#"
        [[gates]]
        id = "lobby"
        community = "xingfu"
        firmware = "hikvision-isapi"
        camera = "lobby-cam"
        push_secret = "{SECRET}"
        [[gates]]
        id = "garage"
        community = "xingfu"
        firmware = "hikvision-isapi"
        push_allow_from = ["10.1.2.0/24"]
        [[gates]]
        id = "office"
        community = "xingfu"
        firmware = "zkteco-adms"
        device = "CJDE193560303"
        timezone = "Asia/Shanghai"
        push_allow_from = ["10.1.2.0/24"]
        [[gates]]
        id = "open"
        community = "xingfu"
        firmware = "hikvision-isapi"
        "#
    ))
}

const FACE_PASS: &[u8] = include_bytes!(
    "../../../firmware-adapters/hikvision-isapi/testdata/hikvision_ds-k1t_face-pass_http-push.json"
);
const ATTLOG: &[u8] = include_bytes!(
    "../../../firmware-adapters/zkteco-adms/testdata/zkteco_adms_attlog_one-record.txt"
);
const JPEG: &[u8] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00face-bytes\xff\xd9";

fn multipart(json: &[u8], picture: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(
        b"--MIME_boundary\r\nContent-Disposition: form-data; name=\"AccessControllerEvent\"\r\n\
Content-Type: application/json\r\n",
    );
    b.extend_from_slice(format!("Content-Length: {}\r\n\r\n", json.len()).as_bytes());
    b.extend_from_slice(json);
    b.extend_from_slice(
        b"\r\n--MIME_boundary\r\nContent-Disposition: form-data; name=\"Picture\"; filename=\"Picture.jpg\"\r\n\
Content-Type: image/jpeg\r\n",
    );
    b.extend_from_slice(format!("Content-Length: {}\r\n\r\n", picture.len()).as_bytes());
    b.extend_from_slice(picture);
    b.extend_from_slice(b"\r\n--MIME_boundary--\r\n");
    b
}

/// Status and body (as text) of a response; see [`exchange`].
async fn send(router: &axum::Router, peer: &str, req: Request<Body>) -> (StatusCode, String) {
    let (status, _, body) = exchange(router, peer, req).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn hik_push(uri: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(uri)
        .header(
            header::CONTENT_TYPE,
            "multipart/form-data; boundary=MIME_boundary",
        )
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn hikvision_http_push_keeps_the_picture_as_evidence() {
    let data = temp_dir("hik-push");
    let (gates, registry) = start_gates(config(), &data).await;
    let router = gates.push_router();
    let uri = format!("/gates/push/hikvision/lobby?secret={SECRET}");
    let (status, body) = send(
        &router,
        "192.0.2.7:5000",
        hik_push(&uri, multipart(FACE_PASS, JPEG)),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "OK\n"));
    let events = journal_events(&data);
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.gate.as_str(), "lobby");
    assert_eq!(e.camera.as_ref().unwrap().as_str(), "lobby-cam");
    assert_eq!(e.event.kind.as_str(), "access_granted");
    assert_eq!(e.event.event_id.as_deref(), Some("1199"));
    assert_eq!(e.source, "/gates/push/hikvision/lobby");
    assert_eq!(e.occurred_at, Some("2026-02-24T11:45:13Z".parse().unwrap()));
    let evidence = e.evidence.as_deref().expect("evidence path");
    assert_eq!(
        std::fs::read(xl_gates::Gates::journal_dir(&data).join(evidence)).unwrap(),
        JPEG
    );
    // The device sends it again (it did not see our reply): not stored twice.
    let (status, _) = send(
        &router,
        "192.0.2.7:5000",
        hik_push(&uri, multipart(FACE_PASS, JPEG)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(journal_events(&data).len(), 1);
    let (_, stats) = registry.get(&GateId::new("lobby").unwrap()).unwrap();
    assert_eq!(stats.events.load(Relaxed), 1);
    assert_eq!(stats.duplicates.load(Relaxed), 1);
    assert!(stats.is_online());
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// A gate that falls silent goes offline once `offline_after_secs` (300 by default) pass on
/// the ingest's clocks, and a push brings it back: simulated time, no five-minute wait.
#[tokio::test]
async fn a_silent_gate_goes_offline_after_offline_after_secs_on_simulated_time() {
    let data = temp_dir("hik-offline");
    let start: jiff::Timestamp = "2026-02-24T12:00:00Z".parse().unwrap();
    let clocks = xl_core::clock::SimulatedClocks::new(start);
    let registry = std::sync::Arc::new(xl_core::gate_status::GateRegistry::default());
    let gates = xl_gates::Gates::start_with_sink(
        config(),
        Box::new(xl_gates::JsonlJournal::open(&xl_gates::Gates::journal_dir(&data)).unwrap()),
        xl_gates::Gates::journal_dir(&data),
        std::sync::Arc::clone(&registry),
        clocks.shared(),
    )
    .await
    .unwrap();
    let router = gates.push_router();
    let uri = format!("/gates/push/hikvision/lobby?secret={SECRET}");
    let (status, _) = send(
        &router,
        "192.0.2.7:5000",
        hik_push(&uri, multipart(FACE_PASS, JPEG)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Stamped with the simulated receipt time.
    let events = journal_events(&data);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].received_at, start);
    let (_, stats) = registry.get(&GateId::new("lobby").unwrap()).unwrap();
    assert!(stats.is_online());
    assert_eq!(stats.last_seen(), Some(start));

    clocks.advance(Duration::from_secs(300));
    gates.ingest().check_health();
    assert!(stats.is_online(), "silent for exactly offline_after_secs");
    clocks.advance(Duration::from_secs(1));
    gates.ingest().check_health();
    assert!(
        !stats.is_online(),
        "silent for longer than offline_after_secs"
    );
    assert_eq!(stats.offline_transitions.load(Relaxed), 1);
    // The health loop (every real second) sees the same time: no second transition.
    gates.ingest().check_health();
    assert_eq!(stats.offline_transitions.load(Relaxed), 1);

    let (status, _) = send(
        &router,
        "192.0.2.7:5000",
        hik_push(&uri, multipart(FACE_PASS, JPEG)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(stats.is_online(), "a push brings it back online");
    assert_eq!(
        stats.last_seen(),
        Some(start + jiff::SignedDuration::from_secs(301))
    );
    // The same event again, within `dedup_window_secs` (3600) of the first on the same
    // clocks: a duplicate. Once the window has passed, it is stored as new.
    assert_eq!(journal_events(&data).len(), 1);
    assert_eq!(stats.duplicates.load(Relaxed), 1);
    clocks.advance(Duration::from_secs(3600));
    let (status, _) = send(
        &router,
        "192.0.2.7:5000",
        hik_push(&uri, multipart(FACE_PASS, JPEG)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let events = journal_events(&data);
    assert_eq!(events.len(), 2, "stored again after the dedup window");
    assert_eq!(
        events[1].received_at,
        start + jiff::SignedDuration::from_secs(3901)
    );
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// The journal, except that its first write stalls until `release` and then fails (a disk
/// that hangs, then errors). `entered` says when that write has begun.
struct StallThenFail {
    journal: xl_gates::JsonlJournal,
    entered: Option<std::sync::mpsc::Sender<()>>,
    release: std::sync::mpsc::Receiver<()>,
}

impl xl_gates::GateEventSink for StallThenFail {
    fn write(&mut self, batch: &[xl_gates::Record]) -> Result<(), xl_gates::SinkError> {
        if let Some(entered) = self.entered.take() {
            let _ = entered.send(());
            let _ = self.release.recv();
            return Err(xl_gates::SinkError {
                what: "writing the journal",
                path: "stalled-disk".into(),
                source: std::io::Error::other("the disk failed"),
            });
        }
        self.journal.write(batch)
    }

    fn recent_dedup_keys(
        &mut self,
        since: jiff::Timestamp,
    ) -> Result<Vec<(String, jiff::Timestamp)>, xl_gates::SinkError> {
        self.journal.recent_dedup_keys(since)
    }
}

/// A device resends while its first copy is still being written (it gave up waiting). The
/// resend is a duplicate of an event not yet stored: when that store fails, the resend must
/// fail too, or an acknowledged event is lost. The next resend is then stored.
#[tokio::test]
async fn a_resend_is_not_acknowledged_while_its_original_fails_to_store() {
    let data = temp_dir("hik-stall");
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let sink = StallThenFail {
        journal: xl_gates::JsonlJournal::open(&xl_gates::Gates::journal_dir(&data)).unwrap(),
        entered: Some(entered_tx),
        release: release_rx,
    };
    let registry = std::sync::Arc::new(xl_core::gate_status::GateRegistry::default());
    let gates = xl_gates::Gates::start_with_sink(
        config(),
        Box::new(sink),
        xl_gates::Gates::journal_dir(&data),
        std::sync::Arc::clone(&registry),
        xl_core::clock::RealClocks::shared(),
    )
    .await
    .unwrap();
    let router = gates.push_router();
    let uri = format!("/gates/push/hikvision/lobby?secret={SECRET}");
    let push = || {
        let (router, req) = (router.clone(), hik_push(&uri, multipart(FACE_PASS, JPEG)));
        tokio::spawn(async move { send(&router, "192.0.2.7:5000", req).await })
    };
    let first = push();
    tokio::task::spawn_blocking(move || entered.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the first copy reaches the writer");
    let resend = push();
    // The resend is decoded and judged a duplicate before the stalled write ends.
    let (_, stats) = registry.get(&GateId::new("lobby").unwrap()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stats.duplicates.load(Relaxed) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the resend never arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    release.send(()).unwrap();
    let first = first.await.unwrap();
    assert_eq!(first.0, StatusCode::SERVICE_UNAVAILABLE, "{first:?}");
    let resend = resend.await.unwrap();
    assert_eq!(resend.0, StatusCode::SERVICE_UNAVAILABLE, "{resend:?}");
    assert!(journal_events(&data).is_empty());

    let again = push().await.unwrap();
    assert_eq!(again.0, StatusCode::OK, "{again:?}");
    let events = journal_events(&data);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.event_id.as_deref(), Some("1199"));
    assert_eq!(stats.events.load(Relaxed), 1);
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// A stranger's push is refused before its body is read (no memory for it); an authorized
/// device's body over the limit gets 413.
#[tokio::test]
async fn bodies_are_read_only_after_the_device_is_authorized() {
    let data = temp_dir("hik-body");
    let (gates, _) = start_gates(config(), &data).await;
    let router = gates.push_router();
    let big = vec![b'x'; xl_gates::http::MAX_PUSH_BYTES + 1];
    let (status, _) = send(
        &router,
        "192.0.2.7:5000",
        hik_push("/gates/push/hikvision/lobby", big.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let uri = format!("/gates/push/hikvision/lobby?secret={SECRET}");
    let (status, body) = send(&router, "192.0.2.7:5000", hik_push(&uri, big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(journal_events(&data).is_empty());
    assert!(journal_dead_letters(&data).is_empty());
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn push_without_credentials_is_refused_and_not_stored() {
    let data = temp_dir("hik-auth");
    let (gates, _) = start_gates(config(), &data).await;
    let router = gates.push_router();
    let cases = [
        (
            "/gates/push/hikvision/lobby",
            "192.0.2.7:5000",
            StatusCode::FORBIDDEN,
        ),
        (
            "/gates/push/hikvision/lobby?secret=wrong-wrong-wrong-",
            "192.0.2.7:5000",
            StatusCode::FORBIDDEN,
        ),
        (
            "/gates/push/hikvision/garage",
            "10.9.9.9:5000",
            StatusCode::FORBIDDEN,
        ),
        // A gate with neither secret nor allow-list is never open.
        (
            "/gates/push/hikvision/open",
            "127.0.0.1:5000",
            StatusCode::FORBIDDEN,
        ),
        (
            "/gates/push/hikvision/nope",
            "10.1.2.3:5000",
            StatusCode::FORBIDDEN,
        ),
        // A ZKTeco gate is not a Hikvision one.
        (
            "/gates/push/hikvision/office",
            "10.1.2.3:5000",
            StatusCode::FORBIDDEN,
        ),
    ];
    for (uri, peer, want) in cases {
        let (status, _) = send(&router, peer, hik_push(uri, multipart(FACE_PASS, JPEG))).await;
        assert_eq!(status, want, "{uri} from {peer}");
    }
    assert!(journal_events(&data).is_empty());
    assert!(journal_dead_letters(&data).is_empty());
    // From the allowed network it goes through.
    let (status, _) = send(
        &router,
        "10.1.2.3:5000",
        hik_push("/gates/push/hikvision/garage", multipart(FACE_PASS, JPEG)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(journal_events(&data).len(), 1);
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// Status, headers and body of a response.
async fn exchange(
    router: &axum::Router,
    peer: &str,
    req: Request<Body>,
) -> (StatusCode, Vec<(String, Vec<u8>)>, Vec<u8>) {
    let peer: SocketAddr = peer.parse().unwrap();
    let resp = router
        .clone()
        .layer(MockConnectInfo(peer))
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let mut headers: Vec<(String, Vec<u8>)> = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    headers.sort();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, headers, body.to_vec())
}

/// Finding: the push routes answered 404 "unknown gate", 404 "gate is not a Hikvision gate",
/// 403 "forbidden" and (ADMS) 403 "unknown device", so a stranger could list the gates and
/// serial numbers. Now every refusal is byte for byte the same answer, and nothing is stored.
#[tokio::test]
async fn refusals_do_not_tell_which_gates_and_serials_exist() {
    let data = temp_dir("push-refusals");
    let (gates, _) = start_gates(config(), &data).await;
    let router = gates.push_router();
    let hik = |uri: &str| hik_push(uri, multipart(FACE_PASS, JPEG));
    let adms = |uri: &str| {
        Request::post(uri)
            .body(Body::from(ATTLOG.to_vec()))
            .unwrap()
    };
    let cases = [
        // An unknown gate (with a secret, as a guesser would send).
        (
            "unknown gate",
            "10.1.2.3:5000",
            hik("/gates/push/hikvision/nope?secret=guess-guess-guess"),
        ),
        // An id that is not even a valid gate id.
        (
            "invalid gate id",
            "10.1.2.3:5000",
            hik("/gates/push/hikvision/no%20such"),
        ),
        // A gate of another firmware, from its allowed network.
        (
            "other firmware",
            "10.1.2.3:5000",
            hik("/gates/push/hikvision/office"),
        ),
        (
            "wrong secret",
            "10.1.2.3:5000",
            hik("/gates/push/hikvision/lobby?secret=guess-guess-guess"),
        ),
        (
            "no secret",
            "10.1.2.3:5000",
            hik("/gates/push/hikvision/lobby"),
        ),
        (
            "address not allowed",
            "10.9.9.9:5000",
            hik("/gates/push/hikvision/garage"),
        ),
        (
            "no credentials configured",
            "10.1.2.3:5000",
            hik("/gates/push/hikvision/open"),
        ),
        (
            "ADMS unknown serial",
            "10.1.2.3:5000",
            adms("/iclock/cdata?SN=NOSUCHSERIAL&table=ATTLOG"),
        ),
        (
            "ADMS known serial, wrong address",
            "10.9.9.9:5000",
            adms("/iclock/cdata?SN=CJDE193560303&table=ATTLOG"),
        ),
        (
            "ADMS poll, unknown serial",
            "10.1.2.3:5000",
            Request::get("/iclock/getrequest?SN=NOSUCHSERIAL")
                .body(Body::empty())
                .unwrap(),
        ),
    ];
    let mut first: Option<(&str, _)> = None;
    for (what, peer, req) in cases {
        let got = exchange(&router, peer, req).await;
        assert_eq!(got.0, StatusCode::FORBIDDEN, "{what}");
        match &first {
            None => first = Some((what, got)),
            Some((w, want)) => assert_eq!(&got, want, "{what} answered unlike {w}"),
        }
    }
    assert!(journal_events(&data).is_empty());
    assert!(journal_dead_letters(&data).is_empty());
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn garbage_push_is_a_dead_letter_and_answered_ok() {
    let data = temp_dir("hik-garbage");
    let (gates, registry) = start_gates(config(), &data).await;
    let router = gates.push_router();
    let uri = format!("/gates/push/hikvision/lobby?secret={SECRET}");
    let junk =
        b"--MIME_boundary\r\nContent-Type: application/json\r\n\r\n{\"AccessControllerEvent\": tru"
            .to_vec();
    let (status, _) = send(&router, "192.0.2.7:5000", hik_push(&uri, junk.clone())).await;
    assert_eq!(status, StatusCode::OK);
    let dead = journal_dead_letters(&data);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].gate.as_ref().unwrap().as_str(), "lobby");
    assert_eq!(dead[0].raw().unwrap(), junk);
    assert_eq!(dead[0].peer.as_deref(), Some("192.0.2.7:5000"));
    assert!(
        dead[0].error.starts_with("hikvision-isapi payload"),
        "{}",
        dead[0].error
    );
    let (_, stats) = registry.get(&GateId::new("lobby").unwrap()).unwrap();
    assert_eq!(stats.dead_letters.load(Relaxed), 1);
    // The next good push still works.
    let (status, _) = send(
        &router,
        "192.0.2.7:5000",
        hik_push(&uri, multipart(FACE_PASS, JPEG)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(journal_events(&data).len(), 1);
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn zkteco_adms_registration_records_and_polls() {
    let data = temp_dir("adms");
    let (gates, registry) = start_gates(config(), &data).await;
    let router = gates.push_router();
    let peer = "10.1.2.44:4370";
    let (status, body) = send(
        &router,
        peer,
        Request::get("/iclock/cdata?SN=CJDE193560303&options=all&pushver=2.4.1")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.starts_with("GET OPTION FROM: CJDE193560303\n"),
        "{body}"
    );
    assert!(body.contains("Realtime=1"), "{body}");
    let attlog = || {
        Request::post("/iclock/cdata?SN=CJDE193560303&table=ATTLOG&Stamp=9999")
            .body(Body::from(ATTLOG))
            .unwrap()
    };
    let (status, body) = send(&router, peer, attlog()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "OK"));
    // The terminal resends the record (it missed our OK): stored once.
    let (status, _) = send(&router, peer, attlog()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(
        &router,
        peer,
        Request::get("/iclock/getrequest?SN=CJDE193560303")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "OK"));
    let events = journal_events(&data);
    assert_eq!(events.len(), 1, "heartbeats are not stored: {events:#?}");
    let e = &events[0];
    assert_eq!(e.gate.as_str(), "office");
    assert_eq!(e.event.kind.as_str(), "access_granted");
    // 2026-09-30 17:00:00 on a terminal set to Beijing time.
    assert_eq!(e.occurred_at, Some("2026-09-30T09:00:00Z".parse().unwrap()));
    let (_, stats) = registry.get(&GateId::new("office").unwrap()).unwrap();
    assert_eq!(stats.duplicates.load(Relaxed), 1);
    // Unknown serial numbers and strangers are refused.
    let (status, _) = send(
        &router,
        peer,
        Request::get("/iclock/getrequest?SN=OTHER")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(&router, "192.0.2.1:1", attlog()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Junk from the terminal becomes a dead letter; the terminal gets OK and moves on.
    let (status, _) = send(
        &router,
        peer,
        Request::post("/iclock/cdata?SN=CJDE193560303&table=ATTLOG")
            .body(Body::from(&b"101 no tabs here"[..]))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(journal_dead_letters(&data).len(), 1);
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn push_over_a_real_socket_sees_the_source_address() {
    let data = temp_dir("socket");
    let (gates, _) = start_gates(
        parse_config(
            r#"
            [[gates]]
            id = "local"
            community = "xingfu"
            firmware = "hikvision-isapi"
            push_allow_from = ["127.0.0.1"]
            "#,
        ),
        &data,
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = gates.push_router();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let body = multipart(FACE_PASS, JPEG);
    let mut req = format!(
        "POST /gates/push/hikvision/local HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: multipart/form-data; boundary=MIME_boundary\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&req).await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(journal_events(&data).len(), 1);
    server.abort();
    gates.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}
