use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use xl_core::ErrorKind;

/// Every API error, as one JSON shape: `{"error": {"code": "...", "message": "..."}}`.
/// Internal and unavailable errors are logged here, once, with their detail, and answered with
/// a generic message and an `id` that names the log line: a client never sees a database's
/// error text or a file path.
#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::InvalidInput, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::Internal, message)
    }
}

/// 429 in the same JSON shape, code `rate_limited` (no [`ErrorKind`] for it: only the login
/// limiter answers it), with `Retry-After`.
pub(crate) fn rate_limited(retry_after_secs: u64) -> Response {
    retry_later(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many failed logins; try again later",
        retry_after_secs,
    )
}

/// 503, code `unavailable`, with `Retry-After`: the hub is verifying as many passwords as it
/// allows at once (each takes about 19 MiB and a core for a moment).
pub(crate) fn logins_busy(retry_after_secs: u64) -> Response {
    retry_later(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "too many logins at once; try again in a moment",
        retry_after_secs,
    )
}

fn retry_later(status: StatusCode, code: &str, message: &str, retry_after_secs: u64) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        error: Inner<'a>,
    }
    #[derive(Serialize)]
    struct Inner<'a> {
        code: &'a str,
        message: &'a str,
    }
    let body = Json(Body {
        error: Inner { code, message },
    });
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(retry_after_secs.max(1)),
    );
    resp
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: ErrorKind,
    message: &'a str,
    /// The id of an internal or unavailable error in the hub's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
}

/// Eight random bytes in hex: enough to find one failure in a day's log.
fn incident_id() -> String {
    use std::fmt::Write;
    rand::random::<[u8; 8]>()
        .iter()
        .fold(String::with_capacity(16), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.kind {
            ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        // What went wrong inside (a database's error text, a file path) is for the log, once,
        // under an id the client can quote; the client hears only that it happened.
        let (message, id) = match self.kind {
            ErrorKind::Internal | ErrorKind::Unavailable => {
                let id = incident_id();
                tracing::error!(error_id = %id, kind = ?self.kind, error = %self.message, "request failed");
                let said = if self.kind == ErrorKind::Internal {
                    "internal error"
                } else {
                    "temporarily unavailable; try again"
                };
                (format!("{said} (id {id})"), Some(id))
            }
            _ => (self.message, None),
        };
        let body = Json(Body {
            error: Inner {
                code: self.kind,
                message: &message,
                id: id.as_deref(),
            },
        });
        let mut resp = (status, body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(e: ApiError) -> (StatusCode, serde_json::Value) {
        let resp = e.into_response();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn internal_errors_are_answered_without_their_detail() {
        let detail = "error returned from database: relation \"alerts\" does not exist at /var/lib/xueliang/hub.db";
        for kind in [ErrorKind::Internal, ErrorKind::Unavailable] {
            let (status, body) = body_of(ApiError::new(kind, detail)).await;
            assert!(status.is_server_error());
            let text = body.to_string();
            assert!(
                !text.contains("database") && !text.contains("/var/lib"),
                "{text}"
            );
            let id = body["error"]["id"].as_str().unwrap();
            assert_eq!(id.len(), 16);
            assert!(body["error"]["message"].as_str().unwrap().contains(id));
        }
        // Errors about the request itself still say what was wrong.
        let (status, body) = body_of(ApiError::invalid("`severity`: unknown value")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["message"], "`severity`: unknown value");
        assert!(body["error"].get("id").is_none());
    }
}
