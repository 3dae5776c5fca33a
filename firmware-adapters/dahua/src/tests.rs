use super::*;
use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::json;

const ATTACH_CARD_ENTRY: &[u8] = include_bytes!("../testdata/dahua_event-attach_card-entry.txt");
const VTO2MQTT_REMOTE_OPEN: &[u8] = include_bytes!("../testdata/dahua_vto2mqtt_remote-open.json");

fn received_at() -> Timestamp {
    "2026-09-29T20:50:01Z".parse().unwrap()
}

fn meta() -> PayloadMeta<'static> {
    PayloadMeta::new(received_at())
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn one(meta: &PayloadMeta<'_>, payload: &[u8]) -> GateEvent {
    let mut events = decode(meta, payload).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    events.pop().unwrap()
}

#[test]
fn dahua_event_attach_card_entry() {
    let e = one(&meta(), ATTACH_CARD_ENTRY);
    assert_eq!(e.kind, GateEventKind::AccessGranted);
    assert_eq!(e.vendor_code, "AccessControl/Method=1");
    assert_eq!(e.method, Some(VerifyMethod::Card));
    assert_eq!(e.door, Some(1), "Door 0 is the first door");
    assert_eq!(e.direction, Some(Direction::Entry));
    let p = e.person.as_ref().unwrap();
    assert_eq!(p.id.as_deref(), Some("1001"));
    assert_eq!(p.name, None);
    assert_eq!(p.card.as_ref().unwrap().as_str(), "****1122");
    assert_eq!(e.device_time, Some(ts("2026-09-29T20:50:00Z")));
    assert_eq!(e.device_local_time, None);
    assert_eq!(e.phase, None, "action=Pulse");
    assert_eq!(e.received_at, received_at());
    let raw = std::str::from_utf8(&e.raw).unwrap();
    assert!(
        raw.starts_with("Code=AccessControl;action=Pulse;index=0;data={"),
        "{raw}"
    );
    assert!(raw.contains("\"CardNo\":\"****1122\""), "{raw}");
    assert!(!raw.contains("AABB1122"), "{raw}");
}

#[test]
fn dahua_vto2mqtt_remote_open() {
    let m = meta().with_topic("DahuaVTO/AccessControl/Event");
    let e = one(&m, VTO2MQTT_REMOTE_OPEN);
    assert_eq!(e.kind, GateEventKind::AccessGranted);
    assert_eq!(e.vendor_code, "AccessControl/Method=4");
    assert_eq!(e.method, Some(VerifyMethod::Remote));
    assert_eq!(e.person, None, "UserID and CardNo are empty");
    assert_eq!(e.direction, Some(Direction::Entry));
    assert_eq!(e.event_id.as_deref(), Some("691"));
    assert_eq!(e.device_id.as_deref(), Some("Device Serial Number"));
    assert_eq!(e.device_time, Some(ts("2020-03-02T18:24:08Z")));
    assert_eq!(
        e.device_local_time.map(|t| t.to_string()).as_deref(),
        Some("2020-03-02T20:24:08")
    );
    assert_eq!(e.device_utc_offset.map(|o| o.seconds()), Some(2 * 3600));
    assert_eq!(e.door, None, "no Door and no Index");

    // Without the topic there is no code.
    let err = decode(&meta(), VTO2MQTT_REMOTE_OPEN).unwrap_err();
    assert!(err.to_string().contains("DahuaVTO/<Code>/Event"), "{err}");
}

