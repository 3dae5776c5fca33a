//! MQTT out (rumqttc): alerts, camera status and hub status on the broker.
//!
//! - Every outbox entry is published QoS 1 on `{prefix}/alerts/{community}/{kind}` (kind as
//!   in `AlertKind::as_str`, e.g. `xueliang/alerts/xingfu/gate.forced_open`), payload the
//!   `OutboxEntry` JSON. The cursor `mqtt` advances only past entries the broker has
//!   acknowledged (PUBACK), in seq order. On a lost connection everything unacknowledged is
//!   forgotten (clean session) and republished from the cursor: at least once.
//! - [`MqttOut::publish_camera_status`]: retained QoS 1 on `{prefix}/cameras/{id}/status`.
//!   The latest status of each camera is kept and published again after every reconnect
//!   (a broker without persistence forgets retained messages when it restarts).
//! - Hub status: retained `{"state":"online",...}` on `{prefix}/status` after each connect;
//!   the last will registered with the connection is the retained `{"state":"offline"}`,
//!   and a clean shutdown publishes `{"state":"offline",...}` itself before DISCONNECT.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, Transport,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, trace, warn};
use xl_core::mqtt::{BrokerAddr, has_pem_certificate};
use xl_core::{CameraId, OutboxEntry};

use crate::backoff::{Backoff, jittered, secs, sleep_or_shutdown};
use crate::{NotifyError, Outbox};

/// The cursor name of MQTT out in the outbox.
pub const CURSOR: &str = "mqtt";

/// Camera statuses handed to the client at a time, beside the alerts.
const STATUS_BURST: usize = 64;

/// `[mqtt_out]`: the broker alerts and statuses are published to.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttOutConfig {
    /// `mqtt://host[:port]` (default port 1883) or `mqtts://host[:port]` (TLS, default port
    /// 8883, the system's CA certificates unless `ca_file` is set). Credentials in the URL
    /// are not accepted: use `username` and `password`.
    pub url: String,
    /// Default none (anonymous).
    #[serde(default)]
    pub username: Option<String>,
    /// Never logged.
    #[serde(default)]
    pub password: Option<String>,
    /// With `mqtts://`: a PEM file with the CA certificate of a private broker. Default none.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client id. It must differ from the gate ingest's (`[mqtt] client_id`), or the broker
    /// drops one connection for the other. Default `xueliang-hub-out`.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// First level of every topic. Give each hub its own when several share a broker.
    /// Default `xueliang`.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// MQTT keep-alive. Default 30.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
    /// First reconnect delay; doubles up to `backoff_max_secs`. Default 0.5.
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_secs: f64,
    /// Default 30.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_secs: f64,
    /// How often the outbox is read when nothing woke the publisher. Default 5.
    #[serde(default = "default_poll_interval")]
    pub poll_interval_secs: f64,
    /// Alerts published and not yet acknowledged, at most. Default 100.
    #[serde(default = "default_max_inflight")]
    pub max_inflight: u16,
}

fn default_client_id() -> String {
    "xueliang-hub-out".into()
}
fn default_prefix() -> String {
    "xueliang".into()
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
fn default_poll_interval() -> f64 {
    5.0
}
fn default_max_inflight() -> u16 {
    100
}

impl fmt::Debug for MqttOutConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttOutConfig")
            .field("url", &crate::redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("client_id", &self.client_id)
            .field("topic_prefix", &self.topic_prefix)
            .finish_non_exhaustive()
    }
}

impl MqttOutConfig {
    /// A configuration for the broker at `url` with every other field at its default.
    pub fn new(url: impl Into<String>) -> MqttOutConfig {
        MqttOutConfig {
            url: url.into(),
            username: None,
            password: None,
            ca_file: None,
            client_id: default_client_id(),
            topic_prefix: default_prefix(),
            keep_alive_secs: default_keep_alive(),
            backoff_initial_secs: default_backoff_initial(),
            backoff_max_secs: default_backoff_max(),
            poll_interval_secs: default_poll_interval(),
            max_inflight: default_max_inflight(),
        }
    }

    fn err(key: &str, message: impl Into<String>) -> NotifyError {
        NotifyError::Config {
            key: format!("mqtt_out.{key}"),
            message: message.into(),
        }
    }

