//! The config file's topology: [`Config::topology`] builds an [`xl_core::topology::Topology`]
//! from `[[stations]]`, `[[communities]]`, `[[grids]]`, `[[cameras]]` and `[[gates]]`; the
//! hub applies it to the store at each start ([`apply`]); `xueliang export` writes the store's
//! topology back in the same schema ([`export`], [`to_toml`]).
//!
//! Decisions:
//! - A community that a camera, gate or grid names but no `[[communities]]` declares is
//!   implied: its id is its name and it has no station. Configs written before
//!   `[[communities]]` existed keep working; `check-config` lists the implied ones, so a
//!   mistyped id shows.
//! - `url` / `file` are the sub stream (analysed), `main_url` / `main_file` the main stream.
//!   `user:password@` in either URL moves into the camera's username and password (xl-rtsp's
//!   `CameraSource::new` does the moving, as it does for the running camera); explicit
//!   `username` / `password` win, and two URLs carrying different logins are refused.
//! - The export holds no secret (as the API, it reads the store with secrets withheld). Each
//!   camera or gate that has one stored gets a comment saying so, for the operator to add it
//!   from their secret store. A gate that takes HTTP push on its secret alone is exported with
//!   its transport spelt out, so the file is refused (naming the gate) until the secret is
//!   added, instead of quietly becoming an MQTT gate.
//! - `disabled = true` declares an entry that is stored and listed but does not run (the
//!   runtime runs no disabled camera or gate, nor any under a disabled community or station);
//!   the export writes it for each disabled entry. A gate that `[mqtt]` accounts or
//!   subscriptions name must run: the config is refused if it would not.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::Context;
use jiff::Timestamp;
use serde::Serialize;
use tracing::info;
use xl_core::CommunityId;
use xl_core::topology::{
    Camera, Community, EntryId, Gate, GateTransport, Grid, Kind, RtspTransport, Secret, Station,
    StreamSource, Topology, TopologyError,
};
use xl_rtsp::TransportKind;
use xl_store::{ApplyReport, Store, StoredTopology};

use crate::config::{CameraConfig, CommunityConfig, Config, GridConfig, StationConfig};

impl Config {
    /// The topology the file declares (implied communities included), checked entry by entry
    /// and as a whole. Every problem found is named by its config key
    /// (`cameras[2] (id "east"): grid: grid "g9" does not exist`).
    pub fn topology(&self) -> anyhow::Result<Topology> {
        let mut t = Topology::default();
        let mut errors = Vec::new();
        for s in &self.stations {
            t.stations.insert(
                s.id.clone(),
                Station {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    disabled: s.disabled,
                },
            );
        }
        for c in &self.communities {
            t.communities.insert(
                c.id.clone(),
                Community {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    station: c.station.clone(),
                    disabled: c.disabled,
                },
            );
        }
        for id in self.implied_communities() {
            t.communities.insert(
                id.clone(),
                Community {
                    name: id.to_string(),
                    id,
                    station: None,
                    disabled: false,
                },
            );
        }
        for g in &self.grids {
            t.grids.insert(
                g.id.clone(),
                Grid {
                    id: g.id.clone(),
                    community: g.community.clone(),
                    name: g.name.clone(),
                    disabled: g.disabled,
                },
            );
        }
        for (i, c) in self.cameras.iter().enumerate() {
            match camera_entry(c) {
                Ok(cam) => {
                    t.cameras.insert(cam.id.clone(), cam);
                }
                Err((field, reason)) => errors.push(format!(
                    "cameras[{i}] (id {:?}): {field}: {reason}",
                    c.id.as_str()
                )),
            }
        }
        for (i, g) in self.gates.iter().enumerate() {
            match gate_entry(g) {
                Ok(gate) => {
                    t.gates.insert(gate.id.clone(), gate);
                }
                Err((field, reason)) => errors.push(format!(
                    "gates[{i}] (id {:?}): {field}: {reason}",
                    g.id.as_str()
                )),
            }
        }
        // Duplicate ids within a kind: the map kept the last one.
        duplicates(
            &mut errors,
            "stations",
            self.stations.iter().map(|s| s.id.as_str()),
        );
        duplicates(
            &mut errors,
            "communities",
            self.communities.iter().map(|c| c.id.as_str()),
        );
        duplicates(
            &mut errors,
            "grids",
            self.grids.iter().map(|g| g.id.as_str()),
        );
        if errors.is_empty()
            && let Err(found) = t.validate()
        {
            errors.extend(found.iter().map(|e| self.name_key(e)));
        }
        if errors.is_empty() {
            Ok(t)
        } else {
            anyhow::bail!("{}", errors.join("\n"))
        }
    }

