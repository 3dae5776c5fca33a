//! `xueliang demo`: the demo community (config/demo.toml) with everything embedded, demo
//! accounts, and a gate simulator publishing real-format Hikvision and Dahua payloads to the
//! embedded broker: grants, denials, and now and then a forced door. The simulated devices log
//! in as real ones must: each with its `[[mqtt.accounts]]` entry, which lets it report for its
//! own gate only.
//!
//! The demo runs from any directory: without `--config` it uses config/demo.toml as compiled
//! into the binary, its video taken from the asset cache and its data kept in the user's data
//! directory (see [`config`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use xl_core::{CommunityId, Role};
use xl_store::Store;

use crate::config::Config;
use crate::hub::Hub;

/// The demo's accounts: (name, password, role). Printed at start; for a demo only.
pub const ACCOUNTS: [(&str, &str, Role); 4] = [
    ("admin", "xueliang-admin", Role::Admin),
    ("duty", "xueliang-duty", Role::Duty),
    ("police", "xueliang-police", Role::Police),
    ("property", "xueliang-property", Role::Property),
];

/// The Hikvision DS-K1T face-pass record and the Dahua VTO remote-open message: real payloads,
/// varied by the simulator.
const HIKVISION_FACE_PASS: &str = include_str!(
    "../../../firmware-adapters/hikvision-isapi/testdata/hikvision_ds-k1t_face-pass_http-push.json"
);
const DAHUA_VTO_OPEN: &str =
    include_str!("../../../firmware-adapters/dahua/testdata/dahua_vto2mqtt_remote-open.json");

/// config/demo.toml, compiled in: the built-in demo's configuration. The file in the
/// repository stays the one source (`xueliang check-config config/demo.toml` checks it).
pub const BUILTIN_CONFIG: &str = include_str!("../../../config/demo.toml");

/// Where the demo config's camera files point: the repository's link to the asset cache
/// (`scripts/setup` makes it), relative to config/. The built-in demo reads the same files
/// from the cache itself.
const REPO_CACHE_LINK: &str = "../.cache";

/// `xueliang demo`'s command line.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// `--config FILE`: run this file instead of the built-in demo. Relative paths in it are
    /// resolved against its directory, as `xueliang run` does.
    pub config: Option<PathBuf>,
    /// `--data-dir DIR`: overrides `[server] data_dir`. Default for the built-in demo:
    /// [`default_data_dir`].
    pub data_dir: Option<PathBuf>,
    /// `--listen ADDR`: overrides `[server] listen` (the console and API).
    pub listen: Option<SocketAddr>,
    /// `--mqtt-listen ADDR`: overrides `[mqtt] listen` (the embedded broker).
    pub mqtt_listen: Option<SocketAddr>,
}

/// The configuration `xueliang demo` runs: the one place that decides it.
///
/// - With `--config FILE`: that file, loaded like any other ([`Config::load`]).
/// - Without: [`BUILTIN_CONFIG`], whose camera files (`../.cache/...`, the repository's link
///   to the asset cache) are read from the asset cache itself (`$XUELIANG_CACHE`, default
///   `~/.cache/xueliang`; `scripts/setup-assets` fills it), and whose data directory is
///   `--data-dir` or [`default_data_dir`].
///
/// Then `--data-dir`, `--listen` and `--mqtt-listen` override the file's values, and every
/// camera's video must exist: a missing one is an error naming the path looked at and the
/// command that fetches it.
pub fn config(options: &Options) -> anyhow::Result<Config> {
    let mut config = match &options.config {
        Some(path) => Config::load(path)?,
        None => {
            let data_dir = match &options.data_dir {
                Some(d) => d.clone(),
                None => default_data_dir()?,
            };
            builtin_config(&xl_detect::cache_dir(), data_dir)?
        }
    };
    if let Some(d) = &options.data_dir {
        config.server.data_dir = d.clone();
    }
    if let Some(addr) = options.listen {
        config.server.listen = addr;
    }
    if let Some(addr) = options.mqtt_listen {
        config
            .mqtt
            .as_mut()
            .context("--mqtt-listen: the demo config has no [mqtt]")?
            .listen = addr;
    }
    check_videos(&config, &xl_detect::cache_dir())?;
    Ok(config)
}

/// The built-in demo with its camera files in `cache` and its data in `data_dir`.
fn builtin_config(cache: &Path, data_dir: PathBuf) -> anyhow::Result<Config> {
    let mut config = Config::parse(BUILTIN_CONFIG)
        .map_err(|e| anyhow::anyhow!("the built-in demo config: {e:#}"))?;
    config.server.data_dir = data_dir;
    for c in &mut config.cameras {
        if let Some(file) = &mut c.file {
            let in_cache = file.strip_prefix(REPO_CACHE_LINK).with_context(|| {
                format!(
                    "the built-in demo config: camera {}'s file {} is not under {REPO_CACHE_LINK}/ \
                     (the asset cache), so the demo cannot find it outside the repository",
                    c.id,
                    file.display()
                )
            })?;
            *file = cache.join(in_cache);
        }
    }
    Ok(config)
}

