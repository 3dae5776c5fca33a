//! Table-driven tests on a simulated clock: each case is a rules config and a list of steps
//! (an input, a tick, a person's action or a restart), each with the decisions it must give.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use xl_core::alert::{AlertAction, By};
use xl_core::gate::{DenyReason, EventPhase};
use xl_core::{Alert, AlertId, AlertKind, AlertState, GateEventKind, Role, Severity};

use super::*;
use crate::config::RulesConfig;
use crate::input::{GateInput, Input, ZoneInput, ZoneWhat};

const T0: &str = "2026-05-01T04:00:00Z";

/// `T0` plus `secs`.
fn t(secs: i64) -> Timestamp {
    tms(secs * 1000)
}

/// `T0` plus `ms` milliseconds.
fn tms(ms: i64) -> Timestamp {
    T0.parse::<Timestamp>().unwrap() + SignedDuration::from_millis(ms)
}

fn rules(toml_text: &str) -> RulesConfig {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct HubFile {
        #[serde(default)]
        rules: RulesConfig,
    }
    toml::from_str::<HubFile>(toml_text).unwrap().rules
}

// ---- inputs ----

fn gate_input(kind: GateEventKind, gate: &str, at: Timestamp) -> GateInput {
    GateInput {
        event_id: format!("ge-{gate}-{}", at.as_millisecond()),
        gate: gate.parse().unwrap(),
        community: "c1".parse().unwrap(),
        camera: None,
        kind,
        deny_reason: None,
        phase: None,
        door: None,
        at,
    }
}

fn gate_ev(kind: GateEventKind, gate: &str, at: Timestamp) -> Step {
    Step::In(Input::Gate(gate_input(kind, gate, at)))
}

fn forced(gate: &str, at: Timestamp) -> Step {
    gate_ev(GateEventKind::DoorForcedOpen, gate, at)
}

fn denied(gate: &str, at: Timestamp) -> Step {
    let mut g = gate_input(GateEventKind::AccessDenied, gate, at);
    g.deny_reason = Some(DenyReason::CardNotFound);
    Step::In(Input::Gate(g))
}

fn zone_ev(camera: &str, zone: &str, what: ZoneWhat, at: Timestamp) -> Step {
    Step::In(Input::Zone(ZoneInput {
        event_id: format!("ve-{camera}-{zone}-{}", at.as_millisecond()),
        camera: camera.parse().unwrap(),
        community: "c1".parse().unwrap(),
        zone: zone.to_owned(),
        what,
        at,
    }))
}

fn entered(camera: &str, zone: &str, at: Timestamp) -> Step {
    zone_ev(camera, zone, ZoneWhat::Entered { track: 7 }, at)
}

fn gate_health(gate: &str, online: bool, at: Timestamp) -> Step {
    Step::In(Input::GateHealth {
        gate: gate.parse().unwrap(),
        community: "c1".parse().unwrap(),
        online,
        at,
    })
}

fn cam_health(camera: &str, online: bool, at: Timestamp) -> Step {
    Step::In(Input::CameraHealth {
        camera: camera.parse().unwrap(),
        community: "c1".parse().unwrap(),
        online,
        at,
    })
}

fn rec_health(camera: &str, recording: bool, reason: &str, at: Timestamp) -> Step {
    Step::In(Input::RecordingHealth {
        camera: camera.parse().unwrap(),
        community: "c1".parse().unwrap(),
        recording,
        reason: reason.to_owned(),
        at,
    })
}

/// The same input step, in another community.
fn in_community(step: Step, community: &str) -> Step {
    let c = community.parse().unwrap();
    match step {
        Step::In(mut input) => {
            match &mut input {
                Input::Gate(g) => g.community = c,
                Input::Zone(z) => z.community = c,
                Input::GateHealth { community, .. }
                | Input::CameraHealth { community, .. }
                | Input::RecordingHealth { community, .. } => *community = c,
            }
            Step::In(input)
        }
        other => other,
    }
}

// ---- steps and expected decisions ----

