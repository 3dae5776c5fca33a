//! Several hub nodes on one database, on SQLite (two stores on one file) and on PostgreSQL
//! (two stores on one database): a gate event that every node ingests is stored once, and a
//! commit fenced by an older lease revision is refused.

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use xl_core::alert::AlertAction;
use xl_core::{Alert, AlertId, AlertKind, AlertState, CommunityId, ErrorKind, GateId, Severity};
use xl_store::{
    Backend, Change, Commit, Fence, GateBatchStored, NewDeadLetter, NewGateEvent, Store, StoreError,
};

#[macro_use]
mod common;

use common::TestDb;

both_backends!(
    a_gate_event_from_two_nodes_is_stored_once,
    nodes_storing_the_same_events_at_once_store_each_once,
    a_fenced_commit_from_an_older_lease_is_refused_whole,
    concurrent_fenced_commits_land_in_revision_order,
);

/// 2025-01-01T00:00:00Z, a base for test times.
const T0: i64 = 1_735_689_600;

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

/// The same gate event as one node ingests it: its own id, the event's dedup key, the
/// node's receive time.
fn event(id: &str, key: &str, received_secs: i64) -> NewGateEvent {
    NewGateEvent {
        id: id.to_owned(),
        gate: GateId::new("east").unwrap(),
        community: CommunityId::new("c1").unwrap(),
        camera: None,
        firmware: "hikvision-isapi".to_owned(),
        kind: "access_granted".to_owned(),
        received_at: ts(received_secs),
        occurred_at: None,
        dedup_key: key.to_owned(),
        evidence: None,
        body: json!({ "id": id, "card": "0012345" }),
    }
}

/// A second node: another store (pool) on the same database.
async fn other_node(db: &TestDb) -> Store {
    Store::open(&db.url).await.unwrap()
}

async fn stored_ids(s: &Store) -> Vec<String> {
    s.gate_events_after(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

const WINDOW: SignedDuration = SignedDuration::from_secs(5);

async fn a_gate_event_from_two_nodes_is_stored_once(db: &TestDb) {
    let a = &db.store;
    let b = other_node(db).await;

    let got = a
        .insert_gate_batch_once(&[event("a-1", "east|card-1", T0)], &[], WINDOW)
        .await
        .unwrap();
    assert_eq!(
        got,
        GateBatchStored {
            stored: 1,
            duplicates: 0
        }
    );
    // Node b received the same event a little later (its clock, its broker delivery), and
    // again at the window's edge: both skipped. Its dead letter is stored all the same.
    let dl = NewDeadLetter {
        id: "b-dl-1".to_owned(),
        received_at: ts(T0 + 1),
        firmware: None,
        gate: None,
        error: "expected JSON at byte 0".to_owned(),
        body: json!({ "raw_base64": "AAEC" }),
    };
    let got = b
        .insert_gate_batch_once(
            &[
                event("b-1", "east|card-1", T0 + 1),
                event("b-1-edge", "east|card-1", T0 + 5),
            ],
            std::slice::from_ref(&dl),
            WINDOW,
        )
        .await
        .unwrap();
    assert_eq!(
        got,
        GateBatchStored {
            stored: 0,
            duplicates: 2
        }
    );
    assert_eq!(a.list_dead_letters(10).await.unwrap(), vec![dl]);
    // Received before the stored one, within the window: the same event too.
    let got = b
        .insert_gate_batch_once(&[event("b-1-early", "east|card-1", T0 - 5)], &[], WINDOW)
        .await
        .unwrap();
    assert_eq!(got.duplicates, 1);
    assert_eq!(stored_ids(a).await, ["a-1"]);

    // The same key past the window is a new event (the same card swiped again), and a
    // different key at the same time is another event; a repeat inside one batch is skipped.
    let got = b
        .insert_gate_batch_once(
            &[
                event("b-2", "east|card-1", T0 + 6),
                event("b-3", "east|card-2", T0 + 6),
                event("b-3-again", "east|card-2", T0 + 7),
                event("b-4", "east|card-1", T0 - 6),
            ],
            &[],
            WINDOW,
        )
        .await
        .unwrap();
    assert_eq!(
        got,
        GateBatchStored {
            stored: 3,
            duplicates: 1
        }
    );
    assert_eq!(stored_ids(&b).await, ["a-1", "b-2", "b-3", "b-4"]);
    let seqs: Vec<i64> = a
        .gate_events_after(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4], "skipping leaves no gap");

    // The plain insert keeps its behaviour: no dedup by key.
    a.insert_gate_batch(&[event("a-plain", "east|card-1", T0)], &[])
        .await
        .unwrap();
    assert_eq!(stored_ids(a).await.len(), 5);
    // A duplicate id still fails the batch, with nothing stored.
    let err = a
        .insert_gate_batch_once(
            &[
                event("a-5", "east|card-5", T0 + 100),
                event("a-1", "east|card-6", T0 + 100),
            ],
            &[],
            WINDOW,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Duplicate { id, .. } if id == "a-1"),
        "{err}"
    );
    assert_eq!(stored_ids(a).await.len(), 5);
    // A negative window is a caller's bug.
    let err = a
        .insert_gate_batch_once(
            &[event("a-6", "east|card-6", T0)],
            &[],
            SignedDuration::from_secs(-1),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    b.close().await;
}

async fn nodes_storing_the_same_events_at_once_store_each_once(db: &TestDb) {
    let a = db.store.clone();
    let b = other_node(db).await;
    const ROUNDS: usize = 25;
    for round in 0..ROUNDS {
        // Three events per round, each node ingesting them in its own order and at its own
        // receive time, both storing at the same moment.
        let keys: Vec<String> = (0..3).map(|i| format!("east|r{round}-e{i}")).collect();
        let at = T0 + 60 * round as i64;
        let batch_a: Vec<NewGateEvent> = keys
            .iter()
            .map(|k| event(&format!("a-{k}"), k, at))
            .collect();
        let batch_b: Vec<NewGateEvent> = keys
            .iter()
            .rev()
            .map(|k| event(&format!("b-{k}"), k, at + 1))
            .collect();
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let spawn = |s: Store, batch: Vec<NewGateEvent>| {
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                s.insert_gate_batch_once(&batch, &[], WINDOW).await
            })
        };
        let ta = spawn(a.clone(), batch_a);
        let tb = spawn(b.clone(), batch_b);
        let (ra, rb) = (ta.await.unwrap().unwrap(), tb.await.unwrap().unwrap());
        assert_eq!(ra.stored + rb.stored, 3, "round {round}: {ra:?} {rb:?}");
        assert_eq!(
            ra.duplicates + rb.duplicates,
            3,
            "round {round}: {ra:?} {rb:?}"
        );
    }
    let rows = a.gate_events_after(0, 10_000).await.unwrap();
    assert_eq!(rows.len(), 3 * ROUNDS);
    let mut keys: Vec<&str> = rows.iter().map(|r| r.dedup_key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 3 * ROUNDS, "each event once");
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=3 * ROUNDS as i64).collect::<Vec<_>>());
    b.close().await;
}

