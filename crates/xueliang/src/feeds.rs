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
