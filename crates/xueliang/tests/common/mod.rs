//! Shared by the hub's integration tests: the test broker, the sample video, a door-forced
//! payload.

#![allow(dead_code, reason = "each test file uses its own part")]

use std::path::PathBuf;

/// The Mosquitto the tests use: `XUELIANG_TEST_MQTT` (host:port), default 127.0.0.1:1883.
pub fn broker() -> (String, u16) {
    let addr = std::env::var("XUELIANG_TEST_MQTT").unwrap_or_else(|_| "127.0.0.1:1883".into());
    let (host, port) = addr
        .rsplit_once(':')
        .expect("XUELIANG_TEST_MQTT is host:port");
    (
        host.to_owned(),
        port.parse().expect("XUELIANG_TEST_MQTT port"),
    )
}

/// vtest.avi from the fetched media (people walking across a square).
pub fn vtest() -> String {
    let media = std::env::var("XUELIANG_MEDIA")
        .ok()
        .filter(|m| !m.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| xl_detect::cache_dir().join("media"));
    let path = media.join("vtest.avi");
    assert!(
        path.is_file(),
        "{} missing: run scripts/setup",
        path.display()
    );
    path.display().to_string()
}

/// A Hikvision access-controller event (the DS-K1T fixture) turned into "door abnormally
/// open" (major 5, minor 0x1b) with its own serial number and the current time.
pub fn forced_open(serial: u64) -> String {
    let fixture = include_str!(
        "../../../../firmware-adapters/hikvision-isapi/testdata/hikvision_ds-k1t_face-pass_http-push.json"
    );
    let mut v: serde_json::Value = serde_json::from_str(fixture).unwrap();
    let ev = &mut v["AccessControllerEvent"];
    ev["subEventType"] = 0x1b.into();
    ev["serialNo"] = serial.into();
    for k in ["name", "employeeNoString", "currentVerifyMode", "FaceRect"] {
        ev.as_object_mut().unwrap().remove(k);
    }
    v["dateTime"] = jiff::Timestamp::now().to_string().into();
    v.to_string()
}

/// A fresh directory under the system's temp directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xl-{name}-{:x}", rand::random::<u64>()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
