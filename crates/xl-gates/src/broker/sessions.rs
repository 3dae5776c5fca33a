//! Sessions remembered across restarts: persistent clients and their subscriptions.
//!
//! Two files in the gates' state directory:
//! - `broker-sessions.json`, the snapshot: one JSON object, client id to session, written
//!   atomically (temporary file, fsync, rename, fsync of the directory);
//! - `broker-sessions.journal`, the changes since: one JSON line per changed session, its whole
//!   new state (or `null` once forgotten), appended and fsynced before the front answers.
//!   Replaying a line twice gives the same state, so a crash between a compaction's rename and
//!   its truncation of the journal loses and doubles nothing.
//!
//! A change costs one short line, not a rewrite of every session (a hub with thousands of
//! persistent clients rewrote megabytes at each CONNECT). When the journal grows past twice
//! the snapshot (plus [`Limits::compact_slack_bytes`]), it is folded into a new snapshot; at start the
//! snapshot and the journal are read, a last line cut short by a crash is ignored, and the
//! result is written as the new snapshot.
//!
//! Everything a client can make the front remember is bounded ([`Limits`]): the length of a
//! filter, filters per session, sessions per owner (the account that connected them) and in
//! all, and the snapshot's bytes. What is over a bound is not remembered (the client still
//! connects and subscribes; that part of its session does not outlive a restart) and is
//! logged. So the snapshot stays under [`Limits::snapshot_bytes`] and the journal under twice
//! that plus [`Limits::compact_slack_bytes`] and one line.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tracing::warn;

/// Sessions not seen for this long are forgotten.
const SESSION_EXPIRY: jiff::SignedDuration = jiff::SignedDuration::from_hours(30 * 24);

/// What the front remembers at most. Over a bound, a session or filter is not remembered: the
/// client still connects, but that part of its session does not outlive a restart.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// The longest topic filter remembered, in bytes (the front refuses longer ones in SUBACK).
    pub filter_bytes: usize,
    /// Topic filters remembered per session.
    pub filters_per_session: usize,
    /// Persistent sessions remembered per owner (the MQTT username that connected them; all
    /// anonymous clients share one owner, "").
    pub sessions_per_owner: usize,
    /// Persistent sessions remembered in all.
    pub sessions: usize,
    /// The snapshot's size at most.
    pub snapshot_bytes: usize,
    /// The journal is folded into the snapshot once it is larger than twice the snapshot
    /// plus this.
    pub compact_slack_bytes: u64,
}

