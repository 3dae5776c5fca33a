//! The request schemas of `/api/openapi.json` against the handlers: for every route with a
//! JSON body, examples valid against the declared schema are accepted by the handler (not
//! 400), and examples invalid against it are refused (400). The schemas are validated here by
//! a small validator of exactly the keywords the document uses (a test fails if it uses
//! another), so a field added to a request struct, or a limit changed, shows up as a failure.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;
use xl_core::camera::{CameraInfo, CameraNetwork, CameraRegistry, CameraStats, DecodePolicy};
use xl_core::gate_status::GateRegistry;
use xl_core::{AlertState, CameraId, CommunityId, Role};

use super::fake::{Data, Fake};
use crate::backend::{AlertView, User, UserRecord};
use crate::{ApiSettings, ApiState, ApiToken, LoginLimiter, hash_password, router};

const TOKEN: &str = "schema-test-token";
const PASSWORD: &str = "correct horse battery";

/// The keywords [`valid`] understands; `description`, `format` and `default` only annotate.
const KEYWORDS: &[&str] = &[
    "type",
    "nullable",
    "enum",
    "not",
    "anyOf",
    "properties",
    "required",
    "additionalProperties",
    "minProperties",
    "items",
    "minItems",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "format",
    "description",
];

/// Whether `v` is valid against `schema` (OpenAPI 3.0's JSON Schema subset).
fn valid(schema: &Value, v: &Value) -> bool {
    let Some(s) = schema.as_object() else {
        return true;
    };
    if v.is_null() && s.get("nullable") == Some(&json!(true)) {
        return true;
    }
    if let Some(t) = s.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            other => panic!("unknown type {other}"),
        };
        if !ok {
            return false;
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        return false;
    }
    if let Some(n) = s.get("not")
        && valid(n, v)
    {
        return false;
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array)
        && !any.iter().any(|a| valid(a, v))
    {
        return false;
    }
    if let Some(o) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        for (k, x) in o {
            match props.and_then(|p| p.get(k)) {
                Some(p) => {
                    if !valid(p, x) {
                        return false;
                    }
                }
                None => {
                    if s.get("additionalProperties") == Some(&json!(false)) {
                        return false;
                    }
                }
            }
        }
        let required = s.get("required").and_then(Value::as_array);
        if required.is_some_and(|r| r.iter().any(|k| !o.contains_key(k.as_str().unwrap()))) {
            return false;
        }
        if s.get("minProperties")
            .and_then(Value::as_u64)
            .is_some_and(|n| (o.len() as u64) < n)
        {
            return false;
        }
    }
    if let Some(a) = v.as_array() {
        if s.get("items")
            .is_some_and(|i| !a.iter().all(|x| valid(i, x)))
        {
            return false;
        }
        if s.get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|n| (a.len() as u64) < n)
        {
            return false;
        }
    }
    if let Some(text) = v.as_str() {
        let chars = text.chars().count() as u64;
        if s.get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|n| chars < n)
            || s.get("maxLength")
                .and_then(Value::as_u64)
                .is_some_and(|n| chars > n)
        {
            return false;
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str)
            && !regex::Regex::new(p).unwrap().is_match(text)
        {
            return false;
        }
    }
    if let Some(x) = v.as_f64()
        && (s
            .get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| x < m)
            || s.get("maximum")
                .and_then(Value::as_f64)
                .is_some_and(|m| x > m))
    {
        return false;
    }
    true
}

/// Every schema in `v` (a schema) uses only [`KEYWORDS`].
fn check_keywords(schema: &Value, at: &str) {
    let Some(s) = schema.as_object() else {
        panic!("{at}: a schema is not an object");
    };
    for (k, x) in s {
        assert!(
            KEYWORDS.contains(&k.as_str()),
            "{at}: keyword {k} is not validated by the tests"
        );
        match k.as_str() {
            "properties" => {
                for (name, p) in x.as_object().unwrap() {
                    check_keywords(p, &format!("{at}.{name}"));
                }
            }
            "items" | "not" => check_keywords(x, &format!("{at}/{k}")),
            "anyOf" => {
                for (i, a) in x.as_array().unwrap().iter().enumerate() {
                    check_keywords(a, &format!("{at}/anyOf/{i}"));
                }
            }
            _ => {}
        }
    }
}

