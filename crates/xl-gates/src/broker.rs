//! The embedded MQTT broker: rumqttd behind a front that stores gate events before the gate
//! hears its PUBACK.
//!
//! ```text
//! gate --MQTT 3.1.1--> front (`listen`) --same bytes--> rumqttd (127.0.0.1, ephemeral port)
//!                        |  PUBLISH on a gate topic: ingest, wait until durable, then forward
//!                        |  (rumqttd's PUBACK reaches the gate only after that)
//!                        +- sessions file: persistent clients and their subscriptions
//! ```
//!
//! rumqttd keeps everything in memory and acknowledges a PUBLISH as soon as it has it, so on
//! its own a hub crash would lose what it had acknowledged. The front closes that gap:
//! - a PUBLISH whose topic matches a `[[mqtt.subscriptions]]` filter is decoded and stored by
//!   the gate writer first and forwarded to rumqttd only once durable; packets of one
//!   connection keep their order. If the store fails, the connection is closed unacknowledged
//!   and the gate sends the message again.
//! - rumqttd forgets sessions when the process ends, and a gate whose broker says "no session"
//!   must discard the messages it had sent but not seen acknowledged (MQTT 3.1.1, 3.2.2.2).
//!   The front therefore remembers, in `broker-sessions.json` (fsynced before it answers),
//!   which clients connect with `clean_session = false` and what they subscribed to. When such
//!   a client returns after a restart, the front subscribes again for it and tells it its
//!   session is present, so it sends those messages again (dedup recognises any stored
//!   twice).
//!
//! Messages rumqttd queued for offline subscribers are still held in memory only (as with
//! Mosquitto between its autosaves); alerts carry their own outbox and are published again.
//! Other packets (and everything of MQTT 5 clients, which rumqttd's 3.1.1 server refuses) pass
//! through unchanged. The hub's own clients (MQTT out) connect through the front like any other.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::MqttConfig;
use crate::ingest::Ingest;
use crate::mqtt::{MqttStatus, ingest_message, topic_matches};
use crate::writer::Outcome;

const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const SUBSCRIBE: u8 = 8;
const SUBACK: u8 = 9;
const UNSUBSCRIBE: u8 = 10;

/// Packets of one connection waiting to be forwarded (each may wait for a store).
const PIPELINE: usize = 256;
/// The packet id of the SUBSCRIBE the front sends for a returning client.
const REPLAY_PKID: u16 = 1;
/// How long a new connection may take to send its CONNECT (a gate sends it at once).
const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// How long a graceful stop waits for connections to hand over what they hold.
const DRAIN: Duration = Duration::from_secs(3);
/// Sessions not seen for this long are forgotten.
const SESSION_EXPIRY: jiff::SignedDuration = jiff::SignedDuration::from_hours(30 * 24);
/// Persistent sessions remembered at most (more clients still connect, with sessions that do
/// not outlive a restart), and topic filters remembered per session.
const MAX_SESSIONS: usize = 10_000;
const MAX_SESSION_FILTERS: usize = 100;
/// The largest CONNECT read: before it is accepted, a stranger's connection holds little
/// memory, and only for [`CONNECT_WAIT`].
const MAX_CONNECT_BYTES: usize = 64 * 1024;
/// What a packet's buffer starts with; a longer packet's grows as its bytes arrive, so an
/// announced length alone costs nothing.
const FRAME_PREALLOC: usize = 64 * 1024;

/// Where rumqttd 0.20 logs at ERROR what every ordinary disconnect of a client produces: a link
/// the router closed ("router-drop", after a client's DISCONNECT) and a connection whose
/// DISCONNECT packet and closed socket both report it ("no-connection id N is already gone").
const RUMQTTD_DISCONNECT_NOISE: [(&str, u32); 4] = [
    ("src/server/broker.rs", 581),
    ("src/router/routing.rs", 416),
    ("src/router/routing.rs", 436),
    ("src/router/routing.rs", 539),
];

