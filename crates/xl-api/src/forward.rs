//! A camera's node-local routes answered on every node of a district.
//!
//! In a district (`[cluster]`) each camera is pulled by one node, the holder of its lease, and
//! only that node has its live stream, its latest key frame, its snapshots' files and its
//! decoder. Every node lists every camera, so a person may ask any node; the routes that need
//! the camera's pipeline (`live`, `thumbnail`, `snapshot`, `decode-policy`) are forwarded to
//! the node that runs it ([`Backend::camera_peer`](crate::backend::Backend::camera_peer)).
//!
//! A forward happens after this node has authenticated the caller and checked the scope
//! (a camera the caller does not see stays "not found", and is never forwarded) and Origin,
//! and before anything touches the local pipeline. The forwarded request carries:
//! - the caller's credentials and nothing else of theirs: `Authorization`, `Cookie` and
//!   `X-CSRF-Token`. Sessions are in the shared store, so the peer authenticates and scopes
//!   the same user and writes the audit entries itself; this node audits nothing of a
//!   forwarded request, so each look is audited once, by the node that served it;
//! - `x-xueliang-forwarded-by: <this node>`: a request carrying it is never forwarded again,
//!   but served where it arrives (no loops). It grants nothing;
//! - `X-Forwarded-For: <the client's address>`, which the peer believes only if this node is
//!   in its `[server] trusted_proxies` (a district lists its nodes there).
//!
//! HTTP answers come back as the peer gave them (status, `Content-Type`, `Cache-Control`,
//! `Content-Length`, body); a peer that does not answer within [`TIMEOUT`] is a 502 naming the
//! camera and the node. A live socket is connected to the peer before the client's upgrade is
//! accepted, so a peer's refusal (401, 404...) reaches the client as the same HTTP answer; a
//! peer that does not answer gets the client's socket closed with 1011 and a reason naming the
//! node. Then messages are pumped both ways, one at a time (each send awaited, a viewer that
//! stops reading cut off as the local live view does), until either side closes; the close
//! code and reason are passed on. A peer silent for [`PEER_IDLE`] is pinged, and one still
//! silent after [`PEER_SILENT`] is taken for gone (1011 to the viewer, naming the node).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as PeerCloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as PeerMessage};
use xl_core::camera::{CameraEntry, CameraInfo};
use xl_core::throttle::{LogThrottle, WARN_EVERY};
use xl_core::{CameraId, ErrorKind};

use crate::auth::Caller;
use crate::backend::{FORWARDED_BY, OnBehalf, Peer};
use crate::live::SEND_TIMEOUT;
use crate::{ApiError, ApiState};

/// How long a peer has to answer (connect, and the whole answer of an HTTP request).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer relayed (snapshots and thumbnails are JPEGs of a few hundred KiB).
const MAX_BODY: usize = 32 << 20;
/// How long a closing socket may take to finish its close handshake.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// The longest close reason a close frame carries (125 bytes of payload less the code).
const MAX_REASON: usize = 123;
/// A forwarded live socket's peer silent this long is pinged (a live view of an offline
/// camera may send nothing for minutes, but its node answers pings while it is up).
const PEER_IDLE: Duration = Duration::from_secs(10);
/// A peer silent this long, pings unanswered, is taken for gone (a node whose host died
/// without closing its sockets), and the viewer is told so instead of watching a frozen
/// picture.
const PEER_SILENT: Duration = Duration::from_secs(30);
/// The payload of this node's own pings: their pongs are not passed on to the viewer.
const KEEPALIVE: &[u8] = b"xueliang-forward";

type PeerSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What a forward needs of the request (an extractor): its method, path and query, the
/// caller's credentials, the client's address, and whether it was forwarded already.
/// No `Debug`: it holds the caller's credentials.
pub(crate) struct Forward {
    method: Method,
    path_and_query: String,
    credentials: OnBehalf,
    /// The client's address as this node resolved it (through its trusted proxies).
    client: Option<String>,
    /// The request came from another node: it is served here, whatever happens.
    forwarded: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Forward {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(&parts.uri, |u| &u.0);
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip().to_string());
        Ok(Forward::new(
            parts.method.clone(),
            uri,
            &parts.headers,
            client,
        ))
    }
}