    fn broker(&self) -> Result<BrokerAddr, NotifyError> {
        BrokerAddr::parse(&self.url).map_err(|why| Self::err("url", why))
    }

    /// Checks the config without connecting.
    pub fn validate(&self) -> Result<(), NotifyError> {
        let b = self.broker()?;
        if self.ca_file.is_some() && !b.tls {
            return Err(Self::err("ca_file", "is only used with mqtts://"));
        }
        let p = &self.topic_prefix;
        if p.is_empty() || p.contains(['+', '#', '\0']) || p.starts_with('$') || p.ends_with('/') {
            return Err(Self::err(
                "topic_prefix",
                format!("{p:?} is not a topic prefix: no '+', '#', leading '$' or trailing '/'"),
            ));
        }
        if self.client_id.is_empty() {
            return Err(Self::err("client_id", "must not be empty"));
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.backoff_initial_secs) {
            return Err(Self::err("backoff_initial_secs", "must be more than 0"));
        }
        if !positive(self.backoff_max_secs) || self.backoff_max_secs < self.backoff_initial_secs {
            return Err(Self::err(
                "backoff_max_secs",
                "must be at least backoff_initial_secs",
            ));
        }
        if !positive(self.poll_interval_secs) {
            return Err(Self::err("poll_interval_secs", "must be more than 0"));
        }
        if self.max_inflight == 0 || self.max_inflight > 10_000 {
            return Err(Self::err("max_inflight", "must be 1 to 10000"));
        }
        Ok(())
    }

    fn ca_pem(&self) -> Result<Option<Vec<u8>>, NotifyError> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        let pem = std::fs::read(path).map_err(|e| {
            Self::err(
                "ca_file",
                format!("{}: cannot be read: {e}", path.display()),
            )
        })?;
        if !has_pem_certificate(&pem) {
            return Err(Self::err(
                "ca_file",
                format!("{}: no PEM certificate in it", path.display()),
            ));
        }
        Ok(Some(pem))
    }

    /// `{prefix}/alerts/{community}/{kind}`.
    pub fn alert_topic(&self, entry: &OutboxEntry) -> String {
        format!(
            "{}/alerts/{}/{}",
            self.topic_prefix,
            entry.alert.community,
            entry.alert.kind.as_str()
        )
    }

    /// `{prefix}/cameras/{id}/status`.
    pub fn camera_topic(&self, camera: &CameraId) -> String {
        format!("{}/cameras/{camera}/status", self.topic_prefix)
    }

    /// `{prefix}/status`.
    pub fn status_topic(&self) -> String {
        format!("{}/status", self.topic_prefix)
    }

    /// Requests the client may have queued: alerts, a burst of camera statuses, and the
    /// hub's own status messages.
    fn channel_capacity(&self) -> usize {
        usize::from(self.max_inflight) + STATUS_BURST + 8
    }

    fn options(&self) -> Result<MqttOptions, NotifyError> {
        let broker = self.broker()?;
        let mut o = MqttOptions::new(self.client_id.clone(), broker.host, broker.port);
        let cap = u16::try_from(self.channel_capacity()).unwrap_or(u16::MAX);
        o.set_clean_session(true)
            .set_keep_alive(Duration::from_secs(self.keep_alive_secs.max(5)))
            .set_inflight(cap)
            .set_last_will(LastWill::new(
                self.status_topic(),
                r#"{"state":"offline"}"#,
                QoS::AtLeastOnce,
                true,
            ));
        if let Some(user) = &self.username {
            o.set_credentials(user.clone(), self.password.clone().unwrap_or_default());
        }
        if broker.tls {
            let tls = match self.ca_pem()? {
                Some(ca) => rumqttc::TlsConfiguration::SimpleNative {
                    ca,
                    client_auth: None,
                },
                None => rumqttc::TlsConfiguration::Native,
            };
            o.set_transport(Transport::tls_with_config(tls));
        }
        Ok(o)
    }
}

