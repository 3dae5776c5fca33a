//! Cluster membership and leases over NATS JetStream key-value: which hub node of a district
//! owns each camera, gate and district-wide task.
//!
//! Every node is given the same full list of what must run ([`Cluster::want`]). Each node
//! heartbeats into the bucket `{prefix}-nodes`; the live nodes are the entries present. For each
//! wanted key, weighted rendezvous hashing ([`owner`]) names the node that should own it, and
//! that node takes the key's lease in the bucket `{prefix}-leases` (a create that succeeds only
//! when nobody holds it) and renews it; a node that holds a lease it should no longer own
//! releases it. What this node holds is published on [`Cluster::held`].
//!
//! # Guarantees and timing
//!
//! - **At most one holder, even across a partition.** A lease is a KV entry whose value is the
//!   holder's node id; renewal is a compare-and-set on the entry's revision, so a node whose
//!   lease was taken over cannot renew it. A node that cannot renew (NATS unreachable) drops
//!   the lease from [`Held`] once `lease_ttl - 2 * renew_every` has passed since it *sent* its
//!   last successful renewal, without asking NATS ("fencing"). The server keeps the entry at
//!   least `lease_ttl` after it *stored* that renewal, so the old holder stops at least
//!   `renew_every` before anyone else can take the lease.
//! - **Fencing token.** [`Held::leases`] maps each key to the revision at which this node took
//!   the lease. Revisions are JetStream stream sequences: a later holder always has a larger
//!   one. Writes elsewhere (the store) that carry it can refuse a stale holder.
//! - **Failover.** A node that stops ([`Cluster::stop`], or shutdown) releases its leases and
//!   its node entry at once; the others take its keys within about one `renew_every`. A node
//!   that dies leaves its entries to expire. nats-server 2.15.1 drops a key-value entry with
//!   `max_age` 60 to 290 ms after it is due (measured with file storage, for `max_age` of
//!   1, 3 and 10 s: its expiry timer; memory storage: under 10 ms; see the `expiry_is_prompt`
//!   test). So a dead node's keys move about `lease_ttl` + 0.3 s + up to one `renew_every`
//!   after its last renewal: at most about 12.5 s with the defaults (3.5 s measured with a
//!   3 s lease). The buckets use file storage so that leases survive a NATS restart; with
//!   memory storage a restarted server would forget who holds what while the holders still
//!   work.
//! - **Bounded moves.** When a node joins, only the keys that now hash to it move.
//!
//! The lease loop runs every `renew_every`, and at once when the wanted list changes or a node
//! joins or leaves. Every NATS request in it is bounded by `renew_every`. It logs lease
//! acquired / released / lost / fenced at info, never per renewal.
//!
//! Needs nats-server 2.10 or later with JetStream (`scripts/ensure-nats` installs 2.15.1).

mod auth;
mod board;
mod camera_status;
mod error;
mod leases;
mod owner;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use auth::NatsAuth;
pub use board::BOARD_TTL;
pub use camera_status::{
    DUPLICATE_WINDOW, STATUS_MAX_AGE, STATUS_PER_COMMUNITY, StatusAck, StatusChange, StatusChanges,
};
pub use error::{BoxError, ClusterError};
pub use owner::owner;

use leases::{LeaseLoop, NodeInfo};

/// How long [`Cluster::start`] waits for a NATS server to answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Cluster::start`] waits for the buckets to be created or opened, and
/// [`Cluster::view`] for its answers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most leases renewed, taken or released at once.
const IN_FLIGHT: usize = 64;
/// Longest wait between reconnection attempts to NATS (async-nats' default is 4 s; shorter
/// here so that a node gets back to renewing soon after NATS returns).
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// How this node joins the district's cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://host:4222`). At least one. JetStream must be enabled.
    /// Credentials go in `auth`: a URL with `user:password@` is refused (async-nats would not
    /// send them).
    pub urls: Vec<String>,
    /// The credentials sent to NATS. Default none.
    pub auth: NatsAuth,
    /// This node's id: 1 to 64 of `A-Z a-z 0-9 _ -`. Unique in the district.
    pub node: String,
    /// Capacity weight: a node of weight 200 gets about twice the keys of one of 100. Default
    /// 100; must be > 0.
    pub weight: u32,
    /// How long a lease (and a node's heartbeat) lives without renewal: a dead node's keys move
    /// after about this long. Default 10 s; at least 1 s. Every node of a district must use
    /// the same value (it is the buckets' `max_age`).
    pub lease_ttl: Duration,
    /// How often leases and the heartbeat are renewed, and the bound on each NATS request.
    /// Default 2 s; must be > 0 and at most `lease_ttl / 4`.
    pub renew_every: Duration,
    /// Names the buckets `{prefix}-nodes` and `{prefix}-leases`, the subject
    /// `{prefix}.committed` and the camera-status stream `{prefix}-camera-status`. Default
    /// `"xl"`; 1 to 32 of `A-Z a-z 0-9 _ -`.
    pub bucket_prefix: String,
    /// This node's API URL as other nodes and operators reach it (shown in [`ClusterView`]).
    /// Default none.
    pub advertise: Option<String>,
    /// Copies of each bucket and of the camera-status stream the NATS cluster keeps (JetStream
    /// replicas, 1 to 5): 3 on a three-server NATS cluster, so that the leases outlive one
    /// server. Default 1.
    pub replicas: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            urls: Vec::new(),
            auth: NatsAuth::None,
            node: String::new(),
            weight: 100,
            lease_ttl: Duration::from_secs(10),
            renew_every: Duration::from_secs(2),
            bucket_prefix: "xl".to_owned(),
            advertise: None,
            replicas: 1,
        }
    }
}

