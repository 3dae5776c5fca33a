//! Configuration of the gate transports: `[mqtt]` (with `[[mqtt.subscriptions]]`), `[[gates]]`
//! and `[gate_ingest]`. Strict: unknown keys are errors, and [`GatesConfig::validate`] names the
//! key path and the fix.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};
pub use xl_core::mqtt::BrokerAddr;
use xl_core::mqtt::has_pem_certificate;
use xl_core::{CameraId, CommunityId, GateId, GridId};
use xl_fw_generic::GenericConfig;

use crate::adapters;

/// Longest reconnect delay a config may ask for (an hour).
const MAX_BACKOFF_SECS: f64 = 3600.0;
/// Longest dedup window a config may ask for (30 days).
const MAX_WINDOW_SECS: u64 = 30 * 86_400;
use crate::mqtt::topic_filter_is_valid;

/// Everything the gate transports need, gathered from the hub's config file.
#[derive(Debug, Default, Clone)]
pub struct GatesConfig {
    pub mqtt: Option<MqttConfig>,
    pub gates: Vec<GateConfig>,
    pub ingest: IngestConfig,
}

/// `[mqtt]`: where gate events arrive over MQTT. Either `url` (an external broker) or
/// `embedded = true` (the hub runs its own broker on `listen`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host[:port]` (default port 1883) or `mqtts://host[:port]` (TLS, default port
    /// 8883, the system's CA certificates unless `ca_file` is set). Credentials in the URL are not accepted: use
    /// `username` and `password`. Required unless `embedded = true`.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// Never logged.
    #[serde(default)]
    pub password: Option<String>,
    /// With `mqtts://`: a PEM file with the CA certificate that signed the broker's
    /// certificate (a private broker's own CA). The broker's certificate is then verified
    /// against this CA (as well as the system's CA certificates); its name must still match
    /// the host in `url`. Only with `mqtts://`. Default: none, the system's CA certificates
    /// only.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The client id. It must stay the same across restarts: the broker keeps the hub's
    /// session (subscriptions and QoS 1 messages published while the hub is down) under it.
    /// Default `xueliang-hub`.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Run the embedded broker in the hub (rumqttd behind a front that stores gate events
    /// before they are acknowledged; see `broker.rs`) and ingest from it. Default false.
    #[serde(default)]
    pub embedded: bool,
    /// Where the embedded broker listens. Default `127.0.0.1:1883`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// MQTT keep-alive. Default 30.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
    /// First reconnect delay; doubles up to `backoff_max_secs`. Default 0.5.
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_secs: f64,
    /// Default 30.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_secs: f64,
    /// Largest payload accepted (bigger ones are refused by the client). Default 1048576.
    #[serde(default = "default_max_payload")]
    pub max_payload_bytes: usize,
    /// Topic filters and the firmware each carries. At least one.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionConfig>,
    /// `[[mqtt.accounts]]`: who may log in to the embedded broker, which gates each may
    /// report for and which topics it may read and write. Embedded broker only (an external
    /// broker has its own password file and ACL: deploy/mosquitto.acl). Default: none.
    #[serde(default)]
    pub accounts: Vec<MqttAccount>,
    /// Embedded broker only: let clients connect without a username when no account is
    /// configured. They may then report for every MQTT gate and read and write every topic
    /// except the hub's own (`xueliang/...`) and take no client id of the hub's: anyone who
    /// reaches the port speaks for every gate. Never needed with accounts (then anonymous
    /// clients are always refused); a warning is logged at every start. Default false: a
    /// broker without accounts accepts only the hub's own clients, and one that listens on
    /// anything but loopback refuses to start.
    #[serde(default)]
    pub allow_anonymous: bool,
    /// The password of the hub's own account on the embedded broker ([`HUB_USERNAME`], which
    /// MQTT out logs in with): random, made when the config is read, so each start has its
    /// own and no file holds it. Not a config key; never logged.
    #[serde(skip, default = "random_secret")]
    pub hub_password: String,
}

/// 32 random bytes in hex (the thread RNG is a CSPRNG).
pub(crate) fn random_secret() -> String {
    rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `[[mqtt.accounts]]`: one login of the embedded broker, for a gate or a bridge that speaks
/// for several (or for a reader of the hub's alerts).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttAccount {
    /// The MQTT username; unique.
    pub username: String,
    /// At least 16 characters. Never logged; compared in constant time.
    pub password: String,
    /// The gates it may report for (their `id`s): a PUBLISH on a `[[mqtt.subscriptions]]`
    /// topic is stored only when the gate it is from is one of these and takes MQTT (a gate
    /// with `push_secret` or `push_allow_from` takes HTTP push only). `"*"`: any MQTT gate
    /// (a bridge for all of them). Default: none.
    #[serde(default)]
    pub gates: Vec<String>,
    /// Topic filters it may subscribe to; a filter it asks for is granted only when one of
    /// these covers it (`xueliang/alerts/xingfu/#` covers `xueliang/alerts/xingfu/+`).
    /// Default: none.
    #[serde(default)]
    pub subscribe: Vec<String>,
    /// Topic filters it may publish on beyond its gates' topics (commands to a bridge, its
    /// own status). Never the hub's topics (`xueliang/...`), whatever this says. Default:
    /// none.
    #[serde(default)]
    pub publish: Vec<String>,
}

