-- Recordings on several nodes (issue 19): each node of a district records the cameras it
-- pulls onto its own disk, so a segment row names the node whose disk holds its file. A single
-- hub records with node '' (the default, and every row made before this migration). A node
-- repairs, expires and deletes only its own segments; the others' it reads through their
-- nodes (portable SQL as in 0001).
ALTER TABLE recording_segments ADD COLUMN node TEXT NOT NULL DEFAULT '';
-- Each node's start-up repair (its open segments) and disk guard (its oldest segments).
CREATE INDEX recording_segments_node_start ON recording_segments (node, start_at);
