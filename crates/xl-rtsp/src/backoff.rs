//! Exponential backoff with jitter for reconnect loops.

use std::time::Duration;

/// Doubles the delay after each failure up to `max`, with up to ±20% jitter so that hundreds of
/// cameras behind one failed switch don't all reconnect in the same instant.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            next: initial,
        }
    }

    /// The delay before the next attempt. `unit_random` is a uniform draw from `[0, 1)`.
    pub fn next_delay(&mut self, unit_random: f64) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let factor = 0.8 + 0.4 * unit_random.clamp(0.0, 1.0);
        base.mul_f64(factor)
    }

    /// Back to the initial delay: the last attempt got as far as delivering frames.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let d: Vec<u64> = (0..6).map(|_| b.next_delay(0.5).as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 8, 10, 10]);
        b.reset();
        assert_eq!(b.next_delay(0.5), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
        assert_eq!(b.next_delay(0.0), Duration::from_secs(8));
        assert_eq!(b.next_delay(1.0), Duration::from_secs(12));
        assert_eq!(
            b.next_delay(7.0),
            Duration::from_secs(12),
            "out-of-range draws are clamped"
        );
    }
}
