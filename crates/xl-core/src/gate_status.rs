//! Gates as the hub runs them: what each configured gate is, and the live figures the gate
//! transports update (last seen, online/offline, the last device exception, events, duplicates,
//! dead letters, receipt-to-event latency). The API reads them for `/api/v1/gates` and
//! `/metrics`; the transports (`xl-gates`) write them. No I/O here.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::gate::{EventPhase, GateEvent, GateEventKind};
use crate::ids::{CameraId, CommunityId, GateId};

/// A configured gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateInfo {
    pub id: GateId,
    pub community: CommunityId,
    /// The firmware name (`hikvision-isapi`, `dahua`, ...).
    pub firmware: String,
    /// The camera that watches the gate, if any.
    pub camera: Option<CameraId>,
    /// Silence after which the gate counts as offline.
    pub offline_after_secs: u64,
}

/// Upper bounds (seconds) of the latency histogram buckets; a last bucket is `+Inf`.
pub const LATENCY_BUCKETS_SECS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A cumulative histogram of durations, lock-free.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Non-cumulative counts per bucket; the last is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS_SECS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl LatencyHistogram {
    pub fn record(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS_SECS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS_SECS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// Cumulative counts per bucket of [`LATENCY_BUCKETS_SECS`], then the `+Inf` total.
    pub fn cumulative(&self) -> Vec<u64> {
        let mut acc = 0;
        self.buckets
            .iter()
            .map(|b| {
                acc += b.load(Relaxed);
                acc
            })
            .collect()
    }

    pub fn sum_secs(&self) -> f64 {
        self.sum_micros.load(Relaxed) as f64 / 1e6
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }
}

/// A condition the device reported about itself (tamper, a reader offline, an alarm), kept
/// until the device reports its end (`phase = stop`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceException {
    pub kind: GateEventKind,
    /// The adapter's label (`card_reader_offline`, `panic_button`...).
    pub detail: Option<String>,
    /// The raw vendor code.
    pub vendor_code: String,
    pub since: Timestamp,
}

/// Live figures of one gate (or, for payloads no gate claimed, of one firmware).
#[derive(Debug, Default)]
pub struct GateStats {
    /// Canonical gate events stored.
    pub events: AtomicU64,
    /// Events recognised as repeats (QoS 1 redelivery, a device resending) and not stored again.
    pub duplicates: AtomicU64,
    /// Payloads that could not be decoded or attributed, kept in the dead letters.
    pub dead_letters: AtomicU64,
    /// From receipt of the payload to its events being durably stored.
    pub latency: LatencyHistogram,
    /// Unix microseconds of the last payload from the gate; 0 = never.
    last_seen_micros: AtomicI64,
    online: AtomicBool,
    /// Offline transitions seen.
    pub offline_transitions: AtomicU64,
    exception: Mutex<Option<DeviceException>>,
}

impl GateStats {
    /// The gate sent something at `at`. Returns true when this brings it back online.
    pub fn record_seen(&self, at: Timestamp) -> bool {
        self.last_seen_micros
            .fetch_max(at.as_microsecond(), Relaxed);
        !self.online.swap(true, Relaxed)
    }

    pub fn last_seen(&self) -> Option<Timestamp> {
        match self.last_seen_micros.load(Relaxed) {
            0 => None,
            us => Timestamp::from_microsecond(us).ok(),
        }
    }

    pub fn is_online(&self) -> bool {
        self.online.load(Relaxed)
    }

    /// Marks the gate offline when it has been silent longer than `offline_after` at `now`
    /// (a gate never seen stays offline). Returns true on the online-to-offline transition.
    pub fn check_silence(&self, now: Timestamp, offline_after: Duration) -> bool {
        let Some(last) = self.last_seen() else {
            return false;
        };
        let silent = now.duration_since(last).unsigned_abs();
        if silent > offline_after && self.online.swap(false, Relaxed) {
            self.offline_transitions.fetch_add(1, Relaxed);
            return true;
        }
        false
    }

    /// Keeps the device exception an event reports (tamper, device offline, alarm) and clears
    /// it when the device reports the condition's end.
    pub fn record_exception(&self, e: &GateEvent) {
        if !matches!(
            e.kind,
            GateEventKind::Tamper
                | GateEventKind::DeviceOffline
                | GateEventKind::Alarm
                | GateEventKind::DoorForcedOpen
                | GateEventKind::DoorHeldOpen
                | GateEventKind::Duress
        ) {
            return;
        }
        let mut slot = self
            .exception
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if e.phase == Some(EventPhase::Stop) {
            if slot.as_ref().is_some_and(|x| x.kind == e.kind) {
                *slot = None;
            }
            return;
        }
        *slot = Some(DeviceException {
            kind: e.kind,
            detail: e.detail.clone(),
            vendor_code: e.vendor_code.clone(),
            since: e.device_time.unwrap_or(e.received_at),
        });
    }

