use super::*;
use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};
use proptest::prelude::*;

const ATTLOG_ONE_RECORD: &[u8] = include_bytes!("../testdata/zkteco_adms_attlog_one-record.txt");

fn received_at() -> Timestamp {
    "2026-09-30T09:00:02Z".parse().unwrap()
}

fn cdata() -> PayloadMeta<'static> {
    PayloadMeta::new(received_at())
        .with_path("/iclock/cdata")
        .with_query("SN=CJDE193560303&table=ATTLOG&Stamp=9999")
}

#[test]
fn zkteco_adms_attlog_one_record() {
    let events = decode(&cdata(), ATTLOG_ONE_RECORD).unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.kind, GateEventKind::AccessGranted);
    assert_eq!(e.vendor_code, "ATTLOG/status=0/verify=1");
    assert_eq!(e.device_id.as_deref(), Some("CJDE193560303"));
    let p = e.person.as_ref().unwrap();
    assert_eq!(p.id.as_deref(), Some("101"));
    assert_eq!((p.name.as_ref(), p.card.as_ref()), (None, None));
    assert_eq!(e.method, Some(VerifyMethod::Fingerprint));
    assert_eq!(e.detail.as_deref(), Some("check_in"));
    assert_eq!(e.direction, Some(Direction::Entry));
    assert_eq!(e.door, None);
    // Wall clock only: no instant until the gate's zone is applied.
    assert_eq!(e.device_time, None);
    assert_eq!(e.device_utc_offset, None);
    assert_eq!(
        e.device_local_time.map(|t| t.to_string()).as_deref(),
        Some("2026-09-30T17:00:00")
    );
    let shanghai = TimeZone::fixed(Offset::from_seconds(8 * 3600).unwrap());
    assert_eq!(
        e.resolve_device_time(&shanghai),
        Some("2026-09-30T09:00:00Z".parse().unwrap())
    );
    assert_eq!(&e.raw[..], b"101\t2026-09-30 17:00:00\t0\t1\t0\t0");
}

#[test]
fn several_lines_crlf_and_newer_firmware_fields() {
    let body = b"101\t2026-09-30 17:00:00\t0\t1\t0\t0\r\n\
102\t2026-09-30 17:01:00\t1\t15\t\t0\t0\t\t\t36.5\t\r\n\
\r\n\
103\t2026-09-30 17:02:00\r\n";
    let events = decode(&cdata(), body).unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[1].method, Some(VerifyMethod::Face));
    assert_eq!(events[1].direction, Some(Direction::Exit));
    assert_eq!(events[1].detail.as_deref(), Some("check_out"));
    assert_eq!(events[2].vendor_code, "ATTLOG/status=-/verify=-");
    assert_eq!(events[2].method, None);
    assert_eq!(events[2].direction, None);
}

#[test]
fn every_status_and_verify_code() {
    let states = [
        (0, "check_in", Some(Direction::Entry)),
        (1, "check_out", Some(Direction::Exit)),
        (2, "break_out", Some(Direction::Exit)),
        (3, "break_in", Some(Direction::Entry)),
        (4, "overtime_in", Some(Direction::Entry)),
        (5, "overtime_out", Some(Direction::Exit)),
        (255, "status_255", None),
    ];
    for (status, label, direction) in states {
        let line = format!("7\t2026-09-30 08:00:00\t{status}\t2\t0\t0");
        let e = decode(&cdata(), line.as_bytes()).unwrap().remove(0);
        assert_eq!(e.kind, GateEventKind::AccessGranted);
        assert_eq!(e.detail.as_deref(), Some(label));
        assert_eq!(e.direction, direction);
    }
    let verifies = [
        (0, VerifyMethod::Pin),
        (1, VerifyMethod::Fingerprint),
        (2, VerifyMethod::Card),
        (3, VerifyMethod::Other("zkteco_verify_3".into())),
        (15, VerifyMethod::Face),
        (25, VerifyMethod::Palm),
        (200, VerifyMethod::Other("zkteco_verify_200".into())),
    ];
    for (verify, method) in verifies {
        let line = format!("7\t2026-09-30 08:00:00\t0\t{verify}\t0\t0");
        let e = decode(&cdata(), line.as_bytes()).unwrap().remove(0);
        assert_eq!(e.method, Some(method));
        assert_eq!(e.vendor_code, format!("ATTLOG/status=0/verify={verify}"));
    }
}

