//! What the front does with connections it cannot or will not serve: a bound on open
//! connections (in all and per source address), and warnings about bad ones that stay few
//! however many a stranger opens (500 junk sockets logged 500 WARN lines).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Open client connections at most. Each costs the process three descriptors (the client's
/// socket, the front's to rumqttd and rumqttd's end of it); see [`Connections::new`].
pub(super) const MAX_CONNECTIONS: usize = 1024;
/// Open client connections from one address at most: a site's gates behind one NAT router
/// share an address, a bridge needs one connection for all its gates.
pub(super) const MAX_CONNECTIONS_PER_ADDRESS: usize = 128;
/// Bad connections logged one by one per [`BAD_LOG_WINDOW`]; the rest are summed up.
pub(super) const BAD_LOG_FIRST: u32 = 5;
pub(super) const BAD_LOG_WINDOW: Duration = Duration::from_secs(60);

/// Open connections, in all and per address.
pub(super) struct Connections {
    max_total: usize,
    max_per_address: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// Why a connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    Total,
    PerAddress,
}

impl Refusal {
    pub(super) fn reason(self) -> &'static str {
        match self {
            Refusal::Total => "too many open MQTT connections",
            Refusal::PerAddress => "too many open MQTT connections from this address",
        }
    }
}

impl Connections {
    /// `max_total` is cut to what a quarter of the descriptor limit `nofile` allows (three
    /// descriptors a connection), so that cameras, the store and the API keep the rest.
    pub(super) fn new(max_total: usize, max_per_address: usize, nofile: Option<u64>) -> Self {
        let share = nofile.map_or(usize::MAX, |n| {
            usize::try_from(n / 4 / 3).unwrap_or(usize::MAX)
        });
        Connections {
            max_total: max_total.min(share).max(1),
            max_per_address: max_per_address.max(1),
            open: Mutex::new(Open::default()),
        }
    }

    pub(super) fn max_total(&self) -> usize {
        self.max_total
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a connection from `ip`, given back when the guard drops.
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionGuard, Refusal> {
        let ip = ip.to_canonical();
        let mut open = self.lock();
        if open.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let n = open.per_address.entry(ip).or_insert(0);
        if *n >= self.max_per_address {
            return Err(Refusal::PerAddress);
        }
        *n += 1;
        open.total += 1;
        Ok(ConnectionGuard {
            connections: Arc::clone(self),
            ip,
        })
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.lock().total
    }
}

/// A connection's place in [`Connections`].
pub(super) struct ConnectionGuard {
    connections: Arc<Connections>,
    ip: IpAddr,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut open = self.connections.lock();
        open.total -= 1;
        if let Some(n) = open.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_address.remove(&self.ip);
            }
        }
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
/// summed up in one line when the window ends. Pure: the caller gives the time.
#[derive(Debug, Default)]
pub(super) struct BadLog {
    window_start: Option<Instant>,
    logged: u32,
    held: u64,
    last: Option<(SocketAddr, String)>,
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
        let summary = self.roll(now);
        if self.window_start.is_none() {
            self.window_start = Some(now);
        }
        if self.logged < BAD_LOG_FIRST {
            self.logged += 1;
            return Said { one: true, summary };
        }
        self.held += 1;
        self.last = Some((peer, reason.to_owned()));
        Said {
            one: false,
            summary,
        }
    }

    /// The summary of a window that has ended by `now`, if it held any back (called on a
    /// timer, so the last burst is summed up even when nothing follows it).
    pub(super) fn flush(&mut self, now: Instant) -> Option<Summary> {
        self.roll(now)
    }

    fn roll(&mut self, now: Instant) -> Option<Summary> {
        let start = self.window_start?;
        if now.saturating_duration_since(start) < BAD_LOG_WINDOW {
            return None;
        }
        let held = std::mem::take(&mut self.held);
        self.window_start = None;
        self.logged = 0;
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
    fn connections_are_bounded_in_all_and_per_address() {
        let c = Arc::new(Connections::new(5, 2, None));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let g1 = c.admit(a).unwrap();
        let _g2 = c.admit(a).unwrap();
        assert_eq!(c.admit(a).err(), Some(Refusal::PerAddress));
        // The same address as IPv4-mapped IPv6 counts as the same.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(c.admit(mapped).err(), Some(Refusal::PerAddress));
        drop(g1);
        let _g3 = c.admit(mapped).unwrap();
        let others: Vec<_> = (0..3)
            .map(|i| c.admit([10, 0, 1, i].into()).unwrap())
            .collect();
        assert_eq!(c.open(), 5);
        assert_eq!(c.admit(b).err(), Some(Refusal::Total));
        drop(others);
        assert_eq!(c.open(), 2);
        let _g4 = c.admit(b).unwrap();
        // A quarter of the descriptor limit, three descriptors a connection.
        assert_eq!(Connections::new(1024, 128, Some(1200)).max_total(), 100);
        assert_eq!(Connections::new(1024, 128, Some(65536)).max_total(), 1024);
        assert!(nofile_limit().is_some_and(|n| n > 0));
    }
}
