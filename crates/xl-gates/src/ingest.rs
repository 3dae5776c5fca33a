//! What every transport does with a payload: decode it with the firmware's adapter, find the
//! gate, drop repeats, and hand the canonical events (or the dead letter) to the writer. The
//! transport acknowledges the payload in the completion, once the records are durable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::Value;
use tokio::sync::broadcast;
use tracing::{info, warn};
use xl_core::GateId;
use xl_core::clock::Clocks;
use xl_core::gate::{GateEvent, PayloadMeta};
use xl_core::gate_status::{GateInfo, GateRegistry, GateStats};

use crate::adapters::Adapters;
use crate::config::{GateConfig, GateFrom, GatesConfig};
use crate::dedup::{self, Dedup};
use crate::journal::{DeadLetter, Record, StoredGateEvent, TransportKind};
use crate::writer::{Outcome, Writer};

/// A configured gate at run time.
pub(crate) struct GateRt {
    pub cfg: GateConfig,
    pub stats: Arc<GateStats>,
    pub tz: TimeZone,
}

/// The configured gates as of one moment. Never changed in place: a new list of gates makes
/// a new table ([`Ingest::set_gates`]), and each payload is handled against the one table it
/// took when it arrived, so no payload sees half of a change.
pub(crate) struct GateTable {
    gates: HashMap<GateId, GateRt>,
    /// (firmware, device identifier) to gate.
    by_device: HashMap<(String, String), GateId>,
}

impl GateTable {
    /// `gates` (checked by [`GatesConfig::validate_gates`]) with their figures from `stats`.
    fn new(
        gates: Vec<(GateConfig, TimeZone)>,
        mut stats: impl FnMut(GateInfo) -> Arc<GateStats>,
    ) -> GateTable {
        let mut table = GateTable {
            gates: HashMap::with_capacity(gates.len()),
            by_device: HashMap::with_capacity(gates.len()),
        };
        for (g, tz) in gates {
            let stats = stats(GateInfo {
                id: g.id.clone(),
                community: g.community.clone(),
                firmware: g.firmware.clone(),
                camera: g.camera.clone(),
                offline_after_secs: g.offline_after_secs,
            });
            table.by_device.insert(
                (g.firmware.clone(), g.device_key().to_owned()),
                g.id.clone(),
            );
            table
                .gates
                .insert(g.id.clone(), GateRt { cfg: g, stats, tz });
        }
        table
    }

    pub(crate) fn gate(&self, id: &GateId) -> Option<&GateRt> {
        self.gates.get(id)
    }

    /// The gate whose `device` is `device` for `firmware`.
    pub(crate) fn gate_by_device(&self, firmware: &str, device: &str) -> Option<&GateRt> {
        let id = self
            .by_device
            .get(&(firmware.to_owned(), device.to_owned()))?;
        self.gates.get(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.gates.len()
    }

    /// The gate of event `e` of `inc`, found as its subscription says.
    fn find_gate<'s>(
        &'s self,
        inc: &Incoming<'_>,
        e: &GateEvent,
        json: &mut Option<Option<Value>>,
    ) -> Result<&'s GateRt, String> {
        let GateHint::From(from) = inc.gate else {
            return Err("no gate".into());
        };
        let where_ = || match inc.meta.topic {
            Some(t) => format!("topic {t:?}"),
            None => "the payload".into(),
        };
        let device: String = match from {
            GateFrom::Gate(id) => {
                return self
                    .gates
                    .get(id)
                    .ok_or_else(|| format!("gate {id} is not configured"));
            }
            GateFrom::DeviceId => e.device_id.clone().ok_or_else(|| {
                format!(
                    "the {} payload on {} names no device; set gate_from on its subscription",
                    inc.firmware,
                    where_()
                )
            })?,
            GateFrom::TopicSegment(i) => inc
                .meta
                .topic
                .and_then(|t| t.split('/').nth(*i))
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("{} has no segment {i}", where_()))?,
            GateFrom::PayloadField(ptr) => {
                let v = json.get_or_insert_with(|| serde_json::from_slice(inc.payload).ok());
                v.as_ref()
                    .and_then(|v| v.pointer(ptr))
                    .and_then(|v| match v {
                        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .ok_or_else(|| format!("no text at {ptr} in the payload on {}", where_()))?
            }
        };
        let g = self
            .by_device
            .get(&(inc.firmware.to_owned(), device.clone()))
            .and_then(|id| self.gates.get(id))
            .ok_or_else(|| {
                format!(
                    "no [[gates]] entry with firmware {:?} and device {device:?} (from {})",
                    inc.firmware,
                    where_()
                )
            })?;
        Ok(g)
    }
}

