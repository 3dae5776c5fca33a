//! Playback and evidence packages: `/api/v1/cameras/{id}/recordings` (what is recorded of a
//! camera's stream over a time range: the player's timeline), `/api/v1/cameras/{id}/recording.mp4`
//! and `/api/v1/alerts/{id}/clip.mp4` (recorded video as one MP4, served in HTTP byte ranges so
//! that a `<video>` element seeks in it without loading it whole), `/api/v1/exports` (a signed
//! evidence package, made and downloaded at once; police and admins only) and
//! `/api/v1/evidence/key` (the public key this node signs packages with),
//! `/api/v1/evidence/keys` (every key the district's nodes sign with), and
//! `/api/v1/recordings/segments/{id}` (one segment file of this node's, for another node of a
//! district that plays a recording made partly here; the caller's own credentials come along,
//! so it is scoped and audited as `recording.segment` like any look at video).
//!
//! Scope: a camera's routes follow live view's rule ([`recorded_camera`]: any camera of the
//! district's topology, running here, on another node or not at all; an unseen camera is "not
//! found"), an alert's clip the alert routes' (`alerts::find`). Audit: `recording.play`, or
//! `recording.download` with `download=true` (camera, stream, from, to), and `alert.clip`, each
//! once per user, subject and action every [`LOOK_AUDIT_EVERY`](crate::live::LOOK_AUDIT_EVERY)
//! (a player asks for many ranges of one clip); `export.create` (subject, file, bytes, SHA-256)
//! every time. The timeline and the key show no video and are not audited.
//!
//! Video is read through [`VideoBody::read`] on the blocking pool, [`CHUNK_BYTES`] at a time
//! as the client takes it, so a long clip is never held in memory whole.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tokio::io::AsyncReadExt;
use xl_core::live::StreamKind;
use xl_core::{ErrorKind, Role};

use crate::auth::Caller;
use crate::backend::{
    DistrictEvidenceKey, EvidenceKey, ExportSubject, OnBehalf, Recorded, SegmentFile, VideoBody,
};
use crate::params::Params;
use crate::routes::{Access, Route};
use crate::{ApiError, ApiState};

/// The longest time range asked of a recording (timeline, clip or export).
pub(crate) const MAX_RANGE: SignedDuration = SignedDuration::from_hours(7 * 24);
/// Bytes read (and sent) at a time.
pub(crate) const CHUNK_BYTES: u64 = 256 << 10;

const CLIP_START: HeaderName = HeaderName::from_static("x-clip-start");
const CLIP_END: HeaderName = HeaderName::from_static("x-clip-end");
const EXPORT_SHA256: HeaderName = HeaderName::from_static("x-export-sha256");

