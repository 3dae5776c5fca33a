//! Helpers for the integration tests: real brokers (Mosquitto, the embedded rumqttd), gate
//! publishers, temp data directories, journal checks.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use xl_core::gate_status::GateRegistry;
use xl_gates::{Gates, GatesConfig, JsonlJournal, StoredGateEvent};

/// Logs to the test output with `RUST_LOG` (e.g. `RUST_LOG=xl_gates=debug`).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn rand_id(prefix: &str) -> String {
    format!("{prefix}-{:x}", rand::random::<u64>())
}

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(rand_id(&format!("xl-gates-it-{name}")));
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_listening(addr: SocketAddr, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A Mosquitto of our own on a free loopback port, with persistence in a temp directory so
/// a restart keeps sessions and queued messages. Killed on drop.
pub struct Mosquitto {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Self::start_with(true)
    }

    /// With `persistence = false`, a restart forgets every session and queued message.
    pub fn start_with(persistence: bool) -> Mosquitto {
        Self::start_conf(persistence, false)
    }

    /// A TLS-only listener with a throwaway CA and a server certificate for `localhost` and
    /// 127.0.0.1, made with the `openssl` CLI; the CA's PEM is [`Mosquitto::tls_ca`].
    pub fn start_tls() -> Mosquitto {
        Self::start_conf(false, true)
    }

    /// The CA certificate (PEM) that signed a [`Mosquitto::start_tls`] broker's certificate.
    pub fn tls_ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn start_conf(persistence: bool, tls: bool) -> Mosquitto {
        let port = free_port();
        let dir = temp_dir("mosquitto");
        // Mosquitto started as root drops to the `mosquitto` user, which must be able to
        // write its persistence file here (and read the TLS files).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let tls_conf = if tls {
            make_test_certs(&dir);
            format!(
                "cafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n",
                dir.display()
            )
        } else {
            String::new()
        };
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\n{tls_conf}allow_anonymous true\n\
                 persistence {persistence}\n\
                 persistence_location {}/\nmax_queued_messages 0\nmax_inflight_messages 100\n\
                 log_dest file {}/mosquitto.log\nlog_type all\n",
                dir.display(),
                dir.display()
            ),
        )
        .unwrap();
        let mut m = Mosquitto {
            port,
            dir,
            child: None,
        };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        self.child = Some(spawn_mosquitto(&self.dir.join("mosquitto.conf")));
        assert!(
            wait_listening(self.addr(), Duration::from_secs(10)),
            "mosquitto did not start on {}",
            self.addr()
        );
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// SIGTERM (Mosquitto saves its persistence file), wait, and start again on the same port.
    pub fn restart(&mut self, down_for: Duration) {
        self.stop();
        std::thread::sleep(down_for);
        self.spawn();
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = c.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let _ = c.wait();
        }
    }
}

