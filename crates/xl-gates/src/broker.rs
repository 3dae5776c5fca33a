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
//!   The front therefore remembers (`sessions.rs`: a snapshot and an fsynced journal of
//!   changes, bounded in filter length, filters, sessions per account and in all, and bytes)
//!   which clients connect with `clean_session = false` and what they subscribed to. When such
//!   a client returns after a restart, the front subscribes again for it and tells it its
//!   session is present, so it sends those messages again (dedup recognises any stored
//!   twice).
//!
//! Messages rumqttd queued for offline subscribers are still held in memory only (as with
//! Mosquitto between its autosaves); alerts carry their own outbox and are published again.
//! Other packets pass through unchanged. The hub's own clients (MQTT out) connect through the
//! front like any other, with the hub's own account.
//!
//! The front is also the broker's access control (who may do what: `access.rs`):
//! - it checks every CONNECT's username and password itself; a refused one gets its CONNACK
//!   (4 bad username or password, 5 not authorised, 2 identifier rejected) from the front and
//!   rumqttd never sees it. rumqttd takes only a login made at each start, which the front
//!   puts into every CONNECT it passes on, so a local process cannot go around the front.
//!   MQTT 5 CONNECTs are answered "unacceptable protocol version" (rumqttd's 3.1.1 server
//!   refused them anyway).
//! - a client id belongs to the account that uses it, live or in a remembered session; the
//!   hub's ids (`[mqtt] client_id` and all that start with it) are the hub's. A CONNECT with
//!   another's id is refused before anything reaches rumqttd or the sessions file.
//! - a PUBLISH on a gate topic is stored only for the account's own gates (and only gates that
//!   take MQTT); one on another topic passes only if the account may publish there, and
//!   `xueliang/...` is the hub's alone. A refused PUBLISH is acknowledged and dropped, as
//!   Mosquitto does with MQTT 3.1.1: rumqttd gets a stand-in with the same QoS and packet id
//!   on a topic nobody can subscribe to, so acknowledgements keep their order (QoS 2 too) and
//!   a persistent gate does not resend it forever. It is counted and logged (at most every
//!   10 s).
//! - a SUBSCRIBE's filters are granted only where the account's `subscribe` filters cover
//!   them; rumqttd gets the granted ones and the front merges 0x80 for the others into the
//!   SUBACK (or answers it alone when none is granted).
//!
//! MQTT 3.1.1 conformance (the front sees every packet; `tests/broker_conformance.rs` covers
//! the cases of the Eclipse Paho interoperability suite and these):
//! - keep-alive 0 ("off", 3.1.2.10), which rumqttd refuses without a CONNACK: rumqttd gets
//!   10 s instead, the front sends it a PINGREQ whenever it has sent nothing for 5 s and drops
//!   the PINGRESPs the client did not ask for.
//! - a second CONNECT on a connection closes it (MQTT-3.1.0-2; rumqttd ignored it).
//! - a filter over 256 bytes or starting with `$` is refused with 0x80 (rumqttd closed the
//!   connection of a client that asked for a `$` filter).
//! - Not corrected, because rumqttd does not pass on what the front would need: a message is
//!   delivered at the subscription's granted QoS, not at the minimum of that and the QoS it
//!   was published with (MQTT-3.8.4-6: a QoS 0 publish reaches a QoS 2 subscriber as QoS 2);
//!   a message sent again to a returning persistent client lacks the DUP flag
//!   (MQTT-3.3.1-1). Tests pin both. A client id with `+`, `#`, `/` or `$`, which rumqttd
//!   drops without a CONNACK, is answered "identifier rejected" (2) by the front.
//!
//! Connections: at most 1024 open (cut to what a quarter of the descriptor limit allows, at
//! three descriptors a connection) and 128 from one address; one beyond is closed at once and
//! counted (`shed_connections`). Accept errors (out of descriptors) back off from 10 ms to
//! 1 s and are logged at most every 10 s. Connections closed for bad packets, idleness or a
//! bound are logged five a minute with their peer, then summed up in one line a minute
//! (`shedding.rs`).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use xl_core::backoff::{Backoff, is_connection_error};
use xl_core::throttle::{LogThrottle, WARN_EVERY};

use crate::config::{MqttConfig, random_secret};
use crate::ingest::Ingest;
use crate::mqtt::{MqttStatus, ingest_message, topic_matches, warn_now};
use crate::writer::Outcome;

mod access;
use access::{Access, CONNACK_IDENTIFIER_REJECTED, CONNACK_NOT_AUTHORIZED, Grant};

const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const SUBSCRIBE: u8 = 8;
const SUBACK: u8 = 9;
const UNSUBSCRIBE: u8 = 10;
const PINGREQ: u8 = 12;
const PINGRESP: u8 = 13;

