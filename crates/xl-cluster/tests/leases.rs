//! Leases and membership against a real nats-server 2.15.1 (`XUELIANG_NATS_SERVER`, from
//! `scripts/ensure-nats`), each test with its own server and bucket prefix.
//!
//! Short leases (3 s, renewed every 500 ms) keep the tests quick. Conditions are awaited with
//! generous deadlines; the only durations asserted are ones that tell a mechanism from its
//! fallback (a released lease moves long before a 30 s expiry could move it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::jetstream::{self, kv};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;
use xl_cluster::{Cluster, ClusterConfig, ClusterError, Held, LeaseKey, NatsAuth, Wanted, owner};
use xl_testkit::{NatsServer, TcpProxy};

const TTL: Duration = Duration::from_secs(3);
const RENEW: Duration = Duration::from_millis(500);
/// How long a condition may take to come true before a test fails.
const SETTLE: Duration = Duration::from_secs(20);
const KEYS: usize = 60;

/// A bucket prefix no other test (or earlier run against the same server) uses.
fn prefix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

fn config(url: &str, node: &str, weight: u32, prefix: &str) -> ClusterConfig {
    ClusterConfig {
        urls: vec![url.to_owned()],
        auth: NatsAuth::None,
        node: node.to_owned(),
        weight,
        lease_ttl: TTL,
        renew_every: RENEW,
        bucket_prefix: prefix.to_owned(),
        advertise: Some(format!("http://{node}.test:8080")),
        replicas: 1,
    }
}

fn keys() -> Vec<LeaseKey> {
    (0..KEYS)
        .map(|i| LeaseKey::camera(&format!("cam-{i}")).unwrap())
        .collect()
}

fn wanted() -> Vec<Wanted> {
    keys()
        .into_iter()
        .map(|key| Wanted { key, pin: None })
        .collect()
}

async fn start_server() -> anyhow::Result<NatsServer> {
    tokio::task::spawn_blocking(NatsServer::start).await?
}

/// Starts nodes `(id, weight, url)` at the same moment (so they race to create the buckets)
/// and gives each the full wanted list.
async fn start_nodes(
    nodes: &[(&str, u32, String)],
    prefix: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<Cluster>> {
    let starts = nodes.iter().map(|(id, weight, url)| {
        Cluster::start(config(url, id, *weight, prefix), shutdown.clone())
    });
    let clusters = futures::future::try_join_all(starts).await?;
    for c in &clusters {
        c.want(wanted());
    }
    Ok(clusters)
}

/// Who holds what, over `nodes`.
fn holders(nodes: &[&Cluster]) -> BTreeMap<LeaseKey, Vec<String>> {
    let mut map: BTreeMap<LeaseKey, Vec<String>> = BTreeMap::new();
    for n in nodes {
        for key in n.held().borrow().leases.keys() {
            map.entry(key.clone())
                .or_default()
                .push(n.node().to_owned());
        }
    }
    map
}

/// Why the keys are not yet each held exactly once, by the node `owner` names among `live`;
/// `None` once they are.
fn unsettled(nodes: &[&Cluster], live: &[(String, u32)]) -> Option<String> {
    let holders = holders(nodes);
    for key in keys() {
        let want = owner(key.as_str(), live, None).unwrap();
        match holders.get(&key).map(Vec::as_slice) {
            Some([one]) if one == want => {}
            other => return Some(format!("{key}: held by {other:?}, owner {want}")),
        }
    }
    holders
        .keys()
        .find(|k| !keys().contains(k))
        .map(|k| format!("{k} held but not wanted"))
}

async fn wait_settled(nodes: &[&Cluster], live: &[(String, u32)]) -> anyhow::Result<()> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let Some(why) = unsettled(nodes, live) else {
            return Ok(());
        };
        if Instant::now() > deadline {
            bail!("not settled after {SETTLE:?}: {why}");
        }
        sleep(Duration::from_millis(50)).await;
    }
}

