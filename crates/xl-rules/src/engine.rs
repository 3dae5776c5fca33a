//! The engine: inputs and time in, [`Decision`]s out. See the crate docs for the semantics.

use std::collections::{HashMap, VecDeque};

use jiff::{SignedDuration, Timestamp};
use xl_core::alert::{AlertAction, By};
use xl_core::gate::EventPhase;
use xl_core::{
    Alert, AlertId, AlertKind, AlertState, CameraId, CommunityId, GateEventKind, GateId,
};

use crate::config::{Rule, RulesConfig};
use crate::error::RulesError;
use crate::input::{GateInput, Input, ZoneInput, ZoneWhat};

/// What the caller must do to its alerts. Applying every decision in order (to the store, then
/// to the publishers) keeps the store and the engine in step.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "decisions are few (one per alert change) and short-lived; a plain Alert keeps \
              matching on them simple"
)]
pub enum Decision {
    /// A new alert: state open, count 1, `ack_deadline` and `roles` from the rule, a short
    /// English title, `source_event` the input's event id (none for health alerts).
    Raise(Alert),
    /// A repeat within the cooldown: the alert's new count and last_seen_at.
    Repeat {
        id: AlertId,
        count: u32,
        last_seen_at: Timestamp,
        source_event: Option<String>,
    },
    /// Not acknowledged by its deadline (`at` is the deadline): apply
    /// [`AlertAction::Escalated`] by [`By::Rules`] at `at` (state escalated; routed additionally
    /// to [`xl_core::Role::Police`]).
    Escalate { id: AlertId, at: Timestamp },
    /// A health condition cleared: resolve the alert, actor "system", with `reason` as the note.
    Resolve {
        id: AlertId,
        at: Timestamp,
        reason: String,
    },
}

/// Where an alert comes from, for folding repeats.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Source {
    /// Gate kinds, per gate (not per door).
    Gate(GateId),
    /// `camera.offline` and `recording.failed`.
    Camera(CameraId),
    /// `person.*` and `crowd.*`: a camera's zone.
    Zone(CameraId, String),
}

type Key = (AlertKind, Source);

/// What the engine remembers of an alert it may still act on.
#[derive(Debug, Clone)]
struct Tracked {
    /// None only for a restored alert that lacks the field its kind is keyed on.
    key: Option<Key>,
    /// The engine's copy (open, acknowledged or escalated), changed only by [`Alert::apply`]:
    /// its own decisions and the persons' actions it is told of.
    alert: Alert,
}

/// A health condition the engine has been told of: a device offline, a camera's recording
/// stopped.
#[derive(Debug, Clone)]
struct Outage {
    community: CommunityId,
    /// Why, in the input's words, for the title (`recording.failed`; empty for devices and for
    /// restored alerts, whose title is already written).
    reason: String,
    /// When the offline condition is due to raise (since + debounce).
    due: Timestamp,
    /// Whether this outage raised its alert (it may have been resolved by a person since).
    raised: bool,
}

/// The rules engine. Pure and synchronous: it never reads the system clock and does no I/O.
#[derive(Debug, Clone)]
pub struct Engine {
    /// One per kind, in [`AlertKind::ALL`] order.
    rules: Vec<Rule>,
    /// Unresolved alerts the engine may still fold repeats into, escalate or resolve.
    alerts: HashMap<AlertId, Tracked>,
    /// The latest alert of each source.
    current: HashMap<Key, AlertId>,
    /// Health conditions in progress (`gate.offline`, `camera.offline`, `recording.failed`
    /// keys): devices known to be offline, cameras known not to record.
    outages: HashMap<Key, Outage>,
    /// Recent denials per gate, oldest first, at most the rule's `count`.
    denials: HashMap<GateId, VecDeque<Timestamp>>,
}

/// `at` plus `secs` (at most [`crate::MAX_SECS`], so this cannot overflow in practice).
fn plus(at: Timestamp, secs: u64) -> Timestamp {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    at.saturating_add(SignedDuration::from_secs(secs))
        .unwrap_or(Timestamp::MAX)
}

