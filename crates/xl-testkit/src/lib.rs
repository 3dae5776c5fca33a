//! Test helpers for Xueliang: real test media, a real RTSP server replaying camera-like clips,
//! and misbehaving peers.
//!
//! Dev-dependency only. Everything here talks to real processes and sockets:
//!
//! - [`media_dir`] / [`test_clips`]: the fetched test media (`vtest.avi`, a real CCTV-style
//!   scene) and the camera-like clips `scripts/make-test-clips` makes from it, cached under
//!   `$XUELIANG_CACHE` (default `~/.cache/xueliang`).
//! - [`RtspServer`]: `rtsp_server.py` (gst-rtsp-server under Debian's `/usr/bin/python3`), one
//!   shared live stream per mount, each replaying a clip forever.
//! - [`garbage_rtsp_server`], [`silent_rtsp_server`]: peers that answer junk or nothing.
//! - [`ffmpeg_pull`]: pulls a stream with the `ffmpeg` CLI, an independent client to check a
//!   server (or our own RTSP output) against.
//! - [`split_access_units`], [`is_key_frame`], [`clip_access_units`]: an Annex B clip cut into
//!   the access units a camera would send, written apart from `xl-media` so that tests of the
//!   muxer and the recorder do not check it against itself.
//!
//! The blocking functions ([`test_clips`], [`RtspServer::start`], [`ffmpeg_pull`]) may wait
//! seconds; from async tests call them in `tokio::task::spawn_blocking` or accept the stall.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use xl_core::camera::VideoCodec;

mod nats;
mod nats_jwt;
mod proxy;
mod stream;
pub use nats::{NATS_SERVER_ENV, NatsServer};
pub use proxy::TcpProxy;
pub use stream::{StreamMessage, stream_messages};

/// The H.264 640x360 clip (Annex B). See `scripts/make-test-clips` for all names; each also
/// exists as `.mp4` with the same frames.
pub const H264_360P: &str = "h264_640x360.h264";
/// The H.264 1280x720 clip (Annex B).
pub const H264_720P: &str = "h264_1280x720.h264";
/// The H.265 640x360 clip (Annex B).
pub const H265_360P: &str = "h265_640x360.h265";
/// The H.265 1280x720 clip (Annex B).
pub const H265_720P: &str = "h265_1280x720.h265";
/// Frame rate of every clip.
pub const CLIP_FPS: u32 = 10;
/// Frames per GOP of every clip (closed GOP, key frame every 2 s).
pub const CLIP_GOP_FRAMES: u32 = 20;
/// Frames in every clip (79.5 s); the RTSP server loops after this many.
pub const CLIP_FRAMES: u32 = 795;

/// How long [`RtspServer::start`] waits for the server's `READY` line.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`RtspServer::restart`] retries while the old port is still taken.
const RESTART_BIND_RETRY: Duration = Duration::from_secs(10);
/// Lines of the server's stderr kept for error messages.
const STDERR_TAIL_LINES: usize = 200;

/// The Python that can import `gi` (Debian's; a pyenv `python3` on PATH cannot). Override with
/// `XUELIANG_TEST_PYTHON`.
fn python() -> PathBuf {
    std::env::var_os("XUELIANG_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/python3"))
}

/// The workspace root (this crate lives in `crates/xl-testkit`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/xl-testkit has two ancestors")
        .to_path_buf()
}

/// The cache of fetched and generated test data: `$XUELIANG_CACHE`, else
/// `$HOME/.cache/xueliang`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XUELIANG_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".cache").join("xueliang")
}

/// Fetched test media (`vtest.avi`, face images, ...): `cache_dir()/media`.
pub fn media_dir() -> PathBuf {
    cache_dir().join("media")
}

