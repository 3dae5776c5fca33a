//! Reading a JetStream stream back in tests: every message, in stream order.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;

/// One message of a stream as a test checks it.
#[derive(Debug, Clone)]
pub struct StreamMessage {
    pub subject: String,
    /// Its `Nats-Msg-Id` header (the publisher's deduplication id), if any.
    pub msg_id: Option<String>,
    pub stream_seq: u64,
    pub payload: Vec<u8>,
}

/// Every message of `stream` (only those on `subject` when given), in stream order, read by
/// a fresh pull consumer until a fetch comes back empty.
pub async fn stream_messages(
    js: &jetstream::Context,
    stream: &str,
    subject: Option<&str>,
) -> anyhow::Result<Vec<StreamMessage>> {
    let consumer = js
        .get_stream(stream)
        .await?
        .create_consumer(pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            filter_subject: subject.unwrap_or_default().to_owned(),
            ..Default::default()
        })
        .await?;
    let mut out = Vec::new();
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(500)
            .expires(Duration::from_millis(500))
            .messages()
            .await?;
        let before = out.len();
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| anyhow::anyhow!("reading {stream}: {e}"))?;
            let stream_seq = m
                .info()
                .map_err(|e| anyhow::anyhow!("reading {stream}: {e}"))?
                .stream_sequence;
            out.push(StreamMessage {
                subject: m.subject.to_string(),
                msg_id: m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Msg-Id"))
                    .map(|v| v.as_str().to_owned()),
                stream_seq,
                payload: m.payload.to_vec(),
            });
            m.ack()
                .await
                .map_err(|e| anyhow::anyhow!("acknowledging on {stream}: {e}"))?;
        }
        if out.len() == before {
            return Ok(out);
        }
    }
}
