//! Hikvision ISAPI access controllers and face terminals to gate events.
//!
//! Payloads understood:
//! - **HTTP push** ("HTTP listening"): the DS-K1T671 face terminal and the DS-K2600 door
//!   controllers POST `multipart/form-data` with a JSON part named `AccessControllerEvent`
//!   (some firmware: `event_log`) and an optional `Picture` JPEG part. The boundary comes from
//!   [`PayloadMeta::content_type`]; a body without one is sniffed from its first line. A body
//!   cut off mid-image still yields its events when the JSON part is whole; the picture bytes
//!   (possibly truncated) ride in [`GateEvent::picture`] so the transport keeps them as
//!   evidence. See [`multipart`].
//! - **The JSON part on its own** (as an MQTT bridge republishes it): an alert object with
//!   `eventType`, `dateTime`, `macAddress`... and an `AccessControllerEvent` object carrying
//!   `majorEventType`/`subEventType`.
//! - **`EventNotificationAlert`-wrapped JSON** (`alertStream` on some firmware):
//!   `{"EventNotificationAlert": {...the same alert...}}`; `heartBeat` alerts and the
//!   `videoloss`/`inactive` keep-alive that `alertStream` sends every few seconds decode as
//!   `heartbeat`.
//! - **Polled records** from `/ISAPI/AccessControl/AcsEvent?format=json`: a single record with
//!   `major`/`minor`/`time`, or the whole response `{"AcsEvent": {"InfoList": [...]}}`.
//!
//! XML alerts (the `alertStream` default) are refused with a clear error: set the device's
//! event format to JSON.
//!
//! Fields: the device is named by `macAddress`, else `deviceID`, else `ipAddress`;
//! `doorNo` (0 means "the device", not a door); `serialNo` is the event id; the person is
//! `employeeNoString` (or the numeric `employeeNo`), `name`, and `cardNo` masked; times carry
//! their offset (`2026-02-24T19:45:13+08:00`). The method comes from the minor code (0x4b is
//! face); `currentVerifyMode` is ignored: it is the door's configured mode
//! (`faceOrFpOrCardOrPw`), not what this person used. `attendanceStatus` `checkIn`/`checkOut`/... gives the
//! direction.
//!
//! README — codes implemented (vendor code `major/minor`, e.g. `5/0x4b`):
//! - major 5 (event): 0x01 valid card, 0x02 card+PIN, 0x03 card+PIN wrong PIN, 0x04 card+PIN
//!   timeout, 0x06 no permission, 0x07 invalid time period, 0x08 expired card, 0x09 card not
//!   found, 0x0a anti-passback, 0x15 door unlocked, 0x16 door locked, 0x17 exit button, 0x19
//!   door open, 0x1a door closed, 0x1b door abnormally open (forced), 0x1c door open timeout
//!   (held open), 0x26/0x27 fingerprint pass/fail, 0x28/0x29 card+fingerprint pass/fail, 0x2b
//!   card+fingerprint+PIN, 0x2e fingerprint+PIN, 0x31 fingerprint not enrolled, 0x36 face+fp,
//!   0x39 face+PIN, 0x3c face+card, 0x3f face+PIN+fp, 0x42 face+card+fp, 0x4b face passed,
//!   0x4c face failed, 0x50 face recognition failed, 0x65 employee no.+PIN, 0x71 blacklist,
//!   0x83 heartbeat, 0x85 tailgating, 0x87 forced passage, 0x88 climbing over gate, 0x97 PIN
//!   mismatch, 0x98 employee no. not found;
//! - major 1 (alarm): 0x404/0x405 zone tamper/restored, 0x406/0x407 card reader
//!   tamper/restored, 0x40a duress, 0x40c max failed card attempts, 0x41c/0x41d panic button
//!   triggered/restored;
//! - major 2 (exception): 0x27/0x407 network broken/restored, 0x403/0x404 low battery/restored,
//!   0x409/0x40a card reader offline/restored;
//! - major 3 (operation): 0x400 remote open door.
//!
//! Everything else decodes as `unknown` with its vendor code and raw payload.

pub mod codes;
pub mod multipart;

use bytes::Bytes;
use serde_json::Value;
use xl_core::gate::{
    AdapterError, DeviceTime, Direction, EventPicture, GateEvent, GateEventKind, PayloadLocation,
    PayloadMeta, Person,
};
use xl_fw_common::{parse_json, str_field, text_field, trim_end, type_name, u32_field, u64_field};

