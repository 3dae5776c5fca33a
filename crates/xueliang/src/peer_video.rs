//! Segments another node of the district recorded, fetched from it for playback, alert clips
//! and exports on this node.
//!
//! Each node records the cameras it pulls onto its own disk, and the index (shared) names the
//! node of every segment. A clip that needs another node's segment asks that node
//! (`GET /api/v1/recordings/segments/{id}` at the URL it advertises) with the caller's own
//! credentials, so that node checks the same user's scope and audits what it sends. The copy
//! lands under `<data_dir>/cache/segments/`: a finished segment is kept there as `<id>.mp4`
//! and served from there the next time (a player asks for many byte ranges of one clip, each
//! planned anew). One still being written has one growing copy, `<id>.open.mp4`: the first
//! request fetches it as far as it is written, each later one asks only for what follows
//! (`Range: bytes=<copy's length>-`) and appends it; a 416 means nothing new, and a 200 (a node
//! that ignores ranges) replaces the copy. That is sound because a segment's file is only ever
//! appended to while it is open: the writer never seeks back, and closing it only syncs it;
//! the start-up repair truncates a torn tail, but only of a segment that then is no longer
//! open (its copy is then fetched whole as `<id>.mp4`; the open copy is left to the sweep, as
//! a clip planned on it may still be reading it). A failed fetch of the tail cuts the copy
//! back to its length before. The copies of a segment are fetched and grown under its lock
//! ([`LocalCopy`]), which a clip holds until it has read the copy's layout, so it never plans
//! on a copy half appended to or about to be cut back; what it planned on never changes after.
//! Open copies left by an earlier run are deleted at start (a crash may have left a tail that
//! no later fetch would mend). The cache is swept by age ([`CACHE_KEEP`]) and size
//! ([`CACHE_MAX_BYTES`]) at each maintenance pass. The bytes fetched are counted by the node
//! they came from (`xueliang_peer_segment_bytes_total`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tracing::{debug, info, warn};
use xl_api::backend::{FORWARDED_BY, OnBehalf};
use xl_cluster::Cluster;
use xl_store::{SegmentRow, SegmentState};

/// Where the copies go, under the data directory.
pub const CACHE_DIR: &str = "cache/segments";
/// A copy not read for this long is deleted.
pub const CACHE_KEEP: Duration = Duration::from_secs(3600);
/// The copies together stay under this; the least recently read go first.
pub const CACHE_MAX_BYTES: u64 = 2 << 30;
/// The longest a segment takes to come (a one-minute main-stream segment is tens of MB).
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How the growing copy of a segment being written is named after the segment's id.
const OPEN_SUFFIX: &str = ".open.mp4";

/// Why another node's segment could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The node is not live, advertises no URL, or does not answer.
    #[error("node {node}, which recorded this part, {why}")]
    Unreachable { node: String, why: String },
    /// The node no longer has the file (retention or its disk guard deleted it).
    #[error("node {node} no longer has this part (deleted by retention or its disk guard)")]
    Gone { node: String },
    /// The node refused (the caller's session is not valid there, or it answered an error).
    #[error("node {node} refused to send this part ({status})")]
    Refused { node: String, status: u16 },
    /// Writing the copy here failed.
    #[error("cannot keep a copy of another node's segment: {0}")]
    Io(#[from] std::io::Error),
}

/// The per-segment locks, by segment id; an entry goes once no one holds or awaits it.
type Locks = Arc<Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>>;

/// Fetches and keeps copies of other nodes' segments (see the module documentation).
pub struct PeerSegments {
    cluster: Arc<Cluster>,
    dir: PathBuf,
    http: reqwest::Client,
    locks: Locks,
    stats: Arc<PeerStats>,
}

/// A local file with another node's segment. For a segment still being written, it holds the
/// lock of the segment's copy: keep it until the copy's layout is read (the clip planned). The
/// bytes read by then stay as they are after it is dropped; the copy only grows past them.
pub struct LocalCopy {
    path: PathBuf,
    _lock: Option<SegmentLock>,
}

