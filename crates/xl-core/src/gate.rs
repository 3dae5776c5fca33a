//! Gate events: the one normalized shape every firmware adapter produces, and the port
//! ([`FirmwareAdapter`]) through which the gate transports turn payload bytes into them.
//!
//! A gate event is what one gate (door, turnstile, barrier with an access controller) reported
//! once: an access granted or denied, a door opened or forced, a tamper, a heartbeat. Firmware
//! adapters (one crate per firmware family under `firmware-adapters/`) are pure functions from
//! bytes plus [`PayloadMeta`] to `Vec<GateEvent>`; they do no I/O.
//!
//! # Time
//!
//! Devices disagree about time. Hikvision ISAPI sends RFC 3339 with an offset
//! (`2026-02-24T19:45:13+08:00`), Dahua sends a Unix time (`UTC`) and often the wall clock
//! (`LocaleTime`), ZKTeco ADMS sends only the wall clock (`2026-09-30 17:00:00`) in the
//! device's configured zone. So a gate event keeps three facts, each only when the payload says
//! it:
//! - [`GateEvent::device_time`]: the instant, when the payload pins it (an explicit offset or a
//!   Unix time);
//! - [`GateEvent::device_utc_offset`]: the device's UTC offset, when the payload states it or it
//!   follows from a Unix time and a wall clock sent together;
//! - [`GateEvent::device_local_time`]: the wall-clock reading as the device showed it.
//!
//! Adapters never guess a zone. The transport, which knows the gate's configured time zone,
//! calls [`GateEvent::resolve_device_time`] to pin a wall-clock-only reading. Rules that join
//! gate and camera events use [`GateEvent::received_at`] (the hub's clock) unless the device
//! clock is known to be synchronised.
//!
//! # Privacy
//!
//! Card numbers are never kept whole: [`MaskedCard`] keeps the last four characters
//! (`****5678`), and adapters call [`GateEvent::redact_raw`] so the raw payload kept for
//! debugging does not carry the full number either. Face pictures ride in
//! [`GateEvent::picture`], which is not serialized: the transport stores it as evidence under
//! the snapshot retention rules.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use jiff::Timestamp;
use jiff::civil;
use jiff::tz::{Offset, TimeZone};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ErrorKind;

/// What a gate reported, vendor-neutral. Serialized in snake_case (`access_granted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateEventKind {
    /// A person was let through (card, face, PIN, remote open, exit button...).
    AccessGranted,
    /// A person was refused; [`GateEvent::deny_reason`] says why.
    AccessDenied,
    /// The door contact reports the door open (a normal opening).
    DoorOpened,
    /// The door contact reports the door closed.
    DoorClosed,
    /// The door opened without a grant (forced, break-in).
    DoorForcedOpen,
    /// The door stayed open past its allowed time.
    DoorHeldOpen,
    /// The lock was released (relay energised, bolt withdrawn) without saying who opened it.
    DoorUnlocked,
    /// The lock engaged again.
    DoorLocked,
    /// A duress code, duress finger or duress button: someone is being forced.
    Duress,
    /// The controller, a reader or a sensor was opened or pried off.
    Tamper,
    /// A blacklisted person or card was presented.
    Blacklisted,
    /// The device, or a part of it (a reader, the network), went offline.
    DeviceOffline,
    /// Proof of life, nothing happened.
    Heartbeat,
    /// Another alarm the device raised (panic button, jammed lock, low battery...);
    /// [`GateEvent::detail`] names it.
    Alarm,
    /// A code the adapter does not know. The raw payload is kept.
    Unknown,
}

impl GateEventKind {
    /// Every kind, in declaration order.
    pub const ALL: [GateEventKind; 15] = [
        GateEventKind::AccessGranted,
        GateEventKind::AccessDenied,
        GateEventKind::DoorOpened,
        GateEventKind::DoorClosed,
        GateEventKind::DoorForcedOpen,
        GateEventKind::DoorHeldOpen,
        GateEventKind::DoorUnlocked,
        GateEventKind::DoorLocked,
        GateEventKind::Duress,
        GateEventKind::Tamper,
        GateEventKind::Blacklisted,
        GateEventKind::DeviceOffline,
        GateEventKind::Heartbeat,
        GateEventKind::Alarm,
        GateEventKind::Unknown,
    ];

