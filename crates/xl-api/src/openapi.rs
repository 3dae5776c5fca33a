//! `/api/openapi.json`: an OpenAPI 3.0 document built from the route table.

use axum::Json;
use serde_json::{Map, Value, json};

use crate::routes::{Access, In, table};

pub(crate) async fn serve() -> Json<Value> {
    Json(document())
}

/// A parameter's schema, by its name (each name means one thing across the API).
fn param_schema(name: &str, at: In) -> Value {
    match (name, at) {
        ("limit", _) => json!({ "type": "integer", "minimum": 1, "maximum": 1000 }),
        ("before_seq", _) | ("last_event_id", _) | ("Last-Event-ID", _) => {
            json!({ "type": "integer", "minimum": 0 })
        }
        ("from" | "to" | "before", _) => json!({ "type": "string", "format": "date-time" }),
        ("If-Match", _) => json!({ "type": "string", "pattern": "^\"[0-9]+\"$" }),
        ("stream", In::Query) => json!({ "type": "string", "enum": ["main", "sub"] }),
        ("download", In::Query) => json!({ "type": "string", "enum": ["true", "false"] }),
        (_, In::Path) => json!({ "type": "string", "minLength": 1 }),
        _ => json!({ "type": "string" }),
    }
}

/// Whether answers of `content_type` are bytes rather than text.
fn is_binary(content_type: &str) -> bool {
    content_type.starts_with("image/")
        || content_type.starts_with("video/")
        || content_type == "application/zip"
}

/// The document: every route of [`table`], with its parameters, security and answers.
pub(crate) fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in table() {
        let params: Vec<Value> = r
            .params
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "in": match p.at { In::Path => "path", In::Query => "query", In::Header => "header" },
                    "required": p.required,
                    "description": p.description,
                    "schema": param_schema(p.name, p.at),
                })
            })
            .collect();
        let mut responses = Map::new();
        let ok_content = if matches!(r.ok_status, 101 | 204) {
            None
        } else if r.produces == "application/json" {
            let schema = r.answer_schema.map_or_else(|| json!({}), |f| f());
            Some(json!({ "application/json": { "schema": schema } }))
        } else if is_binary(r.produces) {
            Some(json!({ (r.produces): { "schema": { "type": "string", "format": "binary" } } }))
        } else {
            Some(json!({ (r.produces): { "schema": { "type": "string" } } }))
        };
        let described = match r.ok_status {
            101 => "Switching Protocols (a WebSocket)",
            201 => "Created",
            _ => "OK",
        };
        let headers: Map<String, Value> = r
            .answer_headers
            .iter()
            .map(|(name, description)| {
                let schema = match *name {
                    "X-Clip-Start" | "X-Clip-End" => {
                        json!({ "type": "string", "format": "date-time" })
                    }
                    "Content-Length" => json!({ "type": "integer", "minimum": 0 }),
                    _ => json!({ "type": "string" }),
                };
                let header = json!({ "description": description, "schema": schema });
                ((*name).to_owned(), header)
            })
            .collect();
        let answer = |description: &str| {
            let mut answer = json!({ "description": description });
            if let Some(content) = &ok_content {
                answer["content"] = content.clone();
            }
            if !headers.is_empty() {
                answer["headers"] = Value::Object(headers.clone());
            }
            answer
        };
        responses.insert(r.ok_status.to_string(), answer(described));
        let error = json!({ "$ref": "#/components/responses/Error" });
        if r.byte_ranges {
            responses.insert(
                "206".into(),
                answer(
                    "Partial Content: the one byte range asked for (`Content-Range` says which)",
                ),
            );
            responses.insert(
                "416".into(),
                json!({
                    "description": "Range Not Satisfiable: the range starts past the end (`Content-Range: bytes */length`)",
                    "headers": { "Content-Range": { "schema": { "type": "string" } } },
                    "content": { "application/json": { "schema": crate::schema::error() } },
                }),
            );
        }
        if !r.params.is_empty() || r.json_body {
            responses.insert("400".into(), error.clone());
        }
        if r.access != Access::Public {
            responses.insert("401".into(), error.clone());
            responses.insert("403".into(), error.clone());
        }
        if r.params.iter().any(|p| p.at == In::Path) {
            responses.insert("404".into(), error.clone());
        }
        for status in &r.errors {
            responses.insert(status.to_string(), error.clone());
        }
        if r.path == "/api/v1/auth/login" {
            responses.insert("401".into(), error.clone());
            responses.insert("429".into(), error.clone());
        }
        // The store (or, for the login, the password verifier) may be unavailable a moment;
        // `/readyz` says 503 in plain text until start-up has finished.
        match r.path {
            "/healthz" | "/metrics" => {}
            "/readyz" => {
                responses.insert(
                    "503".into(),
                    json!({ "description": "Starting", "content": { "text/plain": { "schema": { "type": "string" } } } }),
                );
            }
            _ => {
                responses.insert("503".into(), error.clone());
            }
        }
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{} {}", r.method, r.path),
            "parameters": params,
            "responses": responses,
        });
        op["security"] = match r.access {
            Access::Public => json!([]),
            Access::User | Access::Admin => {
                json!([{ "bearer": [] }, { "cookie": [], "csrf": [] }])
            }
        };
        let admins = (r.access == Access::Admin).then_some("Admins only.");
        let description: Vec<&str> = admins.into_iter().chain(r.description).collect();
        if !description.is_empty() {
            op["description"] = json!(description.join(" "));
        }
        if let Some(content_type) = r.text_body {
            op["requestBody"] = json!({
                "required": true,
                "content": { (content_type): { "schema": { "type": "string" } } },
            });
        }
        if r.json_body {
            let schema = r
                .body_schema
                .map_or_else(|| json!({ "type": "object" }), |f| f());
            op["requestBody"] = json!({
                "required": !r.body_optional,
                "content": { "application/json": { "schema": schema } },
            });
        }
        let entry = paths.entry(r.path.to_owned()).or_insert_with(|| json!({}));
        entry[r.method.as_str().to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Xueliang hub API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Errors: {\"error\": {\"code\", \"message\"}}. Sign in with POST /api/v1/auth/login; send the token as a bearer token, or use the xl_session cookie and, on requests other than GET, the X-CSRF-Token header equal to the xl_csrf cookie.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "A session token, or the hub's API token." },
                "cookie": { "type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE },
                "csrf": { "type": "apiKey", "in": "header", "name": "X-CSRF-Token", "description": "Equal to the xl_csrf cookie; required with the cookie on requests other than GET." },
            },
            "responses": {
                "Error": {
                    "description": "An error",
                    "content": { "application/json": { "schema": crate::schema::error() } },
                },
            },
        },
    })
}
