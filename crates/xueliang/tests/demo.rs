//! `xueliang demo` as a user runs it (config/demo.toml, with its ports and data directory moved
//! so that it runs beside anything else): it prints the console URL and the accounts, the duty
//! account logs in, the gate simulator's Hikvision and Dahua payloads reach both gates through
//! the embedded broker, and people on the square's lawn raise person.intrusion. And the
//! built-in demo, run from a directory that is not the repository.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{free_port, temp_dir, vtest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_gates_and_alerts_to_its_duty_account() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let demo = std::fs::read_to_string(root.join("config/demo.toml")).unwrap();
    let data = temp_dir("demo");
    let (http, mqtt) = (free_port(), free_port());
    let text = demo
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{http}"))
        .replace("127.0.0.1:18830", &format!("127.0.0.1:{mqtt}"))
        .replace(
            "\"../data\"",
            &format!("\"{}\"", data.join("data").display()),
        )
        .replace("\"../.cache/media/vtest.avi\"", &format!("\"{}\"", vtest()));
    assert_ne!(text, demo);
    let config = data.join("demo.toml");
    std::fs::write(&config, text).unwrap();

    let log = std::fs::File::create(data.join("demo.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xueliang"))
        .args(["demo", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    // What the user sees first: the URL and the accounts.
    let printed = banner(&mut child, &data.join("demo.log"));
    let base = format!("http://127.0.0.1:{http}");
    assert!(printed.contains(&format!("{base}/")), "{printed}");
    assert!(
        printed.contains("duty") && printed.contains("xueliang-duty"),
        "{printed}"
    );

    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "duty", "password": "xueliang-duty"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().expect("duty logs in").to_owned();
    let get = |path: &str| {
        let req = client.get(format!("{base}{path}")).bearer_auth(&token);
        async move {
            req.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };

    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut gates_ok, mut intrusion) = (false, false);
    while !(gates_ok && intrusion) {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "after 90 s: gates {:#}, intrusion {intrusion}\n{}",
                get("/api/v1/gates").await,
                std::fs::read_to_string(data.join("demo.log")).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let gates = get("/api/v1/gates").await;
        gates_ok = gates.as_array().is_some_and(|g| {
            g.len() == 2 && g.iter().all(|g| g["events"].as_u64().unwrap_or(0) >= 1)
        });
        intrusion = get("/api/v1/alerts?kind=person.intrusion")
            .await
            .as_array()
            .is_some_and(|a| !a.is_empty());
    }
    // The simulator logged in with the gates' accounts (both gates have events above); a
    // client without an account is refused, and a gate's account may read nothing of the
    // hub's, while the property account reads its community's alerts.
    assert_eq!(mqtt_connect(mqtt, None).await.err(), Some(5));
    let hik = ("demo-hikvision-bridge", "demo-hikvision-bridge-password");
    assert_eq!(
        mqtt_subscribe(mqtt, hik, &["xueliang/#", "#"]).await,
        [false, false]
    );
    let property = ("demo-property", "demo-property-password");
    assert_eq!(
        mqtt_subscribe(mqtt, property, &["xueliang/alerts/xingfu/#", "xueliang/#"]).await,
        [true, false]
    );
    // SIGTERM: the demo stops cleanly.
    stop(&mut child);
    let _ = std::fs::remove_dir_all(&data);
}

/// The built-in demo from anywhere: started in an empty directory that is not the repository,
/// with no --config, only the asset cache (XUELIANG_CACHE) and a --data-dir, it serves the
/// console, its duty account logs in, its cameras play the cached video, it writes nothing
/// where it was started, and SIGTERM stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builtin_demo_runs_from_any_directory() {
    let tmp = temp_dir("demo-anywhere");
    let (cwd, home, data) = (tmp.join("cwd"), tmp.join("home"), tmp.join("data"));
    for d in [&cwd, &home] {
        std::fs::create_dir_all(d).unwrap();
    }
    // The cache the setup filled; fails here, not in the demo, when it lacks the video.
    vtest();
    let (http, mqtt) = (free_port(), free_port());
    let log_path = tmp.join("demo.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_xueliang"))
        .args(["demo", "--listen"])
        .arg(format!("127.0.0.1:{http}"))
        .arg("--mqtt-listen")
        .arg(format!("127.0.0.1:{mqtt}"))
        .arg("--data-dir")
        .arg(&data)
        .current_dir(&cwd)
        // as from an installed binary: the asset cache, and nothing that points into the
        // repository or at the cache's parts
        .env("XUELIANG_CACHE", xl_detect::cache_dir())
        .env("HOME", &home)
        .env_remove("XDG_DATA_HOME")
        .env_remove("XUELIANG_MEDIA")
        .env_remove("XUELIANG_MODELS")
        .env_remove("ORT_DYLIB_PATH")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let printed = banner(&mut child, &log_path);
    let base = format!("http://127.0.0.1:{http}");
    assert!(printed.contains(&format!("{base}/")), "{printed}");
    assert!(
        printed.contains(&data.display().to_string()),
        "the data directory is not shown: {printed}"
    );

    let client = reqwest::Client::new();
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert!(health.status().is_success(), "{}", health.status());
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "duty", "password": "xueliang-duty"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().expect("duty logs in").to_owned();

    // Every camera of the demo plays the cached video.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cameras: serde_json::Value = client
            .get(format!("{base}/api/v1/cameras"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let list = cameras.as_array().expect("a camera list");
        if list.len() == 4
            && list
                .iter()
                .all(|c| c["status"] == "online" && c["last_frame_at"].is_string())
        {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "after 60 s, not every camera online: {cameras:#}\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The data went where it was told, nothing into the directory it was started in.
    assert!(data.join("api-token").is_file());
    assert!(data.join("xueliang.db").is_file());
    let left: Vec<_> = std::fs::read_dir(&cwd).unwrap().collect();
    assert!(
        left.is_empty(),
        "the demo wrote into its directory: {left:?}"
    );

    stop(&mut child);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Reads the demo's banner (up to "Ctrl-C"); panics with its log if it exits first.
fn banner(child: &mut Child, log: &Path) -> String {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let t0 = Instant::now();
    while !printed.contains("Ctrl-C") {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!(
                "demo exited early:\n{printed}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        printed.push_str(&line);
        assert!(t0.elapsed() < Duration::from_secs(60), "{printed}");
    }
    // Keep reading (and dropping) what it prints, so that it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    printed
}

/// SIGTERM: the demo stops cleanly within 20 s.
fn stop(child: &mut Child) {
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "demo ignores SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
}

/// Connects to the demo's broker on `port`; `Err` is a refusal's CONNACK code.
async fn mqtt_connect(
    port: u16,
    login: Option<(&str, &str)>,
) -> Result<(rumqttc::AsyncClient, rumqttc::EventLoop), u8> {
    let who = login.map_or("anonymous", |l| l.0);
    let mut o = rumqttc::MqttOptions::new(format!("demo-test-{who}"), "127.0.0.1", port);
    if let Some((u, p)) = login {
        o.set_credentials(u, p);
    }
    let (c, mut el) = rumqttc::AsyncClient::new(o, 10);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), el.poll())
            .await
            .expect("the demo's broker does not answer")
        {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => return Ok((c, el)),
            Ok(_) => {}
            Err(rumqttc::ConnectionError::ConnectionRefused(code)) => return Err(code as u8),
            Err(e) => panic!("{e}"),
        }
    }
}

/// Which of `filters` the broker grants `login` in one SUBSCRIBE.
async fn mqtt_subscribe(port: u16, login: (&str, &str), filters: &[&str]) -> Vec<bool> {
    let (c, mut el) = mqtt_connect(port, Some(login))
        .await
        .unwrap_or_else(|code| panic!("{} refused: CONNACK {code}", login.0));
    c.subscribe_many(
        filters
            .iter()
            .map(|f| rumqttc::SubscribeFilter::new((*f).to_owned(), rumqttc::QoS::AtLeastOnce)),
    )
    .await
    .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), el.poll())
            .await
            .expect("no SUBACK")
            .unwrap()
        {
            rumqttc::Event::Incoming(rumqttc::Packet::SubAck(a)) => {
                return a
                    .return_codes
                    .iter()
                    .map(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_)))
                    .collect();
            }
            _ => continue,
        }
    }
}
