//! Durable storage of gate events and dead letters, behind [`GateEventSink`] so the SQL store
//! can replace the JSON-lines journal without touching the transports.
//!
//! The contract every sink keeps: when [`GateEventSink::write`] returns `Ok`, every record of
//! the batch (and every evidence picture it names) survives a crash of the process or the
//! machine. The transports acknowledge a message (MQTT PUBACK, HTTP 200) only after that.
//!
//! [`JsonlJournal`] appends one JSON object a line to `events.jsonl` and `dead-letters.jsonl`
//! in its directory, writes evidence pictures under `evidence/`, and `fsync`s each file it
//! touched once per batch (group commit: a batch is whatever arrived during the last fsync).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use xl_core::gate::GateEvent;
use xl_core::{CameraId, CommunityId, ErrorKind, GateId};

/// How a payload reached the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    Mqtt,
    Http,
}

/// A canonical gate event as stored: the adapter's event plus what the transport knows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredGateEvent {
    /// Unique, sortable by receipt time (hex milliseconds, then random bits).
    pub id: String,
    pub gate: GateId,
    pub community: CommunityId,
    pub firmware: String,
    /// The camera that watches the gate: the alert takes its snapshot at `occurred_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<CameraId>,
    pub transport: TransportKind,
    /// The MQTT topic or the HTTP path.
    pub source: String,
    /// When the hub received the payload (same as `event.received_at`).
    pub received_at: Timestamp,
    /// The device's time of the event, resolved with the gate's time zone when the device
    /// sends only a wall clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<Timestamp>,
    /// The duplicate-detection key (hex).
    pub dedup_key: String,
    /// The evidence picture, relative to the journal directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    pub event: GateEvent,
}

/// A payload that did not become gate events, kept whole with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: String,
    pub received_at: Timestamp,
    pub transport: TransportKind,
    /// The firmware it was decoded as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// The gate, when the transport knew it before decoding (HTTP push).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The HTTP peer address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Why: the adapter's error (with its location and excerpt) or the transport's.
    pub error: String,
    /// The payload, base64 (standard alphabet, padded).
    pub raw_base64: String,
}

impl DeadLetter {
    pub fn encode_raw(raw: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(raw)
    }

    /// The payload bytes back.
    pub fn raw(&self) -> Result<Vec<u8>, base64::DecodeError> {
        base64::engine::general_purpose::STANDARD.decode(&self.raw_base64)
    }
}

/// One thing to store.
#[derive(Debug, Clone)]
pub enum Record {
    Event(Box<StoredGateEvent>),
    DeadLetter(Box<DeadLetter>),
}

/// The sink failed; nothing of the batch may be assumed stored.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {source}", path.display())]
pub struct SinkError {
    pub what: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl SinkError {
    /// Disk trouble is usually not fixed by retrying at once, but it is not the payload's fault.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Unavailable
    }
}

/// Durable storage of gate events. Called from one dedicated thread; may block.
pub trait GateEventSink: Send + 'static {
    /// Stores `batch` durably (see the module docs) or fails as a whole.
    fn write(&mut self, batch: &[Record]) -> Result<(), SinkError>;

    /// The dedup keys of events received at or after `since`, to recognise after a restart
    /// the messages the broker redelivers.
    fn recent_dedup_keys(
        &mut self,
        since: Timestamp,
    ) -> Result<Vec<(String, Timestamp)>, SinkError>;
}

/// The JSON-lines journal (see the module docs).
pub struct JsonlJournal {
    dir: PathBuf,
    events: File,
    dead_letters: File,
}

/// How much of the end of `events.jsonl` is read back for dedup keys at start-up.
const TAIL_BYTES: u64 = 64 << 20;

impl JsonlJournal {
    pub const EVENTS: &'static str = "events.jsonl";
    pub const DEAD_LETTERS: &'static str = "dead-letters.jsonl";

    /// Opens (creating) the journal in `dir`.
    pub fn open(dir: &Path) -> Result<JsonlJournal, SinkError> {
        let err = |what, path: &Path| {
            let path = path.to_owned();
            move |source| SinkError { what, path, source }
        };
        std::fs::create_dir_all(dir).map_err(err("cannot create directory", dir))?;
        let open = |name: &str| {
            let p = dir.join(name);
            OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(&p)
                .map_err(err("cannot open", &p))
        };
        let events = open(Self::EVENTS)?;
        let dead_letters = open(Self::DEAD_LETTERS)?;
        // Make the new files' directory entries durable too.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err("cannot sync directory", dir))?;
        Ok(JsonlJournal {
            dir: dir.to_owned(),
            events,
            dead_letters,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every event in `dir`'s journal (for tests and tools).
    pub fn read_events(dir: &Path) -> io::Result<Vec<StoredGateEvent>> {
        read_lines(&dir.join(Self::EVENTS))
    }

    /// Every dead letter in `dir`'s journal.
    pub fn read_dead_letters(dir: &Path) -> io::Result<Vec<DeadLetter>> {
        read_lines(&dir.join(Self::DEAD_LETTERS))
    }

    fn write_evidence(&self, rel: &str, bytes: &[u8]) -> Result<(), SinkError> {
        let path = self.dir.join(rel);
        let err = |what: &'static str| {
            let path = path.clone();
            move |source| SinkError { what, path, source }
        };
        let parent = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent).map_err(err("cannot create evidence directory"))?;
        let mut f = File::create(&path).map_err(err("cannot create evidence file"))?;
        f.write_all(bytes)
            .map_err(err("cannot write evidence file"))?;
        f.sync_data().map_err(err("cannot sync evidence file"))?;
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(err("cannot sync evidence directory"))?;
        Ok(())
    }
}

/// Every complete line of a journal file. A last line without its newline is a write in
/// progress, or one a crash cut short; it was never acknowledged, so it is not an event.
fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<Vec<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    let mut out = Vec::new();
    for (i, line) in complete.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(line).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} line {}: {e}", path.display(), i + 1),
            )
        })?;
        out.push(v);
    }
    Ok(out)
}

