//! HTTP push receivers, for firmware that calls the hub instead of publishing to a broker.
//!
//! - `POST /gates/push/hikvision/{gate}`: Hikvision "HTTP listening" (ISAPI event
//!   notification). Set the device's HTTP host URL to this path, one URL per gate. The body is
//!   `multipart/form-data` with a JSON part and an optional picture (kept as evidence), or
//!   bare JSON.
//! - `GET|POST /iclock/cdata`, `GET /iclock/getrequest`, `POST /iclock/devicecmd`: ZKTeco
//!   ADMS. The terminal is known only by its serial number (`SN` query parameter), matched to
//!   the `device` of a `[[gates]]` entry with `firmware = "zkteco-adms"`.
//!
//! These routes face devices, which cannot send the API's bearer token. Each gate is
//! authenticated by what its config sets, and a gate with neither is refused:
//! - `push_allow_from`: the source address must be in one of these networks (ZKTeco ADMS
//!   terminals can only be configured with a server address, so this is their only means);
//! - `push_secret`: the `secret` query parameter must match (Hikvision lets the URL carry it).
//!
//! With both set, both must hold. Behind a reverse proxy the source address is the proxy's:
//! rely on `push_secret` there. Unauthenticated requests are answered 403 and not stored, so
//! strangers cannot fill the dead letters.
//!
//! Replies: 200 (`OK` for ADMS) once the events or the dead letter are durable, also for
//! payloads that did not decode (they are kept; resending would not help); 503 when storage
//! failed, so the device sends again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use tracing::{debug, warn};
use xl_core::GateId;
use xl_core::gate::PayloadMeta;

use crate::ingest::{GateHint, GateRt, Incoming, Ingest};
use crate::journal::TransportKind;

/// Largest push body (a face terminal's JSON plus a picture).
pub const MAX_PUSH_BYTES: usize = 8 << 20;

/// The device-facing routes. Serve with `into_make_service_with_connect_info::<SocketAddr>()`
/// so the source address is known.
pub fn push_router(ingest: Arc<Ingest>) -> Router {
    Router::new()
        .route("/gates/push/hikvision/{gate}", post(hikvision))
        .route("/iclock/cdata", get(adms).post(adms))
        .route("/iclock/getrequest", get(adms))
        .route("/iclock/devicecmd", post(adms))
        .with_state(ingest)
}

fn reply(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// The request's body, read only once the device is authorized: a stranger's request is
/// refused before its body is taken in.
async fn read_body(body: Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, MAX_PUSH_BYTES)
        .await
        .map_err(|e| {
            debug!(error = %e, "push body not read");
            reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body over 8 MiB, or cut short\n",
            )
        })
}

/// Checks `gate`'s push credentials against the request.
fn authorized(g: &GateRt, peer: SocketAddr, query: Option<&str>) -> Result<(), &'static str> {
    let cfg = &g.cfg;
    if cfg.push_allow_from.is_empty() && cfg.push_secret.is_none() {
        return Err("gate has neither push_allow_from nor push_secret");
    }
    if !cfg.push_allow_from.is_empty() && !cfg.push_allow_from.iter().any(|n| n.contains(peer.ip()))
    {
        return Err("source address not in push_allow_from");
    }
    if let Some(secret) = &cfg.push_secret {
        let given = query.and_then(|q| {
            PayloadMeta::new(Timestamp::UNIX_EPOCH)
                .with_query(q)
                .query_param("secret")
        });
        let ok = given.is_some_and(|g| {
            let (a, b) = (g.as_bytes(), secret.as_bytes());
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
        });
        if !ok {
            return Err("missing or wrong secret");
        }
    }
    Ok(())
}