/// Each gate with the zone of its clock; an unknown zone is an error naming the gate.
fn with_zones(gates: Vec<GateConfig>) -> Result<Vec<(GateConfig, TimeZone)>, String> {
    gates
        .into_iter()
        .map(|g| {
            let tz = match &g.timezone {
                Some(name) => TimeZone::get(name)
                    .map_err(|e| format!("gate {}: timezone {name:?}: {e}", g.id))?,
                None => TimeZone::system(),
            };
            Ok((g, tz))
        })
        .collect()
}

/// What a new list of gates changed, by gate id, each sorted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GateChanges {
    pub added: Vec<GateId>,
    /// Still there, with other settings.
    pub changed: Vec<GateId>,
    pub removed: Vec<GateId>,
}

impl GateChanges {
    fn between(old: &GateTable, new: &GateTable) -> GateChanges {
        let mut c = GateChanges::default();
        for (id, g) in &new.gates {
            match old.gates.get(id) {
                None => c.added.push(id.clone()),
                Some(o) if o.cfg != g.cfg => c.changed.push(id.clone()),
                Some(_) => {}
            }
        }
        c.removed = old
            .gates
            .keys()
            .filter(|id| !new.gates.contains_key(*id))
            .cloned()
            .collect();
        for v in [&mut c.added, &mut c.changed, &mut c.removed] {
            v.sort();
        }
        c
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// Which gate a payload is from, as far as the transport knows before decoding.
#[derive(Debug, Clone, Copy)]
pub enum GateHint<'a> {
    /// The transport knows (HTTP push to a gate's URL, ZKTeco serial number).
    Known(&'a GateId),
    /// Found per event, as the MQTT subscription says.
    From(&'a GateFrom),
}

/// Which gates a sender may report for (an embedded-broker account's `gates`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateSet {
    /// Every gate that takes MQTT.
    Any,
    /// These (and only those of them that take MQTT).
    Only(std::collections::HashSet<GateId>),
}

impl GateSet {
    pub fn contains(&self, gate: &GateId) -> bool {
        match self {
            GateSet::Any => true,
            GateSet::Only(s) => s.contains(gate),
        }
    }
}

/// One payload as a transport received it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub transport: TransportKind,
    pub firmware: &'a str,
    pub meta: PayloadMeta<'a>,
    pub payload: &'a [u8],
    pub gate: GateHint<'a>,
    /// The broker redelivered it (MQTT DUP flag).
    pub redelivered: bool,
    pub peer: Option<SocketAddr>,
    /// When it arrived, for the latency figures.
    pub arrived: Instant,
}

/// What [`Ingest::prepare`] made of a payload.
#[derive(Debug, Default)]
pub struct Prepared {
    pub records: Vec<Record>,
    /// Dedup keys of the events in `records`, to forget if the write fails.
    pub keys: Vec<u64>,
    pub duplicates: usize,
    /// Dedup keys of the duplicates left out, with when their originals were seen. An
    /// original may still be on its way to the store; the duplicate is acknowledged only if it
    /// got there.
    pub originals: Vec<(u64, Timestamp)>,
    /// Events left out because their sender may not report for their gate (an account of
    /// the embedded broker speaking for another's gate) or because the gate takes HTTP push
    /// only: neither stored nor taken as a sign of life.
    pub refused: Vec<GateId>,
}

impl Prepared {
    pub fn events(&self) -> usize {
        self.records
            .iter()
            .filter(|r| matches!(r, Record::Event(_)))
            .count()
    }