/// Makes sure the camera-like clips exist in `cache_dir()/clips` (running
/// `scripts/make-test-clips` on `media_dir()/vtest.avi` when needed) and returns that directory.
///
/// Safe to call from many test processes at once: runs of the script are serialized by an
/// exclusive lock on `clips/.lock`, and the script is a no-op when the clips are up to date.
/// Within one process the result is computed once.
pub fn test_clips() -> anyhow::Result<PathBuf> {
    static CLIPS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    CLIPS
        .get_or_init(|| make_clips().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

/// Path of one clip (e.g. [`H264_720P`] or `"h265_640x360.mp4"`), making the clips if needed.
pub fn test_clip(name: &str) -> anyhow::Result<PathBuf> {
    let path = test_clips()?.join(name);
    if !path.is_file() {
        bail!("no test clip {}", path.display());
    }
    Ok(path)
}

fn make_clips() -> anyhow::Result<PathBuf> {
    let src = media_dir().join("vtest.avi");
    if !src.is_file() {
        bail!(
            "test media missing: {} (run scripts/fetch-media, which fills {}; or point \
             XUELIANG_CACHE at a cache that has it)",
            src.display(),
            media_dir().display()
        );
    }
    let out = cache_dir().join("clips");
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let lock_path = out.join(".lock");
    let lock = File::create(&lock_path)
        .with_context(|| format!("creating lock file {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;

    let script = repo_root().join("scripts").join("make-test-clips");
    tracing::debug!(script = %script.display(), src = %src.display(), out = %out.display(), "making test clips");
    let output = Command::new(&script)
        .arg(&src)
        .arg(&out)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    drop(lock);
    if !output.status.success() {
        bail!(
            "{} {} {} failed ({}):\n{}{}",
            script.display(),
            src.display(),
            out.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(out)
}

/// A real RTSP server (`rtsp_server.py`, gst-rtsp-server) serving Annex B clips, each at
/// `rtsp://127.0.0.1:PORT/NAME`, looping forever at [`CLIP_FPS`].
///
/// Each mount is one shared live stream: it starts with the first client, later clients join it
/// mid-way (their first frames may precede a key frame: drop until one, at most one GOP), and it
/// restarts from the clip's start once all clients have left. RTP over TCP (interleaved) and UDP
/// both work. The server dies with this value (Drop), and also when the test process dies
/// (it exits when its stdin pipe closes).
///
/// It counts each mount's RTSP sessions from the server's log ([`RtspServer::sessions`],
/// [`RtspServer::max_sessions`]): a session counts from its first PLAY until its TEARDOWN, the
/// end of its client's connection (a killed client too) or its timeout.
pub struct RtspServer {
    port: u16,
    mounts: Vec<(String, PathBuf)>,
    fps: u32,
    process: Option<ServerProcess>,
    sessions: Arc<Sessions>,
}

/// The RTSP sessions of the server's mounts, as its stderr reports them (`rtsp_server:
/// session-open /NAME ID`, `session-close /NAME ID`), shared by the stderr reader thread of
/// each process the server ran.
#[derive(Default)]
struct Sessions {
    book: Mutex<SessionBook>,
    /// Notified at each change of `book.open`.
    changed: Condvar,
}

#[derive(Default)]
struct SessionBook {
    /// The server process the open sessions are of, +1 at each start and stop: the reader of
    /// a killed process may still drain its last lines, which must not count.
    generation: u64,
    /// Per mount name (no slashes), the ids of its sessions playing now.
    open: HashMap<String, HashSet<String>>,
    /// Per mount name, the most sessions open at once.
    max: HashMap<String, usize>,
    /// Per mount name, the sessions opened since the server first started.
    opened: HashMap<String, usize>,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, SessionBook> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new server process starts or the current one is gone: no session is open.
    fn next_generation(&self) -> u64 {
        let mut book = self.lock();
        book.generation += 1;
        book.open.clear();
        self.changed.notify_all();
        book.generation
    }

    /// Applies a stderr line of the process of `generation`, if it reports a session.
    fn on_log_line(&self, generation: u64, line: &str) {
        let Some(event) = line.strip_prefix("rtsp_server: session-") else {
            return;
        };
        let (open, rest) = if let Some(rest) = event.strip_prefix("open ") {
            (true, rest)
        } else if let Some(rest) = event.strip_prefix("close ") {
            (false, rest)
        } else {
            return;
        };
        let Some((mount, id)) = rest.trim().rsplit_once(' ') else {
            return;
        };
        let mount = mount.trim_matches('/');
        let mut book = self.lock();
        if book.generation != generation {
            return;
        }
        let now = {
            let ids = book.open.entry(mount.to_owned()).or_default();
            if open {
                ids.insert(id.to_owned());
            } else {
                ids.remove(id);
            }
            ids.len()
        };
        if open {
            *book.opened.entry(mount.to_owned()).or_default() += 1;
        }
        let max = book.max.entry(mount.to_owned()).or_default();
        *max = (*max).max(now);
        self.changed.notify_all();
    }
}

struct ServerProcess {
    child: Child,
    /// Held open only so the server sees EOF when we go away.
    _stdin: ChildStdin,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl RtspServer {
    /// Starts a server on a free loopback port with the given `(mount name, clip path)` pairs.
    /// The codec comes from the extension (`.h264` or `.h265`). Waits until it listens.
    pub fn start(mounts: &[(&str, PathBuf)]) -> anyhow::Result<RtspServer> {
        Self::start_with(0, CLIP_FPS, mounts)
    }

    /// Like [`RtspServer::start`] with an explicit port (0: any free one) and frame rate.
    pub fn start_with(
        port: u16,
        fps: u32,
        mounts: &[(&str, PathBuf)],
    ) -> anyhow::Result<RtspServer> {
        if mounts.is_empty() {
            bail!("RtspServer needs at least one mount");
        }
        for (name, path) in mounts {
            if !path.is_file() {
                bail!("mount /{name}: no such clip {}", path.display());
            }
        }
        let mut server = RtspServer {
            port,
            mounts: mounts
                .iter()
                .map(|(name, path)| (name.trim_matches('/').to_owned(), path.clone()))
                .collect(),
            fps,
            process: None,
            sessions: Arc::default(),
        };
        let (process, bound) = server.spawn()?;
        server.port = bound;
        server.process = Some(process);
        Ok(server)
    }

    /// The port the server listens on (stays the same across [`RtspServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rtsp://127.0.0.1:PORT/MOUNT`.
    pub fn url(&self, mount: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{}", self.port, mount.trim_matches('/'))
    }

    /// Whether the server process is up (started and not stopped).
    pub fn is_running(&mut self) -> bool {
        match &mut self.process {
            Some(p) => matches!(p.child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server abruptly (SIGKILL, like a camera losing power) and waits for it.
    /// Clients see their connections reset, and no session counts as open any more. A no-op
    /// when already stopped.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
            self.sessions.next_generation();
            tracing::debug!(port = self.port, "rtsp test server stopped");
        }
    }

    /// The RTSP sessions playing `mount` now (`"cam"` or `"/cam"`): those that sent PLAY and
    /// have not ended (TEARDOWN, connection closed, timed out). As of the last line of the
    /// server's log read, so a client's PLAY answered a moment ago may not count yet: wait
    /// with [`RtspServer::wait_sessions`]. 0 while the server is stopped.
    pub fn sessions(&self, mount: &str) -> usize {
        let book = self.sessions.lock();
        book.open
            .get(mount.trim_matches('/'))
            .map_or(0, HashSet::len)
    }

    /// The most sessions that played `mount` at once since the server started (across
    /// [`RtspServer::restart`]) or since [`RtspServer::reset_max_sessions`].
    pub fn max_sessions(&self, mount: &str) -> usize {
        let book = self.sessions.lock();
        book.max.get(mount.trim_matches('/')).copied().unwrap_or(0)
    }

    /// The sessions that started playing `mount` since the server first started (across
    /// [`RtspServer::restart`]): a client that reconnects counts again.
    pub fn opened_sessions(&self, mount: &str) -> usize {
        let book = self.sessions.lock();
        book.opened
            .get(mount.trim_matches('/'))
            .copied()
            .unwrap_or(0)
    }

    /// Starts [`RtspServer::max_sessions`] afresh for every mount: from the sessions open now.
    pub fn reset_max_sessions(&self) {
        let mut book = self.sessions.lock();
        let open: HashMap<String, usize> = book
            .open
            .iter()
            .map(|(mount, ids)| (mount.clone(), ids.len()))
            .collect();
        book.max = open;
    }

    /// Waits until `mount` has exactly `count` sessions playing ([`RtspServer::sessions`]),
    /// at most `timeout`. The error says how many there were, with the server's log.
    pub fn wait_sessions(
        &self,
        mount: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let mount = mount.trim_matches('/');
        let deadline = Instant::now() + timeout;
        let mut book = self.sessions.lock();
        loop {
            let now = book.open.get(mount).map_or(0, HashSet::len);
            if now == count {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                drop(book);
                bail!(
                    "/{mount} has {now} RTSP sessions, not {count}, after {timeout:?}; server \
                     log:\n{}",
                    self.log_tail()
                );
            }
            book = self
                .sessions
                .changed
                .wait_timeout(book, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Stops the server if running and starts it again on the same port with the same mounts
    /// (the streams start again from the clips' beginning). Retries for a while if the port is
    /// still taken.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let deadline = Instant::now() + RESTART_BIND_RETRY;
        loop {
            match self.spawn() {
                Ok((process, _)) => {
                    self.process = Some(process);
                    return Ok(());
                }
                Err(e)
                    if Instant::now() < deadline
                        && format!("{e:#}").contains("Address already in use") =>
                {
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The last lines the server wrote to stderr (its log), for test failure messages.
    pub fn log_tail(&self) -> String {
        match &self.process {
            Some(p) => join_tail(&p.stderr_tail),
            None => String::new(),
        }
    }

    fn spawn(&self) -> anyhow::Result<(ServerProcess, u16)> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("rtsp_server.py");
        let mut cmd = Command::new(python());
        cmd.arg(&script)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--fps")
            .arg(self.fps.to_string())
            .arg("--exit-on-stdin-eof");
        for (name, path) in &self.mounts {
            let mut arg = std::ffi::OsString::from(format!("{name}="));
            arg.push(path);
            cmd.arg("--mount").arg(arg);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let generation = self.sessions.next_generation();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {} {}", python().display(), script.display()))?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");

        // Drain both pipes for the server's whole life: a full pipe would block it.
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_thread = {
            let tail = Arc::clone(&stderr_tail);
            let sessions = Arc::clone(&self.sessions);
            thread::Builder::new()
                .name("rtsp-server-stderr".into())
                .spawn(move || {
                    for line in BufReader::new(stderr).lines() {
                        let Ok(line) = line else { break };
                        tracing::debug!(target: "xl_testkit::rtsp_server", "{line}");
                        sessions.on_log_line(generation, &line);
                        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                        if tail.len() == STDERR_TAIL_LINES {
                            tail.pop_front();
                        }
                        tail.push_back(line);
                    }
                })?
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        thread::Builder::new()
            .name("rtsp-server-stdout".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(port) = line.strip_prefix("READY ") {
                        let _ = ready_tx.send(port.trim().parse::<u16>());
                    }
                }
            })?;

        let what = match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(port)) if self.port == 0 || port == self.port => {
                tracing::debug!(port, mounts = ?self.mounts, "rtsp test server ready");
                let process = ServerProcess {
                    child,
                    _stdin: stdin,
                    stderr_tail,
                };
                return Ok((process, port));
            }
            Ok(Ok(port)) => format!("listens on unexpected port {port}"),
            Ok(Err(e)) => format!("bad READY line: {e}"),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                format!("not ready after {} s", READY_TIMEOUT.as_secs())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => "exited before it was ready".into(),
        };
        let _ = child.kill();
        let status = child.wait();
        let _ = stderr_thread.join();
        Err(anyhow!(
            "rtsp test server on port {}: {what} (exit: {status:?}); its stderr:\n{}",
            self.port,
            join_tail(&stderr_tail)
        ))
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for RtspServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspServer")
            .field("port", &self.port)
            .field("mounts", &self.mounts)
            .field("fps", &self.fps)
            .field("running", &self.process.is_some())
            .finish()
    }
}

fn join_tail(tail: &Mutex<VecDeque<String>>) -> String {
    let tail = tail.lock().unwrap_or_else(|e| e.into_inner());
    tail.iter().map(|l| format!("{l}\n")).collect()
}

/// Bytes [`garbage_rtsp_server`] answers with: binary noise, then an HTTP-ish line, nothing an
/// RTSP client can parse as a response.
pub const GARBAGE_RESPONSE: &[u8] =
    b"\x00\xff\xfe\x13\x37garbage\r\nHTTP/1.1 418 I'm a teapot\r\n\x01\x02\x03\r\n\r\n\xde\xad\xbe\xef";

/// A TCP server on a loopback port that answers every connection with [`GARBAGE_RESPONSE`] and
/// closes it. It reads the request first (up to a blank line, 64 KiB or 500 ms) so the client
/// gets the junk rather than a connection reset. Abort the handle to stop it.
pub async fn garbage_rtsp_server() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local_addr of a bound socket");
    let handle = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            let Ok((stream, _peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            conns.spawn(answer_garbage(stream));
            while conns.try_join_next().is_some() {}
        }
    });
    (addr, handle)
}

async fn answer_garbage(mut stream: TcpStream) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while request.len() < 64 * 1024 && !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let _ = stream.write_all(GARBAGE_RESPONSE).await;
    let _ = stream.shutdown().await;
    // Give the client a moment to read before the socket closes under it.
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// A TCP server on a loopback port that accepts connections and never answers (a hung camera),
/// to test timeouts. Connections stay open until the handle is aborted.
pub async fn silent_rtsp_server() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local_addr of a bound socket");
    let handle = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            if let Ok((stream, _peer)) = listener.accept().await {
                held.push(stream);
            }
        }
    });
    (addr, handle)
}

/// What [`ffmpeg_pull`] saw.
#[derive(Debug, Clone)]
pub struct FfmpegPull {
    /// Frames decoded.
    pub frames: u64,
    /// Lines ffmpeg logged at level `error` or worse (decode errors, corrupt frames, ...).
    pub errors: Vec<String>,
}

/// RTP transport for [`ffmpeg_pull`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtpTransport {
    /// RTP interleaved in the RTSP TCP connection (what retina uses by default).
    Tcp,
    /// RTP over UDP.
    Udp,
}

/// Pulls `url` with the `ffmpeg` CLI for `seconds` of stream time, decoding every frame, and
/// reports frames decoded and errors logged. Fails if ffmpeg cannot connect or exits non-zero, or
/// takes longer than `seconds + 20` s.
pub fn ffmpeg_pull(url: &str, transport: RtpTransport, seconds: u32) -> anyhow::Result<FfmpegPull> {
    let transport_arg = match transport {
        RtpTransport::Tcp => "tcp",
        RtpTransport::Udp => "udp",
    };
    let mut child = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-nostats", "-loglevel", "error"])
        .args(["-rtsp_transport", transport_arg])
        .args(["-timeout", "5000000"]) // socket I/O timeout, microseconds
        .args(["-i", url])
        .args(["-t", &seconds.to_string()])
        .args(["-progress", "pipe:1", "-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ffmpeg (is the ffmpeg CLI installed?)")?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let frames_thread = thread::spawn(move || {
        let mut frames = 0;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("frame=") {
                frames = n.trim().parse().unwrap_or(frames);
            }
        }
        frames
    });
    let errors_thread = thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });

    let deadline = Instant::now() + Duration::from_secs(u64::from(seconds) + 20);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let frames = frames_thread.join().unwrap_or(0);
    let errors = errors_thread.join().unwrap_or_default();
    match status {
        None => bail!(
            "ffmpeg pulling {url} did not finish within {} s; stderr:\n{}",
            seconds + 20,
            errors.join("\n")
        ),
        Some(s) if !s.success() => bail!(
            "ffmpeg pulling {url} failed ({s}); stderr:\n{}",
            errors.join("\n")
        ),
        Some(_) => Ok(FfmpegPull { frames, errors }),
    }
}

/// One access unit of a clip: a picture's NAL units with their start codes.
#[derive(Debug, Clone)]
pub struct ClipAccessUnit {
    pub data: Vec<u8>,
    /// An IDR (H.264) or IRAP (H.265) picture.
    pub is_key: bool,
}

/// The access units of the Annex B clip at `path` (e.g. `test_clip(H264_360P)?`), in order.
pub fn clip_access_units(codec: VideoCodec, path: &Path) -> anyhow::Result<Vec<ClipAccessUnit>> {
    let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(split_access_units(codec, &data)
        .into_iter()
        .map(|au| ClipAccessUnit {
            data: au.to_vec(),
            is_key: is_key_frame(codec, au),
        })
        .collect())
}

/// Splits an Annex B stream into access units (ITU-T H.264 7.4.1.2.3, H.265 7.4.2.4.4): a new
/// one starts at an access unit delimiter, parameter set or prefix SEI, or at the first slice
/// of a picture, once the current one has a picture.
pub fn split_access_units(codec: VideoCodec, data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut have_picture = false;
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] != [0, 0, 1] {
            i += 1;
            continue;
        }
        let start_code = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
        let nal = &data[i + 3..];
        let Some(t) = nal_type(codec, nal) else {
            break;
        };
        let (header, is_vcl, opens_au) = match codec {
            VideoCodec::H264 => (1, matches!(t, 1..=5), matches!(t, 6..=9 | 14..=18)),
            VideoCodec::H265 => (2, t <= 31, matches!(t, 32..=35 | 39 | 41..=44 | 48..=55)),
        };
        // first_mb_in_slice == 0 (ue(v) "1") / first_slice_segment_in_pic_flag: the top bit.
        let first_slice = is_vcl && nal.get(header).is_some_and(|b| b & 0x80 != 0);
        if starts.is_empty() || (have_picture && (opens_au || first_slice)) {
            starts.push(start_code);
            have_picture = false;
        }
        have_picture |= is_vcl;
        i += 3;
    }
    starts.push(data.len());
    starts.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

/// Whether an access unit holds an IDR picture (H.264) or an IRAP picture (H.265).
pub fn is_key_frame(codec: VideoCodec, au: &[u8]) -> bool {
    au.windows(3)
        .enumerate()
        .filter(|(_, w)| *w == [0, 0, 1])
        .filter_map(|(i, _)| nal_type(codec, &au[i + 3..]))
        .any(|t| match codec {
            VideoCodec::H264 => t == 5,
            VideoCodec::H265 => (16..=23).contains(&t),
        })
}

/// The type of the NAL unit starting at `nal` (just after its start code).
fn nal_type(codec: VideoCodec, nal: &[u8]) -> Option<u8> {
    match codec {
        VideoCodec::H264 => nal.first().map(|&h| h & 0x1f),
        VideoCodec::H265 if nal.len() >= 2 => Some((nal[0] >> 1) & 0x3f),
        VideoCodec::H265 => None,
    }
}

/// A scratch directory under the system's temp dir, named after `what`, the process and the
/// time; removed when the test passes (kept for a look when it fails).
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(what: &str) -> anyhow::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        let path = std::env::temp_dir().join(format!("xl-{what}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !thread::panicking() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
