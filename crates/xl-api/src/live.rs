//! `GET /api/v1/cameras/{id}/live`: live video over a WebSocket.
//!
//! The socket carries, in order: a text message `{"type":"init", "codec", "width", "height",
//! "stream", "transcoded"}` followed by a binary fragmented-MP4 initialisation segment, then
//! binary media segments, and again an `init` pair whenever the stream changes (the camera
//! reconnected, or changed codec or size). Text messages `{"type":"status", "status",
//! "reason"}` tell the camera's status when it changes (offline with its reason,
//! reconnecting). The hub closes the socket with a code and a reason a person can read:
//! 4404 the camera was removed or disabled, 1012 its stream restarted after a change (open
//! again), 4403 the caller may no longer see it (scope changed, session ended), 4408 the viewer stopped reading (cut off after
//! [`SEND_TIMEOUT`]), 1001 the hub is shutting down.
//!
//! Everything is checked before the upgrade: the session (as every route), the scope (the
//! same rule as snapshots: property sees only its communities' community-network cameras; an
//! unseen camera is "not found"), and the `Origin` header, which must name this host when
//! present (a page of another site must not ride on the console's cookie). Every session is
//! audited twice: `live.start` (camera, stream) and `live.end` (seconds, bytes, why). In a
//! district, a camera another node runs is forwarded there after these checks
//! (`forward.rs`), and that node audits it.

use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use xl_core::ErrorKind;
use xl_core::camera::CameraInfo;
use xl_core::live::{LiveEnd, LiveFeed, LiveMessage, StreamKind};

use crate::auth::Caller;
use crate::forward::{Camera, Forward};
use crate::routes::{Access, Route};
use crate::{ApiError, ApiState};

/// A viewer whose socket has not taken a message within this is cut off.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// A user's looks of one kind at one thing (thumbnails of a camera, which the wall refreshes
/// every few seconds; a recording or an alert's clip, which a player asks for in many byte
/// ranges) are audited once in this long.
pub const LOOK_AUDIT_EVERY: Duration = Duration::from_secs(600);
/// At most this many (user, action, subject) looks are remembered; past it the oldest are
/// forgotten (and their next look is audited again).
const LOOKS_KEPT: usize = 10_000;

/// A look: who, the audit action (`camera.thumbnail`, `recording.play`...), and at what.
type Look = (String, &'static str, String);

/// Who looked at what lately (see [`LOOK_AUDIT_EVERY`]).
#[derive(Debug, Default)]
pub struct RecentLooks(std::sync::Mutex<std::collections::HashMap<Look, Instant>>);

impl RecentLooks {
    /// Whether this look is to be audited as `action`: the first of `user` at `subject` (a
    /// camera or alert id) in [`LOOK_AUDIT_EVERY`].
    pub(crate) fn first_in_a_while(
        &self,
        user: &str,
        action: &'static str,
        subject: &str,
        now: Instant,
    ) -> bool {
        let mut looks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = (user.to_owned(), action, subject.to_owned());
        if looks
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < LOOK_AUDIT_EVERY)
        {
            return false;
        }
        if looks.len() >= LOOKS_KEPT {
            looks.retain(|_, at| now.duration_since(*at) < LOOK_AUDIT_EVERY);
            if looks.len() >= LOOKS_KEPT {
                looks.clear();
            }
        }
        looks.insert(key, now);
        true
    }

    /// Forgets a look whose audit entry could not be written, so that the next one is audited.
    pub(crate) fn forget(&self, user: &str, action: &'static str, subject: &str) {
        let mut looks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        looks.remove(&(user.to_owned(), action, subject.to_owned()));
    }
}

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/v1/cameras/{id}/live",
            Access::User,
            "Live video of the camera: a WebSocket of fragmented MP4 (see the description); audited",
            get(open),
        )
        .ok_status(101)
        .query("stream", "`sub` (default) or `main`; a camera without that stream sends its other one")
        .query(
            "h265",
            "`true` if the browser plays H.265 in Media Source Extensions; otherwise an H.265 stream is sent as H.264, transcoded while watched",
        )
        .describe(
            "A WebSocket upgrade (GET with `Connection: Upgrade`). Text messages: `init` (codec, width, height, stream, transcoded) before each binary initialisation segment; `status` when the camera's status changes. Binary messages: the initialisation segment, then media segments. Close codes: 4404 camera removed, 4403 no longer in scope, 4408 the viewer stopped reading.",
        ),
        Route::new(
            Method::GET,
            "/api/v1/cameras/{id}/thumbnail",
            Access::User,
            "A JPEG of the camera's latest key frame (the wall's tiles that are not playing); audited once per user and camera every ten minutes",
            get(thumbnail),
        )
        .produces("image/jpeg"),
    ]
}

