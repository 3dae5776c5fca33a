//! Helpers for the publishers' integration tests: an in-memory outbox, alerts, a real HTTP
//! server (axum on 127.0.0.1:0) that records what webhooks send, the broker address, and a
//! scripted MQTT broker that acknowledges only when told to.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use xl_core::alert::{AlertChange, AlertId};
use xl_core::{
    Alert, AlertKind, AlertState, CameraId, CommunityId, ErrorKind, GateId, OutboxEntry, Role,
    Severity,
};
use xl_notify::{FeedEntry, Outbox, OutboxError};

/// Logs to the test output with `RUST_LOG` (e.g. `RUST_LOG=xl_notify=debug`).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn rand_id(prefix: &str) -> String {
    format!("{prefix}-{:x}", rand::random::<u64>())
}

/// What the publishers read, in memory: entries by seq, the cursors, and a watch of the last
/// committed seq. [`MemOutbox`] holds alert changes, [`MemFeed`] stored events.
pub struct Mem<E> {
    entries: Mutex<Vec<E>>,
    cursors: Mutex<HashMap<String, i64>>,
    /// Every `set_cursor` call, in order.
    pub cursor_writes: Mutex<Vec<(String, i64)>>,
    committed: watch::Sender<i64>,
}

/// The outbox of the store, in memory.
pub type MemOutbox = Mem<OutboxEntry>;
/// A stored feed in memory (gate or vision events as the hub's store gives them).
pub type MemFeed = Mem<FeedEntry>;

/// An entry's seq, by which [`Mem`] pages.
pub trait Seq: Clone {
    fn seq(&self) -> i64;
}

impl Seq for OutboxEntry {
    fn seq(&self) -> i64 {
        self.seq
    }
}

impl Seq for FeedEntry {
    fn seq(&self) -> i64 {
        self.seq
    }
}

impl<E: Seq> Mem<E> {
    pub fn new() -> Arc<Mem<E>> {
        Arc::new(Mem {
            entries: Mutex::new(Vec::new()),
            cursors: Mutex::new(HashMap::new()),
            cursor_writes: Mutex::new(Vec::new()),
            committed: watch::channel(0).0,
        })
    }

    /// A receiver of the last committed seq, as the hub hands to publishers.
    pub fn watch(&self) -> watch::Receiver<i64> {
        self.committed.subscribe()
    }

    /// Appends `entry` (its seq larger than any before; a gap is an entry retention deleted)
    /// and commits it.
    fn commit(&self, entry: E) {
        let seq = entry.seq();
        {
            let mut e = self.entries.lock().unwrap();
            assert!(
                e.last().is_none_or(|l| l.seq() < seq),
                "seq {seq} out of order"
            );
            e.push(entry);
        }
        self.committed.send_replace(seq);
    }

    pub fn stored_cursor(&self, name: &str) -> i64 {
        self.cursors.lock().unwrap().get(name).copied().unwrap_or(0)
    }

