//! The topology's repository against real databases, each test on SQLite and on PostgreSQL:
//! round trips of every kind, revisions, config entries, references, audit entries and
//! secrets.

#[macro_use]
mod common;

use common::TestDb;
use jiff::Timestamp;
use serde_json::json;
use xl_core::camera::{CameraDetect, CameraNetwork, DecodePolicy};
use xl_core::topology::{
    Camera, Community, Entry, EntryId, Gate, GateTransport, Grid, Kind, Origin, Secret, Station,
    StreamSource, Topology, TopologyError,
};
use xl_core::zone::{Zone, ZoneId};
use xl_core::{CameraId, CommunityId, ErrorKind, GateId, GridId, StationId};
use xl_store::{AuditFilter, AuditRow, Author, SecretUpdate, StoreError};

both_backends!(
    every_kind_round_trips,
    a_stale_revision_is_refused,
    config_entries_are_read_only,
    apply_config_is_idempotent_and_follows_the_file,
    references_are_enforced_with_the_field_named,
    changes_are_audited_with_before_and_after_and_no_secret,
    secrets_are_stored_but_absent_from_api_reads,
    the_database_refuses_broken_references_at_commit,
    an_import_is_all_or_nothing_with_every_refusal_named,
    an_import_writes_every_entry_with_its_audit_entry,
    a_topology_check_refuses_api_writes_before_anything_is_written,
    a_station_users_are_scoped_to_is_not_deleted,
);

const CAMERA_PASSWORD: &str = "cam-pass-7f3a9c";
const PUSH_SECRET: &str = "push-secret-5e1d2b8c4a";

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_735_689_600 + secs).unwrap()
}

fn admin() -> Author {
    Author {
        actor: "admin".to_owned(),
        peer: Some("10.0.0.5".to_owned()),
    }
}

fn station(id: &str) -> Station {
    Station {
        id: StationId::new(id).unwrap(),
        name: "城关派出所".into(),
        disabled: false,
    }
}

fn community(id: &str, station: Option<&str>) -> Community {
    Community {
        id: CommunityId::new(id).unwrap(),
        name: "幸福小区".into(),
        station: station.map(|s| StationId::new(s).unwrap()),
        disabled: false,
    }
}

fn grid(id: &str, community: &str) -> Grid {
    Grid {
        id: GridId::new(id).unwrap(),
        community: CommunityId::new(community).unwrap(),
        name: "第三网格".into(),
        disabled: false,
    }
}

fn camera(id: &str, community: &str) -> Camera {
    let mut zone = Zone::new(
        ZoneId::new("yard").unwrap(),
        vec![[0.2, 0.2], [0.8, 0.2], [0.8, 0.8], [0.2, 0.8]],
    );
    zone.dwell_limit_secs = Some(60.0);
    zone.name = Some("后院".into());
    Camera {
        id: CameraId::new(id).unwrap(),
        name: "东门入口".into(),
        community: CommunityId::new(community).unwrap(),
        grid: None,
        network: CameraNetwork::Skynet,
        main: Some(StreamSource::Rtsp {
            url: "rtsp://10.0.0.2/Streaming/Channels/101".into(),
        }),
        sub: Some(StreamSource::Rtsp {
            url: "rtsp://10.0.0.2/Streaming/Channels/102".into(),
        }),
        username: Some("admin".into()),
        password: Some(Secret::new(CAMERA_PASSWORD)),
        transport: None,
        decode: DecodePolicy::SkipNonReference,
        detect: CameraDetect::default(),
        zones: vec![zone],
        recording: Default::default(),
        disabled: false,
    }
}

fn gate(id: &str, community: &str, camera: Option<&str>) -> Gate {
    Gate {
        id: GateId::new(id).unwrap(),
        name: "东门门禁".into(),
        community: CommunityId::new(community).unwrap(),
        grid: None,
        firmware: "hikvision-isapi".into(),
        device: None,
        camera: camera.map(|c| CameraId::new(c).unwrap()),
        transport: Some(GateTransport::Both),
        push_secret: Some(Secret::new(PUSH_SECRET)),
        push_allow_from: vec!["10.0.0.0/24".parse().unwrap()],
        timezone: Some("Asia/Shanghai".into()),
        offline_after_secs: 120,
        disabled: false,
    }
}

/// One of each kind, references good: camera cam-east in grid g3 of 幸福小区, gate east-door
/// watched by it.
fn sample() -> Vec<Entry> {
    let mut cam = camera("cam-east", "xingfu");
    cam.grid = Some(GridId::new("g3").unwrap());
    vec![
        Entry::Station(station("chengguan")),
        Entry::Community(community("xingfu", Some("chengguan"))),
        Entry::Grid(grid("g3", "xingfu")),
        Entry::Camera(cam),
        Entry::Gate(gate("east-door", "xingfu", Some("cam-east"))),
    ]
}

fn cam_id(s: &str) -> EntryId {
    EntryId::Camera(CameraId::new(s).unwrap())
}