pub(crate) fn routes() -> Vec<Route> {
    use crate::schema;
    let video = |route: Route| {
        route
            .produces("video/mp4")
            .byte_ranges()
            .answer_header("Accept-Ranges", "`bytes`")
            .answer_header("Content-Length", "the bytes of this answer")
            .answer_header(
                "Content-Range",
                "206 only: `bytes first-last/length` of the whole MP4",
            )
            .answer_header(
                "X-Clip-Start",
                "RFC 3339: when the clip's first picture was taken (a key frame at or before the start asked for)",
            )
            .answer_header("X-Clip-End", "RFC 3339: when the clip's last picture ends")
    };
    let time_range = |route: Route| {
        route
            .required_query("from", "RFC 3339, inclusive")
            .required_query(
                "to",
                "RFC 3339, exclusive; after `from`, at most 7 days after it",
            )
            .query(
                "stream",
                "`main` or `sub`; default: the stream the camera records",
            )
    };
    vec![
        time_range(Route::new(
            Method::GET,
            "/api/v1/cameras/{id}/recordings",
            Access::User,
            "What is recorded of the camera's stream over a time range: recorded stretches and the gaps between them (the playback timeline)",
            get(recordings),
        ))
        .answers(schema::recorded),
        video(time_range(Route::new(
            Method::GET,
            "/api/v1/cameras/{id}/recording.mp4",
            Access::User,
            "The camera's recording of a time range as one MP4, in byte ranges; audited once per user, camera and kind (play, download) every ten minutes",
            get(recording_mp4),
        )))
        .query(
            "download",
            "`true`: sent as an attachment to save (`Content-Disposition`), audited as a download",
        )
        .answer_header(
            "Content-Disposition",
            "with download=true: `attachment; filename=\"<camera>-<clip start, YYYYMMDDTHHMMSSZ>.mp4\"`",
        )
        .describe(
            "A 404 for a range with nothing recorded lists `gaps` beside `error`. The MP4 starts at the key frame at or before `from` (`X-Clip-Start`).",
        ),
        video(Route::new(
            Method::GET,
            "/api/v1/alerts/{id}/clip.mp4",
            Access::User,
            "The alert's clip: its camera's recording around the time it was raised, as one MP4 in byte ranges; audited once per user and alert every ten minutes",
            get(alert_clip),
        )),
        Route::new(
            Method::POST,
            "/api/v1/exports",
            Access::User,
            "Make and download a signed evidence package (zip) of an alert or of a camera's time range; audited",
            post(export),
        )
        .body(schema::export_request)
        .produces("application/zip")
        .answer_header("Content-Length", "the zip's bytes")
        .answer_header("Content-Disposition", "`attachment; filename=\"export-<id>.zip\"`")
        .answer_header("X-Export-Sha256", "hex SHA-256 of the whole zip")
        .responds(404)
        .describe(
            "Police and admin users only (others 403). Body: {\"alert\": \"<id>\"} or {\"range\": {\"camera\", \"stream\" (optional), \"from\", \"to\"}}, of an alert or camera the caller sees (else 404). The package carries a manifest signed with the key of the node that makes it (`GET /api/v1/evidence/key`; a district's keys: `GET /api/v1/evidence/keys`; check it with `xueliang verify-export`).",
        ),
        video(Route::new(
            Method::GET,
            "/api/v1/recordings/segments/{id}",
            Access::User,
            "One segment file of this node's recordings, as recorded (fragmented MP4), in byte ranges: how a node of a district plays video another node recorded; audited once per user and camera every ten minutes",
            get(segment),
        ))
        .describe(
            "A segment recorded on another node, or none, is 404: ask the node the recording's index names. A segment still being written is sent as far as it is written.",
        ),
        Route::new(
            Method::GET,
            "/api/v1/evidence/key",
            Access::User,
            "The public key evidence packages are signed with",
            get(evidence_key),
        )
        .answers(schema::evidence_key),
        Route::new(
            Method::GET,
            "/api/v1/evidence/keys",
            Access::User,
            "Every key the district's nodes sign evidence packages with: a package made on any node verifies against one of them",
            get(evidence_keys),
        )
        .answers(schema::evidence_keys)
        .describe(
            "Each node of a district signs with its own key (`GET /api/v1/evidence/key` answers the answering node's); a single hub has one. Oldest first, with the node that signs with it (`\"\"` on a single hub) and since when. Save the answer as a file and check a package with `xueliang verify-export FILE --keys KEYS.json`: it must be signed with one of them. Only public keys are kept; a key is listed once its node has started.",
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Time ranges.

/// Why `[from, to)` may not be asked of a recording, said of `to`.
fn range_fault(from: Timestamp, to: Timestamp) -> Option<&'static str> {
    if from >= to {
        Some("must be after `from`")
    } else if to.duration_since(from) > MAX_RANGE {
        Some("may be at most 7 days after `from`")
    } else {
        None
    }
}

/// `from`, `to` (both required) and `stream` of a query.
fn time_range(params: &Params) -> Result<(Timestamp, Timestamp, Option<StreamKind>), ApiError> {
    let required = |name: &str| {
        params.time(name)?.ok_or_else(|| {
            ApiError::invalid(format!(
                "parameter `{name}` is required: an RFC 3339 time such as 2027-01-15T08:00:00Z"
            ))
        })
    };
    let (from, to) = (required("from")?, required("to")?);
    if let Some(fault) = range_fault(from, to) {
        return Err(ApiError::invalid(format!("parameter `to` {fault}")));
    }
    Ok((from, to, params.one::<StreamKind>("stream")?))
}

/// The camera `id` whose recordings the caller asks for: one running here, or else any camera
/// of the topology (another node of the district runs it, or it is disabled: its video stays
/// under retention). Scoped as live view; an unseen camera is "not found".
fn recorded_camera(
    state: &ApiState,
    caller: &Caller,
    id: String,
) -> Result<xl_core::camera::CameraInfo, ApiError> {
    if let Ok((info, _)) = crate::cameras::find(state, caller, id.clone()) {
        return Ok(info);
    }
    let camera = xl_core::CameraId::new(&id)
        .map_err(|e| ApiError::new(ErrorKind::InvalidInput, e.to_string()))?;
    state
        .backend
        .topology_view()
        .cameras
        .get(&camera)
        .map(|c| xl_core::camera::CameraInfo {
            id: c.id.clone(),
            name: c.name.clone(),
            community: c.community.clone(),
            network: c.network,
        })
        .filter(|info| caller.sees_camera(info))
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no camera {camera}")))
}

// ---------------------------------------------------------------------------------------------
// Handlers.

async fn recordings(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Recorded>, ApiError> {
    let info = recorded_camera(&state, &caller, id)?;
    params.only(&["from", "to", "stream"])?;
    let (from, to, stream) = time_range(&params)?;
    Ok(Json(
        state.backend.recordings(&info.id, stream, from, to).await?,
    ))
}

async fn recording_mp4(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let info = recorded_camera(&state, &caller, id)?;
    params.only(&["from", "to", "stream", "download"])?;
    let (from, to, stream) = time_range(&params)?;
    let download = params.one::<bool>("download")?.unwrap_or(false);
    let video = state
        .backend
        .recording_clip(&info.id, stream, from, to, &OnBehalf::of(&headers))
        .await?;
    let part = Part::of(headers.get(header::RANGE), video.len());
    if part == Part::Unsatisfiable {
        return Ok(unsatisfiable(video.len()));
    }
    let action = if download {
        "recording.download"
    } else {
        "recording.play"
    };
    let detail = json!({
        "camera": info.id,
        "stream": stream.map(StreamKind::as_str),
        "from": from,
        "to": to,
    });
    audit_look(&state, &caller, action, info.id.as_str(), detail).await?;
    let start_at = video.start_at();
    let mut resp = video_response(video, part, format!("camera {}", info.id));
    if download {
        let name = format!("{}-{}.mp4", info.id, start_at.strftime("%Y%m%dT%H%M%SZ"));
        resp.headers_mut()
            .insert(header::CONTENT_DISPOSITION, attachment(&name));
    }
    Ok(resp)
}

async fn alert_clip(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let view = crate::alerts::find(&state, &caller, id).await?;
    let alert = view.alert;
    let video = state
        .backend
        .alert_clip(&alert.id, &OnBehalf::of(&headers))
        .await?;
    let part = Part::of(headers.get(header::RANGE), video.len());
    if part == Part::Unsatisfiable {
        return Ok(unsatisfiable(video.len()));
    }
    let detail = json!({
        "camera": alert.camera,
        "gate": alert.gate,
        "start": video.start_at(),
        "end": video.end_at(),
    });
    audit_look(&state, &caller, "alert.clip", alert.id.as_str(), detail).await?;
    Ok(video_response(video, part, format!("alert {}", alert.id)))
}

async fn export(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !matches!(caller.user.role, Role::Police | Role::Admin) {
        return Err(ApiError::new(
            ErrorKind::PermissionDenied,
            "only police and admin users may export evidence",
        ));
    }
    let subject = export_subject(&body)?;
    // What the audit entry says the package is of, once the caller may see it.
    let of = match &subject {
        ExportSubject::Alert(id) => {
            let view = crate::alerts::find(&state, &caller, id.0.clone()).await?;
            json!({ "alert": view.alert.id })
        }
        ExportSubject::Range {
            camera,
            stream,
            from,
            to,
        } => {
            if let Some(fault) = range_fault(*from, *to) {
                return Err(ApiError::invalid(format!("`range.to` {fault}")).with_field("range.to"));
            }
            recorded_camera(&state, &caller, camera.to_string())?;
            json!({ "range": {
                "camera": camera,
                "stream": stream.map(StreamKind::as_str),
                "from": from,
                "to": to,
            } })
        }
    };
    let file = state
        .backend
        .export(subject, caller.name(), &OnBehalf::of(&headers))
        .await?;
    caller
        .audit(
            &state,
            "export.create",
            Some(file.file_name.clone()),
            json!({
                "subject": of,
                "file": file.file_name,
                "bytes": file.bytes,
                "sha256": file.sha256,
            }),
        )
        .await?;
    let opened = match tokio::fs::File::open(&file.path).await {
        Ok(f) => f.metadata().await.map(|m| (f, m.len())),
        Err(e) => Err(e),
    };
    let (zip, len) = opened.map_err(|e| {
        ApiError::internal(format!(
            "export {} at {}: {e}",
            file.file_name,
            file.path.display()
        ))
    })?;
    let mut resp = Response::new(file_body(zip, file.file_name.clone()));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CONTENT_DISPOSITION, attachment(&file.file_name));
    if let Ok(sha) = HeaderValue::from_str(&file.sha256) {
        h.insert(EXPORT_SHA256, sha);
    }
    Ok(resp)
}

/// The body of `POST /api/v1/exports`; a bad one is 400 naming what is wrong (the range's
/// fields by their path, `range.from`, which serde's own message would not).
fn export_subject(body: &[u8]) -> Result<ExportSubject, ApiError> {
    let expected = "expected {\"alert\": \"<id>\"} or \
                    {\"range\": {\"camera\", \"stream\" (optional), \"from\", \"to\"}}";
    let body: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("bad request body: {e}; {expected}")))?;
    if let Some(range) = body.get("range").and_then(|r| r.as_object()) {
        for name in ["from", "to"] {
            if let Some(v) = range.get(name).and_then(|v| v.as_str())
                && v.parse::<Timestamp>().is_err()
            {
                return Err(ApiError::invalid(format!(
                    "`range.{name}`: expected an RFC 3339 time such as 2027-01-15T08:00:00Z, got {v:?}"
                ))
                .with_field(format!("range.{name}")));
            }
        }
        if let Some(v) = range.get("camera").and_then(|v| v.as_str())
            && let Err(e) = xl_core::CameraId::new(v)
        {
            return Err(
                ApiError::invalid(format!("`range.camera`: {e}")).with_field("range.camera")
            );
        }
    }
    serde_json::from_value(body)
        .map_err(|e| ApiError::invalid(format!("bad request body: {e}; {expected}")))
}

