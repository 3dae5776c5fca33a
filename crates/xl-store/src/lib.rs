//! All persistence of the Xueliang hub: gate events, vision events, alerts with their history
//! and outbox, snapshots' metadata, the camera and gate registry, users, sessions, the audit
//! log, the recordings' index with its holds, and the district's evidence-signing keys (public
//! halves only).
//!
//! One [`Store`] over a sqlx `AnyPool`: SQLite (WAL) by default, PostgreSQL when the URL says
//! so. One set of migrations (`migrations/`, embedded) runs on both, written in portable SQL;
//! queries are runtime queries with `$n` placeholders, which both backends accept.
//!
//! Conventions:
//! - Times are BIGINT Unix milliseconds ([`jiff::Timestamp`] in the API); structured extras
//!   are JSON text.
//! - Ids are made by the application. Sequence numbers (gate events, vision events, outbox,
//!   audit, an alert's history) are assigned by the store as `MAX + 1` inside the writing
//!   transaction, which first takes the table's write lock (SQLite `BEGIN IMMEDIATE`,
//!   PostgreSQL `LOCK TABLE ... IN EXCLUSIVE MODE`). They are therefore gap-free, and a
//!   reader paging by `seq` never sees a later number committed before an earlier one.
//!   Several hub nodes may write one database: they serialise on the same locks.
//! - Nodes sharing a database: a gate event that every node ingests is stored once
//!   ([`Store::insert_gate_batch_once`]), and a commit carrying a lease's revision as a
//!   [`Fence`] is refused once a newer holder of that lease has committed.
//! - Writes that belong together are one transaction: a gate batch with its dead letters;
//!   a rules engine's [`Commit`] (alerts, history, outbox, snapshots, input cursors); a
//!   person's [`Store::act`].

mod alerts;
mod error;
mod evidence_keys;
mod gates;
mod recordings;
mod registry;
mod retention;
mod sql;
mod topology;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, Transaction};

pub use alerts::{
    ActionRow, AlertDetail, AlertFilter, Change, Commit, Durations, Fence, ResponseFigures,
};
pub use error::{StoreError, redact_url};
pub use evidence_keys::EvidenceKeyRow;
pub use gates::{
    DeadLetterRow, GateBatchStored, GateEventFilter, GateEventRow, NewDeadLetter, NewGateEvent,
    NewVisionEvent, VisionEventFilter, VisionEventRow,
};
pub use recordings::{
    HoldRow, NewHold, NewSegment, RECORDING_GAP_SECS, RecordedRanges, SegmentRow, SegmentState,
    TimeRange, alert_holder,
};
pub use registry::{
    AuditFilter, AuditRow, CameraRow, GateRow, NewAudit, NewSnapshot, SessionRow, SnapshotRow,
    UserRow,
};
pub use retention::{PurgeReport, Retention};
pub use topology::{ApplyReport, Author, SecretUpdate, StoredTopology, TopologyCheck};

/// The cursor of the reader of stored gate events (the rules processor) on a single hub:
/// retention keeps the gate events it has not read yet.
pub const GATE_EVENTS_READER: &str = "rules.gate_events";

/// The cursor of gate shard `shard`'s reader on a node of a district
/// (`rules.gate_events.<shard>`): there retention keeps what the slowest shard has not read.
pub fn gate_shard_reader(shard: u32) -> String {
    format!("{GATE_EVENTS_READER}.{shard}")
}

/// The `LIKE` pattern of the shard readers' cursors.
const GATE_SHARD_READERS: &str = "rules.gate_events.%";

use sql::db;

/// How long `open` and every later query wait for a connection before failing. Short, so a
/// database that is down is reported at once rather than after sqlx's default 30 s.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a SQLite connection waits for another connection's write lock.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The store: a pool of connections to one database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Redacted.
    url: String,
    /// Run by the topology writes made for the API ([`Store::with_topology_check`]).
    topology_check: Option<TopologyCheck>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

type Tx = Transaction<'static, Any>;

