//! The lease loop: heartbeat, renew, take, release and fence, every `renew_every`.
//!
//! One owner of the lease state: only this loop changes what this node holds, and it alone
//! publishes [`Held`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{ClusterConfig, ClusterError, Held, IN_FLIGHT, LeaseKey, Wanted, owner};

/// A node's heartbeat value in `{prefix}-nodes` (JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct NodeInfo {
    pub weight: u32,
    #[serde(default)]
    pub advertise: Option<String>,
    pub started_at: jiff::Timestamp,
    /// Leases held when the heartbeat was sent.
    #[serde(default)]
    pub held: usize,
}

/// One lease this node holds.
#[derive(Clone, Copy, Debug)]
struct Lease {
    /// The revision it was taken at: the fencing token published in [`Held`].
    token: u64,
    /// The entry's current revision: what the next renewal must match.
    revision: u64,
    /// When the last successful renewal (or the take) was sent. The server keeps the entry at
    /// least `lease_ttl` after it stored that write, which was after this.
    sent: Instant,
}

/// What one request in a tick is for.
enum Op {
    Renew { key: LeaseKey, revision: u64 },
    Take { key: LeaseKey },
    Release { key: LeaseKey, revision: u64 },
}

/// What came of it.
enum Outcome {
    /// Renewed or taken: the entry is at `revision`, written by a request sent at `sent`.
    Written {
        key: LeaseKey,
        revision: u64,
        sent: Instant,
        taken: bool,
    },
    /// The renewal was refused: the entry is no longer at our revision (someone else took it
    /// after it expired, or it was deleted).
    Lost {
        key: LeaseKey,
    },
    /// Not taken: held by `holder`.
    Busy {
        key: LeaseKey,
        holder: String,
    },
    /// The request failed or timed out; the lease (if held) stays until renewed or fenced.
    Failed {
        key: LeaseKey,
        what: &'static str,
        error: String,
    },
    Released,
}

/// The lease loop's state. See the crate docs for what it guarantees.
pub(crate) struct LeaseLoop {
    cfg: ClusterConfig,
    nodes: kv::Store,
    leases: kv::Store,
    info: NodeInfo,
    wanted: watch::Receiver<Arc<Vec<Wanted>>>,
    /// The admins' pins (lease key -> node), which take precedence over [`Wanted::pin`].
    pins: crate::board::Entries,
    held_tx: watch::Sender<Arc<Held>>,
    /// Counts the rounds that saw the live nodes (and so took and released what they should).
    rounds_tx: watch::Sender<u64>,
    stop: CancellationToken,
    held: BTreeMap<LeaseKey, Lease>,
    /// Live nodes at the last successful listing, this one always among them.
    live: Vec<(String, u32)>,
    /// Whether the last listing succeeded. When it did not, leases are only renewed: nothing
    /// is taken or released on a stale view of who is live.
    live_fresh: bool,
    /// Watches `{prefix}-nodes` to wake the loop when a node joins or leaves; re-made after
    /// errors.
    node_watch: Option<kv::Watch>,
    /// Whether the last heartbeat reached NATS (to log changes, not every failure).
    reachable: bool,
    /// Leases given up at the last tick, with their revision: deleted at this one. The work
    /// (a camera's pull) stops when the key leaves `held`, which takes a moment; deleting a
    /// tick later keeps the next holder from starting before it has.
    releasing: Vec<(LeaseKey, u64)>,
    /// Which wanted keys this node should own, kept until its inputs change.
    shares: Option<Shares>,
}

/// The wanted keys and the ones among them this node should own, for one wanted list, set of
/// pins and list of live nodes. Computed again only when one of those changes: [`owner`] over
/// every key is most of a round's CPU otherwise (10,000 keys and 40 nodes: about 15 ms, every
/// `renew_every`, on every node).
struct Shares {
    wanted: Arc<Vec<Wanted>>,
    pinned: BTreeMap<String, String>,
    live: Vec<(String, u32)>,
    /// Every wanted key, once.
    keys: BTreeSet<LeaseKey>,
    /// The wanted keys [`owner`] gives this node.
    mine: BTreeSet<LeaseKey>,
}

