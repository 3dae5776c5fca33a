//! The per-camera tracker: turns each frame's detections into tracks with stable ids,
//! ByteTrack-style.
//!
//! Every update, each track's box is predicted to the frame's time (constant velocity, from an
//! alpha-beta filter), then detections are matched to tracks by IoU, best pairs first (greedy),
//! in three passes:
//! 1. high-score detections against confirmed tracks, lost ones included;
//! 2. low-score detections against confirmed tracks still matched at the previous update
//!    (a partly hidden or blurred person scores low but is still the same person; a low score
//!    alone never starts a track);
//! 3. the remaining high-score detections against tentative tracks.
//!
//! A detection left over that scores at least `new_track_score` starts a tentative track. A
//! tentative track is confirmed after `confirm_hits` consecutive matches, and only then gets
//! its id and a `track_started` event; one that misses a match is dropped silently (it was a
//! flicker). A confirmed track that finds no match is lost: it keeps its id, can be matched
//! again, and ends (`track_ended`) when it has been unmatched for more than `max_lost_secs`.
//!
//! Time, not frame counts, drives prediction and expiry: detection runs at different rates per
//! camera and under load.

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use xl_core::CameraId;

use crate::error::VisionError;
use crate::event::{ObjectClass, TrackId, VisionEvent};
use crate::geom::NormRect;

/// One box a detector found in one frame, in normalised image coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub bbox: NormRect,
    /// Detector confidence in [0, 1].
    pub score: f32,
    pub class: ObjectClass,
}

/// Tracker settings (`[tracker]` in the hub's config).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerConfig {
    /// Detections scoring at least this are matched first and may start tracks. Default 0.5.
    pub high_score: f32,
    /// Detections scoring at least this but under `high_score` only keep confirmed tracks going
    /// (second pass); lower ones are ignored. Default 0.1.
    pub low_score: f32,
    /// A detection starts a new track only if it scores at least this. Default 0.6.
    pub new_track_score: f32,
    /// Least IoU between a track's predicted box and a detection for them to match. Default 0.2.
    pub match_iou: f32,
    /// Least IoU in the low-score pass, stricter because low scores are less sure. Default 0.5.
    pub low_match_iou: f32,
    /// Consecutive matches before a track is confirmed, gets its id and is reported. Default 3.
    pub confirm_hits: u32,
    /// Seconds a confirmed track may go unmatched (lost, still matchable) before it ends.
    /// Default 2.0.
    pub max_lost_secs: f64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            high_score: 0.5,
            low_score: 0.1,
            new_track_score: 0.6,
            match_iou: 0.2,
            low_match_iou: 0.5,
            confirm_hits: 3,
            max_lost_secs: 2.0,
        }
    }
}

impl TrackerConfig {
    pub fn validate(&self) -> Result<(), VisionError> {
        let bad = |field, reason: &str| {
            Err(VisionError::InvalidTrackerConfig {
                field,
                reason: reason.to_owned(),
            })
        };
        let unit = |v: f32| (0.0..=1.0).contains(&v);
        if !unit(self.high_score) {
            return bad("high_score", "must be in [0, 1]");
        }
        if !unit(self.low_score) || self.low_score > self.high_score {
            return bad("low_score", "must be in [0, high_score]");
        }
        if !unit(self.new_track_score) {
            return bad("new_track_score", "must be in [0, 1]");
        }
        if !(self.match_iou > 0.0 && self.match_iou <= 1.0) {
            return bad("match_iou", "must be in (0, 1]");
        }
        if !(self.low_match_iou > 0.0 && self.low_match_iou <= 1.0) {
            return bad("low_match_iou", "must be in (0, 1]");
        }
        if self.confirm_hits == 0 {
            return bad("confirm_hits", "must be at least 1");
        }
        if !(self.max_lost_secs.is_finite() && (0.0..=3600.0).contains(&self.max_lost_secs)) {
            return bad("max_lost_secs", "must be between 0 and 3600");
        }
        Ok(())
    }
}

/// Whether a confirmed track was matched at the latest update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackState {
    Tracked,
    /// Not matched at the latest update; `bbox` is where it was last seen.
    Lost,
}

/// A confirmed track as the rest of the hub sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Track {
    pub id: TrackId,
    pub class: ObjectClass,
    pub state: TrackState,
    /// The filtered box at `last_seen`, in normalised image coordinates.
    pub bbox: NormRect,
    /// Velocity of the box's centre, in normalised units per second.
    pub velocity: (f32, f32),
    /// Score of the last matched detection.
    pub score: f32,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// Filter gains: how much of a measurement's surprise goes into position and size (alpha) and