    /// The communities that cameras, gates or grids name but no `[[communities]]` declares,
    /// each once, in the order first named.
    pub fn implied_communities(&self) -> Vec<CommunityId> {
        let declared: BTreeSet<&CommunityId> = self.communities.iter().map(|c| &c.id).collect();
        let mut seen = BTreeSet::new();
        self.cameras
            .iter()
            .map(|c| &c.community)
            .chain(self.gates.iter().map(|g| &g.community))
            .chain(self.grids.iter().map(|g| &g.community))
            .filter(|id| !declared.contains(id) && seen.insert(*id))
            .cloned()
            .collect()
    }

    /// A topology error with its entry named by its config key, and a camera's stream fields
    /// by their config names (`main.url` is `main_url`).
    fn name_key(&self, e: &TopologyError) -> String {
        let (kind, id) = e.entry();
        let place = |list: &str, ids: &mut dyn Iterator<Item = &str>| match ids
            .enumerate()
            .find_map(|(i, x)| (x == id).then_some(i))
        {
            Some(i) => format!("{list}[{i}] (id {id:?})"),
            None => format!("{list} (id {id:?})"),
        };
        let at = match kind {
            Kind::Station => place("stations", &mut self.stations.iter().map(|s| s.id.as_str())),
            Kind::Community if self.communities.iter().all(|c| c.id.as_str() != id) => {
                format!("community {id:?} (implied: named but not in [[communities]])")
            }
            Kind::Community => place(
                "communities",
                &mut self.communities.iter().map(|c| c.id.as_str()),
            ),
            Kind::Grid => place("grids", &mut self.grids.iter().map(|g| g.id.as_str())),
            Kind::Camera => place("cameras", &mut self.cameras.iter().map(|c| c.id.as_str())),
            Kind::Gate => place("gates", &mut self.gates.iter().map(|g| g.id.as_str())),
        };
        let camera = (kind == Kind::Camera)
            .then(|| self.cameras.iter().find(|c| c.id.as_str() == id))
            .flatten();
        match (e, e.field()) {
            (
                TopologyError::InvalidField { reason, .. }
                | TopologyError::BadReference { reason, .. },
                Some(field),
            ) => {
                let field = match (field, camera) {
                    ("sub" | "sub.url" | "sub.path", Some(c)) if c.file.is_some() => "file",
                    ("sub" | "sub.url" | "sub.path", _) => "url",
                    ("main.url", _) => "main_url",
                    ("main.path", _) => "main_file",
                    (f, _) => f,
                };
                format!("{at}: {field}: {reason}")
            }
            _ => format!("{at}: {e}"),
        }
    }
}

fn duplicates<'a>(errors: &mut Vec<String>, list: &str, ids: impl Iterator<Item = &'a str>) {
    let mut seen = BTreeMap::new();
    for (i, id) in ids.enumerate() {
        if let Some(first) = seen.insert(id, i) {
            errors.push(format!(
                "{list}[{i}] (id {id:?}): the id is also {list}[{first}]; ids are unique"
            ));
        }
    }
}