/// Whether a log event is one of rumqttd's ERROR lines about an ordinary disconnect, which the
/// hub's log filter drops: they would send duty staff looking for a fault that is not there
/// (the front logs the gates' connections itself). Checked against what rumqttd really logs in
/// `tests/broker_logs.rs`, which fails when a new rumqttd moves these lines.
pub fn is_rumqttd_disconnect_noise(meta: &tracing::Metadata<'_>) -> bool {
    meta.target().starts_with("rumqttd")
        && *meta.level() == tracing::Level::ERROR
        && match (meta.file(), meta.line()) {
            (Some(file), Some(line)) => RUMQTTD_DISCONNECT_NOISE
                .iter()
                .any(|&(f, l)| line == l && file.ends_with(f)),
            _ => false,
        }
}

/// Starts rumqttd on a loopback port and the front on `cfg.listen`; returns the front's task,
/// which runs until `shutdown` (then lets open connections hand over what they hold) or until
/// aborted (a crash, as far as gates can tell).
pub(crate) async fn start(
    ingest: Arc<Ingest>,
    cfg: MqttConfig,
    state_dir: &Path,
    status: Arc<MqttStatus>,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let sessions = Arc::new(Sessions::open(&state_dir.join("broker-sessions.json"))?);
    let creds = cfg
        .username
        .clone()
        .map(|u| (u, cfg.password.clone().unwrap_or_default()));
    let max = cfg.max_payload_bytes;
    let inner = tokio::task::spawn_blocking(move || start_rumqttd(max, creds))
        .await
        .map_err(|e| e.to_string())??;
    status.connected.store(true, Relaxed);
    info!(listen = %cfg.listen, sessions = sessions.len(), "embedded MQTT broker listening");
    let front = Arc::new(Front {
        ingest,
        cfg,
        inner,
        sessions,
        status,
    });
    Ok(tokio::spawn(accept_loop(front, listener, shutdown)))
}

struct Front {
    ingest: Arc<Ingest>,
    cfg: MqttConfig,
    inner: SocketAddr,
    sessions: Arc<Sessions>,
    status: Arc<MqttStatus>,
}

impl Front {
    /// The largest packet accepted: the payload limit plus room for topic and header.
    fn max_packet(&self) -> usize {
        self.cfg.max_payload_bytes + 65536
    }
}

async fn accept_loop(front: Arc<Front>, listener: TcpListener, shutdown: CancellationToken) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    front.status.connections.fetch_add(1, Relaxed);
                    let (f, s) = (Arc::clone(&front), shutdown.clone());
                    conns.spawn(async move {
                        match serve(&f, stream, peer, s).await {
                            // A device speaking broken MQTT: the operator should hear of it.
                            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                                warn!(%peer, error = %e, "MQTT connection closed: bad packet");
                            }
                            Err(e) => debug!(%peer, error = %e, "MQTT connection closed"),
                            Ok(()) => {}
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, "cannot accept an MQTT connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next() => {}
        }
    }
    drop(listener);
    front.status.connected.store(false, Relaxed);
    let _ = tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    conns.abort_all();
    info!("embedded MQTT broker stopped");
}

/// A packet on its way to rumqttd: now, or once its events are durable.
enum Pending {
    Ready(Bytes),
    Stored(oneshot::Receiver<Outcome>, Bytes),
}

/// What the client's CONNECT said, as far as the front cares.
#[derive(Debug, Clone, PartialEq)]
struct Connect {
    level: u8,
    clean_session: bool,
    client_id: String,
}

impl Connect {
    /// MQTT 3.1 or 3.1.1: the packets the front reads.
    fn readable(&self) -> bool {
        matches!(self.level, 3 | 4)
    }
}

