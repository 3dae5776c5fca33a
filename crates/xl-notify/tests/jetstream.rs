//! JetStream out against a real nats-server 2.15.1 (`XUELIANG_NATS_SERVER`, one server per
//! test), read back by a JetStream consumer: the alert stream, and the gate and vision event
//! feeds.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use tokio_util::sync::CancellationToken;
use xl_core::alert::AlertChange;
use xl_core::{AlertKind, OutboxEntry, Severity};
use xl_notify::jetstream::NatsAuth;
use xl_notify::{FeedKind, JetStreamOut, JetStreamOutConfig, Outbox};
use xl_testkit::{NatsServer, StreamMessage};

use common::*;

/// Generous: the machine may be loaded. Nothing waits this long when things work.
const WAIT: Duration = Duration::from_secs(60);

/// A config for `nats` with a random prefix, fast retries and polls.
fn config(nats: &NatsServer) -> JetStreamOutConfig {
    toml::from_str(&format!(
        "urls = [\"{}\"]\nprefix = \"{}\"\n\
         backoff_initial_secs = 0.05\nbackoff_max_secs = 0.5\npoll_interval_secs = 0.5\n",
        nats.url(),
        rand_id("xlt"),
    ))
    .unwrap()
}

/// A message as a JetStream consumer got it, its payload an alert's outbox entry.
#[derive(Debug)]
struct Got {
    subject: String,
    msg_id: Option<String>,
    stream_seq: u64,
    entry: OutboxEntry,
}

/// [`read_raw`] of the alert stream, each payload read as an outbox entry.
async fn read_stream(
    nats: &NatsServer,
    cfg: &JetStreamOutConfig,
    filter: Option<String>,
) -> (Vec<Got>, u64) {
    let (raw, count) = read_raw(nats, cfg, filter).await;
    let got = raw
        .into_iter()
        .map(|r| Got {
            subject: r.subject,
            msg_id: r.msg_id,
            stream_seq: r.stream_seq,
            entry: serde_json::from_slice(&r.payload).unwrap(),
        })
        .collect();
    (got, count)
}

/// Everything in the stream of `cfg` (optionally only `filter`), in stream order, read by a
/// fresh pull consumer until a fetch comes back empty; and the stream's message count.
async fn read_raw(
    nats: &NatsServer,
    cfg: &JetStreamOutConfig,
    filter: Option<String>,
) -> (Vec<StreamMessage>, u64) {
    let options = match nats.user_and_password() {
        Some((user, password)) => {
            async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
        }
        None => async_nats::ConnectOptions::new(),
    };
    let client = options.connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let mut stream = js.get_stream(cfg.stream_name()).await.unwrap();
    let count = stream.info().await.unwrap().state.messages;
    let messages = xl_testkit::stream_messages(&js, &cfg.stream_name(), filter.as_deref())
        .await
        .unwrap();
    (messages, count)
}

/// Asserts the stream holds exactly the outbox entries 1..=n, each once, in seq order.
async fn assert_exactly_once_in_order(
    nats: &NatsServer,
    cfg: &JetStreamOutConfig,
    outbox: &MemOutbox,
    n: i64,
) {
    let (got, count) = read_stream(nats, cfg, None).await;
    let seqs: Vec<i64> = got.iter().map(|g| g.entry.seq).collect();
    let want: Vec<i64> = (1..=n).collect();
    assert_eq!(seqs, want, "the consumer must see each seq once, in order");
    assert_eq!(count, n as u64, "the stream holds a duplicate");
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.stream_seq, i as u64 + 1);
        assert_eq!(g.entry, outbox.entry(g.entry.seq));
        assert_eq!(
            g.msg_id.as_deref(),
            Some(cfg.message_id(g.entry.seq).as_str())
        );
    }
}

