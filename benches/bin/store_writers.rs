//! Gate events stored by several hub nodes at once into one PostgreSQL, for
//! `benches/store-run`: what the district's store sustains with its gap-free numbering
//! (`MAX(seq) + 1` under the `gate_events` table lock, the dedup lookup in the same
//! transaction: [`Store::insert_gate_batch_once`]) against its peer, the same events into a
//! table numbered by a PostgreSQL identity sequence with a unique dedup key
//! (`INSERT ... ON CONFLICT DO NOTHING`, no table lock), the design the lock was chosen over.
//!
//! As in a district, every node ingests every gate, so each of `--writers` writers (a node:
//! its own `Store` and connection pool) stores the same batches; the first to commit a batch
//! stores it, the others find it stored. Each writer goes through the batches as fast as its
//! commits return, for `--secs` seconds per batch size. Figures: distinct events stored a
//! second, and the latency of one writer's commit (p50, p99).
//!
//! Usage: store_writers [--writers 3] [--secs 10] [--batch 1 --batch 32] [--json]
//! The database server is `XUELIANG_TEST_DATABASE_URL` (default
//! postgres://postgres@127.0.0.1:5432/test); a scratch database is created and dropped.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use sqlx::Connection;
use tokio::time::Instant;
use xl_store::{NewGateEvent, Store};

#[derive(Parser, Debug)]
#[command(name = "store_writers")]
struct Args {
    /// Writers (nodes), each with its own pool.
    #[arg(long, default_value_t = 3)]
    writers: usize,
    /// Seconds per run.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Events per batch (one transaction); repeat for several runs.
    #[arg(long, default_values_t = [1, 32])]
    batch: Vec<usize>,
    /// Also print one JSON line.
    #[arg(long)]
    json: bool,
}

/// One run's figures.
#[derive(Debug, serde::Serialize)]
struct Run {
    design: &'static str,
    batch: usize,
    events_per_sec: f64,
    commit_p50_ms: f64,
    commit_p99_ms: f64,
}

/// Batch `n` of size `size`: the same events whoever stores it.
fn batch(n: usize, size: usize, t0: Timestamp) -> Vec<NewGateEvent> {
    (0..size)
        .map(|i| {
            let k = n * size + i;
            let at = t0 + SignedDuration::from_millis(k as i64);
            let id = format!("{:012x}-{k:08x}", at.as_millisecond());
            NewGateEvent {
                id: id.clone(),
                gate: format!("gate-{:04}", k % 3600).parse().expect("gate id"),
                community: format!("c{:02}", k % 40).parse().expect("community id"),
                camera: None,
                firmware: "hikvision-isapi".into(),
                kind: "access_granted".into(),
                received_at: at,
                occurred_at: Some(at),
                dedup_key: format!("{k:016x}"),
                evidence: None,
                // About the size of a stored Hikvision access event.
                body: json!({
                    "id": id, "gate": format!("gate-{:04}", k % 3600), "firmware": "hikvision-isapi",
                    "transport": "mqtt", "source": format!("xl/gate-{:04}/event", k % 3600),
                    "received_at": at.to_string(), "occurred_at": at.to_string(),
                    "dedup_key": format!("{k:016x}"),
                    "event": { "kind": "access_granted", "door": 1, "card": "0012345678",
                               "person": "P-000123", "verify_mode": "face", "similarity": 0.93 },
                }),
            }
        })
        .collect()
}