impl Shares {
    fn new(
        wanted: Arc<Vec<Wanted>>,
        pinned: BTreeMap<String, String>,
        live: &[(String, u32)],
        me: &str,
    ) -> Shares {
        let mut pins: BTreeMap<&LeaseKey, Option<&str>> = BTreeMap::new();
        for w in wanted.iter() {
            let pin = pinned.get(w.key.as_str()).map(String::as_str);
            pins.entry(&w.key).or_insert(pin.or(w.pin.as_deref()));
        }
        // This node is always live with a weight > 0, so every key has an owner.
        let mine = pins
            .iter()
            .filter(|(key, pin)| owner(key.as_str(), live, **pin) == Some(me))
            .map(|(key, _)| (*key).clone())
            .collect();
        let keys = pins.into_keys().cloned().collect();
        Shares {
            wanted,
            pinned,
            live: live.to_vec(),
            keys,
            mine,
        }
    }

    fn still_for(
        &self,
        wanted: &Arc<Vec<Wanted>>,
        pinned: &BTreeMap<String, String>,
        live: &[(String, u32)],
    ) -> bool {
        Arc::ptr_eq(&self.wanted, wanted) && self.pinned == *pinned && self.live == live
    }
}

/// The buckets the loop works on.
pub(crate) struct Buckets {
    pub nodes: kv::Store,
    pub leases: kv::Store,
}

/// What the loop tells the [`Cluster`](crate::Cluster).
pub(crate) struct Outputs {
    pub held: watch::Sender<Arc<Held>>,
    pub rounds: watch::Sender<u64>,
}

impl LeaseLoop {
    pub(crate) fn new(
        cfg: ClusterConfig,
        buckets: Buckets,
        info: NodeInfo,
        wanted: watch::Receiver<Arc<Vec<Wanted>>>,
        pins: crate::board::Entries,
        outputs: Outputs,
        stop: CancellationToken,
    ) -> LeaseLoop {
        let Buckets { nodes, leases } = buckets;
        let Outputs {
            held: held_tx,
            rounds: rounds_tx,
        } = outputs;
        let live = vec![(cfg.node.clone(), cfg.weight)];
        LeaseLoop {
            cfg,
            nodes,
            leases,
            info,
            wanted,
            pins,
            held_tx,
            rounds_tx,
            stop,
            held: BTreeMap::new(),
            live,
            live_fresh: false,
            node_watch: None,
            reachable: true,
            releasing: Vec::new(),
            shares: None,
        }
    }

