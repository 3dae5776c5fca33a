//! The recordings' index against real databases, each test on SQLite and on PostgreSQL:
//! segments opened, closed, repaired and removed; recorded ranges and gaps; holds against
//! retention and the disk guard; the migration applied to a database that already has data.

#[macro_use]
mod common;

use common::TestDb;
use jiff::{SignedDuration, Timestamp};
use xl_core::camera::VideoCodec;
use xl_core::live::StreamKind;
use xl_core::{CameraId, ErrorKind};
use xl_store::{
    Backend, NewHold, NewSegment, RECORDING_GAP_SECS, SegmentRow, SegmentState, StoreError,
    TimeRange,
};

both_backends!(
    segments_open_close_repair_and_go,
    ids_are_never_given_twice,
    recorded_ranges_merge_segments_and_list_gaps,
    retention_follows_each_cameras_days_and_spares_held_segments,
    the_disk_guard_takes_the_oldest_unheld_first_across_cameras,
    holds_end_and_are_deleted_once_ended,
    an_alerts_clip_hold_ends_its_keep_after_when_the_alert_is_resolved,
    each_node_repairs_expires_and_guards_only_its_own_segments,
    a_node_that_left_is_forgotten_alone,
    a_hub_that_joins_a_district_takes_its_segments,
);

/// 2025-01-01T00:00:00Z, a base for test times.
const T0: i64 = 1_735_689_600;
const DAY: i64 = 86_400;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs).unwrap()
}

fn at_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(T0 * 1000 + ms).unwrap()
}

fn camera(s: &str) -> CameraId {
    CameraId::new(s).unwrap()
}

fn new_segment(cam: &str, stream: StreamKind, start: Timestamp) -> NewSegment {
    NewSegment {
        camera: camera(cam),
        stream,
        start_at: start,
        codec: VideoCodec::H265,
        width: 2560,
        height: 1440,
        media_start_90k: 900_000,
        path: format!(
            "recordings/{cam}/{stream}/{}/{}.mp4",
            start.strftime("%Y-%m-%d"),
            start.as_millisecond()
        ),
        node: String::new(),
    }
}

/// A closed segment of `cam`'s main stream from `start` to `end` (seconds after T0).
async fn recorded(db: &TestDb, cam: &str, start: i64, end: i64) -> i64 {
    recorded_on(db, cam, StreamKind::Main, at(start), at(end)).await
}

async fn recorded_on(
    db: &TestDb,
    cam: &str,
    stream: StreamKind,
    start: Timestamp,
    end: Timestamp,
) -> i64 {
    let id = db
        .store
        .segment_opened(&new_segment(cam, stream, start))
        .await
        .unwrap();
    db.store.segment_closed(id, end, 1_000_000).await.unwrap();
    id
}

fn hold(cam: &str, from: i64, to: i64, holder: &str) -> NewHold {
    NewHold {
        camera: camera(cam),
        from: at(from),
        to: at(to),
        until: None,
        reason: "alert clip".to_owned(),
        holder: holder.to_owned(),
        keep_after: SignedDuration::ZERO,
    }
}

fn ids(rows: &[SegmentRow]) -> Vec<i64> {
    rows.iter().map(|s| s.id).collect()
}

fn range(start: Timestamp, end: Timestamp) -> TimeRange {
    TimeRange { start, end }
}