impl Limits {
    /// A gate's topics are a few dozen bytes and it subscribes to a handful; these bounds keep
    /// the snapshot at 8 MiB and the journal at 17 MiB at worst.
    pub(super) const DEFAULT: Limits = Limits {
        filter_bytes: 256,
        filters_per_session: 100,
        sessions_per_owner: 1_000,
        sessions: 10_000,
        snapshot_bytes: 8 << 20,
        compact_slack_bytes: 1 << 20,
    };
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Session {
    last_connect: jiff::Timestamp,
    /// Who connected it: the MQTT username, "" when anonymous.
    #[serde(default)]
    owner: String,
    /// Topic filters and their QoS, in the order subscribed.
    subscriptions: Vec<(String, u8)>,
}

/// One journal line: a session's whole new state, or `None` once it is forgotten.
#[derive(Serialize, Deserialize)]
struct Change {
    id: String,
    session: Option<Session>,
}

/// Clients with persistent sessions and their subscriptions: a snapshot and a journal of the
/// changes since (see the module doc).
pub(super) struct Sessions {
    state: Arc<Mutex<State>>,
}

struct State {
    snapshot: PathBuf,
    journal: File,
    journal_bytes: u64,
    snapshot_bytes: u64,
    limits: Limits,
    map: BTreeMap<String, Session>,
    /// Bytes of each session's entry in the snapshot, their sum, and sessions per owner.
    entry_bytes: HashMap<String, usize>,
    total_bytes: usize,
    per_owner: HashMap<String, usize>,
}

/// A session's bytes in the compact snapshot: `"id":{...},`.
fn entry_size(id: &str, s: &Session) -> usize {
    let k = serde_json::to_vec(id).map_or(0, |v| v.len());
    let v = serde_json::to_vec(s).map_or(0, |v| v.len());
    k + 1 + v + 1
}

impl Sessions {
    /// Opens `path` (the snapshot; the journal is beside it), applies the journal and the
    /// limits, and writes the result as the new snapshot.
    pub(super) fn open(path: &Path, limits: Limits) -> Result<Sessions, String> {
        let at = |e: io::Error| format!("{}: {e}", path.display());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let mut map: BTreeMap<String, Session> = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| format!("{}: not a sessions file: {e}", path.display()))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(at(e)),
        };
        let journal_path = path.with_extension("journal");
        match std::fs::read(&journal_path) {
            Ok(b) => replay(&mut map, &b)
                .map_err(|e| format!("{}: not a sessions journal: {e}", journal_path.display()))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", journal_path.display())),
        }
        let cutoff = jiff::Timestamp::now() - SESSION_EXPIRY;
        map.retain(|_, s| s.last_connect > cutoff);
        let journal = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&journal_path)
            .map_err(|e| format!("{}: {e}", journal_path.display()))?;
        let mut state = State {
            snapshot: path.to_owned(),
            journal,
            journal_bytes: 0,
            snapshot_bytes: 0,
            limits,
            map: BTreeMap::new(),
            entry_bytes: HashMap::new(),
            total_bytes: 0,
            per_owner: HashMap::new(),
        };
        state.load(map);
        state.compact().map_err(at)?;
        Ok(Sessions {
            state: Arc::new(Mutex::new(state)),
        })
    }

    pub(super) fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// The account that owns a remembered session ("" for one remembered before owners were).
    pub(super) fn owner(&self, id: &str) -> Option<String> {
        self.lock().map.get(id).map(|s| s.owner.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while the lock was held left at worst an unwritten change in memory.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A client connected with a persistent session for `owner`: returns the subscriptions it
    /// had if the front knew it already.
    pub(super) async fn connected(
        &self,
        id: &str,
        owner: &str,
    ) -> io::Result<Option<Vec<(String, u8)>>> {
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.update(move |st| {
            let known = st.map.get(&id).cloned();
            let mut s = known.clone().unwrap_or_default();
            if known.is_none() {
                if st.map.len() >= st.limits.sessions {
                    warn!(client_id = %id, limit = st.limits.sessions, "persistent MQTT sessions are remembered up to the limit already: this one will not outlive a restart");
                    return (None, None);
                }
                let of_owner = st.per_owner.get(&owner).copied().unwrap_or(0);
                if of_owner >= st.limits.sessions_per_owner {
                    warn!(client_id = %id, %owner, limit = st.limits.sessions_per_owner, "this account's persistent MQTT sessions are remembered up to the limit already: this one will not outlive a restart");
                    return (None, None);
                }
            }
            s.last_connect = jiff::Timestamp::now();
            s.owner = owner;
            let subs = known.map(|k| k.subscriptions);
            if st.set(&id, s) {
                (subs, Some(id))
            } else {
                warn!(client_id = %id, "the sessions file is at its size limit: this session will not outlive a restart");
                (subs, None)
            }
        })
        .await
    }

    /// A client connected with a clean session.
    pub(super) async fn forget(&self, id: &str) -> io::Result<()> {
        if !self.lock().map.contains_key(id) {
            return Ok(());
        }
        let id = id.to_owned();
        self.update(move |st| {
            st.remove(&id);
            ((), Some(id))
        })
        .await
    }

    /// Changes a remembered session's subscriptions (a session not remembered stays so). Over
    /// a limit, the filters that do not fit are not remembered.
    pub(super) async fn change(
        &self,
        id: &str,
        f: impl FnOnce(&mut Vec<(String, u8)>) + Send + 'static,
    ) -> io::Result<()> {
        let id = id.to_owned();
        self.update(move |st| {
            let Some(mut s) = st.map.get(&id).cloned() else {
                return ((), None);
            };
            let before = s.subscriptions.clone();
            f(&mut s.subscriptions);
            let limits = st.limits;
            let n = s.subscriptions.len();
            s.subscriptions.retain(|(f, _)| f.len() <= limits.filter_bytes);
            if s.subscriptions.len() < n {
                warn!(client_id = %id, limit_bytes = limits.filter_bytes, "topic filters longer than the limit are not remembered");
            }
            if s.subscriptions.len() > limits.filters_per_session {
                warn!(client_id = %id, limit = limits.filters_per_session, "more subscriptions than the limit: only the first are remembered");
                s.subscriptions.truncate(limits.filters_per_session);
            }
            if s.subscriptions == before {
                return ((), None);
            }
            if !st.set(&id, s) {
                warn!(client_id = %id, "the sessions file is at its size limit: this subscription will not outlive a restart");
                return ((), None);
            }
            ((), Some(id))
        })
        .await
    }

    /// Applies `f` (which returns what it changed, if anything) and journals that change, on
    /// the blocking pool; the lock is held across the write, so lines are in change order.
    async fn update<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> (T, Option<String>) + Send + 'static,
    ) -> io::Result<T> {
        let state = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            let (out, changed) = f(&mut st);
            if let Some(id) = changed {
                st.journal(&id)?;
            }
            Ok(out)
        })
        .await
        .map_err(io::Error::other)?
    }
}

