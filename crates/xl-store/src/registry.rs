//! Snapshot metadata, the camera and gate registry, users, sessions and the audit log.

use jiff::Timestamp;
use serde_json::Value;
use sqlx::any::AnyRow;
use xl_core::{AlertId, CameraId, CommunityId, GateId, Role, StationId};

use crate::gates::dup_or;
use crate::sql::{Arg, Filter, Reader, db, json_text, ms};
use crate::{Store, StoreError, Tx, next_seq};

/// Metadata of an evidence snapshot; the caller writes the file.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSnapshot {
    pub id: String,
    pub camera: Option<CameraId>,
    pub gate: Option<GateId>,
    pub alert: Option<AlertId>,
    pub taken_at: Timestamp,
    /// Relative to the snapshot directory (no `..`, not absolute: retention deletes it).
    pub path: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    /// Faces are personal data with their own (shorter) retention.
    pub has_faces: bool,
    /// The boxes drawn or to draw, as JSON.
    pub boxes: Value,
}

/// A stored snapshot.
pub type SnapshotRow = NewSnapshot;

/// A camera as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraRow {
    pub id: CameraId,
    pub community: CommunityId,
    pub name: String,
    /// Which network it belongs to (community, skynet, shop...).
    pub network: String,
    /// Anything else from config worth showing, as JSON (never credentials).
    pub extras: Value,
}

/// A gate as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct GateRow {
    pub id: GateId,
    pub community: CommunityId,
    pub name: String,
    pub firmware: String,
    /// The camera that watches it.
    pub camera: Option<CameraId>,
    pub extras: Value,
}

/// A user of the dashboard and API.
#[derive(Clone, PartialEq)]
pub struct UserRow {
    pub username: String,
    /// An argon2 PHC string (never shown in `Debug`).
    pub password_hash: String,
    pub role: Role,
    /// The communities a property user sees (empty for the other roles).
    pub communities: Vec<CommunityId>,
    /// The stations a duty or police user is limited to (empty: all).
    pub stations: Vec<StationId>,
    pub disabled: bool,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("username", &self.username)
            .field("password_hash", &"***")
            .field("role", &self.role)
            .field("communities", &self.communities)
            .field("stations", &self.stations)
            .field("disabled", &self.disabled)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A login session: the hash of its token (the token itself is never stored).
#[derive(Clone, PartialEq)]
pub struct SessionRow {
    pub token_hash: String,
    pub username: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for SessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRow")
            .field("token_hash", &"***")
            .field("username", &self.username)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// An audit entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAudit {
    pub at: Timestamp,
    /// A user name, or `"system"`.
    pub actor: String,
    /// What was done (`login`, `alert.acknowledge`, `snapshot.view`, `config.change`...).
    pub action: String,
    /// What it was done to (an alert id, a snapshot id...).
    pub target: Option<String>,
    pub detail: Value,
    /// The client's address.
    pub peer: Option<String>,
}

/// Which audit entries [`Store::list_audit`] returns (newest first). `before_seq` is the
/// keyset cursor for paging backwards: the smallest `seq` of the previous page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// `at >= from`.
    pub from: Option<Timestamp>,
    /// `at < before`.
    pub before: Option<Timestamp>,
    /// `seq < before_seq`.
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// Increasing, gap-free.
    pub seq: i64,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Value,
    pub peer: Option<String>,
}

pub(crate) const SNAPSHOT_COLS: &str =
    "id, camera, gate, alert_id, taken_at, path, width, height, bytes, has_faces, boxes";

pub(crate) fn snapshot_row(row: &AnyRow, op: &'static str) -> Result<SnapshotRow, StoreError> {
    let r = Reader { row, op };
    Ok(SnapshotRow {
        id: r.text("id")?,
        camera: r.opt_parse("camera")?,
        gate: r.opt_parse("gate")?,
        alert: r.opt_text("alert_id")?.map(AlertId),
        taken_at: r.ts("taken_at")?,
        path: r.text("path")?,
        width: r.u32("width")?,
        height: r.u32("height")?,
        bytes: r.u64("bytes")?,
        has_faces: r.bool("has_faces")?,
        boxes: r.json("boxes")?,
    })
}