/// A config field that cannot become part of the topology: (key, reason).
type KeyError = (&'static str, String);

/// One `[[cameras]]` table as a topology camera, its credentials moved out of its URLs.
fn camera_entry(c: &CameraConfig) -> Result<Camera, KeyError> {
    let mut from_urls: Option<xl_rtsp::Credentials> = None;
    let mut source = |key: &'static str,
                      url: &Option<String>,
                      file: &Option<std::path::PathBuf>|
     -> Result<Option<StreamSource>, KeyError> {
        if let Some(url) = url {
            // The one place credentials leave a URL: what the running camera uses too.
            let s = xl_rtsp::CameraSource::new(c.id.clone(), url, None).map_err(|e| {
                (
                    key,
                    format!("{:?} is not a URL ({e})", xl_rtsp::redact_url(url)),
                )
            })?;
            if let Some(login) = s.credentials {
                match &from_urls {
                    Some(other)
                        if other.username != login.username || other.password != login.password =>
                    {
                        return Err((
                            key,
                            "carries another login than `url`; a camera has one: set \
                             `username` and `password` instead"
                                .to_owned(),
                        ));
                    }
                    _ => from_urls = Some(login),
                }
            }
            return Ok(Some(StreamSource::Rtsp {
                url: s.url.to_string(),
            }));
        }
        let Some(path) = file else { return Ok(None) };
        let path = path
            .to_str()
            .ok_or_else(|| (key, format!("{} is not UTF-8", path.display())))?;
        Ok(Some(StreamSource::File {
            path: path.to_owned(),
        }))
    };
    let sub = source("url", &c.url, &c.file)?;
    let main = source("main_url", &c.main_url, &c.main_file)?;
    // As the hub does: an explicit username comes with the explicit password (or none);
    // otherwise the URLs' login, if any.
    let (username, password) = match (&c.username, from_urls) {
        (Some(u), _) => (Some(u.clone()), c.password.clone()),
        (None, Some(login)) => (
            Some(login.username),
            Some(login.password).filter(|p| !p.is_empty()),
        ),
        (None, None) => (None, c.password.clone()),
    };
    Ok(Camera {
        id: c.id.clone(),
        name: c.name.clone().unwrap_or_else(|| c.id.to_string()),
        community: c.community.clone(),
        grid: c.grid.clone(),
        network: c.network,
        main,
        sub,
        username,
        password: password.map(Secret::new),
        transport: c.transport.map(|t| match t {
            TransportKind::Tcp => RtspTransport::Tcp,
            TransportKind::Udp => RtspTransport::Udp,
        }),
        decode: c.decode,
        detect: c.detect.clone(),
        zones: c.zones.clone(),
        recording: c.recording.clone(),
        disabled: c.disabled,
    })
}

/// One `[[gates]]` table as a topology gate.
fn gate_entry(g: &xl_gates::GateConfig) -> Result<Gate, KeyError> {
    let push_allow_from = g
        .push_allow_from
        .iter()
        .map(|n| {
            ipnet::IpNet::new(n.addr, n.prefix)
                .map_err(|e| ("push_allow_from", format!("{}/{}: {e}", n.addr, n.prefix)))
        })
        .collect::<Result<_, _>>()?;
    Ok(Gate {
        id: g.id.clone(),
        name: g.name.clone().unwrap_or_else(|| g.id.to_string()),
        community: g.community.clone(),
        grid: g.grid.clone(),
        firmware: g.firmware.clone(),
        device: g.device.clone(),
        camera: g.camera.clone(),
        transport: g.transport,
        push_secret: g.push_secret.clone().map(Secret::new),
        push_allow_from,
        timezone: g.timezone.clone(),
        offline_after_secs: g.offline_after_secs,
        disabled: g.disabled,
    })
}

/// Applies the file's topology to the store (entries from config: added, changed, claimed,
/// removed or kept, see [`Store::apply_config`]) and logs what changed at INFO.
pub async fn apply(store: &Store, config: &Config, at: Timestamp) -> anyhow::Result<ApplyReport> {
    let declared = config.topology()?;
    let report = store
        .apply_config(&declared, at)
        .await
        .context("cannot apply the config file's topology to the store")?;
    let ids = |v: &[EntryId]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    info!(
        added = report.added.len(),
        changed = report.changed.len(),
        removed = report.removed.len(),
        kept = report.kept.len(),
        claimed = report.claimed.len(),
        unchanged = report.unchanged,
        implied_communities = ?config.implied_communities().iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "topology from config applied to the store"
    );
    if !report.is_noop() {
        info!(
            added = ?ids(&report.added),
            changed = ?ids(&report.changed),
            removed = ?ids(&report.removed),
            claimed = ?ids(&report.claimed),
            kept = ?report.kept.iter().map(|(e, by)| format!("{e} (used by {by})")).collect::<Vec<_>>(),
            "topology changes from config"
        );
    }
    Ok(report)
}

/// `xueliang export`: the topology of the store `config` names, as TOML in the config's own
/// schema. Opens the store (as `run` does) and nothing else; writes nothing to it.
pub async fn export(config: &Config) -> anyhow::Result<String> {
    if config.store.database_url.is_none() {
        let db = config.server.data_dir.join("xueliang.db");
        anyhow::ensure!(
            db.exists(),
            "no store at {} (the config's [server] data_dir): run the hub with this config \
             first, or name the store in [store] database_url",
            db.display()
        );
    }
    let url = crate::hub::store_url(config)?;
    let store = Store::open(&url)
        .await
        .with_context(|| format!("cannot open the store {}", xl_store::redact_url(&url)))?;
    let stored = store
        .topology()
        .await
        .context("cannot read the topology from the store")?;
    let header = format!(
        "# Exported by `xueliang export` from {} at {}.\n",
        xl_store::redact_url(&url),
        Timestamp::now()
    );
    Ok(header + &to_toml(&stored)?)
}

/// The topology as TOML in the config's own schema (`[[stations]]`, `[[communities]]`,
/// `[[grids]]`, `[[cameras]]` with their zones, `[[gates]]`), secrets left out with a comment
/// on each entry that has one, `disabled = true` on each disabled entry. [`Config::parse`] of
/// the text gives the same topology, secrets aside.
pub fn to_toml(stored: &StoredTopology) -> anyhow::Result<String> {
    let t = &stored.topology;
    let secret_set = |id: EntryId| stored.meta.get(&id).is_some_and(|m| m.secret_set);
    let mut out = String::from(
        "# The topology only: add the process settings ([server], [store], [mqtt], ...) to run\n\
         # it. Secrets are not exported: an entry that has one stored says so in a comment; add\n\
         # it from your secret store (`password = ...`, `push_secret = ...`).\n",
    );
    let mut section = |kind: &str, table: toml::Table, notes: &[String]| {
        let text = toml_table(kind, table)?;
        out.push('\n');
        for n in notes {
            let _ = writeln!(out, "# {n}");
        }
        out.push_str(&text);
        anyhow::Ok(())
    };
    for s in t.stations.values() {
        let c = StationConfig {
            id: s.id.clone(),
            name: s.name.clone(),
            disabled: s.disabled,
        };
        section("stations", table_of(&c)?, &[])?;
    }
    for c in t.communities.values() {
        let cc = CommunityConfig {
            id: c.id.clone(),
            name: c.name.clone(),
            station: c.station.clone(),
            disabled: c.disabled,
        };
        section("communities", table_of(&cc)?, &[])?;
    }
    for g in t.grids.values() {
        let gc = GridConfig {
            id: g.id.clone(),
            community: g.community.clone(),
            name: g.name.clone(),
            disabled: g.disabled,
        };
        section("grids", table_of(&gc)?, &[])?;
    }
    for c in t.cameras.values() {
        let mut notes = Vec::new();
        if secret_set(EntryId::Camera(c.id.clone())) {
            notes.push(format!(
                "camera {:?}: a password is set in the store (not exported); add `password = ...`",
                c.id.as_str()
            ));
        }
        section("cameras", table_of(&camera_config(c))?, &notes)?;
    }
    for g in t.gates.values() {
        let mut notes = Vec::new();
        let has_secret = secret_set(EntryId::Gate(g.id.clone()));
        if has_secret {
            notes.push(format!(
                "gate {:?}: a push_secret is set in the store (not exported); add \
                 `push_secret = ...`",
                g.id.as_str()
            ));
        }
        section("gates", table_of(&GateOut::new(g, has_secret))?, &notes)?;
    }
    Ok(out)
}

/// A `[[gates]]` table as written by the export: `xl_gates::GateConfig`'s keys.
#[derive(Serialize)]
struct GateOut<'a> {
    id: &'a str,
    name: &'a str,
    community: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    grid: Option<&'a str>,
    firmware: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    camera: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transport: Option<GateTransport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    push_allow_from: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timezone: Option<&'a str>,
    offline_after_secs: u64,
    #[serde(skip_serializing_if = "crate::config::is_default")]
    disabled: bool,
}

