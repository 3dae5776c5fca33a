//! A configurable JSON adapter: an integrator adds a firmware by writing a table in the hub's
//! TOML config, without code.
//!
//! The config says where each field is (as RFC 6901 JSON pointers) and what each code value
//! means:
//!
//! ```toml
//! [[gates.firmware]]
//! name = "acme-x100"            # a name for this dialect, shown in errors
//! events = "/records"           # optional: a pointer to an array of events
//! time_format = "auto"          # auto | rfc3339 | local | unix_seconds | unix_millis
//! door_zero_based = false       # true when the device numbers doors from 0
//!
//! [gates.firmware.fields]
//! code = "/event/code"          # required: the value looked up in [codes]
//! door = "/event/door"
//! person_id = "/user/id"
//! person_name = "/user/name"
//! card = "/user/card"           # masked to its last four characters
//! time = "/ts"
//! event_id = "/seq"
//! device_id = "/sn"
//! method = "/event/verify"      # looked up in [methods], else read as a method name
//! direction = "/event/dir"      # entry/in/enter or exit/out/leave
//!
//! [gates.firmware.codes]
//! "1" = { kind = "access_granted", method = "card" }
//! "2" = { kind = "access_denied", reason = "no_permission" }
//! "door_open" = { kind = "door_opened" }
//! "tamper" = { kind = "tamper", phase = "start", detail = "case_opened" }
//!
//! [gates.firmware.methods]
//! "15" = "face"
//! "3" = "card+pin"
//! ```
//!
//! Where the config table lives is the binary's business; this crate owns the struct
//! ([`GenericConfig`], `deny_unknown_fields` throughout) and checks it with
//! [`GenericAdapter::new`], whose errors name the key path and the fix.
//!
//! Code values are compared as text: a JSON number `1` matches the key `"1"`. A code not in
//! the table decodes as `unknown` with the raw payload; a payload without a code at the
//! configured pointer is an error.
//!
//! README — codes implemented: none built in; every code comes from the config's `[codes]`
//! table, every kind and deny reason of `xl_core::gate` can be targeted.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use xl_core::ErrorKind;
use xl_core::gate::{
    AdapterError, DenyReason, DeviceTime, Direction, EventPhase, FirmwareAdapter, GateEvent,
    GateEventKind, PayloadLocation, PayloadMeta, Person, VerifyMethod,
};
use xl_fw_common::{parse_json, trim_end, type_name, value_text, value_u64};

/// The firmware name in config and on the CLI.
pub const NAME: &str = "generic";

/// One configured JSON dialect.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericConfig {
    /// A name for the dialect, e.g. `acme-x100`. Shown in decode errors. Required.
    pub name: String,
    /// A JSON pointer to an array of events. Default: none; the payload is one event (an
    /// object) or an array of events.
    #[serde(default)]
    pub events: Option<String>,
    /// Where the fields are.
    pub fields: FieldPaths,
    /// What each code value means. Required, may not be empty.
    pub codes: BTreeMap<String, CodeMeaning>,
    /// Method code values to methods (`"15" = "face"`). Default: empty, the value is read as
    /// a method name (`card`, `face`, `card+pin`...).
    #[serde(default)]
    pub methods: BTreeMap<String, VerifyMethod>,
    /// How the time field is written. Default: `auto`.
    #[serde(default)]
    pub time_format: TimeFormat,
    /// Whether the device numbers doors from 0 (then 1 is added). Default: false.
    #[serde(default)]
    pub door_zero_based: bool,
}

/// JSON pointers (RFC 6901) to the fields of one event. Only `code` is required.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldPaths {
    /// The event code, looked up in `codes`. Required.
    pub code: String,
    #[serde(default)]
    pub door: Option<String>,
    #[serde(default)]
    pub person_id: Option<String>,
    #[serde(default)]
    pub person_name: Option<String>,
    /// The card number; masked to its last four characters, and redacted from the raw payload.
    #[serde(default)]
    pub card: Option<String>,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub direction: Option<String>,
}

/// What one code value means.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeMeaning {
    pub kind: GateEventKind,
    /// Required with `access_denied`, not allowed otherwise.
    #[serde(default)]
    pub reason: Option<DenyReason>,
    /// The method this code implies, used when the payload has no method field.
    #[serde(default)]
    pub method: Option<VerifyMethod>,
    #[serde(default)]
    pub phase: Option<EventPhase>,
    /// A snake_case label refining the kind (`panic_button`).
    #[serde(default)]
    pub detail: Option<String>,
}