impl State {
    /// Takes the sessions read from disk, dropping what is over the limits (the oldest
    /// sessions first).
    fn load(&mut self, mut map: BTreeMap<String, Session>) {
        let limits = self.limits;
        let mut by_age: Vec<(jiff::Timestamp, String)> = map
            .iter()
            .map(|(id, s)| (s.last_connect, id.clone()))
            .collect();
        by_age.sort_by(|a, b| b.cmp(a));
        let mut dropped = 0usize;
        for (_, id) in by_age {
            let Some(mut s) = map.remove(&id) else {
                continue;
            };
            s.subscriptions
                .retain(|(f, _)| f.len() <= limits.filter_bytes);
            s.subscriptions.truncate(limits.filters_per_session);
            let of_owner = self.per_owner.get(&s.owner).copied().unwrap_or(0);
            if self.map.len() >= limits.sessions
                || of_owner >= limits.sessions_per_owner
                || !self.set(&id, s)
            {
                dropped += 1;
            }
        }
        if dropped > 0 {
            warn!(
                dropped,
                "persistent MQTT sessions over the limits were not reloaded"
            );
        }
    }

    /// Sets a session, unless that would take the snapshot over its size limit.
    fn set(&mut self, id: &str, s: Session) -> bool {
        let new = entry_size(id, &s);
        let old = self.entry_bytes.get(id).copied().unwrap_or(0);
        if self.total_bytes - old + new + 2 > self.limits.snapshot_bytes {
            return false;
        }
        self.remove(id);
        *self.per_owner.entry(s.owner.clone()).or_default() += 1;
        self.entry_bytes.insert(id.to_owned(), new);
        self.total_bytes += new;
        self.map.insert(id.to_owned(), s);
        true
    }

    fn remove(&mut self, id: &str) {
        if let Some(s) = self.map.remove(id) {
            if let Some(n) = self.per_owner.get_mut(&s.owner) {
                *n -= 1;
                if *n == 0 {
                    self.per_owner.remove(&s.owner);
                }
            }
            self.total_bytes -= self.entry_bytes.remove(id).unwrap_or(0);
        }
    }

    /// Appends `id`'s state to the journal and fsyncs it; compacts when the journal is large.
    fn journal(&mut self, id: &str) -> io::Result<()> {
        let change = Change {
            id: id.to_owned(),
            session: self.map.get(id).cloned(),
        };
        let mut line = serde_json::to_vec(&change)?;
        line.push(b'\n');
        self.journal.write_all(&line)?;
        self.journal.sync_data()?;
        self.journal_bytes += line.len() as u64;
        if self.journal_bytes > 2 * self.snapshot_bytes + self.limits.compact_slack_bytes {
            self.compact()?;
        }
        Ok(())
    }

    /// Writes the whole map as the new snapshot, then empties the journal.
    fn compact(&mut self) -> io::Result<()> {
        let bytes = serde_json::to_vec(&self.map)?;
        write_atomically(&self.snapshot, &bytes)?;
        self.snapshot_bytes = bytes.len() as u64;
        self.journal.set_len(0)?;
        self.journal.sync_all()?;
        self.journal_bytes = 0;
        Ok(())
    }

