//! Latency histograms and stage counters, lock-free to record and cheap to read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets grow by 5%: percentiles are within 5% of the true value, from 10 µs to ~27 minutes.
const GROWTH: f64 = 1.05;
const MIN_US: f64 = 10.0;
const BUCKETS: usize = 300;

/// A latency histogram with logarithmic buckets.
pub struct Histogram {
    counts: Box<[AtomicU64]>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Histogram {
    fn bucket(d: Duration) -> usize {
        let us = d.as_secs_f64() * 1e6;
        if us <= MIN_US {
            return 0;
        }
        (((us / MIN_US).ln() / GROWTH.ln()).ceil() as usize).min(BUCKETS - 1)
    }

    fn upper(bucket: usize) -> Duration {
        Duration::from_secs_f64(MIN_US * GROWTH.powi(bucket as i32) / 1e6)
    }

    pub fn record(&self, d: Duration) {
        self.counts[Self::bucket(d)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The upper bound of the bucket holding quantile `q` (0..1); zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::upper(i);
            }
        }
        Self::upper(BUCKETS - 1)
    }

    pub fn reset(&self) {
        self.counts
            .iter()
            .for_each(|c| c.store(0, Ordering::Relaxed));
    }
}

/// One stage of the pipeline: items through it, time spent in it, latency of each item.
#[derive(Default)]
pub struct Stage {
    pub items: AtomicU64,
    pub busy_ns: AtomicU64,
    pub latency: Histogram,
}

impl Stage {
    /// Records one call that handled `items` and took `took` (its latency).
    pub fn record(&self, items: u64, took: Duration) {
        self.items.fetch_add(items, Ordering::Relaxed);
        self.busy_ns
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.latency.record(took);
    }

    pub fn items(&self) -> u64 {
        self.items.load(Ordering::Relaxed)
    }

    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed))
    }

    pub fn reset(&self) {
        self.items.store(0, Ordering::Relaxed);
        self.busy_ns.store(0, Ordering::Relaxed);
        self.latency.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_five_percent() {
        let h = Histogram::default();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.count(), 100);
        let p50 = h.quantile(0.5).as_secs_f64() * 1e3;
        let p99 = h.quantile(0.99).as_secs_f64() * 1e3;
        assert!((50.0..=52.5).contains(&p50), "p50 {p50}");
        assert!((99.0..=104.0).contains(&p99), "p99 {p99}");
        assert_eq!(Histogram::default().quantile(0.5), Duration::ZERO);
    }
}
