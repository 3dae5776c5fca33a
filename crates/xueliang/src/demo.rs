//! `xueliang demo`: the demo community (config/demo.toml) with everything embedded, demo
//! accounts, and a gate simulator publishing real-format Hikvision and Dahua payloads to the
//! embedded broker: grants, denials, and now and then a forced door. The simulated devices log
//! in as real ones must: each with its `[[mqtt.accounts]]` entry, which lets it report for its
//! own gate only.

use std::time::Duration;

use anyhow::Context;
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
    println!("  mqtt://{}; Ctrl-C stops everything.", mqtt.listen);
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
