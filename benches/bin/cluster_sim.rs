//! A district simulated against a real nats-server, for `benches/cluster-run`: N cameras shared
//! by M hub nodes through xl-cluster's leases, every node a [`Cluster`] in this one process
//! (lease loops only: no video is pulled).
//!
//! Phases, in order:
//! 1. **Ceiling**: `--probe-tasks` tasks over `--probe-conns` connections call
//!    `kv::Store::update` on distinct keys of a bucket configured like the lease bucket, for
//!    `--probe-secs` (the first second is warm-up and not counted): the update rate the server
//!    sustains, with p50/p99 latency. Run first, on the otherwise idle server.
//! 2. **Settle**: M nodes start at once, each given the same N camera keys; time until every
//!    camera is held by exactly one node and that node is the one [`owner`] names over the
//!    live nodes.
//! 3. **One node dies**: the node holding closest to N/M cameras is aborted (a crash: nothing
//!    released); time until the assignment equals `owner()` over the rest again.
//! 4. **Nodes join**: `--join` more nodes start; time to settle again.
//! 5. **Steady state**: for `--steady-secs`, the lease writes the server stored (from the
//!    streams' sequence numbers), the nats-server's and this process's CPU; then, for
//!    `--tap-secs`, every JetStream request counted by kind on a wildcard subscription.
//!
//! What a node holds is read from each node's [`Cluster::held`] watch. A camera counts as held
//! by two nodes only when both held it with the same fencing token across two reads of every
//! node, so that two nodes read in the wrong order (the old holder read before its release,
//! the new one after its take) are not counted: the second read of the old holder comes after
//! the first read of the new one, and the same token on both reads means the lease was held
//! throughout.
//!
//! Moves: a camera *moved* when its holder after the phase differs from its holder before;
//! *expected* moves are the cameras whose `owner()` changed; an *unnecessary* move is any
//! other camera that was not held by its old holder at some moment of the phase, plus every
//! extra handoff of an expected one (taken by a node that later gave it up again).
//!
//! Usage: cluster_sim [--cameras 10000] [--nodes 40] [--join 10] [--ttl-secs 10]
//!        [--renew-ms 2000] [--heavy-share 0.25] [--nats URL [--nats-pid PID]] [--json]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::jetstream::{self, kv};
use clap::Parser;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;
use xl_cluster::{Cluster, ClusterConfig, Held, LeaseKey, Wanted, owner};
use xl_testkit::NatsServer;

/// A district of camera leases on simulated hub nodes, against a real nats-server.
#[derive(Parser, Debug, Clone)]
#[command(name = "cluster_sim")]
struct Args {
    /// Cameras (lease keys `camera.cam-00000` ...).
    #[arg(long, default_value_t = 10_000)]
    cameras: usize,
    /// Nodes started at first.
    #[arg(long, default_value_t = 40)]
    nodes: usize,
    /// Nodes started after one node died.
    #[arg(long, default_value_t = 10)]
    join: usize,
    /// Lease time to live, seconds (xl-cluster's default 10).
    #[arg(long, default_value_t = 10)]
    ttl_secs: u64,
    /// Lease renewal period, milliseconds (xl-cluster's default 2000).
    #[arg(long, default_value_t = 2000)]
    renew_ms: u64,
    /// Share of the nodes (spread evenly) with weight 200; the rest have 100. 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    heavy_share: f64,
    /// Use this NATS server (JetStream on) instead of starting one.
    #[arg(long)]
    nats: Option<String>,
    /// The `--nats` server's process id, to report its CPU.
    #[arg(long)]
    nats_pid: Option<u32>,
    /// Longest wait for each phase to settle, seconds.
    #[arg(long, default_value_t = 300)]
    settle_timeout_secs: u64,
    /// Steady-state window, seconds.
    #[arg(long, default_value_t = 20)]
    steady_secs: u64,
    /// Request-counting window after the steady one, seconds (0: skip).
    #[arg(long, default_value_t = 10)]
    tap_secs: u64,
    /// Saturation probe length, seconds (0: skip).
    #[arg(long, default_value_t = 10)]
    probe_secs: u64,
    /// Concurrent update loops in the probe.
    #[arg(long, default_value_t = 256)]
    probe_tasks: usize,
    /// NATS connections the probe's loops share.
    #[arg(long, default_value_t = 8)]
    probe_conns: usize,
    /// Also print the results as one JSON line (last line of stdout).
    #[arg(long)]
    json: bool,
}

