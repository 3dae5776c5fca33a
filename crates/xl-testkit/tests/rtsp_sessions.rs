//! The RTSP test server's session counts, against the ffmpeg CLI as the client. Needs what
//! `tests/rtsp_server.rs` needs (the clips, Debian's python3-gi with gst-rtsp-server, ffmpeg);
//! fails, never skips, when any of it is missing.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xl_testkit::{H264_360P, RtpTransport, RtspServer, ffmpeg_pull, test_clip};

/// Generous: a loaded machine may take seconds to start ffmpeg and set up its session.
const WAIT: Duration = Duration::from_secs(30);

/// An ffmpeg pulling a stream in the background; killed (SIGKILL) when dropped.
struct Puller(Child);

impl Puller {
    /// Pulls `url` for `seconds` of stream time, decoding nothing (`-c copy`).
    fn start(url: &str, transport: RtpTransport, seconds: u32) -> Puller {
        let transport = match transport {
            RtpTransport::Tcp => "tcp",
            RtpTransport::Udp => "udp",
        };
        let child = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error"])
            .args(["-rtsp_transport", transport, "-i", url])
            .args(["-t", &seconds.to_string(), "-c", "copy", "-f", "null", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("running ffmpeg (is the ffmpeg CLI installed?)");
        Puller(child)
    }

    /// Waits for ffmpeg to end by itself; panics after `WAIT` past `seconds`.
    fn wait_end(&mut self, seconds: u32) {
        let deadline = Instant::now() + WAIT + Duration::from_secs(seconds.into());
        while self.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "ffmpeg did not end");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Puller {
    fn drop(&mut self) {
        // Child::kill is SIGKILL: no TEARDOWN, the connection just closes.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn counts_sessions_per_mount_including_killed_clients() {
    let clip = test_clip(H264_360P).unwrap();
    let mut server = RtspServer::start(&[("cam", clip.clone()), ("other", clip)]).unwrap();
    let log = |server: &RtspServer| format!("server log:\n{}", server.log_tail());
    assert_eq!(server.sessions("cam"), 0);
    assert_eq!(server.max_sessions("cam"), 0);

    // Two clients of one mount: one that will be killed, one that ends by itself (TEARDOWN).
    let mut killed = Puller::start(&server.url("cam"), RtpTransport::Tcp, 600);
    server.wait_sessions("cam", 1, WAIT).unwrap();
    let mut ends = Puller::start(&server.url("cam"), RtpTransport::Tcp, 6);
    server.wait_sessions("/cam", 2, WAIT).unwrap();
    assert_eq!(server.sessions("cam"), 2, "{}", log(&server));
    assert_eq!(server.max_sessions("cam"), 2, "{}", log(&server));
    // A UDP client of the other mount, killed too: its RTSP connection closes all the same.
    let udp = Puller::start(&server.url("other"), RtpTransport::Udp, 600);
    server.wait_sessions("other", 1, WAIT).unwrap();
    assert_eq!(server.sessions("cam"), 2, "{}", log(&server));

    ends.wait_end(6);
    server.wait_sessions("cam", 1, WAIT).unwrap();
    drop(udp);
    server.wait_sessions("other", 0, WAIT).unwrap();
    assert!(killed.0.try_wait().unwrap().is_none(), "ffmpeg ended early");
    drop(killed);
    server.wait_sessions("cam", 0, WAIT).unwrap();
    assert_eq!(server.max_sessions("cam"), 2, "{}", log(&server));
    assert_eq!(server.max_sessions("other"), 1, "{}", log(&server));

    // A fresh maximum, carried across a restart.
    server.reset_max_sessions();
    assert_eq!(server.max_sessions("cam"), 0);
    server.restart().unwrap();
    assert_eq!(server.sessions("cam"), 0);
    ffmpeg_pull(&server.url("cam"), RtpTransport::Tcp, 1)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", log(&server)));
    server.wait_sessions("cam", 0, WAIT).unwrap();
    assert_eq!(server.max_sessions("cam"), 1, "{}", log(&server));
    assert_eq!(server.max_sessions("other"), 0, "{}", log(&server));
}

/// Sessions open when the server is killed do not count any more, nor after a restart.
#[test]
fn a_killed_server_has_no_sessions() {
    let clip = test_clip(H264_360P).unwrap();
    let mut server = RtspServer::start(&[("cam", clip)]).unwrap();
    let _client = Puller::start(&server.url("cam"), RtpTransport::Tcp, 600);
    server.wait_sessions("cam", 1, WAIT).unwrap();
    server.stop();
    assert_eq!(server.sessions("cam"), 0);
    server.restart().unwrap();
    assert_eq!(server.sessions("cam"), 0);
    assert_eq!(server.max_sessions("cam"), 1);
}
