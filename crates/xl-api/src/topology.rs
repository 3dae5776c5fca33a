//! `/api/v1/topology`: stations, communities, grids, cameras and gates as the store keeps them
//! (read by every user within their scope; created, replaced, disabled and deleted by
//! admins), and the camera tools of the admin pages: `/api/v1/cameras/probe` (test a URL
//! before saving) and `/api/v1/cameras/import` (a CSV of cameras, all or nothing).
//!
//! Every answer item is `{"kind", "entry", "meta"}`; secrets (a camera's password, a gate's
//! push secret) are accepted in bodies and never answered (`meta.secret_set` says whether one
//! is stored). In a replacement (`PUT`) a secret left out stays, `null` removes it and a string
//! replaces it. A change names the revision it was made against in `If-Match` (the `ETag` of
//! the read): without one it is 428, with a stale one 409, so two admins editing one camera
//! cannot silently undo each other. Entries from the config file are read-only (403). The
//! store checks each entry and the references between them (a station that users are scoped
//! to cannot be deleted) and audits every change; a change after which the hub's gate ingest
//! would refuse the gates that would run is refused (409) and not saved.

mod csv;

use axum::Json;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use base64::Engine;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use xl_core::camera::{CameraInfo, CameraNetwork};
use xl_core::gate_status::GateInfo;
use xl_core::topology::{Camera, Entry, EntryId, Kind, Secret, StreamSource, TopologyError};
use xl_core::{CameraId, CommunityId, ErrorKind, GridId};

use crate::auth::Caller;
use crate::backend::{Author, ProbeRequest, SecretEdit, TopologyItem};
use crate::error::RowError;
use crate::routes::{Access, Route};
use crate::{ApiError, ApiState};

/// Most data rows in one import.
pub const MAX_IMPORT_ROWS: usize = 5000;
/// Largest import body: 5,000 rows of about 3 KiB (two long URLs and names) fit.
pub const MAX_IMPORT_BYTES: usize = 16 << 20;
/// The import's columns, in the order of the template the console offers.
pub const IMPORT_COLUMNS: [&str; 9] = [
    "id",
    "name",
    "community",
    "grid",
    "network",
    "main_url",
    "sub_url",
    "username",
    "password",
];

/// The paths of one kind (axum needs them `'static`).
struct KindPaths {
    kind: Kind,
    list: &'static str,
    one: &'static str,
    disable: &'static str,
    enable: &'static str,
}

const KINDS: [KindPaths; 5] = [
    KindPaths {
        kind: Kind::Station,
        list: "/api/v1/topology/stations",
        one: "/api/v1/topology/stations/{id}",
        disable: "/api/v1/topology/stations/{id}/disable",
        enable: "/api/v1/topology/stations/{id}/enable",
    },
    KindPaths {
        kind: Kind::Community,
        list: "/api/v1/topology/communities",
        one: "/api/v1/topology/communities/{id}",
        disable: "/api/v1/topology/communities/{id}/disable",
        enable: "/api/v1/topology/communities/{id}/enable",
    },
    KindPaths {
        kind: Kind::Grid,
        list: "/api/v1/topology/grids",
        one: "/api/v1/topology/grids/{id}",
        disable: "/api/v1/topology/grids/{id}/disable",
        enable: "/api/v1/topology/grids/{id}/enable",
    },
    KindPaths {
        kind: Kind::Camera,
        list: "/api/v1/topology/cameras",
        one: "/api/v1/topology/cameras/{id}",
        disable: "/api/v1/topology/cameras/{id}/disable",
        enable: "/api/v1/topology/cameras/{id}/enable",
    },
    KindPaths {
        kind: Kind::Gate,
        list: "/api/v1/topology/gates",
        one: "/api/v1/topology/gates/{id}",
        disable: "/api/v1/topology/gates/{id}/disable",
        enable: "/api/v1/topology/gates/{id}/enable",
    },
];

