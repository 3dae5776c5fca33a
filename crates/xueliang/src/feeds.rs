//! The district's event feeds on JetStream, read from the store: gate events and vision
//! events in their stored order (their `seq`), published by the notify lease's holder with
//! [`xl_notify::JetStreamOut`] beside the alert stream (ARCHITECTURE.md, "A district on
//! several nodes").

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use xl_store::Store;

/// Stored gate events as a JetStream feed: each on its community and kind, the payload the
/// event as `GET /api/v1/events/gates` shows it (the stored body).
pub(crate) struct StoreGateEvents(pub(crate) Store);

impl xl_notify::Feed for StoreGateEvents {
    async fn after(
        &self,
        seq: i64,
        limit: u32,
    ) -> Result<Vec<xl_notify::FeedEntry>, xl_notify::OutboxError> {
        let rows = self
            .0
            .gate_events_after(seq, limit)
            .await
            .map_err(outbox_error)?;
        rows.into_iter()
            .map(|r| {
                Ok(xl_notify::FeedEntry {
                    seq: r.seq,
                    community: r.community.to_string(),
                    kind: r.kind,
                    payload: json_bytes(&r.body)?,
                })
            })
            .collect()
    }

    async fn cursor(&self, name: &str) -> Result<i64, xl_notify::OutboxError> {
        feed_cursor(&self.0, name).await
    }

    async fn set_cursor(&self, name: &str, seq: i64) -> Result<(), xl_notify::OutboxError> {
        set_feed_cursor(&self.0, name, seq).await
    }
}

/// Stored vision events as a JetStream feed: each on its community and kind, the payload the
/// event as `GET /api/v1/events/vision` shows it ([`vision_event_json`]).
pub(crate) struct StoreVisionEvents(pub(crate) Store);

impl xl_notify::Feed for StoreVisionEvents {
    async fn after(
        &self,
        seq: i64,
        limit: u32,
    ) -> Result<Vec<xl_notify::FeedEntry>, xl_notify::OutboxError> {
        let rows = self
            .0
            .vision_events_after(seq, limit)
            .await
            .map_err(outbox_error)?;
        rows.into_iter()
            .map(|r| {
                Ok(xl_notify::FeedEntry {
                    seq: r.seq,
                    community: r.community.to_string(),
                    kind: r.kind.clone(),
                    payload: json_bytes(&vision_event_json(r))?,
                })
            })
            .collect()
    }

    async fn cursor(&self, name: &str) -> Result<i64, xl_notify::OutboxError> {
        feed_cursor(&self.0, name).await
    }

    async fn set_cursor(&self, name: &str, seq: i64) -> Result<(), xl_notify::OutboxError> {
        set_feed_cursor(&self.0, name, seq).await
    }
}

/// A stored vision event as the API shows it: the stored body (the event as the vision
/// pipeline serialised it: kind, camera, zone, at, track...) with the row's `id` and
/// `community`, and the row's camera, kind, zone and `at` where the body lacks them.
pub(crate) fn vision_event_json(r: xl_store::VisionEventRow) -> serde_json::Value {
    let mut v = r.body;
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), r.id.into());
        o.insert("community".into(), r.community.to_string().into());
        o.entry("camera")
            .or_insert_with(|| r.camera.to_string().into());
        o.entry("kind").or_insert_with(|| r.kind.into());
        if let Some(zone) = r.zone {
            o.entry("zone").or_insert_with(|| zone.into());
        }
        o.entry("at").or_insert_with(|| r.at.to_string().into());
    }
    v
}

fn json_bytes(v: &serde_json::Value) -> Result<Vec<u8>, xl_notify::OutboxError> {
    serde_json::to_vec(v).map_err(|e| xl_notify::OutboxError::new(xl_core::ErrorKind::Internal, e))
}

// Feed cursors are `feed.<name>` in the store, never `outbox.<name>`: outbox retention waits
// for every `outbox.*` cursor, and these follow other tables.
async fn feed_cursor(store: &Store, name: &str) -> Result<i64, xl_notify::OutboxError> {
    store
        .cursor(&format!("feed.{name}"))
        .await
        .map_err(outbox_error)
}

async fn set_feed_cursor(
    store: &Store,
    name: &str,
    seq: i64,
) -> Result<(), xl_notify::OutboxError> {
    store
        .set_cursor(&format!("feed.{name}"), seq)
        .await
        .map_err(outbox_error)
}