/// One chunk of the attach stream as it comes off the wire: boundaries, part headers, a
/// heartbeat, a block without data and two blocks with multi-line data.
#[test]
fn dahua_event_attach_multipart_chunk_with_several_blocks() {
    let mut chunk = Vec::new();
    chunk.extend_from_slice(
        b"--myboundary\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nHeartbeat\r\n",
    );
    chunk.extend_from_slice(
        b"--myboundary\r\nContent-Type: text/plain\r\nContent-Length: 36\r\n\r\n",
    );
    chunk.extend_from_slice(b"Code=BreakIn;action=Start;index=1\r\n\r\n");
    chunk.extend_from_slice(
        b"--myboundary\r\nContent-Type: text/plain\r\nContent-Length: 190\r\n\r\n",
    );
    chunk.extend_from_slice(ATTACH_CARD_ENTRY);
    chunk.extend_from_slice(b"\r\n--myboundary\r\nContent-Type: text/plain\r\n\r\n");
    chunk.extend_from_slice(
        b"Code=DoorStatus;action=Pulse;index=0;data={\n   \"Status\" : \"Close\",\n   \"UTC\" : 1790715010\n}\r\n",
    );
    let events = decode(&meta(), &chunk).unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            GateEventKind::Heartbeat,
            GateEventKind::DoorForcedOpen,
            GateEventKind::AccessGranted,
            GateEventKind::DoorClosed
        ]
    );
    assert_eq!(events[1].phase, Some(EventPhase::Start));
    assert_eq!(events[1].door, Some(2));
    assert_eq!(&events[1].raw[..], b"Code=BreakIn;action=Start;index=1");
    assert_eq!(events[3].vendor_code, "DoorStatus/Status=Close");
    assert_eq!(events[3].device_time, Some(ts("2026-09-29T20:50:10Z")));
}

#[test]
fn json_http_upload_deflated() {
    let upload = json!({"ip": "192.168.1.108", "Time": "2026-09-30 04:50:00", "Events": [
        {"Code": "AccessControl", "Action": "Pulse", "Index": 1,
         "Data": {"CardNo": "11223344", "CardName": "王芳", "UserID": "7", "Status": 0,
                  "ErrorCode": 16, "Method": 1, "UTC": 1790715000, "RecNo": 12}},
        {"Code": "ChassisIntruded", "Action": "Start", "Index": 0, "Data": {}},
    ]});
    let body = serde_json::to_vec(&upload).unwrap();
    for compressed in [
        miniz_oxide::deflate::compress_to_vec_zlib(&body, 6),
        miniz_oxide::deflate::compress_to_vec(&body, 6),
        body.clone(),
    ] {
        let events = decode(&meta(), &compressed).unwrap();
        assert_eq!(events.len(), 2);
        let d = &events[0];
        assert_eq!(d.kind, GateEventKind::AccessDenied);
        assert_eq!(d.vendor_code, "AccessControl/ErrorCode=16");
        assert_eq!(d.deny_reason, Some(DenyReason::NoPermission));
        assert_eq!(d.door, Some(2));
        assert_eq!(d.device_id.as_deref(), Some("192.168.1.108"));
        let p = d.person.as_ref().unwrap();
        assert_eq!(p.name.as_deref(), Some("王芳"));
        assert_eq!(p.card.as_ref().unwrap().as_str(), "****3344");
        assert!(!String::from_utf8_lossy(&d.raw).contains("11223344"));
        assert_eq!(events[1].kind, GateEventKind::Tamper);
        assert_eq!(events[1].phase, Some(EventPhase::Start));
    }
}