/// The path segment of a kind (`cameras`), and the schemas of its bodies and answers.
fn plural(kind: Kind) -> &'static str {
    match kind {
        Kind::Station => "stations",
        Kind::Community => "communities",
        Kind::Grid => "grids",
        Kind::Camera => "cameras",
        Kind::Gate => "gates",
    }
}

macro_rules! per_kind {
    ($f:path) => {
        [
            || $f(Kind::Station),
            || $f(Kind::Community),
            || $f(Kind::Grid),
            || $f(Kind::Camera),
            || $f(Kind::Gate),
        ]
    };
}

/// The field of `kind`'s secret, for the kinds that have one.
fn secret_field(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Camera => Some("password"),
        Kind::Gate => Some("push_secret"),
        Kind::Station | Kind::Community | Kind::Grid => None,
    }
}

/// `kind`'s place in [`Kind::ALL`] (and in [`KINDS`] and the `per_kind!` arrays).
fn index(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

const IF_MATCH_DOC: &str =
    "\"<revision>\": the ETag of the entry as read; required (428 without, 409 when stale)";

pub(crate) fn routes() -> Vec<Route> {
    use crate::schema;
    let create_schemas: [fn() -> Value; 5] = per_kind!(schema::entry_create);
    let update_schemas: [fn() -> Value; 5] = per_kind!(schema::entry_update);
    let item_schemas: [fn() -> Value; 5] = per_kind!(schema::topology_item);
    let items_schemas: [fn() -> Value; 5] = per_kind!(schema::topology_items);
    let mut t = vec![
        Route::new(
            Method::GET,
            "/api/v1/topology",
            Access::User,
            "The topology the caller may see: stations, communities, grids, cameras, gates",
            get(all),
        )
        .answers(schema::topology),
        Route::new(
            Method::POST,
            "/api/v1/cameras/probe",
            Access::Admin,
            "Test a camera URL before saving it: codec, resolution, frame rate, GOP and a snapshot",
            post(probe),
        )
        .describe(
            "Connects for at most about 10 seconds. 502 when the camera cannot be reached or \
             streams nothing usable; the message says why. Credentials go in username and \
             password, never in the URL.",
        )
        .body(schema::probe_request)
        .answers(schema::probe_response)
        .responds(502),
        Route::new(
            Method::POST,
            "/api/v1/cameras/import",
            Access::Admin,
            "Import cameras from CSV: id,name,community,grid,network,main_url,sub_url,username,password",
            post(import).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .describe(
            "All or nothing: every row is checked first (up to 5,000 rows, UTF-8, a header \
             row naming the columns in any order; id, name, community and main_url or sub_url \
             are required, network is community, skynet or private, community by default). If \
             any row is refused the answer is 400 with `rows`: each refused row (data rows \
             counted from 1), its column and why, and nothing is stored. Otherwise every \
             camera is created in one transaction: 201.",
        )
        .text_body("text/csv")
        .ok_status(201)
        .answers(schema::import_response)
        .responds(400)
        .responds(409),
    ];
    for p in &KINDS {
        let kind = p.kind;
        let i = index(kind);
        t.extend([
            Route::new(
                Method::GET,
                p.list,
                Access::User,
                summary(kind, "list"),
                get(move |state: State<ApiState>, caller: Caller| list(state, caller, kind)),
            )
            .answers(items_schemas[i]),
            Route::new(
                Method::POST,
                p.list,
                Access::Admin,
                summary(kind, "create"),
                post(
                    move |state: State<ApiState>, caller: Caller, body: axum::body::Bytes| {
                        create(state, caller, kind, body)
                    },
                ),
            )
            .body(create_schemas[i])
            .ok_status(201)
            .answers(item_schemas[i])
            .responds(409),
            Route::new(
                Method::GET,
                p.one,
                Access::User,
                summary(kind, "read"),
                get(
                    move |state: State<ApiState>, caller: Caller, id: Path<String>| {
                        read(state, caller, kind, id)
                    },
                ),
            )
            .answers(item_schemas[i]),
            Route::new(
                Method::PUT,
                p.one,
                Access::Admin,
                summary(kind, "update"),
                put(
                    move |state: State<ApiState>,
                          caller: Caller,
                          id: Path<String>,
                          headers: HeaderMap,
                          body: axum::body::Bytes| {
                        update(state, caller, kind, id, headers, body)
                    },
                ),
            )
            .header("If-Match", IF_MATCH_DOC)
            .body(update_schemas[i])
            .answers(item_schemas[i])
            .responds(409)
            .responds(428),
            Route::new(
                Method::DELETE,
                p.one,
                Access::Admin,
                summary(kind, "delete"),
                delete(
                    move |state: State<ApiState>,
                          caller: Caller,
                          id: Path<String>,
                          headers: HeaderMap| {
                        remove(state, caller, kind, id, headers)
                    },
                ),
            )
            .header("If-Match", IF_MATCH_DOC)
            .ok_status(204)
            .responds(409)
            .responds(428),
        ]);
        for (path, disabled) in [(p.disable, true), (p.enable, false)] {
            t.push(
                Route::new(
                    Method::POST,
                    path,
                    Access::Admin,
                    summary(kind, if disabled { "disable" } else { "enable" }),
                    post(
                        move |state: State<ApiState>,
                              caller: Caller,
                              id: Path<String>,
                              headers: HeaderMap| {
                            set_disabled(state, caller, kind, id, headers, disabled)
                        },
                    ),
                )
                .header("If-Match", IF_MATCH_DOC)
                .answers(item_schemas[i])
                .responds(409)
                .responds(428),
            );
        }
    }
    t
}

/// The route summaries, per kind (the document wants `'static` text).
fn summary(kind: Kind, what: &str) -> &'static str {
    macro_rules! table {
        ($($k:ident: $p:literal, $s:literal);+ $(;)?) => {
            match (kind, what) {
                $(
                    (Kind::$k, "list") => concat!("The ", $p, " the caller may see"),
                    (Kind::$k, "create") => concat!("Create a ", $s, " (201, with its ETag)"),
                    (Kind::$k, "read") => concat!("One ", $s, ", with its revision as ETag"),
                    (Kind::$k, "update") => concat!(
                        "Replace a ", $s,
                        " (the whole entry; a secret left out stays, null removes it)"
                    ),
                    (Kind::$k, "delete") => concat!(
                        "Delete a ", $s,
                        " (409 while another entry, or a user's stations, refers to it)"
                    ),
                    (Kind::$k, "disable") => concat!("Disable a ", $s, ": it stays, stopped"),
                    (Kind::$k, "enable") => concat!("Enable a ", $s, " again"),
                )+
                _ => "",
            }
        };
    }
    table! {
        Station: "stations", "station";
        Community: "communities", "community";
        Grid: "grids", "grid";
        Camera: "cameras", "camera";
        Gate: "gates", "gate";
    }
}

// ---------------------------------------------------------------------------------------------
// Scope and answers.

/// Whether `caller` sees `entry`: cameras and gates as their live counterparts, communities
/// and grids by community, stations by the caller's stations.
fn visible(caller: &Caller, entry: &Entry) -> bool {
    match entry {
        Entry::Station(s) => caller.sees_station(&s.id),
        Entry::Community(c) => caller.sees_community(&c.id),
        Entry::Grid(g) => caller.sees_community(&g.community),
        Entry::Camera(c) => caller.sees_camera(&CameraInfo {
            id: c.id.clone(),
            name: c.name.clone(),
            community: c.community.clone(),
            network: c.network,
        }),
        Entry::Gate(g) => caller.sees_gate(&GateInfo {
            id: g.id.clone(),
            community: g.community.clone(),
            firmware: g.firmware.clone(),
            camera: g.camera.clone(),
            offline_after_secs: g.offline_after_secs,
        }),
    }
}

/// `{"kind", "entry", "meta"}`. The entry's serialiser skips its secret.
fn item_json(item: &TopologyItem) -> Result<Value, ApiError> {
    let mut v = serde_json::to_value(&item.entry)
        .map_err(|e| ApiError::internal(format!("serialising {}: {e}", item.entry.id())))?;
    v["meta"] = serde_json::to_value(&item.meta)
        .map_err(|e| ApiError::internal(format!("serialising {}: {e}", item.entry.id())))?;
    Ok(v)
}

/// An item with its revision as `ETag`.
fn item_response(status: StatusCode, item: &TopologyItem) -> Result<Response, ApiError> {
    let body = item_json(item)?;
    let etag = HeaderValue::from_str(&format!("\"{}\"", item.meta.revision))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((status, [(header::ETAG, etag)], Json(body)).into_response())
}

fn author(caller: &Caller) -> Author {
    Author {
        actor: caller.name().to_owned(),
        peer: caller.peer.clone(),
    }
}

/// The path's id as `kind`'s id (400 naming `id`).
fn entry_id(kind: Kind, id: &str) -> Result<EntryId, ApiError> {
    EntryId::parse(kind, id).map_err(|e| {
        ApiError::invalid(format!("{kind} id: {e}"))
            .with_field("id")
            .with_entry(kind, id)
    })
}

fn not_found(id: &EntryId) -> ApiError {
    ApiError::not_found(format!("no {id}"))
}

/// The revision `If-Match` names: `"7"`, as the `ETag` of a read.
fn if_match(headers: &HeaderMap) -> Result<u64, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Err(ApiError::new(
            ErrorKind::PreconditionRequired,
            "send If-Match: \"<revision>\" with the ETag of the entry as you read it, so that \
             a change made meanwhile by someone else is not undone",
        )
        .with_field("If-Match"));
    };
    value
        .to_str()
        .ok()
        .map(str::trim)
        .and_then(|v| v.strip_prefix('"')?.strip_suffix('"')?.parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::invalid("If-Match: expected \"<revision>\", the ETag of the entry as read")
                .with_field("If-Match")
        })
}