/// The built-in demo's data directory: `$XDG_DATA_HOME/xueliang/demo`, by default
/// `~/.local/share/xueliang/demo`.
pub fn default_data_dir() -> anyhow::Result<PathBuf> {
    data_dir_from(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))
}

/// [`default_data_dir`] given `XDG_DATA_HOME` and `HOME`.
fn data_dir_from(
    xdg_data_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> anyhow::Result<PathBuf> {
    // The XDG spec says to ignore a relative XDG_DATA_HOME.
    let xdg = xdg_data_home.map(PathBuf::from).filter(|d| d.is_absolute());
    let home = home.map(PathBuf::from).filter(|d| d.is_absolute());
    let base = match (xdg, home) {
        (Some(d), _) => d,
        (None, Some(h)) => h.join(".local/share"),
        (None, None) => bail!(
            "neither XDG_DATA_HOME nor HOME is set: say where the demo keeps its data with \
             --data-dir DIR"
        ),
    };
    Ok(base.join("xueliang").join("demo"))
}

/// Fails unless every camera's video file exists, naming the first missing one and how to
/// fetch it into `cache`.
fn check_videos(config: &Config, cache: &Path) -> anyhow::Result<()> {
    for c in &config.cameras {
        if let Some(file) = &c.file
            && !file.is_file()
        {
            bail!(
                "camera {}: video {} not found. The demo's video (vtest.avi) comes from the \
                 asset cache ($XUELIANG_CACHE, here {}): fetch it from a checkout of the \
                 repository with `XUELIANG_CACHE={} scripts/fetch-media` (or `scripts/setup`)",
                c.id,
                file.display(),
                cache.display(),
                cache.display()
            );
        }
    }
    Ok(())
}

/// Runs the demo until Ctrl-C.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let mqtt = config
        .mqtt
        .clone()
        .filter(|m| m.embedded)
        .context("the demo config needs [mqtt] embedded = true (the gate simulator uses it)")?;
    let community = config
        .gates
        .first()
        .map(|g| g.community.clone())
        .context("the demo config has no [[gates]]")?;
    let gates = Gates::from_config(&config)?;
    let data_dir = config.server.data_dir.clone();
    let hub = Hub::start(config).await?;
    create_accounts(&hub.store, &community).await?;
    let stop = CancellationToken::new();
    let host = match mqtt.listen.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        ip => ip.to_string(),
    };
    let sim = tokio::spawn(simulate(host, mqtt.listen.port(), gates, stop.clone()));
    println!();
    println!("  雪亮 Xueliang demo: http://{}/", hub.addr);
    println!();
    println!("  accounts (demo only):");
    for (name, password, role) in ACCOUNTS {
        println!("    {name:<9} {password:<18} {role}");
    }
    println!();
    println!("  A gate simulator publishes Hikvision and Dahua events to the embedded broker");
    println!("  mqtt://{}.", mqtt.listen);
    println!();
    println!(
        "  Data (database, snapshots, API token): {}",
        data_dir.display()
    );
    println!("  Ctrl-C stops everything.");
    println!();
    let result = hub.run_until_signal().await;
    stop.cancel();
    let _ = sim.await;
    result
}

/// Creates the demo accounts that do not exist yet (the property manager manages the demo
/// community).
async fn create_accounts(store: &Store, community: &CommunityId) -> anyhow::Result<()> {
    for (name, password, role) in ACCOUNTS {
        if store.user(name).await?.is_some() {
            continue;
        }
        let communities = if role == Role::Property {
            vec![community.clone()]
        } else {
            Vec::new()
        };
        crate::users::add(store, name, password, role, communities, "xueliang demo").await?;
    }
    Ok(())
}

/// The simulated devices: the first Hikvision gate and the first Dahua gate of the config
/// that take MQTT, and the `[[mqtt.accounts]]` login each uses (none: anonymous).
struct Gates {
    hikvision: Option<String>,
    dahua_serial: Option<String>,
    hikvision_login: Option<(String, String)>,
    dahua_login: Option<(String, String)>,
}