async fn serve(
    front: &Arc<Front>,
    client: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let (client_r, client_w) = client.into_split();
    let mut client_r = BufReader::new(client_r);
    // rumqttd hears of a connection only once it has sent its CONNECT (a port probe or a
    // half-open socket costs rumqttd nothing and logs no error there).
    let first = tokio::time::timeout(CONNECT_WAIT, read_frame(&mut client_r, MAX_CONNECT_BYTES))
        .await
        .map_err(|_| invalid("no CONNECT within 10 s"))??;
    let Some(first) = first else {
        return Ok(());
    };
    if first.kind() != CONNECT {
        return Err(invalid("the first packet is not CONNECT"));
    }
    let connect = parse_connect(first.body()).map_err(invalid)?;
    let upstream = match TcpStream::connect(front.inner).await {
        Ok(s) => {
            if !front.status.connected.swap(true, Relaxed) {
                info!("the embedded MQTT broker answers again");
            }
            s
        }
        Err(e) => {
            // Said once, not per connection: gates retry often.
            if front.status.connected.swap(false, Relaxed) {
                error!(error = %e, "the embedded MQTT broker (rumqttd) does not answer: no gate can connect");
            }
            return Err(e);
        }
    };
    let _ = upstream.set_nodelay(true);
    let (up_r, up_w) = upstream.into_split();
    let (tx, rx) = mpsc::channel::<Pending>(PIPELINE);
    tx.send(Pending::Ready(first.bytes)).await.map_err(closed)?;
    let (accepted_tx, accepted_rx) = oneshot::channel();
    // The three directions run in this one task, so aborting it drops the connection whole.
    // The client side stops reading when rumqttd's side ends (or at shutdown); rumqttd's side
    // ends once the forwarder has handed over everything queued and closed its half.
    let ended = shutdown.child_token();
    let back_tx = tx.clone();
    let back = async {
        let r = downstream(front, &connect, up_r, client_w, back_tx, accepted_tx).await;
        ended.cancel();
        r
    };
    let reader = async {
        let r = match accepted_rx.await {
            Ok(true) => upstream_loop(front, &connect, &mut client_r, peer, &tx, &ended).await,
            _ => Ok(()),
        };
        drop(tx);
        r
    };
    let ((), back, read) = tokio::join!(forward(rx, up_w), back, reader);
    read.and(back)
}

/// Reads the client's packets after an accepted CONNECT and queues them in order.
async fn upstream_loop(
    front: &Arc<Front>,
    connect: &Connect,
    client_r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    peer: SocketAddr,
    tx: &mpsc::Sender<Pending>,
    shutdown: &CancellationToken,
) -> io::Result<()> {
    let max = front.max_packet();
    loop {
        let frame = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            f = read_frame(client_r, max) => match f? {
                Some(f) => f,
                None => return Ok(()),
            },
        };
        let item = if !connect.readable() {
            Pending::Ready(frame.bytes)
        } else {
            match frame.kind() {
                PUBLISH => publish(front, &frame, peer)?,
                SUBSCRIBE if !connect.clean_session => {
                    let filters = parse_subscribe(frame.body()).map_err(invalid)?;
                    front
                        .sessions
                        .change(&connect.client_id, move |subs| {
                            for (f, q) in filters {
                                subs.retain(|(g, _)| *g != f);
                                subs.push((f, q));
                            }
                        })
                        .await?;
                    Pending::Ready(frame.bytes)
                }
                UNSUBSCRIBE if !connect.clean_session => {
                    let filters = parse_unsubscribe(frame.body()).map_err(invalid)?;
                    front
                        .sessions
                        .change(&connect.client_id, move |subs| {
                            subs.retain(|(g, _)| !filters.contains(g));
                        })
                        .await?;
                    Pending::Ready(frame.bytes)
                }
                _ => Pending::Ready(frame.bytes),
            }
        };
        tx.send(item).await.map_err(closed)?;
    }
}

