//! The JSON Schemas of `/api/openapi.json` (OpenAPI 3.0's dialect: `nullable`, no `$ref`
//! inside them): request bodies, written next to what the handlers accept, and the answers.
//!
//! Request schemas state what the handler accepts: every body valid against its schema is
//! accepted by the handler (for an existing target), and the bodies the handler refuses
//! because of their shape (unknown fields, wrong types, out-of-range values) are invalid
//! against it. The tests in `tests/schemas.rs` hold both directions on examples, through the
//! router, so the schemas and the request structs cannot drift apart unnoticed.

use serde_json::{Value, json};
use xl_core::{AlertKind, AlertState, Role, Severity};

/// Newtype ids (`CameraId`, `GateId`, `CommunityId`...): `[A-Za-z0-9_.-]`, 1 to 64.
pub(crate) fn id() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_.-]+$" })
}

fn nullable(mut schema: Value) -> Value {
    schema["nullable"] = json!(true);
    schema
}

fn time() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn count() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

fn one_of_names(names: impl IntoIterator<Item = &'static str>) -> Value {
    json!({ "type": "string", "enum": names.into_iter().collect::<Vec<_>>() })
}

fn role() -> Value {
    one_of_names(Role::ALL.iter().map(|r| r.as_str()))
}

// ---------------------------------------------------------------------------------------------
// Request bodies.

/// `POST /api/v1/auth/login` (`auth::LoginRequest`, `deny_unknown_fields`). Longer names or
/// passwords are never anyone's: they are answered 401 like any wrong password.
pub(crate) fn login_request() -> Value {
    json!({
        "type": "object",
        "required": ["username", "password"],
        "additionalProperties": false,
        "properties": {
            "username": { "type": "string", "maxLength": 64 },
            "password": { "type": "string", "maxLength": 1024 },
        },
    })
}

/// `POST /api/v1/users` (`users::AddUser`, `deny_unknown_fields`; `check_username`,
/// `check_password`, `check_scope`).
pub(crate) fn add_user_request() -> Value {
    json!({
        "type": "object",
        "required": ["username", "password", "role"],
        "additionalProperties": false,
        "properties": {
            "username": username(),
            "password": password(),
            "role": role(),
            "communities": { "type": "array", "items": id() },
        },
        // A property user needs at least one community.
        "anyOf": [
            { "properties": { "role": { "not": { "enum": ["property"] } } } },
            {
                "required": ["communities"],
                "properties": { "communities": { "type": "array", "minItems": 1 } },
            },
        ],
    })
}

/// 1 to 64 of `[A-Za-z0-9_.@-]`, not a name the hub acts under itself (`check_username`).
fn username() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": 64,
        "pattern": "^[A-Za-z0-9_.@-]+$",
        "not": { "enum": [crate::auth::TOKEN_USER, "anonymous", "system"] },
    })
}

/// `MIN_PASSWORD_CHARS` characters to `MAX_PASSWORD_BYTES` bytes (the schema's maximum is in
/// characters: one of more than one byte counts as more against the hub's limit).
fn password() -> Value {
    json!({
        "type": "string",
        "minLength": crate::users::MIN_PASSWORD_CHARS,
        "maxLength": crate::users::MAX_PASSWORD_BYTES,
        "description": "10 characters to 1024 bytes (UTF-8)",
    })
}

/// `PATCH /api/v1/users/{username}` (`users::UpdateUser`, `deny_unknown_fields`). At least one
/// field; a property user must keep at least one community (checked against the stored user).
pub(crate) fn update_user_request() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "minProperties": 1,
        "properties": {
            "role": role(),
            "communities": { "type": "array", "items": id() },
            "disabled": { "type": "boolean" },
            "password": password(),
        },
    })
}

/// `PUT /api/v1/cameras/{id}/decode-policy` (`cameras::DecodePolicyRequest`).
pub(crate) fn decode_policy_request() -> Value {
    json!({
        "type": "object",
        "required": ["decode_policy"],
        "additionalProperties": false,
        "properties": {
            "decode_policy": one_of_names(
                xl_core::camera::DecodePolicy::ALL.iter().map(|p| p.as_str())
            ),
        },
    })
}