async fn create_all(db: &TestDb, entries: &[Entry]) {
    for (i, e) in entries.iter().enumerate() {
        db.store
            .create_entry(e.clone(), &admin(), ts(i as i64))
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", e.id()));
    }
}

async fn audit_log(db: &TestDb) -> Vec<AuditRow> {
    let mut rows = db
        .store
        .list_audit(&AuditFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    rows.reverse();
    rows
}

fn topology_error(err: StoreError) -> TopologyError {
    match err {
        StoreError::Topology(e) => e,
        other => panic!("expected a topology error, got {other:?}"),
    }
}

async fn every_kind_round_trips(db: &TestDb) {
    let s = &db.store;
    assert!(s.topology().await.unwrap().topology.is_empty());
    let entries = sample();
    create_all(db, &entries).await;

    let expected = Topology::from_entries(entries.clone());
    let runtime = s.topology_for_runtime().await.unwrap();
    assert_eq!(runtime.topology, expected, "everything, secrets included");
    let api = s.topology().await.unwrap();
    assert_eq!(api.topology, expected.clone().without_secrets());
    for (i, e) in entries.iter().enumerate() {
        let meta = &api.meta[&e.id()];
        assert_eq!(meta.origin, Origin::Store);
        assert_eq!(meta.revision, 1);
        assert_eq!(meta.created_at, ts(i as i64));
        assert_eq!(meta.updated_at, ts(i as i64));
        assert_eq!(
            meta.secret_set,
            matches!(e.kind(), Kind::Camera | Kind::Gate),
            "{}",
            e.id()
        );
        assert_eq!(runtime.meta[&e.id()], *meta);
        let (one, one_meta) = s.topology_entry(&e.id()).await.unwrap().unwrap();
        assert_eq!(one_meta, *meta);
        let mut without = e.clone();
        without.set_secret(None);
        assert_eq!(one, without);
    }
    assert_eq!(s.topology_entry(&cam_id("nowhere")).await.unwrap(), None);

    // An update of each kind round-trips too, and bumps the revision.
    for e in &entries {
        let mut changed = e.clone();
        match &mut changed {
            Entry::Station(x) => x.name = "城关所".into(),
            Entry::Community(x) => x.station = None,
            Entry::Grid(x) => x.name = "第四网格".into(),
            Entry::Camera(x) => {
                x.zones[0].polygon.insert(3, [0.5, 0.9]);
                x.main = None;
                x.sub = Some(StreamSource::File {
                    path: "media/lobby.mp4".into(),
                });
            }
            Entry::Gate(x) => {
                x.camera = None;
                x.push_allow_from.push("fd00::/8".parse().unwrap());
            }
        }
        let meta = s
            .update_entry(
                changed.clone(),
                1,
                SecretUpdate::KeepUnlessGiven,
                &admin(),
                ts(100),
            )
            .await
            .unwrap();
        assert_eq!((meta.revision, meta.updated_at), (2, ts(100)));
        let (_, m) = s.topology_entry(&e.id()).await.unwrap().unwrap();
        assert_eq!(m, meta);
        let back = s.topology_for_runtime().await.unwrap();
        assert_eq!(back.topology.get(&e.id()), Some(changed));
    }
}

async fn a_stale_revision_is_refused(db: &TestDb) {
    let s = &db.store;
    create_all(db, &sample()).await;
    let id = cam_id("cam-east");
    let (Entry::Camera(mut cam), _) = s.topology_entry(&id).await.unwrap().unwrap() else {
        panic!()
    };
    cam.name = "东门".into();
    let keep = SecretUpdate::KeepUnlessGiven;
    let m = s
        .update_entry(Entry::Camera(cam.clone()), 1, keep, &admin(), ts(10))
        .await
        .unwrap();
    assert_eq!(m.revision, 2);

    // Someone else still holding revision 1.
    cam.name = "西门".into();
    let err = s
        .update_entry(Entry::Camera(cam.clone()), 1, keep, &admin(), ts(11))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::StaleRevision {
                expected: 1,
                current: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("camera \"cam-east\""), "{err}");
    assert_eq!(err.kind(), ErrorKind::Conflict, "HTTP 409");
    let err = s
        .set_entry_disabled(&id, true, 1, &admin(), ts(11))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StaleRevision { .. }), "{err:?}");
    let gate = EntryId::Gate(GateId::new("east-door").unwrap());
    s.set_entry_disabled(&gate, true, 1, &admin(), ts(11))
        .await
        .unwrap();
    let err = s
        .delete_entry(&gate, 1, &admin(), ts(12))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StaleRevision { .. }), "{err:?}");

    // Nothing of the refused changes landed.
    let now = s.topology().await.unwrap();
    assert_eq!(now.topology.cameras[&cam.id].name, "东门");
    assert!(!now.topology.cameras[&cam.id].disabled);
    assert_eq!(now.meta[&id].revision, 2);

    // With the current revision they go through; a change that changes nothing keeps it.
    let m = s
        .update_entry(Entry::Camera(cam.clone()), 2, keep, &admin(), ts(13))
        .await
        .unwrap();
    assert_eq!(m.revision, 3);
    let same = s
        .update_entry(Entry::Camera(cam.clone()), 3, keep, &admin(), ts(14))
        .await
        .unwrap();
    assert_eq!((same.revision, same.updated_at), (3, ts(13)));
    let m = s
        .set_entry_disabled(&id, true, 3, &admin(), ts(15))
        .await
        .unwrap();
    assert_eq!(m.revision, 4);
    let m = s
        .set_entry_disabled(&id, true, 4, &admin(), ts(16))
        .await
        .unwrap();
    assert_eq!(m.revision, 4, "already disabled: nothing written");
    s.delete_entry(&gate, 2, &admin(), ts(17)).await.unwrap();
    s.delete_entry(&id, 4, &admin(), ts(18)).await.unwrap();
    let err = s.delete_entry(&id, 4, &admin(), ts(19)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

async fn config_entries_are_read_only(db: &TestDb) {
    let s = &db.store;
    let declared = Topology::from_entries(sample());
    s.apply_config(&declared, ts(0)).await.unwrap();
    let id = cam_id("cam-east");
    let Some(Entry::Camera(mut cam)) = declared.get(&id) else {
        panic!()
    };
    cam.name = "改名".into();
    let refusals = [
        s.update_entry(
            Entry::Camera(cam),
            1,
            SecretUpdate::Replace,
            &admin(),
            ts(1),
        )
        .await
        .unwrap_err(),
        s.set_entry_disabled(&id, true, 1, &admin(), ts(1))
            .await
            .unwrap_err(),
        s.delete_entry(
            &EntryId::Gate(GateId::new("east-door").unwrap()),
            1,
            &admin(),
            ts(1),
        )
        .await
        .unwrap_err(),
    ];
    for err in refusals {
        assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("config file"), "{err}");
    }
    let now = s.topology_for_runtime().await.unwrap();
    assert_eq!(now.topology, declared);
    assert!(
        now.meta
            .values()
            .all(|m| m.origin == Origin::Config && m.revision == 1)
    );
    // Entries made through the API may sit beside (and refer to) config entries.
    s.create_entry(
        Entry::Gate(gate("west-door", "xingfu", Some("cam-east"))),
        &admin(),
        ts(2),
    )
    .await
    .unwrap();
}