    /// Waits until the cursor `name` reaches `seq`, or `within` passes; returns it.
    pub async fn wait_cursor(&self, name: &str, seq: i64, within: Duration) -> i64 {
        let deadline = Instant::now() + within;
        loop {
            let c = self.stored_cursor(name);
            if c >= seq || Instant::now() > deadline {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn after(&self, seq: i64, limit: u32) -> Result<Vec<E>, OutboxError> {
        if limit == 0 {
            return Err(OutboxError::new(ErrorKind::Internal, "limit 0"));
        }
        Ok(self
            .entries
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.seq() > seq)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    fn store_cursor(&self, name: &str, seq: i64) {
        self.cursors.lock().unwrap().insert(name.to_owned(), seq);
        self.cursor_writes
            .lock()
            .unwrap()
            .push((name.to_owned(), seq));
    }
}

impl Mem<OutboxEntry> {
    /// Appends `alert` after `change` with the next seq, commits it, returns the seq.
    pub fn push(&self, change: AlertChange, alert: Alert) -> i64 {
        let seq = self.entries.lock().unwrap().len() as i64 + 1;
        self.commit(OutboxEntry {
            seq,
            at: Timestamp::now(),
            change,
            alert,
        });
        seq
    }

    pub fn entry(&self, seq: i64) -> OutboxEntry {
        self.entries.lock().unwrap()[(seq - 1) as usize].clone()
    }
}

impl Mem<FeedEntry> {
    /// Stores an event of `kind` in `community` with the seq `seq` (larger than any before;
    /// a gap is an event retention deleted) and a JSON payload naming it; returns the entry.
    pub fn push(&self, seq: i64, community: &str, kind: &str) -> FeedEntry {
        let entry = FeedEntry {
            seq,
            community: community.to_owned(),
            kind: kind.to_owned(),
            payload: serde_json::to_vec(&serde_json::json!({
                "seq": seq,
                "community": community,
                "kind": kind,
                "note": "东门 east door",
            }))
            .unwrap(),
        };
        self.commit(entry.clone());
        entry
    }
}

impl Outbox for Mem<OutboxEntry> {
    async fn after(&self, seq: i64, limit: u32) -> Result<Vec<OutboxEntry>, OutboxError> {
        Mem::after(self, seq, limit)
    }

    async fn cursor(&self, name: &str) -> Result<i64, OutboxError> {
        Ok(self.stored_cursor(name))
    }

    async fn set_cursor(&self, name: &str, seq: i64) -> Result<(), OutboxError> {
        self.store_cursor(name, seq);
        Ok(())
    }
}

impl xl_notify::Feed for Mem<FeedEntry> {
    async fn after(&self, seq: i64, limit: u32) -> Result<Vec<FeedEntry>, OutboxError> {
        Mem::after(self, seq, limit)
    }

    async fn cursor(&self, name: &str) -> Result<i64, OutboxError> {
        Ok(self.stored_cursor(name))
    }

    async fn set_cursor(&self, name: &str, seq: i64) -> Result<(), OutboxError> {
        self.store_cursor(name, seq);
        Ok(())
    }
}

/// An alert of `kind` in `community`, `n` making its id and title unique.
pub fn alert(community: &str, kind: AlertKind, severity: Severity, n: u64) -> Alert {
    let at = Timestamp::from_second(1_700_000_000).unwrap();
    Alert {
        id: AlertId::new(at, n),
        kind,
        severity,
        state: AlertState::Open,
        community: CommunityId::new(community).unwrap(),
        camera: Some(CameraId::new("cam-1").unwrap()),
        gate: Some(GateId::new("gate-1").unwrap()),
        zone: None,
        title: format!("东门被强行打开 East door forced open #{n}"),
        raised_at: at,
        last_seen_at: at,
        count: 1,
        ack_deadline: None,
        acknowledged_at: None,
        escalated_at: None,
        resolved_at: None,
        roles: vec![Role::Duty],
        source_event: None,
        snapshot: None,
    }
}

/// One request a webhook made.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub query: Option<String>,
    pub body: serde_json::Value,
}

/// How the test server answers on one path.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 `{"errcode":0,"errmsg":"ok"}`.
    Ok,
    /// `status` for the first `n` requests, then Ok.
    FailFirst { n: usize, status: u16 },
    /// Always `status`.
    Always(u16),
    /// 200 with this errcode.
    Errcode(i64),
}

#[derive(Default)]
struct ServerState {
    hits: Mutex<Vec<Hit>>,
    behaviour: Mutex<HashMap<String, Behaviour>>,
    seen: Mutex<HashMap<String, usize>>,
}

/// A real HTTP server on 127.0.0.1:0 that records every POST to `/hook/{name}`.
pub struct HookServer {
    pub addr: SocketAddr,
    state: Arc<ServerState>,
    task: tokio::task::JoinHandle<()>,
}

async fn hook(
    State(st): State<Arc<ServerState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: String,
) -> (StatusCode, Json<serde_json::Value>) {
    let n = {
        let mut seen = st.seen.lock().unwrap();
        let n = seen.entry(name.clone()).or_default();
        *n += 1;
        *n
    };
    let behaviour = st
        .behaviour
        .lock()
        .unwrap()
        .get(&name)
        .cloned()
        .unwrap_or(Behaviour::Ok);
    let ok = (
        StatusCode::OK,
        Json(serde_json::json!({"errcode": 0, "errmsg": "ok"})),
    );
    let answer = match behaviour {
        Behaviour::Ok => ok,
        Behaviour::FailFirst { n: fails, status } if n <= fails => (
            StatusCode::from_u16(status).unwrap(),
            Json(serde_json::json!({"error": "failing on purpose"})),
        ),
        Behaviour::FailFirst { .. } => ok,
        Behaviour::Always(status) => (
            StatusCode::from_u16(status).unwrap(),
            Json(serde_json::json!({"error": "no such hook"})),
        ),
        Behaviour::Errcode(code) => (
            StatusCode::OK,
            Json(serde_json::json!({"errcode": code, "errmsg": "refused on purpose"})),
        ),
    };
    // Only requests answered with success count as delivered.
    if answer.0 == StatusCode::OK && answer.1.0["errcode"] == 0 {
        let body = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
        st.hits.lock().unwrap().push(Hit {
            path: name,
            query,
            body,
        });
    }
    answer
}

impl HookServer {
    pub async fn start() -> HookServer {
        let state = Arc::new(ServerState::default());
        let app = Router::new()
            .route("/hook/{name}", post(hook))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        HookServer { addr, state, task }
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://{}/hook/{name}", self.addr)
    }

    pub fn set(&self, name: &str, b: Behaviour) {
        self.state
            .behaviour
            .lock()
            .unwrap()
            .insert(name.to_owned(), b);
    }

    /// Requests to `name` that were answered with success, in arrival order.
    pub fn delivered(&self, name: &str) -> Vec<Hit> {
        self.state
            .hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path == name)
            .cloned()
            .collect()
    }

    /// Requests to `name`, answered however.
    pub fn attempts(&self, name: &str) -> usize {
        self.state
            .seen
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until `name` has `n` delivered requests, or `within` passes.
    pub async fn wait_delivered(&self, name: &str, n: usize, within: Duration) -> Vec<Hit> {
        let deadline = Instant::now() + within;
        loop {
            let d = self.delivered(name);
            if d.len() >= n || Instant::now() > deadline {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The seqs of `json`-format deliveries.
pub fn seqs(hits: &[Hit]) -> Vec<i64> {
    hits.iter()
        .map(|h| h.body["seq"].as_i64().expect("a json-format body"))
        .collect()
}

/// The real Mosquitto of `XUELIANG_TEST_MQTT` (host:port, default 127.0.0.1:1883).
pub fn test_broker() -> SocketAddr {
    let addr = std::env::var("XUELIANG_TEST_MQTT").unwrap_or_else(|_| "127.0.0.1:1883".into());
    let a: SocketAddr = addr
        .parse()
        .expect("XUELIANG_TEST_MQTT must be host:port, e.g. 127.0.0.1:1883");
    assert!(
        TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok(),
        "no MQTT broker at {a}: start Mosquitto or set XUELIANG_TEST_MQTT"
    );
    a
}

/// What the scripted broker saw.
#[derive(Debug, Clone)]
pub enum BrokerEvent {
    Connected,
    Publish {
        topic: String,
        pkid: u16,
        retain: bool,
        payload: Vec<u8>,
    },
    Disconnected,
}

/// What the test tells the scripted broker to do on the current connection.
#[derive(Debug)]
pub enum BrokerCommand {
    PubAck(u16),
    /// Close the TCP connection (no acks for what is in flight).
    Drop,
}

/// A minimal MQTT 3.1.1 broker on 127.0.0.1:0 for one client at a time: CONNACKs, answers
/// pings, reports publishes, and sends a PUBACK only when told to.
pub struct ScriptedBroker {
    pub addr: SocketAddr,
    pub events: mpsc::UnboundedReceiver<BrokerEvent>,
    commands: Arc<Mutex<Option<mpsc::UnboundedSender<BrokerCommand>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedBroker {
    pub async fn start() -> ScriptedBroker {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ev_tx, events) = mpsc::unbounded_channel();
        let commands = Arc::new(Mutex::new(None));
        let cmds = Arc::clone(&commands);
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
                *cmds.lock().unwrap() = Some(cmd_tx);
                serve_one(sock, ev_tx.clone(), cmd_rx).await;
                let _ = ev_tx.send(BrokerEvent::Disconnected);
            }
        });
        ScriptedBroker {
            addr,
            events,
            commands,
            task,
        }
    }

    pub fn send(&self, c: BrokerCommand) {
        if let Some(tx) = self.commands.lock().unwrap().as_ref() {
            let _ = tx.send(c);
        }
    }

    /// The next event, or panics after `within`.
    pub async fn next(&mut self, within: Duration) -> BrokerEvent {
        tokio::time::timeout(within, self.events.recv())
            .await
            .expect("the scripted broker saw nothing in time")
            .expect("the scripted broker stopped")
    }

    /// The next publish on a topic containing `/alerts/`, skipping other events.
    pub async fn next_alert(&mut self, within: Duration) -> (u16, serde_json::Value) {
        loop {
            if let BrokerEvent::Publish {
                topic,
                pkid,
                payload,
                ..
            } = self.next(within).await
                && topic.contains("/alerts/")
            {
                return (pkid, serde_json::from_slice(&payload).unwrap());
            }
        }
    }
}

impl Drop for ScriptedBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_packet(sock: &mut tokio::net::TcpStream) -> Option<(u8, Vec<u8>)> {
    let first = sock.read_u8().await.ok()?;
    let mut len: usize = 0;
    let mut shift = 0;
    loop {
        let b = sock.read_u8().await.ok()?;
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let mut body = vec![0; len];
    sock.read_exact(&mut body).await.ok()?;
    Some((first, body))
}

async fn serve_one(
    mut sock: tokio::net::TcpStream,
    events: mpsc::UnboundedSender<BrokerEvent>,
    mut commands: mpsc::UnboundedReceiver<BrokerCommand>,
) {
    loop {
        tokio::select! {
            p = read_packet(&mut sock) => {
                let Some((first, body)) = p else { return };
                match first >> 4 {
                    1 => {
                        let _ = sock.write_all(&[0x20, 0x02, 0x00, 0x00]).await;
                        let _ = events.send(BrokerEvent::Connected);
                    }
                    3 => {
                        let qos = (first >> 1) & 3;
                        let tlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
                        let topic = String::from_utf8(body[2..2 + tlen].to_vec()).unwrap();
                        let mut at = 2 + tlen;
                        let mut pkid = 0;
                        if qos > 0 {
                            pkid = u16::from_be_bytes([body[at], body[at + 1]]);
                            at += 2;
                        }
                        let _ = events.send(BrokerEvent::Publish {
                            topic,
                            pkid,
                            retain: first & 1 == 1,
                            payload: body[at..].to_vec(),
                        });
                    }
                    12 => {
                        let _ = sock.write_all(&[0xd0, 0x00]).await;
                    }
                    14 => return,
                    _ => {}
                }
            }
            c = commands.recv() => match c {
                Some(BrokerCommand::PubAck(pkid)) => {
                    let [hi, lo] = pkid.to_be_bytes();
                    let _ = sock.write_all(&[0x40, 0x02, hi, lo]).await;
                }
                Some(BrokerCommand::Drop) | None => return,
            },
        }
    }
}