async fn segment(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(format!("no recording segment {id} on this node"));
    let n: i64 = id.parse().map_err(|_| not_found())?;
    let file = state.backend.own_segment(n).await?.ok_or_else(not_found)?;
    // Scope as the camera's other routes (a camera the caller does not see is not found).
    recorded_camera(&state, &caller, file.camera.to_string()).map_err(|_| not_found())?;
    let camera = file.camera.clone();
    let video = FileVideo::open(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ApiError::not_found(format!(
            "recording segment {id} is gone from the disk (deleted by retention or the disk guard)"
        )),
        _ => ApiError::internal(format!("opening recording segment {id}: {e}")),
    })?;
    let video: Arc<dyn VideoBody> = Arc::new(video);
    let part = Part::of(headers.get(header::RANGE), video.len());
    if part == Part::Unsatisfiable {
        return Ok(unsatisfiable(video.len()));
    }
    let detail = json!({ "camera": camera, "segment": n });
    audit_look(
        &state,
        &caller,
        "recording.segment",
        camera.as_str(),
        detail,
    )
    .await?;
    Ok(video_response(
        video,
        part,
        format!("recording segment {n}"),
    ))
}

/// A segment file sent as it is: its length when opened (a segment being written grows;
/// what was written by then is sent).
struct FileVideo {
    file: SegmentFile,
    len: u64,
}

