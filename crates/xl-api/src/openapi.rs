//! `/api/openapi.json`: an OpenAPI 3.0 document built from the route table.

use axum::Json;
use serde_json::{Map, Value, json};

use crate::routes::{Access, In, table};

pub(crate) async fn serve() -> Json<Value> {
    Json(document())
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
                    "schema": { "type": "string" },
                })
            })
            .collect();
        let mut responses = Map::new();
        let ok = if r.produces == "application/json" {
            json!({ "description": "OK", "content": { "application/json": { "schema": {} } } })
        } else {
            json!({ "description": "OK", "content": { (r.produces): { "schema": { "type": "string" } } } })
        };
        responses.insert("200".into(), ok);
        let error = json!({ "$ref": "#/components/responses/Error" });
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
        if r.path == "/api/v1/auth/login" {
            responses.insert("429".into(), error.clone());
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
        if r.access == Access::Admin {
            op["description"] = json!("Admins only.");
        }
        if r.json_body {
            op["requestBody"] = json!({
                "required": false,
                "content": { "application/json": { "schema": { "type": "object" } } },
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
                    "content": { "application/json": { "schema": {
                        "type": "object",
                        "properties": { "error": { "type": "object", "properties": {
                            "code": { "type": "string" }, "message": { "type": "string" } } } },
                    } } },
                },
            },
        },
    })
}