impl ClusterConfig {
    /// Checks every field; the error says which and why.
    pub fn validate(&self) -> Result<(), ClusterError> {
        let bad = |m: String| Err(ClusterError::BadConfig(m));
        if self.urls.is_empty() {
            return bad("no NATS server URL (urls is empty)".into());
        }
        for url in &self.urls {
            check_url(url)?;
        }
        auth::validate(&self.auth)?;
        if !is_id(&self.node, 64) {
            return bad(format!(
                "node id {:?} must be 1 to 64 of A-Z a-z 0-9 _ -",
                self.node
            ));
        }
        if !(1..=5).contains(&self.replicas) {
            return bad(format!("replicas must be 1 to 5 (got {})", self.replicas));
        }
        if self.weight == 0 {
            return bad("weight must be > 0".into());
        }
        if self.lease_ttl < Duration::from_secs(1) {
            return bad(format!(
                "lease_ttl {:?} is too short (at least 1 s)",
                self.lease_ttl
            ));
        }
        if self.renew_every.is_zero() || self.renew_every > self.lease_ttl / 4 {
            return bad(format!(
                "renew_every {:?} must be > 0 and at most lease_ttl / 4 ({:?})",
                self.renew_every,
                self.lease_ttl / 4
            ));
        }
        if !is_id(&self.bucket_prefix, 32) {
            return bad(format!(
                "bucket_prefix {:?} must be 1 to 32 of A-Z a-z 0-9 _ -",
                self.bucket_prefix
            ));
        }
        Ok(())
    }

    /// How long after sending its last successful renewal a node keeps a lease it cannot
    /// renew: `lease_ttl - 2 * renew_every` (6 s with the defaults).
    pub fn fence_after(&self) -> Duration {
        self.lease_ttl.saturating_sub(self.renew_every * 2)
    }

    fn nodes_bucket(&self) -> String {
        format!("{}-nodes", self.bucket_prefix)
    }

    fn leases_bucket(&self) -> String {
        format!("{}-leases", self.bucket_prefix)
    }

    fn board_bucket(&self) -> String {
        format!("{}-board", self.bucket_prefix)
    }

    fn pins_bucket(&self) -> String {
        format!("{}-pins", self.bucket_prefix)
    }

    fn topology_subject(&self) -> String {
        format!("{}.topology", self.bucket_prefix)
    }

    fn committed_subject(&self) -> String {
        format!("{}.committed", self.bucket_prefix)
    }

