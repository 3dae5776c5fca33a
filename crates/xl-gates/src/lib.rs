//! Gate transports: payloads from gates over MQTT (rumqttc; an external broker or the embedded
//! rumqttd) and HTTP push (Hikvision "HTTP listening", ZKTeco ADMS), through the firmware
//! adapters, into durable canonical gate events.
//!
//! ```text
//! broker --QoS 1, persistent session--> mqtt::run --+
//! gate --MQTT--> embedded broker front (broker.rs) --+  (rumqttd behind it acks once stored)
//! device --HTTP POST--> http::push_router ----------+--> Ingest::prepare (adapter, gate, dedup)
//!                                                           |
//!                          gate-writer thread <-------------+ (group commit, fsync)
//!                                |--> events.jsonl / dead-letters.jsonl / evidence/
//!                                +--> completion: MQTT PUBACK, HTTP 200; stats; subscribers
//! ```
//!
//! Invariants: a payload is acknowledged only after its events or its dead letter are durable;
//! nothing a device sends panics or stops ingest (bad payloads become dead letters); no
//! payload or secret is logged above TRACE.

pub mod adapters;
#[cfg(feature = "embedded-broker")]
mod broker;
pub mod config;
pub mod dedup;
pub mod http;
pub mod ingest;
pub mod journal;
pub mod mqtt;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;
use xl_core::ErrorKind;
use xl_core::clock::{Clocks, RealClocks};
use xl_core::gate_status::GateRegistry;

#[cfg(feature = "embedded-broker")]
pub use broker::is_rumqttd_disconnect_noise;
pub use config::{GateConfig, GateFrom, GatesConfig, IngestConfig, MqttConfig, SubscriptionConfig};
pub use ingest::{GateChanges, GateHint, Incoming, Ingest, Ingested};
pub use journal::{
    DeadLetter, GateEventSink, JsonlJournal, Record, SinkError, StoredGateEvent, TransportKind,
};
pub use mqtt::MqttStatus;
pub use writer::Outcome;

/// Without the embedded broker there is no rumqttd whose lines need dropping.
#[cfg(not(feature = "embedded-broker"))]
pub fn is_rumqttd_disconnect_noise(_: &tracing::Metadata<'_>) -> bool {
    false
}

/// Why the gate transports could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatesError {
    #[error("gates config: {0}")]
    Config(String),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("embedded MQTT broker: {0}")]
    Broker(String),
    #[error("cannot start the gate writer thread: {0}")]
    Thread(std::io::Error),
}

impl GatesError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            GatesError::Config(_) => ErrorKind::InvalidInput,
            GatesError::Sink(_) | GatesError::Broker(_) | GatesError::Thread(_) => {
                ErrorKind::Unavailable
            }
        }
    }
}

/// The running gate transports.
pub struct Gates {
    ingest: Arc<Ingest>,
    mqtt: Option<Arc<MqttStatus>>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    journal_dir: PathBuf,
}