impl LocalCopy {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The lock of one segment's copies, held.
struct SegmentLock {
    id: i64,
    locks: Locks,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

/// Waits for segment `id`'s lock in `locks`.
async fn lock(locks: &Locks, id: i64) -> SegmentLock {
    let mutex = {
        let mut map = locks.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(id).or_default())
    };
    SegmentLock {
        id,
        locks: Arc::clone(locks),
        guard: Some(mutex.lock_owned().await),
    }
}

impl Drop for SegmentLock {
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        let mutex = Arc::clone(tokio::sync::OwnedMutexGuard::mutex(&guard));
        drop(guard);
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        // Held by the map and `mutex` only: no one else has it or can get it without the
        // map's lock, which is held here.
        if locks.get(&self.id).is_some_and(|m| Arc::ptr_eq(m, &mutex))
            && Arc::strong_count(&mutex) == 2
        {
            locks.remove(&self.id);
        }
    }
}

/// The bytes of other nodes' segments fetched here, by the node that recorded them.
#[derive(Default)]
pub struct PeerStats {
    bytes: Mutex<BTreeMap<String, u64>>,
}

impl PeerStats {
    fn add(&self, node: &str, bytes: u64) {
        let mut all = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        *all.entry(node.to_owned()).or_default() += bytes;
    }
}

impl xl_core::metrics::MetricsSource for PeerStats {
    fn render_prometheus(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# HELP xueliang_peer_segment_bytes_total Bytes of other nodes' segments fetched \
             for clips here, by the node that recorded them.\n\
             # TYPE xueliang_peer_segment_bytes_total counter"
        );
        let all = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        for (node, bytes) in all.iter() {
            let _ = writeln!(
                out,
                "xueliang_peer_segment_bytes_total{{recorded_by=\"{node}\"}} {bytes}"
            );
        }
    }
}

impl PeerSegments {
    pub fn new(cluster: Arc<Cluster>, data_dir: &Path) -> PeerSegments {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(FETCH_TIMEOUT)
            .build()
            .unwrap_or_default();
        let dir = data_dir.join(CACHE_DIR);
        remove_open_copies(&dir);
        PeerSegments {
            cluster,
            dir,
            http,
            locks: Locks::default(),
            stats: Arc::default(),
        }
    }

    /// This node's id: the segments it records carry it.
    pub fn node(&self) -> &str {
        self.cluster.node()
    }

    /// The bytes fetched from each node, for `/metrics`.
    pub fn stats(&self) -> &Arc<PeerStats> {
        &self.stats
    }

    /// A local file with `segment`'s bytes (it is another node's), fetched `on_behalf` of the
    /// caller unless a finished copy is here already; of a segment being written, what was
    /// written after its copy here was last grown is fetched and appended.
    pub async fn local_copy(
        &self,
        segment: &SegmentRow,
        on_behalf: &OnBehalf,
    ) -> Result<LocalCopy, FetchError> {
        let finished = segment.state != SegmentState::Open;
        let kept = self.dir.join(format!("{}.mp4", segment.id));
        if finished && touch(&kept) {
            return Ok(LocalCopy {
                path: kept,
                _lock: None,
            });
        }
        // One request at a time fetches a segment; the others wait, then find the copy.
        let held = lock(&self.locks, segment.id).await;
        tokio::fs::create_dir_all(&self.dir).await?;
        if finished {
            if !touch(&kept) {
                let resp = self.get(segment, on_behalf, None).await?;
                self.replace(segment, resp, &kept).await?;
            }
            // A finished copy never changes: its readers need no lock.
            return Ok(LocalCopy {
                path: kept,
                _lock: None,
            });
        }
        let open = self.dir.join(format!("{}{OPEN_SUFFIX}", segment.id));
        self.grow(segment, on_behalf, &open).await?;
        Ok(LocalCopy {
            path: open,
            _lock: Some(held),
        })
    }

