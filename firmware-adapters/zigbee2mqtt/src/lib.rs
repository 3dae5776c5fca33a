//! Zigbee2MQTT door contacts and locks to gate events.
//!
//! Zigbee2MQTT publishes each device's state as a JSON object on `<base>/<friendly_name>`
//! (base `zigbee2mqtt` by default), the whole state every time any attribute changes, and its
//! availability on `<base>/<friendly_name>/availability` (`{"state":"online"}`, or the plain
//! text `online`/`offline` of older versions). The friendly name (the topic after the base)
//! becomes the event's `device_id`.
//!
//! One state object may yield several events:
//! - `contact` (door/window sensors such as the Aqara MCCGQ11LM): **`false` means OPEN**,
//!   `true` closed;
//! - `tamper: true` (the sensor's case opened) and `battery_low: true` (an `alarm` with detail
//!   `battery_low`); their `false` values yield nothing;
//! - `lock_state` (Yale, Danalock, ID Lock...): `locked`, `unlocked`, `not_fully_locked` (an
//!   `alarm` with detail `not_fully_locked`); `state` `LOCK`/`UNLOCK` when `lock_state` is
//!   absent;
//! - `action`, the Zigbee door-lock operation event, with `action_source_name` (`keypad`,
//!   `rfid`, `rf`, `manual`) and `action_user` (the user slot, kept as the person id).
//!
//! Because the whole state is repeated, a battery report repeats `door_opened` too; the rules
//! engine deduplicates repeats. A state object with none of these fields is proof of life and
//! decodes as one `heartbeat`. `last_seen` (when enabled in Zigbee2MQTT: ISO 8601 or epoch
//! milliseconds) is the bridge's clock, kept as the device time.
//!
//! README — codes implemented (vendor code `field=value`): `contact` true/false; `tamper`
//! true; `battery_low` true; `lock_state` locked/unlocked/not_fully_locked; `state`
//! LOCK/UNLOCK; `action` lock, one_touch_lock, key_lock, auto_lock, schedule_lock,
//! manual_lock (door_locked), unlock (access_granted by keypad PIN, RFID card or RF remote;
//! door_unlocked when manual), key_unlock (access_granted, key), schedule_unlock,
//! manual_unlock (door_unlocked), lock_failure_invalid_pin_or_id,
//! unlock_failure_invalid_pin_or_id (denied: invalid PIN, or card not found from RFID),
//! lock_failure_invalid_schedule, unlock_failure_invalid_schedule (denied: invalid time
//! period), unknown, non_access_user_operational_event and any other action (unknown);
//! availability online (heartbeat) / offline (device_offline).

use bytes::Bytes;
use serde_json::Value;
use xl_core::gate::{
    AdapterError, DenyReason, DeviceTime, GateEvent, GateEventKind, PayloadLocation, PayloadMeta,
    Person, VerifyMethod,
};
use xl_fw_common::{
    field, i64_field, parse_json, str_field, text_field, trim_end, type_name, utf8,
};

/// The firmware name in config and on the CLI.
pub const NAME: &str = "zigbee2mqtt";

xl_fw_common::stateless_adapter!(
    /// The Zigbee2MQTT adapter. Stateless.
    Zigbee2Mqtt,
    NAME,
    decode
);

/// Decodes one Zigbee2MQTT message (the topic, when given, names the device).
pub fn decode(meta: &PayloadMeta<'_>, payload: &[u8]) -> Result<Vec<GateEvent>, AdapterError> {
    let trimmed = trim_end(payload);
    let raw = Bytes::copy_from_slice(trimmed);
    let topic = meta.topic.unwrap_or("");
    let mut segments = topic.splitn(2, '/');
    let _base = segments.next();
    let rest = segments.next().unwrap_or("");
    if rest == "bridge" || rest.starts_with("bridge/") {
        return Err(AdapterError::new(
            NAME,
            format!("{topic} is a Zigbee2MQTT bridge topic, not a device message"),
        ));
    }
    if let Some(device) = rest.strip_suffix("/availability") {
        return availability(meta, device, trimmed, raw).map(|e| vec![e]);
    }
    let device = (!rest.is_empty()).then(|| rest.to_owned());
    let v = parse_json(NAME, trimmed)?;
    if !v.is_object() {
        return Err(AdapterError::new(
            NAME,
            format!("expected a JSON object, found {}", type_name(&v)),
        )
        .at(PayloadLocation::JsonPath("/".into())));
    }
    let mut out = state_events(meta, &v, &raw);
    if out.is_empty() {
        let mut e = GateEvent::new(GateEventKind::Heartbeat, "state", meta.received_at, raw);
        e.detail = Some("state_report".into());
        out.push(e);
    }
    let time = match field(&v, "last_seen") {
        Some(Value::String(s)) => DeviceTime::parse(s),
        Some(Value::Number(_)) => i64_field(&v, "last_seen")
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .map(|t| DeviceTime {
                instant: Some(t),
                ..DeviceTime::default()
            }),
        _ => None,
    };
    for e in &mut out {
        e.device_id.clone_from(&device);
        if let Some(t) = time {
            e.set_device_time(t);
        }
    }
    Ok(out)
}

