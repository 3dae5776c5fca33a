//! Alerts: what a person must act on, and the words every crate uses for them.
//!
//! The rules engine (`xl-rules`) decides when an alert is raised, repeated, escalated or
//! resolved; the store (`xl-store`) keeps alerts, their history and the outbox; the API and the
//! publishers (MQTT, webhooks, SSE) read [`OutboxEntry`]s. The JSON shapes here are contracts
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
        /// A person track in a zone during the zone's schedule.
        PersonIntrusion = "person.intrusion",
        /// A person stayed in a zone longer than its dwell limit.
        PersonLoitering = "person.loitering",
        /// More people in a zone than its limit, for its duration.
        CrowdGathering = "crowd.gathering",
    }
);

impl AlertKind {
    /// Health alerts resolve themselves when the condition clears.
    pub fn is_health(self) -> bool {
        matches!(self, AlertKind::GateOffline | AlertKind::CameraOffline)
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
    fn alert_ids_sort_by_time() {
        let a = AlertId::new(Timestamp::from_second(1_000).unwrap(), u64::MAX);
        let b = AlertId::new(Timestamp::from_second(1_001).unwrap(), 0);
        assert!(a < b);
        assert_eq!(a.as_str().len(), 12 + 1 + 16);
    }
}
