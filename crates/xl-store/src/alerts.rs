//! Alerts, their history, the outbox and the readers' cursors.

use std::collections::BTreeMap;

use jiff::Timestamp;
use sqlx::any::AnyRow;
use xl_core::alert::{AlertAction, By};
use xl_core::{Alert, AlertId, AlertKind, AlertState, CommunityId, OutboxEntry, Role};

use crate::registry::{
    NewAudit, NewSnapshot, SnapshotRow, insert_audit, insert_snapshot_tx, snapshot_row,
};
use crate::sql::{Arg, Filter, Reader, db, json_text, ms, opt_ms, text};
use crate::{Store, StoreError, Tx, next_seq};

/// One change the rules engine (or a person) made to an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The whole alert after the change.
    pub alert: Alert,
    /// `Raised` inserts the alert (a duplicate id fails); anything else updates it (a missing
    /// alert fails with `NotFound`).
    pub action: AlertAction,
    /// `"system"` or a user name.
    pub actor: String,
    pub note: Option<String>,
    pub at: Timestamp,
}

/// Everything the rules engine decided for one batch of inputs, committed in one
/// transaction: the alert changes (each with a history row and an outbox row), evidence
/// snapshots, and the engine's input cursors. A crash keeps all of it or none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Commit {
    pub changes: Vec<Change>,
    pub snapshots: Vec<NewSnapshot>,
    /// Recording holds made with the changes (an alert's clip, held from when it is raised).
    pub holds: Vec<crate::NewHold>,
    /// `(name, value)` cursors to set.
    pub cursors: Vec<(String, i64)>,
    /// The lease under which the engine decided these (a node of a district): the commit is
    /// refused with [`StoreError::Fenced`] when a newer holder of the lease has committed.
    /// `None` (a single hub): never fenced.
    pub fence: Option<Fence>,
}

/// A fencing token: a lease's key and the revision at which this node holds it. Revisions of
/// a lease only grow, and a newer holder always has a larger one, so the store refuses a
/// revision smaller than the highest it has seen for the key. The same revision is accepted
/// again (one holder commits many times).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fence {
    /// The lease's key (e.g. the gate work's lease).
    pub key: String,
    /// The lease's revision when this node acquired (or last renewed) it.
    pub revision: u64,
}

/// One row of an alert's history.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRow {
    /// 1, 2, ... per alert.
    pub n: i64,
    pub at: Timestamp,
    pub actor: String,
    pub action: AlertAction,
    /// `None` for `Raised`.
    pub from_state: Option<AlertState>,
    pub to_state: AlertState,
    pub note: Option<String>,
}

/// An alert with its history (oldest first) and its snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertDetail {
    pub alert: Alert,
    pub history: Vec<ActionRow>,
    /// Snapshots taken for the alert and the alert's evidence snapshot, oldest first.
    pub snapshots: Vec<SnapshotRow>,
}

/// Which alerts to list. `None` = any; `Some(vec)` = only these (an empty vec matches
/// nothing: a property user with no communities sees nothing). `from`/`to` are on
/// `raised_at`, `[from, to)`. Newest first.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub states: Option<Vec<AlertState>>,
    pub kinds: Option<Vec<AlertKind>>,
    pub communities: Option<Vec<CommunityId>>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub limit: u32,
}

/// Statistics of a set of durations, in seconds. Percentiles are nearest-rank (p50 of
/// 1, 2, 3, 4 is 2). `None` when `count` is 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Durations {
    pub count: u64,
    pub mean_secs: Option<f64>,
    pub p50_secs: Option<f64>,
    pub p90_secs: Option<f64>,
}

/// Response times of the alerts of one community and kind.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseFigures {
    pub community: CommunityId,
    pub kind: AlertKind,
    /// Alerts raised in the period.
    pub raised: u64,
    /// From raise to acknowledgement, over those acknowledged.
    pub to_acknowledge: Durations,
    /// From raise to resolution, over those resolved (health alerts that cleared included).
    pub to_resolve: Durations,
}

