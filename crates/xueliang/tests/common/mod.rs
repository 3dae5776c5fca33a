//! Shared by the hub's integration tests: the test broker, the sample video, a door-forced
//! payload.

#![allow(dead_code, reason = "each test file uses its own part")]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
use tokio::sync::mpsc;

/// The Mosquitto the tests use: `XUELIANG_TEST_MQTT` (host:port), default 127.0.0.1:1883.
pub fn broker() -> (String, u16) {
    let addr = std::env::var("XUELIANG_TEST_MQTT").unwrap_or_else(|_| "127.0.0.1:1883".into());
    let (host, port) = addr
        .rsplit_once(':')
        .expect("XUELIANG_TEST_MQTT is host:port");
    (
        host.to_owned(),
        port.parse().expect("XUELIANG_TEST_MQTT port"),
    )
}

/// vtest.avi from the fetched media (people walking across a square).
pub fn vtest() -> String {
    let media = std::env::var("XUELIANG_MEDIA")
        .ok()
        .filter(|m| !m.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| xl_detect::cache_dir().join("media"));
    let path = media.join("vtest.avi");
    assert!(
        path.is_file(),
        "{} missing: run scripts/setup",
        path.display()
    );
    path.display().to_string()
}

/// A Hikvision access-controller event (the DS-K1T fixture) turned into "door abnormally
/// open" (major 5, minor 0x1b) with its own serial number and the current time.
pub fn forced_open(serial: u64) -> String {
    let fixture = include_str!(
        "../../../../firmware-adapters/hikvision-isapi/testdata/hikvision_ds-k1t_face-pass_http-push.json"
    );
    let mut v: serde_json::Value = serde_json::from_str(fixture).unwrap();
    let ev = &mut v["AccessControllerEvent"];
    ev["subEventType"] = 0x1b.into();
    ev["serialNo"] = serial.into();
    for k in ["name", "employeeNoString", "currentVerifyMode", "FaceRect"] {
        ev.as_object_mut().unwrap().remove(k);
    }
    v["dateTime"] = jiff::Timestamp::now().to_string().into();
    v.to_string()
}

/// A fresh directory under the system's temp directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xl-{name}-{:x}", rand::random::<u64>()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh PostgreSQL database on the server at `XUELIANG_TEST_DATABASE_URL` (default
/// postgres://postgres@127.0.0.1:5432/test), dropped (WITH FORCE) on drop.
pub struct TestPg {
    /// The new database's URL.
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestPg {
    /// Creates the database; panics with what to do when the server cannot be reached or
    /// refuses CREATE DATABASE.
    pub async fn create() -> TestPg {
        use sqlx::Connection;
        let admin_url =
            std::env::var("XUELIANG_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG.to_owned());
        let shown = xl_store::redact_url(&admin_url);
        let how = "this test needs PostgreSQL: set XUELIANG_TEST_DATABASE_URL to a database on \
                   a server where this user may CREATE DATABASE \
                   (default postgres://postgres@127.0.0.1:5432/test)";
        let mut admin = match tokio::time::timeout(
            std::time::Duration::from_secs(5),
            sqlx::PgConnection::connect(&admin_url),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => panic!("cannot connect to {shown}: {e}. {how}"),
            Err(_) => panic!("connecting to {shown} timed out. {how}"),
        };
        let name = format!("xl_test_{:016x}", rand::random::<u64>());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE on {shown}: {e}. {how}"));
        admin.close().await.ok();
        let mut url = url::Url::parse(&admin_url).expect("XUELIANG_TEST_DATABASE_URL is a URL");
        url.set_path(&name);
        TestPg {
            url: url.to_string(),
            admin_url,
            name,
        }
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        // Best effort, on its own runtime (the test's may be gone); FORCE ends any connection
        // left.
        use sqlx::Connection;
        let admin = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut c = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    sqlx::PgConnection::connect(&admin),
                )
                .await
                .ok()?
                .ok()?;
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .ok()?;
                c.close().await.ok()
            })
        })
        .join();
    }
}

/// The sections every node of a test district shares: `[server]` on `port` with the API
/// token `token`, `data`, and the loopback as a trusted proxy (a district lists its nodes
/// there: forwarded requests carry the client's address); `[store]` at `database_url`;
/// `[cluster]` on `nats` as `node`, advertising its URL; quick RTSP retries; no detection.
/// A test appends its own sections (cameras, recording, MQTT, rules).
pub fn district_node_toml(
    node: &str,
    port: u16,
    token: &str,
    data: &std::path::Path,
    database_url: &str,
    nats: &str,
) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
api_token = "{token}"
data_dir = "{data}"
trusted_proxies = ["127.0.0.1"]