/// A database of a single hub from before 0006, upgraded: its stored gate events count as
/// already stored, and commits are fenced from then on.
async fn an_upgraded_database_dedups_against_its_old_events(backend: Backend) {
    let seed = [
        "INSERT INTO gate_events (seq, id, gate, community, camera, firmware, kind, \
         received_at, occurred_at, dedup_key, evidence, body) VALUES (1, 'old-1', 'east', 'c1', \
         NULL, 'hikvision-isapi', 'access_granted', 1735689600000, NULL, 'east|card-1', NULL, \
         '{}')",
    ];
    let db = TestDb::upgraded(backend, 6, &seed).await;
    let s = &db.store;
    let got = s
        .insert_gate_batch_once(&[event("new-1", "east|card-1", T0 + 2)], &[], WINDOW)
        .await
        .unwrap();
    assert_eq!(got.duplicates, 1);
    s.commit(&fenced("a3", 1, 3)).await.unwrap();
    let err = s.commit(&fenced("a2", 2, 2)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Fenced { current: 3, .. }),
        "{err:?}"
    );
    assert_eq!(stored_ids(s).await, ["old-1"]);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_sqlite_database_dedups_against_its_old_events() {
    an_upgraded_database_dedups_against_its_old_events(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_postgres_database_dedups_against_its_old_events() {
    an_upgraded_database_dedups_against_its_old_events(Backend::Postgres).await;
}

fn alert(id: &str, raised: i64) -> Alert {
    Alert {
        id: AlertId(id.to_owned()),
        kind: AlertKind::GateForcedOpen,
        severity: Severity::Major,
        state: AlertState::Open,
        community: CommunityId::new("c1").unwrap(),
        camera: None,
        gate: Some(GateId::new("east").unwrap()),
        zone: None,
        title: "gate forced open at east gate".to_owned(),
        raised_at: ts(raised),
        last_seen_at: ts(raised),
        count: 1,
        ack_deadline: None,
        acknowledged_at: None,
        escalated_at: None,
        resolved_at: None,
        roles: vec![],
        source_event: None,
        snapshot: None,
    }
}

const GATE_LEASE: &str = "lease.gates";
const CURSOR: &str = "rules.gate_events";

/// A commit raising `alert_id` and moving the gate cursor to `cursor`, fenced at `revision`.
fn fenced(alert_id: &str, cursor: i64, revision: u64) -> Commit {
    let a = alert(alert_id, T0 + cursor);
    Commit {
        changes: vec![Change {
            at: a.raised_at,
            alert: a,
            action: AlertAction::Raised,
            actor: "system".to_owned(),
            note: None,
        }],
        cursors: vec![(CURSOR.to_owned(), cursor)],
        fence: Some(Fence {
            key: GATE_LEASE.to_owned(),
            revision,
        }),
        ..Commit::default()
    }
}

fn id(s: &str) -> AlertId {
    AlertId(s.to_owned())
}

async fn a_fenced_commit_from_an_older_lease_is_refused_whole(db: &TestDb) {
    let old = &db.store;
    let new = other_node(db).await;

    old.commit(&fenced("a5", 10, 5)).await.unwrap();
    // The lease moved: the new holder commits with its (larger) revision.
    new.commit(&fenced("a7", 20, 7)).await.unwrap();
    // The old holder, unaware, commits again: refused, nothing of it stored.
    let err = old.commit(&fenced("a5-late", 30, 5)).await.unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::Fenced { key, revision: 5, current: 7 } if key == GATE_LEASE
        ),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("moved to another node"), "{err}");
    assert!(old.alert(&id("a5-late")).await.unwrap().is_none());
    assert_eq!(old.cursor(CURSOR).await.unwrap(), 20);
    assert_eq!(old.last_outbox_seq().await.unwrap(), 2);

    // The holder commits many times at the same revision.
    new.commit(&fenced("a7-again", 21, 7)).await.unwrap();
    assert!(new.alert(&id("a7-again")).await.unwrap().is_some());
    assert_eq!(new.cursor(CURSOR).await.unwrap(), 21);

    // A fence on its own: an older revision is refused, a newer one recorded, after which
    // the previous holder's commits are refused.
    let err = old
        .fence(&Fence {
            key: GATE_LEASE.to_owned(),
            revision: 6,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Fenced { current: 7, .. }),
        "{err:?}"
    );
    old.fence(&Fence {
        key: GATE_LEASE.to_owned(),
        revision: 9,
    })
    .await
    .unwrap();
    let err = new.commit(&fenced("a7-late", 22, 7)).await.unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::Fenced {
                revision: 7,
                current: 9,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(new.alert(&id("a7-late")).await.unwrap().is_none());
    assert_eq!(new.cursor(CURSOR).await.unwrap(), 21);

    // Another lease's key is fenced apart; an unfenced commit (a single hub) never is.
    let mut other = fenced("b1", 23, 1);
    other.fence = Some(Fence {
        key: "lease.other".to_owned(),
        revision: 1,
    });
    old.commit(&other).await.unwrap();
    let mut unfenced = fenced("u1", 24, 0);
    unfenced.fence = None;
    old.commit(&unfenced).await.unwrap();
    assert_eq!(old.last_outbox_seq().await.unwrap(), 5);
    // A revision the store cannot keep is refused as input, not wrapped around.
    let err = old
        .fence(&Fence {
            key: GATE_LEASE.to_owned(),
            revision: u64::MAX,
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    new.close().await;
}

async fn concurrent_fenced_commits_land_in_revision_order(db: &TestDb) {
    // Commits at revisions 1..=N from two nodes, all at once: whichever order they reach the
    // database in, the ones accepted were committed in increasing revision order (a later
    // commit never carries an older revision than an earlier one), and the newest is never
    // refused.
    let nodes = [db.store.clone(), other_node(db).await];
    const N: u64 = 16;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(N as usize));
    let mut tasks = Vec::new();
    for revision in 1..=N {
        let s = nodes[revision as usize % 2].clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let r = s
                .commit(&fenced(&format!("r{revision}"), revision as i64, revision))
                .await;
            (revision, r)
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        let (revision, r) = t.await.unwrap();
        match r {
            Ok(_) => accepted += 1,
            Err(StoreError::Fenced {
                revision: refused,
                current,
                ..
            }) => {
                assert_eq!(refused, revision);
                assert!(current > revision, "refused {revision} under {current}");
            }
            Err(e) => panic!("revision {revision}: {e}"),
        }
    }
    let outbox = nodes[0].outbox_after(0, 100).await.unwrap();
    assert_eq!(outbox.len(), accepted);
    let revisions: Vec<u64> = outbox
        .iter()
        .map(|e| e.alert.id.as_str()[1..].parse().unwrap())
        .collect();
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "committed out of revision order: {revisions:?}"
    );
    assert_eq!(revisions.last(), Some(&N));
    assert_eq!(nodes[0].cursor(CURSOR).await.unwrap(), N as i64);
    nodes[1].close().await;
}