/// The keep-alive rumqttd gets for a client whose own is 0 ("off"); the front then pings
/// rumqttd every half of it.
const UPSTREAM_KEEP_ALIVE_SECS: u16 = 10;

/// The topic of the stand-in that rumqttd gets for a refused PUBLISH: a `$` topic, which no
/// wildcard matches and which no account may subscribe to.
const REFUSED_TOPIC: &str = "$xueliang/refused";
/// CONNACK "unacceptable protocol version".
const CONNACK_BAD_VERSION: u8 = 1;
/// Refusals a remote party can cause at will are logged at most every 10 s.
static CONNECT_REFUSED: Mutex<LogThrottle> = Mutex::new(LogThrottle::new(WARN_EVERY));
static PUBLISH_REFUSED: Mutex<LogThrottle> = Mutex::new(LogThrottle::new(WARN_EVERY));
static SUBSCRIBE_REFUSED: Mutex<LogThrottle> = Mutex::new(LogThrottle::new(WARN_EVERY));

/// Packets of one connection waiting to be forwarded (each may wait for a store).
const PIPELINE: usize = 256;
/// The packet id of the SUBSCRIBE the front sends for a returning client.
const REPLAY_PKID: u16 = 1;
/// How long a new connection may take to send its CONNECT (a gate sends it at once).
const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// Waits after an accept error (out of descriptors), doubling up to the maximum.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How long a graceful stop waits for connections to hand over what they hold.
const DRAIN: Duration = Duration::from_secs(3);
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
    let sessions = Arc::new(Sessions::open(
        &state_dir.join("broker-sessions.json"),
        sessions::Limits::DEFAULT,
    )?);
    // rumqttd's own login, which only the front knows: made here, never written down.
    let inner_login = (format!("front-{}", &random_secret()[..16]), random_secret());
    let creds = Some(inner_login.clone());
    let max = cfg.max_payload_bytes;
    let inner = tokio::task::spawn_blocking(move || start_rumqttd(max, creds))
        .await
        .map_err(|e| e.to_string())??;
    status.connected.store(true, Relaxed);
    if cfg.allow_anonymous {
        warn!(listen = %cfg.listen, "allow_anonymous = true: anyone who reaches the embedded MQTT broker may report for every MQTT gate and read every gate's payloads; give each gate or bridge an [[mqtt.accounts]] entry instead");
    } else if cfg.accounts.is_empty() {
        info!(
            "no [[mqtt.accounts]]: only the hub's own clients may log in to the embedded MQTT broker"
        );
    }
    info!(listen = %cfg.listen, sessions = sessions.len(), accounts = cfg.accounts.len(), "embedded MQTT broker listening");
    let front = Arc::new(Front {
        ingest,
        access: Access::new(&cfg),
        cfg,
        inner,
        inner_login,
        sessions,
        status,
        live: Mutex::new(HashMap::new()),
    });
    Ok(tokio::spawn(accept_loop(front, listener, shutdown)))
}

struct Front {
    ingest: Arc<Ingest>,
    cfg: MqttConfig,
    access: Access,
    inner: SocketAddr,
    /// rumqttd's username and password.
    inner_login: (String, String),
    sessions: Arc<Sessions>,
    status: Arc<MqttStatus>,
    /// Client ids of the open connections: the account that holds each, and how many
    /// connections use it (rumqttd closes the older one; both may be open for a moment).
    live: Mutex<HashMap<String, (String, usize)>>,
}

impl Front {
    /// The largest packet accepted: the payload limit plus room for topic and header.
    fn max_packet(&self) -> usize {
        self.cfg.max_payload_bytes + 65536
    }

    /// Whether `topic` is a gate topic (a `[[mqtt.subscriptions]]` filter matches it).
    fn is_gate_topic(&self, topic: &str) -> bool {
        self.cfg
            .subscriptions
            .iter()
            .any(|s| topic_matches(&s.filter, topic))
    }