async fn segments_open_close_repair_and_go(db: &TestDb) {
    let s = &db.store;
    let new = new_segment("cam-1", StreamKind::Main, at_ms(1_234));
    let a = s.segment_opened(&new).await.unwrap();
    let b = s
        .segment_opened(&new_segment("cam-2", StreamKind::Sub, at(5)))
        .await
        .unwrap();
    assert!(b > a, "ids increase: {a}, {b}");

    let open = s.segment(a).await.unwrap().unwrap();
    assert_eq!(open.id, a);
    assert_eq!(open.camera, new.camera);
    assert_eq!(open.stream, StreamKind::Main);
    assert_eq!(open.start_at, at_ms(1_234));
    assert_eq!(open.end_at, None);
    assert_eq!(open.bytes, 0);
    assert_eq!(open.codec, VideoCodec::H265);
    assert_eq!((open.width, open.height), (2560, 1440));
    assert_eq!(open.media_start_90k, 900_000);
    assert_eq!(open.path, new.path);
    assert_eq!(open.state, SegmentState::Open);
    // Both are listed for repair, oldest first.
    assert_eq!(ids(&s.open_segments("").await.unwrap()), vec![a, b]);

    // The same file twice is refused.
    let dup = s.segment_opened(&new).await.unwrap_err();
    assert!(
        matches!(&dup, StoreError::Duplicate { id, .. } if *id == new.path),
        "{dup}"
    );
    // So is a path that leaves the data directory.
    for path in ["../etc/passwd", "/var/lib/x.mp4", ""] {
        let mut bad = new_segment("cam-1", StreamKind::Main, at(9));
        bad.path = path.to_owned();
        let err = s.segment_opened(&bad).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{path:?}: {err}");
    }

    // Closing: an end before the start is refused and changes nothing.
    let err = s.segment_closed(a, at(1), 10).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("before its start"), "{err}");
    assert_eq!(
        s.segment(a).await.unwrap().unwrap().state,
        SegmentState::Open
    );
    s.segment_closed(a, at_ms(61_234), 7_654_321).await.unwrap();
    let closed = s.segment(a).await.unwrap().unwrap();
    assert_eq!(closed.state, SegmentState::Closed);
    assert_eq!(closed.end_at, Some(at_ms(61_234)));
    assert_eq!(closed.bytes, 7_654_321);
    // Only an open segment closes (or is repaired), once.
    let again = s.segment_closed(a, at(70), 1).await.unwrap_err();
    assert!(again.to_string().contains("is closed, not open"), "{again}");
    let repaired_closed = s.segment_repaired(a, at(70), 1).await.unwrap_err();
    assert_eq!(repaired_closed.kind(), ErrorKind::InvalidInput);
    let missing = s.segment_closed(9_999, at(70), 1).await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    assert_eq!(s.segment(a).await.unwrap().unwrap(), closed);

    // The start-up repair: the other one was open when the hub stopped.
    assert_eq!(ids(&s.open_segments("").await.unwrap()), vec![b]);
    s.segment_repaired(b, at(35), 4_096).await.unwrap();
    let repaired = s.segment(b).await.unwrap().unwrap();
    assert_eq!(repaired.state, SegmentState::Repaired);
    assert_eq!((repaired.end_at, repaired.bytes), (Some(at(35)), 4_096));
    assert!(s.open_segments("").await.unwrap().is_empty());

    // A file with no complete fragment: its row goes.
    let c = s
        .segment_opened(&new_segment("cam-1", StreamKind::Main, at(100)))
        .await
        .unwrap();
    assert!(s.remove_segment(c).await.unwrap());
    assert!(!s.remove_segment(c).await.unwrap(), "removed already");
    assert_eq!(s.segment(c).await.unwrap(), None);
    assert!(s.open_segments("").await.unwrap().is_empty());
    let gone = s.segment_repaired(c, at(101), 1).await.unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound);
}

async fn ids_are_never_given_twice(db: &TestDb) {
    let s = &db.store;
    let a = recorded(db, "cam-1", 0, 60).await;
    let b = recorded(db, "cam-1", 60, 120).await;
    // The newest row goes (a torn segment dropped at start, the disk guard).
    assert!(s.remove_segment(b).await.unwrap());
    let c = recorded(db, "cam-1", 120, 180).await;
    assert!(c > b, "segment id {b} given again as {c}");
    assert!(s.remove_segment(a).await.unwrap());
    assert!(s.remove_segment(c).await.unwrap());
    // Even when the table is left empty.
    let d = recorded(db, "cam-1", 180, 240).await;
    assert!(d > c, "segment id {c} given again as {d}");

    let h1 = s.add_hold(&hold("cam-1", 0, 10, "alert:a1")).await.unwrap();
    s.end_hold("alert:a1", at(0)).await.unwrap();
    assert_eq!(s.delete_ended_holds(at(1)).await.unwrap(), 1);
    let h2 = s.add_hold(&hold("cam-1", 0, 10, "alert:a2")).await.unwrap();
    assert!(h2 > h1, "hold id {h1} given again as {h2}");
}