    fn urls_for_log(&self) -> String {
        self.urls
            .iter()
            .map(|u| redact(u))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A NATS server URL (`nats://host:4222`, `tls://...`, `host:4222`) without credentials:
/// async-nats 0.51 parses a `user:password@` but never sends it, so it is refused rather than
/// silently ignored. The error shows the URL without its credentials.
pub fn check_url(url: &str) -> Result<(), ClusterError> {
    match url.parse::<async_nats::ServerAddr>() {
        Err(e) => Err(ClusterError::BadConfig(format!(
            "NATS URL {}: {e}",
            redact(url)
        ))),
        Ok(addr) if addr.has_user_pass() => Err(ClusterError::BadConfig(format!(
            "NATS URL {}: credentials in a URL are not sent to the server; give them as their \
             own setting ([cluster] nats_user + nats_password, nats_token or nats_credentials \
             in a hub's config)",
            redact(url)
        ))),
        Ok(_) => Ok(()),
    }
}

/// A node id: 1 to 64 of `A-Z a-z 0-9 _ -`.
pub fn check_node_id(node: &str) -> Result<(), ClusterError> {
    if is_id(node, 64) {
        Ok(())
    } else {
        Err(ClusterError::BadConfig(format!(
            "node id {node:?} must be 1 to 64 of A-Z a-z 0-9 _ -"
        )))
    }
}

/// `[A-Za-z0-9_-]{1,max}`.
fn is_id(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The URL with any `user:password@` replaced by `***@`.
fn redact(url: &str) -> String {
    let rest_at = url.find("://").map_or(0, |i| i + 3);
    let (scheme, rest) = url.split_at(rest_at);
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// Longest id part of a [`LeaseKey`].
pub const MAX_KEY_ID_LEN: usize = 128;

/// A lease's name: `camera.<id>`, `gate.<id>` or `task.<name>`, the id made of
/// `A-Z a-z 0-9 _ -` (1 to [`MAX_KEY_ID_LEN`] of them). Anything else is refused when built,
/// so every key is a valid NATS key-value key. Ordered and displayed as that string.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct LeaseKey(String);

impl LeaseKey {
    /// `camera.<id>`.
    pub fn camera(id: &str) -> Result<LeaseKey, ClusterError> {
        Self::build("camera", id)
    }

    /// `gate.<id>`.
    pub fn gate(id: &str) -> Result<LeaseKey, ClusterError> {
        Self::build("gate", id)
    }

    /// `task.<name>`: a district-wide job that runs on one node.
    pub fn task(name: &str) -> Result<LeaseKey, ClusterError> {
        Self::build("task", name)
    }

    /// The key as a string, e.g. `camera.front-door`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `camera`, `gate` or `task`.
    pub fn kind(&self) -> &str {
        self.0.split_once('.').map_or("", |(kind, _)| kind)
    }

    /// The id after the kind.
    pub fn id(&self) -> &str {
        self.0.split_once('.').map_or("", |(_, id)| id)
    }

    fn build(kind: &str, id: &str) -> Result<LeaseKey, ClusterError> {
        if !is_id(id, MAX_KEY_ID_LEN) {
            return Err(ClusterError::BadKey {
                key: format!("{kind}.{id}"),
                reason: "the id must be 1 to 128 of A-Z a-z 0-9 _ -",
            });
        }
        Ok(LeaseKey(format!("{kind}.{id}")))
    }
}

impl fmt::Display for LeaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for LeaseKey {
    type Err = ClusterError;

    /// Parses `camera.<id>`, `gate.<id>` or `task.<name>`.
    fn from_str(s: &str) -> Result<LeaseKey, ClusterError> {
        match s.split_once('.') {
            Some(("camera", id)) => LeaseKey::camera(id),
            Some(("gate", id)) => LeaseKey::gate(id),
            Some(("task", id)) => LeaseKey::task(id),
            _ => Err(ClusterError::BadKey {
                key: s.to_owned(),
                reason: "must start with camera., gate. or task.",
            }),
        }
    }
}

/// One entry of the district's work that some node must own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// The lease that must be held by one node.
    pub key: LeaseKey,
    /// A node id this entry should run on while that node is live (e.g. the node wired to a
    /// camera's network). `None`: wherever rendezvous hashing puts it.
    pub pin: Option<String>,
}

/// The leases this node holds now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Key -> the lease's fencing token: the KV revision at which this node took it. It stays
    /// the same while the lease is renewed (the entry's revision grows with each renewal) and
    /// is larger than any token an earlier holder of the key had.
    pub leases: BTreeMap<LeaseKey, u64>,
}

/// The district as this node reads it from NATS ([`Cluster::view`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ClusterView {
    /// Live nodes (heartbeat present), by id.
    pub nodes: Vec<NodeView>,
    /// Every lease held, by key.
    pub leases: Vec<LeaseView>,
}

/// A live node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeView {
    /// The node's id.
    pub id: String,
    /// Capacity weight.
    pub weight: u32,
    /// Its API URL, when it says.
    pub advertise: Option<String>,
    /// Leases it held at its last heartbeat.
    pub held: usize,
    /// Milliseconds since NATS stored its last heartbeat (by this node's clock against the
    /// server's).
    pub heartbeat_age_ms: u64,
    /// When the node started.
    pub started_at: jiff::Timestamp,
}

/// A lease held by some node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LeaseView {
    /// `camera.<id>`, `gate.<id>`, `task.<name>`.
    pub key: String,
    /// The holder's node id.
    pub node: String,
    /// The entry's current revision (each renewal raises it; the holder's fencing token is the
    /// revision it took the lease at, which is at most this).
    pub revision: u64,
    /// Milliseconds since it was last renewed.
    pub age_ms: u64,
}

/// This node's membership in the cluster: the lease loop runs in the background from
/// [`Cluster::start`] until [`Cluster::stop`] or the shutdown token.
///
/// Cheap to clone (an `Arc` inside); all clones are the same node. Dropping the last clone
/// without `stop` ends the loop the same way `stop` does (leases released).
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ClusterConfig,
    client: async_nats::Client,
    /// Publishes the camera status changes (requests bounded by `REQUEST_TIMEOUT`).
    js: jetstream::Context,
    nodes: kv::Store,
    leases: kv::Store,
    wanted: watch::Sender<Arc<Vec<Wanted>>>,
    held: watch::Receiver<Arc<Held>>,
    rounds: watch::Receiver<u64>,
    committed: watch::Sender<i64>,
    /// The board's bucket, and what this node has read of it.
    board: kv::Store,
    board_entries: board::Entries,
    /// The pins' bucket (lease key -> node id), and what this node has read of it.
    pins: kv::Store,
    pin_entries: board::Entries,
    /// Counts the topology writes other nodes announced.
    topology: watch::Sender<u64>,
    /// Cancels the lease loop (which then releases everything) and the committed subscriber.
    stop: CancellationToken,
    tasks: Mutex<Option<(JoinHandle<()>, JoinHandle<()>)>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.inner.cfg.node)
            .field("urls", &self.inner.cfg.urls_for_log())
            .field("prefix", &self.inner.cfg.bucket_prefix)
            .finish()
    }
}