/// Whether `path` stays inside the snapshot directory.
pub(crate) fn is_relative_inside(path: &str) -> bool {
    let p = std::path::Path::new(path);
    !path.is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

pub(crate) async fn insert_snapshot_tx(
    tx: &mut Tx,
    op: &'static str,
    s: &NewSnapshot,
) -> Result<(), StoreError> {
    if !is_relative_inside(&s.path) {
        return Err(StoreError::Invalid(format!(
            "snapshot {}: path {:?} must be relative to the snapshot directory, without '..'",
            s.id, s.path
        )));
    }
    let bytes = i64::try_from(s.bytes)
        .map_err(|_| StoreError::Invalid(format!("snapshot {}: size too large", s.id)))?;
    sqlx::query(
        "INSERT INTO snapshots (id, camera, gate, alert_id, taken_at, path, width, height, \
         bytes, has_faces, boxes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(s.id.clone())
    .bind(s.camera.as_ref().map(|c| c.as_str().to_owned()))
    .bind(s.gate.as_ref().map(|g| g.as_str().to_owned()))
    .bind(s.alert.as_ref().map(|a| a.as_str().to_owned()))
    .bind(ms(s.taken_at))
    .bind(s.path.clone())
    .bind(i64::from(s.width))
    .bind(i64::from(s.height))
    .bind(bytes)
    .bind(i64::from(s.has_faces))
    .bind(json_text(&s.boxes))
    .execute(&mut **tx)
    .await
    .map_err(|source| dup_or(source, op, "snapshot", &s.id))?;
    Ok(())
}

fn user_row(row: &AnyRow, op: &'static str) -> Result<UserRow, StoreError> {
    let r = Reader { row, op };
    Ok(UserRow {
        username: r.text("username")?,
        password_hash: r.text("password_hash")?,
        role: r.parse("role")?,
        communities: r.json("communities")?,
        stations: r.json("stations")?,
        disabled: r.bool("disabled")?,
        created_at: r.ts("created_at")?,
    })
}

const USER_COLS: &str =
    "username, password_hash, role, communities, stations, disabled, created_at";

impl Store {
    /// Stores a snapshot's metadata (a duplicate id fails).
    pub async fn insert_snapshot(&self, s: &NewSnapshot) -> Result<(), StoreError> {
        const OP: &str = "storing a snapshot";
        let mut tx = self.pool.begin().await.map_err(db(OP))?;
        insert_snapshot_tx(&mut tx, OP, s).await?;
        tx.commit().await.map_err(db(OP))
    }

    /// One snapshot's metadata, or `None`.
    pub async fn snapshot(&self, id: &str) -> Result<Option<SnapshotRow>, StoreError> {
        const OP: &str = "reading a snapshot";
        let sql = format!("SELECT {SNAPSHOT_COLS} FROM snapshots WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(db(OP))?;
        row.map(|r| snapshot_row(&r, OP)).transpose()
    }

    /// The newest snapshot of `camera`, or `None`.
    pub async fn latest_snapshot(
        &self,
        camera: &CameraId,
    ) -> Result<Option<SnapshotRow>, StoreError> {
        const OP: &str = "reading the latest snapshot";
        let sql = format!(
            "SELECT {SNAPSHOT_COLS} FROM snapshots WHERE camera = $1 \
             ORDER BY taken_at DESC, id DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(camera.as_str().to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(db(OP))?;
        row.map(|r| snapshot_row(&r, OP)).transpose()
    }

    /// Inserts or replaces cameras (by id), in one transaction. Cameras no longer in config
    /// stay (their events refer to them).
    pub async fn upsert_cameras(&self, rows: &[CameraRow]) -> Result<(), StoreError> {
        const OP: &str = "storing cameras";
        let mut tx = self.pool.begin().await.map_err(db(OP))?;
        for c in rows {
            sqlx::query(
                "INSERT INTO cameras (id, community, name, network, extras) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET \
                 community = excluded.community, name = excluded.name, \
                 network = excluded.network, extras = excluded.extras",
            )
            .bind(c.id.as_str().to_owned())
            .bind(c.community.as_str().to_owned())
            .bind(c.name.clone())
            .bind(c.network.clone())
            .bind(json_text(&c.extras))
            .execute(&mut *tx)
            .await
            .map_err(db(OP))?;
        }
        tx.commit().await.map_err(db(OP))
    }

    /// All cameras, by id.
    pub async fn list_cameras(&self) -> Result<Vec<CameraRow>, StoreError> {
        const OP: &str = "listing cameras";
        let rows =
            sqlx::query("SELECT id, community, name, network, extras FROM cameras ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(db(OP))?;
        rows.iter()
            .map(|row| {
                let r = Reader { row, op: OP };
                Ok(CameraRow {
                    id: r.parse("id")?,
                    community: r.parse("community")?,
                    name: r.text("name")?,
                    network: r.text("network")?,
                    extras: r.json("extras")?,
                })
            })
            .collect()
    }

    /// Inserts or replaces gates (by id), in one transaction.
    pub async fn upsert_gates(&self, rows: &[GateRow]) -> Result<(), StoreError> {
        const OP: &str = "storing gates";
        let mut tx = self.pool.begin().await.map_err(db(OP))?;
        for g in rows {
            sqlx::query(
                "INSERT INTO gates (id, community, name, firmware, camera, extras) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
                 community = excluded.community, name = excluded.name, \
                 firmware = excluded.firmware, camera = excluded.camera, \
                 extras = excluded.extras",
            )
            .bind(g.id.as_str().to_owned())
            .bind(g.community.as_str().to_owned())
            .bind(g.name.clone())
            .bind(g.firmware.clone())
            .bind(g.camera.as_ref().map(|c| c.as_str().to_owned()))
            .bind(json_text(&g.extras))
            .execute(&mut *tx)
            .await
            .map_err(db(OP))?;
        }
        tx.commit().await.map_err(db(OP))
    }

    /// All gates, by id.
    pub async fn list_gates(&self) -> Result<Vec<GateRow>, StoreError> {
        const OP: &str = "listing gates";
        let rows = sqlx::query(
            "SELECT id, community, name, firmware, camera, extras FROM gates ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db(OP))?;
        rows.iter()
            .map(|row| {
                let r = Reader { row, op: OP };
                Ok(GateRow {
                    id: r.parse("id")?,
                    community: r.parse("community")?,
                    name: r.text("name")?,
                    firmware: r.text("firmware")?,
                    camera: r.opt_parse("camera")?,
                    extras: r.json("extras")?,
                })
            })
            .collect()
    }

    /// Adds a user; a taken username fails with [`StoreError::Duplicate`] naming it.
    pub async fn insert_user(&self, u: &UserRow) -> Result<(), StoreError> {
        const OP: &str = "storing a user";
        sqlx::query(
            "INSERT INTO users \
             (username, password_hash, role, communities, stations, disabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(u.username.clone())
        .bind(u.password_hash.clone())
        .bind(u.role.as_str())
        .bind(json_text(&u.communities))
        .bind(json_text(&u.stations))
        .bind(i64::from(u.disabled))
        .bind(ms(u.created_at))
        .execute(&self.pool)
        .await
        .map_err(|source| dup_or(source, OP, "user", &u.username))?;
        Ok(())
    }

    /// One user, or `None`.
    pub async fn user(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        const OP: &str = "reading a user";
        let sql = format!("SELECT {USER_COLS} FROM users WHERE username = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(username.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(db(OP))?;
        row.map(|r| user_row(&r, OP)).transpose()
    }

    /// All users, by username.
    pub async fn list_users(&self) -> Result<Vec<UserRow>, StoreError> {
        const OP: &str = "listing users";
        let sql = format!("SELECT {USER_COLS} FROM users ORDER BY username");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(db(OP))?;
        rows.iter().map(|r| user_row(r, OP)).collect()
    }

    /// Replaces a user's hash, role, communities, stations and disabled flag (`created_at` is
    /// kept); a missing user fails with `NotFound`.
    pub async fn update_user(&self, u: &UserRow) -> Result<(), StoreError> {
        const OP: &str = "updating a user";
        let done = sqlx::query(
            "UPDATE users SET password_hash = $2, role = $3, communities = $4, stations = $5, \
             disabled = $6 WHERE username = $1",
        )
        .bind(u.username.clone())
        .bind(u.password_hash.clone())
        .bind(u.role.as_str())
        .bind(json_text(&u.communities))
        .bind(json_text(&u.stations))
        .bind(i64::from(u.disabled))
        .execute(&self.pool)
        .await
        .map_err(db(OP))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "user",
                id: u.username.clone(),
            });
        }
        Ok(())
    }

    /// Stores a session (its user must exist).
    pub async fn insert_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        const OP: &str = "storing a session";
        sqlx::query(
            "INSERT INTO sessions (token_hash, username, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(s.token_hash.clone())
        .bind(s.username.clone())
        .bind(ms(s.created_at))
        .bind(ms(s.expires_at))
        .execute(&self.pool)
        .await
        .map_err(|source| dup_or(source, OP, "session", "(token hash)"))?;
        Ok(())
    }

    /// The session of `token_hash` if it has not expired at `now`.
    pub async fn session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<SessionRow>, StoreError> {
        const OP: &str = "reading a session";
        let row = sqlx::query(
            "SELECT token_hash, username, created_at, expires_at FROM sessions \
             WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash.to_owned())
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db(OP))?;
        row.map(|row| {
            let r = Reader { row: &row, op: OP };
            Ok(SessionRow {
                token_hash: r.text("token_hash")?,
                username: r.text("username")?,
                created_at: r.ts("created_at")?,
                expires_at: r.ts("expires_at")?,
            })
        })
        .transpose()
    }

    /// Deletes a session (logout); whether there was one.
    pub async fn delete_session(&self, token_hash: &str) -> Result<bool, StoreError> {
        const OP: &str = "deleting a session";
        let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash.to_owned())
            .execute(&self.pool)
            .await
            .map_err(db(OP))?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes every session of `username` (password changed); how many.
    pub async fn delete_sessions_of(&self, username: &str) -> Result<u64, StoreError> {
        const OP: &str = "deleting a user's sessions";
        let done = sqlx::query("DELETE FROM sessions WHERE username = $1")
            .bind(username.to_owned())
            .execute(&self.pool)
            .await
            .map_err(db(OP))?;
        Ok(done.rows_affected())
    }

    /// Deletes sessions expired at `now`; how many.
    pub async fn delete_expired_sessions(&self, now: Timestamp) -> Result<u64, StoreError> {
        const OP: &str = "deleting expired sessions";
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(ms(now))
            .execute(&self.pool)
            .await
            .map_err(db(OP))?;
        Ok(done.rows_affected())
    }

    /// Appends an audit entry and returns its `seq`. Append-only: there is no update or
    /// delete of audit rows except retention ([`Store::purge`]).
    pub async fn audit(&self, e: &NewAudit) -> Result<i64, StoreError> {
        const OP: &str = "appending to the audit log";
        let mut tx = self.begin_write(OP, &["audit"]).await?;
        let seq = insert_audit(&mut tx, OP, e).await?;
        tx.commit().await.map_err(db(OP))?;
        Ok(seq)
    }

    /// Audit entries matching `q`, newest (highest `seq`) first, at most `q.limit`. Every
    /// condition is in the query, so a page can start anywhere in the log however long it is
    /// (the API once filtered the newest 10,000 rows in memory and never reached older ones).
    pub async fn list_audit(&self, q: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        const OP: &str = "listing the audit log";
        let mut f = Filter::default();
        f.time_range("at", q.from, q.before);
        if let Some(seq) = q.before_seq {
            f.cmp("seq", "<", Arg::I64(seq));
        }
        let rows = f
            .query(
                "SELECT seq, at, actor, action, target, detail, peer FROM audit",
                "ORDER BY seq DESC",
                Some(q.limit),
            )
            .fetch_all(&self.pool)
            .await
            .map_err(db(OP))?;
        rows.iter()
            .map(|row| {
                let r = Reader { row, op: OP };
                Ok(AuditRow {
                    seq: r.int("seq")?,
                    at: r.ts("at")?,
                    actor: r.text("actor")?,
                    action: r.text("action")?,
                    target: r.opt_text("target")?,
                    detail: r.json("detail")?,
                    peer: r.opt_text("peer")?,
                })
            })
            .collect()
    }
}

/// Appends `e` to the audit log inside the caller's transaction (which holds the write lock of
/// `audit`); returns its `seq`.
pub(crate) async fn insert_audit(
    tx: &mut Tx,
    op: &'static str,
    e: &NewAudit,
) -> Result<i64, StoreError> {
    let seq = next_seq(tx, op, "audit").await?;
    sqlx::query(
        "INSERT INTO audit (seq, at, actor, action, target, detail, peer) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(seq)
    .bind(ms(e.at))
    .bind(e.actor.clone())
    .bind(e.action.clone())
    .bind(e.target.clone())
    .bind(json_text(&e.detail))
    .bind(e.peer.clone())
    .execute(&mut **tx)
    .await
    .map_err(db(op))?;
    Ok(seq)
}