/// How the time field is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// Numbers are Unix seconds (milliseconds when above 10^11); strings are RFC 3339 or a
    /// wall clock.
    #[default]
    Auto,
    /// RFC 3339 with an offset.
    Rfc3339,
    /// A wall clock without offset, `YYYY-MM-DD HH:MM:SS`.
    Local,
    UnixSeconds,
    UnixMillis,
}

/// A config that cannot work, with the key path and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("generic firmware {name:?}: {key}: {message}")]
pub struct ConfigError {
    pub name: String,
    /// The offending key, e.g. `fields.door` or `codes."2".reason`.
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

/// The adapter for one [`GenericConfig`].
#[derive(Debug, Clone)]
pub struct GenericAdapter {
    config: GenericConfig,
}

impl GenericAdapter {
    /// Checks `config`: pointers are valid RFC 6901, `codes` is not empty, deny reasons go
    /// with `access_denied` and only there.
    pub fn new(config: GenericConfig) -> Result<GenericAdapter, ConfigError> {
        let err = |key: String, message: String| ConfigError {
            name: config.name.clone(),
            key,
            message,
        };
        if config.name.trim().is_empty() {
            return Err(err("name".into(), "must not be empty".into()));
        }
        let f = &config.fields;
        let pointers = [
            ("events", config.events.as_ref()),
            ("fields.code", Some(&f.code)),
            ("fields.door", f.door.as_ref()),
            ("fields.person_id", f.person_id.as_ref()),
            ("fields.person_name", f.person_name.as_ref()),
            ("fields.card", f.card.as_ref()),
            ("fields.time", f.time.as_ref()),
            ("fields.event_id", f.event_id.as_ref()),
            ("fields.device_id", f.device_id.as_ref()),
            ("fields.method", f.method.as_ref()),
            ("fields.direction", f.direction.as_ref()),
        ];
        for (key, p) in pointers {
            if let Some(p) = p
                && !p.is_empty()
                && !p.starts_with('/')
            {
                return Err(err(
                    key.into(),
                    format!("{p:?} is not a JSON pointer; write it as \"/{p}\""),
                ));
            }
        }
        if config.codes.is_empty() {
            return Err(err(
                "codes".into(),
                "is empty; map at least one code value to a kind".into(),
            ));
        }
        for (code, m) in &config.codes {
            let denied = m.kind == GateEventKind::AccessDenied;
            if denied && m.reason.is_none() {
                return Err(err(
                    format!("codes.{code:?}.reason"),
                    "access_denied needs a reason (e.g. reason = \"no_permission\")".into(),
                ));
            }
            if !denied && m.reason.is_some() {
                return Err(err(
                    format!("codes.{code:?}.reason"),
                    format!("only access_denied takes a reason, this code is {}", m.kind),
                ));
            }
        }
        Ok(GenericAdapter { config })
    }

    pub fn config(&self) -> &GenericConfig {
        &self.config
    }

    fn error(&self, message: impl std::fmt::Display) -> AdapterError {
        AdapterError::new(NAME, format!("[{}] {message}", self.config.name))
    }