impl FileVideo {
    fn open(file: SegmentFile) -> std::io::Result<FileVideo> {
        let len = std::fs::metadata(&file.path)?.len();
        Ok(FileVideo { file, len })
    }
}

impl VideoBody for FileVideo {
    fn len(&self) -> u64 {
        self.len
    }

    fn start_at(&self) -> Timestamp {
        self.file.start_at
    }

    fn end_at(&self) -> Timestamp {
        self.file.end_at.unwrap_or(self.file.start_at)
    }

    fn read(&self, start: u64, end: u64) -> Result<Vec<u8>, ApiError> {
        use std::io::{Read, Seek, SeekFrom};
        let fail = |e: std::io::Error| {
            ApiError::internal(format!("reading {}: {e}", self.file.path.display()))
        };
        let mut f = std::fs::File::open(&self.file.path).map_err(fail)?;
        f.seek(SeekFrom::Start(start)).map_err(fail)?;
        let mut out = vec![0; usize::try_from(end.saturating_sub(start)).unwrap_or(0)];
        f.read_exact(&mut out).map_err(fail)?;
        Ok(out)
    }
}

async fn evidence_key(State(state): State<ApiState>) -> Result<Json<EvidenceKey>, ApiError> {
    Ok(Json(state.backend.evidence_key().await?))
}

async fn evidence_keys(
    State(state): State<ApiState>,
) -> Result<Json<Vec<DistrictEvidenceKey>>, ApiError> {
    Ok(Json(state.backend.evidence_keys().await?))
}

