-- Recordings (issue 18): the index of recorded segment files, and the holds that keep segments
-- from retention and the disk guard. Portable SQL as in 0001 (runs on SQLite and PostgreSQL):
-- times are Unix milliseconds, ids are numbered by the store (MAX + 1 under the table's write
-- lock, never given twice: see `seq_floor` in `cursors`).

-- One row per segment file: a self-contained fragmented MP4 of one camera stream.
-- `end_at` is null while the segment is `open` (being written); `closed` when the recorder
-- finished it, `repaired` when the start-up repair truncated it after its last complete
-- fragment. `path` is relative to the data directory. `media_start_90k` is the decode time of
-- the file's first sample (segments of one session continue one timeline).
CREATE TABLE recording_segments (
    id BIGINT NOT NULL PRIMARY KEY,
    camera TEXT NOT NULL,
    stream TEXT NOT NULL,
    start_at BIGINT NOT NULL,
    end_at BIGINT,
    bytes BIGINT NOT NULL,
    codec TEXT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL,
    media_start_90k BIGINT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    CHECK (state IN ('open', 'closed', 'repaired')),
    CHECK ((state = 'open' AND end_at IS NULL) OR (state <> 'open' AND end_at >= start_at)),
    CHECK (bytes >= 0 AND media_start_90k >= 0)
);
-- Playback and the timeline: a stream's segments over a time range; retention per camera.
CREATE INDEX recording_segments_camera_stream_start
    ON recording_segments (camera, stream, start_at);
-- The disk guard: the oldest segments across cameras.
CREATE INDEX recording_segments_start ON recording_segments (start_at);
-- The repair at start: the segments still open.
CREATE INDEX recording_segments_state ON recording_segments (state);

-- Holds: the segments of `camera` overlapping [from_at, to_at] are kept from retention and the
-- disk guard while the hold lives: until `until_at`, or for as long as it is null (while the
-- holder lives: an open alert, an export being made). `holder` names it (`alert:<id>`,
-- `export:<id>`); one holder may hold several ranges.
CREATE TABLE recording_holds (
    id BIGINT NOT NULL PRIMARY KEY,
    camera TEXT NOT NULL,
    from_at BIGINT NOT NULL,
    to_at BIGINT NOT NULL,
    until_at BIGINT,
    reason TEXT NOT NULL,
    holder TEXT NOT NULL,
    CHECK (to_at >= from_at)
);
CREATE INDEX recording_holds_camera_from ON recording_holds (camera, from_at);
CREATE INDEX recording_holds_holder ON recording_holds (holder);
