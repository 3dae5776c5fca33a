//! ZKTeco ADMS ("push" protocol, HTTP) attendance terminals to gate events.
//!
//! ZKTeco terminals (the SpeedFace, ProFace, MB and K series with ADMS enabled) call the hub:
//! - `POST /iclock/cdata?SN=<serial>&table=ATTLOG&Stamp=<n>` with one attendance record a
//!   line, tab-separated: `PIN  time  status  verify  workcode  reserved...` (newer firmware
//!   appends more fields, ignored here). Several lines per body. Each line is one
//!   `access_granted` event: a record exists only for someone the terminal accepted.
//! - `GET /iclock/getrequest?SN=<serial>` (heartbeat and command poll) and
//!   `GET /iclock/cdata?SN=<serial>&options=all` (registration after boot): each decodes as one
//!   `heartbeat`.
//!
//! The device is identified only by the `SN` query parameter ([`PayloadMeta::query`]); it
//! becomes the event's `device_id`. The terminal expects a plain `OK` reply; that is the
//! transport's business.
//!
//! Time: ATTLOG times are the terminal's wall clock (`2026-09-30 17:00:00`) in the zone set
//! on the terminal, with no offset. They are kept as `device_local_time` only; the transport
//! resolves them with the gate's configured zone ([`GateEvent::resolve_device_time`]).
//!
//! Other tables (`OPERLOG`, `ATTPHOTO`, `BIODATA`, `USERINFO`...) carry enrolment data:
//! passwords, card numbers, fingerprint and face templates. They decode as one `unknown`
//! event whose vendor code names the table, with the body withheld from `raw` (only its size
//! is noted in `detail`), so biometric data never reaches the dead-letter table or the logs.
//!
//! README — codes implemented (vendor code `ATTLOG/status=S/verify=V`):
//! - status (attendance state; all are `access_granted`, the state goes to `detail` and the
//!   direction): 0 check-in (entry), 1 check-out (exit), 2 break-out (exit), 3 break-in
//!   (entry), 4 overtime-in (entry), 5 overtime-out (exit); others `status_N`, no direction.
//! - verify (the ZK push protocol's verification modes): 0 password (PIN), 1 fingerprint,
//!   2 card, 15 face, 25 palm; every other value becomes `zkteco_verify_N`. Doubt: public
//!   sources disagree on 3 and 4 (password or card on different firmware), so they are kept
//!   as `zkteco_verify_3`/`_4` rather than guessed.

use bytes::Bytes;
use xl_core::gate::{
    AdapterError, DeviceTime, Direction, GateEvent, GateEventKind, PayloadLocation, PayloadMeta,
    Person, VerifyMethod,
};
use xl_fw_common::utf8;

/// The firmware name in config and on the CLI.
pub const NAME: &str = "zkteco-adms";

xl_fw_common::stateless_adapter!(
    /// The ZKTeco ADMS adapter. Stateless.
    ZktecoAdms,
    NAME,
    decode
);

/// Decodes one ADMS request body (with its path and query in `meta`).
pub fn decode(meta: &PayloadMeta<'_>, payload: &[u8]) -> Result<Vec<GateEvent>, AdapterError> {
    let serial = meta.query_param("SN").filter(|s| !s.trim().is_empty());
    let table = meta.query_param("table");
    let path = meta.path.unwrap_or("");
    let body_blank = payload.iter().all(u8::is_ascii_whitespace);
    let heartbeat = |code: &str| {
        let mut e = GateEvent::new(
            GateEventKind::Heartbeat,
            code,
            meta.received_at,
            Bytes::new(),
        );
        e.device_id = serial.clone();
        e
    };
    if path.ends_with("/getrequest") {
        return Ok(vec![heartbeat("getrequest")]);
    }
    match table.as_deref() {
        None if body_blank && meta.query_param("options").is_some() => {
            let mut e = heartbeat("cdata/options");
            e.detail = Some("registration".into());
            Ok(vec![e])
        }
        None if body_blank => Err(AdapterError::new(
            NAME,
            "empty body and no table= or options= in the query",
        )),
        Some(t) if !t.eq_ignore_ascii_case("ATTLOG") => {
            let mut e = GateEvent::new(
                GateEventKind::Unknown,
                format!("table={t}"),
                meta.received_at,
                Bytes::new(),
            );
            e.device_id = serial;
            e.detail = Some(format!(
                "table {t} not decoded; {} bytes withheld (may hold cards, passwords or \
                 biometric templates)",
                payload.len()
            ));
            Ok(vec![e])
        }
        // table=ATTLOG, or no table with a body: attendance lines.
        _ => decode_attlog(meta, payload, serial.as_deref()),
    }
}