impl fmt::Debug for MqttAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttAccount")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("gates", &self.gates)
            .field("subscribe", &self.subscribe)
            .field("publish", &self.publish)
            .finish()
    }
}

fn default_client_id() -> String {
    "xueliang-hub".into()
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1883))
}
fn default_keep_alive() -> u64 {
    30
}
fn default_backoff_initial() -> f64 {
    0.5
}
fn default_backoff_max() -> f64 {
    30.0
}
fn default_max_payload() -> usize {
    1 << 20
}

impl fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("client_id", &self.client_id)
            .field("embedded", &self.embedded)
            .field("listen", &self.listen)
            .field("subscriptions", &self.subscriptions)
            .field("accounts", &self.accounts)
            .field("allow_anonymous", &self.allow_anonymous)
            .finish_non_exhaustive()
    }
}

/// `url` with any `user:password@` replaced by `***@`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("***");
            let _ = u.set_password(None);
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<not a URL>".into(),
    }
}

impl MqttConfig {
    /// The PEM bytes of `ca_file`, if set. An error names the file when it cannot be read
    /// or holds no PEM certificate.
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>, String> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        let pem = std::fs::read(path)
            .map_err(|e| format!("`ca_file` {}: cannot be read: {e}", path.display()))?;
        if !has_pem_certificate(&pem) {
            return Err(format!(
                "`ca_file` {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
                path.display()
            ));
        }
        Ok(Some(pem))
    }

    /// The broker this config points at: the URL's, or the embedded broker's listen address.
    pub fn broker(&self) -> Result<BrokerAddr, String> {
        if self.embedded {
            let ip = match self.listen.ip() {
                IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
                IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
                ip => ip,
            };
            return Ok(BrokerAddr {
                host: ip.to_string(),
                port: self.listen.port(),
                tls: false,
            });
        }
        let Some(url) = &self.url else {
            return Err(
                "set `url` (mqtt://host:1883 or mqtts://host:8883) or `embedded = true`".into(),
            );
        };
        BrokerAddr::parse(url).map_err(|why| format!("`url` {why}"))
    }
}

/// `[[mqtt.subscriptions]]`: one topic filter, the firmware its payloads are in, and where the
/// gate is named.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// An MQTT topic filter, e.g. `DahuaVTO/+/Event` or `gates/#`.
    pub filter: String,
    /// The firmware of every payload on it (`gate-decode --firmware` names).
    pub firmware: String,
    /// How the gate of a message is found. Default `device-id`.
    #[serde(default)]
    pub gate_from: GateFrom,
}

/// How the transport finds which gate a message is from. The value found is compared with
/// each gate's `device` (default: its id).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GateFrom {
    /// The device identifier the adapter read from the payload (serial number, MAC, host
    /// name, Zigbee friendly name). Config: `"device-id"`.
    #[default]
    DeviceId,
    /// A segment of the topic, 0-based: `gates/east-door/events` with index 1 is
    /// `east-door`. Config: `{ topic_segment = 1 }`.
    TopicSegment(usize),
    /// A JSON pointer into the payload: `{ payload_field = "/deviceID" }`.
    PayloadField(String),
    /// Every message on this filter is from one gate: `{ gate = "east-door" }`.
    Gate(GateId),
}

impl<'de> Deserialize<'de> for GateFrom {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Name(String),
            Table(Table),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            topic_segment: Option<usize>,
            payload_field: Option<String>,
            gate: Option<GateId>,
        }
        const EXPECTED: &str = "expected \"device-id\", { topic_segment = N }, \
             { payload_field = \"/json/pointer\" } or { gate = \"id\" }";
        match Wire::deserialize(d).map_err(|_| serde::de::Error::custom(EXPECTED))? {
            Wire::Name(n) if n == "device-id" => Ok(GateFrom::DeviceId),
            Wire::Name(n) => Err(serde::de::Error::custom(format!(
                "gate_from {n:?}: {EXPECTED}"
            ))),
            Wire::Table(t) => match (t.topic_segment, t.payload_field, t.gate) {
                (Some(i), None, None) => Ok(GateFrom::TopicSegment(i)),
                (None, Some(p), None) if p.starts_with('/') => Ok(GateFrom::PayloadField(p)),
                (None, Some(p), None) => Err(serde::de::Error::custom(format!(
                    "payload_field {p:?} is not a JSON pointer: start it with '/'"
                ))),
                (None, None, Some(g)) => Ok(GateFrom::Gate(g)),
                _ => Err(serde::de::Error::custom(format!(
                    "gate_from: set exactly one key; {EXPECTED}"
                ))),
            },
        }
    }
}