    /// Brings the copy at `open` of `segment`, being written, up to what its node has written:
    /// fetched whole when there is none, else only the bytes past its end. Called under the
    /// segment's lock; after an error the copy is as it was.
    async fn grow(
        &self,
        segment: &SegmentRow,
        on_behalf: &OnBehalf,
        open: &Path,
    ) -> Result<(), FetchError> {
        let mut file = match tokio::fs::File::options().append(true).open(open).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let resp = self.get(segment, on_behalf, None).await?;
                return self.replace(segment, resp, open).await;
            }
            Err(e) => return Err(e.into()),
        };
        let had = file.metadata().await?.len();
        let resp = self.get(segment, on_behalf, Some(had)).await?;
        match resp.status().as_u16() {
            // Nothing written since: the copy was read all the same.
            416 => {
                touch(open);
                return Ok(());
            }
            // A node that ignores ranges sent it all: what was here is a prefix of it, so
            // clips planned on the copy read the same bytes from its replacement.
            200 => {
                drop(file);
                return self.replace(segment, resp, open).await;
            }
            _ => {}
        }
        if content_range_start(resp.headers()) != Some(had) {
            return Err(FetchError::Unreachable {
                node: segment.node.clone(),
                why: format!("answered another byte range than the one from {had} asked for"),
            });
        }
        let appended = self.receive(segment, resp, &mut file).await;
        let appended = match appended {
            Ok(bytes) => file.flush().await.map(|()| bytes).map_err(FetchError::from),
            Err(e) => Err(e),
        };
        match appended {
            Ok(bytes) => {
                debug!(segment = segment.id, node = %segment.node, from = had, bytes, "appended the tail of another node's segment being written");
                Ok(())
            }
            Err(e) => {
                if let Err(cut) = file.set_len(had).await {
                    // The copy would hold a torn tail that later fetches append after: drop it.
                    warn!(segment = segment.id, error = %cut, "cannot cut a copy of another node's segment back after a failed fetch; deleting it");
                    drop(file);
                    let _ = tokio::fs::remove_file(open).await;
                }
                Err(e)
            }
        }
    }

    /// Asks `segment`'s node for the segment, from byte `from` on when given: the answer is
    /// 200 or 206, or 416 when `from` was given.
    async fn get(
        &self,
        segment: &SegmentRow,
        on_behalf: &OnBehalf,
        from: Option<u64>,
    ) -> Result<reqwest::Response, FetchError> {
        let node = segment.node.clone();
        let unreachable = |why: String| FetchError::Unreachable {
            node: node.clone(),
            why,
        };
        let address = match self.cluster.node_address(&node).await {
            Ok(Some(a)) => a,
            Ok(None) => return Err(unreachable("is not running (or advertises no URL)".into())),
            Err(e) => {
                debug!(node = %node, error = %e, "cannot read a node's address");
                return Err(unreachable("cannot be looked up in NATS now".into()));
            }
        };
        let url = format!(
            "{}/api/v1/recordings/segments/{}",
            address.trim_end_matches('/'),
            segment.id
        );
        let mut req = self.http.get(&url).header(FORWARDED_BY, self.node());
        if let Some(from) = from {
            req = req.header(reqwest::header::RANGE, format!("bytes={from}-"));
        }
        for (name, value) in on_behalf.headers() {
            req = req.header(name, value);
        }
        let resp = req.send().await.map_err(|e| {
            debug!(%url, error = %e, "cannot fetch another node's segment");
            unreachable("does not answer".into())
        })?;
        match (resp.status().as_u16(), from) {
            (200, _) | (206 | 416, Some(_)) => Ok(resp),
            (404, _) => Err(FetchError::Gone { node }),
            (status, _) => Err(FetchError::Refused { node, status }),
        }
    }

    /// Writes `resp`'s body (all of `segment`) to a file of its own, then renames it to `to`:
    /// a copy is never seen half written.
    async fn replace(
        &self,
        segment: &SegmentRow,
        resp: reqwest::Response,
        to: &Path,
    ) -> Result<(), FetchError> {
        let part = self.dir.join(format!(
            "{}-{}-{:08x}.part",
            segment.id,
            std::process::id(),
            rand::random::<u32>()
        ));
        let written = async {
            let mut file = tokio::fs::File::create(&part).await?;
            let bytes = self.receive(segment, resp, &mut file).await?;
            file.flush().await?;
            Ok::<u64, FetchError>(bytes)
        }
        .await;
        let renamed = match written {
            Ok(bytes) => tokio::fs::rename(&part, to)
                .await
                .map(|()| bytes)
                .map_err(FetchError::from),
            Err(e) => Err(e),
        };
        match renamed {
            Ok(bytes) => {
                debug!(segment = segment.id, node = %segment.node, bytes, "fetched another node's segment");
                Ok(())
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&part).await;
                Err(e)
            }
        }
    }

    /// Writes `resp`'s body to `file` as it comes, counting it; the bytes written.
    async fn receive(
        &self,
        segment: &SegmentRow,
        mut resp: reqwest::Response,
        file: &mut tokio::fs::File,
    ) -> Result<u64, FetchError> {
        let mut bytes = 0u64;
        loop {
            let chunk = resp.chunk().await.map_err(|e| {
                debug!(segment = segment.id, error = %e, "another node's segment was cut off");
                FetchError::Unreachable {
                    node: segment.node.clone(),
                    why: "stopped sending".into(),
                }
            })?;
            let Some(chunk) = chunk else {
                return Ok(bytes);
            };
            self.stats.add(&segment.node, chunk.len() as u64);
            file.write_all(&chunk).await?;
            bytes += chunk.len() as u64;
        }
    }

    /// Deletes the copies not read for [`CACHE_KEEP`], then the least recently read ones
    /// while they add up to more than [`CACHE_MAX_BYTES`]. Blocking (file system walks).
    pub fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                let modified = m.modified().ok()?;
                m.is_file().then(|| (modified, m.len(), e.path()))
            })
            .collect();
        files.sort();
        let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
        let mut deleted = 0usize;
        for (modified, len, path) in files {
            let old = modified.elapsed().is_ok_and(|age| age > CACHE_KEEP);
            if !old && total <= CACHE_MAX_BYTES {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(len);
                deleted += 1;
            }
        }
        if deleted > 0 {
            info!(
                files = deleted,
                "copies of other nodes' segments deleted from the cache"
            );
        }
    }
}

