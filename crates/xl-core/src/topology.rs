//! The topology as data: stations, communities, grids, cameras (with their zones) and gates,
//! each checked on its own ([`Entry::validate`]) and together ([`Topology::check_references`]),
//! and the difference between two topologies ([`Topology::diff`]), by which the runtime touches
//! only what changed.
//!
//! Pure: serde, no I/O. The store keeps these (`xl_store::topology`); the config file may
//! declare entries too ([`Origin::Config`]), which are applied at each start and read-only in
//! the API.
//!
//! Secrets (a camera's password, a gate's push secret) are [`Secret`]s: never shown by `Debug`
//! and never serialised (the fields are skipped), so an entry written to the audit log or an
//! API answer cannot carry one. The store persists them in columns of their own.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::camera::{CameraDetect, CameraNetwork, DecodePolicy, valid_detect_rate};
use crate::error::ErrorKind;
use crate::ids::{CameraId, CommunityId, GateId, GridId, StationId};
use crate::zone::Zone;

/// Longest display name, in characters (幸福小区东门 is 6).
pub const MAX_NAME_CHARS: usize = 64;
/// Most zones one camera may have.
pub const MAX_ZONES_PER_CAMERA: usize = 64;
/// Longest stream URL or file path, in bytes.
pub const MAX_SOURCE_BYTES: usize = 2048;
/// Shortest gate push secret (it is all that stands between the network and the gate's
/// events when no address list is set).
pub const MIN_PUSH_SECRET_CHARS: usize = 16;
/// Longest secret, in characters.
pub const MAX_SECRET_CHARS: usize = 256;
/// Longest `offline_after_secs` of a gate: 30 days.
pub const MAX_OFFLINE_AFTER_SECS: u64 = 30 * 86_400;
/// Most entries in a gate's `push_allow_from`.
pub const MAX_ALLOW_FROM: usize = 64;

// ----------------------------------------------------------------------------------------------
// Secrets, origins, kinds

/// A credential (camera password, gate push secret). `Debug` shows `Secret(***)`; there is no
/// `Serialize`, and the fields that hold one are skipped when an entry is serialised, so
/// neither logs, the audit log nor API answers can carry it. Deserialised from a plain string
/// (config files, API requests). [`Secret::expose`] is for the store and the runtime only.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself: to store it, or to hand it to the camera or the gate transport.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn check(&self, field: &str, min_chars: usize) -> Result<(), FieldError> {
        let n = self.0.chars().count();
        if n < min_chars.max(1) {
            let reason = if min_chars > 1 {
                format!("shorter than {min_chars} characters; use a long random one")
            } else {
                "empty; leave it out instead".to_owned()
            };
            return Err(FieldError::new(field, reason));
        }
        if n > MAX_SECRET_CHARS {
            return Err(FieldError::new(
                field,
                format!("longer than {MAX_SECRET_CHARS} characters"),
            ));
        }
        if self.0.chars().any(char::is_control) {
            return Err(FieldError::new(field, "has a control character"));
        }
        Ok(())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where an entry was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// In the config file: applied at each start, read-only in the API ("from config").
    Config,
    /// Made through the API or the console; lives in the store.
    Store,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Store => "store",
        }
    }
}

impl std::str::FromStr for Origin {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "config" => Ok(Origin::Config),
            "store" => Ok(Origin::Store),
            _ => Err(format!("unknown origin {s:?}: expected config or store")),
        }
    }
}

/// The kinds of topology entries, in the order of the hierarchy (an entry refers only to
/// kinds before its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Station,
    Community,
    Grid,
    Camera,
    Gate,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Station,
        Kind::Community,
        Kind::Grid,
        Kind::Camera,
        Kind::Gate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Station => "station",
            Kind::Community => "community",
            Kind::Grid => "grid",
            Kind::Camera => "camera",
            Kind::Gate => "gate",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The id of an entry of any kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum EntryId {
    Station(StationId),
    Community(CommunityId),
    Grid(GridId),
    Camera(CameraId),
    Gate(GateId),
}

impl EntryId {
    pub fn kind(&self) -> Kind {
        match self {
            EntryId::Station(_) => Kind::Station,
            EntryId::Community(_) => Kind::Community,
            EntryId::Grid(_) => Kind::Grid,
            EntryId::Camera(_) => Kind::Camera,
            EntryId::Gate(_) => Kind::Gate,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            EntryId::Station(id) => id.as_str(),
            EntryId::Community(id) => id.as_str(),
            EntryId::Grid(id) => id.as_str(),
            EntryId::Camera(id) => id.as_str(),
            EntryId::Gate(id) => id.as_str(),
        }
    }

