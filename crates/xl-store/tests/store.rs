//! The store against real databases: every test runs on a fresh SQLite file and on a fresh
//! PostgreSQL database (created on the server at `XUELIANG_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`, and dropped afterwards).

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::json;
use sqlx::Connection;
use xl_core::alert::AlertAction;
use xl_core::{
    Alert, AlertId, AlertKind, AlertState, CameraId, CommunityId, ErrorKind, GateId, Role,
    Severity, StationId,
};
use xl_store::{
    AlertFilter, AuditFilter, CameraRow, Change, Commit, GateEventFilter, GateRow, NewAudit,
    NewDeadLetter, NewGateEvent, NewSnapshot, NewVisionEvent, Retention, SessionRow, Store,
    StoreError, UserRow, VisionEventFilter, VisionEventRow,
};

#[macro_use]
mod common;

use common::TestDb;

fn snapshot_dir(db: &TestDb) -> PathBuf {
    db.dir.path().join("snapshots")
}

both_backends!(
    migrations_run_twice,
    gate_batches_get_increasing_seqs_and_page,
    a_duplicate_event_id_fails_the_whole_batch,
    gate_events_and_vision_events_filter,
    a_failing_commit_leaves_nothing,
    commit_writes_outbox_and_cursors,
    act_follows_the_state_machine_and_records_history,
    list_alerts_filters_by_community_state_kind_and_time,
    response_times_per_community_and_kind,
    snapshots_and_registry,
    users_sessions_and_duplicates,
    audit_appends_and_lists,
    audit_pages_reach_past_the_newest_ten_thousand,
    purge_deletes_old_data_and_keeps_the_rest,
    numbering_goes_on_after_a_purge_empties_a_table,
    gate_shard_readers_take_over_from_the_single_reader_and_hold_retention,
    nul_in_free_text_does_not_fail_a_batch,
    an_audited_action_commits_with_its_entry_or_not_at_all,
    the_engines_changes_never_overwrite_a_persons,
    a_persons_escalation_routes_to_the_police_desk,
);

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

/// 2025-01-01T00:00:00Z, a base for test times.
const T0: i64 = 1_735_689_600;

fn gate(s: &str) -> GateId {
    GateId::new(s).unwrap()
}
fn community(s: &str) -> CommunityId {
    CommunityId::new(s).unwrap()
}
fn camera(s: &str) -> CameraId {
    CameraId::new(s).unwrap()
}

fn event(id: &str, g: &str, c: &str, at: i64) -> NewGateEvent {
    NewGateEvent {
        id: id.to_owned(),
        gate: gate(g),
        community: community(c),
        camera: (g == "east").then(|| camera("cam-east")),
        firmware: "hikvision-isapi".to_owned(),
        kind: "access_granted".to_owned(),
        received_at: ts(at),
        occurred_at: id.ends_with('2').then(|| ts(at - 1)),
        dedup_key: format!("{g}|{id}"),
        evidence: None,
        body: json!({ "id": id, "card": "0012345", "nested": { "ok": true } }),
    }
}

fn alert(id: &str, c: &str, kind: AlertKind, raised: i64) -> Alert {
    Alert {
        id: AlertId(id.to_owned()),
        kind,
        severity: Severity::Major,
        state: AlertState::Open,
        community: community(c),
        camera: Some(camera("cam-1")),
        gate: Some(gate("east")),
        zone: None,
        title: format!("{kind} at east gate"),
        raised_at: ts(raised),
        last_seen_at: ts(raised),
        count: 1,
        ack_deadline: Some(ts(raised + 300)),
        acknowledged_at: None,
        escalated_at: None,
        resolved_at: None,
        roles: vec![Role::Duty, Role::Property],
        source_event: Some(format!("ev-{id}")),
        snapshot: None,
    }
}

fn raise(a: &Alert) -> Change {
    Change {
        alert: a.clone(),
        action: AlertAction::Raised,
        actor: "system".to_owned(),
        note: None,
        at: a.raised_at,
    }
}

fn snapshot(id: &str, cam: &str, taken: i64, faces: bool) -> NewSnapshot {
    NewSnapshot {
        id: id.to_owned(),
        camera: Some(camera(cam)),
        gate: None,
        alert: None,
        taken_at: ts(taken),
        path: format!("{cam}/{id}.jpg"),
        width: 640,
        height: 360,
        bytes: 12_345,
        has_faces: faces,
        boxes: json!([{ "x": 1, "y": 2, "w": 30, "h": 60, "label": "person" }]),
    }
}

fn write_file(dir: &Path, rel: &str) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, b"\xff\xd8 not really a jpeg").unwrap();
    p
}

async fn migrations_run_twice(db: &TestDb) {
    db.store
        .insert_gate_batch(&[event("a", "east", "c1", T0)], &[])
        .await
        .unwrap();
    // Opening the same database again runs the (already applied) migrations again.
    let again = Store::open(&db.url).await.unwrap();
    let rows = again.gate_events_after(0, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, "a");
    let applied: i64 = {
        use sqlx::Row;
        sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations")
            .fetch_one(again.pool())
            .await
            .unwrap()
            .try_get("n")
            .unwrap()
    };
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    assert_eq!(applied as usize, files, "each migration once");
    again.close().await;
}