/// Where a camera's request is served.
pub(crate) enum Camera {
    /// Here: the camera runs on this node (or the request may not be forwarded).
    Here(CameraEntry),
    /// On another node of the district.
    There(CameraId, Peer),
}

impl Forward {
    fn new(method: Method, uri: &Uri, headers: &HeaderMap, client: Option<String>) -> Forward {
        Forward {
            method,
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
            credentials: OnBehalf::of(headers),
            client,
            forwarded: headers.contains_key(FORWARDED_BY),
        }
    }

    /// The camera `id` of the path, if the caller sees it (else "not found", also for a
    /// camera another node runs): here, or the node that runs it.
    pub(crate) async fn camera(
        &self,
        state: &ApiState,
        caller: &Caller,
        id: String,
    ) -> Result<Camera, ApiError> {
        if self.forwarded {
            return crate::cameras::find(state, caller, id).map(Camera::Here);
        }
        let camera =
            CameraId::new(id).map_err(|e| ApiError::new(ErrorKind::InvalidInput, e.to_string()))?;
        let seen = match state.cameras.get(&camera) {
            Some((info, _)) => caller.sees_camera(&info),
            None => state
                .backend
                .topology_view()
                .cameras
                .get(&camera)
                .is_some_and(|c| {
                    caller.sees_camera(&CameraInfo {
                        id: c.id.clone(),
                        name: c.name.clone(),
                        community: c.community.clone(),
                        network: c.network,
                    })
                }),
        };
        if !seen {
            return Err(ApiError::not_found(format!("no camera {camera}")));
        }
        if let Some(peer) = state.backend.camera_peer(&camera).await? {
            return Ok(Camera::There(camera, peer));
        }
        crate::cameras::find(state, caller, camera.to_string()).map(Camera::Here)
    }

    /// The headers the forwarded request carries.
    fn headers(&self, peer: &Peer) -> HeaderMap {
        forward_headers(&self.credentials, &peer.from, self.client.as_deref())
    }

    /// Sends the request (with `body`, JSON) to `peer` and answers what it answers.
    pub(crate) async fn http(
        &self,
        camera: &CameraId,
        peer: &Peer,
        body: Option<Vec<u8>>,
    ) -> Response {
        let url = http_url(&peer.url, &self.path_and_query);
        let mut request = http_client()
            .request(self.method.clone(), url)
            .headers(self.headers(peer));
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let answer = match request.send().await {
            Ok(answer) => answer,
            Err(e) => return no_answer(camera, peer, &e).into_response(),
        };
        let status = answer.status();
        let mut kept = HeaderMap::new();
        for name in [
            header::CONTENT_TYPE,
            header::CACHE_CONTROL,
            header::CONTENT_LENGTH,
        ] {
            if let Some(v) = answer.headers().get(&name) {
                kept.insert(name, v.clone());
            }
        }
        match read_body(answer).await {
            Ok(body) => (status, kept, body).into_response(),
            Err(e) => e.into_response(camera, peer),
        }
    }

    /// Connects to `peer`'s live socket, then accepts the client's upgrade and pumps messages
    /// between the two until either closes.
    pub(crate) async fn live(
        &self,
        camera: &CameraId,
        peer: &Peer,
        upgrade: WebSocketUpgrade,
    ) -> Response {
        let upgrade = upgrade.max_message_size(64 << 10);
        let connected = match ws_url(&peer.url, &self.path_and_query) {
            Some(url) => connect(url, self.headers(peer)).await,
            None => Err(format!("{:?} is not an http:// URL", peer.url)),
        };
        let node = peer.node.clone();
        match connected {
            Ok(Connect::Open(socket)) => upgrade.on_upgrade(move |client| async move {
                pump(client, socket, &node, Keepalive::DEFAULT).await
            }),
            Ok(Connect::Refused(answer)) => answer,
            Err(detail) => {
                warn_no_answer(camera, peer, &detail);
                let reason = close_reason(&format!(
                    "camera {camera} runs on node {node}, which does not answer"
                ));
                upgrade.on_upgrade(move |mut client| async move {
                    let frame = CloseFrame {
                        code: 1011,
                        reason: reason.into(),
                    };
                    let _ =
                        tokio::time::timeout(CLOSE_WAIT, client.send(Message::Close(Some(frame))))
                            .await;
                })
            }
        }
    }
}

