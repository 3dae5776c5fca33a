-- The Xueliang hub's schema. This one file runs on SQLite and on PostgreSQL, so it uses only
-- portable SQL: TEXT, BIGINT, DOUBLE PRECISION; booleans are BIGINT 0/1 (the sqlx Any driver
-- cannot read SQLite BOOLEAN columns); no AUTOINCREMENT or SERIAL. Ids are made by the
-- application; sequence numbers (`seq`, `n`) are assigned by the store as MAX + 1 inside the
-- writing transaction, which holds the table's write lock (one hub writes). Times are Unix
-- milliseconds. Structured extras are JSON text.

-- Gate events, in the order the hub stored them.
CREATE TABLE gate_events (
    seq BIGINT NOT NULL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    gate TEXT NOT NULL,
    community TEXT NOT NULL,
    camera TEXT,
    firmware TEXT NOT NULL,
    kind TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    occurred_at BIGINT,
    dedup_key TEXT NOT NULL,
    evidence TEXT,
    body TEXT NOT NULL
);
CREATE INDEX gate_events_gate_received ON gate_events (gate, received_at);
CREATE INDEX gate_events_community_received ON gate_events (community, received_at);
CREATE INDEX gate_events_received ON gate_events (received_at);

-- Payloads that could not be turned into gate events, kept raw with the error.
CREATE TABLE dead_letters (
    id TEXT NOT NULL PRIMARY KEY,
    received_at BIGINT NOT NULL,
    firmware TEXT,
    gate TEXT,
    error TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX dead_letters_received ON dead_letters (received_at);

-- Vision events worth keeping (zone entries, dwell, count over a limit).
CREATE TABLE vision_events (
    id TEXT NOT NULL PRIMARY KEY,
    camera TEXT NOT NULL,
    community TEXT NOT NULL,
    kind TEXT NOT NULL,
    zone TEXT,
    at BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX vision_events_camera_at ON vision_events (camera, at);
CREATE INDEX vision_events_community_at ON vision_events (community, at);
CREATE INDEX vision_events_at ON vision_events (at);

-- Alerts as they are now (xl_core::Alert, one column per field; roles as a JSON array).
CREATE TABLE alerts (
    id TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    community TEXT NOT NULL,
    camera TEXT,
    gate TEXT,
    zone TEXT,
    title TEXT NOT NULL,
    raised_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    repeat_count BIGINT NOT NULL,
    ack_deadline BIGINT,
    acknowledged_at BIGINT,
    escalated_at BIGINT,
    resolved_at BIGINT,
    roles TEXT NOT NULL,
    source_event TEXT,
    snapshot TEXT
);
CREATE INDEX alerts_state ON alerts (state);
CREATE INDEX alerts_raised ON alerts (raised_at);
CREATE INDEX alerts_community_raised ON alerts (community, raised_at);
CREATE INDEX alerts_resolved ON alerts (resolved_at);

-- Every change of an alert: n counts 1, 2, ... per alert.
CREATE TABLE alert_actions (
    alert_id TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    n BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    note TEXT,
    PRIMARY KEY (alert_id, n)
);

-- Alerts as published: one row per change, written with the change. `alert` is the
-- xl_core::Alert JSON after the change (a copy: it outlives the alert's purge).
CREATE TABLE outbox (
    seq BIGINT NOT NULL PRIMARY KEY,
    at BIGINT NOT NULL,
    change TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    alert TEXT NOT NULL
);
CREATE INDEX outbox_at ON outbox (at);

-- Named positions of readers (the rules processor's input, the publishers' outbox cursors).
CREATE TABLE cursors (
    name TEXT NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);

-- Snapshot metadata; the JPEG files live under the snapshot directory (`path` is relative).
CREATE TABLE snapshots (
    id TEXT NOT NULL PRIMARY KEY,
    camera TEXT,
    gate TEXT,
    alert_id TEXT,
    taken_at BIGINT NOT NULL,
    path TEXT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    has_faces BIGINT NOT NULL,
    boxes TEXT NOT NULL
);
CREATE INDEX snapshots_camera_taken ON snapshots (camera, taken_at);
CREATE INDEX snapshots_alert ON snapshots (alert_id);
CREATE INDEX snapshots_taken ON snapshots (taken_at);

-- The registry, upserted from config at start.
CREATE TABLE cameras (
    id TEXT NOT NULL PRIMARY KEY,
    community TEXT NOT NULL,
    name TEXT NOT NULL,
    network TEXT NOT NULL,
    extras TEXT NOT NULL
);
CREATE TABLE gates (
    id TEXT NOT NULL PRIMARY KEY,
    community TEXT NOT NULL,
    name TEXT NOT NULL,
    firmware TEXT NOT NULL,
    camera TEXT,
    extras TEXT NOT NULL
);

-- People who log in; communities is a JSON array (the scope of property users).
CREATE TABLE users (
    username TEXT NOT NULL PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    communities TEXT NOT NULL,
    disabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE sessions (
    token_hash TEXT NOT NULL PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- The append-only audit log.
CREATE TABLE audit (
    seq BIGINT NOT NULL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT NOT NULL,
    peer TEXT
);
CREATE INDEX audit_at ON audit (at);