/// The firmware name in config and on the CLI.
pub const NAME: &str = "hikvision-isapi";

xl_fw_common::stateless_adapter!(
    /// The Hikvision ISAPI adapter. Stateless.
    HikvisionIsapi,
    NAME,
    decode
);

/// Decodes one Hikvision payload: a multipart HTTP push body or a JSON document.
pub fn decode(meta: &PayloadMeta<'_>, payload: &[u8]) -> Result<Vec<GateEvent>, AdapterError> {
    let is_multipart = meta
        .mime_type()
        .is_some_and(|m| m.starts_with("multipart/"));
    let boundary = match meta.content_type_param("boundary") {
        Some(b) if is_multipart => Some(b),
        _ => multipart::sniff_boundary(payload),
    };
    match boundary {
        Some(boundary) => decode_multipart(meta, payload, boundary),
        None if is_multipart => Err(AdapterError::new(
            NAME,
            "multipart body without a boundary parameter in Content-Type",
        )),
        None => decode_json(meta, payload),
    }
}

fn is_event_part(p: &multipart::Part<'_>) -> bool {
    let named = p.name.is_some_and(|n| {
        [
            "AccessControllerEvent",
            "event_log",
            "EventNotificationAlert",
        ]
        .iter()
        .any(|k| n.eq_ignore_ascii_case(k))
    });
    let json_type = p
        .content_type
        .is_some_and(|t| t.to_ascii_lowercase().contains("json"));
    let looks_json = p
        .body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{');
    named || json_type || (p.content_type.is_none() && looks_json)
}

fn is_picture_part(p: &multipart::Part<'_>) -> bool {
    p.name.is_some_and(|n| n.eq_ignore_ascii_case("Picture"))
        || p.content_type
            .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("image/"))
}

fn decode_multipart(
    meta: &PayloadMeta<'_>,
    body: &[u8],
    boundary: &str,
) -> Result<Vec<GateEvent>, AdapterError> {
    let parts = multipart::parse(body, boundary)?;
    let mut events: Vec<GateEvent> = Vec::new();
    // Events of the latest event part: a picture part belongs to the event part before it.
    let mut latest_start = 0;
    let mut saw_event_part = false;
    for part in &parts {
        if is_event_part(part) {
            // A part without its closing boundary is whole only if its Content-Length says
            // so; alertStream parts without one are tried, the JSON parser judges.
            if !part.complete && part.content_length.is_some() {
                return Err(AdapterError::new(
                    NAME,
                    format!(
                        "the {} part was cut off before its end",
                        part.name.unwrap_or("JSON")
                    ),
                )
                .at_byte(body, part.body_offset));
            }
            saw_event_part = true;
            latest_start = events.len();
            let decoded = decode_json(meta, part.body).map_err(|e| {
                let within = e
                    .location()
                    .map(|l| format!(" ({l} of the part)"))
                    .unwrap_or_default();
                AdapterError::new(
                    NAME,
                    format!(
                        "in part {}: {}{within}",
                        part.name.unwrap_or("?"),
                        e.message()
                    ),
                )
                .at_byte(body, part.body_offset)
            })?;
            events.extend(decoded);
        } else if is_picture_part(part) {
            let picture = EventPicture {
                content_type: part.content_type.map(str::to_owned),
                bytes: Bytes::copy_from_slice(part.body),
                truncated: !part.complete,
            };
            for e in &mut events[latest_start..] {
                if e.picture.is_none() {
                    e.picture = Some(picture.clone());
                }
            }
        }
    }
    if !saw_event_part {
        return Err(AdapterError::new(
            NAME,
            "multipart body has no AccessControllerEvent, event_log or JSON part",
        ));
    }
    Ok(events)
}

fn decode_json(meta: &PayloadMeta<'_>, payload: &[u8]) -> Result<Vec<GateEvent>, AdapterError> {
    let trimmed = trim_end(payload);
    if let Some(first) = trimmed.iter().position(|b| !b.is_ascii_whitespace())
        && trimmed[first] == b'<'
    {
        return Err(AdapterError::new(
            NAME,
            "XML EventNotificationAlert is not supported; set the device's event format to JSON",
        )
        .at_byte(trimmed, first));
    }
    let v = parse_json(NAME, trimmed)?;
    let raw = Bytes::copy_from_slice(trimmed);
    let mut out = Vec::new();
    decode_value(meta, &v, &raw, "", &mut out)?;
    Ok(out)
}

