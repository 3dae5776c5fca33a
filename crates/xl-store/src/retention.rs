//! Retention: how long each kind of data is kept, and the purge that enforces it.

use std::path::Path;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer};

use crate::registry::is_relative_inside;
use crate::sql::{Reader, db, ms};
use crate::{GATE_EVENTS_READER, Store, StoreError};

const DAY_MS: i64 = 86_400_000;

/// `[retention]`: days each kind of data is kept. Each period is a positive number of days or
/// `"forever"`.
///
/// ```toml
/// [retention]
/// snapshots_days = 30
/// faces_days = 7
/// gate_events_days = 180
/// vision_events_days = 30
/// dead_letters_days = 30
/// resolved_alerts_days = 365
/// outbox_days = 7
/// # audit_days absent: the audit log is kept forever
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Snapshots (metadata and JPEG files), by `taken_at`. Default 30.
    #[serde(deserialize_with = "days_or_forever")]
    pub snapshots_days: Option<u32>,
    /// Snapshots with faces in them (personal data), by `taken_at`. Default 7.
    #[serde(deserialize_with = "days_or_forever")]
    pub faces_days: Option<u32>,
    /// Gate events, by `received_at`. Default 180.
    #[serde(deserialize_with = "days_or_forever")]
    pub gate_events_days: Option<u32>,
    /// Vision events, by `at`. Default 30.
    #[serde(deserialize_with = "days_or_forever")]
    pub vision_events_days: Option<u32>,
    /// Dead letters, by `received_at`. Default 30.
    #[serde(deserialize_with = "days_or_forever")]
    pub dead_letters_days: Option<u32>,
    /// Resolved alerts with their history, by `resolved_at`. Active alerts are never purged.
    /// Default 365.
    #[serde(deserialize_with = "days_or_forever")]
    pub resolved_alerts_days: Option<u32>,
    /// Outbox rows, by `at`, and only once every `outbox.*` cursor has passed them.
    /// Default 7.
    #[serde(deserialize_with = "days_or_forever")]
    pub outbox_days: Option<u32>,
    /// The audit log, by `at`. Default: absent, kept forever.
    #[serde(deserialize_with = "days_or_forever")]
    pub audit_days: Option<u32>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            snapshots_days: Some(30),
            faces_days: Some(7),
            gate_events_days: Some(180),
            vision_events_days: Some(30),
            dead_letters_days: Some(30),
            resolved_alerts_days: Some(365),
            outbox_days: Some(7),
            audit_days: None,
        }
    }
}

fn days_or_forever<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Days {
        Days(u32),
        Word(String),
    }
    match Days::deserialize(d)? {
        Days::Days(0) => Err(serde::de::Error::custom(
            "0 days would delete everything at once: use a positive number of days, or \"forever\"",
        )),
        Days::Days(n) => Ok(Some(n)),
        Days::Word(w) if w == "forever" => Ok(None),
        Days::Word(w) => Err(serde::de::Error::custom(format!(
            "expected a number of days or \"forever\", found {w:?}"
        ))),
    }
}

/// What one purge deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Snapshots deleted for their age (without faces, or older than both periods).
    pub snapshots: u64,
    /// Snapshots with faces deleted by the faces period.
    pub face_snapshots: u64,
    /// Snapshot files removed from disk (a file already gone counts as not removed).
    pub snapshot_files: u64,
    /// Snapshot files that could not be removed; their rows stay for the next run.
    pub snapshot_file_errors: u64,
    pub gate_events: u64,
    pub vision_events: u64,
    pub dead_letters: u64,
    pub alerts: u64,
    pub alert_actions: u64,
    pub audit: u64,
    pub outbox: u64,
    pub sessions: u64,
}

/// The Unix milliseconds before which data kept `days` is due at `now` (`None`: kept forever).
pub(crate) fn cutoff(now: Timestamp, days: Option<u32>) -> Option<i64> {
    days.map(|d| ms(now).saturating_sub(i64::from(d) * DAY_MS))
}