/// Which alert kind a gate event raises, if any (`AccessDenied` goes to the burst counter).
fn gate_kind(kind: GateEventKind) -> Option<AlertKind> {
    Some(match kind {
        GateEventKind::DoorForcedOpen => AlertKind::GateForcedOpen,
        GateEventKind::DoorHeldOpen => AlertKind::GateHeldOpen,
        GateEventKind::Duress => AlertKind::GateDuress,
        GateEventKind::Tamper => AlertKind::GateTamper,
        GateEventKind::Blacklisted => AlertKind::GateBlacklist,
        _ => return None,
    })
}

/// The fields of a new alert that come from the occurrence.
struct Occurrence {
    community: CommunityId,
    camera: Option<CameraId>,
    gate: Option<GateId>,
    zone: Option<String>,
    title: String,
    at: Timestamp,
    source_event: Option<String>,
}

impl Engine {
    /// An engine running `config` over the built-in catalog.
    pub fn new(config: &RulesConfig) -> Result<Engine, RulesError> {
        let rules = config.resolve()?;
        debug_assert!(
            rules
                .iter()
                .map(|r| r.kind)
                .eq(AlertKind::ALL.iter().copied())
        );
        Ok(Engine {
            rules,
            alerts: HashMap::new(),
            current: HashMap::new(),
            outages: HashMap::new(),
            denials: HashMap::new(),
        })
    }