/// `[[gates]]`: one gate.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// Unique id: letters, digits, `_`, `-`, `.`.
    pub id: GateId,
    /// Display name (东门门禁). Default: the id. Not used by ingest: the hub's topology
    /// carries it.
    #[serde(default)]
    pub name: Option<String>,
    pub community: CommunityId,
    /// A grid (`[[grids]]` of the hub's config) of the same community. Default: none. Not
    /// used by ingest: the hub's topology carries it.
    #[serde(default)]
    pub grid: Option<GridId>,
    /// The firmware the gate speaks (`hikvision-isapi`, `dahua`, `zkteco-adms`, `esp-rfid`,
    /// `zigbee2mqtt`, `esphome`, or the name of a `[[gate_ingest.generic]]` dialect).
    pub firmware: String,
    /// The identifier the transport finds for this gate (see `gate_from`; the ZKTeco serial
    /// number `SN` for ADMS). Default: the gate id.
    #[serde(default)]
    pub device: Option<String>,
    /// The camera that watches the gate.
    #[serde(default)]
    pub camera: Option<CameraId>,
    /// Silence after which the gate counts as offline. Default 300.
    #[serde(default = "default_offline_after")]
    pub offline_after_secs: u64,
    /// IANA time zone of the device's clock, for payloads that send only a wall clock
    /// (ZKTeco). Default: the hub's zone.
    #[serde(default)]
    pub timezone: Option<String>,
    /// HTTP push: source addresses allowed to push for this gate (`10.0.0.5`,
    /// `10.0.0.0/24`). A push gate needs this or `push_secret`.
    #[serde(default)]
    pub push_allow_from: Vec<IpNet>,
    /// HTTP push: a shared secret the device sends as the `secret` query parameter
    /// (`http://hub:8080/gates/push/hikvision/east-door?secret=...`). Never logged.
    #[serde(default)]
    pub push_secret: Option<String>,
    /// How the gate's payloads may arrive: `"mqtt"`, `"http-push"` or `"both"`. MQTT
    /// payloads for a gate that takes HTTP push only are refused (not stored), so a gate
    /// that authenticates its pushes cannot be spoken for over MQTT. Default: `"http-push"`
    /// when `push_secret` or `push_allow_from` is set, else `"mqtt"`.
    #[serde(default)]
    pub transport: Option<GateTransport>,
    /// Stored and listed, but not run. Not used by ingest: the hub hands it only the gates
    /// that run, so a disabled gate's payloads are an unknown gate's (a dead letter over MQTT,
    /// 403 over HTTP push). Default false.
    #[serde(default)]
    pub disabled: bool,
}

/// How a gate's payloads may arrive (`[[gates]] transport`): the topology's own type.
pub use xl_core::topology::GateTransport;

fn default_offline_after() -> u64 {
    300
}

impl GateConfig {
    /// The identifier transports match against.
    pub fn device_key(&self) -> &str {
        self.device.as_deref().unwrap_or(self.id.as_str())
    }

    /// Whether push settings are set (HTTP push refuses a gate without them).
    fn takes_push(&self) -> bool {
        self.push_secret.is_some() || !self.push_allow_from.is_empty()
    }

    /// `transport`, or its default.
    pub fn transport(&self) -> GateTransport {
        GateTransport::resolve(self.transport, self.takes_push())
    }

    /// Whether payloads for this gate may arrive over MQTT.
    pub fn takes_mqtt(&self) -> bool {
        self.transport() != GateTransport::HttpPush
    }
}

impl fmt::Debug for GateConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateConfig")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("community", &self.community)
            .field("grid", &self.grid)
            .field("firmware", &self.firmware)
            .field("device", &self.device)
            .field("camera", &self.camera)
            .field("offline_after_secs", &self.offline_after_secs)
            .field("push_allow_from", &self.push_allow_from)
            .field(
                "push_secret",
                &self.push_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("transport", &self.transport)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// `[gate_ingest]`: duplicate detection and configured (generic) firmware dialects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// How long an event is remembered to recognise it when it comes again: events with a
    /// device serial number or a device time, and any message the broker redelivers (MQTT DUP
    /// flag). Default 3600.
    pub dedup_window_secs: u64,
    /// How long an event with neither a serial number nor a device time (a door contact's
    /// `{"contact":false}`) is remembered: the same payload again within this window is a
    /// resend, later it is a new event. Default 5.
    pub resend_window_secs: u64,
    /// JSON dialects configured without code (`[[gate_ingest.generic]]`); each `name` becomes
    /// a firmware name.
    pub generic: Vec<GenericConfig>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            dedup_window_secs: 3600,
            resend_window_secs: 5,
            generic: Vec::new(),
        }
    }
}