fn live(nodes: &[(&str, u32)]) -> Vec<(String, u32)> {
    nodes.iter().map(|(id, w)| (id.to_string(), *w)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_split_the_keys_by_owner() -> anyhow::Result<()> {
    let server = start_server().await?;
    let shutdown = CancellationToken::new();
    let prefix = prefix();
    let url = server.url();
    let nodes = start_nodes(
        &[
            ("a", 100, url.clone()),
            ("b", 100, url.clone()),
            ("c", 200, url.clone()),
        ],
        &prefix,
        &shutdown,
    )
    .await?;
    let refs: Vec<&Cluster> = nodes.iter().collect();
    let all = live(&[("a", 100), ("b", 100), ("c", 200)]);
    wait_settled(&refs, &all).await?;
    // Each node got some (with these ids and 60 keys, all three do).
    for n in &nodes {
        assert!(
            !n.held().borrow().leases.is_empty(),
            "{} holds nothing",
            n.node()
        );
    }

    // The view agrees: three nodes with their weights, every lease with its holder.
    let view = nodes[0].view().await?;
    let ids: Vec<(&str, u32)> = view
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.weight))
        .collect();
    assert_eq!(ids, [("a", 100), ("b", 100), ("c", 200)]);
    assert_eq!(
        view.nodes[1].advertise.as_deref(),
        Some("http://b.test:8080")
    );
    assert_eq!(view.leases.len(), KEYS);
    let holders = holders(&refs);
    for lease in &view.leases {
        let key: LeaseKey = lease.key.parse()?;
        assert_eq!(holders[&key], std::slice::from_ref(&lease.node), "{key}");
        let token = nodes
            .iter()
            .find(|n| n.node() == lease.node)
            .unwrap()
            .held()
            .borrow()
            .leases[&key];
        assert!(
            lease.revision >= token,
            "{key}: revision {} < token {token}",
            lease.revision
        );
    }
    let json = serde_json::to_value(&view)?;
    assert!(json["nodes"][0]["started_at"].is_string(), "{json}");
    assert!(json["nodes"][0]["heartbeat_age_ms"].is_u64(), "{json}");

    // Wanting fewer releases the rest everywhere.
    for n in &nodes {
        n.want(wanted().into_iter().take(10).collect());
    }
    let deadline = Instant::now() + SETTLE;
    while holders_count(&refs) != 10 {
        if Instant::now() > deadline {
            bail!(
                "still {} leases held after wanting 10",
                holders_count(&refs)
            );
        }
        sleep(Duration::from_millis(50)).await;
    }

    for n in nodes {
        n.stop().await;
    }
    Ok(())
}

fn holders_count(nodes: &[&Cluster]) -> usize {
    nodes.iter().map(|n| n.held().borrow().leases.len()).sum()
}

