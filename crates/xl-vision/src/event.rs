//! What the vision pipeline tells the rest of the hub: track and zone events.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use xl_core::CameraId;

use crate::geom::NormRect;
use crate::zone::ZoneId;

/// What a detection or a track is (defined in `xl-core`, where zones name the classes they
/// watch).
pub use xl_core::zone::ObjectClass;

/// A track's id, unique within its camera for the tracker's lifetime. Ids are handed out when a
/// track is confirmed, 1, 2, 3... so a tentative track that never confirms uses none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrackId(pub u64);

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One thing the vision pipeline saw, for the rules engine. Serialised with a snake_case `kind`
/// field (`{"kind":"entered_zone","camera":"cam-1","track":7,...}`). `at` is the hub's clock
/// (the frame's `received_at`), the same clock gate events use, so the two can be joined.
/// Durations are whole milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VisionEvent {
    /// A track was confirmed (seen in enough frames to be believed).
    TrackStarted {
        camera: CameraId,
        track: TrackId,
        class: ObjectClass,
        at: Timestamp,
        bbox: NormRect,
    },
    /// A track was lost for longer than the tracker keeps lost tracks.
    TrackEnded {
        camera: CameraId,
        track: TrackId,
        class: ObjectClass,
        at: Timestamp,
        /// When the track was first detected (before it was confirmed).
        first_seen: Timestamp,
        /// When a detection last matched it.
        last_seen: Timestamp,
    },
    /// A track's reference point (bottom centre of its box) came inside a zone while the
    /// zone's schedule is on. A track already inside when the schedule starts enters then.
    EnteredZone {
        camera: CameraId,
        track: TrackId,
        zone: ZoneId,
        class: ObjectClass,
        at: Timestamp,
    },
    /// A track left a zone, or ended while inside it.
    LeftZone {
        camera: CameraId,
        track: TrackId,
        zone: ZoneId,
        class: ObjectClass,
        at: Timestamp,
        /// From entering to the last time it was seen inside.
        dwell_ms: u64,
    },
    /// A track has stayed in a zone for the zone's dwell limit; sent once per visit.
    DwellExceeded {
        camera: CameraId,
        track: TrackId,
        zone: ZoneId,
        class: ObjectClass,
        at: Timestamp,
        dwell_ms: u64,
        limit_ms: u64,
    },
    /// The number of tracks in a zone changed.
    CountChanged {
        camera: CameraId,
        zone: ZoneId,
        at: Timestamp,
        count: u32,
        previous: u32,
    },
    /// The number of tracks in a zone has stayed above the zone's count limit for the zone's
    /// count duration; sent once until the count drops to the limit or below.
    CountOverLimit {
        camera: CameraId,
        zone: ZoneId,
        at: Timestamp,
        count: u32,
        limit: u32,
        /// How long the count has been above the limit.
        over_ms: u64,
    },
}

impl VisionEvent {
    pub fn camera(&self) -> &CameraId {
        match self {
            VisionEvent::TrackStarted { camera, .. }
            | VisionEvent::TrackEnded { camera, .. }
            | VisionEvent::EnteredZone { camera, .. }
            | VisionEvent::LeftZone { camera, .. }
            | VisionEvent::DwellExceeded { camera, .. }
            | VisionEvent::CountChanged { camera, .. }
            | VisionEvent::CountOverLimit { camera, .. } => camera,
        }
    }

    pub fn at(&self) -> Timestamp {
        match self {
            VisionEvent::TrackStarted { at, .. }
            | VisionEvent::TrackEnded { at, .. }
            | VisionEvent::EnteredZone { at, .. }
            | VisionEvent::LeftZone { at, .. }
            | VisionEvent::DwellExceeded { at, .. }
            | VisionEvent::CountChanged { at, .. }
            | VisionEvent::CountOverLimit { at, .. } => *at,
        }
    }

    /// The track the event is about; none for zone counts.
    pub fn track(&self) -> Option<TrackId> {
        match self {
            VisionEvent::TrackStarted { track, .. }
            | VisionEvent::TrackEnded { track, .. }
            | VisionEvent::EnteredZone { track, .. }
            | VisionEvent::LeftZone { track, .. }
            | VisionEvent::DwellExceeded { track, .. } => Some(*track),
            VisionEvent::CountChanged { .. } | VisionEvent::CountOverLimit { .. } => None,
        }
    }

    /// The zone the event is about; none for track start and end.
    pub fn zone(&self) -> Option<&ZoneId> {
        match self {
            VisionEvent::EnteredZone { zone, .. }
            | VisionEvent::LeftZone { zone, .. }
            | VisionEvent::DwellExceeded { zone, .. }
            | VisionEvent::CountChanged { zone, .. }
            | VisionEvent::CountOverLimit { zone, .. } => Some(zone),
            VisionEvent::TrackStarted { .. } | VisionEvent::TrackEnded { .. } => None,
        }
    }
}

/// Whole milliseconds of a duration, 0 when negative (a clock that stepped back).
pub(crate) fn millis(d: jiff::SignedDuration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_a_snake_case_kind_and_flat_fields() {
        let event = VisionEvent::DwellExceeded {
            camera: CameraId::new("east-1").unwrap(),
            track: TrackId(7),
            zone: ZoneId::new("bike-shed").unwrap(),
            class: ObjectClass::Person,
            at: "2026-05-01T12:00:30Z".parse().unwrap(),
            dwell_ms: 30_000,
            limit_ms: 30_000,
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "dwell_exceeded",
                "camera": "east-1",
                "track": 7,
                "zone": "bike-shed",
                "class": "person",
                "at": "2026-05-01T12:00:30Z",
                "dwell_ms": 30000,
                "limit_ms": 30000,
            })
        );
        assert_eq!(event.track(), Some(TrackId(7)));
        // Events cross the bus between hubs: they read back as they were written.
        let back: VisionEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
        assert_eq!(event.zone().map(ZoneId::as_str), Some("bike-shed"));
    }

    #[test]
    fn count_events_have_no_track_and_track_events_no_zone() {
        let camera = CameraId::new("c").unwrap();
        let at = Timestamp::UNIX_EPOCH;
        let count = VisionEvent::CountChanged {
            camera: camera.clone(),
            zone: ZoneId::new("z").unwrap(),
            at,
            count: 2,
            previous: 1,
        };
        assert_eq!(count.track(), None);
        assert_eq!(
            serde_json::to_value(&count).unwrap()["kind"],
            "count_changed"
        );
        let started = VisionEvent::TrackStarted {
            camera,
            track: TrackId(1),
            class: ObjectClass::Face,
            at,
            bbox: NormRect::FULL,
        };
        assert_eq!(started.zone(), None);
        assert_eq!(started.at(), at);
    }

    #[test]
    fn negative_durations_count_as_zero_millis() {
        assert_eq!(millis(jiff::SignedDuration::from_millis(-5)), 0);
        assert_eq!(millis(jiff::SignedDuration::from_millis(1500)), 1500);
    }
}