/// The alert actions' body (`alerts::ActRequest`): optional, and so is its note. `required`:
/// the note route, where a note with something other than spaces is required.
pub(crate) fn act_request(note_required: bool) -> Value {
    let note = json!({
        "type": "string",
        "maxLength": crate::alerts::MAX_NOTE_CHARS,
        "pattern": "\\S",
    });
    if note_required {
        json!({
            "type": "object",
            "required": ["note"],
            "additionalProperties": false,
            "properties": { "note": note },
        })
    } else {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": { "note": nullable(note) },
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Answers.

/// `{"error": {"code", "message"}}` (`ApiError`, and `rate_limited` for the login limiter).
pub(crate) fn error() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": { "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": one_of_names([
                    "invalid_input", "not_found", "unauthenticated", "permission_denied",
                    "unavailable", "internal", "rate_limited",
                ]),
                "message": { "type": "string" },
            },
        } },
    })
}

fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

/// `backend::User`.
fn user() -> Value {
    json!({
        "type": "object",
        "required": ["username", "role", "communities"],
        "properties": {
            "username": { "type": "string" },
            "role": role(),
            "communities": array(id()),
        },
    })
}

pub(crate) fn login_response() -> Value {
    json!({
        "type": "object",
        "required": ["token", "expires_at", "user"],
        "properties": { "token": { "type": "string" }, "expires_at": time(), "user": user() },
    })
}

pub(crate) fn me() -> Value {
    json!({
        "type": "object",
        "required": ["user"],
        "properties": { "user": user(), "expires_at": time() },
    })
}

/// `users::UserDto`.
pub(crate) fn user_dto() -> Value {
    json!({
        "type": "object",
        "required": ["username", "role", "communities", "disabled", "created_at"],
        "properties": {
            "username": { "type": "string" },
            "role": role(),
            "communities": array(id()),
            "disabled": { "type": "boolean" },
            "created_at": time(),
        },
    })
}

pub(crate) fn users() -> Value {
    array(user_dto())
}

/// `backend::AuditEntry`.
pub(crate) fn audit() -> Value {
    array(json!({
        "type": "object",
        "required": ["seq", "at", "actor", "action"],
        "properties": {
            "seq": { "type": "integer", "minimum": 1 },
            "at": time(),
            "actor": { "type": "string" },
            "action": { "type": "string" },
            "target": { "type": "string" },
            "peer": { "type": "string" },
        },
    }))
}

/// `cameras::CameraDto`.
pub(crate) fn camera() -> Value {
    let number = json!({ "type": "number", "minimum": 0 });
    json!({
        "type": "object",
        "required": [
            "id", "name", "community", "network", "status", "status_reason", "fps",
            "decoded_fps", "bitrate_bps", "last_frame_at", "codec", "width", "height",
            "decode_policy", "reconnects", "rtp_packets_lost",
        ],
        "properties": {
            "id": id(),
            "name": { "type": "string" },
            "community": id(),
            "network": one_of_names(["community", "skynet", "private"]),
            "status": one_of_names(["connecting", "online", "offline"]),
            "status_reason": nullable(json!({ "type": "string" })),
            "fps": number,
            "decoded_fps": number,
            "bitrate_bps": number,
            "last_frame_at": nullable(time()),
            "codec": nullable(json!({ "type": "string" })),
            "width": nullable(count()),
            "height": nullable(count()),
            "decode_policy": one_of_names(
                xl_core::camera::DecodePolicy::ALL.iter().map(|p| p.as_str())
            ),
            "reconnects": count(),
            "rtp_packets_lost": count(),
        },
    })
}

pub(crate) fn cameras() -> Value {
    array(camera())
}