/// Audits a look at recorded video as `action`, the first of the caller's at `subject` in
/// [`LOOK_AUDIT_EVERY`](crate::live::LOOK_AUDIT_EVERY). Fails closed, and then forgets the
/// look, so that the next request tries again.
async fn audit_look(
    state: &ApiState,
    caller: &Caller,
    action: &'static str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    if !state
        .looks
        .first_in_a_while(caller.name(), action, subject, Instant::now())
    {
        return Ok(());
    }
    let written = caller
        .audit(state, action, Some(subject.to_owned()), detail)
        .await;
    if written.is_err() {
        state.looks.forget(caller.name(), action, subject);
    }
    written
}

// ---------------------------------------------------------------------------------------------
// Byte ranges.

/// What a request's `Range` header asks of a body of known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// No range, or one that is ignored: the whole body (200).
    Whole,
    /// Bytes `[start, end)`, not empty (206).
    Bytes(u64, u64),
    /// One range that starts past the end, or a suffix of none (416).
    Unsatisfiable,
}

impl Part {
    /// Reads `Range: bytes=first-last`, `bytes=first-` or `bytes=-suffix` of a body of `len`
    /// bytes (RFC 9110, section 14). A header that cannot be read, another unit, or a
    /// `last` before `first` is ignored, as the RFC lets a server ignore any `Range`.
    /// Several ranges are ignored too: the whole body is one answer, where the
    /// `multipart/byteranges` they would take costs more than it saves (players ask for one
    /// range at a time).
    fn of(header: Option<&HeaderValue>, len: u64) -> Part {
        let Some(spec) = header
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.trim().split_once('='))
            .filter(|(unit, _)| unit.trim().eq_ignore_ascii_case("bytes"))
            .map(|(_, spec)| spec.trim())
        else {
            return Part::Whole;
        };
        if spec.contains(',') {
            return Part::Whole;
        }
        let Some((first, last)) = spec.split_once('-') else {
            return Part::Whole;
        };
        let (first, last) = (first.trim(), last.trim());
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        // Digits too many for a u64 are a number larger than any body.
        let number = |s: &str| s.parse::<u64>().unwrap_or(u64::MAX);
        if first.is_empty() {
            if !digits(last) {
                return Part::Whole;
            }
            let suffix = number(last).min(len);
            return if suffix == 0 {
                Part::Unsatisfiable
            } else {
                Part::Bytes(len - suffix, len)
            };
        }
        if !digits(first) || !(last.is_empty() || digits(last)) {
            return Part::Whole;
        }
        let start = number(first);
        let end = if last.is_empty() {
            len
        } else {
            let last = number(last);
            if last < start {
                return Part::Whole;
            }
            last.saturating_add(1).min(len)
        };
        if start >= len {
            Part::Unsatisfiable
        } else {
            Part::Bytes(start, end)
        }
    }
}

/// 416, with the body's length (`Content-Range: bytes */len`) and the API's error shape.
fn unsatisfiable(len: u64) -> Response {
    let body = json!({ "error": {
        "code": "range_not_satisfiable",
        "message": format!("the range asked for starts past the end of the {len} bytes"),
    } });
    let mut resp = (StatusCode::RANGE_NOT_SATISFIABLE, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
        resp.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    resp.headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    resp
}

/// The answer of `part` of `video`: 200 or 206 with its headers, the body read as it is sent.
/// `what` names the video in the log.
fn video_response(video: Arc<dyn VideoBody>, part: Part, what: String) -> Response {
    let len = video.len();
    let (status, start, end) = match part {
        Part::Bytes(start, end) => (StatusCode::PARTIAL_CONTENT, start, end),
        Part::Whole | Part::Unsatisfiable => (StatusCode::OK, 0, len),
    };
    let times = [(CLIP_START, video.start_at()), (CLIP_END, video.end_at())];
    let mut resp = Response::new(video_body(video, start, end, what));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    for (name, at) in times {
        if let Ok(v) = HeaderValue::from_str(&at.to_string()) {
            h.insert(name, v);
        }
    }
    resp
}

/// Bytes `[start, end)` of `video`, [`CHUNK_BYTES`] at a time, each read on the blocking pool
/// when the client has taken the one before. A failed read is logged here, once, and ends the
/// body with an error, so the connection is cut rather than the video silently shortened.
fn video_body(video: Arc<dyn VideoBody>, start: u64, end: u64, what: String) -> Body {
    let stream = futures::stream::unfold(Some(start), move |at| {
        let (video, what) = (video.clone(), what.clone());
        async move {
            let at = at.filter(|at| *at < end)?;
            let to = end.min(at.saturating_add(CHUNK_BYTES));
            let read = tokio::task::spawn_blocking(move || video.read(at, to)).await;
            let fault = match read {
                Ok(Ok(bytes)) if bytes.len() as u64 == to - at => {
                    return Some((Ok(Bytes::from(bytes)), Some(to)));
                }
                Ok(Ok(bytes)) => format!("read {} bytes of {}", bytes.len(), to - at),
                Ok(Err(e)) => e.message,
                Err(e) => e.to_string(),
            };
            tracing::warn!(video = %what, offset = at, error = %fault, "reading recorded video failed; its answer is cut short");
            Some((Err(std::io::Error::other(fault)), None))
        }
    });
    Body::from_stream(stream)
}

/// An open file's bytes, [`CHUNK_BYTES`] at a time. A failed read is logged here, once, and
/// ends the body with an error.
fn file_body(file: tokio::fs::File, what: String) -> Body {
    let stream = futures::stream::unfold(Some(file), move |file| {
        let what = what.clone();
        async move {
            let mut file = file?;
            let mut buf = vec![0u8; CHUNK_BYTES as usize];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some(file)))
                }
                Err(e) => {
                    tracing::warn!(file = %what, error = %e, "reading an export failed; its answer is cut short");
                    Some((Err(e), None))
                }
            }
        }
    });
    Body::from_stream(stream)
}

