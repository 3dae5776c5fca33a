//! The topology's HTTP API on a real hub (`Hub::start`, SQLite store, the listening server):
//! every kind created, read, updated, disabled, enabled and deleted with ETags and `If-Match`
//! (428 without, 409 stale), entries from the config file read-only (403), references
//! refused by name, credentials in no answer and no audit entry; the CSV import of a good
//! file and of files with bad rows (nothing stored, the row and column named); and the camera
//! probe against the real RTSP test server (gst-rtsp-server on loopback), H.264 and H.265.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use xl_store::AuditFilter;
use xl_testkit::{CLIP_FPS, CLIP_GOP_FRAMES, H264_360P, H265_720P, RtspServer, test_clip};
use xueliang::config::Config;
use xueliang::hub::Hub;

const TOKEN: &str = "topology-api-token";
const CAMERA_PASSWORD: &str = "cam-pass-Zq81xv";
const PUSH_SECRET: &str = "push-secret-Hn27cmw4Lp";

/// A hub with no cameras, whose config file declares station chengguan and its community
/// xingfu (read-only through the API).
async fn hub() -> Hub {
    hub_with("").await
}

/// [`hub`] with more of the config file (TOML appended).
async fn hub_with(extra: &str) -> Hub {
    let data = std::env::temp_dir().join(format!("xl-topology-api-{:x}", rand::random::<u64>()));
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\napi_token = \"{TOKEN}\"\ndata_dir = \"{}\"\n\
         [detect]\nenabled = false\n\
         [rtsp]\nrequest_timeout_secs = 3\nframe_timeout_secs = 3\n\
         [[stations]]\nid = \"chengguan\"\nname = \"城关派出所\"\n\
         [[communities]]\nid = \"xingfu\"\nname = \"幸福小区\"\nstation = \"chengguan\"\n\
         {extra}",
        data.display()
    );
    Hub::start(Config::parse(&text).unwrap()).await.unwrap()
}

struct Answer {
    status: StatusCode,
    etag: Option<String>,
    body: Value,
    text: String,
}

/// The API as the admin token, recording every answer's text.
struct Api {
    base: String,
    client: reqwest::Client,
    seen: std::sync::Mutex<Vec<String>>,
}