/// The credentials, the mark of node `from`, and the client's address.
fn forward_headers(credentials: &OnBehalf, from: &str, client: Option<&str>) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in credentials.headers() {
        out.append(name.clone(), value.clone());
    }
    // A node id is `A-Z a-z 0-9 _ -`; the header's presence is what counts.
    let from = HeaderValue::from_str(from).unwrap_or(HeaderValue::from_static("-"));
    out.insert(HeaderName::from_static(FORWARDED_BY), from);
    if let Some(v) = client.and_then(|c| HeaderValue::from_str(c).ok()) {
        out.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    out
}

/// `base` (a node's advertised URL) with the request's path and query.
fn http_url(base: &str, path_and_query: &str) -> String {
    format!("{}{path_and_query}", base.trim_end_matches('/'))
}

/// The WebSocket URL of `base` with the request's path and query; `None` unless `base` is
/// `http://` or `https://`.
fn ws_url(base: &str, path_and_query: &str) -> Option<String> {
    let base = base.trim_end_matches('/');
    let rest = if let Some(rest) = strip_prefix_ignore_case(base, "http://") {
        format!("ws://{rest}")
    } else {
        format!("wss://{}", strip_prefix_ignore_case(base, "https://")?)
    };
    Some(format!("{rest}{path_and_query}"))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `reason` cut (at a character) to what a close frame carries.
fn close_reason(reason: &str) -> String {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// One client for every peer: plain HTTP on the district's network, no proxy from the
/// environment, no redirects, idle connections dropped before a peer's header-read timeout
/// (10 s) would close them under a request.
fn http_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tcp_nodelay(true)
            .build()
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot build the forwarding client; using the default");
                reqwest::Client::new()
            })
    })
}

/// Why a peer's answer could not be relayed.
enum BodyError {
    TooLarge,
    Broken(reqwest::Error),
}

impl BodyError {
    fn into_response(self, camera: &CameraId, peer: &Peer) -> Response {
        match self {
            BodyError::TooLarge => ApiError::new(
                ErrorKind::Upstream,
                format!(
                    "camera {camera} runs on node {}, whose answer was too large to pass on",
                    peer.node
                ),
            )
            .into_response(),
            BodyError::Broken(e) => no_answer(camera, peer, &e).into_response(),
        }
    }
}