// ---------------------------------------------------------------------------------------------
// Reads.

async fn all(State(state): State<ApiState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let items = state.backend.topology().await?;
    let mut out = json!({});
    for kind in Kind::ALL {
        out[plural(kind)] = json!([]);
    }
    for item in items.iter().filter(|i| visible(&caller, &i.entry)) {
        let kind = plural(item.entry.kind());
        if let Some(list) = out[kind].as_array_mut() {
            list.push(item_json(item)?);
        }
    }
    Ok(Json(out))
}

async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    kind: Kind,
) -> Result<Json<Vec<Value>>, ApiError> {
    let items = state.backend.topology().await?;
    items
        .iter()
        .filter(|i| i.entry.kind() == kind && visible(&caller, &i.entry))
        .map(item_json)
        .collect::<Result<_, _>>()
        .map(Json)
}

async fn read(
    State(state): State<ApiState>,
    caller: Caller,
    kind: Kind,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = entry_id(kind, &id)?;
    // One out of the caller's scope is "not found": its existence does not leak.
    let item = state
        .backend
        .topology_entry(&id)
        .await?
        .filter(|i| visible(&caller, &i.entry))
        .ok_or_else(|| not_found(&id))?;
    item_response(StatusCode::OK, &item)
}

// ---------------------------------------------------------------------------------------------
// Writes (admins: they see everything, so no scope applies).