impl Cluster {
    /// Joins the cluster: checks `cfg`, connects to NATS (failing with an error naming the
    /// URLs when no server answers within [`CONNECT_TIMEOUT`]), creates or opens the buckets
    /// and the camera-status stream (several nodes may do so at once), subscribes to commit
    /// announcements, and spawns the lease loop, which heartbeats at once and takes leases
    /// once [`Cluster::want`] names some.
    ///
    /// The loop runs until [`Cluster::stop`] or `shutdown`; both release this node's leases
    /// and node entry so that the others take over at once.
    pub async fn start(
        cfg: ClusterConfig,
        shutdown: CancellationToken,
    ) -> Result<Cluster, ClusterError> {
        cfg.validate()?;
        let client = connect(&cfg).await?;
        let mut js = jetstream::new(client.clone());
        // Bounds every JetStream request (the loop adds its own, tighter timeouts).
        js.set_timeout(REQUEST_TIMEOUT);
        let nodes = open_bucket(&js, &cfg, cfg.nodes_bucket(), cfg.lease_ttl).await?;
        let leases = open_bucket(&js, &cfg, cfg.leases_bucket(), cfg.lease_ttl).await?;
        let board = open_bucket(&js, &cfg, cfg.board_bucket(), BOARD_TTL).await?;
        // Pins stay until an admin removes them.
        let pins = open_bucket(&js, &cfg, cfg.pins_bucket(), Duration::ZERO).await?;
        camera_status::open_stream(&js, &cfg).await?;

        let stop = shutdown.child_token();
        let (committed_tx, _) = watch::channel(0i64);
        let (topology_tx, _) = watch::channel(0u64);
        let mut subscribers = Vec::new();
        for subject in [cfg.committed_subject(), cfg.topology_subject()] {
            let sub = client
                .subscribe(subject.clone())
                .await
                .map_err(|e| ClusterError::Nats {
                    op: format!("subscribing to {subject}"),
                    source: Box::new(e),
                })?;
            subscribers.push(sub);
        }
        // A flush only writes the socket, and `kv::Store::status` answers from a cache. The
        // server reads a connection in order, so once it has answered a request sent after the
        // subscriptions (`$JS.API.INFO`) it has them too: announcements made after `start`
        // returns are not missed.
        js.query_account().await.map_err(|e| ClusterError::Nats {
            op: "confirming the subscriptions".into(),
            source: Box::new(e),
        })?;
        let topology_sub = subscribers.pop().expect("two subscriptions");
        let committed_sub = subscribers.pop().expect("two subscriptions");
        let committed_task = tokio::spawn(announcements_loop(
            committed_sub,
            topology_sub,
            committed_tx.clone(),
            topology_tx.clone(),
            stop.clone(),
            cfg.node.clone(),
        ));

        let board_entries = board::Entries::default();
        tokio::spawn(board::follow(
            board.clone(),
            Arc::clone(&board_entries),
            || {},
            stop.clone(),
        ));

        let (wanted_tx, wanted_rx) = watch::channel(Arc::new(Vec::new()));
        // A pin changed anywhere wakes the lease loop as a new list would.
        let pin_entries = board::Entries::default();
        {
            let wake = wanted_tx.clone();
            tokio::spawn(board::follow(
                pins.clone(),
                Arc::clone(&pin_entries),
                move || wake.send_modify(|_| {}),
                stop.clone(),
            ));
        }
        let (held_tx, held_rx) = watch::channel(Arc::new(Held::default()));
        let (rounds_tx, rounds_rx) = watch::channel(0u64);
        let info = NodeInfo {
            weight: cfg.weight,
            advertise: cfg.advertise.clone(),
            started_at: jiff::Timestamp::now(),
            held: 0,
        };
        let lease_loop = LeaseLoop::new(
            cfg.clone(),
            leases::Buckets {
                nodes: nodes.clone(),
                leases: leases.clone(),
            },
            info,
            wanted_rx,
            Arc::clone(&pin_entries),
            leases::Outputs {
                held: held_tx,
                rounds: rounds_tx,
            },
            stop.clone(),
        );
        let node = cfg.node.clone();
        let loop_task = tokio::spawn(async move {
            let span = tracing::info_span!("cluster", node = %node);
            tracing::Instrument::instrument(lease_loop.run(), span).await;
        });
        info!(node = %cfg.node, urls = %cfg.urls_for_log(), prefix = %cfg.bucket_prefix, "joined the cluster");
        Ok(Cluster {
            inner: Arc::new(Inner {
                cfg,
                client,
                js,
                nodes,
                leases,
                wanted: wanted_tx,
                held: held_rx,
                rounds: rounds_rx,
                committed: committed_tx,
                board,
                board_entries,
                pins,
                pin_entries,
                topology: topology_tx,
                stop,
                tasks: Mutex::new(Some((loop_task, committed_task))),
            }),
        })
    }

    /// Sets the full list of what must run in the district (every node is given the same
    /// list); replaces the last one and wakes the lease loop. A key listed twice counts once
    /// (its first pin).
    pub fn want(&self, entries: Vec<Wanted>) {
        self.inner.wanted.send_replace(Arc::new(entries));
    }

