//! A district on several hub nodes (`[cluster]`).
//!
//! Every node serves the API and the console for the whole district from the shared
//! PostgreSQL store. What must happen once is owned through leases in NATS JetStream
//! ([`xl_cluster`]):
//! - each camera (`camera.<id>`): only its owner pulls, decodes, analyses and records it;
//! - the gate work, cut by gate into [`xl_alerts::GATE_SHARDS`] shards
//!   (`task.gate-alerts-<shard>`): a shard's stored gate events and gate health go through
//!   the rules on one node, whose commits carry the lease's revision as a fence
//!   ([`xl_store::Fence`]), so a node that lost the lease cannot commit after its successor;
//! - publishing (`task.notify`: MQTT out, webhooks and the JetStream streams of alert changes,
//!   gate events and vision events) and retention (`task.retention`).
//!
//! Gate ingest is not leased: every node takes every gate's events (from the external
//! broker, or from the gates that push to it), and the store keeps an event once across
//! nodes (its dedup key within the ingest's window), so an event a dying node took is still
//! stored by the others.
//!
//! Alerts committed on any node reach every node's SSE streams: a node announces its commits
//! on NATS, and reads the store's last outbox seq every [`COMMITTED_POLL`] in case an
//! announcement was lost.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use xl_cluster::{Cluster, ClusterConfig, Held, LeaseKey, NatsAuth, Wanted};
use xl_core::topology::Topology;
use xl_store::{Fence, Store};

use crate::config::StoreConfig;

/// The leases of the gate work's shards (stored gate events and gate health through the
/// rules) are `task.gate-alerts-<shard>`.
pub const TASK_GATE_ALERTS: &str = "gate-alerts";
/// The lease of MQTT out and the webhooks.
pub const TASK_NOTIFY: &str = "notify";
/// The lease of the store's retention job.
pub const TASK_RETENTION: &str = "retention";

/// How often a node reads the store's last outbox seq besides the announcements.
const COMMITTED_POLL: Duration = Duration::from_secs(2);

/// `[cluster]`
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// NATS server URLs (`nats://host:4222`), JetStream enabled. Required. No credentials in
    /// them (async-nats would not send them): see `nats_user` and the others below.
    pub nats: Vec<String>,
    /// The NATS user; needs `nats_password`. At most one of `nats_user` + `nats_password`,
    /// `nats_token` and `nats_credentials`. Default: no credentials.
    #[serde(default)]
    pub nats_user: Option<String>,
    /// The NATS user's password (never logged). Default none.
    #[serde(default)]
    pub nats_password: Option<String>,
    /// A NATS token (never logged). Default none.
    #[serde(default)]
    pub nats_token: Option<String>,
    /// A NATS `.creds` file (a user JWT and its NKey seed: NATS decentralized auth), read
    /// when connecting. Default none.
    #[serde(default)]
    pub nats_credentials: Option<PathBuf>,
    /// This node's id (letters, digits, `-` and `_`). Default: the host name.
    #[serde(default)]
    pub node: Option<String>,
    /// Capacity weight against the other nodes' (a node of weight 200 gets about twice the
    /// cameras of one of 100). Default 100.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Seconds a lease lives without renewal: a dead node's cameras move after at most this
    /// (plus a renewal period). Default 10, at least 4.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
    /// The URL this node's API is reached at by people and other nodes (shown in
    /// `GET /api/v1/cluster`). Default none.
    #[serde(default)]
    pub advertise: Option<String>,
    /// The prefix of the NATS buckets, streams and subjects, for several districts on one
    /// NATS. Default `xl`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Copies NATS keeps of the leases and the streams (alert changes, gate events, vision
    /// events, camera status changes; JetStream replicas): 3 on a three-server NATS cluster.
    /// Default 1.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
}

fn default_replicas() -> usize {
    1
}

fn default_weight() -> u32 {
    100
}

fn default_lease_secs() -> u64 {
    10
}

fn default_prefix() -> String {
    "xl".into()
}