/// Decodes a JSON value found at `path`, appending events to `out`.
fn decode_value(
    meta: &PayloadMeta<'_>,
    v: &Value,
    raw: &Bytes,
    path: &str,
    out: &mut Vec<GateEvent>,
) -> Result<(), AdapterError> {
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let item_raw = record_raw(item);
                decode_value(meta, item, &item_raw, &format!("{path}/{i}"), out)?;
            }
            Ok(())
        }
        Value::Object(obj) => {
            if let Some(inner) = obj.get("EventNotificationAlert") {
                return decode_value(
                    meta,
                    inner,
                    raw,
                    &format!("{path}/EventNotificationAlert"),
                    out,
                );
            }
            if let Some(acs) = obj.get("AcsEvent") {
                return decode_poll_response(meta, acs, &format!("{path}/AcsEvent"), out);
            }
            if obj.contains_key("eventType") {
                return decode_alert(meta, v, raw, path, out);
            }
            if obj.contains_key("major") {
                out.push(decode_record(
                    meta,
                    v,
                    raw,
                    path,
                    &Outer::default(),
                    Keys::POLL,
                )?);
                return Ok(());
            }
            if obj.contains_key("majorEventType") {
                out.push(decode_record(
                    meta,
                    v,
                    raw,
                    path,
                    &Outer::default(),
                    Keys::PUSH,
                )?);
                return Ok(());
            }
            Err(AdapterError::new(
                NAME,
                "not a Hikvision ISAPI event: no eventType, major/minor, AcsEvent or \
                 EventNotificationAlert",
            )
            .at(PayloadLocation::JsonPath(path_or_root(path))))
        }
        other => Err(AdapterError::new(
            NAME,
            format!("expected a JSON object, found {}", type_name(other)),
        )
        .at(PayloadLocation::JsonPath(path_or_root(path)))),
    }
}

fn path_or_root(path: &str) -> String {
    if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    }
}

/// A record of a larger document, re-serialized compactly to be its event's raw payload.
fn record_raw(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

fn decode_poll_response(
    meta: &PayloadMeta<'_>,
    acs: &Value,
    path: &str,
    out: &mut Vec<GateEvent>,
) -> Result<(), AdapterError> {
    let Some(obj) = acs.as_object() else {
        return Err(AdapterError::new(
            NAME,
            format!("AcsEvent must be an object, found {}", type_name(acs)),
        )
        .at(PayloadLocation::JsonPath(path.to_owned())));
    };
    // "responseStatusStrg": "NO MATCH" comes without InfoList: no records, no events.
    let Some(list) = obj.get("InfoList") else {
        return Ok(());
    };
    let Some(items) = list.as_array() else {
        return Err(AdapterError::new(
            NAME,
            format!("InfoList must be an array, found {}", type_name(list)),
        )
        .at(PayloadLocation::JsonPath(format!("{path}/InfoList"))));
    };
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}/InfoList/{i}");
        out.push(decode_record(
            meta,
            item,
            &record_raw(item),
            &item_path,
            &Outer::default(),
            Keys::POLL,
        )?);
    }
    Ok(())
}

/// What the alert around an `AccessControllerEvent` says.
#[derive(Default)]
struct Outer {
    device_id: Option<String>,
    time: Option<DeviceTime>,
}

/// Field names: push alerts say `majorEventType`/`subEventType`, polled records
/// `major`/`minor`.
#[derive(Clone, Copy)]
struct Keys {
    major: &'static str,
    minor: &'static str,
}

impl Keys {
    const PUSH: Keys = Keys {
        major: "majorEventType",
        minor: "subEventType",
    };
    const POLL: Keys = Keys {
        major: "major",
        minor: "minor",
    };
}

