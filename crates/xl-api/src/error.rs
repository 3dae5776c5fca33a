use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use xl_core::ErrorKind;
use xl_core::topology::{Kind, TopologyError};

/// Every API error, as one JSON shape: `{"error": {"code": "...", "message": "..."}}`, with
/// `field` and `entry` in `error` when the error is about one (a 400 naming `sub.url` of
/// camera `cam-1`), `rows` beside `error` for a refused import, and `gaps` beside it for a
/// time range with no recording. Internal and unavailable
/// errors are logged here, once, with their detail, and answered with a generic message and
/// an `id` that names the log line: a client never sees a database's error text or a file
/// path.
#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    /// What the error is about, when it names a field, an entry or rows.
    pub detail: Option<Box<ErrorDetail>>,
}

/// The parts of the request an error is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErrorDetail {
    /// The field, relative to the entry or body (`sub.url`, `zones[2].polygon`, `If-Match`).
    pub field: Option<String>,
    /// The topology entry.
    pub entry: Option<EntryRef>,
    /// Each refused row of an import.
    pub rows: Vec<RowError>,
    /// Where a recording has no video, for a range asked of it that has none.
    pub gaps: Vec<crate::backend::Span>,
}

/// A topology entry named by an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryRef {
    pub kind: Kind,
    pub id: String,
}

/// Why one row of an import was refused. `row` counts data rows from 1 (the header is not
/// one); `field` is the column, when one is to blame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub row: usize,
    pub field: Option<String>,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            detail: None,
        }
    }

    fn detail_mut(&mut self) -> &mut ErrorDetail {
        self.detail.get_or_insert_with(Box::default)
    }

    /// The same error, naming the field it is about.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.detail_mut().field = Some(field.into());
        self
    }

    /// The same error, naming the topology entry it is about.
    pub fn with_entry(mut self, kind: Kind, id: impl Into<String>) -> Self {
        self.detail_mut().entry = Some(EntryRef {
            kind,
            id: id.into(),
        });
        self
    }

    /// The same error, with the refused rows of an import.
    pub fn with_rows(mut self, rows: Vec<RowError>) -> Self {
        self.detail_mut().rows = rows;
        self
    }

    /// The same error, listing where the range asked for has no recording.
    pub fn with_gaps(mut self, gaps: Vec<crate::backend::Span>) -> Self {
        self.detail_mut().gaps = gaps;
        self
    }

    /// The field named, if any.
    pub fn field(&self) -> Option<&str> {
        self.detail.as_ref().and_then(|d| d.field.as_deref())
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
    #[serde(skip_serializing_if = "<[RowError]>::is_empty")]
    rows: &'a [RowError],
    #[serde(skip_serializing_if = "<[crate::backend::Span]>::is_empty")]
    gaps: &'a [crate::backend::Span],
}

#[derive(Serialize)]
struct Inner<'a> {
    code: ErrorKind,
    message: &'a str,
    /// The id of an internal or unavailable error in the hub's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entry: Option<&'a EntryRef>,
}

/// A topology entry refused: 400 naming the entry and the field, or 409 for an entry still
/// referred to (the message names the referrer).
impl From<TopologyError> for ApiError {
    fn from(e: TopologyError) -> Self {
        let kind = match e {
            TopologyError::InUse { .. } => ErrorKind::Conflict,
            _ => e.kind(),
        };
        let (entry_kind, id) = e.entry();
        let mut err = ApiError::new(kind, e.to_string()).with_entry(entry_kind, id);
        if let Some(field) = e.field() {
            err = err.with_field(field);
        }
        err
    }
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
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
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
        // Only errors about the request name its parts; an internal one says nothing more.
        let detail = self.detail.filter(|_| id.is_none());
        let detail = detail.as_deref();
        let body = Json(Body {
            error: Inner {
                code: self.kind,
                message: &message,
                id: id.as_deref(),
                field: detail.and_then(|d| d.field.as_deref()),
                entry: detail.and_then(|d| d.entry.as_ref()),
            },
            rows: detail.map_or(&[], |d| &d.rows),
            gaps: detail.map_or(&[], |d| &d.gaps),
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

    #[tokio::test]
    async fn entry_errors_name_the_entry_and_the_field() {
        let e = TopologyError::InvalidField {
            kind: Kind::Camera,
            id: "cam-1".into(),
            field: "sub.url".into(),
            reason: "has no host".into(),
        };
        let (status, body) = body_of(e.into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["field"], "sub.url");
        assert_eq!(body["error"]["entry"]["kind"], "camera");
        assert_eq!(body["error"]["entry"]["id"], "cam-1");
        assert!(body.get("rows").is_none(), "{body}");

        let in_use = TopologyError::InUse {
            kind: Kind::Community,
            id: "xingfu".into(),
            by: xl_core::topology::EntryId::Camera(xl_core::CameraId::new("cam-1").unwrap()),
            field: "community",
        };
        let (status, body) = body_of(in_use.into()).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(
            body["error"]["message"].as_str().unwrap().contains("cam-1"),
            "{body}"
        );

        let rows = vec![RowError {
            row: 3,
            field: Some("main_url".into()),
            message: "bad".into(),
        }];
        let (status, body) = body_of(ApiError::invalid("refused").with_rows(rows)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["rows"][0]["row"], 3);
        assert_eq!(body["rows"][0]["field"], "main_url");

        // An internal error never carries what it was about.
        let (_, body) = body_of(ApiError::internal("x").with_field("secret_path")).await;
        assert!(body["error"].get("field").is_none(), "{body}");
    }
}