/// Waits until `cond` holds, or panics naming `what` after [`WAIT`].
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn entries_are_published_in_order_on_their_subjects_and_the_cursor_follows() {
    init_logs();
    let nats = NatsServer::start().unwrap();
    let cfg = config(&nats);
    let p = cfg.prefix.clone();
    let outbox = MemOutbox::new();
    let cases = [
        ("xingfu", AlertKind::GateForcedOpen),
        ("xingfu", AlertKind::CameraOffline),
        ("heping-2", AlertKind::CrowdGathering),
        ("heping-2", AlertKind::GateForcedOpen),
        ("xingfu", AlertKind::GateTamper),
    ];
    // Three are in the outbox before the publisher starts, two come after (the watch).
    for (n, (community, kind)) in cases[..3].iter().enumerate() {
        outbox.push(
            AlertChange::Raised,
            alert(community, *kind, Severity::Major, n as u64),
        );
    }
    let shutdown = CancellationToken::new();
    let (out, task) = JetStreamOut::start(
        cfg.clone(),
        Arc::clone(&outbox),
        outbox.watch(),
        shutdown.clone(),
    )
    .unwrap();
    assert_eq!(outbox.wait_cursor("jetstream", 3, WAIT).await, 3);
    for (n, (community, kind)) in cases.iter().enumerate().skip(3) {
        outbox.push(
            AlertChange::Raised,
            alert(community, *kind, Severity::Critical, n as u64),
        );
    }
    assert_eq!(outbox.wait_cursor("jetstream", 5, WAIT).await, 5);

    assert_exactly_once_in_order(&nats, &cfg, &outbox, 5).await;
    let (got, _) = read_stream(&nats, &cfg, None).await;
    assert_eq!(
        got[0].subject,
        format!("{p}.alerts.xingfu.gate_forced_open")
    );
    for (g, (community, kind)) in got.iter().zip(cases) {
        let kind_token = kind.as_str().replace('.', "_");
        assert_eq!(g.subject, format!("{p}.alerts.{community}.{kind_token}"));
    }
    assert_eq!(
        got[0].msg_id.as_deref(),
        Some(format!("{p}-outbox-1").as_str())
    );
    // The subjects are usable: one kind across communities.
    let (forced, _) =
        read_stream(&nats, &cfg, Some(format!("{p}.alerts.*.gate_forced_open"))).await;
    let seqs: Vec<i64> = forced.iter().map(|g| g.entry.seq).collect();
    assert_eq!(seqs, vec![1, 4]);

    let s = out.stats();
    assert!(s.connected);
    assert_eq!((s.published, s.duplicates, s.cursor, s.lag), (5, 0, 5, 0));
    // Only acknowledged seqs were ever stored as the cursor, never going back.
    let writes = outbox.cursor_writes.lock().unwrap().clone();
    assert!(
        writes
            .iter()
            .all(|(n, s)| n == "jetstream" && (1..=5).contains(s))
            && writes.windows(2).all(|w| w[0].1 < w[1].1),
        "{writes:?}"
    );

    shutdown.cancel();
    task.await.unwrap();
    assert!(!out.stats().connected);
}

