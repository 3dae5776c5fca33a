//! The hub's configuration: one TOML file. Unknown keys are errors, and every error names the
//! file, the key and what to do about it. `xueliang check-config FILE` runs exactly this.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use xl_core::camera::{CameraNetwork, DecodePolicy};
use xl_core::{CameraId, CommunityId, GridId, StationId};
use xl_decode::DecodeConfig;
use xl_rtsp::TransportKind;

/// Longest reconnect delay a config may ask for (an hour).
const MAX_BACKOFF_SECS: f64 = 3600.0;

/// A TOML error as "line L, column C: message", without the source line that toml would quote:
/// that line may hold a secret (a mistyped `pasword = "..."` is an unknown key).
fn toml_error(text: &str, e: &toml::de::Error) -> anyhow::Error {
    let Some(span) = e.span() else {
        return anyhow::anyhow!("{}", e.message());
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    anyhow::anyhow!("line {line}, column {column}: {}", e.message())
}

/// The whole file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub decode: DecodeConfig,
    #[serde(default)]
    pub rtsp: RtspConfig,
    /// `[[stations]]`: police stations (派出所). Default none.
    #[serde(default)]
    pub stations: Vec<StationConfig>,
    /// `[[communities]]`: communities (小区/社区), each optionally of a station. A community
    /// that a camera, gate or grid names but no `[[communities]]` declares is implied, with its
    /// id as its name and no station (see `crate::topology`).
    #[serde(default)]
    pub communities: Vec<CommunityConfig>,
    /// `[[grids]]`: grids (网格), each a part of one community. Default none.
    #[serde(default)]
    pub grids: Vec<GridConfig>,
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
    /// `[mqtt]`: the broker gate events arrive on, or `embedded = true` (see
    /// `xl_gates::MqttConfig`). Absent: no MQTT ingest.
    #[serde(default)]
    pub mqtt: Option<xl_gates::MqttConfig>,
    /// `[[gates]]`: doors, turnstiles and barriers with access controllers.
    #[serde(default)]
    pub gates: Vec<xl_gates::GateConfig>,
    /// `[gate_ingest]`: duplicate windows and generic firmware dialects.
    #[serde(default)]
    pub gate_ingest: xl_gates::IngestConfig,
    /// `[detect]`: person and face detection, motion gate, tracker (see
    /// `xl_analysis::DetectConfig`).
    #[serde(default)]
    pub detect: xl_analysis::DetectConfig,
    /// `[store]`: where alerts, events, users and the audit log are kept.
    #[serde(default)]
    pub store: StoreConfig,
    /// `[retention]`: how long each kind of data is kept (see `xl_store::Retention`).
    #[serde(default)]
    pub retention: xl_store::Retention,
    /// `[[rules]]`: changes to the built-in alert rules, one table per alert kind (see
    /// `xl_rules::RuleConfig`). Kinds not listed keep their defaults.
    #[serde(default)]
    pub rules: xl_rules::RulesConfig,
    /// `[evidence]`: the frame rings snapshots are taken from.
    #[serde(default)]
    pub evidence: xl_alerts::evidence::EvidenceConfig,
    /// `[recording]`: cameras' default recording mode and stream, retention, the disk guard
    /// (see `crate::recording::RecordingConfig`).
    #[serde(default)]
    pub recording: crate::recording::RecordingConfig,
    /// `[[webhooks]]`: alerts posted to HTTP endpoints (generic JSON, DingTalk, WeCom).
    #[serde(default)]
    pub webhooks: Vec<xl_notify::WebhookConfig>,
    /// `[mqtt_out]`: alerts, camera status and hub status published to a broker. Absent: the
    /// `[mqtt]` broker when there is one, else none.
    #[serde(default)]
    pub mqtt_out: Option<xl_notify::MqttOutConfig>,
    /// `[admin]`: the first admin account, for unattended installs.
    #[serde(default)]
    pub admin: Option<crate::users::AdminConfig>,
    /// `[cluster]`: this hub is one node of a district (NATS JetStream leases, a shared
    /// PostgreSQL store; see `crate::cluster`). Absent: a single hub that runs everything.
    #[serde(default)]
    pub cluster: Option<crate::cluster::ClusterSettings>,
}