/// into velocity (beta). 0.7 and 0.25 follow a walking person closely while smoothing
/// detector jitter.
const ALPHA: f32 = 0.7;
const BETA: f32 = 0.25;
/// Lost tracks are extrapolated at most this long, so they do not drift off across the image.
const MAX_PREDICTION_SECS: f32 = 1.0;

/// A track inside the tracker, tentative or confirmed.
#[derive(Debug, Clone)]
struct Slot {
    /// `None` while tentative.
    id: Option<TrackId>,
    class: ObjectClass,
    /// Centre, width and height at `last_seen`.
    cx: f32,
    cy: f32,
    w: f32,
    h: f32,
    vx: f32,
    vy: f32,
    /// Where the track is expected at the current update.
    predicted: NormRect,
    score: f32,
    hits: u32,
    first_seen: Timestamp,
    last_seen: Timestamp,
    matched: bool,
}

fn secs_between(from: Timestamp, to: Timestamp) -> f32 {
    (to.duration_since(from).as_secs_f64() as f32).max(0.0)
}

fn rect(cx: f32, cy: f32, w: f32, h: f32) -> NormRect {
    NormRect::new(cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)
}

impl Slot {
    fn new(det: &Detection, at: Timestamp) -> Self {
        let (cx, cy) = det.bbox.centre();
        Slot {
            id: None,
            class: det.class,
            cx,
            cy,
            w: det.bbox.width(),
            h: det.bbox.height(),
            vx: 0.0,
            vy: 0.0,
            predicted: det.bbox,
            score: det.score,
            hits: 1,
            first_seen: at,
            last_seen: at,
            matched: true,
        }
    }

    fn predict(&mut self, at: Timestamp) {
        let dt = secs_between(self.last_seen, at).min(MAX_PREDICTION_SECS);
        self.predicted = rect(
            self.cx + self.vx * dt,
            self.cy + self.vy * dt,
            self.w,
            self.h,
        );
    }

    /// Folds a matched detection into the filter.
    fn correct(&mut self, det: &Detection, at: Timestamp) {
        let dt = secs_between(self.last_seen, at);
        let (px, py) = self.predicted.centre();
        let (zx, zy) = det.bbox.centre();
        let (rx, ry) = (zx - px, zy - py);
        self.cx = px + ALPHA * rx;
        self.cy = py + ALPHA * ry;
        if dt > 0.0 {
            self.vx += BETA * rx / dt;
            self.vy += BETA * ry / dt;
        }
        self.w += ALPHA * (det.bbox.width() - self.w);
        self.h += ALPHA * (det.bbox.height() - self.h);
        self.score = det.score;
        self.hits += 1;
        self.last_seen = at;
        self.matched = true;
    }

    fn public(&self, id: TrackId) -> Track {
        Track {
            id,
            class: self.class,
            state: if self.matched {
                TrackState::Tracked
            } else {
                TrackState::Lost
            },
            bbox: rect(self.cx, self.cy, self.w, self.h),
            velocity: (self.vx, self.vy),
            score: self.score,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
        }
    }
}

/// Which detections and tracks a matching pass considers.
#[derive(Debug, Clone, Copy)]
enum Pass {
    HighToConfirmed,
    LowToTracked,
    HighToTentative,
}

/// One camera's tracker.
#[derive(Debug)]
pub struct Tracker {
    camera: CameraId,
    config: TrackerConfig,
    max_lost: SignedDuration,
    slots: Vec<Slot>,
    next_id: u64,
    last_update: Option<Timestamp>,
    // Buffers reused across updates.
    pairs: Vec<(f32, usize, usize)>,
    detection_used: Vec<bool>,
    live: Vec<Track>,
}

impl Tracker {
    pub fn new(camera: CameraId, config: TrackerConfig) -> Result<Self, VisionError> {
        config.validate()?;
        Ok(Tracker {
            camera,
            max_lost: SignedDuration::from_secs_f64(config.max_lost_secs),
            config,
            slots: Vec::new(),
            next_id: 1,
            last_update: None,
            pairs: Vec::new(),
            detection_used: Vec::new(),
            live: Vec::new(),
        })
    }

    pub fn camera(&self) -> &CameraId {
        &self.camera
    }