/// The field a JSON body's deserialisation error is about (`zones[0].polygon`,
/// `main.url`), from serde's message (`zones[0]: missing field `polygon``, as axum words it
/// with serde_path_to_error), when it names one.
fn json_field(message: &str) -> Option<String> {
    let (path, rest) = match message.split_once(": ") {
        Some((p, r))
            if !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']')) =>
        {
            (Some(p), r)
        }
        _ => (None, message),
    };
    let named = ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| rest.split_once(prefix))
        .and_then(|(_, tail)| tail.split_once('`'))
        .map(|(name, _)| name);
    match (path, named) {
        // An unknown field is already the path's last step; a missing one is not.
        (Some(p), Some(n)) if p == n || p.ends_with(&format!(".{n}")) => Some(p.to_owned()),
        (Some(p), Some(n)) => Some(format!("{p}.{n}")),
        (Some(p), None) => Some(p.to_owned()),
        (None, Some(n)) => Some(n.to_owned()),
        (None, None) => None,
    }
}

/// Parses a JSON body as `T`, 400 naming the field.
fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    Json::<T>::from_bytes(body).map(|Json(t)| t).map_err(|e| {
        let text = e.body_text();
        let detail = text
            .strip_prefix("Failed to deserialize the JSON body into the target type: ")
            .unwrap_or(&text);
        let err = ApiError::invalid(format!("bad request body: {detail}"));
        match json_field(detail) {
            Some(field) => err.with_field(field),
            None => err,
        }
    })
}

