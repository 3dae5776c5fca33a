//! Alerts: what a person must act on, and the words every crate uses for them.
//!
//! The rules engine (`xl-rules`) decides when an alert is raised, repeated, escalated or
//! resolved; the store (`xl-store`) keeps alerts, their history and the outbox; the API and the
//! publishers (MQTT, webhooks, SSE) read [`OutboxEntry`]s. Every change to an alert's state, by the engine
//! or by a person, goes through one state machine, [`Alert::apply`]. The JSON shapes here are contracts
//! (MQTT and webhook consumers parse them): change them only by adding fields.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{CameraId, CommunityId, GateId};

/// An alert's id: unique, sortable by raise time (hex milliseconds, `-`, then hex random bits),
/// safe in URLs and MQTT topics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AlertId(pub String);

impl AlertId {
    /// An id for an alert raised at `at`, with `random` making it unique.
    pub fn new(at: Timestamp, random: u64) -> AlertId {
        let ms = at.as_millisecond().max(0);
        AlertId(format!("{ms:012x}-{random:016x}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $s),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<$name, UnknownName> {
                match s {
                    $($s => Ok($name::$variant),)+
                    _ => Err(UnknownName {
                        what: $what,
                        name: s.to_owned(),
                        expected: &[$($s),+],
                    }),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A name that is not one of an enum's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?} (expected one of: {})", expected.join(", "))]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
    pub expected: &'static [&'static str],
}

string_enum!(
    /// The first catalog of alert kinds (DESIGN.md, Alerts).
    AlertKind, "alert kind" {
        /// A door opened without a grant.
        GateForcedOpen = "gate.forced_open",
        /// A door stayed open longer than the controller allows.
        GateHeldOpen = "gate.held_open",
        /// A person opened under duress (duress card or PIN).
        GateDuress = "gate.duress",
        /// The controller or a reader was tampered with.
        GateTamper = "gate.tamper",
        /// A blacklisted card or face tried the gate.
        GateBlacklist = "gate.blacklist",
        /// Many denials at one gate within a short window.
        GateDeniedBurst = "gate.denied_burst",
        /// A gate stopped reporting (health; resolves itself).
        GateOffline = "gate.offline",
        /// A camera's stream is down (health, debounced; resolves itself).
        CameraOffline = "camera.offline",
        /// A camera's recorder stopped: a disk write error, or the disk full with nothing the
        /// disk guard may delete (health, not debounced by default; resolves itself when the
        /// camera records again).
        RecordingFailed = "recording.failed",
        /// A person track in a zone during the zone's schedule.
        PersonIntrusion = "person.intrusion",
        /// A person stayed in a zone longer than its dwell limit.
        PersonLoitering = "person.loitering",
        /// More people in a zone than its limit, for its duration.
        CrowdGathering = "crowd.gathering",
    }
);

impl AlertKind {
    /// Health alerts resolve themselves when the condition clears; one alert per outage.
    pub fn is_health(self) -> bool {
        matches!(
            self,
            AlertKind::GateOffline | AlertKind::CameraOffline | AlertKind::RecordingFailed
        )
    }
}

string_enum!(
    /// How urgent an alert is. Orders from most to least urgent (`Critical < Major`).
    Severity, "severity" {
        Critical = "critical",
        Major = "major",
        Minor = "minor",
        Info = "info",
    }
);

string_enum!(
    /// Where an alert is in its lifecycle.
    AlertState, "alert state" {
        /// Raised, nobody has acted yet.
        Open = "open",
        /// A person took it on.
        Acknowledged = "acknowledged",
        /// Nobody acknowledged it within the rule's deadline: sent up to the station desk.
        Escalated = "escalated",
        /// Over: handled by a person, or a health condition that cleared.
        Resolved = "resolved",
    }
);

impl AlertState {
    /// Whether a person (or the engine) still has to do something about it.
    pub fn is_active(self) -> bool {
        !matches!(self, AlertState::Resolved)
    }
}

string_enum!(
    /// Who a user is (DESIGN.md, Security): admin and duty and police see every community of
    /// the station; property users only their own communities.
    Role, "role" {
        Admin = "admin",
        /// 24-hour monitoring duty staff.
        Duty = "duty",
        /// The police station's command desk: receives escalations.
        Police = "police",
        /// A community's property manager.
        Property = "property",
    }
);

string_enum!(
    /// One step in an alert's history.
    AlertAction, "alert action" {
        Raised = "raised",
        /// The same kind from the same source again within the cooldown.
        Repeated = "repeated",
        Acknowledged = "acknowledged",
        Escalated = "escalated",
        Resolved = "resolved",
        /// A note added without a state change.
        Noted = "noted",
    }
);

/// An alert, as stored and as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: AlertId,
    pub kind: AlertKind,
    pub severity: Severity,
    pub state: AlertState,
    pub community: CommunityId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<CameraId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateId>,
    /// The zone of a person or crowd alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// One line for people: what happened where.
    pub title: String,
    /// When the first occurrence happened (the event's time on the hub's clock).
    pub raised_at: Timestamp,
    /// When the latest repeat happened.
    pub last_seen_at: Timestamp,
    /// Occurrences folded into this alert (1 when raised).
    pub count: u32,
    /// After this, an open alert escalates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_deadline: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
    /// The roles the rule routes it to.
    pub roles: Vec<Role>,
    /// The id of the gate event or vision event that raised it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_event: Option<String>,
    /// The evidence snapshot's id, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// Who asks [`Alert::apply`] for a change. The table differs by who only where a person and
/// the rules engine must differ: who may repeat, acknowledge and note, and from where an
/// escalation may come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum By {
    /// A person, through the API.
    Person,
    /// The rules engine: a repeat, an acknowledgement deadline that passed, a health condition
    /// that cleared.
    Rules,
}

impl fmt::Display for By {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            By::Person => "a person",
            By::Rules => "the rules engine",
        })
    }
}

