//! Error kinds shared by every crate. Each library error answers `kind()`; the API maps a kind to
//! an HTTP status in one place and loops use it to choose whether to back off and retry.

use serde::Serialize;

/// What sort of failure an error is, independent of which crate raised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input (config, payload, request, stream) is wrong; retrying the same input won't help.
    InvalidInput,
    /// The thing asked for does not exist.
    NotFound,
    /// Credentials are missing or wrong.
    Unauthenticated,
    /// Credentials are fine but do not allow this.
    PermissionDenied,
    /// A peer or resource is temporarily unreachable; retry with backoff.
    Unavailable,
    /// The request conflicts with the current state: a change made against a revision that
    /// is no longer current, or the removal of something still referred to. Read again and
    /// redo the change.
    Conflict,
    /// A change that must say which revision it was made against (HTTP `If-Match`) did not.
    PreconditionRequired,
    /// A device the hub was asked to reach for the caller (a camera being probed) could not
    /// be reached or answered wrongly. Unlike [`ErrorKind::Unavailable`], the message is about
    /// that device, says why, and is meant for the caller.
    Upstream,
    /// A bug or an unexpected state in the hub itself.
    Internal,
}

impl ErrorKind {
    /// Whether retrying later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Unavailable)
    }
}
