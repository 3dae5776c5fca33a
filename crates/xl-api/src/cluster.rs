//! `GET /api/v1/cluster`: the district's nodes, leases and pins, as the node answering sees
//! them (admins). A single hub answers `clustered: false` with no nodes.
//!
//! `PUT /api/v1/cluster/pins/{camera}` pins a camera to a node (it runs there while that node
//! is live, elsewhere by the hashing when it is not); `DELETE` removes the pin. Both audited
//! (`cluster.pin`, `cluster.unpin`). A single hub answers 503.
//!
//! `DELETE /api/v1/cluster/nodes/{node}/recordings` forgets the recordings of a node that left
//! the district for good: no other node deletes another's segment rows (retention and the disk
//! guard take only their own), so without it the index would list that node's video, gone with
//! its disk, for ever. Refused (409) while the node is live and for the answering node;
//! audited (`cluster.forget-node`, with the count). A single hub has no nodes: 404.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{get, put};
use serde::Deserialize;
use xl_core::{CameraId, ErrorKind};

use crate::ApiState;
use crate::auth::Caller;
use crate::backend::ClusterView;
use crate::error::ApiError;
use crate::routes::{Access, Route};
use crate::schema;

/// Body of `PUT /api/v1/cluster/pins/{camera}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinRequest {
    node: String,
}

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/v1/cluster",
            Access::Admin,
            "The district's nodes (weight, cameras held, heartbeat age) and every lease (holder, revision, age)",
            get(cluster),
        )
        .answers(schema::cluster_view),
        Route::new(
            Method::PUT,
            "/api/v1/cluster/pins/{camera}",
            Access::Admin,
            "Pin a camera to a node of the district (it runs there while the node is live); audited",
            put(pin),
        )
        .body(schema::pin_request)
        .ok_status(204)
        .responds(503),
        Route::new(
            Method::DELETE,
            "/api/v1/cluster/pins/{camera}",
            Access::Admin,
            "Remove a camera's pin (the hashing places it again); audited",
            axum::routing::delete(unpin),
        )
        .ok_status(204)
        .responds(503),
        Route::new(
            Method::DELETE,
            "/api/v1/cluster/nodes/{node}/recordings",
            Access::Admin,
            "Forget the recordings of a node that left the district for good (its segments' index rows; its video went with its disk); refused while the node is live; audited",
            axum::routing::delete(forget_node),
        )
        .answers(schema::forgotten_node)
        .responds(409),
    ]
}

/// The camera of the path, which must be in the topology.
fn camera(state: &ApiState, id: String) -> Result<CameraId, ApiError> {
    let id =
        CameraId::new(id).map_err(|e| ApiError::new(ErrorKind::InvalidInput, e.to_string()))?;
    if !state.backend.topology_view().cameras.contains_key(&id) {
        return Err(ApiError::not_found(format!("no camera {id}")));
    }
    Ok(id)
}

async fn pin(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<PinRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::new(ErrorKind::InvalidInput, e.body_text()))?;
    let camera = camera(&state, id)?;
    state.backend.pin_camera(&camera, Some(&body.node)).await?;
    caller
        .audit(
            &state,
            "cluster.pin",
            Some(camera.to_string()),
            serde_json::json!({ "node": body.node }),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unpin(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let camera = camera(&state, id)?;
    state.backend.pin_camera(&camera, None).await?;
    caller
        .audit(
            &state,
            "cluster.unpin",
            Some(camera.to_string()),
            serde_json::json!({}),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What `DELETE /api/v1/cluster/nodes/{node}/recordings` removed.
#[derive(Debug, serde::Serialize)]
struct Forgotten {
    node: String,
    segments: u64,
}

async fn forget_node(
    State(state): State<ApiState>,
    caller: Caller,
    Path(node): Path<String>,
) -> Result<Json<Forgotten>, ApiError> {
    let segments = state.backend.forget_node(&node).await?;
    caller
        .audit(
            &state,
            "cluster.forget-node",
            Some(node.clone()),
            serde_json::json!({ "segments": segments }),
        )
        .await?;
    Ok(Json(Forgotten { node, segments }))
}

async fn cluster(State(state): State<ApiState>) -> Result<Json<ClusterView>, ApiError> {
    Ok(Json(state.backend.cluster().await?))
}