/// A body as an entry of `kind`.
fn parse_entry(kind: Kind, body: &[u8]) -> Result<Entry, ApiError> {
    Ok(match kind {
        Kind::Station => Entry::Station(from_json(body)?),
        Kind::Community => Entry::Community(from_json(body)?),
        Kind::Grid => Entry::Grid(from_json(body)?),
        Kind::Camera => Entry::Camera(api_camera(from_json(body)?)?),
        Kind::Gate => Entry::Gate(from_json(body)?),
    })
}

/// A camera made through the API streams from RTSP: a file source would let the API name any
/// file the hub can read. Files stand in for cameras only where the config file declares them
/// (demos, tests).
fn api_camera(camera: Camera) -> Result<Camera, ApiError> {
    for (field, source) in [("main", &camera.main), ("sub", &camera.sub)] {
        if let Some(StreamSource::File { .. }) = source {
            return Err(ApiError::invalid(format!(
                "{field}: a file source can be declared only in the config file; through the \
                 API a camera streams from rtsp:// or rtsps://"
            ))
            .with_field(field)
            .with_entry(Kind::Camera, camera.id.as_str()));
        }
    }
    Ok(camera)
}

async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    kind: Kind,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let entry = parse_entry(kind, &body)?;
    let item = state.backend.create_entry(entry, author(&caller)).await?;
    item_response(StatusCode::CREATED, &item)
}

async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    kind: Kind,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = entry_id(kind, &id)?;
    let revision = if_match(&headers)?;
    // The id may be left out of the body: the path names the entry.
    let mut value: Value = from_json(&body)?;
    match value.as_object_mut() {
        Some(o) => match o.get("id") {
            None => {
                o.insert("id".to_owned(), json!(id.as_str()));
            }
            Some(given) if given.as_str() == Some(id.as_str()) => {}
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "id: the body's id differs from the path's {:?}; an id cannot change \
                     (create the new entry and delete this one)",
                    id.as_str()
                ))
                .with_field("id")
                .with_entry(kind, id.as_str()));
            }
        },
        None => {
            return Err(ApiError::invalid(
                "bad request body: expected a JSON object",
            ));
        }
    }
    // No answer carries the secret: left out, the stored one stays; `null` removes it.
    let secret = match secret_field(kind) {
        Some(field) if value.get(field).is_some() => SecretEdit::Replace,
        _ => SecretEdit::Keep,
    };
    let bytes = serde_json::to_vec(&value).map_err(|e| ApiError::internal(e.to_string()))?;
    let entry = parse_entry(kind, &bytes)?;
    let item = state
        .backend
        .update_entry(entry, revision, secret, author(&caller))
        .await?;
    item_response(StatusCode::OK, &item)
}

async fn set_disabled(
    State(state): State<ApiState>,
    caller: Caller,
    kind: Kind,
    Path(id): Path<String>,
    headers: HeaderMap,
    disabled: bool,
) -> Result<Response, ApiError> {
    let id = entry_id(kind, &id)?;
    let revision = if_match(&headers)?;
    let item = state
        .backend
        .set_entry_disabled(&id, disabled, revision, author(&caller))
        .await?;
    item_response(StatusCode::OK, &item)
}

async fn remove(
    State(state): State<ApiState>,
    caller: Caller,
    kind: Kind,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let id = entry_id(kind, &id)?;
    let revision = if_match(&headers)?;
    state
        .backend
        .delete_entry(&id, revision, author(&caller))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Probe.

/// Body of `POST /api/v1/cameras/probe`. `Debug` hides the password ([`Secret`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeBody {
    url: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<Secret>,
}

