//! The alert publishers: MQTT out ([`MqttOut`]), webhooks ([`Webhooks`]: generic JSON,
//! DingTalk, WeCom) and JetStream out ([`JetStreamOut`]: NATS JetStream, for a district; it
//! also publishes the stored gate and vision events, each a [`Feed`]).
//!
//! Every publisher reads the store's outbox through the [`Outbox`] port, in `seq` order, and
//! keeps its own cursor there (the last `seq` it delivered, under its own name), so delivery
//! is at least once, resumes after a restart, and a failing publisher never delays another.
//! JetStream out reads any [`Feed`] the same way; every [`Outbox`] is one (its entries as
//! the alert stream publishes them).
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
pub use jetstream::{FeedKind, JetStreamOut, JetStreamOutConfig, JetStreamOutStats};
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

/// One entry of a [`Feed`], as JetStream out publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    /// Increasing in commit order; the cursor and the message id are made of it.
    pub seq: i64,
    /// The community, the subject's first token (sanitized by JetStream out).
    pub community: String,
    /// The kind (`gate.forced_open`, `door_forced`, `entered_zone`), the subject's second
    /// token (sanitized by JetStream out).
    pub kind: String,
    /// The message body (JSON).
    pub payload: Vec<u8>,
}

/// What JetStream out publishes: entries in `seq` order and the cursors of their readers.
/// The hub implements it on its store for gate and vision events; every [`Outbox`] is one.
pub trait Feed: Send + Sync + 'static {
    /// Up to `limit` entries with `seq > seq`, in `seq` order. A `seq` may be missing (deleted
    /// by retention), never committed after a later one.
    fn after(
        &self,
        seq: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<FeedEntry>, OutboxError>> + Send;

    /// The cursor stored under `name` (the last `seq` that reader published); 0 when none.
    fn cursor(&self, name: &str) -> impl Future<Output = Result<i64, OutboxError>> + Send;

    /// Stores `seq` as the cursor of `name`.
    fn set_cursor(
        &self,
        name: &str,
        seq: i64,
    ) -> impl Future<Output = Result<(), OutboxError>> + Send;
}

/// The alert changes as a feed: each entry on its alert's community and kind, the payload the
/// entry's JSON (the same as the SSE stream, MQTT out and webhooks carry).
impl<O: Outbox> Feed for O {
    async fn after(&self, seq: i64, limit: u32) -> Result<Vec<FeedEntry>, OutboxError> {
        Outbox::after(self, seq, limit)
            .await?
            .into_iter()
            .map(|e| {
                let payload = serde_json::to_vec(&e)
                    .map_err(|err| OutboxError::new(ErrorKind::Internal, err))?;
                Ok(FeedEntry {
                    seq: e.seq,
                    community: e.alert.community.to_string(),
                    kind: e.alert.kind.as_str().to_owned(),
                    payload,
                })
            })
            .collect()
    }

    fn cursor(&self, name: &str) -> impl Future<Output = Result<i64, OutboxError>> + Send {
        Outbox::cursor(self, name)
    }

    fn set_cursor(
        &self,
        name: &str,
        seq: i64,
    ) -> impl Future<Output = Result<(), OutboxError>> + Send {
        Outbox::set_cursor(self, name, seq)
    }
}

/// A failure of the [`Outbox`] or [`Feed`] implementation (the store), with its kind.
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