impl Gates {
    /// The journal directory under the hub's data directory.
    pub fn journal_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("gates")
    }

    /// Opens the journal in `<data_dir>/gates`, starts the embedded broker when configured, the
    /// MQTT ingest when `[mqtt]` is set, and the health check. Gates go into `registry`.
    /// Payloads are stamped and gate health judged on the system's clocks.
    pub async fn start(
        cfg: GatesConfig,
        data_dir: &Path,
        registry: Arc<GateRegistry>,
    ) -> Result<Gates, GatesError> {
        let dir = Self::journal_dir(data_dir);
        let journal = JsonlJournal::open(&dir)?;
        Self::start_with_sink(cfg, Box::new(journal), dir, registry, RealClocks::shared()).await
    }

    /// Like [`Gates::start`] with another sink (`journal_dir` is only reported) and `clocks`
    /// for `received_at`, the dedup keys' window and the health check (see
    /// [`xl_core::clock`]).
    pub async fn start_with_sink(
        cfg: GatesConfig,
        mut sink: Box<dyn GateEventSink>,
        journal_dir: PathBuf,
        registry: Arc<GateRegistry>,
        clocks: Arc<dyn Clocks>,
    ) -> Result<Gates, GatesError> {
        cfg.validate().map_err(GatesError::Config)?;
        let since = clocks.realtime()
            - jiff::SignedDuration::from_secs(
                i64::try_from(cfg.ingest.dedup_window_secs).unwrap_or(i64::MAX / 2),
            );
        let keys = sink.recent_dedup_keys(since)?;
        let remembered = keys.len();
        let (writer, writer_thread) = writer::Writer::start(sink).map_err(GatesError::Thread)?;
        let ingest = Arc::new(
            Ingest::new(&cfg, registry, writer, keys, clocks).map_err(GatesError::Config)?,
        );
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let mut mqtt_status = None;
        if let Some(m) = &cfg.mqtt {
            let status = Arc::new(MqttStatus::default());
            if m.embedded {
                // Gates publish to the hub itself: the front stores before rumqttd acks.
                #[cfg(feature = "embedded-broker")]
                tasks.push(
                    broker::start(
                        Arc::clone(&ingest),
                        m.clone(),
                        &journal_dir,
                        Arc::clone(&status),
                        shutdown.child_token(),
                    )
                    .await
                    .map_err(GatesError::Broker)?,
                );
                #[cfg(not(feature = "embedded-broker"))]
                return Err(GatesError::Config(
                    "`mqtt.embedded`: this hub was built without the embedded broker; set `mqtt.url`".into(),
                ));
            } else {
                tasks.push(tokio::spawn(mqtt::run(
                    Arc::clone(&ingest),
                    m.clone(),
                    Arc::clone(&status),
                    shutdown.child_token(),
                )));
            }
            mqtt_status = Some(status);
        }
        tasks.push(tokio::spawn(health_loop(
            Arc::clone(&ingest),
            shutdown.child_token(),
        )));
        info!(
            gates = cfg.gates.len(),
            mqtt = cfg.mqtt.is_some(),
            dedup_keys = remembered,
            journal = %journal_dir.display(),
            "gate ingest started"
        );
        Ok(Gates {
            ingest,
            mqtt: mqtt_status,
            shutdown,
            tasks,
            writer_thread: Some(writer_thread),
            journal_dir,
        })
    }

    /// Replaces the gates with `gates`, the complete new list, while everything runs (a
    /// topology change). The list is checked as [`Gates::start`] checks it, against the
    /// `[mqtt]` and `[gate_ingest]` the transports started with (an account's `gates` and a
    /// subscription's `gate_from` must still name gates that are there); a list that fails is
    /// refused whole, with an error naming the gate (or entry) and the field, and the gates
    /// stay as they were.
    ///
    /// Every transport (MQTT ingest, the embedded broker's front and its access decisions,
    /// HTTP push) takes the new gates with its next payload: no connection or session is
    /// dropped and the broker is not restarted. A payload for a removed gate is one for an
    /// unknown gate (a dead letter over MQTT, 403 over HTTP push); one for an added gate is
    /// taken from then on; a gate whose `transport` no longer takes MQTT is refused there.
    /// Gates that stay keep their health and figures in the registry; added ones are listed,
    /// removed ones are not; remembered dedup keys stay.
    pub fn set_gates(&self, gates: Vec<GateConfig>) -> Result<(), GatesError> {
        let changes = self.ingest.set_gates(gates).map_err(GatesError::Config)?;
        if !changes.is_empty() {
            info!(
                gates = self.ingest.gate_ids().len(),
                added = ?changes.added,
                changed = ?changes.changed,
                removed = ?changes.removed,
                "gates replaced while running"
            );
        }
        Ok(())
    }

    /// Checks `gates` as [`Gates::set_gates`] would, without applying them (to refuse a
    /// topology change before it is saved).
    pub fn check_gates(&self, gates: &[GateConfig]) -> Result<(), GatesError> {
        self.ingest.check_gates(gates).map_err(GatesError::Config)
    }

    /// The device-facing HTTP push routes (mounted without the API token; see [`http`]).
    pub fn push_router(&self) -> axum::Router {
        http::push_router(Arc::clone(&self.ingest))
    }

    pub fn ingest(&self) -> &Arc<Ingest> {
        &self.ingest
    }

    /// Stored events as they become durable.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredGateEvent>> {
        self.ingest.subscribe()
    }

    pub fn mqtt_status(&self) -> Option<&Arc<MqttStatus>> {
        self.mqtt.as_ref()
    }

    pub fn journal_dir_path(&self) -> &Path {
        &self.journal_dir
    }

    /// Stops MQTT ingest (a clean disconnect; the broker keeps the session) and the health
    /// check, then lets the writer finish what was queued. HTTP push routes still mounted
    /// answer 503 afterwards.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.ingest.stop_writer();
        if let Some(t) = self.writer_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }

    /// Stops abruptly, as a crash would look to the broker: tasks are aborted mid-message,
    /// no DISCONNECT is sent, queued acknowledgements are lost. For tests of what survives a
    /// hub crash.
    pub async fn abort(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        self.shutdown.cancel();
        self.ingest.stop_writer();
    }
}

/// Checks gate health every (real) second, on the ingest's clocks.
async fn health_loop(ingest: Arc<Ingest>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => ingest.check_health(),
            () = shutdown.cancelled() => return,
        }
    }
}