/// MQTT out's counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttOutStats {
    /// Connected to the broker now.
    pub connected: bool,
    /// Connections made (the first included).
    pub connections: u64,
    /// Alerts the broker acknowledged (republished ones count again).
    pub alerts_acked: u64,
    /// Camera statuses the broker acknowledged.
    pub camera_statuses_acked: u64,
    /// The last seq acknowledged with all before it.
    pub cursor: i64,
    /// The last committed seq known minus `cursor`.
    pub lag: i64,
}

#[derive(Default)]
struct Counters {
    connected: AtomicBool,
    connections: AtomicU64,
    alerts_acked: AtomicU64,
    camera_statuses_acked: AtomicU64,
    cursor: AtomicI64,
    committed: AtomicI64,
}

/// Latest status per camera, and which are still to be published.
#[derive(Default)]
struct StatusBoard {
    latest: BTreeMap<CameraId, Vec<u8>>,
    dirty: BTreeSet<CameraId>,
}

struct Shared {
    counters: Counters,
    statuses: Mutex<StatusBoard>,
    wake: Notify,
}

/// The handle of a running MQTT out: camera status and stats. Cheap to clone.
#[derive(Clone)]
pub struct MqttOut {
    shared: Arc<Shared>,
}

impl MqttOut {
    /// Validates `cfg` and spawns the publisher on the current tokio runtime. It reads the
    /// outbox from the cursor `mqtt`, is woken by `committed` (the last committed seq) or
    /// every `poll_interval_secs`, reconnects with backoff, and on `shutdown` publishes the
    /// offline status and disconnects. Aborting the returned task instead drops the
    /// connection without DISCONNECT: the broker then publishes the last will.
    pub fn start<O: Outbox>(
        cfg: MqttOutConfig,
        outbox: Arc<O>,
        committed: watch::Receiver<i64>,
        shutdown: CancellationToken,
    ) -> Result<(MqttOut, JoinHandle<()>), NotifyError> {
        cfg.validate()?;
        let opts = cfg.options()?;
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            statuses: Mutex::new(StatusBoard::default()),
            wake: Notify::new(),
        });
        let broker = cfg.broker()?;
        let span = info_span!("mqtt_out", client_id = %cfg.client_id, broker = %broker);
        let (client, eventloop) = AsyncClient::new(opts, cfg.channel_capacity());
        let publisher = Publisher {
            broker: broker.to_string(),
            cfg,
            client,
            shared: Arc::clone(&shared),
            conn: Connection::new(0),
            cursor: 0,
            camera_submitted: 0,
        };
        let task = tokio::spawn(
            publisher
                .run(eventloop, outbox, committed, shutdown)
                .instrument(span),
        );
        Ok((MqttOut { shared }, task))
    }

    /// Publishes `status` (as JSON) retained QoS 1 on `{prefix}/cameras/{camera}/status`,
    /// now if connected, else after connecting. Only the latest status of a camera is kept.
    pub fn publish_camera_status(
        &self,
        camera: &CameraId,
        status: &impl Serialize,
    ) -> Result<(), NotifyError> {
        let payload = serde_json::to_vec(status).map_err(|source| NotifyError::Encode {
            what: "a camera status",
            source,
        })?;
        if let Ok(mut board) = self.shared.statuses.lock() {
            board.latest.insert(camera.clone(), payload);
            board.dirty.insert(camera.clone());
        }
        self.shared.wake.notify_one();
        Ok(())
    }

    /// The counters now.
    pub fn stats(&self) -> MqttOutStats {
        let c = &self.shared.counters;
        let cursor = c.cursor.load(Relaxed);
        MqttOutStats {
            connected: c.connected.load(Relaxed),
            connections: c.connections.load(Relaxed),
            alerts_acked: c.alerts_acked.load(Relaxed),
            camera_statuses_acked: c.camera_statuses_acked.load(Relaxed),
            cursor,
            lag: (c.committed.load(Relaxed) - cursor).max(0),
        }
    }
}

/// What a publish request was, to know what its PUBACK acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Alert(i64),
    Camera,
    HubStatus,
}