/// A PUBLISH on a gate topic goes to the writer; the packet waits for it.
fn publish(front: &Arc<Front>, frame: &Frame, peer: SocketAddr) -> io::Result<Pending> {
    let p = parse_publish(frame.flags(), frame.body()).map_err(invalid)?;
    let Some(sub) = front
        .cfg
        .subscriptions
        .iter()
        .find(|s| topic_matches(&s.filter, p.topic))
    else {
        return Ok(Pending::Ready(frame.bytes.clone()));
    };
    front.status.messages.fetch_add(1, Relaxed);
    let (done_tx, done_rx) = oneshot::channel();
    ingest_message(
        &front.ingest,
        Some(sub),
        p.topic,
        p.payload,
        p.dup,
        Some(peer),
        move |outcome| {
            let _ = done_tx.send(outcome);
        },
    );
    Ok(Pending::Stored(done_rx, frame.bytes.clone()))
}

/// Writes queued packets to rumqttd in order, each once it may go. A failed store closes the
/// connection with the packet unforwarded (so unacknowledged).
async fn forward(mut rx: mpsc::Receiver<Pending>, mut up_w: tokio::net::tcp::OwnedWriteHalf) {
    while let Some(item) = rx.recv().await {
        let bytes = match item {
            Pending::Ready(b) => b,
            Pending::Stored(done, b) => match done.await {
                Ok(Ok(())) => b,
                Ok(Err(e)) => {
                    warn!(error = %e, "cannot store gate events; closing the connection unacknowledged");
                    return;
                }
                Err(_) => return,
            },
        };
        if up_w.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = up_w.shutdown().await;
}

/// rumqttd to the client: the CONNACK (with the session restored when the front remembers
/// one), then everything else as it comes.
async fn downstream(
    front: &Front,
    connect: &Connect,
    up_r: tokio::net::tcp::OwnedReadHalf,
    mut client_w: tokio::net::tcp::OwnedWriteHalf,
    tx: mpsc::Sender<Pending>,
    accepted: oneshot::Sender<bool>,
) -> io::Result<()> {
    let mut up_r = BufReader::new(up_r);
    let max = front.max_packet();
    let Some(connack) = read_frame(&mut up_r, max).await? else {
        return Ok(());
    };
    let body = connack.body();
    if connack.kind() != CONNACK || body.len() != 2 {
        return Err(invalid("the broker's first packet is not CONNACK"));
    }
    let (mut session_present, code) = (body[0] & 1 == 1, body[1]);
    if code == 0 && connect.readable() {
        let restore = if connect.clean_session {
            front.sessions.forget(&connect.client_id).await?;
            None
        } else {
            front.sessions.connected(&connect.client_id).await?
        };
        if let Some(subs) = restore.filter(|_| !session_present) {
            if !subs.is_empty() {
                let n = subs.len();
                tx.send(Pending::Ready(subscribe_packet(REPLAY_PKID, &subs)))
                    .await
                    .map_err(closed)?;
                wait_suback(&mut up_r, max).await?;
                debug!(client_id = %connect.client_id, subscriptions = n, "session restored");
            }
            session_present = true;
        }
    }
    let reply = [CONNACK << 4, 2, u8::from(session_present), code];
    client_w.write_all(&reply).await?;
    let _ = accepted.send(code == 0);
    drop(tx);
    tokio::io::copy(&mut up_r, &mut client_w).await?;
    client_w.shutdown().await
}

async fn wait_suback<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let f = tokio::time::timeout_at(deadline.into(), read_frame(r, max))
            .await
            .map_err(|_| invalid("no SUBACK for the restored subscriptions"))??
            .ok_or_else(|| closed(()))?;
        let b = f.body();
        if f.kind() == SUBACK && b.len() >= 2 && u16::from_be_bytes([b[0], b[1]]) == REPLAY_PKID {
            return Ok(());
        }
    }
}

fn invalid(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn closed<T>(_: T) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "connection closed")
}