async fn read_body(mut answer: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(BodyError::Broken)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// 502 naming the camera and the node; what went wrong goes to the log.
fn no_answer(camera: &CameraId, peer: &Peer, error: &dyn std::fmt::Display) -> ApiError {
    warn_no_answer(camera, peer, error);
    ApiError::new(
        ErrorKind::Upstream,
        format!(
            "camera {camera} runs on node {}, which does not answer",
            peer.node
        ),
    )
}

fn warn_no_answer(camera: &CameraId, peer: &Peer, error: &dyn std::fmt::Display) {
    static THROTTLE: Mutex<LogThrottle> = Mutex::new(LogThrottle::new(WARN_EVERY));
    let admitted = THROTTLE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .admit(Instant::now());
    if let Some(suppressed) = admitted {
        tracing::warn!(
            camera = %camera,
            node = %peer.node,
            url = %peer.url,
            error = %error,
            suppressed,
            "a request forwarded to the node that runs the camera got no answer"
        );
    }
}

/// A peer's answer to the live socket's handshake.
enum Connect {
    Open(Box<PeerSocket>),
    /// It answered HTTP instead (401, 403, 404...): passed on as it is.
    Refused(Response),
}

async fn connect(url: String, headers: HeaderMap) -> Result<Connect, String> {
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    request.headers_mut().extend(headers);
    let connecting = tokio_tungstenite::connect_async_with_config(request, None, true);
    match tokio::time::timeout(TIMEOUT, connecting).await {
        Ok(Ok((socket, _))) => Ok(Connect::Open(Box::new(socket))),
        Ok(Err(WsError::Http(answer))) => {
            let (parts, body) = (*answer).into_parts();
            let mut kept = HeaderMap::new();
            for name in [header::CONTENT_TYPE, header::CACHE_CONTROL] {
                if let Some(v) = parts.headers.get(&name) {
                    kept.insert(name, v.clone());
                }
            }
            let status = if parts.status == StatusCode::SWITCHING_PROTOCOLS {
                StatusCode::BAD_GATEWAY
            } else {
                parts.status
            };
            Ok(Connect::Refused(
                (status, kept, body.unwrap_or_default()).into_response(),
            ))
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no handshake within {} s", TIMEOUT.as_secs())),
    }
}

/// How a forwarded live session ended.
enum End {
    ClientClosed(Option<CloseFrame>),
    ClientGone,
    PeerClosed(Option<PeerCloseFrame>),
    PeerGone,
    TooSlow,
}

/// When a forwarded live socket pings its peer, and when it gives up on it.
#[derive(Clone, Copy)]
struct Keepalive {
    idle: Duration,
    silent: Duration,
}

impl Keepalive {
    const DEFAULT: Keepalive = Keepalive {
        idle: PEER_IDLE,
        silent: PEER_SILENT,
    };
}

async fn pump<C, P>(mut client: C, mut peer: P, node: &str, keepalive: Keepalive)
where
    C: Stream<Item = Result<Message, axum::Error>> + futures::Sink<Message> + Unpin,
    P: Stream<Item = Result<PeerMessage, WsError>> + futures::Sink<PeerMessage> + Unpin,
{
    let mut heard = tokio::time::Instant::now();
    let mut check = tokio::time::interval_at(heard + keepalive.idle, keepalive.idle / 2);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = loop {
        tokio::select! {
            message = client.next() => match message {
                Some(Ok(Message::Close(frame))) => break End::ClientClosed(frame),
                Some(Ok(message)) => {
                    let sent = tokio::time::timeout(SEND_TIMEOUT, peer.send(to_peer(message))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        break End::PeerGone;
                    }
                }
                None | Some(Err(_)) => break End::ClientGone,
            },
            message = peer.next() => match message {
                Some(Ok(PeerMessage::Close(frame))) => break End::PeerClosed(frame),
                Some(Ok(PeerMessage::Pong(b))) if b.as_ref() == KEEPALIVE => heard = tokio::time::Instant::now(),
                Some(Ok(message)) => {
                    heard = tokio::time::Instant::now();
                    let Some(message) = to_client(message) else { continue };
                    match tokio::time::timeout(SEND_TIMEOUT, client.send(message)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break End::ClientGone,
                        Err(_) => break End::TooSlow,
                    }
                }
                None | Some(Err(_)) => break End::PeerGone,
            },
            _ = check.tick() => {
                let silent = heard.elapsed();
                if silent >= keepalive.silent {
                    break End::PeerGone;
                }
                if silent >= keepalive.idle {
                    let ping = PeerMessage::Ping(KEEPALIVE.into());
                    let sent = tokio::time::timeout(SEND_TIMEOUT, peer.send(ping)).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        break End::PeerGone;
                    }
                }
            }
        }
    };
    let (to_client, to_peer) = match end {
        End::ClientClosed(frame) => (None, Some(frame.map(peer_close))),
        End::ClientGone => (None, Some(Some(peer_frame(1001, "the viewer left")))),
        End::PeerClosed(frame) => (Some(frame.map(client_close)), None),
        End::PeerGone => (
            Some(Some(client_frame(
                1011,
                &format!("node {node}, which runs the camera, stopped answering"),
            ))),
            None,
        ),
        End::TooSlow => (
            Some(Some(client_frame(4408, "the viewer stopped reading"))),
            Some(Some(peer_frame(1001, "the viewer stopped reading"))),
        ),
    };
    // Each side is told, then both close handshakes are given a moment to finish.
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        if let Some(frame) = to_peer {
            let _ = peer.send(PeerMessage::Close(frame)).await;
        }
        if let Some(frame) = to_client {
            let _ = client.send(Message::Close(frame)).await;
        }
        tokio::join!(drain(&mut client), drain(&mut peer));
    })
    .await;
}