    /// Decides a CONNECT: its login, its will, its client id. `Err` is the CONNACK return
    /// code to refuse it with. An accepted client id is held until the claim is dropped.
    fn admit(self: &Arc<Self>, c: &Connect) -> Result<(Arc<Grant>, LiveClaim), u8> {
        let grant = self
            .access
            .login(c.username.as_deref(), c.password.as_deref())?;
        // rumqttd publishes a will without the front seeing it: it must be a topic the
        // account may write, and never a gate topic (it would bypass the store).
        if let Some(w) = &c.will
            && !grant.hub
            && (self.is_gate_topic(&w.topic) || !grant.may_publish(&w.topic))
        {
            return Err(CONNACK_NOT_AUTHORIZED);
        }
        let id = &c.client_id;
        if id.is_empty() {
            return Ok((grant, LiveClaim(None)));
        }
        if !grant.hub && self.access.is_hub_client_id(id) {
            return Err(CONNACK_IDENTIFIER_REJECTED);
        }
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.get(id).is_some_and(|(owner, _)| *owner != grant.owner) {
            return Err(CONNACK_IDENTIFIER_REJECTED);
        }
        // A session remembered from before owners were recorded ("") goes to the first
        // account that uses its id.
        if self
            .sessions
            .owner(id)
            .is_some_and(|owner| !owner.is_empty() && owner != grant.owner)
        {
            return Err(CONNACK_IDENTIFIER_REJECTED);
        }
        live.entry(id.clone())
            .or_insert_with(|| (grant.owner.clone(), 0))
            .1 += 1;
        Ok((grant, LiveClaim(Some((Arc::clone(self), id.clone())))))
    }

    /// Counts and logs (at most every 10 s) a refused PUBLISH.
    fn refused_publish(&self, peer: SocketAddr, grant: &Grant, topic: &str, why: &str) {
        self.status.refused_publishes.fetch_add(1, Relaxed);
        if let Some(suppressed) = warn_now(&PUBLISH_REFUSED) {
            warn!(%peer, username = %grant.owner, topic = %shorten(topic), why, suppressed, "MQTT PUBLISH refused: acknowledged, not stored or passed on");
        }
    }
}

/// A client id held by an open connection; dropping it lets the id go.
struct LiveClaim(Option<(Arc<Front>, String)>);

impl Drop for LiveClaim {
    fn drop(&mut self) {
        if let Some((front, id)) = self.0.take() {
            let mut live = front.live.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, n)) = live.get_mut(&id) {
                *n -= 1;
                if *n == 0 {
                    live.remove(&id);
                }
            }
        }
    }
}