    /// The snake_case name used in JSON, metrics labels and config.
    pub fn as_str(self) -> &'static str {
        match self {
            GateEventKind::AccessGranted => "access_granted",
            GateEventKind::AccessDenied => "access_denied",
            GateEventKind::DoorOpened => "door_opened",
            GateEventKind::DoorClosed => "door_closed",
            GateEventKind::DoorForcedOpen => "door_forced_open",
            GateEventKind::DoorHeldOpen => "door_held_open",
            GateEventKind::DoorUnlocked => "door_unlocked",
            GateEventKind::DoorLocked => "door_locked",
            GateEventKind::Duress => "duress",
            GateEventKind::Tamper => "tamper",
            GateEventKind::Blacklisted => "blacklisted",
            GateEventKind::DeviceOffline => "device_offline",
            GateEventKind::Heartbeat => "heartbeat",
            GateEventKind::Alarm => "alarm",
            GateEventKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for GateEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of [`GateEventKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown gate event kind {0:?}")]
pub struct UnknownKind(pub String);

impl FromStr for GateEventKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        GateEventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// Why access was denied. Serialized as a snake_case string; a reason without a variant
/// serializes as its own text (`Other("wrong_floor")` is `"wrong_floor"`), and parsing a known
/// name never yields `Other`, so the string form round-trips.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// The person is known but has no right at this door.
    NoPermission,
    /// Outside the person's schedule (time period, holiday plan).
    InvalidTimePeriod,
    /// The card or person's validity period is over.
    Expired,
    /// The card (or person) is not enrolled on the device.
    CardNotFound,
    /// The card was reported lost or cancelled.
    CardRevoked,
    /// Anti-passback: the person did not leave before entering again.
    AntiPassback,
    /// Face verification or recognition failed.
    FaceNotRecognized,
    /// Fingerprint verification failed or the finger is not enrolled.
    FingerprintNotRecognized,
    /// Wrong PIN or password.
    InvalidPin,
    /// Too many failed attempts in a row.
    MaxAttempts,
    /// A multi-factor verification was not completed in time.
    Timeout,
    /// The door is locked by mode (normally closed, interlock, always-closed schedule).
    DoorLocked,
    /// Any other reason, in the adapter's snake_case words.
    Other(String),
}

impl DenyReason {
    const NAMED: [(DenyReason, &'static str); 12] = [
        (DenyReason::NoPermission, "no_permission"),
        (DenyReason::InvalidTimePeriod, "invalid_time_period"),
        (DenyReason::Expired, "expired"),
        (DenyReason::CardNotFound, "card_not_found"),
        (DenyReason::CardRevoked, "card_revoked"),
        (DenyReason::AntiPassback, "anti_passback"),
        (DenyReason::FaceNotRecognized, "face_not_recognized"),
        (
            DenyReason::FingerprintNotRecognized,
            "fingerprint_not_recognized",
        ),
        (DenyReason::InvalidPin, "invalid_pin"),
        (DenyReason::MaxAttempts, "max_attempts"),
        (DenyReason::Timeout, "timeout"),
        (DenyReason::DoorLocked, "door_locked"),
    ];

    /// The snake_case name (the text itself for `Other`).
    pub fn as_str(&self) -> &str {
        match self {
            DenyReason::Other(s) => s,
            named => DenyReason::NAMED
                .iter()
                .find(|(r, _)| r == named)
                .map_or("other", |(_, n)| n),
        }
    }

    /// Parses a name; anything not named becomes `Other`.
    pub fn parse(s: &str) -> DenyReason {
        DenyReason::NAMED
            .iter()
            .find(|(_, n)| *n == s)
            .map_or_else(|| DenyReason::Other(s.to_owned()), |(r, _)| r.clone())
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for DenyReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DenyReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        if s.is_empty() {
            return Err(serde::de::Error::custom("a deny reason must not be empty"));
        }
        Ok(DenyReason::parse(&s))
    }
}

/// How the person proved who they are. Serialized as a string: `card`, `face`, ...; a
/// combination joins its parts with `+` (`card+pin`); a method without a variant serializes as
/// its own text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VerifyMethod {
    Card,
    Face,
    Fingerprint,
    /// PIN or password typed on the keypad.
    Pin,
    /// Opened from a platform, an app or an intercom (remote unlock, MQTT command, DTMF).
    Remote,
    /// The request-to-exit button inside.
    ExitButton,
    /// A QR code.
    Qr,
    /// A mechanical key.
    Key,
    /// A national identity card (居民身份证) read by an ID-card reader.
    IdCard,
    Bluetooth,
    FingerVein,
    Palm,
    /// Several factors together, in the order the device names them.
    Combined(Vec<VerifyMethod>),
    /// Any other method, in the adapter's words (e.g. `zkteco_verify_7`).
    Other(String),
}

impl VerifyMethod {
    const NAMED: [(VerifyMethod, &'static str); 12] = [
        (VerifyMethod::Card, "card"),
        (VerifyMethod::Face, "face"),
        (VerifyMethod::Fingerprint, "fingerprint"),
        (VerifyMethod::Pin, "pin"),
        (VerifyMethod::Remote, "remote"),
        (VerifyMethod::ExitButton, "exit_button"),
        (VerifyMethod::Qr, "qr"),
        (VerifyMethod::Key, "key"),
        (VerifyMethod::IdCard, "id_card"),
        (VerifyMethod::Bluetooth, "bluetooth"),
        (VerifyMethod::FingerVein, "finger_vein"),
        (VerifyMethod::Palm, "palm"),
    ];

    /// Parses `card`, `card+pin`, ...; anything else becomes `Other`.
    pub fn parse(s: &str) -> VerifyMethod {
        let single = |part: &str| {
            VerifyMethod::NAMED
                .iter()
                .find(|(_, n)| *n == part)
                .map(|(m, _)| m.clone())
        };
        if let Some(m) = single(s) {
            return m;
        }
        if s.contains('+') {
            let parts: Option<Vec<_>> = s.split('+').map(single).collect();
            if let Some(parts) = parts {
                return VerifyMethod::Combined(parts);
            }
        }
        VerifyMethod::Other(s.to_owned())
    }

    /// A combination of `parts`; a single part is returned as itself.
    pub fn combined(mut parts: Vec<VerifyMethod>) -> VerifyMethod {
        if parts.len() == 1
            && let Some(p) = parts.pop()
        {
            return p;
        }
        VerifyMethod::Combined(parts)
    }
}

impl fmt::Display for VerifyMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyMethod::Other(s) => f.write_str(s),
            VerifyMethod::Combined(parts) => {
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str("+")?;
                    }
                    fmt::Display::fmt(p, f)?;
                }
                Ok(())
            }
            named => {
                let name = VerifyMethod::NAMED
                    .iter()
                    .find(|(m, _)| m == named)
                    .map_or("other", |(_, n)| n);
                f.write_str(name)
            }
        }
    }
}

impl Serialize for VerifyMethod {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for VerifyMethod {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        if s.is_empty() {
            return Err(serde::de::Error::custom(
                "a verification method must not be empty",
            ));
        }
        Ok(VerifyMethod::parse(&s))
    }
}

/// Which way the person went, when the device says (entry reader, check-in...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Entry,
    Exit,
}

/// Whether a condition started or ended. Instantaneous events (an access, a heartbeat) have
/// no phase. Dahua's `action=Start|Stop` and Hikvision's alarm/restore minor pairs map here, so
/// a tamper alert can resolve when the device reports the restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventPhase {
    Start,
    Stop,
}

/// A card number with all but the last four characters hidden: `****5678`. A number of four
/// characters or fewer is hidden whole (`****`). There is no way to get the full number back.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct MaskedCard(String);

impl MaskedCard {
    /// Masks `full`. Returns `None` for an empty or blank number (devices send `""` when no
    /// card was used).
    pub fn mask(full: &str) -> Option<MaskedCard> {
        let full = full.trim();
        if full.is_empty() {
            return None;
        }
        let chars: Vec<char> = full.chars().collect();
        let kept: String = if chars.len() > 4 {
            chars[chars.len() - 4..].iter().collect()
        } else {
            String::new()
        };
        Some(MaskedCard(format!("****{kept}")))
    }

    /// The masked text, e.g. `****5678`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MaskedCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MaskedCard({:?})", self.0)
    }
}

impl fmt::Display for MaskedCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MaskedCard {
    /// Accepts a stored masked value as is; anything else is masked on the way in, so a full
    /// number can never enter through deserialization either.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        if s.starts_with("****") && s.chars().count() <= 8 {
            return Ok(MaskedCard(s.into_owned()));
        }
        MaskedCard::mask(&s).ok_or_else(|| serde::de::Error::custom("empty card number"))
    }
}

/// Who the event is about, as the device knows them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Person {
    /// The device's person id (Hikvision `employeeNoString`, Dahua `UserID`, ZKTeco PIN).
    pub id: Option<String>,
    /// The name enrolled on the device.
    pub name: Option<String>,
    /// The card presented, masked.
    pub card: Option<MaskedCard>,
}

impl Person {
    /// A person from optional parts; blank strings count as absent. `None` when nothing is
    /// known. `card` is the full number as the device sent it: it is masked here.
    pub fn from_parts(id: Option<&str>, name: Option<&str>, card: Option<&str>) -> Option<Person> {
        let clean = |s: Option<&str>| {
            s.map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let p = Person {
            id: clean(id),
            name: clean(name),
            card: card.and_then(MaskedCard::mask),
        };
        (p != Person::default()).then_some(p)
    }
}

/// A picture the device attached to the event (the face terminal's capture).
#[derive(Clone, PartialEq, Eq)]
pub struct EventPicture {
    /// The part's `Content-Type`, e.g. `image/jpeg`.
    pub content_type: Option<String>,
    pub bytes: Bytes,
    /// The body was cut off before the picture ended: the bytes are a prefix of the image.
    pub truncated: bool,
}

impl fmt::Debug for EventPicture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventPicture")
            .field("content_type", &self.content_type)
            .field("bytes", &self.bytes.len())
            .field("truncated", &self.truncated)
            .finish()
    }
}

/// A device's reading of the time, split into what it pins down. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceTime {
    /// The instant, when known (explicit offset, `Z`, or a Unix time).
    pub instant: Option<Timestamp>,
    /// The device's UTC offset, when known.
    pub utc_offset: Option<Offset>,
    /// The wall clock as the device showed it, when sent.
    pub local: Option<civil::DateTime>,
}

impl DeviceTime {
    /// Parses the date-time forms devices send: RFC 3339 / ISO 8601 with an offset or `Z`
    /// (`2023-03-18T18:37:54+01:00`), and a bare wall clock with `T` or a space
    /// (`2026-09-30 17:00:00`, fractional seconds allowed). Returns `None` for anything else.
    pub fn parse(s: &str) -> Option<DeviceTime> {
        use jiff::fmt::temporal::{Pieces, PiecesOffset};
        let s = s.trim();
        let pieces = Pieces::parse(s).ok()?;
        let time = pieces.time()?;
        let local = pieces.date().to_datetime(time);
        match pieces.offset() {
            None => Some(DeviceTime {
                instant: None,
                utc_offset: None,
                local: Some(local),
            }),
            Some(PiecesOffset::Zulu) => {
                let instant = Offset::UTC.to_timestamp(local).ok()?;
                Some(DeviceTime {
                    instant: Some(instant),
                    utc_offset: Some(Offset::UTC),
                    local: Some(local),
                })
            }
            Some(PiecesOffset::Numeric(n)) => {
                let offset = n.offset();
                let instant = offset.to_timestamp(local).ok()?;
                Some(DeviceTime {
                    instant: Some(instant),
                    utc_offset: Some(offset),
                    local: Some(local),
                })
            }
            Some(_) => None,
        }
    }

    /// A Unix time in seconds. `None` when out of range or zero (devices without a clock set
    /// send 0).
    pub fn from_unix_seconds(secs: i64) -> Option<DeviceTime> {
        if secs == 0 {
            return None;
        }
        let instant = Timestamp::from_second(secs).ok()?;
        Some(DeviceTime {
            instant: Some(instant),
            utc_offset: None,
            local: None,
        })
    }

    /// A Unix time with the device's wall clock at the same moment (Dahua `UTC` and
    /// `LocaleTime`). The offset is derived when the difference is a whole quarter hour within
    /// ±14 h; otherwise only both readings are kept.
    pub fn from_unix_and_local(secs: i64, local: civil::DateTime) -> Option<DeviceTime> {
        let mut t = DeviceTime::from_unix_seconds(secs)?;
        t.local = Some(local);
        if let Some(instant) = t.instant {
            let utc_wall = Offset::UTC.to_datetime(instant);
            if let Ok(span) = utc_wall.until((jiff::Unit::Second, local)) {
                let diff = span.get_seconds();
                if diff % 900 == 0 && diff.abs() <= 14 * 3600 {
                    t.utc_offset = i32::try_from(diff)
                        .ok()
                        .and_then(|d| Offset::from_seconds(d).ok());
                }
            }
        }
        Some(t)
    }
}

/// One normalized thing a gate reported.
///
/// Invariant kept by the adapters: `deny_reason` is `Some` exactly when `kind` is
/// [`GateEventKind::AccessDenied`].
///
/// `Serialize` produces one flat JSON object: `kind`, then each field that is set (`person`
/// flattens to `person_id`, `person_name`, `card`; `picture` to `picture_bytes`), and `raw` as
/// lossy UTF-8 text. `Deserialize` reads the same shape back (the picture bytes are not in it).
#[derive(Debug, Clone, PartialEq)]
pub struct GateEvent {
    pub kind: GateEventKind,
    /// Why access was denied (only with `AccessDenied`).
    pub deny_reason: Option<DenyReason>,
    /// Start or end of a condition (tamper, forced, held open, offline), when the device says.
    pub phase: Option<EventPhase>,
    /// A short snake_case label refining the kind: `panic_button`, `card_reader_offline`,
    /// `lock_jammed`, `check_in`...
    pub detail: Option<String>,
    /// The device identifier as the payload names it (serial number, MAC, `deviceID`, Zigbee
    /// friendly name). The transport maps it, with its own knowledge of the peer, to a
    /// [`GateId`](crate::GateId).
    pub device_id: Option<String>,
    /// The door (or channel) number, 1-based as printed on the controller.
    pub door: Option<u32>,
    pub direction: Option<Direction>,
    /// The instant the device says the event happened, when the payload pins it.
    pub device_time: Option<Timestamp>,
    /// The device's UTC offset, when known.
    pub device_utc_offset: Option<Offset>,
    /// The device's wall clock when the event happened, as sent.
    pub device_local_time: Option<civil::DateTime>,
    /// When the hub received the payload (given by the transport).
    pub received_at: Timestamp,
    pub person: Option<Person>,
    /// How the person was verified.
    pub method: Option<VerifyMethod>,
    /// The raw vendor code, e.g. `5/0x4b` (Hikvision major/minor), `AccessControl/ErrorCode=16`.
    pub vendor_code: String,
    /// The device's own event number (Hikvision `serialNo`, Dahua `RecNo`), for duplicate
    /// detection.
    pub event_id: Option<String>,
    /// A picture the device attached. Not serialized.
    pub picture: Option<EventPicture>,
    /// The payload (or the part of it) this event came from, with card numbers redacted.
    pub raw: Bytes,
}

impl GateEvent {
    /// An event of `kind` with nothing else known yet.
    pub fn new(
        kind: GateEventKind,
        vendor_code: impl Into<String>,
        received_at: Timestamp,
        raw: Bytes,
    ) -> GateEvent {
        GateEvent {
            kind,
            deny_reason: None,
            phase: None,
            detail: None,
            device_id: None,
            door: None,
            direction: None,
            device_time: None,
            device_utc_offset: None,
            device_local_time: None,
            received_at,
            person: None,
            method: None,
            vendor_code: vendor_code.into(),
            event_id: None,
            picture: None,
            raw,
        }
    }

    /// An `AccessDenied` event with its reason.
    pub fn denied(
        reason: DenyReason,
        vendor_code: impl Into<String>,
        received_at: Timestamp,
        raw: Bytes,
    ) -> GateEvent {
        let mut e = GateEvent::new(GateEventKind::AccessDenied, vendor_code, received_at, raw);
        e.deny_reason = Some(reason);
        e
    }

    /// Sets the three device-time fields from `t`.
    pub fn set_device_time(&mut self, t: DeviceTime) {
        self.device_time = t.instant;
        self.device_utc_offset = t.utc_offset;
        self.device_local_time = t.local;
    }

    /// The instant the device says the event happened: `device_time` when the payload pinned
    /// it, else the wall clock read in `tz` (the gate's configured zone; an ambiguous reading
    /// at a DST change takes the earlier instant). `None` when the device sent no time.
    pub fn resolve_device_time(&self, tz: &TimeZone) -> Option<Timestamp> {
        if let Some(t) = self.device_time {
            return Some(t);
        }
        let local = self.device_local_time?;
        tz.to_ambiguous_timestamp(local).compatible().ok()
    }

    /// Replaces every whole-token occurrence of `full_card` in `raw` with its masked form, so
    /// the raw payload kept for debugging does not carry the full card number. A token is
    /// bounded by characters other than ASCII letters and digits, so `12` inside `1234` is
    /// left alone.
    pub fn redact_raw(&mut self, full_card: &str) {
        let full = full_card.trim();
        let Some(masked) = MaskedCard::mask(full) else {
            return;
        };
        if let Some(redacted) = redact_token(&self.raw, full.as_bytes(), masked.as_str().as_bytes())
        {
            self.raw = Bytes::from(redacted);
        }
    }
}

/// `haystack` with each token-bounded `needle` replaced, or `None` when there was none.
fn redact_token(haystack: &[u8], needle: &[u8], replacement: &[u8]) -> Option<Vec<u8>> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    let is_word = |b: u8| b.is_ascii_alphanumeric();
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    let mut changed = false;
    while i < haystack.len() {
        let rest = &haystack[i..];
        if rest.starts_with(needle) {
            let before_ok = i == 0 || !is_word(haystack[i - 1]);
            let after = i + needle.len();
            let after_ok = after >= haystack.len() || !is_word(haystack[after]);
            if before_ok && after_ok {
                out.extend_from_slice(replacement);
                i = after;
                changed = true;
                continue;
            }
        }
        out.push(haystack[i]);
        i += 1;
    }
    changed.then_some(out)
}

/// Formats an offset as `+08:00` (`+05:45:30` when it has seconds).
fn offset_text(o: Offset) -> String {
    let secs = o.seconds();
    let sign = if secs < 0 { '-' } else { '+' };
    let abs = secs.unsigned_abs();
    let (h, m, s) = (abs / 3600, (abs / 60) % 60, abs % 60);
    if s == 0 {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}:{m:02}:{s:02}")
    }
}

fn parse_offset_text(s: &str) -> Option<Offset> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let mut parts = rest.split(':');
    let h: i32 = parts.next()?.parse().ok()?;
    let m: i32 = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    let sec: i32 = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    if parts.next().is_some() || m >= 60 || sec >= 60 {
        return None;
    }
    Offset::from_seconds(sign * (h * 3600 + m * 60 + sec)).ok()
}

/// The flat wire form of a [`GateEvent`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GateEventWire<'a> {
    kind: GateEventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deny_reason: Option<DenyReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phase: Option<EventPhase>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    detail: Option<Cow<'a, str>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    device_id: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    door: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    direction: Option<Direction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_time: Option<Timestamp>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    device_utc_offset: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_local_time: Option<civil::DateTime>,
    received_at: Timestamp,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    person_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    person_name: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    card: Option<MaskedCard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    method: Option<VerifyMethod>,
    #[serde(borrow)]
    vendor_code: Cow<'a, str>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    event_id: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    picture_bytes: Option<usize>,
    #[serde(borrow)]
    raw: Cow<'a, str>,
}

impl Serialize for GateEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let person = self.person.as_ref();
        GateEventWire {
            kind: self.kind,
            deny_reason: self.deny_reason.clone(),
            phase: self.phase,
            detail: self.detail.as_deref().map(Cow::Borrowed),
            device_id: self.device_id.as_deref().map(Cow::Borrowed),
            door: self.door,
            direction: self.direction,
            device_time: self.device_time,
            device_utc_offset: self.device_utc_offset.map(|o| Cow::Owned(offset_text(o))),
            device_local_time: self.device_local_time,
            received_at: self.received_at,
            person_id: person.and_then(|p| p.id.as_deref()).map(Cow::Borrowed),
            person_name: person.and_then(|p| p.name.as_deref()).map(Cow::Borrowed),
            card: person.and_then(|p| p.card.clone()),
            method: self.method.clone(),
            vendor_code: Cow::Borrowed(&self.vendor_code),
            event_id: self.event_id.as_deref().map(Cow::Borrowed),
            picture_bytes: self.picture.as_ref().map(|p| p.bytes.len()),
            raw: String::from_utf8_lossy(&self.raw),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for GateEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = GateEventWire::deserialize(d)?;
        let device_utc_offset =
            match w.device_utc_offset {
                None => None,
                Some(s) => Some(parse_offset_text(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!("bad device_utc_offset {s:?}"))
                })?),
            };
        let person = Person {
            id: w.person_id.map(Cow::into_owned),
            name: w.person_name.map(Cow::into_owned),
            card: w.card,
        };
        Ok(GateEvent {
            kind: w.kind,
            deny_reason: w.deny_reason,
            phase: w.phase,
            detail: w.detail.map(Cow::into_owned),
            device_id: w.device_id.map(Cow::into_owned),
            door: w.door,
            direction: w.direction,
            device_time: w.device_time,
            device_utc_offset,
            device_local_time: w.device_local_time,
            received_at: w.received_at,
            person: (person != Person::default()).then_some(person),
            method: w.method,
            vendor_code: w.vendor_code.into_owned(),
            event_id: w.event_id.map(Cow::into_owned),
            picture: None,
            raw: Bytes::from(w.raw.into_owned()),
        })
    }
}

/// What the transport knows about a payload besides its bytes.
///
/// MQTT transports fill `topic`; HTTP transports fill `content_type` (with its parameters:
/// the multipart boundary is read from it), `path` and `query` (raw, still percent-encoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadMeta<'a> {
    /// When the hub received the payload; becomes [`GateEvent::received_at`].
    pub received_at: Timestamp,
    /// The MQTT topic, e.g. `DahuaVTO/AccessControl/Event`, `zigbee2mqtt/front-door`.
    pub topic: Option<&'a str>,
    /// The HTTP `Content-Type` header value, parameters included.
    pub content_type: Option<&'a str>,
    /// The HTTP request path, e.g. `/iclock/cdata`.
    pub path: Option<&'a str>,
    /// The HTTP query string without `?`, e.g. `SN=CJDE193560303&table=ATTLOG&Stamp=9999`.
    pub query: Option<&'a str>,
}

impl<'a> PayloadMeta<'a> {
    /// Meta with only the receive time.
    pub fn new(received_at: Timestamp) -> PayloadMeta<'a> {
        PayloadMeta {
            received_at,
            topic: None,
            content_type: None,
            path: None,
            query: None,
        }
    }

    pub fn with_topic(mut self, topic: &'a str) -> Self {
        self.topic = Some(topic);
        self
    }

    pub fn with_content_type(mut self, content_type: &'a str) -> Self {
        self.content_type = Some(content_type);
        self
    }

    pub fn with_path(mut self, path: &'a str) -> Self {
        self.path = Some(path);
        self
    }

    pub fn with_query(mut self, query: &'a str) -> Self {
        self.query = Some(query.strip_prefix('?').unwrap_or(query));
        self
    }

    /// The media type of `content_type` without parameters, trimmed and lower-cased:
    /// `multipart/form-data`.
    pub fn mime_type(&self) -> Option<String> {
        let ct = self.content_type?;
        let essence = ct.split(';').next().unwrap_or(ct).trim();
        (!essence.is_empty()).then(|| essence.to_ascii_lowercase())
    }

    /// A parameter of `content_type` (name matched case-insensitively, quotes removed):
    /// `content_type_param("boundary")`.
    pub fn content_type_param(&self, name: &str) -> Option<&'a str> {
        let ct = self.content_type?;
        ct.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            if !k.trim().eq_ignore_ascii_case(name) {
                return None;
            }
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            (!v.is_empty()).then_some(v)
        })
    }

    /// The first value of query parameter `name` (matched exactly, as devices send it),
    /// percent-decoded (`+` is a space). `None` when absent or not valid UTF-8 once decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query?;
        q.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k)? == name).then(|| percent_decode(v))?
        })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    // Two hex digits are at most 0xff.
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Where in the payload an adapter gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadLocation {
    /// A byte offset from the start of the payload.
    ByteOffset(usize),
    /// A JSON pointer (RFC 6901) to the offending value, e.g. `/AccessControllerEvent/subEventType`.
    JsonPath(String),
    /// A 1-based line number (line formats such as ZKTeco ATTLOG), with the byte offset of the
    /// line's start.
    Line { line: usize, byte_offset: usize },
}

impl fmt::Display for PayloadLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadLocation::ByteOffset(o) => write!(f, "at byte {o}"),
            PayloadLocation::JsonPath(p) => write!(f, "at {p}"),
            PayloadLocation::Line { line, byte_offset } => {
                write!(f, "at line {line} (byte {byte_offset})")
            }
        }
    }
}

/// A payload an adapter could not decode. Carries the firmware, where in the payload it failed
/// and a short excerpt, so an operator can find the payload in the dead-letter table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AdapterError {
    firmware: &'static str,
    message: String,
    location: Option<PayloadLocation>,
    excerpt: Option<String>,
}

impl fmt::Display for AdapterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} payload: {}", self.firmware, self.message)?;
        if let Some(l) = &self.location {
            write!(f, " {l}")?;
        }
        if let Some(e) = &self.excerpt {
            write!(f, " near \"{e}\"")?;
        }
        Ok(())
    }
}

/// How many bytes each side of the failing offset an excerpt shows.
const EXCERPT_RADIUS: usize = 24;

impl AdapterError {
    /// An error in `firmware`'s payload; `message` says what is wrong in a few words.
    pub fn new(firmware: &'static str, message: impl Into<String>) -> AdapterError {
        AdapterError {
            firmware,
            message: message.into(),
            location: None,
            excerpt: None,
        }
    }

    /// Adds where it failed.
    pub fn at(mut self, location: PayloadLocation) -> AdapterError {
        self.location = Some(location);
        self
    }

    /// Adds the byte offset and an escaped excerpt of `payload` around it.
    pub fn at_byte(mut self, payload: &[u8], offset: usize) -> AdapterError {
        self.location = Some(PayloadLocation::ByteOffset(offset));
        self.excerpt = Some(excerpt(payload, offset));
        self
    }

    /// Adds an escaped excerpt of `payload` around `offset`, keeping the location.
    pub fn with_excerpt(mut self, payload: &[u8], offset: usize) -> AdapterError {
        self.excerpt = Some(excerpt(payload, offset));
        self
    }

    pub fn firmware(&self) -> &'static str {
        self.firmware
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn location(&self) -> Option<&PayloadLocation> {
        self.location.as_ref()
    }

    pub fn excerpt(&self) -> Option<&str> {
        self.excerpt.as_deref()
    }

    /// Always [`ErrorKind::InvalidInput`]: the same bytes will fail again.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

/// Up to [`EXCERPT_RADIUS`] bytes each side of `offset`, ASCII-escaped (`\x00`, `\n`).
pub fn excerpt(payload: &[u8], offset: usize) -> String {
    let offset = offset.min(payload.len());
    let start = offset.saturating_sub(EXCERPT_RADIUS);
    let end = offset.saturating_add(EXCERPT_RADIUS).min(payload.len());
    payload[start..end].escape_ascii().to_string()
}

/// The byte offset of a 1-based `line` and `column` (as serde_json reports them) in `payload`,
/// clamped to its length.
pub fn byte_offset_of(payload: &[u8], line: usize, column: usize) -> usize {
    let mut line_start = 0;
    let mut current = 1;
    while current < line {
        match payload[line_start..].iter().position(|&b| b == b'\n') {
            Some(nl) => {
                line_start += nl + 1;
                current += 1;
            }
            None => return payload.len(),
        }
    }
    line_start
        .saturating_add(column.saturating_sub(1))
        .min(payload.len())
}

/// The port every firmware adapter implements: bytes (plus what the transport knows) in, gate
/// events out. Implementations are pure and cheap to share across tasks.
///
/// Contract:
/// - never panics, whatever the bytes;
/// - a payload that is not this firmware's dialect, or is malformed, is an [`AdapterError`]
///   (the transport dead-letters it with the error);
/// - a well-formed payload with a code the adapter does not know yields an event of kind
///   [`GateEventKind::Unknown`] with the raw payload, never nothing;
/// - every event's `received_at` is `meta.received_at`.
pub trait FirmwareAdapter: Send + Sync {
    /// The firmware name used in config and on the CLI (`gate-decode --firmware NAME`), e.g.
    /// `hikvision-isapi`.
    fn name(&self) -> &'static str;

    /// Decodes one payload (one MQTT message, one HTTP body) into zero or more events.
    fn decode(
        &self,
        meta: &PayloadMeta<'_>,
        payload: &[u8],
    ) -> Result<Vec<GateEvent>, AdapterError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in GateEventKind::ALL {
            assert_eq!(k.as_str().parse::<GateEventKind>(), Ok(k));
            assert_eq!(k.to_string(), k.as_str());
        }
        assert!("door_exploded".parse::<GateEventKind>().is_err());
    }

    #[test]
    fn deny_reason_and_method_names_round_trip() {
        for (r, n) in DenyReason::NAMED {
            assert_eq!(r.as_str(), n);
            assert_eq!(DenyReason::parse(n), r);
        }
        assert_eq!(
            DenyReason::parse("wrong_floor"),
            DenyReason::Other("wrong_floor".into())
        );
        for (m, n) in VerifyMethod::NAMED {
            assert_eq!(m.to_string(), n);
            assert_eq!(VerifyMethod::parse(n), m);
        }
        let combo = VerifyMethod::Combined(vec![VerifyMethod::Card, VerifyMethod::Pin]);
        assert_eq!(combo.to_string(), "card+pin");
        assert_eq!(VerifyMethod::parse("card+pin"), combo);
        assert_eq!(
            VerifyMethod::parse("card+telepathy"),
            VerifyMethod::Other("card+telepathy".into())
        );
        assert_eq!(
            VerifyMethod::combined(vec![VerifyMethod::Face]),
            VerifyMethod::Face
        );
    }

    #[test]
    fn cards_keep_only_the_last_four() {
        assert_eq!(MaskedCard::mask("12345678").unwrap().as_str(), "****5678");
        assert_eq!(MaskedCard::mask(" AABB1122 ").unwrap().as_str(), "****1122");
        assert_eq!(MaskedCard::mask("1234").unwrap().as_str(), "****");
        assert_eq!(MaskedCard::mask("12").unwrap().as_str(), "****");
        assert_eq!(MaskedCard::mask(""), None);
        assert_eq!(MaskedCard::mask("   "), None);
        assert_eq!(
            MaskedCard::mask("卡号一二三四五").unwrap().as_str(),
            "****二三四五"
        );
    }

    #[test]
    fn person_from_blank_parts_is_none() {
        assert_eq!(Person::from_parts(Some(""), Some(" "), Some("")), None);
        let p = Person::from_parts(Some("1001"), None, Some("AABB1122")).unwrap();
        assert_eq!(p.id.as_deref(), Some("1001"));
        assert_eq!(p.card.unwrap().as_str(), "****1122");
    }

    #[test]
    fn device_time_parses_the_forms_devices_send() {
        let t = DeviceTime::parse("2026-02-24T19:45:13+08:00").unwrap();
        assert_eq!(t.instant, Some(ts("2026-02-24T11:45:13Z")));
        assert_eq!(t.utc_offset.map(|o| o.seconds()), Some(8 * 3600));
        assert_eq!(t.local.unwrap().to_string(), "2026-02-24T19:45:13");

        let t = DeviceTime::parse("2026-09-30 17:00:00").unwrap();
        assert_eq!(t.instant, None);
        assert_eq!(t.utc_offset, None);
        assert_eq!(t.local.unwrap().to_string(), "2026-09-30T17:00:00");

        let t = DeviceTime::parse("2023-03-18T17:37:54Z").unwrap();
        assert_eq!(t.instant, Some(ts("2023-03-18T17:37:54Z")));

        assert_eq!(DeviceTime::parse("yesterday"), None);
        assert_eq!(DeviceTime::parse("2026-13-40 99:00:00"), None);
        assert_eq!(DeviceTime::parse("2026-02-24"), None);
    }

    #[test]
    fn unix_and_local_time_give_the_offset() {
        // The DahuaVTO2MQTT fixture: UTC 1583173448 with LocaleTime 2020-03-02 20:24:08.
        let local: civil::DateTime = "2020-03-02T20:24:08".parse().unwrap();
        let t = DeviceTime::from_unix_and_local(1583173448, local).unwrap();
        assert_eq!(t.instant, Some(ts("2020-03-02T18:24:08Z")));
        assert_eq!(t.utc_offset.map(|o| o.seconds()), Some(2 * 3600));
        // A clock 7 s off gives no offset, but both readings are kept.
        let t = DeviceTime::from_unix_and_local(1583173441, local).unwrap();
        assert_eq!(t.utc_offset, None);
        assert_eq!(t.local, Some(local));
        assert_eq!(DeviceTime::from_unix_seconds(0), None);
        assert_eq!(DeviceTime::from_unix_seconds(i64::MAX), None);
    }

    #[test]
    fn local_only_time_resolves_in_the_gate_zone() {
        let mut e = GateEvent::new(
            GateEventKind::AccessGranted,
            "ATTLOG",
            ts("2026-09-30T09:00:05Z"),
            Bytes::new(),
        );
        e.set_device_time(DeviceTime::parse("2026-09-30 17:00:00").unwrap());
        let tz = TimeZone::fixed(Offset::from_seconds(8 * 3600).unwrap());
        assert_eq!(e.resolve_device_time(&tz), Some(ts("2026-09-30T09:00:00Z")));
    }

    #[test]
    fn raw_redaction_replaces_whole_tokens_only() {
        let mut e = GateEvent::new(
            GateEventKind::AccessGranted,
            "x",
            ts("2026-01-01T00:00:00Z"),
            Bytes::from_static(br#"{"CardNo":"AABB1122","RecNo":"AABB11223"}"#),
        );
        e.redact_raw("AABB1122");
        assert_eq!(&e.raw[..], br#"{"CardNo":"****1122","RecNo":"AABB11223"}"#);
    }

    #[test]
    fn meta_reads_query_and_content_type_params() {
        let m = PayloadMeta::new(ts("2026-01-01T00:00:00Z"))
            .with_query("?SN=CJDE%20193&table=ATTLOG&Stamp=9999&empty")
            .with_content_type("multipart/form-data; boundary=\"MIME_boundary\"; charset=UTF-8");
        assert_eq!(m.query_param("SN").as_deref(), Some("CJDE 193"));
        assert_eq!(m.query_param("table").as_deref(), Some("ATTLOG"));
        assert_eq!(m.query_param("empty").as_deref(), Some(""));
        assert_eq!(m.query_param("sn"), None);
        assert_eq!(m.content_type_param("Boundary"), Some("MIME_boundary"));
        assert_eq!(m.mime_type().as_deref(), Some("multipart/form-data"));
        let bad = PayloadMeta::new(ts("2026-01-01T00:00:00Z")).with_query("SN=%E4%&x=%");
        assert_eq!(bad.query_param("SN"), None);
        assert_eq!(bad.query_param("x").as_deref(), Some("%"));
    }

    #[test]
    fn errors_locate_and_excerpt() {
        let payload = b"{\"a\":\n  oops}";
        let off = byte_offset_of(payload, 2, 3);
        assert_eq!(payload[off], b'o');
        let e = AdapterError::new("dahua", "invalid JSON").at_byte(payload, off);
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let text = e.to_string();
        assert!(
            text.starts_with("dahua payload: invalid JSON at byte 8 near"),
            "{text}"
        );
        assert!(text.contains("\\n  oops"), "{text}");
        assert_eq!(byte_offset_of(payload, 9, 1), payload.len());
    }

    #[test]
    fn offsets_format_and_parse() {
        for secs in [0, 8 * 3600, -(5 * 3600 + 30 * 60), 5 * 3600 + 45 * 60] {
            let o = Offset::from_seconds(secs).unwrap();
            assert_eq!(parse_offset_text(&offset_text(o)), Some(o));
        }
        assert_eq!(
            offset_text(Offset::from_seconds(8 * 3600).unwrap()),
            "+08:00"
        );
        assert_eq!(parse_offset_text("08:00"), None);
    }
}
