//! Bearer-token authentication. One operator token for now; users, roles and sessions replace it
//! with the dashboard (the token stays for programs such as Prometheus).

use std::fmt;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use xl_core::ErrorKind;

use crate::{ApiError, ApiState};

/// The API token. `Debug` never shows it.
pub struct ApiToken(String);

impl ApiToken {
    pub fn new(token: String) -> Self {
        ApiToken(token)
    }

    /// Compares in time independent of where the first difference is.
    fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

pub(crate) async fn require_token(
    State(state): State<ApiState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(t) if state.token.matches(t.trim()) => Ok(next.run(req).await),
        Some(_) => Err(ApiError::new(ErrorKind::Unauthenticated, "invalid token")),
        None => Err(ApiError::new(
            ErrorKind::Unauthenticated,
            "missing `Authorization: Bearer <token>` header",
        )),
    }
}
