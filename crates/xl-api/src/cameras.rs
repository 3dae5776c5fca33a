//! `/api/v1/cameras`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use jiff::Timestamp;
use serde::Deserialize;
use serde::Serialize;
use xl_core::camera::{CameraEntry, CameraNetwork, CameraStatus, DecodePolicy};
use xl_core::{CameraId, CommunityId, ErrorKind};

use crate::auth::Caller;
use crate::forward::{Camera, Forward};
use crate::routes::{Access, Route};
use crate::{ApiError, ApiState};

pub(crate) fn routes() -> Vec<Route> {
    use crate::schema;
    vec![
        Route::new(
            Method::GET,
            "/api/v1/cameras",
            Access::User,
            "Cameras the caller may see, with status and stream figures",
            get(list),
        )
        .answers(schema::cameras),
        Route::new(
            Method::GET,
            "/api/v1/cameras/{id}",
            Access::User,
            "One camera",
            get(detail),
        )
        .answers(schema::camera),
        Route::new(
            Method::GET,
            "/api/v1/cameras/{id}/snapshot",
            Access::User,
            "The camera's latest snapshot (JPEG); audited",
            get(latest_snapshot),
        )
        .produces("image/jpeg"),
        Route::new(
            Method::PUT,
            "/api/v1/cameras/{id}/decode-policy",
            Access::Admin,
            "Switch a running camera's decode policy",
            put(set_decode_policy),
        )
        .body(schema::decode_policy_request)
        .answers(schema::camera),
    ]
}

/// One camera as the API shows it (and as a node of a district posts the cameras it runs for
/// the others to show).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CameraDto {
    pub id: CameraId,
    pub name: String,
    pub community: CommunityId,
    pub network: CameraNetwork,
    /// `connecting`, `online` or `offline`.
    pub status: String,
    /// Why the camera is offline, when it is.
    pub status_reason: Option<String>,
    /// Frames received per second.
    pub fps: f64,
    pub decoded_fps: f64,
    pub bitrate_bps: f64,
    pub last_frame_at: Option<Timestamp>,
    pub codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub decode_policy: String,
    pub reconnects: u64,
    pub rtp_packets_lost: u64,
    /// In a district, the node running the camera when it is not the node answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl From<&CameraEntry> for CameraDto {
    fn from((info, stats): &CameraEntry) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let status = stats.status();
        let stream = stats.stream();
        let rates = stats.rates();
        CameraDto {
            id: info.id.clone(),
            name: info.name.clone(),
            community: info.community.clone(),
            network: info.network,
            status: status.label().to_owned(),
            status_reason: match status {
                CameraStatus::Offline { reason } => Some(reason),
                _ => None,
            },
            fps: round2(rates.fps),
            decoded_fps: round2(rates.decoded_fps),
            bitrate_bps: rates.bitrate_bps.round(),
            last_frame_at: stats.last_frame_at(),
            codec: stream.codec,
            width: stream.width,
            height: stream.height,
            decode_policy: stats.decode_policy().to_string(),
            reconnects: stats.reconnects.load(Relaxed),
            rtp_packets_lost: stats.rtp_packets_lost.load(Relaxed),
            node: None,
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The cameras this hub runs, then (in a district) those the other nodes run.
async fn list(State(state): State<ApiState>, caller: Caller) -> Json<Vec<CameraDto>> {
    let local = state.cameras.snapshot();
    let mut out: Vec<CameraDto> = local
        .iter()
        .filter(|(info, _)| caller.sees_camera(info))
        .map(CameraDto::from)
        .collect();
    let here: std::collections::HashSet<&CameraId> = local.iter().map(|(i, _)| &i.id).collect();
    out.extend(
        state
            .backend
            .remote_cameras()
            .into_iter()
            .filter(|(info, _)| !here.contains(&info.id) && caller.sees_camera(info))
            .map(|(_, dto)| dto),
    );
    Json(out)
}

async fn detail(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CameraDto>, ApiError> {
    match find(&state, &caller, id.clone()) {
        Ok(entry) => Ok(Json(CameraDto::from(&entry))),
        Err(e) if e.kind == ErrorKind::NotFound => state
            .backend
            .remote_cameras()
            .into_iter()
            .find(|(info, _)| info.id.as_str() == id && caller.sees_camera(info))
            .map(|(_, dto)| Json(dto))
            .ok_or(e),
        Err(e) => Err(e),
    }
}

/// A camera the caller sees; others are "not found", so that their existence does not leak.
pub(crate) fn find(state: &ApiState, caller: &Caller, id: String) -> Result<CameraEntry, ApiError> {
    let id =
        CameraId::new(id).map_err(|e| ApiError::new(ErrorKind::InvalidInput, e.to_string()))?;
    state
        .cameras
        .get(&id)
        .filter(|(info, _)| caller.sees_camera(info))
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no camera {id}")))
}

async fn latest_snapshot(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    forward: Forward,
) -> Result<Response, ApiError> {
    let info = match forward.camera(&state, &caller, id).await? {
        Camera::Here((info, _)) => info,
        Camera::There(camera, peer) => return Ok(forward.http(&camera, &peer, None).await),
    };
    let not_found = || ApiError::not_found(format!("no snapshot of camera {}", info.id));
    let (snap, path) = state
        .backend
        .latest_snapshot(&info.id)
        .await?
        .ok_or_else(not_found)?;
    // The camera's latest snapshot may be evidence of an alert the caller does not get.
    if !crate::evidence::sees_snapshot(&state, &caller, &snap).await? {
        return Err(not_found());
    }
    let jpeg = crate::evidence::read_jpeg(&path).await?;
    caller
        .audit(
            &state,
            "snapshot.view",
            Some(snap.id.clone()),
            serde_json::json!({ "camera": info.id }),
        )
        .await?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response())
}

/// Body of `PUT /api/v1/cameras/{id}/decode-policy`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodePolicyRequest {
    /// `all`, `skip-non-reference` or `key-frames`.
    pub decode_policy: String,
}

/// Switches a running camera's decode policy; the decoder applies it from its next frame.
async fn set_decode_policy(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    forward: Forward,
    body: Result<Json<DecodePolicyRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::new(ErrorKind::InvalidInput, e.body_text()))?;
    let policy: DecodePolicy = body
        .decode_policy
        .parse()
        .map_err(|e: String| ApiError::new(ErrorKind::InvalidInput, e))?;
    let (info, stats) = match forward.camera(&state, &caller, id).await? {
        Camera::Here(entry) => entry,
        Camera::There(camera, peer) => {
            let body = serde_json::json!({ "decode_policy": policy.as_str() }).to_string();
            return Ok(forward.http(&camera, &peer, Some(body.into_bytes())).await);
        }
    };
    let previous = stats.decode_policy();
    caller
        .audit(
            &state,
            "camera.decode_policy",
            Some(info.id.to_string()),
            serde_json::json!({ "from": previous.as_str(), "to": policy.as_str() }),
        )
        .await?;
    stats.set_decode_policy(policy);
    tracing::info!(camera = %info.id, from = %previous, to = %policy, "decode policy set through the API");
    Ok(Json(CameraDto::from(&(info, stats))).into_response())
}
