use super::*;
use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::json;
use xl_core::gate::{DenyReason, EventPhase, VerifyMethod};

const FACE_PASS_PUSH: &[u8] =
    include_bytes!("../testdata/hikvision_ds-k1t_face-pass_http-push.json");
const POLL_DOOR_UNLOCKED: &[u8] =
    include_bytes!("../testdata/hikvision_acs-event_poll-record_door-unlocked.json");

fn received_at() -> Timestamp {
    "2026-02-24T11:45:14Z".parse().unwrap()
}

fn meta() -> PayloadMeta<'static> {
    PayloadMeta::new(received_at())
}

fn one(meta: &PayloadMeta<'_>, payload: &[u8]) -> GateEvent {
    let mut events = decode(meta, payload).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    events.pop().unwrap()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The fixture's JSON part wrapped the way the DS-K1T671 posts it, with a JPEG part.
fn push_body(json: &[u8], picture: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(
        b"--MIME_boundary\r\n\
Content-Disposition: form-data; name=\"AccessControllerEvent\"\r\n\
Content-Type: application/json\r\n",
    );
    b.extend_from_slice(format!("Content-Length: {}\r\n\r\n", json.len()).as_bytes());
    b.extend_from_slice(json);
    b.extend_from_slice(
        b"\r\n--MIME_boundary\r\n\
Content-Disposition: form-data; name=\"Picture\"; filename=\"Picture.jpg\"\r\n\
Content-Type: image/jpeg\r\n",
    );
    b.extend_from_slice(format!("Content-Length: {}\r\n\r\n", picture.len()).as_bytes());
    b.extend_from_slice(picture);
    b.extend_from_slice(b"\r\n--MIME_boundary--\r\n");
    b
}

const JPEG: &[u8] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00face-bytes\xff\xd9";

#[test]
fn hikvision_ds_k1t_face_pass_http_push() {
    let e = one(&meta(), FACE_PASS_PUSH);
    assert_eq!(e.kind, GateEventKind::AccessGranted);
    assert_eq!(e.deny_reason, None);
    assert_eq!(e.vendor_code, "5/0x4b");
    assert_eq!(e.door, Some(1));
    assert_eq!(e.method, Some(VerifyMethod::Face));
    let p = e.person.as_ref().unwrap();
    assert_eq!(p.id.as_deref(), Some("123123123"));
    assert_eq!(p.name.as_deref(), Some("Mateo Versace"));
    assert_eq!(p.card, None);
    assert_eq!(e.device_time, Some(ts("2026-02-24T11:45:13Z")));
    assert_eq!(e.device_utc_offset.map(|o| o.seconds()), Some(8 * 3600));
    assert_eq!(
        e.device_local_time.map(|t| t.to_string()).as_deref(),
        Some("2026-02-24T19:45:13")
    );
    assert_eq!(e.received_at, received_at());
    assert_eq!(e.event_id.as_deref(), Some("1199"));
    assert_eq!(e.device_id.as_deref(), Some("e0:ca:3c:fc:a7:ce"));
    assert_eq!(e.direction, None, "attendanceStatus is undefined");
    assert_eq!(e.picture, None);
    assert_eq!(&e.raw[..], trim_end(FACE_PASS_PUSH));
}

#[test]
fn hikvision_acs_event_poll_record_door_unlocked() {
    let e = one(&meta(), POLL_DOOR_UNLOCKED);
    assert_eq!(e.kind, GateEventKind::DoorUnlocked);
    assert_eq!(e.vendor_code, "5/0x15");
    assert_eq!(e.door, Some(1));
    assert_eq!(e.person, None);
    assert_eq!(e.method, None, "faceOrFpOrCardOrPw names no single method");
    assert_eq!(e.device_time, Some(ts("2023-03-18T17:37:54Z")));
    assert_eq!(e.device_utc_offset.map(|o| o.seconds()), Some(3600));
    assert_eq!(e.event_id.as_deref(), Some("735"));
    assert_eq!(e.device_id, None);
}

#[test]
fn hikvision_ds_k1t_face_pass_http_push_multipart_with_picture() {
    let body = push_body(trim_end(FACE_PASS_PUSH), JPEG);
    let m = meta().with_content_type("multipart/form-data; boundary=MIME_boundary");
    let e = one(&m, &body);
    assert_eq!(e.kind, GateEventKind::AccessGranted);
    assert_eq!(e.method, Some(VerifyMethod::Face));
    assert_eq!(
        &e.raw[..],
        trim_end(FACE_PASS_PUSH),
        "raw is the JSON part only"
    );
    let pic = e.picture.unwrap();
    assert_eq!(&pic.bytes[..], JPEG);
    assert_eq!(pic.content_type.as_deref(), Some("image/jpeg"));
    assert!(!pic.truncated);

    // The same body from a file, without Content-Type: the boundary is sniffed.
    let e = one(&meta(), &body);
    assert_eq!(e.vendor_code, "5/0x4b");
}

#[test]
fn hikvision_ds_k1t_face_pass_http_push_cut_off_mid_image() {
    let body = push_body(trim_end(FACE_PASS_PUSH), JPEG);
    let cut = &body[..body.len() - 30];
    let m = meta().with_content_type("multipart/form-data; boundary=\"MIME_boundary\"");
    let e = one(&m, cut);
    assert_eq!(e.kind, GateEventKind::AccessGranted);
    let pic = e.picture.unwrap();
    assert!(pic.truncated);
    assert!(JPEG.starts_with(&pic.bytes));
}

#[test]
fn hikvision_ds_k1t_face_pass_http_push_cut_off_mid_json_is_an_error() {
    let body = push_body(trim_end(FACE_PASS_PUSH), JPEG);
    let cut = &body[..400];
    let m = meta().with_content_type("multipart/form-data; boundary=MIME_boundary");
    let err = decode(&m, cut).unwrap_err();
    assert!(err.to_string().contains("cut off"), "{err}");
    assert!(matches!(
        err.location(),
        Some(PayloadLocation::ByteOffset(_))
    ));
}

#[test]
fn event_log_part_name_and_alert_stream_mixed() {
    let json = trim_end(FACE_PASS_PUSH);
    let mut body =
        b"--boundary\r\nContent-Disposition: form-data; name=\"event_log\"\r\n\r\n".to_vec();
    body.extend_from_slice(json);
    body.extend_from_slice(b"\r\n--boundary--\r\n");
    let m = meta().with_content_type("multipart/form-data; boundary=boundary");
    assert_eq!(one(&m, &body).vendor_code, "5/0x4b");

    // alertStream: several EventNotificationAlert parts in one multipart/mixed chunk.
    let mut body = Vec::new();
    for _ in 0..2 {
        body.extend_from_slice(
            b"--boundary\r\nContent-Type: application/json; charset=\"UTF-8\"\r\n\r\n",
        );
        body.extend_from_slice(br#"{"EventNotificationAlert":"#);
        body.extend_from_slice(json);
        body.extend_from_slice(b"}\r\n");
    }
    let m = meta().with_content_type("multipart/mixed; boundary=boundary");
    let events = decode(&m, &body).unwrap();
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e.kind == GateEventKind::AccessGranted)
    );
}

