//! The topology's repository: stations, communities, grids, cameras (with their zones) and
//! gates (`migrations/0002_topology.sql`).
//!
//! - Reads: [`Store::topology`] and [`Store::topology_entry`] for the API, with secrets
//!   withheld ([`EntryMeta::secret_set`] says whether there is one); [`Store::topology_for_runtime`]
//!   for the hub, with them. Each read is one consistent snapshot.
//! - Writes, each one transaction holding the topology's write lock, with its audit entry
//!   (before and after, secrets never in them: [`Entry`] serialises without them):
//!   [`Store::create_entry`], [`Store::update_entry`], [`Store::set_entry_disabled`],
//!   [`Store::delete_entry`], for every kind, and [`Store::create_entries`] (an import: all
//!   or nothing, every refusal listed). Each checks the entry
//!   ([`Entry::validate`]) and the references of the topology it would make
//!   ([`Topology::check_references`], [`Topology::check_remove`]; a station users are scoped
//!   to), refuses entries the config file declares ([`StoreError::ReadOnly`]) and a stale
//!   revision ([`StoreError::StaleRevision`]), then runs the store's [`TopologyCheck`] if it
//!   has one ([`Store::with_topology_check`]).
//! - [`Store::apply_config`]: the config file's entries, at each start.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};
use xl_core::topology::{Entry, EntryId, EntryMeta, Kind, Origin, Secret, Topology, TopologyError};

use crate::registry::{NewAudit, insert_audit};
use crate::sql::{Reader, db, json_text, ms};
use crate::{Backend, Store, StoreError, Tx};

/// The topology's tables, in the order of the hierarchy, and the audit log: what a topology
/// write locks.
const WRITE_TABLES: [&str; 6] = [
    "stations",
    "communities",
    "grids",
    "topology_cameras",
    "topology_gates",
    "audit",
];

fn table(kind: Kind) -> &'static str {
    match kind {
        Kind::Station => "stations",
        Kind::Community => "communities",
        Kind::Grid => "grids",
        Kind::Camera => "topology_cameras",
        Kind::Gate => "topology_gates",
    }
}

/// Kinds whose rows have a `secret` column.
fn has_secret(kind: Kind) -> bool {
    matches!(kind, Kind::Camera | Kind::Gate)
}

/// Who makes a change, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// A user name, or `"config"` for [`Store::apply_config`].
    pub actor: String,
    /// The client's address.
    pub peer: Option<String>,
}

/// The topology with what the store knows of each entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredTopology {
    pub topology: Topology,
    pub meta: BTreeMap<EntryId, EntryMeta>,
}

/// A check of what a topology write made for the API would leave: called with the topology as
/// stored and as it would be after the write (secrets included), inside the write's transaction,
/// under the topology's write lock, after the store's own checks and before anything is
/// written. An `Err` says why the result cannot be; the write is then refused
/// ([`StoreError::Refused`]) and nothing is written. The hub's asks its gate ingest whether it
/// would take the gates that would run ([`Store::with_topology_check`]).
pub type TopologyCheck = Arc<dyn Fn(&Topology, &Topology) -> Result<(), String> + Send + Sync>;

/// What [`Store::update_entry`] does with the entry's secret (a camera's password, a gate's
/// push secret). The API never hands a secret out, so an edit that did not touch it comes back
/// without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretUpdate {
    /// An entry without a secret keeps the stored one; with one, replaces it.
    KeepUnlessGiven,
    /// The entry's secret replaces the stored one; none removes it.
    Replace,
}

/// What [`Store::apply_config`] did. Each list holds entries in the order of the hierarchy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyReport {
    /// Declared and not stored before.
    pub added: Vec<EntryId>,
    /// Declared, stored from config before, and different now.
    pub changed: Vec<EntryId>,
    /// Declared, and made through the API before: the config file's version replaced it, and
    /// it is read-only from now on.
    pub claimed: Vec<EntryId>,
    /// Declared and stored exactly so already.
    pub unchanged: usize,
    /// From config before, no longer declared, and deleted.
    pub removed: Vec<EntryId>,
    /// From config before and no longer declared, but still referred to by an entry that
    /// stays (the second id): kept, as an entry of the store, editable through the API.
    pub kept: Vec<(EntryId, EntryId)>,
}