async fn apply_config_is_idempotent_and_follows_the_file(db: &TestDb) {
    let s = &db.store;
    let mut declared = Topology::from_entries(sample());
    let first = s.apply_config(&declared, ts(0)).await.unwrap();
    assert_eq!(first.added.len(), 5);
    assert_eq!(
        first.added[0].kind(),
        Kind::Station,
        "in the order of the hierarchy"
    );
    let audits = audit_log(db).await;
    assert_eq!(audits.len(), 5);
    assert!(audits.iter().all(|a| a.actor == "config"));
    assert_eq!(audits[3].action, "camera.create");

    // The same file again: nothing written, revisions and audit log as they were.
    let again = s.apply_config(&declared, ts(10)).await.unwrap();
    assert!(again.is_noop(), "{again:?}");
    assert_eq!(again.unchanged, 5);
    assert_eq!(audit_log(db).await.len(), 5);
    let now = s.topology_for_runtime().await.unwrap();
    assert_eq!(now.topology, declared);
    assert!(
        now.meta
            .values()
            .all(|m| m.revision == 1 && m.updated_at == ts(0))
    );

    // A changed camera (a new password counts) is rewritten, at revision 2.
    let cam = CameraId::new("cam-east").unwrap();
    declared.cameras.get_mut(&cam).unwrap().password = Some(Secret::new("new-cam-pass-1"));
    let changed = s.apply_config(&declared, ts(20)).await.unwrap();
    assert_eq!(changed.changed, [cam_id("cam-east")]);
    assert_eq!(changed.unchanged, 4);
    let now = s.topology_for_runtime().await.unwrap();
    assert_eq!(now.topology, declared);
    assert_eq!(now.meta[&cam_id("cam-east")].revision, 2);

    // An API-made gate names a camera the file then stops declaring; the file also stops
    // declaring its own gate. The gate goes; the camera is kept (the API gate needs it) and
    // becomes an entry of the store.
    s.create_entry(
        Entry::Gate(gate("west-door", "xingfu", Some("cam-east"))),
        &admin(),
        ts(30),
    )
    .await
    .unwrap();
    declared.gates.clear();
    declared.cameras.clear();
    // And the API had made a grid that the file now declares: the file's version wins.
    s.create_entry(Entry::Grid(grid("g9", "xingfu")), &admin(), ts(31))
        .await
        .unwrap();
    let mut g9 = grid("g9", "xingfu");
    g9.name = "第九网格".into();
    declared.insert(Entry::Grid(g9.clone()));
    let report = s.apply_config(&declared, ts(40)).await.unwrap();
    assert_eq!(
        report.removed,
        [EntryId::Gate(GateId::new("east-door").unwrap())]
    );
    assert_eq!(
        report.kept,
        [(
            cam_id("cam-east"),
            EntryId::Gate(GateId::new("west-door").unwrap())
        )]
    );
    assert_eq!(report.claimed, [EntryId::Grid(GridId::new("g9").unwrap())]);
    let now = s.topology_for_runtime().await.unwrap();
    assert_eq!(now.meta[&cam_id("cam-east")].origin, Origin::Store);
    assert_eq!(now.meta[&cam_id("cam-east")].revision, 3);
    let g9_id = EntryId::Grid(GridId::new("g9").unwrap());
    assert_eq!(now.meta[&g9_id].origin, Origin::Config);
    assert_eq!(now.topology.get(&g9_id), Some(Entry::Grid(g9)));
    assert!(
        !now.topology
            .gates
            .contains_key(&GateId::new("east-door").unwrap())
    );
    let actions: Vec<String> = audit_log(db).await[8..]
        .iter()
        .map(|a| {
            format!(
                "{} {} {}",
                a.actor,
                a.action,
                a.target.as_deref().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            "config grid.claim g9",
            "config gate.delete east-door",
            "config camera.keep cam-east",
        ]
    );
    // And the result is stable.
    assert!(s.apply_config(&declared, ts(50)).await.unwrap().is_noop());

    // `disabled = true` in the file: the entry is stored disabled (a change), still from
    // config; taken out of the file again, enabled again.
    let mut off = declared.clone();
    off.grids
        .get_mut(&GridId::new("g9").unwrap())
        .unwrap()
        .disabled = true;
    let report = s.apply_config(&off, ts(51)).await.unwrap();
    assert_eq!(report.changed, std::slice::from_ref(&g9_id));
    let now = s.topology().await.unwrap();
    assert!(now.topology.grids[&GridId::new("g9").unwrap()].disabled);
    assert_eq!(now.meta[&g9_id].origin, Origin::Config);
    let report = s.apply_config(&declared, ts(52)).await.unwrap();
    assert_eq!(report.changed, std::slice::from_ref(&g9_id));
    assert!(!s.topology().await.unwrap().topology.grids[&GridId::new("g9").unwrap()].disabled);

    // A file whose entries fail their checks, or whose references do not hold, changes
    // nothing.
    let before = s.topology_for_runtime().await.unwrap();
    let mut bad = declared.clone();
    bad.insert(Entry::Camera(camera("cam-lost", "nowhere")));
    let err = topology_error(s.apply_config(&bad, ts(60)).await.unwrap_err());
    assert_eq!(err.entry(), (Kind::Camera, "cam-lost"));
    assert_eq!(err.field(), Some("community"));
    let mut bad = declared.clone();
    let mut c = camera("cam-x", "xingfu");
    c.zones[0].polygon = vec![[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.5]];
    bad.insert(Entry::Camera(c));
    let err = topology_error(s.apply_config(&bad, ts(60)).await.unwrap_err());
    assert_eq!(err.field(), Some("zones[0].polygon"));
    assert_eq!(s.topology_for_runtime().await.unwrap(), before);
}

async fn references_are_enforced_with_the_field_named(db: &TestDb) {
    let s = &db.store;
    create_all(db, &sample()).await;
    let by = admin();
    let cases: Vec<(Entry, Kind, &str, &str, &str)> = vec![
        (
            Entry::Gate(gate("west-door", "xingfu", Some("cam-west"))),
            Kind::Gate,
            "west-door",
            "camera",
            "camera \"cam-west\" does not exist",
        ),
        (
            Entry::Camera(camera("cam-x", "nowhere")),
            Kind::Camera,
            "cam-x",
            "community",
            "community \"nowhere\" does not exist",
        ),
        (
            Entry::Community(community("anju", Some("nowhere"))),
            Kind::Community,
            "anju",
            "station",
            "does not exist",
        ),
        (
            Entry::Grid(grid("g9", "nowhere")),
            Kind::Grid,
            "g9",
            "community",
            "does not exist",
        ),
    ];
    for (entry, kind, id, field, reason) in cases {
        let err = topology_error(s.create_entry(entry, &by, ts(10)).await.unwrap_err());
        assert_eq!(err.entry(), (kind, id), "{err}");
        assert_eq!(err.field(), Some(field), "{err}");
        assert!(err.to_string().contains(reason), "{err}");
    }

    // A camera in another community's grid; a gate watched from another community.
    s.create_entry(Entry::Community(community("anju", None)), &by, ts(11))
        .await
        .unwrap();
    let mut c = camera("cam-anju", "anju");
    c.grid = Some(GridId::new("g3").unwrap());
    let err = topology_error(
        s.create_entry(Entry::Camera(c), &by, ts(12))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.field(), Some("grid"), "{err}");
    let err = topology_error(
        s.create_entry(
            Entry::Gate(gate("anju-door", "anju", Some("cam-east"))),
            &by,
            ts(12),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.field(), Some("camera"), "{err}");

    // Moving the camera to another community while its gate stays is refused, naming the gate.
    let (Entry::Camera(mut cam), meta) = s
        .topology_entry(&cam_id("cam-east"))
        .await
        .unwrap()
        .unwrap()
    else {
        panic!()
    };
    cam.community = CommunityId::new("anju").unwrap();
    cam.grid = None;
    let err = topology_error(
        s.update_entry(
            Entry::Camera(cam),
            meta.revision,
            SecretUpdate::KeepUnlessGiven,
            &by,
            ts(13),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.entry(), (Kind::Gate, "east-door"), "{err}");
    assert_eq!(err.field(), Some("camera"), "{err}");

    // Deleting what is still used is refused, naming the user.
    let community_id = EntryId::Community(CommunityId::new("xingfu").unwrap());
    let err = s
        .delete_entry(&community_id, 1, &by, ts(14))
        .await
        .unwrap_err();
    let StoreError::Topology(TopologyError::InUse { by: user, .. }) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(user.kind(), Kind::Grid, "{err}");
    // A conflict with what is stored (HTTP 409), not bad input.
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let err = s
        .delete_entry(&cam_id("cam-east"), 1, &by, ts(14))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("camera \"cam-east\" is still used by gate \"east-door\""),
        "{err}"
    );

    // Entries that fail their own checks, ids taken, zones nobody knows.
    let mut bad = camera("cam-y", "xingfu");
    bad.sub = Some(StreamSource::Rtsp {
        url: format!("rtsp://admin:{CAMERA_PASSWORD}@10.0.0.9/102"),
    });
    let err = topology_error(
        s.create_entry(Entry::Camera(bad), &by, ts(15))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.field(), Some("sub.url"));
    assert!(!err.to_string().contains(CAMERA_PASSWORD), "{err}");
    let mut bad = gate("tz-door", "xingfu", None);
    bad.timezone = Some("Mars/Olympus_Mons".into());
    let err = topology_error(
        s.create_entry(Entry::Gate(bad), &by, ts(15))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.field(), Some("timezone"), "{err}");
    let err = s
        .create_entry(Entry::Station(station("chengguan")), &by, ts(15))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Duplicate {
                what: "station",
                ..
            }
        ),
        "{err:?}"
    );

    // Nothing refused landed.
    let now = s.topology().await.unwrap().topology;
    assert_eq!(now.len(), 6, "the sample and anju");
}