    /// Runs until the stop token, then releases everything.
    pub(crate) async fn run(mut self) {
        let mut next_tick = Instant::now();
        loop {
            let fence_at = self.next_fence_deadline();
            tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                () = sleep_until(next_tick) => {}
                changed = self.wanted.changed() => {
                    // All handles dropped: nobody can want anything any more.
                    if changed.is_err() {
                        break;
                    }
                }
                () = sleep_until(fence_at.unwrap_or(next_tick)), if fence_at.is_some() => {
                    self.fence();
                    self.publish();
                    continue;
                }
                wake = next_node_event(&mut self.node_watch, &self.cfg.node, &self.live) => {
                    if !wake {
                        continue;
                    }
                }
            }
            let started = Instant::now();
            let stop = self.stop.clone();
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                () = self.tick(started + self.cfg.renew_every) => {}
            }
            next_tick = started + self.cfg.renew_every;
        }
        self.leave().await;
    }

    /// One round: heartbeat, list the live nodes, then renew, take and release concurrently;
    /// every request done by `deadline`.
    async fn tick(&mut self, deadline: Instant) {
        self.fence();
        let heartbeat = self.heartbeat(deadline).await;
        match &heartbeat {
            Ok(()) if !self.reachable => {
                info!("NATS reachable again");
                self.reachable = true;
            }
            Err(e) if self.reachable => {
                warn!(error = %e, "cannot heartbeat to NATS; keeping leases until they are fenced");
                self.reachable = false;
            }
            _ => {}
        }
        self.live_fresh = false;
        if heartbeat.is_ok() {
            match list_nodes(&self.nodes, &self.cfg, deadline).await {
                Ok(live) => {
                    if live != self.live {
                        let ids: Vec<&str> = live.iter().map(|(id, _)| id.as_str()).collect();
                        info!(nodes = ?ids, "live nodes changed");
                    }
                    self.live = live;
                    self.live_fresh = true;
                }
                Err(e) => debug!(error = %e, "cannot list the live nodes"),
            }
        }

        let ops = self.plan();
        // Released leases leave `held` a tick before their deletes are sent, so that the
        // work stops before another node can take it.
        self.publish();
        let node = Bytes::from(self.cfg.node.clone());
        let store = self.leases.clone();
        let mut results = futures::stream::iter(ops.into_iter().map(move |op| {
            let leases = store.clone();
            let node = node.clone();
            async move { run_op(&leases, node, op).await }
        }))
        .buffer_unordered(IN_FLIGHT);
        loop {
            match timeout_at(deadline, results.next()).await {
                Ok(Some(outcome)) => self.apply(outcome),
                Ok(None) => break,
                Err(_) => {
                    debug!("lease requests still running at the end of the tick; abandoned");
                    break;
                }
            }
        }
        drop(results);
        self.fence();
        self.publish();
        if self.live_fresh {
            self.rounds_tx.send_modify(|n| *n += 1);
        }
        // Last, so that a watch that cannot be made (NATS down) does not eat the time of the
        // heartbeat and the renewals.
        self.ensure_node_watch(deadline).await;
    }

    /// Decides what to do with each key. Drops the keys to release from `held` at once.
    fn plan(&mut self) -> Vec<Op> {
        let wanted = self.wanted.borrow_and_update().clone();
        let pinned = crate::read_pins(&self.pins);
        let shares = match self.shares.take() {
            Some(s) if s.still_for(&wanted, &pinned, &self.live) => s,
            _ => Shares::new(wanted, pinned, &self.live, &self.cfg.node),
        };
        let releasing: BTreeSet<LeaseKey> =
            self.releasing.iter().map(|(key, _)| key.clone()).collect();
        let mut ops: Vec<Op> = std::mem::take(&mut self.releasing)
            .into_iter()
            .map(|(key, revision)| Op::Release { key, revision })
            .collect();
        let mut release = Vec::new();
        for (key, lease) in &self.held {
            let why = if !shares.keys.contains(key) {
                "no longer wanted"
            } else if !shares.mine.contains(key) {
                "moves to another node"
            } else {
                ""
            };
            if why.is_empty() || !self.live_fresh {
                ops.push(Op::Renew {
                    key: key.clone(),
                    revision: lease.revision,
                });
            } else {
                release.push((key.clone(), lease.revision, why));
            }
        }
        if self.live_fresh {
            for key in &shares.mine {
                if !self.held.contains_key(key) && !releasing.contains(key) {
                    ops.push(Op::Take { key: key.clone() });
                }
            }
        }
        self.shares = Some(shares);
        for (key, revision, why) in release {
            if let Some(lease) = self.held.remove(&key) {
                info!(key = %key, token = lease.token, revision, why, "lease released");
            }
            self.releasing.push((key, revision));
        }
        ops
    }

    fn apply(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Written {
                key,
                revision,
                sent,
                taken,
            } => {
                if taken {
                    info!(key = %key, token = revision, "lease acquired");
                    self.held.insert(
                        key,
                        Lease {
                            token: revision,
                            revision,
                            sent,
                        },
                    );
                } else if let Some(lease) = self.held.get_mut(&key) {
                    lease.revision = revision;
                    lease.sent = sent;
                }
                // Else fenced while the renewal was in flight: the lease is no longer ours to
                // use; it expires or is taken again at the next tick.
            }
            Outcome::Lost { key } => {
                if let Some(lease) = self.held.remove(&key) {
                    info!(key = %key, token = lease.token, revision = lease.revision, "lease lost: renewal refused (taken over or deleted)");
                }
            }
            Outcome::Busy { key, holder } => {
                debug!(key = %key, %holder, "lease held by another node");
            }
            Outcome::Failed { key, what, error } => {
                debug!(key = %key, what, %error, "lease request failed");
            }
            Outcome::Released => {}
        }
    }

    /// Drops every lease not renewed within `fence_after` of sending its last renewal.
    fn fence(&mut self) {
        let now = Instant::now();
        let fence_after = self.cfg.fence_after();
        self.held.retain(|key, lease| {
            let keep = now.saturating_duration_since(lease.sent) <= fence_after;
            if !keep {
                warn!(key = %key, token = lease.token, revision = lease.revision, "lease fenced: not renewed in time, dropped without NATS");
            }
            keep
        });
    }

    fn next_fence_deadline(&self) -> Option<Instant> {
        let fence_after = self.cfg.fence_after();
        self.held
            .values()
            .map(|l| l.sent + fence_after + Duration::from_millis(1))
            .min()
    }

    /// Publishes the held leases if they changed (keys or tokens; not renewals).
    fn publish(&mut self) {
        let leases: BTreeMap<LeaseKey, u64> = self
            .held
            .iter()
            .map(|(k, l)| (k.clone(), l.token))
            .collect();
        self.info.held = leases.len();
        self.held_tx.send_if_modified(|held| {
            if held.leases == leases {
                false
            } else {
                *held = Arc::new(Held { leases });
                true
            }
        });
    }

    async fn heartbeat(&mut self, deadline: Instant) -> Result<(), ClusterError> {
        let value = serde_json::to_vec(&self.info).expect("NodeInfo serializes");
        let put = self.nodes.put(self.cfg.node.as_str(), value.into());
        match timeout_at(deadline, put).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(ClusterError::Nats {
                op: format!("heartbeat in bucket {}", self.nodes.name),
                source: Box::new(e),
            }),
            Err(_) => Err(ClusterError::Timeout {
                op: format!("heartbeat in bucket {}", self.nodes.name),
                timeout_ms: self.cfg.renew_every.as_millis() as u64,
            }),
        }
    }

    async fn ensure_node_watch(&mut self, deadline: Instant) {
        if self.node_watch.is_some() {
            return;
        }
        match timeout_at(deadline, self.nodes.watch_all()).await {
            Ok(Ok(w)) => self.node_watch = Some(w),
            Ok(Err(e)) => debug!(error = %e, "cannot watch the node bucket"),
            Err(_) => debug!("watching the node bucket timed out"),
        }
    }

    /// Stops: publishes an empty [`Held`], then deletes this node's leases (each only at the
    /// revision it last renewed) and its node entry.
    async fn leave(mut self) {
        let held = std::mem::take(&mut self.held);
        self.publish();
        let bound = self.cfg.renew_every.max(Duration::from_secs(1));
        let node = Bytes::from(self.cfg.node.clone());
        let mut all = std::mem::take(&mut self.releasing);
        for (key, lease) in held {
            info!(key = %key, token = lease.token, revision = lease.revision, "lease released: leaving");
            all.push((key, lease.revision));
        }
        let releases = futures::stream::iter(all.into_iter().map(|(key, revision)| {
            let leases = self.leases.clone();
            let node = node.clone();
            async move { run_op(&leases, node, Op::Release { key, revision }).await }
        }))
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>();
        if timeout(bound, releases).await.is_err() {
            warn!("releasing leases timed out; the rest expire after lease_ttl");
        }
        match timeout(bound, self.nodes.delete(self.cfg.node.as_str())).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "cannot remove this node's entry; it expires after lease_ttl")
            }
            Err(_) => warn!("removing this node's entry timed out; it expires after lease_ttl"),
        }
        info!("left the cluster");
    }
}

