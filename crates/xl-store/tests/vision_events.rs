//! Vision events as a feed: the store numbers them (`seq`) gap-free and in commit order, also
//! when several hub nodes write one database, so a publisher can follow them with a cursor
//! ([`Store::vision_events_after`]). On SQLite (two stores on one file) and PostgreSQL.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;
use xl_core::{CameraId, CommunityId, ErrorKind};
use xl_store::{Backend, NewVisionEvent, Retention, Store, VisionEventFilter, VisionEventRow};

#[macro_use]
mod common;

use common::TestDb;

both_backends!(
    vision_events_are_numbered_gap_free_and_page,
    numbering_goes_on_after_a_purge_empties_vision_events,
    nodes_storing_vision_events_at_once_number_them_gap_free_in_commit_order,
);

/// 2025-01-01T00:00:00Z, a base for test times.
const T0: i64 = 1_735_689_600;

const DAY: i64 = 86_400;

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

fn vision(id: &str, at: i64) -> NewVisionEvent {
    NewVisionEvent {
        id: id.to_owned(),
        camera: CameraId::new("cam-1").unwrap(),
        community: CommunityId::new("c1").unwrap(),
        kind: "zone_entered".to_owned(),
        zone: Some("lobby".to_owned()),
        at: ts(at),
        body: json!({ "id": id, "track": 7 }),
    }
}

fn seqs(rows: &[VisionEventRow]) -> Vec<i64> {
    rows.iter().map(|r| r.seq).collect()
}

fn ids(rows: &[VisionEventRow]) -> Vec<&str> {
    rows.iter().map(|r| r.id.as_str()).collect()
}