/// Marks a kept copy as just read (the sweep goes by it); false when there is none.
fn touch(path: &Path) -> bool {
    std::fs::File::options()
        .append(true)
        .open(path)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        .is_ok()
}

/// Where the part a 206 answer carries starts (`Content-Range: bytes first-last/length`).
fn content_range_start(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let range = headers.get(reqwest::header::CONTENT_RANGE)?;
    let (first, _) = range
        .to_str()
        .ok()?
        .strip_prefix("bytes ")?
        .split_once('-')?;
    first.trim().parse().ok()
}

/// Deletes the open segments' copies an earlier run left under `dir`: one cut off by a crash
/// (or by power loss, with zeros in its tail) would be grown past the damage, never mended.
fn remove_open_copies(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let removed = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(OPEN_SUFFIX))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count();
    if removed > 0 {
        info!(
            files = removed,
            "copies of other nodes' segments being written, left by the last run, deleted"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_finds_only_existing_copies() {
        let dir = std::env::temp_dir().join(format!("xl-peer-touch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("1.mp4");
        assert!(!touch(&f));
        std::fs::write(&f, b"x").unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(7200);
        std::fs::File::options()
            .append(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(touch(&f));
        let age = std::fs::metadata(&f)
            .unwrap()
            .modified()
            .unwrap()
            .elapsed()
            .unwrap();
        assert!(age < Duration::from_secs(3600), "touched: {age:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn content_range_start_reads_where_the_part_starts() {
        use reqwest::header::{CONTENT_RANGE, HeaderMap, HeaderValue};
        let cases = [
            (Some("bytes 1000-4999/5000"), Some(1000)),
            (Some("bytes 0-0/1"), Some(0)),
            (Some("bytes */5000"), None),
            (Some("items 1000-4999/5000"), None),
            (None, None),
        ];
        for (header, want) in cases {
            let mut headers = HeaderMap::new();
            if let Some(h) = header {
                headers.insert(CONTENT_RANGE, HeaderValue::from_static(h));
            }
            assert_eq!(content_range_start(&headers), want, "{header:?}");
        }
    }

    #[tokio::test]
    async fn a_segment_lock_is_one_at_a_time_and_forgotten_when_unused() {
        let locks = Locks::default();
        let first = lock(&locks, 7).await;
        let waiting = tokio::spawn({
            let locks = Arc::clone(&locks);
            async move { lock(&locks, 7).await }
        });
        // Another segment's lock is not held up by the first.
        drop(lock(&locks, 8).await);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "two holders of segment 7's lock");
        drop(first);
        // Still awaited (then held) by the second: kept.
        let second = waiting.await.unwrap();
        assert_eq!(locks.lock().unwrap().len(), 1, "only segment 7's lock");
        drop(second);
        assert!(
            locks.lock().unwrap().is_empty(),
            "unused locks are forgotten"
        );
    }
}
