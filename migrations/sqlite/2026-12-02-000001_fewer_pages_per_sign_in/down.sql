CREATE INDEX sessions_expires_at ON sessions (expires_at);

DROP INDEX sessions_by_provider_session;
CREATE INDEX sessions_by_provider_session ON sessions (issuer, sid);

CREATE TABLE security_log_autoincrement (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
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
INSERT INTO security_log_autoincrement
    (id, at, event, outcome, reason, provider, email, member_id, client_ip, user_agent, incident, email_source)
SELECT id, at, event, outcome, reason, provider, email, member_id, client_ip, user_agent, incident, email_source
FROM security_log;
DROP TABLE security_log;
ALTER TABLE security_log_autoincrement RENAME TO security_log;
CREATE INDEX security_log_at ON security_log (at);

CREATE TABLE used_tokens_with_rowid (
    token_hash TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);
INSERT INTO used_tokens_with_rowid (token_hash, expires_at) SELECT token_hash, expires_at FROM used_tokens;
DROP TABLE used_tokens;
ALTER TABLE used_tokens_with_rowid RENAME TO used_tokens;
CREATE INDEX used_tokens_expires_at ON used_tokens (expires_at);