    /// `kind` and `id` as text (a stored row, an API path) to a typed id.
    pub fn parse(kind: Kind, id: &str) -> Result<EntryId, crate::ids::IdError> {
        Ok(match kind {
            Kind::Station => EntryId::Station(StationId::new(id)?),
            Kind::Community => EntryId::Community(CommunityId::new(id)?),
            Kind::Grid => EntryId::Grid(GridId::new(id)?),
            Kind::Camera => EntryId::Camera(CameraId::new(id)?),
            Kind::Gate => EntryId::Gate(GateId::new(id)?),
        })
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind(), self.as_str())
    }
}

// ----------------------------------------------------------------------------------------------
// Errors

/// A field that fails a check, named relative to its entry (`zones[2].polygon`, `main.url`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error one level down: `polygon` within `zones[2]` is `zones[2].polygon`.
    pub fn within(self, prefix: &str) -> FieldError {
        FieldError {
            field: format!("{prefix}.{}", self.field),
            reason: self.reason,
        }
    }

    fn of(self, kind: Kind, id: &str) -> TopologyError {
        TopologyError::InvalidField {
            kind,
            id: id.to_owned(),
            field: self.field,
            reason: self.reason,
        }
    }
}

/// Why a topology entry, or the topology as a whole, is refused. Every variant names the entry
/// (kind and id) and the field, so the API can answer 400 with it and the console can mark the
/// field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// A field's value is unusable on its own.
    #[error("{kind} {id:?}: {field}: {reason}")]
    InvalidField {
        kind: Kind,
        id: String,
        field: String,
        reason: String,
    },
    /// A field names an entry that does not exist, or one that does not fit (a grid of another
    /// community).
    #[error("{kind} {id:?}: {field}: {reason}")]
    BadReference {
        kind: Kind,
        id: String,
        field: String,
        reason: String,
    },
    /// The entry cannot go: another one still refers to it.
    #[error("{kind} {id:?} is still used by {by} (its {field}); change or delete that first")]
    InUse {
        kind: Kind,
        id: String,
        by: EntryId,
        field: &'static str,
    },
}

impl TopologyError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }

    /// The entry the error is about.
    pub fn entry(&self) -> (Kind, &str) {
        match self {
            TopologyError::InvalidField { kind, id, .. }
            | TopologyError::BadReference { kind, id, .. }
            | TopologyError::InUse { kind, id, .. } => (*kind, id),
        }
    }

    /// The field the error is about (`None` for [`TopologyError::InUse`], which is about the
    /// entry as a whole).
    pub fn field(&self) -> Option<&str> {
        match self {
            TopologyError::InvalidField { field, .. }
            | TopologyError::BadReference { field, .. } => Some(field),
            TopologyError::InUse { .. } => None,
        }
    }
}

fn bad_reference(kind: Kind, id: &str, field: &str, reason: String) -> TopologyError {
    TopologyError::BadReference {
        kind,
        id: id.to_owned(),
        field: field.to_owned(),
        reason,
    }
}

// ----------------------------------------------------------------------------------------------
// Field checks

/// A display name: not blank, at most [`MAX_NAME_CHARS`] characters, no control characters.
pub(crate) fn check_name(field: &str, name: &str) -> Result<(), FieldError> {
    if name.trim().is_empty() {
        return Err(FieldError::new(field, "empty; give it a display name"));
    }
    let n = name.chars().count();
    if n > MAX_NAME_CHARS {
        return Err(FieldError::new(
            field,
            format!("{n} characters; at most {MAX_NAME_CHARS}"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(field, "has a control character"));
    }
    Ok(())
}

/// A short identifier-like text (firmware name, device key, user name): 1 to `max` characters,
/// no control characters, and only characters `ok` accepts.
fn check_token(
    field: &str,
    s: &str,
    max: usize,
    ok: impl Fn(char) -> bool,
    expected: &str,
) -> Result<(), FieldError> {
    if s.is_empty() {
        return Err(FieldError::new(field, "empty"));
    }
    if s.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("longer than {max} characters"),
        ));
    }
    if let Some(c) = s.chars().find(|&c| c.is_control() || !ok(c)) {
        return Err(FieldError::new(
            field,
            format!("has {c:?}; expected {expected}"),
        ));
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------------
// Entries

/// A police station (派出所).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Station {
    pub id: StationId,
    /// Display name (城关派出所).
    pub name: String,
    #[serde(default)]
    pub disabled: bool,
}

impl Station {
    pub fn validate(&self) -> Result<(), TopologyError> {
        check_name("name", &self.name).map_err(|e| e.of(Kind::Station, self.id.as_str()))
    }
}

/// A community (小区/社区), optionally owned by a station.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Community {
    pub id: CommunityId,
    /// Display name (幸福小区).
    pub name: String,
    #[serde(default)]
    pub station: Option<StationId>,
    #[serde(default)]
    pub disabled: bool,
}

