//! Zones as data: a polygon on a camera's image, the classes of tracks it watches, an optional
//! weekly schedule and its dwell and count limits, with the checks that make one usable.
//! `xl-vision` turns tracks into events with them (`xl_vision::zone::Zones`); the topology
//! keeps them with their camera ([`crate::topology::Camera::zones`]).

use jiff::civil::{self, Weekday};
use serde::{Deserialize, Deserializer, Serialize};

pub use crate::ids::ZoneId;
use crate::topology::{FieldError, check_name};

/// What a detection or a track is. Detectors map their own labels onto these (SSD's COCO
/// "person" is [`ObjectClass::Person`]; YuNet's faces are [`ObjectClass::Face`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectClass {
    Person,
    Face,
    Vehicle,
    Other,
}

/// A day of the week, as written in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl From<Weekday> for Day {
    fn from(day: Weekday) -> Self {
        match day {
            Weekday::Monday => Day::Mon,
            Weekday::Tuesday => Day::Tue,
            Weekday::Wednesday => Day::Wed,
            Weekday::Thursday => Day::Thu,
            Weekday::Friday => Day::Fri,
            Weekday::Saturday => Day::Sat,
            Weekday::Sunday => Day::Sun,
        }
    }
}

/// One weekly window when a zone is on, in the community's local time:
/// `{ days = ["mon", "fri"], start = "22:00", end = "06:00" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleWindow {
    /// Days the window starts on; an overnight window runs on into the next morning.
    pub days: Vec<Day>,
    /// Local time the window opens, "HH:MM" or "HH:MM:SS".
    pub start: civil::Time,
    /// Local time it closes (excluded). Earlier than `start` means the next day; equal to
    /// `start` means the whole day.
    pub end: civil::Time,
}

impl ScheduleWindow {
    /// Whether the window is open at this local date and time.
    pub fn contains(&self, local: civil::DateTime) -> bool {
        let (day, time) = (local.weekday(), local.time());
        let on = |d: Weekday| self.days.contains(&Day::from(d));
        if self.start == self.end {
            on(day)
        } else if self.start < self.end {
            on(day) && self.start <= time && time < self.end
        } else {
            (on(day) && time >= self.start) || (on(day.previous()) && time < self.end)
        }
    }
}

fn default_classes() -> Vec<ObjectClass> {
    vec![ObjectClass::Person]
}

fn default_leave_after_secs() -> f64 {
    1.0
}

/// Most corners a zone's polygon may have (a shape drawn with the mouse has a few dozen).
pub const MAX_ZONE_CORNERS: usize = 256;
/// Most windows in a zone's schedule.
pub const MAX_SCHEDULE_WINDOWS: usize = 64;
/// Longest dwell, count or leave time a zone may ask for: a week.
const MAX_ZONE_SECS: f64 = 86_400.0 * 7.0;

/// One zone of a camera (`[[cameras.zones]]` in the hub's config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// Unique among the camera's zones; events and rules name the zone by it.
    pub id: ZoneId,
    /// Display name (北门广场), shown to people instead of the id. Read with the spaces at
    /// either end trimmed; then 1 to [`MAX_NAME_CHARS`](crate::topology::MAX_NAME_CHARS)
    /// characters, no control characters. Default: none (the id is shown).
    #[serde(default, deserialize_with = "trimmed")]
    pub name: Option<String>,
    /// Corners as `[x, y]` in normalised image coordinates (0 to 1, origin top left), in order
    /// around the zone, either direction; concave shapes are fine; the last corner joins the
    /// first (do not repeat it). At least 3, at most [`MAX_ZONE_CORNERS`], with a non-zero
    /// area and no crossing edges.
    pub polygon: Vec<[f32; 2]>,
    /// Classes of tracks the zone watches. Default `["person"]`.
    #[serde(default = "default_classes")]
    pub classes: Vec<ObjectClass>,
    /// When the zone is on. Default: empty, meaning always.
    #[serde(default)]
    pub schedule: Vec<ScheduleWindow>,
    /// Seconds in the zone after which a track's visit is reported once (`dwell_exceeded`).
    /// Default: none, no dwell events.
    #[serde(default)]
    pub dwell_limit_secs: Option<f64>,
    /// Tracks in the zone above which the count is over the limit (`count_over_limit`).
    /// Default: none.
    #[serde(default)]
    pub count_limit: Option<u32>,
    /// Seconds the count must stay above `count_limit` before it is reported. Default 0.
    #[serde(default)]
    pub count_limit_secs: f64,
    /// Seconds a track's point must stay outside before the track has left. Default 1.0.
    #[serde(default = "default_leave_after_secs")]
    pub leave_after_secs: f64,
}