/// rumqttd (MQTT 3.1.1) on a free loopback port, on its own thread; returns that address once
/// it accepts connections. It has no stop: it lives as long as the process.
fn start_rumqttd(
    max_payload_bytes: usize,
    credentials: Option<(String, String)>,
) -> Result<SocketAddr, String> {
    use std::collections::HashMap;

    use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no loopback port for the broker: {e}"))?;
    let probe_credentials = credentials.clone();
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: max_payload_bytes,
        max_inflight_count: 200,
        auth: credentials.map(|(u, p)| HashMap::from([(u, p)])),
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "xueliang-v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_000,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 << 20,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Config::default()
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(|e| format!("cannot start the broker thread: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if probe(listen, probe_credentials.as_ref()).is_ok() {
            return Ok(listen);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("rumqttd did not start answering on {listen}"))
}

/// A whole MQTT session (CONNECT, CONNACK, DISCONNECT): rumqttd answers, and logs no error
/// for a connection that sent nothing.
fn probe(addr: SocketAddr, credentials: Option<&(String, String)>) -> io::Result<()> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    s.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut body = BytesMut::new();
    let (flags, fields): (u8, Vec<&str>) = match credentials {
        Some((u, p)) => (0xc2, vec!["xueliang-broker-probe", u, p]),
        None => (0x02, vec!["xueliang-broker-probe"]),
    };
    body.put_u16(4);
    body.put_slice(b"MQTT");
    body.put_slice(&[4, flags, 0, 5]); // rumqttd refuses a keep-alive of 0
    for f in fields {
        body.put_u16(f.len() as u16);
        body.put_slice(f.as_bytes());
    }
    s.write_all(&packet(CONNECT << 4, &body))?;
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack)?;
    s.write_all(&[0xe0, 0])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Sessions remembered across restarts.

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Session {
    last_connect: jiff::Timestamp,
    /// Topic filters and their QoS, in the order subscribed.
    subscriptions: Vec<(String, u8)>,
}

/// Clients with persistent sessions and their subscriptions, in one JSON file written
/// atomically (temporary file, fsync, rename, fsync of the directory) on every change.
struct Sessions {
    path: PathBuf,
    map: Arc<Mutex<BTreeMap<String, Session>>>,
}