#[test]
fn every_code_decodes_in_stream_and_vto2mqtt_form() {
    use GateEventKind as K;
    let table: &[(&str, &str, Value, K, &str)] = &[
        (
            "AccessControl",
            "Pulse",
            json!({"Status": 1, "Method": 15}),
            K::AccessGranted,
            "AccessControl/Method=15",
        ),
        (
            "AccessControl",
            "Pulse",
            json!({"Status": 1, "Method": 13}),
            K::Duress,
            "AccessControl/Method=13",
        ),
        (
            "AccessControl",
            "Pulse",
            json!({"Status": 0, "ErrorCode": 32, "Method": 1}),
            K::AccessDenied,
            "AccessControl/ErrorCode=32",
        ),
        (
            "AccessControl",
            "Pulse",
            json!({"Method": 1}),
            K::Unknown,
            "AccessControl/Status=?",
        ),
        (
            "DoorStatus",
            "Pulse",
            json!({"Status": "Open"}),
            K::DoorOpened,
            "DoorStatus/Status=Open",
        ),
        (
            "DoorStatus",
            "Pulse",
            json!({"Status": "Close"}),
            K::DoorClosed,
            "DoorStatus/Status=Close",
        ),
        (
            "DoorStatus",
            "Pulse",
            json!({"Status": "Ajar"}),
            K::Unknown,
            "DoorStatus/Status=Ajar",
        ),
        ("BreakIn", "Start", json!({}), K::DoorForcedOpen, "BreakIn"),
        (
            "DoorNotClosed",
            "Start",
            json!({}),
            K::DoorHeldOpen,
            "DoorNotClosed",
        ),
        ("Duress", "Pulse", json!({}), K::Duress, "Duress"),
        (
            "ChassisIntruded",
            "Start",
            json!({}),
            K::Tamper,
            "ChassisIntruded",
        ),
        ("Heartbeat", "Pulse", json!({}), K::Heartbeat, "Heartbeat"),
        ("VideoMotion", "Start", json!({}), K::Unknown, "VideoMotion"),
    ];
    for (code, action, data, kind, vendor) in table {
        let block = format!("Code={code};action={action};index=0;data={data:#}\r\n");
        let vto = serde_json::to_vec(&json!({"Action": action, "Data": data})).unwrap();
        let topic = format!("DahuaVTO/{code}/Event");
        for e in [
            one(&meta(), block.as_bytes()),
            one(&meta().with_topic(&topic), &vto),
        ] {
            assert_eq!(e.kind, *kind, "{code} {data}");
            assert_eq!(e.vendor_code, *vendor);
            let phase = match *action {
                "Start" => Some(EventPhase::Start),
                _ => None,
            };
            assert_eq!(e.phase, phase);
        }
    }
    // action=Stop ends the condition.
    let e = one(&meta(), b"Code=DoorNotClosed;action=Stop;index=2");
    assert_eq!(
        (e.kind, e.phase, e.door),
        (K::DoorHeldOpen, Some(EventPhase::Stop), Some(3))
    );
}

#[test]
fn every_method_code() {
    use VerifyMethod as M;
    let c = |p: &[M]| M::Combined(p.to_vec());
    let table: Vec<(u64, M)> = vec![
        (0, M::Pin),
        (1, M::Card),
        (2, c(&[M::Card, M::Pin])),
        (3, c(&[M::Pin, M::Card])),
        (4, M::Remote),
        (5, M::ExitButton),
        (6, M::Fingerprint),
        (7, c(&[M::Pin, M::Card, M::Fingerprint])),
        (8, c(&[M::Pin, M::Fingerprint])),
        (9, c(&[M::Card, M::Fingerprint])),
        (10, M::Other("dahua_method_10".into())),
        (11, M::Other("multi_user".into())),
        (12, M::Key),
        (13, M::Pin),
        (14, M::Qr),
        (15, M::Face),
        (16, M::Other("dahua_method_16".into())),
        (17, M::IdCard),
        (18, c(&[M::Face, M::IdCard])),
        (19, M::Bluetooth),
        (20, M::Pin),
        (21, M::Pin),
        (22, c(&[M::Face, M::Pin])),
        (23, c(&[M::Fingerprint, M::Pin])),
        (24, c(&[M::Fingerprint, M::Face])),
        (25, c(&[M::Card, M::Face])),
        (26, M::Other("dahua_method_26".into())),
        (31, c(&[M::Fingerprint, M::Face, M::Pin])),
        (32, c(&[M::Card, M::Face, M::Pin])),
        (33, c(&[M::Card, M::Fingerprint, M::Pin])),
        (34, c(&[M::Card, M::Fingerprint, M::Face])),
        (38, c(&[M::Card, M::Fingerprint, M::Face, M::Pin])),
        (42, M::Remote),
        (43, M::Qr),
        (44, M::Face),
        (45, c(&[M::IdCard, M::Fingerprint])),
        (46, M::Pin),
        (47, M::Other("health_code".into())),
        (99, M::Other("dahua_method_99".into())),
    ];
    for (code, want) in table {
        assert_eq!(method(code), want, "Method={code}");
        let payload = format!(
            "Code=AccessControl;action=Pulse;index=0;data={{\"Status\":1,\"Method\":{code}}}"
        );
        assert_eq!(one(&meta(), payload.as_bytes()).method, Some(want));
    }
}