impl Zone {
    /// A zone watching persons at all times, with no limits and the default leave time.
    pub fn new(id: ZoneId, polygon: Vec<[f32; 2]>) -> Zone {
        Zone {
            id,
            name: None,
            polygon,
            classes: default_classes(),
            schedule: Vec::new(),
            dwell_limit_secs: None,
            count_limit: None,
            count_limit_secs: 0.0,
            leave_after_secs: default_leave_after_secs(),
        }
    }

    /// Checks the polygon and settings. The error names the field within the zone
    /// (`polygon[3]`, `schedule[0].days`, `dwell_limit_secs`).
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(name) = &self.name {
            if name.trim().is_empty() {
                return Err(FieldError::new(
                    "name",
                    "empty; leave it out for a zone without a display name",
                ));
            }
            if name.trim() != name {
                return Err(FieldError::new("name", "has spaces at either end"));
            }
            check_name("name", name)?;
        }
        let n = self.polygon.len();
        if n < 3 {
            return Err(FieldError::new(
                "polygon",
                format!("{n} corners; a zone needs at least 3"),
            ));
        }
        if n > MAX_ZONE_CORNERS {
            return Err(FieldError::new(
                "polygon",
                format!("{n} corners; a zone may have at most {MAX_ZONE_CORNERS}"),
            ));
        }
        for (i, [x, y]) in self.polygon.iter().enumerate() {
            if !(0.0..=1.0).contains(x) || !(0.0..=1.0).contains(y) {
                return Err(FieldError::new(
                    format!("polygon[{i}]"),
                    format!(
                        "[{x}, {y}] is outside the image; coordinates are fractions from 0 to 1"
                    ),
                ));
            }
        }
        for i in 0..n {
            let next = (i + 1) % n;
            if self.polygon[i] == self.polygon[next] {
                return Err(FieldError::new(
                    format!("polygon[{next}]"),
                    format!(
                        "repeats corner {i}; list each corner once (the last one joins the \
                         first by itself)"
                    ),
                ));
            }
        }
        if polygon_area(&self.polygon) < 1e-6 {
            return Err(FieldError::new(
                "polygon",
                "no area (its corners are on one line, or its edges cross)",
            ));
        }
        if let Some(reason) = crossing_edges(&self.polygon) {
            return Err(FieldError::new("polygon", reason));
        }
        if self.classes.is_empty() {
            return Err(FieldError::new(
                "classes",
                "empty; the zone would never see a track",
            ));
        }
        if self.schedule.len() > MAX_SCHEDULE_WINDOWS {
            return Err(FieldError::new(
                "schedule",
                format!(
                    "{} windows; at most {MAX_SCHEDULE_WINDOWS}",
                    self.schedule.len()
                ),
            ));
        }
        for (i, window) in self.schedule.iter().enumerate() {
            if window.days.is_empty() {
                return Err(FieldError::new(
                    format!("schedule[{i}].days"),
                    "empty; a window needs at least one day",
                ));
            }
        }
        let secs_ok = |v: f64| v.is_finite() && (0.0..=MAX_ZONE_SECS).contains(&v);
        let week = "must be between 0 and a week (604800)";
        if self.dwell_limit_secs.is_some_and(|v| !secs_ok(v)) {
            return Err(FieldError::new("dwell_limit_secs", week));
        }
        if !secs_ok(self.count_limit_secs) {
            return Err(FieldError::new("count_limit_secs", week));
        }
        if !secs_ok(self.leave_after_secs) {
            return Err(FieldError::new("leave_after_secs", week));
        }
        Ok(())
    }
}

