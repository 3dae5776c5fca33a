//! What the front does with connections it cannot or will not serve: a bound on open
//! connections (in all and per source address), and warnings about bad ones that stay few
//! however many a stranger opens (500 junk sockets logged 500 WARN lines).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use xl_core::connections::{ConnectionBounds, Refusal};
use xl_core::throttle::LogThrottle;

/// Open client connections at most. Each costs the process three descriptors (the client's
/// socket, the front's to rumqttd and rumqttd's end of it); see [`connection_bounds`].
pub(super) const MAX_CONNECTIONS: usize = 1024;
/// Open client connections from one address at most: a site's gates behind one NAT router
/// share an address, a bridge needs one connection for all its gates.
pub(super) const MAX_CONNECTIONS_PER_ADDRESS: usize = 128;
/// Bad connections logged one by one per [`BAD_LOG_WINDOW`]; the rest are summed up.
pub(super) const BAD_LOG_FIRST: u32 = 5;
pub(super) const BAD_LOG_WINDOW: Duration = Duration::from_secs(60);

/// Bounds on open connections, in all and per address; `max_total` is cut to what a quarter
/// of the descriptor limit `nofile` allows (three descriptors a connection), so that cameras,
/// the store and the API keep the rest.
pub(super) fn connection_bounds(
    max_total: usize,
    max_per_address: usize,
    nofile: Option<u64>,
) -> ConnectionBounds {
    let share = nofile.map_or(usize::MAX, |n| {
        usize::try_from(n / 4 / 3).unwrap_or(usize::MAX)
    });
    ConnectionBounds::new(max_total.min(share), max_per_address)
}

/// Why a connection was closed at once, for the log.
pub(super) fn refusal_reason(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::Total => "too many open MQTT connections",
        Refusal::PerAddress => "too many open MQTT connections from this address",
    }
}

/// The descriptor limit of this process (the soft `RLIMIT_NOFILE`), from /proc; `None` where
/// it cannot be read or is unlimited.
pub(super) fn nofile_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Warnings about connections closed for bad packets, idleness or a bound: the first
/// [`BAD_LOG_FIRST`] of each window of [`BAD_LOG_WINDOW`] one by one with their peer, the rest
/// summed up in one line when the window ends, naming the last one held back. Pure: the
/// caller gives the time.
#[derive(Debug)]
pub(super) struct BadLog {
    throttle: LogThrottle,
    last: Option<(SocketAddr, String)>,
}

impl Default for BadLog {
    fn default() -> Self {
        BadLog {
            throttle: LogThrottle::with_burst(BAD_LOG_WINDOW, BAD_LOG_FIRST),
            last: None,
        }
    }
}

/// What the caller logs for one bad connection.
#[derive(Debug, PartialEq)]
pub(super) struct Said {
    /// Log this connection on its own line.
    pub one: bool,
    /// The sum of the previous window, to log first.
    pub summary: Option<Summary>,
}

/// "`held` more connections closed: the last from `peer`, for `reason`".
#[derive(Debug, PartialEq)]
pub(super) struct Summary {
    pub held: u64,
    pub peer: SocketAddr,
    pub reason: String,
}

impl BadLog {
    /// One more bad connection at `now`.
    pub(super) fn record(&mut self, now: Instant, peer: SocketAddr, reason: &str) -> Said {
        match self.throttle.admit(now) {
            Some(held) => Said {
                one: true,
                summary: self.summary(held),
            },
            None => {
                self.last = Some((peer, reason.to_owned()));
                Said {
                    one: false,
                    summary: None,
                }
            }
        }
    }

    /// The summary of a window that has ended by `now`, if it held any back (called on a
    /// timer, so the last burst is summed up even when nothing follows it).
    pub(super) fn flush(&mut self, now: Instant) -> Option<Summary> {
        let held = self.throttle.flush(now)?;
        self.summary(held)
    }

    /// "`held` more, the last of them from this peer for this reason"; `None` when none were
    /// held back.
    fn summary(&mut self, held: u64) -> Option<Summary> {
        if held == 0 {
            return None;
        }
        let (peer, reason) = self.last.take()?;
        Some(Summary { held, peer, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n], 40000))
    }

    /// Finding 9 of the security probe: 500 junk sockets, 500 WARN lines.
    #[test]
    fn bad_connections_are_logged_a_few_a_minute_then_summed_up() {
        let mut log = BadLog::default();
        let t0 = Instant::now();
        let mut lines = 0;
        for i in 0..500u32 {
            let said = log.record(t0 + Duration::from_millis(i.into()), peer(1), "junk");
            assert_eq!(said.summary, None);
            lines += u32::from(said.one);
        }
        assert_eq!(lines, BAD_LOG_FIRST);
        // Nothing more within the window; after it, one summary of what was held back.
        assert_eq!(log.flush(t0 + Duration::from_secs(59)), None);
        let s = log.flush(t0 + BAD_LOG_WINDOW).unwrap();
        assert_eq!(s.held, 500 - u64::from(BAD_LOG_FIRST));
        assert_eq!((s.peer, s.reason.as_str()), (peer(1), "junk"));
        assert_eq!(log.flush(t0 + 3 * BAD_LOG_WINDOW), None);

        // A new window logs its first ones again; its summary comes with the next record
        // when no timer flushed it, naming the last peer and reason held back.
        let t1 = t0 + 10 * BAD_LOG_WINDOW;
        for i in 0..BAD_LOG_FIRST + 2 {
            let said = log.record(t1, peer(i as u8), &format!("r{i}"));
            assert_eq!(said.one, i < BAD_LOG_FIRST);
        }
        let said = log.record(t1 + BAD_LOG_WINDOW, peer(99), "later");
        assert_eq!(
            said,
            Said {
                one: true,
                summary: Some(Summary {
                    held: 2,
                    peer: peer(BAD_LOG_FIRST as u8 + 1),
                    reason: format!("r{}", BAD_LOG_FIRST + 1)
                })
            }
        );
    }

    #[test]
    fn a_quarter_of_the_descriptor_limit_three_descriptors_a_connection() {
        assert_eq!(connection_bounds(1024, 128, Some(1200)).max_total(), 100);
        assert_eq!(connection_bounds(1024, 128, Some(65536)).max_total(), 1024);
        assert_eq!(connection_bounds(1024, 128, None).max_total(), 1024);
        assert!(nofile_limit().is_some_and(|n| n > 0));
    }
}