async fn drain<S: Stream + Unpin>(stream: &mut S) {
    while stream.next().await.is_some() {}
}

fn to_peer(message: Message) -> PeerMessage {
    match message {
        Message::Text(t) => PeerMessage::Text(t.as_str().into()),
        Message::Binary(b) => PeerMessage::Binary(b),
        Message::Ping(b) => PeerMessage::Ping(b),
        Message::Pong(b) => PeerMessage::Pong(b),
        Message::Close(frame) => PeerMessage::Close(frame.map(peer_close)),
    }
}

fn to_client(message: PeerMessage) -> Option<Message> {
    Some(match message {
        PeerMessage::Text(t) => Message::Text(t.as_str().into()),
        PeerMessage::Binary(b) => Message::Binary(b),
        PeerMessage::Ping(b) => Message::Ping(b),
        PeerMessage::Pong(b) => Message::Pong(b),
        PeerMessage::Close(frame) => Message::Close(frame.map(client_close)),
        PeerMessage::Frame(_) => return None,
    })
}

fn peer_close(frame: CloseFrame) -> PeerCloseFrame {
    peer_frame(frame.code, frame.reason.as_str())
}

fn client_close(frame: PeerCloseFrame) -> CloseFrame {
    client_frame(frame.code.into(), frame.reason.as_str())
}

fn peer_frame(code: u16, reason: &str) -> PeerCloseFrame {
    PeerCloseFrame {
        code: code.into(),
        reason: close_reason(reason).into(),
    }
}