    /// The confirmed tracks after the latest update, tracked and lost, by id.
    pub fn tracks(&self) -> &[Track] {
        &self.live
    }

    /// Feeds one frame's detections, taken at `at`. Appends `track_started` and `track_ended`
    /// events to `events` and returns the confirmed tracks. An update with no detections is
    /// how a frame where the detector found nothing is reported.
    pub fn update(
        &mut self,
        at: Timestamp,
        detections: &[Detection],
        events: &mut Vec<VisionEvent>,
    ) -> &[Track] {
        for slot in &mut self.slots {
            slot.matched = false;
            slot.predict(at);
        }
        self.detection_used.clear();
        self.detection_used.resize(detections.len(), false);

        self.match_pass(detections, at, Pass::HighToConfirmed);
        self.match_pass(detections, at, Pass::LowToTracked);
        self.match_pass(detections, at, Pass::HighToTentative);

        let (config, max_lost, camera) = (&self.config, self.max_lost, &self.camera);
        let next_id = &mut self.next_id;
        self.slots.retain_mut(|slot| match slot.id {
            None if !slot.matched => false,
            None => {
                if slot.hits >= config.confirm_hits {
                    confirm(slot, next_id, camera, at, events);
                }
                true
            }
            Some(id) => {
                let ended = !slot.matched && at.duration_since(slot.last_seen) > max_lost;
                if ended {
                    events.push(VisionEvent::TrackEnded {
                        camera: camera.clone(),
                        track: id,
                        class: slot.class,
                        at,
                        first_seen: slot.first_seen,
                        last_seen: slot.last_seen,
                    });
                }
                !ended
            }
        });

        for (det, used) in detections.iter().zip(&self.detection_used) {
            if !used
                && det.score >= self.config.high_score
                && det.score >= self.config.new_track_score
            {
                let mut slot = Slot::new(det, at);
                if self.config.confirm_hits <= 1 {
                    confirm(&mut slot, &mut self.next_id, &self.camera, at, events);
                }
                self.slots.push(slot);
            }
        }

        self.last_update = Some(at);
        self.live.clear();
        self.live.extend(
            self.slots
                .iter()
                .filter_map(|s| s.id.map(|id| s.public(id))),
        );
        self.live.sort_unstable_by_key(|t| t.id);
        &self.live
    }

    /// Ends every confirmed track (the camera was removed or its stream ended), appending a
    /// `track_ended` event for each.
    pub fn end_all(&mut self, at: Timestamp, events: &mut Vec<VisionEvent>) {
        for slot in self.slots.drain(..) {
            if let Some(id) = slot.id {
                events.push(VisionEvent::TrackEnded {
                    camera: self.camera.clone(),
                    track: id,
                    class: slot.class,
                    at,
                    first_seen: slot.first_seen,
                    last_seen: slot.last_seen,
                });
            }
        }
        self.live.clear();
    }

    /// Greedy IoU matching for one pass: every candidate pair of the same class with enough
    /// overlap, best first.
    fn match_pass(&mut self, detections: &[Detection], at: Timestamp, pass: Pass) {
        let config = &self.config;
        // Scores in [from, to) take part in this pass.
        let (from, to, min_iou) = match pass {
            Pass::HighToConfirmed | Pass::HighToTentative => {
                (config.high_score, f32::INFINITY, config.match_iou)
            }
            Pass::LowToTracked => (config.low_score, config.high_score, config.low_match_iou),
        };
        let wants_detection = |score: f32| score >= from && score < to;
        let previous = self.last_update;
        let wants_track = |slot: &Slot| match pass {
            Pass::HighToConfirmed => slot.id.is_some(),
            Pass::LowToTracked => slot.id.is_some() && Some(slot.last_seen) == previous,
            Pass::HighToTentative => slot.id.is_none(),
        };

        let mut pairs = std::mem::take(&mut self.pairs);
        pairs.clear();
        for (d, det) in detections.iter().enumerate() {
            if self.detection_used[d] || !wants_detection(det.score) {
                continue;
            }
            for (t, slot) in self.slots.iter().enumerate() {
                if slot.matched || slot.class != det.class || !wants_track(slot) {
                    continue;
                }
                let iou = slot.predicted.iou(&det.bbox);
                if iou >= min_iou {
                    pairs.push((iou, d, t));
                }
            }
        }
        pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        for &(_, d, t) in &pairs {
            if !self.detection_used[d] && !self.slots[t].matched {
                self.detection_used[d] = true;
                self.slots[t].correct(&detections[d], at);
            }
        }
        self.pairs = pairs;
    }
}

