-- The topology (xl_core::topology): stations, communities, grids, cameras with their zones,
-- gates. Portable SQL as in 0001 (runs on SQLite and PostgreSQL).
--
-- `spec` is the entry itself as JSON, without its secret (the serialiser skips secrets); it is
-- what the store reads back. The other columns copy what constraints, indexes and SQL filters
-- need (ids, references, name, disabled), written in the same statement as `spec`. A camera's
-- zones live in its `spec`: a zone has no life apart from its camera (drawn on its image,
-- checked with it, ids unique per camera), and one revision per camera is the unit of
-- optimistic concurrency. Secrets (a camera's password, a gate's push secret) have a column of
-- their own, `secret`, read only by the runtime's load.
--
-- Every row: `origin` ('config': declared by the config file, applied at each start,
-- read-only in the API; 'store': made through the API), `disabled` (0/1), `revision` (1 when
-- made, +1 at every change), `created_at` and `updated_at` (Unix milliseconds).
--
-- References are foreign keys checked at commit (DEFERRABLE INITIALLY DEFERRED), so one
-- transaction may move a camera and the gate it watches to another community together; the
-- store checks them itself first, to name the field. A grid, camera or gate names its
-- community, and a grid or camera it names must be of that same community (composite keys).
--
-- `cameras` and `gates` (0001) stay as they are: the listing mirror that the hub upserts from
-- the config at start and the API lists. They go when the hub and the API move onto these
-- tables.

CREATE TABLE stations (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    disabled BIGINT NOT NULL,
    spec TEXT NOT NULL,
    origin TEXT NOT NULL,
    revision BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE communities (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    station TEXT REFERENCES stations (id) DEFERRABLE INITIALLY DEFERRED,
    disabled BIGINT NOT NULL,
    spec TEXT NOT NULL,
    origin TEXT NOT NULL,
    revision BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX communities_station ON communities (station);

CREATE TABLE grids (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    community TEXT NOT NULL REFERENCES communities (id) DEFERRABLE INITIALLY DEFERRED,
    disabled BIGINT NOT NULL,
    spec TEXT NOT NULL,
    origin TEXT NOT NULL,
    revision BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (id, community)
);
CREATE INDEX grids_community ON grids (community);

CREATE TABLE topology_cameras (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    community TEXT NOT NULL REFERENCES communities (id) DEFERRABLE INITIALLY DEFERRED,
    grid TEXT,
    network TEXT NOT NULL,
    disabled BIGINT NOT NULL,
    spec TEXT NOT NULL,
    secret TEXT,
    origin TEXT NOT NULL,
    revision BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (id, community),
    FOREIGN KEY (grid, community) REFERENCES grids (id, community) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX topology_cameras_community ON topology_cameras (community);
CREATE INDEX topology_cameras_grid ON topology_cameras (grid);

CREATE TABLE topology_gates (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    community TEXT NOT NULL REFERENCES communities (id) DEFERRABLE INITIALLY DEFERRED,
    grid TEXT,
    camera TEXT,
    firmware TEXT NOT NULL,
    disabled BIGINT NOT NULL,
    spec TEXT NOT NULL,
    secret TEXT,
    origin TEXT NOT NULL,
    revision BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    FOREIGN KEY (grid, community) REFERENCES grids (id, community) DEFERRABLE INITIALLY DEFERRED,
    FOREIGN KEY (camera, community) REFERENCES topology_cameras (id, community)
        DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX topology_gates_community ON topology_gates (community);
CREATE INDEX topology_gates_grid ON topology_gates (grid);
CREATE INDEX topology_gates_camera ON topology_gates (camera);