impl GateEventSink for JsonlJournal {
    fn write(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        let mut events = Vec::new();
        let mut dead = Vec::new();
        for r in batch {
            match r {
                Record::Event(e) => {
                    if let (Some(rel), Some(p)) = (&e.evidence, &e.event.picture) {
                        self.write_evidence(rel, &p.bytes)?;
                    }
                    serde_json::to_writer(&mut events, e).map_err(|e| SinkError {
                        what: "cannot serialize an event for",
                        path: self.dir.join(Self::EVENTS),
                        source: e.into(),
                    })?;
                    events.push(b'\n');
                }
                Record::DeadLetter(d) => {
                    serde_json::to_writer(&mut dead, d).map_err(|e| SinkError {
                        what: "cannot serialize a dead letter for",
                        path: self.dir.join(Self::DEAD_LETTERS),
                        source: e.into(),
                    })?;
                    dead.push(b'\n');
                }
            }
        }
        for (buf, file, name) in [
            (&events, &mut self.events, Self::EVENTS),
            (&dead, &mut self.dead_letters, Self::DEAD_LETTERS),
        ] {
            if buf.is_empty() {
                continue;
            }
            let err = |what| {
                let path = self.dir.join(name);
                move |source| SinkError { what, path, source }
            };
            file.write_all(buf).map_err(err("cannot append to"))?;
            file.sync_data().map_err(err("cannot sync"))?;
        }
        Ok(())
    }

    fn recent_dedup_keys(
        &mut self,
        since: Timestamp,
    ) -> Result<Vec<(String, Timestamp)>, SinkError> {
        #[derive(Deserialize)]
        struct KeyOnly {
            dedup_key: String,
            received_at: Timestamp,
        }
        let path = self.dir.join(Self::EVENTS);
        let err = |what| {
            let path = path.clone();
            move |source| SinkError { what, path, source }
        };
        let mut f = File::open(&path).map_err(err("cannot open"))?;
        let len = f.metadata().map_err(err("cannot stat"))?.len();
        let start = len.saturating_sub(TAIL_BYTES);
        f.seek(SeekFrom::Start(start)).map_err(err("cannot seek"))?;
        let mut text = Vec::new();
        f.read_to_end(&mut text).map_err(err("cannot read"))?;
        let mut lines = text.split(|&b| b == b'\n');
        if start > 0 {
            lines.next(); // a partial line
        }
        Ok(lines
            .filter_map(|l| serde_json::from_slice::<KeyOnly>(l).ok())
            .filter(|k| k.received_at >= since)
            .map(|k| (k.dedup_key, k.received_at))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use xl_core::GateEventKind;
    use xl_core::gate::EventPicture;

    pub(crate) fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "xl-gates-{name}-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn event(key: &str, at: &str, picture: bool) -> Record {
        let at: Timestamp = at.parse().unwrap();
        let mut e = GateEvent::new(
            GateEventKind::AccessGranted,
            "5/0x4b",
            at,
            Bytes::from_static(b"{}"),
        );
        if picture {
            e.picture = Some(EventPicture {
                content_type: Some("image/jpeg".into()),
                bytes: Bytes::from_static(b"\xff\xd8jpeg\xff\xd9"),
                truncated: false,
            });
        }
        Record::Event(Box::new(StoredGateEvent {
            id: format!("id-{key}"),
            gate: GateId::new("east").unwrap(),
            community: CommunityId::new("xingfu").unwrap(),
            firmware: "hikvision-isapi".into(),
            camera: None,
            transport: TransportKind::Http,
            source: "/gates/push/hikvision/east".into(),
            received_at: at,
            occurred_at: None,
            dedup_key: key.into(),
            evidence: picture.then(|| format!("evidence/east/{key}.jpg")),
            event: e,
        }))
    }

    #[test]
    fn events_dead_letters_and_evidence_round_trip() {
        let dir = temp_dir("journal");
        let mut j = JsonlJournal::open(&dir).unwrap();
        let dl = DeadLetter {
            id: "d1".into(),
            received_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            transport: TransportKind::Mqtt,
            firmware: Some("dahua".into()),
            gate: None,
            topic: Some("DahuaVTO/x/Event".into()),
            path: None,
            query: None,
            content_type: None,
            peer: None,
            error: "dahua payload: empty payload".into(),
            raw_base64: DeadLetter::encode_raw(b"\x00\xffjunk"),
        };
        j.write(&[
            event("a", "2026-01-01T00:00:00Z", true),
            Record::DeadLetter(Box::new(dl.clone())),
            event("b", "2026-01-01T01:00:00Z", false),
        ])
        .unwrap();
        drop(j);
        let events = JsonlJournal::read_events(&dir).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].evidence.as_deref(), Some("evidence/east/a.jpg"));
        assert_eq!(
            std::fs::read(dir.join("evidence/east/a.jpg")).unwrap(),
            b"\xff\xd8jpeg\xff\xd9"
        );
        let dls = JsonlJournal::read_dead_letters(&dir).unwrap();
        assert_eq!(dls, vec![dl]);
        assert_eq!(dls[0].raw().unwrap(), b"\x00\xffjunk");
        let mut j = JsonlJournal::open(&dir).unwrap();
        let keys = j
            .recent_dedup_keys("2026-01-01T00:30:00Z".parse().unwrap())
            .unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].0, "b");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
