//! `/api/v1/alerts`: list, detail, a person's actions, and the Server-Sent Events stream.
//!
//! The stream sends event `alert` (id = outbox seq, data = the [`OutboxEntry`]) for every
//! outbox entry the caller may see, driven by [`Backend::committed`](crate::Backend::committed)
//! and read with `outbox_after`, so that a client resuming with `Last-Event-ID` (or
//! `?last_event_id=`) gets every entry committed since, and event `camera` (`{camera, status}`)
//! when a visible camera's status label changes.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::mpsc;
use xl_core::alert::AlertAction;
use xl_core::{Alert, AlertId, AlertKind, AlertState, CameraId};

use crate::auth::Caller;
use crate::backend::{AlertQuery, AlertView};
use crate::params::{Params, range};
use crate::routes::{Access, Route};
use crate::{ApiError, ApiState};

/// Longest note accepted.
pub(crate) const MAX_NOTE_CHARS: usize = 4000;
/// Outbox entries read per call while catching up.
const OUTBOX_PAGE: u32 = 500;

pub(crate) fn routes() -> Vec<Route> {
    use crate::schema;
    let act = |path, summary, handler| {
        Route::new(Method::POST, path, Access::User, summary, handler)
            .optional_body(|| schema::act_request(false))
            .answers(schema::alert)
    };
    vec![
        Route::new(
            Method::GET,
            "/api/v1/alerts",
            Access::User,
            "Alerts the caller may see, newest first",
            get(list),
        )
        .query(
            "state",
            "comma-separated: open, acknowledged, escalated, resolved",
        )
        .query(
            "kind",
            "comma-separated alert kinds (gate.forced_open, ...)",
        )
        .query("community", "comma-separated community ids")
        .query("from", "RFC 3339, on raised_at, inclusive")
        .query("to", "RFC 3339, on raised_at, exclusive")
        .query("limit", "1 to 1000, default 100")
        .answers(schema::alerts),
        Route::new(
            Method::GET,
            "/api/v1/alerts/stream",
            Access::User,
            "Server-Sent Events: `alert` (id = outbox seq) and `camera` status changes",
            get(stream),
        )
        .header("Last-Event-ID", "resume after this outbox seq")
        .query(
            "last_event_id",
            "resume after this outbox seq (for clients that cannot set headers)",
        )
        .produces("text/event-stream"),
        Route::new(
            Method::GET,
            "/api/v1/alerts/{id}",
            Access::User,
            "An alert with its history and snapshots",
            get(detail),
        )
        .answers(schema::alert_view),
        act(
            "/api/v1/alerts/{id}/acknowledge",
            "Acknowledge: {\"note\"} optional",
            post(acknowledge),
        ),
        act(
            "/api/v1/alerts/{id}/escalate",
            "Escalate to the station desk: {\"note\"} optional",
            post(escalate),
        ),
        act(
            "/api/v1/alerts/{id}/resolve",
            "Resolve: {\"note\"} optional",
            post(resolve),
        ),
        Route::new(
            Method::POST,
            "/api/v1/alerts/{id}/note",
            Access::User,
            "Add a note: {\"note\"} required",
            post(note),
        )
        .body(|| schema::act_request(true))
        .answers(schema::alert),
    ]
}

async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Vec<Alert>>, ApiError> {
    params.only(&["state", "kind", "community", "from", "to", "limit"])?;
    let (from, to) = range(params.time("from")?, params.time("to")?)?;
    let limit = params.limit(100, 1000)?;
    let query = AlertQuery {
        states: params.list::<AlertState>("state")?,
        kinds: params.list::<AlertKind>("kind")?,
        communities: caller.communities(params.list("community")?),
        from,
        to,
        // A property user's alerts are also filtered by role below, so ask for more.
        limit: if caller.alerts_routed_to().is_none() {
            limit
        } else {
            limit.saturating_mul(4).min(4000)
        },
    };
    let mut alerts: Vec<Alert> = state
        .backend
        .list_alerts(query)
        .await?
        .into_iter()
        .filter(|a| caller.sees_alert(a))
        .collect();
    alerts.truncate(limit as usize);
    Ok(Json(alerts))
}

fn alert_id(id: String) -> Result<AlertId, ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(AlertId(id))
    } else {
        Err(ApiError::invalid(format!("{id:?} is not an alert id")))
    }
}

/// An alert the caller sees; others are "not found".
pub(crate) async fn find(
    state: &ApiState,
    caller: &Caller,
    id: String,
) -> Result<AlertView, ApiError> {
    let id = alert_id(id)?;
    state
        .backend
        .alert(&id)
        .await?
        .filter(|v| caller.sees_alert(&v.alert))
        .ok_or_else(|| ApiError::not_found(format!("no alert {id}")))
}

async fn detail(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AlertView>, ApiError> {
    Ok(Json(find(&state, &caller, id).await?))
}

/// Body of the action routes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActRequest {
    #[serde(default)]
    note: Option<String>,
}