#[derive(Debug)]
enum Step {
    In(Input),
    Tick(Timestamp),
    /// A person acknowledged the alert.
    Ack(&'static str, Timestamp),
    /// A person escalated the alert.
    Escalated(&'static str, Timestamp),
    /// A person resolved the alert.
    Resolved(&'static str, Timestamp),
    /// The hub restarts: a new engine, restored from the model store's unresolved alerts.
    Restart,
}

fn tick(at: Timestamp) -> Step {
    Step::Tick(at)
}

/// A decision, reduced to what the tables check (the full alert is checked elsewhere).
#[derive(Debug, Clone, PartialEq)]
enum D {
    Raise(String, AlertKind, Timestamp),
    Repeat(String, u32, Timestamp),
    Escalate(String, Timestamp),
    Resolve(String, Timestamp),
}

fn raise(id: &str, kind: AlertKind, at: Timestamp) -> D {
    D::Raise(id.to_owned(), kind, at)
}
fn repeat(id: &str, count: u32, at: Timestamp) -> D {
    D::Repeat(id.to_owned(), count, at)
}
fn escalate(id: &str, at: Timestamp) -> D {
    D::Escalate(id.to_owned(), at)
}
fn resolve(id: &str, at: Timestamp) -> D {
    D::Resolve(id.to_owned(), at)
}

fn summary(d: &Decision) -> D {
    match d {
        Decision::Raise(a) => D::Raise(a.id.0.clone(), a.kind, a.raised_at),
        Decision::Repeat {
            id,
            count,
            last_seen_at,
            ..
        } => D::Repeat(id.0.clone(), *count, *last_seen_at),
        Decision::Escalate { id, at } => D::Escalate(id.0.clone(), *at),
        Decision::Resolve { id, at, .. } => D::Resolve(id.0.clone(), *at),
    }
}

/// What the hub's store would hold: decisions applied as the hub applies them (with
/// [`Alert::apply`]), with the invariants the engine must keep checked on the way.
#[derive(Default)]
struct Store {
    alerts: BTreeMap<String, Alert>,
}

impl Store {
    fn get(&mut self, id: &AlertId) -> &mut Alert {
        let a = self
            .alerts
            .get_mut(&id.0)
            .expect("decision about an unknown alert");
        assert!(a.state.is_active(), "decision about resolved alert {id}");
        a
    }

    fn apply(&mut self, d: &Decision) {
        match d {
            Decision::Raise(a) => {
                assert_eq!(a.state, AlertState::Open);
                assert_eq!(a.count, 1);
                assert!(self.alerts.insert(a.id.0.clone(), a.clone()).is_none());
            }
            Decision::Repeat {
                id,
                count,
                last_seen_at,
                source_event,
            } => {
                let a = self.get(id);
                assert!(!a.kind.is_health(), "health alerts do not repeat");
                assert!(source_event.is_some());
                a.apply(AlertAction::Repeated, By::Rules, *last_seen_at)
                    .unwrap();
                assert_eq!((a.count, a.last_seen_at), (*count, *last_seen_at));
            }
            Decision::Escalate { id, at } => {
                let a = self.get(id);
                assert_eq!(a.state, AlertState::Open, "escalates only from open");
                assert_eq!(a.ack_deadline, Some(*at));
                a.apply(AlertAction::Escalated, By::Rules, *at).unwrap();
                assert!(a.roles.contains(&Role::Police));
            }
            Decision::Resolve { id, at, reason } => {
                let a = self.get(id);
                assert!(a.kind.is_health(), "only health alerts resolve themselves");
                assert!(!reason.is_empty());
                a.apply(AlertAction::Resolved, By::Rules, *at).unwrap();
            }
        }
    }

    fn active(&self) -> Vec<Alert> {
        self.alerts
            .values()
            .filter(|a| a.state.is_active())
            .cloned()
            .collect()
    }
}

struct Case {
    name: &'static str,
    /// `[[rules]]` tables over the catalog.
    rules: &'static str,
    steps: Vec<(Step, Vec<D>)>,
}

fn run(case: Case) {
    let config = rules(case.rules);
    let mut engine = Engine::new(&config).unwrap();
    let mut store = Store::default();
    let mut n = 0u32;
    for (i, (step, want)) in case.steps.into_iter().enumerate() {
        let mut ids = |_: Timestamp| {
            n += 1;
            AlertId(format!("a{n}"))
        };
        let got = match &step {
            Step::In(input) => engine.handle(input, &mut ids),
            Step::Tick(now) => engine.tick(*now, &mut ids),
            Step::Ack(id, at) | Step::Escalated(id, at) | Step::Resolved(id, at) => {
                let action = match &step {
                    Step::Ack(..) => AlertAction::Acknowledged,
                    Step::Escalated(..) => AlertAction::Escalated,
                    _ => AlertAction::Resolved,
                };
                let id = AlertId((*id).to_owned());
                store.get(&id).apply(action, By::Person, *at).unwrap();
                engine.acted(&id, action, *at);
                Vec::new()
            }
            Step::Restart => {
                engine = Engine::new(&config).unwrap();
                engine.restore(store.active());
                Vec::new()
            }
        };
        for d in &got {
            store.apply(d);
        }
        let got: Vec<D> = got.iter().map(summary).collect();
        assert_eq!(got, want, "case {:?}, step {i}: {step:?}", case.name);
    }
}

use AlertKind::*;

/// No escalation, so cases about folding see only raises and repeats.
const NO_ESCALATION: &str = r#"
[[rules]]
kind = "gate.forced_open"
ack_deadline_secs = 0
[[rules]]
kind = "gate.denied_burst"
ack_deadline_secs = 0
count = 3
[[rules]]
kind = "person.intrusion"
ack_deadline_secs = 0
"#;

#[test]
fn cooldown_folds_repeats_then_raises_anew() {
    for case in [
        Case {
            name: "repeats inside the cooldown, measured from the last occurrence",
            rules: NO_ESCALATION,
            steps: vec![
                (
                    forced("east-1", t(0)),
                    vec![raise("a1", GateForcedOpen, t(0))],
                ),
                (forced("east-1", t(299)), vec![repeat("a1", 2, t(299))]),
                (forced("east-1", t(598)), vec![repeat("a1", 3, t(598))]),
                // 300 s after the last occurrence: the cooldown is over.
                (
                    forced("east-1", t(898)),
                    vec![raise("a2", GateForcedOpen, t(898))],
                ),
                (forced("east-1", t(900)), vec![repeat("a2", 2, t(900))]),
            ],
        },
        Case {
            name: "just inside and just after",
            rules: NO_ESCALATION,
            steps: vec![
                (
                    forced("east-1", t(0)),
                    vec![raise("a1", GateForcedOpen, t(0))],
                ),
                (
                    forced("east-1", tms(299_999)),
                    vec![repeat("a1", 2, tms(299_999))],
                ),
                (
                    forced("east-1", tms(599_999)),
                    vec![raise("a2", GateForcedOpen, tms(599_999))],
                ),
            ],
        },
        Case {
            name: "the cooldown ends on time while an escalation is still pending",
            rules: "[[rules]]\nkind = \"gate.forced_open\"\nack_deadline_secs = 3600",
            steps: vec![
                (
                    forced("east-1", t(0)),
                    vec![raise("a1", GateForcedOpen, t(0))],
                ),
                (
                    forced("east-1", t(300)),
                    vec![raise("a2", GateForcedOpen, t(300))],
                ),
                (forced("east-1", t(301)), vec![repeat("a2", 2, t(301))]),
                (tick(t(3600)), vec![escalate("a1", t(3600))]),
            ],
        },
        Case {
            name: "sources and kinds fold separately; doors of one gate together",
            rules: NO_ESCALATION,
            steps: vec![
                (
                    forced("east-1", t(0)),
                    vec![raise("a1", GateForcedOpen, t(0))],
                ),
                (
                    forced("west-2", t(1)),
                    vec![raise("a2", GateForcedOpen, t(1))],
                ),
                (
                    gate_ev(GateEventKind::DoorHeldOpen, "east-1", t(2)),
                    vec![raise("a3", GateHeldOpen, t(2))],
                ),
                (
                    Step::In(Input::Gate(GateInput {
                        door: Some(2),
                        ..gate_input(GateEventKind::DoorForcedOpen, "east-1", t(3))
                    })),
                    vec![repeat("a1", 2, t(3))],
                ),
            ],
        },
        Case {
            name: "cooldown 0 raises every occurrence",
            rules: "[[rules]]\nkind = \"gate.tamper\"\ncooldown_secs = 0\nack_deadline_secs = 0",
            steps: vec![
                (
                    gate_ev(GateEventKind::Tamper, "east-1", t(0)),
                    vec![raise("a1", GateTamper, t(0))],
                ),
                (
                    gate_ev(GateEventKind::Tamper, "east-1", t(0)),
                    vec![raise("a2", GateTamper, t(0))],
                ),
            ],
        },
        Case {
            name: "acknowledged and escalated alerts still repeat within the cooldown",
            rules: "[[rules]]\nkind = \"gate.forced_open\"\nack_deadline_secs = 10",
            steps: vec![
                (
                    forced("east-1", t(0)),
                    vec![raise("a1", GateForcedOpen, t(0))],
                ),
                (
                    forced("west-2", t(0)),
                    vec![raise("a2", GateForcedOpen, t(0))],
                ),
                (Step::Ack("a1", t(5)), vec![]),
                (tick(t(10)), vec![escalate("a2", t(10))]),
                (forced("east-1", t(20)), vec![repeat("a1", 2, t(20))]),
                (forced("west-2", t(20)), vec![repeat("a2", 2, t(20))]),
            ],
        },
        Case {
            name: "an alert a person resolved takes no more repeats",
            rules: NO_ESCALATION,
            steps: vec![
                (
                    forced("east-1", t(0)),
                    vec![raise("a1", GateForcedOpen, t(0))],
                ),
                (Step::Resolved("a1", t(10)), vec![]),
                (
                    forced("east-1", t(20)),
                    vec![raise("a2", GateForcedOpen, t(20))],
                ),
            ],
        },
    ] {
        run(case);
    }
}

#[test]
fn escalation() {
    for case in [
        Case {
            name: "at the deadline exactly, not before, and once",
            rules: "",
            steps: vec![
                (
                    forced("east-1", t(0)),
                    vec![raise("a1", GateForcedOpen, t(0))],
                ),
                (tick(tms(119_999)), vec![]),
                (tick(t(120)), vec![escalate("a1", t(120))]),
                (tick(t(121)), vec![]),
                (tick(t(10_000)), vec![]),
            ],
        },
        Case {
            name: "a late tick escalates at the deadline, in deadline order",
            rules: "",
            steps: vec![
                (
                    gate_ev(GateEventKind::Duress, "east-1", t(0)),
                    vec![raise("a1", GateDuress, t(0))],
                ),
                (
                    forced("east-1", t(0)),
                    vec![raise("a2", GateForcedOpen, t(0))],
                ),
                (
                    tick(t(500)),
                    vec![escalate("a1", t(60)), escalate("a2", t(120))],
                ),
            ],
        },
        Case {
            name: "an input after the deadline escalates first, then is handled",
            rules: "",
            steps: vec![
                (
                    forced("east-1", t(0)),
                    vec![raise("a1", GateForcedOpen, t(0))],
                ),
                (
                    forced("west-2", t(130)),
                    vec![escalate("a1", t(120)), raise("a2", GateForcedOpen, t(130))],
                ),
            ],
        },
        Case {
            name: "acknowledged before the deadline never escalates",
            rules: "",
            steps: vec![
                (
                    forced("east-1", t(0)),
                    vec![raise("a1", GateForcedOpen, t(0))],
                ),
                (Step::Ack("a1", t(119)), vec![]),
                (tick(t(120)), vec![]),
                (forced("east-1", t(200)), vec![repeat("a1", 2, t(200))]),
                (tick(t(1_000)), vec![]),
            ],
        },
        Case {
            name: "escalated by a person before the deadline, it does not escalate again",
            rules: "",
            steps: vec![
                (
                    forced("east-1", t(0)),
                    vec![raise("a1", GateForcedOpen, t(0))],
                ),
                (Step::Escalated("a1", t(30)), vec![]),
                (tick(t(120)), vec![]),
                (forced("east-1", t(200)), vec![repeat("a1", 2, t(200))]),
                (Step::Restart, vec![]),
                (tick(t(1_000)), vec![]),
            ],
        },
        Case {
            name: "escalated by a person after an acknowledgement",
            rules: "",
            steps: vec![
                (
                    forced("east-1", t(0)),
                    vec![raise("a1", GateForcedOpen, t(0))],
                ),
                (Step::Ack("a1", t(10)), vec![]),
                (Step::Escalated("a1", t(20)), vec![]),
                (tick(t(120)), vec![]),
                (Step::Ack("a1", t(130)), vec![]),
                (Step::Resolved("a1", t(140)), vec![]),
                (
                    forced("east-1", t(150)),
                    vec![raise("a2", GateForcedOpen, t(150))],
                ),
            ],
        },
        Case {
            name: "a repeat does not move the deadline",
            rules: "",
            steps: vec![
                (
                    forced("east-1", t(0)),
                    vec![raise("a1", GateForcedOpen, t(0))],
                ),
                (forced("east-1", t(100)), vec![repeat("a1", 2, t(100))]),
                (tick(t(120)), vec![escalate("a1", t(120))]),
            ],
        },
        Case {
            name: "an old alert past its cooldown still escalates beside the new one",
            rules: "[[rules]]\nkind = \"gate.forced_open\"\ncooldown_secs = 60",
            steps: vec![
                (
                    forced("east-1", t(0)),
                    vec![raise("a1", GateForcedOpen, t(0))],
                ),
                (
                    forced("east-1", t(70)),
                    vec![raise("a2", GateForcedOpen, t(70))],
                ),
                (tick(t(120)), vec![escalate("a1", t(120))]),
                (forced("east-1", t(125)), vec![repeat("a2", 2, t(125))]),
                (tick(t(190)), vec![escalate("a2", t(190))]),
            ],
        },
        Case {
            name: "a rule without a deadline never escalates",
            rules: "",
            steps: vec![
                (
                    zone_ev(
                        "cam-1",
                        "shed",
                        ZoneWhat::DwellExceeded {
                            track: 3,
                            dwell_ms: 95_000,
                        },
                        t(0),
                    ),
                    vec![raise("a1", PersonLoitering, t(0))],
                ),
                (tick(t(100_000)), vec![]),
            ],
        },
    ] {
        run(case);
    }
}

#[test]
fn health_debounce_and_auto_resolve() {
    for case in [
        Case {
            name: "gate offline raises after the debounce and resolves when back",
            rules: "",
            steps: vec![
                (gate_health("east-1", false, t(0)), vec![]),
                (tick(tms(29_999)), vec![]),
                (tick(t(30)), vec![raise("a1", GateOffline, t(30))]),
                (tick(t(40)), vec![]),
                (
                    gate_health("east-1", true, t(100)),
                    vec![resolve("a1", t(100))],
                ),
                (gate_health("east-1", true, t(101)), vec![]),
                (tick(t(1_000)), vec![]),
            ],
        },
        Case {
            name: "camera offline likewise, with its own debounce",
            rules: "",
            steps: vec![
                (cam_health("cam-1", false, t(0)), vec![]),
                (tick(t(30)), vec![]),
                // Another "down" keeps the outage's start.
                (cam_health("cam-1", false, t(40)), vec![]),
                (tick(t(60)), vec![raise("a1", CameraOffline, t(60))]),
                (cam_health("cam-1", false, t(70)), vec![]),
                (cam_health("cam-1", true, t(90)), vec![resolve("a1", t(90))]),
                // The next outage is a new alert.
                (cam_health("cam-1", false, t(100)), vec![]),
                (tick(t(160)), vec![raise("a2", CameraOffline, t(160))]),
            ],
        },
        Case {
            name: "a blip shorter than the debounce raises nothing",
            rules: "",
            steps: vec![
                (cam_health("cam-1", false, t(0)), vec![]),
                (cam_health("cam-1", true, tms(59_999)), vec![]),
                (tick(t(60)), vec![]),
                (gate_health("east-1", false, t(100)), vec![]),
                (gate_health("east-1", true, t(129)), vec![]),
                (tick(t(1_000)), vec![]),
            ],
        },
        Case {
            name: "back online after the due time but before a tick: raised at due, resolved",
            rules: "",
            steps: vec![
                (gate_health("east-1", false, t(0)), vec![]),
                (
                    gate_health("east-1", true, t(45)),
                    vec![raise("a1", GateOffline, t(30)), resolve("a1", t(45))],
                ),
            ],
        },
        Case {
            name: "debounce 0 raises at once",
            rules: "[[rules]]\nkind = \"camera.offline\"\ndebounce_secs = 0",
            steps: vec![
                (
                    cam_health("cam-1", false, t(5)),
                    vec![raise("a1", CameraOffline, t(5))],
                ),
                (cam_health("cam-1", true, t(6)), vec![resolve("a1", t(6))]),
            ],
        },
        Case {
            name: "resolved by a person while still down: one alert per outage",
            rules: "",
            steps: vec![
                (gate_health("east-1", false, t(0)), vec![]),
                (tick(t(30)), vec![raise("a1", GateOffline, t(30))]),
                (Step::Resolved("a1", t(50)), vec![]),
                (gate_health("east-1", false, t(60)), vec![]),
                (tick(t(200)), vec![]),
                (gate_health("east-1", true, t(300)), vec![]),
                (gate_health("east-1", false, t(400)), vec![]),
                (tick(t(430)), vec![raise("a2", GateOffline, t(430))]),
            ],
        },
        Case {
            name: "a health rule with a deadline escalates",
            rules: "[[rules]]\nkind = \"gate.offline\"\nack_deadline_secs = 600",
            steps: vec![
                (gate_health("east-1", false, t(0)), vec![]),
                (
                    tick(t(630)),
                    vec![raise("a1", GateOffline, t(30)), escalate("a1", t(630))],
                ),
                (
                    gate_health("east-1", true, t(700)),
                    vec![resolve("a1", t(700))],
                ),
            ],
        },
    ] {
        run(case);
    }
}

#[test]
fn recording_failed_raises_once_per_outage_and_resolves_itself() {
    for case in [
        Case {
            name: "raised at once, once, resolved when recording again, then anew",
            rules: "",
            steps: vec![
                (
                    rec_health("cam-1", false, "disk write error", t(0)),
                    vec![raise("a1", RecordingFailed, t(0))],
                ),
                // Still failing (the recorder retries and fails again): no second alert.
                (rec_health("cam-1", false, "disk write error", t(5)), vec![]),
                (rec_health("cam-1", false, "disk full", t(9)), vec![]),
                (tick(t(1_000)), vec![]),
                (
                    rec_health("cam-1", true, "", t(1_010)),
                    vec![resolve("a1", t(1_010))],
                ),
                (rec_health("cam-1", true, "", t(1_011)), vec![]),
                // The next failure is a new alert.
                (
                    rec_health("cam-1", false, "disk full", t(2_000)),
                    vec![raise("a2", RecordingFailed, t(2_000))],
                ),
            ],
        },
        Case {
            name: "per camera, and apart from the camera's stream health",
            rules: "[[rules]]\nkind = \"camera.offline\"\ndebounce_secs = 0",
            steps: vec![
                (
                    rec_health("cam-1", false, "disk full", t(0)),
                    vec![raise("a1", RecordingFailed, t(0))],
                ),
                (
                    rec_health("cam-2", false, "disk full", t(0)),
                    vec![raise("a2", RecordingFailed, t(0))],
                ),
                (
                    cam_health("cam-1", false, t(1)),
                    vec![raise("a3", CameraOffline, t(1))],
                ),
                (cam_health("cam-1", true, t(2)), vec![resolve("a3", t(2))]),
                (
                    rec_health("cam-2", true, "", t(3)),
                    vec![resolve("a2", t(3))],
                ),
                (
                    rec_health("cam-1", true, "", t(4)),
                    vec![resolve("a1", t(4))],
                ),
            ],
        },
        Case {
            name: "the rule disabled (or for other communities) raises nothing",
            rules: "[[rules]]\nkind = \"recording.failed\"\nenabled = false",
            steps: vec![
                (rec_health("cam-1", false, "disk full", t(0)), vec![]),
                (tick(t(1_000)), vec![]),
                (rec_health("cam-1", true, "", t(1_001)), vec![]),
                (cam_health("cam-1", false, t(1_002)), vec![]),
                (tick(t(1_062)), vec![raise("a1", CameraOffline, t(1_062))]),
            ],
        },
        Case {
            name: "limited to communities",
            rules: "[[rules]]\nkind = \"recording.failed\"\ncommunities = [\"c2\"]",
            steps: vec![
                (rec_health("cam-1", false, "disk full", t(0)), vec![]),
                (
                    in_community(rec_health("cam-9", false, "disk full", t(1)), "c2"),
                    vec![raise("a1", RecordingFailed, t(1))],
                ),
            ],
        },
        Case {
            name: "a configured debounce is honoured",
            rules: "[[rules]]\nkind = \"recording.failed\"\ndebounce_secs = 30",
            steps: vec![
                (rec_health("cam-1", false, "disk write error", t(0)), vec![]),
                (tick(tms(29_999)), vec![]),
                (tick(t(30)), vec![raise("a1", RecordingFailed, t(30))]),
                (
                    rec_health("cam-1", true, "", t(40)),
                    vec![resolve("a1", t(40))],
                ),
                // A blip shorter than the debounce raises nothing.
                (
                    rec_health("cam-1", false, "disk write error", t(50)),
                    vec![],
                ),
                (rec_health("cam-1", true, "", t(79)), vec![]),
                (tick(t(1_000)), vec![]),
            ],
        },
        Case {
            name: "resolved by a person while still failing: one alert per outage",
            rules: "",
            steps: vec![
                (
                    rec_health("cam-1", false, "disk full", t(0)),
                    vec![raise("a1", RecordingFailed, t(0))],
                ),
                (Step::Resolved("a1", t(10)), vec![]),
                (rec_health("cam-1", false, "disk full", t(20)), vec![]),
                (rec_health("cam-1", true, "", t(30)), vec![]),
                (
                    rec_health("cam-1", false, "disk full", t(40)),
                    vec![raise("a2", RecordingFailed, t(40))],
                ),
            ],
        },
        Case {
            name: "after a restart the alert still resolves itself",
            rules: "",
            steps: vec![
                (
                    rec_health("cam-1", false, "disk full", t(0)),
                    vec![raise("a1", RecordingFailed, t(0))],
                ),
                (Step::Restart, vec![]),
                // The hub reports the failure again after a restart: no second alert.
                (rec_health("cam-1", false, "disk full", t(70)), vec![]),
                (
                    rec_health("cam-1", true, "", t(80)),
                    vec![resolve("a1", t(80))],
                ),
            ],
        },
    ] {
        run(case);
    }
}

#[test]
fn recording_failed_says_why_and_when_it_records_again() {
    let mut engine = Engine::new(&rules(
        "[[rules]]\nkind = \"recording.failed\"\ndebounce_secs = 10",
    ))
    .unwrap();
    let mut n = 0;
    let mut ids = |_: Timestamp| {
        n += 1;
        AlertId(format!("a{n}"))
    };
    let input = |recording: bool, reason: &str, at: Timestamp| {
        let Step::In(input) = rec_health("cam-1", recording, reason, at) else {
            unreachable!()
        };
        input
    };
    assert!(
        engine
            .handle(&input(false, " disk write error ", t(0)), &mut ids)
            .is_empty()
    );
    // A later failure of the same outage does not change the reason.
    assert!(
        engine
            .handle(&input(false, "disk full", t(5)), &mut ids)
            .is_empty()
    );
    let d = engine.tick(t(10), &mut ids);
    let [Decision::Raise(a)] = d.as_slice() else {
        panic!("{d:?}")
    };
    assert_eq!(a.kind, RecordingFailed);
    assert_eq!(
        a.title,
        "Recording of camera cam-1 stopped: disk write error"
    );
    assert_eq!(a.camera.as_ref().map(|c| c.as_str()), Some("cam-1"));
    assert_eq!((&a.gate, &a.zone, &a.source_event), (&None, &None, &None));
    assert_eq!(a.severity, Severity::Major);
    assert_eq!(a.ack_deadline, None);
    assert_eq!(a.roles, [Role::Duty]);
    assert_eq!(a.raised_at, t(10));

    let d = engine.handle(&input(true, "", t(20)), &mut ids);
    let [Decision::Resolve { id, at, reason }] = d.as_slice() else {
        panic!("{d:?}")
    };
    assert_eq!((id.as_str(), *at), ("a1", t(20)));
    assert_eq!(reason, "Camera cam-1 is recording again");

    // No reason given: the title says what stopped all the same.
    let mut engine = Engine::new(&RulesConfig::default()).unwrap();
    let d = engine.handle(&input(false, "", t(30)), &mut ids);
    let [Decision::Raise(a)] = d.as_slice() else {
        panic!("{d:?}")
    };
    assert_eq!(a.title, "Recording of camera cam-1 stopped");
}

#[test]
fn denied_burst_window() {
    for case in [
        Case {
            name: "count-1 denials nothing, the count-th raises, old ones slide out",
            rules: NO_ESCALATION,
            steps: vec![
                (denied("east-1", t(0)), vec![]),
                (denied("east-1", t(30)), vec![]),
                // The window is half-open: the denial at 0 is out at 60.
                (denied("east-1", t(60)), vec![]),
                (
                    denied("east-1", tms(89_999)),
                    vec![raise("a1", GateDeniedBurst, tms(89_999))],
                ),
            ],
        },
        Case {
            name: "the count-th just inside the window raises",
            rules: NO_ESCALATION,
            steps: vec![
                (denied("east-1", t(0)), vec![]),
                (denied("east-1", t(1)), vec![]),
                (
                    denied("east-1", tms(59_999)),
                    vec![raise("a1", GateDeniedBurst, tms(59_999))],
                ),
                // While the alert is live every denial repeats it, however sparse.
                (denied("east-1", t(200)), vec![repeat("a1", 2, t(200))]),
                (denied("east-1", t(499)), vec![repeat("a1", 3, t(499))]),
                // After the cooldown a single denial is no burst...
                (denied("east-1", t(800)), vec![]),
                (denied("east-1", t(801)), vec![]),
                // ...the count-th within the window is.
                (
                    denied("east-1", t(802)),
                    vec![raise("a2", GateDeniedBurst, t(802))],
                ),
            ],
        },
        Case {
            name: "windows are per gate",
            rules: NO_ESCALATION,
            steps: vec![
                (denied("east-1", t(0)), vec![]),
                (denied("west-2", t(1)), vec![]),
                (denied("east-1", t(2)), vec![]),
                (denied("west-2", t(3)), vec![]),
                (
                    denied("east-1", t(4)),
                    vec![raise("a1", GateDeniedBurst, t(4))],
                ),
            ],
        },
        Case {
            name: "default: 5 within 60 s; grants and other kinds do not count",
            rules: "",
            steps: vec![
                (denied("east-1", t(0)), vec![]),
                (denied("east-1", t(1)), vec![]),
                (
                    gate_ev(GateEventKind::AccessGranted, "east-1", t(2)),
                    vec![],
                ),
                (denied("east-1", t(3)), vec![]),
                (denied("east-1", t(4)), vec![]),
                (
                    denied("east-1", t(5)),
                    vec![raise("a1", GateDeniedBurst, t(5))],
                ),
            ],
        },
        Case {
            name: "a slightly late denial counts where it belongs",
            rules: NO_ESCALATION,
            steps: vec![
                (denied("east-1", t(10)), vec![]),
                (denied("east-1", t(5)), vec![]),
                (
                    denied("east-1", t(20)),
                    vec![raise("a1", GateDeniedBurst, t(20))],
                ),
            ],
        },
    ] {
        run(case);
    }
}

#[test]
fn gate_and_zone_mapping() {
    for case in [
        Case {
            name: "each gate kind raises its alert; others and Stop phases raise nothing",
            rules: "",
            steps: vec![
                (
                    gate_ev(GateEventKind::DoorHeldOpen, "g1", t(0)),
                    vec![raise("a1", GateHeldOpen, t(0))],
                ),
                (
                    gate_ev(GateEventKind::Duress, "g1", t(0)),
                    vec![raise("a2", GateDuress, t(0))],
                ),
                (
                    gate_ev(GateEventKind::Tamper, "g1", t(0)),
                    vec![raise("a3", GateTamper, t(0))],
                ),
                (
                    gate_ev(GateEventKind::Blacklisted, "g1", t(0)),
                    vec![raise("a4", GateBlacklist, t(0))],
                ),
                (
                    Step::In(Input::Gate(GateInput {
                        phase: Some(EventPhase::Stop),
                        ..gate_input(GateEventKind::Tamper, "g2", t(1))
                    })),
                    vec![],
                ),
                (
                    Step::In(Input::Gate(GateInput {
                        phase: Some(EventPhase::Start),
                        ..gate_input(GateEventKind::Tamper, "g2", t(2))
                    })),
                    vec![raise("a5", GateTamper, t(2))],
                ),
                (
                    Step::In(Input::Gate(GateInput {
                        phase: Some(EventPhase::Stop),
                        ..gate_input(GateEventKind::DoorForcedOpen, "g2", t(3))
                    })),
                    vec![],
                ),
                (gate_ev(GateEventKind::DeviceOffline, "g1", t(4)), vec![]),
                (gate_ev(GateEventKind::DoorOpened, "g1", t(4)), vec![]),
                (gate_ev(GateEventKind::Heartbeat, "g1", t(4)), vec![]),
                (gate_ev(GateEventKind::Alarm, "g1", t(4)), vec![]),
                (gate_ev(GateEventKind::Unknown, "g1", t(4)), vec![]),
            ],
        },
        Case {
            name: "zone events: intrusion, loitering, crowd, per camera and zone",
            rules: NO_ESCALATION,
            steps: vec![
                (
                    entered("cam-1", "shed", t(0)),
                    vec![raise("a1", PersonIntrusion, t(0))],
                ),
                (
                    entered("cam-1", "shed", t(10)),
                    vec![repeat("a1", 2, t(10))],
                ),
                (
                    entered("cam-1", "roof", t(10)),
                    vec![raise("a2", PersonIntrusion, t(10))],
                ),
                (
                    entered("cam-2", "shed", t(10)),
                    vec![raise("a3", PersonIntrusion, t(10))],
                ),
                (
                    zone_ev(
                        "cam-1",
                        "shed",
                        ZoneWhat::DwellExceeded {
                            track: 7,
                            dwell_ms: 30_000,
                        },
                        t(20),
                    ),
                    vec![raise("a4", PersonLoitering, t(20))],
                ),
                (
                    zone_ev(
                        "cam-1",
                        "square",
                        ZoneWhat::CountOverLimit { count: 9, limit: 5 },
                        t(20),
                    ),
                    vec![raise("a5", CrowdGathering, t(20))],
                ),
                (
                    zone_ev(
                        "cam-1",
                        "square",
                        ZoneWhat::CountBelowLimit { count: 3 },
                        t(30),
                    ),
                    vec![],
                ),
                // The intrusion cooldown (120 s) runs from the last occurrence at 10.
                (
                    entered("cam-1", "shed", t(130)),
                    vec![raise("a6", PersonIntrusion, t(130))],
                ),
            ],
        },
        Case {
            name: "zone filter",
            rules: "[[rules]]\nkind = \"person.intrusion\"\nzones = [\"shed\", \"roof\"]\n\
                    [[rules]]\nkind = \"crowd.gathering\"\nzones = [\"square\"]",
            steps: vec![
                (entered("cam-1", "lobby", t(0)), vec![]),
                (
                    entered("cam-1", "roof", t(0)),
                    vec![raise("a1", PersonIntrusion, t(0))],
                ),
                (
                    zone_ev(
                        "cam-1",
                        "shed",
                        ZoneWhat::CountOverLimit { count: 9, limit: 5 },
                        t(1),
                    ),
                    vec![],
                ),
                (
                    zone_ev(
                        "cam-1",
                        "square",
                        ZoneWhat::CountOverLimit { count: 9, limit: 5 },
                        t(1),
                    ),
                    vec![raise("a2", CrowdGathering, t(1))],
                ),
                // Loitering has no zone filter: any zone.
                (
                    zone_ev(
                        "cam-1",
                        "lobby",
                        ZoneWhat::DwellExceeded {
                            track: 1,
                            dwell_ms: 1,
                        },
                        t(2),
                    ),
                    vec![raise("a3", PersonLoitering, t(2))],
                ),
            ],
        },
        Case {
            name: "community filter",
            rules: "[[rules]]\nkind = \"gate.forced_open\"\ncommunities = [\"c1\"]\n\
                    [[rules]]\nkind = \"person.intrusion\"\ncommunities = [\"c2\"]\n\
                    [[rules]]\nkind = \"camera.offline\"\ncommunities = [\"c1\"]\n\
                    [[rules]]\nkind = \"gate.denied_burst\"\ncommunities = [\"c1\"]\ncount = 1",
            steps: vec![
                (in_community(forced("east-1", t(0)), "c2"), vec![]),
                (
                    forced("east-1", t(0)),
                    vec![raise("a1", GateForcedOpen, t(0))],
                ),
                (entered("cam-1", "shed", t(1)), vec![]),
                (
                    in_community(entered("cam-1", "shed", t(1)), "c2"),
                    vec![raise("a2", PersonIntrusion, t(1))],
                ),
                (in_community(cam_health("cam-9", false, t(2)), "c3"), vec![]),
                (in_community(denied("west-2", t(2)), "c3"), vec![]),
                (
                    denied("west-2", t(2)),
                    vec![raise("a3", GateDeniedBurst, t(2))],
                ),
                (tick(t(100)), vec![]),
                // Rules without a filter apply everywhere.
                (
                    in_community(gate_ev(GateEventKind::Tamper, "x", t(100)), "c9"),
                    vec![raise("a4", GateTamper, t(100))],
                ),
            ],
        },
        Case {
            name: "disabled rules raise nothing",
            rules: "[[rules]]\nkind = \"person.intrusion\"\nenabled = false\n\
                    [[rules]]\nkind = \"camera.offline\"\nenabled = false\n\
                    [[rules]]\nkind = \"gate.denied_burst\"\nenabled = false\ncount = 1",
            steps: vec![
                (entered("cam-1", "shed", t(0)), vec![]),
                (cam_health("cam-1", false, t(0)), vec![]),
                (tick(t(1_000)), vec![]),
                (cam_health("cam-1", true, t(1_001)), vec![]),
                (denied("east-1", t(1_002)), vec![]),
                (
                    forced("east-1", t(1_003)),
                    vec![raise("a1", GateForcedOpen, t(1_003))],
                ),
            ],
        },
    ] {
        run(case);
    }
}

#[test]
fn restore_continues_after_a_restart() {
    for case in [
        Case {
            name: "a cooldown",
            rules: "",
            steps: vec![
                (
                    forced("east-1", t(0)),
                    vec![raise("a1", GateForcedOpen, t(0))],
                ),
                (forced("east-1", t(10)), vec![repeat("a1", 2, t(10))]),
                (Step::Restart, vec![]),
                (forced("east-1", t(100)), vec![repeat("a1", 3, t(100))]),
                (
                    forced("east-1", t(400)),
                    vec![escalate("a1", t(120)), raise("a2", GateForcedOpen, t(400))],
                ),
            ],
        },
        Case {
            name: "an escalation, due during the downtime or later",
            rules: "",
            steps: vec![
                (
                    forced("east-1", t(0)),
                    vec![raise("a1", GateForcedOpen, t(0))],
                ),
                (
                    entered("cam-1", "shed", t(50)),
                    vec![raise("a2", PersonIntrusion, t(50))],
                ),
                (Step::Restart, vec![]),
                (tick(t(200)), vec![escalate("a1", t(120))]),
                (tick(t(349)), vec![]),
                (tick(t(350)), vec![escalate("a2", t(350))]),
            ],
        },
        Case {
            name: "acknowledged and escalated alerts do not escalate again",
            rules: "",
            steps: vec![
                (
                    forced("east-1", t(0)),
                    vec![raise("a1", GateForcedOpen, t(0))],
                ),
                (
                    forced("west-2", t(0)),
                    vec![raise("a2", GateForcedOpen, t(0))],
                ),
                (Step::Ack("a1", t(10)), vec![]),
                (tick(t(120)), vec![escalate("a2", t(120))]),
                (Step::Restart, vec![]),
                (tick(t(1_000)), vec![]),
            ],
        },
        Case {
            name: "auto-resolve of both health kinds",
            rules: "",
            steps: vec![
                (gate_health("east-1", false, t(0)), vec![]),
                (cam_health("cam-1", false, t(0)), vec![]),
                (
                    tick(t(60)),
                    vec![
                        raise("a1", GateOffline, t(30)),
                        raise("a2", CameraOffline, t(60)),
                    ],
                ),
                (Step::Restart, vec![]),
                // The hub reports "still down" again after a restart: no second alert.
                (cam_health("cam-1", false, t(70)), vec![]),
                (tick(t(1_000)), vec![]),
                (
                    cam_health("cam-1", true, t(1_001)),
                    vec![resolve("a2", t(1_001))],
                ),
                (
                    gate_health("east-1", true, t(1_002)),
                    vec![resolve("a1", t(1_002))],
                ),
            ],
        },
        Case {
            name: "a pending debounce starts afresh",
            rules: "",
            steps: vec![
                (cam_health("cam-1", false, t(0)), vec![]),
                (Step::Restart, vec![]),
                (tick(t(100)), vec![]),
                (cam_health("cam-1", false, t(100)), vec![]),
                (tick(t(160)), vec![raise("a1", CameraOffline, t(160))]),
            ],
        },
    ] {
        run(case);
    }
}

#[test]
fn a_raised_alert_has_every_field_set() {
    let mut engine = Engine::new(&RulesConfig::default()).unwrap();
    let input = Input::Gate(GateInput {
        event_id: "ge-42".into(),
        camera: Some("cam-east".parse().unwrap()),
        door: Some(2),
        ..gate_input(GateEventKind::DoorForcedOpen, "east-1", t(0))
    });
    let mut ids = |at: Timestamp| AlertId::new(at, 7);
    let decisions = engine.handle(&input, &mut ids);
    let [Decision::Raise(alert)] = decisions.as_slice() else {
        panic!("{decisions:?}");
    };
    assert_eq!(
        alert,
        &Alert {
            id: AlertId::new(t(0), 7),
            kind: GateForcedOpen,
            severity: Severity::Critical,
            state: AlertState::Open,
            community: "c1".parse().unwrap(),
            camera: Some("cam-east".parse().unwrap()),
            gate: Some("east-1".parse().unwrap()),
            zone: None,
            title: "Door forced open at gate east-1 (door 2)".into(),
            raised_at: t(0),
            last_seen_at: t(0),
            count: 1,
            ack_deadline: Some(t(120)),
            acknowledged_at: None,
            escalated_at: None,
            resolved_at: None,
            roles: vec![Role::Duty, Role::Police, Role::Property],
            source_event: Some("ge-42".into()),
            snapshot: None,
        }
    );
    let repeat = engine.handle(&input, &mut ids);
    assert_eq!(
        repeat,
        [Decision::Repeat {
            id: alert.id.clone(),
            count: 2,
            last_seen_at: t(0),
            source_event: Some("ge-42".into()),
        }]
    );
}

#[test]
fn titles_say_what_and_where() {
    let mut engine =
        Engine::new(&rules("[[rules]]\nkind = \"gate.denied_burst\"\ncount = 1")).unwrap();
    let mut n = 0;
    let mut ids = |_: Timestamp| {
        n += 1;
        AlertId(format!("a{n}"))
    };
    let steps = [
        (
            gate_ev(GateEventKind::DoorHeldOpen, "g1", t(0)),
            "Door held open at gate g1",
        ),
        (
            gate_ev(GateEventKind::Duress, "g1", t(0)),
            "Duress at gate g1",
        ),
        (
            gate_ev(GateEventKind::Tamper, "g1", t(0)),
            "Tamper at gate g1",
        ),
        (
            gate_ev(GateEventKind::Blacklisted, "g1", t(0)),
            "Blacklisted person or card at gate g1",
        ),
        (
            denied("g1", t(0)),
            "1 denied accesses within 60 s at gate g1",
        ),
        (
            entered("cam-1", "shed", t(0)),
            "Person in zone shed on camera cam-1",
        ),
        (
            zone_ev(
                "cam-1",
                "shed",
                ZoneWhat::DwellExceeded {
                    track: 1,
                    dwell_ms: 95_400,
                },
                t(0),
            ),
            "Person loitering 95 s in zone shed on camera cam-1",
        ),
        (
            zone_ev(
                "cam-1",
                "sq",
                ZoneWhat::CountOverLimit { count: 9, limit: 5 },
                t(0),
            ),
            "9 people in zone sq on camera cam-1 (limit 5)",
        ),
    ];
    for (step, title) in steps {
        let Step::In(input) = step else {
            unreachable!()
        };
        let d = engine.handle(&input, &mut ids);
        let [Decision::Raise(a)] = d.as_slice() else {
            panic!("{d:?}")
        };
        assert_eq!(a.title, title);
        assert_eq!(
            a.source_event.as_deref(),
            Some(match &input {
                Input::Gate(g) => g.event_id.as_str(),
                Input::Zone(z) => z.event_id.as_str(),
                _ => unreachable!(),
            })
        );
    }
    let offline = Input::CameraHealth {
        camera: "cam-1".parse().unwrap(),
        community: "c1".parse().unwrap(),
        online: false,
        at: t(0),
    };
    assert!(engine.handle(&offline, &mut ids).is_empty());
    // (The duress alert escalates at 60 too, after the raise.)
    let d = engine.tick(t(60), &mut ids);
    let [Decision::Raise(a), Decision::Escalate { .. }] = d.as_slice() else {
        panic!("{d:?}")
    };
    assert_eq!(a.title, "Camera cam-1 offline");
    assert_eq!(a.camera.as_ref().map(|c| c.as_str()), Some("cam-1"));
    assert_eq!(a.source_event, None);
    assert_eq!(a.severity, Severity::Minor);
    assert_eq!(a.ack_deadline, None);
    let online = Input::CameraHealth {
        camera: "cam-1".parse().unwrap(),
        community: "c1".parse().unwrap(),
        online: true,
        at: t(61),
    };
    let d = engine.handle(&online, &mut ids);
    let [Decision::Resolve { reason, .. }] = d.as_slice() else {
        panic!("{d:?}")
    };
    assert_eq!(reason, "Camera cam-1 is streaming again");
}

#[test]
fn next_deadline_says_when_to_tick() {
    let mut engine = Engine::new(&RulesConfig::default()).unwrap();
    let mut n = 0;
    let mut ids = |_: Timestamp| {
        n += 1;
        AlertId(format!("a{n}"))
    };
    assert_eq!(engine.next_deadline(), None);
    let Step::In(offline) = cam_health("cam-1", false, t(0)) else {
        unreachable!()
    };
    engine.handle(&offline, &mut ids);
    assert_eq!(engine.next_deadline(), Some(t(60)));
    let Step::In(f) = forced("east-1", t(10)) else {
        unreachable!()
    };
    engine.handle(&f, &mut ids);
    assert_eq!(engine.next_deadline(), Some(t(60)));
    engine.tick(t(60), &mut ids);
    assert_eq!(engine.next_deadline(), Some(t(130)));
    engine.acted(&AlertId("a1".into()), AlertAction::Acknowledged, t(70));
    assert_eq!(engine.next_deadline(), None);
}

#[test]
fn state_stays_bounded() {
    let mut engine = Engine::new(&rules(
        "[[rules]]\nkind = \"gate.denied_burst\"\ncount = 2\nack_deadline_secs = 0",
    ))
    .unwrap();
    let mut n = 0;
    let mut ids = |_: Timestamp| {
        n += 1;
        AlertId(format!("a{n}"))
    };
    for i in 0..1_000 {
        let gate = format!("g{i}");
        for step in [
            forced(&gate, t(0)),
            denied(&gate, t(0)),
            denied(&gate, t(0)),
            entered("cam-1", &format!("z{i}"), t(0)),
        ] {
            let Step::In(input) = step else {
                unreachable!()
            };
            engine.handle(&input, &mut ids);
        }
    }
    // Escalations are pending for the forced-open and intrusion alerts; nothing else expires
    // yet.
    assert_eq!(engine.alerts.len(), 3_000);
    assert_eq!(engine.denials.len(), 1_000);
    // Every escalation done and every cooldown over: nothing left.
    let d = engine.tick(t(10_000), &mut ids);
    assert_eq!(d.len(), 2_000);
    assert!(engine.alerts.is_empty(), "{}", engine.alerts.len());
    assert!(engine.current.is_empty());
    assert!(engine.denials.is_empty());
    assert!(engine.outages.is_empty());
    assert_eq!(engine.next_deadline(), None);
}

#[test]
fn denials_given_back_after_a_restart_count_towards_a_burst() {
    let config = rules(NO_ESCALATION);
    let mut n = 0;
    let mut ids = |_: Timestamp| {
        n += 1;
        AlertId(format!("a{n}"))
    };
    let denial = |gate: &str, at| Input::Gate(gate_input(GateEventKind::AccessDenied, gate, at));
    let (g1, c1) = ("g1".parse().unwrap(), "c1".parse().unwrap());
    // Four denials were handled before the restart (the default burst is five in 60 s).
    let mut engine = Engine::new(&config).unwrap();
    for s in [1, 2, 3, 4] {
        engine.restore_denial(&g1, &c1, t(s));
    }
    assert_eq!(engine.denial_window(), SignedDuration::from_secs(60));
    let d = engine.handle(&denial("g1", t(10)), &mut ids);
    assert!(
        matches!(d.as_slice(), [Decision::Raise(a)] if a.kind == AlertKind::GateDeniedBurst),
        "{d:?}"
    );
    // Without them the fifth denial is the first.
    let mut fresh = Engine::new(&config).unwrap();
    assert!(fresh.handle(&denial("g1", t(10)), &mut ids).is_empty());
    // Denials of another community, where the rule does not apply, are not counted.
    let only_c2 = rules("[[rules]]\nkind = \"gate.denied_burst\"\ncommunities = [\"c2\"]");
    let mut other = Engine::new(&only_c2).unwrap();
    for s in [1, 2, 3, 4] {
        other.restore_denial(&g1, &c1, t(s));
    }
    assert!(other.denials.is_empty());
}