#[test]
fn heartbeat_registration_and_other_tables() {
    let poll = PayloadMeta::new(received_at())
        .with_path("/iclock/getrequest")
        .with_query("SN=CJDE193560303");
    let e = decode(&poll, b"").unwrap().remove(0);
    assert_eq!(e.kind, GateEventKind::Heartbeat);
    assert_eq!(e.device_id.as_deref(), Some("CJDE193560303"));

    let reg = PayloadMeta::new(received_at())
        .with_path("/iclock/cdata")
        .with_query("SN=CJDE193560303&options=all&pushver=2.4.1");
    let e = decode(&reg, b"").unwrap().remove(0);
    assert_eq!(e.kind, GateEventKind::Heartbeat);
    assert_eq!(e.detail.as_deref(), Some("registration"));

    let oper = PayloadMeta::new(received_at())
        .with_path("/iclock/cdata")
        .with_query("SN=CJDE193560303&table=OPERLOG&Stamp=1");
    let body = b"USER PIN=101\tName=Zhang\tPasswd=1234\tCard=[12345678]\tGrp=1\n";
    let e = decode(&oper, body).unwrap().remove(0);
    assert_eq!(e.kind, GateEventKind::Unknown);
    assert_eq!(e.vendor_code, "table=OPERLOG");
    assert!(e.raw.is_empty(), "enrolment data is withheld");
    assert!(
        e.detail
            .unwrap()
            .contains(&format!("{} bytes withheld", body.len()))
    );
}

#[test]
fn malformed_bodies_give_clear_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "ATTLOG body has no records"),
        (b"101 2026-09-30 17:00:00 0 1", "no tab-separated time"),
        (
            b"101\t2026-09-30T17:00:00+08:00\t0\t1",
            "is not YYYY-MM-DD HH:MM:SS",
        ),
        (b"101\tyesterday\t0\t1", "is not YYYY-MM-DD HH:MM:SS"),
        (
            b"101\t2026-09-30 17:00:00\tin\t1",
            "status \"in\" is not a number",
        ),
        (b"\t2026-09-30 17:00:00\t0\t1", "without a PIN"),
        (
            b"101\t2026-09-30 17:00:00\t0\t1\n\xff\xfe",
            "invalid UTF-8 at byte 28",
        ),
        (
            b"101\t2026-09-30 17:00:00\t0\t1\n102\t2026-09",
            "at line 2 (byte 28)",
        ),
        (b"\x00\x01\x02\x03", "no tab-separated time"),
        (b"\n\r\n", "no records"),
    ];
    for (body, want) in cases {
        let err = decode(&cdata(), body).unwrap_err();
        assert!(
            err.to_string().contains(want),
            "{:?}: {err}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(err.kind(), xl_core::ErrorKind::InvalidInput);
    }
    let no_table = PayloadMeta::new(received_at())
        .with_path("/iclock/cdata")
        .with_query("SN=X");
    assert!(
        decode(&no_table, b"")
            .unwrap_err()
            .to_string()
            .contains("no table=")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400),
                                   query in "[ -~]{0,40}") {
        let _ = decode(&cdata(), &bytes);
        let m = PayloadMeta::new(received_at()).with_query(&query);
        let _ = decode(&m, &bytes);
    }

    #[test]
    fn mutated_fixture_never_panics(at in any::<prop::sample::Index>(), byte in any::<u8>(),
                                    cut in any::<prop::sample::Index>()) {
        let mut f = ATTLOG_ONE_RECORD.to_vec();
        let i = at.index(f.len());
        f[i] = byte;
        f.truncate(cut.index(f.len() + 1));
        let _ = decode(&cdata(), &f);
    }

    #[test]
    fn well_formed_lines_always_decode(pin in "[0-9A-Za-z]{1,9}", status in 0u32..300,
                                       verify in 0u32..300, n in 1usize..5) {
        let line = format!("{pin}\t2026-09-30 17:00:00\t{status}\t{verify}\t0\t0\n");
        let body = line.repeat(n);
        let events = decode(&cdata(), body.as_bytes()).unwrap();
        prop_assert_eq!(events.len(), n);
    }
}
