//! Zones: polygons on a camera's image, each with an optional weekly schedule and its own
//! limits, that turn tracks into vision events (entered, left, dwell, count).
//!
//! A track's reference point is the bottom centre of its box, where a standing person's feet
//! are: a person walking past in front of a zone overlaps it with their body but is not in it.
//! A track is in a zone from the update its point is first inside until its point has been
//! outside for `leave_after_secs` (so someone standing on the edge does not enter and leave
//! every frame), or until the track ends. Lost tracks stay where they were last seen.
//!
//! Outside its schedule a zone is off: it forgets who was inside without sending events (the
//! schedule ending is not someone leaving), and when it turns on, tracks already inside enter
//! then, because a person in a zone when its schedule starts is exactly what an intrusion rule
//! wants to hear about. Schedules are read in the time zone of the camera's community.
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use xl_core::CameraId;
pub use xl_core::zone::{Day, ObjectClass, ScheduleWindow, Zone, ZoneId};

use crate::error::VisionError;
use crate::event::{TrackId, VisionEvent, millis};
use crate::track::Track;

/// One zone of a camera (`[[cameras.zones]]` in the hub's config): [`xl_core::zone::Zone`],
/// which holds the data and its checks; the name is the one config and this crate used before
/// zones moved to `xl-core` with the rest of the topology.
pub type ZoneConfig = Zone;