impl Sessions {
    fn open(path: &Path) -> Result<Sessions, String> {
        let mut map: BTreeMap<String, Session> = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| format!("{}: not a sessions file: {e}", path.display()))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let cutoff = jiff::Timestamp::now() - SESSION_EXPIRY;
        map.retain(|_, s| s.last_connect > cutoff);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        Ok(Sessions {
            path: path.to_owned(),
            map: Arc::new(Mutex::new(map)),
        })
    }

    fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }

    /// A client connected with a persistent session: returns the subscriptions it had if the
    /// front knew it already.
    async fn connected(&self, id: &str) -> io::Result<Option<Vec<(String, u8)>>> {
        let id = id.to_owned();
        self.update(move |m| {
            let known = m.get(&id).map(|s| s.subscriptions.clone());
            if known.is_none() && m.len() >= MAX_SESSIONS {
                warn!(client_id = %id, "{MAX_SESSIONS} persistent MQTT sessions are remembered already: this one will not outlive a restart");
                return None;
            }
            let s = m.entry(id).or_default();
            s.last_connect = jiff::Timestamp::now();
            known
        })
        .await
    }

    /// A client connected with a clean session.
    async fn forget(&self, id: &str) -> io::Result<()> {
        if !self.map.lock().unwrap().contains_key(id) {
            return Ok(());
        }
        let id = id.to_owned();
        self.update(move |m| {
            m.remove(&id);
        })
        .await
    }

    async fn change(
        &self,
        id: &str,
        f: impl FnOnce(&mut Vec<(String, u8)>) + Send + 'static,
    ) -> io::Result<()> {
        let id = id.to_owned();
        self.update(move |m| {
            // Only sessions remembered when they connected; a bounded list of filters.
            if let Some(s) = m.get_mut(&id) {
                f(&mut s.subscriptions);
                if s.subscriptions.len() > MAX_SESSION_FILTERS {
                    warn!(client_id = %id, "more than {MAX_SESSION_FILTERS} subscriptions: only the first are remembered");
                    s.subscriptions.truncate(MAX_SESSION_FILTERS);
                }
            }
        })
        .await
    }

    /// Applies `f` and writes the file, on the blocking pool (one writer at a time: the lock
    /// is held across the write, so the file always holds the latest map).
    async fn update<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, Session>) -> T + Send + 'static,
    ) -> io::Result<T> {
        let (map, path) = (Arc::clone(&self.map), self.path.clone());
        tokio::task::spawn_blocking(move || {
            let mut m = map.lock().unwrap();
            let out = f(&mut m);
            write_atomically(&path, &serde_json::to_vec_pretty(&*m)?)?;
            Ok(out)
        })
        .await
        .map_err(io::Error::other)?
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// MQTT 3.1.1 framing and the few packets the front reads (pure).

/// One control packet as it came off the wire.
struct Frame {
    bytes: Bytes,
    body: usize,
}

impl Frame {
    fn kind(&self) -> u8 {
        self.bytes[0] >> 4
    }
    fn flags(&self) -> u8 {
        self.bytes[0] & 0x0f
    }
    fn body(&self) -> &[u8] {
        &self.bytes[self.body..]
    }
}

/// Reads one packet; `None` at a clean end of stream.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> io::Result<Option<Frame>> {
    let first = match r.read_u8().await {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut header = [first, 0, 0, 0, 0];
    let mut len = 0usize;
    let mut n = 1;
    loop {
        let b = r.read_u8().await?;
        header[n] = b;
        len |= usize::from(b & 0x7f) << (7 * (n - 1));
        n += 1;
        if b & 0x80 == 0 {
            break;
        }
        if n == 5 {
            return Err(invalid("remaining length longer than 4 bytes"));
        }
    }
    if len > max {
        return Err(invalid(format!(
            "a packet of {len} bytes is over the limit of {max}"
        )));
    }
    let mut buf = Vec::with_capacity(n + len.min(FRAME_PREALLOC));
    buf.extend_from_slice(&header[..n]);
    let got = r.take(len as u64).read_to_end(&mut buf).await?;
    if got < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("packet cut short: {got} of {len} bytes"),
        ));
    }
    Ok(Some(Frame {
        bytes: Bytes::from(buf),
        body: n,
    }))
}

/// Splits a length-prefixed string off the front of `b`.
fn take_str<'a>(b: &mut &'a [u8], what: &str) -> Result<&'a str, String> {
    if b.len() < 2 {
        return Err(format!("{what}: truncated"));
    }
    let n = usize::from(u16::from_be_bytes([b[0], b[1]]));
    let s = b
        .get(2..2 + n)
        .ok_or_else(|| format!("{what}: {n} bytes announced, {} there", b.len() - 2))?;
    *b = &b[2 + n..];
    std::str::from_utf8(s).map_err(|_| format!("{what}: not UTF-8"))
}

fn take_u16(b: &mut &[u8], what: &str) -> Result<u16, String> {
    let v = b
        .get(..2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| format!("{what}: truncated"))?;
    *b = &b[2..];
    Ok(v)
}

fn parse_connect(mut b: &[u8]) -> Result<Connect, String> {
    let name = take_str(&mut b, "CONNECT protocol name")?;
    if !matches!(name, "MQTT" | "MQIsdp") {
        return Err(format!("CONNECT: protocol {name:?} is not MQTT"));
    }
    let (&level, rest) = b.split_first().ok_or("CONNECT: truncated")?;
    let (&flags, mut rest) = rest.split_first().ok_or("CONNECT: truncated")?;
    let clean_session = flags & 0x02 != 0;
    if !matches!(level, 3 | 4) {
        // MQTT 5: properties precede the client id; the front only passes such clients on.
        return Ok(Connect {
            level,
            clean_session,
            client_id: String::new(),
        });
    }
    take_u16(&mut rest, "CONNECT keep alive")?;
    let client_id = take_str(&mut rest, "CONNECT client id")?.to_owned();
    Ok(Connect {
        level,
        clean_session,
        client_id,
    })
}