/// An optional text with the spaces at either end trimmed (`" 北门 "` reads as `"北门"`).
fn trimmed<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(|s| s.trim().to_owned()))
}

/// Area of a simple polygon (shoelace formula), whichever way it winds.
pub fn polygon_area(points: &[[f32; 2]]) -> f32 {
    let twice: f32 = points
        .iter()
        .zip(points.iter().cycle().skip(1))
        .map(|([x0, y0], [x1, y1])| x0 * y1 - x1 * y0)
        .sum();
    twice.abs() / 2.0
}

type Pt = (f64, f64);

/// Twice the signed area of the triangle `a b c`: positive when `c` is left of `a -> b`.
fn orient(a: Pt, b: Pt, c: Pt) -> f64 {
    (b.0 - a.0) * (c.1 - a.1) - (b.1 - a.1) * (c.0 - a.0)
}

/// Whether `p`, collinear with `a b`, lies within the segment's bounding box.
fn on_segment(a: Pt, b: Pt, p: Pt) -> bool {
    p.0 >= a.0.min(b.0) && p.0 <= a.0.max(b.0) && p.1 >= a.1.min(b.1) && p.1 <= a.1.max(b.1)
}

/// Whether the closed segments `a b` and `c d` share a point.
fn segments_meet(a: Pt, b: Pt, c: Pt, d: Pt) -> bool {
    let (d1, d2) = (orient(c, d, a), orient(c, d, b));
    let (d3, d4) = (orient(a, b, c), orient(a, b, d));
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    {
        return true;
    }
    (d1 == 0.0 && on_segment(c, d, a))
        || (d2 == 0.0 && on_segment(c, d, b))
        || (d3 == 0.0 && on_segment(a, b, c))
        || (d4 == 0.0 && on_segment(a, b, d))
}

