//! The store's one error type, and URL redaction.

use std::path::PathBuf;

use xl_core::ErrorKind;
use xl_core::alert::NotAllowed;
use xl_core::topology::{EntryId, TopologyError};

/// Everything that can go wrong in the store. Messages name the row or the (redacted) URL;
/// no variant ever holds a database password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("database URL {url} is not supported: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl {
        /// Redacted.
        url: String,
    },
    /// Could not reach or open the database.
    #[error("cannot open the database {url}: {source}")]
    Connect {
        /// Redacted.
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// The database did not answer in time.
    #[error("cannot open the database {url}: no connection within {after:?}")]
    ConnectTimeout {
        /// Redacted.
        url: String,
        after: std::time::Duration,
    },
    /// The migrations failed (or the database has migrations this build does not know).
    #[error("migrating the database {url} failed: {source}")]
    Migrate {
        /// Redacted.
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// An insert of an id (or username) that is already stored.
    #[error("{what} {id:?} already exists")]
    Duplicate { what: &'static str, id: String },
    /// The row asked for (to update or act on) does not exist.
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    /// A person's action that the alert's state machine ([`xl_core::Alert::apply`]) does not
    /// allow.
    #[error(transparent)]
    IllegalTransition(#[from] NotAllowed),
    /// Arguments the store refuses (a note action without a note, a path outside the snapshot
    /// directory, ...).
    #[error("{0}")]
    Invalid(String),
    /// A topology entry fails its own checks or its references (the field is named).
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// A change of a topology entry made against a revision that is no longer the entry's:
    /// someone else changed it since it was read.
    #[error(
        "{entry} was changed meanwhile (it is at revision {current}, not {expected}); read it \
         again and redo the change"
    )]
    StaleRevision {
        entry: String,
        expected: u64,
        current: u64,
    },
    /// A commit fenced by a lease's revision older than one already committed under the same
    /// lease: the lease moved to another node (its newer holder has committed), so this node's
    /// results are stale. Nothing was written.
    #[error(
        "the lease {key:?} moved to another node (it committed with revision {current}, this \
         commit carries {revision}); nothing committed"
    )]
    Fenced {
        /// The lease's key.
        key: String,
        /// The revision this commit carried.
        revision: u64,
        /// The highest revision committed under the lease.
        current: u64,
    },
    /// Entries written together ([`crate::Store::create_entries`]) refused: each refusal
    /// with the entry's position among them (from 0). Nothing was written.
    #[error("{} of {total} entries refused, nothing stored; the first: entry {}: {}",
        refused.len(),
        refused.first().map_or(0, |(i, _)| i + 1),
        refused.first().map_or(String::new(), |(_, e)| e.to_string()))]
    Batch {
        total: usize,
        refused: Vec<(usize, StoreError)>,
    },
    /// A station that users are scoped to (their `stations`), which therefore cannot be
    /// deleted: change their stations first, or disable the station.
    #[error(
        "station {station:?} is still in the stations of {}: change their stations first (or \
         disable the station: they then see nothing of it)",
        users_named(users)
    )]
    StationInScope { station: String, users: Vec<String> },
    /// A topology write that the store's check refused ([`crate::TopologyCheck`]): what it
    /// would leave cannot run (the hub's gate ingest would refuse the gates that would run).
    /// `entry` is the entry written (`None` for an import). Nothing was written.
    #[error("{}: {reason}", entry.as_ref().map_or_else(|| "these entries".to_owned(), ToString::to_string))]
    Refused {
        entry: Option<EntryId>,
        reason: String,
    },
    /// A change through the store's API of a topology entry the config file declares.
    #[error("{entry} is declared in the config file and read-only here; change it there")]
    ReadOnly { entry: String },
    /// A query failed; `op` says which store operation ran it.
    #[error("{op}: {source}")]
    Database {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A stored value could not be read back (a bug, or a database edited by hand).
    #[error("{op}: column {column} holds an unreadable value: {detail}")]
    Corrupt {
        op: &'static str,
        column: String,
        detail: String,
    },
    /// A file under the snapshot directory could not be deleted.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// What sort of failure this is (the API maps it to a status, loops to a backoff).
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::UnsupportedUrl { .. }
            | StoreError::Duplicate { .. }
            | StoreError::IllegalTransition { .. }
            | StoreError::Invalid(_)
            | StoreError::Batch { .. } => ErrorKind::InvalidInput,
            // An entry still referred to can go once the referrer changes: a conflict with
            // the current state, not bad input.
            StoreError::Topology(TopologyError::InUse { .. }) => ErrorKind::Conflict,
            StoreError::Topology(e) => e.kind(),
            StoreError::StaleRevision { .. } | StoreError::Fenced { .. } => ErrorKind::Conflict,
            // Both hold until something else changes: the users' stations, the gates that
            // must run.
            StoreError::StationInScope { .. } | StoreError::Refused { .. } => ErrorKind::Conflict,
            StoreError::ReadOnly { .. } => ErrorKind::PermissionDenied,
            StoreError::NotFound { .. } => ErrorKind::NotFound,
            StoreError::Connect { .. } | StoreError::ConnectTimeout { .. } => {
                ErrorKind::Unavailable
            }
            StoreError::Migrate { .. } | StoreError::Corrupt { .. } => ErrorKind::Internal,
            StoreError::Io { .. } => ErrorKind::Unavailable,
            StoreError::Database { source, .. } => sqlx_kind(source),
        }
    }
}

