use super::*;
use crate::zone::{ObjectClass, ZoneId};

const SQUARE: [[f32; 2]; 4] = [[0.2, 0.2], [0.8, 0.2], [0.8, 0.8], [0.2, 0.8]];

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
    Camera {
        id: CameraId::new(id).unwrap(),
        name: "东门入口".into(),
        community: CommunityId::new(community).unwrap(),
        grid: None,
        network: CameraNetwork::Community,
        main: Some(StreamSource::Rtsp {
            url: "rtsp://10.0.0.2/Streaming/Channels/101".into(),
        }),
        sub: Some(StreamSource::Rtsp {
            url: "rtsp://10.0.0.2/Streaming/Channels/102".into(),
        }),
        username: Some("admin".into()),
        password: Some(Secret::new("hunter2-camera")),
        transport: None,
        decode: DecodePolicy::All,
        detect: CameraDetect::default(),
        zones: vec![Zone::new(ZoneId::new("yard").unwrap(), SQUARE.to_vec())],
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
        transport: None,
        push_secret: None,
        push_allow_from: Vec::new(),
        timezone: None,
        offline_after_secs: 300,
        disabled: false,
    }
}

/// One of each kind, all references good: 城关 station, 幸福小区 with grid g3, camera
/// cam-east in g3, gate east-door watched by cam-east.
fn sample() -> Topology {
    let mut cam = camera("cam-east", "xingfu");
    cam.grid = Some(GridId::new("g3").unwrap());
    let mut g = gate("east-door", "xingfu", Some("cam-east"));
    g.grid = Some(GridId::new("g3").unwrap());
    Topology::from_entries([
        Entry::Station(station("chengguan")),
        Entry::Community(community("xingfu", Some("chengguan"))),
        Entry::Grid(grid("g3", "xingfu")),
        Entry::Camera(cam),
        Entry::Gate(g),
    ])
}

fn field_of(e: &TopologyError) -> String {
    e.field().unwrap_or("").to_owned()
}

#[test]
fn the_sample_is_valid() {
    assert_eq!(sample().validate(), Ok(()));
}

