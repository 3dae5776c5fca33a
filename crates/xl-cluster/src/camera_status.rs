//! The camera-status stream: every status change of the cameras a node runs, on the JetStream
//! stream `{prefix}-camera-status` at `{prefix}.camera.<community>.status`, for other systems.
//! The board (`{prefix}-board`) is the district's current status for the nodes, reposted and
//! expiring; the stream is the history, one message per change.
//!
//! - Every node creates the stream (or opens it) when it joins ([`open_stream`]): file
//!   storage, `replicas` copies, [`STATUS_MAX_AGE`] and at most [`STATUS_PER_COMMUNITY`]
//!   messages per subject (the oldest go first), so a flapping camera bounds its community's
//!   history instead of growing the stream without end.
//! - A change waits in [`StatusChanges`] until the server acknowledges it; one not
//!   acknowledged (NATS away, a timeout) is published again, with the same `Nats-Msg-Id`
//!   (`{prefix}-camera-<camera>-<node>-<at_ms>`), so a retry of a change the server did store
//!   is dropped as a duplicate within [`DUPLICATE_WINDOW`].

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use tracing::{debug, warn};
use xl_core::nats::subject_token;

use crate::{Cluster, ClusterConfig, ClusterError, REQUEST_TIMEOUT};

/// How long the stream keeps a change: 7 days, as the alert, gate and vision streams.
pub const STATUS_MAX_AGE: Duration = Duration::from_secs(7 * 86_400);
/// Most changes kept per community (per subject). A community's cameras change status a few
/// times a day each (reboots, network blips): a week of that is a few thousand. 50,000 leaves
/// room for a camera that flaps, and bounds a community at about 25 MB (a change took 458
/// bytes in the stream, measured with the hub's camera JSON).
pub const STATUS_PER_COMMUNITY: i64 = 50_000;
/// How long the server remembers a message id: a change published again within it is
/// stored once.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Most changes waiting for an acknowledgement; beyond it the oldest is dropped (and logged).
/// A hundred cameras each changing twice while NATS is away for a minute fit.
const MAX_PENDING: usize = 1_000;

impl ClusterConfig {
    /// `{prefix}-camera-status`.
    pub fn camera_status_stream(&self) -> String {
        format!("{}-camera-status", self.bucket_prefix)
    }

    /// `{prefix}.camera.<community>.status`, the community's `.` and anything outside
    /// `A-Z a-z 0-9 _ -` replaced by `_` (as the other streams' subjects).
    pub fn camera_status_subject(&self, community: &str) -> String {
        format!(
            "{}.camera.{}.status",
            self.bucket_prefix,
            subject_token(community)
        )
    }

    /// `{prefix}-camera-<camera>-<node>-<at_ms>`: the same change always has the same id.
    fn camera_status_id(&self, change: &StatusChange) -> String {
        format!(
            "{}-camera-{}-{}-{}",
            self.bucket_prefix,
            subject_token(&change.camera),
            self.node,
            change.at_ms
        )
    }

    fn camera_status_config(&self) -> stream::Config {
        stream::Config {
            name: self.camera_status_stream(),
            description: Some("Xueliang camera status changes (xl-cluster)".to_owned()),
            subjects: vec![format!("{}.camera.>", self.bucket_prefix)],
            // Not memory: the history must survive a NATS restart.
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            max_age: STATUS_MAX_AGE,
            max_messages_per_subject: STATUS_PER_COMMUNITY,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        }
    }
}

/// Creates the stream, or opens it when it exists (another node made it, perhaps at the same
/// moment). An existing stream must take the subjects; its limits are left as they are (an
/// operator may have changed them).
pub(crate) async fn open_stream(
    js: &jetstream::Context,
    cfg: &ClusterConfig,
) -> Result<(), ClusterError> {
    let want = cfg.camera_status_config();
    let name = want.name.clone();
    let failed = |source: crate::BoxError| ClusterError::Stream {
        stream: name.clone(),
        op: "creating or opening",
        source,
    };
    let stream =
        match tokio::time::timeout(REQUEST_TIMEOUT, js.get_or_create_stream(want.clone())).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(failed(Box::new(e))),
            Err(_) => {
                return Err(ClusterError::Timeout {
                    op: format!("creating or opening stream {name}"),
                    timeout_ms: REQUEST_TIMEOUT.as_millis() as u64,
                });
            }
        };
    let have = &stream.cached_info().config;
    if have.subjects != want.subjects {
        return Err(failed(
            format!(
                "it exists with subjects {:?}, not {:?}",
                have.subjects, want.subjects
            )
            .into(),
        ));
    }
    debug!(stream = %name, "camera status stream ready");
    Ok(())
}

/// One status change of a camera this node runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusChange {
    /// The camera's id.
    pub camera: String,
    /// Its community: names the subject.
    pub community: String,
    /// When the change was seen (Unix milliseconds); part of the message id.
    pub at_ms: i64,
    /// The message: the camera's status as JSON.
    pub payload: Vec<u8>,
}

/// What the server answered to a published change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusAck {
    /// The message's sequence in the stream.
    pub stream_seq: u64,
    /// The server had it already (a retry of a change it stored): stored once.
    pub duplicate: bool,
}

