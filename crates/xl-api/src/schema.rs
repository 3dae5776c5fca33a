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
/// `check_password`, `check_scope`; each of `stations` must be a station of the running
/// topology, `check_stations`).
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
            "stations": stations(),
        },
        // Only duty and police users may be limited to stations.
        "not": {
            "required": ["role", "stations"],
            "properties": {
                "role": { "enum": ["admin", "property"] },
                "stations": { "type": "array", "minItems": 1 },
            },
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
/// field; a property user must keep at least one community, and only a duty or police user may
/// have stations (both checked against the stored user with the change applied).
pub(crate) fn update_user_request() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "minProperties": 1,
        "properties": {
            "role": role(),
            "communities": { "type": "array", "items": id() },
            "stations": stations(),
            "disabled": { "type": "boolean" },
            "password": password(),
        },
    })
}

/// A duty or police user's stations (`User::stations`): empty for all.
fn stations() -> Value {
    json!({
        "type": "array",
        "items": id(),
        "description": "stations of the running topology (400 naming `stations` for another); \
                        a duty or police user with stations sees only their communities",
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
                    "unavailable", "internal", "rate_limited", "conflict",
                    "precondition_required", "upstream", "range_not_satisfiable",
                ]),
                "message": { "type": "string" },
                "id": { "type": "string", "description": "of an internal error, in the hub's log" },
                "field": { "type": "string", "description": "the field the error is about: sub.url, zones[2].polygon, If-Match" },
                "entry": {
                    "type": "object",
                    "required": ["kind", "id"],
                    "properties": { "kind": entry_kind(), "id": { "type": "string" } },
                },
            },
        },
        "rows": {
            "type": "array",
            "description": "a refused import: each refused row (data rows counted from 1)",
            "items": {
                "type": "object",
                "required": ["row", "field", "message"],
                "properties": {
                    "row": { "type": "integer", "minimum": 1 },
                    "field": nullable(json!({ "type": "string" })),
                    "message": { "type": "string" },
                },
            },
        },
        "gaps": {
            "type": "array",
            "description": "a time range with no recording: where it has none",
            "items": span(),
        } },
    })
}

/// `backend::Span`.
fn span() -> Value {
    json!({
        "type": "object",
        "required": ["from", "to"],
        "properties": { "from": time(), "to": time() },
    })
}

/// `xl_core::live::StreamKind`.
fn stream_kind() -> Value {
    one_of_names(["main", "sub"])
}

fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

/// `backend::User`.
fn user() -> Value {
    json!({
        "type": "object",
        "required": ["username", "role", "communities", "stations"],
        "properties": {
            "username": { "type": "string" },
            "role": role(),
            "communities": array(id()),
            "stations": array(id()),
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
        "required": ["username", "role", "communities", "stations", "disabled", "created_at"],
        "properties": {
            "username": { "type": "string" },
            "role": role(),
            "communities": array(id()),
            "stations": array(id()),
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
            "node": { "type": "string", "description": "in a district, the node running the camera when another node answers" },
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

/// `backend::Recorded`.
pub(crate) fn recorded() -> Value {
    json!({
        "type": "object",
        "required": ["camera", "stream", "ranges", "gaps"],
        "properties": {
            "camera": id(),
            "stream": stream_kind(),
            "ranges": {
                "type": "array",
                "items": span(),
                "description": "recorded stretches, in time order, clipped to the range asked for",
            },
            "gaps": {
                "type": "array",
                "items": span(),
                "description": "where nothing is recorded, in time order, clipped to the range asked for",
            },
        },
    })
}

/// `backend::ClusterView`.
pub(crate) fn cluster_view() -> Value {
    json!({
        "type": "object",
        "required": ["clustered", "node", "nodes", "leases", "pins"],
        "properties": {
            "clustered": { "type": "boolean", "description": "false on a single hub (no nodes, no leases)" },
            "node": { "type": ["string", "null"], "description": "the answering node's id" },
            "nodes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "weight", "advertise", "held", "cameras", "heartbeat_age_ms"],
                    "properties": {
                        "id": { "type": "string" },
                        "weight": { "type": "integer", "minimum": 1 },
                        "advertise": { "type": ["string", "null"], "description": "the node's API URL" },
                        "held": { "type": "integer", "minimum": 0, "description": "leases held" },
                        "cameras": { "type": "integer", "minimum": 0, "description": "camera leases held" },
                        "heartbeat_age_ms": { "type": "integer", "minimum": 0 },
                    },
                },
            },
            "leases": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["key", "node", "revision", "age_ms"],
                    "properties": {
                        "key": { "type": "string", "description": "camera.<id> or task.<name>" },
                        "node": { "type": "string" },
                        "revision": { "type": "integer", "minimum": 0, "description": "the fencing token" },
                        "age_ms": { "type": "integer", "minimum": 0, "description": "since the last renewal" },
                    },
                },
            },
            "pins": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["camera", "node"],
                    "properties": {
                        "camera": id(),
                        "node": { "type": "string" },
                    },
                },
            },
        },
    })
}

