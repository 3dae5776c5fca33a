//! The RTSP test server against an independent client (the ffmpeg CLI). These need the clips
//! (test media fetched into the cache), Debian's python3-gi with gst-rtsp-server, and ffmpeg;
//! they fail, never skip, when any of it is missing.

use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Duration, timeout};
use xl_testkit::{
    CLIP_FPS, GARBAGE_RESPONSE, H264_720P, H265_360P, RtpTransport, RtspServer, ffmpeg_pull,
    garbage_rtsp_server, silent_rtsp_server, test_clip,
};

/// Asserts a clean pull: about `seconds * fps` frames, no decode errors. ffmpeg's `-t` counts
/// stream time, and a first client slow to PLAY (loaded machine) sees a timestamp gap after the
/// first frame, so allow a third fewer frames.
fn assert_clean_pull(server: &RtspServer, mount: &str, transport: RtpTransport, seconds: u32) {
    let url = server.url(mount);
    let pull = ffmpeg_pull(&url, transport, seconds)
        .unwrap_or_else(|e| panic!("{e:#}\nserver log:\n{}", server.log_tail()));
    let expected = u64::from(seconds * CLIP_FPS);
    assert!(
        pull.frames >= expected - expected / 3,
        "{url}: {} frames decoded in {seconds} s, expected {expected}",
        pull.frames
    );
    assert!(
        pull.errors.is_empty(),
        "{url}: ffmpeg errors: {:#?}",
        pull.errors
    );
}

#[test]
fn serves_h264_and_h265_clips_to_ffmpeg_over_tcp() {
    let server = RtspServer::start(&[
        ("h264", test_clip(H264_720P).unwrap()),
        ("h265", test_clip(H265_360P).unwrap()),
    ])
    .unwrap();
    thread::scope(|s| {
        s.spawn(|| assert_clean_pull(&server, "h264", RtpTransport::Tcp, 3));
        s.spawn(|| assert_clean_pull(&server, "h265", RtpTransport::Tcp, 3));
    });
}

#[test]
fn serves_over_udp() {
    let server = RtspServer::start(&[("cam", test_clip(H265_360P).unwrap())]).unwrap();
    assert_clean_pull(&server, "cam", RtpTransport::Udp, 3);
}

#[test]
fn restarts_on_the_same_port_after_kill() {
    let mut server = RtspServer::start(&[("cam", test_clip(H264_720P).unwrap())]).unwrap();
    let port = server.port();
    assert_clean_pull(&server, "cam", RtpTransport::Tcp, 2);

    server.stop();
    assert!(!server.is_running());
    assert!(
        ffmpeg_pull(&server.url("cam"), RtpTransport::Tcp, 1).is_err(),
        "pull from a killed server succeeded"
    );

    server.restart().unwrap();
    assert_eq!(server.port(), port);
    assert!(server.is_running());
    assert_clean_pull(&server, "cam", RtpTransport::Tcp, 2);
}

/// The shared media is torn down when the last client leaves; the next client must get a fresh,
/// clean stream from a key frame.
#[test]
fn serves_a_client_that_comes_after_all_others_left() {
    let server = RtspServer::start(&[("cam", test_clip(H264_720P).unwrap())]).unwrap();
    assert_clean_pull(&server, "cam", RtpTransport::Tcp, 2);
    assert_clean_pull(&server, "cam", RtpTransport::Tcp, 2);
}

/// A clip shorter than the pull: the server loops with continuous timestamps. (PyGObject's
/// `Gst.Buffer.copy()` aliases its source, which made the timeline jump on the second loop.)
#[test]
fn loops_a_short_clip_without_errors() {
    let full = test_clip(H264_720P).unwrap();
    let dir = unique_temp_dir("loop");
    let short = dir.join("short.h264");
    // 25 frames: one whole GOP and part of the next, so the loop goes P frame -> IDR.
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(&full)
        .args(["-c", "copy", "-frames:v", "25", "-f", "h264"])
        .arg(&short)
        .status()
        .unwrap();
    assert!(status.success(), "cutting {} failed", full.display());

    let server = RtspServer::start(&[("short", short)]).unwrap();
    // 2.5 s clip, 6 s pull: two loop boundaries.
    assert_clean_pull(&server, "short", RtpTransport::Tcp, 6);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refuses_to_start_without_the_clip() {
    let err = RtspServer::start(&[("cam", PathBuf::from("/nonexistent/clip.h264"))]).unwrap_err();
    assert!(
        format!("{err:#}").contains("/nonexistent/clip.h264"),
        "{err:#}"
    );
}

#[test]
fn reports_the_server_stderr_when_it_fails() {
    // A file that exists but holds no pictures: the server exits before READY.
    let dir = unique_temp_dir("bad");
    let bad = dir.join("bad.h264");
    std::fs::write(&bad, b"not an annex b stream").unwrap();
    let err = RtspServer::start(&[("cam", bad)]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("no h264 pictures found"), "{msg}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn garbage_server_answers_junk_and_closes() {
    let (addr, handle) = garbage_rtsp_server().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"OPTIONS rtsp://127.0.0.1/cam RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    timeout(Duration::from_secs(5), stream.read_to_end(&mut got))
        .await
        .expect("garbage server closes the connection")
        .unwrap();
    assert_eq!(got, GARBAGE_RESPONSE);
    handle.abort();
}

#[tokio::test]
async fn silent_server_never_answers() {
    let (addr, handle) = silent_rtsp_server().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"OPTIONS rtsp://127.0.0.1/cam RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(
        timeout(Duration::from_millis(500), stream.read(&mut buf))
            .await
            .is_err(),
        "silent server answered"
    );
    handle.abort();
}

fn unique_temp_dir(what: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir =
        std::env::temp_dir().join(format!("xl-testkit-{what}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
