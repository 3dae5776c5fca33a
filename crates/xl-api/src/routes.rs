//! The route table: every route once, with what the OpenAPI document says about it. The router
//! ([`crate::router_with_devices`]) and the document ([`crate::openapi`]) are both built from
//! [`table`], so a route cannot be served without being documented (or the reverse).

use axum::http::Method;
use axum::routing::{MethodRouter, get};
use serde_json::Value;

use crate::ApiState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// No credentials (health checks, login).
    Public,
    /// Any signed-in user (or the API token); handlers filter by the user's scope.
    User,
    /// Admins only (and the API token).
    Admin,
}

/// Where a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum In {
    Path,
    Query,
    Header,
}

#[derive(Debug, Clone)]
pub(crate) struct Param {
    pub name: &'static str,
    pub at: In,
    pub required: bool,
    pub description: &'static str,
}

pub(crate) struct Route {
    pub method: Method,
    /// The full path, axum syntax (`{id}`), which is also OpenAPI's.
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
    pub params: Vec<Param>,
    /// Whether the route takes a JSON body.
    pub json_body: bool,
    /// The body's JSON Schema ([`crate::schema`]); every route with a JSON body has one.
    pub body_schema: Option<fn() -> Value>,
    /// Whether the body may be left out.
    pub body_optional: bool,
    /// The status of a successful answer (200, 201, 204).
    pub ok_status: u16,
    /// The content type of a successful answer.
    pub produces: &'static str,
    /// The JSON Schema of a successful JSON answer.
    pub answer_schema: Option<fn() -> Value>,
    /// The content type of a body that is not JSON (`text/csv`): a string in the document.
    pub text_body: Option<&'static str>,
    /// More than the summary says (the document's `description`).
    pub description: Option<&'static str>,
    /// Error statuses beyond those the document infers (409, 428, 502...).
    pub errors: Vec<u16>,
    /// Whether the answer is served in HTTP byte ranges (`Range`: 206, 416).
    pub byte_ranges: bool,
    /// Headers of a successful answer worth documenting, with what they say.
    pub answer_headers: Vec<(&'static str, &'static str)>,
    pub handler: MethodRouter<ApiState>,
}

impl Route {
    pub fn new(
        method: Method,
        path: &'static str,
        access: Access,
        summary: &'static str,
        handler: MethodRouter<ApiState>,
    ) -> Route {
        let params = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| Param {
                name,
                at: In::Path,
                required: true,
                description: "",
            })
            .collect();
        Route {
            method,
            path,
            access,
            summary,
            params,
            json_body: false,
            body_schema: None,
            body_optional: false,
            ok_status: 200,
            produces: "application/json",
            answer_schema: None,
            text_body: None,
            description: None,
            errors: Vec::new(),
            byte_ranges: false,
            answer_headers: Vec::new(),
            handler,
        }
    }

    pub fn query(mut self, name: &'static str, description: &'static str) -> Route {
        self.params.push(Param {
            name,
            at: In::Query,
            required: false,
            description,
        });
        self
    }

    /// A query parameter without which the route answers 400.
    pub fn required_query(mut self, name: &'static str, description: &'static str) -> Route {
        self.params.push(Param {
            name,
            at: In::Query,
            required: true,
            description,
        });
        self
    }

    pub fn header(mut self, name: &'static str, description: &'static str) -> Route {
        self.params.push(Param {
            name,
            at: In::Header,
            required: false,
            description,
        });
        self
    }

    /// A JSON body, as `schema` describes it.
    pub fn body(mut self, schema: fn() -> Value) -> Route {
        self.json_body = true;
        self.body_schema = Some(schema);
        self
    }

    /// A JSON body that may be left out.
    pub fn optional_body(mut self, schema: fn() -> Value) -> Route {
        self.body_optional = true;
        self.body(schema)
    }

    /// A successful JSON answer, as `schema` describes it.
    pub fn answers(mut self, schema: fn() -> Value) -> Route {
        self.answer_schema = Some(schema);
        self
    }

    /// The status of a successful answer, when it is not 200.
    pub fn ok_status(mut self, status: u16) -> Route {
        self.ok_status = status;
        self
    }

    pub fn produces(mut self, content_type: &'static str) -> Route {
        self.produces = content_type;
        self
    }

    /// A required body of `content_type` that is not JSON (`text/csv`).
    pub fn text_body(mut self, content_type: &'static str) -> Route {
        self.text_body = Some(content_type);
        self
    }

    pub fn describe(mut self, description: &'static str) -> Route {
        self.description = Some(description);
        self
    }

    /// An error status the route may answer beyond those the document infers.
    pub fn responds(mut self, status: u16) -> Route {
        self.errors.push(status);
        self
    }

    /// The answer is served in byte ranges: the `Range` header, 206 Partial Content, and
    /// 416 for a range past the end.
    pub fn byte_ranges(mut self) -> Route {
        self.byte_ranges = true;
        self.header(
            "Range",
            "one range of bytes: `bytes=first-last`, `bytes=first-` or `bytes=-suffix_length` (206); \
             several ranges, or a header that cannot be read, get the whole body (200)",
        )
    }

    /// A header of the successful answer, documented.
    pub fn answer_header(mut self, name: &'static str, description: &'static str) -> Route {
        self.answer_headers.push((name, description));
        self
    }
}

/// Every route of the API, in document order.
pub(crate) fn table() -> Vec<Route> {
    let mut t = vec![
        Route::new(
            Method::GET,
            "/healthz",
            Access::Public,
            "Liveness",
            get(|| async { "ok\n" }),
        )
        .produces("text/plain"),
        Route::new(
            Method::GET,
            "/readyz",
            Access::Public,
            "Readiness: 503 until start-up has finished",
            get(crate::readyz),
        )
        .produces("text/plain"),
        Route::new(
            Method::GET,
            "/metrics",
            Access::Admin,
            "Prometheus metrics (every camera and gate of the hub: admins and the API token)",
            get(crate::metrics::metrics),
        )
        .produces("text/plain"),
        Route::new(
            Method::GET,
            "/api/openapi.json",
            Access::User,
            "This document",
            get(crate::openapi::serve),
        )
        .answers(crate::schema::openapi),
    ];
    t.extend(crate::auth::routes());
    t.extend(crate::cameras::routes());
    t.extend(crate::cluster::routes());
    t.extend(crate::live::routes());
    t.extend(crate::gates::routes());
    t.extend(crate::alerts::routes());
    t.extend(crate::evidence::routes());
    t.extend(crate::recordings::routes());
    t.extend(crate::users::routes());
    t.extend(crate::topology::routes());
    t
}