async fn changes_are_audited_with_before_and_after_and_no_secret(db: &TestDb) {
    let s = &db.store;
    create_all(db, &sample()[..3]).await;
    let by = admin();
    let cam = camera("cam-1", "xingfu");
    s.create_entry(Entry::Camera(cam.clone()), &by, ts(10))
        .await
        .unwrap();
    let mut renamed = cam.clone();
    renamed.name = "西门".into();
    renamed.password = Some(Secret::new("another-cam-pass-2"));
    s.update_entry(
        Entry::Camera(renamed.clone()),
        1,
        SecretUpdate::Replace,
        &by,
        ts(11),
    )
    .await
    .unwrap();
    let id = cam_id("cam-1");
    s.set_entry_disabled(&id, true, 2, &by, ts(12))
        .await
        .unwrap();
    s.delete_entry(&id, 3, &by, ts(13)).await.unwrap();

    let rows = audit_log(db).await;
    let rows = &rows[3..];
    let summary: Vec<_> = rows
        .iter()
        .map(|a| {
            (
                a.action.as_str(),
                a.target.as_deref().unwrap_or(""),
                a.actor.as_str(),
                a.peer.as_deref().unwrap_or(""),
                a.detail["secret"].as_str().unwrap_or(""),
                a.detail["revision"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("camera.create", "cam-1", "admin", "10.0.0.5", "set", 1),
            ("camera.update", "cam-1", "admin", "10.0.0.5", "changed", 2),
            (
                "camera.disable",
                "cam-1",
                "admin",
                "10.0.0.5",
                "unchanged",
                3
            ),
            ("camera.delete", "cam-1", "admin", "10.0.0.5", "removed", 3),
        ]
    );
    assert_eq!(rows[0].detail["before"], json!(null));
    assert_eq!(rows[0].detail["after"]["name"], "东门入口");
    assert_eq!(rows[0].detail["after"]["username"], "admin");
    assert_eq!(rows[0].detail["after"]["zones"][0]["id"], "yard");
    assert_eq!(rows[0].detail["origin"], "store");
    assert_eq!(rows[1].detail["before"]["name"], "东门入口");
    assert_eq!(rows[1].detail["after"]["name"], "西门");
    assert_eq!(rows[2].detail["before"]["disabled"], false);
    assert_eq!(rows[2].detail["after"]["disabled"], true);
    assert_eq!(rows[3].detail["after"], json!(null));
    assert_eq!(rows[3].detail["before"]["name"], "西门");
    assert_eq!(rows[0].at, ts(10));
    for row in rows {
        let text = format!("{row:?} {}", row.detail);
        assert!(!text.contains(CAMERA_PASSWORD), "{text}");
        assert!(!text.contains("another-cam-pass"), "{text}");
        assert!(row.detail["after"].get("password").is_none());
    }

    // Gates too: the push secret never shows.
    let g = gate("east-door", "xingfu", None);
    s.create_entry(Entry::Gate(g), &by, ts(20)).await.unwrap();
    let last = audit_log(db).await.pop().unwrap();
    assert_eq!(last.action, "gate.create");
    assert_eq!(
        last.detail["after"]["push_allow_from"],
        json!(["10.0.0.0/24"])
    );
    assert!(!last.detail.to_string().contains(PUSH_SECRET));
}

async fn secrets_are_stored_but_absent_from_api_reads(db: &TestDb) {
    let s = &db.store;
    create_all(db, &sample()).await;
    let api = s.topology().await.unwrap();
    let gate_id = EntryId::Gate(GateId::new("east-door").unwrap());
    let shown = [
        format!("{api:?}"),
        serde_json::to_string(&api.topology).unwrap(),
        format!("{:?}", s.topology_entry(&cam_id("cam-east")).await.unwrap()),
        format!("{:?}", s.topology_entry(&gate_id).await.unwrap()),
    ];
    for text in &shown {
        assert!(!text.contains(CAMERA_PASSWORD), "{text}");
        assert!(!text.contains(PUSH_SECRET), "{text}");
    }
    assert!(api.topology.cameras.values().all(|c| c.password.is_none()));
    assert!(api.meta[&cam_id("cam-east")].secret_set);
    // Even the runtime's read hides them from Debug.
    let runtime = s.topology_for_runtime().await.unwrap();
    assert!(!format!("{runtime:?}").contains(CAMERA_PASSWORD));
    let cam = &runtime.topology.cameras[&CameraId::new("cam-east").unwrap()];
    assert_eq!(
        cam.password.as_ref().map(Secret::expose),
        Some(CAMERA_PASSWORD)
    );

    // An edit read from the API comes back without the password: kept unless given.
    let (mut entry, meta) = s
        .topology_entry(&cam_id("cam-east"))
        .await
        .unwrap()
        .unwrap();
    let Entry::Camera(c) = &mut entry else {
        panic!()
    };
    c.name = "东门".into();
    let m = s
        .update_entry(
            entry.clone(),
            meta.revision,
            SecretUpdate::KeepUnlessGiven,
            &admin(),
            ts(10),
        )
        .await
        .unwrap();
    assert!(m.secret_set);
    let runtime = s.topology_for_runtime().await.unwrap();
    let cam = &runtime.topology.cameras[&CameraId::new("cam-east").unwrap()];
    assert_eq!(
        cam.password.as_ref().map(Secret::expose),
        Some(CAMERA_PASSWORD)
    );
    assert_eq!(cam.name, "东门");
    // Replace with none removes it (and the camera then needs no username).
    let m = s
        .update_entry(entry, m.revision, SecretUpdate::Replace, &admin(), ts(11))
        .await
        .unwrap();
    assert!(!m.secret_set);
    let runtime = s.topology_for_runtime().await.unwrap();
    assert!(
        runtime.topology.cameras[&CameraId::new("cam-east").unwrap()]
            .password
            .is_none()
    );
    // The stored row's secret column is empty, and `spec` never held it.
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT spec, secret FROM topology_gates")
            .fetch_all(s.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].0.contains(PUSH_SECRET));
    assert_eq!(rows[0].1.as_deref(), Some(PUSH_SECRET));
}

/// The store checks references itself (to name the field); the foreign keys are the backstop,
/// checked at commit so one transaction may move a camera and its gate together.
async fn the_database_refuses_broken_references_at_commit(db: &TestDb) {
    let s = &db.store;
    create_all(db, &sample()).await;
    let insert = |id: &str, community: &str, grid: Option<&str>| {
        sqlx::query(
            "INSERT INTO topology_cameras (id, name, community, grid, network, disabled, spec, \
             origin, revision, created_at, updated_at) \
             VALUES ($1, 'x', $2, $3, 'community', 0, '{}', 'store', 1, 0, 0)",
        )
        .bind(id.to_owned())
        .bind(community.to_owned())
        .bind(grid.map(str::to_owned))
    };
    s.create_entry(Entry::Community(community("anju", None)), &admin(), ts(10))
        .await
        .unwrap();
    // An unknown community; a grid of another community.
    for (community, grid) in [("nowhere", None), ("anju", Some("g3"))] {
        let mut tx = s.pool().begin().await.unwrap();
        insert("cam-raw", community, grid)
            .execute(&mut *tx)
            .await
            .expect("deferred: the insert itself passes");
        let err = tx.commit().await.unwrap_err();
        assert!(
            err.to_string().to_lowercase().contains("foreign key"),
            "{community}: {err}"
        );
    }
    // Moving the camera and its gate together, in one transaction, is fine.
    let mut tx = s.pool().begin().await.unwrap();
    for table in ["topology_cameras", "topology_gates"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET community = 'anju', grid = NULL"
        )))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