/// Runs `writers` tasks through the batches for `secs`; `store(n)` stores batch `n` and
/// returns how many events it stored.
async fn run<F, Fut>(writers: usize, secs: u64, store: F) -> anyhow::Result<(f64, Vec<Duration>)>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<usize>> + Send,
{
    let store = Arc::new(store);
    let stored = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, stored) = (Arc::clone(&store), Arc::clone(&stored));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0;
            while Instant::now() < end {
                let t = Instant::now();
                stored.fetch_add(store(w, n).await?, Ordering::Relaxed);
                latencies.push(t.elapsed());
                n += 1;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    latencies.sort();
    Ok((stored.load(Ordering::Relaxed) as f64 / secs, latencies))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn bench(args: &Args, url: &str) -> anyhow::Result<Vec<Run>> {
    let t0 = Timestamp::now();
    let window = SignedDuration::from_secs(600);
    let mut runs = Vec::new();
    for &size in &args.batch {
        // The hub: a store per writer, as each node has its own.
        let mut stores = Vec::new();
        for _ in 0..args.writers {
            stores.push(Store::open(url).await.context("opening the store")?);
        }
        sqlx::query("DELETE FROM gate_events")
            .execute(&mut sqlx::PgConnection::connect(url).await?)
            .await?;
        let stores = Arc::new(stores);
        let (rate, lat) = run(args.writers, args.secs, move |w, n| {
            let stores = Arc::clone(&stores);
            async move {
                let done = stores[w]
                    .insert_gate_batch_once(&batch(n, size, t0), &[], window)
                    .await?;
                Ok(done.stored)
            }
        })
        .await?;
        runs.push(Run {
            design: "MAX(seq)+1 under the table lock (the hub)",
            batch: size,
            events_per_sec: rate,
            commit_p50_ms: percentile(&lat, 0.5),
            commit_p99_ms: percentile(&lat, 0.99),
        });

        // The peer: an identity sequence and a unique dedup key, no table lock.
        let mut admin = sqlx::PgConnection::connect(url).await?;
        sqlx::raw_sql(
            "DROP TABLE IF EXISTS peer_events; \
             CREATE TABLE peer_events (LIKE gate_events INCLUDING DEFAULTS); \
             ALTER TABLE peer_events ALTER seq ADD GENERATED ALWAYS AS IDENTITY; \
             ALTER TABLE peer_events ADD PRIMARY KEY (seq); \
             CREATE UNIQUE INDEX peer_events_id ON peer_events (id); \
             CREATE UNIQUE INDEX peer_events_dedup ON peer_events (dedup_key); \
             CREATE INDEX peer_events_gate ON peer_events (gate, received_at); \
             CREATE INDEX peer_events_community ON peer_events (community, received_at); \
             CREATE INDEX peer_events_received ON peer_events (received_at);",
        )
        .execute(&mut admin)
        .await?;
        let mut pools = Vec::new();
        for _ in 0..args.writers {
            pools.push(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(4)
                    .connect(url)
                    .await?,
            );
        }
        let pools = Arc::new(pools);
        let (rate, lat) = run(args.writers, args.secs, move |w, n| {
            let pools = Arc::clone(&pools);
            async move {
                let events = batch(n, size, t0);
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO peer_events (id, gate, community, camera, firmware, kind, \
                     received_at, occurred_at, dedup_key, evidence, body) ",
                );
                q.push_values(&events, |mut b, e| {
                    b.push_bind(&e.id)
                        .push_bind(e.gate.as_str())
                        .push_bind(e.community.as_str())
                        .push_bind(None::<String>)
                        .push_bind(&e.firmware)
                        .push_bind(&e.kind)
                        .push_bind(e.received_at.as_millisecond())
                        .push_bind(e.occurred_at.map(|t| t.as_millisecond()))
                        .push_bind(&e.dedup_key)
                        .push_bind(None::<String>)
                        .push_bind(e.body.to_string());
                });
                q.push(" ON CONFLICT DO NOTHING");
                let done = q.build().execute(&pools[w]).await?;
                Ok(done.rows_affected() as usize)
            }
        })
        .await?;
        runs.push(Run {
            design: "identity sequence, unique dedup key (peer)",
            batch: size,
            events_per_sec: rate,
            commit_p50_ms: percentile(&lat, 0.5),
            commit_p99_ms: percentile(&lat, 0.99),
        });
    }
    Ok(runs)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    let admin_url = std::env::var("XUELIANG_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let name = format!("xl_bench_{:016x}", rand_suffix());
    let url = match create_database(&admin_url, &name).await {
        Ok(u) => u,
        Err(e) => {
            eprintln!("store_writers: cannot create a scratch database on {admin_url}: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = bench(&args, &url).await;
    if let Err(e) = drop_database(&admin_url, &name).await {
        eprintln!("store_writers: cannot drop {name}: {e:#}");
    }
    let runs = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("store_writers: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("| design | batch | events stored/s | commit p50 | commit p99 | ratio to the peer |");
    println!("|---|---:|---:|---:|---:|---:|");
    for pair in runs.chunks(2) {
        let peer = pair.get(1).map_or(f64::NAN, |p| p.events_per_sec);
        for r in pair {
            println!(
                "| {} | {} | {:.0} | {:.1} ms | {:.1} ms | {:.2} |",
                r.design,
                r.batch,
                r.events_per_sec,
                r.commit_p50_ms,
                r.commit_p99_ms,
                r.events_per_sec / peer
            );
        }
    }
    if args.json {
        println!(
            "{}",
            json!({ "writers": args.writers, "secs": args.secs, "runs": runs })
        );
    }
    ExitCode::SUCCESS
}

fn rand_suffix() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.as_nanos() as u64 ^ u64::from(std::process::id())
}

async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let mut admin = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    let (base, _) = admin_url
        .rsplit_once('/')
        .context("the database URL has no database name")?;
    Ok(format!("{base}/{name}"))
}

async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    Ok(())
}