    /// The leases this node holds; changes only when a lease is taken, released, lost or
    /// fenced (not on renewals). Empty once the node stopped.
    pub fn held(&self) -> watch::Receiver<Arc<Held>> {
        self.inner.held.clone()
    }

    /// Live nodes and held leases, read from NATS now (bounded by a few seconds).
    pub async fn view(&self) -> Result<ClusterView, ClusterError> {
        let now_ns = jiff::Timestamp::now().as_nanosecond();
        let age_ms = |stored_ns: i128| {
            u64::try_from((now_ns - stored_ns).max(0) / 1_000_000).unwrap_or(u64::MAX)
        };
        let (nodes, leases) = tokio::try_join!(
            leases::snapshot(&self.inner.nodes, REQUEST_TIMEOUT),
            leases::snapshot(&self.inner.leases, REQUEST_TIMEOUT)
        )?;
        let mut view = ClusterView::default();
        for e in nodes {
            match serde_json::from_slice::<NodeInfo>(&e.value) {
                Ok(info) => view.nodes.push(NodeView {
                    id: e.key,
                    weight: info.weight,
                    advertise: info.advertise,
                    held: info.held,
                    heartbeat_age_ms: age_ms(e.stored_ns),
                    started_at: info.started_at,
                }),
                Err(err) => debug!(node = %e.key, error = %err, "unreadable node entry"),
            }
        }
        for e in leases {
            view.leases.push(LeaseView {
                key: e.key,
                node: String::from_utf8_lossy(&e.value).into_owned(),
                revision: e.revision,
                age_ms: age_ms(e.stored_ns),
            });
        }
        view.nodes.sort_by(|a, b| a.id.cmp(&b.id));
        view.leases.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(view)
    }

