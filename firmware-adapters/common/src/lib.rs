//! Helpers shared by the firmware adapters: JSON parsing whose errors say where the payload
//! broke (byte offset, excerpt, a hint for the usual culprits: truncation, comments, invalid
//! UTF-8), and lenient field access for firmware that sends numbers as strings and booleans as
//! `"true"`.
//!
//! README: no codes of its own; it is a dependency of the `xl-fw-*` adapter crates only.

use serde_json::Value;
use serde_json::error::Category;
use xl_core::gate::{AdapterError, byte_offset_of};

/// `payload` without trailing NUL bytes and ASCII whitespace. Some C firmware publishes its
/// string buffer with the terminating NUL (`strlen + 1`); that is not a reason to reject it.
pub fn trim_end(payload: &[u8]) -> &[u8] {
    let end = payload
        .iter()
        .rposition(|&b| b != 0 && !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &payload[..end]
}

/// `payload` as UTF-8 text, or an error naming the first bad byte.
pub fn utf8<'a>(firmware: &'static str, payload: &'a [u8]) -> Result<&'a str, AdapterError> {
    std::str::from_utf8(payload)
        .map_err(|e| AdapterError::new(firmware, "invalid UTF-8").at_byte(payload, e.valid_up_to()))
}

/// Parses one JSON value. Errors say what went wrong and where: an empty payload, invalid
/// UTF-8, a truncated document, `//` or `/* */` comments, trailing garbage.
pub fn parse_json(firmware: &'static str, payload: &[u8]) -> Result<Value, AdapterError> {
    let trimmed = trim_end(payload);
    if trimmed.iter().all(u8::is_ascii_whitespace) {
        return Err(AdapterError::new(firmware, "empty payload"));
    }
    utf8(firmware, trimmed)?;
    serde_json::from_slice(trimmed).map_err(|e| json_error(firmware, trimmed, &e))
}

/// Turns a serde_json error on `payload` into a located [`AdapterError`].
pub fn json_error(firmware: &'static str, payload: &[u8], e: &serde_json::Error) -> AdapterError {
    let offset = byte_offset_of(payload, e.line(), e.column());
    let near_comment =
        |o: usize| payload.get(o) == Some(&b'/') && matches!(payload.get(o + 1), Some(b'/' | b'*'));
    let comment = (offset.saturating_sub(2)..=offset).any(near_comment);
    let what = match e.classify() {
        _ if comment => "JSON with comments (comments are not JSON)".to_owned(),
        Category::Eof => "JSON cut off before its end (truncated payload?)".to_owned(),
        Category::Syntax | Category::Data | Category::Io => format!("invalid JSON: {e}"),
    };
    AdapterError::new(firmware, what).at_byte(payload, offset)
}

/// The value at `key` in an object, ignoring `null`.
pub fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|v| !v.is_null())
}

/// A string field, trimmed; `None` when absent, not a string, or blank.
pub fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    field(v, key)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A field as text: a non-blank string, a number or a boolean. Devices send ids either way
/// (Hikvision `employeeNo` is a number, `employeeNoString` a string).
pub fn text_field(v: &Value, key: &str) -> Option<String> {
    value_text(field(v, key)?)
}

/// A scalar JSON value as text; `None` for blank strings, arrays and objects.
pub fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_owned())
        }
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A non-negative integer field given as a number or as a decimal string (`"691"`), or a
/// `0x` hexadecimal string.
pub fn u64_field(v: &Value, key: &str) -> Option<u64> {
    value_u64(field(v, key)?)
}

/// See [`u64_field`].
pub fn value_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15)
                .map(|f| f as u64)
        }),
        Value::String(s) => parse_u64_text(s),
        _ => None,
    }
}