impl Gates {
    fn from_config(config: &Config) -> anyhow::Result<Gates> {
        let find = |fw: &str| {
            config
                .gates
                .iter()
                .find(|g| g.firmware == fw && g.takes_mqtt())
        };
        let login = |gate: Option<&xl_gates::GateConfig>| -> Option<(String, String)> {
            let gate = gate?;
            let accounts = &config.mqtt.as_ref()?.accounts;
            accounts
                .iter()
                .find(|a| a.gates.iter().any(|g| g == gate.id.as_str()))
                .or_else(|| accounts.iter().find(|a| a.gates.iter().any(|g| g == "*")))
                .map(|a| (a.username.clone(), a.password.clone()))
        };
        let (hik, dahua) = (find("hikvision-isapi"), find("dahua"));
        Ok(Gates {
            hikvision: hik.map(|g| g.id.to_string()),
            dahua_serial: dahua.map(|g| g.device.clone().unwrap_or_else(|| g.id.to_string())),
            hikvision_login: login(hik),
            dahua_login: login(dahua),
        })
    }
}

/// Which simulated device sends a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Device {
    Hikvision,
    Dahua,
}

/// One payload to publish.
struct Message {
    device: Device,
    topic: String,
    payload: String,
}

/// What the simulator publishes at `step` (one step every few seconds): grants most of the
/// time, a denial every 5th step, a forced door every 30th.
fn message(gates: &Gates, step: u64) -> Option<Message> {
    let now = jiff::Timestamp::now();
    let hikvision = |minor: u32| -> Option<Message> {
        let gate = gates.hikvision.as_ref()?;
        let mut v: serde_json::Value = serde_json::from_str(HIKVISION_FACE_PASS).ok()?;
        v["dateTime"] = now
            .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)))
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
            .into();
        let ev = &mut v["AccessControllerEvent"];
        ev["subEventType"] = minor.into();
        ev["serialNo"] = (10_000 + step).into();
        if minor != 0x4b {
            // not a face pass: no person recognised
            for k in ["name", "employeeNoString", "FaceRect"] {
                ev.as_object_mut()?.remove(k);
            }
        }
        Some(Message {
            device: Device::Hikvision,
            topic: format!("demo/hikvision/{gate}/event"),
            payload: v.to_string(),
        })
    };
    let dahua = |code: &str, status: u8| -> Option<Message> {
        let serial = gates.dahua_serial.as_ref()?;
        let mut v: serde_json::Value = serde_json::from_str(DAHUA_VTO_OPEN).ok()?;
        v["serialNumber"] = serial.as_str().into();
        let data = &mut v["Data"];
        data["RecNo"] = (50_000 + step).into();
        data["UTC"] = now.as_second().into();
        data["LocaleTime"] = now
            .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)))
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string()
            .into();
        data["Method"] = 15.into(); // face
        data["Status"] = status.into();
        if status == 0 {
            data["ErrorCode"] = 16.into(); // unauthorised
        }
        Some(Message {
            device: Device::Dahua,
            topic: format!("DahuaVTO/{code}/Event"),
            payload: v.to_string(),
        })
    };
    match step {
        s if s % 30 == 29 => hikvision(0x1b), // door abnormally open: forced
        s if s % 60 == 44 => dahua("BreakIn", 1),
        s if s % 5 == 4 => {
            if s % 2 == 0 {
                hikvision(0x06) // no permission
            } else {
                dahua("AccessControl", 0)
            }
        }
        s if s % 2 == 0 => hikvision(0x4b), // face pass
        _ => dahua("AccessControl", 1),
    }
}

