//! esp-rfid (the open ESP8266/ESP32 RFID door firmware) MQTT messages to gate events.
//!
//! esp-rfid publishes JSON on `<topic>/send` (older versions: on `<topic>` itself):
//! - `{"type":"access","time":...,"isKnown":"true","access":"Always","username":"...","uid":"...",
//!   "door":"<hostname>"}`: note `isKnown` is a *string*. `access` is `Always` or `Admin`
//!   (granted), `Disabled` (the user exists but is disabled), `Expired` (past `validuntil`),
//!   or `Denied` with `isKnown` `"false"` (unknown tag). The MQTT `opendoor` command is
//!   reported as `username` `MQTT` with a blank `uid`: a remote open.
//! - `{"type":"boot",...}` when it connects, `{"type":"heartbeat",...}` periodically (older
//!   firmware spells it `hearthbeat`).
//! - log events when "MQTT events" is on: `{"type":"INFO"|"WARN"|"ERRO","src":...,"desc":...,
//!   "data":...,"cmd":"event"}`. From `src` `door`: `Door Open`/`Door Closed`; from `src`
//!   `tamper`: `Door was tampered!` (the door opened while the relay held it locked: forced)
//!   and `Door wasn't closed within max open time!` (held open).
//! - door status objects `{"door":"open"|"closed",...}` (some builds and bridges).
//!
//! In Home Assistant mode it also publishes plain-text states on `<topic>/io/door`
//! (`ON` open, `OFF` closed), `<topic>/io/tamper` (`ON`/`OFF`: a tamper condition starting and
//! ending) and `<topic>/avty` (`online`/`offline`); these are decoded by topic.
//!
//! Fields: `uid` is the card (masked), `username` the person's name, `hostname` (else
//! `door`) the device. `time` is `now()` on the device, taken as Unix seconds; doubt: firmware
//! built with a timezone offset applied to its clock reports local time as if it were UTC,
//! which shifts `device_time` by that offset (rules should prefer `received_at`).
//!
//! README — codes implemented (vendor code `type/...`): `access` with `Always`, `Admin`
//! (granted), `Disabled` (denied: no permission), `Expired` (denied: expired), `Denied` or
//! `isKnown` false (denied: card not found), any other value (unknown); `boot`, `heartbeat`,
//! `hearthbeat` (heartbeat); `INFO`/`WARN`/`ERRO` with `door` `Door Open`/`Door Closed`,
//! `tamper` `Door was tampered!` (forced) / `...max open time!` (held open) / anything else
//! (tamper); `door` status `open`/`closed`; topics `io/door`, `io/tamper`, `avty`. Other
//! types and log events decode as `unknown`.

use bytes::Bytes;
use serde_json::Value;
use xl_core::gate::{
    AdapterError, DenyReason, DeviceTime, EventPhase, GateEvent, GateEventKind, PayloadLocation,
    PayloadMeta, Person, VerifyMethod,
};
use xl_fw_common::{bool_field, i64_field, parse_json, str_field, trim_end, type_name, utf8};

/// The firmware name in config and on the CLI.
pub const NAME: &str = "esp-rfid";

xl_fw_common::stateless_adapter!(
    /// The esp-rfid adapter. Stateless.
    EspRfid,
    NAME,
    decode
);

/// Decodes one esp-rfid MQTT message.
pub fn decode(meta: &PayloadMeta<'_>, payload: &[u8]) -> Result<Vec<GateEvent>, AdapterError> {
    let trimmed = trim_end(payload);
    if let Some(topic) = meta.topic
        && let Some(events) = decode_io_topic(meta, topic, trimmed)?
    {
        return Ok(events);
    }
    let v = parse_json(NAME, trimmed)?;
    if !v.is_object() {
        return Err(AdapterError::new(
            NAME,
            format!("expected a JSON object, found {}", type_name(&v)),
        )
        .at(PayloadLocation::JsonPath("/".into())));
    }
    let raw = Bytes::copy_from_slice(trimmed);
    Ok(vec![decode_object(meta, &v, raw)])
}

/// The plain-text Home Assistant topics; `None` when the topic is not one of them.
fn decode_io_topic(
    meta: &PayloadMeta<'_>,
    topic: &str,
    payload: &[u8],
) -> Result<Option<Vec<GateEvent>>, AdapterError> {
    let which = ["/io/door", "/io/tamper", "/avty"]
        .into_iter()
        .find(|suffix| topic.ends_with(suffix));
    let Some(which) = which else {
        return Ok(None);
    };
    let text = utf8(NAME, payload)?.trim();
    let device = topic[..topic.len() - which.len()].trim_start_matches('/');
    use GateEventKind as K;
    let (kind, phase) = match (which, text.to_ascii_uppercase().as_str()) {
        ("/io/door", "ON") => (K::DoorOpened, None),
        ("/io/door", "OFF") => (K::DoorClosed, None),
        ("/io/tamper", "ON") => (K::Tamper, Some(EventPhase::Start)),
        ("/io/tamper", "OFF") => (K::Tamper, Some(EventPhase::Stop)),
        ("/avty", "ONLINE") => (K::Heartbeat, None),
        ("/avty", "OFFLINE") => (K::DeviceOffline, None),
        _ => (K::Unknown, None),
    };
    let code = format!("{}={text}", which.trim_start_matches('/'));
    let mut e = GateEvent::new(
        kind,
        code,
        meta.received_at,
        Bytes::copy_from_slice(payload),
    );
    e.phase = phase;
    e.device_id = (!device.is_empty()).then(|| device.to_owned());
    Ok(Some(vec![e]))
}