/// `[store]`
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://user:password@host/db`. Default: the SQLite file
    /// `<data_dir>/xueliang.db`. The password is never logged.
    pub database_url: Option<String>,
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field(
                "database_url",
                &self.database_url.as_deref().map(xl_store::redact_url),
            )
            .finish()
    }
}

impl Config {
    /// `[mqtt_out]`, or the `[mqtt]` broker (its URL and credentials, or the embedded broker's
    /// address) when `[mqtt_out]` is absent.
    ///
    /// With the embedded broker, MQTT out logs in with the hub's own account (username
    /// `xueliang-hub`, a password made at each start): the only account that may write the
    /// hub's topics there. An `[mqtt_out]` without a username that points at the embedded
    /// broker gets that account too.
    pub fn mqtt_out_config(&self) -> Option<xl_notify::MqttOutConfig> {
        let embedded = self.mqtt.as_ref().filter(|m| m.embedded);
        if let Some(m) = &self.mqtt_out {
            let mut out = m.clone();
            if let Some(e) = embedded
                && out.username.is_none()
                && points_at_embedded(&out.url, e)
            {
                out.username = Some(xl_gates::config::HUB_USERNAME.to_owned());
                out.password = Some(e.hub_password.clone());
            }
            return Some(out);
        }
        let m = self.mqtt.as_ref()?;
        let url = match (&m.url, m.embedded) {
            (Some(u), _) => u.clone(),
            (None, true) => format!("mqtt://{}", m.listen),
            (None, false) => return None,
        };
        let mut out = xl_notify::MqttOutConfig::new(url);
        if m.embedded {
            out.username = Some(xl_gates::config::HUB_USERNAME.to_owned());
            out.password = Some(m.hub_password.clone());
        } else {
            out.username = m.username.clone();
            out.password = m.password.clone();
        }
        out.ca_file = m.ca_file.clone();
        out.client_id = format!("{}-out", m.client_id);
        Some(out)
    }

    /// The gate sections, as `xl_gates::Gates::start` takes them, every declared gate in.
    pub fn gates_config(&self) -> xl_gates::GatesConfig {
        xl_gates::GatesConfig {
            mqtt: self.mqtt.clone(),
            gates: self.gates.clone(),
            ingest: self.gate_ingest.clone(),
        }
    }

    /// [`Config::gates_config`] with only the gates that run ([`Config::why_gate_stopped`]
    /// says none): what the hub starts gate ingest with, so that a disabled gate takes no
    /// payload before the runtime's first pass sets the gates the store says run.
    pub fn running_gates_config(&self) -> xl_gates::GatesConfig {
        let mut c = self.gates_config();
        c.gates.retain(|g| self.why_gate_stopped(g).is_none());
        c
    }

    /// Why the declared gate `g` does not run, as far as this file says (the runtime also
    /// honours what the API disabled): the gate, its community or that community's station is
    /// disabled. `None` when it runs.
    pub fn why_gate_stopped(&self, g: &xl_gates::GateConfig) -> Option<String> {
        if g.disabled {
            return Some("it is disabled".to_owned());
        }
        let community = self.communities.iter().find(|c| c.id == g.community)?;
        if community.disabled {
            return Some(format!(
                "its community {:?} is disabled",
                community.id.as_str()
            ));
        }
        let station = community.station.as_ref()?;
        self.stations
            .iter()
            .any(|s| &s.id == station && s.disabled)
            .then(|| format!("its community's station {:?} is disabled", station.as_str()))
    }

    /// A gate that `[mqtt]` accounts or subscriptions name must run: gate ingest refuses to
    /// take it out of its table later (an account must not come to speak for another gate
    /// with the same id), so a disabled one would keep running.
    fn check_mqtt_gates_run(&self) -> anyhow::Result<()> {
        let Some(m) = &self.mqtt else { return Ok(()) };
        for (i, g) in self.gates.iter().enumerate() {
            let Some(why) = self.why_gate_stopped(g) else {
                continue;
            };
            let account = m.accounts.iter().enumerate().find_map(|(j, a)| {
                a.gates.iter().any(|x| x == g.id.as_str()).then(|| {
                    format!(
                        "mqtt.accounts[{j}] (username {:?}) names it in `gates`",
                        a.username
                    )
                })
            });
            let subscription = || {
                m.subscriptions.iter().enumerate().find_map(|(j, s)| {
                    matches!(&s.gate_from, xl_gates::GateFrom::Gate(x) if x == &g.id).then(|| {
                        format!(
                            "mqtt.subscriptions[{j}] (filter {:?}) names it in `gate_from`",
                            s.filter
                        )
                    })
                })
            };
            if let Some(by) = account.or_else(subscription) {
                bail!(
                    "gates[{i}] (id {:?}) does not run ({why}), but {by}; a gate [mqtt] names \
                     must run: remove it there, or enable it",
                    g.id.as_str()
                );
            }
        }
        Ok(())
    }
}