#[derive(Debug, Deserialize)]
pub struct LiveParams {
    stream: Option<String>,
    h265: Option<String>,
}

async fn open(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Result<Query<LiveParams>, QueryRejection>,
    headers: HeaderMap,
    forward: Forward,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    check_origin(&headers)?;
    let camera = forward.camera(&state, &caller, id).await?;
    let Query(params) =
        params.map_err(|e| ApiError::new(ErrorKind::InvalidInput, e.body_text()))?;
    let kind: StreamKind = match params.stream.as_deref() {
        None => StreamKind::Sub,
        Some(s) => s
            .parse()
            .map_err(|e: String| ApiError::new(ErrorKind::InvalidInput, e))?,
    };
    let h265 = match params.h265.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::new(
                ErrorKind::InvalidInput,
                format!("h265 must be true or false, not {other:?}"),
            ));
        }
    };
    let Ok(upgrade) = upgrade else {
        return Err(ApiError::new(
            ErrorKind::InvalidInput,
            "live video is a WebSocket: connect with Connection: Upgrade",
        ));
    };
    let (info, _) = match camera {
        Camera::Here(entry) => entry,
        Camera::There(camera, peer) => return Ok(forward.live(&camera, &peer, upgrade).await),
    };
    let feed = state.backend.live(&info.id, kind, h265).await?;
    caller
        .audit(
            &state,
            "live.start",
            Some(info.id.to_string()),
            serde_json::json!({ "stream": kind.as_str() }),
        )
        .await?;
    Ok(upgrade
        .max_message_size(64 << 10)
        .on_upgrade(move |socket| session(state, caller, info, kind, feed, socket)))
}

async fn thumbnail(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    forward: Forward,
) -> Result<Response, ApiError> {
    let info = match forward.camera(&state, &caller, id).await? {
        Camera::Here((info, _)) => info,
        Camera::There(camera, peer) => return Ok(forward.http(&camera, &peer, None).await),
    };
    let jpeg = state
        .backend
        .thumbnail(&info.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("camera {} has no picture yet", info.id)))?;
    if state.looks.first_in_a_while(
        caller.name(),
        "camera.thumbnail",
        info.id.as_str(),
        Instant::now(),
    ) {
        caller
            .audit(
                &state,
                "camera.thumbnail",
                Some(info.id.to_string()),
                serde_json::json!({}),
            )
            .await?;
    }
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        jpeg,
    )
        .into_response())
}

/// Refuses a browser page of another origin: the `Origin` header, when present, must name the
/// host the request was sent to.
fn check_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(ApiError::new(
            ErrorKind::PermissionDenied,
            "the Origin header names another site",
        )),
    }
}

/// How a session ended, for the close frame and the audit log.
enum End {
    Feed(LiveEnd),
    OutOfScope,
    TooSlow,
    ViewerLeft,
}

impl End {
    fn close(&self) -> Option<(u16, String)> {
        match self {
            End::Feed(LiveEnd::CameraGone) => Some((4404, LiveEnd::CameraGone.to_string())),
            End::Feed(LiveEnd::Shutdown) => Some((1001, LiveEnd::Shutdown.to_string())),
            End::Feed(LiveEnd::Restarted) => Some((1012, LiveEnd::Restarted.to_string())),
            End::OutOfScope => Some((4403, "you may no longer watch this camera".into())),
            End::TooSlow => Some((4408, "the viewer stopped reading".into())),
            End::ViewerLeft => None,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            End::Feed(LiveEnd::CameraGone) => "camera_gone",
            End::Feed(LiveEnd::Shutdown) => "shutdown",
            End::Feed(LiveEnd::Restarted) => "restarted",
            End::OutOfScope => "out_of_scope",
            End::TooSlow => "too_slow",
            End::ViewerLeft => "viewer_left",
        }
    }
}

async fn session(
    state: ApiState,
    caller: Caller,
    info: CameraInfo,
    kind: StreamKind,
    mut feed: Box<dyn LiveFeed>,
    mut socket: WebSocket,
) {
    let started = Instant::now();
    let mut bytes = 0u64;
    let end = pump(
        &state,
        &caller,
        &info,
        kind,
        feed.as_mut(),
        &mut socket,
        &mut bytes,
    )
    .await;
    drop(feed);
    if let Some((code, reason)) = end.close() {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            socket.send(Message::Close(Some(frame))),
        )
        .await;
    }
    if let Err(e) = caller
        .audit(
            &state,
            "live.end",
            Some(info.id.to_string()),
            serde_json::json!({
                "stream": kind.as_str(),
                "seconds": started.elapsed().as_secs(),
                "bytes": bytes,
                "reason": end.label(),
            }),
        )
        .await
    {
        tracing::warn!(camera = %info.id, error = ?e, "cannot audit the end of a live session");
    }
}