/// An address or a network: `10.0.0.5`, `10.0.0.0/24`, `::1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or network (10.0.0.0/24)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() {
            max
        } else {
            p.parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?
        };
        Ok(IpNet { addr, prefix })
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl GatesConfig {
    /// Checks what serde cannot: references between sections, names, filters, windows.
    /// Errors name the key path and the fix.
    pub fn validate(&self) -> Result<(), String> {
        let firmware = self.firmware_names()?;
        for (key, secs, min) in [
            ("dedup_window_secs", self.ingest.dedup_window_secs, 1),
            ("resend_window_secs", self.ingest.resend_window_secs, 0),
        ] {
            if !(min..=MAX_WINDOW_SECS).contains(&secs) {
                return Err(format!(
                    "gate_ingest.{key} must be from {min} to {MAX_WINDOW_SECS} (30 days), not {secs}"
                ));
            }
        }
        let ids = self.validate_gate_list(&firmware)?;
        if let Some(m) = &self.mqtt {
            m.validate(&firmware)?;
            m.validate_gate_references(&ids)?;
        }
        Ok(())
    }

    /// The checks of [`GatesConfig::validate`] that a new `[[gates]]` list must pass while the
    /// rest of the config stays as it started (`Gates::set_gates`): each gate (firmware known,
    /// ids and devices unique, zone, push settings, transport), and every gate that `[mqtt]`
    /// names (an account's `gates`, a subscription's `gate_from`) still there. Reads no file.
    pub fn validate_gates(&self) -> Result<(), String> {
        let firmware = self.firmware_names()?;
        let ids = self.validate_gate_list(&firmware)?;
        if let Some(m) = &self.mqtt {
            m.validate_gate_references(&ids)?;
        }
        Ok(())
    }

    /// The built-in firmware names and those of the configured dialects.
    fn firmware_names(&self) -> Result<HashSet<String>, String> {
        let mut firmware: HashSet<String> =
            adapters::BUILT_IN.iter().map(|s| (*s).to_owned()).collect();
        for (i, g) in self.ingest.generic.iter().enumerate() {
            if firmware.contains(&g.name) {
                return Err(format!(
                    "gate_ingest.generic[{i}]: name {:?} is already a firmware name; pick another",
                    g.name
                ));
            }
            xl_fw_generic::GenericAdapter::new(g.clone())
                .map_err(|e| format!("gate_ingest.generic[{i}]: {e}"))?;
            firmware.insert(g.name.clone());
        }
        Ok(firmware)
    }

    /// Checks each `[[gates]]` entry on its own and against the others; returns their ids.
    fn validate_gate_list(&self, firmware: &HashSet<String>) -> Result<HashSet<&GateId>, String> {
        let known = || known_firmware(firmware);
        let mut ids = HashSet::new();
        let mut devices: HashMap<(&str, &str), &GateId> = HashMap::new();
        for (i, g) in self.gates.iter().enumerate() {
            let at = format!("gates[{i}] (id {:?})", g.id.as_str());
            if !ids.insert(&g.id) {
                return Err(format!(
                    "{at}: duplicate gate id; every gate needs its own id"
                ));
            }
            if !firmware.contains(&g.firmware) {
                return Err(format!(
                    "{at}: unknown firmware {:?}; expected one of {}",
                    g.firmware,
                    known()
                ));
            }
            if let Some(other) = devices.insert((&g.firmware, g.device_key()), &g.id) {
                return Err(format!(
                    "{at}: device {:?} is also gate {:?}; a device belongs to one gate",
                    g.device_key(),
                    other.as_str()
                ));
            }
            if g.offline_after_secs == 0 {
                return Err(format!("{at}: offline_after_secs must be at least 1"));
            }
            if let Some(tz) = &g.timezone {
                jiff::tz::TimeZone::get(tz).map_err(|e| {
                    format!("{at}: timezone {tz:?} is not an IANA zone (Asia/Shanghai): {e}")
                })?;
            }
            if g.push_secret.as_deref().is_some_and(|s| s.len() < 16) {
                return Err(format!(
                    "{at}: push_secret is shorter than 16 characters; use a long random one"
                ));
            }
            match (g.transport(), g.takes_push()) {
                (GateTransport::HttpPush | GateTransport::Both, false) => {
                    return Err(format!(
                        "{at}: transport takes HTTP push, but neither push_secret nor \
                         push_allow_from is set; set one (or transport = \"mqtt\")"
                    ));
                }
                (GateTransport::Mqtt, true) => {
                    return Err(format!(
                        "{at}: transport = \"mqtt\" with push_secret or push_allow_from: HTTP \
                         push is refused for it; remove them, or set transport = \"both\""
                    ));
                }
                _ => {}
            }
        }
        Ok(ids)
    }
}