/// Whether `url` is the embedded broker of `m` (its port, on its address or loopback).
fn points_at_embedded(url: &str, m: &xl_gates::MqttConfig) -> bool {
    let Ok(b) = xl_gates::config::BrokerAddr::parse(url) else {
        return false;
    };
    let Ok(ip) = b.host.parse::<std::net::IpAddr>() else {
        return b.host == "localhost" && b.port == m.listen.port();
    };
    b.port == m.listen.port()
        && (ip.is_loopback() || ip == m.listen.ip() || m.listen.ip().is_unspecified())
}

/// `[server]`
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Where the HTTP API listens. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Directory for the hub's own files (the generated API token, later the database and
    /// snapshots). Relative paths are relative to the config file. Default `data`.
    pub data_dir: PathBuf,
    /// Bearer token for the API. When absent, one is generated at first start and kept in
    /// `<data_dir>/api-token` (mode 0600). Never logged.
    pub api_token: Option<String>,
    /// Marks the console's cookies `Secure`: set it when browsers reach the console over
    /// HTTPS (a TLS proxy or Ingress in front). Default false.
    pub secure_cookies: bool,
    /// Reverse proxies (addresses or CIDR blocks) whose `X-Forwarded-For` is believed for the
    /// client's address (login limits, audit log, gate push allow-lists). Default none: every
    /// request is taken to come from its socket's address.
    pub trusted_proxies: Vec<String>,
    /// A connection must deliver each request's headers within this many seconds (from its
    /// start, or from its previous response). Default 10.
    pub header_read_timeout_secs: u64,
    /// HTTP connections open at once; more are answered 503 and closed. Never more than half
    /// the descriptor limit (raised to the hard limit at start). Default 1024.
    pub max_connections: usize,
    /// HTTP connections open at once from one address (trusted proxies excepted); more are
    /// answered 429 and closed. Default 64.
    pub max_connections_per_address: usize,
}

/// Longest `[server] header_read_timeout_secs` accepted.
const MAX_HEADER_READ_TIMEOUT_SECS: u64 = 300;

impl ServerConfig {
    /// `trusted_proxies`, parsed (validated by [`Config::parse`]).
    pub fn trusted_proxies(&self) -> anyhow::Result<xl_api::TrustedProxies> {
        xl_api::TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("server.trusted_proxies{e}"))
    }

    /// The HTTP server's bounds.
    pub fn limits(&self) -> anyhow::Result<xl_api::server::ServerLimits> {
        Ok(xl_api::server::ServerLimits {
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_secs),
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            trusted_proxies: self.trusted_proxies()?,
        })
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.trusted_proxies()?;
        let t = self.header_read_timeout_secs;
        if !(1..=MAX_HEADER_READ_TIMEOUT_SECS).contains(&t) {
            bail!(
                "server.header_read_timeout_secs must be 1 to {MAX_HEADER_READ_TIMEOUT_SECS}, \
                 not {t}"
            );
        }
        if self.max_connections == 0 {
            bail!("server.max_connections must be at least 1");
        }
        if !(1..=self.max_connections).contains(&self.max_connections_per_address) {
            bail!(
                "server.max_connections_per_address must be 1 to max_connections ({}), not {}",
                self.max_connections,
                self.max_connections_per_address
            );
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            api_token: None,
            secure_cookies: false,
            trusted_proxies: Vec::new(),
            header_read_timeout_secs: 10,
            max_connections: 1024,
            max_connections_per_address: 64,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .field("secure_cookies", &self.secure_cookies)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("header_read_timeout_secs", &self.header_read_timeout_secs)
            .field("max_connections", &self.max_connections)
            .field(
                "max_connections_per_address",
                &self.max_connections_per_address,
            )
            .finish()
    }
}