async fn act(
    state: ApiState,
    caller: Caller,
    id: String,
    action: AlertAction,
    body: &[u8],
) -> Result<Json<Alert>, ApiError> {
    let req: ActRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ActRequest::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("expected {{\"note\": \"...\"}}: {e}")))?
    };
    let note = req
        .note
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
    {
        return Err(ApiError::invalid(format!(
            "`note` is longer than {MAX_NOTE_CHARS} characters"
        )));
    }
    if action == AlertAction::Noted && note.is_none() {
        return Err(ApiError::invalid("`note` is required"));
    }
    // Police, duty and admin may act on any alert; property on the alerts it sees.
    let view = find(&state, &caller, id).await?;
    let verb = match action {
        AlertAction::Acknowledged => "acknowledge",
        AlertAction::Escalated => "escalate",
        AlertAction::Resolved => "resolve",
        _ => "note",
    };
    let audit = caller.audit_entry(
        &format!("alert.{verb}"),
        Some(view.alert.id.to_string()),
        serde_json::json!({ "note": note }),
    );
    let entry = state
        .backend
        .act(&view.alert.id, action, caller.name(), note, audit)
        .await?;
    Ok(Json(entry.alert))
}

macro_rules! action_handler {
    ($name:ident, $action:expr) => {
        async fn $name(
            State(state): State<ApiState>,
            caller: Caller,
            Path(id): Path<String>,
            body: axum::body::Bytes,
        ) -> Result<Json<Alert>, ApiError> {
            act(state, caller, id, $action, &body).await
        }
    };
}

action_handler!(acknowledge, AlertAction::Acknowledged);
action_handler!(escalate, AlertAction::Escalated);
action_handler!(resolve, AlertAction::Resolved);
action_handler!(note, AlertAction::Noted);

// ---------------------------------------------------------------------------------------------
// Server-Sent Events.

fn resume_point(headers: &HeaderMap, params: &Params) -> Result<Option<i64>, ApiError> {
    params.only(&["last_event_id"])?;
    let from_query = params.one::<i64>("last_event_id")?;
    let from_header = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::invalid("header `Last-Event-ID`: expected an outbox seq")
                })?,
        ),
    };
    let seq = from_header.or(from_query);
    if seq.is_some_and(|s| s < 0) {
        return Err(ApiError::invalid("`Last-Event-ID` must not be negative"));
    }
    Ok(seq)
}

async fn stream(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    params: Params,
) -> Result<impl IntoResponse, ApiError> {
    let resume = resume_point(&headers, &params)?;
    let mut committed = state.backend.committed();
    let last = *committed.borrow_and_update();
    // A position past the last committed entry (from another database, say) would wait for
    // numbers that may never come: everything after `last` is new to the client anyway.
    let start = resume.map_or(last, |seq| seq.min(last));
    let (tx, mut rx) = mpsc::channel::<Event>(64);
    let heartbeat = state.settings.sse_heartbeat;
    tokio::spawn(async move {
        if let Err(e) = pump(&state, &caller, start, &mut committed, &tx).await {
            tracing::warn!(user = caller.name(), error = %e.message, "alert stream ended");
        }
    });
    let events = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|e| e.map(Ok::<Event, Infallible>))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(heartbeat)))
}

/// The label of each visible camera's status.
fn camera_labels(state: &ApiState, caller: &Caller) -> HashMap<CameraId, &'static str> {
    state
        .cameras
        .snapshot()
        .into_iter()
        .filter(|(info, _)| caller.sees_camera(info))
        .map(|(info, stats)| (info.id, stats.status().label()))
        .collect()
}

/// Feeds one client until it goes away, or its session ends (expiry, logout, the user
/// disabled or deleted; checked every `session_recheck`, which also picks up a change of the
/// user's role or communities). Returns `Ok` when the client left or the session ended.
async fn pump(
    state: &ApiState,
    caller: &Caller,
    mut cursor: i64,
    committed: &mut tokio::sync::watch::Receiver<i64>,
    tx: &mpsc::Sender<Event>,
) -> Result<(), ApiError> {
    let mut caller = caller.clone();
    let caller = &mut caller;
    let mut labels = camera_labels(state, caller);
    let mut tick = tokio::time::interval(state.settings.camera_poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut recheck = tokio::time::interval(state.settings.session_recheck);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.tick().await;
    loop {
        // Catch up with everything committed after the cursor.
        committed.borrow_and_update();
        loop {
            let page = state.backend.outbox_after(cursor, OUTBOX_PAGE).await?;
            let full = page.len() >= OUTBOX_PAGE as usize;
            for entry in page {
                cursor = cursor.max(entry.seq);
                if !caller.sees_alert(&entry.alert) {
                    continue;
                }
                let event = Event::default()
                    .event("alert")
                    .id(entry.seq.to_string())
                    .json_data(&entry)
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                if tx.send(event).await.is_err() {
                    return Ok(());
                }
            }
            if !full {
                break;
            }
        }
        tokio::select! {
            _ = tx.closed() => return Ok(()),
            changed = committed.changed() => {
                if changed.is_err() {
                    return Err(ApiError::new(xl_core::ErrorKind::Unavailable, "the alert pipeline stopped"));
                }
            }
            _ = recheck.tick() => {
                match crate::auth::recheck(state, caller).await? {
                    Some(now) => *caller = now,
                    None => {
                        tracing::info!(user = caller.name(), "alert stream closed: the session ended");
                        return Ok(());
                    }
                }
            }
            _ = tick.tick() => {
                let now = camera_labels(state, caller);
                for (camera, status) in &now {
                    if labels.get(camera) != Some(status) {
                        let event = Event::default()
                            .event("camera")
                            .json_data(serde_json::json!({ "camera": camera, "status": status }))
                            .map_err(|e| ApiError::internal(e.to_string()))?;
                        if tx.send(event).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                labels = now;
            }
        }
    }
}
