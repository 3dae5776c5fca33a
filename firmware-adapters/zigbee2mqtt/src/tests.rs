use super::*;
use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::json;

const CONTACT_SENSOR_DOOR_OPEN: &[u8] =
    include_bytes!("../testdata/zigbee2mqtt_contact-sensor_door-open.json");

fn received_at() -> Timestamp {
    "2026-09-30T09:00:00Z".parse().unwrap()
}

fn meta() -> PayloadMeta<'static> {
    PayloadMeta::new(received_at()).with_topic("zigbee2mqtt/building-3/front-door")
}

fn events(v: serde_json::Value) -> Vec<GateEvent> {
    decode(&meta(), &serde_json::to_vec(&v).unwrap()).unwrap()
}

fn one(v: serde_json::Value) -> GateEvent {
    let mut e = events(v);
    assert_eq!(e.len(), 1, "{e:?}");
    e.pop().unwrap()
}

#[test]
fn zigbee2mqtt_contact_sensor_door_open() {
    let mut events = decode(&meta(), CONTACT_SENSOR_DOOR_OPEN).unwrap();
    assert_eq!(events.len(), 1);
    let e = events.pop().unwrap();
    assert_eq!(
        e.kind,
        GateEventKind::DoorOpened,
        "contact:false means OPEN"
    );
    assert_eq!(e.vendor_code, "contact=false");
    assert_eq!(e.device_id.as_deref(), Some("building-3/front-door"));
    assert_eq!(e.person, None);
    assert_eq!(e.method, None);
    assert_eq!(e.door, None);
    assert_eq!(e.device_time, None);
    assert_eq!(e.received_at, received_at());
    assert_eq!(&e.raw[..], trim_end(CONTACT_SENSOR_DOOR_OPEN));
}

#[test]
fn state_fields() {
    use GateEventKind as K;
    let table: Vec<(serde_json::Value, Vec<(K, &str)>)> = vec![
        (
            json!({"contact": true}),
            vec![(K::DoorClosed, "contact=true")],
        ),
        (
            json!({"contact": false, "tamper": true, "battery_low": true, "battery": 3}),
            vec![
                (K::DoorOpened, "contact=false"),
                (K::Tamper, "tamper=true"),
                (K::Alarm, "battery_low=true"),
            ],
        ),
        (
            json!({"contact": true, "tamper": false, "battery_low": false}),
            vec![(K::DoorClosed, "contact=true")],
        ),
        (
            json!({"lock_state": "locked", "state": "LOCK"}),
            vec![(K::DoorLocked, "lock_state=locked")],
        ),
        (
            json!({"lock_state": "unlocked"}),
            vec![(K::DoorUnlocked, "lock_state=unlocked")],
        ),
        (
            json!({"lock_state": "not_fully_locked"}),
            vec![(K::Alarm, "lock_state=not_fully_locked")],
        ),
        (
            json!({"lock_state": "sideways"}),
            vec![(K::Unknown, "lock_state=sideways")],
        ),
        (
            json!({"state": "LOCK"}),
            vec![(K::DoorLocked, "state=LOCK")],
        ),
        (
            json!({"state": "UNLOCK"}),
            vec![(K::DoorUnlocked, "state=UNLOCK")],
        ),
        (
            json!({"state": "ON", "linkquality": 80}),
            vec![(K::Heartbeat, "state")],
        ),
        (
            json!({"battery": 97, "voltage": 3000, "linkquality": 128}),
            vec![(K::Heartbeat, "state")],
        ),
    ];
    for (v, want) in table {
        let got: Vec<_> = events(v.clone())
            .into_iter()
            .map(|e| (e.kind, e.vendor_code))
            .collect();
        let want: Vec<_> = want.into_iter().map(|(k, c)| (k, c.to_owned())).collect();
        assert_eq!(got, want, "{v}");
    }
    let low = events(json!({"battery_low": true}));
    assert_eq!(low[0].detail.as_deref(), Some("battery_low"));
}

/// (action, action_source_name, kind, deny reason, method).
type ActionRow = (
    &'static str,
    Option<&'static str>,
    GateEventKind,
    Option<DenyReason>,
    Option<VerifyMethod>,
);

