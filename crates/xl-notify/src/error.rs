//! The publishers' one error type. URLs in it are redacted ([`crate::redact_url`]); secrets
//! never appear.

use xl_core::ErrorKind;

use crate::OutboxError;

/// Why a publisher could not start or could not deliver.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The configuration is wrong; `key` is the key path (`webhooks[duty].url`).
    #[error("config `{key}`: {message}")]
    Config { key: String, message: String },
    /// The request did not complete (connect, TLS, timeout, body).
    #[error("webhook {webhook} ({url}): request failed: {message}")]
    Request {
        webhook: String,
        url: String,
        message: String,
        timeout: bool,
    },
    /// The server answered with a non-success HTTP status.
    #[error("webhook {webhook} ({url}) answered HTTP {status}: {body}")]
    Status {
        webhook: String,
        url: String,
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// DingTalk or WeCom answered HTTP 200 with a non-zero `errcode`.
    #[error("webhook {webhook} ({url}) refused the message: errcode {errcode}: {errmsg}")]
    Refused {
        webhook: String,
        url: String,
        errcode: i64,
        errmsg: String,
        /// The code means "too many messages": retry later.
        rate_limited: bool,
    },
    /// DingTalk or WeCom answered HTTP 200 without the `{"errcode":..}` JSON they send.
    #[error("webhook {webhook} ({url}) answered HTTP 200 without an errcode: {body}")]
    BadResponse {
        webhook: String,
        url: String,
        body: String,
    },
    /// The MQTT client refused a request (its queue is full or closed).
    #[error("MQTT out ({broker}): {message}")]
    Mqtt { broker: String, message: String },
    /// A NATS request of JetStream out failed (`op` says which: "connecting", "publishing
    /// seq 12 on xl.alerts.xingfu.gate_forced_open"); `urls` have no credentials.
    #[error("JetStream out ({urls}): {op}: {message}")]
    Nats {
        urls: String,
        op: String,
        message: String,
    },
    /// The outbox (the store) failed.
    #[error("outbox: {0}")]
    Outbox(#[from] OutboxError),
    /// A payload could not be encoded as JSON.
    #[error("cannot encode {what} as JSON: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
}

impl NotifyError {
    /// What sort of failure it is; [`ErrorKind::is_transient`] ones are retried forever with
    /// backoff, the others count as permanent (see [`crate::webhook`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            NotifyError::Config { .. } => ErrorKind::InvalidInput,
            NotifyError::Request { .. } => ErrorKind::Unavailable,
            NotifyError::Status { status, .. } => match status {
                408 | 429 | 500..=599 => ErrorKind::Unavailable,
                401 => ErrorKind::Unauthenticated,
                403 => ErrorKind::PermissionDenied,
                404 | 410 => ErrorKind::NotFound,
                _ => ErrorKind::InvalidInput,
            },
            NotifyError::Refused { rate_limited, .. } => {
                if *rate_limited {
                    ErrorKind::Unavailable
                } else {
                    ErrorKind::InvalidInput
                }
            }
            NotifyError::BadResponse { .. } => ErrorKind::InvalidInput,
            NotifyError::Mqtt { .. } | NotifyError::Nats { .. } => ErrorKind::Unavailable,
            NotifyError::Outbox(e) => e.kind(),
            NotifyError::Encode { .. } => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> NotifyError {
        NotifyError::Status {
            webhook: "w".into(),
            url: "https://x/***".into(),
            status,
            body: String::new(),
        }
    }

    #[test]
    fn http_statuses_map_to_transient_or_permanent() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(status(s).kind().is_transient(), "{s}");
        }
        for s in [300, 400, 401, 403, 404, 405, 410, 413, 422] {
            assert!(!status(s).kind().is_transient(), "{s}");
        }
        assert_eq!(status(404).kind(), ErrorKind::NotFound);
        assert_eq!(status(401).kind(), ErrorKind::Unauthenticated);
    }
}