async fn probe(
    State(state): State<ApiState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let ProbeBody {
        url,
        username,
        password,
    } = from_json(&body)?;
    // The checks a camera's stream and credentials get when it is saved.
    let probe_id = "probe";
    let as_camera = Camera {
        id: CameraId::new(probe_id).map_err(|e| ApiError::internal(e.to_string()))?,
        name: probe_id.to_owned(),
        community: CommunityId::new(probe_id).map_err(|e| ApiError::internal(e.to_string()))?,
        grid: None,
        network: CameraNetwork::Community,
        main: None,
        sub: Some(StreamSource::Rtsp { url: url.clone() }),
        username: username.clone(),
        password: password.clone(),
        transport: None,
        decode: Default::default(),
        detect: Default::default(),
        zones: Vec::new(),
        recording: Default::default(),
        disabled: false,
    };
    if let Err(e) = as_camera.validate() {
        let (field, reason) = field_and_reason(&e);
        let field = match field {
            Some("sub.url") | None => "url",
            Some(other) => other,
        };
        return Err(ApiError::invalid(format!("{field}: {reason}")).with_field(field));
    }
    caller
        .audit(&state, "camera.probe", Some(url.clone()), json!({}))
        .await?;
    let found = state
        .backend
        .probe_camera(ProbeRequest {
            url,
            username,
            password,
        })
        .await?;
    let snapshot = format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&found.snapshot_jpeg)
    );
    Ok(Json(json!({
        "codec": found.codec,
        "width": found.width,
        "height": found.height,
        "fps": found.fps,
        "gop_frames": found.gop_frames,
        "gop_secs": found.gop_secs,
        "snapshot": snapshot,
    })))
}

// ---------------------------------------------------------------------------------------------
// Import.

/// The CSV column a camera field is entered in (`main.url` is `main_url`); `None` for fields
/// the import cannot set.
fn column_of(field: &str) -> Option<&'static str> {
    let field = field.split(['.', '[']).next().unwrap_or(field);
    Some(match field {
        "id" => "id",
        "name" => "name",
        "community" => "community",
        "grid" => "grid",
        "network" => "network",
        "main" => "main_url",
        "sub" => "sub_url",
        "username" => "username",
        "password" => "password",
        _ => return None,
    })
}

/// The field of an entry's error and why, without the entry (the row or the request names
/// it).
fn field_and_reason(e: &TopologyError) -> (Option<&str>, String) {
    match e {
        TopologyError::InvalidField { field, reason, .. }
        | TopologyError::BadReference { field, reason, .. } => (Some(field), reason.clone()),
        TopologyError::InUse { .. } => (None, e.to_string()),
    }
}

