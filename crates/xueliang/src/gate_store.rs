//! Gate events into the SQL store: the [`GateEventSink`] the gate writer thread calls.
//!
//! The contract is the journal's: when `write` returns `Ok`, every event and dead letter of the
//! batch is committed (SQLite with `synchronous=FULL`, or PostgreSQL's commit) and every
//! evidence picture is on disk (fsynced) under the gate directory, so the transports may
//! acknowledge.
//!
//! An event whose dedup key the store already has within the ingest's window is not stored
//! again: in a district every node takes every gate's events, and the first node's commit
//! wins (`Store::insert_gate_batch_once`).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use tokio::runtime::Handle;
use xl_gates::{GateEventSink, Record, SinkError};
use xl_store::{NewDeadLetter, NewGateEvent, Store};

pub struct StoreSink {
    store: Store,
    runtime: Handle,
    /// Where evidence pictures go (their `evidence` paths are relative to it).
    dir: PathBuf,
    /// Dedup keys read before the writer thread started (`recent_dedup_keys` is called on an
    /// async task, where blocking on the store is not allowed).
    keys: Vec<(String, Timestamp)>,
    /// The ingest's dedup window.
    window: jiff::SignedDuration,
}

impl StoreSink {
    /// Reads the dedup keys of the last `window` before `now` (the gate ingest's clocks) and
    /// makes the sink.
    pub async fn open(
        store: Store,
        dir: PathBuf,
        window: std::time::Duration,
        now: Timestamp,
    ) -> Result<StoreSink, xl_store::StoreError> {
        let window = jiff::SignedDuration::try_from(window).unwrap_or(jiff::SignedDuration::MAX);
        let since = now.checked_sub(window).unwrap_or(Timestamp::MIN);
        let keys = store.recent_gate_dedup_keys(since).await?;
        Ok(StoreSink {
            store,
            runtime: Handle::current(),
            dir,
            keys,
            window,
        })
    }

    fn err(&self, what: &'static str) -> impl FnOnce(xl_store::StoreError) -> SinkError {
        let path = PathBuf::from("database");
        move |e| SinkError {
            what,
            path,
            source: io::Error::other(e.to_string()),
        }
    }

    fn write_evidence(&self, rel: &str, bytes: &[u8]) -> Result<(), SinkError> {
        let path = self.dir.join(rel);
        let err = |what: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| SinkError { what, path, source }
        };
        let parent = path.parent().unwrap_or(&self.dir).to_owned();
        std::fs::create_dir_all(&parent)
            .map_err(err("cannot create evidence directory", &parent))?;
        let mut f = File::create(&path).map_err(err("cannot create evidence file", &path))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_data())
            .map_err(err("cannot write evidence file", &path))?;
        File::open(&parent)
            .and_then(|d| d.sync_all())
            .map_err(err("cannot sync evidence directory", &parent))?;
        Ok(())
    }
}

impl GateEventSink for StoreSink {
    fn write(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        let mut events = Vec::new();
        let mut dead = Vec::new();
        for r in batch {
            match r {
                Record::Event(e) => {
                    if let (Some(rel), Some(p)) = (&e.evidence, &e.event.picture) {
                        self.write_evidence(rel, &p.bytes)?;
                    }
                    let body = serde_json::to_value(e).map_err(|err| SinkError {
                        what: "cannot serialize gate event",
                        path: PathBuf::from(&e.id),
                        source: err.into(),
                    })?;
                    events.push(NewGateEvent {
                        id: e.id.clone(),
                        gate: e.gate.clone(),
                        community: e.community.clone(),
                        camera: e.camera.clone(),
                        firmware: e.firmware.clone(),
                        kind: e.event.kind.as_str().to_owned(),
                        received_at: e.received_at,
                        occurred_at: e.occurred_at,
                        dedup_key: e.dedup_key.clone(),
                        evidence: e.evidence.clone(),
                        body,
                    });
                }
                Record::DeadLetter(d) => {
                    let body = serde_json::to_value(d).map_err(|err| SinkError {
                        what: "cannot serialize dead letter",
                        path: PathBuf::from(&d.id),
                        source: err.into(),
                    })?;
                    dead.push(NewDeadLetter {
                        id: d.id.clone(),
                        received_at: d.received_at,
                        firmware: d.firmware.clone(),
                        gate: d.gate.clone(),
                        error: d.error.clone(),
                        body,
                    });
                }
            }
        }
        let (store, window) = (self.store.clone(), self.window);
        let stored = self
            .runtime
            .block_on(async move { store.insert_gate_batch_once(&events, &dead, window).await })
            .map_err(self.err("cannot store gate events in the"))?;
        if stored.duplicates > 0 {
            tracing::debug!(
                duplicates = stored.duplicates,
                "gate events another node stored already"
            );
        }
        Ok(())
    }

    fn recent_dedup_keys(
        &mut self,
        since: Timestamp,
    ) -> Result<Vec<(String, Timestamp)>, SinkError> {
        let mut keys = std::mem::take(&mut self.keys);
        keys.retain(|(_, at)| *at >= since);
        Ok(keys)
    }
}