impl Community {
    pub fn validate(&self) -> Result<(), TopologyError> {
        check_name("name", &self.name).map_err(|e| e.of(Kind::Community, self.id.as_str()))
    }
}

/// A grid (网格): a part of one community.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    pub id: GridId,
    pub community: CommunityId,
    /// Display name (第三网格).
    pub name: String,
    #[serde(default)]
    pub disabled: bool,
}

impl Grid {
    pub fn validate(&self) -> Result<(), TopologyError> {
        check_name("name", &self.name).map_err(|e| e.of(Kind::Grid, self.id.as_str()))
    }
}

/// Where a stream comes from. A tagged kind (`{"kind": "rtsp", "url": "rtsp://..."}`), so that
/// GB/T 28181 sources (registered devices, no URL) can join later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StreamSource {
    /// `rtsp://` or `rtsps://host[:port]/path`, without credentials: they are the camera's
    /// `username` and `password`. A URL carrying `user:pass@` is refused (a stored or listed
    /// URL must never hold a password); whoever reads a legacy config moves them out first.
    Rtsp { url: String },
    /// A video file played in a loop at its own frame rate, standing in for a camera.
    File { path: String },
}

impl StreamSource {
    /// Checks the URL or path; `field` is where the source sits (`main`, `sub`). Errors never
    /// quote a URL that carries credentials.
    pub fn validate(&self, field: &str) -> Result<(), FieldError> {
        match self {
            StreamSource::Rtsp { url } => {
                let field = format!("{field}.url");
                if url.len() > MAX_SOURCE_BYTES {
                    return Err(FieldError::new(
                        field,
                        format!("longer than {MAX_SOURCE_BYTES} bytes"),
                    ));
                }
                let parsed = url::Url::parse(url).map_err(|e| {
                    let shown = if url.contains('@') {
                        "(not shown)"
                    } else {
                        url
                    };
                    FieldError::new(
                        &field,
                        format!("{shown:?} is not a URL ({e}); expected rtsp://host/path"),
                    )
                })?;
                if !matches!(parsed.scheme(), "rtsp" | "rtsps") {
                    return Err(FieldError::new(
                        field,
                        format!(
                            "must start with rtsp:// or rtsps:// (got {}://); a video file is \
                             a source of kind \"file\"",
                            parsed.scheme()
                        ),
                    ));
                }
                if !parsed.username().is_empty() || parsed.password().is_some() {
                    return Err(FieldError::new(
                        field,
                        "carries credentials (user:password@); put them in the camera's \
                         username and password",
                    ));
                }
                if parsed.host_str().is_none_or(str::is_empty) {
                    return Err(FieldError::new(field, "has no host"));
                }
                Ok(())
            }
            StreamSource::File { path } => {
                let field = format!("{field}.path");
                if path.trim().is_empty() {
                    return Err(FieldError::new(field, "empty"));
                }
                if path.len() > MAX_SOURCE_BYTES {
                    return Err(FieldError::new(
                        field,
                        format!("longer than {MAX_SOURCE_BYTES} bytes"),
                    ));
                }
                if path.contains('\0') {
                    return Err(FieldError::new(field, "has a NUL character"));
                }
                if path.contains("://") {
                    return Err(FieldError::new(
                        field,
                        "is a URL, not a file; an RTSP camera is a source of kind \"rtsp\"",
                    ));
                }
                Ok(())
            }
        }
    }
}

/// How RTP travels from an RTSP camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    /// Interleaved on the RTSP TCP connection: no loss, works through NAT.
    Tcp,
    /// RTP over UDP: for LANs only.
    Udp,
}

/// A camera: where its streams come from, how it is decoded and analysed, and its zones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Camera {
    pub id: CameraId,
    /// Display name (东门入口).
    pub name: String,
    pub community: CommunityId,
    /// A grid of the same community.
    #[serde(default)]
    pub grid: Option<GridId>,
    /// `community` (default), `skynet` or `private`.
    #[serde(default)]
    pub network: CameraNetwork,
    /// The main stream: full resolution, for evidence and live view.
    #[serde(default)]
    pub main: Option<StreamSource>,
    /// The sub stream, decoded for analysis (today's single `url` or `file`).
    #[serde(default)]
    pub sub: Option<StreamSource>,
    #[serde(default)]
    pub username: Option<String>,
    /// Never shown: skipped when serialised, redacted in `Debug`.
    #[serde(default, skip_serializing)]
    pub password: Option<Secret>,
    /// `tcp` or `udp`. Default: the hub's `[rtsp] transport`.
    #[serde(default)]
    pub transport: Option<RtspTransport>,
    /// `all` (default), `skip-non-reference` or `key-frames`.
    #[serde(default)]
    pub decode: DecodePolicy,
    #[serde(default)]
    pub detect: CameraDetect,
    #[serde(default)]
    pub zones: Vec<Zone>,
    /// What is recorded and kept; each part left out takes the hub's `[recording]` default.
    #[serde(default, skip_serializing_if = "is_default_recording")]
    pub recording: crate::recording::CameraRecording,
    #[serde(default)]
    pub disabled: bool,
}

