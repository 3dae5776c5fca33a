//! The HTTP server's bounds over real TCP on port 0: header timeout, connection bounds in all
//! and per address, upgrades, the client's address, shutdown.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use xl_api::server::{ServerLimits, raise_nofile_limit, serve};

/// Generous: "eventually", not a timing claim.
const DEADLINE: Duration = Duration::from_secs(30);

async fn peer(ConnectInfo(addr): ConnectInfo<SocketAddr>) -> String {
    addr.ip().to_string()
}

/// Answers 101 and echoes what comes over the upgraded connection.
async fn echo_upgrade(mut req: Request) -> Response {
    let Some(on) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    tokio::spawn(async move {
        let Ok(up) = on.await else { return };
        let mut io = TokioIo::new(up);
        let mut buf = [0u8; 64];
        while let Ok(n) = io.read(&mut buf).await {
            if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [(header::CONNECTION, "upgrade"), (header::UPGRADE, "echo")],
    )
        .into_response()
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

async fn start(limits: ServerLimits) -> Server {
    raise_nofile_limit().unwrap();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/peer", get(peer))
        .route("/upgrade", get(echo_upgrade));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app, limits, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        stop: Some(stop),
        task,
    }
}

fn limits(header_secs: u64, total: usize, per_address: usize) -> ServerLimits {
    ServerLimits {
        header_read_timeout: Duration::from_secs(header_secs),
        max_connections: total,
        max_connections_per_address: per_address,
        ..ServerLimits::default()
    }
}

/// A TCP connection to `server` from source address `from` (any 127/8 address works on Linux).
async fn connect_from(from: &str, server: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(from.parse().unwrap(), 0)).unwrap();
    s.connect(server).await.unwrap()
}

/// `GET path` on a fresh connection from `from`: the status and body, or `None` when the
/// connection was refused or closed.
async fn get_from(from: &str, server: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = connect_from(from, server).await;
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// Reads until the server closes the connection (EOF or reset); what it sent.
async fn until_closed(s: &mut TcpStream) -> Result<String, &'static str> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .map_err(|_| "still open")?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Finding 4: 300 connections sending half a request were all open after 60 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_requests_and_idle_connections_are_closed_after_the_header_timeout() {
    let server = start(limits(2, 1000, 1000)).await;
    let mut flood = Vec::new();
    for i in 0..320 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        if i < 300 {
            // Half a request: the request line and one header, never the blank line.
            s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
                .await
                .unwrap();
        }
        flood.push(s);
    }
    // The API answers during the flood.
    assert_eq!(
        get_from("127.0.0.1", server.addr, "/healthz").await,
        Some((200, "ok".into()))
    );
    for (i, s) in flood.iter_mut().enumerate() {
        until_closed(s)
            .await
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_per_address_bound_are_refused_and_others_still_answered() {
    let server = start(limits(60, 1000, 5)).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from("127.0.0.1", server.addr).await);
    }
    // The sixth from that address: 429 and closed.
    let mut sixth = connect_from("127.0.0.1", server.addr).await;
    let answer = until_closed(&mut sixth).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer:?}");
    // Another address is answered.
    assert_eq!(
        get_from("127.0.0.2", server.addr, "/healthz").await,
        Some((200, "ok".into()))
    );
    // Room made at the first address is used again (once the server has seen the close).
    drop(held.pop());
    let t0 = Instant::now();
    loop {
        if get_from("127.0.0.1", server.addr, "/healthz").await == Some((200, "ok".into())) {
            break;
        }
        assert!(t0.elapsed() < DEADLINE, "the freed place never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_total_bound_are_refused() {
    let server = start(limits(60, 4, 4)).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from("127.0.0.1", server.addr).await);
    }
    let mut fifth = connect_from("127.0.0.3", server.addr).await;
    let answer = until_closed(&mut fifth).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
}

/// WebSocket-style upgrades work through the server, and an upgraded connection keeps its
/// place in the bounds until it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgraded_connections_work_and_keep_their_place() {
    let server = start(limits(60, 1, 1)).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        b"GET /upgrade HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).await.unwrap(), 1, "{head:?}");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    s.write_all(b"ping").await.unwrap();
    let mut pong = [0u8; 4];
    s.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"ping");
    // Its place is still taken.
    let mut other = TcpStream::connect(server.addr).await.unwrap();
    let answer = until_closed(&mut other).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    drop(s);
    let t0 = Instant::now();
    while get_from("127.0.0.1", server.addr, "/healthz").await != Some((200, "ok".into())) {
        assert!(
            t0.elapsed() < DEADLINE,
            "the upgraded connection's place never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Handlers see the socket's address, and shutdown returns once kept-alive connections close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_see_the_peer_and_shutdown_closes_idle_connections() {
    let mut server = start(ServerLimits::default()).await;
    assert_eq!(
        get_from("127.0.0.2", server.addr, "/peer").await,
        Some((200, "127.0.0.2".into()))
    );
    // A kept-alive connection, idle after its request.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let _ = server.stop.take().unwrap().send(());
    tokio::time::timeout(DEADLINE, &mut server.task)
        .await
        .expect("serve returned after shutdown")
        .unwrap();
    until_closed(&mut idle).await.unwrap();
    let refused = TcpStream::connect(server.addr).await;
    assert!(refused.is_err(), "no longer listening");
}
