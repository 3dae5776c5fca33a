//! Admin only: `/api/v1/users` and `/api/v1/audit`. Password hashes never leave the hub.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{get, patch, post};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use xl_core::{CommunityId, Role, StationId};

use crate::auth::{Caller, hash_password};
use crate::backend::{AuditEntry, AuditQuery, User, UserRecord};
use crate::params::Params;
use crate::routes::{Access, Route};
use crate::{ApiError, ApiState};

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
pub(crate) const MAX_PASSWORD_BYTES: usize = 1024;

pub(crate) fn routes() -> Vec<Route> {
    use crate::schema;
    vec![
        Route::new(
            Method::GET,
            "/api/v1/users",
            Access::Admin,
            "Users (without password hashes)",
            get(list),
        )
        .answers(schema::users),
        Route::new(
            Method::POST,
            "/api/v1/users",
            Access::Admin,
            "Add a user: {username, password, role, communities, stations}",
            post(add),
        )
        .body(schema::add_user_request)
        .ok_status(201)
        .answers(schema::user_dto),
        Route::new(
            Method::PATCH,
            "/api/v1/users/{username}",
            Access::Admin,
            "Change a user's role, communities, stations, disabled flag or password",
            patch(update),
        )
        .body(schema::update_user_request)
        .answers(schema::user_dto),
        Route::new(
            Method::GET,
            "/api/v1/audit",
            Access::Admin,
            "The audit log, newest first",
            get(audit),
        )
        .query("before", "RFC 3339: entries before this time")
        .query(
            "before_seq",
            "entries with a smaller seq: the last (smallest) seq of the previous page",
        )
        .query("limit", "1 to 1000, default 100")
        .answers(schema::audit),
    ]
}

/// A user as the API shows it.
#[derive(Debug, Serialize)]
struct UserDto {
    username: String,
    role: Role,
    communities: Vec<CommunityId>,
    stations: Vec<StationId>,
    disabled: bool,
    created_at: Timestamp,
}

impl From<UserRecord> for UserDto {
    fn from(r: UserRecord) -> Self {
        UserDto {
            username: r.user.username,
            role: r.user.role,
            communities: r.user.communities,
            stations: r.user.stations,
            disabled: r.disabled,
            created_at: r.created_at,
        }
    }
}

async fn list(State(state): State<ApiState>) -> Result<Json<Vec<UserDto>>, ApiError> {
    let users = state.backend.list_users().await?;
    Ok(Json(users.into_iter().map(UserDto::from).collect()))
}

fn check_password(p: &str) -> Result<(), ApiError> {
    if p.chars().count() < MIN_PASSWORD_CHARS || p.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid(format!(
            "`password` must have {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_BYTES} characters"
        )));
    }
    Ok(())
}

/// A username's rules: 1 to 64 of `[A-Za-z0-9_.@-]`, not a name the hub acts under itself.
pub fn check_username(u: &str) -> Result<(), ApiError> {
    let ok = !u.is_empty()
        && u.len() <= 64
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'));
    if !ok || u == crate::auth::TOKEN_USER || u == "anonymous" || u == "system" {
        return Err(ApiError::invalid(
            "`username` must be 1 to 64 of [A-Za-z0-9_.@-] and not a reserved name",
        ));
    }
    Ok(())
}

/// A user's scope: a property user needs communities; only duty and police users may be
/// limited to stations (an admin sees everything, a property user is limited by communities).
fn check_scope(
    role: Role,
    communities: &[CommunityId],
    stations: &[StationId],
) -> Result<(), ApiError> {
    if role == Role::Property && communities.is_empty() {
        return Err(ApiError::invalid(
            "a property user needs at least one community in `communities`",
        ));
    }
    if !stations.is_empty() && matches!(role, Role::Admin | Role::Property) {
        return Err(ApiError::invalid(format!(
            "`stations`: only duty and police users may be limited to stations, not {role} \
             users; send `\"stations\": []`"
        )));
    }
    Ok(())
}