fn decode_alert(
    meta: &PayloadMeta<'_>,
    alert: &Value,
    raw: &Bytes,
    path: &str,
    out: &mut Vec<GateEvent>,
) -> Result<(), AdapterError> {
    let outer = Outer {
        device_id: str_field(alert, "macAddress")
            .or_else(|| str_field(alert, "deviceID"))
            .or_else(|| str_field(alert, "ipAddress"))
            .map(str::to_owned),
        time: str_field(alert, "dateTime").and_then(DeviceTime::parse),
    };
    let event_type = str_field(alert, "eventType").unwrap_or("");
    let state = str_field(alert, "eventState").unwrap_or("");
    let simple = |kind: GateEventKind, code: String| {
        let mut e = GateEvent::new(kind, code, meta.received_at, raw.clone());
        e.device_id = outer.device_id.clone();
        if let Some(t) = outer.time {
            e.set_device_time(t);
        }
        e
    };
    if event_type.eq_ignore_ascii_case("AccessControllerEvent")
        || alert.get("AccessControllerEvent").is_some()
    {
        let inner_path = format!("{path}/AccessControllerEvent");
        let Some(inner) = alert.get("AccessControllerEvent") else {
            return Err(AdapterError::new(
                NAME,
                "eventType is AccessControllerEvent but the AccessControllerEvent object is missing",
            )
            .at(PayloadLocation::JsonPath(inner_path)));
        };
        out.push(decode_record(
            meta,
            inner,
            raw,
            &inner_path,
            &outer,
            Keys::PUSH,
        )?);
    } else if event_type.eq_ignore_ascii_case("heartBeat") {
        out.push(simple(
            GateEventKind::Heartbeat,
            "eventType=heartBeat".into(),
        ));
    } else if event_type.eq_ignore_ascii_case("videoloss") && state.eq_ignore_ascii_case("inactive")
    {
        // alertStream's keep-alive: "videoloss" with state "inactive" every few seconds.
        let mut e = simple(GateEventKind::Heartbeat, "eventType=videoloss".into());
        e.detail = Some("alert_stream_keepalive".into());
        out.push(e);
    } else {
        out.push(simple(
            GateEventKind::Unknown,
            format!("eventType={event_type}"),
        ));
    }
    Ok(())
}

fn decode_record(
    meta: &PayloadMeta<'_>,
    rec: &Value,
    raw: &Bytes,
    path: &str,
    outer: &Outer,
    keys: Keys,
) -> Result<GateEvent, AdapterError> {
    if !rec.is_object() {
        return Err(AdapterError::new(
            NAME,
            format!(
                "an event record must be an object, found {}",
                type_name(rec)
            ),
        )
        .at(PayloadLocation::JsonPath(path_or_root(path))));
    }
    let code = |key: &'static str| {
        u64_field(rec, key).ok_or_else(|| {
            AdapterError::new(NAME, format!("{key} missing or not a non-negative integer"))
                .at(PayloadLocation::JsonPath(format!("{path}/{key}")))
        })
    };
    let major = code(keys.major)?;
    let minor = code(keys.minor)?;
    let vendor_code = format!("{major}/{minor:#x}");
    let mut e = match codes::meaning(major, minor) {
        Some(m) => {
            let mut e = GateEvent::new(m.kind, vendor_code, meta.received_at, raw.clone());
            e.deny_reason = m.reason;
            e.phase = m.phase;
            e.detail = m.detail.map(str::to_owned);
            e.method = m.method;
            e
        }
        None => GateEvent::new(
            GateEventKind::Unknown,
            vendor_code,
            meta.received_at,
            raw.clone(),
        ),
    };
    e.device_id = outer.device_id.clone();
    let time = str_field(rec, "time")
        .and_then(DeviceTime::parse)
        .or(outer.time);
    if let Some(t) = time {
        e.set_device_time(t);
    }
    e.door = u32_field(rec, "doorNo").filter(|&d| d > 0);
    e.event_id = u64_field(rec, "serialNo").map(|n| n.to_string());
    let id = str_field(rec, "employeeNoString")
        .map(str::to_owned)
        .or_else(|| text_field(rec, "employeeNo"));
    let card = str_field(rec, "cardNo");
    e.person = Person::from_parts(id.as_deref(), str_field(rec, "name"), card);
    e.direction = match str_field(rec, "attendanceStatus") {
        Some("checkIn" | "breakIn" | "overtimeIn") => Some(Direction::Entry),
        Some("checkOut" | "breakOut" | "overtimeOut") => Some(Direction::Exit),
        _ => None,
    };
    if let Some(card) = card {
        e.redact_raw(card);
    }
    Ok(e)
}

#[cfg(test)]
mod tests;