const ALERT_COLS: &str = "id, kind, severity, state, community, camera, gate, zone, title, \
     raised_at, last_seen_at, repeat_count, ack_deadline, acknowledged_at, escalated_at, \
     resolved_at, roles, source_event, snapshot";

fn alert_row(row: &AnyRow, op: &'static str) -> Result<Alert, StoreError> {
    let r = Reader { row, op };
    Ok(Alert {
        id: AlertId(r.text("id")?),
        kind: r.parse("kind")?,
        severity: r.parse("severity")?,
        state: r.parse("state")?,
        community: r.parse("community")?,
        camera: r.opt_parse("camera")?,
        gate: r.opt_parse("gate")?,
        zone: r.opt_text("zone")?,
        title: r.text("title")?,
        raised_at: r.ts("raised_at")?,
        last_seen_at: r.ts("last_seen_at")?,
        count: r.u32("repeat_count")?,
        ack_deadline: r.opt_ts("ack_deadline")?,
        acknowledged_at: r.opt_ts("acknowledged_at")?,
        escalated_at: r.opt_ts("escalated_at")?,
        resolved_at: r.opt_ts("resolved_at")?,
        roles: r.json::<Vec<Role>>("roles")?,
        source_event: r.opt_text("source_event")?,
        snapshot: r.opt_text("snapshot")?,
    })
}

fn outbox_row(row: &AnyRow, op: &'static str) -> Result<OutboxEntry, StoreError> {
    let r = Reader { row, op };
    Ok(OutboxEntry {
        seq: r.int("seq")?,
        at: r.ts("at")?,
        change: r.parse("change")?,
        alert: r.json("alert")?,
    })
}

/// Binds the alert's columns after `id` as `$2..$19` (the order of `ALERT_COLS`).
fn bind_alert(q: crate::sql::Query, a: &Alert) -> crate::sql::Query {
    q.bind(a.id.as_str().to_owned())
        .bind(a.kind.as_str())
        .bind(a.severity.as_str())
        .bind(a.state.as_str())
        .bind(a.community.as_str().to_owned())
        .bind(a.camera.as_ref().map(|c| c.as_str().to_owned()))
        .bind(a.gate.as_ref().map(|g| g.as_str().to_owned()))
        .bind(a.zone.clone())
        .bind(a.title.clone())
        .bind(ms(a.raised_at))
        .bind(ms(a.last_seen_at))
        .bind(i64::from(a.count))
        .bind(opt_ms(a.ack_deadline))
        .bind(opt_ms(a.acknowledged_at))
        .bind(opt_ms(a.escalated_at))
        .bind(opt_ms(a.resolved_at))
        .bind(json_text(&a.roles))
        .bind(a.source_event.clone())
        .bind(a.snapshot.clone())
}

