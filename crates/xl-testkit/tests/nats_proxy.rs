//! The NATS test server and the cutting TCP proxy.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use xl_testkit::{NatsServer, TcpProxy};

/// Reads the server's greeting line (`INFO {...}`), which proves a NATS server answers.
fn nats_info(addr: std::net::SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn nats_server_starts_restarts_on_the_same_port_and_stops() -> anyhow::Result<()> {
    let mut server = NatsServer::start()?;
    assert!(server.is_running());
    assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
    let info = nats_info(server.addr())?;
    assert!(info.starts_with("INFO "), "{info}");
    assert!(info.contains("\"jetstream\":true"), "{info}");

    let port = server.port();
    server.restart()?;
    assert_eq!(server.port(), port);
    assert!(nats_info(server.addr())?.starts_with("INFO "));
    // JetStream keeps its state in the store dir across the restart.
    assert!(server.store_dir().join("jetstream").is_dir());

    server.stop();
    assert!(!server.is_running());
    assert!(TcpStream::connect_timeout(&server.addr(), Duration::from_secs(1)).is_err());
    Ok(())
}

/// An echo server on a loopback port.
fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn echo(conn: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    conn.write_all(msg)?;
    let mut got = vec![0u8; msg.len()];
    conn.read_exact(&mut got)?;
    Ok(got)
}

fn connect(proxy: &TcpProxy) -> TcpStream {
    let c = TcpStream::connect(proxy.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

#[test]
fn proxy_forwards_cuts_and_heals() {
    let proxy = TcpProxy::start(echo_server()).unwrap();
    let mut conn = connect(&proxy);
    assert_eq!(echo(&mut conn, b"hello").unwrap(), b"hello");

    proxy.cut();
    assert!(proxy.is_cut());
    // The open connection is closed: reads see EOF or an error, never the echo.
    let mut buf = [0u8; 16];
    let _ = conn.write_all(b"x");
    assert!(matches!(conn.read(&mut buf), Ok(0) | Err(_)));
    // New ones are closed at once.
    let mut fresh = connect(&proxy);
    let _ = fresh.write_all(b"x");
    assert!(matches!(fresh.read(&mut buf), Ok(0) | Err(_)));
    // The forgotten connections are cleaned up.
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.open_connections() > 0 {
        assert!(
            Instant::now() < deadline,
            "connections still open after the cut"
        );
        thread::sleep(Duration::from_millis(10));
    }

    proxy.heal();
    let mut healed = connect(&proxy);
    assert_eq!(echo(&mut healed, b"again").unwrap(), b"again");
    assert_eq!(proxy.open_connections(), 1);
    healed.shutdown(Shutdown::Both).unwrap();
}