/// `user "a"` or `users "a", "b"`.
fn users_named(users: &[String]) -> String {
    let names: Vec<String> = users.iter().map(|u| format!("{u:?}")).collect();
    match names.len() {
        1 => format!("user {}", names[0]),
        _ => format!("users {}", names.join(", ")),
    }
}

/// Connection trouble and lock contention are transient; a constraint violation is the
/// caller's input; the rest is a bug.
fn sqlx_kind(e: &sqlx::Error) -> ErrorKind {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => ErrorKind::Unavailable,
        sqlx::Error::Database(d) => {
            if d.is_unique_violation() || d.is_foreign_key_violation() || d.is_check_violation() {
                return ErrorKind::InvalidInput;
            }
            // SQLite: SQLITE_BUSY (5) / SQLITE_LOCKED (6) and their extended codes.
            // PostgreSQL: class 08 (connection), 40 (serialization, deadlock), 53 (resources),
            // 57P (shutdown).
            let code = d.code().unwrap_or_default();
            let sqlite_busy = code
                .parse::<i64>()
                .map(|c| matches!(c & 0xff, 5 | 6))
                .unwrap_or(false);
            if sqlite_busy
                || code.starts_with("08")
                || code.starts_with("40")
                || code.starts_with("53")
                || code.starts_with("57P")
            {
                ErrorKind::Unavailable
            } else {
                ErrorKind::Internal
            }
        }
        _ => ErrorKind::Internal,
    }
}

/// Whether `e` is a unique (or primary key) violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// `url` with any password replaced by `***` (`postgres://user:***@host/db`), for errors and
/// logs. Works on text that is not a valid URL too.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    // The authority ends at the first '/', '?' or '#'; a password may hold '@', so the
    // userinfo ends at the last '@' of the authority.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}:***{}",
        &url[..rest_start],
        &userinfo[..colon],
        &rest[at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        let cases = [
            (
                "postgres://xl:s3cr%40t@db.example:5432/hub?sslmode=require",
                "postgres://xl:***@db.example:5432/hub?sslmode=require",
            ),
            ("postgres://xl:p@ss@db/hub", "postgres://xl:***@db/hub"),
            ("postgres://xl@db/hub", "postgres://xl@db/hub"),
            (
                "sqlite:///var/lib/xueliang/hub.db",
                "sqlite:///var/lib/xueliang/hub.db",
            ),
            ("sqlite::memory:", "sqlite::memory:"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[tokio::test]
    async fn a_postgres_password_never_appears_in_the_open_error() {
        // Port 1 on loopback refuses at once; the error must name the URL without the secret.
        let url = "postgres://xl:hunter2-secret@127.0.0.1:1/hub";
        let err = crate::Store::open(url).await.unwrap_err();
        let shown = err.to_string();
        let debug = format!("{err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        // The real cause, not just a pool timeout.
        assert!(shown.contains("refused"), "{shown}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            shown.contains("postgres://xl:***@127.0.0.1:1/hub"),
            "{shown}"
        );
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }

    #[tokio::test]
    async fn an_unknown_scheme_is_invalid_input_and_redacted() {
        let err = crate::Store::open("mysql://root:topsecret@localhost/x")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }
}