async fn recorded_ranges_merge_segments_and_list_gaps(db: &TestDb) {
    let s = &db.store;
    let cam = camera("cam-1");
    let main = StreamKind::Main;
    // Adjacent, then overlapping at the edge by 40 ms, then a space of 1.5 s (not a gap),
    // then a 20 s gap (the camera was offline), then the segment being written.
    let s1 = recorded(db, "cam-1", 0, 60).await;
    let s2 = recorded(db, "cam-1", 60, 120).await;
    let s3 = recorded_on(db, "cam-1", main, at_ms(119_960), at(180)).await;
    let s4 = recorded_on(db, "cam-1", main, at_ms(181_500), at(240)).await;
    let s5 = recorded(db, "cam-1", 260, 320).await;
    let s6 = s
        .segment_opened(&new_segment("cam-1", main, at(320)))
        .await
        .unwrap();
    // Neither another stream nor another camera counts.
    recorded_on(db, "cam-1", StreamKind::Sub, at(240), at(260)).await;
    recorded(db, "cam-2", 240, 260).await;

    let all = s.segments(&cam, main, at(-100), at(400)).await.unwrap();
    assert_eq!(ids(&all), vec![s1, s2, s3, s4, s5, s6], "in time order");
    // Overlap is half-open: a segment ending where the range starts is not in it.
    let some = s.segments(&cam, main, at(60), at(61)).await.unwrap();
    assert_eq!(ids(&some), vec![s2]);
    let edge = s.segments(&cam, main, at(119), at(121)).await.unwrap();
    assert_eq!(ids(&edge), vec![s2, s3]);
    // The open segment overlaps everything after its start.
    let late = s.segments(&cam, main, at(1000), at(2000)).await.unwrap();
    assert_eq!(ids(&late), vec![s6]);

    let r = s
        .recorded_ranges(&cam, main, at(-30), at(400), RECORDING_GAP_SECS)
        .await
        .unwrap();
    assert_eq!(
        r.ranges,
        vec![range(at(0), at(240)), range(at(260), at(400))],
        "the open segment runs to the end of the range"
    );
    assert_eq!(
        r.gaps,
        vec![range(at(-30), at(0)), range(at(240), at(260))],
        "before the first segment and the 20 s the camera was offline"
    );

    // Clipped to the range asked for; a space at an end up to the gap length is no gap.
    let r = s
        .recorded_ranges(&cam, main, at(30), at(250), RECORDING_GAP_SECS)
        .await
        .unwrap();
    assert_eq!(r.ranges, vec![range(at(30), at(240))]);
    assert_eq!(r.gaps, vec![range(at(240), at(250))]);
    let r = s
        .recorded_ranges(&cam, main, at(30), at(241), RECORDING_GAP_SECS)
        .await
        .unwrap();
    assert_eq!(r.ranges, vec![range(at(30), at(240))]);
    assert!(r.gaps.is_empty(), "{:?}", r.gaps);

    // A tolerance of 1 s makes the 1.5 s space a gap.
    let r = s
        .recorded_ranges(&cam, main, at(0), at(240), 1)
        .await
        .unwrap();
    assert_eq!(
        r.ranges,
        vec![range(at(0), at(180)), range(at_ms(181_500), at(240))]
    );
    assert_eq!(r.gaps, vec![range(at(180), at_ms(181_500))]);

    // Nothing recorded in the range: the whole range is the gap (the 404's answer).
    let r = s
        .recorded_ranges(&cam, main, at(242), at(258), RECORDING_GAP_SECS)
        .await
        .unwrap();
    assert!(r.ranges.is_empty());
    assert_eq!(r.gaps, vec![range(at(242), at(258))]);
    let r = s
        .recorded_ranges(&camera("cam-9"), main, at(0), at(1), RECORDING_GAP_SECS)
        .await
        .unwrap();
    assert!(r.ranges.is_empty());
    assert_eq!(r.gaps, vec![range(at(0), at(1))]);

    // The other stream has its own ranges.
    let r = s
        .recorded_ranges(&cam, StreamKind::Sub, at(0), at(400), RECORDING_GAP_SECS)
        .await
        .unwrap();
    assert_eq!(r.ranges, vec![range(at(240), at(260))]);
    assert_eq!(r.gaps, vec![range(at(0), at(240)), range(at(260), at(400))]);
}