    pub fn dead_letters(&self) -> usize {
        self.records.len() - self.events()
    }
}

/// What became of one payload.
#[derive(Debug)]
pub struct Ingested {
    pub events: usize,
    pub dead_letters: usize,
    pub duplicates: usize,
    /// `Ok` once the records are durable.
    pub outcome: Outcome,
}

/// The shared core of the gate transports.
pub struct Ingest {
    adapters: Adapters,
    /// Read once per payload (and per health check, per batch stored); replaced whole.
    table: RwLock<Arc<GateTable>>,
    /// Held while a new list of gates replaces the table and the registry's entries, so two
    /// replacements cannot interleave.
    replacing: Mutex<()>,
    /// The config the transports started with, less its gates: what a new list of gates is
    /// checked against.
    checks: GatesConfig,
    dedup: Mutex<Dedup>,
    registry: Arc<GateRegistry>,
    writer: Writer,
    events_tx: broadcast::Sender<Arc<StoredGateEvent>>,
    /// Where `received_at` and the health check's "now" come from.
    clocks: Arc<dyn Clocks>,
}

impl Ingest {
    pub(crate) fn new(
        cfg: &GatesConfig,
        registry: Arc<GateRegistry>,
        writer: Writer,
        recent_keys: Vec<(String, Timestamp)>,
        clocks: Arc<dyn Clocks>,
    ) -> Result<Ingest, String> {
        let adapters = Adapters::new(&cfg.ingest.generic)?;
        // At start every gate gets new figures, as it always has.
        let table = GateTable::new(with_zones(cfg.gates.clone())?, |info| registry.insert(info));
        let checks = GatesConfig {
            mqtt: cfg.mqtt.clone(),
            gates: Vec::new(),
            ingest: cfg.ingest.clone(),
        };
        let mut dedup = Dedup::new(
            Duration::from_secs(cfg.ingest.dedup_window_secs),
            Duration::from_secs(cfg.ingest.resend_window_secs),
        );
        for (k, at) in recent_keys {
            if let Ok(k) = u64::from_str_radix(&k, 16) {
                dedup.remember(k, at);
            }
        }
        let (events_tx, _) = broadcast::channel(8192);
        Ok(Ingest {
            adapters,
            table: RwLock::new(Arc::new(table)),
            replacing: Mutex::new(()),
            checks,
            dedup: Mutex::new(dedup),
            registry,
            writer,
            events_tx,
            clocks,
        })
    }

    /// The clocks payloads are stamped with (`received_at`) and gate health is judged by.
    pub fn clocks(&self) -> &Arc<dyn Clocks> {
        &self.clocks
    }

    /// Stops the writer after what is queued; later payloads fail (HTTP push answers 503).
    pub(crate) fn stop_writer(&self) {
        self.writer.stop();
    }

    /// Stored events as they become durable. A receiver that falls more than 8192 events
    /// behind misses some (`RecvError::Lagged`); the journal has them all.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredGateEvent>> {
        self.events_tx.subscribe()
    }

