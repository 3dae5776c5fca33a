-- The public keys a district's nodes sign evidence exports with (issue 19; portable SQL as in
-- 0001). Each node keeps its own Ed25519 signing key under its data directory and registers
-- the public half here at start, so that a package made on any node verifies against the
-- district's keys. No private key is ever stored: reading this table forges nothing.
--
-- key_id: the key's id as packages name it (the start of the SHA-256 of its 32 bytes);
-- public_key: the 32 bytes in standard base64; node: the `[cluster] node` that registered it
-- first ('' for a single hub); first_seen_at: Unix milliseconds.
CREATE TABLE evidence_keys (
    key_id TEXT NOT NULL PRIMARY KEY,
    public_key TEXT NOT NULL,
    node TEXT NOT NULL,
    first_seen_at BIGINT NOT NULL
);