fn is_default_recording(r: &crate::recording::CameraRecording) -> bool {
    *r == crate::recording::CameraRecording::default()
}

impl Camera {
    /// The stream analysis decodes: the sub stream, else the main one.
    pub fn analysis_source(&self) -> Option<&StreamSource> {
        self.sub.as_ref().or(self.main.as_ref())
    }

    pub fn validate(&self) -> Result<(), TopologyError> {
        self.check()
            .map_err(|e| e.of(Kind::Camera, self.id.as_str()))
    }

    fn check(&self) -> Result<(), FieldError> {
        check_name("name", &self.name)?;
        if self.main.is_none() && self.sub.is_none() {
            return Err(FieldError::new(
                "sub",
                "a camera needs a main or a sub stream (rtsp://... or a file)",
            ));
        }
        if let Some(s) = &self.main {
            s.validate("main")?;
        }
        if let Some(s) = &self.sub {
            s.validate("sub")?;
        }
        if let Some(user) = &self.username {
            check_token("username", user, 128, |c| c != ':', "no ':'")?;
        }
        if let Some(password) = &self.password {
            if self.username.is_none() {
                return Err(FieldError::new("password", "set without a username"));
            }
            password.check("password", 1)?;
        }
        if let Some(rate) = self.detect.rate
            && !valid_detect_rate(rate)
        {
            return Err(FieldError::new(
                "detect.rate",
                format!(
                    "must be 0 (no limit) or at least {} detections a second, not {rate}",
                    crate::camera::MIN_DETECT_RATE
                ),
            ));
        }
        self.recording.validate()?;
        if self.zones.len() > MAX_ZONES_PER_CAMERA {
            return Err(FieldError::new(
                "zones",
                format!(
                    "{} zones; a camera may have at most {MAX_ZONES_PER_CAMERA}",
                    self.zones.len()
                ),
            ));
        }
        for (i, zone) in self.zones.iter().enumerate() {
            zone.validate()
                .map_err(|e| e.within(&format!("zones[{i}]")))?;
            if let Some(first) = self.zones[..i].iter().position(|z| z.id == zone.id) {
                return Err(FieldError::new(
                    format!("zones[{i}].id"),
                    format!(
                        "{:?} is also zones[{first}]; zone ids are unique per camera",
                        zone.id.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// How a gate's payloads may arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateTransport {
    /// Over MQTT only (the broker's access rules say who may speak for it).
    Mqtt,
    /// HTTP push only (`push_secret` or `push_allow_from` say who may).
    HttpPush,
    /// Either.
    Both,
}

impl GateTransport {
    /// `explicit`, or the default: HTTP push only for a gate with push settings, else MQTT.
    pub fn resolve(explicit: Option<GateTransport>, takes_push: bool) -> GateTransport {
        match explicit {
            Some(t) => t,
            None if takes_push => GateTransport::HttpPush,
            None => GateTransport::Mqtt,
        }
    }
}

fn default_offline_after_secs() -> u64 {
    300
}

/// A gate: a door, turnstile or barrier with an access controller. The fields of
/// `xl_gates::GateConfig` (`[[gates]]`), plus a name, a grid and `disabled`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    pub id: GateId,
    /// Display name (东门门禁).
    pub name: String,
    pub community: CommunityId,
    /// A grid of the same community.
    #[serde(default)]
    pub grid: Option<GridId>,
    /// The firmware the gate speaks (`hikvision-isapi`, `zkteco-adms`, ... or a generic
    /// dialect's name). Only its spelling is checked here; whether the hub knows it is for
    /// `xl-gates`, which has the adapters and the configured dialects.
    pub firmware: String,
    /// The identifier the transport finds for this gate. Default: the gate id.
    #[serde(default)]
    pub device: Option<String>,
    /// The camera that watches the gate; of the same community.
    #[serde(default)]
    pub camera: Option<CameraId>,
    /// `mqtt`, `http-push` or `both`. Default: `http-push` when push settings are set, else
    /// `mqtt`.
    #[serde(default)]
    pub transport: Option<GateTransport>,
    /// HTTP push: the shared secret the device sends. Never shown.
    #[serde(default, skip_serializing)]
    pub push_secret: Option<Secret>,
    /// HTTP push: addresses or networks allowed to push for this gate (`10.0.0.5`,
    /// `10.0.0.0/24`).
    #[serde(
        default,
        serialize_with = "ip_nets::serialize",
        deserialize_with = "ip_nets::deserialize"
    )]
    pub push_allow_from: Vec<ipnet::IpNet>,
    /// IANA time zone of the device's clock (`Asia/Shanghai`), for payloads that send only a
    /// wall clock. Only its spelling is checked here (that needs no time zone database); the
    /// store checks that the zone exists. Default: the hub's.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Silence after which the gate counts as offline. Default 300.
    #[serde(default = "default_offline_after_secs")]
    pub offline_after_secs: u64,
    #[serde(default)]
    pub disabled: bool,
}

impl Gate {
    /// The identifier transports match against.
    pub fn device_key(&self) -> &str {
        self.device.as_deref().unwrap_or(self.id.as_str())
    }

    fn takes_push(&self) -> bool {
        self.push_secret.is_some() || !self.push_allow_from.is_empty()
    }

    /// `transport`, or its default.
    pub fn transport(&self) -> GateTransport {
        GateTransport::resolve(self.transport, self.takes_push())
    }

    pub fn validate(&self) -> Result<(), TopologyError> {
        self.check().map_err(|e| e.of(Kind::Gate, self.id.as_str()))
    }

    fn check(&self) -> Result<(), FieldError> {
        check_name("name", &self.name)?;
        check_token(
            "firmware",
            &self.firmware,
            64,
            |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'),
            "letters, digits, '-', '_' or '.'",
        )?;
        if let Some(device) = &self.device {
            check_token("device", device, 128, |_| true, "printable text")?;
        }
        if let Some(tz) = &self.timezone {
            check_token(
                "timezone",
                tz,
                64,
                |c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '+' | '-'),
                "an IANA zone such as Asia/Shanghai",
            )?;
            if tz.starts_with('/') || tz.ends_with('/') || tz.contains("//") {
                return Err(FieldError::new(
                    "timezone",
                    format!("{tz:?} is not an IANA zone such as Asia/Shanghai"),
                ));
            }
        }
        if !(1..=MAX_OFFLINE_AFTER_SECS).contains(&self.offline_after_secs) {
            return Err(FieldError::new(
                "offline_after_secs",
                format!("must be 1 to {MAX_OFFLINE_AFTER_SECS} (30 days)"),
            ));
        }
        if let Some(secret) = &self.push_secret {
            secret.check("push_secret", MIN_PUSH_SECRET_CHARS)?;
        }
        if self.push_allow_from.len() > MAX_ALLOW_FROM {
            return Err(FieldError::new(
                "push_allow_from",
                format!("more than {MAX_ALLOW_FROM} entries"),
            ));
        }
        match (self.transport(), self.takes_push()) {
            (GateTransport::HttpPush | GateTransport::Both, false) => Err(FieldError::new(
                "transport",
                "takes HTTP push, but neither push_secret nor push_allow_from is set; set one \
                 (or transport \"mqtt\")",
            )),
            (GateTransport::Mqtt, true) => Err(FieldError::new(
                "transport",
                "\"mqtt\" with push_secret or push_allow_from: HTTP push would be refused; \
                 remove them, or use \"both\"",
            )),
            _ => Ok(()),
        }
    }
}

/// `push_allow_from` as text: `10.0.0.5` (one address) or `10.0.0.0/24`.
mod ip_nets {
    use super::*;

    pub fn parse(s: &str) -> Result<ipnet::IpNet, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            return Ok(net);
        }
        s.parse::<IpAddr>()
            .map(ipnet::IpNet::from)
            .map_err(|_| format!("{s:?} is not an IP address or network (10.0.0.0/24)"))
    }