/// The firmware names, sorted, for an error message.
fn known_firmware(firmware: &HashSet<String>) -> String {
    let mut v: Vec<_> = firmware.iter().cloned().collect();
    v.sort();
    v.join(", ")
}

impl MqttConfig {
    /// `[mqtt]` on its own, its accounts and its subscriptions' filters and firmware. The
    /// gates it names are checked by [`MqttConfig::validate_gate_references`].
    fn validate(&self, firmware: &HashSet<String>) -> Result<(), String> {
        let m = self;
        m.broker().map_err(|e| format!("mqtt: {e}"))?;
        if m.embedded && m.url.is_some() {
            return Err("mqtt: set either `url` or `embedded = true`, not both".into());
        }
        #[cfg(not(feature = "embedded-broker"))]
        if m.embedded {
            return Err(
                "mqtt: embedded = true, but this hub was built without the embedded broker \
                 (feature `embedded-broker`); set `url` to an external broker"
                    .into(),
            );
        }
        if m.ca_file.is_some() && !m.broker().is_ok_and(|b| b.tls) {
            return Err("mqtt: `ca_file` is set, but `url` is not mqtts://".into());
        }
        m.ca_pem().map_err(|e| format!("mqtt: {e}"))?;
        if m.password.is_some() && m.username.is_none() {
            return Err("mqtt: `password` is set without `username`".into());
        }
        if m.client_id.is_empty() || m.client_id.len() > 64 {
            return Err("mqtt: client_id must be 1 to 64 characters".into());
        }
        let (initial, max) = (m.backoff_initial_secs, m.backoff_max_secs);
        if !(initial > 0.0 && initial <= max && max <= MAX_BACKOFF_SECS) {
            return Err(format!(
                "mqtt: backoff_initial_secs ({initial}) must be positive and at most \
                 backoff_max_secs ({max}), itself at most {MAX_BACKOFF_SECS}"
            ));
        }
        if m.subscriptions.is_empty() {
            return Err(
                "mqtt: no [[mqtt.subscriptions]]; add one (filter = \"gates/#\", firmware = ...)"
                    .into(),
            );
        }
        m.validate_access()?;
        for (i, s) in m.subscriptions.iter().enumerate() {
            let at = format!("mqtt.subscriptions[{i}] (filter {:?})", s.filter);
            if !topic_filter_is_valid(&s.filter) {
                return Err(format!(
                    "{at}: not a valid MQTT topic filter ('+' and '#' stand alone between \
                     '/', '#' only last)"
                ));
            }
            if !firmware.contains(&s.firmware) {
                return Err(format!(
                    "{at}: unknown firmware {:?}; expected one of {}",
                    s.firmware,
                    known_firmware(firmware)
                ));
            }
        }
        Ok(())
    }

    /// Every gate an account's `gates` or a subscription's `gate_from` names is in `ids`.
    /// Also while running: a gate that an account still names cannot be removed (its id
    /// given to a new gate later would let that account speak for it).
    fn validate_gate_references(&self, ids: &HashSet<&GateId>) -> Result<(), String> {
        for (i, a) in self.accounts.iter().enumerate() {
            for g in &a.gates {
                if g != "*" && !ids.iter().any(|id| id.as_str() == g) {
                    return Err(format!(
                        "mqtt.accounts[{i}] (username {:?}): gates names {g:?}, not in \
                         [[gates]] (or \"*\" for any MQTT gate)",
                        a.username
                    ));
                }
            }
        }
        for (i, s) in self.subscriptions.iter().enumerate() {
            if let GateFrom::Gate(g) = &s.gate_from
                && !ids.contains(g)
            {
                return Err(format!(
                    "mqtt.subscriptions[{i}] (filter {:?}): gate_from names gate {:?}, not in \
                     [[gates]]",
                    s.filter,
                    g.as_str()
                ));
            }
        }
        Ok(())
    }
}

/// The username of the hub's own account on the embedded broker (MQTT out); no
/// `[[mqtt.accounts]]` entry may take it.
pub const HUB_USERNAME: &str = "xueliang-hub";
/// The shortest `[[mqtt.accounts]]` password.
const MIN_ACCOUNT_PASSWORD: usize = 16;