/// The refusals of `create_entries`: each entry's position and what its error names.
fn batch_refusals(err: StoreError) -> Vec<(usize, ErrorKind, String)> {
    match err {
        StoreError::Batch { refused, .. } => refused
            .into_iter()
            .map(|(i, e)| {
                let what = match &e {
                    StoreError::Topology(t) => t.field().unwrap_or("").to_owned(),
                    StoreError::Duplicate { .. } => "duplicate".to_owned(),
                    other => other.to_string(),
                };
                (i, e.kind(), what)
            })
            .collect(),
        other => panic!("expected a batch refusal, got {other:?}"),
    }
}

async fn an_import_is_all_or_nothing_with_every_refusal_named(db: &TestDb) {
    let s = &db.store;
    create_all(db, &sample()).await;
    let before = s.topology_for_runtime().await.unwrap();
    let audit_before = audit_log(db).await.len();
    let mut bad_url = camera("imp-2", "xingfu");
    bad_url.main = Some(StreamSource::Rtsp {
        url: "http://10.0.0.9/x".into(),
    });
    let mut other_grid = camera("imp-4", "hexie");
    other_grid.grid = Some(GridId::new("g3").unwrap());
    let batch = vec![
        Entry::Camera(camera("imp-1", "xingfu")),
        Entry::Camera(bad_url),
        // Already stored.
        Entry::Camera(camera("cam-east", "xingfu")),
        // A grid of another community (hexie is made by this batch too).
        Entry::Camera(other_grid),
        Entry::Community(community("hexie", None)),
        // Given twice.
        Entry::Camera(camera("imp-1", "xingfu")),
        // No such community.
        Entry::Camera(camera("imp-7", "nowhere")),
    ];
    let err = s.create_entries(batch, &admin(), ts(50)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("nothing stored"), "{err}");
    assert_eq!(
        batch_refusals(err),
        [
            (1, ErrorKind::InvalidInput, "main.url".to_owned()),
            (2, ErrorKind::InvalidInput, "duplicate".to_owned()),
            (3, ErrorKind::InvalidInput, "grid".to_owned()),
            (5, ErrorKind::InvalidInput, "id".to_owned()),
            (6, ErrorKind::InvalidInput, "community".to_owned()),
        ]
    );
    assert_eq!(
        s.topology_for_runtime().await.unwrap(),
        before,
        "nothing stored"
    );
    assert_eq!(audit_log(db).await.len(), audit_before, "nothing audited");
}