/// `gates::GateDto`.
pub(crate) fn gate() -> Value {
    json!({
        "type": "object",
        "required": [
            "id", "community", "firmware", "camera", "status", "last_seen",
            "offline_after_secs", "exception", "events", "duplicates", "dead_letters",
        ],
        "properties": {
            "id": id(),
            "community": id(),
            "firmware": { "type": "string" },
            "camera": nullable(id()),
            "status": one_of_names(["online", "offline", "unknown"]),
            "last_seen": nullable(time()),
            "offline_after_secs": count(),
            "events": count(),
            "duplicates": count(),
            "dead_letters": count(),
        },
    })
}

pub(crate) fn gates() -> Value {
    array(gate())
}

/// `xl_core::Alert`.
pub(crate) fn alert() -> Value {
    json!({
        "type": "object",
        "required": [
            "id", "kind", "severity", "state", "community", "title", "raised_at",
            "last_seen_at", "count", "roles",
        ],
        "properties": {
            "id": { "type": "string", "minLength": 1, "maxLength": 64 },
            "kind": one_of_names(AlertKind::ALL.iter().map(|k| k.as_str())),
            "severity": one_of_names(Severity::ALL.iter().map(|s| s.as_str())),
            "state": one_of_names(AlertState::ALL.iter().map(|s| s.as_str())),
            "community": id(),
            "camera": id(),
            "gate": id(),
            "zone": { "type": "string" },
            "title": { "type": "string" },
            "raised_at": time(),
            "last_seen_at": time(),
            "count": { "type": "integer", "minimum": 1 },
            "ack_deadline": time(),
            "acknowledged_at": time(),
            "escalated_at": time(),
            "resolved_at": time(),
            "roles": array(role()),
            "source_event": { "type": "string" },
            "snapshot": { "type": "string" },
        },
    })
}

pub(crate) fn alerts() -> Value {
    array(alert())
}

/// `backend::AlertView`.
pub(crate) fn alert_view() -> Value {
    json!({
        "type": "object",
        "required": ["alert", "history", "snapshots"],
        "properties": {
            "alert": alert(),
            "history": array(json!({
                "type": "object",
                "required": ["at", "actor", "action", "to_state"],
                "properties": {
                    "at": time(),
                    "actor": { "type": "string" },
                    "action": { "type": "string" },
                    "from_state": nullable(one_of_names(AlertState::ALL.iter().map(|s| s.as_str()))),
                    "to_state": one_of_names(AlertState::ALL.iter().map(|s| s.as_str())),
                    "note": { "type": "string" },
                },
            })),
            "snapshots": array(json!({
                "type": "object",
                "required": ["id", "taken_at", "width", "height"],
                "properties": {
                    "id": { "type": "string" },
                    "camera": id(),
                    "alert": { "type": "string" },
                    "taken_at": time(),
                    "width": count(),
                    "height": count(),
                },
            })),
        },
    })
}

/// Stored gate or vision events: JSON objects as the store keeps them.
pub(crate) fn events() -> Value {
    array(json!({ "type": "object" }))
}

/// `backend::ResponseTimes`.
pub(crate) fn response_times() -> Value {
    let figures = json!({
        "type": "object",
        "required": ["count", "mean_secs", "p50_secs", "p90_secs"],
        "properties": {
            "count": count(),
            "mean_secs": nullable(json!({ "type": "number" })),
            "p50_secs": nullable(json!({ "type": "number" })),
            "p90_secs": nullable(json!({ "type": "number" })),
        },
    });
    array(json!({
        "type": "object",
        "required": ["community", "kind", "raised", "to_acknowledge", "to_resolve"],
        "properties": {
            "community": id(),
            "kind": one_of_names(AlertKind::ALL.iter().map(|k| k.as_str())),
            "raised": count(),
            "to_acknowledge": figures,
            "to_resolve": figures,
        },
    }))
}

pub(crate) fn openapi() -> Value {
    json!({
        "type": "object",
        "required": ["openapi", "info", "paths"],
        "properties": { "openapi": { "type": "string" } },
    })
}