    /// Announces that this node committed up to `seq` (core NATS publish on
    /// `{prefix}.committed`, best effort: errors are logged at debug). Also raises this
    /// node's own [`Cluster::committed`] at once.
    pub async fn notify_committed(&self, seq: i64) {
        raise(&self.inner.committed, seq);
        let subject = self.inner.cfg.committed_subject();
        let publish = announce(&self.inner.client, subject, seq.to_string().into_bytes());
        match tokio::time::timeout(self.inner.cfg.renew_every, publish).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(seq, error = %e, "cannot announce a commit"),
            Err(_) => debug!(seq, "announcing a commit timed out"),
        }
    }

    /// Announces that this node changed the district's topology (core NATS publish on
    /// `{prefix}.topology`, best effort), so that the other nodes read it from the store.
    pub async fn notify_topology(&self) {
        let subject = self.inner.cfg.topology_subject();
        let publish = announce(
            &self.inner.client,
            subject,
            self.inner.cfg.node.clone().into_bytes(),
        );
        match tokio::time::timeout(self.inner.cfg.renew_every, publish).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(error = %e, "cannot announce a topology change"),
            Err(_) => debug!("announcing a topology change timed out"),
        }
    }

    /// Counts the lease loop's rounds that saw the live nodes, and so took and released
    /// what they should of the list [`Cluster::want`] last gave. Two rounds after a `want`,
    /// this node holds its share of that list (readiness: [`Cluster::settled`]).
    pub fn rounds(&self) -> watch::Receiver<u64> {
        self.inner.rounds.clone()
    }

    /// Returns once this node has taken its share of the list last given to
    /// [`Cluster::want`]: two full rounds after the call (one may have begun before it).
    pub async fn settled(&self) {
        let mut rounds = self.rounds();
        let from = *rounds.borrow_and_update();
        let _ = rounds.wait_for(|n| *n >= from + 2).await;
    }

    /// Posts `value` under `key` on the board (see [`BOARD_TTL`]): every node reads it with
    /// [`Cluster::board`] within moments. Keys are `[A-Za-z0-9_.=/-]`.
    pub async fn post(&self, key: &str, value: Vec<u8>) -> Result<(), ClusterError> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.inner.board.put(key, value.into())).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(ClusterError::Nats {
                op: format!("posting {key} on the board"),
                source: Box::new(e),
            }),
            Err(_) => Err(ClusterError::Timeout {
                op: format!("posting {key} on the board"),
                timeout_ms: REQUEST_TIMEOUT.as_millis() as u64,
            }),
        }
    }

    /// The board as this node last read it: key -> value, for entries that arrived within
    /// [`BOARD_TTL`] (older ones have expired in NATS).
    pub fn board(&self) -> BTreeMap<String, bytes::Bytes> {
        let entries = self
            .inner
            .board_entries
            .read()
            .unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .filter(|(_, (_, at))| at.elapsed() < BOARD_TTL)
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    }

    /// Pins `key` to `node` (the entry runs there while that node is live, elsewhere by the
    /// hashing when it is not), or removes its pin (`None`). Every node's lease loop reads the
    /// pins; they stay until removed, and take precedence over [`Wanted::pin`].
    pub async fn pin(&self, key: &LeaseKey, node: Option<&str>) -> Result<(), ClusterError> {
        let op = format!("pinning {key}");
        let done = match node {
            Some(n) => {
                check_node_id(n)?;
                tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    self.inner
                        .pins
                        .put(key.as_str(), n.to_owned().into_bytes().into()),
                )
                .await
                .map(|r| r.map(|_| ()).map_err(|e| Box::new(e) as BoxError))
            }
            None => tokio::time::timeout(REQUEST_TIMEOUT, self.inner.pins.delete(key.as_str()))
                .await
                .map(|r| r.map_err(|e| Box::new(e) as BoxError)),
        };
        match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(ClusterError::Nats { op, source }),
            Err(_) => Err(ClusterError::Timeout {
                op,
                timeout_ms: REQUEST_TIMEOUT.as_millis() as u64,
            }),
        }
    }

    /// The node holding `key` now, read from NATS (one key-value get, bounded by a few
    /// seconds); `None` when no live node holds it.
    pub async fn holder(&self, key: &LeaseKey) -> Result<Option<String>, ClusterError> {
        let bucket = self.inner.cfg.leases_bucket();
        let entry = self.get(&self.inner.leases, &bucket, key.as_str()).await?;
        Ok(entry.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The API URL `node` advertises, read from its node entry in NATS; `None` when the node
    /// is not live or advertises none.
    pub async fn node_address(&self, node: &str) -> Result<Option<String>, ClusterError> {
        let bucket = self.inner.cfg.nodes_bucket();
        let Some(entry) = self.get(&self.inner.nodes, &bucket, node).await? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice::<NodeInfo>(&entry)
            .ok()
            .and_then(|info| info.advertise))
    }

    /// One key's current value (`None` when absent or deleted).
    async fn get(
        &self,
        store: &kv::Store,
        bucket: &str,
        key: &str,
    ) -> Result<Option<bytes::Bytes>, ClusterError> {
        let op = || format!("reading {key} in bucket {bucket}");
        match tokio::time::timeout(REQUEST_TIMEOUT, store.get(key)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ClusterError::Nats {
                op: op(),
                source: Box::new(e),
            }),
            Err(_) => Err(ClusterError::Timeout {
                op: op(),
                timeout_ms: REQUEST_TIMEOUT.as_millis() as u64,
            }),
        }
    }

    /// The pins as this node last read them: lease key -> node id.
    pub fn pins(&self) -> BTreeMap<String, String> {
        read_pins(&self.inner.pin_entries)
    }

    /// Counts the topology changes the other nodes announced (never this node's own).
    pub fn topology_changed(&self) -> watch::Receiver<u64> {
        self.inner.topology.subscribe()
    }

    /// The highest commit seq any node announced, this one included (0 before any).
    pub fn committed(&self) -> watch::Receiver<i64> {
        self.inner.committed.subscribe()
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.inner.cfg.node
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.cfg
    }

    /// Leaves the cluster: [`Cluster::held`] becomes empty, then this node's leases (each
    /// deleted only if still at the revision it last renewed) and its node entry are removed,
    /// so the other nodes take over at once. Returns when done (bounded by about
    /// `2 * max(renew_every, 1 s)` when NATS does not answer). Other clones then hold a
    /// stopped node.
    pub async fn stop(self) {
        self.inner.stop.cancel();
        let tasks = self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((loop_task, committed_task)) = tasks {
            let _ = loop_task.await;
            let _ = committed_task.await;
        }
        // Whatever the loop sent must reach the server before the caller drops the client.
        let _ = tokio::time::timeout(self.inner.cfg.renew_every, self.inner.client.flush()).await;
    }

    /// Simulates a crash, for tests: stops the lease loop and the commit subscriber at once,
    /// releasing nothing. This node's heartbeat and leases stay in NATS until they expire
    /// (`lease_ttl`), and [`Cluster::held`] keeps its last value.
    pub fn abort(self) {
        let tasks = self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((loop_task, committed_task)) = tasks {
            loop_task.abort();
            committed_task.abort();
        }
        warn!(node = %self.inner.cfg.node, "cluster membership aborted (leases left to expire)");
    }
}

/// Raises `tx` to `seq` if that is higher.
fn raise(tx: &watch::Sender<i64>, seq: i64) {
    tx.send_if_modified(|v| {
        if seq > *v {
            *v = seq;
            true
        } else {
            false
        }
    });
}

/// Takes the other nodes' announcements: commits (the highest seq) and topology changes
/// (counted, this node's own skipped).
async fn announcements_loop(
    mut subscriber: async_nats::Subscriber,
    mut topology: async_nats::Subscriber,
    tx: watch::Sender<i64>,
    topology_tx: watch::Sender<u64>,
    stop: CancellationToken,
    node: String,
) {
    loop {
        let msg = tokio::select! {
            () = stop.cancelled() => break,
            msg = subscriber.next() => msg,
            t = topology.next() => match t {
                Some(t) if t.payload.as_ref() != node.as_bytes() => {
                    topology_tx.send_modify(|n| *n += 1);
                    continue;
                }
                Some(_) => continue,
                None => break,
            },
        };
        let Some(msg) = msg else { break };
        match std::str::from_utf8(&msg.payload)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
        {
            Some(seq) => raise(&tx, seq),
            None => {
                debug!(%node, subject = %msg.subject, "ignoring a commit announcement that is not a number")
            }
        }
    }
    let _ = subscriber.unsubscribe().await;
    let _ = topology.unsubscribe().await;
}

