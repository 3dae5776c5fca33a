//! One camera's session loop: connect, stream access units, and on any failure mark the camera
//! offline with the reason, back off and try again, until shutdown.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use retina::client::{PlayOptions, SessionOptions, SetupOptions};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, trace, warn};
use url::Url;
use xl_core::CameraId;
use xl_core::camera::{CameraStats, CameraStatus, DropReason, VideoCodec};
use xl_core::clock::Clocks;
use xl_core::frame::{AccessUnit, AccessUnitSink};

use crate::{Backoff, RtspError};

/// Camera login. `Debug` never shows the password.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How RTP travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Interleaved on the RTSP TCP connection: no loss, works through NAT. The default.
    #[default]
    Tcp,
    /// RTP over UDP: for LANs only (retina has no reorder buffer).
    Udp,
}

/// Network timeouts of one camera.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For each of DESCRIBE, SETUP and PLAY.
    pub request: Duration,
    /// Longest silence between two frames before the session is abandoned.
    pub frame: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            request: Duration::from_secs(10),
            frame: Duration::from_secs(10),
        }
    }
}

/// Everything needed to pull one camera.
#[derive(Debug, Clone)]
pub struct CameraSource {
    pub id: CameraId,
    /// Without credentials: safe to log.
    pub url: Url,
    pub credentials: Option<Credentials>,
    pub transport: TransportKind,
    pub timeouts: Timeouts,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl CameraSource {
    /// Builds a source from a URL that may carry `user:password@`; those move into
    /// `credentials` (explicit `credentials` win) and the stored URL is stripped of them.
    pub fn new(
        id: CameraId,
        url: &str,
        credentials: Option<Credentials>,
    ) -> Result<Self, url::ParseError> {
        let mut url = Url::parse(url)?;
        let from_url = (!url.username().is_empty()).then(|| Credentials {
            username: percent_decode(url.username()),
            password: percent_decode(url.password().unwrap_or("")),
        });
        // Setting an empty username and no password cannot fail on an rtsp:// URL with a host.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(CameraSource {
            id,
            url,
            credentials: credentials.or(from_url),
            transport: TransportKind::Tcp,
            timeouts: Timeouts::default(),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
        })
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Pulls one camera until `shutdown` is cancelled. Never returns an error: failures are logged
/// once, shown in the camera's status and retried.
///
/// Each access unit is stamped with `clocks` when it arrives (its `received_at`, the time of the
/// frame it decodes to). Timeouts and backoff are on real time.
pub async fn run_camera(
    source: CameraSource,
    sink: Arc<dyn AccessUnitSink>,
    stats: Arc<CameraStats>,
    clocks: Arc<dyn Clocks>,
    shutdown: CancellationToken,
) {
    let span = info_span!("camera", camera = %source.id);
    async move {
        let mut backoff = Backoff::new(source.backoff_initial, source.backoff_max);
        let mut first = true;
        loop {
            if !first {
                stats
                    .reconnects
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            first = false;
            set_status(&stats, CameraStatus::Connecting);
            let outcome = tokio::select! {
                r = session(&source, sink.as_ref(), &stats, clocks.as_ref()) => r,
                () = shutdown.cancelled() => return,
            };
            let err = match outcome {
                Ok(reached_online) => {
                    if reached_online {
                        backoff.reset();
                    }
                    RtspError::Ended
                }
                Err((e, reached_online)) => {
                    if reached_online {
                        backoff.reset();
                    }
                    e
                }
            };
            if let Some(detail) = err.detail() {
                debug!(detail, "session failure detail");
            }
            set_status(
                &stats,
                CameraStatus::Offline {
                    reason: err.to_string(),
                },
            );
            let delay = backoff.next_delay(rand::random::<f64>());
            warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "camera session failed");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
    .instrument(span)
    .await
}

fn set_status(stats: &CameraStats, status: CameraStatus) {
    let label = status.label();
    let prev = stats.set_status(status);
    if prev.label() != label {
        info!(from = prev.label(), to = label, "camera status");
    }
}

/// One session from DESCRIBE to failure. On error, also says whether it had gone online (so the
/// caller resets its backoff).
async fn session(
    source: &CameraSource,
    sink: &dyn AccessUnitSink,
    stats: &CameraStats,
    clocks: &dyn Clocks,
) -> Result<bool, (RtspError, bool)> {
    let mut online = false;
    let r = session_inner(source, sink, stats, clocks, &mut online).await;
    r.map(|()| online).map_err(|e| (e, online))
}

async fn session_inner(
    source: &CameraSource,
    sink: &dyn AccessUnitSink,
    stats: &CameraStats,
    clocks: &dyn Clocks,
    online: &mut bool,
) -> Result<(), RtspError> {
    let t = source.timeouts;
    let (session, stream_i, codec) = describe_and_setup(source).await?;
    let playing = with_timeout("PLAY", t.request, session.play(PlayOptions::default())).await?;
    let mut demuxed = playing
        .demuxed()
        .map_err(|e| RtspError::from_retina("PLAY", e))?;
    if let Some(ParametersRef::Video(v)) = demuxed.streams()[stream_i].parameters() {
        let (w, h) = v.pixel_dimensions();
        stats.update_stream(|s| {
            s.codec = Some(codec.to_string());
            s.width = Some(w);
            s.height = Some(h);
        });
    }
    sink.stream_started(codec);
    let mut seen_key = false;
    loop {
        let item = match tokio::time::timeout(t.frame, demuxed.next()).await {
            Err(_) => {
                return Err(RtspError::Timeout {
                    stage: "streaming",
                    timeout: t.frame,
                });
            }
            Ok(None) => return Err(RtspError::Ended),
            Ok(Some(Err(e))) => return Err(RtspError::from_retina("streaming", e)),
            Ok(Some(Ok(item))) => item,
        };
        let CodecItem::VideoFrame(frame) = item else {
            continue;
        };
        // the frame's time: when its access unit arrived, on the injected clocks
        let now = clocks.realtime();
        stats.record_frame_in(frame.data().len(), now);
        if frame.loss() > 0 {
            stats.rtp_packets_lost.fetch_add(
                u64::from(frame.loss()),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        if frame.has_new_parameters()
            && let Some(ParametersRef::Video(v)) = demuxed.streams()[stream_i].parameters()
        {
            let (w, h) = v.pixel_dimensions();
            debug!(width = w, height = h, "new video parameters");
            stats.update_stream(|s| {
                s.width = Some(w);
                s.height = Some(h);
            });
        }
        let is_key = frame.is_random_access_point();
        if !seen_key && !is_key {
            trace!("skipping frame before the first key frame");
            stats.record_drop(DropReason::AwaitingKeyFrame);
            continue;
        }
        seen_key = true;
        if !*online {
            *online = true;
            set_status(stats, CameraStatus::Online);
        }
        let pts_90k = frame.timestamp().elapsed();
        sink.push(AccessUnit {
            data: Bytes::from(frame.into_data()),
            pts_90k,
            is_key,
            received_at: now,
        });
    }
}

pub(crate) async fn describe_and_setup(
    source: &CameraSource,
) -> Result<
    (
        retina::client::Session<retina::client::Described>,
        usize,
        VideoCodec,
    ),
    RtspError,
> {
    let t = source.timeouts;
    let options = SessionOptions::default()
        .creds(
            source
                .credentials
                .clone()
                .map(|c| retina::client::Credentials {
                    username: c.username,
                    password: c.password,
                }),
        )
        .user_agent(concat!("xueliang/", env!("CARGO_PKG_VERSION")).to_owned());
    let mut session = with_timeout(
        "DESCRIBE",
        t.request,
        retina::client::Session::describe(source.url.clone(), options),
    )
    .await?;
    let found = session.streams().iter().enumerate().find_map(|(i, s)| {
        match (s.media(), s.encoding_name()) {
            ("video", "h264") => Some((i, VideoCodec::H264)),
            ("video", "h265") => Some((i, VideoCodec::H265)),
            _ => None,
        }
    });
    let Some((stream_i, codec)) = found else {
        let found = session
            .streams()
            .iter()
            .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(RtspError::NoSupportedVideo { found });
    };
    let transport = match source.transport {
        TransportKind::Tcp => retina::client::Transport::Tcp(Default::default()),
        TransportKind::Udp => retina::client::Transport::Udp(Default::default()),
    };
    with_timeout(
        "SETUP",
        t.request,
        session.setup(
            stream_i,
            SetupOptions::default()
                .transport(transport)
                .frame_format(FrameFormat::SIMPLE),
        ),
    )
    .await?;
    Ok((session, stream_i, codec))
}

pub(crate) async fn with_timeout<T>(
    stage: &'static str,
    timeout: Duration,
    f: impl Future<Output = Result<T, retina::Error>>,
) -> Result<T, RtspError> {
    match tokio::time::timeout(timeout, f).await {
        Err(_) => Err(RtspError::Timeout { stage, timeout }),
        Ok(r) => r.map_err(|e| RtspError::from_retina(stage, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_move_out_of_the_url() {
        let id = CameraId::new("c1").unwrap();
        let s = CameraSource::new(
            id,
            "rtsp://admin:p%40ss@10.0.0.5:554/Streaming/Channels/102",
            None,
        )
        .unwrap();
        assert_eq!(s.url.as_str(), "rtsp://10.0.0.5:554/Streaming/Channels/102");
        let c = s.credentials.unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("admin", "p@ss")
        );
        assert!(
            !format!("{c:?}").contains("p@ss"),
            "Debug must redact the password"
        );
    }

    #[test]
    fn explicit_credentials_win_over_the_url() {
        let id = CameraId::new("c1").unwrap();
        let explicit = Credentials {
            username: "op".into(),
            password: "x".into(),
        };
        let s = CameraSource::new(id, "rtsp://a:b@cam/", Some(explicit)).unwrap();
        assert_eq!(s.credentials.unwrap().username, "op");
        assert_eq!(s.url.as_str(), "rtsp://cam/");
    }
}

/// `url` with any `user:password@` replaced by `***@`, for logs and error messages. Input that
/// does not parse as a URL is cut at its last `@`.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_password(None);
            let _ = u.set_username("***");
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => match url.rfind('@') {
            Some(at) => format!("***{}", &url[at..]),
            None => url.to_owned(),
        },
    }
}

#[cfg(test)]
mod redact_tests {
    use super::redact_url;

    #[test]
    fn redaction_strips_credentials_from_good_and_bad_urls() {
        assert_eq!(
            redact_url("rtsp://admin:pw@10.0.0.1/x"),
            "rtsp://***@10.0.0.1/x"
        );
        assert_eq!(redact_url("rtsp://10.0.0.1/x"), "rtsp://10.0.0.1/x");
        assert_eq!(redact_url("not a url:pw@host"), "***@host");
    }
}