/// At most 128 characters of `s`, for a log line (topics and names come from the client).
fn shorten(s: &str) -> &str {
    match s.char_indices().nth(128) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Accepts connections while their number is within the bounds ([`shedding::connection_bounds`]);
/// one beyond them is closed at once and counted. Accept errors (out of descriptors) back
/// off from 10 ms to 1 s instead of spinning, and are logged at most every 10 s. Bad connections are logged a few a minute and
/// then summed up ([`shedding::BadLog`]).
async fn accept_loop(front: Arc<Front>, listener: TcpListener, shutdown: CancellationToken) {
    let mut conns = JoinSet::new();
    let bounds = Arc::new(shedding::connection_bounds(
        shedding::MAX_CONNECTIONS,
        shedding::MAX_CONNECTIONS_PER_ADDRESS,
        shedding::nofile_limit(),
    ));
    debug!(
        max_connections = bounds.max_total(),
        max_per_address = shedding::MAX_CONNECTIONS_PER_ADDRESS,
        "embedded MQTT broker: bounds on open connections"
    );
    let bad_log = Arc::new(Mutex::new(shedding::BadLog::default()));
    let mut flush = tokio::time::interval(shedding::BAD_LOG_WINDOW);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = Backoff::new(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
    let mut accept_log = LogThrottle::new(WARN_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff.reset();
                    let guard = match bounds.admit(peer.ip(), true) {
                        Ok(g) => g,
                        Err(refusal) => {
                            // Closed at once: the socket is dropped here.
                            front.status.shed_connections.fetch_add(1, Relaxed);
                            bad_connection(&bad_log, peer, shedding::refusal_reason(refusal));
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    front.status.connections.fetch_add(1, Relaxed);
                    let (f, s, log) = (Arc::clone(&front), shutdown.clone(), Arc::clone(&bad_log));
                    conns.spawn(async move {
                        let _guard = guard;
                        match serve(&f, stream, peer, s).await {
                            // A device speaking broken MQTT: the operator should hear of it,
                            // but a stranger's junk sockets must not flood the log.
                            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                                bad_connection(&log, peer, &e.to_string());
                            }
                            Err(e) => debug!(%peer, error = %e, "MQTT connection closed"),
                            Ok(()) => {}
                        }
                    });
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS: nothing to accept with until something closes.
                    let delay = backoff.next_exact();
                    if let Some(suppressed) = accept_log.admit(Instant::now()) {
                        warn!(error = %e, suppressed, backoff_ms = delay.as_millis() as u64, "cannot accept MQTT connections; backing off");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.cancelled() => break,
                    }
                }
            },
            Some(_) = conns.join_next() => {}
            _ = flush.tick() => {
                let summary = lock(&bad_log).flush(Instant::now());
                log_summary(summary);
            }
        }
    }
    drop(listener);
    front.status.connected.store(false, Relaxed);
    let _ = tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    conns.abort_all();
    info!("embedded MQTT broker stopped");
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Logs a connection closed for a bad packet, idleness or a bound, within the log's budget.
fn bad_connection(log: &Mutex<shedding::BadLog>, peer: SocketAddr, reason: &str) {
    let said = lock(log).record(Instant::now(), peer, reason);
    log_summary(said.summary);
    if said.one {
        warn!(%peer, reason = %shorten(reason), "MQTT connection closed: bad packet or over a bound (a few are logged a minute, then a summary)");
    }
}

fn log_summary(summary: Option<shedding::Summary>) {
    if let Some(s) = summary {
        warn!(more = s.held, last_peer = %s.peer, last_reason = %shorten(&s.reason), "{} more MQTT connections closed for bad packets or over a bound in the last minute", s.held);
    }
}

/// A packet on its way to rumqttd: now, or once its events are durable.
enum Pending {
    Ready(Bytes),
    Stored(oneshot::Receiver<Outcome>, Bytes),
}

/// What the client's CONNECT said (MQTT 3.1 and 3.1.1; of others only the level).
#[derive(Clone, PartialEq)]
struct Connect {
    /// `MQTT` or `MQIsdp`.
    protocol: String,
    level: u8,
    clean_session: bool,
    keep_alive: u16,
    client_id: String,
    will: Option<Will>,
    username: Option<String>,
    /// Never logged.
    password: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
struct Will {
    topic: String,
    message: Vec<u8>,
    qos: u8,
    retain: bool,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("protocol", &self.protocol)
            .field("level", &self.level)
            .field("clean_session", &self.clean_session)
            .field("keep_alive", &self.keep_alive)
            .field("client_id", &self.client_id)
            .field("will", &self.will)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Connect {
    /// MQTT 3.1 or 3.1.1: the packets the front reads.
    fn readable(&self) -> bool {
        matches!(self.level, 3 | 4)
    }

    /// The keep-alive rumqttd gets. 0 means "off" (MQTT 3.1.1, 3.1.2.10), which rumqttd
    /// refuses without a CONNACK; it gets [`UPSTREAM_KEEP_ALIVE_SECS`] instead and the front
    /// keeps that connection alive itself ([`forward`] pings, [`downstream`] drops the answers).
    fn upstream_keep_alive(&self) -> u16 {
        if self.keep_alive == 0 {
            UPSTREAM_KEEP_ALIVE_SECS
        } else {
            self.keep_alive
        }
    }

    /// The CONNECT that goes to rumqttd: this one with rumqttd's login in place of the
    /// client's.
    fn forwarded(&self, username: &str, password: &str) -> Bytes {
        let mut body = BytesMut::new();
        let put = |body: &mut BytesMut, b: &[u8]| {
            // Every field came off the wire with a u16 length, or is the front's own.
            body.put_u16(b.len() as u16);
            body.put_slice(b);
        };
        put(&mut body, self.protocol.as_bytes());
        body.put_u8(self.level);
        let mut flags = 0xc0 | (u8::from(self.clean_session) << 1);
        if let Some(w) = &self.will {
            flags |= 0x04 | (w.qos << 3) | (u8::from(w.retain) << 5);
        }
        body.put_u8(flags);
        body.put_u16(self.upstream_keep_alive());
        put(&mut body, self.client_id.as_bytes());
        if let Some(w) = &self.will {
            put(&mut body, w.topic.as_bytes());
            put(&mut body, &w.message);
        }
        put(&mut body, username.as_bytes());
        put(&mut body, password.as_bytes());
        packet(CONNECT << 4, &body)
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
    let mut client_w = client_w;
    if !connect.readable() {
        // MQTT 5: the front cannot check it, and rumqttd's 3.1.1 server refused it anyway.
        front.status.refused_connects.fetch_add(1, Relaxed);
        let _ = client_w
            .write_all(&[CONNACK << 4, 2, 0, CONNACK_BAD_VERSION])
            .await;
        return Ok(());
    }
    // rumqttd drops a CONNECT whose client id has one of these without a word (no CONNACK);
    // MQTT 3.1.1 lets a server refuse such ids, with "identifier rejected".
    let admitted = if connect.client_id.contains(['+', '#', '/', '$']) {
        Err(CONNACK_IDENTIFIER_REJECTED)
    } else {
        front.admit(&connect)
    };
    let (grant, _claim) = match admitted {
        Ok(admitted) => admitted,
        Err(code) => {
            front.status.refused_connects.fetch_add(1, Relaxed);
            if let Some(suppressed) = warn_now(&CONNECT_REFUSED) {
                warn!(%peer, username = connect.username.as_deref().map(shorten), client_id = %shorten(&connect.client_id), code, suppressed, "MQTT CONNECT refused");
            }
            let _ = client_w.write_all(&[CONNACK << 4, 2, 0, code]).await;
            let _ = client_w.shutdown().await;
            return Ok(());
        }
    };
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
    let (user, pass) = &front.inner_login;
    tx.send(Pending::Ready(connect.forwarded(user, pass)))
        .await
        .map_err(closed)?;
    drop(first);
    // Packets the front answers itself, and SUBACKs it completes, on their way to the client.
    let (reply_tx, reply_rx) = mpsc::channel::<Bytes>(PIPELINE);
    let plans = SubackPlans::default();
    let (accepted_tx, accepted_rx) = oneshot::channel();
    // The three directions run in this one task, so aborting it drops the connection whole.
    // The client side stops reading when rumqttd's side ends (or at shutdown); rumqttd's side
    // ends once the forwarder has handed over everything queued and closed its half.
    let ended = shutdown.child_token();
    let back_tx = tx.clone();
    // PINGREQs the front sent rumqttd for a client with keep-alive 0, not yet answered.
    let pings_owed = AtomicUsize::new(0);
    let client = Client {
        connect: &connect,
        grant: &grant,
        peer,
        plans: &plans,
        pings_owed: &pings_owed,
    };
    let back = async {
        let r = downstream(
            front,
            &client,
            up_r,
            client_w,
            back_tx,
            accepted_tx,
            reply_rx,
        )
        .await;
        ended.cancel();
        r
    };
    let reader = async {
        let r = match accepted_rx.await {
            Ok(true) => upstream_loop(front, &client, &mut client_r, &tx, &reply_tx, &ended).await,
            _ => Ok(()),
        };
        drop(tx);
        drop(reply_tx);
        r
    };
    let pinger = (connect.keep_alive == 0).then_some(&pings_owed);
    let ((), back, read) = tokio::join!(forward(rx, up_w, pinger), back, reader);
    read.and(back)
}

/// One accepted client, as the two directions of its connection see it.
struct Client<'a> {
    connect: &'a Connect,
    grant: &'a Grant,
    peer: SocketAddr,
    plans: &'a SubackPlans,
    pings_owed: &'a AtomicUsize,
}

/// SUBSCRIBEs passed on with some filters left out, by packet id: which of the client's
/// filters were granted, in its order, to complete rumqttd's SUBACK.
type SubackPlans = Mutex<HashMap<u16, Vec<bool>>>;

/// Reads the client's packets after an accepted CONNECT and queues them in order.
async fn upstream_loop(
    front: &Arc<Front>,
    client: &Client<'_>,
    client_r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    tx: &mpsc::Sender<Pending>,
    replies: &mpsc::Sender<Bytes>,
    shutdown: &CancellationToken,
) -> io::Result<()> {
    let (connect, peer) = (client.connect, client.peer);
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
                // MQTT-3.1.0-2: a protocol violation; rumqttd would ignore it.
                CONNECT => return Err(invalid("a second CONNECT on one connection")),
                PUBLISH => publish(front, &frame, peer, client.grant)?,
                SUBSCRIBE => {
                    let filters = parse_subscribe(frame.body()).map_err(invalid)?;
                    if filters.is_empty() {
                        return Err(invalid("SUBSCRIBE without a topic filter"));
                    }
                    let pkid = u16::from_be_bytes([frame.body()[0], frame.body()[1]]);
                    let granted: Vec<bool> = filters
                        .iter()
                        .map(|(f, _)| {
                            // Longer filters are refused, so no session holds one (the
                            // sessions file's bound); gates' topics are a few dozen bytes.
                            // rumqttd drops the connection of a client that asks for a `$`
                            // filter; MQTT 3.1.1 lets a server refuse it (0x80) instead.
                            f.len() <= sessions::Limits::DEFAULT.filter_bytes
                                && !f.starts_with('$')
                                && client.grant.may_subscribe(f)
                        })
                        .collect();
                    let refused: Vec<&str> = filters
                        .iter()
                        .zip(&granted)
                        .filter(|(_, g)| !**g)
                        .map(|((f, _), _)| f.as_str())
                        .collect();
                    if !refused.is_empty() {
                        front
                            .status
                            .refused_subscriptions
                            .fetch_add(refused.len() as u64, Relaxed);
                        if let Some(suppressed) = warn_now(&SUBSCRIBE_REFUSED) {
                            warn!(%peer, username = %client.grant.owner, filter = %shorten(refused[0]), refused = refused.len(), suppressed, "MQTT subscription refused (0x80)");
                        }
                    }
                    let all = granted.iter().all(|g| *g);
                    let kept: Vec<(String, u8)> = filters
                        .into_iter()
                        .zip(&granted)
                        .filter(|(_, g)| **g)
                        .map(|(f, _)| f)
                        .collect();
                    if !connect.clean_session && !kept.is_empty() {
                        let remember = kept.clone();
                        front
                            .sessions
                            .change(&connect.client_id, move |subs| {
                                for (f, q) in remember {
                                    subs.retain(|(g, _)| *g != f);
                                    subs.push((f, q));
                                }
                            })
                            .await?;
                    }
                    if kept.is_empty() {
                        // Nothing for rumqttd: the front answers alone.
                        let codes = vec![0x80; granted.len()];
                        replies
                            .send(suback_packet(pkid, &codes))
                            .await
                            .map_err(closed)?;
                        continue;
                    }
                    if all {
                        Pending::Ready(frame.bytes)
                    } else {
                        client
                            .plans
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(pkid, granted);
                        Pending::Ready(subscribe_packet(pkid, &kept))
                    }
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

/// A PUBLISH on a gate topic goes to the writer (only the events of the account's own gates);
/// the packet waits for it. One the account may not make is acknowledged and dropped:
/// rumqttd gets [`refused_stand_in`] instead.
fn publish(
    front: &Arc<Front>,
    frame: &Frame,
    peer: SocketAddr,
    grant: &Grant,
) -> io::Result<Pending> {
    let p = parse_publish(frame.flags(), frame.body()).map_err(invalid)?;
    let stand_in = || refused_stand_in(frame.flags(), frame.body());
    let Some(sub) = front
        .cfg
        .subscriptions
        .iter()
        .find(|s| topic_matches(&s.filter, p.topic))
    else {
        if grant.may_publish(p.topic) {
            return Ok(Pending::Ready(frame.bytes.clone()));
        }
        front.refused_publish(
            peer,
            grant,
            p.topic,
            "the account may not publish on this topic",
        );
        return Ok(Pending::Ready(stand_in()));
    };
    if !grant.reports_for_gates() {
        front.refused_publish(
            peer,
            grant,
            p.topic,
            "a gate topic, and the account reports for no gate",
        );
        return Ok(Pending::Ready(stand_in()));
    }
    front.status.messages.fetch_add(1, Relaxed);
    let (done_tx, done_rx) = oneshot::channel();
    let refused = ingest_message(
        &front.ingest,
        Some(sub),
        p.topic,
        p.payload,
        p.dup,
        Some(peer),
        Some(&grant.gates),
        move |outcome| {
            let _ = done_tx.send(outcome);
        },
    );
    if refused.is_empty() {
        return Ok(Pending::Stored(done_rx, frame.bytes.clone()));
    }
    // The events of its own gates (if any) are stored; subscribers get none of it.
    let why = format!(
        "events for gate(s) {} not the account's or taking HTTP push only",
        refused
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    front.refused_publish(peer, grant, p.topic, &why);
    Ok(Pending::Stored(done_rx, stand_in()))
}

/// What rumqttd gets in place of a refused PUBLISH: the same QoS, DUP flag and packet id (so
/// rumqttd acknowledges it in its turn, QoS 2 included), no retain flag, no payload, on
/// [`REFUSED_TOPIC`], which no client receives. `body` is a PUBLISH that parsed.
fn refused_stand_in(flags: u8, body: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u16(REFUSED_TOPIC.len() as u16);
    b.put_slice(REFUSED_TOPIC.as_bytes());
    if (flags >> 1) & 3 > 0 {
        let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
        b.put_slice(&body[2 + topic_len..4 + topic_len]);
    }
    packet((PUBLISH << 4) | (flags & 0x0e), &b)
}

/// Writes queued packets to rumqttd in order, each once it may go. A failed store closes the
/// connection with the packet unforwarded (so unacknowledged). With `pings` (a client with
/// keep-alive 0), a PINGREQ goes to rumqttd whenever it has heard nothing for half its
/// keep-alive, counted in `pings` so that [`downstream`] drops the PINGRESP.
async fn forward(
    mut rx: mpsc::Receiver<Pending>,
    mut up_w: tokio::net::tcp::OwnedWriteHalf,
    pings: Option<&AtomicUsize>,
) {
    let period = Duration::from_secs(u64::from(UPSTREAM_KEEP_ALIVE_SECS) / 2);
    let mut next_ping = tokio::time::Instant::now() + period;
    loop {
        let item = tokio::select! {
            item = rx.recv() => match item {
                Some(item) => item,
                None => break,
            },
            () = tokio::time::sleep_until(next_ping), if pings.is_some() => {
                if let Some(p) = pings {
                    p.fetch_add(1, Relaxed);
                }
                if up_w.write_all(&[PINGREQ << 4, 0]).await.is_err() {
                    return;
                }
                next_ping = tokio::time::Instant::now() + period;
                continue;
            }
        };
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
        next_ping = tokio::time::Instant::now() + period;
    }
    let _ = up_w.shutdown().await;
}

/// rumqttd to the client: the CONNACK (with the session restored when the front remembers
/// one), then everything else as it comes.
async fn downstream(
    front: &Front,
    client: &Client<'_>,
    up_r: tokio::net::tcp::OwnedReadHalf,
    mut client_w: tokio::net::tcp::OwnedWriteHalf,
    tx: mpsc::Sender<Pending>,
    accepted: oneshot::Sender<bool>,
    mut replies: mpsc::Receiver<Bytes>,
) -> io::Result<()> {
    let connect = client.connect;
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
            // The session belongs to the account that connected (its bound counts it).
            front
                .sessions
                .connected(&connect.client_id, &client.grant.owner)
                .await?
        };
        if let Some(mut subs) = restore.filter(|_| !session_present) {
            // Only what the account may still read (its rights may have changed since).
            subs.retain(|(f, _)| client.grant.may_subscribe(f));
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
    let mut replies_open = true;
    loop {
        tokio::select! {
            f = read_frame(&mut up_r, max) => {
                let Some(f) = f? else { break };
                // The answer to a PINGREQ of the front's own (keep-alive 0): not the client's.
                if f.kind() == PINGRESP
                    && client
                        .pings_owed
                        .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
                        .is_ok()
                {
                    continue;
                }
                let mut plan: Option<Vec<bool>> = None;
                if f.kind() == SUBACK && f.body().len() >= 2 {
                    let pkid = u16::from_be_bytes([f.body()[0], f.body()[1]]);
                    let mut plans = client.plans.lock().unwrap_or_else(|p| p.into_inner());
                    plan = plans.remove(&pkid);
                }
                match plan {
                    Some(granted) => client_w.write_all(&merge_suback(&granted, f.body())).await?,
                    None => client_w.write_all(&f.bytes).await?,
                }
            }
            r = replies.recv(), if replies_open => match r {
                Some(b) => client_w.write_all(&b).await?,
                None => replies_open = false,
            },
        }
    }
    client_w.shutdown().await
}

/// rumqttd's SUBACK for the granted filters, completed with 0x80 for the refused ones, in the
/// client's order.
fn merge_suback(granted: &[bool], body: &[u8]) -> Bytes {
    let pkid = u16::from_be_bytes([body[0], body[1]]);
    let mut theirs = body[2..].iter().copied();
    let codes: Vec<u8> = granted
        .iter()
        .map(|&g| {
            if g {
                theirs.next().unwrap_or(0x80)
            } else {
                0x80
            }
        })
        .collect();
    suback_packet(pkid, &codes)
}

fn suback_packet(pkid: u16, codes: &[u8]) -> Bytes {
    let mut body = BytesMut::with_capacity(2 + codes.len());
    body.put_u16(pkid);
    body.put_slice(codes);
    packet(SUBACK << 4, &body)
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

mod sessions;
mod shedding;
use sessions::Sessions;

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
    std::str::from_utf8(take_bytes(b, what)?).map_err(|_| format!("{what}: not UTF-8"))
}

fn take_u16(b: &mut &[u8], what: &str) -> Result<u16, String> {
    let v = b
        .get(..2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| format!("{what}: truncated"))?;
    *b = &b[2..];
    Ok(v)
}

/// Splits a length-prefixed byte string off the front of `b`.
fn take_bytes<'a>(b: &mut &'a [u8], what: &str) -> Result<&'a [u8], String> {
    if b.len() < 2 {
        return Err(format!("{what}: truncated"));
    }
    let n = usize::from(u16::from_be_bytes([b[0], b[1]]));
    let s = b
        .get(2..2 + n)
        .ok_or_else(|| format!("{what}: {n} bytes announced, {} there", b.len() - 2))?;
    *b = &b[2 + n..];
    Ok(s)
}

fn parse_connect(mut b: &[u8]) -> Result<Connect, String> {
    let name = take_str(&mut b, "CONNECT protocol name")?;
    if !matches!(name, "MQTT" | "MQIsdp") {
        return Err(format!("CONNECT: protocol {name:?} is not MQTT"));
    }
    let (&level, rest) = b.split_first().ok_or("CONNECT: truncated")?;
    let (&flags, mut rest) = rest.split_first().ok_or("CONNECT: truncated")?;
    let clean_session = flags & 0x02 != 0;
    let mut c = Connect {
        protocol: name.to_owned(),
        level,
        clean_session,
        keep_alive: 0,
        client_id: String::new(),
        will: None,
        username: None,
        password: None,
    };
    if !c.readable() {
        // MQTT 5: properties precede the client id; the front refuses such clients.
        return Ok(c);
    }
    c.keep_alive = take_u16(&mut rest, "CONNECT keep alive")?;
    c.client_id = take_str(&mut rest, "CONNECT client id")?.to_owned();
    if flags & 0x04 != 0 {
        let qos = (flags >> 3) & 3;
        if qos == 3 {
            return Err("CONNECT: will QoS 3".into());
        }
        c.will = Some(Will {
            topic: take_str(&mut rest, "CONNECT will topic")?.to_owned(),
            message: take_bytes(&mut rest, "CONNECT will message")?.to_vec(),
            qos,
            retain: flags & 0x20 != 0,
        });
    }
    if flags & 0x80 != 0 {
        c.username = Some(take_str(&mut rest, "CONNECT username")?.to_owned());
    }
    if flags & 0x40 != 0 {
        if c.username.is_none() {
            // MQTT-3.1.2-22
            return Err("CONNECT: a password without a username".into());
        }
        c.password = Some(take_bytes(&mut rest, "CONNECT password")?.to_vec());
    }
    Ok(c)
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
        c.extend_from_slice(&[4, 0, 0, 30]);
        c.extend_from_slice(&s("gate-7"));
        let got = parse_connect(&c).unwrap();
        assert_eq!(
            (
                got.level,
                got.clean_session,
                got.client_id.as_str(),
                got.keep_alive
            ),
            (4, false, "gate-7", 30)
        );
        assert!(got.readable());
        c[7] |= 0x02;
        assert!(parse_connect(&c).unwrap().clean_session);
        let mut v5 = s("MQTT");
        v5.extend_from_slice(&[5, 0x02, 0, 30, 0]);
        assert!(!parse_connect(&v5).unwrap().readable());
        assert!(parse_connect(&s("HTTP")).unwrap_err().contains("not MQTT"));
        assert!(parse_connect(&c[..9]).is_err());

        // A will, a username and a password: all read, and the password never shown.
        let mut full = s("MQIsdp");
        full.extend_from_slice(&[3, 0b1110_1110, 0, 60]);
        for f in [
            "gate-8",
            "gates/gate-8/status",
            "offline",
            "gate-8-user",
            "hunter2hunter2",
        ] {
            full.extend_from_slice(&s(f));
        }
        let got = parse_connect(&full).unwrap();
        assert_eq!(
            got.will,
            Some(Will {
                topic: "gates/gate-8/status".into(),
                message: b"offline".to_vec(),
                qos: 1,
                retain: true
            })
        );
        assert_eq!(got.username.as_deref(), Some("gate-8-user"));
        assert_eq!(got.password.as_deref(), Some(&b"hunter2hunter2"[..]));
        assert!(got.clean_session);
        assert!(!format!("{got:?}").contains("hunter2"));
        // What rumqttd gets: the same CONNECT with the front's login in place of the client's.
        let fwd = got.forwarded("front-1", "inner-secret");
        let f = read_frame(&mut &fwd[..], 1 << 20).await.unwrap().unwrap();
        assert_eq!(f.kind(), CONNECT);
        let again = parse_connect(f.body()).unwrap();
        assert_eq!(again.username.as_deref(), Some("front-1"));
        assert_eq!(again.password.as_deref(), Some(&b"inner-secret"[..]));
        assert_eq!(
            (
                again.protocol.as_str(),
                again.level,
                again.keep_alive,
                &again.client_id,
                &again.will
            ),
            ("MQIsdp", 3, 60, &got.client_id, &got.will)
        );
        // An anonymous CONNECT gets a login too.
        let anon = parse_connect(&c).unwrap().forwarded("u", "p");
        let f = read_frame(&mut &anon[..], 1 << 20).await.unwrap().unwrap();
        assert_eq!(
            parse_connect(f.body()).unwrap().username.as_deref(),
            Some("u")
        );
        // A password without a username is malformed (MQTT-3.1.2-22).
        let mut bad = s("MQTT");
        bad.extend_from_slice(&[4, 0x42, 0, 30]);
        bad.extend_from_slice(&s("x"));
        bad.extend_from_slice(&s("pw"));
        assert!(
            parse_connect(&bad)
                .unwrap_err()
                .contains("without a username")
        );

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
}