impl fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("ClusterSettings")
            .field(
                "nats",
                &self
                    .nats
                    .iter()
                    .map(|u| xl_notify::redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field("nats_user", &self.nats_user)
            .field("nats_password", &redacted(&self.nats_password))
            .field("nats_token", &redacted(&self.nats_token))
            .field("nats_credentials", &self.nats_credentials)
            .field("node", &self.node)
            .field("weight", &self.weight)
            .field("lease_secs", &self.lease_secs)
            .field("advertise", &self.advertise)
            .field("prefix", &self.prefix)
            .field("replicas", &self.replicas)
            .finish()
    }
}

impl ClusterSettings {
    pub(crate) fn validate(&self, store: &StoreConfig) -> anyhow::Result<()> {
        if self.nats.is_empty() {
            bail!("cluster.nats: give at least one NATS URL (nats://host:4222)");
        }
        for (i, url) in self.nats.iter().enumerate() {
            if let Err(e) = xl_cluster::check_url(url) {
                bail!("cluster.nats[{i}]: {e}");
            }
        }
        self.auth()?;
        if self.weight == 0 {
            bail!("cluster.weight must be at least 1");
        }
        if self.lease_secs < 4 {
            bail!("cluster.lease_secs must be at least 4");
        }
        if !(1..=5).contains(&self.replicas) {
            bail!("cluster.replicas must be 1 to 5");
        }
        let shared = store
            .database_url
            .as_deref()
            .is_some_and(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"));
        if !shared {
            bail!(
                "[cluster] needs a store all nodes share: set [store] database_url to a \
                 postgres:// URL (SQLite is one node's file)"
            );
        }
        Ok(())
    }

    fn node_id(&self) -> anyhow::Result<String> {
        if let Some(n) = &self.node {
            return Ok(n.clone());
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .context("cluster.node is not set and the host name cannot be read")?;
        Ok(host.trim().to_owned())
    }

    /// The NATS credentials: at most one kind, a user with its password.
    fn auth(&self) -> anyhow::Result<NatsAuth> {
        let given: Vec<&str> = [
            (self.nats_user.is_some() || self.nats_password.is_some())
                .then_some("nats_user + nats_password"),
            self.nats_token.is_some().then_some("nats_token"),
            self.nats_credentials
                .is_some()
                .then_some("nats_credentials"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() > 1 {
            bail!(
                "cluster: give only one kind of NATS credentials, not {}",
                given.join(" and ")
            );
        }
        let nonempty = |key: &str, v: &Option<String>| -> anyhow::Result<()> {
            if v.as_deref() == Some("") {
                bail!("cluster.{key} is empty");
            }
            Ok(())
        };
        nonempty("nats_user", &self.nats_user)?;
        nonempty("nats_password", &self.nats_password)?;
        nonempty("nats_token", &self.nats_token)?;
        Ok(
            match (
                &self.nats_user,
                &self.nats_password,
                &self.nats_token,
                &self.nats_credentials,
            ) {
                (Some(user), Some(password), None, None) => NatsAuth::UserPassword {
                    user: user.clone(),
                    password: password.clone(),
                },
                (Some(_), None, ..) => bail!("cluster.nats_user needs cluster.nats_password"),
                (None, Some(_), ..) => bail!("cluster.nats_password needs cluster.nats_user"),
                (None, None, Some(token), None) => NatsAuth::Token(token.clone()),
                (None, None, None, Some(path)) => {
                    if path.as_os_str().is_empty() {
                        bail!("cluster.nats_credentials is empty");
                    }
                    NatsAuth::CredentialsFile(path.clone())
                }
                _ => NatsAuth::None,
            },
        )
    }

    fn config(&self) -> anyhow::Result<ClusterConfig> {
        let ttl = Duration::from_secs(self.lease_secs);
        Ok(ClusterConfig {
            urls: self.nats.clone(),
            auth: self.auth()?,
            node: self.node_id()?,
            weight: self.weight,
            lease_ttl: ttl,
            renew_every: ttl / 5,
            bucket_prefix: self.prefix.clone(),
            advertise: self.advertise.clone(),
            replicas: self.replicas,
        })
    }
}

/// Where the district's alert changes go on JetStream (`{prefix}.alerts.<community>.<kind>`),
/// published by the node holding the notify lease, with the cluster's NATS credentials. The
/// gate and vision event streams are this config with another `feed`.
pub fn alert_stream(settings: &ClusterSettings) -> xl_notify::JetStreamOutConfig {
    // The settings were validated when the config was read; [`join`] fails on the same
    // error before anything is published.
    let auth = settings.auth().unwrap_or_default();
    xl_notify::JetStreamOutConfig {
        auth,
        prefix: settings.prefix.clone(),
        replicas: settings.replicas,
        ..xl_notify::JetStreamOutConfig::new(settings.nats.clone())
    }
}

/// Joins the district: connects to NATS and starts taking leases (none until
/// [`Cluster::want`] names what there is).
pub async fn join(
    settings: &ClusterSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<Cluster> {
    let cfg = settings.config()?;
    let node = cfg.node.clone();
    let cluster = Cluster::start(cfg, shutdown)
        .await
        .with_context(|| format!("cannot join the cluster as node {node} ([cluster])"))?;
    info!(node, "joined the cluster");
    Ok(cluster)
}

/// The lease of `task`.
pub fn task_key(task: &str) -> LeaseKey {
    // The task names are ours and valid.
    LeaseKey::task(task).expect("task names are valid lease keys")
}

/// The lease of gate shard `shard` (`task.gate-alerts-<shard>`).
pub fn gate_shard_key(shard: u32) -> LeaseKey {
    task_key(&format!("{TASK_GATE_ALERTS}-{shard}"))
}

/// Every lease of the district: the cameras that run (`runnable`) and the tasks.
pub fn wanted(runnable: &Topology) -> Vec<Wanted> {
    let cameras = runnable.cameras.keys().filter_map(|id| match LeaseKey::camera(id.as_str()) {
        Ok(key) => Some(key),
        Err(e) => {
            warn!(camera = %id, error = %e, "camera id cannot name a lease; not run in the cluster");
            None
        }
    });
    let gate_shards = (0..xl_alerts::GATE_SHARDS).map(gate_shard_key);
    let tasks = [TASK_NOTIFY, TASK_RETENTION].map(task_key);
    cameras
        .chain(gate_shards)
        .chain(tasks)
        .map(|key| Wanted { key, pin: None })
        .collect()
}

/// Whether this node holds `camera`'s lease.
pub fn holds_camera(held: &Held, camera: &xl_core::CameraId) -> bool {
    LeaseKey::camera(camera.as_str()).is_ok_and(|k| held.leases.contains_key(&k))
}

/// What the alert processor holds, from the leases: the gate shards (each with its fence)
/// and a count bumped whenever cameras are taken over (the engine then reloads the committed
/// alerts, the moved cameras' included).
pub fn shard_feed(
    mut held: watch::Receiver<Arc<Held>>,
    shutdown: CancellationToken,
) -> watch::Receiver<xl_alerts::Shard> {
    let gate_keys: Vec<(u32, LeaseKey)> = (0..xl_alerts::GATE_SHARDS)
        .map(|k| (k, gate_shard_key(k)))
        .collect();
    let shard_of = move |h: &Held, taken: u64| xl_alerts::Shard {
        gates: gate_keys
            .iter()
            .filter_map(|(k, key)| {
                let revision = *h.leases.get(key)?;
                Some((
                    *k,
                    Fence {
                        key: key.to_string(),
                        revision,
                    },
                ))
            })
            .collect(),
        taken,
    };
    let first = held.borrow_and_update().clone();
    let (tx, rx) = watch::channel(shard_of(&first, 0));
    let cameras = |h: &Held| -> BTreeSet<LeaseKey> {
        h.leases
            .keys()
            .filter(|k| k.as_str().starts_with("camera."))
            .cloned()
            .collect()
    };
    tokio::spawn(async move {
        let mut had = cameras(&first);
        let mut taken = 0;
        loop {
            tokio::select! {
                r = held.changed() => if r.is_err() { return },
                () = shutdown.cancelled() => return,
            }
            let now = held.borrow_and_update().clone();
            let has = cameras(&now);
            if !has.is_subset(&had) {
                taken += 1;
            }
            had = has;
            tx.send_replace(shard_of(&now, taken));
        }
    });
    rx
}

/// Runs `job` while this node holds `task`'s lease: started when the lease is taken, its
/// token cancelled (and the job awaited) when it is lost; again when taken again.
pub async fn while_held<F, Fut>(
    mut held: watch::Receiver<Arc<Held>>,
    task: &'static str,
    shutdown: CancellationToken,
    mut job: F,
) where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let key = task_key(task);
    loop {
        // Wait for the lease.
        loop {
            if held.borrow_and_update().leases.contains_key(&key) {
                break;
            }
            tokio::select! {
                r = held.changed() => if r.is_err() { return },
                () = shutdown.cancelled() => return,
            }
        }
        info!(task, "this node runs the task");
        let token = shutdown.child_token();
        let running = tokio::spawn(job(token.clone()));
        // Run until the lease goes (or shutdown).
        loop {
            tokio::select! {
                r = held.changed() => if r.is_err() { break },
                () = shutdown.cancelled() => break,
            }
            if !held.borrow_and_update().leases.contains_key(&key) {
                break;
            }
        }
        token.cancel();
        let _ = running.await;
        if shutdown.is_cancelled() {
            return;
        }
        info!(task, "this node no longer runs the task");
    }
}

/// Announces this node's commits to the others, and takes theirs (and the store's last
/// outbox seq, in case an announcement was lost) into `alerts`' committed seq, which the SSE
/// streams and publishers wait on.
pub async fn share_commits(
    cluster: Arc<Cluster>,
    alerts: Arc<xl_alerts::Alerts>,
    store: Store,
    shutdown: CancellationToken,
) {
    let mut ours = alerts.committed();
    let mut theirs = cluster.committed();
    let mut poll = tokio::time::interval(COMMITTED_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut announced = *ours.borrow();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            r = ours.changed() => {
                if r.is_err() { return }
                let seq = *ours.borrow_and_update();
                if seq > announced {
                    announced = seq;
                    cluster.notify_committed(seq).await;
                }
            }
            r = theirs.changed() => {
                if r.is_err() { return }
                let seq = *theirs.borrow_and_update();
                announced = announced.max(seq);
                alerts.observe_committed(seq);
            }
            _ = poll.tick() => match store.last_outbox_seq().await {
                Ok(seq) => {
                    announced = announced.max(seq);
                    alerts.observe_committed(seq);
                }
                Err(e) => debug!(error = %e, "cannot read the last outbox seq"),
            },
        }
    }
}

/// The API's view of the district from this node's, with the pins it has read.
pub fn view_dto(
    node: &str,
    view: xl_cluster::ClusterView,
    pins: std::collections::BTreeMap<String, String>,
) -> xl_api::backend::ClusterView {
    let cameras_of = |id: &str| {
        view.leases
            .iter()
            .filter(|l| l.node == id && l.key.starts_with("camera."))
            .count()
    };
    xl_api::backend::ClusterView {
        clustered: true,
        node: Some(node.to_owned()),
        nodes: view
            .nodes
            .iter()
            .map(|n| xl_api::backend::ClusterNode {
                id: n.id.clone(),
                weight: n.weight,
                advertise: n.advertise.clone(),
                held: n.held,
                cameras: cameras_of(&n.id),
                heartbeat_age_ms: n.heartbeat_age_ms,
            })
            .collect(),
        leases: view
            .leases
            .iter()
            .map(|l| xl_api::backend::ClusterLease {
                key: l.key.clone(),
                node: l.node.clone(),
                revision: l.revision,
                age_ms: l.age_ms,
            })
            .collect(),
        pins: pins
            .into_iter()
            .filter_map(|(key, node)| {
                let camera = key.strip_prefix("camera.")?.to_owned();
                Some(xl_api::backend::ClusterPin { camera, node })
            })
            .collect(),
    }
}

/// How often a node posts the status of every camera it runs, changed or not.
const STATUS_REPOST: Duration = Duration::from_secs(10);
/// A posted status older than this is not shown (its node stopped posting: it died, or the
/// camera moved and its new node has not posted yet).
const STATUS_STALE: Duration = Duration::from_secs(25);

/// A camera's status as a node posts it on the board (`camera.<id>`).
#[derive(serde::Serialize, Deserialize)]
struct PostedCamera {
    /// When it was posted (Unix milliseconds).
    at_ms: i64,
    camera: xl_api::CameraDto,
}

/// Posts the status of the cameras this node runs on the board, for the other nodes' APIs:
/// at once when a camera's status changes (checked every second), and every
/// [`STATUS_REPOST`] anyway. Each change (not the reposts) is also published, as posted, on
/// the camera-status stream (`{prefix}.camera.<community>.status`); a change the stream has
/// not acknowledged is published again at the next check, with the same message id.
pub async fn post_camera_status(
    cluster: Arc<Cluster>,
    cameras: Arc<xl_core::camera::CameraRegistry>,
    shutdown: CancellationToken,
) {
    let mut posted: std::collections::HashMap<xl_core::CameraId, (String, std::time::Instant)> =
        Default::default();
    let mut changes = xl_cluster::StatusChanges::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let snapshot = cameras.snapshot();
        posted.retain(|id, _| snapshot.iter().any(|(info, _)| &info.id == id));
        changes.retain(|id| snapshot.iter().any(|(info, _)| info.id.as_str() == id));
        for entry in &snapshot {
            let mut dto = xl_api::CameraDto::from(entry);
            let due = posted
                .get(&dto.id)
                .is_none_or(|(status, at)| *status != dto.status || at.elapsed() >= STATUS_REPOST);
            let changed = changes.is_change(dto.id.as_str(), &dto.status);
            if !due && !changed {
                continue;
            }
            let Ok(key) = LeaseKey::camera(dto.id.as_str()) else {
                continue;
            };
            dto.node = Some(cluster.node().to_owned());
            let status = dto.status.clone();
            let body = PostedCamera {
                at_ms: jiff::Timestamp::now().as_millisecond(),
                camera: dto,
            };
            let Ok(json) = serde_json::to_vec(&body) else {
                continue;
            };
            if changed {
                let change = xl_cluster::StatusChange {
                    camera: body.camera.id.to_string(),
                    community: body.camera.community.to_string(),
                    at_ms: body.at_ms,
                    payload: json.clone(),
                };
                changes.push(&status, change);
            }
            if !due {
                continue;
            }
            match cluster.post(key.as_str(), json).await {
                Ok(()) => {
                    posted.insert(body.camera.id, (status, std::time::Instant::now()));
                }
                Err(e) => debug!(camera = %body.camera.id, error = %e, "cannot post camera status"),
            }
        }
        if changes.pending() > 0
            && let Err(e) = changes.publish(&cluster).await
        {
            debug!(waiting = changes.pending(), error = %e, "cannot publish camera status changes; retrying");
        }
    }
}

/// The cameras of `topology` that other nodes run, as they last posted them (recent posts
/// only), with the names, communities and networks of the topology (which scope reads).
pub fn remote_cameras(
    cluster: &Cluster,
    topology: &Topology,
) -> Vec<(xl_core::camera::CameraInfo, xl_api::CameraDto)> {
    let now = jiff::Timestamp::now().as_millisecond();
    let stale = STATUS_STALE.as_millis() as i64;
    cluster
        .board()
        .into_iter()
        .filter_map(|(key, value)| {
            key.strip_prefix("camera.")?;
            let posted: PostedCamera = serde_json::from_slice(&value).ok()?;
            if now - posted.at_ms > stale || posted.camera.node.as_deref() == Some(cluster.node()) {
                return None;
            }
            let cam = topology.cameras.get(&posted.camera.id)?;
            let info = xl_core::camera::CameraInfo {
                id: cam.id.clone(),
                name: cam.name.clone(),
                community: cam.community.clone(),
                network: cam.network,
            };
            let mut dto = posted.camera;
            dto.name = info.name.clone();
            dto.community = info.community.clone();
            dto.network = info.network;
            Some((info, dto))
        })
        .collect()
}

/// A node's figures on `/metrics`: the leases it holds by kind, the lease rounds it has done,
/// and the last commit seq of the district it has heard of.
pub struct ClusterMetrics(pub Arc<Cluster>);

impl xl_core::metrics::MetricsSource for ClusterMetrics {
    fn render_prometheus(&self, out: &mut String) {
        use std::fmt::Write;
        let held = self.0.held().borrow().clone();
        let count = |kind: &str| held.leases.keys().filter(|k| k.kind() == kind).count();
        let node = self.0.node();
        let _ = writeln!(
            out,
            "# HELP xueliang_cluster_leases_held Leases this node holds, by kind (camera, gate, task).\n\
             # TYPE xueliang_cluster_leases_held gauge"
        );
        for kind in ["camera", "gate", "task"] {
            let _ = writeln!(
                out,
                "xueliang_cluster_leases_held{{node=\"{node}\",kind=\"{kind}\"}} {}",
                count(kind)
            );
        }
        let _ = writeln!(
            out,
            "# HELP xueliang_cluster_lease_rounds_total Lease rounds that saw the live nodes.\n\
             # TYPE xueliang_cluster_lease_rounds_total counter\n\
             xueliang_cluster_lease_rounds_total{{node=\"{node}\"}} {}\n\
             # HELP xueliang_cluster_committed_seq The last outbox seq any node of the district announced.\n\
             # TYPE xueliang_cluster_committed_seq gauge\n\
             xueliang_cluster_committed_seq{{node=\"{node}\"}} {}",
            *self.0.rounds().borrow(),
            *self.0.committed().borrow(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A `[cluster]` with `extra` keys, on a shared store.
    fn parse(extra: &str) -> anyhow::Result<Config> {
        Config::parse(&format!(
            "[store]\ndatabase_url = \"postgres://xl:pw@db/xl\"\n\
             [cluster]\nnats = [\"nats://10.0.0.5:4222\"]\nnode = \"hub-0\"\n{extra}\n"
        ))
    }

    fn settings(extra: &str) -> ClusterSettings {
        parse(extra).unwrap().cluster.unwrap()
    }

    #[test]
    fn nats_credentials_reach_the_leases_and_the_alert_stream() {
        let cases = [
            ("", NatsAuth::None),
            (
                "nats_user = \"hub\"\nnats_password = \"hunter2\"",
                NatsAuth::UserPassword {
                    user: "hub".into(),
                    password: "hunter2".into(),
                },
            ),
            (
                "nats_token = \"hunter2\"",
                NatsAuth::Token("hunter2".into()),
            ),
            (
                "nats_credentials = \"/etc/xueliang/hub.creds\"",
                NatsAuth::CredentialsFile("/etc/xueliang/hub.creds".into()),
            ),
        ];
        for (extra, want) in cases {
            let s = settings(extra);
            assert_eq!(s.config().unwrap().auth, want, "{extra}");
            let stream = alert_stream(&s);
            assert_eq!(stream.auth.to_string(), want.to_string(), "{extra}");
            let shown = format!("{s:?} {:?} {stream:?}", s.config().unwrap());
            assert!(!shown.contains("hunter2"), "a secret in Debug: {shown}");
        }
        let s = settings("nats_user = \"hub\"\nnats_password = \"hunter2\"");
        assert!(
            matches!(alert_stream(&s).auth, xl_notify::jetstream::NatsAuth::UserPassword { ref user, ref password } if user == "hub" && password == "hunter2")
        );
    }

    #[test]
    fn nats_credential_mistakes_name_the_keys_without_the_secret() {
        let cases = [
            (
                "nats_user = \"hub\"",
                "cluster.nats_user needs cluster.nats_password",
            ),
            (
                "nats_password = \"hunter2\"",
                "cluster.nats_password needs cluster.nats_user",
            ),
            (
                "nats_user = \"hub\"\nnats_password = \"hunter2\"\nnats_token = \"hunter2\"",
                "not nats_user + nats_password and nats_token",
            ),
            (
                "nats_token = \"hunter2\"\nnats_credentials = \"/x.creds\"",
                "not nats_token and nats_credentials",
            ),
            ("nats_token = \"\"", "cluster.nats_token is empty"),
            (
                "nats_user = \"\"\nnats_password = \"hunter2\"",
                "cluster.nats_user is empty",
            ),
        ];
        for (extra, want) in cases {
            let e = format!("{:#}", parse(extra).unwrap_err());
            assert!(e.contains(want), "{extra}: {e}");
            assert!(!e.contains("hunter2"), "{extra}: {e}");
        }
        // Credentials in the URL would be silently dropped by async-nats: refused instead.
        let e = format!(
            "{:#}",
            Config::parse(
                "[store]\ndatabase_url = \"postgres://xl:pw@db/xl\"\n\
                 [cluster]\nnats = [\"nats://hub:hunter2@10.0.0.5:4222\"]\n"
            )
            .unwrap_err()
        );
        assert!(
            e.contains("cluster.nats[0]") && e.contains("nats_user"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }
}