    #[cfg(test)]
    fn file_bytes(&self) -> (u64, u64) {
        let snapshot = std::fs::metadata(&self.snapshot).map_or(0, |m| m.len());
        (snapshot, self.journal.metadata().map_or(0, |m| m.len()))
    }
}

/// Applies journal lines to `map`. A last line without its newline was cut short by a crash
/// (its change was never acknowledged) and is ignored; any other bad line is an error.
fn replay(map: &mut BTreeMap<String, Session>, bytes: &[u8]) -> Result<(), String> {
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if complete < bytes.len() {
        warn!(
            bytes = bytes.len() - complete,
            "the sessions journal ends in a line cut short (a crash while writing): ignored"
        );
    }
    for (n, line) in bytes[..complete].split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let c: Change = serde_json::from_slice(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        match c.session {
            Some(s) => map.insert(c.id, s),
            None => map.remove(&c.id),
        };
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path() -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("xl-sessions-{}", rand::random::<u64>()));
        let path = dir.join("broker-sessions.json");
        (dir, path)
    }

    #[tokio::test]
    async fn sessions_survive_a_reopen_and_clean_sessions_are_forgotten() {
        let (dir, path) = temp_path();
        let s = Sessions::open(&path, Limits::DEFAULT).unwrap();
        assert_eq!(s.connected("gate-1", "").await.unwrap(), None);
        s.change("gate-1", |subs| subs.push(("cmd/gate-1".into(), 1)))
            .await
            .unwrap();
        assert_eq!(s.connected("gate-2", "").await.unwrap(), None);
        drop(s);
        let s = Sessions::open(&path, Limits::DEFAULT).unwrap();
        assert_eq!(
            s.connected("gate-1", "").await.unwrap(),
            Some(vec![("cmd/gate-1".to_owned(), 1)])
        );
        assert_eq!(s.connected("gate-2", "").await.unwrap(), Some(vec![]));
        s.forget("gate-2").await.unwrap();
        drop(s);
        let s = Sessions::open(&path, Limits::DEFAULT).unwrap();
        assert_eq!(s.len(), 1);
        drop(s);
        std::fs::write(&path, b"{ not json").unwrap();
        let e = Sessions::open(&path, Limits::DEFAULT).err().unwrap();
        assert!(e.contains("not a sessions file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The snapshot as the previous version wrote it (pretty JSON, no owner) still loads.
    #[tokio::test]
    async fn a_sessions_file_of_the_previous_version_loads() {
        let (dir, path) = temp_path();
        std::fs::create_dir_all(&dir).unwrap();
        let now = jiff::Timestamp::now();
        std::fs::write(
            &path,
            format!(
                "{{\n  \"gate-9\": {{\n    \"last_connect\": \"{now}\",\n    \
                 \"subscriptions\": [[\"cmd/gate-9\", 1]]\n  }}\n}}"
            ),
        )
        .unwrap();
        let s = Sessions::open(&path, Limits::DEFAULT).unwrap();
        assert_eq!(
            s.connected("gate-9", "").await.unwrap(),
            Some(vec![("cmd/gate-9".to_owned(), 1)])
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Finding 3 of the security probe: many clients with many long filters grew the file
    /// without bound, and each change rewrote all of it.
    #[tokio::test]
    async fn many_clients_with_many_long_filters_leave_the_files_under_their_bounds() {
        let (dir, path) = temp_path();
        let limits = Limits {
            filter_bytes: 64,
            filters_per_session: 10,
            sessions_per_owner: 15,
            sessions: 40,
            snapshot_bytes: 32 << 10,
            compact_slack_bytes: 8 << 10,
        };
        let s = Sessions::open(&path, limits).unwrap();
        let mut max_journal = 0;
        for owner in ["a", "b", "c"] {
            for c in 0..40 {
                let id = format!("{owner}-{c}");
                s.connected(&id, owner).await.unwrap();
                for k in 0..12 {
                    // One filter far over the length limit, the others within it.
                    let f = if k == 0 {
                        "x".repeat(64 * 1024)
                    } else {
                        format!("{id}/{k:0>40}")
                    };
                    s.change(&id, move |subs| subs.push((f, 1))).await.unwrap();
                    max_journal = max_journal.max(s.lock().file_bytes().1);
                }
            }
        }
        let st = s.lock();
        let (snapshot, _) = st.file_bytes();
        assert!(st.map.len() <= limits.sessions, "{}", st.map.len());
        for owner in ["a", "b", "c"] {
            let n = st.map.values().filter(|x| x.owner == owner).count();
            assert!(n <= limits.sessions_per_owner, "{owner}: {n}");
        }
        for x in st.map.values() {
            assert!(x.subscriptions.len() <= limits.filters_per_session);
            assert!(x.subscriptions.iter().all(|(f, _)| f.len() <= 64));
        }
        let all = serde_json::to_vec(&st.map).unwrap().len();
        assert!(all <= limits.snapshot_bytes, "{all}");
        assert!(snapshot <= limits.snapshot_bytes as u64, "{snapshot}");
        // The journal is compacted: never more than twice the snapshot bound plus the slack
        // and one line.
        let bound = 2 * limits.snapshot_bytes as u64 + limits.compact_slack_bytes + 4096;
        assert!(max_journal <= bound, "{max_journal} > {bound}");
        let before = st.map.clone();
        assert!(!before.is_empty());
        drop(st);
        drop(s);
        // A reopen restores the same sessions.
        let s = Sessions::open(&path, limits).unwrap();
        assert_eq!(s.lock().map, before);
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A change is one journal line, not a rewrite of the snapshot; the journal is folded
    /// into the snapshot when it outgrows it.
    #[tokio::test]
    async fn changes_are_appended_and_compacted_when_the_journal_grows() {
        let (dir, path) = temp_path();
        let limits = Limits {
            compact_slack_bytes: 64 << 10,
            ..Limits::DEFAULT
        };
        let s = Sessions::open(&path, limits).unwrap();
        for c in 0..100 {
            s.connected(&format!("gate-{c}"), "").await.unwrap();
        }
        let (snapshot, journal) = s.lock().file_bytes();
        assert_eq!(snapshot, 2, "the snapshot was rewritten: {snapshot} bytes");
        assert!(journal > 100 * 50, "{journal}");
        let mut compacted = false;
        for i in 0..5_000 {
            s.connected(&format!("gate-{}", i % 100), "").await.unwrap();
            if s.lock().file_bytes().0 > 2 {
                compacted = true;
                break;
            }
        }
        assert!(compacted, "the journal was never compacted");
        assert_eq!(s.lock().file_bytes().1, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A crash while a line was being appended leaves it cut short: ignored at the next start;
    /// the lines before it count, and a bad line before the end is an error.
    #[tokio::test]
    async fn a_torn_last_journal_line_is_ignored() {
        let (dir, path) = temp_path();
        let s = Sessions::open(&path, Limits::DEFAULT).unwrap();
        s.connected("gate-1", "").await.unwrap();
        s.change("gate-1", |subs| subs.push(("cmd/gate-1".into(), 1)))
            .await
            .unwrap();
        let journal = path.with_extension("journal");
        let whole = std::fs::read(&journal).unwrap();
        drop(s);
        // The last change cut short half way.
        let torn = &whole[..whole.len() - whole.len() / 4];
        std::fs::write(&journal, torn).unwrap();
        let s = Sessions::open(&path, Limits::DEFAULT).unwrap();
        assert_eq!(s.connected("gate-1", "").await.unwrap(), Some(vec![]));
        drop(s);
        // After the reopen the torn line is gone: further changes are read back.
        let s = Sessions::open(&path, Limits::DEFAULT).unwrap();
        s.change("gate-1", |subs| subs.push(("cmd/gate-1".into(), 2)))
            .await
            .unwrap();
        drop(s);
        let s = Sessions::open(&path, Limits::DEFAULT).unwrap();
        assert_eq!(
            s.connected("gate-1", "").await.unwrap(),
            Some(vec![("cmd/gate-1".to_owned(), 2)])
        );
        drop(s);
        std::fs::write(&journal, b"{\"id\":\n{\"id\":\"g\",\"session\":null}\n").unwrap();
        let e = Sessions::open(&path, Limits::DEFAULT).err().unwrap();
        assert!(e.contains("not a sessions journal"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
