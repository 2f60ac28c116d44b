-- Fewer database pages changed by a sign-in (each is written to the WAL and flushed before the
-- sign-in is answered).
--
-- The replay guard is kept in its key's order only (WITHOUT ROWID): one B-tree instead of a
-- table and the index of its key.
CREATE TABLE used_tokens_by_key (
    token_hash TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
) WITHOUT ROWID;
INSERT INTO used_tokens_by_key (token_hash, expires_at) SELECT token_hash, expires_at FROM used_tokens;
DROP TABLE used_tokens;
ALTER TABLE used_tokens_by_key RENAME TO used_tokens;
CREATE INDEX used_tokens_expires_at ON used_tokens (expires_at);

-- The security log's ids without AUTOINCREMENT, which kept the last id in a table of its own
-- (sqlite_sequence), one more page per commit. A new row still takes the highest id plus one;
-- only the oldest rows are ever purged, so the ids keep the order of the events.
CREATE TABLE security_log_plain_ids (
    id INTEGER PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    provider TEXT,
    email TEXT,
    member_id BIGINT,
    client_ip TEXT,
    user_agent TEXT,
    incident TEXT NOT NULL,
    email_source TEXT
);
INSERT INTO security_log_plain_ids
    (id, at, event, outcome, reason, provider, email, member_id, client_ip, user_agent, incident, email_source)
SELECT id, at, event, outcome, reason, provider, email, member_id, client_ip, user_agent, incident, email_source
FROM security_log;
DROP TABLE security_log;
ALTER TABLE security_log_plain_ids RENAME TO security_log;
CREATE INDEX security_log_at ON security_log (at);

-- Sessions are found by the provider's session id only when there is one: sign-ins with tokens
-- that name none add no entry to that index.
DROP INDEX sessions_by_provider_session;
CREATE INDEX sessions_by_provider_session ON sessions (issuer, sid) WHERE sid IS NOT NULL;

-- Expired sessions are purged by a scan (a session ends at its absolute end or its idle
-- timeout, whichever is first, and no one index answers both), so an index of their absolute
-- ends served no query and cost a page per commit.
DROP INDEX sessions_expires_at;