impl Api {
    fn new(hub: &Hub) -> Api {
        Api {
            base: format!("http://{}", hub.addr),
            client: reqwest::Client::new(),
            seen: Default::default(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        if_match: Option<&str>,
        body: Option<(&str, String)>,
    ) -> Answer {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .timeout(std::time::Duration::from_secs(30));
        if let Some(v) = if_match {
            req = req.header("If-Match", v);
        }
        if let Some((content_type, text)) = body {
            req = req.header("Content-Type", content_type).body(text);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await.unwrap();
        self.seen.lock().unwrap().push(text.clone());
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            etag,
            body,
            text,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None, None).await
    }

    async fn json(&self, method: Method, path: &str, if_match: Option<&str>, v: Value) -> Answer {
        let body = Some(("application/json", v.to_string()));
        self.send(method, path, if_match, body).await
    }

    async fn post_csv(&self, csv: String) -> Answer {
        let body = Some(("text/csv", csv));
        self.send(Method::POST, "/api/v1/cameras/import", None, body)
            .await
    }

    /// No answer so far carried a secret.
    fn assert_no_secret_answered(&self) {
        for text in self.seen.lock().unwrap().iter() {
            for secret in [CAMERA_PASSWORD, PUSH_SECRET] {
                assert!(!text.contains(secret), "an answer carries a secret: {text}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_through_the_api_with_revisions_read_only_config_and_no_secret_out() {
    let hub = hub().await;
    let api = Api::new(&hub);
    let t = "/api/v1/topology";
    let entries = [
        (
            "stations",
            "xincheng",
            json!({"id": "xincheng", "name": "新城派出所"}),
        ),
        (
            "communities",
            "heping",
            json!({"id": "heping", "name": "和平小区", "station": "xincheng"}),
        ),
        (
            "grids",
            "heping-1",
            json!({"id": "heping-1", "community": "heping", "name": "第一网格"}),
        ),
        (
            "cameras",
            "heping-east",
            json!({
                "id": "heping-east", "name": "和平东门", "community": "heping", "grid": "heping-1",
                "network": "skynet",
                "sub": {"kind": "rtsp", "url": "rtsp://127.0.0.1:9/sub"},
                "username": "admin", "password": CAMERA_PASSWORD,
                "zones": [{"id": "door", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]}],
            }),
        ),
        (
            "gates",
            "heping-door",
            json!({
                "id": "heping-door", "name": "和平东门门禁", "community": "heping",
                "firmware": "hikvision-isapi", "camera": "heping-east",
                "push_secret": PUSH_SECRET,
            }),
        ),
    ];
    for (kind, id, body) in &entries {
        let a = api
            .json(Method::POST, &format!("{t}/{kind}"), None, body.clone())
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{kind}: {}", a.text);
        assert_eq!(a.etag.as_deref(), Some("\"1\""), "{kind}");
        let read = api.get(&format!("{t}/{kind}/{id}")).await;
        assert_eq!(read.status, StatusCode::OK, "{kind}: {}", read.text);
        assert_eq!(read.etag.as_deref(), Some("\"1\""));
        assert_eq!(read.body["meta"]["origin"], "store");
        assert_eq!(read.body["entry"]["name"], body["name"]);
    }
    let cam = api.get(&format!("{t}/cameras/heping-east")).await;
    assert_eq!(cam.body["meta"]["secret_set"], true);
    assert_eq!(cam.body["entry"]["username"], "admin");
    assert!(cam.body["entry"].get("password").is_none());
    let gate = api.get(&format!("{t}/gates/heping-door")).await;
    assert_eq!(gate.body["meta"]["secret_set"], true);
    assert_eq!(gate.body["entry"]["transport"], Value::Null);

    // The whole topology, the config file's entries marked as such.
    let all = api.get(t).await;
    assert_eq!(all.status, StatusCode::OK);
    let ids = |kind: &str| -> Vec<(String, String)> {
        all.body[kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let id = i["entry"]["id"].as_str().unwrap().to_owned();
                let origin = i["meta"]["origin"].as_str().unwrap().to_owned();
                (id, origin)
            })
            .collect()
    };
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        ids("stations"),
        [pair("chengguan", "config"), pair("xincheng", "store")]
    );
    assert_eq!(
        ids("communities"),
        [pair("heping", "store"), pair("xingfu", "config")]
    );
    assert_eq!(ids("cameras"), [pair("heping-east", "store")]);

    // An edit: If-Match required (428), stale refused (409), then revision 2; a password left
    // out stays.
    let one = format!("{t}/cameras/heping-east");
    let mut edit = entries[3].2.clone();
    edit.as_object_mut().unwrap().remove("password");
    edit.as_object_mut().unwrap().remove("id");
    edit["name"] = json!("和平东门 (新)");
    edit["main"] = json!({"kind": "rtsp", "url": "rtsp://127.0.0.1:9/main"});
    let a = api.json(Method::PUT, &one, None, edit.clone()).await;
    assert_eq!(a.status, StatusCode::PRECONDITION_REQUIRED, "{}", a.text);
    let a = api
        .json(Method::PUT, &one, Some("\"5\""), edit.clone())
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert!(a.text.contains("revision 1"), "{}", a.text);
    let a = api
        .json(Method::PUT, &one, Some("\"1\""), edit.clone())
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.etag.as_deref(), Some("\"2\""));
    assert_eq!(a.body["entry"]["name"], "和平东门 (新)");
    assert_eq!(a.body["meta"]["secret_set"], true, "the password stays");
    // A bad edit names the field and the entry, and changes nothing.
    let mut bad = edit.clone();
    bad["sub"] = json!({"kind": "rtsp", "url": "rtsp://admin:pw@127.0.0.1/sub"});
    let a = api.json(Method::PUT, &one, Some("\"2\""), bad).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(a.body["error"]["field"], "sub.url");
    assert_eq!(
        a.body["error"]["entry"],
        json!({"kind": "camera", "id": "heping-east"})
    );
    assert_eq!(
        api.get(&one).await.etag.as_deref(),
        Some("\"2\""),
        "unchanged"
    );
    // A grid of another community is refused by the store, naming the field.
    let mut moved = edit.clone();
    moved["community"] = json!("xingfu");
    let a = api.json(Method::PUT, &one, Some("\"2\""), moved).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert!(
        ["grid", "camera"].contains(&a.body["error"]["field"].as_str().unwrap_or("")),
        "{}",
        a.text
    );

    // Disable and enable.
    let a = api
        .send(Method::POST, &format!("{one}/disable"), Some("\"2\""), None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["entry"]["disabled"], true);
    assert_eq!(a.etag.as_deref(), Some("\"3\""));
    let a = api
        .send(Method::POST, &format!("{one}/enable"), Some("\"3\""), None)
        .await;
    assert_eq!(a.body["entry"]["disabled"], false, "{}", a.text);

    // Entries from the config file are read-only.
    let cg = format!("{t}/stations/chengguan");
    let a = api
        .json(Method::PUT, &cg, Some("\"1\""), json!({"name": "城关所"}))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    assert!(a.text.contains("config file"), "{}", a.text);
    let a = api.send(Method::DELETE, &cg, Some("\"1\""), None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);

    // Deleting what is still used is 409 naming the user; from the bottom up it goes.
    let a = api
        .send(
            Method::DELETE,
            &format!("{t}/communities/heping"),
            Some("\"1\""),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert!(a.text.contains("heping-1"), "{}", a.text);
    for (path, rev) in [
        (format!("{t}/gates/heping-door"), "\"1\""),
        (one.clone(), "\"4\""),
        (format!("{t}/grids/heping-1"), "\"1\""),
        (format!("{t}/communities/heping"), "\"1\""),
        (format!("{t}/stations/xincheng"), "\"1\""),
    ] {
        let a = api.send(Method::DELETE, &path, None, None).await;
        assert_eq!(a.status, StatusCode::PRECONDITION_REQUIRED, "{path}");
        let a = api.send(Method::DELETE, &path, Some(rev), None).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{path}: {}", a.text);
        assert_eq!(api.get(&path).await.status, StatusCode::NOT_FOUND, "{path}");
    }

    // Every change is audited with before and after, and no secret anywhere.
    api.assert_no_secret_answered();
    let audit = hub
        .store
        .list_audit(&AuditFilter {
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .rev()
        .filter(|a| a.actor == "api-token")
        .map(|a| (a.action.as_str(), a.target.as_deref().unwrap_or("")))
        .collect();
    for want in [
        ("camera.create", "heping-east"),
        ("camera.update", "heping-east"),
        ("camera.disable", "heping-east"),
        ("camera.enable", "heping-east"),
        ("camera.delete", "heping-east"),
        ("gate.create", "heping-door"),
        ("station.delete", "xincheng"),
    ] {
        assert!(actions.contains(&want), "{want:?} not in {actions:?}");
    }
    let update = audit.iter().find(|a| a.action == "camera.update").unwrap();
    assert_eq!(update.detail["before"]["name"], "和平东门");
    assert_eq!(update.detail["after"]["name"], "和平东门 (新)");
    assert_eq!(update.peer.as_deref(), Some("127.0.0.1"));
    for row in &audit {
        let text = format!("{row:?}");
        assert!(
            !text.contains(CAMERA_PASSWORD) && !text.contains(PUSH_SECRET),
            "{text}"
        );
    }
    drop(hub);
}

/// A port nothing listens on now (for the embedded broker).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The audit rows of one entry (`camera.update`...), oldest first.
async fn audit_of(hub: &Hub, target: &str) -> Vec<xl_store::AuditRow> {
    let mut rows = hub
        .store
        .list_audit(&AuditFilter {
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    rows.retain(|a| a.target.as_deref() == Some(target));
    rows.reverse();
    rows
}

/// Before a topology write is saved, the gates that would run after it go through the gate
/// ingest's checks (`Gates::check_gates`): a gate whose firmware the hub does not know is
/// refused, and a gate that an `[[mqtt.accounts]]` entry names cannot be stopped by disabling
/// its community or its station. Both were saved before, and the runtime then kept the previous
/// gates with a warning: the store said one thing and the running gates another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topology_write_whose_gates_the_gate_ingest_refuses_is_not_saved() {
    let port = free_port();
    let hub = hub_with(&format!(
        "[mqtt]\nembedded = true\nlisten = \"127.0.0.1:{port}\"\n\
         [[mqtt.subscriptions]]\nfilter = \"gates/+/event\"\nfirmware = \"hikvision-isapi\"\n\
         gate_from = {{ topic_segment = 1 }}\n\
         [[mqtt.accounts]]\nusername = \"lobby-gate\"\npassword = \"lobby-gate-test-password\"\n\
         gates = [\"lobby\"]\n\
         [[gates]]\nid = \"lobby\"\ncommunity = \"xingfu\"\nfirmware = \"hikvision-isapi\"\n"
    ))
    .await;
    let api = Api::new(&hub);
    let t = "/api/v1/topology";
    let before = hub.store.topology().await.unwrap();

    // A firmware the hub has no adapter for: 409 naming the gate and why, nothing stored.
    let side_door = |firmware: &str| {
        let gate = json!({"id": "side-door", "name": "侧门", "community": "xingfu"});
        let mut gate = gate;
        gate["firmware"] = json!(firmware);
        gate
    };
    let a = api
        .json(
            Method::POST,
            &format!("{t}/gates"),
            None,
            side_door("hikvision-isap"),
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert_eq!(
        a.body["error"]["entry"],
        json!({"kind": "gate", "id": "side-door"})
    );
    assert!(a.text.contains("unknown firmware"), "{}", a.text);
    assert_eq!(hub.store.topology().await.unwrap(), before);

    // The config file names lobby's community, so it is a config entry and the API cannot
    // disable it (403). Made a store entry here, as one made through the API would be, with
    // its station: disabling either would stop lobby, which the account names.
    for sql in [
        "UPDATE communities SET origin = 'store' WHERE id = 'xingfu'",
        "UPDATE stations SET origin = 'store' WHERE id = 'chengguan'",
    ] {
        sqlx::query(sql).execute(hub.store.pool()).await.unwrap();
    }
    let before = hub.store.topology().await.unwrap();
    for (path, kind, id) in [
        ("communities/xingfu", "community", "xingfu"),
        ("stations/chengguan", "station", "chengguan"),
    ] {
        let a = api
            .send(
                Method::POST,
                &format!("{t}/{path}/disable"),
                Some("\"1\""),
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::CONFLICT, "{path}: {}", a.text);
        assert_eq!(a.body["error"]["entry"], json!({"kind": kind, "id": id}));
        let message = a.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("gate \"lobby\" would stop running")
                && message.contains("mqtt.accounts[0] (username \"lobby-gate\")"),
            "{path}: {message}"
        );
    }
    assert_eq!(hub.store.topology().await.unwrap(), before, "nothing saved");
    // Nor audited: the config file's own entries are all there is.
    for target in ["xingfu", "chengguan", "side-door"] {
        let actions: Vec<String> = audit_of(&hub, target)
            .await
            .into_iter()
            .filter(|a| a.actor != "config")
            .map(|a| a.action)
            .collect();
        assert!(actions.is_empty(), "{target}: {actions:?}");
    }

    // Writes that leave the running gates as they are, or that the ingest takes, go through,
    // and the new gate runs.
    let a = api
        .json(
            Method::PUT,
            &format!("{t}/communities/xingfu"),
            Some("\"1\""),
            json!({"name": "幸福小区 (东区)", "station": "chengguan"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let a = api
        .json(
            Method::POST,
            &format!("{t}/gates"),
            None,
            side_door("hikvision-isapi"),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let gates = api.get("/api/v1/gates").await;
        if gates.text.contains("\"side-door\"") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "side-door never ran: {}",
            gates.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A station that users are scoped to cannot be deleted (409 naming them: they would see
/// nothing of it), as a community with cameras cannot; disabling it is fine, and once no user
/// names it, it goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_station_users_are_scoped_to_is_refused_naming_them() {
    let hub = hub().await;
    let api = Api::new(&hub);
    let station = "/api/v1/topology/stations/xincheng";
    let a = api
        .json(
            Method::POST,
            "/api/v1/topology/stations",
            None,
            json!({"id": "xincheng", "name": "新城派出所"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    // Users may name only stations of the running topology.
    let mut applied = hub.topology.applied.clone();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        applied.wait_for(|t| t.stations.keys().any(|s| s.as_str() == "xincheng")),
    )
    .await
    .expect("the station never ran")
    .unwrap();
    for (username, stations) in [
        ("duty-a", json!(["xincheng"])),
        ("police-b", json!(["chengguan", "xincheng"])),
        ("duty-c", json!(["chengguan"])),
    ] {
        let role = if username.starts_with("duty") {
            "duty"
        } else {
            "police"
        };
        let a = api
            .json(
                Method::POST,
                "/api/v1/users",
                None,
                json!({"username": username, "password": "scoped-user-password-1",
                       "role": role, "stations": stations}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{username}: {}", a.text);
    }

    let a = api.send(Method::DELETE, station, Some("\"1\""), None).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert_eq!(
        a.body["error"]["entry"],
        json!({"kind": "station", "id": "xincheng"})
    );
    let message = a.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"duty-a\"") && message.contains("\"police-b\""),
        "{message}"
    );
    assert!(!message.contains("duty-c"), "{message}");
    let a = api.get(station).await;
    assert_eq!(a.status, StatusCode::OK, "still there: {}", a.text);
    assert_eq!(a.etag.as_deref(), Some("\"1\""));

    // Disabling is fine: its users then see nothing of it.
    let a = api
        .send(
            Method::POST,
            &format!("{station}/disable"),
            Some("\"1\""),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    for (username, stations) in [("duty-a", json!([])), ("police-b", json!(["chengguan"]))] {
        let a = api
            .json(
                Method::PATCH,
                &format!("/api/v1/users/{username}"),
                None,
                json!({ "stations": stations }),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{username}: {}", a.text);
    }
    let a = api.send(Method::DELETE, station, Some("\"2\""), None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
}

/// A replacement (`PUT`) keeps a stored secret it leaves out, removes it on `null` and
/// replaces it with a string, for a camera's password and a gate's push secret;
/// `meta.secret_set` follows, and no answer or audit row carries a secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_kept_when_left_out_removed_by_null_and_replaced_by_a_string() {
    use xl_core::topology::{EntryId, Kind};
    let hub = hub().await;
    let api = Api::new(&hub);
    const NEW_PASSWORD: &str = "cam-pass-Second-77";
    const NEW_PUSH_SECRET: &str = "push-secret-Second-Kq93xx";
    let cases = [
        (
            Kind::Camera,
            "cameras",
            "xf-east",
            "password",
            json!({
                "id": "xf-east", "name": "东门", "community": "xingfu",
                "sub": {"kind": "rtsp", "url": "rtsp://127.0.0.1:9/sub"},
                "username": "admin", "password": CAMERA_PASSWORD,
            }),
            CAMERA_PASSWORD,
            NEW_PASSWORD,
        ),
        (
            Kind::Gate,
            "gates",
            "xf-door",
            "push_secret",
            json!({
                "id": "xf-door", "name": "东门门禁", "community": "xingfu",
                "firmware": "hikvision-isapi", "push_secret": PUSH_SECRET,
                "push_allow_from": ["127.0.0.1"],
            }),
            PUSH_SECRET,
            NEW_PUSH_SECRET,
        ),
    ];
    for (kind, plural, id, field, body, first, second) in cases {
        let path = format!("/api/v1/topology/{plural}/{id}");
        let a = api
            .json(
                Method::POST,
                &format!("/api/v1/topology/{plural}"),
                None,
                body,
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{id}: {}", a.text);
        assert_eq!(a.body["meta"]["secret_set"], true);
        let stored = || async {
            let t = hub.store.topology_for_runtime().await.unwrap().topology;
            let entry = t.get(&EntryId::parse(kind, id).unwrap()).unwrap();
            entry.secret().map(|s| s.expose().to_owned())
        };
        // The entry as read has no secret field; each edit sends it back with one change.
        let mut entry = api.get(&path).await.body["entry"].clone();
        assert!(entry.get(field).is_none(), "{entry}");
        for (revision, secret, set, want) in [
            ("\"1\"", None, true, Some(first)),
            ("\"2\"", Some(Value::Null), false, None),
            ("\"3\"", Some(json!(second)), true, Some(second)),
        ] {
            entry["name"] = json!(format!("{id} r{revision}"));
            let mut sent = entry.clone();
            if let Some(secret) = secret {
                sent[field] = secret;
            }
            let a = api.json(Method::PUT, &path, Some(revision), sent).await;
            assert_eq!(a.status, StatusCode::OK, "{id} {revision}: {}", a.text);
            assert_eq!(a.body["meta"]["secret_set"], set, "{id} {revision}");
            let read = api.get(&path).await;
            assert_eq!(read.body["meta"]["secret_set"], set, "{id} {revision}");
            assert_eq!(stored().await.as_deref(), want, "{id} {revision}");
        }
        // The audit says what happened to the secret, never what it is.
        let rows = audit_of(&hub, id).await;
        let secrets: Vec<String> = rows
            .iter()
            .map(|r| format!("{} {}", r.action, r.detail["secret"]))
            .collect();
        let want: Vec<String> = [
            ("create", "set"),
            ("update", "unchanged"),
            ("update", "removed"),
            ("update", "set"),
        ]
        .iter()
        .map(|(what, secret)| format!("{kind}.{what} \"{secret}\""))
        .collect();
        assert_eq!(secrets, want, "{id}");
        for row in &rows {
            let text = format!("{row:?}");
            assert!(!text.contains(first) && !text.contains(second), "{text}");
        }
    }
    api.assert_no_secret_answered();
    for text in api.seen.lock().unwrap().iter() {
        assert!(
            !text.contains(NEW_PASSWORD) && !text.contains(NEW_PUSH_SECRET),
            "{text}"
        );
    }
}

const HEADER: &str = "id,name,community,grid,network,main_url,sub_url,username,password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_import_stores_all_rows_or_none() {
    let hub = hub().await;
    let api = Api::new(&hub);
    let good = format!(
        "{HEADER}\r\n\
         imp-1,\"东门, 入口\",xingfu,,community,rtsp://127.0.0.1:9/1/main,rtsp://127.0.0.1:9/1/sub,admin,{CAMERA_PASSWORD}\r\n\
         imp-2,西门,xingfu,,skynet,,rtsp://127.0.0.1:9/2/sub,,\r\n\
         imp-3,南门,xingfu,,,rtsp://127.0.0.1:9/3/main,,,\r\n"
    );
    let a = api.post_csv(good).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(
        a.body,
        json!({"created": 3, "ids": ["imp-1", "imp-2", "imp-3"]})
    );
    let c1 = api.get("/api/v1/topology/cameras/imp-1").await;
    assert_eq!(c1.body["entry"]["name"], "东门, 入口");
    assert_eq!(c1.body["entry"]["sub"]["url"], "rtsp://127.0.0.1:9/1/sub");
    assert_eq!(c1.body["meta"]["secret_set"], true);
    let c2 = api.get("/api/v1/topology/cameras/imp-2").await;
    assert_eq!(c2.body["entry"]["network"], "skynet");
    assert_eq!(c2.body["meta"]["secret_set"], false);

    // One bad row (a URL that is not rtsp://): 400 naming row 2 and its column; nothing of
    // the file is stored, the good rows included.
    let bad = format!(
        "{HEADER}\n\
         imp-4,东门,xingfu,,,,rtsp://127.0.0.1:9/4/sub,,\n\
         imp-5,西门,xingfu,,,http://127.0.0.1/5/main,,,\n\
         imp-6,南门,xingfu,,,,rtsp://127.0.0.1:9/6/sub,,\n"
    );
    let a = api.post_csv(bad).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(a.body["rows"].as_array().unwrap().len(), 1, "{}", a.text);
    assert_eq!(a.body["rows"][0]["row"], 2);
    assert_eq!(a.body["rows"][0]["field"], "main_url");
    for id in ["imp-4", "imp-5", "imp-6"] {
        let a = api.get(&format!("/api/v1/topology/cameras/{id}")).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{id}");
    }

    // What only the store knows (a community that does not exist, an id already taken),
    // named by row too, and again nothing stored.
    let bad = format!(
        "{HEADER}\n\
         imp-7,东门,xingfu,,,,rtsp://127.0.0.1:9/7/sub,,\n\
         imp-8,西门,nowhere,,,,rtsp://127.0.0.1:9/8/sub,,\n\
         imp-1,南门,xingfu,,,,rtsp://127.0.0.1:9/9/sub,,\n"
    );
    let a = api.post_csv(bad).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    let rows: Vec<(u64, &str)> = a.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["row"].as_u64().unwrap(), r["field"].as_str().unwrap()))
        .collect();
    assert_eq!(rows, [(2, "community"), (3, "id")], "{}", a.text);
    assert_eq!(
        api.get("/api/v1/topology/cameras/imp-7").await.status,
        StatusCode::NOT_FOUND
    );
    let cameras = api.get("/api/v1/topology/cameras").await;
    assert_eq!(cameras.body.as_array().unwrap().len(), 3);
    api.assert_no_secret_answered();
}

/// Standard base64 with padding (the hub's test dependencies have no base64 crate).
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The size of the JPEG in a probe's `data:` URL, decoded.
fn snapshot_size(answer: &Value) -> (u32, u32) {
    let url = answer["snapshot"].as_str().unwrap();
    let b64 = url.strip_prefix("data:image/jpeg;base64,").unwrap();
    let jpeg = base64_decode(b64);
    let img = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).unwrap();
    // A picture of the square, not a flat grey of a decoder that gave nothing.
    let luma = img.to_luma8();
    let (lo, hi) = luma
        .pixels()
        .fold((255u8, 0u8), |(lo, hi), p| (lo.min(p[0]), hi.max(p[0])));
    assert!(hi - lo > 100, "a flat picture: {lo}..{hi}");
    (img.width(), img.height())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_reports_the_real_rtsp_servers_streams_and_why_one_fails() {
    let server = RtspServer::start(&[
        ("h264", test_clip(H264_360P).unwrap()),
        ("h265", test_clip(H265_720P).unwrap()),
    ])
    .unwrap();
    let hub = hub().await;
    let api = Api::new(&hub);
    let probe = |url: String| {
        let api = &api;
        async move {
            api.json(
                Method::POST,
                "/api/v1/cameras/probe",
                None,
                json!({"url": url, "username": "admin", "password": CAMERA_PASSWORD}),
            )
            .await
        }
    };

    let gop_secs = f64::from(CLIP_GOP_FRAMES) / f64::from(CLIP_FPS);
    for (mount, codec, size) in [("h264", "h264", (640, 360)), ("h265", "h265", (1280, 720))] {
        let a = probe(server.url(mount)).await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "{mount}: {}\n{}",
            a.text,
            server.log_tail()
        );
        assert_eq!(a.body["codec"], codec, "{}", a.text);
        assert_eq!(
            (a.body["width"].as_u64(), a.body["height"].as_u64()),
            (Some(u64::from(size.0)), Some(u64::from(size.1)))
        );
        let fps = a.body["fps"].as_f64().unwrap();
        assert!((fps - f64::from(CLIP_FPS)).abs() < 0.5, "{fps}");
        assert_eq!(a.body["gop_frames"], CLIP_GOP_FRAMES, "{}", a.text);
        let secs = a.body["gop_secs"].as_f64().unwrap();
        assert!((secs - gop_secs).abs() < 0.05, "{secs}");
        assert_eq!(snapshot_size(&a.body), size, "{mount}");
    }

    // A path the server does not have, and a port nothing listens on: 502 saying why.
    let a = probe(server.url("nope")).await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.text);
    assert!(a.text.contains("404"), "{}", a.text);
    let a = probe("rtsp://127.0.0.1:9/x".to_owned()).await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "upstream");
    assert!(
        a.body["error"]["message"].as_str().unwrap().len() > 10,
        "{}",
        a.text
    );
    // Credentials in the URL are refused before anything is dialled.
    let a = probe(format!("rtsp://admin:{CAMERA_PASSWORD}@127.0.0.1:9/x")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(a.body["error"]["field"], "url");
    api.assert_no_secret_answered();

    // Probes are audited by URL, never with the password.
    let audit = hub
        .store
        .list_audit(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(
        audit.iter().any(|a| a.action == "camera.probe"
            && a.target.as_deref() == Some(server.url("h264").as_str()))
    );
    for row in &audit {
        assert!(!format!("{row:?}").contains(CAMERA_PASSWORD), "{row:?}");
    }
}