/// One simulated device's MQTT connection, logged in with its account.
fn device_client(
    host: &str,
    port: u16,
    client_id: &str,
    login: Option<&(String, String)>,
) -> (AsyncClient, tokio::task::JoinHandle<()>) {
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_keep_alive(Duration::from_secs(15));
    if let Some((user, password)) = login {
        opts.set_credentials(user.clone(), password.clone());
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let who = client_id.to_owned();
    let events = tokio::spawn(async move {
        loop {
            if let Err(e) = eventloop.poll().await {
                debug!(client_id = %who, error = %e, "gate simulator: broker connection");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    (client, events)
}

/// Publishes one message every 4 seconds until `stop`.
async fn simulate(host: String, port: u16, gates: Gates, stop: CancellationToken) {
    let (hikvision, hik_events) = device_client(
        &host,
        port,
        "demo-gate-hikvision",
        gates.hikvision_login.as_ref(),
    );
    let (dahua, dahua_events) =
        device_client(&host, port, "demo-gate-dahua", gates.dahua_login.as_ref());
    info!("gate simulator started");
    let mut tick = tokio::time::interval(Duration::from_secs(4));
    for step in 0.. {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        let Some(m) = message(&gates, step) else {
            continue;
        };
        let client = match m.device {
            Device::Hikvision => &hikvision,
            Device::Dahua => &dahua,
        };
        if let Err(e) = client
            .publish(m.topic, QoS::AtLeastOnce, false, m.payload)
            .await
        {
            warn!(error = %e, "gate simulator cannot publish");
        }
    }
    hik_events.abort();
    dahua_events.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo's devices log in as their gates' accounts (an anonymous client is refused).
    #[test]
    fn each_simulated_device_logs_in_with_its_gates_account() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/demo.toml");
        let config = Config::load(&path).unwrap();
        let gates = Gates::from_config(&config).unwrap();
        assert_eq!(gates.hikvision.as_deref(), Some("xingfu-east-door"));
        assert_eq!(
            gates.hikvision_login.as_ref().map(|l| l.0.as_str()),
            Some("demo-hikvision-bridge")
        );
        assert_eq!(
            gates.dahua_login.as_ref().map(|l| l.0.as_str()),
            Some("demo-dahua-vto")
        );
    }

    /// Outside the repository the built-in demo reads its video from the asset cache and keeps
    /// its data where it is told.
    #[test]
    fn the_builtin_demo_reads_its_video_from_the_asset_cache() {
        let config = builtin_config(Path::new("/cache"), PathBuf::from("/data")).unwrap();
        assert_eq!(config.server.data_dir, Path::new("/data"));
        assert_eq!(config.cameras.len(), 4);
        for c in &config.cameras {
            assert_eq!(
                c.file.as_deref(),
                Some(Path::new("/cache/media/vtest.avi")),
                "{}",
                c.id
            );
        }
        // The repository's file, as `--config config/demo.toml` reads it, is the same demo.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/demo.toml");
        let from_file = Config::load(&path).unwrap();
        assert_eq!(from_file.cameras.len(), config.cameras.len());
        assert_eq!(from_file.server.listen, config.server.listen);
    }

    #[test]
    fn a_missing_video_names_the_path_looked_at_and_the_fetch_command() {
        let cache =
            std::env::temp_dir().join(format!("xl-demo-nocache-{:x}", rand::random::<u64>()));
        let config = builtin_config(&cache, PathBuf::from("/data")).unwrap();
        let e = format!("{:#}", check_videos(&config, &cache).unwrap_err());
        let want = cache.join("media/vtest.avi");
        assert!(e.contains(&want.display().to_string()), "{e}");
        assert!(e.contains("scripts/fetch-media"), "{e}");
    }

    #[test]
    fn the_data_directory_follows_xdg() {
        let dir = |xdg: Option<&str>, home: Option<&str>| {
            data_dir_from(xdg.map(Into::into), home.map(Into::into)).map_err(|e| e.to_string())
        };
        let want = |p: &str| Ok(PathBuf::from(p));
        assert_eq!(dir(Some("/x"), Some("/h")), want("/x/xueliang/demo"));
        assert_eq!(dir(None, Some("/h")), want("/h/.local/share/xueliang/demo"));
        assert_eq!(
            dir(Some("rel"), Some("/h")),
            want("/h/.local/share/xueliang/demo")
        );
        assert!(dir(None, None).unwrap_err().contains("--data-dir"));
    }

    #[test]
    fn the_simulated_payloads_decode_to_the_events_they_stand_for() {
        use xl_core::{GateEventKind as K, PayloadMeta};
        let gates = Gates {
            hikvision: Some("east".into()),
            dahua_serial: Some("SN1".into()),
            hikvision_login: None,
            dahua_login: None,
        };
        let mut kinds = std::collections::HashMap::new();
        for step in 0..60 {
            let m = message(&gates, step).unwrap();
            let meta = PayloadMeta::new(jiff::Timestamp::now()).with_topic(&m.topic);
            assert_eq!(m.device == Device::Dahua, m.topic.starts_with("DahuaVTO"));
            let events = if m.topic.starts_with("DahuaVTO") {
                xl_fw_dahua::decode(&meta, m.payload.as_bytes())
            } else {
                xl_fw_hikvision::decode(&meta, m.payload.as_bytes())
            }
            .unwrap_or_else(|e| panic!("step {step}: {e}"));
            assert_eq!(events.len(), 1, "step {step}");
            *kinds.entry(events[0].kind).or_insert(0) += 1;
        }
        // Per 60 steps: forced at 29 and 59 (Hikvision) and 44 (Dahua BreakIn); a denial on
        // the other steps 4, 9, ..., 54; grants on the rest.
        assert_eq!(kinds[&K::DoorForcedOpen], 3, "{kinds:?}");
        assert_eq!(kinds[&K::AccessDenied], 9, "{kinds:?}");
        assert_eq!(kinds[&K::AccessGranted], 48, "{kinds:?}");
    }
}