async fn an_import_writes_every_entry_with_its_audit_entry(db: &TestDb) {
    let s = &db.store;
    create_all(db, &sample()).await;
    let audit_before = audit_log(db).await.len();
    // A community and its cameras in one batch; the cameras may come first.
    let batch: Vec<Entry> = (0..300)
        .map(|i| Entry::Camera(camera(&format!("imp-{i:03}"), "hexie")))
        .chain([Entry::Community(community("hexie", None))])
        .collect();
    let metas = s
        .create_entries(batch.clone(), &admin(), ts(60))
        .await
        .unwrap();
    assert_eq!(metas.len(), 301);
    assert!(
        metas
            .iter()
            .all(|m| m.revision == 1 && m.origin == Origin::Store && m.created_at == ts(60))
    );
    assert!(metas[0].secret_set && !metas[300].secret_set);
    let stored = s.topology_for_runtime().await.unwrap();
    for e in &batch {
        assert_eq!(stored.topology.get(&e.id()).as_ref(), Some(e), "{}", e.id());
    }
    let audit = audit_log(db).await;
    assert_eq!(audit.len(), audit_before + 301);
    assert_eq!(audit[audit_before].action, "camera.create");
    assert_eq!(audit[audit_before].target.as_deref(), Some("imp-000"));
    assert!(
        audit[audit_before..]
            .iter()
            .all(|a| !a.detail.to_string().contains(CAMERA_PASSWORD))
    );
    // The same batch again: every entry is taken, nothing changes.
    let err = s.create_entries(batch, &admin(), ts(61)).await.unwrap_err();
    assert_eq!(batch_refusals(err).len(), 301);
    assert_eq!(audit_log(db).await.len(), audit_before + 301);
}