impl Store {
    /// Deletes what is older than its retention period, in this order: snapshots with faces
    /// (faces period), other snapshots (snapshot period) with their files under
    /// `snapshot_dir`, gate events the rules processor has read ([`GATE_EVENTS_READER`]),
    /// vision events, dead letters, resolved alerts with their history, audit rows, outbox
    /// rows every `outbox.*` cursor has passed, expired sessions. Each step is its own
    /// statement or transaction (no long lock); a purge interrupted midway is finished by the
    /// next. A snapshot file that cannot be removed keeps its row. Numbering of gate events,
    /// vision events, audit rows and the outbox goes on after the highest ever given, even
    /// when a purge empties the table.
    pub async fn purge(
        &self,
        now: Timestamp,
        retention: &Retention,
        snapshot_dir: &Path,
    ) -> Result<PurgeReport, StoreError> {
        let mut report = PurgeReport::default();
        if let Some(c) = cutoff(now, retention.faces_days) {
            report.face_snapshots = self
                .purge_snapshots(
                    "has_faces <> 0 AND taken_at < $1",
                    c,
                    snapshot_dir,
                    &mut report,
                )
                .await?;
        }
        if let Some(c) = cutoff(now, retention.snapshots_days) {
            report.snapshots = self
                .purge_snapshots("taken_at < $1", c, snapshot_dir, &mut report)
                .await?;
        }
        if let Some(c) = cutoff(now, retention.gate_events_days) {
            // Keep what the rules processor has not read yet: on a district, every gate
            // shard's reader; on a single hub, its one reader.
            let shards = self.lowest_cursor(crate::GATE_SHARD_READERS).await?;
            let read = if shards == i64::MAX {
                self.lowest_cursor(GATE_EVENTS_READER).await?
            } else {
                shards
            };
            report.gate_events = self
                .delete_numbered("purging gate events", "gate_events", "received_at", c, read)
                .await?;
        }
        if let Some(c) = cutoff(now, retention.vision_events_days) {
            report.vision_events = self
                .delete_numbered("purging vision events", "vision_events", "at", c, i64::MAX)
                .await?;
        }
        if let Some(c) = cutoff(now, retention.dead_letters_days) {
            report.dead_letters = self
                .delete_before(
                    "purging dead letters",
                    "DELETE FROM dead_letters WHERE received_at < $1",
                    c,
                )
                .await?;
        }
        if let Some(c) = cutoff(now, retention.resolved_alerts_days) {
            const OP: &str = "purging resolved alerts";
            let mut tx = self.pool.begin().await.map_err(db(OP))?;
            report.alert_actions = sqlx::query(
                "DELETE FROM alert_actions WHERE alert_id IN (SELECT id FROM alerts \
                 WHERE state = 'resolved' AND resolved_at < $1)",
            )
            .bind(c)
            .execute(&mut *tx)
            .await
            .map_err(db(OP))?
            .rows_affected();
            report.alerts =
                sqlx::query("DELETE FROM alerts WHERE state = 'resolved' AND resolved_at < $1")
                    .bind(c)
                    .execute(&mut *tx)
                    .await
                    .map_err(db(OP))?
                    .rows_affected();
            tx.commit().await.map_err(db(OP))?;
        }
        if let Some(c) = cutoff(now, retention.audit_days) {
            report.audit = self
                .delete_numbered("purging the audit log", "audit", "at", c, i64::MAX)
                .await?;
        }
        if let Some(c) = cutoff(now, retention.outbox_days) {
            // Keep what a publisher has not read yet: at most the lowest `outbox.*` cursor.
            let read = self.lowest_cursor("outbox.%").await?;
            report.outbox = self
                .delete_numbered("purging the outbox", "outbox", "at", c, read)
                .await?;
        }
        report.sessions = self.delete_expired_sessions(now).await?;
        tracing::info!(?report, "retention purge done");
        Ok(report)
    }

    /// The lowest cursor whose name is like `pattern` (`i64::MAX`, no bound, when there is
    /// none).
    async fn lowest_cursor(&self, pattern: &str) -> Result<i64, StoreError> {
        const OP: &str = "reading cursors";
        let row = sqlx::query("SELECT MIN(value) AS m FROM cursors WHERE name LIKE $1")
            .bind(pattern.to_owned())
            .fetch_one(&self.pool)
            .await
            .map_err(db(OP))?;
        Ok(Reader { row: &row, op: OP }
            .opt_int("m")?
            .unwrap_or(i64::MAX))
    }