impl Args {
    fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs)
    }

    fn renew(&self) -> Duration {
        Duration::from_millis(self.renew_ms)
    }

    /// Weight of the `i`-th node started: `--heavy-share` of them, spread evenly, get 200.
    fn weight(&self, i: usize) -> u32 {
        let share = self.heavy_share.clamp(0.0, 1.0);
        let heavy = ((i + 1) as f64 * share).floor() > (i as f64 * share).floor();
        if heavy { 200 } else { 100 }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("cluster_sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every phase; `Ok(false)` when a phase did not settle (the figures so far are printed).
async fn run(args: Args) -> anyhow::Result<bool> {
    if args.cameras == 0 || args.nodes < 2 {
        bail!("need at least 1 camera and 2 nodes");
    }
    if args.nodes + args.join > usize::from(u16::MAX) {
        bail!("too many nodes");
    }
    let (server, url) = match &args.nats {
        Some(url) => (None, url.clone()),
        None => {
            let server = tokio::task::spawn_blocking(NatsServer::start)
                .await
                .context("starting nats-server")??;
            let url = server.url();
            (Some(server), url)
        }
    };
    let nats_pid = args
        .nats_pid
        .or_else(|| server.as_ref().and_then(NatsServer::pid));
    let prefix = format!(
        "sim{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    eprintln!(
        "cluster_sim: {} cameras, {} nodes (+{} joining), ttl {} s, renew {} ms, NATS {url}, buckets {prefix}-*",
        args.cameras, args.nodes, args.join, args.ttl_secs, args.renew_ms
    );

    let observer = async_nats::connect(url.as_str())
        .await
        .with_context(|| format!("connecting to NATS at {url}"))?;
    let mut js = jetstream::new(observer.clone());
    js.set_timeout(Duration::from_secs(10));

    let mut report = Report::new(&args);
    if args.probe_secs > 0 {
        let probe = probe(&args, &url, &js, &prefix, nats_pid)
            .await
            .context("saturation probe")?;
        eprintln!(
            "probe: {:.0} updates/s, p50 {:.2} ms, p99 {:.2} ms",
            probe.ops_per_s, probe.p50_ms, probe.p99_ms
        );
        report.probe = Some(probe);
    }

    let settled = simulate(&args, &url, &js, &observer, &prefix, nats_pid, &mut report).await;
    let ok = match settled {
        Ok(ok) => ok,
        Err(e) => {
            report.error = Some(format!("{e:#}"));
            false
        }
    };
    print!("{}", report.table(&args));
    if args.json {
        println!("{}", report.json(&args));
    }
    if let Some(e) = &report.error {
        eprintln!("cluster_sim: {e}");
    }
    drop(server);
    Ok(ok)
}

/// Phases 2 to 5. `Ok(false)`: a phase did not settle in time.
async fn simulate(
    args: &Args,
    url: &str,
    js: &jetstream::Context,
    observer: &async_nats::Client,
    prefix: &str,
    nats_pid: Option<u32>,
    report: &mut Report,
) -> anyhow::Result<bool> {
    let shutdown = CancellationToken::new();
    let keys: Vec<LeaseKey> = (0..args.cameras)
        .map(|i| LeaseKey::camera(&format!("cam-{i:05}")))
        .collect::<Result<_, _>>()?;
    let wanted: Vec<Wanted> = keys
        .iter()
        .map(|key| Wanted {
            key: key.clone(),
            pin: None,
        })
        .collect();
    let mut sim = Sim {
        js: js.clone(),
        args: args.clone(),
        url: url.to_owned(),
        prefix: prefix.to_owned(),
        wanted,
        shutdown: shutdown.clone(),
        clusters: Vec::new(),
        tracker: Tracker::new(keys),
    };
    let outcome = sim.phases(observer, nats_pid, report).await;
    // Leave politely whatever happened, so the server is not left renewing for nobody.
    let stops = sim
        .clusters
        .drain(..)
        .flatten()
        .map(|c| timeout(Duration::from_secs(30), c.stop()));
    futures::future::join_all(stops).await;
    shutdown.cancel();
    outcome
}

struct Sim {
    js: jetstream::Context,
    args: Args,
    url: String,
    prefix: String,
    wanted: Vec<Wanted>,
    shutdown: CancellationToken,
    /// By slot index of the tracker; `None` once aborted.
    clusters: Vec<Option<Cluster>>,
    tracker: Tracker,
}

impl Sim {
    async fn phases(
        &mut self,
        observer: &async_nats::Client,
        nats_pid: Option<u32>,
        report: &mut Report,
    ) -> anyhow::Result<bool> {
        let settle_timeout = Duration::from_secs(self.args.settle_timeout_secs);

        // 2. Settle.
        self.tracker.begin_phase();
        let t0 = Instant::now();
        self.start_nodes(0..self.args.nodes).await?;
        let settled = self
            .tracker
            .wait_settled(t0, settle_timeout, "settle")
            .await;
        // Every camera should be taken once: every handoff on the way is unnecessary.
        let phase = self
            .tracker
            .phase_figures(t0, settled, &vec![true; self.args.cameras]);
        eprintln!("settle: {}", phase.summary());
        let ok = phase.settled_ms.is_some();
        report.settle = Some(phase);
        if !ok {
            return Ok(false);
        }

        // 3. One node dies: the one holding closest to an even share.
        let live = self.tracker.live_count();
        let share = self.args.cameras as f64 / live as f64;
        let victim = self
            .tracker
            .live_slots()
            .min_by(|a, b| {
                let da = (self.tracker.held_count(*a) as f64 - share).abs();
                let db = (self.tracker.held_count(*b) as f64 - share).abs();
                da.total_cmp(&db)
            })
            .context("no live node")?;
        self.tracker.begin_phase();
        let expected: Vec<bool> = (0..self.args.cameras)
            .map(|c| self.tracker.phase.initial[c] == Some(victim as u16))
            .collect();
        let cluster = self.clusters[victim]
            .take()
            .context("victim already gone")?;
        let t0 = Instant::now();
        cluster.abort();
        self.tracker.kill(victim);
        let settled = self
            .tracker
            .wait_settled(t0, settle_timeout, "one node dies")
            .await;
        let mut phase = self.tracker.phase_figures(t0, settled, &expected);
        phase.node = Some(self.tracker.slots[victim].id.clone());
        eprintln!("one node dies: {}", phase.summary());
        let ok = phase.settled_ms.is_some();
        report.die = Some(phase);
        if !ok {
            return Ok(false);
        }

        // 4. Nodes join.
        if self.args.join > 0 {
            self.tracker.begin_phase();
            let before = self.tracker.desired.clone();
            let t0 = Instant::now();
            let start = self.args.nodes;
            self.start_nodes(start..start + self.args.join).await?;
            let expected: Vec<bool> = before
                .iter()
                .zip(&self.tracker.desired)
                .map(|(a, b)| a != b)
                .collect();
            let settled = self.tracker.wait_settled(t0, settle_timeout, "join").await;
            let phase = self.tracker.phase_figures(t0, settled, &expected);
            eprintln!("{} nodes join: {}", self.args.join, phase.summary());
            let ok = phase.settled_ms.is_some();
            report.join = Some(phase);
            if !ok {
                return Ok(false);
            }
        }

        // 5. Steady state.
        sleep(self.args.renew()).await;
        report.steady = Some(self.steady(nats_pid).await?);
        if self.args.tap_secs > 0 {
            match tap(
                observer,
                &self.prefix,
                Duration::from_secs(self.args.tap_secs),
            )
            .await
            {
                Ok(t) => report.tap = Some(t),
                Err(e) => eprintln!("request count skipped: {e:#}"),
            }
        }
        Ok(true)
    }

    /// Starts nodes `node-{i}` for each `i` at once, gives each the wanted list and tracks it.
    async fn start_nodes(&mut self, range: std::ops::Range<usize>) -> anyhow::Result<()> {
        let configs: Vec<ClusterConfig> = range
            .map(|i| ClusterConfig {
                urls: vec![self.url.clone()],
                node: format!("node-{i:02}"),
                weight: self.args.weight(i),
                lease_ttl: self.args.ttl(),
                renew_every: self.args.renew(),
                bucket_prefix: self.prefix.clone(),
                ..Default::default()
            })
            .collect();
        let starts = configs.iter().map(|cfg| {
            let node = cfg.node.clone();
            let started = Cluster::start(cfg.clone(), self.shutdown.clone());
            async move { started.await.with_context(|| format!("starting {node}")) }
        });
        let clusters = futures::future::try_join_all(starts).await?;
        for (cluster, cfg) in clusters.into_iter().zip(configs) {
            cluster.want(self.wanted.clone());
            self.tracker.add(cfg.node, cfg.weight, cluster.held());
            self.clusters.push(Some(cluster));
        }
        if self.tracker.leases.is_none() {
            let bucket = format!("{}-leases", self.prefix);
            match self.js.get_key_value(bucket.as_str()).await {
                Ok(store) => self.tracker.leases = Some(store),
                Err(e) => eprintln!("cannot open bucket {bucket} (for diagnostics): {e}"),
            }
        }
        self.tracker.recompute_desired();
        Ok(())
    }

    /// Lease and heartbeat writes, CPU, and any change of holder over the steady window.
    async fn steady(&mut self, nats_pid: Option<u32>) -> anyhow::Result<Steady> {
        let js = self.js.clone();
        let js = &js;
        let window = Duration::from_secs(self.args.steady_secs.max(1));
        let leases_stream = format!("KV_{}-leases", self.prefix);
        let nodes_stream = format!("KV_{}-nodes", self.prefix);
        self.tracker.begin_phase();
        let seq0 = (
            last_seq(js, &leases_stream).await?,
            last_seq(js, &nodes_stream).await?,
        );
        let cpu = CpuMeter::start(nats_pid);
        let t0 = Instant::now();
        self.tracker.watch_until(t0 + window).await;
        let seq1 = (
            last_seq(js, &leases_stream).await?,
            last_seq(js, &nodes_stream).await?,
        );
        let (nats_cpu, sim_cpu) = cpu.pct();
        let secs = t0.elapsed().as_secs_f64();
        let disturbed = self.tracker.phase.disturbed.iter().filter(|d| **d).count();
        let live = self.tracker.live_count();
        Ok(Steady {
            secs,
            lease_writes_per_s: (seq1.0 - seq0.0) as f64 / secs,
            heartbeats_per_s: (seq1.1 - seq0.1) as f64 / secs,
            expected_renewals_per_s: self.args.cameras as f64 / self.args.renew().as_secs_f64(),
            live_nodes: live,
            nats_cpu_pct: nats_cpu,
            sim_cpu_pct: sim_cpu,
            cameras_disturbed: disturbed,
            max_holders: self.tracker.phase.max_holders,
        })
    }
}

/// A node as the tracker sees it.
struct Slot {
    id: String,
    weight: u32,
    rx: watch::Receiver<Arc<Held>>,
    /// Its `Held` at the last read.
    seen: Arc<Held>,
    live: bool,
}

/// Who holds each camera, from every node's `held()` watch, and whether that is `owner()`'s
/// answer over the live nodes.
struct Tracker {
    keys: Vec<LeaseKey>,
    index: HashMap<LeaseKey, usize>,
    slots: Vec<Slot>,
    /// Raised by each node's watch (a task per node).
    notify: Arc<Notify>,
    /// Camera -> live slots holding it.
    holders: Vec<Vec<u16>>,
    /// Camera -> the slot `owner()` names over the live slots.
    desired: Vec<Option<u16>>,
    /// Cameras whose holders are not exactly `[desired]`.
    bad: usize,
    phase: Phase,
    /// Cameras seen with two holders in the current read pass: (camera, [(slot, token)]).
    suspects: Vec<(usize, Vec<(u16, u64)>)>,
    /// The lease bucket, to show who holds a camera that is slow to settle.
    leases: Option<kv::Store>,
}

/// What happened to each camera since the phase began.
#[derive(Default)]
struct Phase {
    initial: Vec<Option<u16>>,
    /// Not held by exactly its initial holder at some moment.
    disturbed: Vec<bool>,
    /// Times a camera was taken by a node other than its previous holder.
    handoffs: Vec<u16>,
    last_holder: Vec<Option<u16>>,
    gap_since: Vec<Option<Instant>>,
    /// How long cameras went without any holder.
    gaps: Vec<Duration>,
    /// Most holders any camera had at once (confirmed, see the module docs).
    max_holders: usize,
}

impl Tracker {
    fn new(keys: Vec<LeaseKey>) -> Tracker {
        let n = keys.len();
        let index = keys
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, k)| (k, i))
            .collect();
        Tracker {
            keys,
            index,
            slots: Vec::new(),
            notify: Arc::new(Notify::new()),
            holders: vec![Vec::new(); n],
            desired: vec![None; n],
            bad: n,
            phase: Phase::default(),
            suspects: Vec::new(),
            leases: None,
        }
    }

    fn add(&mut self, id: String, weight: u32, rx: watch::Receiver<Arc<Held>>) {
        let mut forward = rx.clone();
        let notify = Arc::clone(&self.notify);
        tokio::spawn(async move {
            // Ends when the node's loop is gone (stopped or aborted).
            while forward.changed().await.is_ok() {
                notify.notify_one();
            }
        });
        self.slots.push(Slot {
            id,
            weight,
            rx,
            seen: Arc::new(Held::default()),
            live: true,
        });
    }

    fn live_slots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.slots.len()).filter(|s| self.slots[*s].live)
    }

    fn live_count(&self) -> usize {
        self.live_slots().count()
    }

    fn held_count(&self, slot: usize) -> usize {
        self.slots[slot].seen.leases.len()
    }

    /// A crash: the slot's leases stop counting at once (its process would be gone).
    fn kill(&mut self, slot: usize) {
        self.slots[slot].live = false;
        let old = std::mem::take(&mut self.slots[slot].seen);
        let now = Instant::now();
        for key in old.leases.keys() {
            if let Some(&c) = self.index.get(key) {
                self.change(c, now, |h| h.retain(|s| usize::from(*s) != slot));
            }
        }
        self.recompute_desired();
    }

    fn recompute_desired(&mut self) {
        let live: Vec<(String, u32)> = self
            .live_slots()
            .map(|s| (self.slots[s].id.clone(), self.slots[s].weight))
            .collect();
        let slot_of: HashMap<&str, u16> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live)
            .map(|(i, s)| (s.id.as_str(), i as u16))
            .collect();
        for (c, key) in self.keys.iter().enumerate() {
            self.desired[c] = owner(key.as_str(), &live, None).map(|id| slot_of[id]);
        }
        self.bad = (0..self.keys.len()).filter(|c| !self.ok(*c)).count();
    }

    fn ok(&self, c: usize) -> bool {
        matches!((&self.holders[c][..], self.desired[c]), ([h], Some(d)) if *h == d)
    }

    /// The current holders become the phase's starting point.
    fn begin_phase(&mut self) {
        let n = self.keys.len();
        let initial: Vec<Option<u16>> = self
            .holders
            .iter()
            .map(|h| if h.len() == 1 { Some(h[0]) } else { None })
            .collect();
        self.phase = Phase {
            last_holder: initial.clone(),
            initial,
            disturbed: vec![false; n],
            handoffs: vec![0; n],
            gap_since: vec![None; n],
            gaps: Vec::new(),
            max_holders: usize::from(self.holders.iter().any(|h| !h.is_empty())),
        };
    }

    /// Applies `f` to camera `c`'s holders and accounts for the change.
    fn change(&mut self, c: usize, now: Instant, f: impl FnOnce(&mut Vec<u16>)) {
        let was_ok = self.ok(c);
        f(&mut self.holders[c]);
        let is_ok = self.ok(c);
        match (was_ok, is_ok) {
            (true, false) => self.bad += 1,
            (false, true) => self.bad -= 1,
            _ => {}
        }
        let p = &mut self.phase;
        let h = &self.holders[c];
        if !(h.len() == 1 && Some(h[0]) == p.initial[c]) {
            p.disturbed[c] = true;
        }
        match h.len() {
            0 => {
                p.gap_since[c].get_or_insert(now);
            }
            n => {
                if let Some(since) = p.gap_since[c].take() {
                    p.gaps.push(now.saturating_duration_since(since));
                }
                if n == 1 {
                    p.max_holders = p.max_holders.max(1);
                    if p.last_holder[c] != Some(h[0]) {
                        if p.last_holder[c].is_some() {
                            p.handoffs[c] = p.handoffs[c].saturating_add(1);
                        }
                        p.last_holder[c] = Some(h[0]);
                    }
                }
            }
        }
    }

    /// Reads every live node's `held()` once and applies what changed.
    fn read_all(&mut self) {
        let now = Instant::now();
        for s in 0..self.slots.len() {
            if !self.slots[s].live {
                continue;
            }
            let new = self.slots[s].rx.borrow().clone();
            if Arc::ptr_eq(&new, &self.slots[s].seen) {
                continue;
            }
            let old = std::mem::replace(&mut self.slots[s].seen, Arc::clone(&new));
            let slot = s as u16;
            let mut a = old.leases.keys().peekable();
            let mut b = new.leases.keys().peekable();
            loop {
                let (added, removed) = match (a.peek(), b.peek()) {
                    (None, None) => break,
                    (Some(_), None) => (None, a.next()),
                    (None, Some(_)) => (b.next(), None),
                    (Some(x), Some(y)) => match x.cmp(y) {
                        std::cmp::Ordering::Less => (None, a.next()),
                        std::cmp::Ordering::Greater => (b.next(), None),
                        std::cmp::Ordering::Equal => {
                            a.next();
                            b.next();
                            continue;
                        }
                    },
                };
                if let Some(c) = removed.and_then(|k| self.index.get(k).copied()) {
                    self.change(c, now, |h| h.retain(|x| *x != slot));
                }
                if let Some(c) = added.and_then(|k| self.index.get(k).copied()) {
                    self.change(c, now, |h| h.push(slot));
                    if self.holders[c].len() > 1 {
                        let key = &self.keys[c];
                        let tokens = self.holders[c]
                            .iter()
                            .filter_map(|h| {
                                let t = self.slots[usize::from(*h)].seen.leases.get(key)?;
                                Some((*h, *t))
                            })
                            .collect();
                        self.suspects.push((c, tokens));
                    }
                }
            }
        }
    }

    /// Reads every node; cameras seen with several holders are confirmed by a second read of
    /// every node (see the module docs).
    fn sync(&mut self) {
        self.read_all();
        while !self.suspects.is_empty() {
            let suspects = std::mem::take(&mut self.suspects);
            self.read_all();
            for (c, tokens) in suspects {
                let key = &self.keys[c];
                let still = tokens
                    .iter()
                    .filter(|(s, t)| {
                        let slot = &self.slots[usize::from(*s)];
                        slot.live && slot.seen.leases.get(key) == Some(t)
                    })
                    .count();
                if still > 1 {
                    let ids: Vec<&str> = tokens
                        .iter()
                        .map(|(s, _)| self.slots[usize::from(*s)].id.as_str())
                        .collect();
                    eprintln!("TWO HOLDERS: {key} held by {ids:?} at once");
                    self.phase.max_holders = self.phase.max_holders.max(still);
                }
            }
        }
    }

    /// Follows the nodes until `deadline`.
    async fn watch_until(&mut self, deadline: Instant) {
        loop {
            self.sync();
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                () = self.notify.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Follows the nodes until every camera is held by its owner alone; `None` after `limit`.
    async fn wait_settled(&mut self, t0: Instant, limit: Duration, what: &str) -> Option<Duration> {
        let deadline = t0 + limit;
        let mut next_progress = Instant::now() + Duration::from_secs(5);
        loop {
            self.sync();
            let now = Instant::now();
            if self.bad == 0 {
                return Some(now - t0);
            }
            if now >= deadline {
                eprintln!(
                    "{what}: NOT settled after {} s: {}",
                    limit.as_secs(),
                    self.diagnose()
                );
                return None;
            }
            if now >= next_progress {
                eprintln!(
                    "{what}: {:.0} s: {}",
                    (now - t0).as_secs_f64(),
                    self.diagnose()
                );
                self.show_unsettled(3).await;
                next_progress = now + Duration::from_secs(5);
            }
            tokio::select! {
                () = self.notify.notified() => {}
                () = sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// A few cameras not yet on their owner: who holds them here and in NATS.
    async fn show_unsettled(&self, limit: usize) {
        let Some(leases) = &self.leases else { return };
        let unsettled = (0..self.keys.len()).filter(|c| !self.ok(*c)).take(limit);
        for c in unsettled {
            let key = &self.keys[c];
            let name = |s: &u16| self.slots[usize::from(*s)].id.clone();
            let holders: Vec<String> = self.holders[c].iter().map(name).collect();
            let owner = self.desired[c].as_ref().map(name);
            let in_nats = match timeout(Duration::from_secs(2), leases.entry(key.as_str())).await {
                Ok(Ok(Some(e))) => {
                    let now_ns = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as i128);
                    format!(
                        "{:?} {:?} at revision {}, written {} ms ago",
                        e.operation,
                        String::from_utf8_lossy(&e.value),
                        e.revision,
                        (now_ns - e.created.unix_timestamp_nanos()) / 1_000_000
                    )
                }
                Ok(Ok(None)) => "no entry".to_owned(),
                Ok(Err(e)) => format!("cannot read: {e}"),
                Err(_) => "cannot read: timed out".to_owned(),
            };
            eprintln!("  {key}: held by {holders:?}, owner {owner:?}; in NATS: {in_nats}");
        }
    }

    /// How far from settled: cameras without a holder, with the wrong one, with several.
    fn diagnose(&self) -> String {
        let (mut none, mut wrong, mut several) = (0, 0, 0);
        for (c, h) in self.holders.iter().enumerate() {
            match h.len() {
                0 => none += 1,
                1 if Some(h[0]) != self.desired[c] => wrong += 1,
                1 => {}
                _ => several += 1,
            }
        }
        let counts: Vec<usize> = self.live_slots().map(|s| self.held_count(s)).collect();
        format!(
            "{} of {} cameras not settled ({none} unheld, {wrong} on the wrong node, {several} \
             on several); per live node held min {} max {}",
            self.bad,
            self.keys.len(),
            counts.iter().min().unwrap_or(&0),
            counts.iter().max().unwrap_or(&0)
        )
    }

    fn phase_figures(
        &self,
        t0: Instant,
        settled: Option<Duration>,
        expected: &[bool],
    ) -> PhaseFigures {
        let p = &self.phase;
        let n = self.keys.len();
        let final_holder = |c: usize| match &self.holders[c][..] {
            [h] => Some(*h),
            _ => None,
        };
        let moved = (0..n)
            .filter(|c| p.initial[*c].is_some() && final_holder(*c) != p.initial[*c])
            .count();
        let is_expected = |c: usize| expected.get(c).copied().unwrap_or(false);
        let expected_count = (0..n).filter(|c| is_expected(*c)).count();
        let unnecessary: usize = (0..n)
            .map(|c| {
                if is_expected(c) {
                    // The first handoff of a camera that had a holder is the move itself; a
                    // camera nobody held (at start-up) should just be taken, with no handoff.
                    let needed = u16::from(p.initial[c].is_some());
                    usize::from(p.handoffs[c].saturating_sub(needed))
                } else {
                    usize::from(p.disturbed[c])
                }
            })
            .sum();
        let handoffs: usize = p.handoffs.iter().map(|h| usize::from(*h)).sum();
        let mut gaps: Vec<f64> = p.gaps.iter().map(|g| g.as_secs_f64() * 1e3).collect();
        gaps.sort_by(f64::total_cmp);
        let held: Vec<usize> = self.live_slots().map(|s| self.held_count(s)).collect();
        PhaseFigures {
            settled_ms: settled.map(|d| d.as_secs_f64() * 1e3),
            elapsed_ms: t0.elapsed().as_secs_f64() * 1e3,
            node: None,
            moved,
            expected: expected_count,
            unnecessary,
            handoffs,
            max_holders: p.max_holders,
            gap_p50_ms: percentile(&gaps, 0.5),
            gap_max_ms: gaps.last().copied(),
            live_nodes: held.len(),
            held_min: held.iter().copied().min().unwrap_or(0),
            held_max: held.iter().copied().max().unwrap_or(0),
        }
    }
}

/// The figures of one phase.
#[derive(Debug)]
struct PhaseFigures {
    settled_ms: Option<f64>,
    elapsed_ms: f64,
    /// The node that died.
    node: Option<String>,
    moved: usize,
    expected: usize,
    unnecessary: usize,
    handoffs: usize,
    max_holders: usize,
    gap_p50_ms: Option<f64>,
    gap_max_ms: Option<f64>,
    live_nodes: usize,
    held_min: usize,
    held_max: usize,
}

impl PhaseFigures {
    fn summary(&self) -> String {
        format!(
            "{}; moved {} (expected {}), unnecessary {}, handoffs {}, max holders {}, longest \
             without holder {}; {} live nodes hold {}..{} each",
            match self.settled_ms {
                Some(ms) => format!("settled in {:.1} s", ms / 1e3),
                None => format!("NOT settled after {:.0} s", self.elapsed_ms / 1e3),
            },
            self.moved,
            self.expected,
            self.unnecessary,
            self.handoffs,
            self.max_holders,
            self.gap_max_ms
                .map_or("-".into(), |ms| format!("{:.1} s", ms / 1e3)),
            self.live_nodes,
            self.held_min,
            self.held_max
        )
    }

    fn json(&self) -> Value {
        json!({
            "settled_ms": self.settled_ms.map(round1), "elapsed_ms": round1(self.elapsed_ms),
            "node": self.node, "moved": self.moved, "expected_moves": self.expected,
            "unnecessary_moves": self.unnecessary, "handoffs": self.handoffs,
            "max_holders": self.max_holders, "gap_p50_ms": self.gap_p50_ms.map(round1),
            "gap_max_ms": self.gap_max_ms.map(round1), "live_nodes": self.live_nodes,
            "held_min": self.held_min, "held_max": self.held_max,
        })
    }
}

#[derive(Debug)]
struct Steady {
    secs: f64,
    lease_writes_per_s: f64,
    heartbeats_per_s: f64,
    expected_renewals_per_s: f64,
    live_nodes: usize,
    nats_cpu_pct: Option<f64>,
    sim_cpu_pct: Option<f64>,
    cameras_disturbed: usize,
    max_holders: usize,
}

#[derive(Debug)]
struct Probe {
    tasks: usize,
    conns: usize,
    secs: f64,
    ops: u64,
    ops_per_s: f64,
    errors: u64,
    p50_ms: f64,
    p99_ms: f64,
    nats_cpu_pct: Option<f64>,
    sim_cpu_pct: Option<f64>,
}

/// JetStream requests per second by kind, from a wildcard subscription.
#[derive(Debug, Default)]
struct Tap {
    secs: f64,
    counts: BTreeMap<&'static str, u64>,
}

impl Tap {
    fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// Counts what the nodes ask of JetStream for `window`: key-value writes on `$KV.>` (by
/// bucket and kind) and API requests on `$JS.API.>` (by kind and bucket).
async fn tap(client: &async_nats::Client, prefix: &str, window: Duration) -> anyhow::Result<Tap> {
    let mut kv_writes = client
        .subscribe("$KV.>")
        .await
        .context("subscribing to $KV.>")?;
    let mut api = client
        .subscribe("$JS.API.>")
        .await
        .context("subscribing to $JS.API.>")?;
    client.flush().await.context("flushing the subscriptions")?;
    let leases = format!("$KV.{prefix}-leases.");
    let nodes = format!("$KV.{prefix}-nodes.");
    let leases_stream = format!("KV_{prefix}-leases");
    let nodes_stream = format!("KV_{prefix}-nodes");
    let mut tap = Tap::default();
    let t0 = Instant::now();
    let deadline = t0 + window;
    loop {
        let msg = tokio::select! {
            m = kv_writes.next() => m,
            m = api.next() => m,
            () = tokio::time::sleep_until(deadline) => break,
        };
        let Some(msg) = msg else {
            bail!("the subscription ended (NATS connection closed?)");
        };
        let subject = msg.subject.as_str();
        let header = |name: &str| {
            msg.headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        };
        let kind: &'static str = if subject.starts_with(&leases) {
            match (
                header("KV-Operation").as_deref(),
                header("Nats-Expected-Last-Subject-Sequence").as_deref(),
            ) {
                (Some("DEL"), _) => "lease release (delete)",
                (_, Some("0")) => "lease take (create)",
                _ => "lease renew or retake (update)",
            }
        } else if subject.starts_with(&nodes) {
            match header("KV-Operation").as_deref() {
                Some("DEL") | Some("PURGE") => "node leave (delete)",
                _ => "node heartbeat (put)",
            }
        } else if let Some(rest) = subject.strip_prefix("$JS.API.") {
            let bucket = if rest.contains(&nodes_stream) {
                "nodes"
            } else if rest.contains(&leases_stream) {
                "leases"
            } else {
                "other"
            };
            match (
                rest.split('.').next().unwrap_or(""),
                rest.split('.').nth(1),
                bucket,
            ) {
                ("DIRECT", Some("GET"), "nodes") => "get node entry (direct get)",
                ("DIRECT", Some("GET"), "leases") => "get lease entry (direct get)",
                ("STREAM", Some("INFO"), "nodes") => "list nodes (stream info)",
                ("STREAM", Some("INFO"), _) => "stream info, other",
                ("CONSUMER", _, _) => "consumer (node watch)",
                _ => "other JetStream API",
            }
        } else {
            "other"
        };
        *tap.counts.entry(kind).or_default() += 1;
    }
    tap.secs = t0.elapsed().as_secs_f64();
    let _ = kv_writes.unsubscribe().await;
    let _ = api.unsubscribe().await;
    Ok(tap)
}

/// The saturation probe (phase 1): `update` calls on distinct keys from a pool of tasks.
async fn probe(
    args: &Args,
    url: &str,
    js: &jetstream::Context,
    prefix: &str,
    nats_pid: Option<u32>,
) -> anyhow::Result<Probe> {
    let bucket = format!("{prefix}-probe");
    // Configured as xl-cluster configures its lease bucket.
    js.create_key_value(kv::Config {
        bucket: bucket.clone(),
        history: 1,
        max_age: args.ttl(),
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .with_context(|| format!("creating bucket {bucket}"))?;
    let mut stores = Vec::new();
    for _ in 0..args.probe_conns.max(1) {
        let client = async_nats::connect(url)
            .await
            .with_context(|| format!("connecting to NATS at {url}"))?;
        let mut js = jetstream::new(client);
        js.set_timeout(Duration::from_secs(10));
        stores.push(
            js.get_key_value(bucket.as_str())
                .await
                .with_context(|| format!("opening bucket {bucket}"))?,
        );
    }
    let tasks = args.probe_tasks.max(1);
    let t_start = Instant::now();
    let warm_until = t_start + Duration::from_secs(1);
    let until = warm_until + Duration::from_secs(args.probe_secs);
    let keys = args.cameras.max(tasks);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = stores[t % stores.len()].clone();
            tokio::spawn(async move {
                let mut keys: Vec<(String, u64)> = (t..keys)
                    .step_by(tasks)
                    .map(|k| (format!("camera.cam-{k:05}"), 0))
                    .collect();
                let mut latencies_us: Vec<u32> = Vec::new();
                let mut errors = 0u64;
                'run: loop {
                    for (key, revision) in keys.iter_mut() {
                        let sent = Instant::now();
                        if sent >= until {
                            break 'run;
                        }
                        let update = store.update(key.as_str(), "probe".into(), *revision);
                        match timeout(Duration::from_secs(5), update).await {
                            Ok(Ok(r)) => {
                                *revision = r;
                                if sent >= warm_until {
                                    let us = sent.elapsed().as_micros();
                                    latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                                }
                            }
                            Ok(Err(_)) | Err(_) => {
                                errors += 1;
                                // Expired or unknown: start over from what the server has.
                                *revision = match store.entry(key.as_str()).await {
                                    Ok(Some(e)) if e.operation == kv::Operation::Put => e.revision,
                                    _ => 0,
                                };
                            }
                        }
                    }
                }
                (latencies_us, errors)
            })
        })
        .collect();
    sleep(warm_until.saturating_duration_since(Instant::now())).await;
    let cpu = CpuMeter::start(nats_pid);
    let t0 = Instant::now();
    let mut all: Vec<u32> = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (l, e) = h.await.context("a probe task panicked")?;
        all.extend(l);
        errors += e;
    }
    let secs = t0.elapsed().as_secs_f64();
    let (nats_cpu, sim_cpu) = cpu.pct();
    if let Err(e) = js.delete_key_value(bucket.as_str()).await {
        eprintln!("probe: could not delete bucket {bucket}: {e}");
    }
    if all.is_empty() {
        bail!("no update succeeded ({errors} errors)");
    }
    all.sort_unstable();
    let ms = |q: f64| f64::from(all[((all.len() - 1) as f64 * q) as usize]) / 1e3;
    Ok(Probe {
        tasks,
        conns: stores.len(),
        secs,
        ops: all.len() as u64,
        ops_per_s: all.len() as f64 / secs,
        errors,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        nats_cpu_pct: nats_cpu,
        sim_cpu_pct: sim_cpu,
    })
}

/// The stream's last sequence: one per write (put, update, delete) it ever stored.
async fn last_seq(js: &jetstream::Context, stream: &str) -> anyhow::Result<u64> {
    let stream_handle = js
        .get_stream(stream)
        .await
        .with_context(|| format!("opening stream {stream}"))?;
    let info = stream_handle
        .get_info()
        .await
        .with_context(|| format!("reading stream {stream}'s info"))?;
    Ok(info.state.last_sequence)
}

/// CPU time of the nats-server process and of this one over a window.
struct CpuMeter {
    nats_pid: Option<u32>,
    nats0: Option<Duration>,
    sim0: Option<Duration>,
    t0: Instant,
}

impl CpuMeter {
    fn start(nats_pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            nats_pid,
            nats0: nats_pid.and_then(|p| proc_cpu(&format!("/proc/{p}/stat"))),
            sim0: proc_cpu("/proc/self/stat"),
            t0: Instant::now(),
        }
    }

    /// (nats-server, this process) in percent of one core since `start`.
    fn pct(&self) -> (Option<f64>, Option<f64>) {
        let secs = self.t0.elapsed().as_secs_f64();
        let pct = |a: Option<Duration>, b: Option<Duration>| {
            Some((b?.saturating_sub(a?)).as_secs_f64() / secs * 100.0)
        };
        let nats1 = self
            .nats_pid
            .and_then(|p| proc_cpu(&format!("/proc/{p}/stat")));
        (
            pct(self.nats0, nats1),
            pct(self.sim0, proc_cpu("/proc/self/stat")),
        )
    }
}