async fn hikvision(
    State(ingest): State<Arc<Ingest>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(gate): Path<String>,
    RawQuery(query): RawQuery,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let arrived = Instant::now();
    let Some(g) = GateId::new(gate.as_str())
        .ok()
        .and_then(|id| ingest.gate(&id))
    else {
        warn!(%peer, gate = %gate.escape_debug(), "push for an unknown gate refused");
        return reply(StatusCode::NOT_FOUND, "unknown gate\n");
    };
    if g.cfg.firmware != xl_fw_hikvision::NAME {
        warn!(%peer, gate = %g.cfg.id, firmware = %g.cfg.firmware, "Hikvision push for a gate of another firmware refused");
        return reply(StatusCode::NOT_FOUND, "gate is not a Hikvision gate\n");
    }
    if let Err(why) = authorized(g, peer, query.as_deref()) {
        warn!(%peer, gate = %g.cfg.id, reason = why, "push refused");
        return reply(StatusCode::FORBIDDEN, "forbidden\n");
    }
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut meta = PayloadMeta::new(Timestamp::now()).with_path(uri.path());
    if let Some(ct) = content_type {
        meta = meta.with_content_type(ct);
    }
    let id = g.cfg.id.clone();
    let inc = Incoming {
        transport: TransportKind::Http,
        firmware: xl_fw_hikvision::NAME,
        meta,
        payload: &body,
        gate: GateHint::Known(&id),
        redelivered: false,
        peer: Some(peer),
        arrived,
    };
    let done = ingest.ingest(&inc).await;
    debug!(gate = %id, events = done.events, dead_letters = done.dead_letters, duplicates = done.duplicates, "hikvision push");
    match done.outcome {
        Ok(()) => reply(StatusCode::OK, "OK\n"),
        Err(e) => {
            warn!(gate = %id, error = %e, "cannot store pushed gate events");
            reply(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable\n")
        }
    }
}

/// The reply to a terminal's registration (`GET /iclock/cdata?SN=..&options=all`): send new
/// attendance records in real time, no encryption.
const ADMS_OPTIONS: &str = "Stamp=9999\nOpStamp=9999\nErrorDelay=30\nDelay=10\n\
TransTimes=00:00;14:05\nTransInterval=1\nTransFlag=1111000000\nRealtime=1\nEncrypt=0\n";

async fn adms(
    State(ingest): State<Arc<Ingest>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    uri: Uri,
    body: Body,
) -> Response {
    let arrived = Instant::now();
    let received_at = Timestamp::now();
    let q = query.as_deref().unwrap_or("");
    let probe = PayloadMeta::new(received_at).with_query(q);
    let Some(sn) = probe.query_param("SN").filter(|s| !s.trim().is_empty()) else {
        return reply(StatusCode::BAD_REQUEST, "missing SN\n");
    };
    let Some(g) = ingest.gate_by_device(xl_fw_zkteco::NAME, sn.trim()) else {
        warn!(%peer, sn = %sn.escape_debug(), "ADMS terminal with an unconfigured serial number refused");
        return reply(StatusCode::FORBIDDEN, "unknown device\n");
    };
    if let Err(why) = authorized(g, peer, query.as_deref()) {
        warn!(%peer, gate = %g.cfg.id, reason = why, "ADMS request refused");
        return reply(StatusCode::FORBIDDEN, "forbidden\n");
    }
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let id = g.cfg.id.clone();
    let meta = PayloadMeta::new(received_at)
        .with_path(uri.path())
        .with_query(q);
    let inc = Incoming {
        transport: TransportKind::Http,
        firmware: xl_fw_zkteco::NAME,
        meta,
        payload: &body,
        gate: GateHint::Known(&id),
        redelivered: false,
        peer: Some(peer),
        arrived,
    };
    let done = ingest.ingest(&inc).await;
    if let Err(e) = done.outcome {
        warn!(gate = %id, error = %e, "cannot store ADMS records");
        return reply(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable\n");
    }
    let registration = uri.path() == "/iclock/cdata" && probe.query_param("options").is_some();
    if registration {
        let text = format!("GET OPTION FROM: {}\n{ADMS_OPTIONS}", sn.trim());
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text,
        )
            .into_response();
    }
    reply(StatusCode::OK, "OK")
}