impl ApplyReport {
    /// Whether anything was written.
    pub fn is_noop(&self) -> bool {
        self.added.is_empty()
            && self.changed.is_empty()
            && self.claimed.is_empty()
            && self.removed.is_empty()
            && self.kept.is_empty()
    }
}

impl Store {
    /// This store with `check` run by every topology write made for the API
    /// ([`Store::create_entry`], [`Store::create_entries`], [`Store::update_entry`],
    /// [`Store::set_entry_disabled`], [`Store::delete_entry`]) inside its transaction, so that
    /// no other topology write comes between the check and the save. [`Store::apply_config`]
    /// does not run it (the config file is checked whole before the hub starts). Clones of
    /// the returned store share the check; the store it was made from has none.
    pub fn with_topology_check(mut self, check: TopologyCheck) -> Store {
        self.topology_check = Some(check);
        self
    }

    /// The topology as stored, kept for [`Store::check_topology`] when there is a check.
    fn before_check(&self, stored: &Topology) -> Option<Topology> {
        self.topology_check.as_ref().map(|_| stored.clone())
    }

    /// Runs the [`TopologyCheck`], if any, on a write from `before` (as [`Store::before_check`]
    /// kept it) to `after`; `entry` is the entry written (`None` for several).
    fn check_topology(
        &self,
        before: Option<&Topology>,
        after: &Topology,
        entry: Option<&EntryId>,
    ) -> Result<(), StoreError> {
        let (Some(check), Some(before)) = (&self.topology_check, before) else {
            return Ok(());
        };
        check(before, after).map_err(|reason| StoreError::Refused {
            entry: entry.cloned(),
            reason,
        })
    }

    /// The whole topology for the API: secrets withheld ([`EntryMeta::secret_set`] tells
    /// whether one is stored).
    pub async fn topology(&self) -> Result<StoredTopology, StoreError> {
        self.read_topology("reading the topology", false).await
    }

    /// The whole topology with its secrets, for the hub that connects to the cameras and
    /// checks the gates' pushes. Never for an API answer.
    pub async fn topology_for_runtime(&self) -> Result<StoredTopology, StoreError> {
        self.read_topology("reading the topology for the runtime", true)
            .await
    }

    /// One entry for the API, secret withheld, or `None`.
    pub async fn topology_entry(
        &self,
        id: &EntryId,
    ) -> Result<Option<(Entry, EntryMeta)>, StoreError> {
        const OP: &str = "reading a topology entry";
        let mut tx = self.read_tx(OP).await?;
        let row = load_one(&mut tx, OP, id, false).await?;
        tx.commit().await.map_err(db(OP))?;
        Ok(row)
    }

    /// Adds an entry made through the API (origin [`Origin::Store`], revision 1). Refused: an
    /// entry that fails its checks, one whose references do not hold, an id already taken.
    pub async fn create_entry(
        &self,
        entry: Entry,
        by: &Author,
        at: Timestamp,
    ) -> Result<EntryMeta, StoreError> {
        const OP: &str = "creating a topology entry";
        check_entry(&entry)?;
        let mut tx = self.begin_write(OP, &WRITE_TABLES).await?;
        let mut stored = load(&mut tx, OP, true).await?;
        let id = entry.id();
        if stored.topology.contains(&id) {
            return Err(StoreError::Duplicate {
                what: id.kind().as_str(),
                id: id.as_str().to_owned(),
            });
        }
        let before = reference_errors(&stored.topology);
        let was = self.before_check(&stored.topology);
        stored.topology.insert(entry.clone());
        check_new_references(&stored.topology, &before)?;
        self.check_topology(was.as_ref(), &stored.topology, Some(&id))?;
        let meta = EntryMeta {
            origin: Origin::Store,
            revision: 1,
            created_at: at,
            updated_at: at,
            secret_set: entry.secret().is_some(),
        };
        write_row(&mut tx, OP, &entry, &meta, Write::Insert).await?;
        audit(&mut tx, OP, by, at, "create", &meta, None, Some(&entry)).await?;
        tx.commit().await.map_err(db(OP))?;
        Ok(meta)
    }

