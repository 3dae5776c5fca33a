-- Vision events get a `seq`, like gate events, so that a publisher can follow them with a
-- cursor (portable SQL as in 0001). The store assigns it as MAX + 1 inside the writing
-- transaction, which holds the vision_events write lock: gap-free and in commit order even
-- when several hub nodes write one database.
--
-- Rows stored before this migration keep a NULL seq: they are not in the feed (a reader
-- paging by seq never sees them; listings read them as seq 0), and numbering starts at 1.
-- A UNIQUE index allows any number of NULLs on both backends.
ALTER TABLE vision_events ADD COLUMN seq BIGINT;
CREATE UNIQUE INDEX vision_events_seq ON vision_events (seq);