/// A stopped node's keys move at once: with a 30 s lease they could not move by expiry
/// within the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_hands_its_keys_over_at_once() -> anyhow::Result<()> {
    let server = start_server().await?;
    let shutdown = CancellationToken::new();
    let prefix = prefix();
    let long = |node: &str| ClusterConfig {
        lease_ttl: Duration::from_secs(30),
        ..config(&server.url(), node, 100, &prefix)
    };
    let mut nodes = Vec::new();
    for id in ["a", "b", "c"] {
        let c = Cluster::start(long(id), shutdown.clone()).await?;
        c.want(wanted());
        nodes.push(c);
    }
    let all = live(&[("a", 100), ("b", 100), ("c", 100)]);
    wait_settled(&nodes.iter().collect::<Vec<_>>(), &all).await?;

    let c = nodes.pop().unwrap();
    let c_held = c.held();
    assert!(!c_held.borrow().leases.is_empty());
    c.stop().await;
    assert!(c_held.borrow().leases.is_empty(), "held after stop");
    let started = Instant::now();
    let rest: Vec<&Cluster> = nodes.iter().collect();
    wait_settled(&rest, &live(&[("a", 100), ("b", 100)])).await?;
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the keys moved only after {:?}: by expiry, not by release",
        started.elapsed()
    );
    let view = nodes[0].view().await?;
    assert_eq!(view.nodes.len(), 2, "{view:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_node_keys_move_after_expiry() -> anyhow::Result<()> {
    let server = start_server().await?;
    let shutdown = CancellationToken::new();
    let prefix = prefix();
    let url = server.url();
    let mut nodes = start_nodes(
        &[
            ("a", 100, url.clone()),
            ("b", 100, url.clone()),
            ("c", 100, url),
        ],
        &prefix,
        &shutdown,
    )
    .await?;
    let all = live(&[("a", 100), ("b", 100), ("c", 100)]);
    wait_settled(&nodes.iter().collect::<Vec<_>>(), &all).await?;
    let c = nodes.pop().unwrap();
    let c_keys: BTreeSet<LeaseKey> = c.held().borrow().leases.keys().cloned().collect();
    assert!(!c_keys.is_empty());
    let crashed = Instant::now();
    c.abort();

    let rest: Vec<&Cluster> = nodes.iter().collect();
    wait_settled(&rest, &live(&[("a", 100), ("b", 100)])).await?;
    // Nobody could take them before they expired.
    assert!(
        crashed.elapsed() >= TTL - RENEW,
        "taken over after {:?}, before the leases could expire",
        crashed.elapsed()
    );
    println!(
        "a crashed node's keys moved after {:?} (lease ttl {TTL:?})",
        crashed.elapsed()
    );
    shutdown.cancel();
    Ok(())
}

/// What a node held, and when it changed.
type Timeline = Arc<Mutex<Vec<(Instant, BTreeSet<LeaseKey>)>>>;

fn record(mut held: tokio::sync::watch::Receiver<Arc<Held>>) -> Timeline {
    let timeline: Timeline = Arc::default();
    let t = Arc::clone(&timeline);
    tokio::spawn(async move {
        loop {
            let now: BTreeSet<LeaseKey> = held.borrow_and_update().leases.keys().cloned().collect();
            t.lock().unwrap().push((Instant::now(), now));
            if held.changed().await.is_err() {
                return;
            }
        }
    });
    timeline
}

/// The cut-off node drops its leases before any other node takes one of them, then after the
/// heal every key is held exactly once again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_node_lets_go_before_others_take_over() -> anyhow::Result<()> {
    let server = start_server().await?;
    let proxy = TcpProxy::start(server.addr())?;
    let shutdown = CancellationToken::new();
    let prefix = prefix();
    let url = server.url();
    let nodes = start_nodes(
        &[
            ("a", 100, url.clone()),
            ("b", 100, url),
            ("c", 100, proxy.nats_url()),
        ],
        &prefix,
        &shutdown,
    )
    .await?;
    let refs: Vec<&Cluster> = nodes.iter().collect();
    let all = live(&[("a", 100), ("b", 100), ("c", 100)]);
    wait_settled(&refs, &all).await?;
    let c_keys: BTreeSet<LeaseKey> = nodes[2].held().borrow().leases.keys().cloned().collect();
    assert!(!c_keys.is_empty());
    let timelines: Vec<Timeline> = nodes.iter().map(|n| record(n.held())).collect();

    let cut = Instant::now();
    proxy.cut();
    wait_settled(&refs[..2], &live(&[("a", 100), ("b", 100)])).await?;
    // c still thinks NATS may come back, but holds nothing.
    assert!(nodes[2].held().borrow().leases.is_empty());

    let c_dropped = timelines[2]
        .lock()
        .unwrap()
        .iter()
        .find(|(at, held)| *at >= cut && held.is_empty())
        .map(|(at, _)| *at)
        .context("c never dropped its leases")?;
    let first_taken = timelines[..2]
        .iter()
        .flat_map(|t| t.lock().unwrap().clone())
        .filter(|(at, held)| *at >= cut && !held.is_disjoint(&c_keys))
        .map(|(at, _)| at)
        .min()
        .context("nobody took c's keys")?;
    assert!(
        c_dropped < first_taken,
        "c dropped its leases {:?} after the cut, but another node took one {:?} after it",
        c_dropped - cut,
        first_taken - cut
    );
    println!(
        "partition: c fenced after {:?}, first takeover after {:?}",
        c_dropped - cut,
        first_taken - cut
    );

    proxy.heal();
    wait_settled(&refs, &all).await?;
    for n in nodes {
        n.stop().await;
    }
    Ok(())
}

