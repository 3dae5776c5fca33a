//! A real NATS server with JetStream for tests: `nats-server -a 127.0.0.1 -p PORT -js -sd DIR`,
//! optionally requiring a user and password (`--user`, `--pass`), a token (`--auth`), or a
//! user JWT signed by its account (operator mode, `-c` with an operator, an account and its
//! users made by [`crate::nats_jwt`]).
//!
//! The binary is nats-server 2.15.1 from `scripts/ensure-nats` (path in `XUELIANG_NATS_SERVER`,
//! which `scripts/setup` prints). Debian's 2.9.10 is too old for async-nats' key-value buckets.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use crate::TempDir;
use crate::nats_jwt::Decentralized;

/// How long [`NatsServer::start`] waits for the server to accept TCP connections.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`NatsServer::restart`] retries while the old port is still taken.
const RESTART_BIND_RETRY: Duration = Duration::from_secs(10);
/// Fresh ports [`NatsServer::start`] tries when another process takes the free port it found
/// before the server binds it.
const START_ATTEMPTS: usize = 5;
/// Lines of the server's log kept for error messages.
const LOG_TAIL_LINES: usize = 200;

/// The env var naming the nats-server binary.
pub const NATS_SERVER_ENV: &str = "XUELIANG_NATS_SERVER";

/// A nats-server process with JetStream on a free loopback port, its store in a scratch
/// directory. Killed (and the directory removed) on drop.
///
/// A test process killed with SIGKILL leaves the server running (nothing here can catch
/// that); its port and directory are unique, so later runs do not collide with it.
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    store: TempDir,
    process: Option<Child>,
    log_tail: Arc<Mutex<VecDeque<String>>>,
    auth: ServerAuth,
}

/// What the server requires of its clients.
#[derive(Default)]
enum ServerAuth {
    #[default]
    None,
    User {
        user: String,
        password: String,
    },
    Token(String),
    /// Operator mode: the config file and the users' `.creds` files, in `_dir`.
    Operator {
        _dir: TempDir,
        config: PathBuf,
        creds: PathBuf,
        unknown_account_creds: PathBuf,
    },
}

impl ServerAuth {
    /// The nats-server arguments that require it.
    fn args(&self) -> Vec<&OsStr> {
        match self {
            ServerAuth::None => Vec::new(),
            ServerAuth::User { user, password } => {
                vec![
                    "--user".as_ref(),
                    user.as_ref(),
                    "--pass".as_ref(),
                    password.as_ref(),
                ]
            }
            ServerAuth::Token(token) => vec!["--auth".as_ref(), token.as_ref()],
            ServerAuth::Operator { config, .. } => vec!["-c".as_ref(), config.as_ref()],
        }
    }

    /// A fresh operator, account and users ([`Decentralized`]), written to a scratch
    /// directory: `server.conf`, `user.creds` and `unknown-account.creds`.
    fn operator() -> anyhow::Result<ServerAuth> {
        let keys = Decentralized::generate()?;
        let dir = TempDir::new("nats-operator")?;
        let write = |name: &str, contents: &str| -> anyhow::Result<PathBuf> {
            let path = dir.path.join(name);
            std::fs::write(&path, contents)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        };
        let config = write("server.conf", &keys.server_config())?;
        let creds = write("user.creds", &keys.user_creds)?;
        let unknown_account_creds =
            write("unknown-account.creds", &keys.unknown_account_user_creds)?;
        Ok(ServerAuth::Operator {
            _dir: dir,
            config,
            creds,
            unknown_account_creds,
        })
    }
}

impl NatsServer {
    /// Starts a server on a free loopback port and waits until it accepts connections.
    ///
    /// Fails naming `scripts/ensure-nats` when `XUELIANG_NATS_SERVER` is unset or names no
    /// file.
    pub fn start() -> anyhow::Result<NatsServer> {
        Self::start_with(ServerAuth::None)
    }

