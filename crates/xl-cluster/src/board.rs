//! The board: a key-value bucket (`{prefix}-board`) where each node posts the state of what
//! it runs (the hub posts each camera's status there), and which every node follows with a
//! watch, so that any node can show the whole district. Entries expire [`BOARD_TTL`] after
//! their last post; the watch does not report expiry, so what is kept in memory says when it
//! was posted and readers ignore what is older than the TTL.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// How long a posted entry lives without being posted again.
pub const BOARD_TTL: Duration = Duration::from_secs(60);

/// How soon a lost watch is made again.
const REWATCH: Duration = Duration::from_secs(1);

/// What this node has read of the board: key -> (value, when it arrived here).
pub(crate) type Entries = Arc<RwLock<HashMap<String, (Bytes, Instant)>>>;

/// Keeps `entries` equal to the bucket (the last value of each key, then every change) until
/// `stop`, calling `changed` after each change; a watch lost with the connection is made
/// again. Used for the board and the pins.
pub(crate) async fn follow(
    store: kv::Store,
    entries: Entries,
    changed: impl Fn() + Send + 'static,
    stop: CancellationToken,
) {
    loop {
        match store.watch_with_history(">").await {
            Ok(mut watch) => loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return,
                    next = watch.next() => next,
                };
                match next {
                    Some(Ok(entry)) => {
                        {
                            let mut map = entries.write().unwrap_or_else(|e| e.into_inner());
                            match entry.operation {
                                kv::Operation::Put => {
                                    map.insert(entry.key, (entry.value, Instant::now()));
                                }
                                kv::Operation::Delete | kv::Operation::Purge => {
                                    map.remove(&entry.key);
                                }
                            }
                        }
                        changed();
                    }
                    Some(Err(e)) => {
                        debug!(error = %e, "board watch failed; watching again");
                        break;
                    }
                    None => break,
                }
            },
            Err(e) => debug!(error = %e, "cannot watch the board"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(REWATCH) => {}
        }
    }
}
