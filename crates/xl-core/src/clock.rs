//! Clocks: where pipeline code gets the time, so that tests run on simulated time instead of
//! sleeping (moonfire-nvr's `base/clock.rs` is the model).
//!
//! The rule: **time that decides what the product does with events is injected; time that
//! bounds I/O is real.**
//!
//! - Injected (read from a [`Clocks`]): the time a gate payload is received (`received_at`,
//!   which dedup windows, event times and ids follow), a gate's health check against its
//!   `offline_after_secs`, the alert processor's tick (escalation deadlines, debounced
//!   offline conditions) and the time of a person's action on an alert, the window of dedup
//!   keys reloaded at start, retention's "now", the time a frame was received (stamped when
//!   its access unit arrives) and detection's per-camera rate schedule.
//! - Real (`std::time::Instant::now()`, `tokio::time`, `jiff::Timestamp::now()`): network
//!   and request timeouts, reconnect backoff, keep-alives, rate limiters, log throttles, the
//!   login limiter, latency figures and frame rates, a file source's pacing, and how often a
//!   loop wakes up. A loop
//!   ticks on real time and reads the injected clock when it wakes: with
//!   [`SimulatedClocks`] a test advances the clock and the next tick sees the new time.
//!
//! The hub creates one `Arc<dyn Clocks>` ([`RealClocks`]) at start and hands it to each
//! pipeline; tests hand in a [`SimulatedClocks`] instead.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

/// A source of wall and monotonic time. Shared as `Arc<dyn Clocks>`.
pub trait Clocks: Send + Sync + std::fmt::Debug + 'static {
    /// Wall-clock time: what is stored, compared with device times and shown to people.
    fn realtime(&self) -> Timestamp;

    /// Monotonic time, for durations measured within one process. Instants from different
    /// `Clocks` must not be compared with each other.
    fn monotonic(&self) -> Instant;
}

/// The system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealClocks;

impl RealClocks {
    /// The system's clocks as the shared handle pipelines take.
    pub fn shared() -> Arc<dyn Clocks> {
        Arc::new(RealClocks)
    }
}

impl Clocks for RealClocks {
    fn realtime(&self) -> Timestamp {
        Timestamp::now()
    }

    fn monotonic(&self) -> Instant {
        Instant::now()
    }
}

/// Clocks that stand still until [`SimulatedClocks::advance`] moves them. Clones share one
/// time (an `Arc` inside), so a test keeps one clone and hands another to the code under
/// test; safe to use from any thread.
///
/// Both clocks move together: wall time is the start plus the time advanced, monotonic time an
/// `Instant` taken at creation plus the same.
#[derive(Debug, Clone)]
pub struct SimulatedClocks(Arc<Simulated>);

#[derive(Debug)]
struct Simulated {
    start: Timestamp,
    boot: Instant,
    elapsed: Mutex<Duration>,
}

impl SimulatedClocks {
    /// Clocks whose wall time reads `start` until advanced.
    pub fn new(start: Timestamp) -> SimulatedClocks {
        SimulatedClocks(Arc::new(Simulated {
            start,
            boot: Instant::now(),
            elapsed: Mutex::new(Duration::ZERO),
        }))
    }

    /// Moves both clocks forward by `d`.
    pub fn advance(&self, d: Duration) {
        let mut e = self
            .0
            .elapsed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *e = e.saturating_add(d);
    }

    /// How far the clocks were advanced since creation.
    pub fn elapsed(&self) -> Duration {
        *self
            .0
            .elapsed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// These clocks as the shared handle pipelines take (sharing this one's time).
    pub fn shared(&self) -> Arc<dyn Clocks> {
        Arc::new(self.clone())
    }
}

impl Clocks for SimulatedClocks {
    fn realtime(&self) -> Timestamp {
        let elapsed = SignedDuration::try_from(self.elapsed()).unwrap_or(SignedDuration::MAX);
        self.0.start.saturating_add(elapsed).unwrap_or(self.0.start)
    }

    fn monotonic(&self) -> Instant {
        let elapsed = self.elapsed();
        self.0
            .boot
            .checked_add(elapsed)
            .unwrap_or(self.0.boot + Duration::from_secs(u64::from(u32::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Timestamp {
        "2024-03-01T08:00:00Z".parse().unwrap()
    }

    #[test]
    fn simulated_clocks_stand_still_until_advanced() {
        let c = SimulatedClocks::new(t0());
        let (wall, mono) = (c.realtime(), c.monotonic());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.realtime(), wall);
        assert_eq!(c.monotonic(), mono);
        assert_eq!(wall, t0());
    }

    #[test]
    fn advance_moves_wall_and_monotonic_time_together() {
        let c = SimulatedClocks::new(t0());
        let mono = c.monotonic();
        c.advance(Duration::from_secs(90));
        c.advance(Duration::from_millis(500));
        assert_eq!(c.elapsed(), Duration::from_millis(90_500));
        assert_eq!(
            c.realtime(),
            "2024-03-01T08:01:30.5Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(c.monotonic() - mono, Duration::from_millis(90_500));
    }

    #[test]
    fn clones_and_shared_handles_see_one_time() {
        let c = SimulatedClocks::new(t0());
        let shared: Arc<dyn Clocks> = c.shared();
        let other = c.clone();
        other.advance(Duration::from_secs(60));
        assert_eq!(shared.realtime(), t0() + SignedDuration::from_secs(60));
        assert_eq!(c.realtime(), shared.realtime());
    }

    #[test]
    fn simulated_clocks_advance_from_many_threads() {
        let c = SimulatedClocks::new(t0());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.advance(Duration::from_millis(1));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.elapsed(), Duration::from_secs(4));
        assert_eq!(c.realtime(), t0() + SignedDuration::from_secs(4));
    }

    #[test]
    fn simulated_wall_time_saturates_instead_of_overflowing() {
        let c = SimulatedClocks::new(t0());
        c.advance(Duration::MAX);
        assert_eq!(c.realtime(), Timestamp::MAX);
        // monotonic time does not panic either
        let _ = c.monotonic();
    }

    #[test]
    fn real_clocks_follow_the_system() {
        let c = RealClocks::shared();
        let before = Timestamp::now();
        let (wall, mono) = (c.realtime(), c.monotonic());
        assert!(wall >= before);
        assert!(c.monotonic() >= mono);
    }
}