fn client_frame(code: u16, reason: &str) -> CloseFrame {
    CloseFrame {
        code,
        reason: close_reason(reason).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Forward {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        Forward::new(
            Method::GET,
            &"/api/v1/cameras/c1/live?stream=main&h265=true"
                .parse()
                .unwrap(),
            &map,
            Some("192.168.1.20".into()),
        )
    }

    fn peer() -> Peer {
        Peer {
            node: "n2".into(),
            url: "http://10.0.0.5:8080/".into(),
            from: "n1".into(),
        }
    }

    #[test]
    fn only_the_callers_credentials_go_along_with_the_nodes_mark_and_the_client() {
        let forward = request(&[
            ("authorization", "Bearer t0ken"),
            ("cookie", "xl_session=abc; xl_csrf=def"),
            ("x-csrf-token", "def"),
            ("origin", "http://n1:8080"),
            ("host", "n1:8080"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("connection", "upgrade"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        let sent = forward.headers(&peer());
        let mut names: Vec<&str> = sent.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "authorization",
                "cookie",
                "x-csrf-token",
                "x-forwarded-for",
                "x-xueliang-forwarded-by"
            ]
        );
        assert_eq!(sent["authorization"], "Bearer t0ken");
        assert_eq!(sent["cookie"], "xl_session=abc; xl_csrf=def");
        // The client's address as this node resolved it, never what the client claimed.
        assert_eq!(sent["x-forwarded-for"], "192.168.1.20");
        assert_eq!(sent[FORWARDED_BY], "n1");
    }

    #[test]
    fn a_request_from_another_node_is_never_forwarded_again() {
        assert!(!request(&[("authorization", "Bearer t")]).forwarded);
        assert!(request(&[(FORWARDED_BY, "n2")]).forwarded);
        // Whatever it says: its presence is what counts.
        assert!(request(&[(FORWARDED_BY, "")]).forwarded);
    }

    #[test]
    fn the_peers_url_gets_the_same_path_and_query() {
        let forward = request(&[]);
        assert_eq!(
            http_url(&peer().url, &forward.path_and_query),
            "http://10.0.0.5:8080/api/v1/cameras/c1/live?stream=main&h265=true"
        );
        assert_eq!(
            ws_url("http://10.0.0.5:8080", "/api/v1/cameras/c1/live?stream=sub").as_deref(),
            Some("ws://10.0.0.5:8080/api/v1/cameras/c1/live?stream=sub")
        );
        assert_eq!(
            ws_url("HTTPS://hub.example/", "/x").as_deref(),
            Some("wss://hub.example/x")
        );
        assert_eq!(ws_url("10.0.0.5:8080", "/x"), None);
        assert_eq!(ws_url("ftp://10.0.0.5", "/x"), None);
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let long = "摄".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= MAX_REASON && long.starts_with(&cut), "{cut}");
        assert_eq!(close_reason("camera gone"), "camera gone");
        let frame = client_close(peer_frame(4404, "the camera was removed"));
        assert_eq!(
            (frame.code, frame.reason.as_str()),
            (4404, "the camera was removed")
        );
    }

    /// A peer node at a real socket: it takes the handshake, then `answers` pings (it reads
    /// its socket, so tungstenite pongs) or stays silent as a dead host does. It sends nothing.
    async fn peer_node(answers: bool) -> Box<PeerSocket> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
            if answers {
                while socket.next().await.is_some() {}
            } else {
                std::future::pending::<()>().await;
            }
        });
        let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .unwrap();
        Box::new(socket)
    }

    /// A viewer's socket to a node that pumps it to `peer` with `keepalive`.
    async fn viewer(peer: Box<PeerSocket>, keepalive: Keepalive) -> Box<PeerSocket> {
        let peer = std::sync::Arc::new(Mutex::new(Some(peer)));
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move |upgrade: WebSocketUpgrade| {
                let peer = peer.lock().unwrap().take().expect("one viewer");
                async move {
                    upgrade.on_upgrade(move |client| async move {
                        pump(client, peer, "n2", keepalive).await
                    })
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .unwrap();
        Box::new(socket)
    }

    const SHORT: Keepalive = Keepalive {
        idle: Duration::from_millis(100),
        silent: Duration::from_millis(400),
    };

    #[tokio::test]
    async fn a_viewer_is_told_when_the_peer_node_goes_silent() {
        let mut viewer = viewer(peer_node(false).await, SHORT).await;
        let end = match tokio::time::timeout(Duration::from_secs(20), viewer.next())
            .await
            .expect("the viewer is told within the keepalive's limit")
        {
            Some(Ok(PeerMessage::Close(frame))) => frame,
            other => panic!("the viewer got {other:?} instead of a close frame"),
        }
        .expect("a close frame with a reason");
        assert_eq!(u16::from(end.code), 1011);
        assert!(end.reason.contains("node n2"), "{}", end.reason);
    }

    #[tokio::test]
    async fn a_peer_that_answers_pings_is_kept_and_its_pongs_stay_between_the_nodes() {
        let mut viewer = viewer(peer_node(true).await, SHORT).await;
        // Five times the silence limit: the pings keep the peer, and their pongs are the
        // nodes' business, so the viewer gets nothing at all.
        let got = tokio::time::timeout(SHORT.silent * 5, viewer.next()).await;
        assert!(got.is_err(), "the viewer got {got:?}");
        viewer.send(PeerMessage::Close(None)).await.unwrap();
        let closed = tokio::time::timeout(Duration::from_secs(20), viewer.next())
            .await
            .expect("the close handshake ends");
        assert!(
            matches!(closed, Some(Ok(PeerMessage::Close(_))) | None),
            "{closed:?}"
        );
    }
}