/// A throwaway CA (`ca.pem`) and a server certificate it signed (`server.pem`,
/// `server.key`) for `localhost` and 127.0.0.1, in `dir`, readable by everyone.
fn make_test_certs(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is not installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=xl-gates test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
    use std::os::unix::fs::PermissionsExt;
    for f in ["ca.pem", "server.pem", "server.key"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

/// Starts the system's `mosquitto` with the config file `conf`, its output discarded.
pub fn spawn_mosquitto(conf: &Path) -> Child {
    let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("mosquitto");
    Command::new(bin)
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto is not installed (scripts/setup installs it)")
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("mosquitto log kept in {}", self.dir.display());
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
            }
            return;
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The broker for tests that need any real Mosquitto: `XUELIANG_TEST_MQTT` (host:port,
/// default 127.0.0.1:1883) when it answers, else one of our own.
pub fn test_broker() -> (SocketAddr, Option<Mosquitto>) {
    let addr = std::env::var("XUELIANG_TEST_MQTT").unwrap_or_else(|_| "127.0.0.1:1883".into());
    if let Ok(a) = addr.parse::<SocketAddr>()
        && TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_ok()
    {
        return (a, None);
    }
    let m = Mosquitto::start();
    (m.addr(), Some(m))
}

/// The Hikvision push JSON fixture with `serialNo` set to `seq`.
pub fn hik_payload(seq: u64) -> Vec<u8> {
    let text = include_str!(
        "../../../../firmware-adapters/hikvision-isapi/testdata/hikvision_ds-k1t_face-pass_http-push.json"
    );
    text.replace("\"serialNo\":1199", &format!("\"serialNo\":{seq}"))
        .into_bytes()
}

/// A config with one Hikvision gate `gate-1` fed over MQTT on `{prefix}/gates/+/hik`.
pub fn hik_config(broker: SocketAddr, prefix: &str) -> GatesConfig {
    hik_config_at(&format!("mqtt://{broker}"), "", prefix)
}

/// [`hik_config`] for the broker at `url`, with `extra` lines in `[mqtt]` (e.g. `ca_file`).
pub fn hik_config_at(url: &str, extra: &str, prefix: &str) -> GatesConfig {
    parse_config(&hik_config_text(
        &format!("url = \"{url}\"\n{extra}"),
        prefix,
    ))
}

/// The `[mqtt]` table with `mqtt` (where the broker is) and one Hikvision gate, `gate-1`.
fn hik_config_text(mqtt: &str, prefix: &str) -> String {
    format!(
        r#"
        [mqtt]
        {mqtt}
        client_id = "{client}"
        backoff_initial_secs = 0.1
        backoff_max_secs = 1.0
        [[mqtt.subscriptions]]
        filter = "{prefix}/gates/+/hik"
        firmware = "hikvision-isapi"
        gate_from = {{ topic_segment = 2 }}
        [[gates]]
        id = "gate-1"
        community = "xingfu"
        firmware = "hikvision-isapi"
        camera = "cam-1"
        offline_after_secs = 60
        "#,
        client = rand_id("hub"),
    )
}

/// The login [`Publisher`] uses: on the embedded broker of [`hik_config_embedded`] the
/// account of `gate-1`; test Mosquittos take any login.
pub const GATE_USER: &str = "gate-1-bridge";
pub const GATE_PASSWORD: &str = "gate-1-bridge-test-password";

/// [`hik_config`] with the hub's own embedded broker listening on `listen`, and an account
/// ([`GATE_USER`]) that may report for `gate-1`.
pub fn hik_config_embedded(listen: SocketAddr, prefix: &str) -> GatesConfig {
    let text = hik_config_text(&format!("embedded = true\nlisten = \"{listen}\""), prefix);
    parse_config(&format!(
        "{text}\n[[mqtt.accounts]]\nusername = \"{GATE_USER}\"\npassword = \"{GATE_PASSWORD}\"\n\
         gates = [\"gate-1\"]\n"
    ))
}

pub fn parse_config(text: &str) -> GatesConfig {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        mqtt: Option<xl_gates::MqttConfig>,
        #[serde(default)]
        gates: Vec<xl_gates::GateConfig>,
        #[serde(default)]
        gate_ingest: xl_gates::IngestConfig,
    }
    let f: File = toml::from_str(text).unwrap();
    GatesConfig {
        mqtt: f.mqtt,
        gates: f.gates,
        ingest: f.gate_ingest,
    }
}

pub async fn start_gates(cfg: GatesConfig, data: &Path) -> (Gates, Arc<GateRegistry>) {
    let registry = Arc::new(GateRegistry::default());
    let g = Gates::start(cfg, data, Arc::clone(&registry))
        .await
        .unwrap();
    (g, registry)
}

pub fn journal_events(data: &Path) -> Vec<StoredGateEvent> {
    JsonlJournal::read_events(&Gates::journal_dir(data)).unwrap()
}

pub fn journal_dead_letters(data: &Path) -> Vec<xl_gates::DeadLetter> {
    JsonlJournal::read_dead_letters(&Gates::journal_dir(data)).unwrap()
}

/// Serial numbers of the stored events; panics if one is stored twice.
pub fn unique_serials(events: &[StoredGateEvent]) -> BTreeSet<u64> {
    let mut seen = BTreeSet::new();
    for e in events {
        let s: u64 = e.event.event_id.as_deref().unwrap().parse().unwrap();
        assert!(seen.insert(s), "serial {s} stored twice");
    }
    seen
}

/// Waits until `data`'s journal holds at least `n` events, or `within` passes.
pub async fn wait_for_events(data: &Path, n: usize, within: Duration) -> Vec<StoredGateEvent> {
    let deadline = Instant::now() + within;
    loop {
        let ev = journal_events(data);
        if ev.len() >= n || Instant::now() > deadline {
            return ev;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A gate (or a bridge) publishing QoS 1 with a persistent session, as real devices do: it
/// keeps unacknowledged messages across broker restarts and resends them.
pub struct Publisher {
    pub client: AsyncClient,
    /// Packet ids acknowledged by the broker.
    pub acked: Arc<Mutex<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    pub fn start(broker: SocketAddr) -> Publisher {
        let mut o = MqttOptions::new(rand_id("gate"), broker.ip().to_string(), broker.port());
        o.set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5))
            .set_inflight(200)
            .set_credentials(GATE_USER, GATE_PASSWORD);
        let (client, mut el) = AsyncClient::new(o, 100_000);
        let acked = Arc::new(Mutex::new(0));
        let a = Arc::clone(&acked);
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => *a.lock().unwrap() += 1,
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Publisher {
            client,
            acked,
            task,
        }
    }

    pub async fn publish(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    pub fn acked(&self) -> u64 {
        *self.acked.lock().unwrap()
    }

    /// Waits until the broker acknowledged `n` messages.
    pub async fn wait_acked(&self, n: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.acked() < n {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Percentile (0..=100) of `v` (sorted in place).
pub fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Publish instants by serial number, for latency figures.
pub type Sent = Arc<Mutex<HashMap<u64, Instant>>>;

/// An MQTT string: its length (two bytes, big-endian), then the bytes.
pub fn mqtt_str(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

/// A raw MQTT packet: the first byte (type and flags), the remaining length, the body.
pub fn mqtt_packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let b = (len % 128) as u8;
        len /= 128;
        out.push(if len > 0 { b | 0x80 } else { b });
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// A raw MQTT 3.1.1 CONNECT; `will` is (topic, message, QoS, retain).
pub fn connect_packet(
    client_id: &str,
    clean: bool,
    keep_alive: u16,
    login: Option<(&str, &str)>,
    will: Option<(&str, &[u8], u8, bool)>,
) -> Vec<u8> {
    let mut flags = u8::from(clean) << 1;
    let mut body = mqtt_str(b"MQTT");
    let mut rest = mqtt_str(client_id.as_bytes());
    if let Some((topic, message, qos, retain)) = will {
        flags |= 0x04 | (qos << 3) | (u8::from(retain) << 5);
        rest.extend(mqtt_str(topic.as_bytes()));
        rest.extend(mqtt_str(message));
    }
    if let Some((u, p)) = login {
        flags |= 0xc0;
        rest.extend(mqtt_str(u.as_bytes()));
        rest.extend(mqtt_str(p.as_bytes()));
    }
    body.extend([4, flags]);
    body.extend(keep_alive.to_be_bytes());
    body.extend(rest);
    mqtt_packet(0x10, &body)
}

/// A raw QoS 1 PUBLISH.
pub fn raw_publish(topic: &str, pkid: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = mqtt_str(topic.as_bytes());
    body.extend_from_slice(&pkid.to_be_bytes());
    body.extend_from_slice(payload);
    mqtt_packet(0x32, &body)
}

/// How long an [`MqttClient`] waits for a CONNACK or the packet it looks for.
pub const MQTT_WAIT: Duration = Duration::from_secs(20);
/// How long [`MqttClient::messages_until`] waits after the marker for stragglers.
pub const MQTT_GRACE: Duration = Duration::from_millis(300);

/// A rumqttc client (QoS 1, keep-alive 30 s) and what it receives, for tests of what a broker
/// lets through.
pub struct MqttClient {
    pub client: AsyncClient,
    pub session_present: bool,
    rx: tokio::sync::mpsc::UnboundedReceiver<Packet>,
    held: std::collections::VecDeque<Packet>,
    task: tokio::task::JoinHandle<()>,
}

impl MqttClient {
    /// Connects to 127.0.0.1:`port`; `Err` is the CONNACK return code of a refusal.
    pub async fn connect(
        port: u16,
        client_id: &str,
        login: Option<(&str, &str)>,
        clean: bool,
    ) -> Result<MqttClient, u8> {
        let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30))
            .set_clean_session(clean);
        if let Some((u, p)) = login {
            o.set_credentials(u, p);
        }
        let (client, mut el) = AsyncClient::new(o, 100);
        let session_present = loop {
            match tokio::time::timeout(MQTT_WAIT, el.poll())
                .await
                .expect("no CONNACK")
            {
                Ok(Event::Incoming(Packet::ConnAck(a))) => break a.session_present,
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => return Err(code as u8),
                Err(e) => panic!("connect: {e}"),
            }
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok(ev) = el.poll().await {
                if let Event::Incoming(p) = ev
                    && tx.send(p).is_err()
                {
                    return;
                }
            }
        });
        Ok(MqttClient {
            client,
            session_present,
            rx,
            held: Default::default(),
            task,
        })
    }

    /// The next packet that `pick` takes, within [`MQTT_WAIT`].
    pub async fn next<T>(&mut self, mut pick: impl FnMut(&Packet) -> Option<T>) -> Option<T> {
        // Packets passed over (a PUBLISH that came before the PUBACK awaited) wait for a
        // later look.
        if let Some(i) = self.held.iter().position(|p| pick(p).is_some()) {
            let p = self.held.remove(i).unwrap();
            return pick(&p);
        }
        let deadline = tokio::time::Instant::now() + MQTT_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(p)) => match pick(&p) {
                    Some(t) => return Some(t),
                    None => self.held.push_back(p),
                },
                _ => return None,
            }
        }
    }

    /// Publishes QoS 1 and waits for its PUBACK (a broker acknowledges a PUBLISH it drops
    /// too).
    pub async fn publish_acked(&mut self, topic: &str, retain: bool, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.into())
            .await
            .unwrap();
        assert!(
            self.next(|p| matches!(p, Packet::PubAck(_)).then_some(()))
                .await
                .is_some(),
            "no PUBACK for {topic}"
        );
    }

    /// Subscribes (QoS 1) and returns the SUBACK's codes (`None` = refused, 0x80).
    pub async fn subscribe(&mut self, filters: &[&str]) -> Vec<Option<QoS>> {
        let f: Vec<rumqttc::SubscribeFilter> = filters
            .iter()
            .map(|f| rumqttc::SubscribeFilter::new((*f).to_owned(), QoS::AtLeastOnce))
            .collect();
        self.client.subscribe_many(f).await.unwrap();
        self.next(|p| match p {
            Packet::SubAck(a) => Some(
                a.return_codes
                    .iter()
                    .map(|c| match c {
                        rumqttc::SubscribeReasonCode::Success(q) => Some(*q),
                        rumqttc::SubscribeReasonCode::Failure => None,
                    })
                    .collect(),
            ),
            _ => None,
        })
        .await
        .expect("no SUBACK")
    }

    /// The next PUBLISH received: (topic, payload, retain).
    pub async fn next_message(&mut self) -> Option<(String, Vec<u8>, bool)> {
        self.next(|p| match p {
            Packet::Publish(p) => Some((p.topic.clone(), p.payload.to_vec(), p.retain)),
            _ => None,
        })
        .await
    }

    /// The PUBLISHes received until one on `marker` (included), and any that follow within
    /// [`MQTT_GRACE`]: (topic, payload).
    pub async fn messages_until(&mut self, marker: &str) -> Vec<(String, Vec<u8>)> {
        let mut got = Vec::new();
        loop {
            let (t, p, _) = self
                .next_message()
                .await
                .unwrap_or_else(|| panic!("never received {marker}; got {got:?}"));
            let done = t == marker;
            got.push((t, p));
            if done {
                tokio::time::sleep(MQTT_GRACE).await;
                got.extend(self.drain_publishes());
                return got;
            }
        }
    }

    /// The topics of [`MqttClient::messages_until`].
    pub async fn topics_until(&mut self, marker: &str) -> Vec<String> {
        let got = self.messages_until(marker).await;
        got.into_iter().map(|(t, _)| t).collect()
    }

    /// The PUBLISHes received and not looked at yet: (topic, payload).
    pub fn drain_publishes(&mut self) -> Vec<(String, Vec<u8>)> {
        let mut all: Vec<Packet> = self.held.drain(..).collect();
        all.extend(std::iter::from_fn(|| self.rx.try_recv().ok()));
        all.into_iter()
            .filter_map(|p| match p {
                Packet::Publish(p) => Some((p.topic, p.payload.to_vec())),
                _ => None,
            })
            .collect()
    }
}

impl Drop for MqttClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}