async fn retention_follows_each_cameras_days_and_spares_held_segments(db: &TestDb) {
    let s = &db.store;
    let now = at(100 * DAY);
    // cam-a keeps 1 day, cam-b forever, cam-c (not listed) the default 3 days.
    let a_old = recorded(db, "cam-a", 90 * DAY, 90 * DAY + 60).await;
    let a_held = recorded(db, "cam-a", 90 * DAY + 60, 90 * DAY + 120).await;
    let a_touched = recorded(db, "cam-a", 90 * DAY + 120, 90 * DAY + 180).await;
    let a_ending_late = recorded(db, "cam-a", 99 * DAY - 30, 99 * DAY + 30).await;
    let a_new = recorded(db, "cam-a", 99 * DAY + 600, 99 * DAY + 660).await;
    let a_sub = recorded_on(
        db,
        "cam-a",
        StreamKind::Sub,
        at(90 * DAY + 60),
        at(90 * DAY + 120),
    )
    .await;
    let a_open = s
        .segment_opened(&new_segment("cam-a", StreamKind::Main, at(80 * DAY)))
        .await
        .unwrap();
    let b_old = recorded(db, "cam-b", 10 * DAY, 10 * DAY + 60).await;
    let c_recent = recorded(db, "cam-c", 98 * DAY, 98 * DAY + 60).await;
    let c_old = recorded(db, "cam-c", 95 * DAY, 95 * DAY + 60).await;
    let gone_old = recorded(db, "cam-gone", 20 * DAY, 20 * DAY + 60).await;

    // A live hold on cam-a from 90 days + 70 s to + 120 s: it touches a_touched's first
    // instant and holds the sub stream's segment too. A hold on cam-b does nothing to cam-a.
    s.add_hold(&hold("cam-a", 90 * DAY + 70, 90 * DAY + 120, "alert:A1"))
        .await
        .unwrap();
    s.add_hold(&hold("cam-b", 0, 100 * DAY, "export:E1"))
        .await
        .unwrap();
    // A hold that already ended keeps nothing.
    let mut ended = hold("cam-a", 90 * DAY, 90 * DAY + 10, "alert:A0");
    ended.until = Some(at(99 * DAY));
    s.add_hold(&ended).await.unwrap();

    let day = |d: i64| Some(SignedDuration::from_hours(24 * d));
    let days = [
        (camera("cam-a"), day(1)),
        (camera("cam-b"), None),
        (camera("cam-c"), day(30)),
        // Listed twice: the later entry counts.
        (camera("cam-c"), day(4)),
    ];
    let mut expired = ids(&s
        .expired_segments("", &days, day(3), now, 100)
        .await
        .unwrap());
    expired.sort();
    let mut want = vec![a_old, c_old, gone_old];
    want.sort();
    assert_eq!(expired, want);
    for kept in [
        a_held,
        a_touched,
        a_ending_late,
        a_new,
        a_sub,
        a_open,
        b_old,
        c_recent,
    ] {
        assert!(!expired.contains(&kept), "segment {kept} expired");
    }
    // Forever by default: only the listed cameras' segments go.
    let listed_only = s.expired_segments("", &days, None, now, 100).await.unwrap();
    assert_eq!(ids(&listed_only), vec![a_old, c_old]);
    // At most `limit`.
    assert_eq!(
        s.expired_segments("", &days, day(3), now, 2)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        s.expired_segments("", &days, day(3), now, 0)
            .await
            .unwrap()
            .is_empty()
    );

    // The disk guard never takes the held ones either.
    let guard = ids(&s.oldest_unheld_segments("", now, 100).await.unwrap());
    for kept in [a_held, a_touched, a_sub, a_open, b_old] {
        assert!(!guard.contains(&kept), "disk guard took {kept}");
    }

    // The alert resolves: its clip is kept one more day, then goes.
    assert_eq!(
        s.end_hold("alert:A1", now + SignedDuration::from_hours(24))
            .await
            .unwrap(),
        1
    );
    let still = ids(&s
        .expired_segments("", &days, day(3), now, 100)
        .await
        .unwrap());
    assert!(!still.contains(&a_held) && !still.contains(&a_sub));
    let later = now + SignedDuration::from_hours(25);
    let expired = ids(&s
        .expired_segments("", &days, day(3), later, 100)
        .await
        .unwrap());
    for gone in [a_held, a_touched, a_sub] {
        assert!(
            expired.contains(&gone),
            "held segment {gone} kept after its hold ended"
        );
    }
    assert!(!expired.contains(&a_open) && !expired.contains(&b_old));
    let guard = ids(&s.oldest_unheld_segments("", later, 100).await.unwrap());
    assert!(guard.contains(&a_held) && guard.contains(&a_sub));
    assert!(!guard.contains(&b_old), "cam-b's export hold lives");
    assert!(!guard.contains(&a_open), "an open segment is never taken");
}