    pub fn exception(&self) -> Option<DeviceException> {
        self.exception
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A gate and its figures.
pub type GateEntry = (GateInfo, Arc<GateStats>);

/// Every configured gate, plus per-firmware figures for payloads no gate claimed.
#[derive(Debug, Default)]
pub struct GateRegistry {
    gates: RwLock<BTreeMap<GateId, GateEntry>>,
    unattributed: RwLock<BTreeMap<String, Arc<GateStats>>>,
}

impl GateRegistry {
    pub fn insert(&self, info: GateInfo) -> Arc<GateStats> {
        let stats = Arc::new(GateStats::default());
        let mut g = self.gates.write().unwrap_or_else(PoisonError::into_inner);
        g.insert(info.id.clone(), (info, Arc::clone(&stats)));
        stats
    }

    /// Sets what gate `info.id` is, keeping its figures (health, counts) when it is already
    /// here (a gate edited while running), else with new ones; returns its figures.
    pub fn upsert(&self, info: GateInfo) -> Arc<GateStats> {
        let mut g = self.gates.write().unwrap_or_else(PoisonError::into_inner);
        let stats = g
            .get(&info.id)
            .map(|(_, s)| Arc::clone(s))
            .unwrap_or_default();
        g.insert(info.id.clone(), (info, Arc::clone(&stats)));
        stats
    }

    /// Forgets a gate removed while running.
    pub fn remove(&self, id: &GateId) -> Option<GateEntry> {
        let mut g = self.gates.write().unwrap_or_else(PoisonError::into_inner);
        g.remove(id)
    }

    pub fn get(&self, id: &GateId) -> Option<GateEntry> {
        let g = self.gates.read().unwrap_or_else(PoisonError::into_inner);
        g.get(id).cloned()
    }

    /// All gates, ordered by id.
    pub fn snapshot(&self) -> Vec<GateEntry> {
        let g = self.gates.read().unwrap_or_else(PoisonError::into_inner);
        g.values().cloned().collect()
    }

    /// The figures of payloads of `firmware` that no gate claimed (dead letters before the gate
    /// was known).
    pub fn unattributed(&self, firmware: &str) -> Arc<GateStats> {
        if let Some(s) = self
            .unattributed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(firmware)
        {
            return Arc::clone(s);
        }
        let mut w = self
            .unattributed
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(w.entry(firmware.to_owned()).or_default())
    }

    /// Per-firmware figures of unclaimed payloads, ordered by firmware.
    pub fn unattributed_snapshot(&self) -> Vec<(String, Arc<GateStats>)> {
        let u = self
            .unattributed
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        u.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect()
    }

    pub fn len(&self) -> usize {
        self.gates
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn histogram_is_cumulative() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_micros(300));
        h.record(Duration::from_millis(7));
        h.record(Duration::from_secs(9));
        let c = h.cumulative();
        assert_eq!(c[0], 1);
        assert_eq!(c[4], 2);
        assert_eq!(*c.last().unwrap(), 3);
        assert_eq!(h.count(), 3);
        assert!((h.sum_secs() - 9.0073).abs() < 1e-6);
    }

    #[test]
    fn silence_turns_a_gate_offline_once() {
        let s = GateStats::default();
        assert!(!s.check_silence(ts("2026-01-01T00:10:00Z"), Duration::from_secs(60)));
        assert!(s.record_seen(ts("2026-01-01T00:00:00Z")));
        assert!(!s.record_seen(ts("2026-01-01T00:00:30Z")));
        assert!(!s.check_silence(ts("2026-01-01T00:01:00Z"), Duration::from_secs(60)));
        assert!(s.check_silence(ts("2026-01-01T00:01:31Z"), Duration::from_secs(60)));
        assert!(!s.check_silence(ts("2026-01-01T00:02:31Z"), Duration::from_secs(60)));
        assert!(!s.is_online());
        assert!(s.record_seen(ts("2026-01-01T00:03:00Z")));
        assert_eq!(s.offline_transitions.load(Relaxed), 1);
    }

    #[test]
    fn a_gate_edited_keeps_its_figures_and_a_removed_one_goes() {
        let r = GateRegistry::default();
        let info = |camera: Option<&str>| GateInfo {
            id: GateId::new("east-door").unwrap(),
            community: CommunityId::new("xingfu").unwrap(),
            firmware: "dahua".into(),
            camera: camera.map(|c| CameraId::new(c).unwrap()),
            offline_after_secs: 300,
        };
        let first = r.upsert(info(None));
        assert!(first.record_seen(ts("2026-01-01T00:00:00Z")));
        let again = r.upsert(info(Some("east-cam")));
        assert!(Arc::ptr_eq(&first, &again));
        let (now, stats) = r.get(&info(None).id).unwrap();
        assert_eq!(now.camera, info(Some("east-cam")).camera);
        assert!(stats.is_online());
        assert!(r.remove(&info(None).id).is_some());
        assert!(r.is_empty() && r.remove(&info(None).id).is_none());
        // Added again: a new gate as far as its figures go.
        assert!(!r.upsert(info(None)).is_online());
    }

    #[test]
    fn exceptions_clear_on_their_stop_phase() {
        let s = GateStats::default();
        let mut e = GateEvent::new(
            GateEventKind::Tamper,
            "1/0x404",
            ts("2026-01-01T00:00:00Z"),
            Bytes::new(),
        );
        e.phase = Some(EventPhase::Start);
        s.record_exception(&e);
        assert_eq!(s.exception().unwrap().kind, GateEventKind::Tamper);
        let granted = GateEvent::new(
            GateEventKind::AccessGranted,
            "5/0x01",
            ts("2026-01-01T00:00:01Z"),
            Bytes::new(),
        );
        s.record_exception(&granted);
        assert!(s.exception().is_some());
        e.phase = Some(EventPhase::Stop);
        s.record_exception(&e);
        assert_eq!(s.exception(), None);
    }
}