/// What is in flight on the current connection; forgotten when it is lost.
struct Connection {
    /// Requests handed to the client, not yet written (their packet id comes then).
    submitted: VecDeque<Slot>,
    /// A request rumqttc holds back because its packet id is still in flight.
    collided: Option<(u16, Slot)>,
    /// Written, waiting for PUBACK, by packet id.
    awaiting: HashMap<u16, Slot>,
    /// Alerts published, in seq order, with whether they are acknowledged.
    alerts: VecDeque<(i64, bool)>,
    /// The last seq handed to the client.
    next_after: i64,
}

impl Connection {
    fn new(cursor: i64) -> Connection {
        Connection {
            submitted: VecDeque::new(),
            collided: None,
            awaiting: HashMap::new(),
            alerts: VecDeque::new(),
            next_after: cursor,
        }
    }
}

struct Publisher {
    cfg: MqttOutConfig,
    broker: String,
    client: AsyncClient,
    shared: Arc<Shared>,
    conn: Connection,
    /// The last seq acknowledged together with every seq before it.
    cursor: i64,
    /// Camera statuses in `conn.submitted`.
    camera_submitted: usize,
}

impl Publisher {
    async fn run<O: Outbox>(
        mut self,
        mut eventloop: EventLoop,
        outbox: Arc<O>,
        mut committed: watch::Receiver<i64>,
        shutdown: CancellationToken,
    ) {
        let mut backoff = Backoff::new(
            secs(self.cfg.backoff_initial_secs),
            secs(self.cfg.backoff_max_secs),
        );
        self.cursor = loop {
            match outbox.cursor(CURSOR).await {
                Ok(c) => break c,
                Err(e) => {
                    warn!(error = %e, "cannot read the MQTT cursor; retrying");
                    if sleep_or_shutdown(jittered(&mut backoff), &shutdown).await {
                        return;
                    }
                }
            }
        };
        backoff.reset();
        self.conn = Connection::new(self.cursor);
        self.shared.counters.cursor.store(self.cursor, Relaxed);
        let mut stored = self.cursor;
        let mut connected = false;
        let mut want_fetch = true;
        let mut watch_open = true;
        let mut tick = tokio::time::interval(secs(self.cfg.poll_interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Not at once: rumqttc's poll is not cancel-safe while it connects, and an immediate
        // tick winning the select below dropped the first connection after its CONNECT.
        tick.reset();
        let window = usize::from(self.cfg.max_inflight);
        loop {
            if stored != self.cursor {
                stored = store_cursor(&*outbox, self.cursor, stored).await;
            }
            if connected {
                if want_fetch && self.conn.alerts.len() < window {
                    self.shared
                        .counters
                        .committed
                        .fetch_max(*committed.borrow_and_update(), Relaxed);
                    want_fetch = self.fetch_and_publish(&*outbox, window).await;
                }
                self.publish_camera_statuses();
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                ev = eventloop.poll() => match ev {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        connected = true;
                        want_fetch = true;
                        backoff.reset();
                        self.on_connected();
                        info!(session_present = ack.session_present, cursor = self.cursor, "MQTT out connected");
                    }
                    Ok(ev) => self.on_event(ev),
                    Err(e) => {
                        // rumqttc keeps unacknowledged requests for the next connection,
                        // but with a clean session it drops them on CONNACK: everything after
                        // the cursor is published again.
                        connected = false;
                        self.shared.counters.connected.store(false, Relaxed);
                        self.conn = Connection::new(self.cursor);
                        self.camera_submitted = 0;
                        let delay = jittered(&mut backoff);
                        warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "MQTT out connection lost");
                        if sleep_or_shutdown(delay, &shutdown).await {
                            break;
                        }
                    }
                },
                r = committed.changed(), if watch_open => {
                    if r.is_err() {
                        // The hub dropped the sender: the poll is all that is left.
                        watch_open = false;
                    } else {
                        want_fetch = true;
                    }
                }
                _ = tick.tick() => want_fetch = true,
                () = self.shared.wake.notified() => {}
            }
        }
        if connected {
            self.shutdown_cleanly(&mut eventloop).await;
        }
        if stored != self.cursor {
            store_cursor(&*outbox, self.cursor, stored).await;
        }
        self.shared.counters.connected.store(false, Relaxed);
        info!(cursor = self.cursor, "MQTT out stopped");
    }