    /// Adds many entries made through the API (a camera import) in one transaction: all or
    /// nothing. Every entry is checked on its own, for an id already stored or given twice,
    /// and for the references of the topology they make together with what is stored; when
    /// any is refused, nothing is written and [`StoreError::Batch`] lists every refusal with
    /// the entry's position in `entries`. One audit entry per entry, as
    /// [`Store::create_entry`] writes.
    pub async fn create_entries(
        &self,
        entries: Vec<Entry>,
        by: &Author,
        at: Timestamp,
    ) -> Result<Vec<EntryMeta>, StoreError> {
        const OP: &str = "creating topology entries";
        let total = entries.len();
        let mut refused: Vec<(usize, StoreError)> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if let Err(err) = check_entry(e) {
                refused.push((i, err));
            }
        }
        let mut tx = self.begin_write(OP, &WRITE_TABLES).await?;
        let mut stored = load(&mut tx, OP, true).await?;
        let before = reference_errors(&stored.topology);
        let was = self.before_check(&stored.topology);
        // Where each id of the batch is, for the reference errors, which name the entry.
        let mut position: BTreeMap<EntryId, usize> = BTreeMap::new();
        for (i, e) in entries.iter().enumerate() {
            if refused.iter().any(|(r, _)| *r == i) {
                continue;
            }
            let id = e.id();
            if stored.topology.contains(&id) && !position.contains_key(&id) {
                refused.push((
                    i,
                    StoreError::Duplicate {
                        what: id.kind().as_str(),
                        id: id.as_str().to_owned(),
                    },
                ));
                continue;
            }
            if let Some(first) = position.get(&id) {
                refused.push((
                    i,
                    TopologyError::InvalidField {
                        kind: id.kind(),
                        id: id.as_str().to_owned(),
                        field: "id".to_owned(),
                        reason: format!("given twice (also entry {})", first + 1),
                    }
                    .into(),
                ));
                continue;
            }
            position.insert(id, i);
            stored.topology.insert(e.clone());
        }
        for err in reference_errors(&stored.topology) {
            if before.contains(&err) {
                continue;
            }
            let (kind, id) = err.entry();
            let at_entry = EntryId::parse(kind, id)
                .ok()
                .and_then(|id| position.get(&id).copied());
            match at_entry {
                Some(i) => refused.push((i, err.into())),
                // Every new problem is about an entry of the batch; anything else is refused
                // as a whole.
                None => return Err(err.into()),
            }
        }
        if !refused.is_empty() {
            refused.sort_by_key(|(i, _)| *i);
            tx.rollback().await.map_err(db(OP))?;
            return Err(StoreError::Batch { total, refused });
        }
        self.check_topology(was.as_ref(), &stored.topology, None)?;
        let mut metas = Vec::with_capacity(total);
        for entry in &entries {
            let meta = EntryMeta {
                origin: Origin::Store,
                revision: 1,
                created_at: at,
                updated_at: at,
                secret_set: entry.secret().is_some(),
            };
            write_row(&mut tx, OP, entry, &meta, Write::Insert).await?;
            audit(&mut tx, OP, by, at, "create", &meta, None, Some(entry)).await?;
            metas.push(meta);
        }
        tx.commit().await.map_err(db(OP))?;
        Ok(metas)
    }

    /// Replaces an entry made through the API, if it is still at `expected_revision`; its
    /// secret as `secret` says. Refused: an entry from config, a stale revision, an entry that
    /// fails its checks, a change that breaks a reference (moving a camera to another
    /// community while a gate of the old one names it). An update that changes nothing writes
    /// nothing and keeps the revision.
    pub async fn update_entry(
        &self,
        entry: Entry,
        expected_revision: u64,
        secret: SecretUpdate,
        by: &Author,
        at: Timestamp,
    ) -> Result<EntryMeta, StoreError> {
        const OP: &str = "updating a topology entry";
        let mut tx = self.begin_write(OP, &WRITE_TABLES).await?;
        let mut stored = load(&mut tx, OP, true).await?;
        let id = entry.id();
        let (old, meta) = writable(&stored, &id, expected_revision)?;
        let mut new = entry;
        if secret == SecretUpdate::KeepUnlessGiven && new.secret().is_none() {
            new.set_secret(old.secret().cloned());
        }
        check_entry(&new)?;
        if new == old {
            return Ok(meta);
        }
        let before = reference_errors(&stored.topology);
        let was = self.before_check(&stored.topology);
        stored.topology.insert(new.clone());
        check_new_references(&stored.topology, &before)?;
        self.check_topology(was.as_ref(), &stored.topology, Some(&id))?;
        let meta = EntryMeta {
            revision: meta.revision + 1,
            updated_at: at,
            secret_set: new.secret().is_some(),
            ..meta
        };
        write_row(&mut tx, OP, &new, &meta, Write::Update).await?;
        audit(&mut tx, OP, by, at, "update", &meta, Some(&old), Some(&new)).await?;
        tx.commit().await.map_err(db(OP))?;
        Ok(meta)
    }

    /// Disables (or enables again) an entry made through the API, if it is still at
    /// `expected_revision`. The entry stays, with its references; the runtime stops (or
    /// starts) it. Setting the flag it already has writes nothing.
    pub async fn set_entry_disabled(
        &self,
        id: &EntryId,
        disabled: bool,
        expected_revision: u64,
        by: &Author,
        at: Timestamp,
    ) -> Result<EntryMeta, StoreError> {
        const OP: &str = "disabling a topology entry";
        let mut tx = self.begin_write(OP, &WRITE_TABLES).await?;
        let mut stored = load(&mut tx, OP, true).await?;
        let (old, meta) = writable(&stored, id, expected_revision)?;
        if old.disabled() == disabled {
            return Ok(meta);
        }
        let mut new = old.clone();
        new.set_disabled(disabled);
        let was = self.before_check(&stored.topology);
        stored.topology.insert(new.clone());
        self.check_topology(was.as_ref(), &stored.topology, Some(id))?;
        let meta = EntryMeta {
            revision: meta.revision + 1,
            updated_at: at,
            ..meta
        };
        write_row(&mut tx, OP, &new, &meta, Write::Update).await?;
        let action = if disabled { "disable" } else { "enable" };
        audit(&mut tx, OP, by, at, action, &meta, Some(&old), Some(&new)).await?;
        tx.commit().await.map_err(db(OP))?;
        Ok(meta)
    }

    /// Deletes an entry made through the API, if it is still at `expected_revision` and no
    /// other entry refers to it (a community with cameras, a camera a gate names: the error
    /// names the first such entry), nor, for a station, any user's `stations`
    /// ([`StoreError::StationInScope`] names them all; disabling the station is allowed: they
    /// then see nothing of it). Events and alerts that name it stay.
    pub async fn delete_entry(
        &self,
        id: &EntryId,
        expected_revision: u64,
        by: &Author,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        const OP: &str = "deleting a topology entry";
        let mut tx = self.begin_write(OP, &WRITE_TABLES).await?;
        let mut stored = load(&mut tx, OP, true).await?;
        let (old, meta) = writable(&stored, id, expected_revision)?;
        stored.topology.check_remove(id)?;
        if let EntryId::Station(station) = id {
            let users = users_scoped_to(&mut tx, OP, station.as_str()).await?;
            if !users.is_empty() {
                return Err(StoreError::StationInScope {
                    station: station.as_str().to_owned(),
                    users,
                });
            }
        }
        let was = self.before_check(&stored.topology);
        stored.topology.remove(id);
        self.check_topology(was.as_ref(), &stored.topology, Some(id))?;
        delete_row(&mut tx, OP, id).await?;
        audit(&mut tx, OP, by, at, "delete", &meta, Some(&old), None).await?;
        tx.commit().await.map_err(db(OP))?;
        Ok(())
    }

    /// Applies the config file's entries, at each start, in one transaction: each declared
    /// entry is stored as [`Origin::Config`] (added, replaced where it differs, or claimed from
    /// the store when the API had made one with its id); entries from config that the file no
    /// longer declares are deleted, or kept as store entries where an entry that stays still
    /// refers to them. Entries made through the API are otherwise left alone, and may refer to
    /// config entries and be referred to by them. Applying the same file again writes nothing.
    /// Every write is audited with actor `config`.
    ///
    /// Refused as a whole (nothing applied): a declared entry that fails its checks, or a
    /// result whose references do not hold.
    pub async fn apply_config(
        &self,
        declared: &Topology,
        at: Timestamp,
    ) -> Result<ApplyReport, StoreError> {
        const OP: &str = "applying the config file's topology";
        let entries = declared.entries();
        for e in &entries {
            check_entry(e)?;
        }
        if let Err(errors) = declared.check_references() {
            // Only the map keys: references may point at entries made through the API.
            if let Some(e) = errors.into_iter().find(|e| e.field() == Some("id")) {
                return Err(e.into());
            }
        }
        let by = Author {
            actor: "config".to_owned(),
            peer: None,
        };
        let mut tx = self.begin_write(OP, &WRITE_TABLES).await?;
        let mut stored = load(&mut tx, OP, true).await?;
        let before = reference_errors(&stored.topology);
        let mut report = ApplyReport::default();

        for entry in entries {
            let id = entry.id();
            let existing = stored.topology.get(&id).zip(stored.meta.get(&id).cloned());
            match existing {
                None => {
                    let meta = EntryMeta {
                        origin: Origin::Config,
                        revision: 1,
                        created_at: at,
                        updated_at: at,
                        secret_set: entry.secret().is_some(),
                    };
                    write_row(&mut tx, OP, &entry, &meta, Write::Insert).await?;
                    audit(&mut tx, OP, &by, at, "create", &meta, None, Some(&entry)).await?;
                    report.added.push(id.clone());
                    stored.meta.insert(id, meta);
                }
                Some((old, meta)) if meta.origin == Origin::Config && old == entry => {
                    report.unchanged += 1;
                }
                Some((old, meta)) => {
                    let claimed = meta.origin == Origin::Store;
                    let meta = EntryMeta {
                        origin: Origin::Config,
                        revision: meta.revision + 1,
                        updated_at: at,
                        secret_set: entry.secret().is_some(),
                        ..meta
                    };
                    write_row(&mut tx, OP, &entry, &meta, Write::Update).await?;
                    let action = if claimed { "claim" } else { "update" };
                    audit(
                        &mut tx,
                        OP,
                        &by,
                        at,
                        action,
                        &meta,
                        Some(&old),
                        Some(&entry),
                    )
                    .await?;
                    if claimed {
                        report.claimed.push(id.clone());
                    } else {
                        report.changed.push(id.clone());
                    }
                    stored.meta.insert(id, meta);
                }
            }
            stored.topology.insert(entry);
        }

        // Config entries the file no longer declares, from the bottom of the hierarchy up, so
        // that a gate going first frees the camera it named.
        let mut gone: Vec<(EntryId, EntryMeta)> = stored
            .meta
            .iter()
            .filter(|(id, m)| m.origin == Origin::Config && !declared.contains(id))
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect();
        gone.sort_by(|a, b| b.0.kind().cmp(&a.0.kind()).then_with(|| a.0.cmp(&b.0)));
        for (id, meta) in gone {
            let Some(old) = stored.topology.get(&id) else {
                continue;
            };
            match stored.topology.used_by(&id).into_iter().next() {
                Some((user, _)) => {
                    let meta = EntryMeta {
                        origin: Origin::Store,
                        revision: meta.revision + 1,
                        updated_at: at,
                        ..meta
                    };
                    write_row(&mut tx, OP, &old, &meta, Write::Update).await?;
                    audit(&mut tx, OP, &by, at, "keep", &meta, Some(&old), Some(&old)).await?;
                    report.kept.push((id.clone(), user));
                    stored.meta.insert(id, meta);
                }
                None => {
                    delete_row(&mut tx, OP, &id).await?;
                    audit(&mut tx, OP, &by, at, "delete", &meta, Some(&old), None).await?;
                    stored.topology.remove(&id);
                    stored.meta.remove(&id);
                    report.removed.push(id);
                }
            }
        }
        report.removed.sort();
        report.kept.sort();
        check_new_references(&stored.topology, &before)?;
        if report.is_noop() {
            // Nothing written: let go of the locks without a commit.
            tx.rollback().await.map_err(db(OP))?;
        } else {
            tx.commit().await.map_err(db(OP))?;
        }
        Ok(report)
    }

    async fn read_topology(
        &self,
        op: &'static str,
        secrets: bool,
    ) -> Result<StoredTopology, StoreError> {
        let mut tx = self.read_tx(op).await?;
        let stored = load(&mut tx, op, secrets).await?;
        tx.commit().await.map_err(db(op))?;
        Ok(stored)
    }

    /// A read-only transaction that sees one snapshot across its statements (SQLite's WAL
    /// read transaction; PostgreSQL REPEATABLE READ: READ COMMITTED would let a write land
    /// between reading the communities and reading their cameras).
    async fn read_tx(&self, op: &'static str) -> Result<Tx, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db(op))?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await
                .map_err(db(op))?;
        }
        Ok(tx)
    }
}