    /// The rules this engine runs, one per kind.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    fn rule(&self, kind: AlertKind) -> &Rule {
        &self.rules[kind as usize]
    }

    /// Reload the active (not resolved) alerts after a restart so cooldowns, escalation and
    /// auto-resolve continue. Resolved alerts are skipped. Pending debounces are not restored:
    /// the hub reports each device's health again after a restart.
    pub fn restore(&mut self, active: impl IntoIterator<Item = Alert>) {
        for alert in active {
            if !alert.state.is_active() {
                continue;
            }
            let key = key_of(&alert);
            if let Some(key) = key.clone() {
                if alert.kind.is_health() {
                    self.outages.insert(
                        key.clone(),
                        Outage {
                            community: alert.community.clone(),
                            reason: String::new(),
                            due: alert.raised_at,
                            raised: true,
                        },
                    );
                }
                // The latest alert of a source is the one repeats fold into.
                let newer_known = self
                    .current
                    .get(&key)
                    .and_then(|id| self.alerts.get(id))
                    .is_some_and(|t| t.alert.last_seen_at > alert.last_seen_at);
                if !newer_known {
                    self.current.insert(key, alert.id.clone());
                }
            }
            self.alerts.insert(alert.id.clone(), Tracked { key, alert });
        }
    }

    /// A denial handled before a restart (or before its gate's shard of the gate work moved
    /// to this hub), given back after [`Engine::restore`]: it counts towards
    /// `gate.denied_burst` as it did where it was handled, and decides nothing itself (what it
    /// decided then is among the restored alerts).
    pub fn restore_denial(&mut self, gate: &GateId, community: &CommunityId, at: Timestamp) {
        if self.rule(AlertKind::GateDeniedBurst).applies_to(community) {
            self.note_denial(gate, at);
        }
    }

    /// How far back `gate.denied_burst` counts denials: a hub gives back the denials it
    /// handled within this of its clock ([`Engine::restore_denial`]).
    pub fn denial_window(&self) -> SignedDuration {
        let secs = self.rule(AlertKind::GateDeniedBurst).window_secs;
        SignedDuration::from_secs(i64::try_from(secs).unwrap_or(i64::MAX))
    }

    /// Puts a denial in its gate's window (sorted: inputs may arrive slightly out of order;
    /// at most the rule's `count`).
    fn note_denial(&mut self, gate: &GateId, at: Timestamp) {
        let count = self.rule(AlertKind::GateDeniedBurst).count as usize;
        let window = self.denials.entry(gate.clone()).or_default();
        let pos = window.partition_point(|t| *t <= at);
        window.insert(pos, at);
        while window.len() > count {
            window.pop_front();
        }
    }

    /// One input. `ids` makes ids for new alerts (it is given the raise time).
    ///
    /// The input's time is also the engine's clock: first everything [`Engine::tick`] would do
    /// at `input.at()` is done (and returned first), then the input itself.
    pub fn handle(
        &mut self,
        input: &Input,
        ids: &mut dyn FnMut(Timestamp) -> AlertId,
    ) -> Vec<Decision> {
        let mut out = self.advance(input.at(), ids);
        match input {
            Input::Gate(g) => self.gate(g, ids, &mut out),
            Input::Zone(z) => self.zone(z, ids, &mut out),
            Input::GateHealth {
                gate,
                community,
                online,
                at,
            } => {
                let key = (AlertKind::GateOffline, Source::Gate(gate.clone()));
                self.health(key, community, (!*online).then_some(""), *at, ids, &mut out);
            }
            Input::CameraHealth {
                camera,
                community,
                online,
                at,
            } => {
                let key = (AlertKind::CameraOffline, Source::Camera(camera.clone()));
                self.health(key, community, (!*online).then_some(""), *at, ids, &mut out);
            }
            Input::RecordingHealth {
                camera,
                community,
                recording,
                reason,
                at,
            } => {
                let key = (AlertKind::RecordingFailed, Source::Camera(camera.clone()));
                let failure = (!*recording).then_some(reason.as_str());
                self.health(key, community, failure, *at, ids, &mut out);
            }
        }
        out
    }

    /// Time passes: escalations due, debounced offline conditions that are now due. Raises
    /// come first (in due order), then escalations (in deadline order).
    pub fn tick(
        &mut self,
        now: Timestamp,
        ids: &mut dyn FnMut(Timestamp) -> AlertId,
    ) -> Vec<Decision> {
        self.advance(now, ids)
    }

    /// A person acted on the alert (through the API, committed): the engine applies the same
    /// action to its copy ([`Alert::apply`] by [`By::Person`]). Acknowledged or escalated, it
    /// never escalates by its deadline now; resolved, the engine forgets it, so the next
    /// occurrence raises a new alert (a health alert resolved by a person while the device is
    /// still offline is not raised again for the same outage). Unknown ids (alerts the engine
    /// has already forgotten) and actions its copy does not allow are ignored: the store has
    /// decided.
    pub fn acted(&mut self, id: &AlertId, action: AlertAction, at: Timestamp) {
        if action == AlertAction::Resolved {
            self.forget(id);
        } else if let Some(t) = self.alerts.get_mut(id) {
            let _ = t.alert.apply(action, By::Person, at);
        }
    }

    /// When [`Engine::tick`] next has something to do (a debounced outage or an escalation
    /// due), so the caller can sleep until then. None: nothing is scheduled.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let outages = self.outages.values().filter(|o| !o.raised).map(|o| o.due);
        let escalations = self
            .alerts
            .values()
            .filter_map(|t| t.alert.escalation_due());
        outages.chain(escalations).min()
    }

    fn advance(
        &mut self,
        now: Timestamp,
        ids: &mut dyn FnMut(Timestamp) -> AlertId,
    ) -> Vec<Decision> {
        let mut out = Vec::new();

        let mut due: Vec<(Timestamp, Key)> = self
            .outages
            .iter()
            .filter(|(_, o)| !o.raised && o.due <= now)
            .map(|(k, o)| (o.due, k.clone()))
            .collect();
        due.sort();
        for (_, key) in due {
            self.raise_outage(key, ids, &mut out);
        }

        let mut escalations: Vec<(Timestamp, AlertId)> = self
            .alerts
            .iter()
            .filter_map(|(id, t)| {
                t.alert
                    .escalation_due()
                    .filter(|d| *d <= now)
                    .map(|d| (d, id.clone()))
            })
            .collect();
        escalations.sort();
        for (deadline, id) in escalations {
            if let Some(t) = self.alerts.get_mut(&id)
                && t.alert
                    .apply(AlertAction::Escalated, By::Rules, deadline)
                    .is_ok()
            {
                out.push(Decision::Escalate { id, at: deadline });
            }
        }

        self.prune(now);
        out
    }

    /// Forgets what can no longer matter at `now`: alerts past their cooldown with no
    /// escalation pending (health alerts stay until resolved: one per outage, bounded by the
    /// number of devices) and denial windows whose newest denial has slid out.
    fn prune(&mut self, now: Timestamp) {
        let rules = &self.rules;
        let stale: Vec<AlertId> = self
            .alerts
            .iter()
            .filter(|(_, t)| {
                let a = &t.alert;
                !a.kind.is_health()
                    && a.escalation_due().is_none()
                    && now >= plus(a.last_seen_at, rules[a.kind as usize].cooldown_secs)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            self.forget(&id);
        }
        let window_secs = self.rule(AlertKind::GateDeniedBurst).window_secs;
        self.denials
            .retain(|_, w| w.back().is_some_and(|last| now < plus(*last, window_secs)));
    }

    fn forget(&mut self, id: &AlertId) {
        if let Some(t) = self.alerts.remove(id)
            && let Some(key) = t.key
            && self.current.get(&key) == Some(id)
        {
            self.current.remove(&key);
        }
    }

    /// The open alert of `key` that an occurrence at `at` folds into, if any.
    fn live(&self, key: &Key, at: Timestamp) -> Option<&AlertId> {
        let cooldown = self.rule(key.0).cooldown_secs;
        if cooldown == 0 {
            return None;
        }
        let id = self.current.get(key)?;
        let t = self.alerts.get(id)?;
        (at < plus(t.alert.last_seen_at, cooldown)).then_some(id)
    }

    /// An occurrence of `key`: a repeat of its live alert, or a new alert.
    fn occur(
        &mut self,
        key: Key,
        occ: Occurrence,
        ids: &mut dyn FnMut(Timestamp) -> AlertId,
        out: &mut Vec<Decision>,
    ) {
        if let Some(id) = self.live(&key, occ.at).cloned()
            && let Some(t) = self.alerts.get_mut(&id)
            && t.alert
                .apply(AlertAction::Repeated, By::Rules, occ.at)
                .is_ok()
        {
            out.push(Decision::Repeat {
                id,
                count: t.alert.count,
                last_seen_at: t.alert.last_seen_at,
                source_event: occ.source_event,
            });
            return;
        }
        let alert = self.new_alert(key.0, ids(occ.at), occ);
        self.alerts.insert(
            alert.id.clone(),
            Tracked {
                key: Some(key.clone()),
                alert: alert.clone(),
            },
        );
        self.current.insert(key, alert.id.clone());
        out.push(Decision::Raise(alert));
    }

    fn new_alert(&self, kind: AlertKind, id: AlertId, occ: Occurrence) -> Alert {
        let rule = self.rule(kind);
        let ack_deadline =
            (rule.ack_deadline_secs > 0).then(|| plus(occ.at, rule.ack_deadline_secs));
        Alert {
            id,
            kind,
            severity: rule.severity,
            state: AlertState::Open,
            community: occ.community,
            camera: occ.camera,
            gate: occ.gate,
            zone: occ.zone,
            title: occ.title,
            raised_at: occ.at,
            last_seen_at: occ.at,
            count: 1,
            ack_deadline,
            acknowledged_at: None,
            escalated_at: None,
            resolved_at: None,
            roles: rule.roles.clone(),
            source_event: occ.source_event,
            snapshot: None,
        }
    }

    fn gate(
        &mut self,
        g: &GateInput,
        ids: &mut dyn FnMut(Timestamp) -> AlertId,
        out: &mut Vec<Decision>,
    ) {
        // The end of a condition (a tamper restored) raises nothing; only health alerts
        // resolve themselves.
        if g.phase == Some(EventPhase::Stop) {
            return;
        }
        if g.kind == GateEventKind::AccessDenied {
            self.denied(g, ids, out);
            return;
        }
        let Some(kind) = gate_kind(g.kind) else {
            return;
        };
        if !self.rule(kind).applies_to(&g.community) {
            return;
        }
        let what = match kind {
            AlertKind::GateForcedOpen => "Door forced open",
            AlertKind::GateHeldOpen => "Door held open",
            AlertKind::GateDuress => "Duress",
            AlertKind::GateTamper => "Tamper",
            _ => "Blacklisted person or card",
        };
        let door = g.door.map(|d| format!(" (door {d})")).unwrap_or_default();
        let occ = Occurrence {
            title: format!("{what} at gate {}{door}", g.gate),
            ..gate_occurrence(g)
        };
        self.occur((kind, Source::Gate(g.gate.clone())), occ, ids, out);
    }

    /// `gate.denied_burst`: `count` denials at one gate within `window_secs` raise; while that
    /// alert is live, every further denial repeats it.
    fn denied(
        &mut self,
        g: &GateInput,
        ids: &mut dyn FnMut(Timestamp) -> AlertId,
        out: &mut Vec<Decision>,
    ) {
        let kind = AlertKind::GateDeniedBurst;
        let rule = self.rule(kind);
        if !rule.applies_to(&g.community) {
            return;
        }
        let (count, window_secs) = (rule.count as usize, rule.window_secs);
        self.note_denial(&g.gate, g.at);
        // Denials in (at - window, at].
        let recent = self.denials[&g.gate]
            .iter()
            .filter(|t| **t <= g.at && g.at < plus(**t, window_secs))
            .count();
        let key = (kind, Source::Gate(g.gate.clone()));
        if recent >= count || self.live(&key, g.at).is_some() {
            let door = g.door.map(|d| format!(" (door {d})")).unwrap_or_default();
            let occ = Occurrence {
                title: format!(
                    "{count} denied accesses within {window_secs} s at gate {}{door}",
                    g.gate
                ),
                ..gate_occurrence(g)
            };
            self.occur(key, occ, ids, out);
        }
    }

    fn zone(
        &mut self,
        z: &ZoneInput,
        ids: &mut dyn FnMut(Timestamp) -> AlertId,
        out: &mut Vec<Decision>,
    ) {
        let (kind, title) = match z.what {
            ZoneWhat::Entered { .. } => (
                AlertKind::PersonIntrusion,
                format!("Person in zone {} on camera {}", z.zone, z.camera),
            ),
            ZoneWhat::DwellExceeded { dwell_ms, .. } => (
                AlertKind::PersonLoitering,
                format!(
                    "Person loitering {} s in zone {} on camera {}",
                    dwell_ms / 1000,
                    z.zone,
                    z.camera
                ),
            ),
            ZoneWhat::CountOverLimit { count, limit } => (
                AlertKind::CrowdGathering,
                format!(
                    "{count} people in zone {} on camera {} (limit {limit})",
                    z.zone, z.camera
                ),
            ),
            ZoneWhat::CountBelowLimit { .. } => return,
        };
        let rule = self.rule(kind);
        if !rule.applies_to(&z.community) || !rule.watches_zone(&z.zone) {
            return;
        }
        let occ = Occurrence {
            community: z.community.clone(),
            camera: Some(z.camera.clone()),
            gate: None,
            zone: Some(z.zone.clone()),
            title,
            at: z.at,
            source_event: Some(z.event_id.clone()),
        };
        let key = (kind, Source::Zone(z.camera.clone(), z.zone.clone()));
        self.occur(key, occ, ids, out);
    }

    /// The health kinds (`gate.offline`, `camera.offline`, `recording.failed`): a failure
    /// (`Some`, with why for the title; empty for devices) raises once it has lasted the
    /// debounce; `None` (the condition cleared) cancels a pending outage or resolves its alert.
    fn health(
        &mut self,
        key: Key,
        community: &CommunityId,
        failure: Option<&str>,
        at: Timestamp,
        ids: &mut dyn FnMut(Timestamp) -> AlertId,
        out: &mut Vec<Decision>,
    ) {
        let Some(reason) = failure else {
            self.outages.remove(&key);
            if let Some(id) = self.current.remove(&key)
                && let Some(mut t) = self.alerts.remove(&id)
                && t.alert.apply(AlertAction::Resolved, By::Rules, at).is_ok()
            {
                let reason = cleared_reason(&key);
                out.push(Decision::Resolve { id, at, reason });
            }
            return;
        };
        // Already failing (pending, alerted, or alerted and resolved by a person): the outage
        // keeps its start and its reason.
        if self.outages.contains_key(&key) || self.current.contains_key(&key) {
            return;
        }
        let rule = self.rule(key.0);
        if !rule.applies_to(community) {
            return;
        }
        let due = plus(at, rule.debounce_secs);
        self.outages.insert(
            key.clone(),
            Outage {
                community: community.clone(),
                reason: reason.trim().to_owned(),
                due,
                raised: false,
            },
        );
        if due <= at {
            self.raise_outage(key, ids, out);
        }
    }

    /// Raises the alert of an outage that has lasted its debounce (at its due time).
    fn raise_outage(
        &mut self,
        key: Key,
        ids: &mut dyn FnMut(Timestamp) -> AlertId,
        out: &mut Vec<Decision>,
    ) {
        let Some(outage) = self.outages.get_mut(&key) else {
            return;
        };
        outage.raised = true;
        let (camera, gate) = match &key.1 {
            Source::Gate(g) => (None, Some(g.clone())),
            Source::Camera(c) | Source::Zone(c, _) => (Some(c.clone()), None),
        };
        let title = outage_title(&key, &outage.reason);
        let occ = Occurrence {
            community: outage.community.clone(),
            camera,
            gate,
            zone: None,
            title,
            at: outage.due,
            source_event: None,
        };
        // Health kinds have no cooldown, so this always raises.
        self.occur(key, occ, ids, out);
    }
}

