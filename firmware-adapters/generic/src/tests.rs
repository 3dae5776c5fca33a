use super::*;
use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::json;

/// The example from the crate docs, as an integrator writes it.
const ACME_TOML: &str = r#"
name = "acme-x100"
events = "/records"
time_format = "auto"
door_zero_based = true

[fields]
code = "/event/code"
door = "/event/door"
person_id = "/user/id"
person_name = "/user/name"
card = "/user/card"
time = "/ts"
event_id = "/seq"
device_id = "/sn"
method = "/event/verify"
direction = "/event/dir"

[codes]
"1" = { kind = "access_granted", method = "card" }
"2" = { kind = "access_denied", reason = "no_permission" }
"door_open" = { kind = "door_opened" }
"tamper" = { kind = "tamper", phase = "start", detail = "case_opened" }

[methods]
"15" = "face"
"3" = "card+pin"
"#;

fn received_at() -> Timestamp {
    "2026-09-30T09:00:00Z".parse().unwrap()
}

fn meta() -> PayloadMeta<'static> {
    PayloadMeta::new(received_at())
}

fn acme() -> GenericAdapter {
    let config: GenericConfig = toml::from_str(ACME_TOML).unwrap();
    GenericAdapter::new(config).unwrap()
}

#[test]
fn acme_x100_records_from_the_documented_config() {
    let payload = json!({"sn": "ACME-0042", "records": [
        {"event": {"code": 1, "door": 0, "verify": "15", "dir": "in"}, "user": {"id": "E-17",
          "name": "陈静", "card": "0012345678"}, "ts": "2026-09-30T17:00:00+08:00", "seq": 88},
        {"event": {"code": "2", "door": 1}, "user": {"card": "99887766"}, "ts": 1790715000},
        {"event": {"code": "tamper"}, "ts": "2026-09-30 17:05:00"},
        {"event": {"code": 77}},
    ]});
    let events = acme()
        .decode(&meta(), &serde_json::to_vec(&payload).unwrap())
        .unwrap();
    assert_eq!(events.len(), 4);

    let g = &events[0];
    assert_eq!(g.kind, GateEventKind::AccessGranted);
    assert_eq!(g.vendor_code, "1");
    assert_eq!(
        g.method,
        Some(VerifyMethod::Face),
        "the payload's method wins over the code's"
    );
    assert_eq!(g.door, Some(1), "door 0 of a zero-based device is door 1");
    assert_eq!(g.direction, Some(Direction::Entry));
    assert_eq!(g.event_id.as_deref(), Some("88"));
    let p = g.person.as_ref().unwrap();
    assert_eq!(p.id.as_deref(), Some("E-17"));
    assert_eq!(p.name.as_deref(), Some("陈静"));
    assert_eq!(p.card.as_ref().unwrap().as_str(), "****5678");
    assert_eq!(g.device_time, Some("2026-09-30T09:00:00Z".parse().unwrap()));
    assert_eq!(g.device_utc_offset.map(|o| o.seconds()), Some(8 * 3600));
    let raw = std::str::from_utf8(&g.raw).unwrap();
    assert!(
        !raw.contains("0012345678") && raw.contains("****5678"),
        "{raw}"
    );
    assert_eq!(g.device_id, None, "/sn is outside the record");

    let d = &events[1];
    assert_eq!(d.kind, GateEventKind::AccessDenied);
    assert_eq!(d.deny_reason, Some(DenyReason::NoPermission));
    assert_eq!(d.door, Some(2));
    assert_eq!(d.device_time, Some("2026-09-29T20:50:00Z".parse().unwrap()));

    let t = &events[2];
    assert_eq!(
        (t.kind, t.phase),
        (GateEventKind::Tamper, Some(EventPhase::Start))
    );
    assert_eq!(t.detail.as_deref(), Some("case_opened"));
    assert_eq!(t.device_time, None);
    assert_eq!(
        t.device_local_time.map(|d| d.to_string()).as_deref(),
        Some("2026-09-30T17:05:00")
    );

    let u = &events[3];
    assert_eq!(u.kind, GateEventKind::Unknown);
    assert_eq!(u.vendor_code, "77");
    assert_eq!(&u.raw[..], br#"{"event":{"code":77}}"#);
}

#[test]
fn a_single_object_payload_keeps_its_bytes_as_raw() {
    let config: GenericConfig = toml::from_str(
        r#"
name = "single"
[fields]
code = "/c"
device_id = "/sn"
[codes]
"H" = { kind = "heartbeat" }
"#,
    )
    .unwrap();
    let adapter = GenericAdapter::new(config).unwrap();
    let payload = b"{\"c\":\"H\",\"sn\":\"dev-1\"}\n";
    let e = adapter.decode(&meta(), payload).unwrap().remove(0);
    assert_eq!(e.kind, GateEventKind::Heartbeat);
    assert_eq!(e.device_id.as_deref(), Some("dev-1"));
    assert_eq!(&e.raw[..], &payload[..payload.len() - 1]);
    assert_eq!(adapter.name(), "generic");
}

#[test]
fn every_kind_can_be_targeted() {
    for kind in GateEventKind::ALL {
        let reason = (kind == GateEventKind::AccessDenied).then_some(DenyReason::Expired);
        let config = GenericConfig {
            name: "all".into(),
            events: None,
            fields: FieldPaths {
                code: "/c".into(),
                ..FieldPaths::default()
            },
            codes: BTreeMap::from([(
                "x".to_owned(),
                CodeMeaning {
                    kind,
                    reason: reason.clone(),
                    method: None,
                    phase: None,
                    detail: None,
                },
            )]),
            methods: BTreeMap::new(),
            time_format: TimeFormat::Auto,
            door_zero_based: false,
        };
        let e = GenericAdapter::new(config)
            .unwrap()
            .decode(&meta(), br#"{"c":"x"}"#)
            .unwrap()
            .remove(0);
        assert_eq!((e.kind, e.deny_reason), (kind, reason));
    }
}

#[test]
fn time_formats() {
    let with = |format: &str, ts: serde_json::Value| {
        let toml = format!(
            "name = \"t\"\ntime_format = \"{format}\"\n[fields]\ncode = \"/c\"\ntime = \"/t\"\n[codes]\n\"x\" = {{ kind = \"heartbeat\" }}\n"
        );
        let adapter = GenericAdapter::new(toml::from_str(&toml).unwrap()).unwrap();
        let payload = serde_json::to_vec(&json!({"c": "x", "t": ts})).unwrap();
        let e = adapter.decode(&meta(), &payload).unwrap().remove(0);
        (e.device_time, e.device_local_time.map(|t| t.to_string()))
    };
    let instant = Some("2026-09-29T20:50:00Z".parse::<Timestamp>().unwrap());
    assert_eq!(with("unix_seconds", json!(1790715000)).0, instant);
    assert_eq!(with("unix_seconds", json!("1790715000")).0, instant);
    assert_eq!(with("unix_millis", json!(1790715000000_i64)).0, instant);
    assert_eq!(with("auto", json!(1790715000000_i64)).0, instant);
    assert_eq!(with("auto", json!(1790715000)).0, instant);
    assert_eq!(with("rfc3339", json!("2026-09-29T20:50:00Z")).0, instant);
    assert_eq!(with("rfc3339", json!("2026-09-29 20:50:00")), (None, None));
    assert_eq!(
        with("local", json!("2026-09-29 20:50:00")),
        (None, Some("2026-09-29T20:50:00".into()))
    );
    assert_eq!(with("local", json!("2026-09-29T20:50:00Z")), (None, None));
    assert_eq!(with("auto", json!({"nested": 1})), (None, None));
}

#[test]
fn method_tables() {
    let toml = r#"
name = "m"
[fields]
code = "/c"
method = "/m"
[codes]
"x" = { kind = "access_granted", method = "pin" }
"#;
    let plain = GenericAdapter::new(toml::from_str(toml).unwrap()).unwrap();
    let method = |a: &GenericAdapter, p: serde_json::Value| {
        a.decode(&meta(), &serde_json::to_vec(&p).unwrap())
            .unwrap()
            .remove(0)
            .method
    };
    assert_eq!(method(&plain, json!({"c": "x"})), Some(VerifyMethod::Pin));
    assert_eq!(
        method(&plain, json!({"c": "x", "m": "card+face"})),
        Some(VerifyMethod::Combined(vec![
            VerifyMethod::Card,
            VerifyMethod::Face
        ]))
    );
    let table =
        GenericAdapter::new(toml::from_str(&format!("{toml}[methods]\n\"3\" = \"qr\"\n")).unwrap())
            .unwrap();
    assert_eq!(
        method(&table, json!({"c": "x", "m": 3})),
        Some(VerifyMethod::Qr)
    );
    assert_eq!(
        method(&table, json!({"c": "x", "m": 9})),
        Some(VerifyMethod::Other("9".into()))
    );
}

#[test]
fn config_mistakes_are_named() {
    let base = "name = \"acme\"\n[fields]\ncode = \"/c\"\n";
    // Unknown keys anywhere are refused by deny_unknown_fields.
    for (extra, key) in [
        (
            "colour = \"red\"\n[codes]\n\"1\" = { kind = \"heartbeat\" }\n",
            "colour",
        ),
        (
            "[codes]\n\"1\" = { kind = \"heartbeat\", severity = \"high\" }\n",
            "severity",
        ),
    ] {
        let (head, tail) = base.split_at(14);
        let text = format!("{head}{extra}{tail}");
        let err = toml::from_str::<GenericConfig>(&text)
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{err}");
    }
    let err = toml::from_str::<GenericConfig>(
        "name = \"a\"\n[fields]\ncode = \"/c\"\ncolour = \"/x\"\n[codes]\n\"1\" = { kind = \"heartbeat\" }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("colour"), "{err}");
    let err = toml::from_str::<GenericConfig>(&format!(
        "{base}[codes]\n\"1\" = {{ kind = \"door_exploded\" }}\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("door_exploded"), "{err}");

    let check = |text: &str| GenericAdapter::new(toml::from_str(text).unwrap()).unwrap_err();
    let e = check(&format!(
        "{base}[codes]\n\"2\" = {{ kind = \"access_denied\" }}\n"
    ));
    assert_eq!(e.key, "codes.\"2\".reason");
    assert!(e.to_string().contains("needs a reason"), "{e}");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = check(&format!(
        "{base}[codes]\n\"2\" = {{ kind = \"heartbeat\", reason = \"expired\" }}\n"
    ));
    assert!(e.message.contains("only access_denied"), "{e}");
    let e = check(&format!("{base}[codes]\n"));
    assert_eq!(e.key, "codes");
    let e =
        check("name = \"a\"\n[fields]\ncode = \"c\"\n[codes]\n\"1\" = { kind = \"heartbeat\" }\n");
    assert_eq!(e.key, "fields.code");
    assert!(e.message.contains("write it as \"/c\""), "{e}");
    let e =
        check("name = \" \"\n[fields]\ncode = \"/c\"\n[codes]\n\"1\" = { kind = \"heartbeat\" }\n");
    assert_eq!(e.key, "name");
}

#[test]
fn malformed_payloads_give_clear_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "[acme-x100] empty payload"),
        (b"{\"records\":[{\"event\":{\"code\":1}}", "cut off"),
        (b"{\"records\":\"\xfe\"}", "invalid UTF-8"),
        (b"{\"records\":[] /* none */}", "comments"),
        (b"\x00\x00\x01", "invalid JSON"),
        (
            b"{\"records\":{}}",
            "events must be an array, found an object at /records",
        ),
        (b"{\"other\":[]}", "no events array at /records"),
        (
            b"{\"records\":[7]}",
            "an event must be an object, found a number at /records/0",
        ),
        (
            b"{\"records\":[{\"event\":{}}]}",
            "no code (a string, number or boolean) at /records/0/event/code",
        ),
    ];
    for (payload, want) in cases {
        let err = acme().decode(&meta(), payload).unwrap_err();
        assert!(
            err.to_string().contains(want),
            "{:?}: {err}",
            String::from_utf8_lossy(payload)
        );
        assert_eq!(err.firmware(), NAME);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = acme().decode(&meta(), &bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(code in prop_oneof![Just(json!(1)), Just(json!("tamper")), any::<i64>().prop_map(|n| json!(n)), "[a-z0-9_]{1,5}".prop_map(|s| json!(s))],
                                   door in any::<i64>(), ts in any::<i64>(), card in ".{0,12}") {
        let p = json!({"records": [{"event": {"code": code, "door": door}, "ts": ts, "user": {"card": card}}]});
        let events = acme().decode(&meta(), &serde_json::to_vec(&p).unwrap()).unwrap();
        prop_assert_eq!(events.len(), 1);
    }
}