/// `attachment; filename="name"`, with any character that has no place in a quoted file name
/// replaced by `_`.
fn attachment(name: &str) -> HeaderValue {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_headers_are_read_as_the_rfc_says() {
        let len = 1000;
        for (header, want) in [
            (None, Part::Whole),
            (Some("bytes=0-99"), Part::Bytes(0, 100)),
            (Some("bytes=100-199"), Part::Bytes(100, 200)),
            (Some("bytes=990-"), Part::Bytes(990, 1000)),
            (Some("bytes=-10"), Part::Bytes(990, 1000)),
            (Some("bytes=-5000"), Part::Bytes(0, 1000)),
            (Some("bytes=900-5000"), Part::Bytes(900, 1000)),
            (Some("bytes=999-999"), Part::Bytes(999, 1000)),
            (Some("Bytes = 5 - 9 "), Part::Bytes(5, 10)),
            (
                Some("bytes=0-99999999999999999999999"),
                Part::Bytes(0, 1000),
            ),
            // Past the end, or an empty suffix.
            (Some("bytes=1000-"), Part::Unsatisfiable),
            (Some("bytes=1000-1001"), Part::Unsatisfiable),
            (Some("bytes=99999999999999999999999-"), Part::Unsatisfiable),
            (Some("bytes=-0"), Part::Unsatisfiable),
            // Ignored: the whole body.
            (Some("bytes=0-9,20-29"), Part::Whole),
            (Some("bytes=9-0"), Part::Whole),
            (Some("bytes=-"), Part::Whole),
            (Some("bytes=a-b"), Part::Whole),
            (Some("bytes=--5"), Part::Whole),
            (Some("bytes=+5-9"), Part::Whole),
            (Some("bytes=5"), Part::Whole),
            (Some("items=0-9"), Part::Whole),
            (Some("0-9"), Part::Whole),
        ] {
            let value = header.map(|h| HeaderValue::from_str(h).unwrap());
            assert_eq!(Part::of(value.as_ref(), len), want, "{header:?}");
        }
        assert_eq!(
            Part::of(Some(&HeaderValue::from_static("bytes=0-")), 0),
            Part::Unsatisfiable
        );
    }

    #[test]
    fn ranges_past_seven_days_or_backwards_are_refused() {
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let week = 7 * 24 * 3600;
        assert_eq!(range_fault(t(0), t(1)), None);
        assert_eq!(range_fault(t(0), t(week)), None);
        assert!(range_fault(t(0), t(week + 1)).is_some());
        assert!(range_fault(t(5), t(5)).is_some());
        assert!(range_fault(t(6), t(5)).is_some());
    }

    #[test]
    fn attachment_names_stay_inside_their_quotes() {
        assert_eq!(
            attachment("export-01ab.zip"),
            "attachment; filename=\"export-01ab.zip\""
        );
        assert_eq!(
            attachment("a\"b\r\n/c 证据.zip"),
            "attachment; filename=\"a_b___c___.zip\""
        );
    }
}
