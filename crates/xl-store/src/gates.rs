//! Gate events, dead letters and vision events.

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use sqlx::any::AnyRow;
use xl_core::{CameraId, CommunityId, GateId};

use crate::sql::{Filter, Reader, db, json_text, ms, opt_ms, text};
use crate::{Store, StoreError, next_seq};

/// A gate event to store (the gate writer's batch).
#[derive(Debug, Clone, PartialEq)]
pub struct NewGateEvent {
    /// Unique; a duplicate fails the whole batch.
    pub id: String,
    pub gate: GateId,
    pub community: CommunityId,
    /// The camera that watches the gate, if any.
    pub camera: Option<CameraId>,
    pub firmware: String,
    /// The gate event kind's name.
    pub kind: String,
    /// On the hub's clock.
    pub received_at: Timestamp,
    /// The device's time, when the payload fixes it.
    pub occurred_at: Option<Timestamp>,
    pub dedup_key: String,
    /// Evidence file (relative path) the transport saved, if any.
    pub evidence: Option<String>,
    /// The whole stored event as JSON.
    pub body: Value,
}

/// A stored gate event: the same fields plus the store's `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct GateEventRow {
    /// Increasing and gap-free in storing order.
    pub seq: i64,
    pub id: String,
    pub gate: GateId,
    pub community: CommunityId,
    pub camera: Option<CameraId>,
    pub firmware: String,
    pub kind: String,
    pub received_at: Timestamp,
    pub occurred_at: Option<Timestamp>,
    pub dedup_key: String,
    pub evidence: Option<String>,
    pub body: Value,
}

/// A payload that could not be turned into a gate event.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeadLetter {
    pub id: String,
    pub received_at: Timestamp,
    pub firmware: Option<String>,
    pub gate: Option<GateId>,
    /// The error with its location.
    pub error: String,
    /// Raw bytes (base64), topic or path, peer... as JSON.
    pub body: Value,
}

/// A stored dead letter.
pub type DeadLetterRow = NewDeadLetter;

/// Which gate events to list. `None` = any; `Some(vec)` = only these (an empty vec matches
/// nothing). Times are on `received_at`, `[from, to)`. Newest first.
#[derive(Debug, Clone, Default)]
pub struct GateEventFilter {
    pub gates: Option<Vec<GateId>>,
    pub communities: Option<Vec<CommunityId>>,
    pub kinds: Option<Vec<String>>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub limit: u32,
}

/// A vision event to keep (zone entry, dwell, count over a limit).
#[derive(Debug, Clone, PartialEq)]
pub struct NewVisionEvent {
    pub id: String,
    pub camera: CameraId,
    pub community: CommunityId,
    pub kind: String,
    pub zone: Option<String>,
    pub at: Timestamp,
    /// The whole event as JSON.
    pub body: Value,
}

/// Gate events inserted by one statement (12 parameters each: far below SQLite's 32,766 and
/// PostgreSQL's 65,535).
const INSERT_CHUNK: usize = 256;