async fn the_disk_guard_takes_the_oldest_unheld_first_across_cameras(db: &TestDb) {
    let s = &db.store;
    let now = at(DAY);
    // Interleaved across cameras and streams.
    let c1 = recorded(db, "cam-1", 0, 60).await;
    let c2 = recorded(db, "cam-2", 10, 70).await;
    let c3_sub = recorded_on(db, "cam-3", StreamKind::Sub, at(20), at(80)).await;
    let c2_held = recorded(db, "cam-2", 70, 130).await;
    let c1_open = s
        .segment_opened(&new_segment("cam-1", StreamKind::Main, at(60)))
        .await
        .unwrap();
    let c3 = recorded(db, "cam-3", 80, 140).await;
    let c1_b = recorded(db, "cam-1", 200, 260).await;
    s.add_hold(&hold("cam-2", 100, 100, "alert:X"))
        .await
        .unwrap();

    let first = s.oldest_unheld_segments("", now, 3).await.unwrap();
    assert_eq!(ids(&first), vec![c1, c2, c3_sub]);
    // The caller deletes the files, then the rows; the next call goes on from there.
    for seg in &first {
        assert!(s.remove_segment(seg.id).await.unwrap());
    }
    let next = s.oldest_unheld_segments("", now, 3).await.unwrap();
    assert_eq!(
        ids(&next),
        vec![c3, c1_b],
        "skips the held and the open one"
    );
    assert!(s.segment(c2_held).await.unwrap().is_some());
    assert!(s.segment(c1_open).await.unwrap().is_some());
}

/// An alert's clip hold is written with the raised alert, lives while the alert is open, and
/// ends `keep_after` after whoever resolves it (here a person, through `act`), in that same
/// transaction; another alert's hold is untouched.
async fn an_alerts_clip_hold_ends_its_keep_after_when_the_alert_is_resolved(db: &TestDb) {
    use xl_core::alert::AlertAction;
    use xl_core::{Alert, AlertId, AlertKind, AlertState, Severity};
    let alert = |id: &str| Alert {
        id: AlertId(id.to_owned()),
        kind: AlertKind::PersonIntrusion,
        severity: Severity::Major,
        state: AlertState::Open,
        community: xl_core::CommunityId::new("xingfu").unwrap(),
        camera: Some(camera("cam-a")),
        gate: None,
        zone: Some("yard".to_owned()),
        title: "intrusion".to_owned(),
        raised_at: at(100),
        last_seen_at: at(100),
        count: 1,
        ack_deadline: None,
        acknowledged_at: None,
        escalated_at: None,
        resolved_at: None,
        roles: vec![xl_core::Role::Duty],
        source_event: None,
        snapshot: None,
    };
    let clip = |id: &str| NewHold {
        holder: xl_store::alert_holder(&AlertId(id.to_owned())),
        keep_after: SignedDuration::from_hours(24),
        ..hold("cam-a", 90, 120, "unused")
    };
    let raise = |a: &Alert| xl_store::Change {
        alert: a.clone(),
        action: AlertAction::Raised,
        actor: "system".to_owned(),
        note: None,
        at: a.raised_at,
    };
    db.store
        .commit(&xl_store::Commit {
            changes: vec![raise(&alert("A1")), raise(&alert("A2"))],
            holds: vec![clip("A1"), clip("A2")],
            ..Default::default()
        })
        .await
        .unwrap();
    let holds = db
        .store
        .holds_overlapping(&camera("cam-a"), at(100), at(100))
        .await
        .unwrap();
    assert_eq!(holds.len(), 2);
    assert!(
        holds
            .iter()
            .all(|h| h.until.is_none() && h.is_live(at(10 * DAY)))
    );

    db.store
        .act(
            &AlertId("A1".to_owned()),
            AlertAction::Resolved,
            "wang",
            None,
            at(500),
        )
        .await
        .unwrap();
    let holds = db
        .store
        .holds_overlapping(&camera("cam-a"), at(100), at(100))
        .await
        .unwrap();
    let of = |id: &str| {
        let holder = xl_store::alert_holder(&AlertId(id.to_owned()));
        holds.iter().find(|h| h.holder == holder).unwrap().clone()
    };
    assert_eq!(of("A1").until, Some(at(500 + DAY)));
    assert_eq!(of("A1").keep_after, SignedDuration::from_hours(24));
    assert!(of("A1").is_live(at(500 + DAY - 1)) && !of("A1").is_live(at(500 + DAY)));
    assert_eq!(of("A2").until, None);
    // A hold ending before the held segments' retention frees them then.
    let seg = recorded(db, "cam-a", 95, 115).await;
    let keep = [(camera("cam-a"), Some(SignedDuration::from_secs(60)))];
    let expired = |now| {
        let store = db.store.clone();
        let keep = keep.clone();
        async move {
            ids(&store
                .expired_segments("", &keep, None, now, 10)
                .await
                .unwrap())
        }
    };
    assert!(expired(at(2 * DAY)).await.is_empty(), "A2 still holds it");
    db.store
        .act(
            &AlertId("A2".to_owned()),
            AlertAction::Resolved,
            "wang",
            None,
            at(600),
        )
        .await
        .unwrap();
    assert_eq!(expired(at(600 + DAY + 1)).await, vec![seg]);
}