async fn gate_batches_get_increasing_seqs_and_page(db: &TestDb) {
    let s = &db.store;
    let first = [
        event("e1", "east", "c1", T0),
        event("e02", "west", "c1", T0 + 1),
        event("e3", "east", "c2", T0 + 2),
    ];
    s.insert_gate_batch(&first, &[]).await.unwrap();
    s.insert_gate_batch(
        &[
            event("e4", "east", "c1", T0 + 3),
            event("e5", "west", "c2", T0 + 4),
        ],
        &[],
    )
    .await
    .unwrap();

    let all = s.gate_events_after(0, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["e1", "e02", "e3", "e4", "e5"]
    );
    // Every field comes back as stored.
    let e2 = &all[1];
    let want = event("e02", "west", "c1", T0 + 1);
    assert_eq!(e2.gate, want.gate);
    assert_eq!(e2.community, want.community);
    assert_eq!(e2.camera, None);
    assert_eq!(all[0].camera, Some(camera("cam-east")));
    assert_eq!(e2.occurred_at, Some(ts(T0)));
    assert_eq!(all[0].occurred_at, None);
    assert_eq!(e2.received_at, ts(T0 + 1));
    assert_eq!(e2.body, want.body);
    assert_eq!(e2.dedup_key, "west|e02");

    // Paging with a cursor.
    let p1 = s.gate_events_after(0, 2).await.unwrap();
    let p2 = s
        .gate_events_after(p1.last().unwrap().seq, 2)
        .await
        .unwrap();
    let p3 = s
        .gate_events_after(p2.last().unwrap().seq, 2)
        .await
        .unwrap();
    let p4 = s
        .gate_events_after(p3.last().unwrap().seq, 2)
        .await
        .unwrap();
    assert_eq!(p1.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(p2.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(p3.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![5]);
    assert!(p4.is_empty());

    // Dedup keys of the last few seconds.
    let keys = s.recent_gate_dedup_keys(ts(T0 + 3)).await.unwrap();
    assert_eq!(
        keys,
        vec![
            ("east|e4".to_owned(), ts(T0 + 3)),
            ("west|e5".to_owned(), ts(T0 + 4))
        ]
    );
}

async fn a_duplicate_event_id_fails_the_whole_batch(db: &TestDb) {
    let s = &db.store;
    s.insert_gate_batch(&[event("a", "east", "c1", T0)], &[])
        .await
        .unwrap();
    let dl = NewDeadLetter {
        id: "dl-1".to_owned(),
        received_at: ts(T0 + 1),
        firmware: Some("dahua".to_owned()),
        gate: None,
        error: "expected JSON at byte 0".to_owned(),
        body: json!({ "raw_base64": "AAEC", "topic": "gates/x" }),
    };
    let err = s
        .insert_gate_batch(
            &[
                event("b", "east", "c1", T0 + 1),
                event("a", "east", "c1", T0 + 2),
                event("c", "east", "c1", T0 + 3),
            ],
            std::slice::from_ref(&dl),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(
        matches!(&err, StoreError::Duplicate { id, .. } if id == "a"),
        "{err}"
    );
    // Nothing of the failed batch is stored, and the next batch continues without a gap.
    assert_eq!(s.gate_events_after(0, 10).await.unwrap().len(), 1);
    assert!(s.list_dead_letters(10).await.unwrap().is_empty());
    s.insert_gate_batch(
        &[event("b", "east", "c1", T0 + 1)],
        std::slice::from_ref(&dl),
    )
    .await
    .unwrap();
    let rows = s.gate_events_after(0, 10).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(s.list_dead_letters(10).await.unwrap(), vec![dl.clone()]);
    // A duplicate inside one batch fails too.
    let err = s
        .insert_gate_batch(
            &[event("x", "east", "c1", T0), event("x", "east", "c1", T0)],
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(s.gate_events_after(0, 10).await.unwrap().len(), 2);
}

async fn gate_events_and_vision_events_filter(db: &TestDb) {
    let s = &db.store;
    s.insert_gate_batch(
        &[
            event("g1", "east", "c1", T0),
            event("g2", "west", "c1", T0 + 10),
            event("g3", "east", "c2", T0 + 20),
            event("g4", "east", "c1", T0 + 30),
        ],
        &[],
    )
    .await
    .unwrap();
    let ids =
        |rows: Vec<xl_store::GateEventRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let f = GateEventFilter {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        ids(s.list_gate_events(&f).await.unwrap()),
        ["g4", "g3", "g2", "g1"]
    );
    let by_gate = GateEventFilter {
        gates: Some(vec![gate("east")]),
        ..f.clone()
    };
    assert_eq!(
        ids(s.list_gate_events(&by_gate).await.unwrap()),
        ["g4", "g3", "g1"]
    );
    let scoped = GateEventFilter {
        gates: Some(vec![gate("east")]),
        communities: Some(vec![community("c1")]),
        from: Some(ts(T0 + 1)),
        to: Some(ts(T0 + 31)),
        ..f.clone()
    };
    assert_eq!(ids(s.list_gate_events(&scoped).await.unwrap()), ["g4"]);
    let none = GateEventFilter {
        communities: Some(vec![]),
        ..f.clone()
    };
    assert!(s.list_gate_events(&none).await.unwrap().is_empty());
    let limited = GateEventFilter { limit: 2, ..f };
    assert_eq!(
        ids(s.list_gate_events(&limited).await.unwrap()),
        ["g4", "g3"]
    );

    let v =
        |id: &str, cam: &str, c: &str, kind: &str, zone: Option<&str>, at: i64| NewVisionEvent {
            id: id.to_owned(),
            camera: camera(cam),
            community: community(c),
            kind: kind.to_owned(),
            zone: zone.map(str::to_owned),
            at: ts(at),
            body: json!({ "track": 7, "kind": kind }),
        };
    let events = vec![
        v("v1", "cam-1", "c1", "zone_entered", Some("lobby"), T0),
        v("v2", "cam-2", "c1", "dwell", Some("lobby"), T0 + 5),
        v("v3", "cam-1", "c2", "count_over", None, T0 + 9),
    ];
    s.insert_vision_events(&events).await.unwrap();
    // Every field comes back as stored, with its seq.
    let stored = |seq: i64, e: &NewVisionEvent| VisionEventRow {
        seq,
        id: e.id.clone(),
        camera: e.camera.clone(),
        community: e.community.clone(),
        kind: e.kind.clone(),
        zone: e.zone.clone(),
        at: e.at,
        body: e.body.clone(),
    };
    let all = s
        .list_vision_events(&VisionEventFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all,
        vec![
            stored(3, &events[2]),
            stored(2, &events[1]),
            stored(1, &events[0])
        ]
    );
    let cam1 = s
        .list_vision_events(&VisionEventFilter {
            cameras: Some(vec![camera("cam-1")]),
            kinds: Some(vec!["zone_entered".to_owned()]),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(cam1, vec![stored(1, &events[0])]);
    let dup = s.insert_vision_events(&events[..1]).await.unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::InvalidInput);
}

async fn a_failing_commit_leaves_nothing(db: &TestDb) {
    let s = &db.store;
    let a = alert("a", "c1", AlertKind::GateForcedOpen, T0);
    let mut missing = alert("missing", "c1", AlertKind::GateHeldOpen, T0);
    missing.count = 2;
    let commit = Commit {
        changes: vec![
            raise(&a),
            Change {
                alert: missing,
                action: AlertAction::Repeated,
                actor: "system".to_owned(),
                note: None,
                at: ts(T0 + 1),
            },
        ],
        snapshots: vec![snapshot("s1", "cam-1", T0, false)],
        cursors: vec![("rules.gate_events".to_owned(), 42)],
        holds: vec![],
        fence: None,
    };
    let err = s.commit(&commit).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("missing"), "{err}");
    assert!(s.alert(&AlertId("a".to_owned())).await.unwrap().is_none());
    assert_eq!(s.last_outbox_seq().await.unwrap(), 0);
    assert!(s.outbox_after(0, 10).await.unwrap().is_empty());
    assert_eq!(s.cursor("rules.gate_events").await.unwrap(), 0);
    assert!(s.snapshot("s1").await.unwrap().is_none());
    assert!(s.active_alerts().await.unwrap().is_empty());
}

async fn commit_writes_outbox_and_cursors(db: &TestDb) {
    let s = &db.store;
    let a = alert("a", "c1", AlertKind::GateForcedOpen, T0);
    let b = alert("b", "c2", AlertKind::CameraOffline, T0 + 1);
    let mut snap = snapshot("s-a", "cam-1", T0, true);
    snap.alert = Some(a.id.clone());
    let out = s
        .commit(&Commit {
            changes: vec![raise(&a), raise(&b)],
            snapshots: vec![snap.clone()],
            cursors: vec![("rules.gate_events".to_owned(), 17)],
            holds: vec![],
            fence: None,
        })
        .await
        .unwrap();
    assert_eq!(out.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(out[0].alert, a);
    assert_eq!(out[0].change, AlertAction::Raised);

    let mut a2 = a.clone();
    a2.count = 2;
    a2.last_seen_at = ts(T0 + 60);
    let mut b2 = b.clone();
    b2.state = AlertState::Resolved;
    b2.resolved_at = Some(ts(T0 + 90));
    let out2 = s
        .commit(&Commit {
            changes: vec![
                Change {
                    alert: a2.clone(),
                    action: AlertAction::Repeated,
                    actor: "system".to_owned(),
                    note: None,
                    at: ts(T0 + 60),
                },
                Change {
                    alert: b2.clone(),
                    action: AlertAction::Resolved,
                    actor: "system".to_owned(),
                    note: Some("camera back online".to_owned()),
                    at: ts(T0 + 90),
                },
            ],
            snapshots: vec![],
            cursors: vec![
                ("rules.gate_events".to_owned(), 20),
                ("rules.vision".to_owned(), 5),
            ],
            holds: vec![],
            fence: None,
        })
        .await
        .unwrap();
    assert_eq!(out2.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);

    let all = s.outbox_after(0, 100).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[..2], out[..]);
    assert_eq!(all[2..], out2[..]);
    assert_eq!(all[2].alert, a2);
    assert_eq!(all[2].at, ts(T0 + 60));
    assert_eq!(
        s.outbox_after(1, 2)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(s.last_outbox_seq().await.unwrap(), 4);
    assert_eq!(s.cursor("rules.gate_events").await.unwrap(), 20);
    assert_eq!(s.cursor("rules.vision").await.unwrap(), 5);
    assert_eq!(s.cursor("never.set").await.unwrap(), 0);
    s.set_cursor("outbox.mqtt", 3).await.unwrap();
    s.set_cursor("outbox.mqtt", 4).await.unwrap();
    assert_eq!(s.cursor("outbox.mqtt").await.unwrap(), 4);

    // The alerts as they are now, and what is still active.
    let detail = s.alert(&a.id).await.unwrap().unwrap();
    assert_eq!(detail.alert, a2);
    assert_eq!(detail.history.len(), 2);
    assert_eq!(detail.history[1].action, AlertAction::Repeated);
    assert_eq!(detail.snapshots, vec![snap]);
    assert_eq!(s.active_alerts().await.unwrap(), vec![a2]);
    let bd = s.alert(&b.id).await.unwrap().unwrap();
    assert_eq!(bd.alert, b2);
    assert_eq!(bd.history[1].note.as_deref(), Some("camera back online"));
    assert_eq!(bd.history[1].from_state, Some(AlertState::Open));
    assert_eq!(bd.history[1].to_state, AlertState::Resolved);

    // Raising an id twice fails and writes nothing.
    let err = s
        .commit(&Commit {
            changes: vec![raise(&a)],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(s.last_outbox_seq().await.unwrap(), 4);
}

async fn act_follows_the_state_machine_and_records_history(db: &TestDb) {
    let s = &db.store;
    let a = alert("a", "c1", AlertKind::GateForcedOpen, T0);
    s.commit(&Commit {
        changes: vec![raise(&a)],
        ..Default::default()
    })
    .await
    .unwrap();
    let id = a.id.clone();

    let e = s
        .act(&id, AlertAction::Acknowledged, "duty1", None, ts(T0 + 30))
        .await
        .unwrap();
    assert_eq!(e.seq, 2);
    assert_eq!(e.change, AlertAction::Acknowledged);
    assert_eq!(e.alert.state, AlertState::Acknowledged);
    assert_eq!(e.alert.acknowledged_at, Some(ts(T0 + 30)));

    // Acknowledged -> acknowledged again is not allowed; escalate is.
    let err = s
        .act(&id, AlertAction::Acknowledged, "duty2", None, ts(T0 + 31))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let e = s
        .act(
            &id,
            AlertAction::Escalated,
            "duty1",
            Some("needs police"),
            ts(T0 + 40),
        )
        .await
        .unwrap();
    assert_eq!(e.alert.state, AlertState::Escalated);
    assert_eq!(e.alert.escalated_at, Some(ts(T0 + 40)));
    let err = s
        .act(&id, AlertAction::Escalated, "duty1", None, ts(T0 + 41))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IllegalTransition { .. }), "{err}");

    // A note needs text.
    let err = s
        .act(&id, AlertAction::Noted, "police1", None, ts(T0 + 50))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = s
        .act(&id, AlertAction::Noted, "police1", Some("  "), ts(T0 + 50))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    s.act(
        &id,
        AlertAction::Noted,
        "police1",
        Some("on the way"),
        ts(T0 + 50),
    )
    .await
    .unwrap();

    let e = s
        .act(
            &id,
            AlertAction::Resolved,
            "police1",
            Some("false alarm"),
            ts(T0 + 100),
        )
        .await
        .unwrap();
    assert_eq!(e.alert.state, AlertState::Resolved);
    assert_eq!(e.alert.resolved_at, Some(ts(T0 + 100)));
    assert_eq!(e.alert.acknowledged_at, Some(ts(T0 + 30)));

    // Nothing but a note after resolution.
    let err = s
        .act(&id, AlertAction::Acknowledged, "duty1", None, ts(T0 + 110))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("resolved"), "{err}");
    for action in [
        AlertAction::Resolved,
        AlertAction::Escalated,
        AlertAction::Raised,
    ] {
        let err = s
            .act(&id, action, "duty1", None, ts(T0 + 110))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{action}");
    }
    s.act(
        &id,
        AlertAction::Noted,
        "duty1",
        Some("closed in the log"),
        ts(T0 + 120),
    )
    .await
    .unwrap();
    let err = s
        .act(
            &AlertId("nope".to_owned()),
            AlertAction::Acknowledged,
            "duty1",
            None,
            ts(T0),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    let d = s.alert(&id).await.unwrap().unwrap();
    assert_eq!(d.alert.state, AlertState::Resolved);
    let h: Vec<_> = d
        .history
        .iter()
        .map(|r| {
            (
                r.n,
                r.action,
                r.from_state,
                r.to_state,
                r.actor.as_str(),
                r.note.as_deref(),
            )
        })
        .collect();
    use AlertState::*;
    assert_eq!(
        h,
        vec![
            (1, AlertAction::Raised, None, Open, "system", None),
            (
                2,
                AlertAction::Acknowledged,
                Some(Open),
                Acknowledged,
                "duty1",
                None
            ),
            (
                3,
                AlertAction::Escalated,
                Some(Acknowledged),
                Escalated,
                "duty1",
                Some("needs police")
            ),
            (
                4,
                AlertAction::Noted,
                Some(Escalated),
                Escalated,
                "police1",
                Some("on the way")
            ),
            (
                5,
                AlertAction::Resolved,
                Some(Escalated),
                Resolved,
                "police1",
                Some("false alarm")
            ),
            (
                6,
                AlertAction::Noted,
                Some(Resolved),
                Resolved,
                "duty1",
                Some("closed in the log")
            ),
        ]
    );
    assert_eq!(d.history[1].at, ts(T0 + 30));
    // Failed actions wrote no outbox rows: 1 raise + 5 successful actions.
    assert_eq!(s.last_outbox_seq().await.unwrap(), 6);
    assert!(s.active_alerts().await.unwrap().is_empty());

    // Escalated -> acknowledged is allowed (the desk takes it on).
    let b = alert("b", "c1", AlertKind::GateTamper, T0);
    s.commit(&Commit {
        changes: vec![raise(&b)],
        ..Default::default()
    })
    .await
    .unwrap();
    s.act(&b.id, AlertAction::Escalated, "system", None, ts(T0 + 300))
        .await
        .unwrap();
    let e = s
        .act(
            &b.id,
            AlertAction::Acknowledged,
            "police1",
            None,
            ts(T0 + 400),
        )
        .await
        .unwrap();
    assert_eq!(e.alert.state, AlertState::Acknowledged);
}

async fn list_alerts_filters_by_community_state_kind_and_time(db: &TestDb) {
    let s = &db.store;
    let alerts = [
        alert("a1", "c1", AlertKind::GateForcedOpen, T0),
        alert("a2", "c2", AlertKind::GateForcedOpen, T0 + 10),
        alert("a3", "c1", AlertKind::PersonIntrusion, T0 + 20),
        alert("a4", "c3", AlertKind::CameraOffline, T0 + 30),
        alert("a5", "c1", AlertKind::GateHeldOpen, T0 + 40),
    ];
    s.commit(&Commit {
        changes: alerts.iter().map(raise).collect(),
        ..Default::default()
    })
    .await
    .unwrap();
    s.act(
        &alerts[2].id,
        AlertAction::Acknowledged,
        "d",
        None,
        ts(T0 + 50),
    )
    .await
    .unwrap();
    s.act(&alerts[4].id, AlertAction::Resolved, "d", None, ts(T0 + 50))
        .await
        .unwrap();
    let ids = |v: Vec<Alert>| v.into_iter().map(|a| a.id.0).collect::<Vec<_>>();
    let all = AlertFilter {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        ids(s.list_alerts(&all).await.unwrap()),
        ["a5", "a4", "a3", "a2", "a1"]
    );
    // A property manager of c1 sees only c1.
    let c1 = AlertFilter {
        communities: Some(vec![community("c1")]),
        ..all.clone()
    };
    assert_eq!(ids(s.list_alerts(&c1).await.unwrap()), ["a5", "a3", "a1"]);
    let c1c3 = AlertFilter {
        communities: Some(vec![community("c1"), community("c3")]),
        ..all.clone()
    };
    assert_eq!(
        ids(s.list_alerts(&c1c3).await.unwrap()),
        ["a5", "a4", "a3", "a1"]
    );
    // No communities: nothing (not everything).
    let nobody = AlertFilter {
        communities: Some(vec![]),
        ..all.clone()
    };
    assert!(s.list_alerts(&nobody).await.unwrap().is_empty());
    let open_c1 = AlertFilter {
        states: Some(vec![AlertState::Open]),
        ..c1.clone()
    };
    assert_eq!(ids(s.list_alerts(&open_c1).await.unwrap()), ["a1"]);
    let gate_kinds = AlertFilter {
        kinds: Some(vec![AlertKind::GateForcedOpen, AlertKind::GateHeldOpen]),
        ..all.clone()
    };
    assert_eq!(
        ids(s.list_alerts(&gate_kinds).await.unwrap()),
        ["a5", "a2", "a1"]
    );
    let window = AlertFilter {
        from: Some(ts(T0 + 10)),
        to: Some(ts(T0 + 30)),
        ..all.clone()
    };
    assert_eq!(ids(s.list_alerts(&window).await.unwrap()), ["a3", "a2"]);
    let two = AlertFilter { limit: 2, ..all };
    assert_eq!(ids(s.list_alerts(&two).await.unwrap()), ["a5", "a4"]);
    assert_eq!(
        ids(s.active_alerts().await.unwrap()),
        ["a1", "a2", "a3", "a4"]
    );
}

async fn response_times_per_community_and_kind(db: &TestDb) {
    let s = &db.store;
    let k = AlertKind::GateForcedOpen;
    let raised = [
        alert("r1", "c1", k, T0),
        alert("r2", "c1", k, T0 + 100),
        alert("r3", "c1", k, T0 + 200),
        alert("r4", "c1", k, T0 + 300),
        Alert {
            roles: vec![Role::Duty, Role::Police],
            ..alert("r5", "c2", AlertKind::CameraOffline, T0 + 400)
        },
        alert("old", "c1", k, T0 - 10_000),
    ];
    s.commit(&Commit {
        changes: raised.iter().map(raise).collect(),
        ..Default::default()
    })
    .await
    .unwrap();
    // c1 forced-open: acknowledged after 60, 120 and 300 s (r4 never); resolved after 600
    // and 900 s.
    for (id, ack_after, resolve_after) in [
        ("r1", Some(60), Some(600)),
        ("r2", Some(120), Some(900)),
        ("r3", Some(300), None),
    ] {
        let a = raised.iter().find(|a| a.id.0 == id).unwrap();
        let t = a.raised_at.as_second();
        if let Some(d) = ack_after {
            s.act(&a.id, AlertAction::Acknowledged, "d", None, ts(t + d))
                .await
                .unwrap();
        }
        if let Some(d) = resolve_after {
            s.act(&a.id, AlertAction::Resolved, "d", None, ts(t + d))
                .await
                .unwrap();
        }
    }
    // The camera alert resolved itself after 30 s, unacknowledged.
    s.act(
        &raised[4].id,
        AlertAction::Resolved,
        "system",
        None,
        ts(T0 + 430),
    )
    .await
    .unwrap();
    s.act(
        &raised[5].id,
        AlertAction::Acknowledged,
        "d",
        None,
        ts(T0 - 10_000 + 5),
    )
    .await
    .unwrap();

    let figs = s
        .response_times(ts(T0), ts(T0 + 1000), None, None)
        .await
        .unwrap();
    assert_eq!(figs.len(), 2, "{figs:?}");
    let c1 = &figs[0];
    assert_eq!((c1.community.as_str(), c1.kind), ("c1", k));
    assert_eq!(c1.raised, 4);
    assert_eq!(c1.to_acknowledge.count, 3);
    assert_eq!(c1.to_acknowledge.mean_secs, Some(160.0));
    assert_eq!(c1.to_acknowledge.p50_secs, Some(120.0));
    assert_eq!(c1.to_acknowledge.p90_secs, Some(300.0));
    assert_eq!(c1.to_resolve.count, 2);
    assert_eq!(c1.to_resolve.mean_secs, Some(750.0));
    assert_eq!(c1.to_resolve.p50_secs, Some(600.0));
    assert_eq!(c1.to_resolve.p90_secs, Some(900.0));
    let c2 = &figs[1];
    assert_eq!(
        (c2.community.as_str(), c2.kind),
        ("c2", AlertKind::CameraOffline)
    );
    assert_eq!(c2.raised, 1);
    assert_eq!(c2.to_acknowledge.count, 0);
    assert_eq!(c2.to_acknowledge.mean_secs, None);
    assert_eq!(c2.to_resolve.mean_secs, Some(30.0));

    let only_c2 = s
        .response_times(ts(T0), ts(T0 + 1000), Some(&[community("c2")]), None)
        .await
        .unwrap();
    assert_eq!(only_c2, vec![c2.clone()]);
    // A property user's figures count only alerts routed to property (not r5).
    let property = s
        .response_times(ts(T0), ts(T0 + 1000), None, Some(Role::Property))
        .await
        .unwrap();
    assert_eq!(property, vec![c1.clone()]);
    assert!(
        s.response_times(ts(T0), ts(T0 + 1000), Some(&[]), None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn snapshots_and_registry(db: &TestDb) {
    let s = &db.store;
    let s1 = snapshot("s1", "cam-1", T0, false);
    let s2 = snapshot("s2", "cam-1", T0 + 5, true);
    let s3 = snapshot("s3", "cam-2", T0 + 9, false);
    for x in [&s1, &s2, &s3] {
        s.insert_snapshot(x).await.unwrap();
    }
    assert_eq!(s.snapshot("s2").await.unwrap(), Some(s2.clone()));
    assert_eq!(s.snapshot("nope").await.unwrap(), None);
    assert_eq!(s.latest_snapshot(&camera("cam-1")).await.unwrap(), Some(s2));
    assert_eq!(s.latest_snapshot(&camera("cam-9")).await.unwrap(), None);
    assert_eq!(
        s.insert_snapshot(&s1).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let mut escape = snapshot("s4", "cam-1", T0, false);
    escape.path = "../etc/passwd".to_owned();
    assert_eq!(
        s.insert_snapshot(&escape).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );

    let cams = vec![
        CameraRow {
            id: camera("cam-1"),
            community: community("c1"),
            name: "East gate".to_owned(),
            network: "community".to_owned(),
            extras: json!({ "vendor": "hikvision" }),
        },
        CameraRow {
            id: camera("cam-2"),
            community: community("c1"),
            name: "Lobby".to_owned(),
            network: "skynet".to_owned(),
            extras: json!({}),
        },
    ];
    s.upsert_cameras(&cams).await.unwrap();
    let mut renamed = cams[0].clone();
    renamed.name = "East gate (new)".to_owned();
    s.upsert_cameras(std::slice::from_ref(&renamed))
        .await
        .unwrap();
    assert_eq!(
        s.list_cameras().await.unwrap(),
        vec![renamed, cams[1].clone()]
    );

    let g = GateRow {
        id: gate("east"),
        community: community("c1"),
        name: "East door".to_owned(),
        firmware: "hikvision-isapi".to_owned(),
        camera: Some(camera("cam-1")),
        extras: json!({ "door": 1 }),
    };
    s.upsert_gates(std::slice::from_ref(&g)).await.unwrap();
    let mut g2 = g.clone();
    g2.camera = None;
    s.upsert_gates(std::slice::from_ref(&g2)).await.unwrap();
    assert_eq!(s.list_gates().await.unwrap(), vec![g2]);
}

async fn users_sessions_and_duplicates(db: &TestDb) {
    let s = &db.store;
    let u = UserRow {
        username: "wang.li".to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        role: Role::Property,
        communities: vec![community("c1"), community("c2")],
        stations: vec![],
        disabled: false,
        created_at: ts(T0),
    };
    s.insert_user(&u).await.unwrap();
    let err = s.insert_user(&u).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("wang.li"), "{err}");
    assert_eq!(s.user("wang.li").await.unwrap(), Some(u.clone()));
    assert_eq!(s.user("nobody").await.unwrap(), None);
    assert!(!format!("{u:?}").contains("argon2"));

    let mut changed = u.clone();
    changed.role = Role::Police;
    changed.communities = vec![];
    changed.stations = vec![
        StationId::new("chengguan").unwrap(),
        StationId::new("xincheng").unwrap(),
    ];
    changed.disabled = true;
    changed.created_at = ts(T0 + 999); // not updated
    s.update_user(&changed).await.unwrap();
    let back = s.user("wang.li").await.unwrap().unwrap();
    assert_eq!(back.role, Role::Police);
    assert!(back.disabled);
    assert!(back.communities.is_empty());
    assert_eq!(back.stations, changed.stations);
    assert_eq!(back.created_at, ts(T0));
    let mut ghost = u.clone();
    ghost.username = "ghost".to_owned();
    assert_eq!(
        s.update_user(&ghost).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let admin = UserRow {
        username: "admin".to_owned(),
        role: Role::Admin,
        communities: vec![],
        stations: vec![],
        ..u.clone()
    };
    s.insert_user(&admin).await.unwrap();
    assert_eq!(
        s.list_users()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.username)
            .collect::<Vec<_>>(),
        ["admin", "wang.li"]
    );

    let sess = |h: &str, exp: i64| SessionRow {
        token_hash: h.to_owned(),
        username: "admin".to_owned(),
        created_at: ts(T0),
        expires_at: ts(exp),
    };
    s.insert_session(&sess("h1", T0 + 100)).await.unwrap();
    s.insert_session(&sess("h2", T0 + 10)).await.unwrap();
    assert_eq!(
        s.session("h1", ts(T0 + 50)).await.unwrap(),
        Some(sess("h1", T0 + 100))
    );
    assert_eq!(s.session("h2", ts(T0 + 50)).await.unwrap(), None, "expired");
    assert_eq!(s.delete_expired_sessions(ts(T0 + 50)).await.unwrap(), 1);
    assert!(s.delete_session("h1").await.unwrap());
    assert!(!s.delete_session("h1").await.unwrap());
    // A new password ends all of a user's sessions, and only theirs.
    s.insert_session(&sess("h4", T0 + 100)).await.unwrap();
    s.insert_session(&sess("h5", T0 + 100)).await.unwrap();
    let mut other = sess("h6", T0 + 100);
    other.username = "wang.li".to_owned();
    s.insert_session(&other).await.unwrap();
    assert_eq!(s.delete_sessions_of("admin").await.unwrap(), 2);
    assert_eq!(s.session("h4", ts(T0 + 50)).await.unwrap(), None);
    assert_eq!(s.session("h6", ts(T0 + 50)).await.unwrap(), Some(other));
    // A session of an unknown user is refused (foreign key).
    let mut orphan = sess("h3", T0 + 100);
    orphan.username = "ghost".to_owned();
    assert_eq!(
        s.insert_session(&orphan).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

/// The newest `limit` audit entries.
fn newest(limit: u32) -> AuditFilter {
    AuditFilter {
        limit,
        ..AuditFilter::default()
    }
}

/// 12,000 entries (more than the 10,000 the API once looked at), written in one statement:
/// `seq` n at `T0 + n` seconds. Then: a page before a time near the start of the log, and
/// paging backwards by `seq` from the newest entry reaches the very first.
async fn audit_pages_reach_past_the_newest_ten_thousand(db: &TestDb) {
    const N: i64 = 12_000;
    let s = &db.store;
    let mut c = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    // A recursive CTE: the same SQL on SQLite and PostgreSQL, one transaction.
    let sql = format!(
        "INSERT INTO audit (seq, at, actor, action, target, detail, peer) \
         WITH RECURSIVE n(i) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT i + 1 FROM n WHERE i < {N}) \
         SELECT i, ({T0} + i) * 1000, 'admin', 'login', NULL, '{{}}', '10.0.0.5' FROM n"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.ok();
    // The store numbers on after them.
    let next = NewAudit {
        at: ts(T0 + N + 1),
        actor: "admin".to_owned(),
        action: "logout".to_owned(),
        target: None,
        detail: json!(null),
        peer: None,
    };
    assert_eq!(s.audit(&next).await.unwrap(), N + 1);

    // Before a time: entries 100, 99, ... (at T0 + 101 is seq 101, excluded).
    let page = s
        .list_audit(&AuditFilter {
            before: Some(ts(T0 + 101)),
            ..newest(3)
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![100, 99, 98]
    );
    assert_eq!(page[0].at, ts(T0 + 100));
    assert_eq!(page[0].peer.as_deref(), Some("10.0.0.5"));

    // Keyset paging by seq from the top reaches seq 1, every entry once, in order.
    let mut cursor = None;
    let mut seen = Vec::new();
    loop {
        let page = s
            .list_audit(&AuditFilter {
                before_seq: cursor,
                ..newest(1000)
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some(last.seq);
        seen.extend(page.iter().map(|r| r.seq));
    }
    assert_eq!(seen, (1..=N + 1).rev().collect::<Vec<_>>());

    // Both cursors together, and a time range.
    let page = s
        .list_audit(&AuditFilter {
            from: Some(ts(T0 + 5)),
            before: Some(ts(T0 + 11_000)),
            before_seq: Some(8),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![7, 6, 5]
    );
}

async fn audit_appends_and_lists(db: &TestDb) {
    let s = &db.store;
    let entry = |at: i64, action: &str| NewAudit {
        at: ts(at),
        actor: "admin".to_owned(),
        action: action.to_owned(),
        target: Some("alert-1".to_owned()),
        detail: json!({ "why": action }),
        peer: Some("10.0.0.5".to_owned()),
    };
    assert_eq!(s.audit(&entry(T0, "login")).await.unwrap(), 1);
    assert_eq!(
        s.audit(&entry(T0 + 10, "alert.acknowledge")).await.unwrap(),
        2
    );
    assert_eq!(s.audit(&entry(T0 + 20, "snapshot.view")).await.unwrap(), 3);
    let all = s.list_audit(&newest(10)).await.unwrap();
    assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 2, 1]);
    assert_eq!(all[2].action, "login");
    assert_eq!(all[2].detail, json!({ "why": "login" }));
    assert_eq!(all[2].peer.as_deref(), Some("10.0.0.5"));
    let since = s
        .list_audit(&AuditFilter {
            from: Some(ts(T0 + 10)),
            ..newest(10)
        })
        .await
        .unwrap();
    assert_eq!(since.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 2]);
    assert_eq!(s.list_audit(&newest(1)).await.unwrap()[0].seq, 3);

    // Concurrent appends get distinct, gap-free numbers (the write lock).
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let s = s.clone();
            let e = entry(T0 + 100 + i, "login");
            tokio::spawn(async move { s.audit(&e).await })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap().unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (4..16).collect::<Vec<i64>>());
}

async fn purge_deletes_old_data_and_keeps_the_rest(db: &TestDb) {
    let s = &db.store;
    let day = 86_400;
    let now = T0 + 400 * day;
    let dir = snapshot_dir(db);
    // Snapshots: 40 days old (gone), 10 days old with faces (gone by the 7-day faces
    // period), 10 days old without faces (kept), fresh with faces (kept).
    let old = snapshot("old", "cam-1", now - 40 * day, false);
    let face = snapshot("face", "cam-1", now - 10 * day, true);
    let keep = snapshot("keep", "cam-1", now - 10 * day, false);
    let fresh = snapshot("fresh", "cam-2", now - 3600, true);
    let mut no_file = snapshot("nofile", "cam-2", now - 50 * day, false);
    no_file.path = "cam-2/never-written.jpg".to_owned();
    let mut files = Vec::new();
    for x in [&old, &face, &keep, &fresh] {
        s.insert_snapshot(x).await.unwrap();
        files.push(write_file(&dir, &x.path));
    }
    s.insert_snapshot(&no_file).await.unwrap();

    s.insert_gate_batch(
        &[
            event("g-old", "east", "c1", now - 200 * day),
            event("g-new", "east", "c1", now - day),
        ],
        &[NewDeadLetter {
            id: "dl-old".to_owned(),
            received_at: ts(now - 31 * day),
            firmware: None,
            gate: None,
            error: "bad".to_owned(),
            body: json!(null),
        }],
    )
    .await
    .unwrap();
    s.insert_vision_events(&[NewVisionEvent {
        id: "v-old".to_owned(),
        camera: camera("cam-1"),
        community: community("c1"),
        kind: "dwell".to_owned(),
        zone: None,
        at: ts(now - 31 * day),
        body: json!({}),
    }])
    .await
    .unwrap();

    // Alerts: resolved long ago (gone with its history), open and just as old (kept),
    // resolved recently (kept).
    let gone = alert("gone", "c1", AlertKind::GateTamper, now - 380 * day);
    let active = alert("active", "c1", AlertKind::GateTamper, now - 390 * day);
    let recent = alert("recent", "c1", AlertKind::GateTamper, now - 380 * day);
    s.commit(&Commit {
        changes: vec![raise(&gone), raise(&active), raise(&recent)],
        ..Default::default()
    })
    .await
    .unwrap();
    s.act(
        &gone.id,
        AlertAction::Resolved,
        "d",
        None,
        ts(now - 370 * day),
    )
    .await
    .unwrap();
    s.act(
        &recent.id,
        AlertAction::Resolved,
        "d",
        None,
        ts(now - 10 * day),
    )
    .await
    .unwrap();
    // Outbox: 5 rows, all older than 7 days; the MQTT publisher has read up to 3.
    assert_eq!(s.last_outbox_seq().await.unwrap(), 5);
    s.set_cursor("outbox.mqtt", 3).await.unwrap();
    s.audit(&NewAudit {
        at: ts(T0),
        actor: "admin".to_owned(),
        action: "login".to_owned(),
        target: None,
        detail: json!({}),
        peer: None,
    })
    .await
    .unwrap();

    let report = s.purge(ts(now), &Retention::default(), &dir).await.unwrap();
    assert_eq!(report.face_snapshots, 1, "{report:?}");
    assert_eq!(report.snapshots, 2, "{report:?}");
    assert_eq!(report.snapshot_files, 2, "{report:?}");
    assert_eq!(report.snapshot_file_errors, 0);
    assert_eq!(report.gate_events, 1);
    assert_eq!(report.vision_events, 1);
    assert_eq!(report.dead_letters, 1);
    assert_eq!(report.alerts, 1);
    assert_eq!(report.alert_actions, 2);
    assert_eq!(report.outbox, 3, "{report:?}");
    assert_eq!(report.audit, 0, "audit is kept forever by default");

    for (id, kept) in [
        ("old", false),
        ("face", false),
        ("keep", true),
        ("fresh", true),
        ("nofile", false),
    ] {
        assert_eq!(
            s.snapshot(id).await.unwrap().is_some(),
            kept,
            "snapshot {id}"
        );
    }
    assert!(!files[0].exists());
    assert!(!files[1].exists());
    assert!(files[2].exists());
    assert!(files[3].exists());
    assert_eq!(
        s.gate_events_after(0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        ["g-new"]
    );
    assert!(s.list_dead_letters(10).await.unwrap().is_empty());
    assert!(s.alert(&gone.id).await.unwrap().is_none());
    assert_eq!(s.alert(&active.id).await.unwrap().unwrap().history.len(), 1);
    assert!(s.alert(&recent.id).await.unwrap().is_some());
    assert_eq!(
        s.outbox_after(0, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        vec![4, 5]
    );
    // New outbox rows continue after the purged ones... and after the kept ones.
    assert_eq!(s.last_outbox_seq().await.unwrap(), 5);
    assert_eq!(s.list_audit(&newest(10)).await.unwrap().len(), 1);

    // A second purge finds nothing more; an audit period deletes the old audit row.
    let again = s
        .purge(
            ts(now),
            &Retention {
                audit_days: Some(30),
                ..Retention::default()
            },
            &dir,
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        xl_store::PurgeReport {
            audit: 1,
            ..Default::default()
        }
    );
}

/// Readers keep cursors over `seq`. A purge that empties a table must not make numbering start
/// again below them (new rows would hide behind the cursors), and gate events the rules
/// processor has not read yet stay.
async fn numbering_goes_on_after_a_purge_empties_a_table(db: &TestDb) {
    let s = &db.store;
    let day = 86_400;
    let now = T0 + 400 * day;
    let dir = snapshot_dir(db);
    let seqs = |rows: Vec<xl_store::GateEventRow>| rows.iter().map(|r| r.seq).collect::<Vec<_>>();
    s.insert_gate_batch(
        &[
            event("g1", "east", "c1", T0),
            event("g2", "east", "c1", T0 + 1),
            event("g3", "east", "c1", T0 + 2),
        ],
        &[],
    )
    .await
    .unwrap();
    s.set_cursor(xl_store::GATE_EVENTS_READER, 2).await.unwrap();
    let a = alert("a", "c1", AlertKind::GateTamper, T0);
    let b = alert("b", "c1", AlertKind::GateTamper, T0 + 5);
    s.commit(&Commit {
        changes: vec![raise(&a), raise(&b)],
        ..Default::default()
    })
    .await
    .unwrap();
    s.set_cursor("outbox.mqtt", 2).await.unwrap();
    let audit = |at| NewAudit {
        at: ts(at),
        actor: "admin".to_owned(),
        action: "login".to_owned(),
        target: None,
        detail: json!({}),
        peer: None,
    };
    assert_eq!(s.audit(&audit(T0)).await.unwrap(), 1);
    let retention = Retention {
        audit_days: Some(30),
        ..Retention::default()
    };

    let report = s.purge(ts(now), &retention, &dir).await.unwrap();
    assert_eq!(report.gate_events, 2, "g3 is not read yet: {report:?}");
    assert_eq!(seqs(s.gate_events_after(0, 10).await.unwrap()), [3]);
    assert_eq!((report.outbox, report.audit), (2, 1), "{report:?}");
    s.set_cursor(xl_store::GATE_EVENTS_READER, 3).await.unwrap();
    let report = s.purge(ts(now), &retention, &dir).await.unwrap();
    assert_eq!(report.gate_events, 1, "{report:?}");
    assert!(s.gate_events_after(0, 10).await.unwrap().is_empty());
    assert!(s.outbox_after(0, 10).await.unwrap().is_empty());

    // Every table is empty now; numbers go on after the highest ever given.
    s.insert_gate_batch(&[event("g4", "east", "c1", now)], &[])
        .await
        .unwrap();
    assert_eq!(seqs(s.gate_events_after(3, 10).await.unwrap()), [4]);
    assert_eq!(s.last_outbox_seq().await.unwrap(), 2);
    let c = alert("c", "c1", AlertKind::GateTamper, now);
    s.commit(&Commit {
        changes: vec![raise(&c)],
        ..Default::default()
    })
    .await
    .unwrap();
    let after: Vec<i64> = s
        .outbox_after(2, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(after, [3]);
    assert_eq!(s.audit(&audit(now)).await.unwrap(), 2);
}

/// A district's gate shards each read with their own cursor. A shard without one starts where
/// the single hub's reader was (a hub joining a district neither reads its events again nor
/// skips any), a single hub without one where the slowest shard was; retention keeps what the
/// slowest shard has not read, and on a district no longer waits for the single reader.
async fn gate_shard_readers_take_over_from_the_single_reader_and_hold_retention(db: &TestDb) {
    let s = &db.store;
    let single = xl_store::GATE_EVENTS_READER;
    assert_eq!(s.gate_reader_start(single).await.unwrap(), 0);
    assert_eq!(
        s.gate_reader_start(&xl_store::gate_shard_reader(3))
            .await
            .unwrap(),
        0
    );
    let ids: Vec<String> = (1..=5).map(|i| format!("e{i}")).collect();
    let events: Vec<_> = (0..5)
        .map(|i| event(&ids[i], "east", "c1", T0 + i as i64))
        .collect();
    s.insert_gate_batch(&events, &[]).await.unwrap();
    s.set_cursor(single, 2).await.unwrap();
    assert_eq!(s.gate_reader_start(single).await.unwrap(), 2);
    // The district starts: shards without a cursor take the single reader's.
    let (a, b) = (
        xl_store::gate_shard_reader(0),
        xl_store::gate_shard_reader(15),
    );
    assert_eq!(a, "rules.gate_events.0");
    assert_eq!(s.gate_reader_start(&a).await.unwrap(), 2);
    s.set_cursor(&a, 4).await.unwrap();
    s.set_cursor(&b, 3).await.unwrap();
    assert_eq!(s.gate_reader_start(&a).await.unwrap(), 4);
    assert_eq!(s.gate_reader_start(&b).await.unwrap(), 3);

    // Retention keeps what the slowest shard (3) has not read; the single reader's 2 no
    // longer counts.
    let day = 86_400;
    let retention = Retention {
        gate_events_days: Some(30),
        ..Retention::default()
    };
    let report = s
        .purge(ts(T0 + 400 * day), &retention, &snapshot_dir(db))
        .await
        .unwrap();
    assert_eq!(report.gate_events, 3, "{report:?}");
    let left: Vec<i64> = s
        .gate_events_after(0, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(left, [4, 5]);

    // Back to a single hub whose own cursor is gone: it starts at the slowest shard.
    sqlx_delete_cursor(db, single).await;
    assert_eq!(s.gate_reader_start(single).await.unwrap(), 3);
}

/// Deletes a cursor row (as a district that never ran the single reader has none).
async fn sqlx_delete_cursor(db: &TestDb, name: &str) {
    let mut c = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM cursors WHERE name = '{name}'"
    )))
    .execute(&mut c)
    .await
    .unwrap();
}

/// A payload's error text or a person's note may hold NUL, which PostgreSQL's TEXT refuses: it
/// must not fail the batch (and with it every other gate's events), on either backend.
async fn nul_in_free_text_does_not_fail_a_batch(db: &TestDb) {
    let s = &db.store;
    s.insert_gate_batch(
        &[event("g1", "east", "c1", T0)],
        &[NewDeadLetter {
            id: "dl-nul".to_owned(),
            received_at: ts(T0),
            firmware: Some("dahua".to_owned()),
            gate: None,
            error: "unknown event code \"A\0\"".to_owned(),
            body: json!({ "Code": "A\u{0}" }),
        }],
    )
    .await
    .unwrap();
    assert_eq!(s.gate_events_after(0, 10).await.unwrap().len(), 1);
    let dl = s.list_dead_letters(10).await.unwrap();
    assert_eq!(dl[0].error, "unknown event code \"A\u{fffd}\"");
    assert_eq!(
        dl[0].body,
        json!({ "Code": "A\u{0}" }),
        "JSON keeps it escaped"
    );

    let a = alert("a-nul", "c1", AlertKind::GateTamper, T0);
    s.commit(&Commit {
        changes: vec![raise(&a)],
        ..Default::default()
    })
    .await
    .unwrap();
    s.act(&a.id, AlertAction::Noted, "duty1", Some("a\0b"), ts(T0 + 1))
        .await
        .unwrap();
    let detail = s.alert(&a.id).await.unwrap().unwrap();
    assert_eq!(detail.history[1].note.as_deref(), Some("a\u{fffd}b"));
}

/// A person's action and its audit entry commit together: no action without its entry, and no
/// entry for an action refused.
async fn an_audited_action_commits_with_its_entry_or_not_at_all(db: &TestDb) {
    let s = &db.store;
    let a = alert("a-aud", "c1", AlertKind::GateTamper, T0);
    s.commit(&Commit {
        changes: vec![raise(&a)],
        ..Default::default()
    })
    .await
    .unwrap();
    let audit = NewAudit {
        at: ts(T0 + 5),
        actor: "duty1".to_owned(),
        action: "alert.acknowledge".to_owned(),
        target: Some(a.id.to_string()),
        detail: json!({ "note": null }),
        peer: Some("10.0.0.7".to_owned()),
    };
    let e = s
        .act_audited(
            &a.id,
            AlertAction::Acknowledged,
            "duty1",
            None,
            ts(T0 + 5),
            Some(&audit),
        )
        .await
        .unwrap();
    let log = s.list_audit(&newest(10)).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].action, "alert.acknowledge");
    assert_eq!(log[0].detail["seq"], json!(e.seq));
    // Acknowledging twice is refused: nothing is written, the entry neither.
    let err = s
        .act_audited(
            &a.id,
            AlertAction::Acknowledged,
            "duty1",
            None,
            ts(T0 + 6),
            Some(&audit),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(s.list_audit(&newest(10)).await.unwrap().len(), 1);
}

/// The rules engine works from its own copy of an alert; a person may act on the stored one
/// in between. Its later repeat, escalation or resolution must not undo the person's action.
async fn the_engines_changes_never_overwrite_a_persons(db: &TestDb) {
    let s = &db.store;
    let a = alert("a1", "xingfu", AlertKind::GateForcedOpen, 1_000);
    s.commit(&Commit {
        changes: vec![raise(&a)],
        ..Commit::default()
    })
    .await
    .unwrap();
    // duty acknowledges the stored alert...
    s.act(
        &a.id,
        AlertAction::Acknowledged,
        "duty",
        Some("on my way"),
        ts(1_010),
    )
    .await
    .unwrap();
    // ...while the engine, still seeing it open, repeats it and then escalates it.
    let mut repeated = a.clone();
    repeated.count = 2;
    repeated.last_seen_at = ts(1_020);
    let mut escalated = repeated.clone();
    escalated.state = AlertState::Escalated;
    escalated.escalated_at = Some(ts(1_300));
    escalated.roles.push(Role::Police);
    let system = |alert: &Alert, action, at| Change {
        alert: alert.clone(),
        action,
        actor: "system".to_owned(),
        note: None,
        at: ts(at),
    };
    let entries = s
        .commit(&Commit {
            changes: vec![
                system(&repeated, AlertAction::Repeated, 1_020),
                system(&escalated, AlertAction::Escalated, 1_300),
            ],
            ..Commit::default()
        })
        .await
        .unwrap();
    assert_eq!(
        entries.len(),
        1,
        "the escalation no longer applies: {entries:#?}"
    );
    assert_eq!(entries[0].change, AlertAction::Repeated);
    let stored = s.alert(&a.id).await.unwrap().unwrap();
    assert_eq!(stored.alert.state, AlertState::Acknowledged);
    assert_eq!(stored.alert.acknowledged_at, Some(ts(1_010)));
    assert_eq!(stored.alert.count, 2);
    assert_eq!(stored.alert.last_seen_at, ts(1_020));
    assert_eq!(
        entries[0].alert, stored.alert,
        "the outbox carries the stored state"
    );
    assert_eq!(
        stored.history.iter().map(|h| h.action).collect::<Vec<_>>(),
        [
            AlertAction::Raised,
            AlertAction::Acknowledged,
            AlertAction::Repeated
        ]
    );
    // A person resolved it: the engine's own resolution is dropped too.
    s.act(&a.id, AlertAction::Resolved, "duty", None, ts(1_400))
        .await
        .unwrap();
    let mut resolved = repeated.clone();
    resolved.state = AlertState::Resolved;
    resolved.resolved_at = Some(ts(1_500));
    let entries = s
        .commit(&Commit {
            changes: vec![system(&resolved, AlertAction::Resolved, 1_500)],
            ..Commit::default()
        })
        .await
        .unwrap();
    assert!(entries.is_empty());
    let stored = s.alert(&a.id).await.unwrap().unwrap().alert;
    assert_eq!(stored.resolved_at, Some(ts(1_400)));
}

/// Escalation means the same whoever does it (`Alert::apply`): a person's escalation routes the
/// alert to the police desk as the deadline's does, and the deadline no longer escalates it.
/// A resolved alert takes no more of the engine's changes.
async fn a_persons_escalation_routes_to_the_police_desk(db: &TestDb) {
    let s = &db.store;
    let a = alert("p1", "xingfu", AlertKind::GateForcedOpen, T0);
    let b = alert("p2", "xingfu", AlertKind::GateTamper, T0);
    s.commit(&Commit {
        changes: vec![raise(&a), raise(&b)],
        ..Commit::default()
    })
    .await
    .unwrap();
    assert_eq!(a.roles, [Role::Duty, Role::Property]);

    // From open, before the deadline.
    let e = s
        .act(&a.id, AlertAction::Escalated, "duty", None, ts(T0 + 30))
        .await
        .unwrap();
    assert_eq!(e.alert.state, AlertState::Escalated);
    assert_eq!(e.alert.escalated_at, Some(ts(T0 + 30)));
    assert_eq!(e.alert.roles, [Role::Duty, Role::Property, Role::Police]);
    let stored = s.alert(&a.id).await.unwrap().unwrap().alert;
    assert_eq!(stored, e.alert, "the outbox carries the stored alert");
    assert_eq!(stored.escalation_due(), None, "nothing pending");

    // From acknowledged.
    s.act(&b.id, AlertAction::Acknowledged, "duty", None, ts(T0 + 10))
        .await
        .unwrap();
    let e = s
        .act(&b.id, AlertAction::Escalated, "duty", None, ts(T0 + 20))
        .await
        .unwrap();
    assert_eq!(e.alert.roles, [Role::Duty, Role::Property, Role::Police]);
    assert_eq!(e.alert.acknowledged_at, Some(ts(T0 + 10)));

    // The engine, still seeing `a` open, escalates it at its deadline: dropped, as is a repeat
    // of `b` that arrives after a person resolved it.
    s.act(&b.id, AlertAction::Resolved, "police", None, ts(T0 + 40))
        .await
        .unwrap();
    let system = |alert: &Alert, action, at| Change {
        alert: alert.clone(),
        action,
        actor: "system".to_owned(),
        note: None,
        at: ts(at),
    };
    let mut repeated = b.clone();
    repeated.count = 2;
    repeated.last_seen_at = ts(T0 + 50);
    let entries = s
        .commit(&Commit {
            changes: vec![
                system(&a, AlertAction::Escalated, T0 + 300),
                system(&repeated, AlertAction::Repeated, T0 + 50),
            ],
            ..Commit::default()
        })
        .await
        .unwrap();
    assert!(entries.is_empty(), "{entries:#?}");
    let a_now = s.alert(&a.id).await.unwrap().unwrap();
    assert_eq!(a_now.alert.escalated_at, Some(ts(T0 + 30)));
    assert_eq!(a_now.history.len(), 2);
    let b_now = s.alert(&b.id).await.unwrap().unwrap().alert;
    assert_eq!(b_now.state, AlertState::Resolved);
    assert_eq!((b_now.count, b_now.last_seen_at), (1, ts(T0)));
}

#[tokio::test]
async fn the_sqlite_file_is_in_wal_mode() {
    let db = TestDb::sqlite().await;
    db.store
        .insert_gate_batch(&[event("a", "east", "c1", T0)], &[])
        .await
        .unwrap();
    let path = db.dir.path().join("db/hub.sqlite");
    // The file header's read and write versions (bytes 18 and 19) are 2 in WAL mode.
    let header = std::fs::read(&path).unwrap();
    assert_eq!(&header[18..20], &[2, 2], "not a WAL database");
    assert!(db.dir.path().join("db/hub.sqlite-wal").exists());
    use sqlx::Row;
    let mut conn = db.store.pool().acquire().await.unwrap();
    for (pragma, want) in [
        ("journal_mode", "wal"),
        ("synchronous", "2"),
        ("foreign_keys", "1"),
    ] {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA {pragma}")))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let got = row
            .try_get::<String, _>(0)
            .or_else(|_| row.try_get::<i64, _>(0).map(|v| v.to_string()))
            .unwrap();
        assert_eq!(got, want, "PRAGMA {pragma}");
    }
    drop(conn);
    db.finish().await;
}
