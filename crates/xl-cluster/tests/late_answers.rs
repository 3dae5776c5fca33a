//! Renewals whose answers come after their round gave up on them, against a real nats-server
//! 2.15.1 (`XUELIANG_NATS_SERVER`, from `scripts/ensure-nats`).
//!
//! A round waits for its requests until its deadline (`renew_every`), then abandons them. A
//! request already sent is still stored by the server, so the entry moves to a revision the
//! node never heard of. Found by `benches/cluster-run` (40 nodes in one process on a loaded
//! 2-core box): every later renewal was refused for a wrong revision, the node dropped leases
//! nobody else held (camera stopped, then taken again under a new token), and releases were
//! refused the same way, so the next owner waited for the lease to expire.
//!
//! Freezing the server (SIGSTOP) for a few rounds makes exactly that happen: the requests wait
//! in its socket, the rounds that sent them give up, and the server stores them when it
//! resumes (SIGCONT).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;
use xl_cluster::{Cluster, ClusterConfig, Held, LeaseKey, Wanted};
use xl_testkit::NatsServer;

/// Long enough that the node fences nothing while the server is frozen (fence after
/// `ttl - 2 * renew` = 5 s).
const TTL: Duration = Duration::from_secs(6);
/// For the release test: far longer than a release takes to move a key.
const LONG_TTL: Duration = Duration::from_secs(20);
const RENEW: Duration = Duration::from_millis(500);
/// Three rounds: their requests are abandoned, then stored.
const FROZEN: Duration = Duration::from_millis(1500);
const KEYS: usize = 40;
/// How long a condition may take to come true before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

fn prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("late{}-{nanos}", std::process::id())
}

fn config(url: String, node: &str, prefix: &str, ttl: Duration) -> ClusterConfig {
    ClusterConfig {
        urls: vec![url],
        node: node.to_owned(),
        lease_ttl: ttl,
        renew_every: RENEW,
        bucket_prefix: prefix.to_owned(),
        ..Default::default()
    }
}

fn wanted() -> Vec<Wanted> {
    (0..KEYS)
        .map(|i| Wanted {
            key: LeaseKey::camera(&format!("cam-{i}")).unwrap(),
            pin: None,
        })
        .collect()
}

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    ensure!(status.success(), "kill -{sig} {pid}: {status}");
    Ok(())
}

/// Records every value `held()` takes.
fn record(node: &Cluster) -> Arc<Mutex<Vec<Arc<Held>>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut rx = node.held();
    let out = Arc::clone(&seen);
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let held = rx.borrow_and_update().clone();
            out.lock().unwrap().push(held);
        }
    });
    seen
}

async fn wait_rounds(node: &Cluster, more: u64) -> anyhow::Result<()> {
    let mut rounds = node.rounds();
    let from = *rounds.borrow_and_update();
    tokio::time::timeout(PATIENCE, rounds.wait_for(|n| *n >= from + more))
        .await
        .with_context(|| format!("fewer than {more} full rounds in {PATIENCE:?}"))?
        .context("the lease loop ended")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_answered_too_late_keep_the_leases() -> anyhow::Result<()> {
    let server = tokio::task::spawn_blocking(NatsServer::start).await??;
    let pid = server.pid().context("the server runs")?;
    let shutdown = CancellationToken::new();
    let node = Cluster::start(
        config(server.url(), "node-a", &prefix(), TTL),
        shutdown.clone(),
    )
    .await?;
    node.want(wanted());
    let deadline = Instant::now() + PATIENCE;
    while node.held().borrow().leases.len() < KEYS {
        if Instant::now() > deadline {
            bail!("holds {} of {KEYS} keys", node.held().borrow().leases.len());
        }
        sleep(Duration::from_millis(20)).await;
    }
    let before: BTreeMap<LeaseKey, u64> = node.held().borrow().leases.clone();
    let seen = record(&node);

    signal(pid, "STOP")?;
    sleep(FROZEN).await;
    signal(pid, "CONT")?;
    // Rounds that renew with the revision the late answers carried.
    wait_rounds(&node, 4).await?;

    for held in seen.lock().unwrap().iter() {
        for (key, token) in &before {
            match held.leases.get(key) {
                Some(t) if t == token => {}
                other => bail!("{key} (token {token}) became {other:?}: dropped or taken anew"),
            }
        }
    }
    assert_eq!(node.held().borrow().leases, before);
    node.stop().await;
    Ok(())
}

/// A node that gives a key up after its renewal was answered too late still deletes the
/// lease, so that the next owner takes it at once instead of after `lease_ttl`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_after_late_answers_frees_the_key_at_once() -> anyhow::Result<()> {
    let server = tokio::task::spawn_blocking(NatsServer::start).await??;
    let pid = server.pid().context("the server runs")?;
    let shutdown = CancellationToken::new();
    let prefix = prefix();
    let a = Cluster::start(
        config(server.url(), "node-a", &prefix, LONG_TTL),
        shutdown.clone(),
    )
    .await?;
    a.want(wanted());
    let deadline = Instant::now() + PATIENCE;
    while a.held().borrow().leases.len() < KEYS {
        if Instant::now() > deadline {
            bail!("holds {} of {KEYS} keys", a.held().borrow().leases.len());
        }
        sleep(Duration::from_millis(20)).await;
    }

    signal(pid, "STOP")?;
    sleep(FROZEN).await;
    signal(pid, "CONT")?;
    // A leaves at once: every release is sent with the revision A last heard of.
    let left = Instant::now();
    a.stop().await;

    let b = Cluster::start(
        config(server.url(), "node-b", &prefix, LONG_TTL),
        shutdown.clone(),
    )
    .await?;
    b.want(wanted());
    while b.held().borrow().leases.len() < KEYS {
        if Instant::now() > left + PATIENCE {
            bail!("B holds {} of {KEYS} keys", b.held().borrow().leases.len());
        }
        sleep(Duration::from_millis(20)).await;
    }
    // Released leases move within a round or two; a lease left to expire moves `LONG_TTL`
    // after the late renewal was stored.
    let took = left.elapsed();
    assert!(
        took < LONG_TTL / 2,
        "B took every key only after {took:?}: some leases were left to expire"
    );
    b.stop().await;
    Ok(())
}