async fn pump(
    state: &ApiState,
    caller: &Caller,
    info: &CameraInfo,
    kind: StreamKind,
    feed: &mut dyn LiveFeed,
    socket: &mut WebSocket,
    bytes: &mut u64,
) -> End {
    let mut caller = caller.clone();
    let mut recheck = tokio::time::interval(state.settings.session_recheck);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.tick().await;
    let mut poll = tokio::time::interval(state.settings.camera_poll);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut status: Option<(&'static str, Option<String>)> = None;
    loop {
        let out: Vec<Message> = tokio::select! {
            message = feed.next() => match message {
                Err(end) => return End::Feed(end),
                Ok(LiveMessage::Init { codec, width, height, transcoded, data }) => vec![
                    Message::Text(
                        serde_json::json!({
                            "type": "init",
                            "codec": codec,
                            "width": width,
                            "height": height,
                            "stream": kind.as_str(),
                            "transcoded": transcoded,
                        })
                        .to_string()
                        .into(),
                    ),
                    Message::Binary(data),
                ],
                Ok(LiveMessage::Fragment(data)) => vec![Message::Binary(data)],
            },
            incoming = socket.recv() => match incoming {
                // The viewer says nothing but may ping; anything else is ignored.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return End::ViewerLeft,
                Some(Ok(_)) => continue,
            },
            _ = recheck.tick() => {
                match crate::auth::recheck(state, &caller).await {
                    Ok(Some(now)) if now.sees_camera(info) => {
                        caller = now;
                        continue;
                    }
                    Ok(_) => return End::OutOfScope,
                    // the store is unreachable: keep the session, check again later
                    Err(_) => continue,
                }
            }
            _ = poll.tick() => {
                let Some((_, stats)) = state.cameras.get(&info.id) else {
                    continue;
                };
                let now = match stats.status() {
                    xl_core::camera::CameraStatus::Offline { reason } => ("offline", Some(reason)),
                    s => (s.label(), None),
                };
                if status.as_ref() == Some(&now) {
                    continue;
                }
                let message = serde_json::json!({
                    "type": "status",
                    "status": now.0,
                    "reason": now.1,
                });
                status = Some(now);
                vec![Message::Text(message.to_string().into())]
            }
        };
        for message in out {
            let len = match &message {
                Message::Binary(b) => b.len(),
                _ => 0,
            };
            match tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await {
                Ok(Ok(())) => *bytes += len as u64,
                Ok(Err(_)) => return End::ViewerLeft,
                Err(_) => {
                    feed.cut_off();
                    return End::TooSlow;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_users_looks_at_one_camera_are_audited_once_a_while() {
        let looks = RecentLooks::default();
        let thumb = "camera.thumbnail";
        let t0 = Instant::now();
        let t5 = t0 + Duration::from_secs(5);
        assert!(looks.first_in_a_while("duty", thumb, "a", t0));
        assert!(!looks.first_in_a_while("duty", thumb, "a", t5));
        assert!(looks.first_in_a_while("duty", thumb, "b", t5));
        assert!(looks.first_in_a_while("police", thumb, "a", t5));
        assert!(looks.first_in_a_while("duty", "recording.play", "a", t5));
        assert!(looks.first_in_a_while("duty", thumb, "a", t0 + LOOK_AUDIT_EVERY));
        // A look whose audit failed is audited at the next one.
        looks.forget("duty", "recording.play", "a");
        assert!(looks.first_in_a_while("duty", "recording.play", "a", t5));
    }

    #[test]
    fn only_this_hosts_pages_may_open_a_live_socket() {
        assert!(check_origin(&headers(None, "hub:8080")).is_ok());
        assert!(check_origin(&headers(Some("http://hub:8080"), "hub:8080")).is_ok());
        assert!(check_origin(&headers(Some("https://HUB:8080/"), "hub:8080")).is_ok());
        assert!(check_origin(&headers(Some("http://evil.example"), "hub:8080")).is_err());
        assert!(check_origin(&headers(Some("http://hub:9090"), "hub:8080")).is_err());
        assert!(check_origin(&headers(Some("null"), "hub:8080")).is_err());
    }
}