[log]
filter = "info"

[store]
database_url = "{database_url}"

[cluster]
nats = ["{nats}"]
node = "{node}"
advertise = "http://127.0.0.1:{port}"

[rtsp]
request_timeout_secs = 3
frame_timeout_secs = 3
backoff_initial_secs = 0.2
backoff_max_secs = 1.0

[detect]
enabled = false
"#,
        data = data.display(),
    )
}

/// The length of the video in a file as ffprobe reads it (its end less its start: a segment
/// that continues its session's timeline starts where the one before ended), failing on
/// anything ffprobe complains about.
pub fn ffprobe_duration(path: &std::path::Path) -> f64 {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=start_time,duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffprobe rejects {}: {stderr}",
        path.display()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let numbers: Vec<f64> = text
        .trim()
        .split(',')
        .map(|n| {
            n.parse()
                .unwrap_or_else(|e| panic!("ffprobe of {}: {text:?}: {e}", path.display()))
        })
        .collect();
    assert_eq!(numbers.len(), 2, "ffprobe of {}: {text:?}", path.display());
    numbers[1] - numbers[0]
}

/// A loopback port that was free a moment ago (bound to port 0, then let go).
/// A hub's `/metrics` text (at `base`, with the API `token`).
pub async fn metrics_text(http: &reqwest::Client, base: &str, token: &str) -> String {
    let resp = http
        .get(format!("{base}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "GET {base}/metrics");
    resp.text().await.unwrap()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The hub binary running with a config file, its log (stderr) in a file. Killed on drop;
/// when the test is failing, the log's tail is printed.
pub struct HubProcess {
    pub child: std::process::Child,
    pub log: PathBuf,
}

impl HubProcess {
    pub fn spawn(config: &std::path::Path, log: PathBuf) -> HubProcess {
        let file = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_xueliang"))
            .args(["run", "--config"])
            .arg(config)
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start the hub binary");
        HubProcess { child, log }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Panics (with the log) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the hub exited: {status}\n{}", self.log_tail(60));
        }
    }

    /// SIGTERM, then waits up to 20 s for the graceful shutdown (SIGKILL after that).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- hub log ({}), last lines ---\n{}",
                self.log.display(),
                self.log_tail(80)
            );
        }
    }
}

/// One Server-Sent Event, with when the client got it.
#[derive(Debug)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
    pub at: Instant,
}

/// Opens the SSE stream at `url` and parses it in the background (`event:`, `id:`, `data:`
/// lines, blank-line terminated; comments, the keep-alives, skipped).
pub async fn sse(
    client: &reqwest::Client,
    url: &str,
    token: &str,
) -> (
    mpsc::UnboundedReceiver<SseEvent>,
    tokio::task::JoinHandle<()>,
) {
    let mut resp = client
        .get(url)
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{url}: {:?}", resp.text().await);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (tx, rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            let at = Instant::now();
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = buf.drain(..end + 2).collect();
                let block = String::from_utf8_lossy(&block);
                let mut ev = SseEvent {
                    event: String::new(),
                    id: None,
                    data: String::new(),
                    at,
                };
                let mut lines = 0;
                for line in block.lines() {
                    let (field, value) = match line.split_once(':') {
                        Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                        None => (line, ""),
                    };
                    match field {
                        "event" => ev.event = value.to_owned(),
                        "id" => ev.id = Some(value.to_owned()),
                        "data" => {
                            if lines > 0 {
                                ev.data.push('\n');
                            }
                            ev.data.push_str(value);
                            lines += 1;
                        }
                        _ => {} // "" (a comment) or unknown
                    }
                }
                if (!ev.event.is_empty() || lines > 0) && tx.send(ev).is_err() {
                    return;
                }
            }
        }
    });
    (rx, reader)
}

/// A gate publishing on the test broker, once it is connected.
pub async fn gate_client(prefix: &str) -> AsyncClient {
    let (host, port) = broker();
    let mut opts = MqttOptions::new(format!("{prefix}-gate"), host, port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut el) = AsyncClient::new(opts, 100);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut tx = Some(tx);
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(t) = tx.take() {
                        let _ = t.send(());
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .expect("broker did not answer: is Mosquitto running (XUELIANG_TEST_MQTT)?")
        .unwrap();
    client
}