/// The entry's own checks, and what needs the time zone database (not in `xl-core`, which
/// does no I/O): a gate's `timezone` must be a zone this system knows.
fn check_entry(entry: &Entry) -> Result<(), StoreError> {
    entry.validate()?;
    if let Entry::Gate(g) = entry
        && let Some(tz) = &g.timezone
        && jiff::tz::TimeZone::get(tz).is_err()
    {
        return Err(TopologyError::InvalidField {
            kind: Kind::Gate,
            id: g.id.to_string(),
            field: "timezone".to_owned(),
            reason: format!("{tz:?} is not a time zone this system knows (Asia/Shanghai)"),
        }
        .into());
    }
    Ok(())
}

/// The users (disabled ones too) whose `stations` name `station`, by username.
async fn users_scoped_to(
    tx: &mut Tx,
    op: &'static str,
    station: &str,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query("SELECT username, stations FROM users ORDER BY username")
        .fetch_all(&mut **tx)
        .await
        .map_err(db(op))?;
    let mut users = Vec::new();
    for row in &rows {
        let r = Reader { row, op };
        let stations: Vec<String> = r.json("stations")?;
        if stations.iter().any(|s| s == station) {
            users.push(r.text("username")?);
        }
    }
    Ok(users)
}

fn reference_errors(t: &Topology) -> Vec<TopologyError> {
    t.check_references().err().unwrap_or_default()
}