impl<'a> GateOut<'a> {
    fn new(g: &'a Gate, has_secret: bool) -> GateOut<'a> {
        GateOut {
            id: g.id.as_str(),
            name: &g.name,
            community: g.community.as_str(),
            grid: g.grid.as_ref().map(|x| x.as_str()),
            firmware: &g.firmware,
            device: g.device.as_deref(),
            camera: g.camera.as_ref().map(|x| x.as_str()),
            // A gate with a secret and no transport takes HTTP push (the default when push
            // settings are set). Without the secret, which the store withholds here, it would
            // read as MQTT: spell it out, so the file is refused until the secret is added.
            transport: match g.transport {
                None if has_secret => Some(GateTransport::HttpPush),
                t => t,
            },
            push_allow_from: g.push_allow_from.iter().map(ToString::to_string).collect(),
            timezone: g.timezone.as_deref(),
            offline_after_secs: g.offline_after_secs,
            disabled: g.disabled,
        }
    }
}

/// A topology camera as a `[[cameras]]` table (without its password).
fn camera_config(c: &Camera) -> CameraConfig {
    let split = |s: &Option<StreamSource>| match s {
        Some(StreamSource::Rtsp { url }) => (Some(url.clone()), None),
        Some(StreamSource::File { path }) => (None, Some(path.into())),
        None => (None, None),
    };
    let (url, file) = split(&c.sub);
    let (main_url, main_file) = split(&c.main);
    CameraConfig {
        id: c.id.clone(),
        name: Some(c.name.clone()),
        community: c.community.clone(),
        grid: c.grid.clone(),
        network: c.network,
        url,
        file,
        main_url,
        main_file,
        username: c.username.clone(),
        password: None,
        transport: c.transport.map(|t| match t {
            RtspTransport::Tcp => TransportKind::Tcp,
            RtspTransport::Udp => TransportKind::Udp,
        }),
        decode: c.decode,
        detect: c.detect.clone(),
        zones: c.zones.clone(),
        recording: c.recording.clone(),
        disabled: c.disabled,
    }
}

fn table_of<T: Serialize>(v: &T) -> anyhow::Result<toml::Table> {
    let mut table = toml::Table::try_from(v).context("cannot write an entry as TOML")?;
    for (_, v) in table.iter_mut() {
        shorten_floats(v);
    }
    Ok(table)
}

/// Zone corners and detection rates are `f32`: written as `f64` they read `0.550000011920929`.
/// A float that is exactly an `f32` is written as the shortest decimal that reads back as the
/// same `f32` (`0.55`).
fn shorten_floats(v: &mut toml::Value) {
    match v {
        toml::Value::Float(f) => {
            let narrow = *f as f32;
            if f64::from(narrow) == *f
                && let Ok(short) = narrow.to_string().parse::<f64>()
            {
                *f = short;
            }
        }
        toml::Value::Array(a) => a.iter_mut().for_each(shorten_floats),
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| shorten_floats(v)),
        _ => {}
    }
}

