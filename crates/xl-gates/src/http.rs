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
//! Every refusal is the same answer ([`refused`]: 403, `forbidden`), whether the gate is
//! unknown, of another firmware, or the address or secret is wrong (and for ADMS, whether the
//! serial number is unknown), and takes the same path (an unknown gate's secret is compared
//! with a dummy one): gate ids and serial numbers cannot be enumerated from outside. Why a
//! request was refused is for the operator: logged at WARN, the first refusal of each
//! configured gate (and of unknown ones, together) at once, then at most one line a minute with
//! the number refused since ([`RefusalLog`]); every refusal at DEBUG.
//!
//! Replies: 200 (`OK` for ADMS) once the events or the dead letter are durable, also for
//! payloads that did not decode (they are kept; resending would not help); 503 when storage
//! failed, so the device sends again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
use xl_core::throttle::LogThrottle;

use crate::ingest::{GateHint, GateRt, GateTable, Incoming, Ingest};
use crate::journal::TransportKind;

/// Largest push body (a face terminal's JSON plus a picture).
pub const MAX_PUSH_BYTES: usize = 8 << 20;

/// The device-facing routes. Serve with `into_make_service_with_connect_info::<SocketAddr>()`
/// so the source address is known.
pub fn push_router(ingest: Arc<Ingest>) -> Router {
    let state = Push {
        ingest,
        refusals: Arc::new(RefusalLog::default()),
    };
    Router::new()
        .route("/gates/push/hikvision/{gate}", post(hikvision))
        .route("/iclock/cdata", get(adms).post(adms))
        .route("/iclock/getrequest", get(adms))
        .route("/iclock/devicecmd", post(adms))
        .with_state(state)
}

#[derive(Clone)]
struct Push {
    ingest: Arc<Ingest>,
    refusals: Arc<RefusalLog>,
}

/// The one answer to every refused push: the same status, headers and body whatever the
/// reason, so that it tells a stranger nothing about which gates or serial numbers exist.
fn refused() -> Response {
    reply(StatusCode::FORBIDDEN, "forbidden\n")
}

/// Why a push was refused (for the hub's log, never for the device).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    UnknownGate,
    OtherFirmware,
    UnknownSerial,
    NoCredentials,
    AddressNotAllowed,
    WrongSecret,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownGate => "no such gate",
            Refusal::OtherFirmware => "the gate is of another firmware",
            Refusal::UnknownSerial => "no zkteco-adms gate has this serial number (`device`)",
            Refusal::NoCredentials => "the gate has neither push_allow_from nor push_secret",
            Refusal::AddressNotAllowed => "source address not in push_allow_from",
            Refusal::WrongSecret => "missing or wrong secret",
        }
    }
}

/// Rate limit of the refusal warnings, per configured gate plus one bucket for requests that
/// name no configured gate: a stranger's flood costs at most one line a minute, and cannot
/// hide a misconfigured device's own warning. Bounded by the number of configured gates (those
/// of gates removed while running are forgotten).
#[derive(Debug, Default)]
struct RefusalLog {
    /// Per gate (`None`: unknown gates and serials).
    per_gate: Mutex<HashMap<Option<GateId>, LogThrottle>>,
}

/// At most one refusal warning per gate in this time.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);

impl RefusalLog {
    /// Whether to log a refusal for `gate` at `now`; `Some(n)`: yes, with `n` refusals left
    /// unlogged since the previous warning.
    fn take(&self, gate: Option<&GateId>, now: Instant) -> Option<u64> {
        let mut map = self.per_gate.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(gate.cloned())
            .or_insert_with(|| LogThrottle::new(REFUSAL_LOG_INTERVAL))
            .admit(now)
    }

    /// Forgets the limits of gates that `table` no longer has, once there are more limits
    /// than its gates (and the one of unknown gates).
    fn forget_removed(&self, table: &GateTable) {
        let mut map = self.per_gate.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > table.len() + 1 {
            map.retain(|g, _| match g {
                Some(id) => table.gate(id).is_some(),
                None => true,
            });
        }
    }

    /// Logs a refusal: always at DEBUG, at WARN when the rate limit lets it through.
    fn refuse(
        &self,
        table: &GateTable,
        route: &str,
        peer: SocketAddr,
        named: &str,
        gate: Option<&GateId>,
        why: Refusal,
    ) -> Response {
        self.forget_removed(table);
        debug!(%peer, route, named = %named.escape_debug(), reason = why.as_str(), "device push refused");
        if let Some(unlogged) = self.take(gate, Instant::now()) {
            warn!(
                %peer,
                route,
                named = %named.escape_debug(),
                reason = why.as_str(),
                unlogged_since_last_warning = unlogged,
                "device push refused (the device is told only 403; one such line a minute per gate)"
            );
        }
        refused()
    }
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

/// A secret no gate has: unknown gates are checked against it, so that they take the same
/// path as known ones.
const DUMMY_SECRET: &str = "no gate has this secret; it only keeps the work the same";

/// Compares in time that depends only on the length of `given` (which the sender knows), not
/// on where the first difference is nor on the secret's length.
fn ct_eq(given: &[u8], secret: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != secret.len());
    for (i, g) in given.iter().enumerate() {
        let s = if secret.is_empty() {
            0
        } else {
            secret[i % secret.len()]
        };
        diff |= g ^ s;
    }
    diff == 0
}