/// The title of a health alert: what failed where (and why, for a recording failure).
fn outage_title(key: &Key, reason: &str) -> String {
    match (key.0, &key.1) {
        (AlertKind::RecordingFailed, Source::Camera(c) | Source::Zone(c, _)) => {
            if reason.is_empty() {
                format!("Recording of camera {c} stopped")
            } else {
                format!("Recording of camera {c} stopped: {reason}")
            }
        }
        (_, Source::Gate(g)) => format!("Gate {g} offline"),
        (_, Source::Camera(c) | Source::Zone(c, _)) => format!("Camera {c} offline"),
    }
}

/// The note of a health alert that resolved itself: the condition cleared.
fn cleared_reason(key: &Key) -> String {
    match (key.0, &key.1) {
        (AlertKind::RecordingFailed, Source::Camera(c) | Source::Zone(c, _)) => {
            format!("Camera {c} is recording again")
        }
        (_, Source::Gate(g)) => format!("Gate {g} is online again"),
        (_, Source::Camera(c) | Source::Zone(c, _)) => format!("Camera {c} is streaming again"),
    }
}

/// The parts of an occurrence every gate kind shares (the title is the caller's).
fn gate_occurrence(g: &GateInput) -> Occurrence {
    Occurrence {
        community: g.community.clone(),
        camera: g.camera.clone(),
        gate: Some(g.gate.clone()),
        zone: None,
        title: String::new(),
        at: g.at,
        source_event: Some(g.event_id.clone()),
    }
}

/// The source a stored alert was folded by, from the fields its kind is keyed on.
fn key_of(alert: &Alert) -> Option<Key> {
    let source = match alert.kind {
        AlertKind::CameraOffline | AlertKind::RecordingFailed => {
            Source::Camera(alert.camera.clone()?)
        }
        AlertKind::PersonIntrusion | AlertKind::PersonLoitering | AlertKind::CrowdGathering => {
            Source::Zone(alert.camera.clone()?, alert.zone.clone()?)
        }
        _ => Source::Gate(alert.gate.clone()?),
    };
    Some((alert.kind, source))
}

#[cfg(test)]
mod tests;