/// One data row as a camera, or every problem found in it (each naming its column).
fn row_camera(
    columns: &[usize; IMPORT_COLUMNS.len()],
    cells: &[String],
) -> Result<Camera, Vec<(Option<&'static str>, String)>> {
    let mut problems: Vec<(Option<&'static str>, String)> = Vec::new();
    // Cells are trimmed (spreadsheets pad them), except the password, which may end in a
    // space.
    let cell = |name: &str| -> Option<&str> {
        let i = IMPORT_COLUMNS.iter().position(|c| *c == name)?;
        let at = columns[i];
        let raw = cells.get(at).map(String::as_str)?;
        let v = if name == "password" { raw } else { raw.trim() };
        (!v.is_empty()).then_some(v)
    };
    let id = match cell("id").map(CameraId::new) {
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => {
            problems.push((Some("id"), e.to_string()));
            None
        }
        None => {
            problems.push((Some("id"), "empty; every camera needs an id".to_owned()));
            None
        }
    };
    let community = match cell("community").map(CommunityId::new) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            problems.push((Some("community"), e.to_string()));
            None
        }
        None => {
            problems.push((
                Some("community"),
                "empty; name the camera's community".to_owned(),
            ));
            None
        }
    };
    let grid = match cell("grid").map(GridId::new) {
        Some(Ok(g)) => Some(g),
        Some(Err(e)) => {
            problems.push((Some("grid"), e.to_string()));
            None
        }
        None => None,
    };
    let network = match cell("network") {
        None | Some("community") => CameraNetwork::Community,
        Some("skynet") => CameraNetwork::Skynet,
        Some("private") => CameraNetwork::Private,
        Some(other) => {
            problems.push((
                Some("network"),
                format!("{other:?}: expected community, skynet or private"),
            ));
            CameraNetwork::Community
        }
    };
    let (Some(id), Some(community)) = (id, community) else {
        return Err(problems);
    };
    let stream = |name| {
        cell(name).map(|url| StreamSource::Rtsp {
            url: url.to_owned(),
        })
    };
    let camera = Camera {
        id,
        name: cell("name").unwrap_or_default().to_owned(),
        community,
        grid,
        network,
        main: stream("main_url"),
        sub: stream("sub_url"),
        username: cell("username").map(str::to_owned),
        password: cell("password").map(Secret::new),
        transport: None,
        decode: Default::default(),
        detect: Default::default(),
        zones: Vec::new(),
        recording: Default::default(),
        disabled: false,
    };
    if let Err(e) = camera.validate() {
        let (field, reason) = field_and_reason(&e);
        problems.push((field.and_then(column_of), reason));
    }
    if problems.is_empty() {
        Ok(camera)
    } else {
        Err(problems)
    }
}

/// Where each import column is in the header, or why the header is refused.
fn header_columns(header: &[String]) -> Result<[usize; IMPORT_COLUMNS.len()], ApiError> {
    // A column absent from the file reads as empty: past the end of every row.
    let mut at = [usize::MAX; IMPORT_COLUMNS.len()];
    for (i, name) in header.iter().enumerate() {
        let name = name.trim().to_ascii_lowercase();
        let Some(c) = IMPORT_COLUMNS.iter().position(|c| *c == name) else {
            return Err(ApiError::invalid(format!(
                "header: unknown column {name:?}; the columns are {}",
                IMPORT_COLUMNS.join(",")
            ))
            .with_field(name));
        };
        if at[c] != usize::MAX {
            return Err(
                ApiError::invalid(format!("header: column {name:?} given twice")).with_field(name),
            );
        }
        at[c] = i;
    }
    for required in ["id", "name", "community"] {
        let c = IMPORT_COLUMNS
            .iter()
            .position(|c| *c == required)
            .unwrap_or(0);
        if at[c] == usize::MAX {
            return Err(ApiError::invalid(format!(
                "header: no column {required:?}; the columns are {}",
                IMPORT_COLUMNS.join(",")
            ))
            .with_field(required));
        }
    }
    let has = |name: &str| {
        IMPORT_COLUMNS
            .iter()
            .position(|c| *c == name)
            .is_some_and(|c| at[c] != usize::MAX)
    };
    if !has("main_url") && !has("sub_url") {
        return Err(ApiError::invalid(
            "header: no column main_url or sub_url; a camera needs a stream",
        )
        .with_field("sub_url"));
    }
    Ok(at)
}

fn refused(rows: Vec<RowError>, total: usize) -> ApiError {
    ApiError::invalid(format!(
        "{} of {total} rows refused; nothing was imported (the import is all or nothing)",
        rows.iter()
            .map(|r| r.row)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    ))
    .with_rows(rows)
}

