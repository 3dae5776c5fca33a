use super::*;
use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::json;

const ACCESS_KNOWN_USER: &[u8] = include_bytes!("../testdata/esp-rfid_access_known-user.json");

fn received_at() -> Timestamp {
    "2026-09-29T20:50:01Z".parse().unwrap()
}

fn meta() -> PayloadMeta<'static> {
    PayloadMeta::new(received_at()).with_topic("/rfid/send")
}

fn one(meta: &PayloadMeta<'_>, payload: &[u8]) -> GateEvent {
    let mut events = decode(meta, payload).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    events.pop().unwrap()
}

fn json_one(v: serde_json::Value) -> GateEvent {
    one(&meta(), &serde_json::to_vec(&v).unwrap())
}

#[test]
fn esp_rfid_access_known_user() {
    let e = one(&meta(), ACCESS_KNOWN_USER);
    assert_eq!(e.kind, GateEventKind::AccessGranted);
    assert_eq!(e.vendor_code, "access/Always/isKnown=true");
    assert_eq!(e.method, Some(VerifyMethod::Card));
    let p = e.person.as_ref().unwrap();
    assert_eq!(p.name.as_deref(), Some("Zhang Wei"));
    assert_eq!(p.id, None);
    assert_eq!(p.card.as_ref().unwrap().as_str(), "****b2c3");
    assert_eq!(e.device_time, Some("2026-09-29T20:50:00Z".parse().unwrap()));
    assert_eq!(e.door, None);
    assert_eq!(e.device_id, None);
    let raw = std::str::from_utf8(&e.raw).unwrap();
    assert!(raw.contains("\"uid\":\"****b2c3\""), "{raw}");
    assert!(!raw.contains("04a1b2c3"));
}

#[test]
fn every_access_value() {
    use DenyReason as R;
    use GateEventKind as K;
    let table: &[(&str, serde_json::Value, K, Option<R>)] = &[
        ("Always", json!("true"), K::AccessGranted, None),
        ("Admin", json!("true"), K::AccessGranted, None),
        (
            "Disabled",
            json!("true"),
            K::AccessDenied,
            Some(R::NoPermission),
        ),
        ("Expired", json!("true"), K::AccessDenied, Some(R::Expired)),
        (
            "Denied",
            json!("false"),
            K::AccessDenied,
            Some(R::CardNotFound),
        ),
        (
            "Whatever",
            json!("false"),
            K::AccessDenied,
            Some(R::CardNotFound),
        ),
        ("Whatever", json!(true), K::Unknown, None),
        ("Always", json!(true), K::AccessGranted, None),
    ];
    for (access, known, kind, reason) in table {
        let e = json_one(
            json!({"type": "access", "time": 1790715000, "isKnown": known,
            "access": access, "username": "Li", "uid": "c1b3c3ff", "door": "esp-rfid-1"}),
        );
        assert_eq!(e.kind, *kind, "{access} {known}");
        assert_eq!(e.deny_reason, *reason, "{access} {known}");
        assert_eq!(e.device_id.as_deref(), Some("esp-rfid-1"));
    }
    let admin =
        json_one(json!({"type": "access", "isKnown": "true", "access": "Admin", "uid": "1"}));
    assert_eq!(admin.detail.as_deref(), Some("admin"));
    let unknown_tag = json_one(
        json!({"type": "access", "isKnown": "false", "access": "Denied",
        "username": "Unknown", "uid": "deadbeef"}),
    );
    assert_eq!(
        unknown_tag.person.unwrap().name,
        None,
        "\"Unknown\" is not a name"
    );
    let remote = json_one(
        json!({"type": "access", "isKnown": "true", "access": "Always",
        "username": "MQTT", "uid": " "}),
    );
    assert_eq!(remote.kind, GateEventKind::AccessGranted);
    assert_eq!(remote.method, Some(VerifyMethod::Remote));
    assert_eq!(remote.person, None);
}