/// Why the closed polygon is not simple (two edges that are not neighbours meet, or two
/// neighbours run back over each other), or `None`. Corners are numbered from 0; edge `i`
/// runs from corner `i` to the next. Quadratic in the corners, which are few.
fn crossing_edges(points: &[[f32; 2]]) -> Option<String> {
    let n = points.len();
    let p = |i: usize| {
        let [x, y] = points[i % n];
        (f64::from(x), f64::from(y))
    };
    let edge = |i: usize| format!("{}-{}", i, (i + 1) % n);
    for i in 0..n {
        for j in i + 1..n {
            let (a, b, c, d) = (p(i), p(i + 1), p(j), p(j + 1));
            let neighbours = j == i + 1 || (i == 0 && j == n - 1);
            if neighbours {
                // They share one corner; they overlap when the other two ends lie on the same
                // ray from it.
                let (shared, u, v) = if j == i + 1 { (b, a, d) } else { (a, b, c) };
                let along =
                    (u.0 - shared.0) * (v.0 - shared.0) + (u.1 - shared.1) * (v.1 - shared.1);
                if orient(shared, u, v) == 0.0 && along > 0.0 {
                    return Some(format!(
                        "edges {} and {} run back over each other; list the corners in order \
                         around the zone",
                        edge(i),
                        edge(j)
                    ));
                }
            } else if segments_meet(a, b, c, d) {
                return Some(format!(
                    "edges {} and {} cross; list the corners in order around the zone",
                    edge(i),
                    edge(j)
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn zone(polygon: &[[f32; 2]]) -> Zone {
        Zone::new(ZoneId::new("yard").unwrap(), polygon.to_vec())
    }

    #[test]
    fn good_zones_pass() {
        let mut reversed = U_SHAPE;
        reversed.reverse();
        for polygon in [
            &SQUARE[..],
            &U_SHAPE,
            &reversed,
            &[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]],
        ] {
            assert_eq!(zone(polygon).validate(), Ok(()), "{polygon:?}");
        }
    }

    /// Each rule, with the field it names and a piece of its reason.
    #[test]
    fn each_rule_names_its_field() {
        type Edit = fn(&mut Zone);
        let cases: &[(&str, Edit, &str, &str)] = &[
            (
                "two corners",
                |z| z.polygon = vec![[0.1, 0.1], [0.5, 0.5]],
                "polygon",
                "at least 3",
            ),
            (
                "too many corners",
                |z| {
                    z.polygon = (0..=MAX_ZONE_CORNERS)
                        .map(|i| {
                            let a = i as f32 / 300.0 * std::f32::consts::TAU;
                            [0.5 + 0.4 * a.cos(), 0.5 + 0.4 * a.sin()]
                        })
                        .collect()
                },
                "polygon",
                "at most 256",
            ),
            (
                "x out of range",
                |z| z.polygon[1] = [1.2, 0.1],
                "polygon[1]",
                "[1.2, 0.1] is outside the image",
            ),
            (
                "negative y",
                |z| z.polygon[3] = [0.2, -0.01],
                "polygon[3]",
                "outside the image",
            ),
            (
                "NaN",
                |z| z.polygon[2] = [f32::NAN, 0.1],
                "polygon[2]",
                "outside the image",
            ),
            (
                "repeated closing corner",
                |z| z.polygon.push([0.2, 0.2]),
                "polygon[0]",
                "repeats corner 4",
            ),
            (
                "repeated neighbour",
                |z| z.polygon.insert(2, [0.8, 0.2]),
                "polygon[2]",
                "repeats corner 1",
            ),
            (
                "on one line",
                |z| z.polygon = vec![[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]],
                "polygon",
                "no area",
            ),
            (
                "bow tie",
                |z| z.polygon = vec![[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.5]],
                "polygon",
                "edges 0-1 and 2-3 cross",
            ),
            (
                "figure of eight",
                |z| {
                    z.polygon = vec![
                        [0.1, 0.1],
                        [0.5, 0.1],
                        [0.5, 0.5],
                        [0.9, 0.5],
                        [0.9, 0.9],
                        [0.5, 0.9],
                        [0.5, 0.3],
                        [0.1, 0.3],
                    ]
                },
                "polygon",
                "cross",
            ),
            (
                "a corner touching another edge",
                |z| z.polygon = vec![[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.5, 0.1], [0.1, 0.9]],
                "polygon",
                "cross",
            ),
            (
                "a spike back along an edge",
                |z| z.polygon = vec![[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.9, 0.5]],
                "polygon",
                "run back over each other",
            ),
            ("no classes", |z| z.classes.clear(), "classes", "empty"),
            (
                "an empty name",
                |z| z.name = Some(String::new()),
                "name",
                "empty; leave it out",
            ),
            (
                "a name of spaces",
                |z| z.name = Some(" \u{3000} ".into()),
                "name",
                "empty",
            ),
            (
                "a name not trimmed",
                |z| z.name = Some("北门 ".into()),
                "name",
                "spaces at either end",
            ),
            (
                "a name too long",
                |z| z.name = Some("广".repeat(65)),
                "name",
                "65 characters; at most 64",
            ),
            (
                "a name with a control character",
                |z| z.name = Some("北\n门".into()),
                "name",
                "control character",
            ),
            (
                "a window without days",
                |z| {
                    z.schedule.push(ScheduleWindow {
                        days: vec![Day::Mon],
                        start: civil::time(8, 0, 0, 0),
                        end: civil::time(9, 0, 0, 0),
                    });
                    z.schedule.push(ScheduleWindow {
                        days: vec![],
                        start: civil::time(22, 0, 0, 0),
                        end: civil::time(6, 0, 0, 0),
                    });
                },
                "schedule[1].days",
                "at least one day",
            ),
            (
                "negative dwell",
                |z| z.dwell_limit_secs = Some(-1.0),
                "dwell_limit_secs",
                "between 0 and a week",
            ),
            (
                "infinite count time",
                |z| z.count_limit_secs = f64::INFINITY,
                "count_limit_secs",
                "between 0 and a week",
            ),
            (
                "leave after a month",
                |z| z.leave_after_secs = 86_400.0 * 30.0,
                "leave_after_secs",
                "between 0 and a week",
            ),
        ];
        for (what, edit, field, reason) in cases {
            let mut z = zone(&SQUARE);
            edit(&mut z);
            let err = z.validate().expect_err(what);
            assert_eq!(err.field, *field, "{what}: {err}");
            assert!(err.reason.contains(reason), "{what}: {err}");
        }
    }

    #[test]
    fn a_display_name_is_optional_trimmed_and_at_most_64_characters() {
        let mut z = zone(&SQUARE);
        assert_eq!(z.name, None);
        z.name = Some("北门广场".into());
        assert_eq!(z.validate(), Ok(()));
        z.name = Some("广".repeat(64));
        assert_eq!(z.validate(), Ok(()), "64 characters (192 bytes) fit");
        let read = |name: serde_json::Value| {
            serde_json::from_value::<Zone>(serde_json::json!({
                "id": "plaza", "name": name, "polygon": SQUARE,
            }))
            .unwrap()
        };
        assert_eq!(read(" 北门广场\t".into()).name.as_deref(), Some("北门广场"));
        assert_eq!(read(serde_json::Value::Null).name, None);
        let trimmed = read(format!("  {}  ", "广".repeat(64)).into());
        assert_eq!(trimmed.validate(), Ok(()), "counted once trimmed");
        let blank = read("   ".into());
        assert_eq!(blank.name.as_deref(), Some(""));
        assert_eq!(blank.validate().unwrap_err().field, "name");
        // Kept with the zone as JSON (the store keeps zones inside their camera).
        let named = read("北门广场".into());
        let json = serde_json::to_value(&named).unwrap();
        assert_eq!(json["name"], "北门广场");
        assert_eq!(serde_json::from_value::<Zone>(json).unwrap(), named);
    }

    #[test]
    fn zones_read_from_toml_with_defaults_and_refuse_unknown_values() {
        let z: Zone = serde_json::from_value(serde_json::json!({
            "id": "bike-shed",
            "polygon": [[0.1, 0.5], [0.6, 0.5], [0.6, 1.0]],
            "schedule": [{"days": ["mon", "sun"], "start": "22:00", "end": "06:00"}],
        }))
        .unwrap();
        assert_eq!(z.classes, [ObjectClass::Person]);
        assert_eq!(z.name, None);
        assert_eq!(z.leave_after_secs, 1.0);
        assert_eq!(z.schedule[0].start, civil::time(22, 0, 0, 0));
        // Serialised and read back unchanged (the store keeps zones as JSON).
        let back: Zone = serde_json::from_value(serde_json::to_value(&z).unwrap()).unwrap();
        assert_eq!(back, z);
        for (bad, needle) in [
            (
                serde_json::json!({"id": "a", "polygon": [], "dwell": 3}),
                "dwell",
            ),
            (serde_json::json!({"id": "a b", "polygon": []}), "a b"),
            (
                serde_json::json!({"id": "a", "polygon": [], "classes": ["cat"]}),
                "cat",
            ),
            (
                serde_json::json!({"id": "a", "polygon": [], "schedule": [
                    {"days": ["monday"], "start": "22:00", "end": "06:00"}]}),
                "monday",
            ),
        ] {
            let err = serde_json::from_value::<Zone>(bad).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}