    /// Decodes one payload.
    pub fn decode(
        &self,
        meta: &PayloadMeta<'_>,
        payload: &[u8],
    ) -> Result<Vec<GateEvent>, AdapterError> {
        let trimmed = trim_end(payload);
        let v = parse_json(NAME, trimmed).map_err(|e| {
            let mut out = self.error(e.message());
            if let Some(l) = e.location() {
                out = out.at(l.clone());
            }
            if let Some(PayloadLocation::ByteOffset(o)) = e.location() {
                out = out.with_excerpt(trimmed, *o);
            }
            out
        })?;
        let (items, base): (Vec<&Value>, String) = match &self.config.events {
            Some(p) => match v.pointer(p) {
                Some(Value::Array(a)) => (a.iter().collect(), p.clone()),
                Some(other) => {
                    return Err(self
                        .error(format!(
                            "events must be an array, found {}",
                            type_name(other)
                        ))
                        .at(PayloadLocation::JsonPath(p.clone())));
                }
                None => {
                    return Err(self
                        .error("no events array")
                        .at(PayloadLocation::JsonPath(p.clone())));
                }
            },
            None => match &v {
                Value::Array(a) => (a.iter().collect(), String::new()),
                _ => (vec![&v], String::new()),
            },
        };
        let whole = items.len() == 1 && self.config.events.is_none() && !v.is_array();
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let path = if whole {
                    String::new()
                } else {
                    format!("{base}/{i}")
                };
                let raw = if whole {
                    Bytes::copy_from_slice(trimmed)
                } else {
                    Bytes::from(serde_json::to_vec(item).unwrap_or_default())
                };
                self.decode_item(meta, item, &path, raw)
            })
            .collect()
    }

    fn decode_item(
        &self,
        meta: &PayloadMeta<'_>,
        item: &Value,
        path: &str,
        raw: Bytes,
    ) -> Result<GateEvent, AdapterError> {
        if !item.is_object() {
            return Err(self
                .error(format!(
                    "an event must be an object, found {}",
                    type_name(item)
                ))
                .at(PayloadLocation::JsonPath(if path.is_empty() {
                    "/".into()
                } else {
                    path.into()
                })));
        }
        let f = &self.config.fields;
        let get = |p: &Option<String>| p.as_deref().and_then(|p| item.pointer(p));
        let text = |p: &Option<String>| get(p).and_then(value_text);
        let Some(code) = item.pointer(&f.code).and_then(value_text) else {
            return Err(self
                .error("no code (a string, number or boolean)")
                .at(PayloadLocation::JsonPath(format!("{path}{}", f.code))));
        };
        let meaning = self.config.codes.get(&code);
        let mut e = GateEvent::new(
            meaning.map_or(GateEventKind::Unknown, |m| m.kind),
            code,
            meta.received_at,
            raw,
        );
        if let Some(m) = meaning {
            e.deny_reason = m.reason.clone();
            e.phase = m.phase;
            e.detail = m.detail.clone();
            e.method = m.method.clone();
        }
        if let Some(method) = text(&f.method) {
            e.method = Some(match self.config.methods.get(&method) {
                Some(m) => m.clone(),
                None if self.config.methods.is_empty() => VerifyMethod::parse(&method),
                None => VerifyMethod::Other(method),
            });
        }
        e.door = get(&f.door)
            .and_then(value_u64)
            .and_then(|d| u32::try_from(d).ok())
            .and_then(|d| {
                if self.config.door_zero_based {
                    d.checked_add(1)
                } else {
                    Some(d)
                }
            });
        e.device_id = text(&f.device_id);
        e.event_id = text(&f.event_id);
        let card = text(&f.card);
        e.person = Person::from_parts(
            text(&f.person_id).as_deref(),
            text(&f.person_name).as_deref(),
            card.as_deref(),
        );
        e.direction = text(&f.direction).and_then(|d| match d.to_ascii_lowercase().as_str() {
            "entry" | "in" | "enter" => Some(Direction::Entry),
            "exit" | "out" | "leave" => Some(Direction::Exit),
            _ => None,
        });
        if let Some(t) = get(&f.time).and_then(|t| self.time(t)) {
            e.set_device_time(t);
        }
        if let Some(card) = card {
            e.redact_raw(&card);
        }
        Ok(e)
    }

    fn time(&self, v: &Value) -> Option<DeviceTime> {
        let unix = |n: i64, millis: bool| {
            let t = if millis {
                jiff::Timestamp::from_millisecond(n).ok()?
            } else {
                jiff::Timestamp::from_second(n).ok()?
            };
            Some(DeviceTime {
                instant: Some(t),
                ..DeviceTime::default()
            })
        };
        let number = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match (self.config.time_format, number, v.as_str()) {
            (TimeFormat::UnixSeconds, Some(n), _) => unix(n, false),
            (TimeFormat::UnixMillis, Some(n), _) => unix(n, true),
            (TimeFormat::Auto, Some(n), _) => unix(n, n.abs() > 100_000_000_000),
            (TimeFormat::Auto, None, Some(s)) => DeviceTime::parse(s),
            (TimeFormat::Rfc3339, _, Some(s)) => {
                DeviceTime::parse(s).filter(|t| t.instant.is_some())
            }
            (TimeFormat::Local, _, Some(s)) => DeviceTime::parse(s).filter(|t| t.instant.is_none()),
            _ => None,
        }
    }
}

impl FirmwareAdapter for GenericAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn decode(
        &self,
        meta: &PayloadMeta<'_>,
        payload: &[u8],
    ) -> Result<Vec<GateEvent>, AdapterError> {
        GenericAdapter::decode(self, meta, payload)
    }
}

#[cfg(test)]
mod tests;
