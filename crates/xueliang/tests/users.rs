//! Dashboard users from the command line (`xueliang user add`, password on stdin) and from
//! `[admin]` in the config, logging in through the real listening API.

use std::io::Write;
use std::process::{Command, Stdio};

use xueliang::config::Config;
use xueliang::hub::Hub;

mod common;
use common::temp_dir;

async fn login(base: &str, user: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({ "username": user, "password": password }))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_added_by_the_cli_and_the_config_admin_can_log_in() {
    let data = temp_dir("users");
    let hash = xl_api::hash_password("admin-password-1").unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[detect]\nenabled = false\n\
         [admin]\nusername = \"root\"\npassword_hash = \"{hash}\"\n",
        data.display()
    );
    let config_path = data.join("hub.toml");
    std::fs::write(&config_path, &text).unwrap();

    let add = |args: &[&str], password: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xueliang"))
            .args(["user", "add", "--config"])
            .arg(&config_path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let ok = add(
        &["--role", "property", "--communities", "xingfu", "wang"],
        "property-password",
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let short = add(&["--role", "duty", "li"], "short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10"));
    let no_community = add(&["--role", "property", "zhao"], "property-password");
    assert!(!no_community.status.success());
    assert!(String::from_utf8_lossy(&no_community.stderr).contains("--communities"));
    let reserved = add(&["--role", "admin", "system"], "admin-password-2");
    assert!(!reserved.status.success());
    assert!(String::from_utf8_lossy(&reserved.stderr).contains("reserved name"));

    let hub = Hub::start(Config::parse(&text).unwrap()).await.unwrap();
    let base = format!("http://{}", hub.addr);
    let resp = login(&base, "wang", "property-password").await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["role"], "property");
    assert_eq!(body["user"]["communities"], serde_json::json!(["xingfu"]));
    let resp = login(&base, "root", "admin-password-1").await;
    assert_eq!(resp.status(), 200);
    let token = resp.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The admin sees the audit log, which has both logins; the password is nowhere in it.
    let audit: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/audit"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = audit.to_string();
    assert_eq!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "login")
            .count(),
        2,
        "{text}"
    );
    assert!(!text.contains("property-password") && !text.contains("admin-password-1"));
    // So are the two accounts made outside the API.
    let added: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "user.add")
        .map(|e| {
            (
                e["target"].as_str().unwrap(),
                e["detail"]["via"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(added.contains(&("wang", "xueliang user add")), "{text}");
    assert!(added.contains(&("root", "[admin] in the config")), "{text}");
    assert_eq!(added.len(), 2, "{text}");
    assert_eq!(login(&base, "li", "short").await.status(), 401);
    hub.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// `GET /api/v1/audit?before=` on a log longer than 10,000 entries: the hub once looked for
/// entries before the time among the newest 10,000 only, so older ones could never be paged
/// to. Now `before` (a time) and `before_seq` (the keyset cursor) both reach the first entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_pages_past_its_newest_ten_thousand_entries() {
    use sqlx::Connection;
    const N: i64 = 12_000;
    const T0_MS: i64 = 1_735_689_600_000;
    let data = temp_dir("audit-pages");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\napi_token = \"audit-pages-token-0123456789\"\n\
         [detect]\nenabled = false\n",
        data.display()
    );
    let config = Config::parse(&text).unwrap();
    // The store's tables, then N entries in one statement (one per second from T0).
    xueliang::hub::open_store(&config)
        .await
        .unwrap()
        .close()
        .await;
    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}",
        std::fs::canonicalize(&data)
            .unwrap()
            .join("xueliang.db")
            .display()
    );
    let mut c = sqlx::AnyConnection::connect(&url).await.unwrap();
    let sql = format!(
        "INSERT INTO audit (seq, at, actor, action, target, detail, peer) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {N}) \
         SELECT i, {T0_MS} + i * 1000, 'admin', 'login', NULL, 'null', '10.0.0.5' FROM n"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();

    let hub = Hub::start(config).await.unwrap();
    let base = format!("http://{}", hub.addr);
    let get = |query: String| {
        let url = format!("{base}/api/v1/audit?{query}");
        async move {
            let resp = reqwest::Client::new()
                .get(url)
                .bearer_auth("audit-pages-token-0123456789")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let page: Vec<serde_json::Value> = resp.json().await.unwrap();
            page.iter()
                .map(|e| e["seq"].as_i64().unwrap())
                .collect::<Vec<i64>>()
        }
    };
    // Entry 100 is at T0 + 100 s: before T0 + 101 s come 100, 99, 98.
    let before = jiff::Timestamp::from_millisecond(T0_MS + 101_000).unwrap();
    assert_eq!(
        get(format!("before={before}&limit=3")).await,
        vec![100, 99, 98]
    );
    assert_eq!(get("before_seq=3".to_owned()).await, vec![2, 1]);
    // Paging backwards by seq from the newest reaches the first entry.
    let mut cursor = String::new();
    let mut seen = 0;
    let mut last = i64::MAX;
    loop {
        let page = get(format!("limit=1000{cursor}")).await;
        let Some(&min) = page.last() else { break };
        assert!(page.windows(2).all(|w| w[0] > w[1]) && page[0] < last);
        seen += page.len();
        last = min;
        cursor = format!("&before_seq={min}");
    }
    assert_eq!(last, 1);
    // Every entry of the log: the N inserted ones, and what the hub audited at start.
    assert!(seen >= N as usize, "{seen}");
    hub.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// Station scope through the real hub: the topology from the config (two stations, a
/// community each), a police user limited to one station made through the users API, who then
/// logs in and lists cameras, gates and alerts of that station's community only; an unknown
/// station is refused naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_police_user_limited_to_a_station_sees_only_its_communities() {
    const TOKEN: &str = "station-scope-token-0123456789";
    let data = temp_dir("station-scope");
    let n = rand::random::<u32>();
    let (s1, s2) = (format!("s1-{n:x}"), format!("s2-{n:x}"));
    let (c1, c2) = (format!("c1-{n:x}"), format!("c2-{n:x}"));
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\napi_token = \"{TOKEN}\"\n\
         [detect]\nenabled = false\n\
         [[stations]]\nid = \"{s1}\"\nname = \"城关派出所\"\n\
         [[stations]]\nid = \"{s2}\"\nname = \"新城派出所\"\n\
         [[communities]]\nid = \"{c1}\"\nname = \"幸福小区\"\nstation = \"{s1}\"\n\
         [[communities]]\nid = \"{c2}\"\nname = \"和平小区\"\nstation = \"{s2}\"\n",
        data.display()
    );
    for c in [&c1, &c2] {
        // Nothing listens on port 9: the cameras stay offline and cost nothing. The gates take
        // HTTP pushes from this host, to raise one alert in each community.
        text.push_str(&format!(
            "[[cameras]]\nid = \"{c}-cam\"\ncommunity = \"{c}\"\nnetwork = \"skynet\"\n\
             url = \"rtsp://127.0.0.1:9/{c}\"\n\
             [[gates]]\nid = \"{c}-door\"\ncommunity = \"{c}\"\nfirmware = \"hikvision-isapi\"\n\
             push_allow_from = [\"127.0.0.1\"]\n"
        ));
    }
    let hub = Hub::start(Config::parse(&text).unwrap()).await.unwrap();
    let base = format!("http://{}", hub.addr);
    let http = reqwest::Client::new();
    for (serial, c) in [(1, &c1), (2, &c2)] {
        let resp = http
            .post(format!("{base}/gates/push/hikvision/{c}-door"))
            .header("content-type", "application/json")
            .body(common::forced_open(serial))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{c}");
    }
    let get = |path: &str, token: &str| {
        let req = http.get(format!("{base}{path}")).bearer_auth(token);
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Vec<serde_json::Value>>().await.unwrap()
        }
    };
    // The communities the items are of (cameras going offline may raise alerts too).
    let communities = |items: &[serde_json::Value]| {
        let mut c: Vec<String> = items
            .iter()
            .map(|i| i["community"].as_str().unwrap().to_owned())
            .collect();
        c.sort();
        c.dedup();
        c
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while communities(&get("/api/v1/alerts", TOKEN).await) != [c1.clone(), c2.clone()] {
        assert!(
            std::time::Instant::now() < deadline,
            "an alert in each community"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let add = |body: serde_json::Value| {
        http.post(format!("{base}/api/v1/users"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let password = "police-password-2026";
    let resp = add(serde_json::json!({
        "username": "police-s1", "password": password, "role": "police", "stations": [s1],
    }))
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
    let created: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(created["stations"], serde_json::json!([s1]));
    let resp = add(serde_json::json!({
        "username": "police-x", "password": password, "role": "police", "stations": ["no-such-station"],
    }))
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    let refusal: serde_json::Value = resp.json().await.unwrap();
    let message = refusal["error"]["message"].as_str().unwrap();
    assert!(message.contains("`stations`"), "{message}");

    let resp = login(&base, "police-s1", password).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["stations"], serde_json::json!([s1]));
    let token = body["token"].as_str().unwrap().to_owned();
    for path in ["/api/v1/cameras", "/api/v1/gates", "/api/v1/alerts"] {
        assert_eq!(
            communities(&get(path, &token).await),
            std::slice::from_ref(&c1),
            "{path}"
        );
        // The admin sees both.
        assert_eq!(
            communities(&get(path, TOKEN).await),
            [c1.clone(), c2.clone()],
            "{path}"
        );
    }
    let other = http
        .get(format!("{base}/api/v1/cameras/{c2}-cam"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    hub.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}
