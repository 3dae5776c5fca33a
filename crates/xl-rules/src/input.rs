//! What the engine is fed. These types are the engine's own, so it needs nothing but `xl-core`:
//! the hub maps stored gate events, vision events and health changes (devices, recorders) onto
//! them.

use jiff::Timestamp;
use xl_core::gate::{DenyReason, EventPhase};
use xl_core::{CameraId, CommunityId, GateEventKind, GateId};

/// One thing that happened, on the hub's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A stored gate event (already durable). `event_id` is its store id.
    Gate(GateInput),
    /// A vision event of a camera, already filtered to zone events of persons.
    Zone(ZoneInput),
    /// A gate's health changed (`online = false` after silence, `true` when heard again).
    GateHealth {
        gate: GateId,
        community: CommunityId,
        online: bool,
        at: Timestamp,
    },
    /// A camera's stream went down / came back (raw; the engine debounces).
    CameraHealth {
        camera: CameraId,
        community: CommunityId,
        online: bool,
        at: Timestamp,
    },
    /// A camera's recording stopped (`recording = false`, with a short reason for people, never a
    /// file path) or runs again (`true`).
    RecordingHealth {
        camera: CameraId,
        community: CommunityId,
        recording: bool,
        reason: String,
        at: Timestamp,
    },
}

impl Input {
    /// When it happened (the hub's clock).
    pub fn at(&self) -> Timestamp {
        match self {
            Input::Gate(g) => g.at,
            Input::Zone(z) => z.at,
            Input::GateHealth { at, .. }
            | Input::CameraHealth { at, .. }
            | Input::RecordingHealth { at, .. } => *at,
        }
    }

    /// The community it happened in.
    pub fn community(&self) -> &CommunityId {
        match self {
            Input::Gate(g) => &g.community,
            Input::Zone(z) => &z.community,
            Input::GateHealth { community, .. }
            | Input::CameraHealth { community, .. }
            | Input::RecordingHealth { community, .. } => community,
        }
    }
}

/// A gate event, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateInput {
    /// The gate event's id in the store; becomes the alert's `source_event`.
    pub event_id: String,
    pub gate: GateId,
    pub community: CommunityId,
    /// The camera that watches the gate, if the gate's config names one: the alert carries it so
    /// that its snapshot can be attached.
    pub camera: Option<CameraId>,
    pub kind: GateEventKind,
    pub deny_reason: Option<DenyReason>,
    /// `Stop` (the condition ended: a tamper restored, a door closed again) never raises.
    pub phase: Option<EventPhase>,
    /// The door of a multi-door controller, when the device says.
    pub door: Option<u32>,
    /// The hub's clock (the event's `received_at`), the clock vision events use too.
    pub at: Timestamp,
}

/// A zone event of a person (or of a crowd of persons) on one camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneInput {
    /// The vision event's id; becomes the alert's `source_event`.
    pub event_id: String,
    pub camera: CameraId,
    pub community: CommunityId,
    /// The zone's id, as written in the camera's config.
    pub zone: String,
    pub what: ZoneWhat,
    pub at: Timestamp,
}

/// What happened in the zone. xl-vision already applies the zone's schedule, dwell limit and
/// count limit, so each of these is already a condition worth an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneWhat {
    /// A person track entered the zone while its schedule is on (`person.intrusion`).
    Entered { track: u64 },
    /// A person track stayed longer than the zone's dwell limit (`person.loitering`).
    DwellExceeded { track: u64, dwell_ms: u64 },
    /// More persons than the zone's limit, for the zone's duration (`crowd.gathering`).
    CountOverLimit { count: u32, limit: u32 },
    /// The count fell back to the limit or below. The engine ignores it: a crowd alert is not a
    /// health condition and is resolved by a person.
    CountBelowLimit { count: u32 },
}
