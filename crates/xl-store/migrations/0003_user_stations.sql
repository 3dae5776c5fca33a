-- Station scope (issue 16): the stations a duty or police user is limited to, a JSON array of
-- station ids like `communities`; '[]' (every existing user) means unlimited. Portable SQL as
-- in 0001 and 0002: ADD COLUMN with a constant default runs the same on SQLite and PostgreSQL.
-- No foreign key: a JSON array cannot have one, and a user's station that the topology no
-- longer has only narrows what they see (the API's scope gives it no community).
ALTER TABLE users ADD COLUMN stations TEXT NOT NULL DEFAULT '[]';
