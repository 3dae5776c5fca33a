//! The alert publishers: MQTT out ([`MqttOut`]), webhooks ([`Webhooks`]: generic JSON,
//! DingTalk, WeCom) and JetStream out ([`JetStreamOut`]: NATS JetStream, for a district).
//!
//! Every publisher reads the store's outbox through the [`Outbox`] port, in `seq` order, and
//! keeps its own cursor there (the last `seq` it delivered, under its own name), so delivery
//! is at least once, resumes after a restart, and a failing publisher never delays another.
//! Publishers are woken by a `watch` channel carrying the last committed `seq` and also poll
//! the outbox every `poll_interval_secs` as a safety net; they stop on a `CancellationToken`.

use std::future::Future;

use xl_core::{ErrorKind, OutboxEntry};

mod backoff;
mod error;
pub mod jetstream;
pub mod mqtt;
mod redact;
pub mod webhook;

pub use error::NotifyError;
pub use jetstream::{JetStreamOut, JetStreamOutConfig, JetStreamOutStats};
pub use mqtt::{MqttOut, MqttOutConfig, MqttOutStats};
pub use redact::redact_url;
pub use webhook::{
    WebhookConfig, WebhookFormat, WebhookStats, WebhookStatsSnapshot, Webhooks, dingtalk_sign,
    validate_webhooks,
};

/// Where publishers read from; the hub implements it on its store.
pub trait Outbox: Send + Sync + 'static {
    /// Up to `limit` entries with `seq > seq`, in `seq` order.
    fn after(
        &self,
        seq: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<OutboxEntry>, OutboxError>> + Send;

    /// The cursor stored under `name` (the last `seq` that publisher delivered); 0 when none.
    fn cursor(&self, name: &str) -> impl Future<Output = Result<i64, OutboxError>> + Send;

    /// Stores `seq` as the cursor of `name`.
    fn set_cursor(
        &self,
        name: &str,
        seq: i64,
    ) -> impl Future<Output = Result<(), OutboxError>> + Send;
}

/// A failure of the [`Outbox`] implementation (the store), with its kind.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct OutboxError {
    kind: ErrorKind,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl OutboxError {
    /// Wraps the store's error `source`.
    pub fn new(
        kind: ErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        OutboxError {
            kind,
            source: source.into(),
        }
    }

    /// What sort of failure it is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}