    pub fn serialize<S: Serializer>(nets: &[ipnet::IpNet], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(nets.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| parse(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// One entry of any kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "entry", rename_all = "snake_case")]
pub enum Entry {
    Station(Station),
    Community(Community),
    Grid(Grid),
    Camera(Camera),
    Gate(Gate),
}

impl Entry {
    pub fn id(&self) -> EntryId {
        match self {
            Entry::Station(e) => EntryId::Station(e.id.clone()),
            Entry::Community(e) => EntryId::Community(e.id.clone()),
            Entry::Grid(e) => EntryId::Grid(e.id.clone()),
            Entry::Camera(e) => EntryId::Camera(e.id.clone()),
            Entry::Gate(e) => EntryId::Gate(e.id.clone()),
        }
    }

    pub fn kind(&self) -> Kind {
        self.id().kind()
    }

    /// Checks the entry on its own (references are [`Topology::check_references`]).
    pub fn validate(&self) -> Result<(), TopologyError> {
        match self {
            Entry::Station(e) => e.validate(),
            Entry::Community(e) => e.validate(),
            Entry::Grid(e) => e.validate(),
            Entry::Camera(e) => e.validate(),
            Entry::Gate(e) => e.validate(),
        }
    }

    pub fn disabled(&self) -> bool {
        match self {
            Entry::Station(e) => e.disabled,
            Entry::Community(e) => e.disabled,
            Entry::Grid(e) => e.disabled,
            Entry::Camera(e) => e.disabled,
            Entry::Gate(e) => e.disabled,
        }
    }

    pub fn set_disabled(&mut self, disabled: bool) {
        match self {
            Entry::Station(e) => e.disabled = disabled,
            Entry::Community(e) => e.disabled = disabled,
            Entry::Grid(e) => e.disabled = disabled,
            Entry::Camera(e) => e.disabled = disabled,
            Entry::Gate(e) => e.disabled = disabled,
        }
    }

    /// The entry's secret (camera password, gate push secret), if it has one.
    pub fn secret(&self) -> Option<&Secret> {
        match self {
            Entry::Camera(c) => c.password.as_ref(),
            Entry::Gate(g) => g.push_secret.as_ref(),
            _ => None,
        }
    }

    /// Replaces the entry's secret (nothing for kinds without one).
    pub fn set_secret(&mut self, secret: Option<Secret>) {
        match self {
            Entry::Camera(c) => c.password = secret,
            Entry::Gate(g) => g.push_secret = secret,
            _ => {}
        }
    }
}

/// What the store knows of an entry beyond the entry itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMeta {
    pub origin: Origin,
    /// 1 when made, plus one at every change (update, disable, enable, config re-applied with
    /// a difference). Writers name the revision they read; a stale one is refused.
    pub revision: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Whether the entry has a secret (camera password, gate push secret), also where the
    /// secret itself is withheld.
    pub secret_set: bool,
}

// ----------------------------------------------------------------------------------------------
// The whole topology

/// Every entry, by kind and id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topology {
    pub stations: BTreeMap<StationId, Station>,
    pub communities: BTreeMap<CommunityId, Community>,
    pub grids: BTreeMap<GridId, Grid>,
    pub cameras: BTreeMap<CameraId, Camera>,
    pub gates: BTreeMap<GateId, Gate>,
}

/// What happened to one entry between two topologies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Added,
    Changed,
    Removed,
}

/// One entry added, changed or removed ([`Topology::diff`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Change {
    pub op: ChangeOp,
    pub id: EntryId,
}