/// A store made `with_topology_check` runs the check in every write made for the API, with the
/// topology as stored and as the write would leave it; a refusal is `Refused` (409), naming the
/// entry, and writes nothing, audit included. `apply_config` and the store it was made from do
/// not run it.
async fn a_topology_check_refuses_api_writes_before_anything_is_written(db: &TestDb) {
    use std::sync::{Arc, Mutex};
    // Refused: a gate named 不可, a disabled community, and the loss of station "spare".
    let calls: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
    let seen = Arc::clone(&calls);
    let s = db.store.clone().with_topology_check(Arc::new(
        move |before: &Topology, after: &Topology| {
            seen.lock().unwrap().push((before.len(), after.len()));
            if after.gates.values().any(|g| g.name == "不可") {
                return Err("no gate may be called 不可".to_owned());
            }
            if after.communities.values().any(|c| c.disabled) {
                return Err("communities stay enabled".to_owned());
            }
            let spare = StationId::new("spare").unwrap();
            if before.stations.contains_key(&spare) && !after.stations.contains_key(&spare) {
                return Err("station spare stays".to_owned());
            }
            Ok(())
        },
    ));
    let mut entries = sample();
    entries.push(Entry::Station(station("spare")));
    for (i, e) in entries.iter().enumerate() {
        s.create_entry(e.clone(), &admin(), ts(i as i64))
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", e.id()));
    }
    let sizes: Vec<(usize, usize)> = (0..6).map(|n| (n, n + 1)).collect();
    assert_eq!(
        *calls.lock().unwrap(),
        sizes,
        "once per write, before and after"
    );

    let refused_door = Gate {
        name: "不可".into(),
        ..gate("west-door", "xingfu", None)
    };
    let mut renamed = gate("east-door", "xingfu", Some("cam-east"));
    renamed.name = "不可".into();
    let xingfu = EntryId::Community(CommunityId::new("xingfu").unwrap());
    let spare = EntryId::Station(StationId::new("spare").unwrap());
    let before = s.topology_for_runtime().await.unwrap();
    let audit_before = audit_log(db).await.len();
    let refusals = [
        (
            Some(EntryId::Gate(refused_door.id.clone()).to_string()),
            s.create_entry(Entry::Gate(refused_door.clone()), &admin(), ts(10))
                .await,
        ),
        (
            None,
            s.create_entries(
                vec![
                    Entry::Camera(camera("cam-west", "xingfu")),
                    Entry::Gate(refused_door),
                ],
                &admin(),
                ts(11),
            )
            .await
            .map(|_| before.meta[&xingfu].clone()),
        ),
        (
            Some("gate \"east-door\"".to_owned()),
            s.update_entry(
                Entry::Gate(renamed),
                1,
                SecretUpdate::KeepUnlessGiven,
                &admin(),
                ts(12),
            )
            .await,
        ),
        (
            Some(xingfu.to_string()),
            s.set_entry_disabled(&xingfu, true, 1, &admin(), ts(13))
                .await,
        ),
        (
            Some(spare.to_string()),
            s.delete_entry(&spare, 1, &admin(), ts(14))
                .await
                .map(|()| before.meta[&spare].clone()),
        ),
    ];
    for (entry, result) in refusals {
        let err = result.unwrap_err();
        assert!(matches!(err, StoreError::Refused { .. }), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Conflict);
        let text = err.to_string();
        match entry {
            Some(entry) => assert!(text.starts_with(&entry), "{text}"),
            None => assert!(text.starts_with("these entries: "), "{text}"),
        }
    }
    assert_eq!(s.topology_for_runtime().await.unwrap(), before);
    assert_eq!(audit_log(db).await.len(), audit_before);
    assert_eq!(calls.lock().unwrap().len(), 11);

    // The config file is not checked here (it is before the hub starts).
    let mut declared = Topology::default();
    declared.insert(Entry::Gate(Gate {
        name: "不可".into(),
        ..gate("cfg-door", "xingfu", None)
    }));
    s.apply_config(&declared, ts(20)).await.unwrap();
    assert_eq!(calls.lock().unwrap().len(), 11);
    // Nor by the store the checked one was made from.
    db.store
        .set_entry_disabled(&xingfu, true, 1, &admin(), ts(21))
        .await
        .unwrap();
    assert_eq!(calls.lock().unwrap().len(), 11);
}