    /// Reads entries after the last one published and publishes them; true when there may
    /// be more to read.
    async fn fetch_and_publish<O: Outbox>(&mut self, outbox: &O, window: usize) -> bool {
        let room = window - self.conn.alerts.len();
        let entries = match outbox
            .after(
                self.conn.next_after,
                u32::try_from(room).unwrap_or(u32::MAX),
            )
            .await
        {
            Ok(e) => e,
            Err(e) => {
                // Read again at the next poll tick.
                warn!(error = %e, after = self.conn.next_after, "cannot read the outbox");
                return false;
            }
        };
        let full = entries.len() >= room;
        for entry in entries {
            self.shared.counters.committed.fetch_max(entry.seq, Relaxed);
            let payload = match serde_json::to_vec(&entry) {
                Ok(p) => p,
                Err(e) => {
                    // Cannot happen for these types; skipping would break at-least-once,
                    // so stop here and try again later.
                    warn!(seq = entry.seq, error = %e, "cannot encode an outbox entry");
                    return false;
                }
            };
            let topic = self.cfg.alert_topic(&entry);
            if let Err(e) = self
                .client
                .try_publish(&topic, QoS::AtLeastOnce, false, payload)
            {
                debug!(seq = entry.seq, error = %e, "MQTT client queue full; publishing later");
                return true;
            }
            trace!(seq = entry.seq, %topic, "alert published");
            self.conn.submitted.push_back(Slot::Alert(entry.seq));
            self.conn.alerts.push_back((entry.seq, false));
            self.conn.next_after = entry.seq;
        }
        full
    }

    fn on_connected(&mut self) {
        let c = &self.shared.counters;
        c.connected.store(true, Relaxed);
        c.connections.fetch_add(1, Relaxed);
        self.conn = Connection::new(self.cursor);
        self.camera_submitted = 0;
        self.publish_hub_status("online");
        if let Ok(mut board) = self.shared.statuses.lock() {
            let all: Vec<CameraId> = board.latest.keys().cloned().collect();
            board.dirty.extend(all);
        }
    }

    fn publish_hub_status(&mut self, state: &str) {
        let payload = serde_json::json!({
            "state": state,
            "at": jiff::Timestamp::now(),
            "client_id": self.cfg.client_id,
        })
        .to_string();
        match self
            .client
            .try_publish(self.cfg.status_topic(), QoS::AtLeastOnce, true, payload)
        {
            Ok(()) => self.conn.submitted.push_back(Slot::HubStatus),
            Err(e) => {
                warn!(state, error = %NotifyError::Mqtt { broker: self.broker.clone(), message: e.to_string() }, "cannot publish the hub status")
            }
        }
    }

    /// Hands pending camera statuses to the client, a burst at a time.
    fn publish_camera_statuses(&mut self) {
        let Ok(mut board) = self.shared.statuses.lock() else {
            return;
        };
        while self.camera_submitted < STATUS_BURST {
            let Some(camera) = board.dirty.pop_first() else {
                break;
            };
            let Some(payload) = board.latest.get(&camera).cloned() else {
                continue;
            };
            match self.client.try_publish(
                self.cfg.camera_topic(&camera),
                QoS::AtLeastOnce,
                true,
                payload,
            ) {
                Ok(()) => {
                    self.conn.submitted.push_back(Slot::Camera);
                    self.camera_submitted += 1;
                }
                Err(e) => {
                    debug!(camera = %camera, error = %e, "MQTT client queue full; publishing later");
                    board.dirty.insert(camera);
                    break;
                }
            }
        }
    }

