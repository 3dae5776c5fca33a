//! The HTTP server: an accept loop on hyper's HTTP/1 connections, in place of `axum::serve`,
//! which has no header-read timeout and no bound on connections (300 sockets sending half a
//! request stayed open for good, and past the descriptor limit the API, MQTT accept and camera
//! file opens all failed with "Too many open files").
//!
//! What it adds, each a [`ServerLimits`] field (`[server]` in the hub's config):
//! - a connection must deliver a request's headers within `header_read_timeout`, counted from
//!   its start or the end of its previous response (so an idle keep-alive connection closes
//!   too); once a response streams (SSE) the timeout no longer applies;
//! - at most `max_connections` connections in all and `max_connections_per_address` from one
//!   address (trusted proxies count only toward the total: every user comes through them);
//!   a connection beyond a bound gets a best-effort `503` (total) or `429` (per address) and is
//!   closed at once. A WebSocket (or other upgraded) connection keeps its place until it ends;
//! - `max_connections` is cut to half the process's descriptor limit (see
//!   [`raise_nofile_limit`]), so that cameras, the store, MQTT and snapshot files always keep
//!   the other half;
//! - accept errors (EMFILE, ENFILE, ENOBUFS) back off from 10 ms up to 1 s instead of
//!   spinning, and are logged at most every 10 s with the number suppressed; so are refusals.
//!
//! Each request carries `ConnectInfo<SocketAddr>` (the socket's peer) as
//! `into_make_service_with_connect_info` gave it. Shutdown stops accepting, lets every
//! connection finish the request it is on and closes it; dropping the future closes the rest.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;
use tracing::{debug, info, warn};
use xl_core::backoff::{Backoff, is_connection_error};
use xl_core::connections::{ConnectionBounds, ConnectionGuard, Refusal};
use xl_core::throttle::{LogThrottle, WARN_EVERY};

use crate::TrustedProxies;

const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Descriptors the server leaves to the rest of the hub, as a share of the process's limit.
const FD_SHARE_DIVISOR: u64 = 2;

/// Bounds on the server's connections; [`Default`] is what the hub runs with.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Longest wait for a request's headers (from the connection's start, or from the end of
    /// the previous response on a kept-alive connection). Default 10 s.
    pub header_read_timeout: Duration,
    /// Open connections in all. Default 1024; never more than half the descriptor limit.
    pub max_connections: usize,
    /// Open connections from one address (not counting trusted proxies). Default 64: a
    /// browser opens at most 6 per host, plus one per open alert stream.
    pub max_connections_per_address: usize,
    /// Exempt from the per-address bound.
    pub trusted_proxies: TrustedProxies,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_connections_per_address: 64,
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (a process starts with 1024 soft, while
/// systemd and Docker allow far more hard) and returns the soft limit now in force.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Linux refuses an infinite descriptor limit (it is capped by fs.nr_open).
    let target = if lim.rlim_max == libc::RLIM_INFINITY {
        1 << 20
    } else {
        lim.rlim_max
    };
    if lim.rlim_cur < target {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(target);
        }
    }
    Ok(lim.rlim_cur)
}

/// The soft descriptor limit, when it can be read.
fn nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some(lim.rlim_cur)
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections finish
/// their current request and returns once they are closed. Dropping the future closes every
/// connection still open (upgraded ones excepted: they belong to their handlers).
pub async fn serve<F>(listener: TcpListener, app: Router, limits: ServerLimits, shutdown: F)
where
    F: Future<Output = ()> + Send,
{
    let mut limits = limits;
    if let Some(nofile) = nofile_limit() {
        let share = usize::try_from(nofile / FD_SHARE_DIVISOR).unwrap_or(usize::MAX);
        if limits.max_connections > share {
            warn!(
                max_connections = limits.max_connections,
                nofile_limit = nofile,
                used = share,
                "[server] max_connections is more than half the descriptor limit; using half"
            );
            limits.max_connections = share;
        }
    }
    let bounds = Arc::new(ConnectionBounds::new(
        limits.max_connections,
        limits.max_connections_per_address,
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    // Refused connections and accept errors are logged at most every WARN_EVERY.
    let mut refused_log = LogThrottle::new(WARN_EVERY);
    let mut accept_log = LogThrottle::new(WARN_EVERY);
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff.reset();
                a
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                let fd_exhausted = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                let delay = backoff.next_exact();
                if let Some(suppressed) = accept_log.admit(Instant::now()) {
                    warn!(
                        error = %e,
                        fd_exhausted,
                        suppressed,
                        backoff_ms = delay.as_millis() as u64,
                        "cannot accept HTTP connections; backing off"
                    );
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = &mut shutdown => break,
                }
                continue;
            }
        };
        let per_address = !limits.trusted_proxies.contains(peer.ip());
        let guard = match bounds.admit(peer.ip(), per_address) {
            Ok(g) => g,
            Err(refusal) => {
                // Best effort and without waiting: the socket is closed right after.
                let _ = stream.try_write(refusal_response(refusal));
                if let Some(suppressed) = refused_log.admit(Instant::now()) {
                    warn!(
                        peer = %peer.ip(),
                        reason = refusal_reason(refusal),
                        suppressed,
                        "HTTP connection refused"
                    );
                }
                continue;
            }
        };
        let io = TokioIo::new(Counted {
            io: stream,
            _guard: guard,
        });
        let svc = app
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
        let svc = TowerToHyperService::new(svc);
        let header_timeout = limits.header_read_timeout;
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder.serve_connection(io, svc).with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        debug!(%peer, error = %e, "HTTP connection ended with an error");
                    }
                    return;
                }
                _ = stop.wait_for(|s| *s) => {}
            }
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.await {
                debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    if !tasks.is_empty() {
        info!(
            connections = tasks.len(),
            "HTTP server stopping; waiting for requests in flight"
        );
    }
    while tasks.join_next().await.is_some() {}
}

/// The best-effort answer to a connection over a bound: 503 (in all) or 429 (per address).
fn refusal_response(refusal: Refusal) -> &'static [u8] {
    match refusal {
        Refusal::Total => {
            b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\nretry-after: 1\r\n\r\n"
        }
        Refusal::PerAddress => {
            b"HTTP/1.1 429 Too Many Requests\r\nconnection: close\r\ncontent-length: 0\r\nretry-after: 1\r\n\r\n"
        }
    }
}

/// The [`ServerLimits`] field that refused a connection, for the log.
fn refusal_reason(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::Total => "max_connections",
        Refusal::PerAddress => "max_connections_per_address",
    }
}

/// The socket with its [`ConnectionGuard`]: an upgraded connection (WebSocket) takes the socket
/// away from hyper, and keeps its place until the socket is dropped.
struct Counted {
    io: TcpStream,
    _guard: ConnectionGuard,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