/// The live nodes (sorted by id), this one always among them with its own weight.
async fn list_nodes(
    nodes: &kv::Store,
    cfg: &ClusterConfig,
    deadline: Instant,
) -> Result<Vec<(String, u32)>, ClusterError> {
    let left = deadline.saturating_duration_since(Instant::now());
    let entries = snapshot(nodes, left).await?;
    let mut live: BTreeMap<String, u32> = BTreeMap::new();
    for e in entries {
        match serde_json::from_slice::<NodeInfo>(&e.value) {
            Ok(info) => {
                live.insert(e.key, info.weight);
            }
            Err(err) => {
                debug!(node = %e.key, error = %err, "unreadable node entry: not counted as live")
            }
        }
    }
    live.insert(cfg.node.clone(), cfg.weight);
    Ok(live.into_iter().collect())
}

/// Waits for a change of the node bucket that matters: a node that is not live yet put its
/// heartbeat, or a live node deleted its entry. `false` for other events (the caller loops).
/// Pending forever without a watch (the tick makes one again).
async fn next_node_event(watch: &mut Option<kv::Watch>, me: &str, live: &[(String, u32)]) -> bool {
    let Some(w) = watch else {
        return std::future::pending().await;
    };
    match w.next().await {
        Some(Ok(entry)) => {
            if entry.key == me {
                return false;
            }
            let known = live.iter().any(|(id, _)| *id == entry.key);
            match entry.operation {
                kv::Operation::Put => !known,
                kv::Operation::Delete | kv::Operation::Purge => known,
            }
        }
        Some(Err(e)) => {
            debug!(error = %e, "node bucket watch failed; re-made at the next tick");
            *watch = None;
            false
        }
        None => {
            *watch = None;
            false
        }
    }
}