/// Every `schema` of the document (request bodies, answers, parameters).
fn schemas(doc: &Value, at: String, out: &mut Vec<(String, Value)>) {
    match doc {
        Value::Object(o) => {
            for (k, v) in o {
                if k == "schema" {
                    out.push((at.clone(), v.clone()));
                } else {
                    schemas(v, format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                schemas(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_document_uses_only_keywords_the_tests_check() {
    let doc = crate::openapi::document();
    let mut all = Vec::new();
    schemas(&doc, String::new(), &mut all);
    assert!(all.len() > 50, "{}", all.len());
    for (at, s) in &all {
        check_keywords(s, at);
    }
}

#[test]
fn every_body_and_json_answer_has_a_schema() {
    for r in crate::routes::table() {
        let op = format!("{} {}", r.method, r.path);
        assert_eq!(
            r.json_body,
            r.body_schema.is_some(),
            "{op}: a JSON body without its schema"
        );
        if r.produces == "application/json" && !matches!(r.ok_status, 101 | 204) {
            assert!(
                r.answer_schema.is_some(),
                "{op}: a JSON answer without its schema"
            );
        }
        if let Some(f) = r.body_schema {
            let s = f();
            assert_eq!(s["type"], "object", "{op}");
            // Every request struct has `deny_unknown_fields`.
            assert_eq!(s["additionalProperties"], json!(false), "{op}");
        }
    }
}

fn world() -> ApiState {
    let cameras = Arc::new(CameraRegistry::default());
    let id = CameraId::new("cam-a").unwrap();
    cameras.insert(
        CameraInfo {
            id: id.clone(),
            name: "门".into(),
            community: CommunityId::new("xingfu").unwrap(),
            network: CameraNetwork::Community,
        },
        Arc::new(CameraStats::new(id, DecodePolicy::All)),
    );
    let user = |name: &str, role| UserRecord {
        user: User {
            username: name.into(),
            role,
            communities: vec![],
            stations: vec![],
        },
        password_hash: hash_password(PASSWORD).unwrap(),
        disabled: false,
        created_at: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
    };
    let alert = super::dashboard::alert("al-1", "xingfu", &[Role::Duty], AlertState::Open, 10);
    let data = Data {
        users: vec![user("admin1", Role::Admin), user("duty1", Role::Duty)],
        alerts: vec![AlertView {
            alert,
            history: vec![],
            snapshots: vec![],
        }],
        topology: {
            // One station, for the users' `stations`.
            let mut t = xl_core::topology::Topology::default();
            let id = xl_core::StationId::new("chengguan").unwrap();
            let name = "城关派出所".to_owned();
            let station = xl_core::topology::Station {
                id: id.clone(),
                name,
                disabled: false,
            };
            t.stations.insert(id, station);
            t
        },
        export: Some(super::fake::export_file(b"PK\x03\x04")),
        ..Data::default()
    };
    ApiState {
        cameras,
        gates: Arc::new(GateRegistry::default()),
        token: Arc::new(ApiToken::new(TOKEN.into())),
        ready: Arc::new(AtomicBool::new(true)),
        extra_metrics: vec![],
        backend: Arc::new(Fake::new(data)),
        settings: ApiSettings::default(),
        login_limiter: Arc::new(LoginLimiter::default()),
        looks: Arc::default(),
    }
}

/// The status of `method uri` with `body` (none when `None`), as the API token, from a new
/// address each time (the login limiter does not come into it).
async fn status(state: &ApiState, method: Method, uri: &str, body: Option<&Value>) -> StatusCode {
    use std::sync::atomic::{AtomicU32, Ordering};
    static PEER: AtomicU32 = AtomicU32::new(1);
    let n = PEER.fetch_add(1, Ordering::Relaxed);
    let peer: SocketAddr = format!("10.{}.{}.{}:5000", (n >> 16) & 255, (n >> 8) & 255, n & 255)
        .parse()
        .unwrap();
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    let body = match body {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let mut req = req.body(body).unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    router(state.clone()).oneshot(req).await.unwrap().status()
}

/// The declared body schema of `method path`.
fn body_schema(method: &str, path: &str) -> Value {
    let doc = crate::openapi::document();
    let s = doc["paths"][path][method.to_ascii_lowercase()]["requestBody"]["content"]
        ["application/json"]["schema"]
        .clone();
    assert!(s.is_object(), "{method} {path} has no body schema");
    s
}

/// Each of `good` is valid against the schema and not refused as bad input (`fresh` gives
/// each its own world, for actions that change state); each of `bad` is invalid and 400.
async fn holds(method: Method, path: &str, uri: &str, good: &[Value], bad: &[Value], fresh: bool) {
    let schema = body_schema(method.as_str(), path);
    let shared = world();
    for v in good {
        assert!(
            valid(&schema, v),
            "{method} {path}: {v} should be valid against {schema}"
        );
        let state = if fresh { world() } else { shared.clone() };
        let got = status(&state, method.clone(), uri, Some(v)).await;
        assert!(
            got.is_success() || got == StatusCode::UNAUTHORIZED,
            "{method} {uri}: {v} is valid against the schema but answered {got}"
        );
    }
    for v in bad {
        assert!(
            !valid(&schema, v),
            "{method} {path}: {v} should be invalid against {schema}"
        );
        let got = status(&shared, method.clone(), uri, Some(v)).await;
        assert_eq!(
            got,
            StatusCode::BAD_REQUEST,
            "{method} {uri}: {v} is invalid against the schema"
        );
    }
}

#[tokio::test]
async fn login_schema_matches_the_handler() {
    holds(
        Method::POST,
        "/api/v1/auth/login",
        "/api/v1/auth/login",
        &[
            json!({"username": "admin1", "password": PASSWORD}),
            // Well formed, wrong: 401, not 400.
            json!({"username": "nobody", "password": "x"}),
            json!({"username": "", "password": ""}),
        ],
        &[
            json!({}),
            json!({"username": "admin1"}),
            json!({"password": PASSWORD}),
            json!({"username": 1, "password": PASSWORD}),
            json!({"username": "admin1", "password": null}),
            json!({"username": "admin1", "password": PASSWORD, "remember": true}),
            json!([]),
        ],
        false,
    )
    .await;
}

#[tokio::test]
async fn add_user_schema_matches_the_handler() {
    let long = "a".repeat(65);
    holds(
        Method::POST,
        "/api/v1/users",
        "/api/v1/users",
        &[
            json!({"username": "new.user@x", "password": "0123456789", "role": "duty"}),
            json!({"username": "p1", "password": "0123456789", "role": "property", "communities": ["xingfu"]}),
            json!({"username": "a2", "password": "0123456789", "role": "admin", "communities": []}),
            json!({"username": "police-2", "password": "0123456789", "role": "police"}),
            json!({"username": "police-3", "password": "0123456789", "role": "police", "stations": ["chengguan"]}),
            json!({"username": "duty-3", "password": "0123456789", "role": "duty", "stations": []}),
            json!({"username": "a3", "password": "0123456789", "role": "admin", "stations": []}),
        ],
        &[
            json!({}),
            json!({"username": "p2", "password": "0123456789", "role": "property"}),
            json!({"username": "p3", "password": "0123456789", "role": "property", "communities": []}),
            json!({"username": "system", "password": "0123456789", "role": "duty"}),
            json!({"username": "api-token", "password": "0123456789", "role": "duty"}),
            json!({"username": "two words", "password": "0123456789", "role": "duty"}),
            json!({"username": "", "password": "0123456789", "role": "duty"}),
            json!({"username": long, "password": "0123456789", "role": "duty"}),
            json!({"username": "u3", "password": "012345678", "role": "duty"}),
            json!({"username": "u4", "password": "0".repeat(1025), "role": "duty"}),
            json!({"username": "u5", "password": "0123456789", "role": "root"}),
            json!({"username": "u6", "password": "0123456789", "role": "duty", "communities": ["bad id"]}),
            json!({"username": "u7", "password": "0123456789", "role": "duty", "disabled": false}),
            json!({"username": "u8", "password": "0123456789"}),
            json!({"username": "u9", "password": "0123456789", "role": "admin", "stations": ["chengguan"]}),
            json!({"username": "u10", "password": "0123456789", "role": "property", "communities": ["xingfu"], "stations": ["chengguan"]}),
            json!({"username": "u11", "password": "0123456789", "role": "duty", "stations": ["bad id"]}),
            json!({"username": "u12", "password": "0123456789", "role": "duty", "stations": "chengguan"}),
        ],
        false,
    )
    .await;
}

#[tokio::test]
async fn update_user_schema_matches_the_handler() {
    holds(
        Method::PATCH,
        "/api/v1/users/{username}",
        "/api/v1/users/duty1",
        &[
            json!({"disabled": false}),
            json!({"role": "police"}),
            json!({"communities": []}),
            json!({"password": "0123456789"}),
            // In order, on one user: a property user may not keep stations.
            json!({"stations": ["chengguan"]}),
            json!({"stations": []}),
            json!({"role": "property", "communities": ["xingfu"]}),
        ],
        &[
            json!({}),
            json!({"role": "root"}),
            json!({"disabled": "yes"}),
            json!({"password": "short"}),
            json!({"communities": ["bad id"]}),
            json!({"stations": ["bad id"]}),
            json!({"username": "other"}),
        ],
        false,
    )
    .await;
}

#[tokio::test]
async fn decode_policy_schema_matches_the_handler() {
    holds(
        Method::PUT,
        "/api/v1/cameras/{id}/decode-policy",
        "/api/v1/cameras/cam-a/decode-policy",
        &[
            json!({"decode_policy": "all"}),
            json!({"decode_policy": "skip-non-reference"}),
            json!({"decode_policy": "key-frames"}),
        ],
        &[
            json!({}),
            json!({"decode_policy": "fast"}),
            json!({"decode_policy": 1}),
            json!({"decode_policy": "all", "camera": "cam-a"}),
        ],
        false,
    )
    .await;
}

#[tokio::test]
async fn alert_action_schemas_match_the_handlers() {
    let too_long = "x".repeat(crate::alerts::MAX_NOTE_CHARS + 1);
    for action in ["acknowledge", "escalate", "resolve"] {
        let path = format!("/api/v1/alerts/{{id}}/{action}");
        let uri = format!("/api/v1/alerts/al-1/{action}");
        holds(
            Method::POST,
            &path,
            &uri,
            &[
                json!({}),
                json!({"note": null}),
                json!({"note": "on my way"}),
            ],
            &[
                json!({"note": 1}),
                json!({"note": too_long}),
                json!({"why": "x"}),
            ],
            true,
        )
        .await;
        // The body may be left out.
        let doc = crate::openapi::document();
        assert_eq!(
            doc["paths"][&path]["post"]["requestBody"]["required"],
            false
        );
        assert!(
            status(&world(), Method::POST, &uri, None)
                .await
                .is_success()
        );
    }
    holds(
        Method::POST,
        "/api/v1/alerts/{id}/note",
        "/api/v1/alerts/al-1/note",
        &[json!({"note": "called the property office"})],
        &[
            json!({}),
            json!({"note": null}),
            json!({"note": ""}),
            json!({"note": "   "}),
            json!({"note": too_long}),
            json!({"note": "x", "extra": 1}),
        ],
        false,
    )
    .await;
}

#[tokio::test]
async fn export_schema_matches_the_handler() {
    let range = |extra: Value| {
        let mut r = json!({"camera": "cam-a", "from": "2027-01-15T08:00:00Z", "to": "2027-01-15T08:10:00Z"});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        json!({ "range": r })
    };
    holds(
        Method::POST,
        "/api/v1/exports",
        "/api/v1/exports",
        &[
            json!({"alert": "al-1"}),
            range(json!({})),
            range(json!({"stream": "sub"})),
            range(json!({"stream": null})),
        ],
        &[
            json!({}),
            json!([]),
            json!({"alert": 1}),
            json!({"alert": "bad id"}),
            json!({"alert": "al-1", "range": range(json!({}))["range"]}),
            json!({"note": "x"}),
            json!({"range": {"camera": "cam-a", "from": "2027-01-15T08:00:00Z"}}),
            range(json!({"stream": "side"})),
            range(json!({"camera": "bad id"})),
            range(json!({"why": "court"})),
        ],
        false,
    )
    .await;
}

/// A zone's display name: what the camera schema allows the handler takes (trimmed; absent
/// or null is none), and what it refuses is 400.
#[tokio::test]
async fn zone_name_schema_matches_the_handler() {
    let camera = |name: Option<Value>| {
        let mut zone = json!({"id": "plaza", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]});
        if let Some(n) = name {
            zone["name"] = n;
        }
        json!({
            "id": "cam-z", "name": "北门", "community": "xingfu",
            "sub": {"kind": "rtsp", "url": "rtsp://10.0.0.9/sub"},
            "zones": [zone],
        })
    };
    holds(
        Method::POST,
        "/api/v1/topology/cameras",
        "/api/v1/topology/cameras",
        &[
            camera(None),
            camera(Some(Value::Null)),
            camera(Some(json!("北门广场"))),
            camera(Some(json!(" 北门广场 "))),
            camera(Some(json!("广".repeat(xl_core::topology::MAX_NAME_CHARS)))),
        ],
        &[
            camera(Some(json!(""))),
            camera(Some(json!("   "))),
            camera(Some(json!(
                "广".repeat(xl_core::topology::MAX_NAME_CHARS + 1)
            ))),
            camera(Some(json!(7))),
        ],
        true,
    )
    .await;
}

#[test]
fn the_validator_itself_refuses_what_it_should() {
    let s = crate::schema::add_user_request();
    assert!(valid(
        &s,
        &json!({"username": "a", "password": "0123456789", "role": "duty"})
    ));
    assert!(!valid(
        &s,
        &json!({"username": "a", "password": "0123456789", "role": "duty", "x": 1})
    ));
    assert!(!valid(&json!({"type": "integer", "minimum": 1}), &json!(0)));
    assert!(!valid(&json!({"type": "integer"}), &json!(1.5)));
    assert!(valid(
        &json!({"type": "string", "nullable": true}),
        &json!(null)
    ));
    assert!(!valid(&json!({"type": "string"}), &json!(null)));
}