#[derive(Debug, PartialEq)]
struct PublishRef<'a> {
    topic: &'a str,
    payload: &'a [u8],
    dup: bool,
}

fn parse_publish(flags: u8, mut b: &[u8]) -> Result<PublishRef<'_>, String> {
    let qos = (flags >> 1) & 3;
    if qos == 3 {
        return Err("PUBLISH: QoS 3".into());
    }
    let topic = take_str(&mut b, "PUBLISH topic")?;
    if qos > 0 {
        take_u16(&mut b, "PUBLISH packet id")?;
    }
    Ok(PublishRef {
        topic,
        payload: b,
        dup: flags & 0x08 != 0,
    })
}

fn parse_subscribe(mut b: &[u8]) -> Result<Vec<(String, u8)>, String> {
    take_u16(&mut b, "SUBSCRIBE packet id")?;
    let mut out = Vec::new();
    while !b.is_empty() {
        let f = take_str(&mut b, "SUBSCRIBE filter")?.to_owned();
        let (&q, rest) = b.split_first().ok_or("SUBSCRIBE: no QoS")?;
        b = rest;
        out.push((f, q & 3));
    }
    Ok(out)
}

fn parse_unsubscribe(mut b: &[u8]) -> Result<Vec<String>, String> {
    take_u16(&mut b, "UNSUBSCRIBE packet id")?;
    let mut out = Vec::new();
    while !b.is_empty() {
        out.push(take_str(&mut b, "UNSUBSCRIBE filter")?.to_owned());
    }
    Ok(out)
}

fn subscribe_packet(pkid: u16, filters: &[(String, u8)]) -> Bytes {
    let mut body = BytesMut::new();
    body.put_u16(pkid);
    for (f, q) in filters {
        // Filters came off the wire in a u16-prefixed string.
        body.put_u16(f.len() as u16);
        body.put_slice(f.as_bytes());
        body.put_u8(*q);
    }
    packet((SUBSCRIBE << 4) | 0x02, &body)
}

