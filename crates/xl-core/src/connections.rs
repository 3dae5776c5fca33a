//! Bounds on open connections, in all and per source address, for the servers that face the
//! network (the HTTP API, the embedded MQTT broker's front). Pure bookkeeping: the caller
//! accepts and closes the sockets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Open connections, in all and per address (IPv4-mapped IPv6 addresses count as IPv4).
#[derive(Debug)]
pub struct ConnectionBounds {
    max_total: usize,
    max_per_address: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// Which bound a connection is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Total,
    PerAddress,
}

impl ConnectionBounds {
    /// Bounds of at least one connection each.
    pub fn new(max_total: usize, max_per_address: usize) -> ConnectionBounds {
        ConnectionBounds {
            max_total: max_total.max(1),
            max_per_address: max_per_address.max(1),
            open: Mutex::new(Open::default()),
        }
    }

    pub fn max_total(&self) -> usize {
        self.max_total
    }

    /// Open connections in all.
    pub fn open(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a connection from `ip`, given back when the guard drops. With
    /// `per_address` false (a trusted proxy, which every user comes through) it counts only
    /// toward the total.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        per_address: bool,
    ) -> Result<ConnectionGuard, Refusal> {
        let ip = ip.to_canonical();
        let mut open = self.lock();
        if open.total >= self.max_total {
            return Err(Refusal::Total);
        }
        if per_address {
            let n = open.per_address.entry(ip).or_insert(0);
            if *n >= self.max_per_address {
                return Err(Refusal::PerAddress);
            }
            *n += 1;
        }
        open.total += 1;
        Ok(ConnectionGuard {
            bounds: Arc::clone(self),
            ip: per_address.then_some(ip),
        })
    }
}

/// A connection's place in [`ConnectionBounds`].
#[derive(Debug)]
pub struct ConnectionGuard {
    bounds: Arc<ConnectionBounds>,
    ip: Option<IpAddr>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut open = self.bounds.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(ip) = self.ip
            && let Some(n) = open.per_address.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_address.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_bounded_in_all_and_per_address() {
        let c = Arc::new(ConnectionBounds::new(5, 2));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let g1 = c.admit(a, true).unwrap();
        let _g2 = c.admit(a, true).unwrap();
        assert_eq!(c.admit(a, true).err(), Some(Refusal::PerAddress));
        // The same address as IPv4-mapped IPv6 counts as the same.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(c.admit(mapped, true).err(), Some(Refusal::PerAddress));
        drop(g1);
        let _g3 = c.admit(mapped, true).unwrap();
        let others: Vec<_> = (0..3)
            .map(|i| c.admit([10, 0, 1, i].into(), true).unwrap())
            .collect();
        assert_eq!(c.open(), 5);
        assert_eq!(c.admit(b, true).err(), Some(Refusal::Total));
        drop(others);
        assert_eq!(c.open(), 2);
        let _g4 = c.admit(b, true).unwrap();
    }

    #[test]
    fn a_trusted_proxy_counts_only_toward_the_total() {
        let c = Arc::new(ConnectionBounds::new(4, 1));
        let proxy: IpAddr = [10, 0, 0, 9].into();
        let held: Vec<_> = (0..3).map(|_| c.admit(proxy, false).unwrap()).collect();
        // Its own connections left the per-address count alone.
        let g = c.admit(proxy, true).unwrap();
        assert_eq!(c.admit(proxy, false).err(), Some(Refusal::Total));
        drop(held);
        assert_eq!(c.admit(proxy, true).err(), Some(Refusal::PerAddress));
        drop(g);
        assert_eq!(c.open(), 0);
    }

    #[test]
    fn bounds_are_at_least_one() {
        let c = Arc::new(ConnectionBounds::new(0, 0));
        assert_eq!(c.max_total(), 1);
        let _g = c.admit([10, 0, 0, 1].into(), true).unwrap();
        assert_eq!(
            c.admit([10, 0, 0, 2].into(), true).err(),
            Some(Refusal::Total)
        );
    }
}