/// A renewal or release refused for a wrong revision is tried once more at the entry's
/// revision when the entry still holds this node's id: a request of an earlier tick, abandoned
/// at its deadline, was stored after all (nobody else writes this node's id, and a renewal
/// only succeeds on an entry nobody changed since, so the lease was this node's throughout).
async fn run_op(leases: &kv::Store, node: Bytes, op: Op) -> Outcome {
    match op {
        Op::Renew { key, revision } => {
            let sent = Instant::now();
            let refused = match leases.update(key.as_str(), node.clone(), revision).await {
                Ok(revision) => {
                    return Outcome::Written {
                        key,
                        revision,
                        sent,
                        taken: false,
                    };
                }
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => e,
                Err(e) => {
                    return Outcome::Failed {
                        key,
                        what: "renewing",
                        error: e.to_string(),
                    };
                }
            };
            let revision = match own_revision(leases, &key, &node).await {
                Ok(Some(revision)) => revision,
                Ok(None) => return Outcome::Lost { key },
                Err(e) => {
                    return Outcome::Failed {
                        key,
                        what: "reading after a refused renewal",
                        error: format!("{refused}; reading: {e}"),
                    };
                }
            };
            let sent = Instant::now();
            match leases.update(key.as_str(), node, revision).await {
                Ok(revision) => Outcome::Written {
                    key,
                    revision,
                    sent,
                    taken: false,
                },
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    Outcome::Lost { key }
                }
                Err(e) => Outcome::Failed {
                    key,
                    what: "renewing",
                    error: e.to_string(),
                },
            }
        }
        Op::Take { key } => take(leases, node, key).await,
        Op::Release { key, revision } => {
            let deleted = leases
                .delete_expect_revision(key.as_str(), Some(revision))
                .await;
            match deleted {
                Ok(()) => return Outcome::Released,
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
                Err(e) => {
                    return Outcome::Failed {
                        key,
                        what: "releasing",
                        error: e.to_string(),
                    };
                }
            }
            // Gone or taken over: nothing of ours to release. Still this node's: delete it
            // now, or the next owner would wait for it to expire.
            let revision = match own_revision(leases, &key, &node).await {
                Ok(Some(revision)) => revision,
                Ok(None) => return Outcome::Released,
                Err(e) => {
                    return Outcome::Failed {
                        key,
                        what: "reading after a refused release",
                        error: e.to_string(),
                    };
                }
            };
            match leases
                .delete_expect_revision(key.as_str(), Some(revision))
                .await
            {
                Ok(()) => Outcome::Released,
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Outcome::Released,
                Err(e) => Outcome::Failed {
                    key,
                    what: "releasing",
                    error: e.to_string(),
                },
            }
        }
    }
}

/// The entry's revision if it is this node's lease (a put of this node's id), else `None`.
async fn own_revision(
    leases: &kv::Store,
    key: &LeaseKey,
    node: &Bytes,
) -> Result<Option<u64>, kv::EntryError> {
    Ok(leases
        .entry(key.as_str())
        .await?
        .filter(|e| e.operation == kv::Operation::Put && e.value == *node)
        .map(|e| e.revision))
}