async fn import(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media != "text/csv" && media != "text/plain" {
        return Err(
            ApiError::invalid("send the file as Content-Type: text/csv").with_field("Content-Type")
        );
    }
    let text = std::str::from_utf8(&body).map_err(|e| {
        ApiError::invalid(format!(
            "the file is not UTF-8 (byte {}); save it as \"CSV UTF-8\"",
            e.valid_up_to()
        ))
    })?;
    // Spreadsheets write a byte order mark at the start of a UTF-8 CSV.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let records = csv::parse(text).map_err(|e| {
        let err = ApiError::invalid(format!("not CSV: {}", e.message));
        match e.record {
            0 => err.with_field("header"),
            row => err.with_rows(vec![RowError {
                row,
                field: None,
                message: e.message.to_owned(),
            }]),
        }
    })?;
    let mut records = records.into_iter();
    let Some(header) = records.next() else {
        return Err(ApiError::invalid(format!(
            "empty file; the first row names the columns: {}",
            IMPORT_COLUMNS.join(",")
        )));
    };
    let columns = header_columns(&header)?;
    let data: Vec<Vec<String>> = records.collect();
    if data.len() > MAX_IMPORT_ROWS {
        return Err(ApiError::invalid(format!(
            "{} rows; an import takes at most {MAX_IMPORT_ROWS}: split the file",
            data.len()
        )));
    }
    let mut cameras = Vec::with_capacity(data.len());
    // The data row (from 1) of each camera: blank rows are skipped but still counted, so the
    // numbers match what a spreadsheet shows.
    let mut row_of = Vec::with_capacity(data.len());
    let mut errors = Vec::new();
    let mut rows = 0;
    for (i, cells) in data.iter().enumerate() {
        let row = i + 1;
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        rows += 1;
        if cells.len() != header.len() {
            let field = (cells.len() < header.len())
                .then(|| header[cells.len()].trim().to_ascii_lowercase());
            errors.push(RowError {
                row,
                field,
                message: format!(
                    "{} fields; the header has {} (a missing or extra comma?)",
                    cells.len(),
                    header.len()
                ),
            });
            continue;
        }
        match row_camera(&columns, cells) {
            Ok(camera) => {
                cameras.push(Entry::Camera(camera));
                row_of.push(row);
            }
            Err(problems) => errors.extend(problems.into_iter().map(|(field, message)| RowError {
                row,
                field: field.map(str::to_owned),
                message,
            })),
        }
    }
    if rows == 0 {
        return Err(ApiError::invalid("no camera rows below the header"));
    }
    if !errors.is_empty() {
        return Err(refused(errors, rows));
    }
    let created = match state.backend.create_entries(cameras, author(&caller)).await {
        Ok(created) => created,
        // The store's refusals name entries by position: back to rows and columns.
        Err(mut e) if e.detail.as_ref().is_some_and(|d| !d.rows.is_empty()) => {
            let found = e.detail.take().map(|d| d.rows).unwrap_or_default();
            let rows_refused = found
                .into_iter()
                .map(|r| RowError {
                    row: row_of.get(r.row.wrapping_sub(1)).copied().unwrap_or(r.row),
                    field: r.field.as_deref().and_then(column_of).map(str::to_owned),
                    message: r.message,
                })
                .collect();
            return Err(refused(rows_refused, rows));
        }
        Err(e) => return Err(e),
    };
    let ids: Vec<String> = created
        .iter()
        .map(|i| i.entry.id().as_str().to_owned())
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "created": ids.len(), "ids": ids })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_their_field() {
        let cases = [
            ("missing field `name` at line 1 column 12", Some("name")),
            (
                "zones[0]: missing field `polygon` at line 1 column 80",
                Some("zones[0].polygon"),
            ),
            (
                "url: unknown field `url`, expected one of `id`, `name` at line 1 column 9",
                Some("url"),
            ),
            (
                "zones[1].colour: unknown field `colour`, expected `id` at line 1 column 9",
                Some("zones[1].colour"),
            ),
            (
                "main.url: invalid type: integer `1`, expected a string at line 1 column 30",
                Some("main.url"),
            ),
            ("EOF while parsing an object at line 1 column 1", None),
        ];
        for (text, want) in cases {
            assert_eq!(json_field(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn camera_fields_map_to_their_csv_columns() {
        assert_eq!(column_of("main.url"), Some("main_url"));
        assert_eq!(column_of("sub"), Some("sub_url"));
        assert_eq!(column_of("password"), Some("password"));
        assert_eq!(column_of("zones[0].polygon"), None);
    }
}