    /// The gates as of now. A transport that checks a payload against its gate before
    /// handing it over (HTTP push) keeps this table for [`Ingest::ingest_in`].
    pub(crate) fn gates(&self) -> Arc<GateTable> {
        Arc::clone(&self.table.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The ids of the gates as of now, sorted.
    pub fn gate_ids(&self) -> Vec<GateId> {
        let mut ids: Vec<GateId> = self.gates().gates.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Checks `gates` as a complete new list of gates, as [`Ingest::set_gates`] would, without
    /// applying it. The error names the gate (or the `[mqtt]` entry) and the field.
    pub fn check_gates(&self, gates: &[GateConfig]) -> Result<(), String> {
        self.checked(gates.to_vec()).map(|_| ())
    }

    fn checked(&self, gates: Vec<GateConfig>) -> Result<Vec<(GateConfig, TimeZone)>, String> {
        let cfg = GatesConfig {
            mqtt: self.checks.mqtt.clone(),
            gates,
            ingest: self.checks.ingest.clone(),
        };
        cfg.validate_gates()?;
        with_zones(cfg.gates)
    }

    /// Replaces the gates with `gates`, the complete new list, checked as at start; a list
    /// that fails is refused whole and the gates stay as they were. Every transport takes the
    /// new table with its next payload; nothing is reconnected or restarted. A gate that
    /// stays (its id) keeps its figures and health, changed or not; a new one is added to the
    /// registry, a removed one leaves it, and its payloads are from then on those of an
    /// unknown gate. Dedup keys stay.
    pub fn set_gates(&self, gates: Vec<GateConfig>) -> Result<GateChanges, String> {
        let zoned = self.checked(gates)?;
        let _one_at_a_time = self
            .replacing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let old = self.gates();
        // A gate that stays keeps the figures the registry has for it; a new one gets new
        // ones, and is listed before any payload can be taken as its.
        let table = GateTable::new(zoned, |info| self.registry.upsert(info));
        let changes = GateChanges::between(&old, &table);
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
        for id in &changes.removed {
            self.registry.remove(id);
        }
        Ok(changes)
    }

    /// Decodes `inc` and turns it into records. Duplicates are counted here and left out.
    pub fn prepare(&self, inc: &Incoming<'_>) -> Prepared {
        self.prepare_from(inc, None)
    }

    /// [`Ingest::prepare`] for a sender that may report only for the gates in `allowed`
    /// (`None`: any). Events of other gates, and MQTT events of gates that take HTTP push
    /// only, are left out and listed in [`Prepared::refused`].
    pub fn prepare_from(&self, inc: &Incoming<'_>, allowed: Option<&GateSet>) -> Prepared {
        self.prepare_in(&self.gates(), inc, allowed)
    }

    /// [`Ingest::prepare_from`] against the gates of `table`.
    fn prepare_in(
        &self,
        table: &GateTable,
        inc: &Incoming<'_>,
        allowed: Option<&GateSet>,
    ) -> Prepared {
        let mut out = Prepared::default();
        let received_at = inc.meta.received_at;
        let known = match inc.gate {
            GateHint::Known(id) => table.gates.get(id),
            GateHint::From(_) => None,
        };
        if let Some(g) = known {
            self.seen(g, received_at);
        }
        let Some(adapter) = self.adapters.get(inc.firmware) else {
            out.records.push(self.dead_letter(
                inc,
                known.map(|g| &g.cfg.id),
                format!("no adapter for firmware {:?}", inc.firmware),
            ));
            return out;
        };
        let events = match adapter.decode(&inc.meta, inc.payload) {
            Ok(ev) => ev,
            Err(e) => {
                out.records
                    .push(self.dead_letter(inc, known.map(|g| &g.cfg.id), e.to_string()));
                return out;
            }
        };
        let mut json: Option<Option<Value>> = None;
        let mut unclaimed: Vec<String> = Vec::new();
        for mut e in events {
            let gate = match known {
                Some(g) => Ok(g),
                None => table.find_gate(inc, &e, &mut json),
            };
            let g = match gate {
                Ok(g) => g,
                Err(why) => {
                    if !unclaimed.contains(&why) {
                        unclaimed.push(why);
                    }
                    continue;
                }
            };
            let over_mqtt_refused = inc.transport == TransportKind::Mqtt && !g.cfg.takes_mqtt();
            if over_mqtt_refused || allowed.is_some_and(|a| !a.contains(&g.cfg.id)) {
                if !out.refused.contains(&g.cfg.id) {
                    out.refused.push(g.cfg.id.clone());
                }
                continue;
            }
            if known.is_none() {
                self.seen(g, received_at);
            }
            // Proof of life only: it updates the gate's health (above) and is not stored.
            if e.kind == xl_core::GateEventKind::Heartbeat {
                continue;
            }
            let (key, strong) = dedup::key_of(&g.cfg.id, &e);
            let original = self
                .dedup
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .original(key, strong || inc.redelivered, received_at);
            if let Some(first) = original {
                g.stats
                    .duplicates
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                out.duplicates += 1;
                out.originals.push((key, first));
                continue;
            }
            out.keys.push(key);
            let id = new_id(received_at);
            let occurred_at = e.resolve_device_time(&g.tz);
            let evidence = e.picture.as_ref().map(|p| {
                let ext = match p.content_type.as_deref() {
                    Some("image/png") => "png",
                    _ => "jpg",
                };
                let day = received_at.to_zoned(TimeZone::UTC).date();
                format!("evidence/{}/{day}/{id}.{ext}", g.cfg.id)
            });
            e.received_at = received_at;
            out.records.push(Record::Event(Box::new(StoredGateEvent {
                id,
                gate: g.cfg.id.clone(),
                community: g.cfg.community.clone(),
                firmware: inc.firmware.to_owned(),
                camera: g.cfg.camera.clone(),
                transport: inc.transport,
                source: inc
                    .meta
                    .topic
                    .or(inc.meta.path)
                    .unwrap_or_default()
                    .to_owned(),
                received_at,
                occurred_at,
                dedup_key: format!("{key:016x}"),
                evidence,
                event: e,
            })));
        }
        if !unclaimed.is_empty() {
            out.records
                .push(self.dead_letter(inc, None, unclaimed.join("; ")));
        }
        out
    }

    /// Queues `prepared` for the writer; `done` runs (on the writer thread, must not block)
    /// once it is durable. On failure the events' dedup keys are forgotten, so a redelivery
    /// is taken as new. The writer keeps submission order, so the originals of `prepared`'s
    /// duplicates were written before or with it: if one of them failed, `done` gets an error
    /// too (its sender must send again), although `prepared`'s own records are stored.
    pub fn submit(
        self: &Arc<Self>,
        prepared: Prepared,
        arrived: Instant,
        done: impl FnOnce(Outcome) + Send + 'static,
    ) {
        let me = Arc::clone(self);
        let (keys, originals) = (prepared.keys, prepared.originals);
        self.writer.submit(
            prepared.records,
            Box::new(move |outcome, records| {
                let mut dedup = me.dedup.lock().unwrap_or_else(PoisonError::into_inner);
                let outcome = match outcome {
                    Ok(()) => {
                        let lost = originals.iter().any(|&(k, at)| !dedup.holds(k, at));
                        drop(dedup);
                        me.committed(records, arrived.elapsed());
                        if lost {
                            Err("an earlier copy of this event could not be stored; \
                                 send it again"
                                .into())
                        } else {
                            Ok(())
                        }
                    }
                    Err(e) => {
                        dedup.forget(&keys);
                        Err(e)
                    }
                };
                done(outcome);
            }),
        );
    }

    /// [`Ingest::prepare`] then [`Ingest::submit`], waiting until the records are durable.
    pub async fn ingest(self: &Arc<Self>, inc: &Incoming<'_>) -> Ingested {
        self.ingest_in(&self.gates(), inc).await
    }

    /// [`Ingest::ingest`] against the gates of `table`: those its sender was authorized by.
    pub(crate) async fn ingest_in(
        self: &Arc<Self>,
        table: &GateTable,
        inc: &Incoming<'_>,
    ) -> Ingested {
        let prepared = self.prepare_in(table, inc, None);
        let mut summary = Ingested {
            events: prepared.events(),
            dead_letters: prepared.dead_letters(),
            duplicates: prepared.duplicates,
            outcome: Ok(()),
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(prepared, inc.arrived, move |o| {
            let _ = tx.send(o);
        });
        summary.outcome = rx
            .await
            .unwrap_or_else(|_| Err("the gate event writer has stopped".into()));
        summary
    }

    fn committed(&self, records: Vec<Record>, latency: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        // A gate removed since its events were decoded has no figures to count them in.
        let table = self.gates();
        for r in records {
            match r {
                Record::Event(e) => {
                    if let Some(g) = table.gates.get(&e.gate) {
                        g.stats.events.fetch_add(1, Relaxed);
                        g.stats.latency.record(latency);
                        g.stats.record_exception(&e.event);
                    }
                    let _ = self.events_tx.send(Arc::from(e));
                }
                Record::DeadLetter(d) => {
                    let stats = match d.gate.as_ref().and_then(|g| table.gates.get(g)) {
                        Some(g) => Arc::clone(&g.stats),
                        None => self
                            .registry
                            .unattributed(d.firmware.as_deref().unwrap_or("unknown")),
                    };
                    stats.dead_letters.fetch_add(1, Relaxed);
                }
            }
        }
    }

    fn seen(&self, g: &GateRt, at: Timestamp) {
        if g.stats.record_seen(at) {
            info!(gate = %g.cfg.id, "gate online");
        }
    }

    /// Marks gates silent for longer than their `offline_after_secs` offline, as of now on
    /// [`Ingest::clocks`]. The hub's health check calls it every second; a test may call it
    /// after advancing simulated clocks.
    pub fn check_health(&self) {
        let now = self.clocks.realtime();
        for g in self.gates().gates.values() {
            if g.stats
                .check_silence(now, Duration::from_secs(g.cfg.offline_after_secs))
            {
                warn!(
                    gate = %g.cfg.id,
                    silent_secs = g.cfg.offline_after_secs,
                    "gate offline: nothing received"
                );
            }
        }
    }

    fn dead_letter(&self, inc: &Incoming<'_>, gate: Option<&GateId>, error: String) -> Record {
        Record::DeadLetter(Box::new(DeadLetter {
            id: new_id(inc.meta.received_at),
            received_at: inc.meta.received_at,
            transport: inc.transport,
            firmware: Some(inc.firmware.to_owned()),
            gate: gate.cloned(),
            topic: inc.meta.topic.map(str::to_owned),
            path: inc.meta.path.map(str::to_owned),
            query: inc.meta.query.map(without_secret),
            content_type: inc.meta.content_type.map(str::to_owned),
            peer: inc.peer.map(|p| p.to_string()),
            error,
            raw_base64: DeadLetter::encode_raw(inc.payload),
        }))
    }
}

/// `query` with the value of its `secret` parameter (a gate's `push_secret`) redacted, as a
/// dead letter keeps it.
fn without_secret(query: &str) -> String {
    query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("secret") => "secret=<redacted>",
            _ => kv,
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A unique id sortable by time: 12 hex digits of Unix milliseconds, then 16 random ones.
pub fn new_id(at: Timestamp) -> String {
    format!(
        "{:012x}{:016x}",
        at.as_millisecond().max(0),
        rand::random::<u64>()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn dead_letters_keep_no_push_secret() {
        assert_eq!(
            super::without_secret("SN=CJDE1&secret=s3cr3t&table=ATTLOG"),
            "SN=CJDE1&secret=<redacted>&table=ATTLOG"
        );
        assert_eq!(super::without_secret("SN=CJDE1"), "SN=CJDE1");
        assert_eq!(super::without_secret(""), "");
    }
}