/// The first reference problem of `after` that `before` did not have. Problems already stored
/// (a database edited by hand) do not block every later write.
fn check_new_references(after: &Topology, before: &[TopologyError]) -> Result<(), StoreError> {
    match reference_errors(after)
        .into_iter()
        .find(|e| !before.contains(e))
    {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// The stored entry `id` and its meta, if the API may change it at `expected_revision`.
fn writable(
    stored: &StoredTopology,
    id: &EntryId,
    expected_revision: u64,
) -> Result<(Entry, EntryMeta), StoreError> {
    let (Some(entry), Some(meta)) = (stored.topology.get(id), stored.meta.get(id)) else {
        return Err(StoreError::NotFound {
            what: id.kind().as_str(),
            id: id.as_str().to_owned(),
        });
    };
    if meta.origin == Origin::Config {
        return Err(StoreError::ReadOnly {
            entry: id.to_string(),
        });
    }
    if meta.revision != expected_revision {
        return Err(StoreError::StaleRevision {
            entry: id.to_string(),
            expected: expected_revision,
            current: meta.revision,
        });
    }
    Ok((entry, meta.clone()))
}

/// The entry as JSON without its secret (the serialiser skips secrets): what `spec` and the
/// audit log hold.
fn shown(entry: &Entry) -> Value {
    let value = match entry {
        Entry::Station(e) => serde_json::to_value(e),
        Entry::Community(e) => serde_json::to_value(e),
        Entry::Grid(e) => serde_json::to_value(e),
        Entry::Camera(e) => serde_json::to_value(e),
        Entry::Gate(e) => serde_json::to_value(e),
    };
    // Structs of strings, numbers and lists with string keys always serialise.
    value.unwrap_or(Value::Null)
}

/// Appends the audit entry of a change: action `<kind>.<what>`, target the id, and in the
/// detail the entry before and after (without secrets), its origin and new revision, and what
/// happened to its secret.
#[allow(clippy::too_many_arguments)]
async fn audit(
    tx: &mut Tx,
    op: &'static str,
    by: &Author,
    at: Timestamp,
    what: &str,
    meta: &EntryMeta,
    before: Option<&Entry>,
    after: Option<&Entry>,
) -> Result<(), StoreError> {
    let Some(id) = after.or(before).map(Entry::id) else {
        return Ok(());
    };
    let mut detail = json!({
        "kind": id.kind(),
        "id": id.as_str(),
        "origin": meta.origin,
        "revision": meta.revision,
        "before": before.map_or(Value::Null, shown),
        "after": after.map_or(Value::Null, shown),
    });
    if has_secret(id.kind()) {
        let (old, new) = (
            before.and_then(Entry::secret),
            after.and_then(Entry::secret),
        );
        let secret = match (old, new) {
            (None, None) => "none",
            (None, Some(_)) => "set",
            (Some(_), None) => "removed",
            (Some(a), Some(b)) if a == b => "unchanged",
            (Some(_), Some(_)) => "changed",
        };
        detail["secret"] = secret.into();
    }
    let entry = NewAudit {
        at,
        actor: by.actor.clone(),
        action: format!("{}.{what}", id.kind()),
        target: Some(id.as_str().to_owned()),
        detail,
        peer: by.peer.clone(),
    };
    insert_audit(tx, op, &entry).await?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    Insert,
    Update,
}

/// A column's value.
enum Val {
    Int(i64),
    Text(Option<String>),
}

fn text(s: &str) -> Val {
    Val::Text(Some(s.to_owned()))
}

fn opt_text(s: Option<&str>) -> Val {
    Val::Text(s.map(str::to_owned))
}

/// Inserts or updates (by id) the row of `entry` with `meta`.
async fn write_row(
    tx: &mut Tx,
    op: &'static str,
    entry: &Entry,
    meta: &EntryMeta,
    how: Write,
) -> Result<(), StoreError> {
    let id = entry.id();
    let revision = i64::try_from(meta.revision)
        .map_err(|_| StoreError::Invalid(format!("{id}: revision out of range")))?;
    let mut cols: Vec<(&str, Val)> = vec![
        ("id", text(id.as_str())),
        ("disabled", Val::Int(i64::from(entry.disabled()))),
        ("spec", Val::Text(Some(json_text(&shown(entry))))),
        ("origin", text(meta.origin.as_str())),
        ("revision", Val::Int(revision)),
        ("created_at", Val::Int(ms(meta.created_at))),
        ("updated_at", Val::Int(ms(meta.updated_at))),
    ];
    match entry {
        Entry::Station(s) => cols.push(("name", text(&s.name))),
        Entry::Community(c) => {
            cols.push(("name", text(&c.name)));
            cols.push(("station", opt_text(c.station.as_ref().map(|s| s.as_str()))));
        }
        Entry::Grid(g) => {
            cols.push(("name", text(&g.name)));
            cols.push(("community", text(g.community.as_str())));
        }
        Entry::Camera(c) => {
            cols.push(("name", text(&c.name)));
            cols.push(("community", text(c.community.as_str())));
            cols.push(("grid", opt_text(c.grid.as_ref().map(|g| g.as_str()))));
            let network = serde_json::to_value(c.network)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned));
            cols.push(("network", Val::Text(Some(network.unwrap_or_default()))));
        }
        Entry::Gate(g) => {
            cols.push(("name", text(&g.name)));
            cols.push(("community", text(g.community.as_str())));
            cols.push(("grid", opt_text(g.grid.as_ref().map(|g| g.as_str()))));
            cols.push(("camera", opt_text(g.camera.as_ref().map(|c| c.as_str()))));
            cols.push(("firmware", text(&g.firmware)));
        }
    }
    if has_secret(id.kind()) {
        cols.push(("secret", opt_text(entry.secret().map(Secret::expose))));
    }
    let names: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
    let sql = match how {
        Write::Insert => format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table(id.kind()),
            names.join(", "),
            (1..=names.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Write::Update => format!(
            "UPDATE {} SET {} WHERE id = $1",
            table(id.kind()),
            names
                .iter()
                .enumerate()
                .skip(1)
                .map(|(i, n)| format!("{n} = ${}", i + 1))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (_, v) in cols {
        q = match v {
            Val::Int(i) => q.bind(i),
            Val::Text(s) => q.bind(s),
        };
    }
    let done = q
        .execute(&mut **tx)
        .await
        .map_err(|source| crate::gates::dup_or(source, op, id.kind().as_str(), id.as_str()))?;
    if done.rows_affected() != 1 {
        return Err(StoreError::NotFound {
            what: id.kind().as_str(),
            id: id.as_str().to_owned(),
        });
    }
    Ok(())
}

async fn delete_row(tx: &mut Tx, op: &'static str, id: &EntryId) -> Result<(), StoreError> {
    let sql = format!("DELETE FROM {} WHERE id = $1", table(id.kind()));
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_str().to_owned())
        .execute(&mut **tx)
        .await
        .map_err(db(op))?;
    Ok(())
}

fn select_sql(kind: Kind, secrets: bool) -> String {
    let secret = if secrets && has_secret(kind) {
        ", secret"
    } else if has_secret(kind) {
        ", CAST(CASE WHEN secret IS NULL THEN 0 ELSE 1 END AS BIGINT) AS secret_set"
    } else {
        ""
    };
    format!(
        "SELECT id, spec, origin, revision, created_at, updated_at{secret} FROM {}",
        table(kind)
    )
}

/// One row as an entry (with its secret when the query read it) and its meta.
fn read_row(
    kind: Kind,
    row: &sqlx::any::AnyRow,
    op: &'static str,
    secrets: bool,
) -> Result<(Entry, EntryMeta), StoreError> {
    let r = Reader { row, op };
    let mut entry = match kind {
        Kind::Station => Entry::Station(r.json("spec")?),
        Kind::Community => Entry::Community(r.json("spec")?),
        Kind::Grid => Entry::Grid(r.json("spec")?),
        Kind::Camera => Entry::Camera(r.json("spec")?),
        Kind::Gate => Entry::Gate(r.json("spec")?),
    };
    let id = r.text("id")?;
    if entry.id().as_str() != id {
        return Err(StoreError::Corrupt {
            op,
            column: "spec".to_owned(),
            detail: format!("{} row {id:?} holds {}", kind, entry.id()),
        });
    }
    let secret_set = match (has_secret(kind), secrets) {
        (false, _) => false,
        (true, true) => {
            let secret = r.opt_text("secret")?;
            let set = secret.is_some();
            entry.set_secret(secret.map(Secret::new));
            set
        }
        (true, false) => r.bool("secret_set")?,
    };
    let meta = EntryMeta {
        origin: r.parse("origin")?,
        revision: r.u64("revision")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
        secret_set,
    };
    Ok((entry, meta))
}

/// Every entry, in the caller's transaction; secrets read only when `secrets`.
async fn load(tx: &mut Tx, op: &'static str, secrets: bool) -> Result<StoredTopology, StoreError> {
    let mut stored = StoredTopology::default();
    for kind in Kind::ALL {
        let sql = format!("{} ORDER BY id", select_sql(kind, secrets));
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut **tx)
            .await
            .map_err(db(op))?;
        for row in &rows {
            let (entry, meta) = read_row(kind, row, op, secrets)?;
            stored.meta.insert(entry.id(), meta);
            stored.topology.insert(entry);
        }
    }
    Ok(stored)
}

async fn load_one(
    tx: &mut Tx,
    op: &'static str,
    id: &EntryId,
    secrets: bool,
) -> Result<Option<(Entry, EntryMeta)>, StoreError> {
    let sql = format!("{} WHERE id = $1", select_sql(id.kind(), secrets));
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_str().to_owned())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db(op))?;
    row.map(|row| read_row(id.kind(), &row, op, secrets))
        .transpose()
}