async fn holds_end_and_are_deleted_once_ended(db: &TestDb) {
    let s = &db.store;
    let now = at(1000);
    let cam = camera("cam-1");
    let h1 = s.add_hold(&hold("cam-1", 0, 100, "alert:A")).await.unwrap();
    let h2 = s
        .add_hold(&hold("cam-1", 200, 300, "alert:A"))
        .await
        .unwrap();
    let mut until = hold("cam-1", 50, 250, "export:E");
    until.until = Some(at(5000));
    let h3 = s.add_hold(&until).await.unwrap();
    let h4 = s.add_hold(&hold("cam-2", 0, 300, "alert:A")).await.unwrap();

    let over = s.holds_overlapping(&cam, at(100), at(200)).await.unwrap();
    let over_ids: Vec<i64> = over.iter().map(|h| h.id).collect();
    assert_eq!(over_ids, vec![h1, h3, h2], "by start; closed ranges");
    assert_eq!(over[1].holder, "export:E");
    assert_eq!(over[1].reason, "alert clip");
    assert_eq!((over[1].from, over[1].to), (at(50), at(250)));
    assert_eq!(over[1].until, Some(at(5000)));
    assert!(over.iter().all(|h| h.is_live(now)));
    let inside = s.holds_overlapping(&cam, at(101), at(199)).await.unwrap();
    assert_eq!(inside.iter().map(|h| h.id).collect::<Vec<_>>(), vec![h3]);

    // A hold ending before it starts, or without a holder, is refused.
    let bad = s
        .add_hold(&hold("cam-1", 10, 5, "alert:B"))
        .await
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);
    let bad = s.add_hold(&hold("cam-1", 0, 5, "")).await.unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);

    // Ending the alert's holds ends all three of its ranges (cam-1 and cam-2) at `now`.
    assert_eq!(s.end_hold("alert:A", now).await.unwrap(), 3);
    // An end later than the one set does not extend it.
    assert_eq!(s.end_hold("alert:A", at(9000)).await.unwrap(), 0);
    // An earlier one shortens a hold with an end.
    assert_eq!(s.end_hold("export:E", at(2000)).await.unwrap(), 1);
    assert_eq!(s.end_hold("nobody", now).await.unwrap(), 0);
    let over = s.holds_overlapping(&cam, at(0), at(300)).await.unwrap();
    assert!(over.iter().all(|h| h.until.is_some()));
    assert!(
        over.iter()
            .filter(|h| h.holder == "alert:A")
            .all(|h| !h.is_live(now))
    );
    assert!(over.iter().find(|h| h.id == h3).unwrap().is_live(now));

    // Ended holds go; the live one stays.
    assert_eq!(s.delete_ended_holds(now).await.unwrap(), 3);
    let left = s.holds_overlapping(&cam, at(0), at(300)).await.unwrap();
    assert_eq!(left.iter().map(|h| h.id).collect::<Vec<_>>(), vec![h3]);
    let cam2 = s
        .holds_overlapping(&camera("cam-2"), at(0), at(300))
        .await
        .unwrap();
    assert!(cam2.is_empty(), "hold {h4} ended and deleted: {cam2:?}");
}