fn packet(first: u8, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(body.len() + 5);
    out.put_u8(first);
    let mut len = body.len();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.put_u8(b);
        if len == 0 {
            break;
        }
    }
    out.put_slice(body);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Vec<u8> {
        let mut v = (x.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(x.as_bytes());
        v
    }

    #[tokio::test]
    async fn frames_are_read_whole_and_lengths_checked() {
        let body = vec![7u8; 300];
        let p = packet(0x32, &body);
        assert_eq!(&p[..3], &[0x32, 0xac, 0x02]);
        let mut two = p.to_vec();
        two.extend_from_slice(&packet(0xc0, &[]));
        let mut r = &two[..];
        let f = read_frame(&mut r, 1000).await.unwrap().unwrap();
        assert_eq!((f.kind(), f.flags(), f.body()), (3, 2, &body[..]));
        let f = read_frame(&mut r, 1000).await.unwrap().unwrap();
        assert_eq!((f.kind(), f.body().len()), (12, 0));
        assert!(read_frame(&mut r, 1000).await.unwrap().is_none());
        let e = read_frame(&mut &p[..], 299).await.err().unwrap();
        assert!(e.to_string().contains("over the limit"), "{e}");
        let e = read_frame(&mut &[0x30u8, 0xff, 0xff, 0xff, 0xff, 1][..], 1 << 30)
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("longer than 4 bytes"), "{e}");
        // Cut short mid-body: an error, not a clean end.
        assert!(read_frame(&mut &p[..100], 1000).await.is_err());
        // Longer than the first buffer: it grows as the bytes come.
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let p = packet(0x30, &big);
        let f = read_frame(&mut &p[..], 1 << 20).await.unwrap().unwrap();
        assert_eq!(f.body(), &big[..]);
        let e = read_frame(&mut &p[..150_000], 1 << 20).await.err().unwrap();
        assert!(e.to_string().contains("cut short"), "{e}");
    }

    #[tokio::test]
    async fn connect_publish_subscribe_parse() {
        let mut c = s("MQTT");
        c.extend_from_slice(&[4, 0b1100_0000, 0, 30]);
        c.extend_from_slice(&s("gate-7"));
        let got = parse_connect(&c).unwrap();
        assert_eq!(
            got,
            Connect {
                level: 4,
                clean_session: false,
                client_id: "gate-7".into()
            }
        );
        assert!(got.readable());
        c[7] |= 0x02;
        assert!(parse_connect(&c).unwrap().clean_session);
        let mut v5 = s("MQTT");
        v5.extend_from_slice(&[5, 0x02, 0, 30, 0]);
        assert!(!parse_connect(&v5).unwrap().readable());
        assert!(parse_connect(&s("HTTP")).unwrap_err().contains("not MQTT"));
        assert!(parse_connect(&c[..9]).is_err());

        let mut p = s("hik/door-1/event");
        p.extend_from_slice(&[0, 9]);
        p.extend_from_slice(b"{\"a\":1}");
        let got = parse_publish(0b1010, &p).unwrap();
        assert_eq!(
            got,
            PublishRef {
                topic: "hik/door-1/event",
                payload: b"{\"a\":1}",
                dup: true
            }
        );
        // QoS 0 has no packet id: the two bytes are payload.
        assert_eq!(parse_publish(0, &p).unwrap().payload.len(), 9);
        assert!(parse_publish(0b0110, &p).unwrap_err().contains("QoS 3"));
        assert!(parse_publish(2, &p[..5]).unwrap_err().contains("topic"));
        let mut bad = s("x");
        bad[2] = 0xff;
        assert!(parse_publish(0, &bad).unwrap_err().contains("UTF-8"));

        let filters = vec![("a/+/b".to_owned(), 1), ("#".to_owned(), 0)];
        let sub = subscribe_packet(REPLAY_PKID, &filters);
        assert_eq!(sub[0], 0x82);
        let f = read_frame(&mut &sub[..], 1 << 20).await.unwrap().unwrap();
        assert_eq!(parse_subscribe(f.body()).unwrap(), filters);
        let mut u = vec![0, 3];
        u.extend_from_slice(&s("a/+/b"));
        assert_eq!(parse_unsubscribe(&u).unwrap(), vec!["a/+/b".to_owned()]);
        assert!(
            parse_subscribe(&[0, 1, 0, 1, b'a'])
                .unwrap_err()
                .contains("QoS")
        );
    }

    #[tokio::test]
    async fn sessions_survive_a_reopen_and_clean_sessions_are_forgotten() {
        let dir = std::env::temp_dir().join(format!("xl-sessions-{}", rand::random::<u64>()));
        let path = dir.join("broker-sessions.json");
        let s = Sessions::open(&path).unwrap();
        assert_eq!(s.connected("gate-1").await.unwrap(), None);
        s.change("gate-1", |subs| subs.push(("cmd/gate-1".into(), 1)))
            .await
            .unwrap();
        assert_eq!(s.connected("gate-2").await.unwrap(), None);
        drop(s);
        let s = Sessions::open(&path).unwrap();
        assert_eq!(
            s.connected("gate-1").await.unwrap(),
            Some(vec![("cmd/gate-1".to_owned(), 1)])
        );
        assert_eq!(s.connected("gate-2").await.unwrap(), Some(vec![]));
        s.forget("gate-2").await.unwrap();
        drop(s);
        let s = Sessions::open(&path).unwrap();
        assert_eq!(s.len(), 1);
        std::fs::write(&path, b"{ not json").unwrap();
        let e = Sessions::open(&path).err().unwrap();
        assert!(e.contains("not a sessions file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