/// `PUT /api/v1/cluster/pins/{camera}` (`cluster::PinRequest`).
pub(crate) fn pin_request() -> Value {
    json!({
        "type": "object",
        "required": ["node"],
        "additionalProperties": false,
        "properties": {
            "node": { "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$" },
        },
    })
}

/// What `DELETE /api/v1/cluster/nodes/{node}/recordings` removed.
pub(crate) fn forgotten_node() -> Value {
    json!({
        "type": "object",
        "required": ["node", "segments"],
        "properties": {
            "node": { "type": "string" },
            "segments": { "type": "integer", "minimum": 0, "description": "segment rows removed from the recording index" },
        },
    })
}

/// `backend::EvidenceKey`.
pub(crate) fn evidence_key() -> Value {
    json!({
        "type": "object",
        "required": ["algorithm", "public_key", "fingerprint"],
        "properties": {
            "algorithm": { "type": "string", "description": "ed25519" },
            "public_key": { "type": "string", "description": "the 32-byte public key, base64" },
            "fingerprint": { "type": "string", "description": "the key id packages name: the first 16 hex digits of the SHA-256 of the public key's bytes" },
        },
    })
}

/// `Vec<backend::DistrictEvidenceKey>`: what `xueliang verify-export --keys` reads.
pub(crate) fn evidence_keys() -> Value {
    let mut key = evidence_key();
    key["required"] = json!(["algorithm", "public_key", "fingerprint", "node", "since"]);
    key["properties"]["node"] = json!({
        "type": "string",
        "description": "the node that signs with it (`[cluster] node`); empty on a single hub",
    });
    key["properties"]["since"] = nullable(
        json!({ "type": "string", "format": "date-time", "description": "when the district first saw it" }),
    );
    array(key)
}

/// `POST /api/v1/exports` (`backend::ExportSubject`, `deny_unknown_fields`): exactly one of
/// `alert` and `range`. `range.to` must be after `range.from` and at most 7 days after it
/// (400 naming `range.to`).
pub(crate) fn export_request() -> Value {
    let alert = json!({
        "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_.-]+$",
    });
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "alert": alert,
            "range": {
                "type": "object",
                "required": ["camera", "from", "to"],
                "additionalProperties": false,
                "properties": {
                    "camera": id(),
                    "stream": nullable(json!({
                        "type": "string",
                        "enum": ["main", "sub"],
                        "description": "default: the stream the camera records",
                    })),
                    "from": time(),
                    "to": time(),
                },
            },
        },
        "anyOf": [
            { "required": ["alert"], "not": { "required": ["range"] } },
            { "required": ["range"], "not": { "required": ["alert"] } },
        ],
    })
}