    /// Like [`NatsServer::start`], but clients must give this user and password
    /// (`nats-server --user USER --pass PASSWORD`); others are refused with an authorization
    /// violation.
    pub fn start_with_user(user: &str, password: &str) -> anyhow::Result<NatsServer> {
        Self::start_with(ServerAuth::User {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    /// Like [`NatsServer::start`], but clients must give this token
    /// (`nats-server --auth TOKEN`).
    pub fn start_with_token(token: &str) -> anyhow::Result<NatsServer> {
        Self::start_with(ServerAuth::Token(token.to_owned()))
    }

    /// Like [`NatsServer::start`], but in operator mode (NATS decentralized auth): a fresh
    /// operator and one account with JetStream, preloaded in memory (`resolver: MEMORY`).
    /// Clients log in with a user JWT and its seed: [`NatsServer::creds_file`] is a user of
    /// that account; a user of another account
    /// ([`NatsServer::unknown_account_creds_file`]) is refused with an authorization
    /// violation.
    pub fn start_with_operator() -> anyhow::Result<NatsServer> {
        Self::start_with(ServerAuth::operator()?)
    }

    fn start_with(auth: ServerAuth) -> anyhow::Result<NatsServer> {
        let binary = binary()?;
        let store = TempDir::new("nats")?;
        let log_tail = Arc::new(Mutex::new(VecDeque::new()));
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            match spawn(&binary, port, &store.path, &auth, &log_tail) {
                Ok(child) => {
                    return Ok(NatsServer {
                        binary,
                        port,
                        store,
                        process: Some(child),
                        log_tail,
                        auth,
                    });
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("nats-server did not start")))
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The user and password clients must give ([`NatsServer::start_with_user`]).
    pub fn user_and_password(&self) -> Option<(&str, &str)> {
        match &self.auth {
            ServerAuth::User { user, password } => Some((user, password)),
            _ => None,
        }
    }

    /// The token clients must give ([`NatsServer::start_with_token`]).
    pub fn token(&self) -> Option<&str> {
        match &self.auth {
            ServerAuth::Token(token) => Some(token),
            _ => None,
        }
    }

    /// The `.creds` file (user JWT and seed) of a user of the server's account
    /// ([`NatsServer::start_with_operator`]).
    pub fn creds_file(&self) -> Option<&Path> {
        match &self.auth {
            ServerAuth::Operator { creds, .. } => Some(creds),
            _ => None,
        }
    }

    /// The `.creds` file of a user signed by an account key the server does not know
    /// ([`NatsServer::start_with_operator`]); the server refuses it.
    pub fn unknown_account_creds_file(&self) -> Option<&Path> {
        match &self.auth {
            ServerAuth::Operator {
                unknown_account_creds,
                ..
            } => Some(unknown_account_creds),
            _ => None,
        }
    }

    /// The port the server listens on (stays the same across [`NatsServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, e.g. for a [`crate::TcpProxy`] in front of the server.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The JetStream store directory (kept across [`NatsServer::restart`]).
    pub fn store_dir(&self) -> &std::path::Path {
        &self.store.path
    }

    /// The server's process id while it runs (e.g. to read its CPU time from `/proc`); `None`
    /// once stopped. Changes across [`NatsServer::restart`].
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    /// Whether the server process is up (started and not stopped).
    pub fn is_running(&mut self) -> bool {
        match &mut self.process {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server abruptly (SIGKILL, like a crashed host) and waits for it. Clients see
    /// their connections reset. A no-op when already stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
            tracing::debug!(port = self.port, "nats test server stopped");
        }
    }

    /// Stops the server if running and starts it again on the same port with the same store
    /// directory (and credentials), so JetStream streams (key-value buckets) and their data survive. Retries for
    /// a while if the port is still taken.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let deadline = Instant::now() + RESTART_BIND_RETRY;
        loop {
            match spawn(
                &self.binary,
                self.port,
                &self.store.path,
                &self.auth,
                &self.log_tail,
            ) {
                Ok(child) => {
                    self.process = Some(child);
                    return Ok(());
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(port = self.port, error = %format!("{e:#}"), "nats restart: retrying");
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The last lines the server logged, for test failure messages.
    pub fn log_tail(&self) -> String {
        join_tail(&self.log_tail)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsServer")
            .field("port", &self.port)
            .field("store", &self.store.path)
            .field("running", &self.process.is_some())
            .field(
                "auth",
                &match self.auth {
                    ServerAuth::None => "none",
                    ServerAuth::User { .. } => "user",
                    ServerAuth::Token(_) => "token",
                    ServerAuth::Operator { .. } => "operator",
                },
            )
            .finish()
    }
}

/// Starts nats-server on `port` with its JetStream store in `store`, requiring `auth` of its
/// clients, and waits until it accepts connections; its log goes into `log_tail`.
fn spawn(
    binary: &Path,
    port: u16,
    store: &Path,
    auth: &ServerAuth,
    log_tail: &Arc<Mutex<VecDeque<String>>>,
) -> anyhow::Result<Child> {
    let mut child = Command::new(binary)
        .arg("-a")
        .arg("127.0.0.1")
        .arg("-p")
        .arg(port.to_string())
        .arg("-js")
        .arg("-sd")
        .arg(store)
        .args(auth.args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    // nats-server logs to stderr; drain it for the server's whole life (a full pipe would
    // block it) and keep the tail for error messages.
    let stderr = child.stderr.take().expect("stderr is piped");
    let tail = Arc::clone(log_tail);
    let (ready_tx, ready_rx) = mpsc::channel();
    thread::Builder::new()
        .name("nats-server-log".into())
        .spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                tracing::trace!(target: "xl_testkit::nats_server", "{line}");
                if line.contains("Server is ready") {
                    let _ = ready_tx.send(());
                }
                let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                if tail.len() == LOG_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        })?;

    let deadline = Instant::now() + READY_TIMEOUT;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut ready = false;
    loop {
        if let Some(status) = child.try_wait()? {
            // Give the log thread a moment to collect the reason.
            thread::sleep(Duration::from_millis(50));
            bail!(
                "nats-server on port {} exited before accepting connections ({status}); its log:\n{}",
                port,
                join_tail(log_tail)
            );
        }
        // "Server is ready" comes after JetStream is enabled and the client listener is open;
        // the connection then proves the port is this server's, not another process's.
        ready = ready || ready_rx.try_recv().is_ok();
        if ready && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            tracing::debug!(port = port, "nats test server ready");
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "nats-server on port {} not accepting connections after {} s; its log:\n{}",
                port,
                READY_TIMEOUT.as_secs(),
                join_tail(log_tail)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn join_tail(tail: &Mutex<VecDeque<String>>) -> String {
    let tail = tail.lock().unwrap_or_else(|e| e.into_inner());
    tail.iter().map(|l| format!("{l}\n")).collect()
}

fn binary() -> anyhow::Result<PathBuf> {
    let Some(path) = std::env::var_os(NATS_SERVER_ENV).filter(|p| !p.is_empty()) else {
        bail!(
            "{NATS_SERVER_ENV} is not set: run scripts/ensure-nats (or scripts/setup) and \
             export the XUELIANG_NATS_SERVER=... line it prints"
        );
    };
    let path = PathBuf::from(path);
    if !path.is_file() {
        bail!(
            "{NATS_SERVER_ENV}={} is not a file: run scripts/ensure-nats to install nats-server 2.15.1",
            path.display()
        );
    }
    Ok(path)
}

/// A loopback port nothing listens on right now (the OS picks it; it may be taken again before
/// the caller binds it, hence the retries in [`NatsServer::start`]).
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding a free port")?;
    Ok(listener.local_addr()?.port())
}
