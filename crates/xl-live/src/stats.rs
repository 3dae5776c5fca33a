//! Live view's figures, rendered on `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use xl_core::gate_status::{LATENCY_BUCKETS_SECS, LatencyHistogram};

/// Counters over every live session of the hub.
#[derive(Debug, Default)]
pub struct LiveStats {
    pub sessions_started: AtomicU64,
    pub sessions_open: AtomicU64,
    pub fragments_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// A viewer's queue was full: what it held was dropped and it waits for a key frame.
    pub dropped_slow_viewer: AtomicU64,
    /// Units that arrived while a viewer waited for a key frame.
    pub dropped_awaiting_key: AtomicU64,
    /// Units still queued when the stream restarted (camera reconnect).
    pub dropped_new_stream: AtomicU64,
    /// Viewers cut off because their socket did not take what was sent in time.
    pub viewers_cut_off: AtomicU64,
    /// Streams pulled on demand (a main stream someone watches): pulls started.
    pub pulls_started: AtomicU64,
    /// H.264 copies of H.265 streams: transcoders started.
    pub transcoders_started: AtomicU64,
    /// From an access unit's arrival to its fragment handed to the viewer's socket (pictures
    /// replayed from the GOP cache to a new viewer are not counted).
    pub fragment_latency: LatencyHistogram,
}

impl xl_core::metrics::MetricsSource for LiveStats {
    fn render_prometheus(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "xueliang_live_sessions_total",
            "Live view sessions started.",
            get(&self.sessions_started),
        );
        counter(
            "xueliang_live_fragments_total",
            "fMP4 fragments sent to live viewers.",
            get(&self.fragments_sent),
        );
        counter(
            "xueliang_live_bytes_total",
            "Bytes sent to live viewers.",
            get(&self.bytes_sent),
        );
        counter(
            "xueliang_live_pulls_started_total",
            "Streams pulled on demand for live view (main streams), pulls started.",
            get(&self.pulls_started),
        );
        counter(
            "xueliang_live_transcoders_started_total",
            "H.264 copies of H.265 streams for browsers that cannot play H.265, started.",
            get(&self.transcoders_started),
        );
        counter(
            "xueliang_live_viewers_cut_off_total",
            "Live viewers disconnected because they stopped reading.",
            get(&self.viewers_cut_off),
        );
        let _ = writeln!(
            out,
            "# HELP xueliang_live_sessions Live view sessions open.\n\
             # TYPE xueliang_live_sessions gauge\nxueliang_live_sessions {}",
            get(&self.sessions_open)
        );
        let _ = writeln!(
            out,
            "# HELP xueliang_live_dropped_total Access units not sent to a live viewer, by reason.\n\
             # TYPE xueliang_live_dropped_total counter"
        );
        let h = &self.fragment_latency;
        let _ = writeln!(
            out,
            "# HELP xueliang_live_fragment_latency_seconds From an access unit's arrival to its \
             fragment handed to a live viewer's socket.\n\
             # TYPE xueliang_live_fragment_latency_seconds histogram"
        );
        for (le, n) in LATENCY_BUCKETS_SECS.iter().zip(h.cumulative()) {
            let _ = writeln!(
                out,
                "xueliang_live_fragment_latency_seconds_bucket{{le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "xueliang_live_fragment_latency_seconds_bucket{{le=\"+Inf\"}} {}\n\
             xueliang_live_fragment_latency_seconds_sum {}\n\
             xueliang_live_fragment_latency_seconds_count {}",
            h.count(),
            h.sum_secs(),
            h.count()
        );
        for (reason, c) in [
            ("slow_viewer", &self.dropped_slow_viewer),
            ("awaiting_key_frame", &self.dropped_awaiting_key),
            ("new_stream", &self.dropped_new_stream),
        ] {
            let _ = writeln!(
                out,
                "xueliang_live_dropped_total{{reason=\"{reason}\"}} {}",
                get(c)
            );
        }
    }
}