/// Takes the lease if nobody holds it: absent or expired, deleted (released), or held by this
/// very node id (a lease this node dropped by fencing, or a previous run of this node left;
/// taking it again by revision is as safe as renewing).
async fn take(leases: &kv::Store, node: Bytes, key: LeaseKey) -> Outcome {
    let sent = Instant::now();
    // Expected last revision 0: succeeds only if the key has no entry at all.
    match leases.update(key.as_str(), node.clone(), 0).await {
        Ok(revision) => {
            return Outcome::Written {
                key,
                revision,
                sent,
                taken: true,
            };
        }
        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
        Err(e) => {
            return Outcome::Failed {
                key,
                what: "taking",
                error: e.to_string(),
            };
        }
    }
    let entry = match leases.entry(key.as_str()).await {
        // Expired between the two requests: the next tick takes it.
        Ok(None) => {
            return Outcome::Busy {
                key,
                holder: "(just expired)".into(),
            };
        }
        Ok(Some(entry)) => entry,
        Err(e) => {
            return Outcome::Failed {
                key,
                what: "reading",
                error: e.to_string(),
            };
        }
    };
    let free = matches!(
        entry.operation,
        kv::Operation::Delete | kv::Operation::Purge
    ) || entry.value == node;
    if !free {
        return Outcome::Busy {
            key,
            holder: String::from_utf8_lossy(&entry.value).into_owned(),
        };
    }
    let sent = Instant::now();
    match leases.update(key.as_str(), node, entry.revision).await {
        Ok(revision) => Outcome::Written {
            key,
            revision,
            sent,
            taken: true,
        },
        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Outcome::Busy {
            key,
            holder: "(taken meanwhile)".into(),
        },
        Err(e) => Outcome::Failed {
            key,
            what: "taking",
            error: e.to_string(),
        },
    }
}

/// One live entry of a bucket.
pub(crate) struct SnapshotEntry {
    pub key: String,
    pub value: Bytes,
    pub revision: u64,
    /// When the server stored it, nanoseconds since the Unix epoch.
    pub stored_ns: i128,
}

/// The live entries of a bucket (deleted ones left out): the keys from the stream's subject
/// list, then each key's last entry, `IN_FLIGHT` at a time; all within `within`.
pub(crate) async fn snapshot(
    store: &kv::Store,
    within: Duration,
) -> Result<Vec<SnapshotEntry>, ClusterError> {
    let op = || format!("listing bucket {}", store.name);
    let nats = |e: Box<dyn std::error::Error + Send + Sync>| ClusterError::Nats {
        op: op(),
        source: e,
    };
    let work = async {
        let subjects: Vec<(String, usize)> = store
            .stream
            .info_with_subjects(format!("{}>", store.prefix))
            .await
            .map_err(|e| nats(Box::new(e)))?
            .try_collect()
            .await
            .map_err(|e| nats(Box::new(e)))?;
        let keys: BTreeSet<String> = subjects
            .into_iter()
            .filter_map(|(subject, _)| subject.strip_prefix(&store.prefix).map(str::to_owned))
            .collect();
        let entries: Vec<Option<kv::Entry>> = futures::stream::iter(
            keys.into_iter()
                .map(|key| async move { store.entry(key).await }),
        )
        .buffer_unordered(crate::IN_FLIGHT)
        .try_collect()
        .await
        .map_err(|e| nats(Box::new(e)))?;
        Ok(entries
            .into_iter()
            .flatten()
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| SnapshotEntry {
                // async-nats' `DateTime` is `time::OffsetDateTime` (without its `chrono`
                // feature, which nothing here turns on).
                stored_ns: e.created.unix_timestamp_nanos(),
                key: e.key,
                value: e.value,
                revision: e.revision,
            })
            .collect())
    };
    match timeout(within, work).await {
        Ok(r) => r,
        Err(_) => Err(ClusterError::Timeout {
            op: op(),
            timeout_ms: within.as_millis() as u64,
        }),
    }
}
