//! `/api/v1/gates`: configured gates with their health (last seen, online, the device's open
//! exception) and counters.

use std::sync::atomic::Ordering::Relaxed;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::routing::get;
use jiff::Timestamp;
use serde::Serialize;
use xl_core::gate_status::{DeviceException, GateEntry};
use xl_core::{CameraId, CommunityId, ErrorKind, GateId};

use crate::auth::Caller;
use crate::backend::EventQuery;
use crate::params::Params;
use crate::routes::{Access, Route};
use crate::{ApiError, ApiState};

pub(crate) fn routes() -> Vec<Route> {
    use crate::schema;
    vec![
        Route::new(
            Method::GET,
            "/api/v1/gates",
            Access::User,
            "Gates the caller may see, with health and counters",
            get(list),
        )
        .answers(schema::gates),
        Route::new(
            Method::GET,
            "/api/v1/gates/{id}",
            Access::User,
            "One gate",
            get(detail),
        )
        .answers(schema::gate),
        Route::new(
            Method::GET,
            "/api/v1/gates/{id}/events",
            Access::User,
            "The gate's stored events, newest first",
            get(events),
        )
        .query("limit", "1 to 1000, default 100")
        .answers(schema::events),
    ]
}

/// One gate as the API shows it.
#[derive(Debug, Serialize)]
pub struct GateDto {
    pub id: GateId,
    pub community: CommunityId,
    pub firmware: String,
    pub camera: Option<CameraId>,
    /// `online` (heard from within `offline_after_secs`), `offline`, or `unknown` (never heard
    /// from since the hub started).
    pub status: &'static str,
    pub last_seen: Option<Timestamp>,
    pub offline_after_secs: u64,
    /// A condition the device reported and has not reported the end of (tamper, reader
    /// offline, alarm...).
    pub exception: Option<DeviceException>,
    pub events: u64,
    pub duplicates: u64,
    pub dead_letters: u64,
}

impl From<&GateEntry> for GateDto {
    fn from((info, stats): &GateEntry) -> Self {
        let last_seen = stats.last_seen();
        GateDto {
            id: info.id.clone(),
            community: info.community.clone(),
            firmware: info.firmware.clone(),
            camera: info.camera.clone(),
            status: match (last_seen, stats.is_online()) {
                (None, _) => "unknown",
                (Some(_), true) => "online",
                (Some(_), false) => "offline",
            },
            last_seen,
            offline_after_secs: info.offline_after_secs,
            exception: stats.exception(),
            events: stats.events.load(Relaxed),
            duplicates: stats.duplicates.load(Relaxed),
            dead_letters: stats.dead_letters.load(Relaxed),
        }
    }
}

async fn list(State(state): State<ApiState>, caller: Caller) -> Json<Vec<GateDto>> {
    Json(
        state
            .gates
            .snapshot()
            .iter()
            .filter(|(info, _)| caller.sees_gate(info))
            .map(GateDto::from)
            .collect(),
    )
}

/// A gate the caller sees; others are "not found".
fn find(state: &ApiState, caller: &Caller, id: String) -> Result<GateEntry, ApiError> {
    let id = GateId::new(id).map_err(|e| ApiError::new(ErrorKind::InvalidInput, e.to_string()))?;
    state
        .gates
        .get(&id)
        .filter(|(info, _)| caller.sees_gate(info))
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no gate {id}")))
}

async fn detail(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<GateDto>, ApiError> {
    Ok(Json(GateDto::from(&find(&state, &caller, id)?)))
}

async fn events(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let limit = params.only(&["limit"])?.limit(100, 1000)?;
    let (info, _) = find(&state, &caller, id)?;
    let rows = state
        .backend
        .gate_events(EventQuery {
            gates: Some(vec![info.id.clone()]),
            communities: caller.communities(None),
            limit,
            ..EventQuery::default()
        })
        .await?;
    Ok(Json(crate::evidence::keep_gate_events(&caller, rows)))
}

/// The gate families of `/metrics`. Gate ids and firmware names are `[A-Za-z0-9_.-]` (ids by
/// construction; firmware names are the built-in ones or config names, escaped anyway).
pub(crate) fn render_metrics(out: &mut String, state: &ApiState) {
    use std::fmt::Write;
    use xl_core::gate_status::{GateStats, LATENCY_BUCKETS_SECS};

    let gates = state.gates.snapshot();
    let unclaimed = state.gates.unattributed_snapshot();
    // (gate label, firmware, stats): configured gates, then payloads no gate claimed (gate="").
    let rows: Vec<(String, String, &GateStats)> = gates
        .iter()
        .map(|(i, s)| (i.id.to_string(), esc(&i.firmware), &**s))
        .chain(unclaimed.iter().map(|(f, s)| (String::new(), esc(f), &**s)))
        .collect();
    type Get = fn(&GateStats) -> u64;
    let counters: [(&str, &str, Get); 3] = [
        (
            "xueliang_gate_events_total",
            "Canonical gate events stored.",
            |s| s.events.load(Relaxed),
        ),
        (
            "xueliang_gate_duplicates_total",
            "Gate events recognised as repeats (QoS 1 redelivery, device resend), not stored again.",
            |s| s.duplicates.load(Relaxed),
        ),
        (
            "xueliang_gate_dead_letters_total",
            "Gate payloads kept as dead letters (undecodable or unclaimed); gate=\"\" when no gate was known.",
            |s| s.dead_letters.load(Relaxed),
        ),
    ];
    for (name, help, get) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (g, f, s) in &rows {
            let _ = writeln!(out, "{name}{{gate=\"{g}\",firmware=\"{f}\"}} {}", get(s));
        }
    }
    let name = "xueliang_gate_event_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} From receipt of a gate payload to its events being durably stored.\n# TYPE {name} histogram"
    );
    for (g, f, s) in &rows {
        let cumulative = s.latency.cumulative();
        for (i, n) in cumulative.iter().enumerate() {
            let le = LATENCY_BUCKETS_SECS
                .get(i)
                .map_or("+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(
                out,
                "{name}_bucket{{gate=\"{g}\",firmware=\"{f}\",le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_sum{{gate=\"{g}\",firmware=\"{f}\"}} {}\n{name}_count{{gate=\"{g}\",firmware=\"{f}\"}} {}",
            s.latency.sum_secs(),
            s.latency.count()
        );
    }
    let name = "xueliang_gate_online";
    let _ = writeln!(
        out,
        "# HELP {name} 1 when the gate was heard from within its offline_after_secs.\n# TYPE {name} gauge"
    );
    for (info, s) in &gates {
        let _ = writeln!(
            out,
            "{name}{{gate=\"{}\",firmware=\"{}\"}} {}",
            info.id,
            esc(&info.firmware),
            u8::from(s.is_online())
        );
    }
    let name = "xueliang_gate_last_seen_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Unix time of the last payload from the gate.\n# TYPE {name} gauge"
    );
    for (info, s) in &gates {
        if let Some(t) = s.last_seen() {
            let _ = writeln!(
                out,
                "{name}{{gate=\"{}\",firmware=\"{}\"}} {}",
                info.id,
                esc(&info.firmware),
                t.as_second()
            );
        }
    }
}

/// Escapes a Prometheus label value.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