impl Topology {
    /// A topology holding `entries` (a later entry with the same kind and id replaces an
    /// earlier one).
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Topology {
        let mut t = Topology::default();
        for e in entries {
            t.insert(e);
        }
        t
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries of every kind.
    pub fn len(&self) -> usize {
        self.stations.len()
            + self.communities.len()
            + self.grids.len()
            + self.cameras.len()
            + self.gates.len()
    }

    /// Adds or replaces an entry; the one it replaced.
    pub fn insert(&mut self, entry: Entry) -> Option<Entry> {
        match entry {
            Entry::Station(e) => self.stations.insert(e.id.clone(), e).map(Entry::Station),
            Entry::Community(e) => self
                .communities
                .insert(e.id.clone(), e)
                .map(Entry::Community),
            Entry::Grid(e) => self.grids.insert(e.id.clone(), e).map(Entry::Grid),
            Entry::Camera(e) => self.cameras.insert(e.id.clone(), e).map(Entry::Camera),
            Entry::Gate(e) => self.gates.insert(e.id.clone(), e).map(Entry::Gate),
        }
    }

    pub fn remove(&mut self, id: &EntryId) -> Option<Entry> {
        match id {
            EntryId::Station(id) => self.stations.remove(id).map(Entry::Station),
            EntryId::Community(id) => self.communities.remove(id).map(Entry::Community),
            EntryId::Grid(id) => self.grids.remove(id).map(Entry::Grid),
            EntryId::Camera(id) => self.cameras.remove(id).map(Entry::Camera),
            EntryId::Gate(id) => self.gates.remove(id).map(Entry::Gate),
        }
    }

    /// A copy of one entry.
    pub fn get(&self, id: &EntryId) -> Option<Entry> {
        match id {
            EntryId::Station(id) => self.stations.get(id).cloned().map(Entry::Station),
            EntryId::Community(id) => self.communities.get(id).cloned().map(Entry::Community),
            EntryId::Grid(id) => self.grids.get(id).cloned().map(Entry::Grid),
            EntryId::Camera(id) => self.cameras.get(id).cloned().map(Entry::Camera),
            EntryId::Gate(id) => self.gates.get(id).cloned().map(Entry::Gate),
        }
    }

    pub fn contains(&self, id: &EntryId) -> bool {
        match id {
            EntryId::Station(id) => self.stations.contains_key(id),
            EntryId::Community(id) => self.communities.contains_key(id),
            EntryId::Grid(id) => self.grids.contains_key(id),
            EntryId::Camera(id) => self.cameras.contains_key(id),
            EntryId::Gate(id) => self.gates.contains_key(id),
        }
    }

    /// Copies of every entry, in the order of the hierarchy (stations first), each kind by id.
    pub fn entries(&self) -> Vec<Entry> {
        let mut v = Vec::with_capacity(self.len());
        v.extend(self.stations.values().cloned().map(Entry::Station));
        v.extend(self.communities.values().cloned().map(Entry::Community));
        v.extend(self.grids.values().cloned().map(Entry::Grid));
        v.extend(self.cameras.values().cloned().map(Entry::Camera));
        v.extend(self.gates.values().cloned().map(Entry::Gate));
        v
    }

    /// Every entry checked on its own, then the references between them: all the problems
    /// found, in the order of the hierarchy.
    pub fn validate(&self) -> Result<(), Vec<TopologyError>> {
        let mut errors: Vec<TopologyError> = self
            .entries()
            .iter()
            .filter_map(|e| e.validate().err())
            .collect();
        if let Err(more) = self.check_references() {
            errors.extend(more);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The references between entries: every id a field names exists and fits (a grid of the
    /// entry's own community, a gate's camera in the gate's community), a map's key is its
    /// entry's id, and no device is two gates. All the problems found, each naming the entry
    /// and the field.
    pub fn check_references(&self) -> Result<(), Vec<TopologyError>> {
        let mut errors = Vec::new();
        let mut key = |kind: Kind, key: &str, id: &str| {
            if key != id {
                errors.push(FieldError::new("id", format!("listed under {key:?}")).of(kind, id));
            }
        };
        for (k, e) in &self.stations {
            key(Kind::Station, k.as_str(), e.id.as_str());
        }
        for (k, e) in &self.communities {
            key(Kind::Community, k.as_str(), e.id.as_str());
        }
        for (k, e) in &self.grids {
            key(Kind::Grid, k.as_str(), e.id.as_str());
        }
        for (k, e) in &self.cameras {
            key(Kind::Camera, k.as_str(), e.id.as_str());
        }
        for (k, e) in &self.gates {
            key(Kind::Gate, k.as_str(), e.id.as_str());
        }

        for c in self.communities.values() {
            if let Some(s) = &c.station
                && !self.stations.contains_key(s)
            {
                errors.push(bad_reference(
                    Kind::Community,
                    c.id.as_str(),
                    "station",
                    format!("station {:?} does not exist", s.as_str()),
                ));
            }
        }
        for g in self.grids.values() {
            if !self.communities.contains_key(&g.community) {
                errors.push(bad_reference(
                    Kind::Grid,
                    g.id.as_str(),
                    "community",
                    format!("community {:?} does not exist", g.community.as_str()),
                ));
            }
        }
        for c in self.cameras.values() {
            self.check_place(
                Kind::Camera,
                c.id.as_str(),
                &c.community,
                c.grid.as_ref(),
                &mut errors,
            );
        }
        let mut devices: HashMap<(&str, &str), &GateId> = HashMap::new();
        for g in self.gates.values() {
            self.check_place(
                Kind::Gate,
                g.id.as_str(),
                &g.community,
                g.grid.as_ref(),
                &mut errors,
            );
            if let Some(cam) = &g.camera {
                match self.cameras.get(cam) {
                    None => errors.push(bad_reference(
                        Kind::Gate,
                        g.id.as_str(),
                        "camera",
                        format!("camera {:?} does not exist", cam.as_str()),
                    )),
                    Some(c) if c.community != g.community => errors.push(bad_reference(
                        Kind::Gate,
                        g.id.as_str(),
                        "camera",
                        format!(
                            "camera {:?} is in community {:?}, not the gate's {:?}",
                            cam.as_str(),
                            c.community.as_str(),
                            g.community.as_str()
                        ),
                    )),
                    Some(_) => {}
                }
            }
            if let Some(other) = devices.insert((&g.firmware, g.device_key()), &g.id) {
                errors.push(bad_reference(
                    Kind::Gate,
                    g.id.as_str(),
                    "device",
                    format!(
                        "device {:?} ({}) is also gate {:?}; a device belongs to one gate",
                        g.device_key(),
                        g.firmware,
                        other.as_str()
                    ),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// A camera's or gate's community and grid exist, and the grid is in that community.
    fn check_place(
        &self,
        kind: Kind,
        id: &str,
        community: &CommunityId,
        grid: Option<&GridId>,
        errors: &mut Vec<TopologyError>,
    ) {
        if !self.communities.contains_key(community) {
            errors.push(bad_reference(
                kind,
                id,
                "community",
                format!("community {:?} does not exist", community.as_str()),
            ));
        }
        if let Some(grid) = grid {
            match self.grids.get(grid) {
                None => errors.push(bad_reference(
                    kind,
                    id,
                    "grid",
                    format!("grid {:?} does not exist", grid.as_str()),
                )),
                Some(g) if &g.community != community => errors.push(bad_reference(
                    kind,
                    id,
                    "grid",
                    format!(
                        "grid {:?} is in community {:?}, not {:?}",
                        grid.as_str(),
                        g.community.as_str(),
                        community.as_str()
                    ),
                )),
                Some(_) => {}
            }
        }
    }

    /// The entries that refer to `id`, each with the field that does: what must change before
    /// `id` can be deleted.
    pub fn used_by(&self, id: &EntryId) -> Vec<(EntryId, &'static str)> {
        let mut users = Vec::new();
        match id {
            EntryId::Station(s) => users.extend(
                self.communities
                    .values()
                    .filter(|c| c.station.as_ref() == Some(s))
                    .map(|c| (EntryId::Community(c.id.clone()), "station")),
            ),
            EntryId::Community(k) => {
                users.extend(
                    self.grids
                        .values()
                        .filter(|g| &g.community == k)
                        .map(|g| (EntryId::Grid(g.id.clone()), "community")),
                );
                users.extend(
                    self.cameras
                        .values()
                        .filter(|c| &c.community == k)
                        .map(|c| (EntryId::Camera(c.id.clone()), "community")),
                );
                users.extend(
                    self.gates
                        .values()
                        .filter(|g| &g.community == k)
                        .map(|g| (EntryId::Gate(g.id.clone()), "community")),
                );
            }
            EntryId::Grid(k) => {
                users.extend(
                    self.cameras
                        .values()
                        .filter(|c| c.grid.as_ref() == Some(k))
                        .map(|c| (EntryId::Camera(c.id.clone()), "grid")),
                );
                users.extend(
                    self.gates
                        .values()
                        .filter(|g| g.grid.as_ref() == Some(k))
                        .map(|g| (EntryId::Gate(g.id.clone()), "grid")),
                );
            }
            EntryId::Camera(k) => users.extend(
                self.gates
                    .values()
                    .filter(|g| g.camera.as_ref() == Some(k))
                    .map(|g| (EntryId::Gate(g.id.clone()), "camera")),
            ),
            EntryId::Gate(_) => {}
        }
        users
    }

    /// Refuses to delete `id` while another entry refers to it, naming the first such entry.
    pub fn check_remove(&self, id: &EntryId) -> Result<(), TopologyError> {
        match self.used_by(id).into_iter().next() {
            None => Ok(()),
            Some((by, field)) => Err(TopologyError::InUse {
                kind: id.kind(),
                id: id.as_str().to_owned(),
                by,
                field,
            }),
        }
    }

    /// The entries added, changed (any field, `disabled` and secrets included) and removed from
    /// `old` to `new`, in an order that is safe to apply one by one: removals first, from the
    /// bottom of the hierarchy up (gates before the cameras they name), then additions and
    /// changes from the top down (a community before its cameras); within a kind, by id.
    pub fn diff(old: &Topology, new: &Topology) -> Vec<Change> {
        fn kind<K: Ord + Clone, V: PartialEq>(
            old: &BTreeMap<K, V>,
            new: &BTreeMap<K, V>,
            id: fn(K) -> EntryId,
            removed: &mut Vec<Change>,
            rest: &mut Vec<Change>,
        ) {
            for k in old.keys().filter(|k| !new.contains_key(*k)) {
                removed.push(Change {
                    op: ChangeOp::Removed,
                    id: id(k.clone()),
                });
            }
            for (k, v) in new {
                let op = match old.get(k) {
                    None => ChangeOp::Added,
                    Some(o) if o != v => ChangeOp::Changed,
                    Some(_) => continue,
                };
                rest.push(Change {
                    op,
                    id: id(k.clone()),
                });
            }
        }
        let mut removed: [Vec<Change>; 5] = Default::default();
        let mut rest = Vec::new();
        kind(
            &old.stations,
            &new.stations,
            EntryId::Station,
            &mut removed[0],
            &mut rest,
        );
        kind(
            &old.communities,
            &new.communities,
            EntryId::Community,
            &mut removed[1],
            &mut rest,
        );
        kind(
            &old.grids,
            &new.grids,
            EntryId::Grid,
            &mut removed[2],
            &mut rest,
        );
        kind(
            &old.cameras,
            &new.cameras,
            EntryId::Camera,
            &mut removed[3],
            &mut rest,
        );
        kind(
            &old.gates,
            &new.gates,
            EntryId::Gate,
            &mut removed[4],
            &mut rest,
        );
        let mut changes: Vec<Change> = removed.into_iter().rev().flatten().collect();
        changes.extend(rest);
        changes
    }

    /// The same topology with every secret removed (for readers that must not see them).
    pub fn without_secrets(mut self) -> Topology {
        for c in self.cameras.values_mut() {
            c.password = None;
        }
        for g in self.gates.values_mut() {
            g.push_secret = None;
        }
        self
    }
}

#[cfg(test)]
mod tests;