pub(crate) fn openapi() -> Value {
    json!({
        "type": "object",
        "required": ["openapi", "info", "paths"],
        "properties": { "openapi": { "type": "string" } },
    })
}

// ---------------------------------------------------------------------------------------------
// Topology (`xl_core::topology`, `topology.rs`). The entries' structs have
// `deny_unknown_fields`, and their `Option` fields take `null` as absent (but for a secret in
// an update: absent keeps the stored one, `null` removes it). What the schemas
// cannot say (a name of only spaces is refused by its `\S` pattern; a polygon's crossing
// edges, a URL's host, references between entries) the store checks and answers 400 naming
// the field.

fn entry_kind() -> Value {
    one_of_names(xl_core::topology::Kind::ALL.iter().map(|k| k.as_str()))
}

/// A display name: 1 to 64 characters, not only spaces.
fn display_name() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": xl_core::topology::MAX_NAME_CHARS,
        "pattern": "\\S",
    })
}

fn flag() -> Value {
    json!({ "type": "boolean" })
}

/// `StreamSource`: `{"kind": "rtsp", "url"}` (no credentials in it) or `{"kind": "file", "path"}`.
fn stream_source() -> Value {
    let max = xl_core::topology::MAX_SOURCE_BYTES;
    nullable(json!({
        "type": "object",
        "anyOf": [
            {
                "type": "object",
                "required": ["kind", "url"],
                "additionalProperties": false,
                "properties": {
                    "kind": { "type": "string", "enum": ["rtsp"] },
                    "url": { "type": "string", "maxLength": max, "pattern": "^rtsps?://[^/@]+(/|$)" },
                },
            },
            {
                "type": "object",
                "required": ["kind", "path"],
                "additionalProperties": false,
                "properties": {
                    "kind": { "type": "string", "enum": ["file"] },
                    "path": { "type": "string", "minLength": 1, "maxLength": max, "pattern": "\\S" },
                },
            },
        ],
    }))
}

/// `xl_core::zone::Zone`.
fn zone() -> Value {
    let fraction = json!({ "type": "number", "minimum": 0, "maximum": 1 });
    let secs = json!({ "type": "number", "minimum": 0, "maximum": 604_800 });
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    json!({
        "type": "object",
        "required": ["id", "polygon"],
        "additionalProperties": false,
        "properties": {
            "id": id(),
            "name": nullable(json!({
                "type": "string",
                "minLength": 1,
                "maxLength": xl_core::topology::MAX_NAME_CHARS,
                "pattern": "\\S",
                "description": "display name, shown instead of the id; spaces at either end are trimmed",
            })),
            "polygon": {
                "type": "array",
                "minItems": 3,
                "description": "corners [x, y], fractions of the image from its top left; edges must not cross",
                "items": { "type": "array", "minItems": 2, "items": fraction, "description": "[x, y]" },
            },
            "classes": {
                "type": "array",
                "minItems": 1,
                "items": one_of_names(["person", "face", "vehicle", "other"]),
            },
            "schedule": array(json!({
                "type": "object",
                "required": ["days", "start", "end"],
                "additionalProperties": false,
                "properties": {
                    "days": { "type": "array", "minItems": 1, "items": one_of_names(days) },
                    "start": { "type": "string", "description": "local time, HH:MM or HH:MM:SS" },
                    "end": { "type": "string", "description": "local time, HH:MM or HH:MM:SS" },
                },
            })),
            "dwell_limit_secs": nullable(secs.clone()),
            "count_limit": nullable(json!({ "type": "integer", "minimum": 0 })),
            "count_limit_secs": secs.clone(),
            "leave_after_secs": secs,
        },
    })
}

/// `xl_core::camera::CameraDetect`.
fn camera_detect() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "enabled": flag(),
            "rate": nullable(json!({
                "type": "number",
                "minimum": 0,
                "description": "detections a second: 0 (no limit) or at least 0.001",
            })),
            "motion": flag(),
            "faces": one_of_names(["off", "persons", "frame"]),
            "embed": nullable(flag()),
        },
    })
}

