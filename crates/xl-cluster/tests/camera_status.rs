//! The camera-status stream against a real nats-server 2.15.1 (`XUELIANG_NATS_SERVER`, from
//! `scripts/ensure-nats`), each test with its own server and prefix:
//! - a change is on `{prefix}.camera.<community>.status` with its payload and message id, and
//!   the same change published again is stored once;
//! - a change made while NATS is away stays queued and is in the stream once NATS is back.

use std::time::Duration;

use async_nats::jetstream;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;
use xl_cluster::{Cluster, ClusterConfig, STATUS_PER_COMMUNITY, StatusChange, StatusChanges};
use xl_testkit::{NatsServer, TcpProxy};

/// How long a condition may take to come true before a test fails.
const SETTLE: Duration = Duration::from_secs(30);

fn config(url: &str, prefix: &str) -> ClusterConfig {
    ClusterConfig {
        urls: vec![url.to_owned()],
        node: "n1".to_owned(),
        bucket_prefix: prefix.to_owned(),
        ..Default::default()
    }
}

fn prefix() -> String {
    format!("cs{}-{:x}", std::process::id(), rand_u32())
}

/// Distinct enough between the tests of one run (no rand in this crate's dev-dependencies).
fn rand_u32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

fn change(camera: &str, community: &str, status: &str, at_ms: i64) -> StatusChange {
    StatusChange {
        camera: camera.to_owned(),
        community: community.to_owned(),
        at_ms,
        payload: serde_json::to_vec(&serde_json::json!({
            "at_ms": at_ms,
            "camera": { "id": camera, "community": community, "status": status, "node": "n1" },
        }))
        .unwrap(),
    }
}

/// Every message of `stream` on `subject` (a filter): (subject, `Nats-Msg-Id`, payload).
async fn messages(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
) -> Vec<(String, String, Vec<u8>)> {
    xl_testkit::stream_messages(js, stream, Some(subject))
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.subject, m.msg_id.unwrap_or_default(), m.payload))
        .collect()
}

#[tokio::test]
async fn a_change_is_on_its_communitys_subject_and_a_retry_is_stored_once() {
    let nats = NatsServer::start().expect("start nats-server (scripts/ensure-nats)");
    let prefix = prefix();
    let shutdown = CancellationToken::new();
    let cluster = Cluster::start(config(&nats.url(), &prefix), shutdown.clone())
        .await
        .unwrap();
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());

    // Made when the node joined: on files, bounded per community.
    let name = format!("{prefix}-camera-status");
    assert_eq!(cluster.config().camera_status_stream(), name);
    let info = js
        .get_stream(&name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(info.config.subjects, vec![format!("{prefix}.camera.>")]);
    assert_eq!(info.config.storage, jetstream::stream::StorageType::File);
    assert_eq!(info.config.max_messages_per_subject, STATUS_PER_COMMUNITY);
    assert_eq!(info.config.max_age, Duration::from_secs(7 * 86_400));

    let east = change("cam-1", "xingfu.east", "online", 1_700_000_000_123);
    let first = cluster.publish_camera_status(&east).await.unwrap();
    assert!(!first.duplicate);
    // The same change again (its ack was lost, say): the server has it already.
    let again = cluster.publish_camera_status(&east).await.unwrap();
    assert!(again.duplicate, "{again:?}");
    assert_eq!(again.stream_seq, first.stream_seq);
    let west = change("cam-2", "hexie", "offline", 1_700_000_000_456);
    assert!(
        !cluster
            .publish_camera_status(&west)
            .await
            .unwrap()
            .duplicate
    );

    let subject = format!("{prefix}.camera.xingfu_east.status");
    assert_eq!(
        cluster.config().camera_status_subject("xingfu.east"),
        subject
    );
    let got = messages(&js, &name, &subject).await;
    assert_eq!(
        got,
        vec![(
            subject.clone(),
            format!("{prefix}-camera-cam-1-n1-1700000000123"),
            east.payload.clone()
        )]
    );
    let got = messages(&js, &name, &format!("{prefix}.camera.hexie.status")).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].2, west.payload);
    let info = js
        .get_stream(&name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(info.state.messages, 2, "each change once");

    // A second node opens the stream another made.
    let other = Cluster::start(
        ClusterConfig {
            node: "n2".into(),
            ..config(&nats.url(), &prefix)
        },
        shutdown.clone(),
    )
    .await
    .unwrap();
    other.stop().await;
    cluster.stop().await;
}

#[tokio::test]
async fn a_change_made_while_nats_is_away_is_published_once_it_is_back() {
    let nats = NatsServer::start().expect("start nats-server (scripts/ensure-nats)");
    let proxy = TcpProxy::start(nats.addr()).unwrap();
    let prefix = prefix();
    let shutdown = CancellationToken::new();
    let cluster = Cluster::start(config(&proxy.nats_url(), &prefix), shutdown.clone())
        .await
        .unwrap();
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let name = cluster.config().camera_status_stream();

    let mut changes = StatusChanges::default();
    changes.push("online", change("cam-1", "xingfu", "online", 1));
    assert_eq!(changes.publish(&cluster).await.unwrap(), 1);

    proxy.cut();
    assert!(changes.is_change("cam-1", "offline"));
    changes.push("offline", change("cam-1", "xingfu", "offline", 2));
    let err = changes.publish(&cluster).await.unwrap_err();
    assert_eq!(err.kind(), xl_core::ErrorKind::Unavailable, "{err}");
    assert_eq!(changes.pending(), 1, "kept until acknowledged");

    proxy.heal();
    let deadline = Instant::now() + SETTLE;
    while changes.pending() > 0 {
        assert!(Instant::now() < deadline, "still waiting after {SETTLE:?}");
        if changes.publish(&cluster).await.is_err() {
            sleep(Duration::from_millis(200)).await;
        }
    }
    let got = messages(&js, &name, &format!("{prefix}.camera.xingfu.status")).await;
    let ids: Vec<&str> = got.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        [
            format!("{prefix}-camera-cam-1-n1-1"),
            format!("{prefix}-camera-cam-1-n1-2")
        ],
        "both changes, in order, each once"
    );
    cluster.stop().await;
}