impl Store {
    /// Opens `sqlite://PATH` (the file and its directory are created if missing; WAL,
    /// `synchronous=FULL` because the hub acknowledges gate payloads only after they are
    /// stored, foreign keys on, a 5 s busy timeout), `sqlite::memory:` (tests), or
    /// `postgres://...` / `postgresql://...`, and runs the migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let redacted = redact_url(url);
        let (backend, connect_url, memory) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let memory = rest == ":memory:" || rest.contains("mode=memory");
            let path = rest.strip_prefix("//").unwrap_or(rest);
            let (path, query) = match path.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (path, None),
            };
            if !memory {
                if path.is_empty() {
                    return Err(StoreError::UnsupportedUrl { url: redacted });
                }
                if let Some(dir) = Path::new(path)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                        path: dir.to_owned(),
                        source,
                    })?;
                }
            }
            let connect = if memory {
                url.to_owned()
            } else {
                match query {
                    Some(q) if q.contains("mode=") => format!("sqlite://{path}?{q}"),
                    Some(q) => format!("sqlite://{path}?{q}&mode=rwc"),
                    None => format!("sqlite://{path}?mode=rwc"),
                }
            };
            (Backend::Sqlite, connect, memory)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned(), false)
        } else {
            return Err(StoreError::UnsupportedUrl { url: redacted });
        };

        let options = sqlx::any::AnyConnectOptions::from_str(&connect_url).map_err(|source| {
            StoreError::Connect {
                url: redacted.clone(),
                source,
            }
        })?;
        // One plain connection first: a pool only reports "timed out" when it cannot
        // connect, while this says why (refused, authentication, unknown database...).
        match tokio::time::timeout(
            ACQUIRE_TIMEOUT,
            <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options),
        )
        .await
        {
            Err(_) => {
                return Err(StoreError::ConnectTimeout {
                    url: redacted,
                    after: ACQUIRE_TIMEOUT,
                });
            }
            Ok(Err(source)) => {
                return Err(StoreError::Connect {
                    url: redacted,
                    source,
                });
            }
            Ok(Ok(conn)) => {
                let _ = sqlx::Connection::close(conn).await;
            }
        }
        let mut pool = AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        match backend {
            Backend::Sqlite => {
                // One writer at a time anyway (BEGIN IMMEDIATE); a few connections let reads
                // run beside it (WAL). An in-memory database lives in its one connection.
                pool = if memory {
                    pool.max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None)
                } else {
                    pool.max_connections(4)
                };
                pool = pool.after_connect(|conn, _meta| {
                    Box::pin(async move {
                        let busy =
                            format!("PRAGMA busy_timeout = {}", SQLITE_BUSY_TIMEOUT.as_millis());
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA foreign_keys = ON",
                            busy.as_str(),
                        ] {
                            sqlx::query(sqlx::AssertSqlSafe(pragma.to_owned()))
                                .execute(&mut *conn)
                                .await?;
                        }
                        Ok(())
                    })
                });
            }
            Backend::Postgres => pool = pool.max_connections(10),
        }
        let pool = pool
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                url: redacted.clone(),
                source,
            })?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                url: redacted.clone(),
                source,
            })?;
        tracing::debug!(url = %redacted, ?backend, "store opened");
        Ok(Store {
            pool,
            backend,
            url: redacted,
            topology_check: None,
        })
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database URL with any password redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying pool, for tests and tools.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes the pool (waits for connections in use to come back).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A transaction holding the write lock of `tables` (the tables whose sequence numbers it
    /// assigns). SQLite: `BEGIN IMMEDIATE` (the database's one write lock). PostgreSQL:
    /// `LOCK TABLE ... IN EXCLUSIVE MODE` (readers go on; writers of those tables wait).
    async fn begin_write(&self, op: &'static str, tables: &[&str]) -> Result<Tx, StoreError> {
        match self.backend {
            Backend::Sqlite => self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(db(op)),
            Backend::Postgres => {
                let mut tx = self.pool.begin().await.map_err(db(op))?;
                if !tables.is_empty() {
                    let sql = format!("LOCK TABLE {} IN EXCLUSIVE MODE", tables.join(", "));
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut *tx)
                        .await
                        .map_err(db(op))?;
                }
                Ok(tx)
            }
        }
    }
}

/// The next `seq` of `table`, inside the caller's transaction (see [`last_seq_sql`]).
async fn next_seq(tx: &mut Tx, op: &'static str, table: &str) -> Result<i64, StoreError> {
    use sqlx::Row;
    let row = sqlx::query(sqlx::AssertSqlSafe(last_seq_sql(table)))
        .fetch_one(&mut **tx)
        .await
        .map_err(db(op))?;
    let m: i64 = row.try_get("m").map_err(db(op))?;
    Ok(m + 1)
}

/// A query for the highest `seq` ever given in `table` (column `m`, 0 for none): `MAX(seq)`
/// or, when retention has deleted the newest rows, the floor it recorded first (see
/// [`seq_floor`]). Readers keep cursors over these numbers, so none may be given twice.
fn last_seq_sql(table: &str) -> String {
    last_number_sql(table, "seq")
}

/// [`last_seq_sql`] for a table numbered by another column (`id`).
pub(crate) fn last_number_sql(table: &str, column: &str) -> String {
    format!(
        "SELECT COALESCE(MAX(m), 0) AS m FROM (SELECT MAX({column}) AS m FROM {table} \
         UNION ALL SELECT value AS m FROM cursors WHERE name = '{}') t",
        seq_floor(table)
    )
}

/// The `cursors` row where retention records the highest `seq` of `table` it ever saw, before
/// deleting rows, so that numbering goes on after it even when the table is left empty.
pub(crate) fn seq_floor(table: &str) -> String {
    format!("seq_floor.{table}")
}