fn confirm(
    slot: &mut Slot,
    next_id: &mut u64,
    camera: &CameraId,
    at: Timestamp,
    events: &mut Vec<VisionEvent>,
) {
    let id = TrackId(*next_id);
    *next_id += 1;
    slot.id = Some(id);
    events.push(VisionEvent::TrackStarted {
        camera: camera.clone(),
        track: id,
        class: slot.class,
        at,
        bbox: rect(slot.cx, slot.cy, slot.w, slot.h),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc_count::allocations_in;

    fn camera() -> CameraId {
        CameraId::new("cam-1").unwrap()
    }

    /// Frame `i` of a 10 frames/s detection stream.
    fn t(i: i64) -> Timestamp {
        Timestamp::from_millisecond(1_700_000_000_000 + i * 100).unwrap()
    }

    fn person(x: f32, y: f32, score: f32) -> Detection {
        Detection {
            bbox: NormRect::new(x, y, x + 0.08, y + 0.25),
            score,
            class: ObjectClass::Person,
        }
    }

    fn tracker() -> Tracker {
        Tracker::new(camera(), TrackerConfig::default()).unwrap()
    }

    fn ids(tracks: &[Track]) -> Vec<u64> {
        tracks.iter().map(|t| t.id.0).collect()
    }

    fn started(events: &[VisionEvent]) -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| match e {
                VisionEvent::TrackStarted { track, .. } => Some(track.0),
                _ => None,
            })
            .collect()
    }

    fn ended(events: &[VisionEvent]) -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| match e {
                VisionEvent::TrackEnded { track, .. } => Some(track.0),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_walking_person_is_confirmed_after_three_hits_and_keeps_one_id() {
        let mut tracker = tracker();
        let mut events = Vec::new();
        for i in 0..30 {
            let x = 0.1 + 0.01 * i as f32;
            let tracks = tracker.update(t(i), &[person(x, 0.4, 0.9)], &mut events);
            if i < 2 {
                assert!(tracks.is_empty(), "tentative tracks are not shown");
                assert!(events.is_empty());
            } else {
                assert_eq!(ids(tracks), [1], "frame {i}");
                assert_eq!(tracks[0].state, TrackState::Tracked);
                assert!((tracks[0].bbox.x0 - x).abs() < 0.01, "follows the person");
            }
        }
        assert_eq!(started(&events), [1]);
        let track = tracker.tracks()[0];
        assert_eq!(track.first_seen, t(0));
        assert_eq!(track.last_seen, t(29));
        // 0.01 per 100 ms.
        assert!(
            (track.velocity.0 - 0.1).abs() < 0.01,
            "{:?}",
            track.velocity
        );
        assert!(track.velocity.1.abs() < 0.01);
        match &events[0] {
            VisionEvent::TrackStarted {
                camera: c,
                at,
                class,
                ..
            } => {
                assert_eq!((c, *at, *class), (&camera(), t(2), ObjectClass::Person));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_flicker_never_gets_an_id_or_an_event() {
        let mut tracker = tracker();
        let mut events = Vec::new();
        // A false positive in two frames, then gone.
        tracker.update(t(0), &[person(0.7, 0.1, 0.9)], &mut events);
        tracker.update(t(1), &[person(0.7, 0.1, 0.9)], &mut events);
        tracker.update(t(2), &[], &mut events);
        assert!(events.is_empty());
        assert!(tracker.tracks().is_empty());
        // The next real track is number 1.
        for i in 3..6 {
            tracker.update(t(i), &[person(0.2, 0.4, 0.9)], &mut events);
        }
        assert_eq!(started(&events), [1]);
    }

    #[test]
    fn low_score_detections_keep_a_track_but_never_start_one() {
        let mut tracker = tracker();
        let mut events = Vec::new();
        for i in 0..5 {
            tracker.update(t(i), &[person(0.3, 0.4, 0.9)], &mut events);
        }
        // Half hidden behind a parked car: the detector is unsure for a second.
        for i in 5..15 {
            let tracks = tracker.update(t(i), &[person(0.3, 0.4, 0.3)], &mut events);
            assert_eq!(tracks.len(), 1);
            assert_eq!(tracks[0].state, TrackState::Tracked, "frame {i}");
            assert_eq!(tracks[0].score, 0.3);
        }
        // A low score elsewhere starts nothing.
        for i in 15..25 {
            tracker.update(
                t(i),
                &[person(0.3, 0.4, 0.9), person(0.8, 0.1, 0.4)],
                &mut events,
            );
        }
        assert_eq!(ids(tracker.tracks()), [1]);
        assert_eq!(started(&events), [1]);
        // Below low_score a detection is noise, even over the track.
        let tracks = tracker.update(t(25), &[person(0.3, 0.4, 0.05)], &mut events);
        assert_eq!(tracks[0].state, TrackState::Lost);
    }

    #[test]
    fn a_track_lost_for_a_moment_is_found_again_where_its_motion_says() {
        let mut tracker = tracker();
        let mut events = Vec::new();
        // Running right at 0.03 per frame (0.3 per second).
        let x = |i: i64| 0.05 + 0.03 * i as f32;
        for i in 0..8 {
            tracker.update(t(i), &[person(x(i), 0.4, 0.9)], &mut events);
        }
        // Behind a pillar for 0.7 s: lost, not ended.
        for i in 8..15 {
            let tracks = tracker.update(t(i), &[], &mut events);
            assert_eq!(tracks[0].state, TrackState::Lost);
            assert_eq!(tracks[0].last_seen, t(7));
        }
        // Reappears 0.24 further on: no overlap with where it was last seen, but right where
        // constant velocity puts it.
        let again = person(x(15), 0.4, 0.9);
        assert_eq!(again.bbox.iou(&tracker.tracks()[0].bbox), 0.0);
        let tracks = tracker.update(t(15), &[again], &mut events);
        assert_eq!(ids(tracks), [1]);
        assert_eq!(tracks[0].state, TrackState::Tracked);
        assert_eq!(started(&events), [1]);
        assert!(ended(&events).is_empty());
    }

    #[test]
    fn a_track_lost_longer_than_the_limit_ends_once_and_a_newcomer_gets_a_new_id() {
        let mut tracker = tracker();
        let mut events = Vec::new();
        for i in 0..5 {
            tracker.update(t(i), &[person(0.3, 0.4, 0.9)], &mut events);
        }
        // 2 s of nothing keeps it; just past 2 s ends it.
        for i in 5..=24 {
            assert_eq!(tracker.update(t(i), &[], &mut events).len(), 1, "frame {i}");
        }
        assert!(tracker.update(t(25), &[], &mut events).is_empty());
        tracker.update(t(26), &[], &mut events);
        assert_eq!(ended(&events), [1]);
        match events.last().unwrap() {
            VisionEvent::TrackEnded {
                at,
                first_seen,
                last_seen,
                ..
            } => {
                assert_eq!((*at, *first_seen, *last_seen), (t(25), t(0), t(4)));
            }
            other => panic!("{other:?}"),
        }
        // Someone at the same spot later is someone new.
        for i in 30..33 {
            tracker.update(t(i), &[person(0.3, 0.4, 0.9)], &mut events);
        }
        assert_eq!(ids(tracker.tracks()), [2]);
    }

    #[test]
    fn two_people_crossing_keep_their_ids() {
        let mut tracker = tracker();
        let mut events = Vec::new();
        // A walks right, B walks left, B a little lower; their boxes overlap as they pass.
        let a = |i: i64| person(0.1 + 0.02 * i as f32, 0.40, 0.9);
        let b = |i: i64| person(0.7 - 0.02 * i as f32, 0.43, 0.9);
        for i in 0..3 {
            tracker.update(t(i), &[a(i), b(i)], &mut events);
        }
        let by_x = |tracks: &[Track]| {
            let mut v: Vec<(f32, u64)> = tracks.iter().map(|t| (t.bbox.x0, t.id.0)).collect();
            v.sort_by(|p, q| p.0.total_cmp(&q.0));
            v.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
        };
        let before = by_x(tracker.tracks());
        for i in 3..30 {
            // Detector output order flips halfway, as real detectors' does.
            let dets = if i % 2 == 0 {
                [a(i), b(i)]
            } else {
                [b(i), a(i)]
            };
            assert_eq!(
                tracker.update(t(i), &dets, &mut events).len(),
                2,
                "frame {i}"
            );
        }
        let after = by_x(tracker.tracks());
        assert_eq!(
            after,
            [before[1], before[0]],
            "A is on the right now, B on the left"
        );
        assert_eq!(started(&events).len(), 2);
        assert!(ended(&events).is_empty());
    }

    #[test]
    fn classes_never_match_each_other() {
        let mut tracker = tracker();
        let mut events = Vec::new();
        let body = person(0.4, 0.3, 0.9);
        let face = Detection {
            bbox: NormRect::new(0.42, 0.3, 0.48, 0.36),
            score: 0.9,
            class: ObjectClass::Face,
        };
        for i in 0..5 {
            // The same box under two classes: still two objects.
            let same_box_face = Detection {
                bbox: body.bbox,
                ..face
            };
            tracker.update(t(i), &[body, same_box_face], &mut events);
        }
        let classes: Vec<_> = tracker.tracks().iter().map(|t| t.class).collect();
        assert_eq!(classes, [ObjectClass::Person, ObjectClass::Face]);
    }

    #[test]
    fn one_hit_confirmation_starts_a_track_at_once() {
        let config = TrackerConfig {
            confirm_hits: 1,
            ..TrackerConfig::default()
        };
        let mut tracker = Tracker::new(camera(), config).unwrap();
        let mut events = Vec::new();
        let tracks = tracker.update(t(0), &[person(0.5, 0.5, 0.9)], &mut events);
        assert_eq!(ids(tracks), [1]);
        assert_eq!(started(&events), [1]);
    }

    #[test]
    fn a_clock_that_steps_back_or_stands_still_breaks_nothing() {
        let mut tracker = tracker();
        let mut events = Vec::new();
        for i in [0, 1, 2, 2, 1, 3] {
            tracker.update(t(i), &[person(0.3, 0.3, 0.9)], &mut events);
        }
        assert_eq!(ids(tracker.tracks()), [1]);
        let v = tracker.tracks()[0].velocity;
        assert!(v.0.is_finite() && v.1.is_finite());
    }

    #[test]
    fn end_all_ends_every_confirmed_track() {
        let mut tracker = tracker();
        let mut events = Vec::new();
        for i in 0..3 {
            tracker.update(
                t(i),
                &[person(0.1, 0.3, 0.9), person(0.6, 0.3, 0.9)],
                &mut events,
            );
        }
        tracker.update(
            t(3),
            &[
                person(0.1, 0.3, 0.9),
                person(0.6, 0.3, 0.9),
                person(0.35, 0.6, 0.9),
            ],
            &mut events,
        );
        tracker.end_all(t(4), &mut events);
        assert_eq!(
            ended(&events),
            [1, 2],
            "the tentative third never started, so never ends"
        );
        assert!(tracker.tracks().is_empty());
    }

    #[test]
    fn steady_tracking_allocates_nothing() {
        let mut tracker = tracker();
        let mut events = Vec::with_capacity(16);
        let frame = |i: i64| {
            let d = 0.005 * i as f32;
            [
                person(0.1 + d, 0.2, 0.9),
                person(0.5, 0.3 + d, 0.8),
                person(0.8 - d, 0.6, 0.3),
            ]
        };
        for i in 0..5 {
            tracker.update(t(i), &frame(i), &mut events);
        }
        let allocations = allocations_in(|| {
            for i in 5..50 {
                tracker.update(t(i), &frame(i), &mut events);
            }
        });
        assert_eq!(tracker.tracks().len(), 2);
        assert_eq!(allocations, 0);
    }

    #[test]
    fn bad_settings_are_refused_with_the_field_named() {
        let cases = [
            (
                TrackerConfig {
                    low_score: 0.7,
                    ..Default::default()
                },
                "low_score",
            ),
            (
                TrackerConfig {
                    high_score: 1.5,
                    ..Default::default()
                },
                "high_score",
            ),
            (
                TrackerConfig {
                    match_iou: 0.0,
                    ..Default::default()
                },
                "match_iou",
            ),
            (
                TrackerConfig {
                    confirm_hits: 0,
                    ..Default::default()
                },
                "confirm_hits",
            ),
            (
                TrackerConfig {
                    max_lost_secs: f64::NAN,
                    ..Default::default()
                },
                "max_lost_secs",
            ),
        ];
        for (config, field) in cases {
            let err = Tracker::new(camera(), config).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("tracker.{field}:")),
                "{err}"
            );
        }
        let config: TrackerConfig = toml::from_str("confirm_hits = 2").unwrap();
        assert_eq!(config.confirm_hits, 2);
        assert!(toml::from_str::<TrackerConfig>("confirm = 2").is_err());
    }
}