async fn connect(cfg: &ClusterConfig) -> Result<async_nats::Client, ClusterError> {
    let unreachable = |source: BoxError| ClusterError::Unreachable {
        urls: cfg.urls_for_log(),
        source,
    };
    let addrs = cfg
        .urls
        .iter()
        .map(|u| u.parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClusterError::BadConfig(format!("NATS URL: {e}")))?;
    let node = cfg.node.clone();
    let options = auth::apply(&cfg.auth, async_nats::ConnectOptions::new())
        .await?
        .name(format!("xueliang-{}", cfg.node))
        .connection_timeout(CONNECT_TIMEOUT)
        .reconnect_delay_callback(|attempts| {
            let ms = 100u64.saturating_mul(attempts as u64);
            Duration::from_millis(ms).min(MAX_RECONNECT_DELAY)
        })
        .event_callback(move |event| {
            let node = node.clone();
            async move {
                match event {
                    async_nats::Event::Connected => info!(%node, "connected to NATS"),
                    async_nats::Event::Disconnected => warn!(%node, "disconnected from NATS"),
                    // E.g. an authorization violation after the server's credentials changed.
                    async_nats::Event::ServerError(e) => {
                        warn!(%node, error = %e, "NATS server error")
                    }
                    other => debug!(%node, event = %other, "NATS client event"),
                }
            }
        });
    match tokio::time::timeout(
        CONNECT_TIMEOUT + Duration::from_secs(1),
        options.connect(addrs),
    )
    .await
    {
        Ok(Ok(client)) => Ok(client),
        // The server answered and refused the CONNECT (`-ERR 'Authorization Violation'`), or
        // the credentials file could not sign the server's nonce. async-nats stops trying the
        // other URLs at once on these.
        Ok(Err(e))
            if matches!(
                e.kind(),
                async_nats::ConnectErrorKind::AuthorizationViolation
                    | async_nats::ConnectErrorKind::Authentication
            ) =>
        {
            Err(ClusterError::Unauthenticated {
                urls: cfg.urls_for_log(),
                auth: cfg.auth.to_string(),
                source: Box::new(e),
            })
        }
        Ok(Err(e)) => Err(unreachable(Box::new(e))),
        Err(_) => Err(unreachable(
            format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()).into(),
        )),
    }
}

/// Publishes on core NATS and flushes, so that an announcement leaves at once rather than
/// with the client's next write.
async fn announce(
    client: &async_nats::Client,
    subject: String,
    payload: Vec<u8>,
) -> Result<(), BoxError> {
    client.publish(subject, payload.into()).await?;
    client.flush().await?;
    Ok(())
}

/// Creates the bucket, or opens it when it exists (another node made it, perhaps at the same
/// moment). Its `max_age` must be `lease_ttl`: the fencing relies on it.
async fn open_bucket(
    js: &jetstream::Context,
    cfg: &ClusterConfig,
    bucket: String,
    max_age: Duration,
) -> Result<kv::Store, ClusterError> {
    let config = kv::Config {
        bucket: bucket.clone(),
        description: "xueliang cluster (xl-cluster)".to_owned(),
        history: 1,
        max_age,
        num_replicas: cfg.replicas,
        // Not memory: leases must survive a NATS restart (see the crate docs).
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    };
    let timed_out = |op: &'static str| ClusterError::Timeout {
        op: format!("{op} bucket {bucket}"),
        timeout_ms: REQUEST_TIMEOUT.as_millis() as u64,
    };
    // Identical configs: creating an existing stream succeeds, so racing nodes all get here.
    let created = tokio::time::timeout(REQUEST_TIMEOUT, js.create_key_value(config))
        .await
        .map_err(|_| timed_out("creating"))?;
    let create_err = match created {
        Ok(store) => return Ok(store),
        Err(e) => e,
    };
    // It exists with another config: open it and check what matters.
    let store = tokio::time::timeout(REQUEST_TIMEOUT, js.get_key_value(bucket.clone()))
        .await
        .map_err(|_| timed_out("opening"))?
        .map_err(|e| ClusterError::Bucket {
            bucket: bucket.clone(),
            op: "creating or opening",
            source: format!("{create_err}; opening: {e}").into(),
        })?;
    let stored_age = store.stream.cached_info().config.max_age;
    if stored_age != max_age {
        return Err(ClusterError::BadConfig(format!(
            "bucket {bucket} exists with max_age {stored_age:?}, not {max_age:?}: every node \
             of a district must use the same lease_ttl (or delete the buckets {}-nodes and \
             {}-leases while all nodes are stopped)",
            cfg.bucket_prefix, cfg.bucket_prefix
        )));
    }
    debug!(%bucket, error = %create_err, "bucket exists with other settings; opened it");
    Ok(store)
}

