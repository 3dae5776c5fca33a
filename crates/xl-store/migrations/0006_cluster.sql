-- Several hub nodes of a district share one database (portable SQL as in 0001: runs on SQLite
-- and PostgreSQL).
--
-- Every node ingests every gate's events from the broker, so each event arrives once per
-- node; the store keeps it once by looking for its dedup key near its receive time inside the
-- writing transaction (which holds the gate_events write lock). This index makes that lookup
-- one index probe.
CREATE INDEX gate_events_dedup_received ON gate_events (dedup_key, received_at);

-- Fencing tokens: per lease `key`, the highest `revision` (the lease's revision, which only
-- grows) that a commit carried. A commit carrying a smaller one comes from a node that lost
-- the lease and is refused.
CREATE TABLE fences (
    key TEXT NOT NULL PRIMARY KEY,
    revision BIGINT NOT NULL
);