    /// Deletes the rows of `table` (numbered by `seq`) whose `time_col` is before `cutoff_ms`
    /// and whose `seq` is at most `max_seq` or NULL (vision events stored before they were
    /// numbered). In the same transaction it first records the table's highest `seq` as its
    /// floor, so numbering never restarts below a reader's cursor when the newest rows go too.
    async fn delete_numbered(
        &self,
        op: &'static str,
        table: &str,
        time_col: &str,
        cutoff_ms: i64,
        max_seq: i64,
    ) -> Result<u64, StoreError> {
        // SQLite: a write transaction from the start (a deferred one that reads, then writes
        // after the gate writer committed, fails with SQLITE_BUSY_SNAPSHOT). PostgreSQL: no
        // table lock; rows written meanwhile are new, so never deleted, and numbered above
        // the floor.
        let mut tx = self.begin_write(op, &[]).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(crate::last_seq_sql(table)))
            .fetch_one(&mut *tx)
            .await
            .map_err(db(op))?;
        let last = Reader { row: &row, op }.int("m")?;
        sqlx::query(
            "INSERT INTO cursors (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(crate::seq_floor(table))
        .bind(last)
        .execute(&mut *tx)
        .await
        .map_err(db(op))?;
        let sql =
            format!("DELETE FROM {table} WHERE {time_col} < $1 AND (seq IS NULL OR seq <= $2)");
        let n = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(cutoff_ms)
            .bind(max_seq)
            .execute(&mut *tx)
            .await
            .map_err(db(op))?
            .rows_affected();
        tx.commit().await.map_err(db(op))?;
        Ok(n)
    }

    async fn delete_before(
        &self,
        op: &'static str,
        sql: &'static str,
        cutoff_ms: i64,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(sql)
            .bind(cutoff_ms)
            .execute(&self.pool)
            .await
            .map_err(db(op))?
            .rows_affected())
    }

    /// Deletes the snapshots matching `cond` (with `$1` the cutoff): files first, then rows,
    /// so personal data never outlives its row. Returns the rows deleted.
    async fn purge_snapshots(
        &self,
        cond: &str,
        cutoff_ms: i64,
        snapshot_dir: &Path,
        report: &mut PurgeReport,
    ) -> Result<u64, StoreError> {
        const OP: &str = "purging snapshots";
        let sql = format!("SELECT id, path FROM snapshots WHERE {cond}");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(cutoff_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(db(OP))?;
        let mut gone = Vec::with_capacity(rows.len());
        for row in &rows {
            let r = Reader { row, op: OP };
            let id = r.text("id")?;
            let path = r.text("path")?;
            if !is_relative_inside(&path) {
                tracing::warn!(snapshot = %id, path = %path, "snapshot path outside the snapshot directory: row deleted, file left alone");
                gone.push(id);
                continue;
            }
            let file = snapshot_dir.join(&path);
            match tokio::fs::remove_file(&file).await {
                Ok(()) => {
                    report.snapshot_files += 1;
                    gone.push(id);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => gone.push(id),
                Err(e) => {
                    report.snapshot_file_errors += 1;
                    tracing::warn!(snapshot = %id, file = %file.display(), error = %e, "cannot delete snapshot file; keeping its row for the next purge");
                }
            }
        }
        let mut tx = self.pool.begin().await.map_err(db(OP))?;
        let mut deleted = 0;
        for id in &gone {
            deleted += sqlx::query("DELETE FROM snapshots WHERE id = $1")
                .bind(id.clone())
                .execute(&mut *tx)
                .await
                .map_err(db(OP))?
                .rows_affected();
        }
        tx.commit().await.map_err(db(OP))?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        retention: Retention,
    }

    #[test]
    fn retention_reads_from_toml_with_defaults_and_forever() {
        let c: Config = toml::from_str(
            "[retention]\nsnapshots_days = 10\ngate_events_days = \"forever\"\naudit_days = 400\n",
        )
        .unwrap();
        let r = c.retention;
        assert_eq!(r.snapshots_days, Some(10));
        assert_eq!(r.gate_events_days, None);
        assert_eq!(r.audit_days, Some(400));
        assert_eq!(r.faces_days, Some(7));
        assert_eq!(r.resolved_alerts_days, Some(365));

        let empty: Config = toml::from_str("[retention]\n").unwrap();
        assert_eq!(empty.retention, Retention::default());
        assert_eq!(empty.retention.audit_days, None);
    }

    #[test]
    fn retention_rejects_unknown_keys_zero_and_other_words() {
        let unknown = toml::from_str::<Config>("[retention]\nsnapshot_days = 3\n").unwrap_err();
        assert!(unknown.to_string().contains("snapshot_days"), "{unknown}");
        let zero = toml::from_str::<Config>("[retention]\nfaces_days = 0\n").unwrap_err();
        assert!(zero.to_string().contains("forever"), "{zero}");
        let word = toml::from_str::<Config>("[retention]\nfaces_days = \"never\"\n").unwrap_err();
        assert!(word.to_string().contains("never"), "{word}");
    }
}