/// `[log]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (default) or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,xl_rtsp=debug`. `RUST_LOG` overrides it.
    /// Default `info`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[rtsp]`: defaults for every RTSP camera.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtspConfig {
    /// `tcp` (default, RTP interleaved on the RTSP connection) or `udp` (LAN only).
    pub transport: TransportKind,
    /// Timeout of each DESCRIBE, SETUP and PLAY. Default 10.
    pub request_timeout_secs: u64,
    /// Longest silence between frames before reconnecting. Default 10.
    pub frame_timeout_secs: u64,
    /// First reconnect delay; doubles up to `backoff_max_secs`, with ±20% jitter. Default 1.
    pub backoff_initial_secs: f64,
    /// Default 30.
    pub backoff_max_secs: f64,
}

impl Default for RtspConfig {
    fn default() -> Self {
        RtspConfig {
            transport: TransportKind::Tcp,
            request_timeout_secs: 10,
            frame_timeout_secs: 10,
            backoff_initial_secs: 1.0,
            backoff_max_secs: 30.0,
        }
    }
}

/// `[[stations]]`: one police station (派出所).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StationConfig {
    /// Unique id: letters, digits, `_`, `-`, `.`; at most 64 characters.
    pub id: StationId,
    /// Display name (城关派出所); at most 64 characters. Required.
    pub name: String,
    /// Stored and listed, but nothing under it runs (its communities' cameras and gates).
    /// Default false.
    #[serde(default, skip_serializing_if = "is_default")]
    pub disabled: bool,
}

/// `[[communities]]`: one community (小区/社区).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommunityConfig {
    /// Unique id, what cameras and gates name in `community`.
    pub id: CommunityId,
    /// Display name (幸福小区); at most 64 characters. Required.
    pub name: String,
    /// The station it belongs to, a `[[stations]]` id. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub station: Option<StationId>,
    /// Stored and listed, but its cameras and gates do not run. Default false.
    #[serde(default, skip_serializing_if = "is_default")]
    pub disabled: bool,
}

/// `[[grids]]`: one grid (网格), a part of one community.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    /// Unique id (among all grids), what cameras and gates name in `grid`.
    pub id: GridId,
    /// The community it is a part of.
    pub community: CommunityId,
    /// Display name (第三网格); at most 64 characters. Required.
    pub name: String,
    /// Stored and listed as disabled. A grid runs nothing itself: its cameras and gates run
    /// unless they are disabled themselves. Default false.
    #[serde(default, skip_serializing_if = "is_default")]
    pub disabled: bool,
}

/// `[[cameras]]`: one camera, with a sub stream (`url` or `file`, analysed), a main stream
/// (`main_url` or `main_file`, full resolution), or both. At most one of `url` and `file`,
/// at most one of `main_url` and `main_file`, and at least one stream.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Unique id: letters, digits, `_`, `-`, `.`; at most 64 characters.
    pub id: CameraId,
    /// Display name. Default: the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub community: CommunityId,
    /// A `[[grids]]` id of the same community. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<GridId>,
    /// `community` (default), `skynet` or `private`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub network: CameraNetwork,
    /// `rtsp://host[:port]/path` of the sub stream, the one decoded for analysis. May carry
    /// `user:password@`, which is moved out of the URL and never logged. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A video file played in a loop at its own frame rate, standing in for the sub stream.
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// `rtsp://host[:port]/path` of the main stream (full resolution: evidence and live view,
    /// not decoded yet). May carry `user:password@` like `url` (the same login, if both do).
    /// Analysis decodes it only when the camera has no sub stream. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_url: Option<String>,
    /// A video file standing in for the main stream. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_file: Option<PathBuf>,
    /// The camera's login, for both streams. Default: the URL's `user@`, else none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Never logged, shown by the API or exported. Default: the URL's `:password@`, else none.
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// Overrides `[rtsp] transport`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<TransportKind>,
    /// `all` (default), `skip-non-reference` or `key-frames`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub decode: DecodePolicy,
    /// `[cameras.detect]`: rate, motion gating and faces for this camera.
    #[serde(default, skip_serializing_if = "is_default")]
    pub detect: xl_analysis::CameraDetect,
    /// `[[cameras.zones]]`: polygons (normalised image coordinates) with optional weekly
    /// schedules, dwell and count limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<xl_vision::zone::ZoneConfig>,
    /// `[cameras.recording]`: `mode`, `stream`, `retain_days`; each left out takes
    /// `[recording]`'s.
    #[serde(default, skip_serializing_if = "is_default")]
    pub recording: xl_core::recording::CameraRecording,
    /// Stored and listed (with its zones), but not pulled, decoded or analysed. Default false.
    #[serde(default, skip_serializing_if = "is_default")]
    pub disabled: bool,
}

