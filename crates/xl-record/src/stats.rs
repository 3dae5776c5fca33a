//! Recording's figures, rendered on `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters over the recorders that share them (the hub gives all of its recorders one).
#[derive(Debug, Default)]
pub struct RecordStats {
    /// Access units handed to a recorder.
    pub units_in: AtomicU64,
    /// The writer fell behind and its queue was full: the oldest units were dropped up to the
    /// next key frame.
    pub dropped_queue_full: AtomicU64,
    /// Units that came while waiting for a key frame (the start of a stream, or after a drop).
    pub dropped_awaiting_key: AtomicU64,
    /// Units that cannot be muxed (no stream started, not Annex B, no picture data, a key
    /// frame whose parameter sets do not describe a track).
    pub dropped_unusable: AtomicU64,
    /// Units given to a recorder that stopped (after a write error, or while it stops).
    pub dropped_stopped: AtomicU64,
    pub segments_opened: AtomicU64,
    pub segments_closed: AtomicU64,
    pub fragments_written: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Write errors; each stopped its recorder.
    pub write_errors: AtomicU64,
}

impl RecordStats {
    /// Units dropped for every reason.
    pub fn dropped(&self) -> u64 {
        [
            &self.dropped_queue_full,
            &self.dropped_awaiting_key,
            &self.dropped_unusable,
            &self.dropped_stopped,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl xl_core::metrics::MetricsSource for RecordStats {
    fn render_prometheus(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for (name, help, c) in [
            (
                "xueliang_recording_units_total",
                "Access units handed to recorders.",
                &self.units_in,
            ),
            (
                "xueliang_recording_segments_opened_total",
                "Recording segment files created.",
                &self.segments_opened,
            ),
            (
                "xueliang_recording_segments_closed_total",
                "Recording segments completed and fsynced.",
                &self.segments_closed,
            ),
            (
                "xueliang_recording_fragments_total",
                "Fragments (one a group of pictures) written to recording segments.",
                &self.fragments_written,
            ),
            (
                "xueliang_recording_bytes_total",
                "Bytes written to recording segments.",
                &self.bytes_written,
            ),
            (
                "xueliang_recording_write_errors_total",
                "Recording write errors, each of which stopped its recorder.",
                &self.write_errors,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                get(c)
            );
        }
        let _ = writeln!(
            out,
            "# HELP xueliang_recording_dropped_total Access units not recorded, by reason.\n\
             # TYPE xueliang_recording_dropped_total counter"
        );
        for (reason, c) in [
            ("queue_full", &self.dropped_queue_full),
            ("awaiting_key_frame", &self.dropped_awaiting_key),
            ("unusable", &self.dropped_unusable),
            ("stopped", &self.dropped_stopped),
        ] {
            let _ = writeln!(
                out,
                "xueliang_recording_dropped_total{{reason=\"{reason}\"}} {}",
                get(c)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xl_core::metrics::MetricsSource;

    #[test]
    fn figures_render_as_prometheus_counters() {
        let stats = RecordStats::default();
        RecordStats::add(&stats.units_in, 7);
        RecordStats::add(&stats.dropped_queue_full, 2);
        RecordStats::add(&stats.dropped_stopped, 1);
        let mut out = String::new();
        stats.render_prometheus(&mut out);
        assert!(
            out.contains("\nxueliang_recording_units_total 7\n"),
            "{out}"
        );
        assert!(
            out.contains("xueliang_recording_dropped_total{reason=\"queue_full\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("# TYPE xueliang_recording_bytes_total counter\n"));
        assert_eq!(stats.dropped(), 3);
    }
}