/// One kind's entry: its fields (the secret among them), which are required, and the secret's
/// field (never in an answer).
struct EntrySchema {
    properties: Value,
    required: &'static [&'static str],
    secret: Option<&'static str>,
}

fn entry_schema(kind: xl_core::topology::Kind) -> EntrySchema {
    use xl_core::topology::Kind;
    let opt_id = || nullable(id());
    match kind {
        Kind::Station => EntrySchema {
            properties: json!({ "id": id(), "name": display_name(), "disabled": flag() }),
            required: &["id", "name"],
            secret: None,
        },
        Kind::Community => EntrySchema {
            properties: json!({
                "id": id(), "name": display_name(), "station": opt_id(), "disabled": flag(),
            }),
            required: &["id", "name"],
            secret: None,
        },
        Kind::Grid => EntrySchema {
            properties: json!({
                "id": id(), "community": id(), "name": display_name(), "disabled": flag(),
            }),
            required: &["id", "community", "name"],
            secret: None,
        },
        Kind::Camera => EntrySchema {
            properties: json!({
                "id": id(),
                "name": display_name(),
                "community": id(),
                "grid": opt_id(),
                "network": one_of_names(["community", "skynet", "private"]),
                "main": stream_source(),
                "sub": stream_source(),
                "username": nullable(json!({
                    "type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[^:]*$",
                })),
                "password": nullable(json!({
                    "type": "string",
                    "minLength": 1,
                    "maxLength": xl_core::topology::MAX_SECRET_CHARS,
                    "description": "write-only: never in an answer (meta.secret_set says whether one is stored); in an update, left out keeps the stored one, null removes it, a string replaces it",
                })),
                "transport": nullable(one_of_names(["tcp", "udp"])),
                "decode": one_of_names(
                    xl_core::camera::DecodePolicy::ALL.iter().map(|p| p.as_str())
                ),
                "detect": camera_detect(),
                "zones": array(zone()),
                "disabled": flag(),
            }),
            required: &["id", "name", "community"],
            secret: Some("password"),
        },
        Kind::Gate => EntrySchema {
            properties: json!({
                "id": id(),
                "name": display_name(),
                "community": id(),
                "grid": opt_id(),
                "firmware": {
                    "type": "string", "minLength": 1, "maxLength": 64,
                    "pattern": "^[A-Za-z0-9._-]+$",
                },
                "device": nullable(json!({ "type": "string", "minLength": 1, "maxLength": 128 })),
                "camera": opt_id(),
                "transport": nullable(one_of_names(["mqtt", "http-push", "both"])),
                "push_secret": nullable(json!({
                    "type": "string",
                    "minLength": xl_core::topology::MIN_PUSH_SECRET_CHARS,
                    "maxLength": xl_core::topology::MAX_SECRET_CHARS,
                    "description": "write-only: never in an answer (meta.secret_set says whether one is stored); in an update, left out keeps the stored one, null removes it, a string replaces it",
                })),
                "push_allow_from": {
                    "type": "array",
                    "items": { "type": "string", "description": "an address or a network: 10.0.0.5, 10.0.0.0/24" },
                },
                "timezone": nullable(json!({
                    "type": "string", "minLength": 1, "maxLength": 64,
                    "pattern": "^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$",
                })),
                "offline_after_secs": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": xl_core::topology::MAX_OFFLINE_AFTER_SECS,
                },
                "disabled": flag(),
            }),
            required: &["id", "name", "community", "firmware"],
            secret: Some("push_secret"),
        },
    }
}

/// `POST /api/v1/topology/{kind}`: the whole entry (`id` required).
pub(crate) fn entry_create(kind: xl_core::topology::Kind) -> Value {
    let e = entry_schema(kind);
    json!({
        "type": "object",
        "required": e.required,
        "additionalProperties": false,
        "properties": e.properties,
    })
}

