use xl_core::ErrorKind;

/// An error from the NATS client, boxed: async-nats has one error type per operation.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the cluster could not be joined or read.
///
/// The lease loop itself never fails: it logs, keeps what it can renew and drops what it
/// cannot (fencing), and retries every `renew_every` until shutdown.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A [`crate::ClusterConfig`] field is wrong (node id, weight, durations, URLs, prefix),
    /// or the buckets already exist with settings this node does not share.
    #[error("cluster config: {0}")]
    BadConfig(String),
    /// A lease key part (a camera, gate or task id) that cannot name a lease.
    #[error("lease key {key:?}: {reason}")]
    BadKey { key: String, reason: &'static str },
    /// No NATS server of `urls` answered (credentials stripped from the URLs).
    #[error("cannot connect to NATS at {urls}: {source}")]
    Unreachable {
        urls: String,
        #[source]
        source: BoxError,
    },
    /// A NATS server answered and refused this node's credentials ([`crate::NatsAuth`]):
    /// wrong user, password, token or credentials file, or none given to a server that
    /// requires them. `auth` says what was sent, without the secret.
    #[error("NATS at {urls} refused the credentials ({auth}): {source}")]
    Unauthenticated {
        urls: String,
        auth: String,
        #[source]
        source: BoxError,
    },
    /// Creating or opening a key-value bucket failed.
    #[error("NATS JetStream key-value bucket {bucket}: {op}: {source}")]
    Bucket {
        bucket: String,
        op: &'static str,
        #[source]
        source: BoxError,
    },
    /// Creating or opening a JetStream stream failed.
    #[error("NATS JetStream stream {stream}: {op}: {source}")]
    Stream {
        stream: String,
        op: &'static str,
        #[source]
        source: BoxError,
    },
    /// A request to NATS failed (`op` says which: "listing bucket xl-leases", ...).
    #[error("NATS: {op}: {source}")]
    Nats {
        op: String,
        #[source]
        source: BoxError,
    },
    /// A request to NATS got no answer in time.
    #[error("NATS: {op}: no answer within {timeout_ms} ms")]
    Timeout { op: String, timeout_ms: u64 },
}

impl ClusterError {
    /// What sort of failure this is (config and keys: invalid input; credentials refused:
    /// unauthenticated; NATS: unavailable).
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClusterError::BadConfig(_) | ClusterError::BadKey { .. } => ErrorKind::InvalidInput,
            ClusterError::Unauthenticated { .. } => ErrorKind::Unauthenticated,
            ClusterError::Unreachable { .. }
            | ClusterError::Bucket { .. }
            | ClusterError::Stream { .. }
            | ClusterError::Nats { .. }
            | ClusterError::Timeout { .. } => ErrorKind::Unavailable,
        }
    }
}