fn decode_object(meta: &PayloadMeta<'_>, v: &Value, raw: Bytes) -> GateEvent {
    use GateEventKind as K;
    let msg_type = str_field(v, "type").unwrap_or("");
    let mut e = match msg_type.to_ascii_lowercase().as_str() {
        "access" => access(meta, v, raw),
        "boot" => {
            let mut e = GateEvent::new(K::Heartbeat, "boot", meta.received_at, raw);
            e.detail = Some("boot".into());
            e
        }
        "heartbeat" | "hearthbeat" => {
            GateEvent::new(K::Heartbeat, msg_type.to_owned(), meta.received_at, raw)
        }
        "info" | "warn" | "erro" => log_event(meta, v, msg_type, raw),
        _ => match str_field(v, "door").map(str::to_ascii_lowercase).as_deref() {
            Some("open") => GateEvent::new(K::DoorOpened, "door=open", meta.received_at, raw),
            Some("closed" | "close") => {
                GateEvent::new(K::DoorClosed, "door=closed", meta.received_at, raw)
            }
            _ => GateEvent::new(
                K::Unknown,
                format!("type={msg_type}"),
                meta.received_at,
                raw,
            ),
        },
    };
    let door_is_name = str_field(v, "door")
        .is_some_and(|d| !matches!(d.to_ascii_lowercase().as_str(), "open" | "closed" | "close"));
    e.device_id = str_field(v, "hostname")
        .or_else(|| str_field(v, "door").filter(|_| door_is_name))
        .map(str::to_owned);
    if let Some(t) = i64_field(v, "time").and_then(DeviceTime::from_unix_seconds) {
        e.set_device_time(t);
    }
    e
}

fn access(meta: &PayloadMeta<'_>, v: &Value, raw: Bytes) -> GateEvent {
    use GateEventKind as K;
    let known = bool_field(v, "isKnown");
    let level = str_field(v, "access").unwrap_or("");
    let code = format!(
        "access/{}/isKnown={}",
        if level.is_empty() { "-" } else { level },
        known.map_or("-", |k| if k { "true" } else { "false" })
    );
    let mut e = match (level.to_ascii_lowercase().as_str(), known) {
        ("always" | "admin", Some(true) | None) => {
            let mut e = GateEvent::new(K::AccessGranted, code, meta.received_at, raw);
            if level.eq_ignore_ascii_case("admin") {
                e.detail = Some("admin".into());
            }
            e
        }
        ("disabled", _) => GateEvent::denied(DenyReason::NoPermission, code, meta.received_at, raw),
        ("expired", _) => GateEvent::denied(DenyReason::Expired, code, meta.received_at, raw),
        ("denied", _) | (_, Some(false)) => {
            GateEvent::denied(DenyReason::CardNotFound, code, meta.received_at, raw)
        }
        _ => GateEvent::new(K::Unknown, code, meta.received_at, raw),
    };
    let uid = str_field(v, "uid");
    let username = str_field(v, "username").filter(|u| !u.eq_ignore_ascii_case("Unknown"));
    if username == Some("MQTT") && uid.is_none() {
        // The MQTT "opendoor" command, reported as an access by user "MQTT".
        e.method = Some(VerifyMethod::Remote);
        e.person = None;
    } else {
        e.method = uid.map(|_| VerifyMethod::Card);
        e.person = Person::from_parts(None, username, uid);
    }
    if let Some(uid) = uid {
        e.redact_raw(uid);
    }
    e
}

fn log_event(meta: &PayloadMeta<'_>, v: &Value, level: &str, raw: Bytes) -> GateEvent {
    use GateEventKind as K;
    let src = str_field(v, "src").unwrap_or("");
    let desc = str_field(v, "desc").unwrap_or("");
    let lower = desc.to_ascii_lowercase();
    let kind = match src {
        "door" if lower.contains("open") => K::DoorOpened,
        "door" if lower.contains("close") => K::DoorClosed,
        "tamper" if lower.contains("max open time") => K::DoorHeldOpen,
        "tamper" if lower.contains("tampered") => K::DoorForcedOpen,
        "tamper" => K::Tamper,
        _ => K::Unknown,
    };
    GateEvent::new(kind, format!("{level}/{src}"), meta.received_at, raw)
}

#[cfg(test)]
mod tests;
