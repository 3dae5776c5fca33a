//! Duplicate detection: QoS 1 redelivery and devices resending the same record.
//!
//! Each event gets a key: the gate plus the device's own serial number (`event_id`) and time
//! when the adapter gives one, else the gate plus a hash of the event's raw bytes and time.
//! A key is *strong* when the event carries a serial number or a device time (a second badge
//! of the same card at the same second on the same gate is the same record), or when the
//! broker flagged the message as a redelivery (MQTT DUP). Strong keys are remembered for
//! `dedup_window_secs`; weak ones (a door contact's bare `{"contact":false}`) only for
//! `resend_window_secs`, since the same bytes later are a new opening.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use jiff::Timestamp;
use xl_core::GateId;
use xl_core::gate::GateEvent;

/// FNV-1a, 64 bits: stable across builds and restarts (the keys are stored in the journal).
#[derive(Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn write(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        self
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// The key of `e` from `gate`, and whether it is strong (see the module docs).
pub fn key_of(gate: &GateId, e: &GateEvent) -> (u64, bool) {
    let mut h = Fnv::default();
    h.write(gate.as_str().as_bytes())
        .write(e.kind.as_str().as_bytes());
    let time = e
        .device_time
        .map(|t| t.to_string())
        .or_else(|| e.device_local_time.map(|t| t.to_string()));
    h.write(time.as_deref().unwrap_or("").as_bytes());
    match &e.event_id {
        Some(id) => {
            h.write(b"id").write(id.as_bytes());
        }
        None => {
            h.write(b"raw").write(&e.raw);
            if let Some(d) = e.door {
                h.write(&d.to_le_bytes());
            }
        }
    }
    (h.finish(), e.event_id.is_some() || time.is_some())
}

/// Remembered keys with the time each was first seen.
#[derive(Debug)]
pub struct Dedup {
    window: Duration,
    resend_window: Duration,
    seen: HashMap<u64, Timestamp>,
    order: VecDeque<(Timestamp, u64)>,
}

impl Dedup {
    pub fn new(window: Duration, resend_window: Duration) -> Dedup {
        Dedup {
            window,
            resend_window,
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// True when `key` was seen within its window before `now`; otherwise remembers it.
    pub fn is_duplicate(&mut self, key: u64, strong: bool, now: Timestamp) -> bool {
        self.original(key, strong, now).is_some()
    }

    /// When `key` was first seen, if that is within its window before `now` (a duplicate);
    /// otherwise remembers it as seen `now` and returns `None`.
    pub fn original(&mut self, key: u64, strong: bool, now: Timestamp) -> Option<Timestamp> {
        self.prune(now);
        if let Some(first) = self.seen.get(&key) {
            let age = now.duration_since(*first).unsigned_abs();
            let window = if strong {
                self.window
            } else {
                self.resend_window
            };
            if age <= window {
                return Some(*first);
            }
        }
        self.remember(key, now);
        None
    }

    /// Whether `key` is still remembered as first seen at `at`: false once the copy seen then
    /// failed to be stored (and was forgotten).
    pub fn holds(&self, key: u64, at: Timestamp) -> bool {
        self.seen.get(&key) == Some(&at)
    }

    /// Remembers `key` as seen at `at` (start-up, from the journal).
    pub fn remember(&mut self, key: u64, at: Timestamp) {
        self.seen.insert(key, at);
        self.order.push_back((at, key));
    }

    /// Forgets keys whose events were not stored after all (the sink failed).
    pub fn forget(&mut self, keys: &[u64]) {
        for k in keys {
            self.seen.remove(k);
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn prune(&mut self, now: Timestamp) {
        while let Some((at, key)) = self.order.front().copied() {
            if now.duration_since(at).unsigned_abs() <= self.window {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&key) == Some(&at) {
                self.seen.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use xl_core::GateEventKind;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn ev(raw: &'static [u8], id: Option<&str>) -> GateEvent {
        let mut e = GateEvent::new(
            GateEventKind::DoorOpened,
            "contact",
            ts("2026-01-01T00:00:00Z"),
            Bytes::from_static(raw),
        );
        e.event_id = id.map(str::to_owned);
        e
    }

    #[test]
    fn serial_numbers_make_strong_keys_independent_of_the_bytes() {
        let g = GateId::new("east").unwrap();
        let (a, strong) = key_of(&g, &ev(b"{\"serialNo\":7,\"x\":1}", Some("7")));
        let (b, _) = key_of(&g, &ev(b"{\"x\":1,\"serialNo\":7}", Some("7")));
        assert!(strong);
        assert_eq!(a, b);
        let (c, _) = key_of(&g, &ev(b"{}", Some("8")));
        assert_ne!(a, c);
        let other = GateId::new("west").unwrap();
        assert_ne!(a, key_of(&other, &ev(b"{}", Some("7"))).0);
        let (_, weak) = key_of(&g, &ev(b"{\"contact\":false}", None));
        assert!(!weak);
    }

    #[test]
    fn a_forgotten_original_no_longer_holds() {
        let mut d = Dedup::new(Duration::from_secs(3600), Duration::from_secs(5));
        let first = ts("2026-01-01T00:00:00Z");
        assert_eq!(d.original(1, true, first), None);
        assert_eq!(d.original(1, true, ts("2026-01-01T00:00:01Z")), Some(first));
        assert!(d.holds(1, first));
        d.forget(&[1]);
        assert!(!d.holds(1, first));
        let again = ts("2026-01-01T00:00:02Z");
        assert_eq!(
            d.original(1, true, again),
            None,
            "taken as new once forgotten"
        );
        assert!(!d.holds(1, first), "a later copy is not the one seen first");
        assert!(d.holds(1, again));
    }

    #[test]
    fn windows_depend_on_the_key_strength() {
        let mut d = Dedup::new(Duration::from_secs(3600), Duration::from_secs(5));
        assert!(!d.is_duplicate(1, true, ts("2026-01-01T00:00:00Z")));
        assert!(d.is_duplicate(1, true, ts("2026-01-01T00:30:00Z")));
        assert!(!d.is_duplicate(1, true, ts("2026-01-01T02:00:00Z")));
        assert!(!d.is_duplicate(2, false, ts("2026-01-01T00:00:00Z")));
        assert!(d.is_duplicate(2, false, ts("2026-01-01T00:00:04Z")));
        assert!(!d.is_duplicate(2, false, ts("2026-01-01T00:00:10Z")));
        // A redelivery (strong) of the weak key seen at :10 is still recognised later.
        assert!(d.is_duplicate(2, true, ts("2026-01-01T00:20:00Z")));
        d.forget(&[2]);
        assert!(!d.is_duplicate(2, true, ts("2026-01-01T00:20:01Z")));
    }

    #[test]
    fn old_keys_are_pruned() {
        let mut d = Dedup::new(Duration::from_secs(60), Duration::from_secs(5));
        for i in 0..100 {
            d.is_duplicate(i, true, ts("2026-01-01T00:00:00Z"));
        }
        assert_eq!(d.len(), 100);
        d.is_duplicate(1000, true, ts("2026-01-01T00:02:00Z"));
        assert_eq!(d.len(), 1);
    }
}