#[test]
fn every_other_message_type() {
    use GateEventKind as K;
    let table: Vec<(serde_json::Value, K, &str)> = vec![
        (
            json!({"type": "boot", "time": 1790715000, "uptime": "0", "ip": "10.0.0.9", "hostname": "door-a"}),
            K::Heartbeat,
            "boot",
        ),
        (
            json!({"type": "heartbeat", "time": 1790715000, "uptime": 60, "hostname": "door-a"}),
            K::Heartbeat,
            "heartbeat",
        ),
        (
            json!({"type": "hearthbeat", "time": 1790715000}),
            K::Heartbeat,
            "hearthbeat",
        ),
        (
            json!({"type": "INFO", "src": "door", "desc": "Door Open", "data": "", "cmd": "event"}),
            K::DoorOpened,
            "INFO/door",
        ),
        (
            json!({"type": "INFO", "src": "door", "desc": "Door Closed", "data": "", "cmd": "event"}),
            K::DoorClosed,
            "INFO/door",
        ),
        (
            json!({"type": "WARN", "src": "tamper", "desc": "Door was tampered!", "data": ""}),
            K::DoorForcedOpen,
            "WARN/tamper",
        ),
        (
            json!({"type": "WARN", "src": "tamper", "desc": "Door wasn't closed within max open time!", "data": ""}),
            K::DoorHeldOpen,
            "WARN/tamper",
        ),
        (
            json!({"type": "WARN", "src": "tamper", "desc": "Case opened"}),
            K::Tamper,
            "WARN/tamper",
        ),
        (
            json!({"type": "WARN", "src": "mqtt", "desc": "Disconnected from MQTT server"}),
            K::Unknown,
            "WARN/mqtt",
        ),
        (
            json!({"type": "door", "door": "open", "hostname": "door-a"}),
            K::DoorOpened,
            "door=open",
        ),
        (json!({"door": "closed"}), K::DoorClosed, "door=closed"),
        (
            json!({"type": "doorbell", "state": "on"}),
            K::Unknown,
            "type=doorbell",
        ),
        (json!({}), K::Unknown, "type="),
    ];
    for (v, kind, code) in table {
        let e = json_one(v.clone());
        assert_eq!(e.kind, kind, "{v}");
        assert_eq!(e.vendor_code, code, "{v}");
    }
    let boot = json_one(json!({"type": "boot", "hostname": "door-a", "door": "x"}));
    assert_eq!(boot.device_id.as_deref(), Some("door-a"));
}

#[test]
fn home_assistant_io_topics() {
    use GateEventKind as K;
    let table = [
        ("/rfid/io/door", "ON", K::DoorOpened, None),
        ("/rfid/io/door", "OFF", K::DoorClosed, None),
        ("/rfid/io/tamper", "ON", K::Tamper, Some(EventPhase::Start)),
        ("/rfid/io/tamper", "OFF", K::Tamper, Some(EventPhase::Stop)),
        ("/rfid/avty", "online", K::Heartbeat, None),
        ("/rfid/avty", "offline", K::DeviceOffline, None),
        ("/rfid/io/door", "AJAR", K::Unknown, None),
    ];
    for (topic, payload, kind, phase) in table {
        let m = PayloadMeta::new(received_at()).with_topic(topic);
        let e = one(&m, payload.as_bytes());
        assert_eq!((e.kind, e.phase), (kind, phase), "{topic} {payload}");
        assert_eq!(e.device_id.as_deref(), Some("rfid"));
    }
}

#[test]
fn malformed_payloads_give_clear_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "empty payload"),
        (&ACCESS_KNOWN_USER[..40], "cut off"),
        (b"{\"type\":\"access\",\"uid\":\"\xff\"}", "invalid UTF-8"),
        (b"{/* esp */\"type\":\"boot\"}", "comments"),
        (b"\x00\x01\x02", "invalid JSON"),
        (b"\"access\"", "expected a JSON object, found a string"),
    ];
    for (payload, want) in cases {
        let err = decode(&meta(), payload).unwrap_err();
        assert!(
            err.to_string().contains(want),
            "{:?}: {err}",
            String::from_utf8_lossy(payload)
        );
    }
    let io = PayloadMeta::new(received_at()).with_topic("/rfid/io/door");
    assert!(
        decode(&io, b"\xff")
            .unwrap_err()
            .to_string()
            .contains("invalid UTF-8")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400),
                                   topic in "(/rfid(/send|/io/door|/io/tamper|/avty)?)?") {
        let m = PayloadMeta::new(received_at()).with_topic(&topic);
        let _ = decode(&m, &bytes);
    }

    #[test]
    fn mutated_fixture_never_panics(at in any::<prop::sample::Index>(), byte in any::<u8>(),
                                    cut in any::<prop::sample::Index>()) {
        let mut f = ACCESS_KNOWN_USER.to_vec();
        let i = at.index(f.len());
        f[i] = byte;
        f.truncate(cut.index(f.len() + 1));
        let _ = decode(&meta(), &f);
    }
}
