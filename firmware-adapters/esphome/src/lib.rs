//! ESPHome lock and door-sensor state topics to gate events.
//!
//! An ESPHome node with the MQTT component publishes each entity's state as plain text on
//! `<prefix>/<component>/<object_id>/state` (prefix: the node name by default) and its
//! availability on `<prefix>/status` (`online`/`offline`, the last will). Payloads are
//! decoded by the topic's component:
//! - `lock`: `LOCKED`, `UNLOCKED`, `JAMMED` (the bolt could not move: an `alarm` with detail
//!   `lock_jammed`), `LOCKING` and `UNLOCKING` (the motor is moving: `door_locked` /
//!   `door_unlocked` with detail `locking` / `unlocking`);
//! - `binary_sensor` (a reed contact with `device_class: door`): `ON` open, `OFF` closed;
//! - `<prefix>/status`: `online` heartbeat, `offline` device offline.
//!
//! The device id is the topic without `/state` (`front-door/lock/front_door_lock`), or the
//! prefix for `status`. ESPHome states carry no time, person or method.
//!
//! README — codes implemented (vendor code `<component>=<STATE>`): lock LOCKED, UNLOCKED,
//! JAMMED, LOCKING, UNLOCKING; binary_sensor ON, OFF; status online, offline. Any other state
//! decodes as `unknown`.

use bytes::Bytes;
use xl_core::gate::{AdapterError, GateEvent, GateEventKind, PayloadMeta};

/// The firmware name in config and on the CLI.
pub const NAME: &str = "esphome";

/// The longest state text accepted; ESPHome states are a word.
const MAX_STATE_BYTES: usize = 64;

xl_fw_common::stateless_adapter!(
    /// The ESPHome adapter. Stateless.
    Esphome,
    NAME,
    decode
);

/// Decodes one ESPHome state message. The topic is required: it says what the state is of.
pub fn decode(meta: &PayloadMeta<'_>, payload: &[u8]) -> Result<Vec<GateEvent>, AdapterError> {
    let Some(topic) = meta.topic else {
        return Err(AdapterError::new(
            NAME,
            "no MQTT topic: ESPHome states are plain text and only the topic says what they are",
        ));
    };
    let text = std::str::from_utf8(payload)
        .map_err(|e| AdapterError::new(NAME, "invalid UTF-8").at_byte(payload, e.valid_up_to()))?
        .trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if text.is_empty() {
        return Err(AdapterError::new(NAME, "empty payload"));
    }
    if text.len() > MAX_STATE_BYTES {
        return Err(AdapterError::new(
            NAME,
            format!(
                "a state is a word, got {} bytes (is this topic an ESPHome state?)",
                text.len()
            ),
        )
        .at_byte(payload, 0));
    }
    let (component, device) = if let Some(prefix) = topic.strip_suffix("/status") {
        ("status", prefix)
    } else if let Some(entity) = topic.strip_suffix("/state") {
        let mut parts = entity.rsplitn(3, '/');
        let _object_id = parts.next();
        let component = parts.next().unwrap_or("");
        (component, entity)
    } else {
        return Err(AdapterError::new(
            NAME,
            format!(
                "topic {topic:?} is neither <prefix>/<component>/<id>/state nor <prefix>/status"
            ),
        ));
    };
    use GateEventKind as K;
    let (kind, detail) = match (component, text) {
        ("lock", "LOCKED") => (K::DoorLocked, None),
        ("lock", "UNLOCKED") => (K::DoorUnlocked, None),
        ("lock", "JAMMED") => (K::Alarm, Some("lock_jammed")),
        ("lock", "LOCKING") => (K::DoorLocked, Some("locking")),
        ("lock", "UNLOCKING") => (K::DoorUnlocked, Some("unlocking")),
        ("binary_sensor", "ON") => (K::DoorOpened, None),
        ("binary_sensor", "OFF") => (K::DoorClosed, None),
        ("status", "online") => (K::Heartbeat, None),
        ("status", "offline") => (K::DeviceOffline, None),
        _ => (K::Unknown, None),
    };
    let mut e = GateEvent::new(
        kind,
        format!("{component}={text}"),
        meta.received_at,
        Bytes::copy_from_slice(text.as_bytes()),
    );
    e.detail = detail.map(str::to_owned);
    e.device_id = (!device.is_empty()).then(|| device.to_owned());
    Ok(vec![e])
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;
    use proptest::prelude::*;

    fn at(topic: &str) -> PayloadMeta<'_> {
        PayloadMeta::new("2026-09-30T09:00:00Z".parse::<Timestamp>().unwrap()).with_topic(topic)
    }

    #[test]
    fn every_state() {
        use GateEventKind as K;
        let lock = "front-door/lock/front_door_lock/state";
        let contact = "front-door/binary_sensor/door_contact/state";
        let status = "front-door/status";
        let table = [
            (lock, "LOCKED", K::DoorLocked, None),
            (lock, "UNLOCKED", K::DoorUnlocked, None),
            (lock, "JAMMED", K::Alarm, Some("lock_jammed")),
            (lock, "LOCKING", K::DoorLocked, Some("locking")),
            (lock, "UNLOCKING", K::DoorUnlocked, Some("unlocking")),
            (lock, "NONE", K::Unknown, None),
            (contact, "ON", K::DoorOpened, None),
            (contact, "OFF", K::DoorClosed, None),
            (status, "online", K::Heartbeat, None),
            (status, "offline", K::DeviceOffline, None),
            (
                "front-door/sensor/temperature/state",
                "21.5",
                K::Unknown,
                None,
            ),
        ];
        for (topic, state, kind, detail) in table {
            let e = decode(&at(topic), format!("{state}\n").as_bytes())
                .unwrap()
                .remove(0);
            assert_eq!(e.kind, kind, "{topic} {state}");
            assert_eq!(e.detail.as_deref(), detail);
            assert!(e.vendor_code.ends_with(&format!("={state}")));
            assert_eq!(&e.raw[..], state.as_bytes());
        }
        let e = decode(&at(lock), b"LOCKED").unwrap().remove(0);
        assert_eq!(
            e.device_id.as_deref(),
            Some("front-door/lock/front_door_lock")
        );
        assert_eq!(e.vendor_code, "lock=LOCKED");
        let e = decode(&at(status), b"online").unwrap().remove(0);
        assert_eq!(e.device_id.as_deref(), Some("front-door"));
    }

    #[test]
    fn malformed_input_gives_clear_errors() {
        let lock = "n/lock/l/state";
        let no_topic = PayloadMeta::new("2026-09-30T09:00:00Z".parse::<Timestamp>().unwrap());
        assert!(
            decode(&no_topic, b"LOCKED")
                .unwrap_err()
                .to_string()
                .contains("no MQTT topic")
        );
        assert!(
            decode(&at(lock), b"")
                .unwrap_err()
                .to_string()
                .contains("empty payload")
        );
        assert!(
            decode(&at(lock), b"LOCK\xffED")
                .unwrap_err()
                .to_string()
                .contains("invalid UTF-8 at byte 4")
        );
        assert!(
            decode(&at(lock), &[b'A'; 100])
                .unwrap_err()
                .to_string()
                .contains("a state is a word")
        );
        assert!(
            decode(&at("n/lock/l"), b"LOCKED")
                .unwrap_err()
                .to_string()
                .contains("neither")
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100),
                                       topic in "[a-z_/]{0,30}") {
            let _ = decode(&at(&topic), &bytes);
            let _ = decode(&at("n/lock/l/state"), &bytes);
        }
    }
}