/// Stations given in a request must exist in the running topology (one removed later leaves
/// its users seeing none of its former communities: the scope fails closed). Duplicates are
/// dropped, keeping the first.
fn check_stations(state: &ApiState, stations: Vec<StationId>) -> Result<Vec<StationId>, ApiError> {
    let topology = state.backend.topology_view();
    let mut out: Vec<StationId> = Vec::with_capacity(stations.len());
    for s in stations {
        if !topology.stations.contains_key(&s) {
            return Err(ApiError::invalid(format!("`stations`: no station \"{s}\"")));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddUser {
    username: String,
    password: String,
    role: Role,
    #[serde(default)]
    communities: Vec<CommunityId>,
    #[serde(default)]
    stations: Vec<StationId>,
}

fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("bad request body: {e}")))
}

async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
}

async fn add(
    State(state): State<ApiState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<UserDto>), ApiError> {
    let req: AddUser = json(&body)?;
    check_username(&req.username)?;
    check_password(&req.password)?;
    check_scope(req.role, &req.communities, &req.stations)?;
    let stations = check_stations(&state, req.stations)?;
    let record = UserRecord {
        user: User {
            username: req.username,
            role: req.role,
            communities: req.communities,
            stations,
        },
        password_hash: hash(req.password).await?,
        disabled: false,
        created_at: Timestamp::now(),
    };
    state.backend.insert_user(record.clone()).await?;
    caller
        .audit(
            &state,
            "user.add",
            Some(record.user.username.clone()),
            serde_json::json!({
                "role": record.user.role,
                "communities": record.user.communities,
                "stations": record.user.stations,
            }),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(UserDto::from(record))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUser {
    role: Option<Role>,
    communities: Option<Vec<CommunityId>>,
    stations: Option<Vec<StationId>>,
    disabled: Option<bool>,
    password: Option<String>,
}

async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path(username): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<UserDto>, ApiError> {
    let req: UpdateUser = json(&body)?;
    let mut record = state
        .backend
        .user(&username)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {username:?}")))?;
    // What changed, for the audit log (never the password itself).
    let mut changed = serde_json::Map::new();
    if let Some(role) = req.role {
        record.user.role = role;
        changed.insert("role".into(), serde_json::json!(role));
    }
    if let Some(c) = req.communities {
        changed.insert("communities".into(), serde_json::json!(c));
        record.user.communities = c;
    }
    if let Some(s) = req.stations {
        let s = check_stations(&state, s)?;
        changed.insert("stations".into(), serde_json::json!(s));
        record.user.stations = s;
    }
    if let Some(d) = req.disabled {
        record.disabled = d;
        changed.insert("disabled".into(), serde_json::json!(d));
    }
    if let Some(p) = req.password {
        check_password(&p)?;
        record.password_hash = hash(p).await?;
        changed.insert("password".into(), serde_json::json!("changed"));
    }
    if changed.is_empty() {
        return Err(ApiError::invalid(
            "nothing to change: give `role`, `communities`, `stations`, `disabled` or `password`",
        ));
    }
    check_scope(
        record.user.role,
        &record.user.communities,
        &record.user.stations,
    )?;
    state.backend.update_user(record.clone()).await?;
    if changed.contains_key("password") {
        // A new password ends the sessions opened with the old one (a stolen token too).
        state
            .backend
            .delete_sessions_of(&record.user.username)
            .await?;
    }
    caller
        .audit(
            &state,
            "user.update",
            Some(record.user.username.clone()),
            serde_json::Value::Object(changed),
        )
        .await?;
    Ok(Json(UserDto::from(record)))
}

async fn audit(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    params.only(&["before", "before_seq", "limit"])?;
    let query = AuditQuery {
        before: params.time("before")?,
        before_seq: params.one::<i64>("before_seq")?,
        limit: params.limit(100, 1000)?,
    };
    Ok(Json(state.backend.list_audit(query).await?))
}