fn decode_attlog(
    meta: &PayloadMeta<'_>,
    payload: &[u8],
    serial: Option<&str>,
) -> Result<Vec<GateEvent>, AdapterError> {
    let text = utf8(NAME, payload)?;
    let mut out = Vec::new();
    let mut offset = 0;
    for (i, raw_line) in text.split('\n').enumerate() {
        let line_offset = offset;
        offset += raw_line.len() + 1;
        let line = raw_line.trim_end_matches(['\r', '\0']);
        if line.trim().is_empty() {
            continue;
        }
        let at = PayloadLocation::Line {
            line: i + 1,
            byte_offset: line_offset,
        };
        let err = |msg: String| {
            AdapterError::new(NAME, msg)
                .at(at.clone())
                .with_excerpt(payload, line_offset)
        };
        let fields: Vec<&str> = line.split('\t').collect();
        let pin = fields[0].trim();
        if pin.is_empty() {
            return Err(err("ATTLOG record without a PIN".into()));
        }
        let Some(time_text) = fields.get(1).map(|t| t.trim()) else {
            return Err(err(
                "ATTLOG record has no tab-separated time (expected PIN\\ttime\\tstatus\\tverify...)"
                    .into(),
            ));
        };
        let Some(time) = DeviceTime::parse(time_text).filter(|t| t.instant.is_none()) else {
            return Err(err(format!(
                "ATTLOG time {time_text:?} is not YYYY-MM-DD HH:MM:SS"
            )));
        };
        let number = |idx: usize, what: &str| -> Result<Option<u32>, AdapterError> {
            match fields.get(idx).map(|f| f.trim()) {
                None | Some("") => Ok(None),
                Some(f) => f
                    .parse()
                    .map(Some)
                    .map_err(|_| err(format!("ATTLOG {what} {f:?} is not a number"))),
            }
        };
        let status = number(2, "status")?;
        let verify = number(3, "verify")?;
        let code = format!(
            "ATTLOG/status={}/verify={}",
            status.map_or("-".into(), |s| s.to_string()),
            verify.map_or("-".into(), |v| v.to_string())
        );
        let mut e = GateEvent::new(
            GateEventKind::AccessGranted,
            code,
            meta.received_at,
            Bytes::copy_from_slice(line.as_bytes()),
        );
        e.device_id = serial.map(str::to_owned);
        e.set_device_time(time);
        e.person = Person::from_parts(Some(pin), None, None);
        e.method = verify.map(verify_method);
        if let Some(s) = status {
            let (label, direction) = attendance_state(s);
            e.detail = Some(label);
            e.direction = direction;
        }
        out.push(e);
    }
    if out.is_empty() {
        return Err(AdapterError::new(NAME, "ATTLOG body has no records"));
    }
    Ok(out)
}

/// The verification method of a ZKTeco `verify` code.
pub fn verify_method(code: u32) -> VerifyMethod {
    match code {
        0 => VerifyMethod::Pin,
        1 => VerifyMethod::Fingerprint,
        2 => VerifyMethod::Card,
        15 => VerifyMethod::Face,
        25 => VerifyMethod::Palm,
        n => VerifyMethod::Other(format!("zkteco_verify_{n}")),
    }
}

/// The label and direction of a ZKTeco attendance `status`.
pub fn attendance_state(code: u32) -> (String, Option<Direction>) {
    let (label, direction) = match code {
        0 => ("check_in", Some(Direction::Entry)),
        1 => ("check_out", Some(Direction::Exit)),
        2 => ("break_out", Some(Direction::Exit)),
        3 => ("break_in", Some(Direction::Entry)),
        4 => ("overtime_in", Some(Direction::Entry)),
        5 => ("overtime_out", Some(Direction::Exit)),
        n => return (format!("status_{n}"), None),
    };
    (label.to_owned(), direction)
}

#[cfg(test)]
mod tests;