/// A decimal or `0x`-hexadecimal unsigned integer in text.
pub fn parse_u64_text(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// A signed integer field given as a number or a decimal string.
pub fn i64_field(v: &Value, key: &str) -> Option<i64> {
    match field(v, key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A `u32` field (door numbers, codes); `None` when absent or out of range.
pub fn u32_field(v: &Value, key: &str) -> Option<u32> {
    u64_field(v, key).and_then(|n| u32::try_from(n).ok())
}

/// A boolean given as `true`, `"true"`, `"TRUE"`, `1` or `"1"` (and the false forms).
pub fn bool_field(v: &Value, key: &str) -> Option<bool> {
    value_bool(field(v, key)?)
}

/// See [`bool_field`].
pub fn value_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_u64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Escapes one JSON-pointer reference token (RFC 6901: `~` as `~0`, `/` as `~1`).
pub fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The JSON type name of `v`, for error messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Declares a stateless adapter: a unit struct whose [`FirmwareAdapter`] impl forwards to the
/// crate's `decode` function, so each crate states only its name and its decoder.
///
/// [`FirmwareAdapter`]: xl_core::gate::FirmwareAdapter
#[macro_export]
macro_rules! stateless_adapter {
    ($(#[$doc:meta])* $ty:ident, $name:expr, $decode:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $ty;

        impl ::xl_core::gate::FirmwareAdapter for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn decode(
                &self,
                meta: &::xl_core::gate::PayloadMeta<'_>,
                payload: &[u8],
            ) -> Result<Vec<::xl_core::gate::GateEvent>, ::xl_core::gate::AdapterError> {
                $decode(meta, payload)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::json;
    use xl_core::gate::{
        DenyReason, DeviceTime, Direction, EventPhase, GateEvent, GateEventKind, Person,
        VerifyMethod,
    };

    #[test]
    fn parse_json_explains_the_usual_failures() {
        let err = |p: &[u8]| parse_json("test", p).unwrap_err().to_string();
        assert_eq!(err(b""), "test payload: empty payload");
        assert_eq!(err(b" \r\n\0"), "test payload: empty payload");
        assert!(err(b"{\"a\":\xff}").contains("invalid UTF-8 at byte 5"));
        assert!(err(b"{\"a\":1").contains("cut off"), "{}", err(b"{\"a\":1"));
        let with_comment = b"{\n  // the door\n  \"a\": 1\n}";
        assert!(
            err(with_comment).contains("comments"),
            "{}",
            err(with_comment)
        );
        assert!(err(b"{\"a\":1} trailing").contains("invalid JSON"));
        assert!(err(b"\x00\x01\x02binary").contains("invalid JSON"));
        // A trailing NUL, as C firmware sends it, is fine.
        assert_eq!(parse_json("test", b"{\"a\":1}\0").unwrap(), json!({"a": 1}));
    }

    #[test]
    fn lenient_fields() {
        let v = json!({"n": 5, "s": "691", "h": "0x4b", "b": "true", "z": 0, "blank": " ",
                       "neg": -3, "f": 2.0, "null": null});
        assert_eq!(u64_field(&v, "n"), Some(5));
        assert_eq!(u64_field(&v, "s"), Some(691));
        assert_eq!(u64_field(&v, "h"), Some(0x4b));
        assert_eq!(u64_field(&v, "neg"), None);
        assert_eq!(u64_field(&v, "f"), Some(2));
        assert_eq!(i64_field(&v, "neg"), Some(-3));
        assert_eq!(bool_field(&v, "b"), Some(true));
        assert_eq!(bool_field(&v, "z"), Some(false));
        assert_eq!(str_field(&v, "blank"), None);
        assert_eq!(text_field(&v, "n").as_deref(), Some("5"));
        assert_eq!(field(&v, "null"), None);
        assert_eq!(pointer_token("a/b~c"), "a~1b~0c");
    }

    /// The flat JSON shape of a gate event (here because xl-core has no JSON dependency).
    #[test]
    fn gate_event_serializes_flat_and_round_trips() {
        let received_at = "2026-02-24T11:45:14Z".parse().unwrap();
        let mut e = GateEvent::denied(
            DenyReason::NoPermission,
            "5/0x6",
            received_at,
            Bytes::from_static(b"{\"cardNo\":\"****5678\"}"),
        );
        e.door = Some(1);
        e.direction = Some(Direction::Entry);
        e.phase = Some(EventPhase::Start);
        e.device_id = Some("e0:ca:3c:fc:a7:ce".into());
        e.person = Person::from_parts(Some("1001"), Some("张伟"), Some("12345678"));
        e.method = Some(VerifyMethod::Combined(vec![
            VerifyMethod::Card,
            VerifyMethod::Pin,
        ]));
        e.event_id = Some("1199".into());
        e.set_device_time(DeviceTime::parse("2026-02-24T19:45:13+08:00").unwrap());
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            json!({
                "kind": "access_denied",
                "deny_reason": "no_permission",
                "phase": "start",
                "device_id": "e0:ca:3c:fc:a7:ce",
                "door": 1,
                "direction": "entry",
                "device_time": "2026-02-24T11:45:13Z",
                "device_utc_offset": "+08:00",
                "device_local_time": "2026-02-24T19:45:13",
                "received_at": "2026-02-24T11:45:14Z",
                "person_id": "1001",
                "person_name": "张伟",
                "card": "****5678",
                "method": "card+pin",
                "vendor_code": "5/0x6",
                "event_id": "1199",
                "raw": "{\"cardNo\":\"****5678\"}",
            })
        );
        let back: GateEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);

        // A full card number cannot come in through deserialization either.
        let mut v = serde_json::to_value(&e).unwrap();
        v["card"] = json!("1234567890");
        let back: GateEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back.person.unwrap().card.unwrap().as_str(), "****7890");

        // Raw bytes that are not UTF-8 serialize lossily.
        let odd = GateEvent::new(
            GateEventKind::Unknown,
            "?",
            received_at,
            Bytes::from_static(b"\xff\x00ok"),
        );
        let v = serde_json::to_value(&odd).unwrap();
        assert_eq!(v["raw"], json!("\u{fffd}\u{0}ok"));
        assert_eq!(v.as_object().unwrap().len(), 4, "{v}");
    }
}
