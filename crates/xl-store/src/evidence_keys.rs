//! The public keys a district's nodes sign evidence exports with.
//!
//! Each node keeps its own signing key (under its data directory) and registers the public
//! half here at start; the API lists them all, so that a package made on any node verifies
//! against the district's keys. Only public keys are stored.

use jiff::Timestamp;

use crate::sql::{Reader, db, ms};
use crate::{Store, StoreError};

/// A registered evidence-signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceKeyRow {
    /// The key's id as packages name it.
    pub key_id: String,
    /// The 32-byte public key, standard base64.
    pub public_key: String,
    /// The node that registered it first (`""`: a single hub).
    pub node: String,
    /// When it was registered first.
    pub first_seen_at: Timestamp,
}

impl Store {
    /// Registers the evidence key `key_id` (its `public_key`) of `node`, at `now`: stored if
    /// absent; kept as it is (first node and time) when already registered with the same
    /// public key. A `key_id` already registered with another public key is refused
    /// ([`StoreError::Invalid`] naming it): ids are short, and one id must name one key.
    pub async fn register_evidence_key(
        &self,
        key_id: &str,
        public_key: &str,
        node: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        const OP: &str = "registering an evidence key";
        // ON CONFLICT DO NOTHING: two nodes registering the same key at once both succeed,
        // and the read below sees whichever row won.
        sqlx::query(
            "INSERT INTO evidence_keys (key_id, public_key, node, first_seen_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (key_id) DO NOTHING",
        )
        .bind(key_id.to_owned())
        .bind(public_key.to_owned())
        .bind(node.to_owned())
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(db(OP))?;
        let row = sqlx::query("SELECT public_key, node FROM evidence_keys WHERE key_id = $1")
            .bind(key_id.to_owned())
            .fetch_one(&self.pool)
            .await
            .map_err(db(OP))?;
        let r = Reader { row: &row, op: OP };
        let stored = r.text("public_key")?;
        if stored != public_key {
            let by = match r.text("node")? {
                n if n.is_empty() => "a single hub".to_owned(),
                n => format!("node {n:?}"),
            };
            return Err(StoreError::Invalid(format!(
                "evidence key {key_id:?} is already registered with another public key \
                 ({stored}, by {by})"
            )));
        }
        Ok(())
    }

    /// Every registered evidence key, oldest first.
    pub async fn evidence_keys(&self) -> Result<Vec<EvidenceKeyRow>, StoreError> {
        const OP: &str = "listing evidence keys";
        let rows = sqlx::query(
            "SELECT key_id, public_key, node, first_seen_at FROM evidence_keys \
             ORDER BY first_seen_at, key_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db(OP))?;
        rows.iter()
            .map(|row| {
                let r = Reader { row, op: OP };
                Ok(EvidenceKeyRow {
                    key_id: r.text("key_id")?,
                    public_key: r.text("public_key")?,
                    node: r.text("node")?,
                    first_seen_at: r.ts("first_seen_at")?,
                })
            })
            .collect()
    }
}
