//! The alert pipeline: stored gate events, vision events and health changes go through the
//! rules engine; what it decides is committed to the store together with the outbox and the
//! input cursor (one transaction), and only then published.
//!
//! Exactly once from gate event to alert: gate events are durable before the broker gets its
//! PUBACK; the processor reads them from the store after its cursor, and a batch's alerts, history,
//! outbox entries and the new cursor commit together. A crash before the commit replays the
//! batch into an engine restored from the committed alerts; a crash after it finds the batch
//! done. Vision events and health changes are not durable inputs (a restart starts them afresh).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use xl_core::alert::{AlertAction, By};
use xl_core::camera::{CameraRegistry, CameraStatus};
use xl_core::clock::Clocks;
use xl_core::gate_status::GateRegistry;
use xl_core::topology::Topology;
use xl_core::{Alert, AlertId, CameraId, GateId};
use xl_gates::StoredGateEvent;
use xl_rules::{Decision, Engine, GateInput, Input, RulesConfig, ZoneInput, ZoneWhat};
use xl_store::{Change, Commit, NewSnapshot, NewVisionEvent, Store};
use xl_vision::{ObjectClass, VisionEvent};

pub mod evidence;

use crate::evidence::{EvidenceConfig, Rings};

/// Why the processor could not start, or could not keep a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("bad [[rules]]: {0}")]
    Rules(#[from] xl_rules::RulesError),
    #[error(transparent)]
    Store(#[from] xl_store::StoreError),
    #[error("snapshot {path}: {source}")]
    SnapshotFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot encoding: {0}")]
    Encode(#[from] image::ImageError),
    #[error("snapshot task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The rules processor's cursor over stored gate events on a single hub.
pub const GATE_CURSOR: &str = xl_store::GATE_EVENTS_READER;

/// How many shards a district's gate work is cut into. Each is leased to one node and reads
/// the stored gate events with its own cursor ([`xl_store::gate_shard_reader`]), taking the
/// events and the health of its gates only. Fixed: another count would move gates between
/// cursors (and a gate's events would be read twice or never).
pub const GATE_SHARDS: u32 = 16;

/// The gate shard of `gate`: FNV-1a of its id, the same on every node and every version.
pub fn gate_shard(gate: &GateId) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in gate.as_str().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % GATE_SHARDS
}

/// Gate events read from the store per transaction.
const BATCH: u32 = 256;

/// The most recent denials given back to the engine per lane after a restart or a takeover
/// (the engine keeps only the rule's `count` per gate; a flood beyond this is no burst that
/// needs its earliest denials).
const DENIALS_RESTORED: u32 = 10_000;

/// A person's action on an alert (through the API, committed), so the engine applies it to
/// its copy too: it stops escalating an alert acknowledged or escalated, and forgets one
/// resolved.
#[derive(Debug, Clone)]
pub struct Acted {
    /// The alert as stored after the action.
    pub alert: Alert,
    pub action: AlertAction,
    pub at: Timestamp,
}

/// The running pipeline.
pub struct Alerts {
    store: Store,
    committed: watch::Sender<i64>,
    acted: mpsc::UnboundedSender<Acted>,
    clocks: Arc<dyn Clocks>,
}

impl Alerts {
    /// The last outbox seq committed: publishers and SSE streams wait on it.
    pub fn committed(&self) -> watch::Receiver<i64> {
        self.committed.subscribe()
    }

    /// A commit made elsewhere (another node of the district): publishers and SSE streams
    /// waiting on [`Alerts::committed`] read up to `seq`.
    pub fn observe_committed(&self, seq: i64) {
        self.committed.send_if_modified(|s| {
            let newer = seq > *s;
            *s = (*s).max(seq);
            newer
        });
    }

    /// The hub's clock, as the processor reads it.
    pub fn clocks(&self) -> &Arc<dyn Clocks> {
        &self.clocks
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A person acknowledges, escalates, resolves or notes an alert; `audit` is written in the
    /// same transaction.
    pub async fn act(
        &self,
        id: &AlertId,
        action: AlertAction,
        actor: &str,
        note: Option<&str>,
        audit: &xl_store::NewAudit,
    ) -> Result<xl_core::OutboxEntry, xl_store::StoreError> {
        let entry = self
            .store
            .act_audited(id, action, actor, note, self.clocks.realtime(), Some(audit))
            .await?;
        self.committed.send_if_modified(|s| {
            let newer = entry.seq > *s;
            *s = (*s).max(entry.seq);
            newer
        });
        let _ = self.acted.send(Acted {
            alert: entry.alert.clone(),
            action: entry.change,
            at: entry.at,
        });
        Ok(entry)
    }
}

/// Inputs of the processor.
pub struct Sources {
    /// Stored gate events as they become durable (a wake-up: the events are read from the store).
    pub gate_events: Option<broadcast::Receiver<Arc<StoredGateEvent>>>,
    pub vision: Option<broadcast::Receiver<VisionEvent>>,
    pub cameras: Arc<CameraRegistry>,
    pub gates: Arc<GateRegistry>,
    /// Other inputs the hub produces itself (a camera's recording stopped or runs again).
    pub inputs: Option<mpsc::UnboundedReceiver<Input>>,
    /// On a node of a district: the shared work this node holds. `None`: a single hub,
    /// which does all of it.
    pub shard: Option<watch::Receiver<Shard>>,
}

/// What a node of a district holds of the alert work: the rules are sharded by source.
/// Vision events and camera health come only from the cameras the node runs (a camera's
/// lease is its shard); the gate work (stored gate events, gate health) is cut into
/// [`GATE_SHARDS`] shards by gate, each one node's at a time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shard {
    /// The gate shards this node holds, each with its lease as the fence its commits carry.
    pub gates: BTreeMap<u32, xl_store::Fence>,
    /// Bumped whenever the node takes over cameras: the engine reloads the committed alerts
    /// (the moved cameras' open alerts included), so their state moves with them.
    pub taken: u64,
}

/// What the processor works with.
pub struct Setup {
    pub store: Store,
    pub rules: RulesConfig,
    pub evidence: EvidenceConfig,
    /// The frame rings snapshots come from (none: alerts without snapshots).
    pub rings: Option<Arc<Rings>>,
    /// Where snapshot files go (`<data_dir>/snapshots`).
    pub snapshot_dir: PathBuf,
    /// The running topology: a camera's community, the zone outlines drawn on snapshots.
    pub topology: watch::Receiver<Arc<Topology>>,
    /// The processor's tick (escalation deadlines, debounced offline conditions, health
    /// changes) and people's actions read the time here (see [`xl_core::clock`]).
    pub clocks: Arc<dyn Clocks>,
    /// How long an alert's clip stays held after the alert is resolved (every alert with a
    /// camera holds its camera's recording from its rule's `clip_pre_secs` before it was raised
    /// to `clip_post_secs` after, from when it is raised).
    pub clip_kept_after: SignedDuration,
}

/// Starts the processor task.
pub async fn start(
    setup: Setup,
    sources: Sources,
    shutdown: CancellationToken,
) -> Result<(Alerts, tokio::task::JoinHandle<()>), AlertsError> {
    let Setup {
        store,
        rules,
        evidence,
        rings,
        snapshot_dir,
        topology,
        clocks,
        clip_kept_after,
    } = setup;
    let engine = Engine::new(&rules)?;
    let clips = rules
        .resolve()?
        .into_iter()
        .map(|r| (r.kind, (r.clip_pre_secs, r.clip_post_secs)))
        .collect();
    let last = store.last_outbox_seq().await?;
    let (committed, _) = watch::channel(last);
    let (acted_tx, acted_rx) = mpsc::unbounded_channel();
    let mut p = Processor {
        store: store.clone(),
        rules,
        engine,
        active: HashMap::new(),
        // A single hub reads every gate's events; a node of a district the shards it takes.
        lanes: if sources.shard.is_none() {
            vec![Lane {
                shard: None,
                cursor: GATE_CURSOR.to_owned(),
                at: 0,
                fence: None,
            }]
        } else {
            Vec::new()
        },
        rings,
        evidence,
        snapshot_dir,
        topology,
        skew: HashMap::new(),
        committed: committed.clone(),
        random: rand::random(),
        clocks: Arc::clone(&clocks),
        clips,
        clip_kept_after,
        shard: sources.shard.clone(),
    };
    p.restore().await?;
    let task = tokio::spawn(p.run(sources, acted_rx, shutdown));
    Ok((
        Alerts {
            store,
            committed,
            acted: acted_tx,
            clocks,
        },
        task,
    ))
}

struct Processor {
    store: Store,
    rules: RulesConfig,
    engine: Engine,
    /// Unresolved alerts as committed (the engine's decisions name them by id).
    active: HashMap<AlertId, Alert>,
    /// The readers of stored gate events this processor runs, after it fenced and restored
    /// for them.
    lanes: Vec<Lane>,
    rings: Option<Arc<Rings>>,
    evidence: EvidenceConfig,
    snapshot_dir: PathBuf,
    topology: watch::Receiver<Arc<Topology>>,
    /// Per gate, the smallest `received_at - device_time` seen lately: the device clock's skew
    /// plus the least transport delay.
    skew: HashMap<GateId, SkewEstimate>,
    committed: watch::Sender<i64>,
    random: u64,
    clocks: Arc<dyn Clocks>,
    /// Per kind, the rule's clip window: seconds before and after the alert was raised.
    clips: HashMap<xl_core::AlertKind, (u64, u64)>,
    clip_kept_after: SignedDuration,
    /// See [`Sources::shard`].
    shard: Option<watch::Receiver<Shard>>,
}

/// A reader of the stored gate events: a single hub's (every gate, unfenced) or one gate
/// shard's on a node of a district (its gates, its commits fenced by the shard's lease).
#[derive(Clone)]
struct Lane {
    /// `None`: every gate.
    shard: Option<u32>,
    /// The cursor's name in the store.
    cursor: String,
    /// The last event read (committed).
    at: i64,
    fence: Option<xl_store::Fence>,
}

impl Lane {
    fn takes(&self, gate: &GateId) -> bool {
        self.shard.is_none_or(|s| gate_shard(gate) == s)
    }
}

/// A pending commit and the snapshots to take for it.
#[derive(Default)]
struct Pending {
    changes: Vec<Change>,
    /// Alerts raised in this batch with where their evidence comes from.
    evidence: Vec<(usize, EvidenceFrom)>,
    /// A gate lane's cursor (name, value), committed with the changes.
    cursor: Option<(String, i64)>,
    /// A gate shard's fence, for a commit of its decisions on a node of a district.
    fence: Option<xl_store::Fence>,
}

#[derive(Clone)]
struct EvidenceFrom {
    camera: CameraId,
    at: Timestamp,
    boxes: bool,
    zone: Option<String>,
}

impl Processor {
    /// (Re)loads the engine's state and the gate lanes' cursors from the store.
    async fn restore(&mut self) -> Result<(), AlertsError> {
        let active = self.store.active_alerts().await?;
        self.engine = Engine::new(&self.rules)?;
        self.engine.restore(active.iter().cloned());
        self.active = active.into_iter().map(|a| (a.id.clone(), a)).collect();
        for lane in &mut self.lanes {
            lane.at = self.store.gate_reader_start(&lane.cursor).await?;
        }
        self.restore_denials().await?;
        info!(
            active = self.active.len(),
            gate_lanes = self.lanes.len(),
            "alert engine restored"
        );
        Ok(())
    }

    /// Gives the engine back the denials its lanes read within the burst window, so a burst
    /// being counted when the hub restarted, or when a gate's shard moved here, goes on.
    async fn restore_denials(&mut self) -> Result<(), AlertsError> {
        let since = self
            .clocks
            .realtime()
            .checked_sub(self.engine.denial_window())
            .unwrap_or(Timestamp::MIN);
        let kind = xl_core::GateEventKind::AccessDenied.as_str();
        for lane in self.lanes.clone() {
            let rows = self
                .store
                .gate_events_read_since(kind, since, lane.at, DENIALS_RESTORED)
                .await?;
            for row in rows.iter().filter(|r| lane.takes(&r.gate)) {
                let Ok(stored) = serde_json::from_value::<StoredGateEvent>(row.body.clone()) else {
                    continue;
                };
                let at = self.event_time(&stored);
                self.engine
                    .restore_denial(&stored.gate, &stored.community, at);
            }
        }
        Ok(())
    }

    async fn run(
        mut self,
        mut sources: Sources,
        mut acted: mpsc::UnboundedReceiver<Acted>,
        shutdown: CancellationToken,
    ) {
        let mut health = Health::default();
        // Wakes on real time and reads the injected clocks: with simulated clocks, a test
        // advances them and the next tick (within half a second) acts on the new time.
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The backlog left by a previous run.
        self.drain_gate_events().await;
        let mut shard = sources.shard.take();
        let mut taken = 0;
        if let Some(s) = shard.as_mut() {
            let now = s.borrow_and_update().clone();
            self.shard_changed(now, &mut taken).await;
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                s = shard_changed(&mut shard) => {
                    self.shard_changed(s, &mut taken).await;
                }
                r = recv_gate(&mut sources.gate_events) => {
                    if r {
                        self.drain_gate_events().await;
                    }
                }
                v = recv_vision(&mut sources.vision) => {
                    if let Some(v) = v {
                        self.vision_event(v).await;
                    }
                }
                a = acted.recv() => {
                    if let Some(a) = a {
                        self.acted(a);
                    }
                }
                i = recv_input(&mut sources.inputs) => {
                    if let Some(input) = i {
                        let mut pending = Pending::default();
                        self.decide(Some(&input), input.at(), &mut pending);
                        self.commit(pending).await;
                    }
                }
                _ = tick.tick() => {
                    // A shard whose fence could not be written is tried again.
                    if let Some(s) = &shard {
                        let now = s.borrow().clone();
                        self.shard_changed(now, &mut taken).await;
                    }
                    let now = self.clocks.realtime();
                    let inputs = health.poll(&sources, now);
                    // Gate health is gate work: decided (and fenced) in the gate's lane.
                    let (gate_inputs, inputs): (Vec<_>, Vec<_>) = inputs
                        .into_iter()
                        .partition(|i| matches!(i, Input::GateHealth { .. }));
                    for lane in self.live_lanes() {
                        let mut pending = Pending { fence: lane.fence.clone(), ..Pending::default() };
                        for input in &gate_inputs {
                            if let Input::GateHealth { gate, .. } = input
                                && lane.takes(gate)
                            {
                                self.decide(Some(input), now, &mut pending);
                            }
                        }
                        self.commit(pending).await;
                    }
                    let mut pending = Pending::default();
                    for input in &inputs {
                        self.decide(Some(input), now, &mut pending);
                    }
                    self.decide(None, now, &mut pending);
                    self.commit(pending).await;
                    // A wake-up may have been missed (lagged, or the store was down).
                    self.drain_gate_events().await;
                }
            }
        }
    }

    fn acted(&mut self, acted: Acted) {
        let Acted { alert, action, at } = acted;
        self.engine.acted(&alert.id, action, at);
        if alert.state.is_active() {
            self.active.insert(alert.id.clone(), alert);
        } else {
            self.active.remove(&alert.id);
        }
    }

    /// The gate lanes this node may work on now: all of a single hub's; on a node of a
    /// district, those whose shard it still holds at the same fence (a shard lost is left at
    /// once, before the lease's next holder could start it).
    fn live_lanes(&self) -> Vec<Lane> {
        let held = self.shard.as_ref().map(|s| s.borrow().gates.clone());
        self.lanes
            .iter()
            .filter(|l| match (&held, l.shard) {
                (None, _) => true,
                (Some(held), Some(k)) => held.get(&k) == l.fence.as_ref(),
                (Some(_), None) => false,
            })
            .cloned()
            .collect()
    }

    /// The node's share of the district changed: shards lost are left; for gate shards taken
    /// (after fencing off their previous holders) and for cameras taken over, the engine
    /// reloads what is committed and the lanes their cursors, so a moved source's open
    /// alerts go on where its last node left them.
    async fn shard_changed(&mut self, now: Shard, taken: &mut u64) {
        self.lanes
            .retain(|l| l.shard.and_then(|k| now.gates.get(&k)) == l.fence.as_ref());
        let mut new = Vec::new();
        for (&shard, fence) in &now.gates {
            if self.lanes.iter().any(|l| l.shard == Some(shard)) {
                continue;
            }
            if let Err(e) = self.store.fence(fence).await {
                warn!(shard, error = %e, "cannot take over a gate shard; trying again shortly");
                continue;
            }
            info!(
                shard,
                revision = fence.revision,
                "this node does a gate shard"
            );
            new.push(Lane {
                shard: Some(shard),
                cursor: xl_store::gate_shard_reader(shard),
                at: 0,
                fence: Some(fence.clone()),
            });
        }
        let cameras_taken = now.taken != *taken;
        *taken = now.taken;
        if new.is_empty() && !cameras_taken {
            return;
        }
        self.lanes.extend(new);
        self.lanes.sort_by_key(|l| l.shard);
        if let Err(e) = self.restore().await {
            error!(error = %e, "cannot restore the alert engine after a takeover");
        }
        self.drain_gate_events().await;
    }

    /// Processes stored gate events after each lane's cursor until none are left.
    async fn drain_gate_events(&mut self) {
        for lane in self.live_lanes() {
            self.drain_lane(lane).await;
        }
    }

    async fn drain_lane(&mut self, mut lane: Lane) {
        loop {
            let rows = match self.store.gate_events_after(lane.at, BATCH).await {
                Ok(rows) => rows,
                Err(e) => {
                    warn!(error = %e, "cannot read gate events; retrying shortly");
                    return;
                }
            };
            let Some(last) = rows.last().map(|r| r.seq) else {
                return;
            };
            let mut pending = Pending {
                cursor: Some((lane.cursor.clone(), last)),
                fence: lane.fence.clone(),
                ..Pending::default()
            };
            for row in rows.iter().filter(|r| lane.takes(&r.gate)) {
                let stored: StoredGateEvent = match serde_json::from_value(row.body.clone()) {
                    Ok(s) => s,
                    Err(e) => {
                        error!(event = %row.id, error = %e, "stored gate event unreadable; skipped");
                        continue;
                    }
                };
                let at = self.event_time(&stored);
                let input = Input::Gate(GateInput {
                    event_id: stored.id.clone(),
                    gate: stored.gate.clone(),
                    community: stored.community.clone(),
                    camera: stored.camera.clone(),
                    kind: stored.event.kind,
                    deny_reason: stored.event.deny_reason.clone(),
                    phase: stored.event.phase,
                    door: stored.event.door,
                    at,
                });
                let first = pending.changes.len();
                self.decide(Some(&input), at, &mut pending);
                if let Some(camera) = &stored.camera {
                    for i in first..pending.changes.len() {
                        if pending.changes[i].action == AlertAction::Raised {
                            pending.evidence.push((
                                i,
                                EvidenceFrom {
                                    camera: camera.clone(),
                                    at,
                                    boxes: false,
                                    zone: None,
                                },
                            ));
                        }
                    }
                }
            }
            if !self.commit(pending).await {
                return;
            }
            lane.at = last;
            if rows.len() < BATCH as usize {
                return;
            }
        }
    }

    /// When the event happened on the hub's clock: the device's time corrected by the gate's
    /// clock skew, or the receipt time.
    fn event_time(&mut self, e: &StoredGateEvent) -> Timestamp {
        let Some(device) = e.occurred_at else {
            return e.received_at;
        };
        let est = self.skew.entry(e.gate.clone()).or_default();
        est.observe(e.received_at.duration_since(device));
        let corrected = device.checked_add(est.skew()).unwrap_or(e.received_at);
        corrected.min(e.received_at)
    }

    async fn vision_event(&mut self, v: VisionEvent) {
        let camera = v.camera().clone();
        let community = {
            let topology = self.topology.borrow();
            match topology.cameras.get(&camera) {
                Some(c) => c.community.clone(),
                // removed while its frames were being analysed
                None => return,
            }
        };
        let what = match &v {
            VisionEvent::EnteredZone {
                track,
                class: ObjectClass::Person,
                ..
            } => ZoneWhat::Entered { track: track.0 },
            VisionEvent::DwellExceeded {
                track,
                dwell_ms,
                class: ObjectClass::Person,
                ..
            } => ZoneWhat::DwellExceeded {
                track: track.0,
                dwell_ms: *dwell_ms,
            },
            VisionEvent::CountOverLimit { count, limit, .. } => ZoneWhat::CountOverLimit {
                count: *count,
                limit: *limit,
            },
            _ => return,
        };
        let zone = v.zone().map(|z| z.as_str().to_owned()).unwrap_or_default();
        let at = v.at();
        let id = format!(
            "{:012x}-{:016x}",
            at.as_millisecond().max(0),
            rand::random::<u64>()
        );
        let kept = NewVisionEvent {
            id: id.clone(),
            camera: camera.clone(),
            community: community.clone(),
            kind: kind_name(&v).to_owned(),
            zone: Some(zone.clone()),
            at,
            body: serde_json::to_value(&v).unwrap_or_default(),
        };
        if let Err(e) = self.store.insert_vision_events(&[kept]).await {
            warn!(camera = %camera, error = %e, "cannot store a vision event");
        }
        let input = Input::Zone(ZoneInput {
            event_id: id,
            camera: camera.clone(),
            community,
            zone: zone.clone(),
            what,
            at,
        });
        let mut pending = Pending::default();
        self.decide(Some(&input), at, &mut pending);
        for i in 0..pending.changes.len() {
            if pending.changes[i].action == AlertAction::Raised {
                pending.evidence.push((
                    i,
                    EvidenceFrom {
                        camera: camera.clone(),
                        at,
                        boxes: true,
                        zone: Some(zone.clone()),
                    },
                ));
            }
        }
        self.commit(pending).await;
    }

    /// Runs one input (or a tick at `now`) through the engine and turns the decisions into
    /// changes.
    fn decide(&mut self, input: Option<&Input>, now: Timestamp, pending: &mut Pending) {
        let random = &mut self.random;
        let mut ids = |at: Timestamp| {
            // xorshift: ids only need to be unique, not secret
            *random ^= *random << 13;
            *random ^= *random >> 7;
            *random ^= *random << 17;
            AlertId::new(at, *random)
        };
        let decisions = match input {
            Some(i) => self.engine.handle(i, &mut ids),
            None => self.engine.tick(now, &mut ids),
        };
        for d in decisions {
            // The engine applied each action to its own copy; the hub applies it to its copy
            // of the alert the same way (the store applies it again to the stored alert).
            let change = match d {
                Decision::Raise(alert) => {
                    self.active.insert(alert.id.clone(), alert.clone());
                    Change {
                        at: alert.raised_at,
                        alert,
                        action: AlertAction::Raised,
                        actor: "system".into(),
                        note: None,
                    }
                }
                Decision::Repeat {
                    id, last_seen_at, ..
                } => {
                    let Some(a) = self.active.get_mut(&id) else {
                        warn!(alert = %id, "repeat of an alert not active; ignored");
                        continue;
                    };
                    if let Err(e) = a.apply(AlertAction::Repeated, By::Rules, last_seen_at) {
                        debug!(error = %e, "repeat ignored");
                        continue;
                    }
                    Change {
                        at: last_seen_at,
                        alert: a.clone(),
                        action: AlertAction::Repeated,
                        actor: "system".into(),
                        note: None,
                    }
                }
                Decision::Escalate { id, at } => {
                    let Some(a) = self.active.get_mut(&id) else {
                        continue;
                    };
                    if let Err(e) = a.apply(AlertAction::Escalated, By::Rules, at) {
                        debug!(error = %e, "escalation ignored");
                        continue;
                    }
                    Change {
                        at,
                        alert: a.clone(),
                        action: AlertAction::Escalated,
                        actor: "system".into(),
                        note: Some("not acknowledged in time".into()),
                    }
                }
                Decision::Resolve { id, at, reason } => {
                    let Some(mut a) = self.active.remove(&id) else {
                        continue;
                    };
                    if let Err(e) = a.apply(AlertAction::Resolved, By::Rules, at) {
                        debug!(error = %e, "resolution ignored");
                        continue;
                    }
                    Change {
                        at,
                        alert: a,
                        action: AlertAction::Resolved,
                        actor: "system".into(),
                        note: Some(reason),
                    }
                }
            };
            pending.changes.push(change);
        }
    }

    /// Takes the snapshots, commits, and tells the publishers. On failure the engine is
    /// restored from the store (its decisions were not committed) and the inputs are replayed
    /// later where they are durable (gate events). Returns whether the commit happened.
    async fn commit(&mut self, mut pending: Pending) -> bool {
        if pending.changes.is_empty() && pending.cursor.is_none() {
            return true;
        }
        let mut snapshots = Vec::new();
        for (i, from) in std::mem::take(&mut pending.evidence) {
            let alert = &mut pending.changes[i].alert;
            match self.snapshot(&alert.id, &from).await {
                Ok(Some(s)) => {
                    alert.snapshot = Some(s.id.clone());
                    if let Some(a) = self.active.get_mut(&alert.id) {
                        a.snapshot = Some(s.id.clone());
                    }
                    snapshots.push(s);
                }
                Ok(None) => {
                    debug!(alert = %alert.id, camera = %from.camera, "no frame for the snapshot")
                }
                Err(e) => {
                    warn!(alert = %alert.id, camera = %from.camera, error = %e, "snapshot failed")
                }
            }
        }
        let holds = pending
            .changes
            .iter()
            .filter(|c| c.action == AlertAction::Raised)
            .filter_map(|c| self.clip_hold(&c.alert))
            .collect();
        let commit = Commit {
            changes: pending.changes,
            snapshots,
            holds,
            cursors: pending.cursor.clone().into_iter().collect(),
            fence: pending.fence,
        };
        match self.store.commit(&commit).await {
            Ok(entries) => {
                if let Some((name, c)) = pending.cursor
                    && let Some(lane) = self.lanes.iter_mut().find(|l| l.cursor == name)
                {
                    lane.at = c;
                }
                for e in &entries {
                    info!(alert = %e.alert.id, kind = %e.alert.kind, change = %e.change, community = %e.alert.community, "alert");
                    // The store merged the change with what a person may have done meanwhile.
                    if e.alert.state.is_active() {
                        self.active.insert(e.alert.id.clone(), e.alert.clone());
                    } else {
                        self.active.remove(&e.alert.id);
                    }
                }
                if let Some(last) = entries.last() {
                    let seq = last.seq;
                    self.committed.send_if_modified(|s| {
                        let newer = seq > *s;
                        *s = (*s).max(seq);
                        newer
                    });
                }
                true
            }
            Err(e) => {
                error!(error = %e, "cannot commit alerts; will retry from the store");
                if let Err(e) = self.restore().await {
                    error!(error = %e, "cannot restore the alert engine");
                }
                false
            }
        }
    }

    /// Encodes the frame nearest to the event and writes it (synced) under the snapshot
    /// directory.
    async fn snapshot(
        &self,
        alert: &AlertId,
        from: &EvidenceFrom,
    ) -> Result<Option<NewSnapshot>, AlertsError> {
        let Some(rings) = &self.rings else {
            return Ok(None);
        };
        let Some(still) = rings.nearest(&from.camera, from.at, from.boxes) else {
            return Ok(None);
        };
        let zone = from.zone.as_ref().and_then(|z| {
            let topology = self.topology.borrow();
            let camera = topology.cameras.get(&from.camera)?;
            let zone = camera.zones.iter().find(|zone| zone.id.as_str() == z)?;
            Some(zone.polygon.clone())
        });
        let quality = self.evidence.jpeg_quality;
        let day = still.at.strftime("%Y-%m-%d").to_string();
        let rel = format!("{day}/{alert}.jpg");
        let path = self.snapshot_dir.join(&rel);
        let boxes = still.boxes.clone().unwrap_or_default();
        let taken_at = still.at;
        let jpeg = tokio::task::spawn_blocking(move || -> Result<_, AlertsError> {
            let jpeg = evidence::encode(&still, zone.as_deref(), quality)?;
            write_synced(&path, &jpeg.bytes)?;
            Ok(jpeg)
        })
        .await??;
        Ok(Some(NewSnapshot {
            id: format!("snap-{alert}"),
            camera: Some(from.camera.clone()),
            gate: None,
            alert: Some(alert.clone()),
            taken_at,
            path: rel,
            width: jpeg.width,
            height: jpeg.height,
            bytes: jpeg.bytes.len() as u64,
            has_faces: false,
            boxes: serde_json::to_value(
                boxes
                    .iter()
                    .map(|b| [b.x0, b.y0, b.x1, b.y1])
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_default(),
        }))
    }
}

fn write_synced(path: &std::path::Path, bytes: &[u8]) -> Result<(), AlertsError> {
    use std::io::Write;
    let at = |source| AlertsError::SnapshotFile {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).map_err(at)?;
    let mut f = std::fs::File::create(path).map_err(at)?;
    f.write_all(bytes).map_err(at)?;
    f.sync_data().map_err(at)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(at)?;
    Ok(())
}

fn kind_name(v: &VisionEvent) -> &'static str {
    match v {
        VisionEvent::TrackStarted { .. } => "track_started",
        VisionEvent::TrackEnded { .. } => "track_ended",
        VisionEvent::EnteredZone { .. } => "entered_zone",
        VisionEvent::LeftZone { .. } => "left_zone",
        VisionEvent::DwellExceeded { .. } => "dwell_exceeded",
        VisionEvent::CountChanged { .. } => "count_changed",
        VisionEvent::CountOverLimit { .. } => "count_over_limit",
    }
}

/// Per gate: the minimum of `received_at - device_time` over the last few events.
#[derive(Default)]
struct SkewEstimate {
    recent: std::collections::VecDeque<SignedDuration>,
}

impl SkewEstimate {
    const KEEP: usize = 32;

    fn observe(&mut self, d: SignedDuration) {
        if self.recent.len() == Self::KEEP {
            self.recent.pop_front();
        }
        self.recent.push_back(d);
    }

    fn skew(&self) -> SignedDuration {
        self.recent.iter().copied().min().unwrap_or_default()
    }
}

/// Health changes seen by polling the registries.
#[derive(Default)]
struct Health {
    cameras: HashMap<CameraId, bool>,
    gates: HashMap<GateId, bool>,
}

impl Health {
    fn poll(&mut self, s: &Sources, now: Timestamp) -> Vec<Input> {
        let mut out = Vec::new();
        let cameras = s.cameras.snapshot();
        let gates = s.gates.snapshot();
        // Cameras and gates removed while running: a camera added back later with the same id
        // starts afresh.
        let camera_ids: HashSet<&CameraId> = cameras.iter().map(|(info, _)| &info.id).collect();
        let gate_ids: HashSet<&GateId> = gates.iter().map(|(info, _)| &info.id).collect();
        self.cameras.retain(|id, _| camera_ids.contains(id));
        self.gates.retain(|id, _| gate_ids.contains(id));
        for (info, stats) in cameras {
            let online = match stats.status() {
                CameraStatus::Online => true,
                CameraStatus::Offline { .. } => false,
                CameraStatus::Connecting => continue,
            };
            if self.cameras.insert(info.id.clone(), online) != Some(online) {
                out.push(Input::CameraHealth {
                    camera: info.id.clone(),
                    community: info.community.clone(),
                    online,
                    at: now,
                });
            }
        }
        for (info, stats) in gates {
            let online = stats.is_online();
            let before = self.gates.insert(info.id.clone(), online);
            // A gate never heard from is not a transition (it may be switched off on purpose).
            if before.is_some_and(|b| b != online) || (before.is_none() && online) {
                out.push(Input::GateHealth {
                    gate: info.id.clone(),
                    community: info.community.clone(),
                    online,
                    at: now,
                });
            }
        }
        out
    }
}

/// The shard as it changed; pending forever on a single hub (or once the sender is gone).
async fn shard_changed(rx: &mut Option<watch::Receiver<Shard>>) -> Shard {
    match rx {
        Some(r) => match r.changed().await {
            Ok(()) => r.borrow_and_update().clone(),
            Err(_) => {
                *rx = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

async fn recv_gate(rx: &mut Option<broadcast::Receiver<Arc<StoredGateEvent>>>) -> bool {
    match rx {
        Some(r) => match r.recv().await {
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => true,
            Err(broadcast::error::RecvError::Closed) => {
                *rx = None;
                false
            }
        },
        None => std::future::pending().await,
    }
}

impl Processor {
    /// The alert's clip hold: its camera's recording around when it was raised, held while
    /// it is unresolved and for `clip_kept_after` after.
    fn clip_hold(&self, alert: &Alert) -> Option<xl_store::NewHold> {
        let camera = alert.camera.clone()?;
        let (pre, post) = self.clips.get(&alert.kind).copied().unwrap_or((10, 20));
        let secs = |s: u64| SignedDuration::from_secs(i64::try_from(s).unwrap_or(i64::MAX));
        Some(xl_store::NewHold {
            camera,
            from: alert.raised_at.checked_sub(secs(pre)).ok()?,
            to: alert.raised_at.checked_add(secs(post)).ok()?,
            until: None,
            reason: format!("clip of alert {} ({})", alert.id, alert.kind),
            holder: xl_store::alert_holder(&alert.id),
            keep_after: self.clip_kept_after,
        })
    }
}

async fn recv_input(rx: &mut Option<mpsc::UnboundedReceiver<Input>>) -> Option<Input> {
    match rx {
        Some(r) => {
            let got = r.recv().await;
            if got.is_none() {
                *rx = None;
            }
            got
        }
        None => std::future::pending().await,
    }
}

async fn recv_vision(rx: &mut Option<broadcast::Receiver<VisionEvent>>) -> Option<VisionEvent> {
    match rx {
        Some(r) => loop {
            match r.recv().await {
                Ok(v) => return Some(v),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(missed = n, "alert processor fell behind on vision events");
                }
                Err(broadcast::error::RecvError::Closed) => {
                    *rx = None;
                    return None;
                }
            }
        },
        None => std::future::pending().await,
    }
}