/// Whether `(x, y)` is inside the polygon, by the even-odd rule (a ray to the right crosses
/// the boundary an odd number of times); right for concave polygons too.
pub fn point_in_polygon(x: f32, y: f32, polygon: &[[f32; 2]]) -> bool {
    let mut inside = false;
    let mut j = polygon.len().wrapping_sub(1);
    for (i, &[xi, yi]) in polygon.iter().enumerate() {
        let [xj, yj] = polygon[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// A track inside a zone.
#[derive(Debug, Clone)]
struct Member {
    track: TrackId,
    class: ObjectClass,
    entered_at: Timestamp,
    last_inside: Timestamp,
    dwell_reported: bool,
    /// Scratch for one update: the track is still live, and its point is inside now.
    live: bool,
    inside_now: bool,
}

#[derive(Debug)]
struct ZoneState {
    config: ZoneConfig,
    dwell_limit: Option<SignedDuration>,
    count_limit_for: SignedDuration,
    leave_after: SignedDuration,
    active: bool,
    members: Vec<Member>,
    count: u32,
    over_limit_since: Option<Timestamp>,
    over_limit_reported: bool,
}

impl ZoneState {
    /// Turns the zone off: forgets who was inside, without events.
    fn switch_off(&mut self) {
        self.active = false;
        self.members.clear();
        self.count = 0;
        self.over_limit_since = None;
        self.over_limit_reported = false;
    }
}

/// One camera's zones.
#[derive(Debug)]
pub struct Zones {
    camera: CameraId,
    time_zone: TimeZone,
    zones: Vec<ZoneState>,
}

impl Zones {
    /// Validates the zones; `time_zone` is the community's, in which schedules are read.
    pub fn new(
        camera: CameraId,
        time_zone: TimeZone,
        configs: &[ZoneConfig],
    ) -> Result<Self, VisionError> {
        let mut zones: Vec<ZoneState> = Vec::with_capacity(configs.len());
        for config in configs {
            config.validate().map_err(|e| VisionError::InvalidZone {
                zone: config.id.to_string(),
                reason: e.to_string(),
            })?;
            if zones.iter().any(|z| z.config.id == config.id) {
                return Err(VisionError::InvalidZone {
                    zone: config.id.to_string(),
                    reason: format!("camera {camera} has two zones with this id"),
                });
            }
            zones.push(ZoneState {
                dwell_limit: config.dwell_limit_secs.map(SignedDuration::from_secs_f64),
                count_limit_for: SignedDuration::from_secs_f64(config.count_limit_secs),
                leave_after: SignedDuration::from_secs_f64(config.leave_after_secs),
                config: config.clone(),
                active: false,
                members: Vec::new(),
                count: 0,
                over_limit_since: None,
                over_limit_reported: false,
            });
        }
        Ok(Zones {
            camera,
            time_zone,
            zones,
        })
    }

    /// Tracks in a zone now (0 for an unknown or switched-off zone).
    pub fn count(&self, zone: &ZoneId) -> u32 {
        self.zones
            .iter()
            .find(|z| &z.config.id == zone)
            .map_or(0, |z| z.count)
    }

    /// Feeds the camera's tracks after a tracker update at `at` (all of them: a track missing
    /// from `tracks` has ended) and appends the zone events to `events`.
    pub fn update(&mut self, at: Timestamp, tracks: &[Track], events: &mut Vec<VisionEvent>) {
        let local = self.time_zone.to_datetime(at);
        for zone in &mut self.zones {
            let on = zone.config.schedule.is_empty()
                || zone.config.schedule.iter().any(|w| w.contains(local));
            if !on {
                if zone.active {
                    zone.switch_off();
                }
                continue;
            }
            zone.active = true;
            update_zone(&self.camera, zone, at, tracks, events);
        }
    }
}

fn update_zone(
    camera: &CameraId,
    zone: &mut ZoneState,
    at: Timestamp,
    tracks: &[Track],
    events: &mut Vec<VisionEvent>,
) {
    for member in &mut zone.members {
        member.live = false;
        member.inside_now = false;
    }
    for track in tracks {
        if !zone.config.classes.contains(&track.class) {
            continue;
        }
        // Feet cut off by the bottom of the image stand on its last row.
        let (x, y) = track.bbox.bottom_centre();
        let inside = point_in_polygon(
            x.clamp(0.0, 1.0),
            y.clamp(0.0, 0.9999),
            &zone.config.polygon,
        );
        match zone.members.iter_mut().find(|m| m.track == track.id) {
            Some(member) => {
                member.live = true;
                member.inside_now = inside;
                if inside {
                    member.last_inside = at;
                }
            }
            None if inside => {
                zone.members.push(Member {
                    track: track.id,
                    class: track.class,
                    entered_at: at,
                    last_inside: at,
                    dwell_reported: false,
                    live: true,
                    inside_now: true,
                });
                events.push(VisionEvent::EnteredZone {
                    camera: camera.clone(),
                    track: track.id,
                    zone: zone.config.id.clone(),
                    class: track.class,
                    at,
                });
            }
            None => {}
        }
    }

    let leave_after = zone.leave_after;
    zone.members.retain(|m| {
        let left = !m.live || (!m.inside_now && at.duration_since(m.last_inside) >= leave_after);
        if left {
            events.push(VisionEvent::LeftZone {
                camera: camera.clone(),
                track: m.track,
                zone: zone.config.id.clone(),
                class: m.class,
                at,
                dwell_ms: millis(m.last_inside.duration_since(m.entered_at)),
            });
        }
        !left
    });

    if let Some(limit) = zone.dwell_limit {
        for member in zone.members.iter_mut().filter(|m| !m.dwell_reported) {
            let dwell = member.last_inside.duration_since(member.entered_at);
            if dwell >= limit {
                member.dwell_reported = true;
                events.push(VisionEvent::DwellExceeded {
                    camera: camera.clone(),
                    track: member.track,
                    zone: zone.config.id.clone(),
                    class: member.class,
                    at,
                    dwell_ms: millis(dwell),
                    limit_ms: millis(limit),
                });
            }
        }
    }

    let count = zone.members.len() as u32;
    if count != zone.count {
        events.push(VisionEvent::CountChanged {
            camera: camera.clone(),
            zone: zone.config.id.clone(),
            at,
            count,
            previous: zone.count,
        });
        zone.count = count;
    }

    match zone.config.count_limit {
        Some(limit) if count > limit => {
            let since = *zone.over_limit_since.get_or_insert(at);
            let over = at.duration_since(since);
            if !zone.over_limit_reported && over >= zone.count_limit_for {
                zone.over_limit_reported = true;
                events.push(VisionEvent::CountOverLimit {
                    camera: camera.clone(),
                    zone: zone.config.id.clone(),
                    at,
                    count,
                    limit,
                    over_ms: millis(over),
                });
            }
        }
        _ => {
            zone.over_limit_since = None;
            zone.over_limit_reported = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil;
    use jiff::tz::Offset;
    use serde::Deserialize;

    use super::*;
    use crate::alloc_count::allocations_in;
    use crate::geom::NormRect;
    use crate::track::{Detection, TrackState, Tracker, TrackerConfig};

    const SQUARE: [[f32; 2]; 4] = [[0.2, 0.2], [0.8, 0.2], [0.8, 0.8], [0.2, 0.8]];
    /// A U open at the top: arms at x 0.1-0.3 and 0.7-0.9, joined below y 0.7.
    const U_SHAPE: [[f32; 2]; 8] = [
        [0.1, 0.1],
        [0.3, 0.1],
        [0.3, 0.7],
        [0.7, 0.7],
        [0.7, 0.1],
        [0.9, 0.1],
        [0.9, 0.9],
        [0.1, 0.9],
    ];

    fn camera() -> CameraId {
        CameraId::new("cam-1").unwrap()
    }

    fn beijing() -> TimeZone {
        TimeZone::fixed(Offset::from_hours(8).unwrap())
    }

    fn zone(id: &str, polygon: &[[f32; 2]]) -> ZoneConfig {
        ZoneConfig::new(ZoneId::new(id).unwrap(), polygon.to_vec())
    }

    /// Second `s` after a fixed instant (a Monday, 12:00 in Beijing).
    fn t(s: f64) -> Timestamp {
        let start: Timestamp = "2026-05-04T04:00:00Z".parse().unwrap();
        start + SignedDuration::from_secs_f64(s)
    }

    /// A confirmed person track whose feet are at `(x, y)`.
    fn track(id: u64, x: f32, y: f32) -> Track {
        Track {
            id: TrackId(id),
            class: ObjectClass::Person,
            state: TrackState::Tracked,
            bbox: NormRect::new(x - 0.04, y - 0.25, x + 0.04, y),
            velocity: (0.0, 0.0),
            score: 0.9,
            first_seen: t(0.0),
            last_seen: t(0.0),
        }
    }

    fn kinds(events: &[VisionEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| {
                let json = serde_json::to_value(e).unwrap();
                let mut s = json["kind"].as_str().unwrap().to_owned();
                if let Some(track) = e.track() {
                    s += &format!(" {track}");
                }
                if let Some(count) = json.get("count") {
                    s += &format!(" ={count}");
                }
                s
            })
            .collect()
    }

    #[test]
    fn point_in_polygon_handles_convex_concave_and_either_winding() {
        let mut u_reversed = U_SHAPE;
        u_reversed.reverse();
        let cases = [
            ((0.2, 0.5), true),   // in the U's left arm
            ((0.8, 0.3), true),   // in the U's right arm
            ((0.5, 0.3), false),  // in the U's notch, inside its bounding box
            ((0.5, 0.69), false), // just above the notch's floor
            ((0.5, 0.8), true),   // in the U's base
            ((0.95, 0.5), false),
            ((0.05, 0.05), false),
        ];
        for ((x, y), in_u) in cases {
            assert_eq!(point_in_polygon(x, y, &U_SHAPE), in_u, "({x}, {y}) in U");
            assert_eq!(
                point_in_polygon(x, y, &u_reversed),
                in_u,
                "({x}, {y}) in reversed U"
            );
        }
        assert!(point_in_polygon(0.5, 0.5, &SQUARE));
        assert!(!point_in_polygon(0.1, 0.5, &SQUARE));
        let triangle = [[0.0, 1.0], [0.5, 0.0], [1.0, 1.0]];
        assert!(point_in_polygon(0.5, 0.9, &triangle));
        assert!(!point_in_polygon(0.1, 0.2, &triangle));
    }

    #[test]
    fn bad_zones_are_refused_with_the_zone_named() {
        let mut few = zone("gate-a", &[[0.1, 0.1], [0.5, 0.5]]);
        let out = zone("yard", &[[0.1, 0.1], [1.2, 0.1], [0.5, 0.5]]);
        let nan = zone("yard", &[[0.1, 0.1], [f32::NAN, 0.1], [0.5, 0.5]]);
        let flat = zone("lane", &[[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]]);
        let mut no_days = zone("shed", &SQUARE);
        no_days.schedule.push(ScheduleWindow {
            days: vec![],
            start: civil::time(22, 0, 0, 0),
            end: civil::time(6, 0, 0, 0),
        });
        let mut dwell = zone("shed", &SQUARE);
        dwell.dwell_limit_secs = Some(-1.0);
        let bowtie = zone("yard", &[[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.5]]);
        let cases = [
            (
                &few,
                r#"zone "gate-a": polygon: 2 corners; a zone needs at least 3"#,
            ),
            (
                &out,
                r#"zone "yard": polygon[1]: [1.2, 0.1] is outside the image"#,
            ),
            (
                &nan,
                r#"zone "yard": polygon[1]: [NaN, 0.1] is outside the image"#,
            ),
            (&flat, r#"zone "lane": polygon: no area"#),
            (&bowtie, r#"zone "yard": polygon: edges 0-1 and 2-3 cross"#),
            (&no_days, r#"zone "shed": schedule[0].days: empty"#),
            (&dwell, r#"zone "shed": dwell_limit_secs: must be between"#),
        ];
        for (config, message) in cases {
            let err = Zones::new(camera(), beijing(), std::slice::from_ref(config)).unwrap_err();
            assert!(err.to_string().starts_with(message), "{err}");
            assert_eq!(err.kind(), xl_core::ErrorKind::InvalidInput);
        }
        few.polygon = SQUARE.to_vec();
        let err = Zones::new(camera(), beijing(), &[few.clone(), few]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"zone "gate-a": camera cam-1 has two zones with this id"#
        );
    }

    #[test]
    fn zones_read_from_toml_with_defaults_and_an_overnight_schedule() {
        #[derive(Deserialize)]
        struct Camera {
            zones: Vec<ZoneConfig>,
        }
        let toml = r#"
            [[zones]]
            id = "bike-shed"
            polygon = [[0.1, 0.5], [0.6, 0.5], [0.6, 1.0], [0.1, 1.0]]
            dwell_limit_secs = 60
            schedule = [
              { days = ["mon", "tue", "wed", "thu", "fri"], start = "22:00", end = "06:00" },
              { days = ["sat", "sun"], start = "00:00", end = "00:00" },
            ]

            [[zones]]
            id = "lobby"
            polygon = [[0, 0], [1, 0], [1, 1]]
            classes = ["person", "vehicle"]
            count_limit = 5
            count_limit_secs = 30
        "#;
        let camera_config: Camera = toml::from_str(toml).unwrap();
        let [shed, lobby] = &camera_config.zones[..] else {
            panic!()
        };
        assert_eq!(shed.classes, [ObjectClass::Person]);
        assert_eq!(shed.dwell_limit_secs, Some(60.0));
        assert_eq!(shed.leave_after_secs, 1.0);
        assert_eq!(shed.schedule[0].start, civil::time(22, 0, 0, 0));
        assert_eq!(lobby.count_limit, Some(5));
        assert!(lobby.schedule.is_empty());
        Zones::new(camera(), beijing(), &camera_config.zones).unwrap();

        for (bad, needle) in [
            (
                "id = \"a\"\npolygon = [[0,0],[1,0],[1,1]]\ndwell = 3",
                "dwell",
            ),
            ("id = \"a b\"\npolygon = [[0,0],[1,0],[1,1]]", "a b"),
            (
                "id = \"a\"\npolygon = [[0,0],[1,0],[1,1]]\nclasses = [\"cat\"]",
                "cat",
            ),
        ] {
            let err = toml::from_str::<ZoneConfig>(bad).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn the_weekly_schedule_is_read_in_the_communitys_time_zone() {
        let night = ScheduleWindow {
            days: vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
            start: civil::time(22, 0, 0, 0),
            end: civil::time(6, 0, 0, 0),
        };
        let day = ScheduleWindow {
            days: vec![Day::Sat],
            start: civil::time(9, 0, 0, 0),
            end: civil::time(17, 30, 0, 0),
        };
        let at = |s: &str| s.parse::<civil::DateTime>().unwrap();
        // 2026-05-04 is a Monday.
        let cases = [
            (&night, "2026-05-04T21:59:59", false),
            (&night, "2026-05-04T22:00:00", true),
            (&night, "2026-05-05T05:59:59", true), // Monday night, Tuesday morning
            (&night, "2026-05-05T06:00:00", false),
            (&night, "2026-05-09T01:00:00", true), // Friday night runs into Saturday
            (&night, "2026-05-09T23:00:00", false), // Saturday night is off
            (&night, "2026-05-04T01:00:00", false), // Sunday night is off
            (&day, "2026-05-09T09:00:00", true),
            (&day, "2026-05-09T17:30:00", false),
            (&day, "2026-05-10T12:00:00", false),
        ];
        for (window, local, on) in cases {
            assert_eq!(window.contains(at(local)), on, "{local}");
        }
        // 14:30 UTC on a Monday is 22:30 in Beijing: on there, off in UTC.
        let instant: Timestamp = "2026-05-04T14:30:00Z".parse().unwrap();
        assert!(night.contains(beijing().to_datetime(instant)));
        assert!(!night.contains(TimeZone::UTC.to_datetime(instant)));
    }

    #[test]
    fn a_person_walking_through_enters_and_leaves_once_by_their_feet() {
        let mut zones = Zones::new(camera(), beijing(), &[zone("yard", &SQUARE)]).unwrap();
        let mut events = Vec::new();
        // Standing just below the yard: the body overlaps it, the feet are outside.
        zones.update(t(-1.0), &[track(9, 0.5, 0.9)], &mut events);
        assert!(events.is_empty());
        // Walking down the middle at 0.05 a second; the yard spans y 0.2 to 0.8.
        for s in 0..20 {
            let y = 0.025 + 0.05 * s as f32;
            zones.update(t(f64::from(s)), &[track(1, 0.5, y)], &mut events);
        }
        assert_eq!(
            kinds(&events),
            [
                "entered_zone 1",
                "count_changed =1",
                "left_zone 1",
                "count_changed =0"
            ]
        );
        let VisionEvent::EnteredZone { at: entered, .. } = events[0] else {
            panic!()
        };
        let VisionEvent::LeftZone {
            at: left, dwell_ms, ..
        } = events[2]
        else {
            panic!()
        };
        // Feet are inside from second 4 (y 0.225) to second 15 (y 0.775); at second 16 they
        // have been out for leave_after_secs (1 s) since last seen inside.
        assert_eq!(entered, t(4.0));
        assert_eq!(dwell_ms, 11_000);
        assert_eq!(left, t(16.0));
    }

    #[test]
    fn standing_on_the_edge_does_not_enter_and_leave_every_frame() {
        let mut zones = Zones::new(camera(), beijing(), &[zone("yard", &SQUARE)]).unwrap();
        let mut events = Vec::new();
        for i in 0..40 {
            // Feet jitter across the top edge every frame (10 frames/s).
            let y = if i % 2 == 0 { 0.21 } else { 0.19 };
            zones.update(t(i as f64 / 10.0), &[track(1, 0.5, y)], &mut events);
        }
        assert_eq!(kinds(&events), ["entered_zone 1", "count_changed =1"]);
        assert_eq!(zones.count(&ZoneId::new("yard").unwrap()), 1);
    }

    #[test]
    fn a_track_that_ends_inside_has_left() {
        let mut zones = Zones::new(camera(), beijing(), &[zone("yard", &SQUARE)]).unwrap();
        let mut events = Vec::new();
        zones.update(
            t(0.0),
            &[track(1, 0.5, 0.5), track(2, 0.4, 0.5)],
            &mut events,
        );
        zones.update(t(3.0), &[track(2, 0.4, 0.5)], &mut events);
        assert_eq!(
            kinds(&events),
            [
                "entered_zone 1",
                "entered_zone 2",
                "count_changed =2",
                "left_zone 1",
                "count_changed =1"
            ]
        );
        let VisionEvent::LeftZone { at, dwell_ms, .. } = events[3] else {
            panic!()
        };
        assert_eq!(
            (at, dwell_ms),
            (t(3.0), 0),
            "last seen inside when it entered"
        );
    }

    #[test]
    fn dwell_is_reported_once_per_visit_when_it_crosses_the_limit() {
        let mut config = zone("bike-shed", &SQUARE);
        config.dwell_limit_secs = Some(30.0);
        let mut zones = Zones::new(camera(), beijing(), &[config]).unwrap();
        let mut events = Vec::new();
        for s in 0..=60 {
            zones.update(t(f64::from(s)), &[track(4, 0.5, 0.5)], &mut events);
        }
        let dwells: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                VisionEvent::DwellExceeded {
                    at,
                    dwell_ms,
                    limit_ms,
                    track,
                    ..
                } => Some((*at, *dwell_ms, *limit_ms, *track)),
                _ => None,
            })
            .collect();
        assert_eq!(dwells, [(t(30.0), 30_000, 30_000, TrackId(4))]);
        // Leaves, comes back: a new visit, counted from zero.
        events.clear();
        for s in 61..=63 {
            zones.update(t(f64::from(s)), &[track(4, 0.5, 0.95)], &mut events);
        }
        for s in 64..=94 {
            zones.update(t(f64::from(s)), &[track(4, 0.5, 0.5)], &mut events);
        }
        assert_eq!(
            kinds(&events),
            [
                "left_zone 4",
                "count_changed =0",
                "entered_zone 4",
                "count_changed =1",
                "dwell_exceeded 4"
            ]
        );
        assert_eq!(events[4].at(), t(94.0));
    }

    #[test]
    fn a_crowd_is_reported_when_it_stays_over_the_limit() {
        let mut config = zone("gate-square", &SQUARE);
        config.count_limit = Some(2);
        config.count_limit_secs = 10.0;
        config.leave_after_secs = 0.0;
        let mut zones = Zones::new(camera(), beijing(), &[config]).unwrap();
        let mut events = Vec::new();
        let people = |n: u64| {
            (1..=n)
                .map(|i| track(i, 0.25 + 0.1 * i as f32, 0.5))
                .collect::<Vec<_>>()
        };
        let over = |events: &[VisionEvent]| {
            events
                .iter()
                .filter_map(|e| match e {
                    VisionEvent::CountOverLimit {
                        at,
                        count,
                        limit,
                        over_ms,
                        ..
                    } => Some((*at, *count, *limit, *over_ms)),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        zones.update(t(0.0), &people(2), &mut events);
        zones.update(t(1.0), &people(3), &mut events);
        zones.update(t(5.0), &people(4), &mut events);
        assert!(over(&events).is_empty(), "over the limit for 4 s only");
        zones.update(t(11.0), &people(3), &mut events);
        zones.update(t(20.0), &people(4), &mut events);
        assert_eq!(
            over(&events),
            [(t(11.0), 3, 2, 10_000)],
            "once, 10 s after it went over"
        );
        let counts: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                VisionEvent::CountChanged {
                    count, previous, ..
                } => Some((*previous, *count)),
                _ => None,
            })
            .collect();
        assert_eq!(counts, [(0, 2), (2, 3), (3, 4), (4, 3), (3, 4)]);
        // Back to the limit re-arms it.
        events.clear();
        zones.update(t(21.0), &people(2), &mut events);
        zones.update(t(22.0), &people(3), &mut events);
        zones.update(t(32.0), &people(3), &mut events);
        assert_eq!(over(&events), [(t(32.0), 3, 2, 10_000)]);
    }

    #[test]
    fn outside_its_schedule_a_zone_is_silent_and_forgets_and_then_sees_who_is_there() {
        let mut config = zone("store-room", &SQUARE);
        // Weeknights from 22:00 Beijing time; t(0) is Monday 12:00 there.
        config.schedule.push(ScheduleWindow {
            days: vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
            start: civil::time(22, 0, 0, 0),
            end: civil::time(6, 0, 0, 0),
        });
        let mut zones = Zones::new(camera(), beijing(), &[config]).unwrap();
        let mut events = Vec::new();
        let hours = |h: f64| t(h * 3600.0);
        zones.update(hours(0.0), &[track(1, 0.5, 0.5)], &mut events);
        zones.update(hours(9.99), &[track(1, 0.5, 0.5)], &mut events);
        assert!(events.is_empty(), "off during the day");
        zones.update(hours(10.0), &[track(1, 0.5, 0.5)], &mut events);
        assert_eq!(
            kinds(&events),
            ["entered_zone 1", "count_changed =1"],
            "inside at 22:00"
        );
        events.clear();
        zones.update(hours(17.99), &[track(1, 0.5, 0.5)], &mut events);
        zones.update(hours(18.0), &[track(1, 0.5, 0.5)], &mut events);
        assert!(events.is_empty(), "06:00: switched off without a left_zone");
        assert_eq!(zones.count(&ZoneId::new("store-room").unwrap()), 0);
        zones.update(hours(34.0), &[track(1, 0.5, 0.5)], &mut events);
        assert_eq!(
            kinds(&events),
            ["entered_zone 1", "count_changed =1"],
            "Tuesday 22:00"
        );
    }

    #[test]
    fn a_zone_watches_only_its_classes() {
        let mut zones = Zones::new(camera(), beijing(), &[zone("yard", &SQUARE)]).unwrap();
        let mut events = Vec::new();
        let car = Track {
            class: ObjectClass::Vehicle,
            ..track(1, 0.5, 0.5)
        };
        zones.update(t(0.0), &[car], &mut events);
        assert!(events.is_empty());
    }

    #[test]
    fn feet_cut_off_by_the_bottom_of_the_image_are_in_a_zone_along_it() {
        let floor = [[0.0, 0.6], [1.0, 0.6], [1.0, 1.0], [0.0, 1.0]];
        let mut zones = Zones::new(camera(), beijing(), &[zone("floor", &floor)]).unwrap();
        let mut events = Vec::new();
        zones.update(t(0.0), &[track(1, 0.5, 1.0)], &mut events);
        assert_eq!(kinds(&events), ["entered_zone 1", "count_changed =1"]);
    }

    #[test]
    fn tracker_and_zones_together_turn_detections_into_events() {
        let mut tracker = Tracker::new(camera(), TrackerConfig::default()).unwrap();
        let mut zones = Zones::new(camera(), beijing(), &[zone("yard", &SQUARE)]).unwrap();
        let mut events = Vec::new();
        // A person walks left to right across the yard at 10 detections a second, then the
        // detector stops seeing them (out of the picture).
        for i in 0..120 {
            let at = t(f64::from(i) / 10.0);
            let x = 0.05 + 0.008 * i as f32;
            let detections: Vec<Detection> = if x < 0.95 {
                vec![Detection {
                    bbox: NormRect::new(x - 0.04, 0.3, x + 0.04, 0.6),
                    score: 0.9,
                    class: ObjectClass::Person,
                }]
            } else {
                vec![]
            };
            let tracks = tracker.update(at, &detections, &mut events);
            zones.update(at, tracks, &mut events);
        }
        tracker.end_all(t(20.0), &mut events);
        assert_eq!(
            kinds(&events),
            [
                "track_started 1",
                "entered_zone 1",
                "count_changed =1",
                "left_zone 1",
                "count_changed =0",
                "track_ended 1"
            ]
        );
    }

    #[test]
    fn steady_zone_updates_allocate_nothing() {
        let mut config = zone("yard", &U_SHAPE);
        config.dwell_limit_secs = Some(3600.0);
        config.count_limit = Some(10);
        let mut zones = Zones::new(camera(), beijing(), &[config, zone("lane", &SQUARE)]).unwrap();
        let mut events = Vec::with_capacity(16);
        let tracks = [track(1, 0.2, 0.5), track(2, 0.5, 0.5), track(3, 0.5, 0.85)];
        zones.update(t(0.0), &tracks, &mut events);
        let allocations = allocations_in(|| {
            for s in 1..100 {
                zones.update(t(f64::from(s) / 10.0), &tracks, &mut events);
            }
        });
        assert_eq!(allocations, 0);
    }
}
