//! Evidence, events and figures: `/api/v1/snapshots/{id}`, `/api/v1/events/gates`,
//! `/api/v1/events/vision`, `/api/v1/figures/response-times`. All scoped to the caller.

use std::path::Path as FsPath;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::{SignedDuration, Timestamp};
use xl_core::{CameraId, CommunityId, GateId};

use crate::auth::Caller;
use crate::backend::{EventQuery, ResponseTimes, SnapshotInfo};
use crate::params::{Params, range};
use crate::routes::{Access, Route};
use crate::{ApiError, ApiState};

/// Largest snapshot file served.
const MAX_JPEG_BYTES: u64 = 16 << 20;

pub(crate) fn routes() -> Vec<Route> {
    let events = |path, summary, handler, what: &'static str| {
        Route::new(Method::GET, path, Access::User, summary, handler)
            .query(what, "comma-separated ids")
            .query("community", "comma-separated community ids")
            .query("from", "RFC 3339, inclusive")
            .query("to", "RFC 3339, exclusive")
            .query("limit", "1 to 1000, default 100")
            .answers(crate::schema::events)
    };
    vec![
        Route::new(
            Method::GET,
            "/api/v1/snapshots/{id}",
            Access::User,
            "A snapshot (JPEG); audited",
            get(snapshot),
        )
        .produces("image/jpeg"),
        events(
            "/api/v1/events/gates",
            "Stored gate events, newest first",
            get(gate_events),
            "gate",
        ),
        events(
            "/api/v1/events/vision",
            "Stored vision events, newest first",
            get(vision_events),
            "camera",
        ),
        Route::new(
            Method::GET,
            "/api/v1/figures/response-times",
            Access::User,
            "Time to acknowledge and to resolve, per community and alert kind",
            get(response_times),
        )
        .query("from", "RFC 3339, default 7 days ago")
        .query("to", "RFC 3339, default now")
        .answers(crate::schema::response_times),
    ]
}

/// Reads a snapshot's JPEG; a missing file is "not found".
pub(crate) async fn read_jpeg(path: &FsPath) -> Result<Vec<u8>, ApiError> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|_| ApiError::not_found("the snapshot's image is gone"))?;
    if meta.len() > MAX_JPEG_BYTES {
        return Err(ApiError::internal("snapshot file too large"));
    }
    tokio::fs::read(path).await.map_err(|e| {
        tracing::warn!(path = %path.display(), error = %e, "reading a snapshot");
        ApiError::not_found("the snapshot's image is gone")
    })
}

/// Whether the caller may see a snapshot: by its alert when it has one, else by its camera;
/// snapshots of neither only for roles that see everything.
pub(crate) async fn sees_snapshot(
    state: &ApiState,
    caller: &Caller,
    snap: &SnapshotInfo,
) -> Result<bool, ApiError> {
    if caller.sees_all() {
        return Ok(true);
    }
    if let Some(alert) = &snap.alert {
        return Ok(state
            .backend
            .alert(alert)
            .await?
            .is_some_and(|v| caller.sees_alert(&v.alert)));
    }
    if let Some(camera) = &snap.camera {
        return Ok(state
            .cameras
            .get(camera)
            .is_some_and(|(info, _)| caller.sees_camera(&info)));
    }
    Ok(false)
}

async fn snapshot(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(format!("no snapshot {id}"));
    if id.is_empty() || id.len() > 128 {
        return Err(not_found());
    }
    let (snap, path) = state.backend.snapshot(&id).await?.ok_or_else(not_found)?;
    if !sees_snapshot(&state, &caller, &snap).await? {
        return Err(not_found());
    }
    let jpeg = read_jpeg(&path).await?;
    let detail = serde_json::json!({ "camera": snap.camera, "alert": snap.alert });
    caller
        .audit(&state, "snapshot.view", Some(snap.id.clone()), detail)
        .await?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response())
}

fn str_field<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(|x| x.as_str())
}

/// Drops gate events outside the caller's communities (defence in depth: the query already
/// asks the backend for the caller's communities only).
pub(crate) fn keep_gate_events(
    caller: &Caller,
    rows: Vec<serde_json::Value>,
) -> Vec<serde_json::Value> {
    if caller.sees_all() {
        return rows;
    }
    rows.into_iter()
        .filter(|r| {
            str_field(r, "community")
                .and_then(|c| CommunityId::new(c).ok())
                .is_some_and(|c| caller.sees_community(&c))
        })
        .collect()
}

struct EventParams {
    communities: Option<Vec<CommunityId>>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    limit: u32,
}

fn event_params(params: &Params, caller: &Caller, what: &str) -> Result<EventParams, ApiError> {
    params.only(&[what, "community", "from", "to", "limit"])?;
    let (from, to) = range(params.time("from")?, params.time("to")?)?;
    Ok(EventParams {
        communities: caller.communities(params.list("community")?),
        from,
        to,
        limit: params.limit(100, 1000)?,
    })
}

async fn gate_events(
    State(state): State<ApiState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let p = event_params(&params, &caller, "gate")?;
    let gates: Option<Vec<GateId>> = params.list("gate")?;
    let rows = state
        .backend
        .gate_events(EventQuery {
            gates,
            cameras: None,
            communities: p.communities,
            from: p.from,
            to: p.to,
            limit: p.limit,
        })
        .await?;
    Ok(Json(keep_gate_events(&caller, rows)))
}

async fn vision_events(
    State(state): State<ApiState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let p = event_params(&params, &caller, "camera")?;
    let asked: Option<Vec<CameraId>> = params.list("camera")?;
    // A property user sees events of the community-network cameras of their communities only.
    let visible: Option<Vec<CameraId>> = (!caller.sees_all()).then(|| {
        state
            .cameras
            .snapshot()
            .into_iter()
            .filter(|(info, _)| caller.sees_camera(info))
            .map(|(info, _)| info.id)
            .collect()
    });
    let cameras = match (asked, &visible) {
        (asked, None) => asked,
        (None, Some(v)) => Some(v.clone()),
        (Some(a), Some(v)) => Some(a.into_iter().filter(|c| v.contains(c)).collect()),
    };
    let rows = state
        .backend
        .vision_events(EventQuery {
            gates: None,
            cameras,
            communities: p.communities,
            from: p.from,
            to: p.to,
            limit: p.limit,
        })
        .await?;
    let rows = match &visible {
        None => rows,
        Some(v) => rows
            .into_iter()
            .filter(|r| {
                str_field(r, "camera")
                    .and_then(|c| CameraId::new(c).ok())
                    .is_some_and(|c| v.contains(&c))
            })
            .collect(),
    };
    Ok(Json(rows))
}

async fn response_times(
    State(state): State<ApiState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Vec<ResponseTimes>>, ApiError> {
    params.only(&["from", "to"])?;
    let to = params.time("to")?.unwrap_or_else(Timestamp::now);
    let from = match params.time("from")? {
        Some(f) => f,
        None => to
            .checked_sub(SignedDuration::from_hours(7 * 24))
            .map_err(|_| ApiError::invalid("parameter `to`: out of range"))?,
    };
    let (from, to) = range(Some(from), Some(to))?;
    let (Some(from), Some(to)) = (from, to) else {
        return Err(ApiError::internal("range lost its ends"));
    };
    let communities = caller.communities(None);
    // Of the alerts the caller gets (see `Caller::sees_alert`).
    let routed_to = caller.alerts_routed_to();
    let rows = state
        .backend
        .response_times(from, to, communities, routed_to)
        .await?
        .into_iter()
        .filter(|r| caller.sees_community(&r.community))
        .collect();
    Ok(Json(rows))
}
