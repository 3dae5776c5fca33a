//! Exponential backoff with ±20% jitter, and a sleep that gives way to shutdown.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Doubles from `initial` to `max`; each delay is jittered by ±20%.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d.mul_f64(rand::random_range(0.8..1.2))
    }
}

/// Sleeps `d`; true when shutdown came first.
pub(crate) async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        () = shutdown.cancelled() => true,
    }
}

/// Seconds from config as a `Duration` (negative and NaN become zero).
pub(crate) fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let d: Vec<u128> = (0..12).map(|_| b.next_delay().as_millis()).collect();
        assert!((800..=1200).contains(&d[0]), "{d:?}");
        assert!((1600..=2400).contains(&d[1]), "{d:?}");
        assert!((3200..=4800).contains(&d[2]), "{d:?}");
        // 256 s, then capped at 300 s.
        assert!((204_800..=307_200).contains(&d[8]), "{d:?}");
        assert!((240_000..=360_000).contains(&d[9]), "{d:?}");
        assert!((240_000..=360_000).contains(&d[11]), "{d:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(1200));
    }
}
