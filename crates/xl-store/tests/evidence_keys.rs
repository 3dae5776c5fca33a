//! The district's evidence-signing keys (public halves), on SQLite and on PostgreSQL: each
//! node registers its key, every node lists them all, a key registered again stays as first
//! registered, and a key id already registered with another public key is refused.

use jiff::Timestamp;
use xl_core::ErrorKind;
use xl_store::{EvidenceKeyRow, Store};

#[macro_use]
mod common;

use common::TestDb;

both_backends!(
    every_node_lists_every_nodes_key_oldest_first,
    a_key_id_registered_with_another_public_key_is_refused,
    nodes_registering_the_same_key_at_once_store_it_once,
);

/// 2025-01-01T00:00:00Z, a base for test times.
const T0: i64 = 1_735_689_600;

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

// Keys as the hub registers them: an id and 32 bytes in base64 (the store keeps them as text;
// the hub derives the id from the key).
const KEY_A: (&str, &str) = (
    "3f8a1c22d0e4b7a1",
    "GB9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=",
);
const KEY_B: (&str, &str) = (
    "91d0e55a7c3b2f08",
    "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
);
const KEY_C: (&str, &str) = (
    "c40b7e9d1a6f3e52",
    "PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=",
);

fn row(key: (&str, &str), node: &str, secs: i64) -> EvidenceKeyRow {
    EvidenceKeyRow {
        key_id: key.0.to_owned(),
        public_key: key.1.to_owned(),
        node: node.to_owned(),
        first_seen_at: ts(secs),
    }
}

async fn every_node_lists_every_nodes_key_oldest_first(db: &TestDb) {
    let a = &db.store;
    let b = Store::open(&db.url).await.unwrap();
    assert_eq!(a.evidence_keys().await.unwrap(), vec![]);

    b.register_evidence_key(KEY_B.0, KEY_B.1, "node-b", ts(T0 + 20))
        .await
        .unwrap();
    a.register_evidence_key(KEY_A.0, KEY_A.1, "node-a", ts(T0 + 10))
        .await
        .unwrap();
    // A key that was a single hub's before the district.
    a.register_evidence_key(KEY_C.0, KEY_C.1, "", ts(T0 + 30))
        .await
        .unwrap();
    // Node a restarts, and a copy of node a's data directory starts as node d: the key
    // stays as first registered.
    a.register_evidence_key(KEY_A.0, KEY_A.1, "node-a", ts(T0 + 40))
        .await
        .unwrap();
    b.register_evidence_key(KEY_A.0, KEY_A.1, "node-d", ts(T0 + 50))
        .await
        .unwrap();

    let want = vec![
        row(KEY_A, "node-a", T0 + 10),
        row(KEY_B, "node-b", T0 + 20),
        row(KEY_C, "", T0 + 30),
    ];
    assert_eq!(a.evidence_keys().await.unwrap(), want);
    assert_eq!(b.evidence_keys().await.unwrap(), want);
    b.close().await;
}

async fn a_key_id_registered_with_another_public_key_is_refused(db: &TestDb) {
    let s = &db.store;
    s.register_evidence_key(KEY_A.0, KEY_A.1, "node-a", ts(T0))
        .await
        .unwrap();
    let err = s
        .register_evidence_key(KEY_A.0, KEY_B.1, "node-b", ts(T0 + 1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let shown = err.to_string();
    assert!(shown.contains(KEY_A.0), "{shown}");
    assert!(shown.contains("another public key"), "{shown}");
    assert!(shown.contains("node-a"), "{shown}");
    // Nothing changed.
    assert_eq!(
        s.evidence_keys().await.unwrap(),
        vec![row(KEY_A, "node-a", T0)]
    );
}

async fn nodes_registering_the_same_key_at_once_store_it_once(db: &TestDb) {
    let mut nodes = vec![db.store.clone()];
    for _ in 0..3 {
        nodes.push(Store::open(&db.url).await.unwrap());
    }
    let tasks: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s.clone();
            tokio::spawn(async move {
                s.register_evidence_key(KEY_A.0, KEY_A.1, &format!("node-{i}"), ts(T0 + i as i64))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let keys = db.store.evidence_keys().await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].key_id, KEY_A.0);
    assert_eq!(keys[0].public_key, KEY_A.1);
    for s in &nodes[1..] {
        s.close().await;
    }
}