/// What [`Alert::apply`] did: `from` and `to` are the states before and after (equal for a
/// repeat or a note), as the alert's history records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub action: AlertAction,
    pub from: AlertState,
    pub to: AlertState,
}

/// An action the alert's state machine does not allow (see [`Alert::apply`]); the alert is
/// unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("alert {alert}: cannot {} an alert that is {from} ({why})", verb(*.action))]
pub struct NotAllowed {
    pub alert: AlertId,
    pub from: AlertState,
    pub action: AlertAction,
    pub by: By,
    /// Why, in a few words.
    pub why: &'static str,
}

/// `action` as a verb, for messages.
fn verb(action: AlertAction) -> &'static str {
    match action {
        AlertAction::Raised => "raise",
        AlertAction::Repeated => "repeat",
        AlertAction::Acknowledged => "acknowledge",
        AlertAction::Escalated => "escalate",
        AlertAction::Resolved => "resolve",
        AlertAction::Noted => "note",
    }
}

impl Alert {
    /// The alert's one state machine: applies `action`, asked for by `by`, at `at`, or says why
    /// it is not allowed (and changes nothing). The rules engine (its own copy of an alert),
    /// the store (an engine's change merged with the stored alert, and a person's action) and
    /// the API's backends all call this; nothing else changes an alert's state.
    ///
    /// | from \ action | repeated | acknowledged | escalated (person) | escalated (deadline) | resolved | noted |
    /// |---|---|---|---|---|---|---|
    /// | open | open | acknowledged | escalated | escalated | resolved | open |
    /// | acknowledged | acknowledged | no | escalated | no | resolved | acknowledged |
    /// | escalated | escalated | acknowledged | no | no | resolved | escalated |
    /// | resolved | no | no | no | no | no | resolved |
    /// | by | rules | person | person | rules | either | person |
    ///
    /// What changes besides `state`:
    ///
    /// - **repeated**: `count` + 1 (saturating), `last_seen_at` = the later of it and `at`.
    ///   A repeat never changes the state: an acknowledged or escalated alert stays so.
    /// - **acknowledged**: `acknowledged_at` = `at`. From escalated too: the desk takes it on.
    /// - **escalated**: `escalated_at` = `at`, and the alert is routed to the police desk
    ///   ([`Role::Police`] added to `roles` if absent), whoever escalates. The escalation by the
    ///   deadline is allowed only from open and not before `ack_deadline`; an acknowledged
    ///   alert never escalates by itself, but a person may escalate it.
    /// - **resolved**: `resolved_at` = `at`.
    /// - **noted**: nothing; the note is history only. Allowed in every state.
    /// - **raised**: never: an alert is raised by creating it (state open, count 1).
    ///
    /// `ack_deadline` keeps the time the rule set (the console shows it as "acknowledge by");
    /// the deadline is *pending*, so that the rules engine escalates at it, only while the
    /// alert is open ([`Alert::escalation_due`]). Acknowledging or escalating therefore ends
    /// it, whoever did it.
    ///
    /// A resolved alert is final but for notes. So a repeat, an escalation or a health
    /// resolution that the rules engine decided from its copy while a person resolved the
    /// stored alert is not allowed, and the store drops it (no history, no outbox row); the
    /// engine forgets the alert when it hears of the resolution, so the source's next
    /// occurrence raises a new alert. Likewise an escalation by the deadline of an alert a
    /// person acknowledged or escalated meanwhile.
    pub fn apply(
        &mut self,
        action: AlertAction,
        by: By,
        at: Timestamp,
    ) -> Result<Transition, NotAllowed> {
        use AlertState::*;
        let from = self.state;
        let no = |why: &'static str| NotAllowed {
            alert: self.id.clone(),
            from,
            action,
            by,
            why,
        };
        let to = match (action, by, from) {
            (AlertAction::Raised, ..) => {
                return Err(no("an alert is raised once, by creating it"));
            }
            (AlertAction::Noted, By::Person, s) => s,
            (AlertAction::Repeated, By::Person, _) => {
                return Err(no("only the rules engine repeats an alert"));
            }
            (AlertAction::Acknowledged | AlertAction::Noted, By::Rules, _) => {
                return Err(no("only a person acknowledges or notes an alert"));
            }
            (_, _, Resolved) => return Err(no("a resolved alert takes only notes")),
            (AlertAction::Repeated, By::Rules, s) => s,
            (AlertAction::Acknowledged, By::Person, Open | Escalated) => Acknowledged,
            (AlertAction::Acknowledged, By::Person, _) => {
                return Err(no("it is acknowledged already"));
            }
            (AlertAction::Escalated, _, Escalated) => {
                return Err(no("it is escalated already"));
            }
            (AlertAction::Escalated, By::Person, Open | Acknowledged) => Escalated,
            (AlertAction::Escalated, By::Rules, Open) => match self.ack_deadline {
                Some(deadline) if deadline <= at => Escalated,
                Some(_) => return Err(no("its acknowledgement deadline has not passed")),
                None => return Err(no("it has no acknowledgement deadline")),
            },
            (AlertAction::Escalated, By::Rules, _) => {
                return Err(no(
                    "a person acknowledged it; only a person escalates it now",
                ));
            }
            (AlertAction::Resolved, _, _) => Resolved,
        };
        match action {
            AlertAction::Repeated => {
                self.count = self.count.saturating_add(1);
                self.last_seen_at = self.last_seen_at.max(at);
            }
            AlertAction::Acknowledged => self.acknowledged_at = Some(at),
            AlertAction::Escalated => {
                self.escalated_at = Some(at);
                if !self.roles.contains(&Role::Police) {
                    self.roles.push(Role::Police);
                }
            }
            AlertAction::Resolved => self.resolved_at = Some(at),
            AlertAction::Raised | AlertAction::Noted => {}
        }
        self.state = to;
        Ok(Transition { action, from, to })
    }

    /// When the rules engine escalates this alert unless a person acts first: its
    /// `ack_deadline` while it is open; `None` otherwise or when its rule set no deadline.
    pub fn escalation_due(&self) -> Option<Timestamp> {
        self.ack_deadline.filter(|_| self.state == AlertState::Open)
    }
}