#[test]
fn event_notification_alert_wrapped_json() {
    let inner: Value = serde_json::from_slice(FACE_PASS_PUSH).unwrap();
    let wrapped = serde_json::to_vec(&json!({ "EventNotificationAlert": inner })).unwrap();
    let e = one(&meta(), &wrapped);
    assert_eq!(e.kind, GateEventKind::AccessGranted);
    assert_eq!(e.device_time, Some(ts("2026-02-24T11:45:13Z")));
    assert_eq!(e.door, Some(1));
}

#[test]
fn acs_event_poll_response_with_records_masks_cards() {
    let body = json!({"AcsEvent": {"searchID": "1", "responseStatusStrg": "MORE",
    "numOfMatches": 2, "totalMatches": 9, "InfoList": [
        {"major": 5, "minor": 1, "time": "2023-03-18T18:37:50+01:00", "cardNo": "3954670518",
         "cardType": 1, "doorNo": 2, "serialNo": 734, "employeeNoString": "7",
         "name": "Li Na", "currentVerifyMode": "cardOrFace"},
        {"major": 5, "minor": 6, "time": "2023-03-18T18:38:00+01:00", "cardNo": "1234500000",
         "doorNo": 2, "serialNo": 736},
    ]}});
    let events = decode(&meta(), &serde_json::to_vec(&body).unwrap()).unwrap();
    assert_eq!(events.len(), 2);
    let granted = &events[0];
    assert_eq!(granted.kind, GateEventKind::AccessGranted);
    assert_eq!(granted.method, Some(VerifyMethod::Card));
    assert_eq!(granted.door, Some(2));
    let p = granted.person.as_ref().unwrap();
    assert_eq!(p.card.as_ref().unwrap().as_str(), "****0518");
    assert_eq!(p.id.as_deref(), Some("7"));
    let raw = std::str::from_utf8(&granted.raw).unwrap();
    assert!(raw.contains("\"cardNo\":\"****0518\""), "{raw}");
    assert!(!raw.contains("3954670518"), "{raw}");
    let denied = &events[1];
    assert_eq!(denied.deny_reason, Some(DenyReason::NoPermission));
    assert_eq!(denied.event_id.as_deref(), Some("736"));

    // No matches: no events, no error.
    let none = json!({"AcsEvent": {"searchID": "1", "responseStatusStrg": "NO MATCH"}});
    assert!(
        decode(&meta(), &serde_json::to_vec(&none).unwrap())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn heartbeats_and_other_alerts() {
    let hb = json!({"ipAddress": "10.0.0.5", "eventType": "heartBeat", "dateTime": "2026-02-24T19:45:13+08:00"});
    let e = one(&meta(), &serde_json::to_vec(&hb).unwrap());
    assert_eq!(e.kind, GateEventKind::Heartbeat);
    assert_eq!(e.device_id.as_deref(), Some("10.0.0.5"));
    let keepalive = json!({"eventType": "videoloss", "eventState": "inactive", "macAddress": "aa"});
    let e = one(&meta(), &serde_json::to_vec(&keepalive).unwrap());
    assert_eq!(e.kind, GateEventKind::Heartbeat);
    let other = json!({"eventType": "VMD", "eventState": "active"});
    let e = one(&meta(), &serde_json::to_vec(&other).unwrap());
    assert_eq!(e.kind, GateEventKind::Unknown);
    assert_eq!(e.vendor_code, "eventType=VMD");
}

/// (major, minor, kind, reason, method, phase, detail) for every code in the table.
#[allow(clippy::type_complexity)]
fn code_table() -> Vec<(
    u64,
    u64,
    GateEventKind,
    Option<DenyReason>,
    Option<VerifyMethod>,
    Option<EventPhase>,
    Option<&'static str>,
)> {
    use DenyReason as R;
    use EventPhase::{Start, Stop};
    use GateEventKind as K;
    use VerifyMethod as M;
    let c = |parts: &[M]| Some(M::Combined(parts.to_vec()));
    vec![
        (5, 0x01, K::AccessGranted, None, Some(M::Card), None, None),
        (
            5,
            0x02,
            K::AccessGranted,
            None,
            c(&[M::Card, M::Pin]),
            None,
            None,
        ),
        (
            5,
            0x03,
            K::AccessDenied,
            Some(R::InvalidPin),
            None,
            None,
            None,
        ),
        (5, 0x04, K::AccessDenied, Some(R::Timeout), None, None, None),
        (
            5,
            0x06,
            K::AccessDenied,
            Some(R::NoPermission),
            None,
            None,
            None,
        ),
        (
            5,
            0x07,
            K::AccessDenied,
            Some(R::InvalidTimePeriod),
            None,
            None,
            None,
        ),
        (5, 0x08, K::AccessDenied, Some(R::Expired), None, None, None),
        (
            5,
            0x09,
            K::AccessDenied,
            Some(R::CardNotFound),
            None,
            None,
            None,
        ),
        (
            5,
            0x0a,
            K::AccessDenied,
            Some(R::AntiPassback),
            None,
            None,
            None,
        ),
        (5, 0x15, K::DoorUnlocked, None, None, None, None),
        (5, 0x16, K::DoorLocked, None, None, None, None),
        (
            5,
            0x17,
            K::AccessGranted,
            None,
            Some(M::ExitButton),
            None,
            None,
        ),
        (5, 0x19, K::DoorOpened, None, None, None, None),
        (5, 0x1a, K::DoorClosed, None, None, None, None),
        (5, 0x1b, K::DoorForcedOpen, None, None, None, None),
        (5, 0x1c, K::DoorHeldOpen, None, None, None, None),
        (
            5,
            0x26,
            K::AccessGranted,
            None,
            Some(M::Fingerprint),
            None,
            None,
        ),
        (
            5,
            0x27,
            K::AccessDenied,
            Some(R::FingerprintNotRecognized),
            None,
            None,
            None,
        ),
        (
            5,
            0x28,
            K::AccessGranted,
            None,
            c(&[M::Card, M::Fingerprint]),
            None,
            None,
        ),
        (
            5,
            0x29,
            K::AccessDenied,
            Some(R::FingerprintNotRecognized),
            None,
            None,
            None,
        ),
        (
            5,
            0x2b,
            K::AccessGranted,
            None,
            c(&[M::Card, M::Fingerprint, M::Pin]),
            None,
            None,
        ),
        (
            5,
            0x2e,
            K::AccessGranted,
            None,
            c(&[M::Fingerprint, M::Pin]),
            None,
            None,
        ),
        (
            5,
            0x31,
            K::AccessDenied,
            Some(R::FingerprintNotRecognized),
            None,
            None,
            None,
        ),
        (
            5,
            0x36,
            K::AccessGranted,
            None,
            c(&[M::Face, M::Fingerprint]),
            None,
            None,
        ),
        (
            5,
            0x39,
            K::AccessGranted,
            None,
            c(&[M::Face, M::Pin]),
            None,
            None,
        ),
        (
            5,
            0x3c,
            K::AccessGranted,
            None,
            c(&[M::Face, M::Card]),
            None,
            None,
        ),
        (
            5,
            0x3f,
            K::AccessGranted,
            None,
            c(&[M::Face, M::Pin, M::Fingerprint]),
            None,
            None,
        ),
        (
            5,
            0x42,
            K::AccessGranted,
            None,
            c(&[M::Face, M::Card, M::Fingerprint]),
            None,
            None,
        ),
        (5, 0x4b, K::AccessGranted, None, Some(M::Face), None, None),
        (
            5,
            0x4c,
            K::AccessDenied,
            Some(R::FaceNotRecognized),
            None,
            None,
            None,
        ),
        (
            5,
            0x50,
            K::AccessDenied,
            Some(R::FaceNotRecognized),
            None,
            None,
            None,
        ),
        (5, 0x65, K::AccessGranted, None, Some(M::Pin), None, None),
        (5, 0x71, K::Blacklisted, None, None, None, None),
        (5, 0x83, K::Heartbeat, None, None, None, None),
        (5, 0x85, K::Alarm, None, None, None, Some("tailgating")),
        (5, 0x87, K::DoorForcedOpen, None, None, None, None),
        (
            5,
            0x88,
            K::Alarm,
            None,
            None,
            None,
            Some("climbing_over_gate"),
        ),
        (
            5,
            0x97,
            K::AccessDenied,
            Some(R::InvalidPin),
            None,
            None,
            None,
        ),
        (
            5,
            0x98,
            K::AccessDenied,
            Some(R::CardNotFound),
            None,
            None,
            None,
        ),
        (
            1,
            0x404,
            K::Tamper,
            None,
            None,
            Some(Start),
            Some("zone_tamper"),
        ),
        (
            1,
            0x405,
            K::Tamper,
            None,
            None,
            Some(Stop),
            Some("zone_tamper"),
        ),
        (
            1,
            0x406,
            K::Tamper,
            None,
            None,
            Some(Start),
            Some("card_reader_tamper"),
        ),
        (
            1,
            0x407,
            K::Tamper,
            None,
            None,
            Some(Stop),
            Some("card_reader_tamper"),
        ),
        (1, 0x40a, K::Duress, None, None, None, None),
        (
            1,
            0x40c,
            K::AccessDenied,
            Some(R::MaxAttempts),
            None,
            None,
            None,
        ),
        (
            1,
            0x41c,
            K::Alarm,
            None,
            None,
            Some(Start),
            Some("panic_button"),
        ),
        (
            1,
            0x41d,
            K::Alarm,
            None,
            None,
            Some(Stop),
            Some("panic_button"),
        ),
        (
            2,
            0x27,
            K::DeviceOffline,
            None,
            None,
            Some(Start),
            Some("network_broken"),
        ),
        (
            2,
            0x407,
            K::DeviceOffline,
            None,
            None,
            Some(Stop),
            Some("network_broken"),
        ),
        (
            2,
            0x403,
            K::Alarm,
            None,
            None,
            Some(Start),
            Some("battery_low"),
        ),
        (
            2,
            0x404,
            K::Alarm,
            None,
            None,
            Some(Stop),
            Some("battery_low"),
        ),
        (
            2,
            0x409,
            K::DeviceOffline,
            None,
            None,
            Some(Start),
            Some("card_reader_offline"),
        ),
        (
            2,
            0x40a,
            K::DeviceOffline,
            None,
            None,
            Some(Stop),
            Some("card_reader_offline"),
        ),
        (
            3,
            0x400,
            K::AccessGranted,
            None,
            Some(M::Remote),
            None,
            None,
        ),
    ]
}

#[test]
fn every_code_in_the_table_decodes_in_push_and_poll_form() {
    for (major, minor, kind, reason, method, phase, detail) in code_table() {
        let push = json!({"eventType": "AccessControllerEvent", "dateTime": "2026-02-24T19:45:13+08:00",
            "macAddress": "e0:ca:3c:fc:a7:ce",
            "AccessControllerEvent": {"majorEventType": major, "subEventType": minor, "doorNo": 1,
                "serialNo": 5, "currentVerifyMode": "cardOrFace"}});
        let poll = json!({"major": major, "minor": minor, "time": "2026-02-24T19:45:13+08:00",
            "doorNo": 1, "serialNo": 5});
        for payload in [push, poll] {
            let e = one(&meta(), &serde_json::to_vec(&payload).unwrap());
            let code = format!("{major}/{minor:#x}");
            assert_eq!(e.vendor_code, code);
            assert_eq!(e.kind, kind, "{code}");
            assert_eq!(e.deny_reason, reason, "{code}");
            assert_eq!(e.method, method, "{code}");
            assert_eq!(e.phase, phase, "{code}");
            assert_eq!(e.detail.as_deref(), detail, "{code}");
            assert_eq!(e.door, Some(1));
            assert_eq!(e.device_time, Some(ts("2026-02-24T11:45:13Z")));
        }
    }
}

#[test]
fn unknown_codes_are_kept_as_unknown() {
    for (major, minor) in [(5, 0x05), (5, 0x4d), (3, 0x70), (4, 1), (1, 0x400)] {
        let payload =
            serde_json::to_vec(&json!({"major": major, "minor": minor, "serialNo": 9})).unwrap();
        let e = one(&meta(), &payload);
        assert_eq!(e.kind, GateEventKind::Unknown);
        assert_eq!(e.vendor_code, format!("{major}/{minor:#x}"));
        assert_eq!(&e.raw[..], &payload[..]);
        assert_eq!(e.event_id.as_deref(), Some("9"));
    }
}

#[test]
fn malformed_payloads_give_clear_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "empty payload"),
        (&FACE_PASS_PUSH[..200], "cut off"),
        (b"{\"major\":5,\xff\"minor\":1}", "invalid UTF-8 at byte 11"),
        (b"{\n// door 1\n\"major\":5,\"minor\":1}", "comments"),
        (b"\x00\x9f\x92\x96\x01binary", "invalid UTF-8"),
        (b"\x01\x02junk", "invalid JSON"),
        (b"<EventNotificationAlert version=\"2.0\"/>", "XML"),
        (b"[1]", "expected a JSON object, found a number at /0"),
        (b"{\"foo\":1}", "not a Hikvision ISAPI event"),
        (
            b"{\"major\":\"five\",\"minor\":1}",
            "major missing or not a non-negative integer at /major",
        ),
        (
            b"{\"eventType\":\"AccessControllerEvent\"}",
            "AccessControllerEvent object is missing",
        ),
        (
            b"{\"AcsEvent\":{\"InfoList\":{}}}",
            "InfoList must be an array",
        ),
    ];
    for (payload, want) in cases {
        let err = decode(&meta(), payload).unwrap_err();
        assert!(
            err.to_string().contains(want),
            "{:?}: {err}",
            String::from_utf8_lossy(payload)
        );
        assert_eq!(err.firmware(), NAME);
        assert_eq!(err.kind(), xl_core::ErrorKind::InvalidInput);
    }
    let m = meta().with_content_type("multipart/form-data");
    let err = decode(&m, b"{}").unwrap_err();
    assert!(err.to_string().contains("without a boundary"), "{err}");
    let m = meta().with_content_type("multipart/form-data; boundary=x");
    let err = decode(
        &m,
        b"--x\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\r\n--x--",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no AccessControllerEvent"),
        "{err}"
    );
}

fn fixtures() -> Vec<Vec<u8>> {
    vec![
        FACE_PASS_PUSH.to_vec(),
        POLL_DOOR_UNLOCKED.to_vec(),
        push_body(trim_end(FACE_PASS_PUSH), JPEG),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                   multipart in any::<bool>()) {
        let m = if multipart {
            meta().with_content_type("multipart/form-data; boundary=MIME_boundary")
        } else {
            meta()
        };
        let _ = decode(&m, &bytes);
    }

    #[test]
    fn mutated_fixtures_never_panic(which in 0usize..3, at in any::<prop::sample::Index>(),
                                    byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut f = fixtures().swap_remove(which);
        let i = at.index(f.len());
        f[i] = byte;
        f.truncate(cut.index(f.len() + 1));
        let m = meta().with_content_type("multipart/form-data; boundary=MIME_boundary");
        let _ = decode(&m, &f);
        let _ = decode(&meta(), &f);
    }
}
