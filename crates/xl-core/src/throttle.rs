//! Rate limits for warnings that a remote party can cause at will (refused logins, junk
//! sockets, accept errors): a few lines get through, the rest are counted and the count is
//! reported with the next line that does. Pure: the caller passes the time in.

use std::time::{Duration, Instant};

/// How often a repeated warning is logged at most, unless a place has a reason for another
/// interval.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// Lets the first `burst` occurrences of each window of `interval` through and holds back the
/// rest, counting them. A window starts with the first occurrence after the previous one ended.
///
/// With `burst` 1 (see [`LogThrottle::new`]) that is "at most one line every `interval`, with
/// the number held back since the last one". A caller that must say the count even when
/// nothing follows a burst calls [`LogThrottle::flush`] on a timer.
#[derive(Debug, Clone)]
pub struct LogThrottle {
    interval: Duration,
    burst: u32,
    window_start: Option<Instant>,
    admitted: u32,
    held: u64,
}

impl LogThrottle {
    /// At most one occurrence every `interval`.
    pub const fn new(interval: Duration) -> LogThrottle {
        LogThrottle::with_burst(interval, 1)
    }

    /// At most `burst` occurrences (at least one) in each window of `interval`.
    pub const fn with_burst(interval: Duration, burst: u32) -> LogThrottle {
        LogThrottle {
            interval,
            burst: if burst == 0 { 1 } else { burst },
            window_start: None,
            admitted: 0,
            held: 0,
        }
    }

    /// One occurrence at `now`: `Some(n)` when it may be logged, `n` being how many were held
    /// back since the last one that was; `None` when it is held back (and counted).
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        self.end_window(now);
        self.window_start.get_or_insert(now);
        if self.admitted < self.burst {
            self.admitted += 1;
            return Some(std::mem::take(&mut self.held));
        }
        self.held += 1;
        None
    }

    /// How many were held back in a window that has ended by `now`, when any were (the
    /// count is then reported here and not again by [`LogThrottle::admit`]).
    pub fn flush(&mut self, now: Instant) -> Option<u64> {
        if self.end_window(now) && self.held > 0 {
            return Some(std::mem::take(&mut self.held));
        }
        None
    }

    /// Closes the current window if it has ended by `now`; whether it did.
    fn end_window(&mut self, now: Instant) -> bool {
        match self.window_start {
            Some(start) if now.saturating_duration_since(start) >= self.interval => {
                self.window_start = None;
                self.admitted = 0;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An occurrence at `at_ms` after the start, or a flush there.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        Admit(u64),
        Flush(u64),
    }
    use Step::{Admit, Flush};

    /// A named case: steps and what each answers.
    type Case<'a> = (&'a str, &'a [(Step, Option<u64>)]);

    fn run(mut t: LogThrottle, steps: &[(Step, Option<u64>)]) {
        let t0 = Instant::now();
        for (i, &(step, want)) in steps.iter().enumerate() {
            let got = match step {
                Admit(ms) => t.admit(t0 + Duration::from_millis(ms)),
                Flush(ms) => t.flush(t0 + Duration::from_millis(ms)),
            };
            assert_eq!(got, want, "step {i}: {step:?}");
        }
    }

    #[test]
    fn one_per_interval_reports_what_it_held_back() {
        let cases: &[Case] = &[
            ("the first goes through", &[(Admit(0), Some(0))]),
            (
                "within the interval, held back; after it, the count",
                &[
                    (Admit(0), Some(0)),
                    (Admit(1), None),
                    (Admit(9_999), None),
                    (Admit(10_000), Some(2)),
                    (Admit(10_001), None),
                ],
            ),
            (
                "the interval counts from the last one let through",
                &[
                    (Admit(0), Some(0)),
                    (Admit(15_000), Some(0)),
                    (Admit(24_999), None),
                    (Admit(25_000), Some(1)),
                ],
            ),
            (
                "a long quiet spell changes nothing",
                &[(Admit(0), Some(0)), (Admit(3_600_000), Some(0))],
            ),
            (
                "a time before the window's start (another thread's clock read) is within it",
                &[
                    (Admit(5_000), Some(0)),
                    (Admit(0), None),
                    (Admit(15_000), Some(1)),
                ],
            ),
        ];
        for (name, steps) in cases {
            eprintln!("case: {name}");
            run(LogThrottle::new(WARN_EVERY), steps);
        }
    }

    #[test]
    fn a_burst_then_a_count_flushed_when_the_window_ends() {
        let cases: &[Case] = &[
            (
                "the first three of a window go through",
                &[
                    (Admit(0), Some(0)),
                    (Admit(1), Some(0)),
                    (Admit(2), Some(0)),
                    (Admit(3), None),
                    (Admit(4), None),
                ],
            ),
            (
                "the count comes with the next window's first when nothing flushed it",
                &[
                    (Admit(0), Some(0)),
                    (Admit(0), Some(0)),
                    (Admit(0), Some(0)),
                    (Admit(0), None),
                    (Admit(60_000), Some(1)),
                    (Admit(60_000), Some(0)),
                ],
            ),
            (
                "a flush says the count once the window ended, and only once",
                &[
                    (Admit(0), Some(0)),
                    (Admit(0), Some(0)),
                    (Admit(0), Some(0)),
                    (Admit(0), None),
                    (Admit(10), None),
                    (Flush(59_999), None),
                    (Flush(60_000), Some(2)),
                    (Flush(180_000), None),
                    (Admit(180_000), Some(0)),
                ],
            ),
            (
                "nothing to flush without a window, or when nothing was held back",
                &[
                    (Flush(0), None),
                    (Admit(0), Some(0)),
                    (Flush(60_000), None),
                    (Admit(60_001), Some(0)),
                ],
            ),
        ];
        for (name, steps) in cases {
            eprintln!("case: {name}");
            run(LogThrottle::with_burst(Duration::from_secs(60), 3), steps);
        }
    }

    #[test]
    fn a_burst_of_zero_is_one() {
        run(
            LogThrottle::with_burst(WARN_EVERY, 0),
            &[(Admit(0), Some(0)), (Admit(1), None)],
        );
    }
}