/// What changed, in an [`OutboxEntry`].
pub type AlertChange = AlertAction;

/// One message for the publishers: an alert as it is after a change. The outbox is written in
/// the same transaction as the change, so a change is published (at least once) exactly when
/// it is committed. `seq` is the SSE event id and the publishers' cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub seq: i64,
    pub at: Timestamp,
    pub change: AlertChange,
    pub alert: Alert,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_say_what_was_expected() {
        for k in AlertKind::ALL {
            assert_eq!(k.as_str().parse::<AlertKind>().unwrap(), *k);
        }
        let err = "gate.forced".parse::<AlertKind>().unwrap_err();
        assert!(err.to_string().contains("gate.forced_open"), "{err}");
        assert!(Severity::Critical < Severity::Info);
        assert_eq!(
            serde_json::to_string(&AlertKind::CrowdGathering).unwrap(),
            "\"crowd.gathering\""
        );
    }

    #[test]
    fn exactly_the_self_resolving_kinds_are_health_kinds() {
        let health: Vec<&str> = AlertKind::ALL
            .iter()
            .filter(|k| k.is_health())
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            health,
            ["gate.offline", "camera.offline", "recording.failed"]
        );
        assert_eq!(
            "recording.failed".parse::<AlertKind>(),
            Ok(AlertKind::RecordingFailed)
        );
    }

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    /// An alert in `state`, raised at 1000 with a deadline at 1120, routed to duty.
    fn alert_in(state: AlertState) -> Alert {
        Alert {
            id: AlertId("a1".to_owned()),
            kind: AlertKind::GateForcedOpen,
            severity: Severity::Critical,
            state,
            community: "xingfu".parse().unwrap(),
            camera: None,
            gate: Some("east".parse().unwrap()),
            zone: None,
            title: "Door forced open at gate east".to_owned(),
            raised_at: ts(1_000),
            last_seen_at: ts(1_000),
            count: 1,
            ack_deadline: Some(ts(1_120)),
            acknowledged_at: None,
            escalated_at: None,
            resolved_at: None,
            roles: vec![Role::Duty],
            source_event: Some("ev-1".to_owned()),
            snapshot: None,
        }
    }

    /// Every (state, action, by): the state after, or `None` when not allowed. Applied at
    /// 1200, after the deadline.
    #[rustfmt::skip]
    const TABLE: &[(AlertState, AlertAction, By, Option<AlertState>)] = {
        use AlertAction as A;
        use AlertState::*;
        use By::*;
        &[
            (Open, A::Raised, Person, None),
            (Open, A::Raised, Rules, None),
            (Open, A::Repeated, Person, None),
            (Open, A::Repeated, Rules, Some(Open)),
            (Open, A::Acknowledged, Person, Some(Acknowledged)),
            (Open, A::Acknowledged, Rules, None),
            (Open, A::Escalated, Person, Some(Escalated)),
            (Open, A::Escalated, Rules, Some(Escalated)),
            (Open, A::Resolved, Person, Some(Resolved)),
            (Open, A::Resolved, Rules, Some(Resolved)),
            (Open, A::Noted, Person, Some(Open)),
            (Open, A::Noted, Rules, None),

            (Acknowledged, A::Raised, Person, None),
            (Acknowledged, A::Raised, Rules, None),
            (Acknowledged, A::Repeated, Person, None),
            (Acknowledged, A::Repeated, Rules, Some(Acknowledged)),
            (Acknowledged, A::Acknowledged, Person, None),
            (Acknowledged, A::Acknowledged, Rules, None),
            (Acknowledged, A::Escalated, Person, Some(Escalated)),
            (Acknowledged, A::Escalated, Rules, None),
            (Acknowledged, A::Resolved, Person, Some(Resolved)),
            (Acknowledged, A::Resolved, Rules, Some(Resolved)),
            (Acknowledged, A::Noted, Person, Some(Acknowledged)),
            (Acknowledged, A::Noted, Rules, None),

            (Escalated, A::Raised, Person, None),
            (Escalated, A::Raised, Rules, None),
            (Escalated, A::Repeated, Person, None),
            (Escalated, A::Repeated, Rules, Some(Escalated)),
            (Escalated, A::Acknowledged, Person, Some(Acknowledged)),
            (Escalated, A::Acknowledged, Rules, None),
            (Escalated, A::Escalated, Person, None),
            (Escalated, A::Escalated, Rules, None),
            (Escalated, A::Resolved, Person, Some(Resolved)),
            (Escalated, A::Resolved, Rules, Some(Resolved)),
            (Escalated, A::Noted, Person, Some(Escalated)),
            (Escalated, A::Noted, Rules, None),

            (Resolved, A::Raised, Person, None),
            (Resolved, A::Raised, Rules, None),
            (Resolved, A::Repeated, Person, None),
            (Resolved, A::Repeated, Rules, None),
            (Resolved, A::Acknowledged, Person, None),
            (Resolved, A::Acknowledged, Rules, None),
            (Resolved, A::Escalated, Person, None),
            (Resolved, A::Escalated, Rules, None),
            (Resolved, A::Resolved, Person, None),
            (Resolved, A::Resolved, Rules, None),
            (Resolved, A::Noted, Person, Some(Resolved)),
            (Resolved, A::Noted, Rules, None),
        ]
    };

    #[test]
    fn the_table_covers_every_state_action_and_actor_once() {
        for state in AlertState::ALL {
            for action in AlertAction::ALL {
                for by in [By::Person, By::Rules] {
                    let rows = TABLE
                        .iter()
                        .filter(|(s, a, b, _)| (s, a, b) == (state, action, &by))
                        .count();
                    assert_eq!(rows, 1, "{state} {action} by {by}");
                }
            }
        }
        assert_eq!(
            TABLE.len(),
            AlertState::ALL.len() * AlertAction::ALL.len() * 2
        );
    }

    #[test]
    fn apply_follows_the_table() {
        let at = ts(1_200);
        for &(state, action, by, want) in TABLE {
            let before = alert_in(state);
            let mut alert = before.clone();
            let got = alert.apply(action, by, at);
            let case = format!("{state} --{action} by {by}-->");
            match want {
                None => {
                    let err = got.expect_err(&case);
                    assert_eq!(alert, before, "{case}: a refusal changes nothing");
                    assert_eq!(
                        (err.from, err.action, err.by),
                        (state, action, by),
                        "{case}"
                    );
                    assert!(err.to_string().contains(state.as_str()), "{case}: {err}");
                }
                Some(to) => {
                    let t = got.unwrap_or_else(|e| panic!("{case}: {e}"));
                    assert_eq!(
                        t,
                        Transition {
                            action,
                            from: state,
                            to
                        },
                        "{case}"
                    );
                    assert_eq!(alert.state, to, "{case}");
                    // What else changed: exactly the fields the doc table names.
                    let mut want = before.clone();
                    want.state = to;
                    match action {
                        AlertAction::Repeated => {
                            want.count = 2;
                            want.last_seen_at = at;
                        }
                        AlertAction::Acknowledged => want.acknowledged_at = Some(at),
                        AlertAction::Escalated => {
                            want.escalated_at = Some(at);
                            want.roles = vec![Role::Duty, Role::Police];
                        }
                        AlertAction::Resolved => want.resolved_at = Some(at),
                        AlertAction::Raised | AlertAction::Noted => {}
                    }
                    assert_eq!(alert, want, "{case}");
                }
            }
        }
    }

    #[test]
    fn every_escalation_routes_to_the_police_desk_once() {
        for by in [By::Person, By::Rules] {
            let mut a = alert_in(AlertState::Open);
            a.apply(AlertAction::Escalated, by, ts(1_200)).unwrap();
            assert_eq!(a.roles, [Role::Duty, Role::Police], "by {by}");
            assert_eq!(a.escalation_due(), None, "by {by}: nothing pending");
            assert_eq!(a.ack_deadline, Some(ts(1_120)), "the deadline is kept");
            // Already routed there: not twice.
            let mut a = alert_in(AlertState::Open);
            a.roles = vec![Role::Police, Role::Duty];
            a.apply(AlertAction::Escalated, by, ts(1_200)).unwrap();
            assert_eq!(a.roles, [Role::Police, Role::Duty], "by {by}");
        }
    }

    #[test]
    fn the_deadline_escalates_only_once_it_has_passed() {
        let mut a = alert_in(AlertState::Open);
        assert_eq!(a.escalation_due(), Some(ts(1_120)));
        let err = a
            .apply(AlertAction::Escalated, By::Rules, ts(1_119))
            .unwrap_err();
        assert_eq!(err.why, "its acknowledgement deadline has not passed");
        a.apply(AlertAction::Escalated, By::Rules, ts(1_120))
            .unwrap();
        assert_eq!(a.escalated_at, Some(ts(1_120)));

        let mut none = alert_in(AlertState::Open);
        none.ack_deadline = None;
        assert_eq!(none.escalation_due(), None);
        assert!(
            none.apply(AlertAction::Escalated, By::Rules, ts(9_999))
                .is_err()
        );
        // A person may escalate before the deadline, or without one.
        none.apply(AlertAction::Escalated, By::Person, ts(1_001))
            .unwrap();
        assert_eq!(none.state, AlertState::Escalated);
    }

    #[test]
    fn a_deadline_is_pending_only_while_open() {
        for state in AlertState::ALL {
            let a = alert_in(*state);
            let want = (*state == AlertState::Open).then(|| ts(1_120));
            assert_eq!(a.escalation_due(), want, "{state}");
        }
    }

    #[test]
    fn repeats_count_and_keep_the_latest_time() {
        let mut a = alert_in(AlertState::Acknowledged);
        a.apply(AlertAction::Repeated, By::Rules, ts(1_050))
            .unwrap();
        // Out of order: counted, but the last-seen time does not go back.
        a.apply(AlertAction::Repeated, By::Rules, ts(1_040))
            .unwrap();
        assert_eq!((a.count, a.last_seen_at), (3, ts(1_050)));
        a.count = u32::MAX;
        a.apply(AlertAction::Repeated, By::Rules, ts(1_060))
            .unwrap();
        assert_eq!(a.count, u32::MAX);
        assert_eq!(a.state, AlertState::Acknowledged);
    }

    #[test]
    fn a_refusal_says_what_and_why() {
        let mut a = alert_in(AlertState::Resolved);
        let err = a
            .apply(AlertAction::Acknowledged, By::Person, ts(1_200))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "alert a1: cannot acknowledge an alert that is resolved \
             (a resolved alert takes only notes)"
        );
    }

    #[test]
    fn alert_ids_sort_by_time() {
        let a = AlertId::new(Timestamp::from_second(1_000).unwrap(), u64::MAX);
        let b = AlertId::new(Timestamp::from_second(1_001).unwrap(), 0);
        assert!(a < b);
        assert_eq!(a.as_str().len(), 12 + 1 + 16);
    }
}