impl Cluster {
    /// Publishes `change` on `{prefix}.camera.<community>.status` and waits for the stream's
    /// acknowledgement (bounded by a few seconds). Publishing the same change again is stored
    /// once (same message id) within [`DUPLICATE_WINDOW`].
    pub async fn publish_camera_status(
        &self,
        change: &StatusChange,
    ) -> Result<StatusAck, ClusterError> {
        let cfg = &self.inner.cfg;
        let subject = cfg.camera_status_subject(&change.community);
        let op = || format!("publishing camera {} status on {subject}", change.camera);
        let message = PublishMessage::build()
            .payload(change.payload.clone().into())
            .message_id(cfg.camera_status_id(change));
        let publish = async {
            let ack = self
                .inner
                .js
                .send_publish(subject.clone(), message)
                .await
                .map_err(|e| Box::new(e) as crate::BoxError)?;
            ack.await.map_err(|e| Box::new(e) as crate::BoxError)
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, publish).await {
            Ok(Ok(ack)) => Ok(StatusAck {
                stream_seq: ack.sequence,
                duplicate: ack.duplicate,
            }),
            Ok(Err(source)) => Err(ClusterError::Nats { op: op(), source }),
            Err(_) => Err(ClusterError::Timeout {
                op: op(),
                timeout_ms: REQUEST_TIMEOUT.as_millis() as u64,
            }),
        }
    }
}

/// The status changes of the cameras a node runs, from when they are seen until the stream
/// acknowledges them, in the order seen.
#[derive(Debug, Default)]
pub struct StatusChanges {
    /// Camera -> the status of its last change.
    last: HashMap<String, String>,
    /// Changes not yet acknowledged, oldest first.
    pending: VecDeque<StatusChange>,
}

impl StatusChanges {
    /// Whether `status` differs from `camera`'s last change (a camera not seen yet: yes).
    pub fn is_change(&self, camera: &str, status: &str) -> bool {
        self.last.get(camera).is_none_or(|last| last != status)
    }

    /// Queues `change`, the camera's new `status`. Past [`MAX_PENDING`] waiting, the oldest is
    /// dropped and logged.
    pub fn push(&mut self, status: &str, change: StatusChange) {
        self.last.insert(change.camera.clone(), status.to_owned());
        if self.pending.len() >= MAX_PENDING
            && let Some(old) = self.pending.pop_front()
        {
            warn!(camera = %old.camera, at_ms = old.at_ms, "camera status change dropped unpublished: too many waiting for NATS");
        }
        self.pending.push_back(change);
    }

    /// Forgets the last status of the cameras not kept (no longer run here), so that one that
    /// comes back is a change. Their queued changes are still published.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.last.retain(|camera, _| keep(camera));
    }

    /// Changes waiting for an acknowledgement.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Publishes the waiting changes in order, each removed once acknowledged; stops at the
    /// first failure (the rest wait for the next call). Returns how many were acknowledged.
    pub async fn publish(&mut self, cluster: &Cluster) -> Result<usize, ClusterError> {
        let mut done = 0;
        while let Some(change) = self.pending.front() {
            let ack = cluster.publish_camera_status(change).await?;
            debug!(camera = %change.camera, stream_seq = ack.stream_seq, duplicate = ack.duplicate, "camera status change published");
            self.pending.pop_front();
            done += 1;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(camera: &str, at_ms: i64) -> StatusChange {
        StatusChange {
            camera: camera.into(),
            community: "xingfu".into(),
            at_ms,
            payload: b"{}".to_vec(),
        }
    }

    #[test]
    fn names_and_ids() {
        let cfg = ClusterConfig {
            node: "n1".into(),
            ..Default::default()
        };
        assert_eq!(cfg.camera_status_stream(), "xl-camera-status");
        assert_eq!(
            cfg.camera_status_subject("xingfu.east 1"),
            "xl.camera.xingfu_east_1.status"
        );
        assert_eq!(cfg.camera_status_subject(""), "xl.camera._.status");
        assert_eq!(
            cfg.camera_status_id(&change("cam-1", 1_700_000_000_123)),
            "xl-camera-cam-1-n1-1700000000123"
        );
        let s = cfg.camera_status_config();
        assert_eq!(s.subjects, vec!["xl.camera.>".to_owned()]);
        assert_eq!(s.storage, stream::StorageType::File);
        assert_eq!(s.max_messages_per_subject, STATUS_PER_COMMUNITY);
        assert_eq!(s.max_age, STATUS_MAX_AGE);
    }

    #[test]
    fn a_change_is_a_new_status_and_is_kept_until_published() {
        let mut c = StatusChanges::default();
        assert!(c.is_change("cam-1", "connecting"));
        c.push("connecting", change("cam-1", 1));
        assert!(!c.is_change("cam-1", "connecting"));
        assert!(c.is_change("cam-1", "online"));
        c.push("online", change("cam-1", 2));
        assert_eq!(c.pending(), 2);
        // A camera that left and comes back is a change again; its changes stay queued.
        c.retain(|id| id != "cam-1");
        assert!(c.is_change("cam-1", "online"));
        assert_eq!(c.pending(), 2);
        for i in 0..MAX_PENDING as i64 {
            c.push("online", change("cam-2", 10 + i));
        }
        assert_eq!(c.pending(), MAX_PENDING);
        assert_eq!(
            c.pending.front().map(|c| c.at_ms),
            Some(10),
            "oldest dropped"
        );
    }
}