#[test]
fn every_error_code() {
    use DenyReason as R;
    let table: Vec<(u64, R)> = vec![
        (0, R::Other("unspecified".into())),
        (16, R::NoPermission),
        (17, R::CardRevoked),
        (18, R::NoPermission),
        (19, R::Other("wrong_open_mode".into())),
        (20, R::Expired),
        (21, R::AntiPassback),
        (22, R::Other("duress_not_enabled".into())),
        (23, R::DoorLocked),
        (24, R::DoorLocked),
        (25, R::Other("patrol_card".into())),
        (32, R::InvalidTimePeriod),
        (33, R::InvalidTimePeriod),
        (64, R::InvalidPin),
        (65, R::Timeout),
        (66, R::FingerprintNotRecognized),
        (67, R::Timeout),
        (68, R::InvalidPin),
        (69, R::Timeout),
        (97, R::Other("dahua_error_97".into())),
    ];
    for (code, want) in table {
        assert_eq!(error_reason(code), want, "ErrorCode={code}");
        let payload = format!(
            "Code=AccessControl;action=Pulse;index=0;data={{\"Status\":0,\"ErrorCode\":{code}}}"
        );
        let e = one(&meta(), payload.as_bytes());
        assert_eq!(e.kind, GateEventKind::AccessDenied);
        assert_eq!(e.deny_reason, Some(want));
        assert_eq!(e.vendor_code, format!("AccessControl/ErrorCode={code}"));
    }
}

#[test]
fn malformed_payloads_give_clear_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "no Code="),
        (&ATTACH_CARD_ENTRY[..100], "cut off"),
        (
            b"Code=AccessControl;action=Pulse;index=0;data={\"Status\":\xff}",
            "invalid UTF-8",
        ),
        (
            b"Code=AccessControl;action=Pulse;data={\n// comment\n\"Status\":1}",
            "invalid data JSON",
        ),
        (
            b"Code=AccessControl;action=Pulse;data=",
            "followed by nothing",
        ),
        (b"Code=;action=Pulse", "without a code"),
        (
            b"Code=BreakIn;action=Start;data=[1,2]",
            "Data must be an object",
        ),
        (b"\x00\x01\x02\x03", "no Code="),
        (b"{\"Action\":\"Pulse\"", "cut off"),
        (b"{\"Events\":{}}", "Events must be an array"),
        (b"{\"Events\":[{\"Data\":{}}]}", "event without a Code"),
        (b"[1,2]", "expected a JSON object"),
    ];
    for (payload, want) in cases {
        let err = decode(&meta(), payload).unwrap_err();
        assert!(
            err.to_string().contains(want),
            "{:?}: {err}",
            String::from_utf8_lossy(payload)
        );
        assert_eq!(err.kind(), xl_core::ErrorKind::InvalidInput);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode(&meta(), &bytes);
        let _ = decode(&meta().with_topic("DahuaVTO/AccessControl/Event"), &bytes);
    }

    #[test]
    fn mutated_fixtures_never_panic(which in any::<bool>(), at in any::<prop::sample::Index>(),
                                    byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut f = if which { ATTACH_CARD_ENTRY.to_vec() } else { VTO2MQTT_REMOTE_OPEN.to_vec() };
        let i = at.index(f.len());
        f[i] = byte;
        f.truncate(cut.index(f.len() + 1));
        let _ = decode(&meta().with_topic("DahuaVTO/AccessControl/Event"), &f);
    }

    #[test]
    fn arbitrary_text_blocks_never_panic(s in "(Code=[A-Za-z]{0,8};action=(Start|Stop|Pulse);index=[0-9]{0,3}(;data=\\{[ -~\n]{0,40})?\n){0,3}") {
        let _ = decode(&meta(), s.as_bytes());
    }
}
