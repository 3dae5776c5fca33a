//! Segments another node of the district recorded, fetched from it for playback, alert clips
//! and exports on this node.
//!
//! Each node records the cameras it pulls onto its own disk, and the index (shared) names the
//! node of every segment. A clip that needs another node's segment asks that node
//! (`GET /api/v1/recordings/segments/{id}` at the URL it advertises) with the caller's own
//! credentials, so that node checks the same user's scope and audits what it sends. The copy
//! lands under `<data_dir>/cache/segments/`: a finished segment is kept there and served from
//! there the next time (a player asks for many byte ranges of one clip, each planned anew);
//! one still being written is fetched again each time, as far as it is written. The cache is
//! swept by age ([`CACHE_KEEP`]) and size ([`CACHE_MAX_BYTES`]) at each maintenance pass.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tracing::{debug, info};
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

/// Fetches and keeps copies of other nodes' segments (see the module documentation).
pub struct PeerSegments {
    cluster: Arc<Cluster>,
    dir: PathBuf,
    http: reqwest::Client,
}

impl PeerSegments {
    pub fn new(cluster: Arc<Cluster>, data_dir: &Path) -> PeerSegments {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(FETCH_TIMEOUT)
            .build()
            .unwrap_or_default();
        PeerSegments {
            cluster,
            dir: data_dir.join(CACHE_DIR),
            http,
        }
    }

    /// This node's id: the segments it records carry it.
    pub fn node(&self) -> &str {
        self.cluster.node()
    }

    /// A local file with `segment`'s bytes (it is another node's), fetched `on_behalf` of the
    /// caller unless a finished copy is here already.
    pub async fn local_copy(
        &self,
        segment: &SegmentRow,
        on_behalf: &OnBehalf,
    ) -> Result<PathBuf, FetchError> {
        let finished = segment.state != SegmentState::Open;
        let kept = self.dir.join(format!("{}.mp4", segment.id));
        if finished && touch(&kept) {
            return Ok(kept);
        }
        tokio::fs::create_dir_all(&self.dir).await?;
        let unique = format!(
            "{}-{}-{:08x}",
            segment.id,
            std::process::id(),
            rand::random::<u32>()
        );
        let part = self.dir.join(format!("{unique}.part"));
        let fetched = self.fetch(segment, on_behalf, &part).await;
        if let Err(e) = fetched {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
        // A finished segment is kept under its id; one being written under a name of its own,
        // as a later fetch of it may be read at the same time.
        let path = if finished {
            kept
        } else {
            self.dir.join(format!("{unique}.open.mp4"))
        };
        tokio::fs::rename(&part, &path).await?;
        Ok(path)
    }

    async fn fetch(
        &self,
        segment: &SegmentRow,
        on_behalf: &OnBehalf,
        to: &Path,
    ) -> Result<(), FetchError> {
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
        for (name, value) in on_behalf.headers() {
            req = req.header(name, value);
        }
        let mut resp = req.send().await.map_err(|e| {
            debug!(%url, error = %e, "cannot fetch another node's segment");
            unreachable("does not answer".into())
        })?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Err(FetchError::Gone { node }),
            status => return Err(FetchError::Refused { node, status }),
        }
        let mut file = tokio::fs::File::create(to).await?;
        let mut bytes = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            debug!(%url, error = %e, "another node's segment was cut off");
            unreachable("stopped sending".into())
        })? {
            file.write_all(&chunk).await?;
            bytes += chunk.len() as u64;
        }
        file.flush().await?;
        debug!(segment = segment.id, node = %node, bytes, "fetched another node's segment");
        Ok(())
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
}
