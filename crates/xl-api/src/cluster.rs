//! `GET /api/v1/cluster`: the district's nodes and leases, as the node answering sees them
//! (admins). A single hub answers `clustered: false` with no nodes.

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::get;

use crate::ApiState;
use crate::backend::ClusterView;
use crate::error::ApiError;
use crate::routes::{Access, Route};
use crate::schema;

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
    ]
}

async fn cluster(State(state): State<ApiState>) -> Result<Json<ClusterView>, ApiError> {
    Ok(Json(state.backend.cluster().await?))
}