impl MqttConfig {
    /// `accounts` and `allow_anonymous`: embedded broker only, and an embedded broker that
    /// anyone on the network reaches needs one or the other.
    fn validate_access(&self) -> Result<(), String> {
        if !self.embedded {
            if !self.accounts.is_empty() {
                return Err(
                    "mqtt.accounts: accounts are for the embedded broker only; an \
                     external broker has its own (Mosquitto: a password file and an ACL, see \
                     deploy/mosquitto.acl)"
                        .into(),
                );
            }
            if self.allow_anonymous {
                return Err(
                    "mqtt: allow_anonymous is for the embedded broker only; an external \
                     broker decides that in its own config"
                        .into(),
                );
            }
            return Ok(());
        }
        if self.username.is_some() || self.password.is_some() {
            return Err(
                "mqtt: with embedded = true, `username` and `password` are not used (the \
                 hub makes its own account at every start): remove them and give each gate or \
                 bridge its own [[mqtt.accounts]] entry"
                    .into(),
            );
        }
        if self.allow_anonymous && !self.accounts.is_empty() {
            return Err(
                "mqtt: allow_anonymous = true with [[mqtt.accounts]]: with accounts, \
                 anonymous clients are always refused; remove allow_anonymous"
                    .into(),
            );
        }
        if self.accounts.is_empty() && !self.allow_anonymous && !self.listen.ip().is_loopback() {
            return Err(format!(
                "mqtt: the embedded broker listens on {} (not loopback) without \
                 [[mqtt.accounts]]: anyone on the network could report for every gate; add an \
                 account per gate or bridge, or set `allow_anonymous = true` to accept that \
                 risk explicitly",
                self.listen
            ));
        }
        let mut names = HashSet::new();
        for (i, a) in self.accounts.iter().enumerate() {
            let at = format!("mqtt.accounts[{i}] (username {:?})", a.username);
            if a.username.is_empty() || a.username.len() > 256 {
                return Err(format!("{at}: username must be 1 to 256 bytes"));
            }
            if a.username == HUB_USERNAME {
                return Err(format!(
                    "{at}: {HUB_USERNAME:?} is the hub's own account; pick another username"
                ));
            }
            if !names.insert(a.username.as_str()) {
                return Err(format!(
                    "{at}: duplicate username; every account needs its own"
                ));
            }
            if a.password.chars().count() < MIN_ACCOUNT_PASSWORD {
                return Err(format!(
                    "{at}: password is shorter than {MIN_ACCOUNT_PASSWORD} characters; use a \
                     long random one"
                ));
            }
            for (key, filters) in [("subscribe", &a.subscribe), ("publish", &a.publish)] {
                if let Some(f) = filters.iter().find(|f| !topic_filter_is_valid(f)) {
                    return Err(format!(
                        "{at}: {key} {f:?} is not a valid MQTT topic filter ('+' and '#' stand \
                         alone between '/', '#' only last)"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        mqtt: Option<MqttConfig>,
        #[serde(default)]
        gates: Vec<GateConfig>,
        #[serde(default)]
        gate_ingest: IngestConfig,
    }

    fn parse(text: &str) -> Result<GatesConfig, String> {
        let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let c = GatesConfig {
            mqtt: f.mqtt,
            gates: f.gates,
            ingest: f.gate_ingest,
        };
        c.validate()?;
        Ok(c)
    }

    const GOOD: &str = r#"
        [mqtt]
        url = "mqtt://broker.lan"
        username = "hub"
        password = "hunter2"
        [[mqtt.subscriptions]]
        filter = "DahuaVTO/+/Event"
        firmware = "dahua"
        [[mqtt.subscriptions]]
        filter = "gates/+/rfid"
        firmware = "esp-rfid"
        gate_from = { topic_segment = 1 }
        [[gates]]
        id = "east-door"
        community = "xingfu"
        firmware = "esp-rfid"
        camera = "east-cam"
        push_allow_from = ["10.0.0.0/24", "::1"]
    "#;

    #[test]
    fn a_full_config_parses_and_hides_the_password() {
        let c = parse(GOOD).unwrap();
        let m = c.mqtt.as_ref().unwrap();
        assert_eq!(
            m.broker().unwrap(),
            BrokerAddr {
                host: "broker.lan".into(),
                port: 1883,
                tls: false
            }
        );
        assert_eq!(m.client_id, "xueliang-hub");
        assert_eq!(m.subscriptions[1].gate_from, GateFrom::TopicSegment(1));
        assert_eq!(m.subscriptions[0].gate_from, GateFrom::DeviceId);
        assert_eq!(c.gates[0].offline_after_secs, 300);
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (
                "[mqtt]\nurl = \"http://h\"\n[[mqtt.subscriptions]]\nfilter = \"a\"\nfirmware = \"dahua\"\n",
                "mqtt://",
            ),
            (
                "[mqtt]\nurl = \"mqtt://u:pw@h\"\n[[mqtt.subscriptions]]\nfilter = \"a\"\nfirmware = \"dahua\"\n",
                "credentials",
            ),
            (
                "[mqtt]\n[[mqtt.subscriptions]]\nfilter = \"a\"\nfirmware = \"dahua\"\n",
                "embedded = true",
            ),
            ("[mqtt]\nurl = \"mqtt://h\"\n", "no [[mqtt.subscriptions]]"),
            (
                "[mqtt]\nurl = \"mqtt://h\"\n[[mqtt.subscriptions]]\nfilter = \"a/#/b\"\nfirmware = \"dahua\"\n",
                "topic filter",
            ),
            (
                "[mqtt]\nurl = \"mqtt://h\"\n[[mqtt.subscriptions]]\nfilter = \"a\"\nfirmware = \"dahau\"\n",
                "unknown firmware \"dahau\"",
            ),
            (
                "[mqtt]\nurl = \"mqtt://h\"\n[[mqtt.subscriptions]]\nfilter = \"a\"\nfirmware = \"dahua\"\ngate_from = \"topic\"\n",
                "device-id",
            ),
            (
                "[mqtt]\nurl = \"mqtt://h\"\n[[mqtt.subscriptions]]\nfilter = \"a\"\nfirmware = \"dahua\"\ngate_from = { payload_field = \"x\" }\n",
                "JSON pointer",
            ),
            ("[mqtt]\nurl = \"mqtt://h\"\nclientid = \"x\"\n", "clientid"),
            (
                "[mqtt]\nurl = \"mqtts://h\"\nca_file = \"/nonexistent/xl-ca.pem\"\n[[mqtt.subscriptions]]\nfilter = \"a\"\nfirmware = \"dahua\"\n",
                "`ca_file` /nonexistent/xl-ca.pem: cannot be read",
            ),
            (
                "[mqtt]\nurl = \"mqtt://h\"\nca_file = \"/nonexistent/xl-ca.pem\"\n[[mqtt.subscriptions]]\nfilter = \"a\"\nfirmware = \"dahua\"\n",
                "`url` is not mqtts://",
            ),
            (
                "[[gates]]\nid = \"a\"\ncommunity = \"c\"\nfirmware = \"dahua\"\n[[gates]]\nid = \"a\"\ncommunity = \"c\"\nfirmware = \"dahua\"\n",
                "duplicate gate id",
            ),
            (
                "[[gates]]\nid = \"a\"\ncommunity = \"c\"\nfirmware = \"dahua\"\ntimezone = \"Mars/Base\"\n",
                "IANA",
            ),
            (
                "[[gates]]\nid = \"a\"\ncommunity = \"c\"\nfirmware = \"dahua\"\npush_allow_from = [\"10.0.0.0/33\"]\n",
                "prefix",
            ),
            (
                "[[gates]]\nid = \"a\"\ncommunity = \"c\"\nfirmware = \"dahua\"\npush_secret = \"short\"\n",
                "16 characters",
            ),
            (
                "[[gates]]\nid = \"a\"\ncommunity = \"c\"\nfirmware = \"dahua\"\ndevice = \"X\"\n[[gates]]\nid = \"b\"\ncommunity = \"c\"\nfirmware = \"dahua\"\ndevice = \"X\"\n",
                "one gate",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text)
                .err()
                .unwrap_or_else(|| panic!("accepted:\n{text}"));
            assert!(e.contains(want), "{want:?} not in {e:?} for\n{text}");
        }
    }

    /// `[[mqtt.accounts]]`, `allow_anonymous` and `transport`: what cannot work, or would
    /// leave the embedded broker open, is named.
    #[test]
    fn broker_access_mistakes_are_named() {
        let sub = "[[mqtt.subscriptions]]\nfilter = \"g/+\"\nfirmware = \"dahua\"\n";
        let gate = "[[gates]]\nid = \"a\"\ncommunity = \"c\"\nfirmware = \"dahua\"\n";
        let account = |extra: &str| {
            format!(
                "[[mqtt.accounts]]\nusername = \"gate-a\"\npassword = \"0123456789abcdef\"\n{extra}\n"
            )
        };
        let embedded =
            |mqtt: &str, rest: &str| format!("[mqtt]\nembedded = true\n{mqtt}\n{sub}{rest}{gate}");
        let cases = [
            (
                embedded("listen = \"0.0.0.0:1883\"", ""),
                "allow_anonymous = true",
            ),
            (
                format!("[mqtt]\nurl = \"mqtt://h\"\n{sub}{}", account("")),
                "embedded broker only",
            ),
            (
                format!("[mqtt]\nurl = \"mqtt://h\"\nallow_anonymous = true\n{sub}"),
                "embedded broker only",
            ),
            (
                embedded("username = \"hub\"\npassword = \"x\"", ""),
                "[[mqtt.accounts]] entry",
            ),
            (
                embedded("allow_anonymous = true", &account("")),
                "remove allow_anonymous",
            ),
            (
                embedded("", &account("gates = [\"nope\"]")),
                "gates names \"nope\"",
            ),
            (
                embedded("", &account("subscribe = [\"a/#/b\"]")),
                "subscribe \"a/#/b\"",
            ),
            (
                embedded("", &format!("{}{}", account(""), account(""))),
                "duplicate username",
            ),
            (
                embedded("", &account("").replace("0123456789abcdef", "short")),
                "shorter than 16",
            ),
            (
                embedded("", &account("").replace("gate-a", HUB_USERNAME)),
                "the hub's own account",
            ),
            (
                format!("{gate}transport = \"http-push\"\n"),
                "neither push_secret nor push_allow_from",
            ),
            (
                format!("{gate}transport = \"mqtt\"\npush_allow_from = [\"10.0.0.1\"]\n"),
                "transport = \"both\"",
            ),
            (format!("{gate}transport = \"http\"\n"), "http-push"),
        ];
        for (text, want) in cases {
            let e = parse(&text)
                .err()
                .unwrap_or_else(|| panic!("accepted:\n{text}"));
            assert!(e.contains(want), "{want:?} not in {e:?} for\n{text}");
        }
        // What is fine: loopback without accounts (only the hub logs in), the network with
        // accounts or with allow_anonymous said explicitly.
        for ok in [
            embedded("", ""),
            embedded(
                "listen = \"0.0.0.0:1883\"",
                &account("gates = [\"a\", \"*\"]"),
            ),
            embedded("listen = \"0.0.0.0:1883\"\nallow_anonymous = true", ""),
        ] {
            parse(&ok).unwrap_or_else(|e| panic!("{e}\n{ok}"));
        }
        let c = parse(&embedded("", &account("gates = [\"a\"]"))).unwrap();
        let m = c.mqtt.unwrap();
        assert!(!format!("{m:?}").contains("0123456789abcdef"));
        assert!(!format!("{m:?}").contains(&m.hub_password));
        assert_eq!(m.hub_password.len(), 64);
        // The transport a gate's push settings imply.
        let g = parse(&format!("{gate}push_secret = \"0123456789abcdef\"\n")).unwrap();
        assert_eq!(g.gates[0].transport(), GateTransport::HttpPush);
        assert!(!g.gates[0].takes_mqtt());
        let g = parse(gate).unwrap();
        assert!(g.gates[0].takes_mqtt());
    }

    /// A new list of gates while running: checked against the `[mqtt]` it started with,
    /// without reading its files again (a CA file moved since start does not block it).
    #[test]
    fn a_new_gate_list_is_checked_against_the_gates_mqtt_names() {
        let mqtt = |extra: &str| -> MqttConfig {
            toml::from_str(&format!(
                "url = \"mqtts://h\"\nca_file = \"/nonexistent/xl-ca.pem\"\n\
                 [[subscriptions]]\nfilter = \"a\"\nfirmware = \"dahua\"\n{extra}"
            ))
            .unwrap()
        };
        let gates = |ids: &[&str]| -> Vec<GateConfig> {
            ids.iter()
                .map(|id| {
                    toml::from_str(&format!(
                        "id = \"{id}\"\ncommunity = \"c\"\nfirmware = \"dahua\""
                    ))
                    .unwrap()
                })
                .collect()
        };
        let with = |m: MqttConfig, ids: &[&str]| GatesConfig {
            mqtt: Some(m),
            gates: gates(ids),
            ingest: IngestConfig::default(),
        };
        let c = with(mqtt(""), &["a", "b"]);
        assert!(c.validate().unwrap_err().contains("ca_file"));
        c.validate_gates().unwrap();
        let fixed = mqtt(
            "[[subscriptions]]\nfilter = \"b\"\nfirmware = \"dahua\"\ngate_from = { gate = \"b\" }\n",
        );
        with(fixed.clone(), &["a", "b"]).validate_gates().unwrap();
        let e = with(fixed, &["a"]).validate_gates().unwrap_err();
        assert!(
            e.contains("mqtt.subscriptions[1] (filter \"b\"): gate_from names gate \"b\""),
            "{e}"
        );
        let mut c = with(mqtt(""), &["a", "b"]);
        c.gates[1].firmware = "dahau".into();
        let e = c.validate_gates().unwrap_err();
        assert!(
            e.contains("gates[1] (id \"b\"): unknown firmware \"dahau\""),
            "{e}"
        );
    }

    #[test]
    fn tls_urls_and_embedded_broker() {
        let m: MqttConfig = toml::from_str("url = \"mqtts://[::1]\"").unwrap();
        assert_eq!(
            m.broker().unwrap(),
            BrokerAddr {
                host: "::1".into(),
                port: 8883,
                tls: true
            }
        );
        let m: MqttConfig = toml::from_str("embedded = true\nlisten = \"0.0.0.0:1884\"").unwrap();
        assert_eq!(m.broker().unwrap().host, "127.0.0.1");
        assert_eq!(m.broker().unwrap().port, 1884);
    }

    #[test]
    fn networks_contain_their_addresses() {
        let n: IpNet = "10.0.0.0/24".parse().unwrap();
        assert!(n.contains("10.0.0.77".parse().unwrap()));
        assert!(!n.contains("10.0.1.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.0.0.9".parse().unwrap()));
        let one: IpNet = "192.168.1.5".parse().unwrap();
        assert!(one.contains("192.168.1.5".parse().unwrap()));
        assert!(!one.contains("192.168.1.6".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!("10.0.0.1/x".parse::<IpNet>().is_err());
    }
}