#[tokio::test]
async fn entries_reach_a_server_that_requires_a_user_and_password() {
    init_logs();
    let nats = NatsServer::start_with_user("hub", "s3cret-pw").unwrap();
    let cfg = JetStreamOutConfig {
        auth: NatsAuth::UserPassword {
            user: "hub".into(),
            password: "s3cret-pw".into(),
        },
        ..config(&nats)
    };
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains("s3cret-pw") && shown.contains("hub"),
        "{shown}"
    );
    let outbox = MemOutbox::new();
    for n in 1..=3 {
        outbox.push(
            AlertChange::Raised,
            alert("xingfu", AlertKind::GateForcedOpen, Severity::Major, n),
        );
    }
    let shutdown = CancellationToken::new();
    let (out, task) = JetStreamOut::start(
        cfg.clone(),
        Arc::clone(&outbox),
        outbox.watch(),
        shutdown.clone(),
    )
    .unwrap();
    assert_eq!(outbox.wait_cursor("jetstream", 3, WAIT).await, 3);
    assert_eq!(out.stats().published, 3);
    assert_exactly_once_in_order(&nats, &cfg, &outbox, 3).await;
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_node_resuming_from_an_older_cursor_publishes_nothing_twice() {
    init_logs();
    let nats = NatsServer::start().unwrap();
    let cfg = config(&nats);
    let outbox = MemOutbox::new();
    for n in 1..=8 {
        outbox.push(
            AlertChange::Raised,
            alert("xingfu", AlertKind::GateForcedOpen, Severity::Major, n),
        );
    }
    let (first, task) = JetStreamOut::start(
        cfg.clone(),
        Arc::clone(&outbox),
        outbox.watch(),
        CancellationToken::new(),
    )
    .unwrap();
    assert_eq!(outbox.wait_cursor("jetstream", 8, WAIT).await, 8);
    assert_eq!(first.stats().published, 8);
    // The first node dies, and had stored its cursor only up to 3.
    task.abort();
    let _ = task.await;
    outbox.set_cursor("jetstream", 3).await.unwrap();
    for n in 9..=10 {
        outbox.push(
            AlertChange::Acknowledged,
            alert("xingfu", AlertKind::GateForcedOpen, Severity::Major, n),
        );
    }

    // Another node takes the notify lease and resumes from the stored cursor.
    let shutdown = CancellationToken::new();
    let (second, task) = JetStreamOut::start(
        cfg.clone(),
        Arc::clone(&outbox),
        outbox.watch(),
        shutdown.clone(),
    )
    .unwrap();
    assert_eq!(outbox.wait_cursor("jetstream", 10, WAIT).await, 10);
    let s = second.stats();
    assert_eq!(
        (s.duplicates, s.published, s.cursor),
        (5, 2, 10),
        "4..=8 are duplicates the server dropped; 9 and 10 are new"
    );
    assert_exactly_once_in_order(&nats, &cfg, &outbox, 10).await;
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn two_nodes_publishing_at_once_keep_the_stream_exactly_once_and_in_order() {
    init_logs();
    let nats = NatsServer::start().unwrap();
    let cfg = config(&nats);
    let outbox = MemOutbox::new();
    for n in 1..=30 {
        outbox.push(
            AlertChange::Raised,
            alert("xingfu", AlertKind::CameraOffline, Severity::Minor, n),
        );
    }
    // Both race to create the stream (it does not exist yet) and publish the same entries,
    // as for a moment during a lease move.
    let shutdown = CancellationToken::new();
    let (a, task_a) = JetStreamOut::start(
        cfg.clone(),
        Arc::clone(&outbox),
        outbox.watch(),
        shutdown.clone(),
    )
    .unwrap();
    let (b, task_b) = JetStreamOut::start(
        cfg.clone(),
        Arc::clone(&outbox),
        outbox.watch(),
        shutdown.clone(),
    )
    .unwrap();
    wait_until("both publishers to reach seq 30", || {
        a.stats().cursor == 30 && b.stats().cursor == 30
    })
    .await;
    assert_eq!(a.stats().published + b.stats().published, 30);
    assert_exactly_once_in_order(&nats, &cfg, &outbox, 30).await;
    shutdown.cancel();
    task_a.await.unwrap();
    task_b.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_way_loses_and_doubles_nothing() {
    init_logs();
    let mut nats = NatsServer::start().unwrap();
    let cfg = config(&nats);
    let outbox = MemOutbox::new();
    let shutdown = CancellationToken::new();
    let (out, task) = JetStreamOut::start(
        cfg.clone(),
        Arc::clone(&outbox),
        outbox.watch(),
        shutdown.clone(),
    )
    .unwrap();
    // Alerts keep coming all along.
    const N: i64 = 150;
    let producer = {
        let outbox = Arc::clone(&outbox);
        tokio::spawn(async move {
            for n in 1..=N {
                outbox.push(
                    AlertChange::Raised,
                    alert(
                        "xingfu",
                        AlertKind::GateTamper,
                        Severity::Critical,
                        n as u64,
                    ),
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    wait_until("seq 20 published", || out.stats().cursor >= 20).await;

    tokio::task::block_in_place(|| nats.stop());
    wait_until("the publisher to see NATS gone", || !out.stats().connected).await;
    // It keeps trying; at least one attempt fails (no ack) before NATS comes back.
    wait_until("a failed attempt", || out.stats().failures >= 1).await;
    let cursor_while_down = out.stats().cursor;
    assert!(cursor_while_down < N, "NATS went down before the end");

    tokio::task::block_in_place(|| nats.restart()).unwrap();
    producer.await.unwrap();
    assert_eq!(
        outbox.wait_cursor("jetstream", N, WAIT).await,
        N,
        "publishing did not resume; nats log:\n{}",
        nats.log_tail()
    );
    assert!(out.stats().connected);
    assert_exactly_once_in_order(&nats, &cfg, &outbox, N).await;
    let s = out.stats();
    assert!(
        s.published <= N as u64 && s.published + s.duplicates >= N as u64,
        "{s:?}"
    );
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn an_existing_stream_is_opened_keeping_its_settings_but_age_and_window() {
    init_logs();
    let nats = NatsServer::start().unwrap();
    let cfg = config(&nats);
    // Made earlier by another node with an older config, then tuned by an operator.
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    js.create_stream(jetstream::stream::Config {
        max_age: Duration::from_secs(86_400),
        duplicate_window: Duration::from_secs(10),
        max_messages: 10_000,
        description: Some("tuned by the operator".into()),
        ..cfg.stream_config()
    })
    .await
    .unwrap();
    let outbox = MemOutbox::new();
    outbox.push(
        AlertChange::Raised,
        alert("xingfu", AlertKind::GateForcedOpen, Severity::Major, 1),
    );
    let shutdown = CancellationToken::new();
    let (_out, task) = JetStreamOut::start(
        cfg.clone(),
        Arc::clone(&outbox),
        outbox.watch(),
        shutdown.clone(),
    )
    .unwrap();
    assert_eq!(outbox.wait_cursor("jetstream", 1, WAIT).await, 1);
    let mut stream = js.get_stream(cfg.stream_name()).await.unwrap();
    let c = stream.info().await.unwrap().config.clone();
    assert_eq!(c.max_age, Duration::from_secs(7 * 86_400));
    assert_eq!(c.duplicate_window, Duration::from_secs(120));
    assert_eq!(c.max_messages, 10_000);
    assert_eq!(c.description.as_deref(), Some("tuned by the operator"));
    assert_exactly_once_in_order(&nats, &cfg, &outbox, 1).await;
    shutdown.cancel();
    task.await.unwrap();
}

/// A config for the feed `feed` of `nats`, with a random prefix and fast retries and polls.
fn feed_config(nats: &NatsServer, feed: FeedKind) -> JetStreamOutConfig {
    JetStreamOutConfig {
        feed,
        ..config(nats)
    }
}

/// Asserts the stream of `cfg` holds exactly `want` (each once, in seq order): its subject,
/// its message id and its payload byte for byte.
async fn assert_feed_holds_exactly(
    nats: &NatsServer,
    cfg: &JetStreamOutConfig,
    want: &[xl_notify::FeedEntry],
) {
    let (got, count) = read_raw(nats, cfg, None).await;
    assert_eq!(count, want.len() as u64, "the stream holds a duplicate");
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.stream_seq, i as u64 + 1);
        assert_eq!(
            g.subject,
            cfg.subject(&w.community, &w.kind),
            "seq {}",
            w.seq
        );
        assert_eq!(g.msg_id.as_deref(), Some(cfg.message_id(w.seq).as_str()));
        assert_eq!(g.payload, w.payload, "seq {}", w.seq);
    }
}

#[tokio::test]
async fn gate_and_vision_events_are_published_in_seq_order_beside_the_alerts() {
    init_logs();
    let nats = NatsServer::start().unwrap();
    let alerts_cfg = config(&nats);
    let p = alerts_cfg.prefix.clone();
    let shutdown = CancellationToken::new();
    // The alert stream of the same prefix runs beside them: the subjects do not overlap.
    let outbox = MemOutbox::new();
    outbox.push(
        AlertChange::Raised,
        alert("xingfu", AlertKind::GateForcedOpen, Severity::Major, 1),
    );
    let (_, alerts_task) = JetStreamOut::start(
        alerts_cfg.clone(),
        Arc::clone(&outbox),
        outbox.watch(),
        shutdown.clone(),
    )
    .unwrap();

    let feeds = [
        (
            FeedKind::GateEvents,
            "gate",
            [
                ("xingfu", "door_forced_open"),
                ("heping-2", "access_denied"),
                ("xingfu", "access.granted"),
                ("heping-2", "door_forced_open"),
                ("xingfu", "tamper"),
            ],
        ),
        (
            FeedKind::VisionEvents,
            "vision",
            [
                ("xingfu", "entered_zone"),
                ("heping-2", "dwell_exceeded"),
                ("xingfu", "count over limit"),
                ("heping-2", "count_over_limit"),
                ("xingfu", "entered_zone"),
            ],
        ),
    ];
    for (feed, token, events) in feeds {
        let cfg = JetStreamOutConfig {
            prefix: p.clone(),
            ..feed_config(&nats, feed)
        };
        assert_eq!(cfg.stream_name(), format!("{p}-{token}-events"));
        let mem = MemFeed::new();
        // seq 3 was deleted by retention before the publisher started: a gap is no hole.
        let seqs = [1, 2, 4, 5, 6];
        let mut want = Vec::new();
        for (seq, (community, kind)) in seqs.iter().zip(events).take(3) {
            want.push(mem.push(*seq, community, kind));
        }
        let stop = CancellationToken::new();
        let (out, task) =
            JetStreamOut::start(cfg.clone(), Arc::clone(&mem), mem.watch(), stop.clone()).unwrap();
        let cursor = feed.cursor();
        assert_eq!(cursor, format!("jetstream.{token}"));
        assert_eq!(mem.wait_cursor(cursor, 4, WAIT).await, 4);
        // Two more, woken by the watch.
        for (seq, (community, kind)) in seqs.iter().zip(events).skip(3) {
            want.push(mem.push(*seq, community, kind));
        }
        assert_eq!(mem.wait_cursor(cursor, 6, WAIT).await, 6);

        assert_feed_holds_exactly(&nats, &cfg, &want).await;
        let (got, _) = read_raw(&nats, &cfg, None).await;
        assert_eq!(
            got[0].subject,
            format!("{p}.{token}.xingfu.{}", events[0].1)
        );
        assert_eq!(
            got[0].msg_id.as_deref(),
            Some(format!("{p}-{token}-1").as_str())
        );
        // Dots and spaces in a kind become `_`.
        assert_eq!(
            got[2].subject,
            format!(
                "{p}.{token}.xingfu.{}",
                events[2].1.replace(['.', ' '], "_")
            )
        );
        // The subjects are usable: one community across kinds.
        let (heping, _) = read_raw(&nats, &cfg, Some(format!("{p}.{token}.heping-2.*"))).await;
        let ids: Vec<_> = heping.iter().map(|g| g.msg_id.clone().unwrap()).collect();
        assert_eq!(
            ids,
            vec![format!("{p}-{token}-2"), format!("{p}-{token}-5")]
        );

        let s = out.stats();
        assert_eq!((s.published, s.duplicates, s.cursor, s.lag), (5, 0, 6, 0));
        let writes = mem.cursor_writes.lock().unwrap().clone();
        assert!(
            writes.iter().all(|(n, s)| n == cursor && seqs.contains(s))
                && writes.windows(2).all(|w| w[0].1 < w[1].1),
            "{writes:?}"
        );
        stop.cancel();
        task.await.unwrap();
        assert!(!out.stats().connected);
    }
    shutdown.cancel();
    alerts_task.await.unwrap();
    // The alert stream kept its names and ids.
    assert_eq!(outbox.stored_cursor("jetstream"), 1);
    assert_exactly_once_in_order(&nats, &alerts_cfg, &outbox, 1).await;
    assert_eq!(alerts_cfg.message_id(1), format!("{p}-outbox-1"));
}

#[tokio::test]
async fn a_gate_feed_resuming_from_an_older_cursor_stores_nothing_twice() {
    init_logs();
    let nats = NatsServer::start().unwrap();
    let cfg = feed_config(&nats, FeedKind::GateEvents);
    let cursor = FeedKind::GateEvents.cursor();
    let mem = MemFeed::new();
    let mut want = Vec::new();
    for seq in 1..=8 {
        want.push(mem.push(seq, "xingfu", "door_forced_open"));
    }
    let (first, task) = JetStreamOut::start(
        cfg.clone(),
        Arc::clone(&mem),
        mem.watch(),
        CancellationToken::new(),
    )
    .unwrap();
    assert_eq!(mem.wait_cursor(cursor, 8, WAIT).await, 8);
    assert_eq!(first.stats().published, 8);
    // The first node dies, and had stored its cursor only up to 3.
    task.abort();
    let _ = task.await;
    xl_notify::Feed::set_cursor(&*mem, cursor, 3).await.unwrap();
    for seq in 9..=10 {
        want.push(mem.push(seq, "heping-2", "access_denied"));
    }

    // Another node takes the notify lease and resumes from the stored cursor.
    let shutdown = CancellationToken::new();
    let (second, task) =
        JetStreamOut::start(cfg.clone(), Arc::clone(&mem), mem.watch(), shutdown.clone()).unwrap();
    assert_eq!(mem.wait_cursor(cursor, 10, WAIT).await, 10);
    let s = second.stats();
    assert_eq!(
        (s.duplicates, s.published, s.cursor),
        (5, 2, 10),
        "4..=8 are duplicates the server dropped; 9 and 10 are new"
    );
    assert_feed_holds_exactly(&nats, &cfg, &want).await;
    shutdown.cancel();
    task.await.unwrap();
}