/// One entry as `[[kind]]` with its nested tables (`[kind.detect]`, `[[kind.zones]]`).
fn toml_table(kind: &str, table: toml::Table) -> anyhow::Result<String> {
    let mut doc = toml::Table::new();
    doc.insert(
        kind.to_owned(),
        toml::Value::Array(vec![toml::Value::Table(table)]),
    );
    toml::to_string(&doc).context("cannot write an entry as TOML")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        Config::parse(text).unwrap_or_else(|e| panic!("{e:#}\n{text}"))
    }

    fn err(text: &str) -> String {
        format!("{:#}", Config::parse(text).unwrap_err())
    }

    #[test]
    fn an_old_config_implies_its_communities() {
        let c = parse(
            r#"
            [[cameras]]
            id = "east"
            community = "xingfu"
            url = "rtsp://10.0.0.2/102"
            [[gates]]
            id = "door"
            community = "hexie"
            firmware = "dahua"
            "#,
        );
        let t = c.topology().unwrap();
        assert_eq!(
            c.implied_communities()
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>(),
            ["xingfu", "hexie"]
        );
        let xingfu = &t.communities[&CommunityId::new("xingfu").unwrap()];
        assert_eq!(
            (xingfu.name.as_str(), xingfu.station.as_ref()),
            ("xingfu", None)
        );
        let cam = t.cameras.values().next().unwrap();
        assert_eq!(cam.name, "east", "the name defaults to the id");
        assert_eq!(
            cam.sub,
            Some(StreamSource::Rtsp {
                url: "rtsp://10.0.0.2/102".into()
            })
        );
        assert_eq!(cam.main, None);
        assert_eq!(t.gates.values().next().unwrap().name, "door");
    }

    #[test]
    fn the_hierarchy_and_both_streams_are_read() {
        let c = parse(
            r#"
            [[stations]]
            id = "chengguan"
            name = "城关派出所"
            [[communities]]
            id = "xingfu"
            name = "幸福小区"
            station = "chengguan"
            [[grids]]
            id = "g3"
            community = "xingfu"
            name = "第三网格"
            [[cameras]]
            id = "east"
            name = "东门"
            community = "xingfu"
            grid = "g3"
            url = "rtsp://10.0.0.2/Streaming/Channels/102"
            main_url = "rtsp://10.0.0.2/Streaming/Channels/101"
            [[gates]]
            id = "door"
            name = "东门门禁"
            community = "xingfu"
            grid = "g3"
            firmware = "dahua"
            camera = "east"
            "#,
        );
        assert!(c.implied_communities().is_empty());
        let t = c.topology().unwrap();
        assert_eq!(t.len(), 5);
        let cam = t.cameras.values().next().unwrap();
        assert_eq!(cam.grid.as_ref().unwrap().as_str(), "g3");
        assert!(matches!(&cam.main, Some(StreamSource::Rtsp { url }) if url.ends_with("101")));
        let gate = t.gates.values().next().unwrap();
        assert_eq!(
            (gate.name.as_str(), gate.grid.is_some()),
            ("东门门禁", true)
        );
    }

    #[test]
    fn credentials_move_out_of_the_urls() {
        let cam = |extra: &str| format!("[[cameras]]\nid = \"a\"\ncommunity = \"c\"\n{extra}\n");
        let t = parse(&cam(
            "url = \"rtsp://admin:p%40ss@10.0.0.2/102\"\nmain_url = \"rtsp://admin:p%40ss@10.0.0.2/101\"",
        ))
        .topology()
        .unwrap();
        let c = t.cameras.values().next().unwrap();
        assert_eq!(c.username.as_deref(), Some("admin"));
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("p@ss"));
        assert_eq!(
            (c.sub.clone(), c.main.clone()),
            (
                Some(StreamSource::Rtsp {
                    url: "rtsp://10.0.0.2/102".into()
                }),
                Some(StreamSource::Rtsp {
                    url: "rtsp://10.0.0.2/101".into()
                })
            )
        );
        // Explicit ones win, as the running camera has it.
        let t = parse(&cam(
            "url = \"rtsp://a:b@h/\"\nusername = \"op\"\npassword = \"x\"",
        ))
        .topology()
        .unwrap();
        let c = t.cameras.values().next().unwrap();
        assert_eq!(
            (
                c.username.as_deref(),
                c.password.as_ref().map(Secret::expose)
            ),
            (Some("op"), Some("x"))
        );
        // A user without a password is a user without a password.
        let t = parse(&cam("main_url = \"rtsp://viewer@h/\""))
            .topology()
            .unwrap();
        let c = t.cameras.values().next().unwrap();
        assert_eq!(
            (c.username.as_deref(), c.password.is_none()),
            (Some("viewer"), true)
        );
        // Two logins for one camera are refused, without showing either password.
        let e = err(&cam(
            "url = \"rtsp://a:hunter2@h/2\"\nmain_url = \"rtsp://b:hunter3@h/1\"",
        ));
        assert!(
            e.contains("cameras[0] (id \"a\"): main_url: carries another login"),
            "{e}"
        );
        assert!(!e.contains("hunter"), "{e}");
    }

    #[test]
    fn errors_name_the_config_key() {
        let base = "[[communities]]\nid = \"xingfu\"\nname = \"幸福小区\"\n\
                    [[grids]]\nid = \"g1\"\ncommunity = \"xingfu\"\nname = \"一网格\"\n";
        for (extra, want) in [
            (
                "[[communities]]\nid = \"hexie\"\nname = \"和谐\"\nstation = \"nope\"\n",
                "communities[1] (id \"hexie\"): station: station \"nope\" does not exist",
            ),
            (
                "[[grids]]\nid = \"g2\"\ncommunity = \"xingfu\"\nname = \"\"\n",
                "grids[1] (id \"g2\"): name: empty",
            ),
            (
                "[[grids]]\nid = \"g1\"\ncommunity = \"xingfu\"\nname = \"又一个\"\n",
                "grids[1] (id \"g1\"): the id is also grids[0]",
            ),
            (
                "[[cameras]]\nid = \"cam\"\ncommunity = \"xingfu\"\nfile = \"f.mp4\"\ngrid = \"g9\"\n",
                "cameras[0] (id \"cam\"): grid: grid \"g9\" does not exist",
            ),
            (
                "[[cameras]]\nid = \"cam\"\ncommunity = \"other\"\nfile = \"f.mp4\"\ngrid = \"g1\"\n",
                "cameras[0] (id \"cam\"): grid: grid \"g1\" is in community \"xingfu\"",
            ),
            (
                "[[cameras]]\nid = \"cam\"\ncommunity = \"xingfu\"\nmain_url = \"rtsp://h/1\"\n\
                 main_file = \"f.mp4\"\n",
                "cameras[0] (id \"cam\"): set either `main_url` or `main_file`",
            ),
            (
                "[[cameras]]\nid = \"cam\"\ncommunity = \"xingfu\"\nmain_file = \"a://b\"\n",
                "cameras[0] (id \"cam\"): main_file: is a URL",
            ),
            (
                "[[gates]]\nid = \"door\"\ncommunity = \"xingfu\"\nfirmware = \"dahua\"\ngrid = \"g7\"\n",
                "gates[0] (id \"door\"): grid: grid \"g7\" does not exist",
            ),
            (
                "[[stations]]\nid = \"s\"\nname = \"s\"\nnmae = \"x\"\n",
                "nmae",
            ),
        ] {
            let e = err(&format!("{base}{extra}"));
            assert!(e.contains(want), "{extra}\nwant {want:?}\ngot {e}");
        }
    }

    fn stored(t: &Topology) -> StoredTopology {
        StoredTopology {
            topology: t.clone(),
            meta: BTreeMap::new(),
        }
    }

    #[test]
    fn disabled_entries_are_read_and_exported_as_disabled() {
        let c = parse(
            r#"
            [[stations]]
            id = "s"
            name = "城关派出所"
            disabled = true
            [[communities]]
            id = "c"
            name = "幸福小区"
            station = "s"
            disabled = true
            [[grids]]
            id = "g"
            community = "c"
            name = "第三网格"
            disabled = true
            [[cameras]]
            id = "cam"
            community = "c"
            url = "rtsp://10.0.0.2/102"
            disabled = true
            [[gates]]
            id = "door"
            community = "c"
            firmware = "dahua"
            disabled = true
            [[gates]]
            id = "other"
            community = "c"
            firmware = "dahua"
            device = "other-device"
            "#,
        );
        let t = c.topology().unwrap();
        let disabled: Vec<String> = t
            .entries()
            .iter()
            .filter(|e| e.disabled())
            .map(|e| e.id().to_string())
            .collect();
        assert_eq!(
            disabled,
            [
                "station \"s\"",
                "community \"c\"",
                "grid \"g\"",
                "camera \"cam\"",
                "gate \"door\""
            ]
        );
        let text = to_toml(&stored(&t)).unwrap();
        assert_eq!(text.matches("disabled = true").count(), 5, "{text}");
        assert!(
            !text.contains("disabled = false") && !text.contains("\n# id"),
            "{text}"
        );
        assert_eq!(parse(&text).topology().unwrap(), t, "{text}");
        // Neither gate runs: one is disabled, the other's community is.
        assert!(c.running_gates_config().gates.is_empty());
    }

    #[test]
    fn the_export_reads_back_as_the_same_topology() {
        let c = parse(
            r#"
            [[stations]]
            id = "chengguan"
            name = "城关派出所"
            [[communities]]
            id = "xingfu"
            name = "幸福小区"
            station = "chengguan"
            [[grids]]
            id = "g3"
            community = "xingfu"
            name = "第三网格"
            [[cameras]]
            id = "east"
            name = "东门 \"入口\""
            community = "xingfu"
            grid = "g3"
            network = "skynet"
            url = "rtsp://admin:pw@10.0.0.2/102"
            main_url = "rtsp://10.0.0.2/101"
            transport = "udp"
            decode = "key-frames"
            [cameras.detect]
            rate = 0.3
            faces = "frame"
            [[cameras.zones]]
            id = "lawn"
            name = "北门广场"
            polygon = [[0.1, 0.55], [1.0, 0.55], [0.7, 0.93]]
            dwell_limit_secs = 20.5
            schedule = [{ days = ["mon", "sun"], start = "22:00", end = "06:30" }]
            [[gates]]
            id = "door"
            name = "东门门禁"
            community = "xingfu"
            grid = "g3"
            firmware = "hikvision-isapi"
            camera = "east"
            push_allow_from = ["10.0.0.0/24"]
            timezone = "Asia/Shanghai"
            offline_after_secs = 600
            "#,
        );
        let t = c.topology().unwrap();
        let text = to_toml(&stored(&t)).unwrap();
        assert!(
            text.contains("0.55") && !text.contains("0.5500000"),
            "{text}"
        );
        assert!(text.contains("name = \"北门广场\""), "{text}");
        let mut back = parse(&text).topology().unwrap();
        back.cameras.values_mut().for_each(|c| c.password = None);
        let mut want = t;
        want.cameras.values_mut().for_each(|c| c.password = None);
        assert_eq!(back, want, "{text}");
    }
}