/// The receive times (ms) of the stored gate events with the dedup keys of `events`, by key,
/// within `window_ms` of the batch's first and last receipt.
async fn stored_dedup_keys<'a>(
    tx: &mut crate::Tx,
    events: &'a [NewGateEvent],
    window_ms: i64,
) -> Result<std::collections::HashMap<&'a str, Vec<i64>>, StoreError> {
    const OP: &str = "looking up gate event dedup keys";
    let mut near: std::collections::HashMap<&'a str, Vec<i64>> = Default::default();
    let (Some(first), Some(last)) = (
        events.iter().map(|e| ms(e.received_at)).min(),
        events.iter().map(|e| ms(e.received_at)).max(),
    ) else {
        return Ok(near);
    };
    let keys: Vec<&'a str> = {
        let mut seen = std::collections::HashSet::new();
        events
            .iter()
            .map(|e| e.dedup_key.as_str())
            .filter(|k| seen.insert(*k))
            .collect()
    };
    for chunk in keys.chunks(INSERT_CHUNK) {
        let list = (0..chunk.len())
            .map(|i| format!("${}", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT dedup_key, received_at FROM gate_events \
             WHERE received_at >= $1 AND received_at <= $2 AND dedup_key IN ({list})"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(first.saturating_sub(window_ms))
            .bind(last.saturating_add(window_ms));
        for k in chunk {
            q = q.bind(*k);
        }
        for row in q.fetch_all(&mut **tx).await.map_err(db(OP))? {
            let r = Reader { row: &row, op: OP };
            let key: String = r.text("dedup_key")?;
            if let Some(k) = chunk.iter().find(|k| **k == key) {
                near.entry(*k).or_default().push(r.int("received_at")?);
            }
        }
    }
    Ok(near)
}

/// Inserts `events` numbered from `first`, in one statement.
async fn insert_gate_events(
    tx: &mut crate::Tx,
    events: &[&NewGateEvent],
    first: i64,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let rows = (0..events.len())
        .map(|i| {
            let p = (1..=12)
                .map(|c| format!("${}", i * 12 + c))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({p})")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO gate_events (seq, id, gate, community, camera, firmware, kind, \
         received_at, occurred_at, dedup_key, evidence, body) VALUES {rows}"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (i, e) in events.iter().enumerate() {
        q = q
            .bind(first + i as i64)
            .bind(e.id.as_str())
            .bind(e.gate.as_str())
            .bind(e.community.as_str())
            .bind(e.camera.as_ref().map(|c| c.as_str().to_owned()))
            .bind(e.firmware.as_str())
            .bind(e.kind.as_str())
            .bind(ms(e.received_at))
            .bind(opt_ms(e.occurred_at))
            .bind(e.dedup_key.as_str())
            .bind(e.evidence.clone())
            .bind(json_text(&e.body));
    }
    q.execute(&mut **tx).await.map(|_| ())
}

/// What [`Store::insert_gate_batch_once`] did with a batch's gate events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GateBatchStored {
    /// Events stored (each with a new `seq`).
    pub stored: usize,
    /// Events skipped: their dedup key was already stored within the window (by another node,
    /// an earlier batch, or earlier in the same batch).
    pub duplicates: usize,
}

/// A stored vision event: the same fields plus the store's `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionEventRow {
    /// Increasing and gap-free in storing order, from 1. 0 for an event stored before vision
    /// events were numbered (migration 0009): such events are listed but not in the feed
    /// ([`Store::vision_events_after`]).
    pub seq: i64,
    pub id: String,
    pub camera: CameraId,
    pub community: CommunityId,
    pub kind: String,
    pub zone: Option<String>,
    pub at: Timestamp,
    pub body: Value,
}

/// Which vision events to list; same conventions as [`GateEventFilter`], times on `at`.
#[derive(Debug, Clone, Default)]
pub struct VisionEventFilter {
    pub cameras: Option<Vec<CameraId>>,
    pub communities: Option<Vec<CommunityId>>,
    pub kinds: Option<Vec<String>>,
    pub zones: Option<Vec<String>>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub limit: u32,
}

const GATE_COLS: &str = "seq, id, gate, community, camera, firmware, kind, received_at, \
     occurred_at, dedup_key, evidence, body";

fn gate_row(row: &AnyRow, op: &'static str) -> Result<GateEventRow, StoreError> {
    let r = Reader { row, op };
    Ok(GateEventRow {
        seq: r.int("seq")?,
        id: r.text("id")?,
        gate: r.parse("gate")?,
        community: r.parse("community")?,
        camera: r.opt_parse("camera")?,
        firmware: r.text("firmware")?,
        kind: r.text("kind")?,
        received_at: r.ts("received_at")?,
        occurred_at: r.opt_ts("occurred_at")?,
        dedup_key: r.text("dedup_key")?,
        evidence: r.opt_text("evidence")?,
        body: r.json("body")?,
    })
}

fn dead_letter_row(row: &AnyRow, op: &'static str) -> Result<DeadLetterRow, StoreError> {
    let r = Reader { row, op };
    Ok(DeadLetterRow {
        id: r.text("id")?,
        received_at: r.ts("received_at")?,
        firmware: r.opt_text("firmware")?,
        gate: r.opt_parse("gate")?,
        error: r.text("error")?,
        body: r.json("body")?,
    })
}

const VISION_COLS: &str = "seq, id, camera, community, kind, zone, at, body";

fn vision_row(row: &AnyRow, op: &'static str) -> Result<VisionEventRow, StoreError> {
    let r = Reader { row, op };
    Ok(VisionEventRow {
        seq: r.opt_int("seq")?.unwrap_or(0),
        id: r.text("id")?,
        camera: r.parse("camera")?,
        community: r.parse("community")?,
        kind: r.text("kind")?,
        zone: r.opt_text("zone")?,
        at: r.ts("at")?,
        body: r.json("body")?,
    })
}

impl Store {
    /// Stores a batch of gate events and dead letters in one transaction, giving each event
    /// the next `seq`. A duplicate event or dead-letter id fails the whole batch (nothing is
    /// stored) with [`StoreError::Duplicate`] naming it.
    pub async fn insert_gate_batch(
        &self,
        events: &[NewGateEvent],
        dead_letters: &[NewDeadLetter],
    ) -> Result<(), StoreError> {
        self.store_gate_batch(events, dead_letters, None)
            .await
            .map(|_| ())
    }

    /// [`Store::insert_gate_batch`] for hub nodes sharing the database, each of which ingests
    /// every gate event: an event whose `dedup_key` is already stored with a `received_at`
    /// within `window` of its own (either side, bounds included) is skipped, as is a second
    /// event of the same key within the window in the batch itself. The lookup runs in the
    /// batch's write transaction, after the `gate_events` write lock is taken, so two nodes
    /// storing the same event at the same moment store it once. Dead letters are all stored.
    ///
    /// A negative `window` is refused with [`StoreError::Invalid`]; a zero window skips only
    /// events received at the same millisecond.
    pub async fn insert_gate_batch_once(
        &self,
        events: &[NewGateEvent],
        dead_letters: &[NewDeadLetter],
        window: SignedDuration,
    ) -> Result<GateBatchStored, StoreError> {
        if window.is_negative() {
            return Err(StoreError::Invalid(format!(
                "the gate event dedup window must not be negative (got {window:#})"
            )));
        }
        self.store_gate_batch(events, dead_letters, Some(window))
            .await
    }

    /// Both of the above: with a window, events already stored within it are skipped.
    async fn store_gate_batch(
        &self,
        events: &[NewGateEvent],
        dead_letters: &[NewDeadLetter],
        window: Option<SignedDuration>,
    ) -> Result<GateBatchStored, StoreError> {
        const OP: &str = "storing gate events";
        let mut counts = GateBatchStored::default();
        if events.is_empty() && dead_letters.is_empty() {
            return Ok(counts);
        }
        // Milliseconds, as stored; a window past i64 milliseconds covers all of time anyway.
        let window_ms = window.map(|w| i64::try_from(w.as_millis()).unwrap_or(i64::MAX));
        let mut tx = self.begin_write(OP, &["gate_events"]).await?;
        let seq = next_seq(&mut tx, OP, "gate_events").await?;
        // Few statements while the table lock is held (a district's nodes all wait for it):
        // one read of the batch's dedup keys, one insert per chunk of events.
        let keep: Vec<&NewGateEvent> = match window_ms {
            None => events.iter().collect(),
            Some(w) => {
                let mut near = stored_dedup_keys(&mut tx, events, w).await?;
                let mut keep = Vec::with_capacity(events.len());
                for e in events {
                    let at = ms(e.received_at);
                    let (from, to) = (at.saturating_sub(w), at.saturating_add(w));
                    let times = near.entry(e.dedup_key.as_str()).or_default();
                    // Stored before, or earlier in this batch, within the window.
                    if times.iter().any(|t| (from..=to).contains(t)) {
                        tracing::trace!(
                            id = %e.id,
                            dedup_key = %e.dedup_key,
                            "gate event already stored within the dedup window; skipped"
                        );
                        counts.duplicates += 1;
                        continue;
                    }
                    times.push(at);
                    keep.push(e);
                }
                keep
            }
        };
        for (i, chunk) in keep.chunks(INSERT_CHUNK).enumerate() {
            let first = seq + (i * INSERT_CHUNK) as i64;
            if let Err(source) = insert_gate_events(&mut tx, chunk, first).await {
                drop(tx);
                return Err(self.duplicate_named(source, OP, &keep).await);
            }
        }
        counts.stored = keep.len();
        for d in dead_letters {
            sqlx::query(
                "INSERT INTO dead_letters (id, received_at, firmware, gate, error, body) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(d.id.as_str())
            .bind(ms(d.received_at))
            .bind(d.firmware.clone())
            .bind(d.gate.as_ref().map(|g| g.as_str().to_owned()))
            .bind(text(&d.error))
            .bind(json_text(&d.body))
            .execute(&mut *tx)
            .await
            .map_err(|source| dup_or(source, OP, "dead letter", &d.id))?;
        }
        tx.commit().await.map_err(db(OP))?;
        Ok(counts)
    }

    /// The error of an insert that failed: a unique violation names the event id that was
    /// stored already (or twice in the batch), read after the failed transaction was rolled
    /// back.
    async fn duplicate_named(
        &self,
        source: sqlx::Error,
        op: &'static str,
        events: &[&NewGateEvent],
    ) -> StoreError {
        if !crate::error::is_unique_violation(&source) {
            return StoreError::Database { op, source };
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(e) = events.iter().find(|e| !seen.insert(e.id.as_str())) {
            return dup_or(source, op, "gate event", &e.id);
        }
        for e in events {
            let stored = sqlx::query("SELECT 1 FROM gate_events WHERE id = $1")
                .bind(e.id.as_str())
                .fetch_optional(&self.pool)
                .await;
            if matches!(stored, Ok(Some(_))) {
                return dup_or(source, op, "gate event", &e.id);
            }
        }
        dup_or(source, op, "gate event", "(unknown)")
    }

    /// Gate events with `seq > seq`, oldest first, at most `limit` (a reader's cursor).
    pub async fn gate_events_after(
        &self,
        seq: i64,
        limit: u32,
    ) -> Result<Vec<GateEventRow>, StoreError> {
        const OP: &str = "reading gate events";
        let sql =
            format!("SELECT {GATE_COLS} FROM gate_events WHERE seq > $1 ORDER BY seq LIMIT $2");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(seq)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db(OP))?;
        rows.iter().map(|r| gate_row(r, OP)).collect()
    }

    /// The newest (at most `limit`) gate events of `kind` received at or after `since` that a
    /// reader at cursor `read` has read (`seq <= read`), oldest first: the rules processor
    /// gives its engine back the denials it counted lately.
    pub async fn gate_events_read_since(
        &self,
        kind: &str,
        since: Timestamp,
        read: i64,
        limit: u32,
    ) -> Result<Vec<GateEventRow>, StoreError> {
        const OP: &str = "reading recent gate events";
        let sql = format!(
            "SELECT {GATE_COLS} FROM gate_events \
             WHERE kind = $1 AND received_at >= $2 AND seq <= $3 ORDER BY seq DESC LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(kind.to_owned())
            .bind(ms(since))
            .bind(read)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db(OP))?;
        let mut rows = rows
            .iter()
            .map(|r| gate_row(r, OP))
            .collect::<Result<Vec<_>, _>>()?;
        rows.reverse();
        Ok(rows)
    }

    /// The dedup keys of gate events received at or after `since`, with their receive times
    /// (the ingest's dedup window, reloaded at start).
    pub async fn recent_gate_dedup_keys(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(String, Timestamp)>, StoreError> {
        const OP: &str = "reading gate dedup keys";
        let rows = sqlx::query(
            "SELECT dedup_key, received_at FROM gate_events WHERE received_at >= $1 ORDER BY seq",
        )
        .bind(ms(since))
        .fetch_all(&self.pool)
        .await
        .map_err(db(OP))?;
        rows.iter()
            .map(|row| {
                let r = Reader { row, op: OP };
                Ok((r.text("dedup_key")?, r.ts("received_at")?))
            })
            .collect()
    }

    /// Gate events matching `filter`, newest first.
    pub async fn list_gate_events(
        &self,
        filter: &GateEventFilter,
    ) -> Result<Vec<GateEventRow>, StoreError> {
        const OP: &str = "listing gate events";
        let mut f = Filter::default();
        f.any_of(
            "gate",
            filter.gates.as_ref().map(|v| v.iter().map(|g| g.as_str())),
        );
        f.any_of(
            "community",
            filter
                .communities
                .as_ref()
                .map(|v| v.iter().map(|c| c.as_str())),
        );
        f.any_of(
            "kind",
            filter.kinds.as_ref().map(|v| v.iter().map(|k| k.as_str())),
        );
        f.time_range("received_at", filter.from, filter.to);
        if f.empty {
            return Ok(Vec::new());
        }
        let head = format!("SELECT {GATE_COLS} FROM gate_events");
        let rows = f
            .query(
                &head,
                "ORDER BY received_at DESC, seq DESC",
                Some(filter.limit),
            )
            .fetch_all(&self.pool)
            .await
            .map_err(db(OP))?;
        rows.iter().map(|r| gate_row(r, OP)).collect()
    }

    /// The newest dead letters first, at most `limit`.
    pub async fn list_dead_letters(&self, limit: u32) -> Result<Vec<DeadLetterRow>, StoreError> {
        const OP: &str = "listing dead letters";
        let rows = sqlx::query(
            "SELECT id, received_at, firmware, gate, error, body FROM dead_letters \
             ORDER BY received_at DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db(OP))?;
        rows.iter().map(|r| dead_letter_row(r, OP)).collect()
    }

    /// Stores vision events in one transaction, giving each the next `seq` (under the
    /// `vision_events` write lock, so nodes sharing the database number them gap-free and in
    /// commit order); a duplicate id fails them all.
    pub async fn insert_vision_events(&self, events: &[NewVisionEvent]) -> Result<(), StoreError> {
        const OP: &str = "storing vision events";
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write(OP, &["vision_events"]).await?;
        let mut seq = next_seq(&mut tx, OP, "vision_events").await?;
        for e in events {
            sqlx::query(
                "INSERT INTO vision_events (seq, id, camera, community, kind, zone, at, body) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(seq)
            .bind(e.id.as_str())
            .bind(e.camera.as_str())
            .bind(e.community.as_str())
            .bind(e.kind.as_str())
            .bind(e.zone.clone())
            .bind(ms(e.at))
            .bind(json_text(&e.body))
            .execute(&mut *tx)
            .await
            .map_err(|source| dup_or(source, OP, "vision event", &e.id))?;
            seq += 1;
        }
        tx.commit().await.map_err(db(OP))
    }

    /// Vision events with `seq > seq`, oldest first, at most `limit` (a reader's cursor).
    /// Events stored before vision events were numbered (migration 0009) are not among them.
    pub async fn vision_events_after(
        &self,
        seq: i64,
        limit: u32,
    ) -> Result<Vec<VisionEventRow>, StoreError> {
        const OP: &str = "reading vision events";
        let sql =
            format!("SELECT {VISION_COLS} FROM vision_events WHERE seq > $1 ORDER BY seq LIMIT $2");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(seq)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db(OP))?;
        rows.iter().map(|r| vision_row(r, OP)).collect()
    }

    /// Vision events matching `filter`, newest first.
    pub async fn list_vision_events(
        &self,
        filter: &VisionEventFilter,
    ) -> Result<Vec<VisionEventRow>, StoreError> {
        const OP: &str = "listing vision events";
        let mut f = Filter::default();
        f.any_of(
            "camera",
            filter
                .cameras
                .as_ref()
                .map(|v| v.iter().map(|c| c.as_str())),
        );
        f.any_of(
            "community",
            filter
                .communities
                .as_ref()
                .map(|v| v.iter().map(|c| c.as_str())),
        );
        f.any_of(
            "kind",
            filter.kinds.as_ref().map(|v| v.iter().map(|k| k.as_str())),
        );
        f.any_of(
            "zone",
            filter.zones.as_ref().map(|v| v.iter().map(|z| z.as_str())),
        );
        f.time_range("at", filter.from, filter.to);
        if f.empty {
            return Ok(Vec::new());
        }
        let head = format!("SELECT {VISION_COLS} FROM vision_events");
        let rows = f
            .query(&head, "ORDER BY at DESC, id DESC", Some(filter.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db(OP))?;
        rows.iter().map(|r| vision_row(r, OP)).collect()
    }
}

/// A unique violation becomes [`StoreError::Duplicate`] naming `id`; anything else stays a
/// database error.
pub(crate) fn dup_or(
    source: sqlx::Error,
    op: &'static str,
    what: &'static str,
    id: &str,
) -> StoreError {
    if crate::error::is_unique_violation(&source) {
        StoreError::Duplicate {
            what,
            id: id.to_owned(),
        }
    } else {
        StoreError::Database { op, source }
    }
}