/// `PUT /api/v1/topology/{kind}/{id}`: the whole entry; `id` may be left out (the path's).
pub(crate) fn entry_update(kind: xl_core::topology::Kind) -> Value {
    let e = entry_schema(kind);
    let required: Vec<&str> = e.required.iter().copied().filter(|f| *f != "id").collect();
    json!({
        "type": "object",
        "required": required,
        "additionalProperties": false,
        "properties": e.properties,
    })
}

/// `topology::item`: `{"kind", "entry", "meta"}`; the entry without its secret, every field
/// present (`null` where unset).
pub(crate) fn topology_item(kind: xl_core::topology::Kind) -> Value {
    let e = entry_schema(kind);
    let mut properties = e.properties;
    if let (Some(secret), Some(p)) = (e.secret, properties.as_object_mut()) {
        p.remove(secret);
    }
    let required: Vec<&String> = properties
        .as_object()
        .map_or(vec![], |p| p.keys().collect());
    json!({
        "type": "object",
        "required": ["kind", "entry", "meta"],
        "properties": {
            "kind": { "type": "string", "enum": [kind.as_str()] },
            "entry": {
                "type": "object",
                "required": required,
                // No secret, ever.
                "additionalProperties": false,
                "properties": properties,
            },
            "meta": {
                "type": "object",
                "required": ["origin", "revision", "created_at", "updated_at", "secret_set"],
                "properties": {
                    "origin": one_of_names(["config", "store"]),
                    "revision": { "type": "integer", "minimum": 1 },
                    "created_at": time(),
                    "updated_at": time(),
                    "secret_set": flag(),
                },
            },
        },
    })
}

pub(crate) fn topology_items(kind: xl_core::topology::Kind) -> Value {
    array(topology_item(kind))
}

/// `GET /api/v1/topology`.
pub(crate) fn topology() -> Value {
    use xl_core::topology::Kind;
    json!({
        "type": "object",
        "required": ["stations", "communities", "grids", "cameras", "gates"],
        "properties": {
            "stations": topology_items(Kind::Station),
            "communities": topology_items(Kind::Community),
            "grids": topology_items(Kind::Grid),
            "cameras": topology_items(Kind::Camera),
            "gates": topology_items(Kind::Gate),
        },
    })
}

/// `POST /api/v1/cameras/probe` (`topology::ProbeBody`).
pub(crate) fn probe_request() -> Value {
    json!({
        "type": "object",
        "required": ["url"],
        "additionalProperties": false,
        "properties": {
            "url": {
                "type": "string",
                "maxLength": xl_core::topology::MAX_SOURCE_BYTES,
                "pattern": "^rtsps?://[^/@]+(/|$)",
                "description": "rtsp://host[:port]/path, without credentials",
            },
            "username": nullable(json!({
                "type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[^:]*$",
            })),
            "password": nullable(json!({
                "type": "string", "minLength": 1, "maxLength": xl_core::topology::MAX_SECRET_CHARS,
            })),
        },
    })
}

pub(crate) fn probe_response() -> Value {
    json!({
        "type": "object",
        "required": ["codec", "width", "height", "fps", "gop_frames", "gop_secs", "snapshot"],
        "properties": {
            "codec": one_of_names(["h264", "h265"]),
            "width": count(),
            "height": count(),
            "fps": nullable(json!({ "type": "number", "minimum": 0 })),
            "gop_frames": nullable(count()),
            "gop_secs": nullable(json!({ "type": "number", "minimum": 0 })),
            "snapshot": { "type": "string", "pattern": "^data:image/jpeg;base64,", "description": "the first key frame, decoded" },
        },
    })
}

/// `POST /api/v1/cameras/import`'s answer.
pub(crate) fn import_response() -> Value {
    json!({
        "type": "object",
        "required": ["created", "ids"],
        "properties": { "created": count(), "ids": array(id()) },
    })
}