#[test]
fn every_lock_action() {
    use DenyReason as R;
    use GateEventKind as K;
    use VerifyMethod as M;
    let table: Vec<ActionRow> = vec![
        ("lock", None, K::DoorLocked, None, None),
        ("one_touch_lock", None, K::DoorLocked, None, None),
        ("key_lock", None, K::DoorLocked, None, None),
        ("auto_lock", None, K::DoorLocked, None, None),
        ("schedule_lock", None, K::DoorLocked, None, None),
        ("manual_lock", None, K::DoorLocked, None, None),
        (
            "unlock",
            Some("keypad"),
            K::AccessGranted,
            None,
            Some(M::Pin),
        ),
        (
            "unlock",
            Some("rfid"),
            K::AccessGranted,
            None,
            Some(M::Card),
        ),
        (
            "unlock",
            Some("rf"),
            K::AccessGranted,
            None,
            Some(M::Remote),
        ),
        ("unlock", Some("manual"), K::DoorUnlocked, None, None),
        ("key_unlock", None, K::AccessGranted, None, Some(M::Key)),
        ("schedule_unlock", None, K::DoorUnlocked, None, None),
        ("manual_unlock", None, K::DoorUnlocked, None, None),
        (
            "unlock_failure_invalid_pin_or_id",
            Some("keypad"),
            K::AccessDenied,
            Some(R::InvalidPin),
            Some(M::Pin),
        ),
        (
            "unlock_failure_invalid_pin_or_id",
            Some("rfid"),
            K::AccessDenied,
            Some(R::CardNotFound),
            Some(M::Card),
        ),
        (
            "lock_failure_invalid_pin_or_id",
            Some("keypad"),
            K::AccessDenied,
            Some(R::InvalidPin),
            Some(M::Pin),
        ),
        (
            "unlock_failure_invalid_schedule",
            Some("keypad"),
            K::AccessDenied,
            Some(R::InvalidTimePeriod),
            Some(M::Pin),
        ),
        (
            "lock_failure_invalid_schedule",
            None,
            K::AccessDenied,
            Some(R::InvalidTimePeriod),
            None,
        ),
        (
            "non_access_user_operational_event",
            None,
            K::Unknown,
            None,
            None,
        ),
        ("unknown", None, K::Unknown, None, None),
        ("single", None, K::Unknown, None, None),
    ];
    for (action, source, kind, reason, method) in table {
        let mut v = json!({"action": action, "action_user": 3, "linkquality": 90});
        if let Some(s) = source {
            v["action_source_name"] = json!(s);
        }
        let e = one(v);
        assert_eq!(e.kind, kind, "{action} {source:?}");
        assert_eq!(e.deny_reason, reason, "{action} {source:?}");
        assert_eq!(e.method, method, "{action} {source:?}");
        let who = e.person.and_then(|p| p.id);
        let expect_user = matches!(kind, K::AccessGranted | K::AccessDenied);
        assert_eq!(who.as_deref(), expect_user.then_some("3"), "{action}");
    }
    // A lock state and an operation in one message give two events.
    let both = events(
        json!({"lock_state": "unlocked", "action": "unlock", "action_source_name": "keypad"}),
    );
    assert_eq!(both.len(), 2);
}

#[test]
fn availability_and_last_seen() {
    for (payload, kind) in [
        (&b"online"[..], GateEventKind::Heartbeat),
        (b"offline", GateEventKind::DeviceOffline),
        (b"{\"state\":\"offline\"}", GateEventKind::DeviceOffline),
        (b"{\"state\":\"online\"}", GateEventKind::Heartbeat),
        (b"maybe", GateEventKind::Unknown),
    ] {
        let m = PayloadMeta::new(received_at()).with_topic("zigbee2mqtt/front-door/availability");
        let e = decode(&m, payload).unwrap().remove(0);
        assert_eq!(e.kind, kind);
        assert_eq!(e.device_id.as_deref(), Some("front-door"));
    }
    let e = one(json!({"contact": false, "last_seen": "2026-09-30T17:00:00+08:00"}));
    assert_eq!(e.device_time, Some("2026-09-30T09:00:00Z".parse().unwrap()));
    let e = one(json!({"contact": false, "last_seen": 1790715000123_i64}));
    assert_eq!(
        e.device_time,
        Some(Timestamp::from_millisecond(1790715000123).unwrap())
    );
}

#[test]
fn malformed_payloads_give_clear_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "empty payload"),
        (b"{\"contact\":fals}", "invalid JSON"),
        (b"{\"contact\":", "cut off"),
        (b"{\"contact\":false,\"x\":\"\xc3\x28\"}", "invalid UTF-8"),
        (b"{ // door\n\"contact\":false}", "comments"),
        (b"\x89PNG\r\n\x1a\n", "invalid UTF-8"),
        (b"true", "expected a JSON object, found a boolean"),
    ];
    for (payload, want) in cases {
        let err = decode(&meta(), payload).unwrap_err();
        assert!(
            err.to_string().contains(want),
            "{:?}: {err}",
            String::from_utf8_lossy(payload)
        );
    }
    let bridge = PayloadMeta::new(received_at()).with_topic("zigbee2mqtt/bridge/state");
    assert!(
        decode(&bridge, b"online")
            .unwrap_err()
            .to_string()
            .contains("bridge topic")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300),
                                   topic in "[a-z/]{0,30}") {
        let m = PayloadMeta::new(received_at()).with_topic(&topic);
        let _ = decode(&m, &bytes);
    }

    #[test]
    fn mutated_fixture_never_panics(at in any::<prop::sample::Index>(), byte in any::<u8>(),
                                    cut in any::<prop::sample::Index>()) {
        let mut f = CONTACT_SENSOR_DOOR_OPEN.to_vec();
        let i = at.index(f.len());
        f[i] = byte;
        f.truncate(cut.index(f.len() + 1));
        let _ = decode(&meta(), &f);
    }

    #[test]
    fn any_state_object_decodes(contact in any::<Option<bool>>(), tamper in any::<Option<bool>>(),
                                action in "[a-z_]{0,20}") {
        let v = json!({"contact": contact, "tamper": tamper, "action": action});
        let got = decode(&meta(), &serde_json::to_vec(&v).unwrap()).unwrap();
        prop_assert!(!got.is_empty());
    }
}