/// The rules engine's change `c` applied to the stored alert with [`Alert::apply`] (see
/// [`Store::commit`]); `None` when the alert's state machine no longer allows it. Raises pass
/// through.
async fn merge_with_stored(
    tx: &mut Tx,
    op: &'static str,
    c: &Change,
) -> Result<Option<Change>, StoreError> {
    if c.action == AlertAction::Raised {
        return Ok(Some(c.clone()));
    }
    let sql = format!("SELECT {ALERT_COLS} FROM alerts WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(c.alert.id.as_str().to_owned())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db(op))?
        .ok_or_else(|| StoreError::NotFound {
            what: "alert",
            id: c.alert.id.to_string(),
        })?;
    let mut alert = alert_row(&row, op)?;
    if let Err(e) = alert.apply(c.action, By::Rules, c.at) {
        tracing::debug!(error = %e, "the rules engine's change no longer applies; dropped");
        return Ok(None);
    }
    if alert.snapshot.is_none() {
        alert.snapshot = c.alert.snapshot.clone();
    }
    Ok(Some(Change { alert, ..c.clone() }))
}

/// Writes one change (alert row, history row, outbox row) and returns its outbox entry.
async fn apply_change(
    tx: &mut Tx,
    op: &'static str,
    c: &Change,
    outbox_seq: i64,
) -> Result<OutboxEntry, StoreError> {
    let id = c.alert.id.as_str();
    let from_state = if c.action == AlertAction::Raised {
        let sql = format!(
            "INSERT INTO alerts ({ALERT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14, $15, $16, $17, $18, $19)"
        );
        bind_alert(sqlx::query(sqlx::AssertSqlSafe(sql)), &c.alert)
            .execute(&mut **tx)
            .await
            .map_err(|source| crate::gates::dup_or(source, op, "alert", id))?;
        None
    } else {
        let row = sqlx::query("SELECT state FROM alerts WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db(op))?
            .ok_or_else(|| StoreError::NotFound {
                what: "alert",
                id: id.to_owned(),
            })?;
        let from: AlertState = Reader { row: &row, op }.parse("state")?;
        if c.alert.state == AlertState::Resolved && from != AlertState::Resolved {
            crate::recordings::alert_resolved(tx, op, &c.alert.id, c.at).await?;
        }
        let sets: Vec<String> = ALERT_COLS
            .split(", ")
            .enumerate()
            .skip(1)
            .map(|(i, col)| format!("{col} = ${}", i + 1))
            .collect();
        let sql = format!("UPDATE alerts SET {} WHERE id = $1", sets.join(", "));
        bind_alert(sqlx::query(sqlx::AssertSqlSafe(sql)), &c.alert)
            .execute(&mut **tx)
            .await
            .map_err(db(op))?;
        Some(from)
    };

    let n_row =
        sqlx::query("SELECT COALESCE(MAX(n), 0) AS m FROM alert_actions WHERE alert_id = $1")
            .bind(id.to_owned())
            .fetch_one(&mut **tx)
            .await
            .map_err(db(op))?;
    let n = Reader { row: &n_row, op }.int("m")? + 1;
    sqlx::query(
        "INSERT INTO alert_actions (alert_id, n, at, actor, action, from_state, to_state, note) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.to_owned())
    .bind(n)
    .bind(ms(c.at))
    .bind(c.actor.clone())
    .bind(c.action.as_str())
    .bind(from_state.map(|s| s.as_str().to_owned()))
    .bind(c.alert.state.as_str())
    .bind(c.note.as_deref().map(text))
    .execute(&mut **tx)
    .await
    .map_err(db(op))?;

    sqlx::query(
        "INSERT INTO outbox (seq, at, change, alert_id, alert) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(outbox_seq)
    .bind(ms(c.at))
    .bind(c.action.as_str())
    .bind(id.to_owned())
    .bind(json_text(&c.alert))
    .execute(&mut **tx)
    .await
    .map_err(db(op))?;
    Ok(OutboxEntry {
        seq: outbox_seq,
        at: c.at,
        change: c.action,
        alert: c.alert.clone(),
    })
}

/// Checks `fence` inside the caller's write transaction and records its revision: the stored
/// revision of the key becomes the larger of the stored one and `fence.revision`, and a
/// smaller `fence.revision` than the stored one fails with [`StoreError::Fenced`].
///
/// One upsert that returns the revision it left: on PostgreSQL it locks the key's row until
/// the transaction ends, so a commit with an older revision racing one with a newer revision
/// either commits first or waits and is refused; on SQLite the transaction already holds the
/// database's write lock. No table lock is needed.
async fn check_fence_tx(tx: &mut Tx, op: &'static str, fence: &Fence) -> Result<(), StoreError> {
    let revision = i64::try_from(fence.revision).map_err(|_| {
        StoreError::Invalid(format!(
            "lease {:?}: revision {} is past what the store keeps (i64)",
            fence.key, fence.revision
        ))
    })?;
    let row = sqlx::query(
        "INSERT INTO fences (key, revision) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET revision = CASE \
         WHEN fences.revision > excluded.revision THEN fences.revision \
         ELSE excluded.revision END \
         RETURNING revision",
    )
    .bind(fence.key.clone())
    .bind(revision)
    .fetch_one(&mut **tx)
    .await
    .map_err(db(op))?;
    let current = Reader { row: &row, op }.u64("revision")?;
    if current > fence.revision {
        return Err(StoreError::Fenced {
            key: fence.key.clone(),
            revision: fence.revision,
            current,
        });
    }
    Ok(())
}

async fn set_cursor_tx(
    tx: &mut Tx,
    op: &'static str,
    name: &str,
    value: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO cursors (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(name.to_owned())
    .bind(value)
    .execute(&mut **tx)
    .await
    .map_err(db(op))?;
    Ok(())
}

/// The alert after a person's `action` ([`Alert::apply`] by [`By::Person`]), or why the
/// action is not allowed.
fn transition(
    alert: &Alert,
    action: AlertAction,
    note: Option<&str>,
    at: Timestamp,
) -> Result<Alert, StoreError> {
    if action == AlertAction::Noted && note.is_none_or(|n| n.trim().is_empty()) {
        return Err(StoreError::Invalid(format!(
            "alert {}: a note action needs a non-empty note",
            alert.id
        )));
    }
    let mut next = alert.clone();
    next.apply(action, By::Person, at)?;
    Ok(next)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn durations(mut v: Vec<f64>) -> Durations {
    if v.is_empty() {
        return Durations {
            count: 0,
            mean_secs: None,
            p50_secs: None,
            p90_secs: None,
        };
    }
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    Durations {
        count: v.len() as u64,
        mean_secs: Some(mean),
        p50_secs: Some(percentile(&v, 0.5)),
        p90_secs: Some(percentile(&v, 0.9)),
    }
}

impl Store {
    /// Commits everything the rules engine decided for one batch of inputs in one
    /// transaction (see [`Commit`]) and returns the outbox entries written, in order.
    ///
    /// The engine's changes are applied to the alert as stored, not as the engine last saw
    /// it, with the alert's state machine ([`Alert::apply`] by [`xl_core::alert::By::Rules`],
    /// at the change's `at`), so a person's action committed meanwhile is never overwritten:
    /// a repeat adds one to the count and moves the last-seen time on; an escalation applies
    /// only to an alert still open; a repeat, escalation or resolution never to one a person
    /// resolved. A change the state machine refuses is dropped, with no history or outbox
    /// row. Of the change's alert only a raise's is written whole; otherwise its snapshot
    /// fills in one the stored alert lacks.
    ///
    /// With a [`Commit::fence`], the fence is checked first, in the same transaction: a
    /// revision older than one already committed under its key refuses the whole commit with
    /// [`StoreError::Fenced`] (nothing is written, cursors included).
    pub async fn commit(&self, commit: &Commit) -> Result<Vec<OutboxEntry>, StoreError> {
        const OP: &str = "committing alert changes";
        let tables: &[&str] = if commit.holds.is_empty() {
            &["outbox"]
        } else {
            &["outbox", "recording_holds"]
        };
        let mut tx = self.begin_write(OP, tables).await?;
        if let Some(fence) = &commit.fence {
            check_fence_tx(&mut tx, OP, fence).await?;
        }
        for s in &commit.snapshots {
            insert_snapshot_tx(&mut tx, OP, s).await?;
        }
        for h in &commit.holds {
            crate::recordings::insert_hold(&mut tx, OP, h).await?;
        }
        let mut seq = next_seq(&mut tx, OP, "outbox").await?;
        let mut out = Vec::with_capacity(commit.changes.len());
        for c in &commit.changes {
            let Some(c) = merge_with_stored(&mut tx, OP, c).await? else {
                continue;
            };
            out.push(apply_change(&mut tx, OP, &c, seq).await?);
            seq += 1;
        }
        for (name, value) in &commit.cursors {
            set_cursor_tx(&mut tx, OP, name, *value).await?;
        }
        tx.commit().await.map_err(db(OP))?;
        Ok(out)
    }

    /// Checks and records `fence` on its own, as [`Store::commit`] does for a commit carrying
    /// it: for a holder of a lease with nothing else to commit (so that its older holder's
    /// later commits are refused from now on). Fails with [`StoreError::Fenced`] when a newer
    /// revision of the key was already recorded.
    pub async fn fence(&self, fence: &Fence) -> Result<(), StoreError> {
        const OP: &str = "checking a lease's fence";
        let mut tx = self.begin_write(OP, &[]).await?;
        check_fence_tx(&mut tx, OP, fence).await?;
        tx.commit().await.map_err(db(OP))
    }

    /// A person's action from the API, by the alert's state machine ([`Alert::apply`] by
    /// [`xl_core::alert::By::Person`]): acknowledge from open or escalated; escalate from open
    /// or acknowledged (routing it to the police desk); resolve from any unresolved state;
    /// note in any state, note required. Updates the alert, its history and the outbox in one
    /// transaction and returns the outbox entry (its alert is the new state).
    pub async fn act(
        &self,
        id: &AlertId,
        action: AlertAction,
        actor: &str,
        note: Option<&str>,
        at: Timestamp,
    ) -> Result<OutboxEntry, StoreError> {
        self.act_audited(id, action, actor, note, at, None).await
    }

    /// [`Store::act`], and `audit` appended to the audit log in the same transaction (its
    /// `detail` gains the change's outbox `seq`): the action is never without its entry.
    pub async fn act_audited(
        &self,
        id: &AlertId,
        action: AlertAction,
        actor: &str,
        note: Option<&str>,
        at: Timestamp,
        audit: Option<&NewAudit>,
    ) -> Result<OutboxEntry, StoreError> {
        const OP: &str = "acting on an alert";
        let tables: &[&str] = match audit {
            Some(_) => &["outbox", "audit"],
            None => &["outbox"],
        };
        let mut tx = self.begin_write(OP, tables).await?;
        let sql = format!("SELECT {ALERT_COLS} FROM alerts WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str().to_owned())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(OP))?
            .ok_or_else(|| StoreError::NotFound {
                what: "alert",
                id: id.to_string(),
            })?;
        let alert = alert_row(&row, OP)?;
        let next = transition(&alert, action, note, at)?;
        let change = Change {
            alert: next,
            action,
            actor: actor.to_owned(),
            note: note.map(str::to_owned),
            at,
        };
        let seq = next_seq(&mut tx, OP, "outbox").await?;
        let entry = apply_change(&mut tx, OP, &change, seq).await?;
        if let Some(audit) = audit {
            let mut audit = audit.clone();
            if let Some(detail) = audit.detail.as_object_mut() {
                detail.insert("seq".to_owned(), seq.into());
            }
            insert_audit(&mut tx, OP, &audit).await?;
        }
        tx.commit().await.map_err(db(OP))?;
        Ok(entry)
    }

    /// One alert with its history and snapshots, or `None`.
    pub async fn alert(&self, id: &AlertId) -> Result<Option<AlertDetail>, StoreError> {
        const OP: &str = "reading an alert";
        let sql = format!("SELECT {ALERT_COLS} FROM alerts WHERE id = $1");
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str().to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(db(OP))?
        else {
            return Ok(None);
        };
        let alert = alert_row(&row, OP)?;
        let rows = sqlx::query(
            "SELECT n, at, actor, action, from_state, to_state, note FROM alert_actions \
             WHERE alert_id = $1 ORDER BY n",
        )
        .bind(id.as_str().to_owned())
        .fetch_all(&self.pool)
        .await
        .map_err(db(OP))?;
        let history = rows
            .iter()
            .map(|row| {
                let r = Reader { row, op: OP };
                Ok(ActionRow {
                    n: r.int("n")?,
                    at: r.ts("at")?,
                    actor: r.text("actor")?,
                    action: r.parse("action")?,
                    from_state: r.opt_parse("from_state")?,
                    to_state: r.parse("to_state")?,
                    note: r.opt_text("note")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let rows = sqlx::query(
            "SELECT id, camera, gate, alert_id, taken_at, path, width, height, bytes, \
             has_faces, boxes FROM snapshots WHERE alert_id = $1 OR id = $2 \
             ORDER BY taken_at, id",
        )
        .bind(id.as_str().to_owned())
        .bind(alert.snapshot.clone().unwrap_or_default())
        .fetch_all(&self.pool)
        .await
        .map_err(db(OP))?;
        let snapshots = rows
            .iter()
            .map(|r| snapshot_row(r, OP))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(AlertDetail {
            alert,
            history,
            snapshots,
        }))
    }

    /// Alerts matching `filter`, newest first (by `raised_at`).
    pub async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
        const OP: &str = "listing alerts";
        let mut f = Filter::default();
        f.any_of(
            "state",
            filter.states.as_ref().map(|v| v.iter().map(|s| s.as_str())),
        );
        f.any_of(
            "kind",
            filter.kinds.as_ref().map(|v| v.iter().map(|k| k.as_str())),
        );
        f.any_of(
            "community",
            filter
                .communities
                .as_ref()
                .map(|v| v.iter().map(|c| c.as_str())),
        );
        f.time_range("raised_at", filter.from, filter.to);
        if f.empty {
            return Ok(Vec::new());
        }
        let head = format!("SELECT {ALERT_COLS} FROM alerts");
        let rows = f
            .query(
                &head,
                "ORDER BY raised_at DESC, id DESC",
                Some(filter.limit),
            )
            .fetch_all(&self.pool)
            .await
            .map_err(db(OP))?;
        rows.iter().map(|r| alert_row(r, OP)).collect()
    }

    /// Every alert not resolved, oldest first (the engine restores these at start).
    pub async fn active_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        const OP: &str = "reading active alerts";
        let sql =
            format!("SELECT {ALERT_COLS} FROM alerts WHERE state <> $1 ORDER BY raised_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(AlertState::Resolved.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(db(OP))?;
        rows.iter().map(|r| alert_row(r, OP)).collect()
    }

    /// Outbox entries with `seq > seq`, oldest first, at most `limit`.
    pub async fn outbox_after(&self, seq: i64, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        const OP: &str = "reading the outbox";
        let rows = sqlx::query(
            "SELECT seq, at, change, alert FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db(OP))?;
        rows.iter().map(|r| outbox_row(r, OP)).collect()
    }

    /// The highest outbox `seq` (0 when empty): where a new publisher starts.
    pub async fn last_outbox_seq(&self) -> Result<i64, StoreError> {
        const OP: &str = "reading the outbox";
        let row = sqlx::query(sqlx::AssertSqlSafe(crate::last_seq_sql("outbox")))
            .fetch_one(&self.pool)
            .await
            .map_err(db(OP))?;
        Reader { row: &row, op: OP }.int("m")
    }

    /// A reader's cursor; 0 when unset. Names starting with `outbox.` are outbox positions
    /// (retention keeps outbox rows they have not passed).
    pub async fn cursor(&self, name: &str) -> Result<i64, StoreError> {
        const OP: &str = "reading a cursor";
        let row = sqlx::query("SELECT value FROM cursors WHERE name = $1")
            .bind(name.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(db(OP))?;
        match row {
            None => Ok(0),
            Some(row) => Reader { row: &row, op: OP }.int("value"),
        }
    }

    /// Where a gate events reader (`GATE_EVENTS_READER` or a [`crate::gate_shard_reader`])
    /// starts: its cursor; a reader without one yet takes over from the other layout, so a
    /// single hub that joins a district (or a district node that runs alone again) neither
    /// reads its events again from the start nor skips any: a shard starts at the single
    /// hub's cursor, a single hub at the slowest shard's (the events between the slowest and
    /// the fastest shard then go through its rules again). 0 when neither has run.
    pub async fn gate_reader_start(&self, name: &str) -> Result<i64, StoreError> {
        const OP: &str = "reading a cursor";
        let other = if name == crate::GATE_EVENTS_READER {
            crate::GATE_SHARD_READERS
        } else {
            crate::GATE_EVENTS_READER
        };
        let row = sqlx::query(
            "SELECT (SELECT value FROM cursors WHERE name = $1) AS own, \
             (SELECT MIN(value) FROM cursors WHERE name LIKE $2) AS other",
        )
        .bind(name.to_owned())
        .bind(other)
        .fetch_one(&self.pool)
        .await
        .map_err(db(OP))?;
        let r = Reader { row: &row, op: OP };
        Ok(r.opt_int("own")?.or(r.opt_int("other")?).unwrap_or(0))
    }

    /// Sets a reader's cursor.
    pub async fn set_cursor(&self, name: &str, value: i64) -> Result<(), StoreError> {
        const OP: &str = "setting a cursor";
        let mut tx = self.pool.begin().await.map_err(db(OP))?;
        set_cursor_tx(&mut tx, OP, name, value).await?;
        tx.commit().await.map_err(db(OP))
    }

    /// Time to acknowledge and to resolve per community and alert kind, for alerts raised in
    /// `[from, to)` (in `communities` only, when given; only alerts routed to `routed_to`, when
    /// given). Computed in Rust from the rows, so both backends give the same numbers. Sorted
    /// by community, then kind.
    pub async fn response_times(
        &self,
        from: Timestamp,
        to: Timestamp,
        communities: Option<&[CommunityId]>,
        routed_to: Option<Role>,
    ) -> Result<Vec<ResponseFigures>, StoreError> {
        const OP: &str = "computing response times";
        let mut f = Filter::default();
        f.cmp("raised_at", ">=", Arg::I64(ms(from)));
        f.cmp("raised_at", "<", Arg::I64(ms(to)));
        f.any_of(
            "community",
            communities.map(|v| v.iter().map(|c| c.as_str())),
        );
        if f.empty {
            return Ok(Vec::new());
        }
        let rows = f
            .query(
                "SELECT community, kind, raised_at, acknowledged_at, resolved_at, roles FROM alerts",
                "",
                None,
            )
            .fetch_all(&self.pool)
            .await
            .map_err(db(OP))?;
        type Acc = (u64, Vec<f64>, Vec<f64>);
        let mut groups: BTreeMap<(CommunityId, AlertKind), Acc> = BTreeMap::new();
        for row in &rows {
            let r = Reader { row, op: OP };
            if let Some(role) = routed_to
                && !r.json::<Vec<Role>>("roles")?.contains(&role)
            {
                continue;
            }
            let key = (r.parse("community")?, r.parse("kind")?);
            let raised = r.int("raised_at")?;
            let g = groups.entry(key).or_default();
            g.0 += 1;
            if let Some(ack) = r.opt_int("acknowledged_at")? {
                g.1.push((ack - raised) as f64 / 1000.0);
            }
            if let Some(res) = r.opt_int("resolved_at")? {
                g.2.push((res - raised) as f64 / 1000.0);
            }
        }
        Ok(groups
            .into_iter()
            .map(|((community, kind), (raised, ack, res))| ResponseFigures {
                community,
                kind,
                raised,
                to_acknowledge: durations(ack),
                to_resolve: durations(res),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d = durations(vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!(d.count, 4);
        assert_eq!(d.mean_secs, Some(2.5));
        assert_eq!(d.p50_secs, Some(2.0));
        assert_eq!(d.p90_secs, Some(4.0));
        let one = durations(vec![7.0]);
        assert_eq!((one.p50_secs, one.p90_secs), (Some(7.0), Some(7.0)));
        assert_eq!(durations(Vec::new()).mean_secs, None);
    }
}
