-- Holds kept a while after their holder ends (issue 18): an alert's clip hold is made when the
-- alert is raised, without an end, and ends when the alert is resolved, `keep_after_ms` later
-- (the evidence retention). The store sets `until_at` in the transaction that resolves the
-- alert, so a clip is never released early, whoever resolves it.
ALTER TABLE recording_holds ADD COLUMN keep_after_ms BIGINT NOT NULL DEFAULT 0;
