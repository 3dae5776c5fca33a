//! Exponential back-off for reconnect and accept loops. Pure: the caller draws the jitter and
//! does the waiting.

use std::io;
use std::time::Duration;

/// Doubles the delay after each failure up to `max`. Reconnect loops take it with up to ±20%
/// jitter ([`Backoff::next_delay`]), so that hundreds of cameras behind one failed switch
/// don't all reconnect in the same instant; a loop that alone waits on it (an accept loop)
/// takes it as is ([`Backoff::next_exact`]).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `initial`; a `max` below it is taken as `initial`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            next: initial,
        }
    }

    /// The delay before the next attempt, jittered by ±20%. `unit_random` is a uniform draw
    /// from `[0, 1)`.
    pub fn next_delay(&mut self, unit_random: f64) -> Duration {
        let factor = 0.8 + 0.4 * unit_random.clamp(0.0, 1.0);
        self.next_exact().mul_f64(factor)
    }

    /// The delay before the next attempt, without jitter.
    pub fn next_exact(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        base
    }

    /// Back to the initial delay: the last attempt succeeded.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// Errors of one incoming connection, not of the listener: an accept loop accepts the next one
/// at once. Others (EMFILE, ENFILE, ENOBUFS: nothing to accept with until something closes)
/// call for a back-off instead of a spin.
pub fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let ms = Duration::from_millis;
        let cases: &[(&str, Duration, Duration, &[u64])] = &[
            (
                "reconnect",
                ms(1000),
                ms(10_000),
                &[1000, 2000, 4000, 8000, 10_000, 10_000],
            ),
            (
                "accept",
                ms(10),
                ms(1000),
                &[10, 20, 40, 80, 160, 320, 640, 1000, 1000],
            ),
            (
                "a cap below the start is the start",
                ms(500),
                ms(100),
                &[500, 500],
            ),
        ];
        for &(name, initial, max, want) in cases {
            let mut b = Backoff::new(initial, max);
            let got: Vec<u64> = want
                .iter()
                .map(|_| b.next_exact().as_millis() as u64)
                .collect();
            assert_eq!(got, want, "{name}");
            b.reset();
            assert_eq!(b.next_exact(), initial, "{name}");
        }
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let cases = [
            (0.0, Duration::from_secs(8)),
            (0.5, Duration::from_secs(10)),
            (1.0, Duration::from_secs(12)),
            (7.0, Duration::from_secs(12)),
            (-1.0, Duration::from_secs(8)),
        ];
        for (draw, want) in cases {
            let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
            assert_eq!(
                b.next_delay(draw),
                want,
                "draw {draw} (out-of-range draws are clamped)"
            );
        }
    }

    #[test]
    fn only_errors_of_one_connection_skip_the_back_off() {
        use io::ErrorKind as K;
        for (kind, want) in [
            (K::ConnectionAborted, true),
            (K::ConnectionReset, true),
            (K::ConnectionRefused, true),
            (K::Interrupted, true),
            (K::OutOfMemory, false),
            (K::Other, false),
        ] {
            assert_eq!(
                is_connection_error(&io::Error::from(kind)),
                want,
                "{kind:?}"
            );
        }
        // EMFILE, as accept(2) reports it.
        assert!(!is_connection_error(&io::Error::from_raw_os_error(24)));
    }
}