/// User + system CPU time from a `/proc/PID/stat` file (USER_HZ = 100 on Linux).
fn proc_cpu(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // After the command name, which is in parentheses and may contain spaces.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[((sorted.len() - 1) as f64 * q) as usize])
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Everything measured, printed as a table and one JSON line.
struct Report {
    probe: Option<Probe>,
    settle: Option<PhaseFigures>,
    die: Option<PhaseFigures>,
    join: Option<PhaseFigures>,
    steady: Option<Steady>,
    tap: Option<Tap>,
    error: Option<String>,
    weights: String,
}

impl Report {
    fn new(args: &Args) -> Report {
        let heavy = (0..args.nodes + args.join)
            .filter(|i| args.weight(*i) == 200)
            .count();
        Report {
            probe: None,
            settle: None,
            die: None,
            join: None,
            steady: None,
            tap: None,
            error: None,
            weights: if heavy == 0 {
                "all 100".into()
            } else {
                format!(
                    "{heavy} of {} nodes 200, the rest 100",
                    args.nodes + args.join
                )
            },
        }
    }

    fn table(&self, args: &Args) -> String {
        let mut t = String::new();
        let ttl = args.ttl().as_secs_f64();
        let renew = args.renew().as_secs_f64();
        let ceiling = self.probe.as_ref().map(|p| p.ops_per_s);
        let _ = writeln!(
            t,
            "\n{} cameras on {} nodes (+{} joining), weights {}, lease ttl {} s, renew every {} ms\n",
            args.cameras, args.nodes, args.join, self.weights, args.ttl_secs, args.renew_ms
        );
        let _ = writeln!(t, "| figure | value | ceiling or peer | ratio |");
        let _ = writeln!(t, "|---|---:|---:|---:|");
        let mut row = |fig: String, val: String, peer: String, ratio: String| {
            let _ = writeln!(t, "| {fig} | {val} | {peer} | {ratio} |");
        };
        let secs = |ms: Option<f64>| {
            ms.map_or("not settled".to_owned(), |ms| format!("{:.1} s", ms / 1e3))
        };
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => String::new(),
        };
        if let Some(p) = &self.probe {
            row(
                format!(
                    "KV update ceiling ({} tasks on {} connections, {:.0} s)",
                    p.tasks, p.conns, p.secs
                ),
                format!("{:.0} updates/s", p.ops_per_s),
                format!("p50 {:.2} ms, p99 {:.2} ms", p.p50_ms, p.p99_ms),
                String::new(),
            );
        }
        if let Some(s) = &self.settle {
            let floor = ceiling.map_or(String::new(), |c| {
                format!(
                    "; {:.2} s to write every lease at the ceiling",
                    args.cameras as f64 / c
                )
            });
            row(
                format!(
                    "settle: {} nodes start, every camera on its owner",
                    args.nodes
                ),
                secs(s.settled_ms),
                format!("{:.1} s (2 x renew){floor}", 2.0 * renew),
                ratio(s.settled_ms.map(|m| m / 1e3), Some(2.0 * renew)),
            );
            row(
                "settle: handoffs on the way (a node took a camera, then gave it up)".into(),
                s.handoffs.to_string(),
                "0".into(),
                String::new(),
            );
        }
        if let Some(d) = &self.die {
            let bound = ttl + 0.3 + renew;
            row(
                format!(
                    "one node dies ({}, held {}): every camera on its owner again",
                    d.node.as_deref().unwrap_or("?"),
                    d.expected
                ),
                secs(d.settled_ms),
                format!("{bound:.1} s (ttl + 0.3 s expiry + renew)"),
                ratio(d.settled_ms.map(|m| m / 1e3), Some(bound)),
            );
            row(
                "one node dies: cameras moved".into(),
                d.moved.to_string(),
                format!("{} (the dead node's)", d.expected),
                ratio(Some(d.moved as f64), Some(d.expected as f64)),
            );
            row(
                "one node dies: unnecessary moves".into(),
                d.unnecessary.to_string(),
                "0".into(),
                String::new(),
            );
            row(
                "one node dies: most holders of one camera at once".into(),
                d.max_holders.to_string(),
                "1".into(),
                String::new(),
            );
            row(
                "one node dies: a moved camera without holder, p50 / max".into(),
                format!(
                    "{} / {}",
                    d.gap_p50_ms
                        .map_or("-".into(), |g| format!("{:.1} s", g / 1e3)),
                    d.gap_max_ms
                        .map_or("-".into(), |g| format!("{:.1} s", g / 1e3))
                ),
                format!("{:.1} s (bound above)", ttl + 0.3 + renew),
                ratio(d.gap_max_ms.map(|g| g / 1e3), Some(ttl + 0.3 + renew)),
            );
        }
        if let Some(j) = &self.join {
            row(
                format!("{} nodes join: every camera on its owner", args.join),
                secs(j.settled_ms),
                format!("{:.1} s (2 x renew: release, then take)", 2.0 * renew),
                ratio(j.settled_ms.map(|m| m / 1e3), Some(2.0 * renew)),
            );
            row(
                format!("{} nodes join: cameras moved", args.join),
                j.moved.to_string(),
                format!("{} (owner() changed)", j.expected),
                ratio(Some(j.moved as f64), Some(j.expected as f64)),
            );
            row(
                format!("{} nodes join: unnecessary moves", args.join),
                j.unnecessary.to_string(),
                "0".into(),
                String::new(),
            );
            row(
                format!(
                    "{} nodes join: most holders of one camera at once",
                    args.join
                ),
                j.max_holders.to_string(),
                "1".into(),
                String::new(),
            );
            row(
                format!(
                    "{} nodes join: a moved camera without holder, p50 / max",
                    args.join
                ),
                format!(
                    "{} / {}",
                    j.gap_p50_ms
                        .map_or("-".into(), |g| format!("{:.2} s", g / 1e3)),
                    j.gap_max_ms
                        .map_or("-".into(), |g| format!("{:.2} s", g / 1e3))
                ),
                String::new(),
                String::new(),
            );
        }
        if let Some(s) = &self.steady {
            row(
                format!(
                    "steady ({} nodes, {:.0} s): lease writes stored",
                    s.live_nodes, s.secs
                ),
                format!("{:.0}/s", s.lease_writes_per_s),
                format!(
                    "{:.0}/s expected (cameras / renew); ceiling {}",
                    s.expected_renewals_per_s,
                    ceiling.map_or("-".into(), |c| format!("{c:.0}/s"))
                ),
                ratio(Some(s.lease_writes_per_s), ceiling),
            );
            row(
                "steady: heartbeats stored".into(),
                format!("{:.1}/s", s.heartbeats_per_s),
                format!("{:.1}/s (nodes / renew)", s.live_nodes as f64 / renew),
                String::new(),
            );
            row(
                "steady: nats-server CPU".into(),
                s.nats_cpu_pct
                    .map_or("-".into(), |c| format!("{c:.0}% of a core")),
                self.probe
                    .as_ref()
                    .and_then(|p| p.nats_cpu_pct)
                    .map_or(String::new(), |c| format!("{c:.0}% at the ceiling")),
                ratio(
                    s.nats_cpu_pct,
                    self.probe.as_ref().and_then(|p| p.nats_cpu_pct),
                ),
            );
            row(
                format!(
                    "steady: this process's CPU ({} simulated nodes)",
                    s.live_nodes
                ),
                s.sim_cpu_pct
                    .map_or("-".into(), |c| format!("{c:.0}% of a core")),
                format!(
                    "{}% (all cores)",
                    100 * std::thread::available_parallelism().map_or(1, |n| n.get())
                ),
                String::new(),
            );
            row(
                "steady: cameras that changed holder / most holders".into(),
                format!("{} / {}", s.cameras_disturbed, s.max_holders),
                "0 / 1".into(),
                String::new(),
            );
        }
        if let Some(tap) = &self.tap {
            let total = tap.total() as f64 / tap.secs;
            row(
                format!("steady: all JetStream requests ({:.0} s count)", tap.secs),
                format!("{total:.0}/s"),
                ceiling.map_or(String::new(), |c| format!("ceiling {c:.0} updates/s")),
                ratio(Some(total), ceiling),
            );
            for (kind, n) in &tap.counts {
                row(
                    format!("- {kind}"),
                    format!("{:.0}/s", *n as f64 / tap.secs),
                    String::new(),
                    String::new(),
                );
            }
        }
        t
    }

    fn json(&self, args: &Args) -> Value {
        json!({
            "cameras": args.cameras, "nodes": args.nodes, "join": args.join,
            "ttl_secs": args.ttl_secs, "renew_ms": args.renew_ms, "weights": self.weights,
            "probe": self.probe.as_ref().map(|p| json!({
                "tasks": p.tasks, "conns": p.conns, "secs": round1(p.secs), "updates": p.ops,
                "updates_per_s": round1(p.ops_per_s), "errors": p.errors,
                "p50_ms": p.p50_ms, "p99_ms": p.p99_ms,
                "nats_cpu_pct": p.nats_cpu_pct.map(round1), "sim_cpu_pct": p.sim_cpu_pct.map(round1),
            })),
            "settle": self.settle.as_ref().map(PhaseFigures::json),
            "die": self.die.as_ref().map(PhaseFigures::json),
            "join_phase": self.join.as_ref().map(PhaseFigures::json),
            "steady": self.steady.as_ref().map(|s| json!({
                "secs": round1(s.secs), "live_nodes": s.live_nodes,
                "lease_writes_per_s": round1(s.lease_writes_per_s),
                "heartbeats_per_s": round1(s.heartbeats_per_s),
                "expected_renewals_per_s": round1(s.expected_renewals_per_s),
                "nats_cpu_pct": s.nats_cpu_pct.map(round1), "sim_cpu_pct": s.sim_cpu_pct.map(round1),
                "cameras_disturbed": s.cameras_disturbed, "max_holders": s.max_holders,
            })),
            "requests_per_s": self.tap.as_ref().map(|t| {
                let per_s: serde_json::Map<String, Value> = t.counts.iter()
                    .map(|(k, n)| ((*k).to_owned(), json!(round1(*n as f64 / t.secs))))
                    .collect();
                json!({ "secs": round1(t.secs), "total": round1(t.total() as f64 / t.secs), "by_kind": per_s })
            }),
            "error": self.error,
        })
    }
}
