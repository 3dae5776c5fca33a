//! A fresh database per test, on SQLite and on PostgreSQL: a SQLite file in a scratch
//! directory, or a database created on the server at `XUELIANG_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and dropped afterwards. Shared by the store's
//! test files.

// Each test file uses what it needs of this.
#![allow(dead_code)]

use std::time::Duration;

use sqlx::Connection;
use xl_store::{Backend, Store};

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh database and a scratch directory (the SQLite file's, or an empty one); a
/// PostgreSQL database is dropped on drop.
pub struct TestDb {
    pub store: Store,
    /// What the store was opened with (to open it again).
    pub url: String,
    pub dir: tempfile::TempDir,
    pg: Option<PgDrop>,
}

struct PgDrop {
    admin_url: String,
    name: String,
}

impl Drop for PgDrop {
    fn drop(&mut self) {
        // Best effort, on its own runtime (the test's may be gone); FORCE ends the pool's
        // connections.
        let admin = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut c = tokio::time::timeout(
                    Duration::from_secs(5),
                    sqlx::AnyConnection::connect(&admin),
                )
                .await
                .ok()?
                .ok()?;
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .ok()?;
                c.close().await.ok()
            })
        })
        .join();
    }
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = sqlite_url(&dir);
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        TestDb {
            store,
            url,
            dir,
            pg: None,
        }
    }

    pub async fn postgres() -> TestDb {
        let (url, pg) = create_pg_database().await;
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        TestDb {
            store,
            url,
            dir: tempfile::tempdir().unwrap(),
            pg: Some(pg),
        }
    }

    /// A database of `backend` on which only the migrations before `version` ran, then the
    /// statements of `seed`, then opened as a [`Store`] (which runs the later migrations): the
    /// database of an older hub, upgraded with its data.
    pub async fn upgraded(backend: Backend, version: i64, seed: &[&str]) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let (url, connect, pg) = match backend {
            Backend::Sqlite => {
                std::fs::create_dir_all(dir.path().join("db")).unwrap();
                let url = sqlite_url(&dir);
                let connect = format!("{url}?mode=rwc");
                (url, connect, None)
            }
            Backend::Postgres => {
                let (url, pg) = create_pg_database().await;
                (url.clone(), url, Some(pg))
            }
        };
        sqlx::any::install_default_drivers();
        let mut older = sqlx::migrate!("./migrations");
        older.migrations = older
            .migrations
            .iter()
            .filter(|m| m.version < version)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        assert!(
            !older.migrations.is_empty(),
            "no migration before {version}"
        );
        let pool = sqlx::AnyPool::connect(&connect).await.unwrap();
        older.run(&pool).await.unwrap();
        for sql in seed {
            sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("seeding with {sql}: {e}"));
        }
        pool.close().await;
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.backend(), backend);
        TestDb {
            store,
            url,
            dir,
            pg,
        }
    }

    pub async fn finish(self) {
        self.store.close().await;
        drop(self.pg);
    }
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/db/hub.sqlite", dir.path().display())
}

/// A fresh database on the PostgreSQL server of `XUELIANG_TEST_DATABASE_URL`: its URL, and
/// the guard that drops it.
async fn create_pg_database() -> (String, PgDrop) {
    sqlx::any::install_default_drivers();
    let admin_url =
        std::env::var("XUELIANG_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG.to_owned());
    let shown = xl_store::redact_url(&admin_url);
    let how = "PostgreSQL tests need a server: set XUELIANG_TEST_DATABASE_URL to a \
               database on a server where this user may CREATE DATABASE \
               (default postgres://postgres@127.0.0.1:5432/test)";
    let mut admin = match tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::AnyConnection::connect(&admin_url),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("cannot connect to {shown}: {e}. {how}"),
        Err(_) => panic!("connecting to {shown} timed out. {how}"),
    };
    let name = format!("xl_test_{:016x}", rand::random::<u64>());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE on {shown}: {e}. {how}"));
    admin.close().await.ok();
    let pg = PgDrop {
        admin_url: admin_url.clone(),
        name: name.clone(),
    };
    let mut url = url::Url::parse(&admin_url).expect("XUELIANG_TEST_DATABASE_URL is a URL");
    url.set_path(&name);
    (url.to_string(), pg)
}

/// Runs `$name(&TestDb)` once on SQLite and once on PostgreSQL.
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = crate::common::TestDb::sqlite().await;
                super::$name(&db).await;
                db.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = crate::common::TestDb::postgres().await;
                super::$name(&db).await;
                db.finish().await;
            }
        }
    )+};
}
