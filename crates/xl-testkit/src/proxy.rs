//! A TCP proxy on a loopback port that forwards to one upstream and can be cut and healed, to
//! partition a client (a hub node) from a server (NATS) in tests.
//!
//! Plain std threads, so it works from any test (sync or async, any runtime) and outlives
//! runtimes: one accept thread, two copy threads per forwarded connection.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::Context;

/// How long the proxy waits for the upstream to accept a forwarded connection.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Forwards every connection made to [`TcpProxy::addr`] to the upstream, both ways.
///
/// [`TcpProxy::cut`] closes every forwarded connection and, until [`TcpProxy::heal`], accepts
/// new ones only to close them at once (the client sees its connection reset or closed right
/// after connecting, as when a firewall between it and the server rejects it). Dropping the
/// proxy cuts everything and stops it.
pub struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<thread::JoinHandle<()>>,
}

struct Shared {
    upstream: SocketAddr,
    cut: AtomicBool,
    stopping: AtomicBool,
    next_id: AtomicU64,
    /// Both sockets of every live forwarded connection, by connection id, so that `cut` can
    /// shut them down.
    conns: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> anyhow::Result<TcpProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("binding the proxy's loopback port")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            cut: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
        });
        let accept_thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("tcp-proxy-{}", addr.port()))
                .spawn(move || accept_loop(listener, shared))
                .context("spawning the proxy's accept thread")?
        };
        tracing::debug!(%addr, %upstream, "tcp proxy started");
        Ok(TcpProxy {
            addr,
            shared,
            accept_thread: Some(accept_thread),
        })
    }

    /// The address clients connect to (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `nats://127.0.0.1:PORT`: the proxy's address as a NATS URL.
    pub fn nats_url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// The upstream it forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Closes every forwarded connection and refuses new ones (accepts and closes them at
    /// once) until [`TcpProxy::heal`].
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        self.shared.close_all();
        tracing::debug!(addr = %self.addr, "tcp proxy cut");
    }

    /// Forwards new connections again after [`TcpProxy::cut`].
    pub fn heal(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
        tracing::debug!(addr = %self.addr, "tcp proxy healed");
    }

    /// Whether the proxy is cut.
    pub fn is_cut(&self) -> bool {
        self.shared.cut.load(Ordering::SeqCst)
    }

    /// How many forwarded connections are open now.
    pub fn open_connections(&self) -> usize {
        self.shared.lock_conns().len()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.close_all();
        // Wake the accept thread, blocked in accept(), so that it sees `stopping`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for TcpProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("cut", &self.is_cut())
            .finish()
    }
}

impl Shared {
    fn lock_conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (TcpStream, TcpStream)>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close_all(&self) {
        // Shutting the sockets down wakes the copy threads, which then forget the connection.
        for (client, upstream) in self.lock_conns().values() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "tcp proxy: accept failed");
                // EMFILE and friends: don't spin.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if shared.cut.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        if let Err(e) = forward(client, &shared) {
            tracing::debug!(error = %format!("{e:#}"), "tcp proxy: not forwarding a connection");
        }
    }
}

fn forward(client: TcpStream, shared: &Arc<Shared>) -> anyhow::Result<()> {
    let upstream = TcpStream::connect_timeout(&shared.upstream, UPSTREAM_CONNECT_TIMEOUT)
        .with_context(|| format!("connecting to upstream {}", shared.upstream))?;
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    {
        let mut conns = shared.lock_conns();
        // A cut between the check in the accept loop and here must not leave this one open.
        if shared.cut.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
            return Ok(());
        }
        conns.insert(id, (client.try_clone()?, upstream.try_clone()?));
    }
    let done = Arc::new(AtomicU64::new(0));
    for (from, to, dir) in [
        (client.try_clone()?, upstream.try_clone()?, "up"),
        (upstream, client, "down"),
    ] {
        let shared = Arc::clone(shared);
        let done = Arc::clone(&done);
        thread::Builder::new()
            .name(format!("tcp-proxy-{id}-{dir}"))
            .spawn(move || {
                let _ = copy(from, &to);
                // Half-close: the peer sees EOF, as it would without the proxy.
                let _ = to.shutdown(Shutdown::Write);
                // The second thread to finish forgets the connection.
                if done.fetch_add(1, Ordering::SeqCst) == 1
                    && let Some((a, b)) = shared.lock_conns().remove(&id)
                {
                    let _ = a.shutdown(Shutdown::Both);
                    let _ = b.shutdown(Shutdown::Both);
                }
            })?;
    }
    Ok(())
}

fn copy(mut from: TcpStream, mut to: &TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
    }
}