/// The fencing token property: once a lease moved on, the old revision cannot write it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_revision_is_refused() -> anyhow::Result<()> {
    let server = start_server().await?;
    let shutdown = CancellationToken::new();
    let prefix = prefix();
    let a = Cluster::start(config(&server.url(), "a", 100, &prefix), shutdown.clone()).await?;
    let key = LeaseKey::task("retention")?;
    a.want(vec![Wanted {
        key: key.clone(),
        pin: None,
    }]);
    let mut held = a.held();
    let token_a = tokio::time::timeout(SETTLE, async {
        loop {
            if let Some(t) = held.borrow_and_update().leases.get(&key) {
                return *t;
            }
            held.changed().await.unwrap();
        }
    })
    .await?;

    let client = async_nats::connect(server.url()).await?;
    let js = jetstream::new(client);
    let kv = js.get_key_value(format!("{prefix}-leases")).await?;
    // Renewals move the entry past the token: writing at the token is refused.
    let deadline = Instant::now() + SETTLE;
    let current = loop {
        let e = kv
            .entry(key.as_str())
            .await?
            .context("lease entry missing")?;
        if e.revision > token_a {
            assert_eq!(e.value, "a");
            break e.revision;
        }
        if Instant::now() > deadline {
            bail!("lease not renewed");
        }
        sleep(Duration::from_millis(50)).await;
    };
    let err = kv
        .update(key.as_str(), "intruder".into(), token_a)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), kv::UpdateErrorKind::WrongLastRevision, "{err}");

    // The next holder's token is larger than the last one's.
    a.stop().await;
    let b = Cluster::start(config(&server.url(), "b", 100, &prefix), shutdown.clone()).await?;
    b.want(vec![Wanted {
        key: key.clone(),
        pin: None,
    }]);
    let mut held = b.held();
    let token_b = tokio::time::timeout(SETTLE, async {
        loop {
            if let Some(t) = held.borrow_and_update().leases.get(&key) {
                return *t;
            }
            held.changed().await.unwrap();
        }
    })
    .await?;
    assert!(
        token_b > current,
        "b's token {token_b} not above a's last revision {current}"
    );
    let err = kv
        .update(key.as_str(), "a".into(), current)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), kv::UpdateErrorKind::WrongLastRevision, "{err}");
    b.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_recover_from_a_nats_restart() -> anyhow::Result<()> {
    let mut server = start_server().await?;
    let shutdown = CancellationToken::new();
    let prefix = prefix();
    let url = server.url();
    let nodes = start_nodes(
        &[
            ("a", 100, url.clone()),
            ("b", 100, url.clone()),
            ("c", 100, url),
        ],
        &prefix,
        &shutdown,
    )
    .await?;
    let refs: Vec<&Cluster> = nodes.iter().collect();
    let all = live(&[("a", 100), ("b", 100), ("c", 100)]);
    wait_settled(&refs, &all).await?;

    let timelines: Vec<Timeline> = nodes.iter().map(|n| record(n.held())).collect();
    server = tokio::task::spawn_blocking(move || server.restart().map(|()| server)).await??;
    wait_settled(&refs, &all).await?;
    // Never two holders at once: at every recorded change, no key in two nodes' sets.
    assert_no_overlap(&timelines);
    for n in nodes {
        n.stop().await;
    }
    drop(server);
    Ok(())
}