pub(crate) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl CameraConfig {
    /// The RTSP URL the hub decodes for analysis: the sub stream's, else the main one's (when
    /// the camera has no sub stream at all).
    pub fn analysis_url(&self) -> Option<&str> {
        match (&self.url, &self.file) {
            (None, None) => self.main_url.as_deref(),
            _ => self.url.as_deref(),
        }
    }

    /// The file the hub plays for analysis, chosen as [`CameraConfig::analysis_url`] is.
    pub fn analysis_file(&self) -> Option<&Path> {
        match (&self.url, &self.file) {
            (None, None) => self.main_file.as_deref(),
            _ => self.file.as_deref(),
        }
    }
}

impl fmt::Debug for CameraConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CameraConfig")
            .field("id", &self.id)
            .field("community", &self.community)
            .field("url", &self.url.as_deref().map(xl_rtsp::redact_url))
            .field("file", &self.file)
            .field(
                "main_url",
                &self.main_url.as_deref().map(xl_rtsp::redact_url),
            )
            .field("main_file", &self.main_file)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Reads, parses and validates `path`. Relative paths inside are resolved against the
    /// file's directory.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config =
            Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        if config.server.data_dir.is_relative() {
            config.server.data_dir = base.join(&config.server.data_dir);
        }
        for c in &mut config.cameras {
            for f in [&mut c.file, &mut c.main_file].into_iter().flatten() {
                if f.is_relative() {
                    *f = base.join(&*f);
                }
            }
        }
        Ok(config)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.server.validate()?;
        if let Some(c) = &self.cluster {
            c.validate(&self.store)?;
        }
        let mut seen = HashSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            let at = format!("cameras[{i}] (id {:?})", c.id.as_str());
            if !seen.insert(&c.id) {
                bail!("{at}: duplicate camera id; every camera needs its own id");
            }
            match (&c.url, &c.file) {
                (Some(_), Some(_)) => bail!("{at}: set either `url` or `file`, not both"),
                (None, None) if c.main_url.is_none() && c.main_file.is_none() => bail!(
                    "{at}: set `url` (rtsp://...) or `file` (a video file) for the sub stream, \
                     or `main_url` / `main_file` for the main stream"
                ),
                _ => {}
            }
            if c.main_url.is_some() && c.main_file.is_some() {
                bail!("{at}: set either `main_url` or `main_file`, not both");
            }
            for (key, url) in [("`url`", &c.url), ("`main_url`", &c.main_url)] {
                let Some(url) = url else { continue };
                let parsed = url::Url::parse(url).map_err(|e| {
                    anyhow::anyhow!(
                        "{at}: {key} {:?} is not a URL: {e}",
                        xl_rtsp::redact_url(url)
                    )
                })?;
                if parsed.scheme() != "rtsp" {
                    bail!(
                        "{at}: {key} must start with rtsp:// (got {}://)",
                        parsed.scheme()
                    );
                }
                if parsed.host_str().is_none_or(str::is_empty) {
                    bail!("{at}: {key} has no host");
                }
            }
            if c.password.is_some() && c.username.is_none() {
                bail!("{at}: `password` is set without `username`");
            }
        }
        let (initial, max) = (self.rtsp.backoff_initial_secs, self.rtsp.backoff_max_secs);
        if !(initial > 0.0 && initial <= max && max <= MAX_BACKOFF_SECS) {
            bail!(
                "rtsp: backoff_initial_secs ({initial}) must be positive and at most \
                 backoff_max_secs ({max}), itself at most {MAX_BACKOFF_SECS}"
            );
        }
        if self.decode.queue_units == 0 {
            bail!("decode.queue_units must be at least 1");
        }
        self.detect.validate()?;
        for (i, c) in self.cameras.iter().enumerate() {
            if let Some(r) = c.detect.rate
                && !xl_detect::engine::valid_rate(r)
            {
                bail!(
                    "cameras[{i}] (id {:?}): detect.rate must be 0 (no limit) or at least {} \
                     detections a second, not {r}",
                    c.id.as_str(),
                    xl_detect::engine::MIN_RATE
                );
            }
            let mut zone_ids = HashSet::new();
            for (j, z) in c.zones.iter().enumerate() {
                z.validate().map_err(|e| {
                    anyhow::anyhow!(
                        "cameras[{i}] (id {:?}): zones[{j}] (id {:?}): {e}",
                        c.id.as_str(),
                        z.id.as_str()
                    )
                })?;
                if !zone_ids.insert(z.id.as_str()) {
                    bail!(
                        "cameras[{i}] (id {:?}): zone id {:?} is used twice",
                        c.id.as_str(),
                        z.id.as_str()
                    );
                }
            }
        }
        self.gates_config()
            .validate()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        self.check_mqtt_gates_run()?;
        self.rules.resolve()?;
        self.evidence.validate().map_err(anyhow::Error::msg)?;
        self.recording.validate()?;
        for (i, g) in self.gates.iter().enumerate() {
            if let Some(cam) = &g.camera
                && !self.cameras.iter().any(|c| &c.id == cam)
            {
                bail!(
                    "gates[{i}] (id {:?}): camera {:?} is not in [[cameras]]",
                    g.id.as_str(),
                    cam.as_str()
                );
            }
        }
        self.topology()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        format!("{:#}", Config::parse(text).unwrap_err())
    }

    #[test]
    fn a_minimal_config_parses_with_defaults() {
        let c = Config::parse(
            r#"
            [[cameras]]
            id = "east-gate"
            community = "xingfu"
            url = "rtsp://admin:pw@10.0.0.2/Streaming/Channels/102"
            "#,
        )
        .unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.decode.analysis_width, 640);
        assert_eq!(c.cameras[0].decode, DecodePolicy::All);
        assert_eq!(c.cameras[0].network, CameraNetwork::Community);
        let shown = format!("{:?}", c.cameras[0]);
        assert!(
            !shown.contains("pw"),
            "credentials leak into Debug: {shown}"
        );
    }

    #[test]
    fn unknown_keys_are_named_with_their_place() {
        let e = err("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n");
        assert!(e.contains("lisen") && e.contains("line 3"), "{e}");
        let e = err(
            "[[cameras]]\nid = \"a\"\ncommunity = \"c\"\nfile = \"x.mp4\"\ndecode = \"keyframes\"\n",
        );
        assert!(e.contains("keyframes") && e.contains("key-frames"), "{e}");
    }

    #[test]
    fn server_bounds_and_trusted_proxies_are_checked() {
        let c = Config::parse(
            "[server]\ntrusted_proxies = [\"10.0.0.5\", \"fd00::/8\"]\nmax_connections = 200\n\
             max_connections_per_address = 20\nheader_read_timeout_secs = 5\n",
        )
        .unwrap();
        let limits = c.server.limits().unwrap();
        assert!(limits.trusted_proxies.contains("10.0.0.5".parse().unwrap()));
        assert!(!limits.trusted_proxies.contains("10.0.0.6".parse().unwrap()));
        assert_eq!(limits.max_connections_per_address, 20);
        let e = err("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"proxy.lan\"]\n");
        assert!(
            e.contains("server.trusted_proxies[1]") && e.contains("proxy.lan"),
            "{e}"
        );
        let e = err("[server]\nmax_connections = 10\nmax_connections_per_address = 11\n");
        assert!(e.contains("max_connections_per_address"), "{e}");
        assert!(err("[server]\nheader_read_timeout_secs = 0\n").contains("header_read"));
        let d = ServerConfig::default();
        assert_eq!(
            (
                d.header_read_timeout_secs,
                d.max_connections,
                d.max_connections_per_address
            ),
            (10, 1024, 64)
        );
    }

    #[test]
    fn camera_mistakes_get_clear_errors() {
        let cam = |extra: &str| format!("[[cameras]]\nid = \"a\"\ncommunity = \"c\"\n{extra}\n");
        assert!(err(&cam("")).contains("set `url`"));
        assert!(err(&cam("url = \"rtsp://h/\"\nfile = \"f\"")).contains("not both"));
        assert!(err(&cam("url = \"http://h/\"")).contains("rtsp://"));
        assert!(
            err(&cam("url = \"rtsp://u:secret@h/\"\npassword = \"x\""))
                .contains("without `username`")
        );
        let dup = format!("{}{}", cam("file = \"f\""), cam("file = \"g\""));
        assert!(err(&dup).contains("duplicate camera id"));
        let bad_id = "[[cameras]]\nid = \"a b\"\ncommunity = \"c\"\nfile = \"f\"\n";
        assert!(err(bad_id).contains("a b"));
    }

    /// Numbers that parse but cannot work (they used to panic at start or later, in a task
    /// nobody watched) are named instead.
    #[test]
    fn numbers_out_of_range_are_named() {
        let cam = "[[cameras]]\nid = \"a\"\ncommunity = \"c\"\nfile = \"f\"\n";
        for (text, want) in [
            (
                format!("{cam}detect = {{ rate = 1e-20 }}\n"),
                "detect.rate must be 0",
            ),
            (
                "[detect]\nrate = -1.0\n".to_owned(),
                "detect.rate must be 0",
            ),
            (
                "[rtsp]\nbackoff_max_secs = inf\n".to_owned(),
                "rtsp: backoff_initial_secs",
            ),
            (
                "[rtsp]\nbackoff_initial_secs = nan\n".to_owned(),
                "rtsp: backoff_initial_secs",
            ),
            (
                "[mqtt]\nurl = \"mqtt://b\"\nbackoff_max_secs = 1e20\n\
                 [[mqtt.subscriptions]]\nfilter = \"g/#\"\nfirmware = \"dahua\"\n"
                    .to_owned(),
                "mqtt: backoff_initial_secs",
            ),
            (
                "[gate_ingest]\ndedup_window_secs = 99999999999\n".to_owned(),
                "gate_ingest.dedup_window_secs must be from 1 to",
            ),
        ] {
            let e = err(&text);
            assert!(e.contains(want), "{text}: {e}");
        }
        assert!(Config::parse(&format!("{cam}detect = {{ rate = 0.0 }}\n")).is_ok());
    }

    #[test]
    fn url_errors_never_show_the_password() {
        let e = err("[[cameras]]\nid = \"a\"\ncommunity = \"c\"\nurl = \"ftp://u:hunter2@h/\"\n");
        assert!(!e.contains("hunter2"), "{e}");
        // A mistyped key is named with its place, but its line (and value) is not quoted.
        let e = err("[mqtt]\nurl = \"mqtt://b\"\nusername = \"hub\"\npasword = \"hunter2\"\n");
        assert!(
            e.contains("pasword") && e.contains("line 4") && !e.contains("hunter2"),
            "{e}"
        );
    }

    #[test]
    fn gate_sections_are_checked_with_the_rest() {
        let base = r#"
            [[cameras]]
            id = "lobby-cam"
            community = "xingfu"
            file = "x.mp4"
            [mqtt]
            url = "mqtt://broker.lan"
            password = "hunter2"
            username = "hub"
            [[mqtt.subscriptions]]
            filter = "DahuaVTO/+/Event"
            firmware = "dahua"
            [[gates]]
            id = "lobby"
            community = "xingfu"
            firmware = "dahua"
        "#;
        let c = Config::parse(&format!("{base}camera = \"lobby-cam\"\n")).unwrap();
        assert_eq!(c.gates.len(), 1);
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(err(&format!("{base}camera = \"nope\"\n")).contains("not in [[cameras]]"));
        assert!(err(&format!("{base}firmware2 = 1\n")).contains("firmware2"));
        assert!(
            err(&base.replace(
                "\"dahua\"\n            [[gates]]",
                "\"dahau\"\n            [[gates]]"
            ))
            .contains("unknown firmware")
        );
    }

    /// A gate that `[mqtt]` names must run: gate ingest would not let it go, so it would run
    /// while the store said disabled. Each reason it may not run is named.
    #[test]
    fn a_gate_mqtt_names_must_run() {
        let topology = |station: &str, community: &str, gate: &str| {
            format!(
                "[[stations]]\nid = \"s\"\nname = \"城关派出所\"\n{station}\
                 [[communities]]\nid = \"xingfu\"\nname = \"幸福小区\"\nstation = \"s\"\n\
                 {community}\
                 [[gates]]\nid = \"lobby\"\ncommunity = \"xingfu\"\nfirmware = \"dahua\"\n{gate}\
                 [[gates]]\nid = \"implied\"\ncommunity = \"other\"\nfirmware = \"dahua\"\n"
            )
        };
        let off = "disabled = true\n";
        let subscription = "[mqtt]\nurl = \"mqtt://broker.lan\"\n[[mqtt.subscriptions]]\n\
                            filter = \"DahuaVTO/+/Event\"\nfirmware = \"dahua\"\n\
                            gate_from = { gate = \"lobby\" }\n";
        let account = "[mqtt]\nembedded = true\nlisten = \"127.0.0.1:18832\"\n\
                       [[mqtt.subscriptions]]\nfilter = \"g/+\"\nfirmware = \"dahua\"\n\
                       [[mqtt.accounts]]\nusername = \"bridge\"\n\
                       password = \"0123456789abcdef\"\ngates = [\"implied\", \"lobby\"]\n";
        for (mqtt, (station, community, gate), want) in [
            (
                subscription,
                ("", "", off),
                "gates[0] (id \"lobby\") does not run (it is disabled), but \
                 mqtt.subscriptions[0] (filter \"DahuaVTO/+/Event\") names it in `gate_from`",
            ),
            (
                account,
                ("", off, ""),
                "gates[0] (id \"lobby\") does not run (its community \"xingfu\" is disabled), \
                 but mqtt.accounts[0] (username \"bridge\") names it in `gates`",
            ),
            (
                account,
                (off, "", ""),
                "(its community's station \"s\" is disabled)",
            ),
        ] {
            let text = format!("{mqtt}{}", topology(station, community, gate));
            let e = err(&text);
            assert!(e.contains(want), "{text}\nwant {want}\ngot {e}");
        }
        // Named and running, or disabled and not named: fine. Ingest starts with the gates
        // that run only.
        for mqtt in [subscription, account] {
            let c = Config::parse(&format!("{mqtt}{}", topology("", "", ""))).unwrap();
            assert_eq!(c.running_gates_config().gates.len(), 2);
        }
        let c = Config::parse(&topology("", off, "")).unwrap();
        let running: Vec<String> = c
            .running_gates_config()
            .gates
            .iter()
            .map(|g| g.id.to_string())
            .collect();
        assert_eq!(running, ["implied"]);
        assert_eq!(c.gates_config().gates.len(), 2, "all are checked");
    }

    /// With the embedded broker, MQTT out logs in with the hub's own account (the only one
    /// that may write `xueliang/...` there), made afresh at each start.
    #[test]
    fn mqtt_out_logs_in_to_the_embedded_broker_as_the_hub() {
        let base = "[mqtt]\nembedded = true\nlisten = \"127.0.0.1:18831\"\n\
                    [[mqtt.subscriptions]]\nfilter = \"g/+\"\nfirmware = \"dahua\"\n";
        let c = Config::parse(base).unwrap();
        let hub_password = c.mqtt.as_ref().unwrap().hub_password.clone();
        let out = c.mqtt_out_config().unwrap();
        assert_eq!(out.url, "mqtt://127.0.0.1:18831");
        assert_eq!(
            out.username.as_deref(),
            Some(xl_gates::config::HUB_USERNAME)
        );
        assert_eq!(out.password.as_deref(), Some(hub_password.as_str()));
        assert_ne!(
            Config::parse(base).unwrap().mqtt.unwrap().hub_password,
            hub_password,
            "the same password at every start"
        );
        // An [mqtt_out] at the embedded broker gets the account too; one elsewhere does not.
        let at = |url: &str| {
            let c = Config::parse(&format!("{base}[mqtt_out]\nurl = \"{url}\"\n")).unwrap();
            c.mqtt_out_config().unwrap().username
        };
        assert!(at("mqtt://localhost:18831").is_some());
        assert!(at("mqtt://127.0.0.1:18831").is_some());
        assert!(at("mqtt://192.0.2.1:1883").is_none());
    }

    #[test]
    fn the_shipped_configs_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        for name in ["demo.toml", "reference.toml"] {
            Config::load(&root.join(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }
}