/// A station that users are scoped to is not deleted: 409 naming every such user (disabled
/// ones too), nothing written; disabling it is allowed, and once no user names it, it goes.
async fn a_station_users_are_scoped_to_is_not_deleted(db: &TestDb) {
    use xl_core::Role;
    let s = &db.store;
    create_all(db, &[Entry::Station(station("xincheng"))]).await;
    let user = |name: &str, stations: &[&str], disabled: bool| xl_store::UserRow {
        username: name.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".to_owned(),
        role: Role::Duty,
        communities: vec![],
        stations: stations
            .iter()
            .map(|s| StationId::new(*s).unwrap())
            .collect(),
        disabled,
        created_at: ts(0),
    };
    for u in [
        user("duty-a", &["xincheng"], false),
        user("duty-b", &["chengguan", "xincheng"], true),
        user("duty-c", &["chengguan"], false),
        user("duty-d", &[], false),
    ] {
        s.insert_user(&u).await.unwrap();
    }
    let id = EntryId::Station(StationId::new("xincheng").unwrap());
    let audit_before = audit_log(db).await.len();
    let err = s.delete_entry(&id, 1, &admin(), ts(1)).await.unwrap_err();
    let StoreError::StationInScope { station, users } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(station, "xincheng");
    assert_eq!(users, &["duty-a", "duty-b"]);
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(
        err.to_string().contains("users \"duty-a\", \"duty-b\""),
        "{err}"
    );
    assert!(s.topology().await.unwrap().topology.contains(&id));
    assert_eq!(audit_log(db).await.len(), audit_before);

    let meta = s
        .set_entry_disabled(&id, true, 1, &admin(), ts(2))
        .await
        .unwrap();
    for u in [
        user("duty-a", &[], false),
        user("duty-b", &["chengguan"], true),
    ] {
        s.update_user(&u).await.unwrap();
    }
    s.delete_entry(&id, meta.revision, &admin(), ts(3))
        .await
        .unwrap();
    assert!(!s.topology().await.unwrap().topology.contains(&id));
}