    /// Keeps track of what was written and what the broker acknowledged.
    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                let slot = match self.conn.collided.take() {
                    Some((p, slot)) if p == pkid => Some(slot),
                    other => {
                        self.conn.collided = other;
                        self.conn.submitted.pop_front()
                    }
                };
                if let Some(slot) = slot {
                    if slot == Slot::Camera {
                        self.camera_submitted = self.camera_submitted.saturating_sub(1);
                    }
                    self.conn.awaiting.insert(pkid, slot);
                }
            }
            Event::Outgoing(Outgoing::AwaitAck(pkid)) => {
                // rumqttc holds this publish until `pkid` is acknowledged, then writes it.
                if let Some(slot) = self.conn.submitted.pop_front() {
                    if slot == Slot::Camera {
                        self.camera_submitted = self.camera_submitted.saturating_sub(1);
                    }
                    self.conn.collided = Some((pkid, slot));
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => match self.conn.awaiting.remove(&ack.pkid) {
                Some(Slot::Alert(seq)) => self.on_alert_acked(seq),
                Some(Slot::Camera) => {
                    self.shared
                        .counters
                        .camera_statuses_acked
                        .fetch_add(1, Relaxed);
                }
                Some(Slot::HubStatus) => trace!("hub status acknowledged"),
                None => trace!(pkid = ack.pkid, "PUBACK of an unknown packet id"),
            },
            _ => {}
        }
    }

    fn on_alert_acked(&mut self, seq: i64) {
        let c = &self.shared.counters;
        c.alerts_acked.fetch_add(1, Relaxed);
        if let Ok(i) = self.conn.alerts.binary_search_by_key(&seq, |(s, _)| *s) {
            self.conn.alerts[i].1 = true;
        }
        while let Some(&(s, true)) = self.conn.alerts.front() {
            self.conn.alerts.pop_front();
            self.cursor = s;
        }
        c.cursor.store(self.cursor, Relaxed);
    }

    /// Publishes the offline status and disconnects, within 2 seconds.
    async fn shutdown_cleanly(&mut self, eventloop: &mut EventLoop) {
        self.publish_hub_status("offline");
        if self.client.try_disconnect().is_err() {
            return;
        }
        let done = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(ev) => self.on_event(ev),
                }
            }
        })
        .await;
        if done.is_err() {
            warn!("MQTT out: no clean DISCONNECT within 2 s");
        }
    }
}

async fn store_cursor<O: Outbox>(outbox: &O, cursor: i64, stored: i64) -> i64 {
    match outbox.set_cursor(CURSOR, cursor).await {
        Ok(()) => cursor,
        Err(e) => {
            warn!(error = %e, cursor, "cannot store the MQTT cursor");
            stored
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Result<MqttOutConfig, String> {
        toml::from_str(&format!("url = \"mqtt://127.0.0.1\"\n{extra}")).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_urls_and_topics() {
        let c = cfg("").unwrap();
        c.validate().unwrap();
        assert_eq!(c.client_id, "xueliang-hub-out");
        assert_eq!(
            c.broker().unwrap(),
            BrokerAddr {
                host: "127.0.0.1".into(),
                port: 1883,
                tls: false
            }
        );
        let e = crate::webhook::tests::sample_entry(3);
        assert_eq!(c.alert_topic(&e), "xueliang/alerts/xingfu/gate.forced_open");
        assert_eq!(
            c.camera_topic(&CameraId::new("cam-1").unwrap()),
            "xueliang/cameras/cam-1/status"
        );
        assert_eq!(c.status_topic(), "xueliang/status");
        let tls: MqttOutConfig = toml::from_str("url = \"mqtts://broker.example\"").unwrap();
        assert_eq!(tls.broker().unwrap().port, 8883);
        assert!(cfg("colour = 1").unwrap_err().contains("colour"));
    }

    #[test]
    fn bad_configs_name_the_key_and_hide_the_password() {
        let bad = [
            ("url = \"mqtt://u:hunter2@h\"", "mqtt_out.url"),
            ("url = \"http://h\"", "mqtt_out.url"),
            ("topic_prefix = \"a/#\"", "mqtt_out.topic_prefix"),
            ("topic_prefix = \"a/\"", "mqtt_out.topic_prefix"),
            ("ca_file = \"/x.pem\"", "mqtt_out.ca_file"),
            ("max_inflight = 0", "mqtt_out.max_inflight"),
        ];
        for (line, key) in bad {
            let text = if line.starts_with("url") {
                line.to_owned()
            } else {
                format!("url = \"mqtt://h\"\n{line}")
            };
            let c: MqttOutConfig = toml::from_str(&text).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{line}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        let c = cfg("username = \"hub\"\npassword = \"hunter2\"").unwrap();
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("hunter2") && dbg.contains("<redacted>"),
            "{dbg}"
        );
    }
}