/// Wakes the gate event feed whenever this node stores gate events (the broadcast carries no
/// seq: the feed reads the store). Lagging only means more were stored: wake it too.
pub(crate) async fn wake_on_stored_gate_events(
    mut stored: tokio::sync::broadcast::Receiver<Arc<xl_gates::journal::StoredGateEvent>>,
    wake: tokio::sync::watch::Sender<i64>,
    shutdown: CancellationToken,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            r = stored.recv() => match r {
                Ok(_) | Err(RecvError::Lagged(_)) => wake.send_modify(|_| {}),
                Err(RecvError::Closed) => return,
            },
        }
    }
}

fn outbox_error(e: xl_store::StoreError) -> xl_notify::OutboxError {
    xl_notify::OutboxError::new(e.kind(), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(body: serde_json::Value) -> xl_store::VisionEventRow {
        xl_store::VisionEventRow {
            seq: 7,
            id: "018f-ab".into(),
            camera: "cam-1".parse().unwrap(),
            community: "xingfu".parse().unwrap(),
            kind: "entered_zone".into(),
            zone: Some("gate-area".into()),
            at: jiff::Timestamp::from_second(1_700_000_000).unwrap(),
            body,
        }
    }

    #[test]
    fn a_vision_event_is_its_body_with_the_rows_id_and_community() {
        // As the vision pipeline stores it: the body names kind, camera, zone and time.
        let body = serde_json::json!({
            "kind": "entered_zone", "camera": "cam-1", "track": 3, "zone": "gate-area",
            "class": "person", "at": "2023-11-14T22:13:20.123456Z",
        });
        let mut want = body.clone();
        want["id"] = "018f-ab".into();
        want["community"] = "xingfu".into();
        assert_eq!(vision_event_json(row(body)), want);
        // A body without them gets the row's.
        let v = vision_event_json(row(serde_json::json!({"track": 3})));
        assert_eq!(
            v,
            serde_json::json!({
                "track": 3, "id": "018f-ab", "community": "xingfu", "camera": "cam-1",
                "kind": "entered_zone", "zone": "gate-area", "at": "2023-11-14T22:13:20Z",
            })
        );
    }
}

/// The JetStream feeds this node runs while it holds the notify lease, for `/metrics`: none
/// on a node without the lease (another node publishes), so the district's figures are the
/// lease holder's.
#[derive(Default)]
pub(crate) struct FeedMetrics {
    running: std::sync::Mutex<Vec<(String, xl_notify::JetStreamOut)>>,
}

impl FeedMetrics {
    /// The feeds that started (stream name and handle); replaces the ones before.
    pub(crate) fn set(&self, feeds: Vec<(String, xl_notify::JetStreamOut)>) {
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = feeds;
    }
}

impl xl_core::metrics::MetricsSource for FeedMetrics {
    fn render_prometheus(&self, out: &mut String) {
        use std::fmt::Write;
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let stats: Vec<(&str, xl_notify::JetStreamOutStats)> = running
            .iter()
            .map(|(stream, out)| (stream.as_str(), out.stats()))
            .collect();
        type Figure = fn(&xl_notify::JetStreamOutStats) -> i64;
        let families: [(&str, &str, &str, Figure); 5] = [
            (
                "xueliang_jetstream_published_total",
                "counter",
                "Entries of a feed the stream stored, since this node took the notify lease.",
                |s| s.published as i64,
            ),
            (
                "xueliang_jetstream_duplicates_total",
                "counter",
                "Entries the stream had already (a republish), since this node took the notify lease.",
                |s| s.duplicates as i64,
            ),
            (
                "xueliang_jetstream_failures_total",
                "counter",
                "Publish attempts that failed and were retried, since this node took the notify lease.",
                |s| s.failures as i64,
            ),
            (
                "xueliang_jetstream_lag",
                "gauge",
                "Entries of a feed committed to the store and not yet acknowledged by the stream.",
                |s| s.lag,
            ),
            (
                "xueliang_jetstream_connected",
                "gauge",
                "1 while the feed's publisher is connected to NATS.",
                |s| i64::from(s.connected),
            ),
        ];
        for (name, kind, help, value) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (stream, s) in &stats {
                let _ = writeln!(out, "{name}{{stream=\"{stream}\"}} {}", value(s));
            }
        }
    }
}