fn availability(
    meta: &PayloadMeta<'_>,
    device: &str,
    payload: &[u8],
    raw: Bytes,
) -> Result<GateEvent, AdapterError> {
    let text = utf8(NAME, payload)?.trim();
    let state = if text.starts_with('{') {
        let v = parse_json(NAME, payload)?;
        str_field(&v, "state").unwrap_or("").to_owned()
    } else {
        text.to_owned()
    };
    let kind = match state.to_ascii_lowercase().as_str() {
        "online" => GateEventKind::Heartbeat,
        "offline" => GateEventKind::DeviceOffline,
        _ => GateEventKind::Unknown,
    };
    let mut e = GateEvent::new(kind, format!("availability={state}"), meta.received_at, raw);
    e.device_id = (!device.is_empty()).then(|| device.to_owned());
    Ok(e)
}

fn state_events(meta: &PayloadMeta<'_>, v: &Value, raw: &Bytes) -> Vec<GateEvent> {
    use GateEventKind as K;
    let new = |kind: K, code: String| GateEvent::new(kind, code, meta.received_at, raw.clone());
    let mut out = Vec::new();
    if let Some(contact) = field(v, "contact").and_then(Value::as_bool) {
        let kind = if contact {
            K::DoorClosed
        } else {
            K::DoorOpened
        };
        out.push(new(kind, format!("contact={contact}")));
    }
    if field(v, "tamper").and_then(Value::as_bool) == Some(true) {
        out.push(new(K::Tamper, "tamper=true".into()));
    }
    if field(v, "battery_low").and_then(Value::as_bool) == Some(true) {
        let mut e = new(K::Alarm, "battery_low=true".into());
        e.detail = Some("battery_low".into());
        out.push(e);
    }
    match str_field(v, "lock_state") {
        Some(state) => {
            let code = format!("lock_state={state}");
            let mut e = match state {
                "locked" => new(K::DoorLocked, code),
                "unlocked" => new(K::DoorUnlocked, code),
                "not_fully_locked" => new(K::Alarm, code),
                _ => new(K::Unknown, code),
            };
            if state == "not_fully_locked" {
                e.detail = Some("not_fully_locked".into());
            }
            out.push(e);
        }
        None => match str_field(v, "state") {
            Some(s @ "LOCK") => out.push(new(K::DoorLocked, format!("state={s}"))),
            Some(s @ "UNLOCK") => out.push(new(K::DoorUnlocked, format!("state={s}"))),
            _ => {}
        },
    }
    if let Some(action) = str_field(v, "action") {
        out.push(lock_action(meta, v, action, raw));
    }
    out
}

fn lock_action(meta: &PayloadMeta<'_>, v: &Value, action: &str, raw: &Bytes) -> GateEvent {
    use GateEventKind as K;
    let source = str_field(v, "action_source_name");
    let code = match source {
        Some(s) => format!("action={action}/source={s}"),
        None => format!("action={action}"),
    };
    let method = match source {
        Some("keypad") => Some(VerifyMethod::Pin),
        Some("rfid") => Some(VerifyMethod::Card),
        Some("rf") => Some(VerifyMethod::Remote),
        _ => None,
    };
    let new = |kind: K| GateEvent::new(kind, code.clone(), meta.received_at, raw.clone());
    let mut e = match action {
        "lock" | "one_touch_lock" | "key_lock" | "auto_lock" | "schedule_lock" | "manual_lock" => {
            let mut e = new(K::DoorLocked);
            e.detail = Some(action.to_owned());
            e
        }
        "unlock" if source == Some("manual") => {
            let mut e = new(K::DoorUnlocked);
            e.detail = Some("manual_unlock".into());
            e
        }
        "unlock" => {
            let mut e = new(K::AccessGranted);
            e.method = method;
            e
        }
        "key_unlock" => {
            let mut e = new(K::AccessGranted);
            e.method = Some(VerifyMethod::Key);
            e
        }
        "schedule_unlock" | "manual_unlock" => {
            let mut e = new(K::DoorUnlocked);
            e.detail = Some(action.to_owned());
            e
        }
        "lock_failure_invalid_pin_or_id" | "unlock_failure_invalid_pin_or_id" => {
            let reason = if source == Some("rfid") {
                DenyReason::CardNotFound
            } else {
                DenyReason::InvalidPin
            };
            let mut e = GateEvent::denied(reason, code.clone(), meta.received_at, raw.clone());
            e.method = method;
            e
        }
        "lock_failure_invalid_schedule" | "unlock_failure_invalid_schedule" => {
            let mut e = GateEvent::denied(
                DenyReason::InvalidTimePeriod,
                code.clone(),
                meta.received_at,
                raw.clone(),
            );
            e.method = method;
            e
        }
        _ => new(K::Unknown),
    };
    if matches!(e.kind, K::AccessGranted | K::AccessDenied) {
        let user = text_field(v, "action_user");
        e.person = Person::from_parts(user.as_deref(), None, None);
    }
    e
}

#[cfg(test)]
mod tests;