/// Replays the nodes' recorded changes in time order and fails if any key was held by two
/// nodes at once.
fn assert_no_overlap(timelines: &[Timeline]) {
    let mut events: Vec<(Instant, usize, BTreeSet<LeaseKey>)> = Vec::new();
    for (i, t) in timelines.iter().enumerate() {
        for (at, held) in t.lock().unwrap().iter() {
            events.push((*at, i, held.clone()));
        }
    }
    events.sort_by_key(|(at, ..)| *at);
    let mut now: Vec<BTreeSet<LeaseKey>> = vec![BTreeSet::new(); timelines.len()];
    for (_, i, held) in events {
        now[i] = held;
        for (j, other) in now.iter().enumerate() {
            if j != i {
                let both: Vec<_> = now[i].intersection(other).collect();
                assert!(both.is_empty(), "nodes {i} and {j} both held {both:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_announced_by_one_node_reaches_the_others() -> anyhow::Result<()> {
    let server = start_server().await?;
    let shutdown = CancellationToken::new();
    let prefix = prefix();
    let url = server.url();
    let nodes = start_nodes(
        &[("a", 100, url.clone()), ("b", 100, url)],
        &prefix,
        &shutdown,
    )
    .await?;
    let mut b_seen = nodes[1].committed();
    assert_eq!(*b_seen.borrow(), 0);
    nodes[0].notify_committed(42).await;
    assert_eq!(*nodes[0].committed().borrow(), 42, "a sees its own at once");
    tokio::time::timeout(SETTLE, b_seen.wait_for(|seq| *seq == 42)).await??;
    // Lower announcements never lower it.
    nodes[1].notify_committed(7).await;
    nodes[1].notify_committed(43).await;
    let mut a_seen = nodes[0].committed();
    tokio::time::timeout(SETTLE, a_seen.wait_for(|seq| *seq == 43)).await??;
    assert_eq!(*nodes[1].committed().borrow(), 43);
    shutdown.cancel();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_announcements_and_board_posts_reach_the_other_nodes() -> anyhow::Result<()> {
    let server = start_server().await?;
    let shutdown = CancellationToken::new();
    let prefix = prefix();
    let url = server.url();
    let nodes = start_nodes(
        &[("a", 100, url.clone()), ("b", 100, url)],
        &prefix,
        &shutdown,
    )
    .await?;
    // A topology change is announced to the others, never to the announcer.
    let (mut a_changed, mut b_changed) = (nodes[0].topology_changed(), nodes[1].topology_changed());
    nodes[0].notify_topology().await;
    tokio::time::timeout(SETTLE, b_changed.wait_for(|n| *n == 1)).await??;
    nodes[1].notify_topology().await;
    tokio::time::timeout(SETTLE, a_changed.wait_for(|n| *n == 1)).await??;
    assert_eq!(
        *nodes[1].topology_changed().borrow(),
        1,
        "b never counts its own"
    );

    // A post is read by both nodes; a later post replaces it.
    nodes[0].post("camera.c1", b"online".to_vec()).await?;
    nodes[1].post("camera.c2", b"offline".to_vec()).await?;
    nodes[1].post("camera.c2", b"online".to_vec()).await?;
    let deadline = tokio::time::Instant::now() + SETTLE;
    for n in &nodes {
        loop {
            let board = n.board();
            let read = |k: &str| board.get(k).map(|v| v.to_vec());
            if read("camera.c1") == Some(b"online".to_vec())
                && read("camera.c2") == Some(b"online".to_vec())
            {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "node {} reads the board as {board:?}",
                n.node()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    shutdown.cancel();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_key_moves_to_its_node_and_back_when_unpinned() -> anyhow::Result<()> {
    let server = start_server().await?;
    let shutdown = CancellationToken::new();
    let prefix = prefix();
    let url = server.url();
    let nodes = start_nodes(
        &[("a", 100, url.clone()), ("b", 100, url)],
        &prefix,
        &shutdown,
    )
    .await?;
    let both = live(&[("a", 100), ("b", 100)]);
    wait_settled(&[&nodes[0], &nodes[1]], &both).await?;
    // A key the hashing gives to a, pinned to b (through a, read by both).
    let key = keys()
        .into_iter()
        .find(|k| owner(k.as_str(), &both, None) == Some("a"))
        .unwrap();
    nodes[0].pin(&key, Some("b")).await?;
    let deadline = Instant::now() + SETTLE;
    loop {
        let h = holders(&[&nodes[0], &nodes[1]]);
        if h.get(&key).map(Vec::as_slice) == Some(&["b".to_owned()][..]) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "{key} held by {:?}", h.get(&key));
        sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        nodes[1].pins().get(key.as_str()).map(String::as_str),
        Some("b")
    );
    // Only that key moved.
    let h = holders(&[&nodes[0], &nodes[1]]);
    for k in keys().into_iter().filter(|k| *k != key) {
        let want = owner(k.as_str(), &both, None).unwrap().to_owned();
        assert_eq!(h.get(&k).map(Vec::as_slice), Some(&[want][..]), "{k}");
    }
    // A bad node id is refused; removing the pin gives the key back to the hashing's owner.
    assert!(nodes[0].pin(&key, Some("no spaces")).await.is_err());
    nodes[1].pin(&key, None).await?;
    wait_settled(&[&nodes[0], &nodes[1]], &both).await?;
    assert!(!nodes[0].pins().contains_key(key.as_str()));
    shutdown.cancel();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_fails_naming_the_url_when_nats_is_down() -> anyhow::Result<()> {
    // A port nobody listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let cfg = ClusterConfig {
        auth: NatsAuth::UserPassword {
            user: "hub".into(),
            password: "secret".into(),
        },
        ..config(&url, "a", 100, "xl")
    };
    let started = Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        Cluster::start(cfg, CancellationToken::new()),
    )
    .await?
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ClusterError::Unreachable { .. }), "{msg}");
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(!msg.contains("secret"), "credentials in {msg}");
    assert_eq!(err.kind(), xl_core::ErrorKind::Unavailable);
    println!("refused after {:?}: {msg}", started.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_with_another_lease_ttl_are_refused() -> anyhow::Result<()> {
    let server = start_server().await?;
    let shutdown = CancellationToken::new();
    let prefix = prefix();
    let a = Cluster::start(config(&server.url(), "a", 100, &prefix), shutdown.clone()).await?;
    let other = ClusterConfig {
        lease_ttl: Duration::from_secs(20),
        ..config(&server.url(), "b", 100, &prefix)
    };
    let err = Cluster::start(other, shutdown.clone()).await.unwrap_err();
    assert!(matches!(err, ClusterError::BadConfig(_)), "{err}");
    assert!(err.to_string().contains("lease_ttl"), "{err}");
    a.stop().await;
    Ok(())
}

/// Measures how soon after `max_age` nats-server drops a key-value entry (the number the
/// crate docs state), and checks that an expired lease can be taken right away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_prompt() -> anyhow::Result<()> {
    let server = start_server().await?;
    let client = async_nats::connect(server.url()).await?;
    let js = jetstream::new(client);
    let max_age = Duration::from_secs(1);
    let kv = js
        .create_key_value(kv::Config {
            bucket: prefix(),
            history: 1,
            max_age,
            ..Default::default()
        })
        .await?;
    let mut lags = Vec::new();
    for i in 0..5 {
        let key = format!("k{i}");
        let put = Instant::now();
        kv.create(&key, "a".into()).await?;
        loop {
            if kv.entry(&key).await?.is_none() {
                lags.push(put.elapsed().saturating_sub(max_age));
                break;
            }
            if put.elapsed() > max_age + Duration::from_secs(10) {
                bail!("{key} still there {:?} after it was put", put.elapsed());
            }
            sleep(Duration::from_millis(5)).await;
        }
        // Expired: a create succeeds (no delete marker left behind).
        kv.create(&key, "b".into()).await?;
    }
    println!("entries gone this long after max_age: {lags:?}");
    let worst = lags.iter().max().unwrap();
    assert!(*worst < Duration::from_secs(5), "expiry lags {lags:?}");
    Ok(())
}

/// `config` with `auth`.
fn config_with(url: &str, node: &str, prefix: &str, auth: NatsAuth) -> ClusterConfig {
    ClusterConfig {
        auth,
        ..config(url, node, 100, prefix)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_the_servers_user_and_password_join_and_take_leases() -> anyhow::Result<()> {
    let server =
        tokio::task::spawn_blocking(|| NatsServer::start_with_user("hub", "s3cret-pw")).await??;
    let shutdown = CancellationToken::new();
    let prefix = prefix();
    let auth = NatsAuth::UserPassword {
        user: "hub".into(),
        password: "s3cret-pw".into(),
    };
    let mut nodes = Vec::new();
    for id in ["a", "b"] {
        let cfg = config_with(&server.url(), id, &prefix, auth.clone());
        let c = Cluster::start(cfg, shutdown.clone()).await?;
        c.want(wanted());
        nodes.push(c);
    }
    wait_settled(
        &nodes.iter().collect::<Vec<_>>(),
        &live(&[("a", 100), ("b", 100)]),
    )
    .await?;
    assert_eq!(nodes[0].view().await?.nodes.len(), 2);
    // Neither the config's nor the cluster's Debug shows the password.
    let shown = format!("{:?} {:?}", nodes[0].config(), nodes[0]);
    assert!(
        !shown.contains("s3cret-pw") && shown.contains("hub"),
        "{shown}"
    );
    shutdown.cancel();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_password_is_refused_as_unauthenticated() -> anyhow::Result<()> {
    let server =
        tokio::task::spawn_blocking(|| NatsServer::start_with_user("hub", "s3cret-pw")).await??;
    let prefix = prefix();
    let cases = [
        (
            NatsAuth::UserPassword {
                user: "hub".into(),
                password: "wrong-pw-1234".into(),
            },
            "user \"hub\"",
        ),
        (NatsAuth::None, "no credentials"),
        (NatsAuth::Token("wrong-pw-1234".into()), "a token"),
    ];
    for (auth, shown) in cases {
        let cfg = config_with(&server.url(), "a", &prefix, auth);
        let err = tokio::time::timeout(
            Duration::from_secs(30),
            Cluster::start(cfg, CancellationToken::new()),
        )
        .await?
        .unwrap_err();
        let msg = format!("{err:#} {err:?}");
        assert!(
            matches!(err, ClusterError::Unauthenticated { .. }),
            "{shown}: {msg}"
        );
        assert_eq!(err.kind(), xl_core::ErrorKind::Unauthenticated);
        let text = err.to_string();
        assert!(
            text.contains("refused the credentials")
                && text.contains(shown)
                && text.contains(&server.url()),
            "{text}"
        );
        assert!(!msg.contains("wrong-pw-1234"), "the secret leaks: {msg}");
        println!("{shown}: {text}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_the_servers_token_joins_and_a_wrong_token_is_refused() -> anyhow::Result<()> {
    let server =
        tokio::task::spawn_blocking(|| NatsServer::start_with_token("t0ken-abc")).await??;
    let shutdown = CancellationToken::new();
    let prefix = prefix();
    let good = config_with(
        &server.url(),
        "a",
        &prefix,
        NatsAuth::Token("t0ken-abc".into()),
    );
    let a = Cluster::start(good, shutdown.clone()).await?;
    a.want(wanted());
    wait_settled(&[&a], &live(&[("a", 100)])).await?;
    let bad = config_with(
        &server.url(),
        "b",
        &prefix,
        NatsAuth::Token("t0ken-xyz".into()),
    );
    let err = Cluster::start(bad, shutdown.clone()).await.unwrap_err();
    assert!(matches!(err, ClusterError::Unauthenticated { .. }), "{err}");
    assert!(!format!("{err:#}").contains("t0ken"), "{err:#}");
    shutdown.cancel();
    Ok(())
}

/// The NKey seed in a `.creds` file (the line after its BEGIN marker), to check that no
/// error shows it.
fn creds_seed(path: &std::path::Path) -> anyhow::Result<String> {
    let contents = std::fs::read_to_string(path)?;
    let mut lines = contents.lines();
    lines.find(|l| l.contains("BEGIN USER NKEY SEED"));
    let seed = lines.next().context("no seed in the creds file")?;
    anyhow::ensure!(seed.starts_with("SU"), "not a user seed: {seed:?}");
    Ok(seed.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_the_accounts_creds_file_join_and_take_leases() -> anyhow::Result<()> {
    let server = tokio::task::spawn_blocking(NatsServer::start_with_operator).await??;
    let creds = server
        .creds_file()
        .context("operator mode has creds")?
        .to_owned();
    let seed = creds_seed(&creds)?;
    let shutdown = CancellationToken::new();
    let prefix = prefix();
    let mut nodes = Vec::new();
    for id in ["a", "b"] {
        let auth = NatsAuth::CredentialsFile(creds.clone());
        let cfg = config_with(&server.url(), id, &prefix, auth);
        let c = Cluster::start(cfg, shutdown.clone())
            .await
            .with_context(|| format!("node {id}; server log:\n{}", server.log_tail()))?;
        c.want(wanted());
        nodes.push(c);
    }
    wait_settled(
        &nodes.iter().collect::<Vec<_>>(),
        &live(&[("a", 100), ("b", 100)]),
    )
    .await?;
    // Each sees the other, logged in as the same user.
    for n in &nodes {
        assert_eq!(n.view().await?.nodes.len(), 2);
    }
    let shown = format!("{:?} {:?}", nodes[0].config(), nodes[0]);
    assert!(!shown.contains(&seed), "the seed leaks: {shown}");
    shutdown.cancel();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_of_an_unknown_account_is_refused_as_unauthenticated() -> anyhow::Result<()> {
    let server = tokio::task::spawn_blocking(NatsServer::start_with_operator).await??;
    let creds = server
        .unknown_account_creds_file()
        .context("operator mode has creds")?
        .to_owned();
    let seed = creds_seed(&creds)?;
    let cfg = config_with(
        &server.url(),
        "a",
        &prefix(),
        NatsAuth::CredentialsFile(creds.clone()),
    );
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        Cluster::start(cfg, CancellationToken::new()),
    )
    .await?
    .unwrap_err();
    let msg = format!("{err:#} {err:?}");
    assert!(
        matches!(err, ClusterError::Unauthenticated { .. }),
        "{msg}; server log:\n{}",
        server.log_tail()
    );
    assert_eq!(err.kind(), xl_core::ErrorKind::Unauthenticated);
    let text = err.to_string();
    assert!(
        text.contains("refused the credentials")
            && text.to_lowercase().contains("authorization violation")
            && text.contains(&format!("credentials file {}", creds.display()))
            && text.contains(&server.url()),
        "{text}"
    );
    assert!(!msg.contains(&seed), "the seed leaks: {msg}");
    println!("{text}");
    Ok(())
}

#[tokio::test]
async fn an_unreadable_credentials_file_is_a_config_error_naming_it() -> anyhow::Result<()> {
    let dir = xl_testkit::TempDir::new("creds")?;
    let garbage = dir.path.join("garbage.creds");
    std::fs::write(&garbage, "SUAGARBAGESEEDTHATMUSTNOTLEAK\n")?;
    let missing = dir.path.join("missing.creds");
    // No server is needed: the file is read before connecting.
    for path in [garbage, missing] {
        let cfg = config_with(
            "nats://127.0.0.1:1",
            "a",
            "xl",
            NatsAuth::CredentialsFile(path.clone()),
        );
        let err = Cluster::start(cfg, CancellationToken::new())
            .await
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(matches!(err, ClusterError::BadConfig(_)), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(!msg.contains("SUAGARBAGE"), "{msg}");
    }
    Ok(())
}