/// Checks a push for `gate` (`None`: no configured gate matched) of `firmware` against the
/// request. Every case does the same work: the address is matched against the gate's networks
/// and the secret compared with the gate's (or a dummy), before any outcome is decided.
fn authorize<'g>(
    gate: Option<&'g GateRt>,
    firmware: &str,
    unknown: Refusal,
    peer: SocketAddr,
    query: Option<&str>,
) -> Result<&'g GateRt, Refusal> {
    let given = query
        .and_then(|q| {
            PayloadMeta::new(Timestamp::UNIX_EPOCH)
                .with_query(q)
                .query_param("secret")
        })
        .unwrap_or_default();
    let cfg = gate.map(|g| &g.cfg);
    let nets = cfg.map_or(&[][..], |c| &c.push_allow_from[..]);
    let address_ok = nets.is_empty() || nets.iter().any(|n| n.contains(peer.ip()));
    let secret = cfg.and_then(|c| c.push_secret.as_deref());
    let secret_ok = ct_eq(given.as_bytes(), secret.unwrap_or(DUMMY_SECRET).as_bytes());
    let Some(g) = gate else {
        return Err(unknown);
    };
    if g.cfg.firmware != firmware {
        return Err(Refusal::OtherFirmware);
    }
    if nets.is_empty() && secret.is_none() {
        return Err(Refusal::NoCredentials);
    }
    if !address_ok {
        return Err(Refusal::AddressNotAllowed);
    }
    if secret.is_some() && !secret_ok {
        return Err(Refusal::WrongSecret);
    }
    Ok(g)
}

async fn hikvision(
    State(push): State<Push>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(gate): Path<String>,
    RawQuery(query): RawQuery,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let arrived = Instant::now();
    let ingest = &push.ingest;
    // The gates as of this request: it is authorized, and its events stored, by these, even
    // if the gates are replaced meanwhile.
    let table = ingest.gates();
    let known = GateId::new(gate.as_str())
        .ok()
        .and_then(|id| table.gate(&id));
    let g = match authorize(
        known,
        xl_fw_hikvision::NAME,
        Refusal::UnknownGate,
        peer,
        query.as_deref(),
    ) {
        Ok(g) => g,
        Err(why) => {
            let id = known.map(|g| &g.cfg.id);
            return push
                .refusals
                .refuse(&table, "hikvision", peer, &gate, id, why);
        }
    };
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut meta = PayloadMeta::new(ingest.clocks().realtime()).with_path(uri.path());
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
    let done = ingest.ingest_in(&table, &inc).await;
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
    State(push): State<Push>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    uri: Uri,
    body: Body,
) -> Response {
    let arrived = Instant::now();
    let ingest = &push.ingest;
    let received_at = ingest.clocks().realtime();
    let q = query.as_deref().unwrap_or("");
    let probe = PayloadMeta::new(received_at).with_query(q);
    let Some(sn) = probe.query_param("SN").filter(|s| !s.trim().is_empty()) else {
        return reply(StatusCode::BAD_REQUEST, "missing SN\n");
    };
    // As for Hikvision: authorized and stored by the same gates.
    let table = ingest.gates();
    let known = table.gate_by_device(xl_fw_zkteco::NAME, sn.trim());
    let g = match authorize(
        known,
        xl_fw_zkteco::NAME,
        Refusal::UnknownSerial,
        peer,
        query.as_deref(),
    ) {
        Ok(g) => g,
        Err(why) => {
            let id = known.map(|g| &g.cfg.id);
            return push
                .refusals
                .refuse(&table, "zkteco-adms", peer, &sn, id, why);
        }
    };
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
    let done = ingest.ingest_in(&table, &inc).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_matches_only_the_same_bytes() {
        assert!(ct_eq(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!ct_eq(b"0123456789abcdeg", b"0123456789abcdef"));
        assert!(!ct_eq(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!ct_eq(b"0123456789abcdef0", b"0123456789abcdef"));
        // A prefix repeated is not the secret.
        assert!(!ct_eq(b"abab", b"ab"));
        assert!(!ct_eq(b"", b"ab"));
        assert!(ct_eq(b"", b""));
        assert!(!ct_eq(b"a", b""));
    }

    #[test]
    fn refusal_warnings_are_one_a_minute_per_gate_with_the_count_skipped() {
        let log = RefusalLog::default();
        let t0 = Instant::now();
        let lobby = GateId::new("lobby").unwrap();
        let office = GateId::new("office").unwrap();
        assert_eq!(log.take(None, t0), Some(0));
        for i in 1..=500 {
            assert_eq!(log.take(None, t0 + Duration::from_millis(i)), None);
        }
        // Strangers' refusals do not silence a configured gate's.
        assert_eq!(log.take(Some(&lobby), t0), Some(0));
        assert_eq!(log.take(Some(&lobby), t0 + Duration::from_secs(1)), None);
        assert_eq!(
            log.take(Some(&office), t0 + Duration::from_secs(1)),
            Some(0)
        );
        assert_eq!(log.take(None, t0 + REFUSAL_LOG_INTERVAL), Some(500));
        assert_eq!(log.take(None, t0 + REFUSAL_LOG_INTERVAL), None);
        assert_eq!(
            log.take(
                Some(&lobby),
                t0 + Duration::from_secs(1) + REFUSAL_LOG_INTERVAL
            ),
            Some(1)
        );
    }
}