/// Lease key -> node id, from the pins' bucket as read.
pub(crate) fn read_pins(entries: &board::Entries) -> BTreeMap<String, String> {
    entries
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(|(k, (v, _))| Some((k.clone(), String::from_utf8(v.to_vec()).ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ClusterConfig {
        ClusterConfig {
            urls: vec!["nats://127.0.0.1:4222".into()],
            node: "node-1".into(),
            ..Default::default()
        }
    }

    /// The hub shares one `Cluster` between tasks.
    #[test]
    fn cluster_is_send_and_sync() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Cluster>();
        send_sync::<ClusterError>();
    }

    #[test]
    fn defaults_are_valid_and_documented() {
        let c = cfg();
        c.validate().unwrap();
        assert_eq!(c.weight, 100);
        assert_eq!(c.lease_ttl, Duration::from_secs(10));
        assert_eq!(c.renew_every, Duration::from_secs(2));
        assert_eq!(c.bucket_prefix, "xl");
        assert_eq!(c.fence_after(), Duration::from_secs(6));
        assert_eq!(c.nodes_bucket(), "xl-nodes");
        assert_eq!(c.leases_bucket(), "xl-leases");
        assert_eq!(c.committed_subject(), "xl.committed");
    }

    #[test]
    fn bad_configs_are_refused_naming_the_field() {
        let cases: Vec<(ClusterConfig, &str)> = vec![
            (
                ClusterConfig {
                    urls: vec![],
                    ..cfg()
                },
                "urls",
            ),
            (
                ClusterConfig {
                    node: "".into(),
                    ..cfg()
                },
                "node id",
            ),
            (
                ClusterConfig {
                    node: "a.b".into(),
                    ..cfg()
                },
                "node id",
            ),
            (
                ClusterConfig {
                    node: "x".repeat(65),
                    ..cfg()
                },
                "node id",
            ),
            (ClusterConfig { weight: 0, ..cfg() }, "weight"),
            (
                ClusterConfig {
                    lease_ttl: Duration::from_millis(500),
                    ..cfg()
                },
                "lease_ttl",
            ),
            (
                ClusterConfig {
                    renew_every: Duration::from_secs(3),
                    ..cfg()
                },
                "renew_every",
            ),
            (
                ClusterConfig {
                    renew_every: Duration::ZERO,
                    ..cfg()
                },
                "renew_every",
            ),
            (
                ClusterConfig {
                    bucket_prefix: "a.b".into(),
                    ..cfg()
                },
                "bucket_prefix",
            ),
            (
                ClusterConfig {
                    urls: vec!["nats://[::1".into()],
                    ..cfg()
                },
                "NATS URL",
            ),
            (
                ClusterConfig {
                    urls: vec!["nats://hub:hunter2@127.0.0.1:4222".into()],
                    ..cfg()
                },
                "credentials in a URL",
            ),
            (
                ClusterConfig {
                    auth: NatsAuth::Token(String::new()),
                    ..cfg()
                },
                "token is empty",
            ),
        ];
        for (c, field) in cases {
            let err = c.validate().unwrap_err();
            assert!(matches!(err, ClusterError::BadConfig(_)), "{err}");
            assert!(err.to_string().contains(field), "{field}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
            assert_eq!(err.kind(), xl_core::ErrorKind::InvalidInput);
        }
        // The boundary itself is fine.
        ClusterConfig {
            renew_every: Duration::from_millis(2500),
            ..cfg()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn urls_are_logged_without_credentials() {
        assert_eq!(
            redact("nats://user:secret@host:4222"),
            "nats://***@host:4222"
        );
        assert_eq!(redact("nats://host:4222"), "nats://host:4222");
        assert_eq!(redact("tls://tok@h/x@y"), "tls://***@h/x@y");
        assert_eq!(redact("user:pw@host"), "***@host");
    }

    #[test]
    fn lease_keys_are_checked_and_round_trip() {
        let k = LeaseKey::camera("front-door_2").unwrap();
        assert_eq!(k.as_str(), "camera.front-door_2");
        assert_eq!(k.to_string(), "camera.front-door_2");
        assert_eq!((k.kind(), k.id()), ("camera", "front-door_2"));
        assert_eq!("camera.front-door_2".parse::<LeaseKey>().unwrap(), k);
        assert_eq!(LeaseKey::gate("g1").unwrap().as_str(), "gate.g1");
        assert_eq!(LeaseKey::task("notify").unwrap().as_str(), "task.notify");
        for bad in ["", "a.b", "a b", "a*", ">", "ü", &"x".repeat(129)] {
            let err = LeaseKey::camera(bad).unwrap_err();
            assert_eq!(err.kind(), xl_core::ErrorKind::InvalidInput, "{bad:?}");
        }
        for bad in ["camera", "cameras.x", "camera.", "task.a.b", "gate.*"] {
            assert!(bad.parse::<LeaseKey>().is_err(), "{bad:?}");
        }
        assert_eq!(
            serde_json::to_string(&k).unwrap(),
            "\"camera.front-door_2\""
        );
    }
}