#[test]
fn camera_rules_name_their_field() {
    type Edit = fn(&mut Camera);
    let cases: &[(&str, Edit, &str, &str)] = &[
        ("empty name", |c| c.name = "  ".into(), "name", "empty"),
        (
            "long name",
            |c| c.name = "幸".repeat(65),
            "name",
            "at most 64",
        ),
        (
            "control in name",
            |c| c.name = "东门\n".into(),
            "name",
            "control",
        ),
        (
            "no stream",
            |c| {
                c.main = None;
                c.sub = None
            },
            "sub",
            "main or a sub",
        ),
        (
            "http url",
            |c| {
                c.sub = Some(StreamSource::Rtsp {
                    url: "http://10.0.0.2/video".into(),
                })
            },
            "sub.url",
            "rtsp:// or rtsps://",
        ),
        (
            "not a url",
            |c| {
                c.main = Some(StreamSource::Rtsp {
                    url: "10.0.0.2/ch1".into(),
                })
            },
            "main.url",
            "not a URL",
        ),
        (
            "credentials in the url",
            |c| {
                c.main = Some(StreamSource::Rtsp {
                    url: "rtsp://admin:s3cret@10.0.0.2/ch1".into(),
                })
            },
            "main.url",
            "carries credentials",
        ),
        (
            "user only in the url",
            |c| {
                c.sub = Some(StreamSource::Rtsp {
                    url: "rtsps://admin@10.0.0.2/ch1".into(),
                })
            },
            "sub.url",
            "carries credentials",
        ),
        (
            "no host",
            |c| {
                c.sub = Some(StreamSource::Rtsp {
                    url: "rtsp:///ch1".into(),
                })
            },
            "sub.url",
            "no host",
        ),
        (
            "empty file",
            |c| c.sub = Some(StreamSource::File { path: " ".into() }),
            "sub.path",
            "empty",
        ),
        (
            "a url as a file",
            |c| {
                c.sub = Some(StreamSource::File {
                    path: "rtsp://10.0.0.2/ch1".into(),
                })
            },
            "sub.path",
            "is a URL",
        ),
        (
            "password without user",
            |c| c.username = None,
            "password",
            "without a username",
        ),
        (
            "empty password",
            |c| c.password = Some(Secret::new("")),
            "password",
            "empty",
        ),
        (
            "colon in user",
            |c| c.username = Some("ad:min".into()),
            "username",
            "':'",
        ),
        (
            "detect rate",
            |c| c.detect.rate = Some(-1.0),
            "detect.rate",
            "at least 0.001",
        ),
        (
            "zone with two corners",
            |c| {
                c.zones.push(Zone::new(
                    ZoneId::new("lane").unwrap(),
                    vec![[0.1, 0.1], [0.5, 0.5]],
                ))
            },
            "zones[1].polygon",
            "at least 3",
        ),
        (
            "zone with crossing edges",
            |c| c.zones[0].polygon = vec![[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.5]],
            "zones[0].polygon",
            "cross",
        ),
        (
            "zone out of the image",
            |c| c.zones[0].polygon[2] = [0.8, 1.5],
            "zones[0].polygon[2]",
            "outside the image",
        ),
        (
            "zone ids twice",
            |c| c.zones.push(c.zones[0].clone()),
            "zones[1].id",
            "also zones[0]",
        ),
        (
            "too many zones",
            |c| {
                c.zones = (0..=MAX_ZONES_PER_CAMERA)
                    .map(|i| Zone::new(ZoneId::new(format!("z{i}")).unwrap(), SQUARE.to_vec()))
                    .collect()
            },
            "zones",
            "at most 64",
        ),
    ];
    for (what, edit, field, reason) in cases {
        let mut c = camera("cam-1", "xingfu");
        edit(&mut c);
        let err = c.validate().expect_err(what);
        let TopologyError::InvalidField {
            kind,
            id,
            field: f,
            reason: r,
        } = &err
        else {
            panic!("{what}: {err:?}")
        };
        assert_eq!((*kind, id.as_str()), (Kind::Camera, "cam-1"), "{what}");
        assert_eq!(f, field, "{what}: {err}");
        assert!(r.contains(reason), "{what}: {err}");
        assert!(!err.to_string().contains("s3cret"), "{what}: {err}");
        assert!(!err.to_string().contains("hunter2"), "{what}: {err}");
    }
    // Files and rtsps are fine; one stream is enough.
    let mut c = camera("cam-1", "xingfu");
    c.main = None;
    c.sub = Some(StreamSource::File {
        path: "media/lobby.mp4".into(),
    });
    assert_eq!(c.validate(), Ok(()));
    c.sub = None;
    c.main = Some(StreamSource::Rtsp {
        url: "rtsps://cam.example:322/live".into(),
    });
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn gate_rules_name_their_field() {
    type Edit = fn(&mut Gate);
    let cases: &[(&str, Edit, &str, &str)] = &[
        ("empty name", |g| g.name.clear(), "name", "empty"),
        (
            "firmware with a space",
            |g| g.firmware = "hik vision".into(),
            "firmware",
            "' '",
        ),
        (
            "empty firmware",
            |g| g.firmware.clear(),
            "firmware",
            "empty",
        ),
        (
            "device with a newline",
            |g| g.device = Some("SN\n1".into()),
            "device",
            "'\\n'",
        ),
        (
            "time zone",
            |g| g.timezone = Some("Asia Shanghai".into()),
            "timezone",
            "IANA",
        ),
        (
            "time zone slashes",
            |g| g.timezone = Some("/etc/localtime".into()),
            "timezone",
            "IANA",
        ),
        (
            "never offline",
            |g| g.offline_after_secs = 0,
            "offline_after_secs",
            "1 to",
        ),
        (
            "short push secret",
            |g| g.push_secret = Some(Secret::new("short")),
            "push_secret",
            "shorter than 16",
        ),
        (
            "push without push settings",
            |g| g.transport = Some(GateTransport::HttpPush),
            "transport",
            "neither push_secret nor push_allow_from",
        ),
        (
            "mqtt with push settings",
            |g| {
                g.transport = Some(GateTransport::Mqtt);
                g.push_allow_from = vec!["10.0.0.0/24".parse().unwrap()];
            },
            "transport",
            "\"both\"",
        ),
    ];
    for (what, edit, field, reason) in cases {
        let mut g = gate("east-door", "xingfu", None);
        edit(&mut g);
        let err = g.validate().expect_err(what);
        assert_eq!(err.entry(), (Kind::Gate, "east-door"), "{what}");
        assert_eq!(field_of(&err), *field, "{what}: {err}");
        assert!(err.to_string().contains(reason), "{what}: {err}");
    }
    let mut g = gate("east-door", "xingfu", None);
    g.push_secret = Some(Secret::new("a-long-random-push-secret"));
    assert_eq!(g.transport(), GateTransport::HttpPush);
    assert_eq!(g.validate(), Ok(()));
    g.transport = Some(GateTransport::Both);
    g.timezone = Some("America/Argentina/Buenos_Aires".into());
    assert_eq!(g.validate(), Ok(()));
}

#[test]
fn names_of_stations_communities_and_grids_are_required() {
    let mut s = station("chengguan");
    s.name = String::new();
    let mut c = community("xingfu", None);
    c.name = "x".repeat(MAX_NAME_CHARS + 1);
    let mut g = grid("g3", "xingfu");
    g.name = "\t".into();
    for (entry, kind, id) in [
        (Entry::Station(s), Kind::Station, "chengguan"),
        (Entry::Community(c), Kind::Community, "xingfu"),
        (Entry::Grid(g), Kind::Grid, "g3"),
    ] {
        let err = entry.validate().unwrap_err();
        assert_eq!(err.entry(), (kind, id));
        assert_eq!(field_of(&err), "name", "{err}");
    }
}

#[test]
fn unknown_fields_and_enum_values_are_refused_when_read() {
    let good = serde_json::json!({
        "id": "cam-1", "name": "东门", "community": "xingfu",
        "sub": {"kind": "rtsp", "url": "rtsp://10.0.0.2/102"},
    });
    let c: Camera = serde_json::from_value(good.clone()).unwrap();
    assert_eq!(c.network, CameraNetwork::Community);
    assert_eq!(c.detect, CameraDetect::default());
    assert!(c.zones.is_empty() && !c.disabled && c.main.is_none());
    let with = |key: &str, value: serde_json::Value| {
        let mut v = good.clone();
        v[key] = value;
        serde_json::from_value::<Camera>(v).unwrap_err().to_string()
    };
    let cases = [
        with("network", "police".into()),
        with("transport", "sctp".into()),
        with("decode", "keyframes".into()),
        with("sub", serde_json::json!({"kind": "gb28181", "id": "3402"})),
        with(
            "sub",
            serde_json::json!({"kind": "rtsp", "uri": "rtsp://x/"}),
        ),
        with("detect", serde_json::json!({"faces": "face"})),
        with("url", "rtsp://10.0.0.2/102".into()),
        with("id", "cam 1".into()),
    ];
    let needles = [
        "police",
        "sctp",
        "keyframes",
        "gb28181",
        "uri",
        "face",
        "url",
        "cam 1",
    ];
    for (err, needle) in cases.iter().zip(needles) {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    let gate_err = serde_json::from_value::<Gate>(serde_json::json!({
        "id": "g", "name": "门", "community": "xingfu", "firmware": "dahua",
        "transport": "carrier-pigeon",
    }))
    .unwrap_err();
    assert!(
        gate_err.to_string().contains("carrier-pigeon"),
        "{gate_err}"
    );
    let nets = serde_json::from_value::<Gate>(serde_json::json!({
        "id": "g", "name": "门", "community": "xingfu", "firmware": "dahua",
        "push_allow_from": ["10.0.0.5", "10.1.0.0/16", "fd00::/8"],
    }))
    .unwrap();
    assert_eq!(
        serde_json::to_value(&nets).unwrap()["push_allow_from"],
        serde_json::json!(["10.0.0.5/32", "10.1.0.0/16", "fd00::/8"])
    );
    let bad_net = serde_json::from_value::<Gate>(serde_json::json!({
        "id": "g", "name": "门", "community": "xingfu", "firmware": "dahua",
        "push_allow_from": ["10.0.0.0/33"],
    }))
    .unwrap_err();
    assert!(bad_net.to_string().contains("10.0.0.0/33"), "{bad_net}");
}

#[test]
fn secrets_never_show_in_debug_or_json_and_are_read_from_input() {
    let mut g = gate("east-door", "xingfu", None);
    g.push_secret = Some(Secret::new("push-secret-0123456789"));
    let c = camera("cam-1", "xingfu");
    let t = Topology::from_entries([Entry::Camera(c.clone()), Entry::Gate(g.clone())]);
    for shown in [
        format!("{c:?}"),
        format!("{g:?}"),
        format!("{t:?}"),
        serde_json::to_string(&c).unwrap(),
        serde_json::to_string(&g).unwrap(),
        serde_json::to_string(&t).unwrap(),
        serde_json::to_string(&Entry::Camera(c.clone())).unwrap(),
    ] {
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("push-secret-0123"), "{shown}");
    }
    let json = serde_json::to_value(&c).unwrap();
    assert!(json.get("password").is_none());
    assert_eq!(json["username"], "admin");
    let mut input = json;
    input["password"] = "from-the-api".into();
    let read: Camera = serde_json::from_value(input).unwrap();
    assert_eq!(
        read.password.as_ref().map(Secret::expose),
        Some("from-the-api")
    );
    assert_eq!(
        c.password.as_ref().map(Secret::expose),
        Some("hunter2-camera")
    );
    let t2 = t.without_secrets();
    assert!(t2.cameras.values().all(|c| c.password.is_none()));
    assert!(t2.gates.values().all(|g| g.push_secret.is_none()));
}

#[test]
fn entries_round_trip_through_json() {
    let t = sample();
    let json = serde_json::to_string(&t).unwrap();
    let mut back: Topology = serde_json::from_str(&json).unwrap();
    // Secrets are not serialised.
    assert_eq!(back, t.clone().without_secrets());
    back.cameras
        .get_mut(&CameraId::new("cam-east").unwrap())
        .unwrap()
        .password = Some(Secret::new("hunter2-camera"));
    assert_eq!(back, t);
    let id = EntryId::Camera(CameraId::new("cam-east").unwrap());
    assert_eq!(
        serde_json::to_value(&id).unwrap(),
        serde_json::json!({"kind": "camera", "id": "cam-east"})
    );
    assert_eq!(id.to_string(), "camera \"cam-east\"");
    assert_eq!(EntryId::parse(Kind::Camera, "cam-east").unwrap(), id);
}

#[test]
fn references_are_checked_and_name_the_entry_and_field() {
    type Edit = fn(&mut Topology);
    let cases: &[(&str, Edit, Kind, &str, &str, &str)] = &[
        (
            "community of an unknown station",
            |t| {
                t.insert(Entry::Community(community("anju", Some("nowhere"))));
            },
            Kind::Community,
            "anju",
            "station",
            "station \"nowhere\" does not exist",
        ),
        (
            "grid of an unknown community",
            |t| {
                t.insert(Entry::Grid(grid("g9", "nowhere")));
            },
            Kind::Grid,
            "g9",
            "community",
            "does not exist",
        ),
        (
            "camera of an unknown community",
            |t| {
                t.insert(Entry::Camera(camera("cam-x", "nowhere")));
            },
            Kind::Camera,
            "cam-x",
            "community",
            "community \"nowhere\" does not exist",
        ),
        (
            "camera in an unknown grid",
            |t| {
                let mut c = camera("cam-x", "xingfu");
                c.grid = Some(GridId::new("g99").unwrap());
                t.insert(Entry::Camera(c));
            },
            Kind::Camera,
            "cam-x",
            "grid",
            "grid \"g99\" does not exist",
        ),
        (
            "camera in another community's grid",
            |t| {
                t.insert(Entry::Community(community("anju", None)));
                let mut c = camera("cam-x", "anju");
                c.grid = Some(GridId::new("g3").unwrap());
                t.insert(Entry::Camera(c));
            },
            Kind::Camera,
            "cam-x",
            "grid",
            "grid \"g3\" is in community \"xingfu\", not \"anju\"",
        ),
        (
            "gate naming an unknown camera",
            |t| {
                t.insert(Entry::Gate(gate("west-door", "xingfu", Some("cam-west"))));
            },
            Kind::Gate,
            "west-door",
            "camera",
            "camera \"cam-west\" does not exist",
        ),
        (
            "gate watched from another community",
            |t| {
                t.insert(Entry::Community(community("anju", None)));
                t.insert(Entry::Gate(gate("west-door", "anju", Some("cam-east"))));
            },
            Kind::Gate,
            "west-door",
            "camera",
            "is in community \"xingfu\", not the gate's \"anju\"",
        ),
        (
            "gate in another community's grid",
            |t| {
                t.insert(Entry::Community(community("anju", None)));
                let mut g = gate("west-door", "anju", None);
                g.grid = Some(GridId::new("g3").unwrap());
                t.insert(Entry::Gate(g));
            },
            Kind::Gate,
            "west-door",
            "grid",
            "not \"anju\"",
        ),
        (
            "one device, two gates",
            |t| {
                let mut g = gate("west-door", "xingfu", None);
                g.device = Some("east-door".into());
                t.insert(Entry::Gate(g));
            },
            Kind::Gate,
            "west-door",
            "device",
            "also gate \"east-door\"",
        ),
        (
            "moving a watched camera away",
            |t| {
                t.insert(Entry::Community(community("anju", None)));
                let c = t.cameras.values_mut().next().unwrap();
                c.community = CommunityId::new("anju").unwrap();
                c.grid = None;
            },
            Kind::Gate,
            "east-door",
            "camera",
            "not the gate's",
        ),
        (
            "an entry under another's key",
            |t| {
                let c = community("xingfu", None);
                t.communities.insert(CommunityId::new("anju").unwrap(), c);
            },
            Kind::Community,
            "xingfu",
            "id",
            "listed under \"anju\"",
        ),
    ];
    for (what, edit, kind, id, field, reason) in cases {
        let mut t = sample();
        edit(&mut t);
        let errors = t.check_references().expect_err(what);
        assert_eq!(errors.len(), 1, "{what}: {errors:?}");
        let err = &errors[0];
        assert_eq!(err.entry(), (*kind, *id), "{what}: {err}");
        assert_eq!(field_of(err), *field, "{what}: {err}");
        assert!(err.to_string().contains(reason), "{what}: {err}");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
    // Every problem is reported, not only the first.
    let mut t = sample();
    t.insert(Entry::Camera(camera("cam-a", "nowhere")));
    t.insert(Entry::Camera(camera("cam-b", "nowhere")));
    assert_eq!(t.check_references().unwrap_err().len(), 2);
    // `validate` adds the entries' own checks.
    let mut bad = camera("cam-c", "xingfu");
    bad.name.clear();
    t.insert(Entry::Camera(bad));
    let all = t.validate().unwrap_err();
    assert_eq!(all.len(), 3);
    assert_eq!(field_of(&all[0]), "name");
}

#[test]
fn an_entry_in_use_cannot_be_removed() {
    let t = sample();
    let cases = [
        (
            EntryId::Station(StationId::new("chengguan").unwrap()),
            "station \"chengguan\" is still used by community \"xingfu\" (its station)",
        ),
        (
            EntryId::Community(CommunityId::new("xingfu").unwrap()),
            "community \"xingfu\" is still used by grid \"g3\" (its community)",
        ),
        (
            EntryId::Grid(GridId::new("g3").unwrap()),
            "grid \"g3\" is still used by camera \"cam-east\" (its grid)",
        ),
        (
            EntryId::Camera(CameraId::new("cam-east").unwrap()),
            "camera \"cam-east\" is still used by gate \"east-door\" (its camera)",
        ),
    ];
    for (id, message) in cases {
        let err = t.check_remove(&id).unwrap_err();
        assert!(err.to_string().starts_with(message), "{err}");
    }
    assert_eq!(
        t.used_by(&EntryId::Community(CommunityId::new("xingfu").unwrap()))
            .len(),
        3,
        "the grid, the camera and the gate"
    );
    assert_eq!(
        t.check_remove(&EntryId::Gate(GateId::new("east-door").unwrap())),
        Ok(())
    );
}

#[test]
fn diff_lists_what_changed_in_an_order_safe_to_apply() {
    let old = sample();
    assert!(Topology::diff(&old, &old).is_empty());

    let mut new = old.clone();
    // Removed: the gate and the camera it named.
    new.gates.clear();
    new.cameras.clear();
    // Added: a community and a camera in it.
    new.insert(Entry::Community(community("anju", Some("chengguan"))));
    new.insert(Entry::Camera(camera("cam-anju", "anju")));
    // Changed: the station's name; the grid only disabled.
    new.stations.values_mut().next().unwrap().name = "城关所".into();
    new.grids.values_mut().next().unwrap().disabled = true;
    let changes: Vec<(ChangeOp, String)> = Topology::diff(&old, &new)
        .into_iter()
        .map(|c| (c.op, c.id.to_string()))
        .collect();
    assert_eq!(
        changes,
        [
            (ChangeOp::Removed, "gate \"east-door\"".to_owned()),
            (ChangeOp::Removed, "camera \"cam-east\"".to_owned()),
            (ChangeOp::Changed, "station \"chengguan\"".to_owned()),
            (ChangeOp::Added, "community \"anju\"".to_owned()),
            (ChangeOp::Changed, "grid \"g3\"".to_owned()),
            (ChangeOp::Added, "camera \"cam-anju\"".to_owned()),
        ]
    );

    // A new password, a zone's new corner, a zone's classes: each is a change of the camera.
    let cam = EntryId::Camera(CameraId::new("cam-east").unwrap());
    let edits: [fn(&mut Camera); 3] = [
        |c| c.password = Some(Secret::new("new-password")),
        |c| c.zones[0].polygon[0] = [0.21, 0.2],
        |c| c.zones[0].classes.push(ObjectClass::Vehicle),
    ];
    for edit in edits {
        let mut new = old.clone();
        edit(new.cameras.values_mut().next().unwrap());
        assert_eq!(
            Topology::diff(&old, &new),
            [Change {
                op: ChangeOp::Changed,
                id: cam.clone()
            }]
        );
    }
}

#[test]
fn entry_accessors_cover_every_kind() {
    let t = sample();
    let entries = t.entries();
    assert_eq!(
        entries.iter().map(Entry::kind).collect::<Vec<_>>(),
        Kind::ALL
    );
    for mut e in entries {
        let id = e.id();
        assert!(t.contains(&id));
        assert_eq!(t.get(&id), Some(e.clone()));
        assert!(!e.disabled());
        e.set_disabled(true);
        assert!(e.disabled());
        assert_eq!(e.secret().is_some(), id.kind() == Kind::Camera);
        let mut t2 = t.clone();
        assert!(t2.insert(e.clone()).is_some());
        assert_eq!(t2.remove(&id), Some(e));
        assert!(!t2.contains(&id));
        assert_eq!(t2.len(), t.len() - 1);
    }
    let origin: Origin = "config".parse().unwrap();
    assert_eq!(origin.as_str(), "config");
    assert!("file".parse::<Origin>().is_err());
}