/// Data written by a hub from before the recordings' migration, upgraded: the old data reads
/// back and the recordings' index works.
async fn an_upgraded_database_keeps_its_data(backend: Backend) {
    let seed = [
        "INSERT INTO gate_events (seq, id, gate, community, camera, firmware, kind, \
         received_at, occurred_at, dedup_key, evidence, body) VALUES (1, 'ev-1', 'east', 'c1', \
         'cam-1', 'hikvision-isapi', 'access_granted', 1735689600000, NULL, 'east|ev-1', NULL, \
         '{\"card\":\"42\"}')",
        "INSERT INTO snapshots (id, camera, gate, alert_id, taken_at, path, width, height, \
         bytes, has_faces, boxes) VALUES ('snap-1', 'cam-1', NULL, NULL, 1735689600000, \
         'cam-1/snap-1.jpg', 640, 480, 1234, 0, '[]')",
        "INSERT INTO users (username, password_hash, role, communities, disabled, created_at, \
         stations) VALUES ('duty1', 'not-a-real-hash', 'duty', \
         '[]', 0, 1735689600000, '[]')",
    ];
    let db = TestDb::upgraded(backend, 4, &seed).await;
    let s = &db.store;
    let events = s.gate_events_after(0, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id, "ev-1");
    assert_eq!(events[0].body, serde_json::json!({"card": "42"}));
    let snap = s.snapshot("snap-1").await.unwrap().unwrap();
    assert_eq!((snap.width, snap.bytes), (640, 1234));
    assert_eq!(s.user("duty1").await.unwrap().unwrap().username, "duty1");

    // Every migration ran once, in order.
    let versions: Vec<i64> = {
        use sqlx::Row;
        sqlx::query("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(s.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get("version").unwrap())
            .collect()
    };
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6, 7, 8, 9]);

    let id = recorded(&db, "cam-1", 0, 60).await;
    assert_eq!(
        ids(&s
            .segments(&camera("cam-1"), StreamKind::Main, at(0), at(60))
            .await
            .unwrap()),
        vec![id]
    );
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_sqlite_database_keeps_its_data() {
    an_upgraded_database_keeps_its_data(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_postgres_database_keeps_its_data() {
    an_upgraded_database_keeps_its_data(Backend::Postgres).await;
}

/// A segment indexed before segments named their node (migration 7) is the single hub's ('').
async fn a_segment_from_before_nodes_is_the_single_hubs(backend: Backend) {
    let seed = [
        "INSERT INTO recording_segments (id, camera, stream, start_at, end_at, bytes, \
                 codec, width, height, media_start_90k, path, state) VALUES (1, 'cam-0', 'main', \
                 1735689600000, NULL, 0, 'h264', 640, 360, 0, 'recordings/cam-0/main/a.mp4', \
                 'open')",
    ];
    let db = TestDb::upgraded(backend, 7, &seed).await;
    let old = db.store.open_segments("").await.unwrap();
    assert_eq!(ids(&old), vec![1], "still the single hub's to repair");
    assert_eq!(old[0].node, "");
    assert!(db.store.open_segments("n1").await.unwrap().is_empty());
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_from_before_nodes_is_the_single_hubs_on_sqlite() {
    a_segment_from_before_nodes_is_the_single_hubs(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_from_before_nodes_is_the_single_hubs_on_postgres() {
    a_segment_from_before_nodes_is_the_single_hubs(Backend::Postgres).await;
}

/// Two nodes of a district share the index; each has the files it recorded on its own disk.
/// Playback reads every node's segments as one timeline; the repair, retention and the disk
/// guard of a node touch only its own (the other may be writing its open one right now).
async fn each_node_repairs_expires_and_guards_only_its_own_segments(db: &TestDb) {
    let s = &db.store;
    let on = |node: &str, start: i64| {
        let mut seg = new_segment("cam-moved", StreamKind::Main, at(start));
        seg.node = node.to_owned();
        seg
    };
    // The camera ran on n1 for a minute, then moved to n2, which is recording it now.
    let n1_old = s.segment_opened(&on("n1", 0)).await.unwrap();
    s.segment_closed(n1_old, at(60), 1_000).await.unwrap();
    let n1_open = s.segment_opened(&on("n1", 60)).await.unwrap();
    let n2_closed = s.segment_opened(&on("n2", 120)).await.unwrap();
    s.segment_closed(n2_closed, at(180), 1_000).await.unwrap();
    let n2_open = s.segment_opened(&on("n2", 180)).await.unwrap();

    let timeline = s
        .segments(&camera("cam-moved"), StreamKind::Main, at(0), at(240))
        .await
        .unwrap();
    assert_eq!(ids(&timeline), vec![n1_old, n1_open, n2_closed, n2_open]);
    let nodes: Vec<&str> = timeline.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(nodes, ["n1", "n1", "n2", "n2"]);

    assert_eq!(ids(&s.open_segments("n1").await.unwrap()), vec![n1_open]);
    assert_eq!(ids(&s.open_segments("n2").await.unwrap()), vec![n2_open]);
    assert!(s.open_segments("").await.unwrap().is_empty());

    let later = at(10 * DAY);
    let keep = [(camera("cam-moved"), Some(SignedDuration::from_hours(24)))];
    let default = Some(SignedDuration::from_hours(24));
    let n1 = s
        .expired_segments("n1", &keep, default, later, 100)
        .await
        .unwrap();
    assert_eq!(ids(&n1), vec![n1_old]);
    let n2 = s
        .expired_segments("n2", &keep, default, later, 100)
        .await
        .unwrap();
    assert_eq!(ids(&n2), vec![n2_closed]);
    // Unlisted cameras (the default keep) are split the same way.
    let n2_default = s
        .expired_segments("n2", &[], default, later, 100)
        .await
        .unwrap();
    assert_eq!(ids(&n2_default), vec![n2_closed]);

    let guard = s.oldest_unheld_segments("n1", later, 100).await.unwrap();
    assert_eq!(ids(&guard), vec![n1_old]);
    assert!(
        s.oldest_unheld_segments("n3", later, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A node that left the district for good: its rows go, the other nodes' and the single
/// hub's stay, and its ids are not given again.
async fn a_node_that_left_is_forgotten_alone(db: &TestDb) {
    let s = &db.store;
    let on = |node: &str, start: i64| {
        let mut seg = new_segment("cam-left", StreamKind::Main, at(start));
        seg.node = node.to_owned();
        seg
    };
    let before = s.segment_opened(&on("", 0)).await.unwrap();
    s.segment_closed(before, at(60), 1_000).await.unwrap();
    let gone_closed = s.segment_opened(&on("n3", 60)).await.unwrap();
    s.segment_closed(gone_closed, at(120), 1_000).await.unwrap();
    let gone_open = s.segment_opened(&on("n3", 120)).await.unwrap();
    let kept = s.segment_opened(&on("n1", 180)).await.unwrap();

    assert_eq!(s.forget_node_segments("n3").await.unwrap(), 2);
    let left = s
        .segments(&camera("cam-left"), StreamKind::Main, at(0), at(240))
        .await
        .unwrap();
    assert_eq!(ids(&left), vec![before, kept]);
    assert!(s.segment(gone_open).await.unwrap().is_none());
    assert_eq!(s.forget_node_segments("n3").await.unwrap(), 0, "once");
    let e = s.forget_node_segments("").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let next = s.segment_opened(&on("n1", 240)).await.unwrap();
    assert!(next > gone_open, "{next} reuses a forgotten id");
}

/// A single hub's segments (node '') become the node's it joined the district as; the other
/// nodes' stay theirs.
async fn a_hub_that_joins_a_district_takes_its_segments(db: &TestDb) {
    let s = &db.store;
    assert!(s.single_hub_segment_ends().await.unwrap().is_none());
    let on = |node: &str, start: i64| {
        let mut seg = new_segment("cam-joined", StreamKind::Main, at(start));
        seg.node = node.to_owned();
        seg
    };
    let first = s.segment_opened(&on("", 0)).await.unwrap();
    s.segment_closed(first, at(60), 1_000).await.unwrap();
    let other = s.segment_opened(&on("n2", 60)).await.unwrap();
    let last = s.segment_opened(&on("", 120)).await.unwrap();

    let (oldest, newest) = s.single_hub_segment_ends().await.unwrap().unwrap();
    assert_eq!((oldest.id, newest.id), (first, last));
    assert_eq!(s.adopt_single_hub_segments("n1").await.unwrap(), 2);
    assert!(s.single_hub_segment_ends().await.unwrap().is_none());
    let rows = s
        .segments(&camera("cam-joined"), StreamKind::Main, at(0), at(240))
        .await
        .unwrap();
    let nodes: Vec<(i64, &str)> = rows.iter().map(|r| (r.id, r.node.as_str())).collect();
    assert_eq!(nodes, vec![(first, "n1"), (other, "n2"), (last, "n1")]);
    // The open one is now the node's to repair.
    assert_eq!(ids(&s.open_segments("n1").await.unwrap()), vec![last]);
    assert_eq!(s.adopt_single_hub_segments("n1").await.unwrap(), 0);
    let e = s.adopt_single_hub_segments("").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}