async fn listed(s: &Store) -> Vec<VisionEventRow> {
    s.list_vision_events(&VisionEventFilter {
        limit: 1000,
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn vision_events_are_numbered_gap_free_and_page(db: &TestDb) {
    let s = &db.store;
    s.insert_vision_events(&[vision("v1", T0), vision("v2", T0 + 1), vision("v3", T0 + 2)])
        .await
        .unwrap();
    // A batch refused for a duplicate id takes no number.
    let dup = s
        .insert_vision_events(&[vision("v4", T0 + 3), vision("v1", T0 + 3)])
        .await
        .unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::InvalidInput);
    s.insert_vision_events(&[vision("v4", T0 + 3)])
        .await
        .unwrap();
    s.insert_vision_events(&[]).await.unwrap();
    s.insert_vision_events(&[vision("v5", T0 + 4), vision("v6", T0 + 5)])
        .await
        .unwrap();

    let all = s.vision_events_after(0, 100).await.unwrap();
    assert_eq!(seqs(&all), [1, 2, 3, 4, 5, 6]);
    assert_eq!(ids(&all), ["v1", "v2", "v3", "v4", "v5", "v6"]);
    let want = vision("v4", T0 + 3);
    let v4 = &all[3];
    assert_eq!(
        (
            &v4.camera,
            &v4.community,
            &v4.kind,
            &v4.zone,
            v4.at,
            &v4.body
        ),
        (
            &want.camera,
            &want.community,
            &want.kind,
            &want.zone,
            want.at,
            &want.body
        )
    );
    // The listing carries the same numbers.
    assert_eq!(seqs(&listed(s).await), [6, 5, 4, 3, 2, 1]);

    // Paging with a cursor.
    let mut pages = Vec::new();
    let mut cursor = 0;
    loop {
        let page = s.vision_events_after(cursor, 4).await.unwrap();
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        pages.push(seqs(&page));
    }
    assert_eq!(pages, [vec![1, 2, 3, 4], vec![5, 6]]);
    assert_eq!(seqs(&s.vision_events_after(2, 2).await.unwrap()), [3, 4]);
    assert!(s.vision_events_after(6, 10).await.unwrap().is_empty());
}

/// A publisher keeps a cursor over `seq`: a purge that empties the table must not make
/// numbering start again below it.
async fn numbering_goes_on_after_a_purge_empties_vision_events(db: &TestDb) {
    let s = &db.store;
    let now = T0 + 400 * DAY;
    s.insert_vision_events(&[vision("old-1", T0), vision("old-2", T0 + 1)])
        .await
        .unwrap();
    let report = s
        .purge(
            ts(now),
            &Retention::default(),
            &db.dir.path().join("snapshots"),
        )
        .await
        .unwrap();
    assert_eq!(report.vision_events, 2, "{report:?}");
    assert!(listed(s).await.is_empty());

    s.insert_vision_events(&[vision("new", now)]).await.unwrap();
    let after = s.vision_events_after(2, 10).await.unwrap();
    assert_eq!(seqs(&after), [3]);
    assert_eq!(ids(&after), ["new"]);
}

/// Two nodes (two stores on one database) store small batches of vision events at once,
/// while a third follows them with a cursor the way a publisher does. Every event gets one
/// number, the numbers are 1..=n, each node's events are numbered in the order it stored
/// them, and the follower never sees a number before all lower ones are committed (a page
/// always starts right after its cursor and has no holes).
async fn nodes_storing_vision_events_at_once_number_them_gap_free_in_commit_order(db: &TestDb) {
    const NODES: usize = 2;
    const WRITERS_PER_NODE: usize = 3;
    const BATCHES: usize = 15;
    let nodes = [db.store.clone(), Store::open(&db.url).await.unwrap()];
    let follower = Store::open(&db.url).await.unwrap();
    // Batches of 1 or 2 events.
    let batch_len = |b: usize| 1 + b % 2;
    let per_writer: usize = (0..BATCHES).map(batch_len).sum();
    let total = (NODES * WRITERS_PER_NODE * per_writer) as i64;

    let start = Arc::new(tokio::sync::Barrier::new(NODES * WRITERS_PER_NODE + 1));
    let mut writers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for w in 0..WRITERS_PER_NODE {
            let (s, start) = (node.clone(), start.clone());
            writers.push(tokio::spawn(async move {
                start.wait().await;
                for b in 0..BATCHES {
                    let batch: Vec<NewVisionEvent> = (0..batch_len(b))
                        .map(|i| vision(&format!("n{n}-w{w}-b{b:02}-{i}"), T0 + b as i64))
                        .collect();
                    s.insert_vision_events(&batch).await.unwrap();
                }
            }));
        }
    }
    let follow = {
        let start = start.clone();
        tokio::spawn(async move {
            start.wait().await;
            let mut cursor = 0;
            let mut seen = Vec::new();
            while cursor < total {
                let page = follower.vision_events_after(cursor, 7).await.unwrap();
                let want: Vec<i64> = (cursor + 1..=cursor + page.len() as i64).collect();
                assert_eq!(seqs(&page), want, "a hole after cursor {cursor}");
                if let Some(last) = page.last() {
                    cursor = last.seq;
                }
                seen.extend(page);
                tokio::task::yield_now().await;
            }
            follower.close().await;
            seen
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    // A generous deadline: a follower that misses an event would otherwise wait forever.
    let seen = tokio::time::timeout(Duration::from_secs(120), follow)
        .await
        .expect("the follower reached the last event")
        .unwrap();

    let rows = nodes[0].vision_events_after(0, 10_000).await.unwrap();
    assert_eq!(seqs(&rows), (1..=total).collect::<Vec<_>>());
    assert_eq!(rows, seen, "the follower saw every event once, in order");
    let mut by_writer: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in &rows {
        by_writer.entry(&r.id[..5]).or_default().push(&r.id);
    }
    assert_eq!(by_writer.len(), NODES * WRITERS_PER_NODE);
    for (writer, stored) in by_writer {
        let mut in_order = stored.clone();
        in_order.sort_unstable();
        assert_eq!(
            stored, in_order,
            "{writer}'s events out of its storing order"
        );
    }
    nodes[1].close().await;
}

/// A database from before vision events were numbered (0009), upgraded: its vision events
/// stay (listed, with seq 0) but are not in the feed, new events are numbered from 1, and
/// retention still deletes the old ones when they are due.
async fn vision_events_from_before_0009_stay_out_of_the_feed(backend: Backend) {
    let now = T0 + 400 * DAY;
    let old_row = |id: &str, at_secs: i64| {
        format!(
            "INSERT INTO vision_events (id, camera, community, kind, zone, at, body) VALUES \
             ('{id}', 'cam-1', 'c1', 'dwell', 'lobby', {}, '{{\"track\":3}}')",
            at_secs * 1000
        )
    };
    let seed = [old_row("before-due", T0), old_row("before-kept", now - DAY)];
    let seed: Vec<&str> = seed.iter().map(String::as_str).collect();
    let db = TestDb::upgraded(backend, 9, &seed).await;
    let s = &db.store;

    let old = listed(s).await;
    assert_eq!(ids(&old), ["before-kept", "before-due"]);
    assert_eq!(seqs(&old), [0, 0], "stored before numbering");
    assert_eq!(old[0].body, json!({ "track": 3 }));
    assert!(s.vision_events_after(0, 10).await.unwrap().is_empty());
    assert!(s.vision_events_after(-1, 10).await.unwrap().is_empty());

    s.insert_vision_events(&[vision("after-1", now), vision("after-2", now + 1)])
        .await
        .unwrap();
    let feed = s.vision_events_after(0, 10).await.unwrap();
    assert_eq!(seqs(&feed), [1, 2]);
    assert_eq!(ids(&feed), ["after-1", "after-2"]);

    let report = s
        .purge(
            ts(now),
            &Retention::default(),
            &db.dir.path().join("snapshots"),
        )
        .await
        .unwrap();
    assert_eq!(report.vision_events, 1, "{report:?}");
    assert_eq!(ids(&listed(s).await), ["after-2", "after-1", "before-kept"]);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vision_events_from_before_0009_stay_out_of_the_feed_on_sqlite() {
    vision_events_from_before_0009_stay_out_of_the_feed(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vision_events_from_before_0009_stay_out_of_the_feed_on_postgres() {
    vision_events_from_before_0009_stay_out_of_the_feed(Backend::Postgres).await;
}
